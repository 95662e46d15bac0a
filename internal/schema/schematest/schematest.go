// Package schematest holds documents to the official definitions of the
// schemas cnbridged writes: ECS 9.4.0 (ecs_flat.yml), OCSF 1.8.0 (the
// dictionary, the classes and objects) and the OpenTelemetry semantic
// conventions 1.44.0 (the attribute registry). The definitions are kept
// verbatim, or trimmed by whole entries, in testdata (its README.md says
// where from and how), embedded here for the tests of every package that
// writes a schema, the daemon's end-to-end tests included.
package schematest

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

//go:embed all:testdata
var defs embed.FS

// ecsField is an entry of ECS's ecs_flat.yml.
type ecsField struct {
	Type          string   `yaml:"type"`
	Normalize     []string `yaml:"normalize"`
	ObjectType    string   `yaml:"object_type"`
	AllowedValues []struct {
		Name               string   `yaml:"name"`
		ExpectedEventTypes []string `yaml:"expected_event_types"`
	} `yaml:"allowed_values"`
}

var ecsDefs = sync.OnceValues(func() (map[string]ecsField, error) {
	b, err := fs.ReadFile(defs, "testdata/ecs-9.4.0/ecs_flat.yml")
	if err != nil {
		return nil, err
	}
	var m map[string]ecsField
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("ecs_flat.yml: %w", err)
	}
	return m, nil
})

// ECSCustom is the custom field set "cnbridged" (README "Schemas"): the
// members ECS has no field for, by their names on the line, with the ECS
// data type each is written as. Custom fields are not ECS's; ValidateECS
// holds them to this list instead.
var ECSCustom = map[string]string{
	"cnbridged.proc.cpu":                  "long",
	"cnbridged.proc.timestamp_ns":         "long",
	"cnbridged.proc.tracer_pid":           "long",
	"cnbridged.proc.tracer_tgid":          "long",
	"cnbridged.proc.exit_signal":          "long",
	"cnbridged.proc.signal":               "keyword",
	"cnbridged.proc.core_dumped":          "boolean",
	"cnbridged.proc.thread":               "boolean",
	"cnbridged.proc.err":                  "long",
	"cnbridged.proc.what":                 "long",
	"cnbridged.process.cgroup":            "keyword",
	"cnbridged.process.cmdline_truncated": "boolean",
	"cnbridged.process.stale":             "boolean",
	"cnbridged.process.seeded":            "boolean",
	"cnbridged.process.missing":           "keyword",
	"cnbridged.process.gone":              "boolean",
	"cnbridged.process.skipped":           "boolean",
	"cnbridged.process.duration_ns":       "long",
	"cnbridged.ancestors.entity_id":       "keyword",
	"cnbridged.ancestors.pid":             "long",
	"cnbridged.ancestors.exe":             "keyword",
	"cnbridged.ancestors.exited":          "boolean",
	"cnbridged.parent.exited":             "boolean",
	"cnbridged.loss.idx":                  "long",
	"cnbridged.loss.val":                  "long",
	"cnbridged.loss.cpu":                  "long",
	"cnbridged.loss.sender":               "long",
	"cnbridged.loss.from_seq":             "long",
	"cnbridged.loss.to_seq":               "long",
	"cnbridged.loss.lost":                 "long",
	"cnbridged.gap.pids_allocated":        "long",
	"cnbridged.gap.pids_wrapped":          "boolean",
	"cnbridged.gap.clean_stop":            "boolean",
	"cnbridged.tap.dropped":               "long",
	"cnbridged.connector.idx":             "long",
	"cnbridged.connector.val":             "long",
	"cnbridged.connector.ack":             "long",
	"cnbridged.connector.flags":           "long",
	"cnbridged.connector.len":             "long",
	"cnbridged.connector.sender":          "long",
	"cnbridged.connector.data":            "keyword",
	"cnbridged.suppressed.route":          "long",
	"cnbridged.suppressed.count":          "long",
	"cnbridged.suppressed.overflow":       "boolean",
	"cnbridged.suppressed.key":            "flattened", // path → value, as the route's rate_limit.per names them
	"cnbridged.life.start":                "date",
	"cnbridged.life.end":                  "date",
	"cnbridged.life.duration_ns":          "long",
	"cnbridged.life.forked":               "boolean",
	"cnbridged.life.execs.time":           "date",
	"cnbridged.life.execs.exe":            "keyword",
	"cnbridged.life.execs.cmdline":        "keyword",
	"cnbridged.life.execs_dropped":        "long",
	"cnbridged.life.events":               "long",
	"cnbridged.life.exit_code":            "long",
	"cnbridged.life.exit_status":          "long",
	"cnbridged.life.signal":               "keyword",
	"cnbridged.life.core_dumped":          "boolean",
	"cnbridged.life.open":                 "boolean",
	"cnbridged.life.evicted":              "boolean",
	"cnbridged.life.exit_lost":            "boolean",
	// A record type the encoders have no mapping for, kept whole: an
	// object whose members are not mapped.
	"cnbridged.marker": "flattened",
}

