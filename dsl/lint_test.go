package dsl

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
)

// lint loads a one-org repository that must load cleanly and lints it.
func lint(t *testing.T, srcs map[string]string) Diagnostics {
	t.Helper()
	repo := loadOK(t, srcs)
	o := repo.Orgs[0]
	rs, err := Compile(o)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return Lint(o, rs)
}

// ruleSrc writes a rule: name, priority and the body lines.
func ruleSrc(name string, priority int, lines ...string) string {
	return fmt.Sprintf("rule %q {\n  priority %d\n  %s\n}\n\n", name, priority, strings.Join(lines, "\n  "))
}

const site1 = "26ecf05a-81d9-4ce2-a414-9b1b2c3d4e5f"

func shadowMsg(later, earlier string, line int) string {
	return fmt.Sprintf("rule %q can never fire: rule %q (a.pam:%d:6) comes first and matches everything it matches", later, earlier, line)
}

func TestLintShadowed(t *testing.T) {
	src := ruleSrc("program-files", 10, "when path ~ `C:\\Program Files\\**`", "then require_approval") + // line 1
		ruleSrc("contoso-app", 20, "when path ~ `c:/program files/Contoso/*.exe` and user == \"alice\"", "then auto_deny") + // line 7
		ruleSrc("quiet", 30, `when cmdline contains "/QUIET"`, "then require_approval") + // line 13
		ruleSrc("quiet-setup", 40, `when cmdline contains "setup.exe /quiet /norestart"`, "then auto_deny") + // line 19
		ruleSrc("anything-by-bob", 50, `when user == "bob"`, "then require_approval") + // line 25
		ruleSrc("bob-in-windows", 60, "when user == \"bob\" and path ~ `C:\\Windows\\*.exe` and not signer == \"X\"", "during mon 08:00-09:00", "then auto_approve") + // line 31
		ruleSrc("program-files-neighbour", 70, "when path ~ `C:\\Program Files (x86)\\app.exe`", "then auto_deny") + // line 38: not inside
		ruleSrc("program-files-glob-prefix", 80, "when path ~ `C:\\Program Files\\*\\bin\\**`", "then auto_deny") // line 44
	srcs := one(src)
	hint := func(p int, earlier string) string {
		return fmt.Sprintf("give it a lower priority number than %d, or narrow rule %q", p, earlier)
	}
	checkDiags(t, srcs, lint(t, srcs),
		diag{File: "a.pam", Line: 7, Col: 6, At: `"contoso-app"`, Warning: true, Code: LintShadowed, Msg: shadowMsg("contoso-app", "program-files", 1), Hint: hint(10, "program-files")},
		diag{File: "a.pam", Line: 19, Col: 6, At: `"quiet-setup"`, Warning: true, Code: LintShadowed, Msg: shadowMsg("quiet-setup", "quiet", 13), Hint: hint(30, "quiet")},
		diag{File: "a.pam", Line: 31, Col: 6, At: `"bob-in-windows"`, Warning: true, Code: LintShadowed, Msg: shadowMsg("bob-in-windows", "anything-by-bob", 25), Hint: hint(50, "anything-by-bob")},
		diag{File: "a.pam", Line: 44, Col: 6, At: `"program-files-glob-prefix"`, Warning: true, Code: LintShadowed, Msg: shadowMsg("program-files-glob-prefix", "program-files", 1), Hint: hint(10, "program-files")},
	)
}

