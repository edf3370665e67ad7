package odata

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// MaxCost bounds the CEL cost of evaluating a filter on one row. A filter
// has no loops, so its cost grows only with its size (bounded by MaxNodes)
// and with the lengths of the strings that contains, startswith and
// endswith scan; the bound stops a row with enormous strings from stalling
// a listing. Exceeding it makes Match return an error.
const MaxCost = 100_000_000

// Filter is a compiled $filter. It is safe for concurrent use.
//
// The CEL program reads these variables, for each property p the filter
// uses and each literal:
//
//	v_p     the row's value of p, converted to the property's kind
//	        (string, double, bool, timestamp; a GUID is a lower-case string)
//	ok_p    whether the row has a value of the right type for p
//	null_p  whether p is missing or null in the row
//	litN    the N-th literal of the filter, in source order
//
// Literals are never part of the CEL source, so no literal can change what
// the program does.
type Filter struct {
	src    string
	celSrc string
	prg    cel.Program
	props  []propRef
	lits   []ref.Val
	vars   map[string]varRef
	pool   sync.Pool // of *rowActivation
}

// varKind is the role of a CEL variable of a filter.
type varKind uint8

const (
	vLit  varKind = iota // a literal
	vVal                 // a property's value
	vOK                  // whether the property has a value of its kind
	vNull                // whether the property is null or missing
)

// varRef identifies a CEL variable: its role and the index of its literal
// or property.
type varRef struct {
	kind varKind
	idx  int
}

var (
	baseEnvOnce sync.Once
	baseEnvVal  *cel.Env
	baseEnvErr  error
)

// baseEnv is the CEL environment every filter's environment extends: the
// standard library without macros, so no filter can contain a loop.
func baseEnv() (*cel.Env, error) {
	baseEnvOnce.Do(func() {
		baseEnvVal, baseEnvErr = cel.NewEnv(cel.ClearMacros())
	})
	return baseEnvVal, baseEnvErr
}

// celType is the CEL type of a property's value variable.
func celType(k Kind) *cel.Type {
	switch k {
	case Number:
		return cel.DoubleType
	case Bool:
		return cel.BoolType
	case DateTime:
		return cel.TimestampType
	}
	return cel.StringType
}

// Values bound to v_p when the row has no value of p's kind; they are
// never compared, because ok_p guards every use of v_p.
var (
	zeroString    ref.Val = types.String("")
	zeroNumber    ref.Val = types.Double(0)
	zeroTimestamp ref.Val = types.Timestamp{Time: time.Unix(0, 0).UTC()}
)

// zeroVal is the placeholder value of a property of kind k.
func zeroVal(k Kind) ref.Val {
	switch k {
	case Number:
		return zeroNumber
	case Bool:
		return types.False
	case DateTime:
		return zeroTimestamp
	}
	return zeroString
}

// litVal converts a type-checked literal to its CEL value and type.
func litVal(t token) (ref.Val, *cel.Type) {
	switch t.kind {
	case tNumber:
		return types.Double(t.num), cel.DoubleType
	case tBool:
		return types.Bool(t.b), cel.BoolType
	case tDateTime:
		return types.Timestamp{Time: t.tm}, cel.TimestampType
	}
	return types.String(t.text), cel.StringType // tString, tGUID
}

// compile turns a checked syntax tree into a Filter.
func compile(src string, root *node, props []propRef, lits []token) (*Filter, error) {
	f := &Filter{
		src:   src,
		props: props,
		lits:  make([]ref.Val, len(lits)),
		vars:  make(map[string]varRef, 3*len(props)+len(lits)),
	}
	decls := make([]cel.EnvOption, 0, 3*len(props)+len(lits))
	for i, pr := range props {
		decls = append(decls,
			cel.Variable("v_"+pr.name, celType(pr.kind)),
			cel.Variable("ok_"+pr.name, cel.BoolType),
			cel.Variable("null_"+pr.name, cel.BoolType))
		f.vars["v_"+pr.name] = varRef{vVal, i}
		f.vars["ok_"+pr.name] = varRef{vOK, i}
		f.vars["null_"+pr.name] = varRef{vNull, i}
	}
	for i, t := range lits {
		v, typ := litVal(t)
		name := fmt.Sprintf("lit%d", i)
		f.lits[i] = v
		decls = append(decls, cel.Variable(name, typ))
		f.vars[name] = varRef{vLit, i}
	}
	var b strings.Builder
	f.emit(&b, root, true)
	f.celSrc = b.String()

	base, err := baseEnv()
	if err != nil {
		return nil, fmt.Errorf("odata: CEL environment: %w", err)
	}
	env, err := base.Extend(decls...)
	if err != nil {
		return nil, fmt.Errorf("odata: CEL environment: %w", err)
	}
	ast, iss := env.Compile(f.celSrc)
	if iss.Err() != nil {
		return nil, fmt.Errorf("odata: compiling %q: %w", f.celSrc, iss.Err())
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("odata: compiled %q has type %s, not bool", f.celSrc, ast.OutputType())
	}
	if f.prg, err = env.Program(ast, cel.CostLimit(MaxCost)); err != nil {
		return nil, fmt.Errorf("odata: compiling %q: %w", f.celSrc, err)
	}
	f.pool.New = func() any {
		return &rowActivation{
			f:     f,
			state: make([]uint8, len(f.props)),
			vals:  make([]ref.Val, len(f.props)),
		}
	}
	return f, nil
}

