package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"

	"github.com/cnbridged/cnbridged/internal/sinks"
)

var (
	durationType = reflect.TypeOf(time.Duration(0))
	textType     = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// decodeHook converts what YAML, the environment and --set give into the
// typed fields: durations only from Go duration strings, enums and modes
// through their UnmarshalText, comma-separated strings into lists.
func decodeHook(f, t reflect.Type, data any) (any, error) {
	switch {
	case t == durationType:
		switch f.Kind() {
		case reflect.String:
			d, err := time.ParseDuration(data.(string))
			if err != nil {
				return nil, &valueError{value: data, want: `a duration such as "2s" or "250ms"`}
			}
			return d, nil
		case reflect.Int64:
			if f == durationType {
				return data, nil // a built-in default
			}
		}
		return nil, &valueError{value: data, want: `a duration string such as "2s" or "250ms" (a bare number has no unit)`}
	case reflect.PointerTo(t).Implements(textType):
		if f.Kind() != reflect.String {
			if f == t {
				return data, nil
			}
			return nil, &valueError{value: data, want: expected(t) + " (quote it)"}
		}
		v := reflect.New(t)
		if err := v.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(data.(string))); err != nil {
			return nil, &valueError{msg: err.Error()}
		}
		return v.Elem().Interface(), nil
	}
	return stringToSlice(f, t, data)
}

// valueError is a value of the wrong form.
type valueError struct {
	value any
	want  string
	msg   string // instead of value and want
}

func (e *valueError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return fmt.Sprintf("%s: want %s", show(e.value), e.want)
}

func show(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	if v == nil {
		return "null"
	}
	return fmt.Sprint(v)
}

// expected names the form a value of type t takes.
func expected(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration such as "2s"`
	case t == reflect.TypeOf(sinks.FileMode(0)):
		return `an octal mode string such as "0640"`
	case reflect.PointerTo(t).Implements(textType):
		return "a string"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(expected(t.Elem()), "an "), "a ") + "s"
	case reflect.Map, reflect.Struct:
		return "a mapping of keys"
	case reflect.Pointer:
		return expected(t.Elem())
	}
	return t.String()
}

// stringToSlice splits a comma-separated string ("1,3" from the environment
// or --set) into a list for any list key, numbers included, trimming spaces
// around each element. mapstructure's own hook only handles []string.
func stringToSlice(f, t reflect.Type, data any) (any, error) {
	if f.Kind() != reflect.String || t.Kind() != reflect.Slice {
		return data, nil
	}
	s := reflect.ValueOf(data).String()
	if strings.TrimSpace(s) == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

// decode turns the merged settings into a Config, recording a problem for
// every unknown key and every value of the wrong type, and decoding what it
// can so that validation reports the rest.
func (ld *loader) decode() *Config {
	ld.bad = map[string]bool{}
	settings := ld.v.AllSettings()
	rawSinks, hasSinks := settings["sinks"]
	delete(settings, "sinks")
	var c Config
	ld.decodeInto(settings, &c, "", true, nil)
	if hasSinks {
		ld.decodeSinks(rawSinks, &c)
	}
	return &c
}

// decodeInto decodes in into out; keys are reported relative to prefix.
// With exact, keys out does not have are problems, described by
// unknownMsg (nil: "unknown key").
func (ld *loader) decodeInto(in any, out any, prefix string, exact bool, unknownMsg func(key string) string) {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       decodeHook,
		WeaklyTypedInput: true,
		ErrorUnused:      exact,
		Result:           out,
	})
	if err != nil {
		ld.add(prefix, err.Error())
		return
	}
	if unknownMsg == nil {
		unknownMsg = func(string) string { return "unknown key" }
	}
	for _, e := range decodeErrors(dec.Decode(in)) {
		ld.decodeProblem(prefix, e, unknownMsg)
	}
}

// decodeErrors lists the *mapstructure.DecodeErrors in err, each naming
// its field in full.
func decodeErrors(err error) []error {
	var de *mapstructure.DecodeError
	switch e := err.(type) {
	case nil:
		return nil
	case interface{ Unwrap() []error }:
		var out []error
		for _, x := range e.Unwrap() {
			out = append(out, decodeErrors(x)...)
		}
		return out
	case *mapstructure.DecodeError:
		if inner := e.Unwrap(); inner != nil {
			if _, ok := inner.(interface{ Unwrap() []error }); ok {
				return decodeErrors(inner)
			}
		}
		return []error{e}
	default:
		if errors.As(err, &de) {
			if u := errors.Unwrap(err); u != nil {
				return decodeErrors(u)
			}
		}
		return []error{err}
	}
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	if k == "" {
		return prefix
	}
	if strings.HasPrefix(k, "[") {
		return prefix + k
	}
	return prefix + "." + k
}

// decodeProblem turns one mapstructure error into a problem with the key,
// the value and the expected type.
func (ld *loader) decodeProblem(prefix string, e error, unknownMsg func(key string) string) {
	var de *mapstructure.DecodeError
	if !errors.As(e, &de) {
		ld.add(prefix, e.Error())
		return
	}
	key := join(prefix, de.Name())
	inner := de.Unwrap()
	if strings.HasPrefix(inner.Error(), "has invalid keys: ") {
		for k := range strings.SplitSeq(strings.TrimPrefix(inner.Error(), "has invalid keys: "), ", ") {
			ld.bad[join(key, k)] = true
			ld.add(join(key, k), unknownMsg(join(key, k)))
		}
		return
	}
	if base, ok := ld.scalarList(key); ok {
		// A list given as one string ("one", or "1,x"): the problem is
		// the key's, not that of an element the string was split into.
		if !ld.bad[base] {
			ld.bad[base] = true
			ld.add(base, fmt.Sprintf("%s: want %s", show(ld.rawValue(base)), listOf(inner)))
		}
		return
	}
	ld.bad[key] = true
	var ve *valueError
	var pe *mapstructure.ParseError
	var ue *mapstructure.UnconvertibleTypeError
	switch {
	case errors.As(inner, &ve):
		ld.add(key, ve.Error())
	case errors.As(inner, &pe):
		ld.add(key, fmt.Sprintf("%s: want %s", show(pe.Value), expected(pe.Expected.Type())))
	case errors.As(inner, &ue):
		ld.add(key, fmt.Sprintf("%s: want %s", show(ue.Value), expected(ue.Expected.Type())))
	default:
		ld.add(key, inner.Error())
	}
}

// scalarList reports whether key is an element (key[N]) of a list that was
// given as one string and split by stringToSlice, returning the list's key.
func (ld *loader) scalarList(key string) (string, bool) {
	i := strings.LastIndexByte(key, '[')
	if i <= 0 || !strings.HasSuffix(key, "]") {
		return "", false
	}
	base := key[:i]
	_, isString := ld.rawValue(base).(string)
	return base, isString
}

// rawValue is key's value before decoding (nil when there is none).
func (ld *loader) rawValue(key string) any {
	steps, err := parsePath(key)
	if err != nil {
		return nil
	}
	v, _ := lookup(ld.v.AllSettings(), steps)
	return v
}

// listOf names a list of the element type an element's decode error
// expected ("a list of integers").
func listOf(inner error) string {
	var pe *mapstructure.ParseError
	var ue *mapstructure.UnconvertibleTypeError
	const hint = " (a YAML list, or a comma-separated string)"
	switch {
	case errors.As(inner, &pe):
		return expected(reflect.SliceOf(pe.Expected.Type())) + hint
	case errors.As(inner, &ue):
		return expected(reflect.SliceOf(ue.Expected.Type())) + hint
	}
	return "a list of mappings"
}
