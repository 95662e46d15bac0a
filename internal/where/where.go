// Package where is the record filter of routes (where:), of cnbridged tap
// --where and of fleet queries: a CEL expression (cel.dev/cel-go, the
// language Kubernetes uses for the same job) over a record of the field
// model (internal/fields), with the JSON line's names.
//
// # Names and types
//
// The line's top-level members are variables: idx, val, host, type,
// proc, process, parent, ancestors, …, and record is the whole line.
// Their types are the model's: numbers are CEL int, lists are lists, and
// nested members are objects of the types cnbridged.Proc,
// cnbridged.Process, cnbridged.Parent and cnbridged.Ancestor (Fields
// lists every name). A misspelt name fails at compile, with its column.
//
// # Presence
//
// A member the record does not carry is absent, as on the line: has()
// is false for it and reading it is an evaluation error (the record is
// then not selected). A member that is carried with a zero value (uid 0,
// exit_status 0) is present. Optional types are on:
// process.?container_id.orValue("") reads an absent member as "".
// ancestors reads as an empty list when the record has none, and an
// object the record does not carry (process on a record of a route
// without enrich: true) reads as an object with no members, so that
// has(process.container_id) is false there too. A top-level member other
// than an object or a list that the record does not carry is an
// evaluation error where it is read; has(record.type) tests it.
//
// # Bounds
//
// Every expression is bounded by CEL's cost model: Compile refuses an
// expression whose estimated worst case, over records within the sizes
// of the estimator (strings of MaxString bytes, MaxArgs arguments,
// MaxAncestors ancestors), exceeds CostLimit, and evaluation stops at
// CostLimit whatever the record. The language has no I/O.
package where

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/cnbridged/cnbridged/internal/fields"
)

// Bounds of an expression's cost (CEL cost units: about one per
// operation, and one per ten bytes a string function reads).
const (
	// CostLimit bounds both the estimated worst case of an expression and
	// the cost of any one evaluation.
	CostLimit = 1_000_000
	// MaxString is the longest string the estimate assumes (PATH_MAX).
	MaxString = 4096
	// MaxArgs is the most arguments (cmdline elements) it assumes.
	MaxArgs = 1024
	// MaxAncestors is the most ancestors a route carries (config's
	// bound).
	MaxAncestors = 64
	// maxList bounds the other lists (missing, a suppression key).
	maxList = 32
)

// RecordVar is the variable that holds the whole record.
const RecordVar = "record"

// Env compiles expressions. It is safe for concurrent use.
type Env struct {
	env *cel.Env
	m   *model
}

// NewEnv builds the environment: the model's types and variables, the
// standard functions, the strings extension and optional types.
func NewEnv() (*Env, error) {
	m, err := newModel()
	if err != nil {
		return nil, err
	}
	opts := []cel.EnvOption{
		modelTypes(m),
		cel.OptionalTypes(),
		ext.Strings(),
		cel.Variable(RecordVar, m.root.typ),
	}
	for _, mem := range m.root.members {
		opts = append(opts, cel.Variable(mem.name, mem.typ))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("where: %w", err)
	}
	return &Env{env: env, m: m}, nil
}

// Compile builds an expression in a new environment (NewEnv then
// Compile): for one-off use, such as a command line flag.
func Compile(src string) (*Expr, error) {
	env, err := NewEnv()
	if err != nil {
		return nil, err
	}
	return env.Compile(src)
}

// Expr is a compiled expression. It is safe for concurrent use.
type Expr struct {
	Source string
	// Paths are the members the expression reads, by their dotted names
	// (process.exe, ancestors.exe, proc.event), sorted. A list's
	// elements are named by the list's name.
	Paths []string
	// Cost is the estimated worst case.
	Cost uint64

	prg  cel.Program
	root *object
	acts *sync.Pool // of *activation
}

// Error is a compile problem, at a position in the expression.
type Error struct {
	Line, Column int // from 1; 0 when the problem is the whole expression
	Msg          string
}

