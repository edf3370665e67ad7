package syntax

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Literal builders for expected trees.
func word(s string) *Lit  { return &Lit{Kind: Ident, Text: s, Value: s} }
func str(v string) *Lit   { return &Lit{Kind: String, Text: strconv.Quote(v), Value: v} }
func raw(v string) *Lit   { return &Lit{Kind: RawString, Text: "`" + v + "`", Value: v} }
func num(s string) *Lit   { return &Lit{Kind: Int, Text: s, Value: s} }
func dur(s string) *Lit   { return &Lit{Kind: Duration, Text: s, Value: s} }
func clock(s string) *Lit { return &Lit{Kind: Clock, Text: s, Value: s} }
func stamp(s string) *Lit { return &Lit{Kind: Timestamp, Text: s, Value: s} }

func fld(key string, v Value) *Field { return &Field{Key: key, Value: v} }
func attr(key string, v Value) *Attr { return &Attr{Key: key, Value: v} }

// treeOpts compares parsed trees with expected ones built without
// positions or blank-line flags.
var treeOpts = cmp.Options{ignorePos, cmpopts.IgnoreFields(Decor{}, "Blank"), cmpopts.EquateEmpty()}

func TestParseEveryDeclaration(t *testing.T) {
	src := `org "acme"

settings {
  default_outcome = pending
  ttl = 90m
  admins = ["alice", bob, 3,]
  starts = 08:00
  since = 2026-01-01T00:00:00Z
  limits {
    max = 200
  }
  named "x y" {}
}

signers "vendors" {
  id "g-1"
  description "trusted"
  cn "Mozilla Corporation"
  cn "Microsoft" thumbprint "aa"
  thumbprint "bb"
}

rule "r1" {
  id "r-1"
  description "all fields"
  enabled true
  priority 50
  site "hq"
  when signer == "Mozilla Corporation" and path ~ ` + "`C:\\Users\\*\\Downloads\\*.exe`" + `
  during mon-fri,sun 8:00-18:00 "Europe/London"
  then auto_approve for 30m
  created_by "alice"
  created 2026-01-02T03:04:05Z
  updated 2026-06-15T10:00:00+01:00
}

rule "r2" {
  enabled false
  when cel ` + "`obs.x == \"y\"`" + `
  during 22:00-06:00
  then auto_deny
}

policy "p" {
  id "p-1"
  description "kiosks"
  enabled true
  feature pam { uac_interception = false }
  assign site "kiosk-floor"
  assign group "kiosks" priority 10 when "device.os == 'w'"
  assign device "d" when "x" priority 2
}

test "t1" {
  description "happy path"
  at 2026-06-15T10:00:00+01:00
  flow uac_intercept
  site "hq"
  observe { signer = "Mozilla Corporation"  path = ` + "`C:\\x.exe`" + ` }
  settings { default_outcome = denied }
  expect auto_approved by "r1" for 30m
}

test "t2" {
  expect pending by default
}

test "t3" {
  expect denied by software_policy
}

test "t4" {
  expect ignored for 1h
}
`
	want := &File{
		Name: "test.pam",
		Decls: []*Block{
			{Kind: KindOrg, Label: str("acme")},
			{Kind: KindSettings, Body: &Body{Attrs: []*Attr{
				attr("default_outcome", word("pending")),
				attr("ttl", dur("90m")),
				attr("admins", &List{Elems: []*Lit{str("alice"), word("bob"), num("3")}}),
				attr("starts", clock("08:00")),
				attr("since", stamp("2026-01-01T00:00:00Z")),
				attr("limits", &Body{Attrs: []*Attr{attr("max", num("200"))}}),
				attr("named", &Body{Label: str("x y")}),
			}}},
			{Kind: KindSigners, Label: str("vendors"), Fields: []*Field{
				fld("id", str("g-1")),
				fld("description", str("trusted")),
				fld("cn", &Entry{CN: str("Mozilla Corporation")}),
				fld("cn", &Entry{CN: str("Microsoft"), Thumb: str("aa")}),
				fld("thumbprint", &Entry{Thumb: str("bb")}),
			}},
			{Kind: KindRule, Label: str("r1"), Fields: []*Field{
				fld("id", str("r-1")),
				fld("description", str("all fields")),
				fld("enabled", word("true")),
				fld("priority", num("50")),
				fld("site", str("hq")),
				fld("when", &Cond{X: &Binary{Op: "and",
					X: &Compare{Field: word("signer"), Op: "==", Value: str("Mozilla Corporation")},
					Y: &Compare{Field: word("path"), Op: "~", Value: raw(`C:\Users\*\Downloads\*.exe`)},
				}}),
				fld("during", &Window{
					Days:  []DayRange{{From: word("mon"), To: word("fri")}, {From: word("sun")}},
					Start: clock("8:00"), End: clock("18:00"), Zone: str("Europe/London"),
				}),
				fld("then", &Then{Verdict: word("auto_approve"), For: dur("30m")}),
				fld("created_by", str("alice")),
				fld("created", stamp("2026-01-02T03:04:05Z")),
				fld("updated", stamp("2026-06-15T10:00:00+01:00")),
			}},
			{Kind: KindRule, Label: str("r2"), Fields: []*Field{
				fld("enabled", word("false")),
				fld("when", &Cond{X: &CelAtom{Src: raw(`obs.x == "y"`)}}),
				fld("during", &Window{Start: clock("22:00"), End: clock("06:00")}),
				fld("then", &Then{Verdict: word("auto_deny")}),
			}},
			{Kind: KindPolicy, Label: str("p"), Fields: []*Field{
				fld("id", str("p-1")),
				fld("description", str("kiosks")),
				fld("enabled", word("true")),
				fld("feature", &Body{Label: word("pam"), Attrs: []*Attr{attr("uac_interception", word("false"))}}),
				fld("assign", &Assign{Level: word("site"), Target: str("kiosk-floor")}),
				fld("assign", &Assign{Level: word("group"), Target: str("kiosks"), Priority: num("10"), When: str("device.os == 'w'")}),
				fld("assign", &Assign{Level: word("device"), Target: str("d"), Priority: num("2"), When: str("x")}),
			}},
			{Kind: KindTest, Label: str("t1"), Fields: []*Field{
				fld("description", str("happy path")),
				fld("at", stamp("2026-06-15T10:00:00+01:00")),
				fld("flow", word("uac_intercept")),
				fld("site", str("hq")),
				fld("observe", &Body{Attrs: []*Attr{attr("signer", str("Mozilla Corporation")), attr("path", raw(`C:\x.exe`))}}),
				fld("settings", &Body{Attrs: []*Attr{attr("default_outcome", word("denied"))}}),
				fld("expect", &Expect{Outcome: word("auto_approved"), By: str("r1"), For: dur("30m")}),
			}},
			{Kind: KindTest, Label: str("t2"), Fields: []*Field{fld("expect", &Expect{Outcome: word("pending"), By: word("default")})}},
			{Kind: KindTest, Label: str("t3"), Fields: []*Field{fld("expect", &Expect{Outcome: word("denied"), By: word("software_policy")})}},
			{Kind: KindTest, Label: str("t4"), Fields: []*Field{fld("expect", &Expect{Outcome: word("ignored"), For: dur("1h")})}},
		},
	}
	got := mustParse(t, src)
	if diff := cmp.Diff(want, got, treeOpts); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
}

