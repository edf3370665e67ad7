package engine

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"

	"github.com/elevate-pam/elevate/dsl/syntax"
)

// A rule's condition is a boolean expression in the rule language
// (dsl/syntax) over the same criteria as the match* fields, combined with
// and / or / not, plus `cel` atoms. It is ANDed with the match* criteria.
//
// Absent data makes a comparison unknown, and a condition matches only when
// it is definitely true (three-valued logic, like SQL NULL). So `not signer
// == "X"` never matches an unsigned binary, exactly as a negated matchSigner
// does, and a conjunction of possibly negated criteria means precisely what
// the equivalent match* fields mean. Compilation pushes negations down to
// the criteria (De Morgan holds in three-valued logic), after which "is
// definitely true" composes with plain and / or over each criterion's
// present-and-holds test.

// ConditionError is a problem at a position of a condition's source.
type ConditionError struct {
	Pos syntax.Pos
	Msg string
}

func (e *ConditionError) Error() string { return e.Pos.String() + ": " + e.Msg }

// criterionKinds maps the language's criterion words to criteria.
var criterionKinds = map[string]critKind{
	"signer": cSigner, "thumbprint": cThumbprint, "hash": cHash, "path": cPathGlob, "parent": cParentImage,
	"cmdline": cCommandLine, "user": cUser, "group": cAdGroup, "tool": cToolName, "risk": cRiskTier,
}

// obsKeys are the observation fields a `cel` atom may read.
var obsKeys = []string{keyUser, keyPath, keyHash, keySigner, keyThumbprint, keyParent, keyCmdline, keyGroups, keyTool, keyRisk}

// ParseCondition parses a condition as the API's `condition` field holds it.
func ParseCondition(src string) (syntax.Expr, error) {
	x, errs := syntax.ParseExpr(src)
	if len(errs) > 0 {
		return nil, errs
	}
	return x, nil
}

// literal is one criterion test of a condition, after negations have been
// pushed down.
type literal struct {
	cmp    *syntax.Compare // nil for a cel atom
	cel    *syntax.CelAtom
	value  *syntax.Lit // the compared value (one element of an `in` list)
	group  bool        // signer in signers(…)
	negate bool
}

// kind is the criterion a comparison literal tests.
func (l literal) kind() critKind {
	if l.group {
		return cSignerGroup
	}
	return criterionKinds[l.cmp.Field.Text]
}

// condTree is a condition in negation normal form.
type condTree struct {
	op   byte // 'l' literal, '&' and, '|' or
	lit  literal
	kids []condTree
}

// nnf pushes negations down to the literals and expands `in` lists.
func nnf(x syntax.Expr, neg bool) condTree {
	switch x := x.(type) {
	case *syntax.Paren:
		return nnf(x.X, neg)
	case *syntax.Not:
		return nnf(x.X, !neg)
	case *syntax.Binary:
		op := byte('&')
		if (x.Op == "or") != neg {
			op = '|'
		}
		return condTree{op: op, kids: []condTree{nnf(x.X, neg), nnf(x.Y, neg)}}
	case *syntax.CelAtom:
		return condTree{op: 'l', lit: literal{cel: x, negate: neg}}
	case *syntax.Compare:
		if x.Op == "!=" || x.Op == "!~" {
			neg = !neg
		}
		switch v := x.Value.(type) {
		case *syntax.SignersRef:
			return condTree{op: 'l', lit: literal{cmp: x, value: v.Name, group: true, negate: neg}}
		case *syntax.List:
			// any of the values; negated, none of them
			op := byte('|')
			if neg {
				op = '&'
			}
			t := condTree{op: op}
			for _, e := range v.Elems {
				t.kids = append(t.kids, condTree{op: 'l', lit: literal{cmp: x, value: e, negate: neg}})
			}
			if len(t.kids) == 1 {
				return t.kids[0]
			}
			return t
		case *syntax.Lit:
			return condTree{op: 'l', lit: literal{cmp: x, value: v, negate: neg}}
		}
	}
	return condTree{op: '|'} // unreachable for parsed trees: an empty or is false
}

func (t condTree) each(f func(literal)) {
	if t.op == 'l' {
		f(t.lit)
		return
	}
	for _, k := range t.kids {
		k.each(f)
	}
}

// conditionShape says which kinds of criteria a condition uses, for the
// rule-shape checks.
type conditionShape struct{ exec, tool, any bool }