func TestLintNotShadowed(t *testing.T) {
	for _, c := range []struct{ name, earlier, later string }{
		{"earlier site-scoped, later org-wide",
			ruleSrc("site", 1, `site "`+site1+`"`, `when user == "bob"`, "then auto_deny"),
			ruleSrc("org-wide", 2, `when user == "bob"`, "then auto_approve")},
		{"earlier has a time window",
			ruleSrc("office-hours", 1, `when user == "bob"`, "during mon-fri 08:00-18:00", "then auto_deny"),
			ruleSrc("always", 2, `when user == "bob"`, "then auto_approve")},
		{"later is a tool rule, earlier is not",
			ruleSrc("bob", 1, `when user == "bob"`, "then auto_deny"),
			ruleSrc("bob-tools", 2, `when user == "bob" and tool == "shell"`, "then auto_approve")},
		{"earlier is disabled",
			ruleSrc("off", 1, "enabled false", `when user == "bob"`, "then auto_deny"),
			ruleSrc("on", 2, `when user == "bob" and group == "IT"`, "then auto_approve")},
		{"earlier has a condition the later lacks",
			ruleSrc("bob-or-carol", 1, `when user in ["bob", "carol"]`, "then auto_deny"),
			ruleSrc("bob", 2, `when user == "bob"`, "then auto_approve")},
		{"negated criterion does not cover a positive one",
			ruleSrc("not-windows", 1, "when path !~ `C:\\Windows\\**`", "then auto_deny"),
			ruleSrc("tools", 2, "when path ~ `C:\\Tools\\*.exe`", "then auto_approve")},
		{"a single star stays in its segment",
			ruleSrc("one-level", 1, "when path ~ `C:\\Tools\\*`", "then auto_deny"),
			ruleSrc("deeper", 2, "when path ~ `C:\\Tools\\sub\\a.exe`", "then auto_approve")},
		{"later comes first by priority",
			ruleSrc("broad", 20, `when user == "bob"`, "then auto_deny"),
			ruleSrc("narrow", 10, `when user == "bob" and group == "IT"`, "then auto_approve")},
		{"different sites",
			ruleSrc("site-1", 1, `site "`+site1+`"`, `when user == "bob"`, "then auto_deny"),
			ruleSrc("site-2", 2, `site "36ecf05a-81d9-4ce2-a414-9b1b2c3d4e5f"`, `when user == "bob"`, "then auto_approve")},
	} {
		t.Run(c.name, func(t *testing.T) {
			srcs := one(c.earlier + c.later)
			checkDiags(t, srcs, lint(t, srcs))
		})
	}
}

func TestLintShadowedWithinScope(t *testing.T) {
	// An org-wide rule covers a site-scoped one, the same site covers
	// itself, and an earlier rule with the same window covers a later one.
	srcs := one(ruleSrc("org-wide", 1, `when user == "bob"`, "then auto_deny") +
		ruleSrc("site", 2, `site "`+site1+`"`, `when user == "bob" and group == "IT"`, "then auto_approve") +
		ruleSrc("window", 3, `when group == "x"`, `during sat 01:00-02:00 "Europe/Paris"`, "then auto_approve") +
		ruleSrc("same-window", 4, `when group == "x" and user == "carol"`, `during sat 01:00-02:00 "Europe/Paris"`, "then auto_deny"))
	ds := lint(t, srcs)
	if len(ds) != 2 || ds[0].Code != LintShadowed || ds[0].Line != 7 || ds[1].Code != LintShadowed || ds[1].Line != 21 {
		t.Errorf("diagnostics: %v", ds)
	}
}

func TestLintDuplicate(t *testing.T) {
	srcs := one(ruleSrc("first", 1, "when user == \"Bob\" and path ~ `C:\\Tools\\*.exe`", "then auto_deny") +
		ruleSrc("second", 2, "when path ~ `c:/tools/*.EXE` and user == \"bob\"", "then require_approval") +
		ruleSrc("third", 3, `when user == "bob" or user == "carol"`, "then auto_deny") +
		ruleSrc("fourth", 4, `when user == "bob" or user == "carol"`, "then auto_approve"))
	checkDiags(t, srcs, lint(t, srcs),
		diag{File: "a.pam", Line: 7, Col: 6, At: `"second"`, Warning: true, Code: LintDuplicate,
			Msg: `rule "second" has the same criteria as rule "first" (a.pam:1:6), which comes first: it can never decide`, Hint: "delete one, or merge them"},
		diag{File: "a.pam", Line: 19, Col: 6, At: `"fourth"`, Warning: true, Code: LintDuplicate,
			Msg: `rule "fourth" has the same criteria as rule "third" (a.pam:13:6), which comes first: it can never decide`, Hint: "delete one, or merge them"},
	)
}

