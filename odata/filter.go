package odata

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on a filter. Exceeding one is an *Error.
const (
	// MaxLength is the longest accepted $filter or $orderby, in characters.
	MaxLength = 2000
	// MaxDepth is the deepest nesting of parentheses and "not" in a filter.
	MaxDepth = 32
	// MaxNodes is the most nodes a filter may have. A comparison or a
	// function call counts three (the operation and its two operands), a
	// boolean property on its own one, and each and, or and not one.
	MaxNodes = 200
)

// nodeKind is the kind of a filter syntax-tree node.
type nodeKind uint8

const (
	nOr   nodeKind = iota // kids joined by or
	nAnd                  // kids joined by and
	nNot                  // not kids[0]
	nCmp                  // prop op lit
	nNull                 // prop eq null, or prop ne null when negate
	nFunc                 // fn(prop, lit)
	nBool                 // a boolean property on its own
)

// node is a filter syntax-tree node.
type node struct {
	kind     nodeKind
	kids     []*node
	prop     int    // index into parser.props
	lit      int    // index into parser.lits
	op       string // CEL operator for nCmp, CEL function for nFunc
	litFirst bool   // nCmp: the literal was written on the left
	negate   bool   // nNull: ne null
}

// propRef is a property a filter uses.
type propRef struct {
	name string
	kind Kind
}

// operand is one side of a comparison.
type operand struct {
	tok    token // the literal, or the property's word
	isProp bool
}

// parser is a recursive-descent parser for $filter.
type parser struct {
	lx      lexer
	tok     token // the current token
	schema  Schema
	depth   int
	nodes   int
	props   []propRef
	propIdx map[string]int
	lits    []token
}

// Comparison operators and their CEL spelling.
var cmpOps = map[string]string{
	"eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<=",
}

// Functions and their CEL spelling.
var funcs = map[string]string{
	"contains": "contains", "startswith": "startsWith", "endswith": "endsWith",
}

// reserved are the operator and literal keywords, which cannot name a
// property. Other spellings of them are refused with a hint.
var reserved = map[string]bool{
	"eq": true, "ne": true, "gt": true, "ge": true, "lt": true, "le": true,
	"and": true, "or": true, "not": true, "true": true, "false": true, "null": true,
}

// checkLength refuses an input longer than MaxLength characters, and
// returns it as characters.
func checkLength(src string) ([]rune, *Error) {
	if len(src) > MaxLength*utf8.UTFMax || utf8.RuneCountInString(src) > MaxLength {
		return nil, errorf(MaxLength+1, "longer than %d characters", MaxLength)
	}
	return []rune(src), nil
}

// ParseFilter parses and type-checks a $filter against schema and compiles
// it. src is read as UTF-8 (an invalid byte counts as one character and
// reads as U+FFFD). A mistake in src is returned as an *Error; an invalid
// schema or a failure to compile an accepted filter (which would be a bug)
// as another error.
func ParseFilter(src string, schema Schema) (*Filter, error) {
	if err := schema.check(); err != nil {
		return nil, err
	}
	runes, lerr := checkLength(src)
	if lerr != nil {
		return nil, lerr
	}
	p := &parser{lx: lexer{src: runes}, schema: schema, propIdx: map[string]int{}}
	root, perr := p.parse()
	if perr != nil {
		return nil, perr
	}
	return compile(src, root, p.props, p.lits)
}

// parse parses the whole filter.
func (p *parser) parse() (*node, *Error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, errorf(p.tok.pos, "empty filter")
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.expectedConnective("end of filter")
	}
	return n, nil
}

// advance reads the next token into p.tok.
func (p *parser) advance() *Error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// isWord reports whether the current token is exactly the word w.
func (p *parser) isWord(w string) bool { return p.tok.kind == tWord && p.tok.text == w }

// addNodes counts n more nodes, starting at pos, against MaxNodes.
func (p *parser) addNodes(n int, pos int) *Error {
	p.nodes += n
	if p.nodes > MaxNodes {
		return errorf(pos, "filter has more than %d nodes", MaxNodes)
	}
	return nil
}

// enter counts one more level of nesting, opened at pos, against MaxDepth.
// The caller decrements p.depth when the level is complete.
func (p *parser) enter(pos int) *Error {
	p.depth++
	if p.depth > MaxDepth {
		return errorf(pos, "filter nests deeper than %d levels", MaxDepth)
	}
	return nil
}