func shapeOf(x syntax.Expr) conditionShape {
	var s conditionShape
	nnf(x, false).each(func(l literal) {
		if l.cel != nil {
			// A cel atom is classified by the observation fields it reads;
			// one that reads none (`cel "true"`, a test of the time only)
			// is not a criterion, as a time window is not.
			keys := celAtomKeys(l.cel.Src.Value)
			s.any = s.any || len(keys) > 0
			for _, k := range keys {
				switch k {
				case keyTool, keyRisk:
					s.tool = true
				case keyUser, keyGroups:
				default:
					s.exec = true
				}
			}
			return
		}
		s.any = true
		switch l.kind() {
		case cToolName, cRiskTier:
			s.tool = true
		case cUser, cAdGroup:
		default:
			s.exec = true
		}
	})
	return s
}

// conditionShape parses a rule's condition for the shape checks; an
// unparsable condition counts as a criterion (validation reports it).
// Shapes are memoised by condition text: the Has*Criterion methods ask
// often.
func (r *Rule) conditionShape() conditionShape {
	if r.Condition == nil || *r.Condition == "" {
		return conditionShape{}
	}
	if v, ok := shapeMemo.get(*r.Condition); ok {
		return v.(conditionShape)
	}
	s := conditionShape{any: true}
	if x, err := ParseCondition(*r.Condition); err == nil {
		s = shapeOf(x)
	}
	shapeMemo.put(*r.Condition, s)
	return s
}

// memo is a small concurrent cache that forgets everything when full, so
// a stream of distinct inputs cannot grow it without bound.
type memo struct {
	mu sync.Mutex
	m  map[string]any
}

const memoLimit = 4096

func (c *memo) get(k string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *memo) put(k string, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= memoLimit {
		c.m = map[string]any{}
	}
	c.m[k] = v
}

var shapeMemo, celKeysMemo memo

// celAtomKeys lists the observation fields a cel atom reads (nil when it
// does not parse; validation reports that).
func celAtomKeys(src string) []string {
	if v, ok := celKeysMemo.get(src); ok {
		return v.([]string)
	}
	var keys []string
	if env, err := celAtomEnv(); err == nil {
		if parsed, iss := env.Parse(src); iss == nil || iss.Err() == nil {
			keys, _ = readKeys(parsed.NativeRep(), true)
		}
	}
	celKeysMemo.put(src, keys)
	return keys
}

// litValue returns the literal's string value and risk tier.
func litValue(l literal) (string, int, error) {
	if l.kind() != cRiskTier {
		return l.value.Value, 0, nil
	}
	n, err := strconv.Atoi(l.value.Text)
	if err != nil {
		return "", 0, fmt.Errorf("risk tier %s is not a number", l.value.Text)
	}
	return "", n, nil
}

// CheckCondition checks every value and `cel` atom of a parsed condition
// with the same checks the API applies to the match* fields. Positions are
// those of x, so a rule file gets file positions and the API gets positions
// within the condition string.
func CheckCondition(x syntax.Expr) []*ConditionError {
	var errs []*ConditionError
	nnf(x, false).each(func(l literal) {
		if l.cel != nil {
			if _, err := compileCELAtom(l.cel, false); err != nil {
				var ce *ConditionError
				if errors.As(err, &ce) {
					errs = append(errs, ce)
				} else {
					errs = append(errs, &ConditionError{Pos: l.cel.Pos, Msg: err.Error()})
				}
			}
			return
		}
		v, risk, err := litValue(l)
		if err != nil {
			errs = append(errs, &ConditionError{Pos: l.value.Pos, Msg: err.Error()})
			return
		}
		if p := criterionValueProblem(l.kind(), v, risk); p != "" {
			name := l.cmp.Field.Text
			if l.group {
				name = "signer group"
			}
			errs = append(errs, &ConditionError{Pos: l.value.Pos, Msg: name + " " + p})
		}
	})
	slices.SortStableFunc(errs, func(a, b *ConditionError) int { return a.Pos.Offset - b.Pos.Offset })
	return errs
}

// celAtom is a compiled `cel` escape hatch: the expression, the
// observation fields it reads (all must be present, or the atom is
// unknown), and a program for the native evaluator.
type celAtom struct {
	src     string   // the expression as CEL prints it (comments stripped), in !(…) when the atom is negated
	guarded string   // presence guards and negation applied: true iff definitely true
	keys    []string // observation fields it reads: all must be present
	prog    cel.Program
}