func (e *Error) Error() string {
	switch {
	case e.Column == 0:
		return e.Msg
	case e.Line > 1:
		return fmt.Sprintf("line %d column %d: %s", e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("column %d: %s", e.Column, e.Msg)
}

// Compile parses and type-checks src, estimates its cost and plans its
// evaluation. The error lists every problem, each an *Error.
func (e *Env) Compile(src string) (*Expr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Msg: "empty expression"}
	}
	a, iss := e.env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, issues(iss.Errors())
	}
	if t := a.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, &Error{Line: 1, Column: 1, Msg: fmt.Sprintf("the expression's type is %s, want bool (true selects the record)", t)}
	}
	est, err := e.env.EstimateCost(a, estimator{})
	if err != nil {
		return nil, &Error{Msg: fmt.Sprintf("cost: %v", err)}
	}
	if est.Max > CostLimit {
		return nil, &Error{Msg: fmt.Sprintf("its worst case costs %d, over the limit %d (a comprehension over a list, or a string function over a long string, in another comprehension?)", est.Max, CostLimit)}
	}
	prg, err := e.env.Program(a, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	w := &walker{vars: e.m.root.byName, paths: map[string]bool{}}
	w.walk(a.NativeRep().Expr())
	var paths []string
	for p := range w.paths {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return &Expr{Source: src, Paths: paths, Cost: est.Max, prg: prg, root: e.m.root, acts: &sync.Pool{}}, nil
}

func issues(errs []*common.Error) error {
	var out []error
	for _, e := range errs {
		msg := strings.TrimSuffix(e.Message, " (in container '')")
		line, col := e.Location.Line(), e.Location.Column()+1
		if line < 1 {
			line, col = 1, 0
		}
		out = append(out, &Error{Line: line, Column: col, Msg: msg})
	}
	if len(out) == 1 {
		return out[0]
	}
	return errors.Join(out...)
}

// Eval reports whether the expression selects r. An evaluation error (a
// member that r does not carry, an index out of range, the cost limit)
// selects nothing.
func (x *Expr) Eval(r *fields.Record) (bool, error) {
	a, _ := x.acts.Get().(*activation)
	if a == nil {
		a = &activation{root: x.root, objs: make([]value, len(x.root.members)+1)}
	}
	a.r = r
	out, _, err := x.prg.Eval(a)
	a.r = nil
	clear(a.objs) // no pointer into r stays in the pool
	x.acts.Put(a)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("the expression gave a %s, want a bool", out.Type())
	}
	return bool(b), nil
}

