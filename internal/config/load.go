package config

import (
	"encoding"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/cnbridged/cnbridged/internal/sinks"
)

// Options tells Load where to read from.
type Options struct {
	Path string   // "" means DefaultPath if it exists, else the built-in default
	Set  []string // key=value overrides, applied last
	// DefaultPath overrides DefaultPath (tests).
	DefaultPath string
	// Environ overrides os.Environ() (tests); nil reads the process's.
	Environ []string
	// Format, when set (json or text), is the format of every stdout
	// sink: the run command's --format flag.
	Format string
	// Terminal tells that stdout is a terminal: the built-in default then
	// writes text with enrichment instead of JSON lines.
	Terminal bool
}

// Output formats of stdout sinks (Options.Format).
const (
	FormatAuto = "" // the built-in default: text on a terminal, else JSON; config files: as written
	FormatJSON = sinks.FormatJSON
	FormatText = sinks.FormatText
)

const envPrefix = "CNBRIDGED_"

// envName is the environment variable that overrides key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Load reads, decodes and validates the configuration: the built-in
// defaults, then the file (or, without one, the built-in sinks and
// routes), then CNBRIDGED_* environment variables, then --set overrides.
// The error lists every problem found, each with its key, the bad value and
// where the value came from (file:line, environment variable, --set); it is
// an *Error.
func Load(o Options) (*Config, error) {
	ld := &loader{v: viper.New(), sources: map[string]string{}}
	c, err := ld.load(o)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Problem is one thing wrong with a config.
type Problem struct {
	Key    string // e.g. "sinks.out.path"; "" for the file as a whole
	Source string // "cnbridged.yaml:12", "environment CNBRIDGED_X", "--set k=v", "built-in default"
	Msg    string
}

func (p Problem) String() string {
	s := ""
	if p.Source != "" {
		s = p.Source + ": "
	}
	if p.Key != "" {
		s += p.Key + ": "
	}
	return s + p.Msg
}

// Error is every problem Load found, one per line.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

type loader struct {
	v       *viper.Viper
	path    string
	pos     map[string]int    // key → line in the file
	sources map[string]string // key → "--set k=v" or "environment CNBRIDGED_K" for overrides
	probs   []Problem
	bad     map[string]bool // keys with a decode problem
}

func (ld *loader) load(o Options) (*Config, error) {
	v := ld.v
	setDefaults(v)

	path := o.Path
	if path == "" {
		def := o.DefaultPath
		if def == "" {
			def = DefaultPath
		}
		if _, err := os.Stat(def); err == nil {
			path = def
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{[]Problem{{Source: def, Msg: err.Error()}}}
		}
	}
	ld.path = path
	switch o.Format {
	case FormatAuto, FormatJSON, FormatText:
	default:
		return nil, &Error{[]Problem{{Source: fmt.Sprintf("--format %q", o.Format), Msg: "want json or text"}}}
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &Error{[]Problem{{Source: path, Msg: errors.Unwrap(err).Error()}}}
		}
		m, err := ld.parseYAML(data)
		if err != nil {
			return nil, &Error{[]Problem{{Source: path, Msg: err.Error()}}}
		}
		if err := v.MergeConfigMap(m); err != nil {
			return nil, &Error{[]Problem{{Source: path, Msg: err.Error()}}}
		}
	} else {
		// --set and the environment merge into the built-in default.
		if err := v.MergeConfigMap(builtinMap(o.Format == FormatText || (o.Format == FormatAuto && o.Terminal))); err != nil {
			return nil, err
		}
	}
	// The environment, then --set, override the file and the defaults.
	ld.applyEnv(o.Environ)
	for _, kv := range o.Set {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			ld.probs = append(ld.probs, Problem{Source: fmt.Sprintf("--set %q", kv), Msg: "want key=value"})
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v.Set(k, val)
		ld.sources[k] = "--set " + kv
	}

	c := ld.decode()
	c.Source = path
	if o.Format != FormatAuto {
		for _, s := range c.Sinks {
			if s == nil {
				continue
			}
			if st, ok := s.Settings.(*sinks.StdoutConfig); ok {
				st.Format = o.Format
			}
		}
	}
	c.applyDefaults()
	for _, err := range flatten(c.Validate()) {
		key, msg := splitKey(err.Error())
		if ld.covered(key) {
			continue // the decode problem says it better
		}
		ld.add(key, msg)
	}
	if len(ld.probs) > 0 {
		ld.sortProblems()
		return nil, &Error{ld.probs}
	}
	return c, nil
}

