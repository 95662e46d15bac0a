package config

import (
	"fmt"
	"reflect"
	"strings"
)

// ReloadMode is how a reload treats a key: the value of its field's
// reload tag.
type ReloadMode string

// Reload modes.
const (
	// ReloadApply: a reload applies the key.
	ReloadApply ReloadMode = "apply"
	// ReloadRestart: the key applies only after a restart; a reload that
	// changes it applies the rest and says so, naming the key.
	ReloadRestart ReloadMode = "restart"
	// ReloadRefuse: a reload that changes the key fails, and the running
	// config stays.
	ReloadRefuse ReloadMode = "refuse"
)

// Tag values that are not a mode: a section whose fields each carry their
// own tag, and a field that is not a key.
const (
	reloadFields = "fields"
	reloadNone   = "-"
)

// Change is a key whose value differs between two configs.
type Change struct {
	Key      string // "listener.batch_size", "query"
	Old, New any
}

// Changes lists the keys whose values differ between a and b and that a
// reload treats as mode, in the order Config declares them.
func Changes(a, b *Config, mode ReloadMode) []Change {
	keys, _ := reloadKeys(reflect.TypeFor[Config](), "", nil)
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	var out []Change
	for _, k := range keys {
		if k.mode != mode {
			continue
		}
		x, y := va.FieldByIndex(k.index), vb.FieldByIndex(k.index)
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			out = append(out, Change{Key: k.name, Old: x.Interface(), New: y.Interface()})
		}
	}
	return out
}

// reloadKey is a field of Config that is a key, with its reload mode.
type reloadKey struct {
	name  string // dotted, as the config file spells it
	index []int  // for reflect.Value.FieldByIndex
	mode  ReloadMode
}

// reloadKeys lists the keys of t (a struct) and its "fields" sections,
// and a problem for each field whose reload tag is missing or unknown.
// A key is named by its mapstructure tag; a field decoded by hand
// (mapstructure "-", such as sinks) by its lower-cased name.
func reloadKeys(t reflect.Type, prefix string, index []int) ([]reloadKey, []error) {
	var keys []reloadKey
	var errs []error
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "-" || name == "" {
			name = strings.ToLower(f.Name)
		}
		name = prefix + name
		idx := append(append([]int(nil), index...), i)
		tag, ok := f.Tag.Lookup("reload")
		switch mode := ReloadMode(tag); {
		case !ok:
			errs = append(errs, fmt.Errorf("%s (field %s.%s): no reload tag: say whether a reload applies it (apply), needs a restart for it (restart), refuses it (refuse), or that it is not a key (-)", name, t.Name(), f.Name))
		case tag == reloadNone:
		case tag == reloadFields:
			if f.Type.Kind() != reflect.Struct {
				errs = append(errs, fmt.Errorf("%s (field %s.%s): reload:%q on a %s, want a struct", name, t.Name(), f.Name, tag, f.Type.Kind()))
				continue
			}
			k, e := reloadKeys(f.Type, name+".", idx)
			keys, errs = append(keys, k...), append(errs, e...)
		case mode == ReloadApply, mode == ReloadRestart, mode == ReloadRefuse:
			keys = append(keys, reloadKey{name: name, index: idx, mode: mode})
		default:
			errs = append(errs, fmt.Errorf("%s (field %s.%s): reload:%q is not apply, restart, refuse, fields or -", name, t.Name(), f.Name, tag))
		}
	}
	return keys, errs
}