// ValidateECS checks every field of doc against ECS 9.4.0: the name is
// defined (or in the custom set), the JSON type fits the field's data
// type, a field ECS normalizes to an array is one, values of fields with
// allowed values are allowed (event.type among those its category
// expects), and the fields every document needs are there.
func ValidateECS(doc []byte) []string {
	defs, err := ecsDefs()
	if err != nil {
		return []string{err.Error()}
	}
	var v map[string]any
	if err := json.Unmarshal(doc, &v); err != nil {
		return []string{fmt.Sprintf("not a JSON object: %v", err)}
	}
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	leaves := map[string]any{}
	var walk func(prefix string, v any, inArray bool)
	walk = func(prefix string, v any, inArray bool) {
		switch v := v.(type) {
		case map[string]any:
			if f, ok := defs[prefix]; ok && (f.Type == "object" || f.Type == "flattened") {
				leaves[prefix] = v
				return
			}
			if ECSCustom[prefix] == "flattened" {
				leaves[prefix] = v
				return
			}
			for k, e := range v {
				name := k
				if prefix != "" {
					name = prefix + "." + k
				}
				walk(name, e, false)
			}
		case []any:
			objects := len(v) > 0
			for _, e := range v {
				if _, ok := e.(map[string]any); !ok {
					objects = false
				}
			}
			if objects { // an array of objects: its fields flatten (process.previous)
				for _, e := range v {
					walk(prefix, e, true)
				}
				return
			}
			leaves[prefix] = v
		default:
			leaves[prefix] = v
		}
	}
	walk("", v, false)
	for name, val := range leaves {
		typ, arrayNorm := "", false
		if f, ok := defs[name]; ok {
			typ, arrayNorm = f.Type, slices.Contains(f.Normalize, "array")
			if len(f.AllowedValues) > 0 {
				for _, s := range scalars(val) {
					if !slices.ContainsFunc(f.AllowedValues, func(a struct {
						Name               string   `yaml:"name"`
						ExpectedEventTypes []string `yaml:"expected_event_types"`
					}) bool {
						return a.Name == s
					}) {
						bad("%s: %v is not an allowed value", name, s)
					}
				}
			}
		} else if t, ok := ECSCustom[name]; ok {
			typ = t
		} else if strings.HasPrefix(name, "labels.") && defs["labels"].ObjectType == "keyword" {
			typ = "keyword"
		} else {
			bad("%s: not an ECS field", name)
			continue
		}
		if arrayNorm {
			if _, ok := val.([]any); !ok {
				bad("%s: ECS normalizes it to an array; got %v", name, val)
			}
		}
		for _, s := range scalars(val) {
			if msg := ecsTypeError(typ, s); msg != "" {
				bad("%s (%s): %v %s", name, typ, s, msg)
			}
		}
	}
	for _, req := range []string{"@timestamp", "ecs.version", "event.kind", "host.name"} {
		if _, ok := leaves[req]; !ok {
			bad("%s: missing", req)
		}
	}
	// Each event.type must be one its categories expect.
	if cats, ok := leaves["event.category"].([]any); ok {
		for _, c := range cats {
			for _, a := range defs["event.category"].AllowedValues {
				if a.Name != c {
					continue
				}
				for _, t := range scalars(leaves["event.type"]) {
					if !slices.Contains(a.ExpectedEventTypes, fmt.Sprint(t)) {
						bad("event.type %v is not one category %v expects (%v)", t, c, a.ExpectedEventTypes)
					}
				}
			}
		}
	}
	sort.Strings(errs)
	return errs
}

