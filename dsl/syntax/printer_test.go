package syntax

import (
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the testdata/corpus/*.golden files")

// checkFormat checks everything Format promises for one clean source and
// returns the formatted text: the output parses without errors, formatting
// it again changes nothing, it means the same tree, and no comment is lost.
func checkFormat(t testing.TB, src string) string {
	t.Helper()
	f0, errs := ParseFile("a.pam", src)
	if len(errs) > 0 {
		t.Fatalf("source does not parse:\n%v", errs)
	}
	f1 := string(Format(f0))
	t1, errs := ParseFile("a.pam", f1)
	if len(errs) > 0 {
		t.Fatalf("formatted output does not parse:\n%v\noutput:\n%s", errs, numbered(f1))
	}
	if f2 := string(Format(t1)); f2 != f1 {
		t.Fatalf("Format is not idempotent:\n%s", cmp.Diff(f1, f2))
	}
	if diff := cmp.Diff(f0, t1, sameMeaning); diff != "" {
		t.Fatalf("formatting changed the tree (-source +formatted):\n%s\noutput:\n%s", diff, numbered(f1))
	}
	if got, want := sourceComments(f1), sourceComments(src); !cmp.Equal(got, want) {
		t.Fatalf("comments changed:\n%s", cmp.Diff(want, got))
	}
	if got, want := comments(f0), sourceComments(src); !cmp.Equal(got, want) {
		t.Fatalf("comments in the tree differ from the source:\n%s", cmp.Diff(want, got))
	}
	if strings.Contains(f1, "\n\n\n") || strings.HasPrefix(f1, "\n") {
		t.Fatalf("more than one blank line in a row, or a leading one:\n%s", numbered(f1))
	}
	if f1 != "" && !strings.HasSuffix(f1, "\n") {
		t.Fatalf("output does not end in a newline")
	}
	for i, line := range strings.Split(f1, "\n") {
		if strings.TrimRight(line, " \t") != line {
			t.Fatalf("line %d has trailing white space: %q", i+1, line)
		}
	}
	return f1
}

func TestFormatCorpus(t *testing.T) {
	for name, src := range corpus(t) {
		t.Run(name, func(t *testing.T) {
			got := checkFormat(t, src)
			golden := filepath.Join("testdata", "corpus", strings.TrimSuffix(name, ".pam")+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestFormatCorpus -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Format (-golden +got):\n%s", diff)
			}
			// The golden file is itself canonical.
			if again := checkFormat(t, string(want)); again != string(want) {
				t.Errorf("golden file is not in canonical form")
			}
		})
	}
}

func TestFormatLayout(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty file", "", ""},
		{"only blank lines", "\n\n\n", ""},
		{"only comments", "\n\n# a\n\n\n# b\n", "# a\n\n# b\n"},
		{
			"declarations are separated by one blank line",
			"org \"a\"\norg \"b\"\n\n\n\norg \"c\"",
			"org \"a\"\n\norg \"b\"\n\norg \"c\"\n",
		},
		{
			"blank line before a declaration's comment stays single",
			"org \"a\"\n\n# about b\norg \"b\"\n",
			"org \"a\"\n\n# about b\norg \"b\"\n",
		},
		{
			"many blank lines before a declaration's comment",
			"org \"a\"\n\n\n\n# about b\n\n\n\norg \"b\"\n",
			"org \"a\"\n\n# about b\n\norg \"b\"\n",
		},
		{
			"comment directly under a declaration",
			"org \"a\"\n# about b\norg \"b\"\n",
			"org \"a\"\n\n# about b\norg \"b\"\n",
		},
		{
			"header comment keeps its blank line",
			"# header\n\norg \"a\"\n",
			"# header\n\norg \"a\"\n",
		},
		{
			"file starting with blank lines",
			"\n\n\n# header\norg \"a\"\n",
			"# header\norg \"a\"\n",
		},
		{
			"tail comments",
			"org \"a\"\n# tail\n\n\n# more\n",
			"org \"a\"\n\n# tail\n\n# more\n",
		},
		{
			"comment text is kept, trailing space is not",
			"#no space   \n#\n#   indented\norg \"a\"",
			"#no space\n#\n#   indented\norg \"a\"\n",
		},
		{
			"keys are aligned, blank lines kept single",
			"rule \"r\" {\n\n\n  priority 1\n\n\n\n  when user == \"a\"\n  then auto_deny\n\n}\n",
			"rule \"r\" {\n  priority 1\n\n  when     user == \"a\"\n  then     auto_deny\n}\n",
		},
		{
			"comments in a block",
			"rule \"r\" { # open\n\n  # lead\n  priority 1 # trail\n\n\n  # after blank\n\n  then auto_deny\n  # inner\n\n  # inner after blank\n} # close\n",
			"rule \"r\" {\n  # open\n\n  # lead\n  priority 1  # trail\n\n  # after blank\n\n  then     auto_deny\n  # inner\n\n  # inner after blank\n}  # close\n",
		},
		{
			"empty blocks",
			"rule \"r\" {}\nsettings {}\ntest \"t\" { observe {} }",
			"rule \"r\" {\n}\n\nsettings {}\n\ntest \"t\" {\n  observe {}\n}\n",
		},
		{
			"only comments in blocks",
			"rule \"r\" {\n\n  # c\n}\nsettings {\n\n  # d\n}\n",
			"rule \"r\" {\n  # c\n}\n\nsettings {\n  # d\n}\n",
		},
		{
			"one-line blocks are spread out",
			"rule \"r\" { priority 1 }\nsettings { a = 1 bb = [x,y,] c { d = \"e\" } }\n",
			"rule \"r\" {\n  priority 1\n}\n\nsettings {\n  a  = 1\n  bb = [x, y]\n  c {\n    d = \"e\"\n  }\n}\n",
		},
		{
			"bodies are not aligned with scalar fields",
			"test \"t\" {\n  at 2026-01-01T00:00:00Z\n  observe {\n    user = \"a\"\n  }\n  expect denied\n}\n",
			"test \"t\" {\n  at     2026-01-01T00:00:00Z\n  observe {\n    user = \"a\"\n  }\n  expect denied\n}\n",
		},
		{
			"canonical spacing in values",
			"rule \"r\" {\n  when   not(user==\"a\"or group !=\"b\")and risk in[1,2,]\n  during  mon - fri , sun   8:00 - 18:00   `Europe/London`\n  then auto_approve   for 90m\n}\n",
			"rule \"r\" {\n  when   not (user == \"a\" or group != \"b\") and risk in [1, 2]\n  during mon-fri,sun 8:00-18:00 \"Europe/London\"\n  then   auto_approve for 1h30m\n}\n",
		},
		{
			"durations print canonically",
			"rule \"a\" {\n  then auto_approve for 90m\n}\nrule \"b\" {\n  then auto_approve for 120m\n}\nrule \"c\" {\n  then auto_approve for 1h0m\n}\nrule \"d\" {\n  then auto_approve for 0060m\n}\ntest \"t\" {\n  expect auto_approved for 45m\n}\nsettings {\n  ttl = 75m\n  l = [60m, 2h30m]\n}\n",
			"rule \"a\" {\n  then auto_approve for 1h30m\n}\n\nrule \"b\" {\n  then auto_approve for 2h\n}\n\nrule \"c\" {\n  then auto_approve for 1h\n}\n\nrule \"d\" {\n  then auto_approve for 1h\n}\n\ntest \"t\" {\n  expect auto_approved for 45m\n}\n\nsettings {\n  ttl = 1h15m\n  l   = [1h, 2h30m]\n}\n",
		},
		{
			"strings print canonically",
			"rule \"r\" {\n  description `plain`\n  when path ~ \"C:\\\\Windows\\\\*\" or cel \"obs.x == \\\"y\\\"\" or user == `a\\b`\n}\n",
			"rule \"r\" {\n  description \"plain\"\n  when        path ~ `C:\\Windows\\*` or cel `obs.x == \"y\"` or user == `a\\b`\n}\n",
		},
		{
			"multi-line raw string",
			"rule \"r\" {\n  description `line 1\nline 2`  # trail\n}\n",
			"rule \"r\" {\n  description \"line 1\\nline 2\"  # trail\n}\n",
		},
		{
			"entries and assignments",
			"signers \"s\" {\n  cn \"A\" thumbprint `aa`\n  thumbprint \"bb\"\n}\npolicy \"p\" {\n  assign org \"o\" when `device.x` priority 3\n  feature pam {uac_interception=true}\n}\n",
			"signers \"s\" {\n  cn         \"A\" thumbprint \"aa\"\n  thumbprint \"bb\"\n}\n\npolicy \"p\" {\n  assign org \"o\" priority 3 when \"device.x\"\n  feature pam {\n    uac_interception = true\n  }\n}\n",
		},
		{
			"a comment inside a multi-line condition moves above the field",
			"rule \"r\" {\n  priority 1\n  when user == \"a\"  # first\n       # second\n       or user == \"b\"  # last\n}\n",
			"rule \"r\" {\n  priority 1\n  # first\n  # second\n  when     user == \"a\" or user == \"b\"  # last\n}\n",
		},
		{
			"comments inside a multi-line list move above the attribute",
			"settings {\n  a = [1,  # one\n    2]  # two\n}\n",
			"settings {\n  # one\n  a = [1, 2]  # two\n}\n",
		},
		{
			"comment between keyword and label",
			"org # c\n  \"a\"\n",
			"# c\norg \"a\"\n",
		},
		{
			"CRLF line endings",
			"rule \"r\" {\r\n  priority 1 # t\r\n}\r\n",
			"rule \"r\" {\n  priority 1  # t\n}\n",
		},
		{
			"byte order mark is dropped",
			"\uFEFForg \"a\"\n",
			"org \"a\"\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkFormat(t, tt.src)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Format (-want +got):\n%s\ngot:\n%s", diff, got)
			}
		})
	}
}

func TestFormatLongConditions(t *testing.T) {
	long := func(op string, n int) string {
		terms := make([]string, n)
		for i := range terms {
			terms[i] = `user == "some.rather.long.user.name.` + string(rune('a'+i)) + `"`
		}
		return strings.Join(terms, " "+op+" ")
	}
	tests := []struct {
		name, when, want string
	}{
		{
			"short conditions stay on one line",
			`user == "a" or user == "b"`,
			"  when user == \"a\" or user == \"b\"\n",
		},
		{
			"long or chain is broken before each or",
			long("or", 4),
			"  when user == \"some.rather.long.user.name.a\"\n" +
				"       or user == \"some.rather.long.user.name.b\"\n" +
				"       or user == \"some.rather.long.user.name.c\"\n" +
				"       or user == \"some.rather.long.user.name.d\"\n",
		},
		{
			"long and chain is broken before each and",
			long("and", 3),
			"  when user == \"some.rather.long.user.name.a\"\n" +
				"       and user == \"some.rather.long.user.name.b\"\n" +
				"       and user == \"some.rather.long.user.name.c\"\n",
		},
		{
			"only the top-level operator breaks",
			long("and", 2) + " or " + long("and", 2),
			"  when user == \"some.rather.long.user.name.a\" and user == \"some.rather.long.user.name.b\"\n" +
				"       or user == \"some.rather.long.user.name.a\" and user == \"some.rather.long.user.name.b\"\n",
		},
		{
			"parentheses are kept and not broken",
			"(" + long("or", 2) + ") and " + "(" + long("or", 2) + ")",
			"  when (user == \"some.rather.long.user.name.a\" or user == \"some.rather.long.user.name.b\")\n" +
				"       and (user == \"some.rather.long.user.name.a\" or user == \"some.rather.long.user.name.b\")\n",
		},
		{
			"a long single term is not broken",
			"not (" + long("or", 4) + ")",
			"  when not (" + long("or", 4) + ")\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "rule \"r\" {\n  when " + tt.when + "\n}\n"
			got := checkFormat(t, src)
			want := "rule \"r\" {\n" + tt.want + "}\n"
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Format (-want +got):\n%s\ngot:\n%s", diff, got)
			}
		})
	}

	t.Run("continuation lines align under the first operand", func(t *testing.T) {
		src := "rule \"r\" {\n  priority 1\n  created_by \"x\"\n  when " + long("or", 3) + "\n}\n"
		got := checkFormat(t, src)
		lines := strings.Split(got, "\n")
		first := strings.Index(lines[3], "user")
		for _, l := range lines[4:6] {
			if strings.Index(l, "or ") != first {
				t.Errorf("continuation %q not aligned at column %d:\n%s", l, first, got)
			}
		}
	})
}

func TestFormatExprBuiltTrees(t *testing.T) {
	cmpr := func(user string) *Compare {
		return &Compare{Field: word("user"), Op: "==", Value: &Lit{Kind: String, Value: user}}
	}
	a, b, c := cmpr("a"), cmpr("b"), cmpr("c")
	and := func(x, y Expr) Expr { return &Binary{Op: "and", X: x, Y: y} }
	or := func(x, y Expr) Expr { return &Binary{Op: "or", X: x, Y: y} }
	not := func(x Expr) Expr { return &Not{X: x} }
	tests := []struct {
		x    Expr
		want string
	}{
		{and(or(a, b), c), `(user == "a" or user == "b") and user == "c"`},
		{and(c, or(a, b)), `user == "c" and (user == "a" or user == "b")`},
		{or(and(a, b), c), `user == "a" and user == "b" or user == "c"`},
		{or(a, and(b, c)), `user == "a" or user == "b" and user == "c"`},
		{not(or(a, b)), `not (user == "a" or user == "b")`},
		{not(and(a, b)), `not (user == "a" and user == "b")`},
		{and(not(a), not(b)), `not user == "a" and not user == "b"`},
		{not(not(a)), `not not user == "a"`},
		{not(&Paren{X: a}), `not (user == "a")`},
		{and(or(a, b), or(b, c)), `(user == "a" or user == "b") and (user == "b" or user == "c")`},
		{&CelAtom{Src: &Lit{Kind: String, Value: `obs.x == "y"`}}, "cel `obs.x == \"y\"`"},
		{&Compare{Field: word("signer"), Op: "in", Value: &SignersRef{Name: &Lit{Value: "g"}}}, `signer in signers("g")`},
		{&Compare{Field: word("risk"), Op: "in", Value: &List{Elems: []*Lit{num("1"), num("2")}}}, `risk in [1, 2]`},
		{&Compare{Field: word("path"), Op: "~", Value: &Lit{Kind: RawString, Value: `C:\x`}}, "path ~ `C:\\x`"},
		{nil, ""},
	}
	for _, tt := range tests {
		got := FormatExpr(tt.x)
		if got != tt.want {
			t.Errorf("FormatExpr(%s) = %s, want %s", sexpr(tt.x), got, tt.want)
			continue
		}
		if tt.x == nil {
			continue
		}
		back := mustParseExpr(t, got)
		if !sameTruth(tt.x, back) {
			t.Errorf("%s re-parses to %s, which decides differently", sexpr(tt.x), sexpr(back))
		}
	}
}

// sameTruth reports whether two conditions agree under every assignment of
// truth values to their comparisons (identified by their printed text).
func sameTruth(x, y Expr) bool {
	atoms := map[string]int{}
	var collect func(Expr)
	collect = func(e Expr) {
		switch e := e.(type) {
		case *Binary:
			collect(e.X)
			collect(e.Y)
		case *Not:
			collect(e.X)
		case *Paren:
			collect(e.X)
		default:
			k := FormatExpr(e)
			if _, ok := atoms[k]; !ok {
				atoms[k] = len(atoms)
			}
		}
	}
	collect(x)
	collect(y)
	if len(atoms) > 16 {
		panic("too many atoms")
	}
	var eval func(Expr, int) bool
	eval = func(e Expr, bits int) bool {
		switch e := e.(type) {
		case *Binary:
			if e.Op == "and" {
				return eval(e.X, bits) && eval(e.Y, bits)
			}
			return eval(e.X, bits) || eval(e.Y, bits)
		case *Not:
			return !eval(e.X, bits)
		case *Paren:
			return eval(e.X, bits)
		}
		return bits&(1<<atoms[FormatExpr(e)]) != 0
	}
	for bits := 0; bits < 1<<len(atoms); bits++ {
		if eval(x, bits) != eval(y, bits) {
			return false
		}
	}
	return true
}

// randomExpr builds a random condition tree without Paren nodes, so the
// printer alone must supply the parentheses.
func randomExpr(r *rand.Rand, depth int) Expr {
	if depth == 0 || r.IntN(4) == 0 {
		return &Compare{Field: word("user"), Op: "==", Value: &Lit{Kind: String, Value: string(rune('a' + r.IntN(5)))}}
	}
	switch r.IntN(3) {
	case 0:
		return &Not{X: randomExpr(r, depth-1)}
	case 1:
		return &Binary{Op: "and", X: randomExpr(r, depth-1), Y: randomExpr(r, depth-1)}
	}
	return &Binary{Op: "or", X: randomExpr(r, depth-1), Y: randomExpr(r, depth-1)}
}

func TestFormatExprRandomTrees(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		x := randomExpr(r, 6)
		s := FormatExpr(x)
		back, errs := ParseExpr(s)
		if errs != nil {
			t.Fatalf("FormatExpr(%s) = %s does not parse: %v", sexpr(x), s, errs)
		}
		if !sameTruth(x, back) {
			t.Fatalf("FormatExpr(%s) = %s re-parses to %s", sexpr(x), s, sexpr(back))
		}
		if again := FormatExpr(back); again != s {
			t.Fatalf("FormatExpr not stable: %s then %s", s, again)
		}
		// Within a rule, the line breaker must keep the meaning too.
		f := &File{Decls: []*Block{{Kind: KindRule, Label: str("r"), Fields: []*Field{fld("when", &Cond{X: x})}}}}
		out := string(Format(f))
		pf, errs := ParseFile("x.pam", out)
		if errs != nil {
			t.Fatalf("Format does not parse: %v\n%s", errs, out)
		}
		if got := pf.Decls[0].FieldOf("when").Value.(*Cond).X; !sameTruth(x, got) {
			t.Fatalf("Format changed the meaning of %s:\n%s", sexpr(x), out)
		}
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`C:\Users\*\Downloads\*.exe`, "`C:\\Users\\*\\Downloads\\*.exe`"},
		{`say "hi"`, "`say \"hi\"`"},
		{`obs.x == "y"`, "`obs.x == \"y\"`"},
		{"back`quote", "\"back`quote\""},
		{"back`quote\\and \"quote\"", "\"back`quote\\\\and \\\"quote\\\"\""},
		{"line\nbreak", `"line\nbreak"`},
		{"tab\there", `"tab\there"`},
		{"cr\rhere", `"cr\rhere"`},
		{"a\\b\nc", `"a\\b\nc"`}, // a control character rules out a raw string
		{"nul\x00", `"nul\u0000"`},
		{"esc\x1b del\x7f", `"esc\u001b del\u007f"`},
		{"é → ü", `"é → ü"`},
		{"\ufffd", `"\ufffd"`},
		{"#not a comment", `"#not a comment"`},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
		checkQuote(t, tt.in)
	}
}

// checkQuote checks that Quote(s) lexes back to s as one string token.
func checkQuote(t testing.TB, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		return
	}
	q := Quote(s)
	toks, errs := lex(q)
	if len(errs) > 0 || len(toks) != 2 || (toks[0].Kind != String && toks[0].Kind != RawString) {
		t.Fatalf("Quote(%q) = %s lexes to %v, errors %v", s, q, toks, errs)
	}
	if toks[0].Value != s {
		t.Fatalf("Quote(%q) = %s lexes back to %q", s, q, toks[0].Value)
	}
	if toks[0].Text != q {
		t.Fatalf("Quote(%q) = %s: token text %q", s, q, toks[0].Text)
	}
	raw := toks[0].Kind == RawString
	if wantRaw := strings.ContainsAny(s, `\"`) && !strings.ContainsAny(s, "`\r\n\t\x00\x7f") && !hasControl(s); raw != wantRaw {
		t.Fatalf("Quote(%q) = %s: raw=%v, want %v", s, q, raw, wantRaw)
	}
}

// hasControl reports characters Quote must escape so a reviewer sees them:
// controls, format characters such as bidirectional overrides, U+FFFD.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd || unicode.Is(unicode.Cf, r) || (r != ' ' && !unicode.IsGraphic(r)) {
			return true
		}
	}
	return false
}

func TestQuoteShowsHiddenCharacters(t *testing.T) {
	for s, want := range map[string]string{
		"admin‮⁦exe.gpj": `"admin\u202e\u2066exe.gpj"`,
		"a​b":            `"a\u200bb"`,
		"tag󠁁":           `"tag\U000e0041"`,
		`C:\x` + "‮":     `"C:\\x\u202e"`,
	} {
		if got := Quote(s); got != want {
			t.Errorf("Quote(%q) = %s, want %s", s, got, want)
		}
		checkQuote(t, s)
	}
}

func TestQuoteRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []rune{'a', ' ', '\\', '"', '`', '\n', '\t', '\r', 0, 0x7f, 'é', '→', 0xfffd, 0x10000, '#', 'u', '0', 0x202e, 0x200b, 0xe0041}
	for i := 0; i < 20000; i++ {
		n := r.IntN(12)
		rs := make([]rune, n)
		for j := range rs {
			rs[j] = alphabet[r.IntN(len(alphabet))]
		}
		checkQuote(t, string(rs))
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in      string
		minutes int
		ok      bool
		canon   string
	}{
		{"30m", 30, true, "30m"},
		{"2h", 120, true, "2h"},
		{"1h30m", 90, true, "1h30m"},
		{"90m", 90, true, "1h30m"},
		{"120m", 120, true, "2h"},
		{"60m", 60, true, "1h"},
		{"61m", 61, true, "1h1m"},
		{"1h0m", 60, true, "1h"},
		{"0m", 0, true, "0m"},
		{"0h", 0, true, "0m"},
		{"007m", 7, true, "7m"},
		{"1440m", 1440, true, "24h"},
		{"2h90m", 210, true, "3h30m"},
		{"", 0, false, ""},
		{"30", 0, false, ""},
		{"m", 0, false, ""},
		{"h30m", 0, false, ""},
		{"30m2h", 0, false, ""},
		{"1h2h", 0, false, ""},
		{"30m30m", 0, false, ""},
		{"1h30", 0, false, ""},
		{"2d", 0, false, ""},
		{"30s", 0, false, ""},
		{"1H", 0, false, ""},
		{"-5m", 0, false, ""},
		{"99999999999999999999m", 0, false, ""},
	}
	for _, tt := range tests {
		m, ok := ParseDuration(tt.in)
		if m != tt.minutes || ok != tt.ok {
			t.Errorf("ParseDuration(%q) = %d, %v; want %d, %v", tt.in, m, ok, tt.minutes, tt.ok)
		}
		if ok {
			if got := FormatDuration(m); got != tt.canon {
				t.Errorf("FormatDuration(%d) = %q, want %q", m, got, tt.canon)
			}
		}
	}
	for m := 0; m <= 3000; m++ {
		back, ok := ParseDuration(FormatDuration(m))
		if !ok || back != m {
			t.Fatalf("FormatDuration(%d) = %q parses to %d, %v", m, FormatDuration(m), back, ok)
		}
	}
}

func TestWindowText(t *testing.T) {
	f := mustParse(t, "rule \"r\" {\n  during mon-fri,sun 08:00-18:00 `Europe/London`\n}\nrule \"s\" {\n  during 22:00-6:00\n}\n")
	tests := []struct {
		w    *Window
		want string
	}{
		{f.Decls[0].Fields[0].Value.(*Window), `mon-fri,sun 08:00-18:00 "Europe/London"`},
		{f.Decls[1].Fields[0].Value.(*Window), `22:00-6:00`},
	}
	for _, tt := range tests {
		if got := WindowText(tt.w); got != tt.want {
			t.Errorf("WindowText = %q, want %q", got, tt.want)
		}
	}
}

func TestFormatBuiltFile(t *testing.T) {
	// A tree built by code (as the API → DSL export does) prints and
	// parses back to the same tree.
	f := &File{Decls: []*Block{
		{Kind: KindRule, Label: &Lit{Kind: String, Value: `from "api"`}, Fields: []*Field{
			fld("priority", num("10")),
			fld("when", &Cond{X: &Binary{Op: "and",
				X: &Compare{Field: word("path"), Op: "~", Value: &Lit{Kind: String, Value: `C:\Temp\**`}},
				Y: &Not{X: &Binary{Op: "or",
					X: &Compare{Field: word("signer"), Op: "in", Value: &SignersRef{Name: &Lit{Kind: String, Value: "v"}}},
					Y: &Compare{Field: word("risk"), Op: "in", Value: &List{Elems: []*Lit{num("3"), num("4")}}},
				}},
			}}),
			fld("then", &Then{Verdict: word("auto_approve"), For: dur("90m")}),
		}},
	}}
	out := string(Format(f))
	want := "rule `from \"api\"` {\n" +
		"  priority 10\n" +
		"  when     path ~ `C:\\Temp\\**` and not (signer in signers(\"v\") or risk in [3, 4])\n" +
		"  then     auto_approve for 1h30m\n" +
		"}\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("Format (-want +got):\n%s", diff)
	}
	checkFormat(t, out)
}
