package syntax

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// lineWidth is where a long condition is broken at its top-level
// `and`/`or` operators.
const lineWidth = 100

// Format prints a file in the one canonical layout. The output depends only
// on the tree (values, comments and blank-line separation), so formatting
// formatted text changes nothing.
func Format(f *File) []byte {
	pr := &printer{}
	for i, d := range f.Decls {
		if i > 0 {
			pr.nl()
		}
		// The blank line above already separates this declaration from
		// the previous one; a blank flag on its first comment must not add
		// a second. (With top = i == 0 a comment directly under a block
		// printed after one blank line, re-parsed with its blank flag set
		// and printed after two: Format was not idempotent.)
		pr.lead(d.Lead, 0, true)
		if d.Blank && len(d.Lead) > 0 {
			pr.nl()
		}
		pr.block(d)
	}
	if len(f.Tail) > 0 {
		if len(f.Decls) > 0 {
			pr.nl()
		}
		pr.lead(f.Tail, 0, true)
	}
	return []byte(pr.b.String())
}

// FormatExpr prints a condition on one line, as the API stores it.
func FormatExpr(x Expr) string {
	var b strings.Builder
	writeExpr(&b, x, 0)
	return b.String()
}

type printer struct{ b strings.Builder }

func (pr *printer) nl() { pr.b.WriteByte('\n') }

func (pr *printer) indent(n int) { pr.b.WriteString(strings.Repeat("  ", n)) }

// lead prints comment lines at an indentation, keeping single blank lines
// between groups of comments (but never at the top of a block or file).
func (pr *printer) lead(cs []*Comment, depth int, top bool) {
	for i, c := range cs {
		if c.Blank && !(top && i == 0) {
			pr.nl()
		}
		pr.indent(depth)
		pr.b.WriteString("#" + c.Text)
		pr.nl()
	}
}

func (pr *printer) trail(c *Comment) {
	if c != nil {
		pr.b.WriteString("  #" + c.Text)
	}
}

func (pr *printer) block(d *Block) {
	pr.b.WriteString(d.Kind)
	if d.Label != nil {
		pr.b.WriteString(" " + Quote(d.Label.Value))
	}
	if d.Kind == KindOrg {
		pr.trail(d.Trail)
		pr.nl()
		return
	}
	if d.Kind == KindSettings {
		pr.b.WriteString(" ")
		pr.body(d.Body, 0)
		pr.trail(d.Trail)
		pr.nl()
		return
	}
	pr.b.WriteString(" {")
	pr.nl()
	width := 0
	for _, f := range d.Fields {
		if _, isBody := f.Value.(*Body); !isBody {
			width = max(width, len(f.Key))
		}
	}
	for i, f := range d.Fields {
		pr.decorated(f.Decor, i == 0, 1)
		pr.indent(1)
		pr.b.WriteString(f.Key)
		if b, isBody := f.Value.(*Body); isBody {
			pr.b.WriteString(" ")
			pr.body(b, 1)
		} else {
			pr.b.WriteString(strings.Repeat(" ", width-len(f.Key)+1))
			pr.value(f.Value, 2+width+1)
		}
		pr.trail(f.Trail)
		pr.nl()
	}
	pr.inner(d.Inner, len(d.Fields) == 0, 1)
	pr.b.WriteString("}")
	pr.trail(d.Trail)
	pr.nl()
}

// decorated prints the blank line and leading comments of a field or
// attribute.
func (pr *printer) decorated(d Decor, first bool, depth int) {
	if !first && len(d.Lead) > 0 && d.Lead[0].Blank {
		pr.nl()
		pr.lead(d.Lead, depth, true)
	} else {
		pr.lead(d.Lead, depth, first)
	}
	if d.Blank && (!first || len(d.Lead) > 0) {
		pr.nl()
	}
}

func (pr *printer) inner(cs []*Comment, first bool, depth int) {
	if len(cs) == 0 {
		return
	}
	if cs[0].Blank && !first {
		pr.nl()
	}
	pr.lead(cs, depth, true)
}