// compileCELAtom type-checks a `cel` atom. Errors carry the position in
// the rule text.
func compileCELAtom(a *syntax.CelAtom, negate bool) (*celAtom, error) {
	// A rule's atoms are checked on validation and again on compile, and
	// rule sets repeat expressions: compiled atoms are immutable and shared.
	// Only successes are remembered; an error's position is the caller's.
	key := strconv.FormatBool(negate) + "\x00" + a.Src.Value
	if v, ok := celAtomMemo.get(key); ok {
		return v.(*celAtom), nil
	}
	at, err := compileCELAtomUncached(a, negate)
	if err == nil {
		celAtomMemo.put(key, at)
	}
	return at, err
}

var celAtomMemo memo

func compileCELAtomUncached(a *syntax.CelAtom, negate bool) (*celAtom, error) {
	env, err := celEnv()
	if err != nil {
		return nil, err
	}
	tenv, err := celAtomEnv()
	if err != nil {
		return nil, err
	}
	checked, iss := tenv.Compile(a.Src.Value)
	if iss != nil && iss.Err() != nil {
		e := iss.Errors()[0]
		loc := e.Location
		return nil, &ConditionError{Pos: a.Src.PosOf(loc.Line(), loc.Column()+1), Msg: "CEL: " + e.Message}
	}
	if checked.OutputType() != cel.BoolType {
		return nil, &ConditionError{Pos: a.Src.Pos, Msg: fmt.Sprintf("CEL: the expression has type %s, not bool", checked.OutputType())}
	}
	keys, bad := readKeys(checked.NativeRep(), false)
	if bad == wholeObs {
		return nil, &ConditionError{Pos: a.Src.Pos, Msg: `CEL: read observation fields by name (obs.commandLine or obs["commandLine"]); obs as a whole cannot be checked for absent fields`}
	}
	if bad != "" {
		return nil, &ConditionError{Pos: a.Src.Pos, Msg: fmt.Sprintf("CEL: unknown observation field obs.%s; the observation has %s", bad, strings.Join(obsKeys, ", "))}
	}
	src, err := cel.AstToString(checked)
	if err != nil {
		return nil, &ConditionError{Pos: a.Src.Pos, Msg: "CEL: " + err.Error()}
	}
	var b strings.Builder
	for _, k := range keys {
		b.WriteString("has(obs." + k + ") && ")
	}
	if negate {
		b.WriteString("!(" + src + ")")
	} else {
		b.WriteString("(" + src + ")")
	}
	at := &celAtom{src: src, guarded: b.String(), keys: keys}
	if negate {
		at.src = "!(" + src + ")" // what explain shows beside the literal's result
	}
	gast, iss := env.Compile(at.guarded)
	if iss != nil && iss.Err() != nil {
		return nil, &ConditionError{Pos: a.Src.Pos, Msg: "CEL: " + iss.Err().Error()}
	}
	est, err := env.EstimateCost(gast, celCostModel{})
	if err != nil || est.Max > celCostLimit {
		return nil, &ConditionError{Pos: a.Src.Pos, Msg: fmt.Sprintf("CEL: the expression is too expensive to evaluate (worst-case cost above %d)", celCostLimit)}
	}
	if at.prog, err = env.Program(gast, cel.CostLimit(celCostLimit)); err != nil {
		return nil, &ConditionError{Pos: a.Src.Pos, Msg: "CEL: " + err.Error()}
	}
	return at, nil
}

var (
	celAtomEnvOnce sync.Once
	celAtomEnvVal  *cel.Env
	celAtomEnvErr  error
)

// celAtomEnv is the rule environment with macro-call tracking: printing an
// atom back with cel.AstToString needs the macro calls (has, exists, all,
// map, filter…), or every comprehension fails to print.
func celAtomEnv() (*cel.Env, error) {
	celAtomEnvOnce.Do(func() {
		env, err := celEnv()
		if err != nil {
			celAtomEnvErr = err
			return
		}
		celAtomEnvVal, celAtomEnvErr = env.Extend(cel.EnableMacroCallTracking())
	})
	return celAtomEnvVal, celAtomEnvErr
}

// wholeObs marks a cel atom that uses obs other than by field name.
const wholeObs = "\x00whole"