func TestLintWritablePath(t *testing.T) {
	msg := func(name, glob string) string {
		return fmt.Sprintf("rule %q auto-approves by path alone in a folder users can write to (%s): anyone can drop a binary there", name, glob)
	}
	const hint = "add a signer, thumbprint, signer group or hash criterion"
	srcs := one(`signers "vendors" {
  cn "Vendor"
}

` + // rules from line 5, six lines each
		ruleSrc("users", 1, "when path ~ `C:\\Users\\*\\AppData\\Local\\*.exe`", "then auto_approve") + // 5
		ruleSrc("temp", 2, "when path ~ `C:\\Windows\\Temp\\x.exe`", "then auto_approve") + // 11
		ruleSrc("downloads", 3, "when path ~ `D:\\Downloads\\setup.exe` and user == \"u\"", "then auto_approve for 1h") + // 17
		ruleSrc("anywhere", 4, "when path ~ `**\\setup.exe`", "then auto_approve") + // 23
		ruleSrc("in-condition", 5, "when user == \"v\" and (path ~ `C:\\Users\\Public\\a.exe` and path ~ `C:\\Users\\*\\b.exe`)", "then auto_approve") + // 29
		ruleSrc("signed", 10, "when path ~ `C:\\Users\\*\\Downloads\\a.exe` and signer == \"Vendor\"", "then auto_approve") +
		ruleSrc("thumbprint", 11, "when path ~ `C:\\Users\\*\\Downloads\\b.exe` and thumbprint == \""+hashB+"\"", "then auto_approve") +
		ruleSrc("hashed", 12, "when path ~ `C:\\Users\\*\\Downloads\\c.exe` and hash == \""+hashA+"\"", "then auto_approve") +
		ruleSrc("group", 13, "when path ~ `C:\\Users\\*\\Downloads\\d.exe` and signer in signers(\"vendors\")", "then auto_approve") +
		ruleSrc("denied", 14, "when path ~ `C:\\Users\\*\\Downloads\\e.exe`", "then auto_deny") +
		ruleSrc("pending", 15, "when path ~ `C:\\Users\\*\\Downloads\\f.exe`", "then require_approval") +
		ruleSrc("program-files", 16, "when path ~ `C:\\Program Files\\App\\app.exe`", "then auto_approve") +
		ruleSrc("not-writable-negated", 17, "when user == \"w\" and path !~ `C:\\Users\\**`", "then auto_approve"))
	w := func(line int, name, glob string) diag {
		return diag{File: "a.pam", Line: line, Col: 6, At: fmt.Sprintf("%q", name), Warning: true, Code: LintWritableApp, Msg: msg(name, glob), Hint: hint}
	}
	checkDiags(t, srcs, lint(t, srcs),
		w(5, "users", "c:/users/*/appdata/local/*.exe"),
		w(11, "temp", "c:/windows/temp/x.exe"),
		w(17, "downloads", "d:/downloads/setup.exe"),
		w(23, "anywhere", "**/setup.exe"),
		w(29, "in-condition", "c:/users/public/a.exe"),
	)
}

func TestLintUnusedSigners(t *testing.T) {
	srcs := one(`signers "by-name" {
  cn "A"
}

signers "by-id" {
  id "0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70"
  cn "B"
}

signers "in-condition" {
  cn "C"
}

signers "disabled-rule-only" {
  cn "D"
}

signers "unused" {
  cn "E"
}

rule "a" {
  when signer in signers("by-name")
  then auto_deny
}

rule "b" {
  when not signer in signers("0C9A7F3E-5D21-4B8E-A1F4-6E2D9B3C8A70")
  then auto_deny
}

rule "c" {
  when user == "u" and (signer in signers("in-condition") or hash == "` + hashA + `")
  then auto_deny
}

rule "d" {
  enabled false
  when    signer in signers("disabled-rule-only")
  then    auto_deny
}
`)
	checkDiags(t, srcs, lint(t, srcs),
		diag{File: "a.pam", Line: 18, Col: 9, At: `"unused"`, Warning: true, Code: LintUnusedSigners,
			Msg: `signer group "unused" is not used by any rule`, Hint: `reference it with signer in signers("unused"), or delete it`})
}