// body prints `{ … }` starting at the current column; depth is the
// indentation of the line that opens it.
func (pr *printer) body(b *Body, depth int) {
	if b.Label != nil {
		pr.b.WriteString(labelText(b.Label) + " ")
	}
	if len(b.Attrs) == 0 && len(b.Inner) == 0 {
		pr.b.WriteString("{}")
		return
	}
	pr.b.WriteString("{")
	pr.nl()
	width := 0
	for _, a := range b.Attrs {
		if _, nested := a.Value.(*Body); !nested {
			width = max(width, len(a.Key))
		}
	}
	for i, a := range b.Attrs {
		pr.decorated(a.Decor, i == 0, depth+1)
		pr.indent(depth + 1)
		pr.b.WriteString(a.Key)
		if nb, nested := a.Value.(*Body); nested {
			pr.b.WriteString(" ")
			pr.body(nb, depth+1)
		} else {
			pr.b.WriteString(strings.Repeat(" ", width-len(a.Key)) + " = ")
			pr.value(a.Value, 0)
		}
		pr.trail(a.Trail)
		pr.nl()
	}
	pr.inner(b.Inner, len(b.Attrs) == 0, depth+1)
	pr.indent(depth)
	pr.b.WriteString("}")
}

// labelText prints a body label: a word stays a word, a string is quoted.
func labelText(l *Lit) string {
	if l.Kind == Ident {
		return l.Text
	}
	return Quote(l.Value)
}

// value prints a field value; col is the column the value starts at, used
// to align continuation lines of a long condition.
func (pr *printer) value(v Value, col int) {
	switch v := v.(type) {
	case *Lit:
		pr.b.WriteString(litText(v))
	case *List:
		pr.b.WriteString(listText(v))
	case *Cond:
		pr.cond(v.X, col)
	case *Window:
		pr.b.WriteString(WindowText(v))
	case *Then:
		pr.b.WriteString(v.Verdict.Text)
		if v.For != nil {
			pr.b.WriteString(" for " + litText(v.For))
		}
	case *Expect:
		pr.b.WriteString(v.Outcome.Text)
		if v.By != nil {
			pr.b.WriteString(" by " + litText(v.By))
		}
		if v.For != nil {
			pr.b.WriteString(" for " + litText(v.For))
		}
	case *Entry:
		if v.CN != nil {
			pr.b.WriteString(Quote(v.CN.Value))
			if v.Thumb != nil {
				pr.b.WriteString(" thumbprint " + Quote(v.Thumb.Value))
			}
		} else {
			pr.b.WriteString(Quote(v.Thumb.Value))
		}
	case *Assign:
		pr.b.WriteString(v.Level.Text + " " + Quote(v.Target.Value))
		if v.Priority != nil {
			pr.b.WriteString(" priority " + v.Priority.Text)
		}
		if v.When != nil {
			pr.b.WriteString(" when " + Quote(v.When.Value))
		}
	}
}

// cond prints a condition, breaking a long top-level chain of the same
// operator one operand per line, aligned under the first.
func (pr *printer) cond(x Expr, col int) {
	one := FormatExpr(x)
	if col+utf8.RuneCountInString(one) <= lineWidth || !isChain(x) {
		pr.b.WriteString(one)
		return
	}
	bin := x.(*Binary)
	ops := flatten(bin.Op, x)
	pad := "\n" + strings.Repeat(" ", col)
	for i, o := range ops {
		if i > 0 {
			pr.b.WriteString(pad + bin.Op + " ")
		}
		writeExpr(&pr.b, o, precOf(bin.Op))
	}
}

func isChain(x Expr) bool { _, ok := x.(*Binary); return ok }

// flatten lists the operands of a chain of one operator.
func flatten(op string, x Expr) []Expr {
	if b, ok := x.(*Binary); ok && b.Op == op {
		return append(flatten(op, b.X), flatten(op, b.Y)...)
	}
	return []Expr{x}
}

func precOf(op string) int {
	if op == "or" {
		return 1
	}
	return 2
}

