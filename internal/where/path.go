package where

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/cnbridged/cnbridged/internal/fields"
)

// Path reads one member of a record by its dotted name (process.exe),
// as a string: the key of a rate limit. Only members that are strings,
// numbers or booleans can be read (not lists or objects).
type Path struct {
	Name  string
	steps []*member // from the record down
}

// Path parses a member path.
func (e *Env) Path(name string) (Path, error) {
	o := e.m.root
	var steps []*member
	parts := strings.Split(name, ".")
	for i, part := range parts {
		if o == nil {
			return Path{}, fmt.Errorf("%q: %s has no members", name, strings.Join(parts[:i], "."))
		}
		mem := o.byName[part]
		if mem == nil {
			return Path{}, fmt.Errorf("%q: no member %q in %s", name, part, o.name)
		}
		steps = append(steps, mem)
		o = nil
		if mem.kind == kObject {
			o = mem.obj
		}
	}
	switch last := steps[len(steps)-1]; last.kind {
	case kString, kInt, kBool:
	default:
		return Path{}, fmt.Errorf("%q is a %s: want a string, int or bool member", name, last.typ)
	}
	return Path{Name: name, steps: steps}, nil
}

// Value returns the member as a string (numbers in decimal), and whether
// the record carries it.
func (p Path) Value(r *fields.Record) (string, bool) {
	var cur any = r
	var f reflect.Value
	for i, mem := range p.steps {
		v, ok := mem.field(cur)
		if !ok {
			return "", false
		}
		if i < len(p.steps)-1 {
			cur = v.Addr().Interface()
			continue
		}
		f = v
	}
	switch p.steps[len(p.steps)-1].kind {
	case kString:
		return f.String(), true
	case kInt:
		return strconv.FormatInt(f.Int(), 10), true
	case kBool:
		return strconv.FormatBool(f.Bool()), true
	}
	return "", false
}
