package event

import (
	"reflect"
	"testing"
)

// TestPlainCopiesEveryField: Plain keeps every field of a record but the
// four the enricher writes or takes. A field added to Record and not to Plain fails
// here (Gap was missed that way).
func TestPlainCopiesEveryField(t *testing.T) {
	enricherOwned := map[string]bool{"Enrich": true, "Enriched": true, "Capture": true, "Unselected": true}
	typ := reflect.TypeFor[Record]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		var r Record
		v := reflect.ValueOf(&r).Elem().Field(i)
		setNonZero(v)
		got := reflect.ValueOf(r.Plain()).Field(i)
		if enricherOwned[f.Name] {
			if !got.IsZero() {
				t.Errorf("Plain copied %s, which the enricher writes", f.Name)
			}
			continue
		}
		if !reflect.DeepEqual(got.Interface(), v.Interface()) {
			t.Errorf("Plain dropped %s", f.Name)
		}
	}
}

// setNonZero gives v a value other than its zero value.
func setNonZero(v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.String:
		v.SetString("x")
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				setNonZero(v.Field(i))
				return
			}
		}
	}
}
