package where

import (
	"fmt"
	"reflect"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/cnbridged/cnbridged/internal/fields"
)

// TypePrefix names the model's object types in expressions and errors:
// cnbridged.Process, cnbridged.Proc, …
const TypePrefix = "cnbridged."

// kind is how a member's Go value becomes a CEL value.
type kind uint8

const (
	kString kind = iota
	kInt
	kBool
	kStrings    // []string
	kObject     // a struct of the model
	kObjects    // a list of structs
	kStringMap  // map[string]string
	kStringsAny // []string inside an Opt
)

// member is one member of an object: the JSON line's name, where the Go
// value is, and its CEL type.
type member struct {
	name  string
	pos   int  // index in its object's members
	index int  // Go field index in the struct
	opt   bool // a fields.Opt: present when Set
	kind  kind
	typ   *types.Type
	obj   *object // kObject, kObjects: the element's description
}

// object describes one struct of the model as a CEL object type.
type object struct {
	name    string // cnbridged.Process
	goType  reflect.Type
	typ     *types.Type
	members []*member // in the struct's order
	byName  map[string]*member
	fields  map[string]*types.FieldType
	zero    any // pointer to a zero value: what an absent top-level object reads as
}

// model is every object type reachable from fields.Record.
type model struct {
	root    *object
	objects map[string]*object // by CEL name
	byGo    map[reflect.Type]*object
}

// isOpt tells a fields.Opt.
func isOpt(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && strings.HasPrefix(t.Name(), "Opt[") && t.PkgPath() == reflect.TypeFor[fields.Record]().PkgPath()
}

// newModel reads the model's types from fields.Record by reflection.
func newModel() (*model, error) {
	m := &model{objects: map[string]*object{}, byGo: map[reflect.Type]*object{}}
	root, err := m.object(reflect.TypeFor[fields.Record]())
	if err != nil {
		return nil, err
	}
	m.root = root
	return m, nil
}

func (m *model) object(t reflect.Type) (*object, error) {
	if o := m.byGo[t]; o != nil {
		return o, nil
	}
	o := &object{name: TypePrefix + t.Name(), goType: t, byName: map[string]*member{}, fields: map[string]*types.FieldType{}}
	o.typ = types.NewObjectType(o.name)
	o.zero = reflect.New(t).Interface()
	m.byGo[t] = o
	m.objects[o.name] = o
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		mem := &member{name: name, index: i, pos: len(o.members)}
		ft := f.Type
		if isOpt(ft) {
			mem.opt = true
			ft = ft.Field(0).Type
		}
		if err := m.typeOf(mem, ft); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", o.name, name, err)
		}
		o.members = append(o.members, mem)
		o.byName[name] = mem
		o.fields[name] = &types.FieldType{
			Type:    mem.typ,
			IsSet:   mem.isSet,
			GetFrom: mem.getFrom,
		}
	}
	return o, nil
}

func (m *model) typeOf(mem *member, t reflect.Type) error {
	switch {
	case t.Kind() == reflect.String:
		mem.kind, mem.typ = kString, types.StringType
	case t.Kind() == reflect.Int64:
		mem.kind, mem.typ = kInt, types.IntType
	case t.Kind() == reflect.Bool:
		mem.kind, mem.typ = kBool, types.BoolType
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		mem.kind, mem.typ = kStrings, types.NewListType(types.StringType)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		mem.kind, mem.typ = kStringMap, types.NewMapType(types.StringType, types.StringType)
	case t.Kind() == reflect.Struct:
		o, err := m.object(t)
		if err != nil {
			return err
		}
		mem.kind, mem.typ, mem.obj = kObject, o.typ, o
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		o, err := m.object(t.Elem())
		if err != nil {
			return err
		}
		mem.kind, mem.typ, mem.obj = kObjects, types.NewListType(o.typ), o
	default:
		return fmt.Errorf("no CEL type for Go type %s", t)
	}
	return nil
}

// field returns the Go value of the member in the struct p points to,
// and whether the record carries it. A list that is not an Opt is carried
// when it is not empty (the line leaves out an empty one).
func (mem *member) field(p any) (reflect.Value, bool) {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return reflect.Value{}, false
	}
	f := v.Elem().Field(mem.index)
	if mem.opt {
		return f.Field(0), f.Field(1).Bool()
	}
	if f.Kind() == reflect.Slice || f.Kind() == reflect.Map {
		return f, f.Len() > 0
	}
	return f, true
}