// nextIsLParen reports whether the token after the current one is "(".
func (p *parser) nextIsLParen() bool {
	i := p.lx.i
	for i < len(p.lx.src) && isSpace(p.lx.src[i]) {
		i++
	}
	return i < len(p.lx.src) && p.lx.src[i] == '('
}

// miscased returns the reserved word that word spells in another case, if
// any.
func miscased(word string) (string, bool) {
	lower := strings.ToLower(word)
	if lower != word && reserved[lower] {
		return lower, true
	}
	return "", false
}

// expectedConnective is the error for a token that follows a complete
// condition but is not and, or, or what the context allows (want).
func (p *parser) expectedConnective(want string) *Error {
	t := p.tok
	if t.kind == tWord {
		if lower, ok := miscased(t.text); ok && (lower == "and" || lower == "or") {
			return errorf(t.pos, "unknown operator %q (operators are lower-case: use %q)", t.text, lower)
		}
		if _, ok := cmpOps[strings.ToLower(t.text)]; ok {
			return errorf(t.pos, "unexpected %q: a condition cannot be compared (expected and, or or %s)", t.text, want)
		}
	}
	return errorf(t.pos, "unexpected %s (expected and, or or %s)", describe(t), want)
}

// describe names a token for an error message.
func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tComma:
		return `","`
	case tWord:
		return fmt.Sprintf("%q", clip(t.text))
	case tString:
		return "string '" + clip(strings.ReplaceAll(t.text, "'", "''")) + "'"
	case tNumber:
		return "number " + clip(t.text)
	case tDateTime:
		return "date-time " + t.tm.Format("2006-01-02T15:04:05.999999999Z07:00")
	case tGUID:
		return "guid " + t.text
	case tBool:
		if t.b {
			return "true"
		}
		return "false"
	case tNull:
		return "null"
	}
	return "token"
}