// sortProblems puts the problems from the environment and --set first,
// then the file's in line order; the rest keep their order.
func (ld *loader) sortProblems() {
	line := func(p Problem) int {
		if rest, ok := strings.CutPrefix(p.Source, ld.path+":"); ok && ld.path != "" {
			n, _ := strconv.Atoi(rest)
			return n
		}
		if strings.HasPrefix(p.Source, "environment ") || strings.HasPrefix(p.Source, "--set ") {
			return -1
		}
		return 1 << 30
	}
	slices.SortStableFunc(ld.probs, func(a, b Problem) int { return line(a) - line(b) })
}

// parseYAML decodes the file into a map, recording each key's line.
func (ld *loader) parseYAML(data []byte) (map[string]any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(err)
	}
	ld.pos = map[string]int{}
	if len(doc.Content) == 0 {
		return map[string]any{}, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file must be a mapping of keys (host:, listener:, sinks:, routes:, …), not %s", root.Line, kindName(root))
	}
	index(root, "", ld.pos)
	var m map[string]any
	if err := root.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// yamlParserProblems are the libyaml parser (not scanner) errors. For
// them yaml/v3 reports the 0-based line of the construct the error is in
// (or no line for the first one), so the 1-based line is one more.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected node content",
	"found undefined tag handle",
}

// yamlError rewrites a syntax error as "line N: problem" with N counted
// from 1.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if v, err := strconv.Atoi(n); err == nil {
				line, msg = v, after
			}
		}
	}
	if slices.Contains(yamlParserProblems, msg) {
		line++
	}
	if line == 0 {
		return fmt.Errorf("YAML syntax: %s", msg)
	}
	return fmt.Errorf("line %d: YAML syntax: %s", line, msg)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "this"
}

// index records the line of every key and list element under n.
func index(n *yaml.Node, prefix string, pos map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := strings.ToLower(k.Value)
			if prefix != "" {
				key = prefix + "." + key
			}
			pos[key] = k.Line
			index(val, key, pos)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			key := fmt.Sprintf("%s[%d]", prefix, i)
			pos[key] = e.Line
			index(e, key, pos)
		}
	}
}

// applyEnv applies CNBRIDGED_<KEY> variables to the keys the defaults and
// the file have, and reports the variables that name no key: a misspelt
// variable would otherwise be ignored silently. An empty variable is a
// value: CNBRIDGED_METRICS_LISTEN= disables the endpoint as
// metrics.listen: "" does.
func (ld *loader) applyEnv(environ []string) {
	if environ == nil {
		environ = os.Environ()
	}
	keys := map[string]string{}
	for _, k := range ld.v.AllKeys() {
		keys[envName(k)] = k
	}
	var unknown []string
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) {
			continue
		}
		key, ok := keys[name]
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		ld.v.Set(key, val)
		ld.sources[key] = "environment " + name
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		ld.probs = append(ld.probs, Problem{Source: "environment " + name,
			Msg: "no such key; variables are CNBRIDGED_<SECTION>_<KEY> for a key section.key, e.g. CNBRIDGED_METRICS_LISTEN"})
	}
}

// source says where key's value came from.
func (ld *loader) source(key string) string {
	for k := key; ; {
		if s, ok := ld.sources[k]; ok {
			return s
		}
		if line, ok := ld.pos[k]; ok {
			return fmt.Sprintf("%s:%d", ld.path, line)
		}
		// Walk up: sinks.out.path → sinks.out; routes[0].sinks[1] → routes[0].sinks.
		i := max(strings.LastIndexByte(k, '.'), strings.LastIndexByte(k, '['))
		if i <= 0 {
			break
		}
		k = k[:i]
	}
	if ld.path == "" {
		return "built-in default"
	}
	return ld.path
}

func (ld *loader) add(key, msg string) {
	ld.probs = append(ld.probs, Problem{Key: key, Source: ld.source(key), Msg: msg})
}

// covered reports whether key, or a key above it, had a decode problem.
func (ld *loader) covered(key string) bool {
	for k := range ld.bad {
		if key == k || strings.HasPrefix(key, k+".") || strings.HasPrefix(key, k+"[") {
			return true
		}
	}
	return false
}

// splitKey splits "key: message".
func splitKey(s string) (key, msg string) {
	k, m, ok := strings.Cut(s, ": ")
	if !ok || strings.ContainsAny(k, " \"") {
		return "", s
	}
	return k, m
}

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
func keysOf(v any) []string {
	t := reflect.TypeOf(v).Elem()
	var keys []string
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		if tag != "" && tag != "-" {
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