// writeExpr prints x; ctx is the binding strength of the surrounding
// operator (0 none, 1 or, 2 and, 3 not), so trees built by code rather
// than parsed get the parentheses their structure needs.
func writeExpr(b *strings.Builder, x Expr, ctx int) {
	switch x := x.(type) {
	case *Binary:
		p := precOf(x.Op)
		if ctx > p {
			b.WriteString("(")
		}
		writeExpr(b, x.X, p)
		b.WriteString(" " + x.Op + " ")
		writeExpr(b, x.Y, p)
		if ctx > p {
			b.WriteString(")")
		}
	case *Not:
		b.WriteString("not ")
		writeExpr(b, x.X, 3)
	case *Paren:
		b.WriteString("(")
		writeExpr(b, x.X, 0)
		b.WriteString(")")
	case *Compare:
		b.WriteString(x.Field.Text + " " + x.Op + " ")
		switch v := x.Value.(type) {
		case *Lit:
			b.WriteString(litText(v))
		case *List:
			b.WriteString(listText(v))
		case *SignersRef:
			b.WriteString("signers(" + Quote(v.Name.Value) + ")")
		}
	case *CelAtom:
		b.WriteString("cel " + Quote(x.Src.Value))
	}
}

func litText(l *Lit) string {
	switch l.Kind {
	case String, RawString:
		return Quote(l.Value)
	case Duration:
		if m, ok := ParseDuration(l.Text); ok {
			return FormatDuration(m)
		}
	}
	return l.Text
}

func listText(l *List) string {
	parts := make([]string, len(l.Elems))
	for i, e := range l.Elems {
		parts[i] = litText(e)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// WindowText prints a time window: `mon-fri 08:00-18:00 "Europe/London"`.
func WindowText(w *Window) string {
	var b strings.Builder
	for i, d := range w.Days {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(d.From.Text)
		if d.To != nil {
			b.WriteString("-" + d.To.Text)
		}
	}
	if len(w.Days) > 0 {
		b.WriteString(" ")
	}
	b.WriteString(w.Start.Text + "-" + w.End.Text)
	if w.Zone != nil {
		b.WriteString(" " + Quote(w.Zone.Value))
	}
	return b.String()
}

// Quote renders a string value as a literal: a raw string when the value
// holds backslashes or double quotes and can be written raw (Windows paths
// stay readable), a double-quoted string otherwise.
func Quote(s string) string {
	rawable := !strings.ContainsAny(s, "`") && utf8.ValidString(s)
	for _, r := range s {
		if hidden(r) {
			rawable = false
		}
	}
	if rawable && strings.ContainsAny(s, `\"`) {
		return "`" + s + "`"
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			switch {
			case !hidden(r):
				b.WriteRune(r)
			case r <= 0xFFFF:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// hidden reports characters a reviewer could not see in a rule file:
// control and format characters (bidirectional overrides, zero-width
// joiners), unassigned code points and U+FFFD. Quote escapes them, so a
// formatted file shows what a string really holds.
func hidden(r rune) bool {
	return r == utf8.RuneError || r != ' ' && !unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r)
}

// maxDurationMinutes bounds durations far beyond any real approval. The
// bound is on the value, not on the digits: a digit limit accepted
// 1000009h999999m, whose canonical form 1016675h39m it then rejected, so
// FormatDuration's output did not always parse back. With the total
// bounded, every accepted duration's canonical form is accepted too, and
// the arithmetic stays within a 32-bit int.
const maxDurationMinutes = 60 * 1000000

// ParseDuration reads `30m`, `2h`, `1h30m` as minutes.
func ParseDuration(s string) (int, bool) {
	total, n, seen := 0, 0, ""
	digits := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isDigit(c):
			n = n*10 + int(c-'0')
			if n > maxDurationMinutes {
				return 0, false
			}
			digits = true
		case (c == 'h' || c == 'm') && digits && !strings.ContainsRune(seen, rune(c)) && !(c == 'h' && seen != ""):
			if c == 'h' {
				if n > maxDurationMinutes/60 {
					return 0, false
				}
				n *= 60
			}
			total += n
			n, digits = 0, false
			seen += string(c)
		default:
			return 0, false
		}
	}
	if digits || seen == "" || total > maxDurationMinutes {
		return 0, false
	}
	return total, true
}

// FormatDuration prints minutes in the canonical spelling: 90 → 1h30m.
func FormatDuration(m int) string {
	switch {
	case m >= 60 && m%60 == 0:
		return strconv.Itoa(m/60) + "h"
	case m > 60:
		return strconv.Itoa(m/60) + "h" + strconv.Itoa(m%60) + "m"
	}
	return strconv.Itoa(m) + "m"
}
