package syntax

import (
	"slices"
	"strings"
)

// maxDepth bounds condition nesting so a hostile file cannot exhaust the
// stack.
const maxDepth = 64

// Words of the language.
var (
	DeclKinds = []string{KindRule, KindSigners, KindPolicy, KindSettings, KindTest, KindOrg}
	Verdicts  = []string{"auto_approve", "auto_deny", "require_approval", "ignore"}
	Outcomes  = []string{"auto_approved", "denied", "pending", "ignored"}
	Days      = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} // index = weekday number
	// Criteria are the words a condition compares, in the order the API
	// lists them.
	Criteria = []string{"signer", "thumbprint", "hash", "path", "parent", "cmdline", "user", "group", "tool", "risk"}
)

type fieldKind uint8

const (
	fString fieldKind = iota
	fInt
	fBool
	fWord
	fTime
	fCond
	fWindow
	fThen
	fExpect
	fEntry
	fBody
	fFeature
	fAssign
)

type fieldSpec struct {
	kind   fieldKind
	repeat bool
	doc    string
}

var blockFields = map[string]map[string]fieldSpec{
	KindRule: {
		"id": {kind: fString}, "description": {kind: fString}, "enabled": {kind: fBool},
		"priority": {kind: fInt}, "site": {kind: fString}, "when": {kind: fCond},
		"during": {kind: fWindow}, "then": {kind: fThen},
		"created_by": {kind: fString}, "created": {kind: fTime}, "updated": {kind: fTime},
	},
	KindSigners: {
		"id": {kind: fString}, "description": {kind: fString},
		"cn": {kind: fEntry, repeat: true}, "thumbprint": {kind: fEntry, repeat: true},
	},
	KindPolicy: {
		"id": {kind: fString}, "description": {kind: fString}, "enabled": {kind: fBool},
		"feature": {kind: fFeature, repeat: true}, "assign": {kind: fAssign, repeat: true},
	},
	KindTest: {
		"description": {kind: fString}, "at": {kind: fTime}, "flow": {kind: fWord},
		"site": {kind: fString}, "observe": {kind: fBody}, "settings": {kind: fBody}, "expect": {kind: fExpect},
		"software": {kind: fString},
	},
}