func (mem *member) isSet(p any) bool {
	_, ok := mem.field(p)
	return ok
}

// getFrom reads a present member, and is an error for an absent one; a
// list that is not an Opt reads as empty.
func (mem *member) getFrom(p any) (any, error) {
	f, ok := mem.field(p)
	if !ok && (mem.opt || (mem.kind != kObjects && mem.kind != kStrings && mem.kind != kStringMap)) {
		return nil, fmt.Errorf("no such key: %s", mem.name)
	}
	return mem.value(f), nil
}

// value converts a member's Go value to its CEL value.
func (mem *member) value(f reflect.Value) ref.Val {
	switch mem.kind {
	case kString:
		return types.String(f.String())
	case kInt:
		return types.Int(f.Int())
	case kBool:
		return types.Bool(f.Bool())
	case kStrings:
		return types.NewStringList(types.DefaultTypeAdapter, f.Interface().([]string))
	case kStringMap:
		return types.NewStringStringMap(types.DefaultTypeAdapter, f.Interface().(map[string]string))
	case kObject:
		return &value{o: mem.obj, p: f.Addr().Interface()}
	case kObjects:
		return &list{o: mem.obj, v: f}
	}
	return types.NewErr("no CEL value for member %s", mem.name)
}

// value is an object of the model in an expression: a pointer to one of
// fields' structs.
type value struct {
	o *object
	p any
}

var (
	_ traits.Indexer     = (*value)(nil)
	_ traits.FieldTester = (*value)(nil)
)

func (v *value) ConvertToNative(t reflect.Type) (any, error) {
	switch {
	case t == reflect.TypeOf(v.p):
		return v.p, nil
	case t == v.o.goType:
		return reflect.ValueOf(v.p).Elem().Interface(), nil
	}
	return nil, fmt.Errorf("type conversion error from %s to %s", v.o.name, t)
}

func (v *value) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.TypeType:
		return v.o.typ
	case v.o.typ:
		return v
	}
	return types.NewErr("type conversion error from %s to %s", v.o.name, t)
}

func (v *value) Equal(other ref.Val) ref.Val {
	w, ok := other.(*value)
	if !ok || w.o != v.o {
		return types.False
	}
	return types.Bool(reflect.DeepEqual(v.p, w.p))
}

func (v *value) Type() ref.Type { return v.o.typ }
func (v *value) Value() any     { return v.p }

func (v *value) member(field ref.Val) (*member, ref.Val) {
	s, ok := field.(types.String)
	if !ok {
		return nil, types.NewErr("no such overload: %s has members named by strings, not %s", v.o.name, field.Type())
	}
	mem := v.o.byName[string(s)]
	if mem == nil {
		return nil, types.NewErr("no such key: %s", s)
	}
	return mem, nil
}

// Get reads a member (dynamic access: the checker did not know the type).
func (v *value) Get(field ref.Val) ref.Val {
	mem, err := v.member(field)
	if err != nil {
		return err
	}
	out, e := mem.getFrom(v.p)
	if e != nil {
		return types.NewErrFromString(e.Error())
	}
	return out.(ref.Val)
}

// IsSet is has() on a member.
func (v *value) IsSet(field ref.Val) ref.Val {
	mem, err := v.member(field)
	if err != nil {
		return err
	}
	return types.Bool(mem.isSet(v.p))
}

// list is a list of objects (ancestors): elements are made as they are
// read.
type list struct {
	o *object
	v reflect.Value // a slice of o.goType
}

var _ traits.Lister = (*list)(nil)

func (l *list) ConvertToNative(t reflect.Type) (any, error) {
	if t == l.v.Type() {
		return l.v.Interface(), nil
	}
	return nil, fmt.Errorf("type conversion error from list(%s) to %s", l.o.name, t)
}

func (l *list) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.TypeType:
		return types.ListType
	case types.ListType:
		return l
	}
	return types.NewErr("type conversion error from list to %s", t)
}

func (l *list) Equal(other ref.Val) ref.Val {
	o, ok := other.(traits.Lister)
	if !ok {
		return types.False
	}
	n := l.Size()
	if o.Size() != n {
		return types.False
	}
	for i := range int(n.(types.Int)) {
		if eq := l.Get(types.Int(i)).Equal(o.Get(types.Int(i))); eq != types.True {
			return eq
		}
	}
	return types.True
}