func scalars(v any) []any {
	if a, ok := v.([]any); ok {
		return a
	}
	return []any{v}
}

// ecsTypeError says why s does not fit ECS data type typ ("" when it does).
func ecsTypeError(typ string, s any) string {
	switch typ {
	case "keyword", "wildcard", "match_only_text", "text", "constant_keyword", "ip":
		if _, ok := s.(string); !ok {
			return "is not a string"
		}
	case "long", "integer", "short", "byte", "unsigned_long":
		f, ok := s.(float64)
		if !ok || f != math.Trunc(f) {
			return "is not an integer"
		}
	case "float", "scaled_float", "double", "half_float":
		if _, ok := s.(float64); !ok {
			return "is not a number"
		}
	case "boolean":
		if _, ok := s.(bool); !ok {
			return "is not a boolean"
		}
	case "date":
		str, ok := s.(string)
		if !ok {
			return "is not a date string"
		}
		if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
			return "is not an RFC 3339 date"
		}
	case "object", "flattened", "nested":
		if _, ok := s.(map[string]any); !ok {
			return "is not an object"
		}
	default:
		return "has a data type the validator does not know"
	}
	return ""
}

// OCSF definitions: the dictionary, the classes and the objects, each
// with the attributes it inherits and includes.

type ocsfAttr struct {
	Type        string                     `json:"type"`
	IsArray     bool                       `json:"is_array"`
	Requirement string                     `json:"requirement"`
	Enum        map[string]json.RawMessage `json:"enum"`
	Sibling     string                     `json:"sibling"`
	Deprecated  json.RawMessage            `json:"@deprecated"`
	Profile     *string                    `json:"profile"`
	profileSet  bool                       // Profile was given (null clears a profile)
	from        string                     // the profile the attribute came with
}

type ocsfDef struct {
	Name        string                     `json:"name"`
	Extends     string                     `json:"extends"`
	UID         int                        `json:"uid"`
	Attributes  map[string]json.RawMessage `json:"attributes"`
	Constraints struct {
		AtLeastOne []string `json:"at_least_one"`
	} `json:"constraints"`
}

type ocsfType struct {
	Type  string `json:"type"`
	Regex string `json:"regex"`
}

type ocsfSchema struct {
	dict    map[string]ocsfAttr
	types   map[string]ocsfType
	objects map[string]*ocsfResolved
	classes map[int]*ocsfResolved // by class_uid
}

// ocsfResolved is a class or object with every attribute it has.
type ocsfResolved struct {
	name       string
	attrs      map[string]ocsfAttr
	atLeastOne []string
}

const ocsfDir = "testdata/ocsf-1.8.0"