// emit writes n's CEL source to b. A node that is not top is written so
// that it can be an operand of && or ||.
func (f *Filter) emit(b *strings.Builder, n *node, top bool) {
	open := func() {
		if !top {
			b.WriteByte('(')
		}
	}
	closeParen := func() {
		if !top {
			b.WriteByte(')')
		}
	}
	switch n.kind {
	case nOr, nAnd:
		sep := " || "
		if n.kind == nAnd {
			sep = " && "
		}
		open()
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(sep)
			}
			f.emit(b, k, false)
		}
		closeParen()
	case nNot:
		b.WriteString("!(")
		f.emit(b, n.kids[0], true)
		b.WriteByte(')')
	case nNull:
		if n.negate {
			b.WriteByte('!')
		}
		b.WriteString("null_" + f.props[n.prop].name)
	case nBool:
		name := f.props[n.prop].name
		open()
		b.WriteString("ok_" + name + " && v_" + name)
		closeParen()
	case nCmp:
		name := f.props[n.prop].name
		lit := fmt.Sprintf("lit%d", n.lit)
		open()
		b.WriteString("ok_" + name + " && ")
		if n.litFirst {
			b.WriteString(lit + " " + n.op + " v_" + name)
		} else {
			b.WriteString("v_" + name + " " + n.op + " " + lit)
		}
		closeParen()
	case nFunc:
		name := f.props[n.prop].name
		open()
		fmt.Fprintf(b, "ok_%s && v_%s.%s(lit%d)", name, name, n.op, n.lit)
		closeParen()
	}
}

// String returns the filter as it was written.
func (f *Filter) String() string { return f.src }

// CEL returns the CEL source the filter was compiled to, for tests and
// debugging. It names properties and literals only by variable (see
// Filter); literal values are not in it.
func (f *Filter) CEL() string { return f.celSrc }

// Match reports whether row, a JSON object as decoded by encoding/json,
// satisfies the filter. A missing key is a null. A value of the wrong type
// for its property makes the comparisons on it false; it is not an error.
// The only errors are evaluation failures such as exceeding MaxCost.
func (f *Filter) Match(row map[string]any) (bool, error) {
	a := f.pool.Get().(*rowActivation)
	a.row = row
	out, _, err := f.prg.Eval(a)
	a.row = nil
	clear(a.state)
	clear(a.vals)
	f.pool.Put(a)
	if err != nil {
		return false, fmt.Errorf("odata: evaluating filter: %w", err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("odata: filter evaluated to %v, not a bool", out)
	}
	return bool(b), nil
}

// Row states of a property within a rowActivation.
const (
	stUnresolved uint8 = iota
	stOK               // present with a value of the property's kind
	stNull             // missing or null
	stInvalid          // present with a value of another type
)

// rowActivation supplies one row to a filter's CEL program. Each property
// is read from the row and converted at most once per evaluation.
type rowActivation struct {
	f     *Filter
	row   map[string]any
	state []uint8   // per property
	vals  []ref.Val // per property, valid when state is stOK
}

// ResolveName implements interpreter.Activation.
func (a *rowActivation) ResolveName(name string) (any, bool) {
	r, ok := a.f.vars[name]
	if !ok {
		return nil, false
	}
	if r.kind == vLit {
		return a.f.lits[r.idx], true
	}
	st := a.state[r.idx]
	if st == stUnresolved {
		st = a.resolve(r.idx)
	}
	switch r.kind {
	case vOK:
		return types.Bool(st == stOK), true
	case vNull:
		return types.Bool(st == stNull), true
	}
	if st != stOK {
		return zeroVal(a.f.props[r.idx].kind), true
	}
	return a.vals[r.idx], true
}

// Parent implements interpreter.Activation.
func (a *rowActivation) Parent() cel.Activation { return nil }

// resolve reads property i from the row and records its state and value.
func (a *rowActivation) resolve(i int) uint8 {
	pr := a.f.props[i]
	st := stInvalid
	raw, present := a.row[pr.name]
	if !present || raw == nil {
		st = stNull
	} else if v, ok := convert(raw, pr.kind); ok {
		st = stOK
		a.vals[i] = v
	}
	a.state[i] = st
	return st
}

// convert converts a row value to the CEL value of a property of kind k,
// reporting false when the value has another type.
func convert(raw any, k Kind) (ref.Val, bool) {
	switch k {
	case String:
		if s, ok := raw.(string); ok {
			return types.String(s), true
		}
	case Number:
		if n, ok := number(raw); ok {
			return types.Double(n), true
		}
	case Bool:
		if b, ok := raw.(bool); ok {
			return types.Bool(b), true
		}
	case DateTime:
		switch v := raw.(type) {
		case string:
			if t, ok := parseDateTime(v); ok {
				return types.Timestamp{Time: t}, true
			}
		case time.Time:
			return types.Timestamp{Time: v}, true
		}
	case GUID:
		if s, ok := raw.(string); ok {
			if g, ok := parseGUID(s); ok {
				return types.String(g), true
			}
		}
	}
	return nil, false
}

// number returns a row value as a float64 if it is a number: a float64 as
// encoding/json decodes it, a json.Number, or a Go integer or float32. NaN
// is not a number here.
func number(raw any) (float64, bool) {
	var f float64
	switch v := raw.(type) {
	case float64:
		f = v
	case json.Number:
		var err error
		if f, err = v.Float64(); err != nil {
			return 0, false
		}
	case float32:
		f = float64(v)
	case int:
		f = float64(v)
	case int64:
		f = float64(v)
	case int32:
		f = float64(v)
	case uint:
		f = float64(v)
	case uint64:
		f = float64(v)
	case uint32:
		f = float64(v)
	default:
		return 0, false
	}
	if math.IsNaN(f) {
		return 0, false
	}
	return f, true
}