func (l *list) Type() ref.Type { return types.ListType }
func (l *list) Value() any     { return l.v.Interface() }
func (l *list) Size() ref.Val  { return types.Int(l.v.Len()) }

func (l *list) Get(index ref.Val) ref.Val {
	i, ok := index.(types.Int)
	if !ok {
		return types.NewErr("no such overload: list index %s", index.Type())
	}
	if i < 0 || int(i) >= l.v.Len() {
		return types.NewErr("index out of range: %d", i)
	}
	return &value{o: l.o, p: l.v.Index(int(i)).Addr().Interface()}
}

func (l *list) Contains(elem ref.Val) ref.Val {
	for i := range l.v.Len() {
		if l.Get(types.Int(i)).Equal(elem) == types.True {
			return types.True
		}
	}
	return types.False
}

func (l *list) Iterator() traits.Iterator { return &listIter{l: l} }

func (l *list) Add(other ref.Val) ref.Val {
	o, ok := other.(traits.Lister)
	if !ok {
		return types.NewErr("no such overload: list + %s", other.Type())
	}
	elems := make([]ref.Val, 0, l.v.Len())
	for i := range l.v.Len() {
		elems = append(elems, l.Get(types.Int(i)))
	}
	return types.NewRefValList(types.DefaultTypeAdapter, elems).Add(o)
}

type listIter struct {
	l *list
	i int
}

func (it *listIter) ConvertToNative(reflect.Type) (any, error) {
	return nil, fmt.Errorf("an iterator has no native type")
}
func (it *listIter) ConvertToType(ref.Type) ref.Val { return types.NewErr("an iterator has no type") }
func (it *listIter) Equal(ref.Val) ref.Val          { return types.False }
func (it *listIter) Type() ref.Type                 { return types.IteratorType }
func (it *listIter) Value() any                     { return nil }
func (it *listIter) HasNext() ref.Val               { return types.Bool(it.i < it.l.v.Len()) }
func (it *listIter) Next() ref.Val {
	if it.i >= it.l.v.Len() {
		return nil
	}
	it.i++
	return it.l.Get(types.Int(it.i - 1))
}

// provider answers the checker's and the interpreter's questions about
// the model's types, and hands every other question to the environment's
// registry (which other options, optional types, register types in).
type provider struct {
	*types.Registry
	m *model
}

func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if o := p.m.objects[name]; o != nil {
		return types.NewTypeTypeWithParam(o.typ), true
	}
	return p.Registry.FindStructType(name)
}

func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if o := p.m.objects[name]; o != nil {
		names := make([]string, len(o.members))
		for i, mem := range o.members {
			names[i] = mem.name
		}
		return names, true
	}
	return p.Registry.FindStructFieldNames(name)
}

func (p *provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if o := p.m.objects[name]; o != nil {
		ft, ok := o.fields[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

// NewValue refuses to build the model's objects: an expression reads a
// record, it does not make one.
func (p *provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := p.m.objects[name]; ok {
		return types.NewErr("%s values cannot be built in an expression", name)
	}
	return p.Registry.NewValue(name, fields)
}

// NativeToValue wraps the model's structs; everything else is the base
// adapter's.
func (p *provider) NativeToValue(v any) ref.Val {
	t := reflect.TypeOf(v)
	if t == nil {
		return p.Registry.NativeToValue(v)
	}
	if t.Kind() == reflect.Pointer {
		if o := p.m.byGo[t.Elem()]; o != nil {
			return &value{o: o, p: v}
		}
	} else if o := p.m.byGo[t]; o != nil {
		ptr := reflect.New(t)
		ptr.Elem().Set(reflect.ValueOf(v))
		return &value{o: o, p: ptr.Interface()}
	}
	return p.Registry.NativeToValue(v)
}

// modelTypes installs the model's types in an environment.
func modelTypes(m *model) cel.EnvOption {
	return func(env *cel.Env) (*cel.Env, error) {
		reg, ok := env.CELTypeProvider().(*types.Registry)
		if !ok {
			return nil, fmt.Errorf("the environment's type provider is a %T, not a registry", env.CELTypeProvider())
		}
		p := &provider{Registry: reg, m: m}
		env, err := cel.CustomTypeAdapter(p)(env)
		if err != nil {
			return nil, err
		}
		return cel.CustomTypeProvider(p)(env)
	}
}