// Reads reports whether the expression reads the member path or one
// under it ("process" is read by process.exe).
func (x *Expr) Reads(path string) bool {
	for _, p := range x.Paths {
		if p == path || strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// activation resolves the variables to the record's members. Its object
// values live in objs (one slot per member of the record, and the record
// last), so that reading an object allocates nothing; an activation is
// reused (pooled) once an evaluation is over.
type activation struct {
	r    *fields.Record
	root *object
	objs []value
}

func (a *activation) ResolveName(name string) (any, bool) {
	if name == RecordVar {
		v := &a.objs[len(a.objs)-1]
		*v = value{o: a.root, p: a.r}
		return v, true
	}
	mem := a.root.byName[name]
	if mem == nil {
		return nil, false
	}
	f, ok := mem.field(a.r)
	switch {
	case ok && mem.kind == kObject:
		v := &a.objs[mem.pos]
		*v = value{o: mem.obj, p: f.Addr().Interface()}
		return v, true
	case ok, mem.kind == kObjects || mem.kind == kStrings && !mem.opt:
		return mem.value(f), true
	case mem.kind == kObject:
		v := &a.objs[mem.pos]
		*v = value{o: mem.obj, p: mem.obj.zero}
		return v, true
	}
	// Found, as an error: not found would let the interpreter read the
	// name as a type's (type is also CEL's type of types).
	return types.NewErr("no such attribute: %s", name), true
}

func (a *activation) Parent() interpreter.Activation { return nil }

// estimator gives the sizes of the record's strings and lists.
type estimator struct{}

// EstimateCallCost sizes what an optional holds (orValue, value), which
// CEL's own estimate leaves unknown.
func (e estimator) EstimateCallCost(fn, _ string, target *cost.AstNode, _ []cost.AstNode) *cost.CallEstimate {
	if (fn != "orValue" && fn != "value") || target == nil {
		return nil
	}
	t := (*target).Type()
	if t.Kind() != types.OpaqueKind || len(t.Parameters()) != 1 {
		return nil
	}
	size := e.sizeOf(t.Parameters()[0], "")
	if size == nil {
		return nil
	}
	return cost.NewCallEstimate(cost.FixedCostEstimate(1), size)
}

func (e estimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	path := n.Path()
	last := ""
	if len(path) > 0 {
		last = path[len(path)-1]
	}
	return e.sizeOf(n.Type(), last)
}

// sizeOf bounds a value of type t, the member last when it is known.
func (estimator) sizeOf(t *types.Type, last string) *cost.SizeEstimate {
	switch {
	case t.IsExactType(types.StringType):
		return &cost.SizeEstimate{Min: 0, Max: MaxString}
	case t.Kind() == types.ListKind:
		switch last {
		case "ancestors":
			return &cost.SizeEstimate{Min: 0, Max: MaxAncestors}
		case "missing", "execs":
			return &cost.SizeEstimate{Min: 0, Max: maxList}
		}
		// cmdline, and lists the estimate cannot name (an optional's
		// value): the longest.
		return &cost.SizeEstimate{Min: 0, Max: MaxArgs}
	case t.Kind() == types.MapKind:
		return &cost.SizeEstimate{Min: 0, Max: maxList}
	}
	return nil
}

// walker collects the member paths an expression reads.
type walker struct {
	vars   map[string]*member
	scopes []map[string]string // comprehension variables → the path of their range ("" none)
	paths  map[string]bool
}

func (w *walker) walk(e ast.Expr) {
	if p, rest, ok := w.path(e); ok {
		if p != "" {
			w.paths[p] = true
		}
		for _, r := range rest {
			w.walk(r)
		}
		return
	}
	switch e.Kind() {
	case ast.SelectKind:
		w.walk(e.AsSelect().Operand())
	case ast.CallKind:
		c := e.AsCall()
		if c.IsMemberFunction() {
			w.walk(c.Target())
		}
		for _, a := range c.Args() {
			w.walk(a)
		}
	case ast.ListKind:
		for _, x := range e.AsList().Elements() {
			w.walk(x)
		}
	case ast.MapKind:
		for _, x := range e.AsMap().Entries() {
			w.walk(x.AsMapEntry().Key())
			w.walk(x.AsMapEntry().Value())
		}
	case ast.StructKind:
		for _, x := range e.AsStruct().Fields() {
			w.walk(x.AsStructField().Value())
		}
	case ast.ComprehensionKind:
		c := e.AsComprehension()
		w.walk(c.IterRange())
		rp, _, _ := w.path(c.IterRange())
		scope := map[string]string{c.AccuVar(): ""}
		if c.HasIterVar2() {
			scope[c.IterVar()], scope[c.IterVar2()] = "", rp
		} else {
			scope[c.IterVar()] = rp
		}
		w.scopes = append(w.scopes, scope)
		w.walk(c.AccuInit())
		w.walk(c.LoopCondition())
		w.walk(c.LoopStep())
		w.walk(c.Result())
		w.scopes = w.scopes[:len(w.scopes)-1]
	}
}

// path returns the member path e reads when e is a variable, a member
// selection or an index of one, with the sub-expressions it holds that
// are not part of the path (an index).
func (w *walker) path(e ast.Expr) (string, []ast.Expr, bool) {
	switch e.Kind() {
	case ast.IdentKind:
		name := e.AsIdent()
		for i := len(w.scopes) - 1; i >= 0; i-- {
			if p, ok := w.scopes[i][name]; ok {
				return p, nil, p != ""
			}
		}
		if name == RecordVar {
			return "", nil, true
		}
		if w.vars[name] != nil {
			return name, nil, true
		}
	case ast.SelectKind:
		s := e.AsSelect()
		if p, rest, ok := w.path(s.Operand()); ok {
			return join(p, s.FieldName()), rest, true
		}
	case ast.CallKind:
		c := e.AsCall()
		args := c.Args()
		if len(args) != 2 {
			break
		}
		switch c.FunctionName() {
		case "_?._":
			if p, rest, ok := w.path(args[0]); ok && args[1].Kind() == ast.LiteralKind {
				if f, isStr := args[1].AsLiteral().(types.String); isStr {
					return join(p, string(f)), rest, true
				}
			}
		case "_[_]", "_[?_]":
			if p, rest, ok := w.path(args[0]); ok {
				if args[1].Kind() == ast.LiteralKind {
					if f, isStr := args[1].AsLiteral().(types.String); isStr {
						return join(p, string(f)), rest, true
					}
				}
				return p, append(rest, args[1]), true
			}
		}
	}
	return "", nil, false
}

func join(p, f string) string {
	if p == "" {
		return f
	}
	return p + "." + f
}

// Field is one name an expression can read.
type Field struct {
	Path string // process.exe; a list's elements are named by the list: ancestors.exe
	Type string // CEL type: string, int, bool, list(string), cnbridged.Process
}

// Fields lists every name, in the model's order, depth first.
func (e *Env) Fields() []Field {
	var out []Field
	var visit func(o *object, prefix string, seen map[*object]bool)
	visit = func(o *object, prefix string, seen map[*object]bool) {
		for _, mem := range o.members {
			p := join(prefix, mem.name)
			out = append(out, Field{Path: p, Type: mem.typ.String()})
			if mem.obj != nil && !seen[mem.obj] {
				seen[mem.obj] = true
				visit(mem.obj, p, seen)
				delete(seen, mem.obj)
			}
		}
	}
	visit(e.m.root, "", map[*object]bool{})
	return out
}