// A validated time window is always active at some minute of the week: its
// times are in range and its zone exists, and every day, zone offset and
// one-minute window turns up in the sampled weeks. So window-never cannot
// be produced from a rule file; windowEverActive is tested directly with
// windows that are active (the hard cases), and Lint with a rule set
// compiled leniently, the way a store might still hold a rule validation
// now refuses.
func TestWindowEverActive(t *testing.T) {
	t.Parallel() // a never-active window is sampled for two whole weeks
	z := func(s string) *string { return &s }
	for _, w := range []engine.TimeWindow{
		{Start: "00:00", End: "00:00", Days: []int{0}},
		{Start: "23:59", End: "23:59", Days: []int{6}, Timezone: z("Pacific/Kiritimati")},
		{Start: "00:00", End: "00:00", Days: []int{0}, Timezone: z("Etc/GMT+12")},
		{Start: "23:59", End: "00:00", Days: []int{3}},
		{Start: "02:30", End: "02:30", Days: []int{0}, Timezone: z("America/New_York")},
		{Start: "00:00", End: "00:00", Days: []int{1}, Timezone: z("Asia/Kathmandu")},
		{Start: "12:00", End: "11:59"},
		{Start: "00:00", End: "23:59", Days: []int{0, 1, 2, 3, 4, 5, 6}, Timezone: z("Australia/Lord_Howe")},
	} {
		if err := engine.ValidateRule(&engine.Rule{Name: "r", Verdict: engine.VerdictAutoDeny, MatchUser: z("u"), TimeWindow: &w}); err != nil {
			t.Fatalf("test bug: %+v: %v", w, err)
		}
		if !windowEverActive(&w) {
			t.Errorf("%+v: never active?", w)
		}
	}
	for _, w := range []engine.TimeWindow{
		{Start: "24:00", End: "08:00"},
		{Start: "08:00", End: "09:00", Timezone: z("Mars/Olympus")},
		{Start: "08:00", End: "09:00", Days: []int{7, -1}},
	} {
		if windowEverActive(&w) {
			t.Errorf("%+v: active, but the engine never activates a malformed window", w)
		}
	}
}