// FieldNames lists the fields a block kind accepts, sorted.
func FieldNames(kind string) []string {
	var out []string
	for k := range blockFields[kind] {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type parser struct {
	toks    []Token
	i       int
	tok     Token
	prevEnd Pos
	pending []*Comment
	line    int  // last line of the previous token or comment
	blank   bool // a blank line precedes the current token
	errs    ErrorList
	depth   int
}

func newParser(src string) *parser {
	p := &parser{}
	p.toks = tokenize(src, &p.errs)
	p.i = -1
	p.next()
	return p
}

// next moves to the next non-comment token, queueing comments.
func (p *parser) next() {
	if p.i >= 0 && p.tok.Kind != EOF {
		p.prevEnd = p.tok.End
	}
	for {
		p.i++
		if p.i >= len(p.toks) {
			p.i = len(p.toks) - 1
		}
		t := p.toks[p.i]
		blank := p.line > 0 && t.Pos.Line-p.line > 1
		p.line = t.End.Line
		if t.Kind == LineComment {
			p.pending = append(p.pending, &Comment{Pos: t.Pos, Text: t.Value, Blank: blank})
			continue
		}
		p.tok, p.blank = t, blank
		return
	}
}

func (p *parser) errorf(pos Pos, hint, format string, args ...any) {
	p.errs.Add(pos, hint, format, args...)
}

func (p *parser) errExpected(what string) {
	p.errorf(p.tok.Pos, "", "expected %s, found %s", what, p.tok.describe())
}

func (p *parser) isWord(w string) bool { return p.tok.Kind == Ident && p.tok.Text == w }

// begin starts a node: comments queued so far lead it.
func (p *parser) begin() Decor {
	d := Decor{Lead: p.pending, Blank: p.blank}
	p.pending = nil
	return d
}

// end finishes a node: comments met inside it move above it, and a comment
// on the node's last line becomes its trailing comment.
func (p *parser) end(d *Decor) {
	var rest []*Comment
	for _, c := range p.pending {
		switch {
		case c.Pos.Offset < p.prevEnd.Offset:
			d.Lead = append(d.Lead, c)
		case d.Trail == nil && c.Pos.Line == p.prevEnd.Line && len(rest) == 0:
			d.Trail = c
		default:
			rest = append(rest, c)
		}
	}
	p.pending = rest
}

// skipLine recovers from an error: it skips to the first token of a later
// line, a closing brace or the end of the file, always moving at least one
// token. Braces opened by the skipped tokens are skipped with their
// contents, so a bad `obsrve { … }` or `feature { … }` does not end the
// enclosing block at its own `}` (or report each of its lines as an
// unknown field); a declaration keyword at the start of a line stops the
// skip even inside them, in case the skipped brace is never closed.
func (p *parser) skipLine() {
	depth := 0
	for p.tok.Kind != EOF {
		switch p.tok.Kind {
		case LBrace:
			depth++
		case RBrace:
			depth--
		}
		p.next()
		if p.tok.First && p.tok.Kind == Ident && slices.Contains(DeclKinds, p.tok.Text) {
			return
		}
		if depth <= 0 && (p.tok.First || p.tok.Kind == RBrace) {
			return
		}
	}
}

func (p *parser) lit() *Lit {
	l := &Lit{Kind: p.tok.Kind, Pos: p.tok.Pos, Text: p.tok.Text, Value: p.tok.Value}
	if l.Kind == Ident || l.Kind == Int || l.Kind == Duration || l.Kind == Clock || l.Kind == Timestamp {
		l.Value = l.Text
	}
	p.next()
	return l
}

func (p *parser) expectString(what string) *Lit {
	if p.tok.Kind != String && p.tok.Kind != RawString {
		hint := ""
		if p.tok.Kind == Ident {
			hint = "put it in quotes: \"" + p.tok.Text + "\""
		}
		p.errorf(p.tok.Pos, hint, "expected %s (a string), found %s", what, p.tok.describe())
		return nil
	}
	return p.lit()
}

func (p *parser) expectKind(k Kind, what string) *Lit {
	if p.tok.Kind != k {
		p.errExpected(what)
		return nil
	}
	return p.lit()
}

func (p *parser) expectWord(what string, choices []string) *Lit {
	if p.tok.Kind != Ident {
		// Free words (choices == nil) have no list to offer as a hint.
		hint := ""
		if choices != nil {
			hint = "expected one of: " + strings.Join(choices, ", ")
		}
		p.errorf(p.tok.Pos, hint, "expected %s, found %s", what, p.tok.describe())
		return nil
	}
	if choices != nil && !slices.Contains(choices, p.tok.Text) {
		// "expected a verdict, found `x`": the message used to read
		// "unknown a verdict `x`", which is neither English nor the
		// "expected … found …" form every other diagnostic has.
		p.errorf(p.tok.Pos, didYouMean(p.tok.Text, choices), "expected %s, found %s", what, p.tok.describe())
		p.next()
		return nil
	}
	return p.lit()
}

func (p *parser) expectPunct(k Kind, context string) bool {
	if p.tok.Kind != k {
		p.errorf(p.tok.Pos, "", "expected %s %s, found %s", k, context, p.tok.describe())
		return false
	}
	p.next()
	return true
}

// ParseFile parses one .pam file. It returns the tree (possibly partial)
// and every error found, in position order.
func ParseFile(name, src string) (*File, ErrorList) {
	p := newParser(src)
	f := &File{Name: name}
	for p.tok.Kind != EOF {
		if p.tok.Kind == Ident && slices.Contains(DeclKinds, p.tok.Text) {
			if b := p.parseBlock(); b != nil {
				f.Decls = append(f.Decls, b)
			}
			continue
		}
		hint := "a file holds rule, signers, policy, settings, test and org declarations"
		if p.tok.Kind == Ident {
			if s := suggest(p.tok.Text, DeclKinds); s != "" {
				hint = "did you mean `" + s + "`?"
			}
		}
		p.errorf(p.tok.Pos, hint, "expected a declaration (rule, signers, policy, settings, test, org), found %s", p.tok.describe())
		p.next()
		for p.tok.Kind != EOF && !(p.tok.First && p.tok.Kind == Ident && slices.Contains(DeclKinds, p.tok.Text)) {
			p.next()
		}
	}
	f.Tail = p.pending
	p.errs.Sort()
	return f, p.errs
}

func (p *parser) parseBlock() *Block {
	d := p.begin()
	b := &Block{Decor: d, Kind: p.tok.Text, KwPos: p.tok.Pos}
	p.next()
	if b.Kind != KindSettings {
		what := "the " + b.Kind + "'s name"
		if b.Kind == KindSigners {
			what = "the signer group's name"
		}
		b.Label = p.expectString(what)
		if b.Label == nil && p.tok.Kind != LBrace {
			p.skipToDecl()
			return nil
		}
	}
	if b.Kind == KindOrg {
		p.end(&b.Decor)
		return b
	}
	if p.tok.Kind != LBrace {
		p.errorf(p.tok.Pos, "", "expected `{` to open the %s, found %s", b.Kind, p.tok.describe())
		p.skipToDecl()
		return nil
	}
	lb := p.tok.Pos
	p.next()
	if b.Kind == KindSettings {
		b.Body = p.parseBodyRest(nil, lb)
		b.Close = b.Body.Rbrace
		p.end(&b.Decor)
		return b
	}
	specs := blockFields[b.Kind]
	seen := map[string]Pos{}
	for p.tok.Kind != RBrace && p.tok.Kind != EOF {
		if p.tok.Kind != Ident {
			p.errorf(p.tok.Pos, "", "expected a %s field (%s), found %s", b.Kind, strings.Join(FieldNames(b.Kind), ", "), p.tok.describe())
			p.skipLine()
			continue
		}
		spec, ok := specs[p.tok.Text]
		if !ok {
			// A new declaration: the closing brace is missing. `settings`
			// counts too (a test's settings field was matched above).
			if p.tok.First && slices.Contains(DeclKinds, p.tok.Text) {
				break
			}
			p.errorf(p.tok.Pos, fieldHint(b.Kind, p.tok.Text), "unknown field `%s` in %s", p.tok.Text, b.Kind)
			p.skipLine()
			continue
		}
		if prev, dup := seen[p.tok.Text]; dup && !spec.repeat {
			p.errorf(p.tok.Pos, "remove one of them", "duplicate field `%s` (first set at %s)", p.tok.Text, prev)
		} else if !dup {
			// Keep the first position: overwriting it made a third
			// duplicate say it was "first set" at the second.
			seen[p.tok.Text] = p.tok.Pos
		}
		if fl := p.parseField(spec); fl != nil {
			b.Fields = append(b.Fields, fl)
		}
	}
	b.Inner = p.pending
	p.pending = nil
	b.Close = p.tok.Pos
	if p.tok.Kind != RBrace {
		what := b.Kind
		if b.Label != nil {
			what += " " + b.Label.describe()
		}
		p.errorf(p.tok.Pos, "add `}` after the last field", "expected `}` to close %s, found %s", what, p.tok.describe())
	} else {
		p.next()
	}
	p.end(&b.Decor)
	return b
}

// fieldHint suggests the fix for an unknown field: a close field name, or,
// in a rule, for a criterion written as a field (`signer "x"`, a common
// slip), the condition to write instead, rather than a list of fields
// that does not mention conditions at all.
func fieldHint(kind, word string) string {
	if kind == KindRule && suggest(word, FieldNames(kind)) == "" {
		if c := suggest(word, Criteria); c != "" {
			return "`" + c + "` is a condition: write `when " + c + " " + criterionOps[c][0] + " …`"
		}
	}
	return didYouMean(word, FieldNames(kind))
}

// describe renders a literal for a message on one line: a string by its
// quoted value (Quote never writes a line break), shortened, rather than
// its source text, which for a raw string may span lines.
func (l *Lit) describe() string {
	switch {
	case l == nil:
		return ""
	case l.Kind == String || l.Kind == RawString:
		return abbrev(Quote(l.Value), 40)
	}
	return l.Text
}

func (p *parser) skipToDecl() {
	for p.tok.Kind != EOF && !(p.tok.First && p.tok.Kind == Ident && slices.Contains(DeclKinds, p.tok.Text)) {
		p.next()
	}
}

// parseField parses `key value`; the value must end its line.
func (p *parser) parseField(spec fieldSpec) *Field {
	d := p.begin()
	f := &Field{Decor: d, Key: p.tok.Text, KeyPos: p.tok.Pos}
	p.next()
	nerr := len(p.errs)
	var v Value
	switch spec.kind {
	case fString:
		if l := p.expectString("a value for `" + f.Key + "`"); l != nil {
			v = l
		}
	case fInt:
		if l := p.expectKind(Int, "a whole number for `"+f.Key+"`"); l != nil {
			v = l
		}
	case fBool:
		if l := p.expectWord("`true` or `false` for `"+f.Key+"`", []string{"true", "false"}); l != nil {
			v = l
		}
	case fWord:
		if l := p.expectWord("a value for `"+f.Key+"`", nil); l != nil {
			v = l
		}
	case fTime:
		if l := p.expectKind(Timestamp, "an RFC 3339 timestamp like 2026-06-15T10:00:00+01:00"); l != nil {
			v = l
		}
	case fCond:
		if x := p.parseExpr(); x != nil {
			v = &Cond{X: x}
		}
	case fWindow:
		if w := p.parseWindow(); w != nil {
			v = w
		}
	case fThen:
		if t := p.parseThen(); t != nil {
			v = t
		}
	case fExpect:
		if e := p.parseExpect(); e != nil {
			v = e
		}
	case fEntry:
		if e := p.parseEntry(f.Key); e != nil {
			v = e
		}
	case fBody:
		if p.tok.Kind != LBrace {
			p.errorf(p.tok.Pos, "", "expected `{` after `%s`, found %s", f.Key, p.tok.describe())
		} else {
			lb := p.tok.Pos
			p.next()
			v = p.parseBodyRest(nil, lb)
		}
	case fFeature:
		if label := p.expectWord("a feature name", nil); label != nil {
			if p.tok.Kind != LBrace {
				p.errorf(p.tok.Pos, "", "expected `{` after `feature %s`, found %s", label.Text, p.tok.describe())
			} else {
				lb := p.tok.Pos
				p.next()
				v = p.parseBodyRest(label, lb)
			}
		}
	case fAssign:
		if a := p.parseAssign(); a != nil {
			v = a
		}
	}
	if len(p.errs) > nerr || v == nil {
		if !p.tok.First && p.tok.Kind != RBrace {
			p.skipLine()
		}
		// A condition goes on over lines that start with `and` or `or`;
		// skip them too rather than report each as an unknown field.
		for spec.kind == fCond && p.tok.First && (p.isWord("and") || p.isWord("or")) {
			p.skipLine()
		}
		p.pending = append(d.Lead, p.pending...)
		return nil
	}
	if p.tok.Kind != EOF && p.tok.Kind != RBrace && !p.tok.First {
		p.errorf(p.tok.Pos, "put each field on its own line", "unexpected %s after the value of `%s`", p.tok.describe(), f.Key)
		p.skipLine()
	}
	f.Value = v
	p.end(&f.Decor)
	return f
}

// parseBodyRest parses attributes up to and including the closing brace.
func (p *parser) parseBodyRest(label *Lit, lb Pos) *Body {
	b := &Body{Label: label, Lbrace: lb}
	for p.tok.Kind != RBrace && p.tok.Kind != EOF {
		if p.tok.Kind != Ident {
			p.errorf(p.tok.Pos, "", "expected a setting name, found %s", p.tok.describe())
			p.skipLine()
			continue
		}
		// A declaration keyword not followed by `=` means the body's `}`
		// is missing. This holds mid-line too: accepting `a = 1 rule {}`
		// as a nested body named rule made Format print `rule {}` at the
		// start of a line, where it no longer parsed.
		if slices.Contains(DeclKinds, p.tok.Text) && p.peekKind() != EqSign {
			break
		}
		if a := p.parseAttr(); a != nil {
			b.Attrs = append(b.Attrs, a)
		}
	}
	b.Inner = p.pending
	p.pending = nil
	b.Rbrace = p.tok.Pos
	if p.tok.Kind != RBrace {
		p.errorf(p.tok.Pos, "add `}`", "expected `}` to close the block opened at %s, found %s", lb, p.tok.describe())
	} else {
		p.next()
	}
	return b
}

func (p *parser) peekKind() Kind {
	for j := p.i + 1; j < len(p.toks); j++ {
		if p.toks[j].Kind != LineComment {
			return p.toks[j].Kind
		}
	}
	return EOF
}

func (p *parser) parseAttr() *Attr {
	d := p.begin()
	a := &Attr{Decor: d, Key: p.tok.Text, KeyPos: p.tok.Pos}
	p.next()
	nerr := len(p.errs)
	switch p.tok.Kind {
	case EqSign:
		p.next()
		if p.tok.Kind == LBrack {
			a.Value = p.parseList(func(k Kind) bool { return k != LBrack && k != LBrace && isScalar(k) })
		} else if isScalar(p.tok.Kind) {
			a.Value = p.lit()
		} else {
			p.errorf(p.tok.Pos, "", "expected a value for `%s`, found %s", a.Key, p.tok.describe())
		}
	case String, RawString, LBrace:
		var label *Lit
		if p.tok.Kind != LBrace {
			label = p.lit()
		}
		if p.tok.Kind != LBrace {
			p.errorf(p.tok.Pos, "", "expected `{` after `%s %s`, found %s", a.Key, label.describe(), p.tok.describe())
			break
		}
		lb := p.tok.Pos
		p.next()
		a.Value = p.parseBodyRest(label, lb)
	default:
		p.errorf(p.tok.Pos, "write `"+a.Key+" = value`", "expected `=` after `%s`, found %s", a.Key, p.tok.describe())
	}
	if len(p.errs) > nerr || a.Value == nil {
		if !p.tok.First && p.tok.Kind != RBrace {
			p.skipLine()
		}
		p.pending = append(d.Lead, p.pending...)
		return nil
	}
	p.end(&a.Decor)
	return a
}

func isScalar(k Kind) bool {
	switch k {
	case String, RawString, Int, Duration, Clock, Timestamp, Ident:
		return true
	}
	return false
}

// parseList parses `[a, b, …]` (a trailing comma is allowed).
func (p *parser) parseList(ok func(Kind) bool) *List {
	l := &List{Lbrack: p.tok.Pos}
	p.next()
	for p.tok.Kind != RBrack {
		if !ok(p.tok.Kind) {
			p.errExpected("a list element or `]`")
			return nil
		}
		l.Elems = append(l.Elems, p.lit())
		if p.tok.Kind == Comma {
			p.next()
			continue
		}
		if p.tok.Kind != RBrack {
			p.errExpected("`,` or `]`")
			return nil
		}
	}
	p.next()
	return l
}

func (p *parser) parseWindow() *Window {
	w := &Window{Pos: p.tok.Pos}
	if p.tok.Kind == Ident {
		for {
			from := p.expectWord("a day (mon, tue, wed, thu, fri, sat, sun)", Days)
			if from == nil {
				return nil
			}
			dr := DayRange{From: from}
			if p.tok.Kind == Minus {
				p.next()
				if dr.To = p.expectWord("a day (mon, tue, wed, thu, fri, sat, sun)", Days); dr.To == nil {
					return nil
				}
			}
			w.Days = append(w.Days, dr)
			if p.tok.Kind != Comma {
				break
			}
			p.next()
		}
	}
	if w.Start = p.expectKind(Clock, "a start time like 08:00"); w.Start == nil {
		return nil
	}
	if !p.expectPunct(Minus, "between the start and end times") {
		return nil
	}
	if w.End = p.expectKind(Clock, "an end time like 18:00"); w.End == nil {
		return nil
	}
	if p.tok.Kind == String || p.tok.Kind == RawString {
		w.Zone = p.lit()
	}
	return w
}

func (p *parser) parseThen() *Then {
	t := &Then{Verdict: p.expectWord("a verdict", Verdicts)}
	if t.Verdict == nil {
		return nil
	}
	if p.isWord("for") {
		p.next()
		if t.For = p.expectKind(Duration, "a duration like 30m or 2h"); t.For == nil {
			return nil
		}
	}
	return t
}

func (p *parser) parseExpect() *Expect {
	if p.tok.Kind == Ident && slices.Contains(Verdicts, p.tok.Text) {
		want := map[string]string{"auto_approve": "auto_approved", "auto_deny": "denied", "require_approval": "pending", "ignore": "ignored"}[p.tok.Text]
		p.errorf(p.tok.Pos, "tests expect an outcome: write `"+want+"`", "`%s` is a verdict, not an outcome", p.tok.Text)
		return nil
	}
	e := &Expect{Outcome: p.expectWord("an outcome", Outcomes)}
	if e.Outcome == nil {
		return nil
	}
	if p.isWord("by") {
		p.next()
		switch {
		case p.tok.Kind == String || p.tok.Kind == RawString:
			e.By = p.lit()
		case p.isWord("default") || p.isWord("software_policy"):
			e.By = p.lit()
		default:
			p.errorf(p.tok.Pos, "", "expected a rule name (string), `default` or `software_policy` after `by`, found %s", p.tok.describe())
			return nil
		}
	}
	if p.isWord("for") {
		p.next()
		if e.For = p.expectKind(Duration, "a duration like 30m or 2h"); e.For == nil {
			return nil
		}
	}
	return e
}

func (p *parser) parseEntry(key string) *Entry {
	e := &Entry{}
	if key == "cn" {
		if e.CN = p.expectString("the signer's subject CN"); e.CN == nil {
			return nil
		}
		if !p.isWord("thumbprint") || p.tok.First {
			return e
		}
		p.next()
	}
	if e.Thumb = p.expectString("a 64-hex certificate thumbprint"); e.Thumb == nil {
		return nil
	}
	return e
}

func (p *parser) parseAssign() *Assign {
	levels := []string{"partner", "org", "site", "group", "device"}
	a := &Assign{Level: p.expectWord("an assignment level", levels)}
	if a.Level == nil {
		return nil
	}
	if a.Target = p.expectString("the " + a.Level.Text + " to assign to"); a.Target == nil {
		return nil
	}
	for !p.tok.First && p.tok.Kind == Ident {
		switch p.tok.Text {
		case "priority":
			if a.Priority != nil {
				p.errorf(p.tok.Pos, "", "duplicate `priority`")
			}
			p.next()
			if a.Priority = p.expectKind(Int, "a whole number"); a.Priority == nil {
				return nil
			}
		case "when":
			if a.When != nil {
				p.errorf(p.tok.Pos, "", "duplicate `when`")
			}
			p.next()
			if a.When = p.expectString("a CEL condition over `device`"); a.When == nil {
				return nil
			}
		default:
			p.errorf(p.tok.Pos, didYouMean(p.tok.Text, []string{"priority", "when"}), "unknown assignment option `%s`", p.tok.Text)
			return nil
		}
	}
	return a
}

// ParseExpr parses a condition on its own, as the API's `condition` field
// carries it.
func ParseExpr(src string) (Expr, ErrorList) {
	p := newParser(src)
	x := p.parseExpr()
	if x != nil && p.tok.Kind != EOF {
		p.errorf(p.tok.Pos, "join conditions with `and` or `or`", "unexpected %s after the condition", p.tok.describe())
	}
	if x == nil && len(p.errs) == 0 {
		p.errExpected("a condition")
	}
	p.errs.Sort()
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return x, nil
}

func (p *parser) parseExpr() Expr {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		p.errorf(p.tok.Pos, "split it into several rules", "condition nested too deeply")
		return nil
	}
	x := p.parseAnd()
	for x != nil && p.isWord("or") {
		op := p.tok.Pos
		p.next()
		y := p.parseAnd()
		if y == nil {
			return nil
		}
		x = &Binary{Op: "or", OpPos: op, X: x, Y: y}
	}
	return x
}

func (p *parser) parseAnd() Expr {
	x := p.parseNot()
	for x != nil && p.isWord("and") {
		op := p.tok.Pos
		p.next()
		y := p.parseNot()
		if y == nil {
			return nil
		}
		x = &Binary{Op: "and", OpPos: op, X: x, Y: y}
	}
	return x
}

func (p *parser) parseNot() Expr {
	if p.isWord("not") {
		pos := p.tok.Pos
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			p.errorf(pos, "", "condition nested too deeply")
			return nil
		}
		p.next()
		x := p.parseNot()
		if x == nil {
			return nil
		}
		return &Not{NotPos: pos, X: x}
	}
	return p.parsePrimary()
}

