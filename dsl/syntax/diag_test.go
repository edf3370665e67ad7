package syntax

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rule wraps field lines in a rule declaration starting on line 1, so the
// first field is on line 2.
func rule(lines ...string) string {
	return "rule \"r\" {\n  " + strings.Join(lines, "\n  ") + "\n}\n"
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		errors []string
	}{
		// declarations
		{"misspelt declaration", "rul \"x\" {\n}\n", []string{"1:1: expected a declaration (rule, signers, policy, settings, test, org), found `rul` (did you mean `rule`?)"}},
		{"misspelt signers", "signer \"x\" {\n}\n", []string{"1:1: expected a declaration (rule, signers, policy, settings, test, org), found `signer` (did you mean `signers`?)"}},
		{"capitalised declaration", "Rule \"x\" {\n}\n", []string{"1:1: expected a declaration (rule, signers, policy, settings, test, org), found `Rule` (did you mean `rule`?)"}},
		{"unknown declaration", "widget \"x\" {\n}\n", []string{"1:1: expected a declaration (rule, signers, policy, settings, test, org), found `widget` (a file holds rule, signers, policy, settings, test and org declarations)"}},
		{"stray brace", "}\n", []string{"1:1: expected a declaration (rule, signers, policy, settings, test, org), found `}` (a file holds rule, signers, policy, settings, test and org declarations)"}},
		{"missing label", "rule {\n  priority 1\n}\n", []string{"1:6: expected the rule's name (a string), found `{`"}},
		{"unquoted label", "rule r {\n}\n", []string{"1:6: expected the rule's name (a string), found `r` (put it in quotes: \"r\")"}},
		{"signers label", "signers {\n}\n", []string{"1:9: expected the signer group's name (a string), found `{`"}},
		{"missing brace", "rule \"r\"\n  priority 1\n}\n", []string{"2:3: expected `{` to open the rule, found `priority`"}},
		{"settings with a label", "settings \"x\" {\n}\n", []string{"1:10: expected `{` to open the settings, found string \"x\""}},
		{"org without label", "org\n", []string{"2:1: expected the org's name (a string), found end of file"}},
		{"org with braces", "org \"x\" {\n}\n", []string{"1:9: expected a declaration (rule, signers, policy, settings, test, org), found `{` (a file holds rule, signers, policy, settings, test and org declarations)"}},
		{"missing close of an unnamed rule", "rule {\n  priority 1\n", []string{"1:6: expected the rule's name (a string), found `{`", "3:1: expected `}` to close rule, found end of file (add `}` after the last field)"}},
		{"multi-line name in a message", "rule `a\nb` {\n  priority 1\n", []string{"4:1: expected `}` to close rule \"a\\nb\", found end of file (add `}` after the last field)"}},
		{"multi-line label in a message", "settings {\n  a `x\ny` = 1\n}\n", []string{"3:4: expected `{` after `a \"x\\ny\"`, found `=`"}},
		{"missing close at end of file", "rule \"r\" {\n  priority 1\n", []string{"3:1: expected `}` to close rule \"r\", found end of file (add `}` after the last field)"}},

		// fields
		{"misspelt field", rule("priorty 5"), []string{"2:3: unknown field `priorty` in rule (did you mean `priority`?)"}},
		{"misspelt description", rule(`descripton "x"`), []string{"2:3: unknown field `descripton` in rule (did you mean `description`?)"}},
		{"transposed letters", rule("wehn user == \"a\""), []string{"2:3: unknown field `wehn` in rule (did you mean `when`?)"}},
		{"criterion as a field", rule(`signer "x"`), []string{"2:3: unknown field `signer` in rule (`signer` is a condition: write `when signer == …`)"}},
		{"misspelt criterion as a field", rule(`signr "x"`), []string{"2:3: unknown field `signr` in rule (`signer` is a condition: write `when signer == …`)"}},
		{"path as a field", rule("path `C:\\x`"), []string{"2:3: unknown field `path` in rule (`path` is a condition: write `when path ~ …`)"}},
		{"field close to both", rule("sit \"x\""), []string{"2:3: unknown field `sit` in rule (did you mean `site`?)"}},
		{"unknown word in a rule", rule(`colour "x"`), []string{"2:3: unknown field `colour` in rule (expected one of: created, created_by, description, during, enabled, id, priority, site, then, updated, when)"}},
		{"thumbprint is a signers field", "signers \"s\" {\n  thumbprnt \"x\"\n}\n", []string{"2:3: unknown field `thumbprnt` in signers (did you mean `thumbprint`?)"}},
		{"field of another block", "signers \"s\" {\n  priority 1\n}\n", []string{"2:3: unknown field `priority` in signers (expected one of: cn, description, id, thumbprint)"}},
		{"non-word field", rule(`"priority" 1`), []string{"2:3: expected a rule field (created, created_by, description, during, enabled, id, priority, site, then, updated, when), found string \"priority\""}},
		{"duplicate field", rule("priority 1", "priority 2", "priority 3"), []string{
			"3:3: duplicate field `priority` (first set at 2:3) (remove one of them)",
			"4:3: duplicate field `priority` (first set at 2:3) (remove one of them)",
		}},
		{"two fields on a line", rule("priority 1 enabled true"), []string{"2:14: unexpected `enabled` after the value of `priority` (put each field on its own line)"}},
		{"missing value", rule("priority", "enabled true"), []string{"3:3: expected a whole number for `priority`, found `enabled`"}},
		{"string for int", rule(`priority "5"`), []string{"2:12: expected a whole number for `priority`, found string \"5\""}},
		{"bool", rule("enabled yes"), []string{"2:11: expected `true` or `false` for `enabled`, found `yes` (expected one of: true, false)"}},
		{"misspelt bool", rule("enabled ture"), []string{"2:11: expected `true` or `false` for `enabled`, found `ture` (did you mean `true`?)"}},
		{"bool as string", rule(`enabled "true"`), []string{"2:11: expected `true` or `false` for `enabled`, found string \"true\" (expected one of: true, false)"}},
		{"unquoted string", rule("description hello"), []string{"2:15: expected a value for `description` (a string), found `hello` (put it in quotes: \"hello\")"}},
		{"bad timestamp", rule("created 2026"), []string{"2:11: expected an RFC 3339 timestamp like 2026-06-15T10:00:00+01:00, found number `2026`"}},
		{"quoted path", rule(`when path ~ "C:\Users\*"`), []string{"2:18: unknown escape sequence \\U in string (write paths and other text with backslashes as a raw string: `C:\\Users\\…`)"}},
		{"bad operator", rule(`when path == "x"`), []string{"2:13: operator `==` does not apply to `path` (paths match globs with `~` (or `!~`): path ~ `C:\\Program Files\\**`)"}},
		{"misspelt criterion", rule(`when signr == "x"`), []string{"2:8: unknown criterion `signr` (did you mean `signer`?)"}},
		{"ampersand", rule(`when user == "a" & user == "b"`), []string{"2:20: unexpected character '&' (write `and`)"}},
		{"empty list", rule(`when user in []`), []string{"2:16: empty list: `user in []` can never hold"}},

		// windows, verdicts, outcomes, entries, assignments
		{"bad day", rule("during mon-fry 08:00-18:00"), []string{"2:14: expected a day (mon, tue, wed, thu, fri, sat, sun), found `fry` (did you mean `fri`?)"}},
		{"missing end time", rule("during mon 08:00"), []string{"3:1: expected `-` between the start and end times, found `}`"}},
		{"window with duration", rule("during 8h"), []string{"2:10: expected a start time like 08:00, found duration `8h`"}},
		{"bad verdict", rule("then auto_aprove"), []string{"2:8: expected a verdict, found `auto_aprove` (did you mean `auto_approve`?)"}},
		{"for without duration", rule("then auto_approve for 30"), []string{"2:25: expected a duration like 30m or 2h, found number `30`"}},
		{"verdict in a test", "test \"t\" {\n  expect auto_approve\n}\n", []string{"2:10: `auto_approve` is a verdict, not an outcome (tests expect an outcome: write `auto_approved`)"}},
		{"bad outcome", "test \"t\" {\n  expect approved\n}\n", []string{"2:10: expected an outcome, found `approved` (expected one of: auto_approved, denied, pending, ignored)"}},
		{"misspelt outcome", "test \"t\" {\n  expect pendng\n}\n", []string{"2:10: expected an outcome, found `pendng` (did you mean `pending`?)"}},
		{"bad by", "test \"t\" {\n  expect denied by nobody\n}\n", []string{"2:20: expected a rule name (string), `default` or `software_policy` after `by`, found `nobody`"}},
		{"observe without brace", "test \"t\" {\n  observe user = \"a\"\n}\n", []string{"2:11: expected `{` after `observe`, found `user`"}},
		{"attribute without equals", "test \"t\" {\n  observe { user \"a\" }\n}\n", []string{"2:22: expected `{` after `user \"a\"`, found `}`"}},
		{"attribute with a bad value", "settings {\n  a = }\n", []string{"2:7: expected a value for `a`, found `}`"}},
		{"attribute missing equals", "settings {\n  a 1\n}\n", []string{"2:5: expected `=` after `a`, found number `1` (write `a = value`)"}},
		{"attribute with a bad list", "settings {\n  a = [=]\n}\n", []string{"2:8: expected a list element or `]`, found `=`"}},
		{"misspelt field with a body", "test \"t\" {\n  obsrve {\n    a = 1\n    b = 2\n  }\n  expect denied\n}\n", []string{"2:3: unknown field `obsrve` in test (did you mean `observe`?)"}},
		{"misspelt feature", "policy \"p\" {\n  featur pam { a = 1 }\n  assign site \"x\"\n}\n", []string{"2:3: unknown field `featur` in policy (did you mean `feature`?)"}},
		{"unclosed body in a skipped field", "test \"t\" {\n  obsrve {\n    a = 1\n}\nrule \"r\" {\n}\n", []string{"2:3: unknown field `obsrve` in test (did you mean `observe`?)", "5:1: expected `}` to close test \"t\", found `rule` (add `}` after the last field)"}},
		{"non-word attribute", "settings {\n  \"a\" = 1\n}\n", []string{"2:3: expected a setting name, found string \"a\""}},
		{"feature without name", "policy \"p\" {\n  feature { a = 1 }\n}\n", []string{"2:11: expected a feature name, found `{`"}},
		{"entry without string", "signers \"s\" {\n  cn Mozilla\n}\n", []string{"2:6: expected the signer's subject CN (a string), found `Mozilla` (put it in quotes: \"Mozilla\")"}},
		{"bad assignment level", "policy \"p\" {\n  assign stie \"x\"\n}\n", []string{"2:10: expected an assignment level, found `stie` (did you mean `site`?)"}},
		{"bad assignment option", "policy \"p\" {\n  assign site \"x\" prio 5\n}\n", []string{"2:19: unknown assignment option `prio` (expected one of: priority, when)"}},
		{"feature without brace", "policy \"p\" {\n  feature pam uac = 1\n}\n", []string{"2:15: expected `{` after `feature pam`, found `uac`"}},
		{"bad day after comma", rule("during mon,8:00-9:00"), []string{"2:14: expected a day (mon, tue, wed, thu, fri, sat, sun), found time of day `8:00` (expected one of: sun, mon, tue, wed, thu, fri, sat)"}},
		{"bad end time", rule("during 08:00-18"), []string{"2:16: expected an end time like 18:00, found number `18`"}},
		{"expect for without duration", "test \"t\" {\n  expect denied for 30\n}\n", []string{"2:21: expected a duration like 30m or 2h, found number `30`"}},
		{"thumbprint without string", "signers \"s\" {\n  cn \"a\" thumbprint\n}\n", []string{"3:1: expected a 64-hex certificate thumbprint (a string), found `}`"}},
		{"assignment without target", "policy \"p\" {\n  assign site\n}\n", []string{"3:1: expected the site to assign to (a string), found `}`"}},
		{"assignment priority without number", "policy \"p\" {\n  assign site \"x\" priority high\n}\n", []string{"2:28: expected a whole number, found `high`"}},
		{"assignment when without string", "policy \"p\" {\n  assign site \"x\" when device\n}\n", []string{"2:24: expected a CEL condition over `device` (a string), found `device` (put it in quotes: \"device\")"}},
		{"duplicate assignment when", "policy \"p\" {\n  assign site \"x\" when \"a\" when \"b\"\n}\n", []string{"2:28: duplicate `when`"}},
		{"error after or", rule(`when user == "a" or bogus == "b"`), []string{"2:23: unknown criterion `bogus` (expected one of: signer, thumbprint, hash, path, parent, cmdline, user, group, tool, risk, cel, not)"}},
		{"error after and", rule(`when user == "a" and (`), []string{"3:1: expected a condition (a criterion such as signer, path, user; `not`; `(`; or `cel`), found `}`"}},
		{"duplicate assignment option", "policy \"p\" {\n  assign site \"x\" priority 1 priority 2\n}\n", []string{"2:30: duplicate `priority`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := ParseFile("x.pam", tt.src)
			if diff := cmp.Diff(tt.errors, errorStrings(errs)); diff != "" {
				t.Errorf("errors (-want +got):\n%s\nin:\n%s", diff, numbered(tt.src))
			}
		})
	}
}