// parseOr parses and-conditions joined by or.
func (p *parser) parseOr() (*node, *Error) {
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	kids := []*node{first}
	for p.isWord("or") {
		if err := p.addNodes(1, p.tok.pos); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &node{kind: nOr, kids: kids}, nil
}

// parseAnd parses unary conditions joined by and.
func (p *parser) parseAnd() (*node, *Error) {
	first, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	kids := []*node{first}
	for p.isWord("and") {
		if err := p.addNodes(1, p.tok.pos); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return &node{kind: nAnd, kids: kids}, nil
}

// parseUnary parses a condition, possibly negated by not.
func (p *parser) parseUnary() (*node, *Error) {
	if !p.isWord("not") {
		return p.parsePrimary(false)
	}
	pos := p.tok.pos
	if err := p.enter(pos); err != nil {
		return nil, err
	}
	if err := p.addNodes(1, pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var kid *node
	var err *Error
	if p.isWord("not") {
		kid, err = p.parseUnary()
	} else {
		kid, err = p.parsePrimary(true)
	}
	if err != nil {
		return nil, err
	}
	p.depth--
	return &node{kind: nNot, kids: []*node{kid}}, nil
}

// parsePrimary parses a parenthesized filter, a function call, a
// comparison or a boolean property. afterNot is set for the operand of
// "not", which binds tighter than a comparison.
func (p *parser) parsePrimary(afterNot bool) (*node, *Error) {
	t := p.tok
	switch t.kind {
	case tLParen:
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind == tRParen {
			return nil, errorf(p.tok.pos, "empty parentheses")
		}
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.expectedConnective(fmt.Sprintf(`")" to close the "(" at character %d`, t.pos))
		}
		p.depth--
		if err := p.advance(); err != nil {
			return nil, err
		}
		return n, nil
	case tEOF:
		return nil, errorf(t.pos, "missing condition at end of filter")
	case tRParen, tComma:
		return nil, errorf(t.pos, "missing condition before %s", describe(t))
	case tWord:
		if p.nextIsLParen() {
			return p.parseFunc()
		}
	}
	left, err := p.parseOperand("a condition")
	if err != nil {
		return nil, err
	}
	opTok := p.tok
	op, isCmp := cmpOps[opTok.text]
	isCmp = isCmp && opTok.kind == tWord
	if !isCmp && opTok.kind == tWord {
		if lower, ok := miscased(opTok.text); ok {
			if _, cmp := cmpOps[lower]; cmp {
				return nil, errorf(opTok.pos, "unknown operator %q (operators are lower-case: use %q)", opTok.text, lower)
			}
		}
	}
	if left.isProp {
		ref := p.props[p.propIdx[left.tok.text]]
		if !isCmp && ref.kind == Bool {
			if err := p.addNodes(1, left.tok.pos); err != nil {
				return nil, err
			}
			return &node{kind: nBool, prop: p.propIdx[ref.name]}, nil
		}
	}
	if !isCmp {
		what := describe(left.tok)
		if left.isProp {
			what = fmt.Sprintf("property %q", left.tok.text)
		}
		return nil, errorf(opTok.pos, "expected a comparison operator (eq, ne, gt, ge, lt, le) after %s, found %s", what, describe(opTok))
	}
	if afterNot {
		return nil, errorf(opTok.pos, `"not" applies only to the operand right after it; put the comparison in parentheses: not (… %s …)`, opTok.text)
	}
	if err := p.addNodes(3, left.tok.pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	right, err := p.parseOperand(fmt.Sprintf("a value after %q", opTok.text))
	if err != nil {
		return nil, err
	}
	return p.comparison(left, opTok, op, right)
}

// parseOperand parses a property or a literal; what describes the expected
// operand for the error when there is none.
func (p *parser) parseOperand(what string) (operand, *Error) {
	t := p.tok
	switch t.kind {
	case tString, tNumber, tDateTime, tGUID:
		if err := p.advance(); err != nil {
			return operand{}, err
		}
		return operand{tok: t}, nil
	case tWord:
	case tEOF:
		return operand{}, errorf(t.pos, "missing %s at end of filter", what)
	default:
		return operand{}, errorf(t.pos, "missing %s before %s", what, describe(t))
	}
	switch t.text {
	case "true", "false":
		t.kind, t.b = tBool, t.text == "true"
		if err := p.advance(); err != nil {
			return operand{}, err
		}
		return operand{tok: t}, nil
	case "null":
		t.kind = tNull
		if err := p.advance(); err != nil {
			return operand{}, err
		}
		return operand{tok: t}, nil
	}
	if kind, ok := p.schema[t.text]; ok && !reserved[t.text] {
		if _, seen := p.propIdx[t.text]; !seen {
			p.propIdx[t.text] = len(p.props)
			p.props = append(p.props, propRef{name: t.text, kind: kind})
		}
		if err := p.advance(); err != nil {
			return operand{}, err
		}
		return operand{tok: t, isProp: true}, nil
	}
	lower := strings.ToLower(t.text)
	switch {
	case funcs[lower] != "":
		return operand{}, errorf(t.pos, "function %q needs its arguments: %s(property, 'text')", t.text, lower)
	case !reserved[lower]:
		return operand{}, unknownProperty(t.pos, t.text, p.schema)
	case lower == t.text:
		return operand{}, errorf(t.pos, "missing %s before %q", what, t.text)
	case lower == "true" || lower == "false" || lower == "null":
		return operand{}, errorf(t.pos, "unknown word %q (literals are lower-case: use %q)", t.text, lower)
	case lower == "not":
		return operand{}, errorf(t.pos, "unknown operator %q (operators are lower-case: use %q)", t.text, lower)
	}
	return operand{}, errorf(t.pos, "missing %s before operator %q", what, t.text)
}

// comparison type-checks left op right and builds its node.
func (p *parser) comparison(left operand, opTok token, op string, right operand) (*node, *Error) {
	switch {
	case left.isProp && right.isProp:
		return nil, errorf(right.tok.pos, "cannot compare property %q with property %q: compare a property with a value", left.tok.text, right.tok.text)
	case !left.isProp && !right.isProp:
		return nil, errorf(left.tok.pos, "a comparison needs a property on one side, found %s and %s", describe(left.tok), describe(right.tok))
	}
	prop, lit, litFirst := left, right, false
	if right.isProp {
		prop, lit, litFirst = right, left, true
	}
	idx := p.propIdx[prop.tok.text]
	ref := p.props[idx]
	if lit.tok.kind == tNull {
		if opTok.text != "eq" && opTok.text != "ne" {
			return nil, errorf(opTok.pos, "null can only be compared with eq or ne")
		}
		return &node{kind: nNull, prop: idx, negate: opTok.text == "ne"}, nil
	}
	ordering := opTok.text != "eq" && opTok.text != "ne"
	if ordering && (ref.kind == Bool || ref.kind == GUID) {
		return nil, errorf(opTok.pos, "%q cannot be used on %s property %q (use eq or ne)", opTok.text, ref.kind, ref.name)
	}
	lt, err := p.coerce(ref, lit.tok)
	if err != nil {
		return nil, err
	}
	p.lits = append(p.lits, lt)
	return &node{kind: nCmp, prop: idx, lit: len(p.lits) - 1, op: op, litFirst: litFirst}, nil
}

// coerce checks that literal t can be compared with property ref and
// returns it converted to the property's kind.
func (p *parser) coerce(ref propRef, t token) (token, *Error) {
	mismatch := func(hint string) *Error {
		return errorf(t.pos, "cannot compare %s property %q with %s%s", ref.kind, ref.name, describe(t), hint)
	}
	switch ref.kind {
	case String:
		switch t.kind {
		case tString:
			return t, nil
		case tNumber, tGUID:
			raw := string(p.lx.src[t.pos-1 : t.end-1])
			return token{}, mismatch(fmt.Sprintf(" (to compare as text, quote it: '%s')", clip(raw)))
		}
	case Number:
		if t.kind == tNumber {
			return t, nil
		}
	case Bool:
		if t.kind == tBool {
			return t, nil
		}
	case DateTime:
		switch t.kind {
		case tDateTime:
			return t, nil
		case tString:
			tm, ok := parseDateTime(t.text)
			if !ok {
				return token{}, mismatch(" (not an RFC 3339 date-time, like 2026-01-02T03:04:05Z)")
			}
			t.kind, t.tm = tDateTime, tm
			return t, nil
		}
	case GUID:
		switch t.kind {
		case tGUID:
			return t, nil
		case tString:
			g, ok := parseGUID(t.text)
			if !ok {
				return token{}, mismatch(" (not a guid, like 01234567-89ab-cdef-0123-456789abcdef)")
			}
			t.kind, t.text = tGUID, g
			return t, nil
		}
	}
	return token{}, mismatch("")
}

// parseFunc parses fn(prop, 'literal').
func (p *parser) parseFunc() (*node, *Error) {
	t := p.tok
	fn, ok := funcs[t.text]
	if !ok {
		lower := strings.ToLower(t.text)
		if funcs[lower] != "" {
			return nil, errorf(t.pos, "unknown function %q (function names are lower-case: use %q)", t.text, lower)
		}
		if lower == "not" {
			return nil, errorf(t.pos, "unknown operator %q (operators are lower-case: use %q)", t.text, lower)
		}
		return nil, errorf(t.pos, "unknown function %q (supported: contains, startswith, endswith)", t.text)
	}
	if err := p.addNodes(3, t.pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil { // the name
		return nil, err
	}
	if err := p.advance(); err != nil { // "("
		return nil, err
	}
	first := p.tok
	arg, err := p.parseOperand(fmt.Sprintf("the first argument of %s", t.text))
	if err != nil {
		return nil, err
	}
	if !arg.isProp {
		return nil, errorf(first.pos, "the first argument of %s must be a string property, found %s", t.text, describe(first))
	}
	idx := p.propIdx[arg.tok.text]
	ref := p.props[idx]
	if ref.kind != String {
		return nil, errorf(first.pos, "%s needs a string property; %q is a %s property", t.text, ref.name, ref.kind)
	}
	if p.tok.kind != tComma {
		return nil, errorf(p.tok.pos, "expected \",\" after the first argument of %s, found %s", t.text, describe(p.tok))
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	second := p.tok
	lit, err := p.parseOperand(fmt.Sprintf("the second argument of %s", t.text))
	if err != nil {
		return nil, err
	}
	if lit.isProp || lit.tok.kind != tString {
		return nil, errorf(second.pos, "the second argument of %s must be a string literal, found %s", t.text, describe(second))
	}
	if p.tok.kind != tRParen {
		return nil, errorf(p.tok.pos, "expected \")\" after the second argument of %s, found %s", t.text, describe(p.tok))
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tWord {
		if _, cmp := cmpOps[strings.ToLower(p.tok.text)]; cmp {
			return nil, errorf(p.tok.pos, "the result of %s cannot be compared; use %s(…) or not %s(…)", t.text, t.text, t.text)
		}
	}
	p.lits = append(p.lits, lit.tok)
	return &node{kind: nFunc, prop: idx, lit: len(p.lits) - 1, op: fn}, nil
}