func TestLintWindowNever(t *testing.T) {
	t.Parallel()
	at := mustTime(t, "2026-05-02T09:14:00Z")
	z := "Mars/Olympus"
	u := "u"
	org := &Org{
		Rules: []engine.Rule{
			{Name: "mars", Enabled: true, Priority: 1, Verdict: engine.VerdictAutoDeny, MatchUser: &u,
				TimeWindow: &engine.TimeWindow{Start: "08:00", End: "18:00", Timezone: &z}, CreatedAt: at},
			{Name: "fine", Enabled: true, Priority: 2, Verdict: engine.VerdictAutoDeny, MatchUser: &u,
				TimeWindow: &engine.TimeWindow{Start: "08:00", End: "18:00"}, CreatedAt: at.Add(time.Hour)},
		},
		RuleAt: []Origin{{File: "a.pam", Pos: pos(1, 6)}, {File: "a.pam", Pos: pos(9, 6)}},
	}
	rs, err := engine.Compile(org.Rules, nil, engine.CompileOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	checkDiags(t, nil, Lint(org, rs),
		diag{File: "a.pam", Line: 1, Col: 6, Warning: true, Code: LintWindowNever,
			Msg: `rule "mars" has a time window that is never active`, Hint: "check the days, times and zone"})
}

func TestLintCleanRepository(t *testing.T) {
	srcs := one(`signers "vendors" {
  cn "Vendor"
}

` + ruleSrc("vendor-downloads", 1, "when path ~ `C:\\Users\\*\\Downloads\\*.exe` and signer in signers(\"vendors\")", "then auto_approve") +
		ruleSrc("tools", 2, "when path ~ `C:\\Tools\\*.exe`", "then require_approval") +
		ruleSrc("helper", 3, `when tool == "file_read"`, "then auto_approve"))
	checkDiags(t, srcs, lint(t, srcs))
}

// policySrc writes a policy: name and body lines.
func policySrc(name string, lines ...string) string {
	return fmt.Sprintf("policy %q {\n  %s\n}\n\n", name, strings.Join(lines, "\n  "))
}

func TestLintPolicyNeverApplies(t *testing.T) {
	const pamOn = "feature pam {\n    uac_interception = true\n  }"
	srcs := map[string]string{
		"org.pam": `org "acme"` + "\n",
		"a.pam": policySrc("disabled", "enabled false", pamOn, `assign org "acme"`) + // line 1
			policySrc("unassigned", pamOn) + // line 9
			policySrc("featureless", `assign org "acme"`, `assign site "london"`) + // line 15
			policySrc("never-true", pamOn, `assign group "kiosks" when "false"`, `assign site "london" when "1 > 2 || [1, 2].size() == 3"`) + // line 20
			// Not reported: each of these may apply to some device.
			policySrc("one-live-assignment", pamOn, `assign group "kiosks" when "false"`, `assign org "acme"`) +
			policySrc("reads-the-device", pamOn, `assign group "kiosks" when "device.os == 'linux' && false"`) +
			policySrc("constant-true", pamOn, `assign group "kiosks" when "1 < 2"`) +
			policySrc("empty-settings", "feature pam {}", `assign site "london"`),
	}
	const cond = "the condition of every assignment reads no device attribute and is never true"
	const condHint = "a condition filters on the device, e.g. `when \"device.os == 'windows'\"`; drop the condition to assign unconditionally"
	w := func(line int, name, msg, hint string) diag {
		return diag{File: "a.pam", Line: line, Col: 8, At: fmt.Sprintf("%q", name), Warning: true, Code: LintPolicyNeverApplies, Msg: msg, Hint: hint}
	}
	checkDiags(t, srcs, lint(t, srcs),
		w(1, "disabled", `policy "disabled" is disabled (enabled false): it never applies to any device`,
			"delete it, or remove `enabled false` to apply it"),
		w(9, "unassigned", `policy "unassigned" has no assign: it applies to no device`,
			"attach it with e.g. `assign org \"acme\"`, or delete it"),
		w(15, "featureless", `policy "featureless" sets no feature: it supplies nothing to the devices it is assigned to`,
			"add `feature pam { … }` or `feature software { … }`, or delete it"),
		w(20, "never-true", `policy "never-true" never applies: `+cond+
			` (assign group "kiosks" when "false" is false; assign site "london" when "1 > 2 || [1, 2].size() == 3" is false)`, condHint),
	)
}

// A condition that reads nothing of the device and always fails is not a
// lint but an error: it would make every device it is assigned to
// unresolvable.
func TestConstantFailingConditionIsAnError(t *testing.T) {
	srcs := one(policySrc("fails-everywhere", "feature pam {\n    uac_interception = true\n  }", `assign device "pc-1" when "1 / 0 == 1"`))
	rep := Check(Load(srcs), CheckOptions{})
	if rep.Diags.Errors() != 1 || !strings.Contains(rep.Diags[0].Msg, "always fails") {
		t.Fatalf("diagnostics %v", rep.Diags)
	}
}

// In a repository without org declarations the hint cannot name the org.
func TestLintPolicyNeverAppliesSingleTenant(t *testing.T) {
	srcs := one(ruleSrc("r", 1, `when user == "bob"`, "then auto_deny") + policySrc("unassigned", "feature software {\n    mode = audit\n  }"))
	checkDiags(t, srcs, lint(t, srcs),
		diag{File: "a.pam", Line: 7, Col: 8, At: `"unassigned"`, Warning: true, Code: LintPolicyNeverApplies,
			Msg: `policy "unassigned" has no assign: it applies to no device`, Hint: "attach it with e.g. `assign org \"…\"`, or delete it"})
}

// elevate check reports the lint as a warning, and --strict as an error.
func TestLintPolicyNeverAppliesInCheck(t *testing.T) {
	srcs := map[string]string{"p.pam": policySrc("off", "enabled false", "feature pam {\n    uac_interception = true\n  }", `assign org "acme"`)}
	for _, strict := range []bool{false, true} {
		rep := Check(Load(srcs), CheckOptions{Strict: strict})
		if len(rep.Diags) != 1 {
			t.Fatalf("strict %v: diagnostics %v", strict, rep.Diags)
		}
		d := rep.Diags[0]
		want := SevWarning
		if strict {
			want = SevError
		}
		if d.Code != LintPolicyNeverApplies || d.Severity != want || d.String() != `p.pam:1:8: `+string(want)+`: policy "off" is disabled (enabled false): it never applies to any device [policy-never-applies]` {
			t.Errorf("strict %v: %s (%s)", strict, d, d.Severity)
		}
	}
}

func TestConstantCondition(t *testing.T) {
	for _, c := range []struct {
		src             string
		holds, constant bool
		fails           bool
	}{
		{"false", false, true, false},
		{"true", true, true, false},
		{"!true || 'a' == 'b'", false, true, false},
		{"int('x') == 1", false, true, true},
		{"device.os == 'windows'", false, false, false},
		{"has(device.tags) || false", false, false, false},
	} {
		holds, constant, err := constantCondition(c.src)
		if holds != c.holds || constant != c.constant || (err != nil) != c.fails {
			t.Errorf("%s: holds %v constant %v err %v; want %v %v fails %v", c.src, holds, constant, err, c.holds, c.constant, c.fails)
		}
	}
}
