package syntax

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// ignorePos compares trees exactly except for positions.
var ignorePos = cmpopts.IgnoreTypes(Pos{})

// sameMeaning compares trees as the formatter sees them: positions and
// blank-line flags do not matter, and literals compare by their canonical
// spelling (a string by its value, not by quoted or raw form; a duration
// by its minutes).
var sameMeaning = cmp.Options{
	cmpopts.IgnoreTypes(Pos{}),
	cmpopts.IgnoreFields(Comment{}, "Blank"),
	cmpopts.IgnoreFields(Decor{}, "Blank"),
	cmp.Comparer(func(a, b *Lit) bool {
		if a == nil || b == nil {
			return a == b
		}
		return litText(a) == litText(b)
	}),
}

// corpus returns the hand-written .pam files under testdata/corpus.
func corpus(t testing.TB) map[string]string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.pam"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = string(b)
	}
	return out
}

// mustParse parses src and fails the test on any error.
func mustParse(t testing.TB, src string) *File {
	t.Helper()
	f, errs := ParseFile("test.pam", src)
	if len(errs) > 0 {
		t.Fatalf("unexpected errors:\n%v\nin:\n%s", errs, src)
	}
	return f
}

// mustParseExpr parses a condition and fails the test on any error.
func mustParseExpr(t testing.TB, src string) Expr {
	t.Helper()
	x, errs := ParseExpr(src)
	if len(errs) > 0 {
		t.Fatalf("ParseExpr(%q): unexpected errors:\n%v", src, errs)
	}
	return x
}

// sexpr renders an expression tree with its structure made explicit, so
// tests can pin precedence and grouping.
func sexpr(x Expr) string {
	switch x := x.(type) {
	case *Binary:
		return "(" + x.Op + " " + sexpr(x.X) + " " + sexpr(x.Y) + ")"
	case *Not:
		return "(not " + sexpr(x.X) + ")"
	case *Paren:
		return "[" + sexpr(x.X) + "]"
	case *Compare:
		var v string
		switch o := x.Value.(type) {
		case *Lit:
			v = litText(o)
		case *List:
			v = listText(o)
		case *SignersRef:
			v = "signers(" + Quote(o.Name.Value) + ")"
		}
		if x.Op == "in" || x.Op == "contains" {
			return x.Field.Text + " " + x.Op + " " + v
		}
		return x.Field.Text + x.Op + v
	case *CelAtom:
		return "cel(" + x.Src.Value + ")"
	case nil:
		return "<nil>"
	}
	return fmt.Sprintf("<%T>", x)
}

// comments lists the text of every comment in a file tree, in the order
// the printer emits them.
func comments(f *File) []string {
	var out []string
	add := func(cs ...*Comment) {
		for _, c := range cs {
			if c != nil {
				out = append(out, c.Text)
			}
		}
	}
	var body func(b *Body)
	body = func(b *Body) {
		for _, a := range b.Attrs {
			add(a.Lead...)
			if nb, ok := a.Value.(*Body); ok {
				body(nb)
			}
			add(a.Trail)
		}
		add(b.Inner...)
	}
	for _, d := range f.Decls {
		add(d.Lead...)
		if d.Body != nil {
			body(d.Body)
		}
		for _, fl := range d.Fields {
			add(fl.Lead...)
			if b, ok := fl.Value.(*Body); ok {
				body(b)
			}
			add(fl.Trail)
		}
		add(d.Inner...)
		add(d.Trail)
	}
	add(f.Tail...)
	return out
}

// sourceComments lists the text of every comment token in src.
func sourceComments(src string) []string {
	var errs ErrorList
	var out []string
	for _, t := range tokenize(src, &errs) {
		if t.Kind == LineComment {
			out = append(out, t.Value)
		}
	}
	return out
}

// errorStrings renders an error list one error per element.
func errorStrings(errs ErrorList) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

// numbered prefixes each line with its number, for readable failures.
func numbered(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = fmt.Sprintf("%3d| %s", i+1, lines[i])
	}
	return strings.Join(lines, "\n")
}