func (p *parser) parsePrimary() Expr {
	switch {
	case p.tok.Kind == LParen:
		lp := p.tok.Pos
		p.next()
		x := p.parseExpr()
		if x == nil {
			return nil
		}
		if !p.expectPunct(RParen, "to close the `(` at "+lp.String()) {
			return nil
		}
		return &Paren{Lparen: lp, X: x}
	case p.isWord("cel"):
		pos := p.tok.Pos
		p.next()
		src := p.expectString("a CEL expression after `cel` (use backquotes: cel `obs.commandLine.contains(\"x\")`)")
		if src == nil {
			return nil
		}
		return &CelAtom{Pos: pos, Src: src}
	case p.tok.Kind == Ident && slices.Contains(Criteria, p.tok.Text):
		return p.parseCompare()
	case p.tok.Kind == Ident:
		p.errorf(p.tok.Pos, didYouMean(p.tok.Text, append(slices.Clone(Criteria), "cel", "not")), "unknown criterion `%s`", p.tok.Text)
		p.next()
		return nil
	}
	p.errorf(p.tok.Pos, "", "expected a condition (a criterion such as signer, path, user; `not`; `(`; or `cel`), found %s", p.tok.describe())
	return nil
}

// operators each criterion accepts.
var criterionOps = map[string][]string{
	"signer": {"==", "!=", "in"}, "thumbprint": {"==", "!=", "in"}, "hash": {"==", "!=", "in"},
	"path": {"~", "!~"}, "parent": {"~", "!~"}, "cmdline": {"contains"},
	"user": {"==", "!=", "in"}, "group": {"==", "!=", "in"}, "tool": {"==", "!=", "in"}, "risk": {"==", "!=", "in"},
}

