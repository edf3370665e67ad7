package dsl

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/elevate-pam/elevate/engine"
)

const checkRules = `rule "office" {
  priority 10
  when     user == "alice" and path ~ ` + "`C:\\Tools\\**`" + `
  during   mon-fri 08:00-18:00 "Europe/London"
  then     auto_approve for 30m
}

rule "deny-bad" {
  priority 20
  when     hash == "` + hashA + `"
  then     auto_deny
}

rule "quiet" {
  priority 30
  when     cmdline contains "/quiet"
  then     ignore
}

rule "helper" {
  when tool == "file_read" and risk in [0, 1, 2]
  then auto_approve
}

rule "london-only" {
  priority 35
  site     "26ecf05a-81d9-4ce2-a414-9b1b2c3d4e5f"
  when     user == "dave"
  then     auto_deny
}

rule "broken-cel" {
  priority 40
  when     user == "carol" and cel "1 / (size(obs.subjectUsername) - 5) == 1"
  then     auto_deny
}
`

// checkTests pairs each test with what Check must say about it: nil
// failures for a pass.
var checkTests = []struct {
	src      string
	failures []string
}{
	{`test "office hours" {
  at      2026-06-15T10:00:00+01:00
  observe { user = "alice"  path = ` + "`C:\\Tools\\x.exe`" + ` }
  expect  auto_approved by "office" for 30m
}`, nil},
	{`test "everything wrong" {
  at      2026-06-15T10:00:00+01:00
  observe { user = "alice"  path = ` + "`C:\\Tools\\x.exe`" + ` }
  expect  denied by "deny-bad" for 1h
}`, []string{
		"outcome: want denied, got auto_approved",
		`decided by: want rule "deny-bad", got rule "office"`,
		"duration: want 1h, got 30m",
	}},
	{`test "weekend falls to the default" {
  at      2026-06-13T10:00:00+01:00
  observe { user = "alice"  path = ` + "`C:\\Tools\\x.exe`" + ` }
  expect  pending by default
}`, nil},
	{`test "want the default, got a rule" {
  at      2026-06-15T10:00:00+01:00
  observe { user = "alice"  path = ` + "`C:\\Tools\\x.exe`" + ` }
  expect  auto_approved by default
}`, []string{`decided by: want the default (no rule), got rule "office"`}},
	{`test "want a rule, got the default" {
  at      2026-06-13T10:00:00+01:00
  observe { user = "alice"  path = ` + "`C:\\Tools\\x.exe`" + ` }
  expect  pending by "office"
}`, []string{`decided by: want rule "office", got the org default`}},
	{`test "want a software policy" {
  at      2026-06-15T10:00:00+01:00
  observe { user = "alice"  path = ` + "`C:\\Tools\\x.exe`" + ` }
  expect  auto_approved by software_policy
}`, []string{`decided by: want a software policy, got rule "office"`}},
	{`test "duration without a grant" {
  at      2026-06-15T10:00:00+01:00
  observe { user = "bob"  path = ` + "`C:\\Tools\\x.exe`" + `  hash = "` + strings.ToUpper(hashA) + `" }
  expect  denied by "deny-bad" for 30m
}`, []string{"duration: want 30m, got none"}},
	{`test "ignored" {
  at      2026-06-15T10:00:00Z
  observe { user = "bob"  path = ` + "`C:\\setup.exe`" + `  cmdline = "setup.exe /QUIET" }
  expect  ignored by "quiet"
}`, nil},
	{`test "org default overridden" {
  at      2026-06-15T10:00:00Z
  observe { user = "bob"  path = ` + "`C:\\y.exe`" + ` }
  settings { default_unmatched = auto_deny }
  expect  denied by default
}`, nil},
	{`test "tool action" {
  at      2026-06-15T10:00:00Z
  observe { user = "helper"  tool = "file_read"  risk = 2 }
  expect  auto_approved by "helper" for 15m
}`, nil},
	{`test "tool action no rule" {
  at      2026-06-15T10:00:00Z
  flow    tool
  observe { user = "helper"  tool = "shell" }
  expect  pending by default
}`, nil},
	{`test "jit by default" {
  at      2026-06-15T10:00:00Z
  flow    tech_jit_admin
  observe { user = "tom"  groups = ["Helpdesk"]  duration = 2h }
  expect  pending by default
}`, nil},
	{`test "site-scoped rule at its site" {
  at      2026-06-15T10:00:00Z
  site    "26ECF05A-81D9-4CE2-A414-9B1B2C3D4E5F"
  observe { user = "dave"  path = ` + "`C:\\z.exe`" + ` }
  expect  denied by "london-only"
}`, nil},
	{`test "site-scoped rule elsewhere" {
  at      2026-06-15T10:00:00Z
  site    "36ecf05a-81d9-4ce2-a414-9b1b2c3d4e5f"
  observe { user = "dave"  path = ` + "`C:\\z.exe`" + ` }
  expect  pending by default
}`, nil},
	{`test "fail safe" {
  at      2026-06-15T10:00:00Z
  observe { user = "carol"  path = ` + "`C:\\z.exe`" + ` }
  expect  denied by "broken-cel"
}`, []string{
		"the decision failed safe: rule \"broken-cel\": condition: division by zero",
		"outcome: want denied, got pending",
		`decided by: want rule "broken-cel", got a fail-safe error`,
	}},
}

