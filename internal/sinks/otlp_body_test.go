package sinks

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// bodyCases are JSON objects as the body encoders write them, and the
// shapes a reader must get right: escapes, surrogate pairs, numbers past
// int64, nesting, empty containers.
var bodyCases = []string{
	`{"time":"2026-11-30T16:03:47.168429822Z","host":"vm","idx":1,"proc":{"event":"exec","cpu":0,"timestamp_ns":1421763501602,"pid":1780}}`,
	`{"a":"q\"uote \\ back \/ slash \b\f\n\r\t \u0001 \u00e9 \ud83d\ude00 \ud800","b":[1,-2,3.5,1e3,18446744073709551615],"c":{},"d":[],"e":true,"f":false,"g":null}`,
	`{"process":{"args":["sh","-c","sh -c \"exec sleep 0.3\"; true"],"previous":[{"executable":"/usr/bin/dash"}]}}`,
	`{}`,
}

// viaEncodingJSON is what encoding/json reads from b, as pdata holds it
// (integers that fit int64 as int64, like setJSONBody).
func viaEncodingJSON(t testing.TB, b []byte) map[string]any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	var conv func(any) any
	conv = func(x any) any {
		switch x := x.(type) {
		case json.Number:
			if n, err := x.Int64(); err == nil {
				return n
			}
			f, _ := x.Float64()
			return f
		case map[string]any:
			for k, e := range x {
				x[k] = conv(e)
			}
		case []any:
			for i, e := range x {
				x[i] = conv(e)
			}
		}
		return x
	}
	conv(v)
	m := pcommon.NewMap()
	if err := m.FromRaw(v); err != nil {
		t.Fatal(err)
	}
	return m.AsRaw()
}

// TestSetJSONBody: the body reader gives what encoding/json gives, with
// member names interned (twice over the cases, as a sink reads them) or
// not.
func TestSetJSONBody(t *testing.T) {
	keys := map[string]string{}
	for _, interned := range []map[string]string{nil, keys, keys} {
		for _, c := range bodyCases {
			v := pcommon.NewValueEmpty()
			if err := setJSONBodyKeys(v, []byte(c), interned); err != nil {
				t.Errorf("%s: %v", c, err)
				continue
			}
			if diff := cmp.Diff(viaEncodingJSON(t, []byte(c)), v.Map().AsRaw()); diff != "" {
				t.Errorf("%s (-encoding/json +setJSONBody):\n%s", c, diff)
			}
		}
	}
	if keys["proc"] != "proc" {
		t.Errorf("member names not interned: %v", keys)
	}
	for _, bad := range []string{``, `{`, `{"a"}`, `{"a":1,}`, `{"a":"\x"}`, `{"a":tru}`, `{"a":1}x`, `{"a":"\u12"}`} {
		if err := setJSONBody(pcommon.NewValueEmpty(), []byte(bad)); err == nil {
			t.Errorf("%q read without an error", bad)
		}
	}
}

// FuzzSetJSONBody: any compact JSON object reads as encoding/json reads
// it, and no input panics.
func FuzzSetJSONBody(f *testing.F) {
	for _, c := range bodyCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v := pcommon.NewValueEmpty()
		err := setJSONBodyKeys(v, b, map[string]string{})
		var probe map[string]any
		if json.Unmarshal(b, &probe) != nil {
			return
		}
		var compact bytes.Buffer
		if json.Compact(&compact, b) != nil || !bytes.Equal(compact.Bytes(), b) {
			return // white space outside strings: not what the encoders write
		}
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if diff := cmp.Diff(viaEncodingJSON(t, b), v.Map().AsRaw()); diff != "" {
			t.Fatalf("%q (-encoding/json +setJSONBody):\n%s", b, diff)
		}
	})
}
