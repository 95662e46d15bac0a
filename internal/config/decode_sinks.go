package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/cnbridged/cnbridged/internal/sinks"
)

// decodeSinks decodes each sink: its type, the queue keys, then its
// type's own keys; a key of another type's is reported as such.
func (ld *loader) decodeSinks(raw any, c *Config) {
	m, ok := raw.(map[string]any)
	if !ok {
		if raw != nil {
			ld.bad["sinks"] = true
			ld.add("sinks", fmt.Sprintf("%s: want a mapping of sink names to sinks", show(raw)))
		}
		return
	}
	c.Sinks = make(map[string]*Sink, len(m))
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		rs := m[name]
		key := "sinks." + name
		if rs == nil {
			c.Sinks[name] = nil
			continue
		}
		sm, ok := rs.(map[string]any)
		if !ok {
			ld.bad[key] = true
			ld.add(key, fmt.Sprintf("%s: want a mapping of keys (type: …)", show(rs)))
			c.Sinks[name] = &Sink{} // its problems are this one
			continue
		}
		s := &Sink{}
		c.Sinks[name] = s
		rest := make(map[string]any, len(sm))
		for k, v := range sm {
			if k == "type" {
				if t, ok := v.(string); ok {
					s.Type = t
				} else {
					ld.bad[key+".type"] = true
					ld.add(key+".type", fmt.Sprintf("%s: want %s", show(v), typeList()))
				}
				continue
			}
			rest[k] = v
		}
		queue := make(map[string]any, len(rest))
		own := make(map[string]any, len(rest))
		for k, v := range rest {
			if slices.Contains(keysOf(&s.QueueConfig), k) {
				queue[k] = v
			} else {
				own[k] = v
			}
		}
		ld.decodeInto(queue, &s.QueueConfig, key, true, nil)
		tc, known := sinks.NewTypeConfig(s.Type)
		if !known {
			continue // validation names the type problem
		}
		s.Settings = tc
		typ := s.Type
		ld.decodeInto(own, tc, key, true, func(k string) string {
			short := k[strings.LastIndexByte(k, '.')+1:]
			var others []string
			for _, other := range sinks.Types() {
				if oc, _ := sinks.NewTypeConfig(other); other != typ && slices.Contains(keysOf(oc), short) {
					others = append(others, other)
				}
			}
			if len(others) > 0 {
				return "applies only to sinks of type " + strings.Join(others, " or ")
			}
			return fmt.Sprintf("unknown key for a %s sink; its keys: %s", typ, strings.Join(append(keysOf(&s.QueueConfig), keysOf(tc)...), ", "))
		})
	}
}

// keysOf lists the mapstructure keys of the struct v points to.
func keysOf(v any) []string { return structKeys(reflect.TypeOf(v).Elem()) }

// structKeys lists the mapstructure keys of struct type t, those of its
// squashed embedded structs (sinks.SchemaConfig) included.
func structKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		switch {
		case opts == "squash" && f.Type.Kind() == reflect.Struct:
			keys = append(keys, structKeys(f.Type)...)
		case tag != "" && tag != "-":
			keys = append(keys, tag)
		}
	}
	return keys
}

// builtinMap is the config used when no file exists: every process event
// to stdout. For people at a terminal (text is true) that is the text
// format with enrichment; otherwise JSON lines.
func builtinMap(text bool) map[string]any {
	if text {
		return map[string]any{
			"sinks":  map[string]any{"stdout": map[string]any{"type": "stdout", "format": FormatText}},
			"routes": []any{map[string]any{"match": "1.1", "sinks": []any{"stdout"}, "enrich": true}},
		}
	}
	return map[string]any{
		"sinks":  map[string]any{"stdout": map[string]any{"type": "stdout"}},
		"routes": []any{map[string]any{"match": "1.1", "sinks": []any{"stdout"}}},
	}
}