func checkRepo(tests ...string) map[string]string {
	return map[string]string{"rules.pam": checkRules, "rules_test.pam": strings.Join(tests, "\n\n") + "\n"}
}

func TestCheckRunsTests(t *testing.T) {
	var srcs []string
	for _, tc := range checkTests {
		srcs = append(srcs, tc.src)
	}
	repo := loadOK(t, checkRepo(srcs...))
	rep := Check(repo, CheckOptions{})
	if len(rep.Diags) != 0 {
		t.Fatalf("diagnostics: %v", rep.Diags)
	}
	if len(rep.Tests) != len(checkTests) {
		t.Fatalf("%d results for %d tests", len(rep.Tests), len(checkTests))
	}
	failed := 0
	for i, tc := range checkTests {
		res := rep.Tests[i]
		name := strings.Split(tc.src, `"`)[1]
		if res.Name != name || res.File != "rules_test.pam" || res.Org != "" {
			t.Errorf("result %d is %q in %s (org %q), want %q", i, res.Name, res.File, res.Org, name)
		}
		if d := cmp.Diff(tc.failures, res.Failures); d != "" {
			t.Errorf("%s: failures (-want +got):\n%s", name, d)
		}
		if res.Passed != (tc.failures == nil) {
			t.Errorf("%s: passed = %v", name, res.Passed)
		}
		if !res.Passed {
			failed++
			// A failing test carries its explain trace.
			if len(res.Trace) == 0 || FormatTrace(res.Trace) == "" {
				t.Errorf("%s: no explain trace", name)
			}
		}
		if res.Decision.Explain != nil {
			t.Errorf("%s: the decision keeps its trace; it belongs in Trace", name)
		}
	}
	if rep.Failed() != failed {
		t.Errorf("Failed() = %d, want %d", rep.Failed(), failed)
	}
	// Line numbers point at the test's name.
	lines := strings.Split(checkRepo(srcs...)["rules_test.pam"], "\n")
	for _, res := range rep.Tests {
		if !strings.HasPrefix(lines[res.Line-1], `test "`+res.Name+`"`) {
			t.Errorf("%s: line %d is %q", res.Name, res.Line, lines[res.Line-1])
		}
	}
}

func TestCheckTraceOfAFailingTest(t *testing.T) {
	repo := loadOK(t, checkRepo(checkTests[1].src))
	rep := Check(repo, CheckOptions{})
	if len(rep.Tests) != 1 || rep.Tests[0].Passed {
		t.Fatalf("tests = %+v", rep.Tests)
	}
	got := FormatTrace(rep.Tests[0].Trace)
	want := `  matched   rule "office" (priority 10) — all 3 criteria hold
  no_match  rule "deny-bad" (priority 20): hash — the observation has no targetExecutableHash
  no_match  rule "quiet" (priority 30): commandLine — the observation has no commandLine
  skipped   rule "london-only" (priority 35) — rule is scoped to site 26ecf05a-81d9-4ce2-a414-9b1b2c3d4e5f; the device has no site, so only org-wide rules apply
  no_match  rule "broken-cel" (priority 40): user — subjectUsername is "alice"; the rule wants user "carol"
  no_match  rule "helper" (priority 100): toolName — the observation has no toolName
`
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("trace (-want +got):\n%s", d)
	}
}