func readJSON(p string, v any) error {
	b, err := fs.ReadFile(defs, path.Join(ocsfDir, p))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

var ocsfDefs = sync.OnceValues(func() (*ocsfSchema, error) {
	var dict struct {
		Attributes map[string]ocsfAttr `json:"attributes"`
		Types      struct {
			Attributes map[string]ocsfType `json:"attributes"`
		} `json:"types"`
	}
	if err := readJSON("dictionary.json", &dict); err != nil {
		return nil, err
	}
	s := &ocsfSchema{dict: dict.Attributes, types: dict.Types.Attributes, objects: map[string]*ocsfResolved{}, classes: map[int]*ocsfResolved{}}
	entries, err := fs.ReadDir(defs, path.Join(ocsfDir, "objects"))
	if err != nil {
		return nil, err
	}
	raw := map[string]ocsfDef{}
	for _, e := range entries {
		var d ocsfDef
		if err := readJSON("objects/"+e.Name(), &d); err != nil {
			return nil, err
		}
		raw[d.Name] = d
	}
	var resolve func(d ocsfDef, load func(string) (ocsfDef, error)) (*ocsfResolved, error)
	resolve = func(d ocsfDef, load func(string) (ocsfDef, error)) (*ocsfResolved, error) {
		r := &ocsfResolved{name: d.Name, attrs: map[string]ocsfAttr{}}
		if d.Extends != "" {
			parent, err := load(d.Extends)
			if err != nil {
				return nil, err
			}
			pr, err := resolve(parent, load)
			if err != nil {
				return nil, err
			}
			for k, v := range pr.attrs {
				r.attrs[k] = v
			}
			r.atLeastOne = pr.atLeastOne
		}
		if len(d.Constraints.AtLeastOne) > 0 {
			r.atLeastOne = d.Constraints.AtLeastOne
		}
		apply := func(attrs map[string]json.RawMessage, profile string) error {
			for k, v := range attrs {
				if k == "$include" {
					var inc []string
					if err := json.Unmarshal(v, &inc); err != nil {
						return err
					}
					for _, f := range inc {
						var p ocsfDef
						if err := readJSON(f, &p); err != nil {
							return err
						}
						for pk, pv := range p.Attributes {
							if err := mergeAttr(r.attrs, pk, pv, p.Name); err != nil {
								return err
							}
						}
					}
					continue
				}
				if err := mergeAttr(r.attrs, k, v, profile); err != nil {
					return err
				}
			}
			return nil
		}
		if err := apply(d.Attributes, ""); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		return r, nil
	}
	loadObject := func(name string) (ocsfDef, error) {
		d, ok := raw[name]
		if !ok {
			return d, fmt.Errorf("object %s: not in testdata", name)
		}
		return d, nil
	}
	for name, d := range raw {
		r, err := resolve(d, loadObject)
		if err != nil {
			return nil, err
		}
		s.objects[name] = r
	}
	events := map[string]string{"base_event": "events/base_event.json", "system": "events/system/system.json", "process_activity": "events/system/process_activity.json"}
	loadEvent := func(name string) (ocsfDef, error) {
		var d ocsfDef
		f, ok := events[name]
		if !ok {
			return d, fmt.Errorf("event %s: not in testdata", name)
		}
		return d, readJSON(f, &d)
	}
	for _, name := range []string{"base_event", "process_activity"} {
		d, err := loadEvent(name)
		if err != nil {
			return nil, err
		}
		r, err := resolve(d, loadEvent)
		if err != nil {
			return nil, err
		}
		uid := 0
		if name == "process_activity" {
			uid = 1000 + d.UID // category System Activity (1) × 1000 + the class's uid
		}
		s.classes[uid] = r
	}
	return s, nil
})

// mergeAttr lays an attribute's entry over what it inherited: the keys
// given replace, enums merge.
func mergeAttr(attrs map[string]ocsfAttr, k string, raw json.RawMessage, profile string) error {
	var a ocsfAttr
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(raw, &keys)
	_, a.profileSet = keys["profile"]
	old, had := attrs[k]
	if !had {
		old.from = profile
	}
	if a.Type != "" {
		old.Type = a.Type
	}
	if a.IsArray {
		old.IsArray = true
	}
	if a.Requirement != "" {
		old.Requirement = a.Requirement
	}
	if a.Deprecated != nil {
		old.Deprecated = a.Deprecated
	}
	if a.Enum != nil {
		if old.Enum == nil {
			old.Enum = map[string]json.RawMessage{}
		}
		for ek, ev := range a.Enum {
			old.Enum[ek] = ev
		}
	}
	if a.profileSet && a.Profile == nil {
		old.from = "" // "profile": null: part of the class whatever includes it
	}
	attrs[k] = old
	return nil
}

// ValidateOCSF checks an event against OCSF 1.8.0: its class, each
// attribute defined for the class or object it is in, of the type the
// dictionary gives (arrays where is_array; strings matching their type's
// regex; integer_t within 32 bits), enum values defined, captions equal
// to the enum's caption for their id, required attributes present,
// at-least-one constraints met, and the profiles whose attributes are
// used listed in metadata.profiles.
func ValidateOCSF(doc []byte) (errs []string, deprecated []string) {
	s, err := ocsfDefs()
	if err != nil {
		return []string{err.Error()}, nil
	}
	var v map[string]any
	if err := json.Unmarshal(doc, &v); err != nil {
		return []string{fmt.Sprintf("not a JSON object: %v", err)}, nil
	}
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	cu, _ := v["class_uid"].(float64)
	class, ok := s.classes[int(cu)]
	if !ok {
		return []string{fmt.Sprintf("class_uid %v: not a class the tests have", v["class_uid"])}, nil
	}
	if cu == 1007 && v["category_uid"] != 1.0 {
		bad("category_uid %v, want 1 (System Activity)", v["category_uid"])
	}
	if a, c := v["activity_id"].(float64), v["class_uid"].(float64); v["type_uid"] != c*100+a {
		bad("type_uid %v, want class_uid×100 + activity_id = %v", v["type_uid"], c*100+a)
	}
	used := map[string]bool{}
	var profiles []string // metadata.profiles: the profiles the event applies
	if md, ok := v["metadata"].(map[string]any); ok {
		for _, p := range scalars(md["profiles"]) {
			if p, ok := p.(string); ok {
				profiles = append(profiles, p)
			}
		}
	}
	var check func(path string, def *ocsfResolved, obj map[string]any)
	checkValue := func(path, name string, a ocsfAttr, val any) {
		typ := a.Type
		if typ == "" {
			typ = s.dict[name].Type
		}
		if typ == "object" { // unmapped: free form
			if _, ok := val.(map[string]any); !ok {
				bad("%s: not an object", path)
			}
			return
		}
		if od, ok := s.objects[typ]; ok {
			o, ok := val.(map[string]any)
			if !ok {
				bad("%s: not a %s object", path, typ)
				return
			}
			check(path, od, o)
			return
		}
		base, regex := typ, ""
		for range 4 {
			t, ok := s.types[base]
			if !ok {
				break
			}
			if regex == "" {
				regex = t.Regex
			}
			if t.Type == "" {
				break
			}
			base = t.Type
		}
		switch base {
		case "string_t":
			str, ok := val.(string)
			if !ok {
				bad("%s (%s): %v is not a string", path, typ, val)
			} else if regex != "" && !regexp.MustCompile(regex).MatchString(str) {
				bad("%s (%s): %q does not match %s", path, typ, str, regex)
			}
		case "integer_t", "long_t":
			f, ok := val.(float64)
			switch {
			case !ok || f != math.Trunc(f):
				bad("%s (%s): %v is not an integer", path, typ, val)
			case base == "integer_t" && (f < math.MinInt32 || f > math.MaxInt32):
				bad("%s (%s): %v does not fit 32 bits", path, typ, val)
			}
		case "float_t":
			if _, ok := val.(float64); !ok {
				bad("%s (%s): %v is not a number", path, typ, val)
			}
		case "boolean_t":
			if _, ok := val.(bool); !ok {
				bad("%s (%s): %v is not a boolean", path, typ, val)
			}
		case "json_t":
		default:
			bad("%s: type %s the validator does not know", path, typ)
		}
	}
	check = func(path string, def *ocsfResolved, obj map[string]any) {
		prefix := path
		if prefix != "" {
			prefix += "."
		}
		for k, val := range obj {
			a, ok := def.attrs[k]
			if !ok {
				bad("%s%s: not an attribute of %s", prefix, k, def.name)
				continue
			}
			d := s.dict[k]
			if a.from != "" {
				used[a.from] = true
			}
			if a.Deprecated != nil || d.Deprecated != nil {
				deprecated = append(deprecated, prefix+k)
			}
			isArray := a.IsArray || d.IsArray
			if isArray {
				arr, ok := val.([]any)
				if !ok {
					bad("%s%s: not an array", prefix, k)
					continue
				}
				for i, e := range arr {
					checkValue(fmt.Sprintf("%s%s[%d]", prefix, k, i), k, a, e)
				}
			} else {
				checkValue(prefix+k, k, a, val)
			}
			// The dictionary's values (0 Unknown, 99 Other) and the
			// class's or object's own.
			var enum map[string]json.RawMessage
			if a.Enum != nil || d.Enum != nil {
				enum = map[string]json.RawMessage{}
				for ek, ev := range d.Enum {
					enum[ek] = ev
				}
				for ek, ev := range a.Enum {
					enum[ek] = ev
				}
			}
			switch k {
			case "class_uid", "category_uid", "type_uid":
				enum = nil // computed from the class (checked above)
			}
			if enum != nil && !isArray {
				id := strconv.FormatFloat(toFloat(val), 'f', -1, 64)
				e, ok := enum[id]
				if !ok {
					bad("%s%s: %v is not in its enum", prefix, k, val)
					continue
				}
				if sib := d.Sibling; sib != "" && id != "99" {
					var cap struct {
						Caption string `json:"caption"`
					}
					_ = json.Unmarshal(e, &cap)
					if got, ok := obj[sib]; ok && got != cap.Caption {
						bad("%s%s: %q, want the caption of %s %s, %q", prefix, sib, got, k, id, cap.Caption)
					}
				}
			}
		}
		for k, a := range def.attrs {
			if a.Requirement == "required" && (a.from == "" || slices.Contains(profiles, a.from)) {
				if _, ok := obj[k]; !ok {
					bad("%s%s: required by %s", prefix, k, def.name)
				}
			}
		}
		if len(def.atLeastOne) > 0 && !slices.ContainsFunc(def.atLeastOne, func(k string) bool { _, ok := obj[k]; return ok }) {
			bad("%s: %s needs at least one of %v", path, def.name, def.atLeastOne)
		}
	}
	check("", class, v)
	for p := range used {
		if !slices.Contains(profiles, p) {
			bad("attributes of profile %s used; metadata.profiles %v does not list it", p, profiles)
		}
	}
	sort.Strings(errs)
	return errs, deprecated
}

func toFloat(v any) float64 {
	f, _ := v.(float64)
	return f
}

var semconvTypes = sync.OnceValues(func() (map[string]string, error) {
	files, err := fs.Glob(defs, "testdata/semconv-1.44.0/*.yaml")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("semantic conventions: %v", err)
	}
	types := map[string]string{}
	for _, f := range files {
		b, err := fs.ReadFile(defs, f)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Groups []struct {
				Attributes []struct {
					ID   string    `yaml:"id"`
					Type yaml.Node `yaml:"type"`
				} `yaml:"attributes"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, g := range doc.Groups {
			for _, a := range g.Attributes {
				t := a.Type.Value
				if a.Type.Kind == yaml.MappingNode {
					t = "string" // an enum's members are strings
				}
				types[a.ID] = t
			}
		}
	}
	return types, nil
})

// ValidateSemconv checks OpenTelemetry attributes (as pdata's
// Map.AsRaw gives them: string, int64, bool, float64, []any) against the
// semantic conventions' registry: each name is defined and its value of
// the registry's type.
func ValidateSemconv(attrs map[string]any) []string {
	types, err := semconvTypes()
	if err != nil {
		return []string{err.Error()}
	}
	var errs []string
	for k, v := range attrs {
		want, ok := types[k]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: not a semantic-convention attribute", k))
			continue
		}
		got := ""
		switch v := v.(type) {
		case string:
			got = "string"
		case int64:
			got = "int"
		case bool:
			got = "boolean"
		case float64:
			got = "double"
		case []any:
			got = "string[]"
			for _, e := range v {
				if _, ok := e.(string); !ok {
					got = "mixed[]"
				}
			}
		default:
			got = fmt.Sprintf("%T", v)
		}
		if got != want && !(want == "template[string]" && got == "string") {
			errs = append(errs, fmt.Sprintf("%s: %s value, the registry says %s", k, got, want))
		}
	}
	sort.Strings(errs)
	return errs
}