// readKeys lists the observation fields an expression reads (selections
// and constant-key indexes on obs outside has()), sorted; bad names a key
// the observation never has.
func readKeys(a *ast.AST, withTests bool) (keys []string, bad string) {
	seen := map[string]bool{}
	var visit func(e ast.Expr)
	visit = func(e ast.Expr) {
		if e == nil {
			return
		}
		switch e.Kind() {
		case ast.SelectKind:
			s := e.AsSelect()
			if op := s.Operand(); op.Kind() == ast.IdentKind && op.AsIdent() == "obs" {
				if !slices.Contains(obsKeys, s.FieldName()) {
					bad = s.FieldName()
				}
				if withTests || !s.IsTestOnly() {
					seen[s.FieldName()] = true
				}
				return
			}
			visit(s.Operand())
		case ast.CallKind:
			c := e.AsCall()
			if c.FunctionName() == "_[_]" && len(c.Args()) == 2 {
				if op := c.Args()[0]; op.Kind() == ast.IdentKind && op.AsIdent() == "obs" {
					if k := c.Args()[1]; k.Kind() == ast.LiteralKind {
						if s, ok := k.AsLiteral().Value().(string); ok {
							if !slices.Contains(obsKeys, s) {
								bad = s
							}
							seen[s] = true
							return
						}
					}
				}
			}
			if c.IsMemberFunction() {
				visit(c.Target())
			}
			for _, arg := range c.Args() {
				visit(arg)
			}
		case ast.IdentKind:
			// obs used whole (iterated, tested with `in`, passed on): the
			// fields it reads cannot be guarded for presence.
			if e.AsIdent() == "obs" {
				bad = wholeObs
			}
		case ast.ListKind:
			for _, el := range e.AsList().Elements() {
				visit(el)
			}
		case ast.MapKind:
			for _, en := range e.AsMap().Entries() {
				me := en.AsMapEntry()
				visit(me.Key())
				visit(me.Value())
			}
		case ast.StructKind:
			for _, f := range e.AsStruct().Fields() {
				visit(f.AsStructField().Value())
			}
		case ast.ComprehensionKind:
			c := e.AsComprehension()
			visit(c.IterRange())
			visit(c.AccuInit())
			visit(c.LoopCondition())
			visit(c.LoopStep())
			visit(c.Result())
		}
	}
	visit(a.Expr())
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, bad
}

// condNode is a compiled condition: literals are criteria (evaluated like
// match* criteria) or cel atoms.
type condNode struct {
	op   byte // 'c' criterion, 'x' cel atom, '&', '|'
	crit criterion
	cel  *celAtom
	kids []condNode
}

// compileCondition lowers a parsed condition to a condNode.
func compileCondition(x syntax.Expr, gc groupCtx) (condNode, error, error) {
	var warn error
	var build func(t condTree) (condNode, error)
	build = func(t condTree) (condNode, error) {
		if t.op != 'l' {
			n := condNode{op: t.op}
			for _, k := range t.kids {
				kn, err := build(k)
				if err != nil {
					return n, err
				}
				n.kids = append(n.kids, kn)
			}
			return n, nil
		}
		l := t.lit
		if l.cel != nil {
			a, err := compileCELAtom(l.cel, l.negate)
			if err != nil {
				return condNode{}, err
			}
			return condNode{op: 'x', cel: a}, nil
		}
		v, risk, err := litValue(l)
		if err != nil {
			return condNode{}, err
		}
		c, w, err := newCriterion(l.kind(), v, risk, l.negate, gc, false)
		if w != nil {
			warn = w
		}
		return condNode{op: 'c', crit: c}, err
	}
	n, err := build(nnf(x, false))
	return n, warn, err
}

// celSource renders the node as CEL, each literal definitely-true.
func (n *condNode) celSource() string {
	switch n.op {
	case 'c':
		return "(" + n.crit.celExpr() + ")"
	case 'x':
		return "(" + n.cel.guarded + ")"
	}
	op := " && "
	if n.op == '|' {
		op = " || "
	}
	parts := make([]string, len(n.kids))
	for i := range n.kids {
		parts[i] = n.kids[i].celSource()
	}
	return "(" + strings.Join(parts, op) + ")"
}

// eval evaluates the node natively. Like CEL's logical operators it is
// commutative with respect to errors: an and is false if any operand is
// false, an or true if any is true, and only otherwise does an error
// decide — so the native path and the CEL program agree.
func (n *condNode) eval(c *candidate) (bool, error) {
	switch n.op {
	case 'c':
		return n.crit.holds(c), nil
	case 'x':
		return evalBool(n.cel.prog, c.activation())
	}
	decisive := n.op == '|' // an or is decided by a true operand, an and by a false one
	var firstErr error
	for i := range n.kids {
		v, err := n.kids[i].eval(c)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if v == decisive {
			return decisive, nil
		}
	}
	if firstErr != nil {
		return false, firstErr
	}
	return !decisive, nil
}