// CriterionOps returns the operators a criterion accepts.
func CriterionOps(field string) []string { return criterionOps[field] }

func (p *parser) parseCompare() Expr {
	field := p.lit()
	c := &Compare{Field: field, OpPos: p.tok.Pos}
	switch {
	case p.tok.Kind == Eq, p.tok.Kind == Neq, p.tok.Kind == Match, p.tok.Kind == NMatch:
		c.Op = p.tok.Text
	case p.isWord("contains"), p.isWord("in"):
		c.Op = p.tok.Text
	case p.tok.Kind == EqSign:
		p.errorf(p.tok.Pos, "compare with `==`", "expected an operator after `%s`, found `=`", field.Text)
		return nil
	default:
		p.errorf(p.tok.Pos, "", "expected an operator after `%s` (%s), found %s", field.Text, strings.Join(criterionOps[field.Text], ", "), p.tok.describe())
		return nil
	}
	ops := criterionOps[field.Text]
	if !slices.Contains(ops, c.Op) {
		hint := "`" + field.Text + "` takes " + strings.Join(ops, ", ")
		switch {
		case field.Text == "path" || field.Text == "parent":
			hint = "paths match globs with `~` (or `!~`): " + field.Text + " ~ `C:\\Program Files\\**`"
		case field.Text == "cmdline":
			hint = "command lines match by substring: cmdline contains \"/quiet\""
		case c.Op == "~" || c.Op == "!~":
			hint = "`~` is for path globs; compare " + field.Text + " with `==`"
		}
		p.errorf(p.tok.Pos, hint, "operator `%s` does not apply to `%s`", c.Op, field.Text)
		return nil
	}
	p.next()
	wantInt := field.Text == "risk"
	scalar := func() *Lit {
		if wantInt {
			return p.expectKind(Int, "a risk tier (0-4)")
		}
		return p.expectString("a string to compare `" + field.Text + "` with")
	}
	if c.Op == "in" {
		switch {
		case p.tok.Kind == LBrack:
			l := p.parseList(func(k Kind) bool {
				if wantInt {
					return k == Int
				}
				return k == String || k == RawString
			})
			if l == nil {
				return nil
			}
			if len(l.Elems) == 0 {
				p.errorf(l.Lbrack, "", "empty list: `%s in []` can never hold", field.Text)
				return nil
			}
			c.Value = l
		case p.isWord("signers") && field.Text == "signer":
			ref := &SignersRef{Pos: p.tok.Pos}
			p.next()
			if !p.expectPunct(LParen, "after `signers`") {
				return nil
			}
			if ref.Name = p.expectString("a signer group name"); ref.Name == nil {
				return nil
			}
			if !p.expectPunct(RParen, "after the signer group name") {
				return nil
			}
			c.Value = ref
		default:
			want := "a list [\"a\", \"b\"]"
			if field.Text == "signer" {
				want += " or signers(\"group\")"
			}
			p.errorf(p.tok.Pos, "", "expected %s after `in`, found %s", want, p.tok.describe())
			return nil
		}
		return c
	}
	v := scalar()
	if v == nil {
		return nil
	}
	c.Value = v
	return c
}
