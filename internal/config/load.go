package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/viper"

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
		if hasIndex(k) {
			if err := ld.setIndexed(k, val); err != nil {
				ld.probs = append(ld.probs, Problem{Source: "--set " + kv, Msg: err.Error()})
				continue
			}
		} else {
			if list := listAbove(v.AllSettings(), k); list != "" {
				ld.probs = append(ld.probs, Problem{Source: "--set " + kv, Msg: fmt.Sprintf("%s is a list: address its items as %s[0], %s[1], …", list, list, list)})
				continue
			}
			v.Set(k, val)
		}
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

// setIndexed applies --set to a key with list indexes (routes[0].enrich,
// listener.groups[1]): the whole value of its top-level key, as the
// defaults, the file and the environment have made it so far, is copied
// with the one value changed and set again. An index equal to the list's
// length adds an element.
func (ld *loader) setIndexed(key, val string) error {
	steps, err := parsePath(key)
	if err != nil {
		return err
	}
	top := steps[0].name
	cur, _ := lookup(ld.v.AllSettings(), steps[:1])
	v, err := setPath(cur, steps[1:], val, top)
	if err != nil {
		return err
	}
	ld.v.Set(top, v)
	return nil
}

// listAbove returns the key of a list that a dotted key (no indexes)
// goes through, such as routes in routes.0.enrich, or "".
func listAbove(settings map[string]any, key string) string {
	var steps []step
	parts := strings.Split(key, ".")
	for i, p := range parts[:len(parts)-1] {
		steps = append(steps, step{name: p, index: -1})
		v, ok := lookup(settings, steps)
		if !ok {
			return ""
		}
		if k := reflect.ValueOf(v).Kind(); k == reflect.Slice || k == reflect.Array {
			return strings.Join(parts[:i+1], ".")
		}
	}
	return ""
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