func TestCheckRunFilter(t *testing.T) {
	var srcs []string
	for _, tc := range checkTests {
		srcs = append(srcs, tc.src)
	}
	repo := loadOK(t, checkRepo(srcs...))
	for _, c := range []struct {
		pattern string
		want    []string
	}{
		{"", nil}, // all
		{"tool", []string{"tool action", "tool action no rule"}},
		{"^tool action$", []string{"tool action"}},
		{"(?i)OFFICE|ignored", []string{"office hours", "ignored"}},
		{"default", []string{"weekend falls to the default", "want the default, got a rule", "want a rule, got the default",
			"org default overridden", "jit by default"}},
		{"no such test", []string{}},
	} {
		run, err := Filter(c.pattern)
		if err != nil {
			t.Fatalf("Filter(%q): %v", c.pattern, err)
		}
		rep := Check(repo, CheckOptions{Run: run})
		var got []string
		for _, r := range rep.Tests {
			got = append(got, r.Name)
		}
		want := c.want
		if want == nil {
			for _, tc := range checkTests {
				want = append(want, strings.Split(tc.src, `"`)[1])
			}
		}
		if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
			t.Errorf("--run %q (-want +got):\n%s", c.pattern, d)
		}
	}
	if _, err := Filter("("); err == nil || !strings.HasPrefix(err.Error(), "invalid --run pattern: ") {
		t.Errorf("Filter(\"(\") = %v", err)
	}
}

const lintyRepo = `rule "temp-tools" {
  when path ~ ` + "`C:\\Users\\*\\Downloads\\*.exe`" + `
  then auto_approve
}
`

const lintyTest = `test "downloads" {
  at      2026-06-15T10:00:00Z
  observe { user = "u"  path = ` + "`C:\\Users\\u\\Downloads\\a.exe`" + ` }
  expect  auto_approved by "temp-tools"
}
`

func TestCheckStrictAndNoLint(t *testing.T) {
	srcs := map[string]string{"r.pam": lintyRepo, "r_test.pam": lintyTest}
	repo := loadOK(t, srcs)
	warning := diag{File: "r.pam", Line: 1, Col: 6, At: `"temp-tools"`, Warning: true, Code: LintWritableApp,
		Msg:  `rule "temp-tools" auto-approves by path alone in a folder users can write to (c:/users/*/downloads/*.exe): anyone can drop a binary there`,
		Hint: "add a signer, thumbprint, signer group or hash criterion"}

	// A warning does not stop the tests.
	rep := Check(repo, CheckOptions{})
	checkDiags(t, srcs, rep.Diags, warning)
	if len(rep.Tests) != 1 || !rep.Tests[0].Passed {
		t.Errorf("tests = %+v", rep.Tests)
	}

	// --strict makes it an error, and then no test runs.
	rep = Check(repo, CheckOptions{Strict: true})
	strict := warning
	strict.Warning = false
	checkDiags(t, srcs, rep.Diags, strict)
	if len(rep.Tests) != 0 {
		t.Errorf("tests ran despite a strict lint error: %+v", rep.Tests)
	}
	if rep.RuleSet[""] == nil {
		t.Errorf("the rule set compiled; it should be in the report")
	}

	rep = Check(repo, CheckOptions{NoLint: true, Strict: true})
	checkDiags(t, srcs, rep.Diags)
	if len(rep.Tests) != 1 {
		t.Errorf("tests = %+v", rep.Tests)
	}
}

