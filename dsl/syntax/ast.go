package syntax

import (
	"strings"
	"unicode/utf8"
)

// Node is anything in the syntax tree; every node knows where it starts.
type Node interface{ Position() Pos }

// Comment is one `#` comment; Text is what follows the `#`.
type Comment struct {
	Pos   Pos
	Text  string
	Blank bool // a blank line separates it from what precedes it
}

// Decor is the layout a node carries through formatting: the comment lines
// above it, a comment at the end of its line, and whether a blank line
// separated it from the line before it (its last leading comment, or
// whatever preceded it).
type Decor struct {
	Lead  []*Comment
	Trail *Comment
	Blank bool
}

// File is one parsed .pam file.
type File struct {
	Name  string
	Decls []*Block
	Tail  []*Comment // comments after the last declaration
}

// Block kinds.
const (
	KindOrg      = "org"
	KindRule     = "rule"
	KindSigners  = "signers"
	KindPolicy   = "policy"
	KindSettings = "settings"
	KindTest     = "test"
)

// Block is a top-level declaration. `org "name"` has a label and no braces;
// `settings { … }` has a body and no label; the others have a label and
// fields.
type Block struct {
	Decor
	Kind   string
	KwPos  Pos
	Label  *Lit     // nil for settings
	Fields []*Field // rule, signers, policy, test
	Body   *Body    // settings
	Inner  []*Comment
	Close  Pos
}

func (b *Block) Position() Pos { return b.KwPos }

// Field is one keyword line of a block: `priority 50`, `when …`.
type Field struct {
	Decor
	Key    string
	KeyPos Pos
	Value  Value
}

func (f *Field) Position() Pos { return f.KeyPos }

// Value is what follows a field keyword.
type Value interface {
	Node
	value()
}

// Lit is a scalar: a string, raw string, number, duration, clock,
// timestamp or a bare word (verdicts, booleans, enum values).
type Lit struct {
	Kind  Kind
	Pos   Pos
	Text  string // source text (for strings: with quotes)
	Value string // decoded value
}

func (l *Lit) Position() Pos { return l.Pos }

// List is `[a, b, …]`.
type List struct {
	Lbrack Pos
	Elems  []*Lit
}

func (l *List) Position() Pos { return l.Lbrack }

// Cond is a rule condition (`when`).
type Cond struct{ X Expr }

func (c *Cond) Position() Pos { return c.X.Position() }

// Window is `during [days] HH:MM-HH:MM ["Zone"]`.
type Window struct {
	Pos   Pos
	Days  []DayRange
	Start *Lit
	End   *Lit
	Zone  *Lit
}

func (w *Window) Position() Pos { return w.Pos }

// DayRange is one day (`mon`) or a range of days (`mon-fri`, wrapping
// past Sunday when From comes after To).
type DayRange struct {
	From, To *Lit // To is nil for a single day
}

// Then is `then VERDICT [for DURATION]`.
type Then struct {
	Verdict *Lit
	For     *Lit
}

func (t *Then) Position() Pos { return t.Verdict.Pos }

// Expect is a test's `expect OUTCOME [by "rule" | by default | by software_policy] [for DURATION]`.
type Expect struct {
	Outcome *Lit
	By      *Lit // a string (rule name) or a word (default, software_policy)
	For     *Lit
}

func (e *Expect) Position() Pos { return e.Outcome.Pos }

// Entry is a signer-group member: `cn "Vendor" [thumbprint "…"]` or
// `thumbprint "…"`.
type Entry struct {
	CN    *Lit
	Thumb *Lit
}

func (e *Entry) Position() Pos {
	if e.CN != nil {
		return e.CN.Pos
	}
	return e.Thumb.Pos
}

// Assign is a policy assignment: `assign LEVEL "target" [priority N] [when `cel`]`.
type Assign struct {
	Level    *Lit
	Target   *Lit
	Priority *Lit
	When     *Lit
}

func (a *Assign) Position() Pos { return a.Level.Pos }

// Body is a braced list of data attributes: `{ key = value … }`, with an
// optional label before the brace (`feature pam { … }`).
type Body struct {
	Label  *Lit
	Lbrace Pos
	Attrs  []*Attr
	Inner  []*Comment
	Rbrace Pos
}

func (b *Body) Position() Pos {
	if b.Label != nil {
		return b.Label.Pos
	}
	return b.Lbrace
}

