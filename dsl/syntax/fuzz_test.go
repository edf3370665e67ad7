package syntax

import (
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// fileSeeds are small files that reach corners of the grammar, the
// formatter and error recovery; the fuzzer starts from them and from the
// corpus files.
var fileSeeds = []string{
	"",
	"# only a comment",
	"org \"a\"",
	"org \"a\"\n# about b\norg \"b\"\n",
	"org \"a\"\n\n# about b\n\norg \"b\"\n",
	"rule \"r\" { priority 1 }",
	"rule \"r\" {\n  when user == \"a\"  # c\n       # d\n       or user == \"b\"\n}\n",
	"rule \"r\" {\n  when not (user == \"a\" or group != \"b\") and risk in [1, 2]\n  during mon-fri,sun 8:00-18:00 \"Europe/London\"\n  then auto_approve for 90m\n}\n",
	"rule \"r\" {\n  when signer in signers(\"g\") and path ~ `C:\\x\\**` and cmdline contains \"/q\"\n}\n",
	"rule \"r\" {\n  description `multi\nline`  # t\n}\n",
	"settings { a = 1 b = [x, \"y\", 3,] c \"l\" { d = 2h } }",
	"settings { a = 1 rule { } }",
	"policy \"p\" {\n  feature pam { uac_interception = true }\n  assign org \"o\" priority 1 when `device.x`\n}\n",
	"signers \"s\" {\n  cn \"A\" thumbprint \"aa\"\n  thumbprint \"bb\"\n}\n",
	"test \"t\" {\n  at 2026-06-15T10:00:00Z\n  observe { user = `acme\\bob` }\n  expect denied by \"r\" for 30m\n}\n",
	"rule \"a\" {\n  priority 1\n\nsettings {\n}\n",
	"rule \"a\" {\n  when signr == \"x\"\n       or user == \"y\"\n}\n",
	"rule \"a\" {\n  priority 1\n  priority 2\n  priority 3\n}\n",
	"test \"t\" {\n  obsrve {\n    a = 1\n  }\n}\n",
	"rule \"r\" {\n  description \"C:\\Users\"\n}\n",
	"rule \"r\" {\n  description \"abc\\\n\"\n}\n",
	"\uFEFFrule \"r\" {\r\n  priority 1\r\n}\r\n",
	"rule \"r\" {\n  when " + strings.Repeat("(", 70) + "user == \"a\"" + strings.Repeat(")", 70) + "\n}\n",
	"rule \"r\" {\n  when " + strings.Repeat("not ", 70) + "user == \"a\"\n}\n",
	"rule \"r\" { then auto_approve for 1000009h999999m }",
}

// exprSeeds are conditions for FuzzParseExpr.
var exprSeeds = []string{
	`user == "a"`,
	`signer == "a" and path ~ ` + "`C:\\x`" + ` or not group != "b"`,
	`not (user == "a" or user == "b") and (tool == "x")`,
	`((risk in [0, 1,]))`,
	`signer in signers("g") or thumbprint in ["aa", "bb"] or hash != "h"`,
	`cmdline contains "/quiet" and parent !~ "*" and cel ` + "`obs.x == \"y\"`",
	"user == \"a\"\n  # c\n  or user == \"b\"",
	`user == "a" extra`,
	`user in []`,
	`path == "x"`,
	strings.Repeat("not ", 80) + `user == "a"`,
	strings.Repeat("(", 80) + `user == "a"` + strings.Repeat(")", 80),
}

// checkTokens checks the lexer's invariants on any input: every token's
// positions agree with its offsets, its text is the source it covers, and
// only white space (or a leading byte order mark) lies between tokens.
func checkTokens(t *testing.T, src string) {
	var errs ErrorList
	toks := tokenize(src, &errs)
	if len(toks) == 0 || toks[len(toks)-1].Kind != EOF {
		t.Fatalf("token list does not end with EOF")
	}
	at := positions(src)
	prev := 0
	for _, tk := range toks {
		if tk.Pos != at(tk.Pos.Offset) || tk.End != at(tk.End.Offset) {
			t.Fatalf("token %q at %+v..%+v: positions disagree with offsets (%+v..%+v)",
				tk.Text, tk.Pos, tk.End, at(tk.Pos.Offset), at(tk.End.Offset))
		}
		if tk.Pos.Offset < prev || tk.End.Offset < tk.Pos.Offset || tk.End.Offset > len(src) {
			t.Fatalf("token %q: offsets %d..%d after %d", tk.Text, tk.Pos.Offset, tk.End.Offset, prev)
		}
		gap := src[prev:tk.Pos.Offset]
		if prev == 0 {
			gap = strings.TrimPrefix(gap, "\uFEFF")
		}
		if strings.Trim(gap, " \t\r\n") != "" {
			t.Fatalf("bytes %q skipped before token %q", gap, tk.Text)
		}
		if src[tk.Pos.Offset:tk.End.Offset] != tk.Text {
			t.Fatalf("token text %q, source %q", tk.Text, src[tk.Pos.Offset:tk.End.Offset])
		}
		if tk.Kind != EOF && tk.Text == "" {
			t.Fatalf("empty %v token", tk.Kind)
		}
		prev = tk.End.Offset
	}
	if prev != len(src) {
		t.Fatalf("EOF at %d of %d", prev, len(src))
	}
}

// positions returns a function computing the position of an offset in src
// in logarithmic time (positionOf scans, which made fuzzing big inputs
// quadratic).
func positions(src string) func(off int) Pos {
	starts := []int{0}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			starts = append(starts, i+1)
		}
	}
	return func(off int) Pos {
		line := sort.Search(len(starts), func(i int) bool { return starts[i] > off }) - 1
		return Pos{Offset: off, Line: line + 1, Col: off - starts[line] + 1}
	}
}

