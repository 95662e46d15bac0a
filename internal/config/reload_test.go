package config

import (
	"reflect"
	"testing"
)

// TestReloadDeclared: every field of Config, and of the sections whose
// fields each say, declares how a reload treats it (its reload tag), so
// that a key added without saying is neither applied nor mentioned by a
// reload (as state_dir once was). Adding a field without a tag fails here.
func TestReloadDeclared(t *testing.T) {
	keys, errs := reloadKeys(reflect.TypeFor[Config](), "", nil)
	for _, err := range errs {
		t.Error(err)
	}
	if len(keys) == 0 {
		t.Fatal("Config has no keys")
	}
}

// TestChangesNameEachKey: changing any one key is reported as that key,
// under its own reload mode and no other.
func TestChangesNameEachKey(t *testing.T) {
	keys, _ := reloadKeys(reflect.TypeFor[Config](), "", nil)
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.name] {
			t.Errorf("key %s declared twice", k.name)
		}
		seen[k.name] = true
		var a, b Config
		change(t, k.name, reflect.ValueOf(&b).Elem().FieldByIndex(k.index))
		for _, mode := range []ReloadMode{ReloadApply, ReloadRestart, ReloadRefuse} {
			var got []string
			for _, c := range Changes(&a, &b, mode) {
				got = append(got, c.Key)
			}
			var want []string
			if mode == k.mode {
				want = []string{k.name}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("changing %s: Changes(%s) = %q, want %q", k.name, mode, got, want)
			}
		}
	}
	for _, k := range []string{"host", "state_dir", "listener.batch_size", "metrics.listen", "sinks", "routes"} {
		if !seen[k] {
			t.Errorf("no key %s; keys: %v", k, seen)
		}
	}
}

// TestReloadModes pins the mode of the keys the daemon's reload treats
// specially, as README's Operations section lists them.
func TestReloadModes(t *testing.T) {
	keys, _ := reloadKeys(reflect.TypeFor[Config](), "", nil)
	got := map[ReloadMode][]string{}
	for _, k := range keys {
		got[k.mode] = append(got[k.mode], k.name)
	}
	want := map[ReloadMode][]string{
		ReloadRefuse: {"host", "requests"},
		ReloadRestart: {"log", "ledger", "tap", "query", "enrich_max_cmdline_bytes", "enrich_queue_size", "enrich_redact",
			"process_table", "state_dir", "listener.batch_size", "listener.handshake_timeout", "metrics.listen"},
	}
	for _, mode := range []ReloadMode{ReloadRefuse, ReloadRestart} {
		if !sameSet(got[mode], want[mode]) {
			t.Errorf("%s keys = %q, want %q", mode, got[mode], want[mode])
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// change sets v, the zero value of a key, to something else.
func change(t *testing.T, key string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(reflect.Zero(v.Type().Key()), reflect.Zero(v.Type().Elem()))
		v.Set(m)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				change(t, key, v.Field(i))
				return
			}
		}
		t.Fatalf("%s: a struct with no exported field", key)
	default:
		t.Fatalf("%s: cannot change a %s", key, v.Kind())
	}
}