func TestCheckDoesNotRunTestsWithErrors(t *testing.T) {
	t.Run("load error", func(t *testing.T) {
		srcs := map[string]string{"r.pam": checkRules + "\nrule \"bad\" {\n  when hash == \"x\"\n  then auto_deny\n}\n", "r_test.pam": checkTests[0].src}
		rep := Check(Load(srcs), CheckOptions{})
		if rep.Diags.Errors() != 1 || len(rep.Tests) != 0 {
			t.Errorf("diags = %v, tests = %+v", rep.Diags, rep.Tests)
		}
	})
	t.Run("compile error", func(t *testing.T) {
		// Two rules with one id: each loads, the org does not compile.
		srcs := map[string]string{
			"r.pam": `rule "one" {
  id   "6f1e2a4c-1b7d-4c3e-9a55-0d2f7e8b9c10"
  when user == "a"
  then auto_deny
}

rule "two" {
  id   "6f1e2a4c-1b7d-4c3e-9a55-0d2f7e8b9c10"
  when user == "b"
  then auto_deny
}
`,
			"r_test.pam": `test "a" {
  at      2026-06-15T10:00:00Z
  observe { user = "a"  path = "x" }
  expect  denied by "one"
}
`,
		}
		repo := loadOK(t, srcs)
		rep := Check(repo, CheckOptions{})
		checkDiags(t, srcs, rep.Diags, diag{File: "r.pam", Line: 7, Col: 6, At: `"two"`,
			Msg: `duplicate rule id "6f1e2a4c-1b7d-4c3e-9a55-0d2f7e8b9c10" (also rule 0)`})
		if len(rep.Tests) != 0 || rep.RuleSet[""] != nil {
			t.Errorf("tests = %+v, rule set = %v", rep.Tests, rep.RuleSet)
		}
	})
	t.Run("error in another org", func(t *testing.T) {
		// Any error stops every test: a repository is checked as a whole.
		srcs := map[string]string{
			"a/org.pam": "org \"a\"\n", "a/r.pam": checkRules, "a/r_test.pam": checkTests[0].src,
			"b/org.pam": "org \"b\"\n", "b/r.pam": "rule \"x\" {\n  when hash == \"x\"\n  then auto_deny\n}\n",
		}
		rep := Check(Load(srcs), CheckOptions{})
		if rep.Diags.Errors() != 1 || len(rep.Tests) != 0 || rep.RuleSet["a"] == nil {
			t.Errorf("diags = %v, tests = %+v", rep.Diags, rep.Tests)
		}
	})
}

func TestCompileUsesTheOrgsGroups(t *testing.T) {
	repo := loadOK(t, one(`signers "vendors" {
  cn "Mozilla Corporation"
  thumbprint "`+hashB+`"
}

rule "vendor" {
  when signer in signers("vendors")
  then auto_approve for 1h
}
`))
	rs, err := Compile(mustOrg(t, repo, ""))
	if err != nil {
		t.Fatal(err)
	}
	at := mustTime(t, "2026-06-15T10:00:00Z")
	for _, c := range []struct {
		obs  engine.Observation
		want engine.Outcome
	}{
		{engine.Observation{SubjectUsername: "u", TargetExecutablePath: `C:\a.exe`, TargetExecutableSigner: "mozilla corporation"}, engine.OutcomeAutoApproved},
		{engine.Observation{SubjectUsername: "u", TargetExecutablePath: `C:\a.exe`, TargetExecutableSignerThumbprint: hashB}, engine.OutcomeAutoApproved},
		{engine.Observation{SubjectUsername: "u", TargetExecutablePath: `C:\a.exe`, TargetExecutableSigner: "Someone Else"}, engine.OutcomePending},
	} {
		d := rs.Decide(&engine.Input{Flow: engine.FlowUAC, Observation: c.obs, At: at})
		if d.Outcome != c.want {
			t.Errorf("%+v: %s, want %s", c.obs, d, c.want)
		}
	}
}

func TestCheckSoftwarePolicy(t *testing.T) {
	srcs := map[string]string{
		"p.pam": `policy "allow-tools" {
  feature software {
    mode = allowlist
    executable {
      name      = "tools"
      path_glob = ` + "`C:\\Tools\\**`" + `
    }
  }
}

rule "deny-tools" {
  when path ~ ` + "`C:\\Tools\\**`" + `
  then auto_deny
}
`,
		"p_test.pam": `test "allowlisted" {
  at       2026-06-15T10:00:00Z
  software "allow-tools"
  observe { user = "u"  path = ` + "`C:\\Tools\\a.exe`" + ` }
  expect   auto_approved by software_policy for 15m
}

test "without the policy the rule decides" {
  at       2026-06-15T10:00:00Z
  observe { user = "u"  path = ` + "`C:\\Tools\\a.exe`" + ` }
  expect   auto_approved by software_policy
}
`,
	}
	rep := Check(loadOK(t, srcs), CheckOptions{})
	if len(rep.Tests) != 2 {
		t.Fatalf("tests = %+v, diagnostics = %v", rep.Tests, rep.Diags)
	}
	if !rep.Tests[0].Passed {
		t.Errorf("%s: %v", rep.Tests[0].Name, rep.Tests[0].Failures)
	}
	want := []string{"outcome: want auto_approved, got denied", `decided by: want a software policy, got rule "deny-tools"`}
	if d := cmp.Diff(want, rep.Tests[1].Failures); d != "" {
		t.Errorf("failures (-want +got):\n%s", d)
	}
}