// checkErrors checks that an error list is sorted, has one error per
// position, and that each position is real.
func checkErrors(t *testing.T, src string, errs ErrorList) {
	at := positions(src)
	for i, e := range errs {
		if e.Pos.Offset > len(src) || e.Pos != at(e.Pos.Offset) {
			t.Fatalf("error %q at %+v: position disagrees with its offset", e.Msg, e.Pos)
		}
		if e.Msg == "" || strings.ContainsAny(e.Msg+e.Hint, "\r\n") {
			t.Fatalf("bad message %q", e.Msg)
		}
		if i > 0 && errs[i-1].Pos.Offset >= e.Pos.Offset {
			t.Fatalf("errors out of order or repeated: %v", errs)
		}
	}
}

func FuzzParseFile(f *testing.F) {
	for _, src := range corpus(f) {
		f.Add(src)
	}
	for _, src := range fileSeeds {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		checkTokens(t, src)
		tree, errs := ParseFile("fuzz.pam", src)
		checkErrors(t, src, errs)
		_ = Format(tree) // a partial tree prints without panicking
		if len(errs) > 0 {
			return
		}
		checkFormat(t, src)
	})
}

func FuzzParseExpr(f *testing.F) {
	for _, src := range exprSeeds {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		x, errs := ParseExpr(src)
		checkErrors(t, src, errs)
		if len(errs) > 0 {
			if x != nil {
				t.Fatalf("ParseExpr returned a tree and errors")
			}
			return
		}
		s1 := FormatExpr(x)
		x2, errs := ParseExpr(s1)
		if len(errs) > 0 {
			t.Fatalf("FormatExpr(ParseExpr(%q)) = %q does not parse: %v", src, s1, errs)
		}
		if s2 := FormatExpr(x2); s2 != s1 {
			t.Fatalf("FormatExpr not stable:\n%s\n%s", s1, s2)
		}
		if diff := cmp.Diff(x, x2, sameMeaning); diff != "" {
			t.Fatalf("round trip changed the tree (-first +second):\n%s", diff)
		}
		// The condition prints and parses back the same inside a rule,
		// where long conditions are broken over lines.
		file := &File{Decls: []*Block{{Kind: KindRule, Label: &Lit{Kind: String, Value: "r"},
			Fields: []*Field{{Key: "when", Value: &Cond{X: x}}}}}}
		out := string(Format(file))
		back, errs := ParseFile("fuzz.pam", out)
		if len(errs) > 0 {
			t.Fatalf("rule with the condition does not parse: %v\n%s", errs, out)
		}
		if diff := cmp.Diff(x, back.Decls[0].FieldOf("when").Value.(*Cond).X, sameMeaning); diff != "" {
			t.Fatalf("condition changed inside a rule:\n%s\n%s", diff, out)
		}
	})
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "plain", `C:\Users\*`, `say "hi"`, "back`quote\\", "a\nb\tc\rd", "\x00\x7f\ufffd", "é→", "\xff", "\\u0041"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if utf8.ValidString(s) {
			checkQuote(t, s)
			// And in context: a quoted value survives a condition's round trip.
			x := mustParseExpr(t, "user == "+Quote(s))
			if got := x.(*Compare).Value.(*Lit).Value; got != s {
				t.Fatalf("user == Quote(%q) parses to %q", s, got)
			}
			return
		}
		// Invalid UTF-8 cannot round-trip; Quote still writes a valid
		// literal, with U+FFFD for each bad byte.
		q := Quote(s)
		toks, errs := lex(q)
		if len(errs) > 0 || len(toks) != 2 || toks[0].Value != string([]rune(s)) {
			t.Fatalf("Quote(%q) = %s lexes to %v, errors %v", s, q, toks, errs)
		}
	})
}

func FuzzDuration(f *testing.F) {
	for _, s := range []string{"30m", "2h", "1h30m", "90m", "0m", "1000009h999999m", "60000000m", "1000000h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := ParseDuration(s)
		if !ok {
			return
		}
		if m < 0 || m > maxDurationMinutes {
			t.Fatalf("ParseDuration(%q) = %d", s, m)
		}
		c := FormatDuration(m)
		back, ok := ParseDuration(c)
		if !ok || back != m {
			t.Fatalf("ParseDuration(%q) = %d, FormatDuration = %q, which parses to %d, %v", s, m, c, back, ok)
		}
		if FormatDuration(back) != c {
			t.Fatalf("canonical form %q is not stable", c)
		}
	})
}