func TestErrorMessagesSayExpectedFound(t *testing.T) {
	// Errors about a misplaced token name what was expected and what was
	// found, so a reader can fix the file without reading the grammar.
	srcs := []string{
		"rule {\n}\n",
		rule("priority"),
		rule("then"),
		rule("when"),
		rule("when (user == \"a\""),
		rule("during"),
		"test \"t\" {\n  at\n}\n",
		"settings {\n  a =\n}\n",
	}
	for _, src := range srcs {
		_, errs := ParseFile("x.pam", src)
		if len(errs) == 0 {
			t.Errorf("no error for %q", src)
			continue
		}
		if m := errs[0].Msg; !strings.Contains(m, "expected") || !strings.Contains(m, "found") {
			t.Errorf("%q: message %q does not say expected … found …", src, m)
		}
	}
}

func TestRecovery(t *testing.T) {
	t.Run("three errors in three rules", func(t *testing.T) {
		src := `rule "a" {
  priorty 1
  then auto_deny
}

rule "b" {
  when signr == "x"
  then auto_deny
}

rule "c" {
  then auto_aprove
  priority 3
}

rule "good" {
  priority 4
  then auto_approve
}
`
		f, errs := ParseFile("x.pam", src)
		want := []string{
			"2:3: unknown field `priorty` in rule (did you mean `priority`?)",
			"7:8: unknown criterion `signr` (did you mean `signer`?)",
			"12:8: expected a verdict, found `auto_aprove` (did you mean `auto_approve`?)",
		}
		if diff := cmp.Diff(want, errorStrings(errs)); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
		var names []string
		for _, d := range f.Decls {
			names = append(names, d.Label.Value)
		}
		if diff := cmp.Diff([]string{"a", "b", "c", "good"}, names); diff != "" {
			t.Errorf("declarations (-want +got):\n%s", diff)
		}
		// The fields around each error survive.
		if f.Decls[0].FieldOf("then") == nil || f.Decls[1].FieldOf("then") == nil || f.Decls[2].FieldOf("priority") == nil {
			t.Errorf("fields lost in recovery:\n%s", Format(f))
		}
		if g := f.Decls[3]; len(g.Fields) != 2 {
			t.Errorf("rule after the errors: %s", Format(&File{Decls: []*Block{g}}))
		}
	})

	for _, next := range []string{`rule "b" {`, `signers "b" {`, `policy "b" {`, `test "b" {`, `settings {`, `org "b"`} {
		t.Run("missing close brace before "+next, func(t *testing.T) {
			src := "rule \"a\" {\n  priority 1\n\n" + next + "\n}\n"
			if strings.HasPrefix(next, "org") {
				src = "rule \"a\" {\n  priority 1\n\n" + next + "\n"
			}
			f, errs := ParseFile("x.pam", src)
			kw := strings.Fields(next)[0]
			want := []string{"4:1: expected `}` to close rule \"a\", found `" + kw + "` (add `}` after the last field)"}
			if diff := cmp.Diff(want, errorStrings(errs)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if len(f.Decls) != 2 || f.Decls[1].Kind != kw {
				t.Errorf("the next declaration did not parse:\n%s", Format(f))
			}
		})
	}

	t.Run("error in a multi-line condition", func(t *testing.T) {
		src := `rule "a" {
  when signr == "x"
       or user == "y"
       and group == "z"
  then auto_deny
}
`
		f, errs := ParseFile("x.pam", src)
		want := []string{"2:8: unknown criterion `signr` (did you mean `signer`?)"}
		if diff := cmp.Diff(want, errorStrings(errs)); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
		if f.Decls[0].FieldOf("then") == nil {
			t.Error("field after the condition lost")
		}
	})

	t.Run("error in a nested body", func(t *testing.T) {
		src := "test \"t\" {\n  observe {\n    user \"a\"\n  }\n  expect denied\n}\nrule \"r\" {\n}\n"
		f, errs := ParseFile("x.pam", src)
		if len(errs) != 1 {
			t.Errorf("errors: %v", errs)
		}
		if len(f.Decls) != 2 || f.Decls[0].FieldOf("expect") == nil {
			t.Errorf("recovery:\n%s", Format(f))
		}
	})

	t.Run("garbage between declarations", func(t *testing.T) {
		src := "rule \"a\" {\n}\n= = = {\n  priority 1\n}\nrule \"b\" {\n}\n"
		f, errs := ParseFile("x.pam", src)
		if len(errs) != 1 || errs[0].Pos.Line != 3 {
			t.Errorf("errors: %v", errs)
		}
		if len(f.Decls) != 2 {
			t.Errorf("declarations: %d", len(f.Decls))
		}
	})

	t.Run("errors are sorted", func(t *testing.T) {
		src := rule("priorty 1", "when user == \"a\" & x", "then nope")
		_, errs := ParseFile("x.pam", src)
		for i := 1; i < len(errs); i++ {
			if errs[i-1].Pos.Offset > errs[i].Pos.Offset {
				t.Errorf("errors out of order: %v", errs)
			}
		}
		if len(errs) != 3 {
			t.Errorf("want 3 errors, got %v", errs)
		}
	})
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		word       string
		candidates []string
		want       string
	}{
		{"rul", DeclKinds, "rule"},
		{"rules", DeclKinds, "rule"},
		{"polcy", DeclKinds, "policy"},
		{"sigenrs", DeclKinds, "signers"},
		{"RULE", DeclKinds, "rule"},
		{"xyz", DeclKinds, ""},
		{"ru", DeclKinds, ""}, // short words need a closer match
		{"priorty", FieldNames(KindRule), "priority"},
		{"descripton", FieldNames(KindRule), "description"},
		{"signre", Criteria, "signer"},
		{"thumbprnt", Criteria, "thumbprint"},
		{"a", nil, ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.word, tt.candidates); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"rule", "rule", 0},
		{"signre", "signer", 1}, {"ab", "ba", 1}, {"kitten", "sitting", 3}, {"é", "e", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestErrorList(t *testing.T) {
	var l ErrorList
	if l.Err() != nil {
		t.Error("empty list is an error")
	}
	l.Add(Pos{Offset: 10, Line: 2, Col: 3}, "hint", "second %d", 2)
	l.Add(Pos{Offset: 1, Line: 1, Col: 2}, "", "first")
	l.Add(Pos{Offset: 10, Line: 2, Col: 3}, "", "same place")
	l.Sort()
	if got, want := l.Error(), "1:2: first\n2:3: second 2 (hint)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if l.Err() == nil {
		t.Error("non-empty list is not an error")
	}
}

func TestDeclarationKeywordInBody(t *testing.T) {
	// `key = value` may use any word as its key, declaration keywords too.
	f := mustParse(t, "settings {\n  rule = 1\n  org = \"o\"\n  test = [x]\n}\n")
	if len(f.Decls[0].Body.Attrs) != 3 {
		t.Errorf("attributes: %s", Format(f))
	}
	// A declaration keyword without `=` ends a body whose `}` is missing,
	// wherever it stands: if it were accepted as a nested block mid-line,
	// Format would move it to the start of a line where it is not.
	for _, src := range []string{
		"settings {\n  a = 1\nrule \"r\" {\n}\n",
		"settings { a = 1 rule { } }\n",
		"test \"t\" {\n  observe { policy \"x\" {} }\n}\n",
	} {
		_, errs := ParseFile("x.pam", src)
		if len(errs) == 0 || !strings.HasPrefix(errs[0].Msg, "expected `}` to close the block opened at") {
			t.Errorf("%q: errors %v", src, errs)
		}
	}
}