// each visits every criterion of the node.
func (n *condNode) each(f func(*criterion)) {
	if n.op == 'c' {
		f(&n.crit)
	}
	for i := range n.kids {
		n.kids[i].each(f)
	}
}

// hasCEL reports whether the node contains a cel atom.
func (n *condNode) hasCEL() bool {
	if n.op == 'x' {
		return true
	}
	for i := range n.kids {
		if n.kids[i].hasCEL() {
			return true
		}
	}
	return false
}

// normalizeNegate keeps one negate key per negated criterion the rule has,
// in NegateKeys order. Keys for absent criteria never had an effect.
func normalizeNegate(r Rule) Rule {
	if r.MatchNegate == nil {
		return r
	}
	has := map[NegateKey]bool{}
	for _, f := range matchFields(&r) {
		has[f.neg] = (f.v != nil && *f.v != nil) || (f.risk != nil && *f.risk != nil)
	}
	var out []NegateKey
	for _, k := range NegateKeys {
		if has[k] && slices.Contains(r.MatchNegate, k) {
			out = append(out, k)
		}
	}
	r.MatchNegate = out // nil when nothing is negated: null and [] mean the same
	return r
}

// asLiteral reports whether x is a single, possibly negated comparison
// that a match* field can hold.
func asLiteral(x syntax.Expr) (literal, bool) {
	t := nnf(x, false)
	if t.op != 'l' || t.lit.cel != nil {
		return literal{}, false
	}
	if l, ok := t.lit.cmp.Value.(*syntax.List); ok && len(l.Elems) != 1 {
		return literal{}, false
	}
	return t.lit, true
}

// splitCondition moves the condition's top-level conjuncts that fit a free
// match* field (one comparison per field, a signer group only by id and
// never beside a signer or thumbprint) into that field, in order of
// appearance, and re-prints the rest canonically.
func splitCondition(r Rule) Rule {
	if r.Condition == nil {
		return r
	}
	x, err := ParseCondition(*r.Condition)
	if err != nil {
		return r
	}
	r.MatchNegate = slices.Clone(r.MatchNegate)
	fields := map[critKind]matchField{}
	for _, f := range matchFields(&r) {
		fields[f.kind] = f
	}
	// Negate keys already listed for criteria the rule lacks had no effect;
	// drop them so a moved positive comparison is not inverted.
	r = normalizeNegate(r)
	var rest []syntax.Expr
	for _, e := range syntax.Conjuncts(x) {
		l, ok := asLiteral(e)
		if ok {
			ok = moveLiteral(&r, fields[l.kind()], l)
		}
		if !ok {
			rest = append(rest, e)
		}
	}
	if len(rest) == 0 {
		r.Condition = nil
		return r
	}
	out := rest[0]
	for _, e := range rest[1:] {
		out = &syntax.Binary{Op: "and", X: out, Y: e}
	}
	text := syntax.FormatExpr(out)
	r.Condition = &text
	return r
}

func moveLiteral(r *Rule, f matchField, l literal) bool {
	k := l.kind()
	if f.risk != nil {
		if *f.risk != nil {
			return false
		}
		_, risk, err := litValue(l)
		if err != nil {
			return false
		}
		*f.risk = &risk
	} else {
		if *f.v != nil {
			return false
		}
		// A stored empty criterion means "no criterion" (and NormalizeRule
		// trims a thumbprint), while in a condition it is a comparison:
		// moving one would change what the rule matches.
		if v := l.value.Value; v == "" || (k == cThumbprint && strings.TrimSpace(v) == "") {
			return false
		}
		switch k {
		case cSignerGroup:
			if !IsUUID(l.value.Value) || r.MatchSigner != nil || r.MatchSignerThumbprint != nil {
				return false
			}
		case cSigner, cThumbprint:
			if r.MatchSignerGroupID != nil {
				return false
			}
		}
		v := l.value.Value
		*f.v = &v
	}
	if l.negate {
		r.MatchNegate = append(r.MatchNegate, f.neg)
	}
	return true
}

// ConditionSignerGroups lists the signer-group names a rule condition
// refers to with signers("…"), in order of appearance (repeats kept).
func ConditionSignerGroups(src string) ([]string, error) {
	x, err := ParseCondition(src)
	if err != nil {
		return nil, err
	}
	var names []string
	nnf(x, false).each(func(l literal) {
		if l.group {
			names = append(names, l.value.Value)
		}
	})
	return names, nil
}