// Attr is `key = value` or a nested `key ["label"] { … }`.
type Attr struct {
	Decor
	Key    string
	KeyPos Pos
	Value  Value // *Lit, *List or *Body
}

func (a *Attr) Position() Pos { return a.KeyPos }

func (*Lit) value()    {}
func (*List) value()   {}
func (*Cond) value()   {}
func (*Window) value() {}
func (*Then) value()   {}
func (*Expect) value() {}
func (*Entry) value()  {}
func (*Assign) value() {}
func (*Body) value()   {}

// Expr is a condition expression.
type Expr interface {
	Node
	expr()
}

// Binary is `X and Y` or `X or Y`.
type Binary struct {
	Op    string // "and" or "or"
	OpPos Pos
	X, Y  Expr
}

// Not is `not X`.
type Not struct {
	NotPos Pos
	X      Expr
}

// Paren is `( X )`.
type Paren struct {
	Lparen Pos
	X      Expr
}

// Compare tests one criterion: `signer == "…"`, path ~ a raw string,
// `cmdline contains "…"`, `user in ["a", "b"]`, `signer in signers("g")`.
type Compare struct {
	Field *Lit   // the criterion word
	Op    string // "==", "!=", "~", "!~", "contains", "in"
	OpPos Pos
	Value Operand
}

// Operand is the right-hand side of a comparison.
type Operand interface {
	Node
	operand()
}

// SignersRef is `signers("group name or id")`.
type SignersRef struct {
	Pos  Pos
	Name *Lit
}

func (s *SignersRef) Position() Pos { return s.Pos }

// CelAtom is the escape hatch `cel` followed by a string (usually raw):
// any CEL expression over `obs` (the observation, keyed by API field
// names) and `at`.
type CelAtom struct {
	Pos Pos
	Src *Lit
}

func (e *Binary) Position() Pos  { return e.X.Position() }
func (e *Not) Position() Pos     { return e.NotPos }
func (e *Paren) Position() Pos   { return e.Lparen }
func (e *Compare) Position() Pos { return e.Field.Pos }
func (e *CelAtom) Position() Pos { return e.Pos }

func (*Binary) expr()  {}
func (*Not) expr()     {}
func (*Paren) expr()   {}
func (*Compare) expr() {}
func (*CelAtom) expr() {}

func (*Lit) operand()        {}
func (*List) operand()       {}
func (*SignersRef) operand() {}

// FieldOf returns the first field of b with the given key.
func (b *Block) FieldOf(key string) *Field {
	for _, f := range b.Fields {
		if f.Key == key {
			return f
		}
	}
	return nil
}

// AttrOf returns the first attribute of b with the given key.
func (b *Body) AttrOf(key string) *Attr {
	for _, a := range b.Attrs {
		if a.Key == key {
			return a
		}
	}
	return nil
}

// Conjuncts lists the operands of x's top-level `and` chain (through
// parentheses), each without its enclosing parentheses; an expression that
// is not a conjunction is its own single operand.
func Conjuncts(x Expr) []Expr {
	switch v := x.(type) {
	case *Paren:
		return Conjuncts(v.X)
	case *Binary:
		if v.Op == "and" {
			return append(Conjuncts(v.X), Conjuncts(v.Y)...)
		}
	}
	return []Expr{x}
}

// PosOf maps a position inside a string literal's value — 1-based line and
// 1-based column in characters, as CEL and other embedded languages report
// them — to the source. Exact for a literal without escapes (every raw
// string); for one with escapes it is the value's start.
func (l *Lit) PosOf(line, col int) Pos {
	p := Pos{Offset: l.Pos.Offset + 1, Line: l.Pos.Line, Col: l.Pos.Col + 1}
	v := ""
	if n := len(l.Text); n >= 2 && l.Text[1:n-1] == l.Value {
		v = l.Value
	}
	for i := 1; i < line; i++ {
		j := strings.IndexByte(v, '\n')
		if j < 0 {
			break
		}
		p = Pos{Offset: p.Offset + j + 1, Line: p.Line + 1, Col: 1}
		v = v[j+1:]
	}
	for n := 1; n < col && v != ""; n++ {
		_, size := utf8.DecodeRuneInString(v)
		p.Offset, p.Col, v = p.Offset+size, p.Col+size, v[size:]
	}
	return p
}