func TestParsePositions(t *testing.T) {
	src := "# head\nrule \"r\" {\n  priority 5\n  when not (user == \"a\" or group != \"b\")\n  then auto_deny for 2h\n}\n"
	f := mustParse(t, src)
	b := f.Decls[0]
	when := b.FieldOf("when")
	not := when.Value.(*Cond).X.(*Not)
	paren := not.X.(*Paren)
	or := paren.X.(*Binary)
	cmpr := or.Y.(*Compare)
	got := map[string]string{
		"block":      b.Position().String(),
		"label":      b.Label.Pos.String(),
		"close":      b.Close.String(),
		"priority":   b.FieldOf("priority").Position().String(),
		"value":      b.FieldOf("priority").Value.Position().String(),
		"when":       when.Position().String(),
		"cond":       when.Value.Position().String(),
		"paren":      paren.Position().String(),
		"or":         or.Position().String(),
		"or op":      or.OpPos.String(),
		"compare":    cmpr.Position().String(),
		"compare op": cmpr.OpPos.String(),
		"then":       b.FieldOf("then").Value.Position().String(),
		"head":       b.Lead[0].Pos.String(),
	}
	want := map[string]string{
		"block": "2:1", "label": "2:6", "close": "6:1",
		"priority": "3:3", "value": "3:12",
		"when": "4:3", "cond": "4:8", "paren": "4:12", "or": "4:13", "or op": "4:25",
		"compare": "4:28", "compare op": "4:34",
		"then": "5:8", "head": "1:1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
	if b.FieldOf("nope") != nil {
		t.Error("FieldOf found a missing field")
	}
}

func TestParseConditions(t *testing.T) {
	tests := []struct {
		src  string
		want string
	}{
		// every criterion and operator
		{`signer == "a"`, `signer=="a"`},
		{`signer != "a"`, `signer!="a"`},
		{`signer in ["a", "b"]`, `signer in ["a", "b"]`},
		{`signer in signers("vendors")`, `signer in signers("vendors")`},
		{`thumbprint == "aa"`, `thumbprint=="aa"`},
		{`thumbprint in ["aa"]`, `thumbprint in ["aa"]`},
		{`hash != "h"`, `hash!="h"`},
		{`path ~ ` + "`C:\\*`", "path~`C:\\*`"},
		{`path !~ "x"`, `path!~"x"`},
		{`parent ~ "x"`, `parent~"x"`},
		{`parent !~ "x"`, `parent!~"x"`},
		{`cmdline contains "/quiet"`, `cmdline contains "/quiet"`},
		{`user == "a"`, `user=="a"`},
		{`user in ["a",]`, `user in ["a"]`},
		{`group != "g"`, `group!="g"`},
		{`tool == "file_read"`, `tool=="file_read"`},
		{`risk == 2`, `risk==2`},
		{`risk in [0, 4]`, `risk in [0, 4]`},
		{"cel `obs.x`", `cel(obs.x)`},
		{`cel "obs.x"`, `cel(obs.x)`},
		// precedence: not > and > or, both left-associative
		{`user == "a" or user == "b" and user == "c"`, `(or user=="a" (and user=="b" user=="c"))`},
		{`user == "a" and user == "b" or user == "c"`, `(or (and user=="a" user=="b") user=="c")`},
		{`not user == "a" and user == "b"`, `(and (not user=="a") user=="b")`},
		{`not user == "a" or not user == "b"`, `(or (not user=="a") (not user=="b"))`},
		{`user == "a" or user == "b" or user == "c"`, `(or (or user=="a" user=="b") user=="c")`},
		{`user == "a" and user == "b" and user == "c"`, `(and (and user=="a" user=="b") user=="c")`},
		{`not not user == "a"`, `(not (not user=="a"))`},
		{`(user == "a" or user == "b") and user == "c"`, `(and [(or user=="a" user=="b")] user=="c")`},
		{`not (user == "a" and user == "b")`, `(not [(and user=="a" user=="b")])`},
		{`((user == "a"))`, `[[user=="a"]]`},
		{"user == \"a\"\n  or user == \"b\"", `(or user=="a" user=="b")`},
		{"user == \"a\" # c\n  and not cel `x`", `(and user=="a" (not cel(x)))`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			x := mustParseExpr(t, tt.src)
			if got := sexpr(x); got != tt.want {
				t.Errorf("ParseExpr(%q) = %s, want %s", tt.src, got, tt.want)
			}
			// The same condition parses identically inside a rule.
			f := mustParse(t, "rule \"r\" {\n  when "+tt.src+"\n  then auto_deny\n}\n")
			if got := sexpr(f.Decls[0].FieldOf("when").Value.(*Cond).X); got != tt.want {
				t.Errorf("in a rule: %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCriterionOps(t *testing.T) {
	for _, c := range Criteria {
		ops := CriterionOps(c)
		if len(ops) == 0 {
			t.Errorf("criterion %s has no operators", c)
		}
		for _, op := range ops {
			var rhs string
			switch {
			case op == "in" && c == "risk":
				rhs = "[1]"
			case op == "in":
				rhs = `["x"]`
			case c == "risk":
				rhs = "1"
			default:
				rhs = `"x"`
			}
			src := c + " " + op + " " + rhs
			if _, errs := ParseExpr(src); errs != nil {
				t.Errorf("%s: %v", src, errs)
			}
		}
	}
	if CriterionOps("nope") != nil {
		t.Error("unknown criterion has operators")
	}
}

func TestFieldNames(t *testing.T) {
	want := map[string]string{
		KindRule:     "created created_by description during enabled id priority site then updated when",
		KindSigners:  "cn description id thumbprint",
		KindPolicy:   "assign description enabled feature id",
		KindTest:     "at description expect flow observe settings site software",
		KindSettings: "",
		KindOrg:      "",
	}
	for kind, w := range want {
		if got := strings.Join(FieldNames(kind), " "); got != w {
			t.Errorf("FieldNames(%s) = %q, want %q", kind, got, w)
		}
	}
}

func TestParseExprErrors(t *testing.T) {
	tests := []struct {
		src    string
		errors []string
	}{
		{``, []string{"1:1: expected a condition (a criterion such as signer, path, user; `not`; `(`; or `cel`), found end of file"}},
		{`# only a comment`, []string{"1:17: expected a condition (a criterion such as signer, path, user; `not`; `(`; or `cel`), found end of file"}},
		{`user == "a" extra`, []string{"1:13: unexpected `extra` after the condition (join conditions with `and` or `or`)"}},
		{`user == "a" )`, []string{"1:13: unexpected `)` after the condition (join conditions with `and` or `or`)"}},
		{`user == "a" user == "b"`, []string{"1:13: unexpected `user` after the condition (join conditions with `and` or `or`)"}},
		{`user == "a" and`, []string{"1:16: expected a condition (a criterion such as signer, path, user; `not`; `(`; or `cel`), found end of file"}},
		{`(user == "a"`, []string{"1:13: expected `)` to close the `(` at 1:1, found end of file"}},
		{`user in []`, []string{"1:9: empty list: `user in []` can never hold"}},
		{`risk in []`, []string{"1:9: empty list: `risk in []` can never hold"}},
		{`user in ["a" "b"]`, []string{"1:14: expected `,` or `]`, found string \"b\""}},
		{`user in ["a", 1]`, []string{"1:15: expected a list element or `]`, found number `1`"}},
		{`risk in ["1"]`, []string{"1:10: expected a list element or `]`, found string \"1\""}},
		{`risk == "2"`, []string{"1:9: expected a risk tier (0-4), found string \"2\""}},
		{`user == 2`, []string{"1:9: expected a string to compare `user` with (a string), found number `2`"}},
		{`user == bob`, []string{"1:9: expected a string to compare `user` with (a string), found `bob` (put it in quotes: \"bob\")"}},
		{`user = "a"`, []string{"1:6: expected an operator after `user`, found `=` (compare with `==`)"}},
		{`user "a"`, []string{"1:6: expected an operator after `user` (==, !=, in), found string \"a\""}},
		{`path == "x"`, []string{"1:6: operator `==` does not apply to `path` (paths match globs with `~` (or `!~`): path ~ `C:\\Program Files\\**`)"}},
		{`parent != "x"`, []string{"1:8: operator `!=` does not apply to `parent` (paths match globs with `~` (or `!~`): parent ~ `C:\\Program Files\\**`)"}},
		{`cmdline == "x"`, []string{"1:9: operator `==` does not apply to `cmdline` (command lines match by substring: cmdline contains \"/quiet\")"}},
		{`signer ~ "x"`, []string{"1:8: operator `~` does not apply to `signer` (`~` is for path globs; compare signer with `==`)"}},
		{`user !~ "x"`, []string{"1:6: operator `!~` does not apply to `user` (`~` is for path globs; compare user with `==`)"}},
		{`signer contains "x"`, []string{"1:8: operator `contains` does not apply to `signer` (`signer` takes ==, !=, in)"}},
		{`user in signers("g")`, []string{"1:9: expected a list [\"a\", \"b\"] after `in`, found `signers`"}},
		{`signer in "g"`, []string{"1:11: expected a list [\"a\", \"b\"] or signers(\"group\") after `in`, found string \"g\""}},
		{`signer in signers "g"`, []string{"1:19: expected `(` after `signers`, found string \"g\""}},
		{`signer in signers(g)`, []string{"1:19: expected a signer group name (a string), found `g` (put it in quotes: \"g\")"}},
		{`signer in signers("g"`, []string{"1:22: expected `)` after the signer group name, found end of file"}},
		{`cel obs.x`, []string{"1:5: expected a CEL expression after `cel` (use backquotes: cel `obs.commandLine.contains(\"x\")`) (a string), found `obs` (put it in quotes: \"obs\")", "1:8: unexpected character '.'"}},
		{`signr == "x"`, []string{"1:1: unknown criterion `signr` (did you mean `signer`?)"}},
		{`Signer == "x"`, []string{"1:1: unknown criterion `Signer` (did you mean `signer`?)"}},
		{`usr == "x"`, []string{"1:1: unknown criterion `usr` (did you mean `user`?)"}},
		{`foo == "x"`, []string{"1:1: unknown criterion `foo` (expected one of: signer, thumbprint, hash, path, parent, cmdline, user, group, tool, risk, cel, not)"}},
		{`user == "a" && user == "b"`, []string{"1:13: unexpected character '&' (write `and`)", "1:14: unexpected character '&' (write `and`)"}},
		{`!user == "a"`, []string{"1:1: unexpected character '!' (write `not`, `!=` or `!~`)"}},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			x, errs := ParseExpr(tt.src)
			if x != nil {
				t.Errorf("ParseExpr returned a tree with errors: %s", sexpr(x))
			}
			if diff := cmp.Diff(tt.errors, errorStrings(errs)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseNestingLimit(t *testing.T) {
	for _, n := range []int{maxDepth - 1, maxDepth + 1, 1000, 100000} {
		for name, src := range map[string]string{
			"parens": strings.Repeat("(", n) + `user == "a"` + strings.Repeat(")", n),
			"nots":   strings.Repeat("not ", n) + `user == "a"`,
			"mixed":  strings.Repeat("not (", n) + `user == "a"` + strings.Repeat(")", n),
		} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				x, errs := ParseExpr(src)
				limit := maxDepth - 1
				if name == "mixed" {
					limit = maxDepth / 2
				}
				if n <= limit {
					if errs != nil {
						t.Fatalf("depth %d rejected: %v", n, errs)
					}
					if FormatExpr(x) != src {
						t.Errorf("FormatExpr changed a nested condition")
					}
					return
				}
				if x != nil || len(errs) != 1 || !strings.Contains(errs[0].Msg, "nested too deeply") {
					t.Fatalf("depth %d: want one nesting error, got %v", n, errs)
				}
				// Inside a rule the error is reported once and the next rule still parses.
				f, errs := ParseFile("x.pam", "rule \"a\" {\n  when "+src+"\n  then auto_deny\n}\nrule \"b\" {\n  priority 1\n}\n")
				if len(errs) != 1 || !strings.Contains(errs[0].Msg, "nested too deeply") {
					t.Fatalf("in a rule: %v", errs)
				}
				if len(f.Decls) != 2 || f.Decls[1].FieldOf("priority") == nil || f.Decls[0].FieldOf("then") == nil {
					t.Errorf("recovery lost declarations or fields: %s", Format(f))
				}
			})
		}
	}
}

func TestParseLongChains(t *testing.T) {
	// Chains of and/or are iterative in the parser, not nested: a very long
	// condition parses and prints without hitting the nesting limit.
	terms := make([]string, 5000)
	for i := range terms {
		terms[i] = fmt.Sprintf("user == \"u%d\"", i)
	}
	src := strings.Join(terms, " or ")
	x := mustParseExpr(t, src)
	if got := FormatExpr(x); got != src {
		t.Error("long chain did not round-trip")
	}
}

func TestParseBlankFlags(t *testing.T) {
	src := `# head

rule "a" {
  priority 1

  # lead
  when user == "x"

  then auto_deny
}
rule "b" {
}
`
	f := mustParse(t, src)
	a, b := f.Decls[0], f.Decls[1]
	if a.Blank != true || a.Lead[0].Blank {
		t.Errorf("rule a: Blank=%v, lead blank=%v", a.Blank, a.Lead[0].Blank)
	}
	if b.Blank {
		t.Error("rule b follows directly, yet Blank is set")
	}
	p, w, th := a.Fields[0], a.Fields[1], a.Fields[2]
	if p.Blank || w.Blank || !w.Lead[0].Blank || !th.Blank {
		t.Errorf("fields: priority %v, when %v (lead %v), then %v", p.Blank, w.Blank, w.Lead[0].Blank, th.Blank)
	}
}

func TestParseCommentAttachment(t *testing.T) {
	src := `# file head
org "o"  # org trail
# lead of rule
rule "r" {  # opening line
  # lead of priority
  priority 1  # priority trail
  when user == "a"  # inside
       # between
       or user == "b"  # when trail
  # inner of rule
}  # rule trail
settings {
  # lead of a
  a = 1  # a trail
  # inner of settings
}
# tail 1

# tail 2
`
	f := mustParse(t, src)
	org, r, s := f.Decls[0], f.Decls[1], f.Decls[2]
	texts := func(cs []*Comment) []string {
		var out []string
		for _, c := range cs {
			out = append(out, strings.TrimSpace(c.Text))
		}
		return out
	}
	trail := func(c *Comment) string {
		if c == nil {
			return ""
		}
		return strings.TrimSpace(c.Text)
	}
	got := map[string]any{
		"org lead":       texts(org.Lead),
		"org trail":      trail(org.Trail),
		"rule lead":      texts(r.Lead),
		"priority lead":  texts(r.Fields[0].Lead),
		"priority trail": trail(r.Fields[0].Trail),
		"when lead":      texts(r.Fields[1].Lead),
		"when trail":     trail(r.Fields[1].Trail),
		"rule inner":     texts(r.Inner),
		"rule trail":     trail(r.Trail),
		"a lead":         texts(s.Body.Attrs[0].Lead),
		"a trail":        trail(s.Body.Attrs[0].Trail),
		"settings inner": texts(s.Body.Inner),
		"tail":           texts(f.Tail),
	}
	want := map[string]any{
		"org lead":       []string{"file head"},
		"org trail":      "org trail",
		"rule lead":      []string{"lead of rule"},
		"priority lead":  []string{"opening line", "lead of priority"},
		"priority trail": "priority trail",
		"when lead":      []string{"inside", "between"},
		"when trail":     "when trail",
		"rule inner":     []string{"inner of rule"},
		"rule trail":     "rule trail",
		"a lead":         []string{"lead of a"},
		"a trail":        "a trail",
		"settings inner": []string{"inner of settings"},
		"tail":           []string{"tail 1", "tail 2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("comments (-want +got):\n%s", diff)
	}
	if !f.Tail[1].Blank || f.Tail[0].Blank {
		t.Error("blank flags of the tail comments")
	}
	if got, want := comments(f), sourceComments(src); !cmp.Equal(got, want) {
		t.Errorf("comments in tree %q, in source %q", got, want)
	}
}

func TestBodyAttrOf(t *testing.T) {
	f := mustParse(t, "settings {\n  a = 1\n  b = 2\n  a = 3\n}\n")
	b := f.Decls[0].Body
	if a := b.AttrOf("a"); a == nil || a.Value.(*Lit).Text != "1" {
		t.Errorf("AttrOf(a) = %v", a)
	}
	if b.AttrOf("c") != nil {
		t.Error("AttrOf found a missing attribute")
	}
	if b.Position() != b.Lbrace {
		t.Error("unlabelled body position")
	}
}

func TestNodePositions(t *testing.T) {
	src := `signers "s" {
  cn "a"
  thumbprint "b"
}
rule "r" {
  when signer in signers("s") or cel "x" or user in ["u"]
  during mon 08:00-09:00
  then auto_deny
}
policy "p" {
  feature pam { a = 1 }
  assign site "x"
}
test "t" {
  expect denied
}
`
	f := mustParse(t, src)
	s, r, p, tc := f.Decls[0], f.Decls[1], f.Decls[2], f.Decls[3]
	or := r.FieldOf("when").Value.(*Cond).X.(*Binary)
	inner := or.X.(*Binary)
	got := map[string]string{
		"cn entry":         s.Fields[0].Value.Position().String(),
		"thumbprint entry": s.Fields[1].Value.Position().String(),
		"signers ref":      inner.X.(*Compare).Value.Position().String(),
		"cel":              inner.Y.Position().String(),
		"list":             or.Y.(*Compare).Value.Position().String(),
		"window":           r.FieldOf("during").Value.Position().String(),
		"then":             r.FieldOf("then").Value.Position().String(),
		"feature body":     p.FieldOf("feature").Value.Position().String(),
		"attr":             p.FieldOf("feature").Value.(*Body).Attrs[0].Position().String(),
		"assign":           p.FieldOf("assign").Value.Position().String(),
		"expect":           tc.FieldOf("expect").Value.Position().String(),
	}
	want := map[string]string{
		"cn entry": "2:6", "thumbprint entry": "3:14",
		"signers ref": "6:18", "cel": "6:34", "list": "6:53",
		"window": "7:10", "then": "8:8",
		"feature body": "11:11", "attr": "11:17", "assign": "12:10",
		"expect": "15:10",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
}
