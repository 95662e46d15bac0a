package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// step is one step of a key path: a mapping key, or (index >= 0) a list
// element.
type step struct {
	name  string
	index int
}

// parsePath splits a key such as routes[0].sinks[1] or sinks.out.path into
// its steps. Names are lower-cased, as viper keys are.
func parsePath(key string) ([]step, error) {
	var steps []step
	for part := range strings.SplitSeq(key, ".") {
		name, rest, _ := strings.Cut(part, "[")
		if name == "" && len(steps) == 0 {
			return nil, fmt.Errorf("%q: a key starts with a name, e.g. routes[0].enrich", key)
		}
		if name == "" && rest == "" {
			return nil, fmt.Errorf("%q: empty key between dots", key)
		}
		if name != "" {
			steps = append(steps, step{name: strings.ToLower(strings.TrimSpace(name)), index: -1})
		}
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(num)
			if !ok || err != nil || i < 0 || (after != "" && after[0] != '[') {
				return nil, fmt.Errorf("%q: want a list index such as [0] after %s", key, strings.TrimSuffix(key[:len(key)-len(rest)], "["))
			}
			steps = append(steps, step{index: i})
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return steps, nil
}

// hasIndex reports whether key addresses a list element.
func hasIndex(key string) bool { return strings.ContainsRune(key, '[') }

// lookup returns the value at steps in v (maps and lists as the YAML
// decoder, viper and the defaults give them).
func lookup(v any, steps []step) (any, bool) {
	for _, s := range steps {
		rv := reflect.ValueOf(v)
		switch {
		case s.index < 0 && rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String:
			e := rv.MapIndex(reflect.ValueOf(s.name).Convert(rv.Type().Key()))
			if !e.IsValid() {
				return nil, false
			}
			v = e.Interface()
		case s.index >= 0 && (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array):
			if s.index >= rv.Len() {
				return nil, false
			}
			v = rv.Index(s.index).Interface()
		default:
			return nil, false
		}
	}
	return v, true
}

// setPath returns a copy of v with value at steps; maps and lists on the
// way are copied, never changed in place. A list index may be the
// list's length (a new element at the end); an element created so is a
// mapping when the path goes on with a name.
func setPath(v any, steps []step, value any, where string) (any, error) {
	if len(steps) == 0 {
		return value, nil
	}
	s := steps[0]
	if s.index < 0 {
		m := map[string]any{}
		if v != nil {
			rv := reflect.ValueOf(v)
			if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
				return nil, fmt.Errorf("%s is %s, not a mapping of keys", where, describeValue(v))
			}
			for it := rv.MapRange(); it.Next(); {
				m[it.Key().String()] = it.Value().Interface()
			}
		}
		child, err := setPath(m[s.name], steps[1:], value, join(where, s.name))
		if err != nil {
			return nil, err
		}
		m[s.name] = child
		return m, nil
	}
	var list []any
	if v != nil {
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return nil, fmt.Errorf("%s is %s, not a list", where, describeValue(v))
		}
		for i := range rv.Len() {
			list = append(list, rv.Index(i).Interface())
		}
	}
	elem := fmt.Sprintf("%s[%d]", where, s.index)
	switch {
	case s.index < len(list):
	case s.index == len(list):
		list = append(list, nil)
	default:
		return nil, fmt.Errorf("%s: %s has %s; an index from 0 to %d (%d adds one)", elem, where, items(len(list)), len(list), len(list))
	}
	child, err := setPath(list[s.index], steps[1:], value, elem)
	if err != nil {
		return nil, err
	}
	list[s.index] = child
	return list, nil
}

func items(n int) string {
	if n == 1 {
		return "1 item"
	}
	return strconv.Itoa(n) + " items"
}

// describeValue names what a value is, for an error.
func describeValue(v any) string {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "the value " + show(v)
}
