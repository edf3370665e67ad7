package dsl

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/elevate-pam/elevate/engine"
)

// Each test loads in-memory sources and expects every diagnostic with its
// file, line, column, message and hint.

func TestLoadUnknownFieldSuggestsTheField(t *testing.T) {
	srcs := one(`rule "r" {
  priorty 5
  when    user == "u"
  then    auto_deny
}
`)
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags, diag{File: "a.pam", Line: 2, Col: 3, At: "priorty",
		Msg: "unknown field `priorty` in rule", Hint: "did you mean `priority`?"})
}

func TestLoadUnknownCriterion(t *testing.T) {
	srcs := one(`rule "r" {
  when user == "u" and signr == "x"
  then auto_deny
}
`)
	repo := Load(srcs)
	// One error: the dropped `when` is not also reported as missing.
	checkDiags(t, srcs, repo.Diags, diag{File: "a.pam", Line: 2, Col: 24, At: "signr",
		Msg: "unknown criterion `signr`", Hint: "did you mean `signer`?"})
}

func TestLoadUnknownSignerGroup(t *testing.T) {
	srcs := map[string]string{
		"a.pam": `signers "trusted-vendors" {
  cn "Mozilla Corporation"
}

rule "close" {
  when signer in signers("trusted-vendor")
  then auto_approve
}
`,
		"b.pam": `org "acme"

rule "far" {
  when path ~ ` + "`C:\\x\\**`" + ` and not signer in signers("nothing like it")
  then auto_deny
}
`,
	}
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 6, Col: 26, At: `"trusted-vendor")`,
			Msg: `unknown signer group "trusted-vendor"`, Hint: "did you mean `trusted-vendors`?"},
		diag{File: "b.pam", Line: 4, Col: 51, At: `"nothing like it"`,
			Msg: `unknown signer group "nothing like it" in org "acme"`, Hint: `declare it with signers "nothing like it" { … }`},
	)
	if got := ruleNames(mustOrg(t, repo, "")); len(got) != 0 {
		t.Errorf("rules with unknown groups were kept: %q", got)
	}
}

func TestLoadDuplicateNames(t *testing.T) {
	srcs := map[string]string{
		"a.pam": `signers "vendors" {
  cn "A"
}

rule "r" {
  when user == "u"
  then auto_deny
}
`,
		"b.pam": `rule "other" {
  when user == "v"
  then auto_deny
}

rule "r" {
  when user == "w"
  then auto_approve
}

signers "vendors" {
  cn "B"
}

rule "r" {
  when user == "x"
  then auto_approve
}
`,
		"c_test.pam": `test "t" {
  at      2026-06-15T10:00:00Z
  observe { user = "u"  path = "x" }
  expect  denied by "r"
}

test "t" {
  at      2026-06-15T10:00:00Z
  observe { user = "v"  path = "x" }
  expect  pending
}
`,
	}
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "b.pam", Line: 6, Col: 6, At: `"r"`, Msg: `duplicate rule name "r" (first declared at a.pam:5:6)`, Hint: "rename one of them"},
		diag{File: "b.pam", Line: 11, Col: 9, At: `"vendors"`, Msg: `duplicate signer group name "vendors" (first declared at a.pam:1:9)`, Hint: "rename one of them"},
		diag{File: "b.pam", Line: 15, Col: 6, At: `"r"`, Msg: `duplicate rule name "r" (first declared at a.pam:5:6)`, Hint: "rename one of them"},
		diag{File: "c_test.pam", Line: 7, Col: 6, At: `"t"`, Msg: `duplicate test name "t" (first declared at c_test.pam:1:6)`, Hint: "rename one of them"},
	)
	o := mustOrg(t, repo, "")
	if d := cmp.Diff([]string{"r", "other"}, ruleNames(o)); d != "" {
		t.Errorf("rules (-want +got):\n%s", d)
	}
	if len(o.Groups) != 1 || o.Groups[0].Signers[0].SubjectCN == nil || *o.Groups[0].Signers[0].SubjectCN != "A" {
		t.Errorf("the first signer group should be kept: %+v", o.Groups)
	}
}

func TestLoadTimeWindowErrors(t *testing.T) {
	srcs := one(`rule "zone" {
  when   user == "u"
  during mon-fri 08:00-18:00 "Europe/Londn"
  then   auto_deny
}

rule "clock" {
  when   user == "u"
  during 24:00-7:60
  then   auto_deny
}

rule "clock-and-zone" {
  when   user == "u"
  during sat,sun 7:5-23:59 "europe/london"
  then   auto_deny
}
`)
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 3, Col: 30, At: `"Europe/Londn"`,
			Msg: `time zone unknown time zone "Europe/Londn": use an IANA name like "America/Chicago" (names are case-sensitive)`},
		diag{File: "a.pam", Line: 9, Col: 10, At: "24:00", Msg: `start time "24:00" is not a time of day HH:MM between 00:00 and 23:59`},
		diag{File: "a.pam", Line: 9, Col: 16, At: "7:60", Msg: `end time "7:60" is not a time of day HH:MM between 00:00 and 23:59`},
		diag{File: "a.pam", Line: 15, Col: 18, At: "7:5-", Msg: `start time "7:5" is not a time of day HH:MM between 00:00 and 23:59`},
		diag{File: "a.pam", Line: 15, Col: 28, At: `"europe/london"`,
			Msg: `time zone unknown time zone "europe/london": use an IANA name like "America/Chicago" (names are case-sensitive)`},
	)
}

func TestLoadWindowDays(t *testing.T) {
	srcs := one(`rule "wrap" {
  when   user == "u"
  during fri-mon,wed 22:00-06:00
  then   auto_deny
}

rule "too-many" {
  when   user == "u"
  during mon-sun,tue 08:00-09:00
  then   auto_deny
}
`)
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 9, Col: 10, At: "mon-sun,tue", Msg: "the days name 8 days; a week has 7", Hint: "list each day once"})
	r := mustOrg(t, repo, "").Rules[0]
	if d := cmp.Diff(&engine.TimeWindow{Start: "22:00", End: "06:00", Days: []int{5, 6, 0, 1, 3}}, r.TimeWindow); d != "" {
		t.Errorf("window (-want +got):\n%s", d)
	}
}

func TestLoadRuleShapeErrors(t *testing.T) {
	srcs := one(`rule "mixed" {
  when path ~ ` + "`C:\\Tools\\*.exe`" + ` and tool == "shell"
  then auto_approve
}

rule "ignored-tool" {
  when tool == "shell" or risk == 4
  then ignore
}

rule "ignored-exe" {
  when path ~ ` + "`C:\\Tools\\*.exe`" + `
  then ignore
}
`)
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 2, Col: 8, At: "path ~",
			Msg: "executable criteria (signer, thumbprint, hash, path, parent, cmdline, signer groups) and tool-action criteria (tool, risk) cannot be mixed in one rule: no observation carries both"},
		diag{File: "a.pam", Line: 8, Col: 8, At: "ignore",
			Msg: "`ignore` is not allowed on a tool-action rule: a tool action must be decided"},
	)
	if got := ruleNames(mustOrg(t, repo, "")); !slices.Equal(got, []string{"ignored-exe"}) {
		t.Errorf("rules = %q", got)
	}
}

func TestLoadRuleWithoutWhenOrThen(t *testing.T) {
	srcs := one(`rule "empty" {
  priority 5
}

rule "no-then" {
  when user == "u"
}

rule "window-only" {
  during 08:00-18:00
  then   auto_approve
}

rule "typo-and-missing" {
  priorty 5
  when    user == "u"
}

rule "bad-continuation" {
  when user == "u"
       and signr == "x"
}
`)
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 3, Col: 1, At: "}", Msg: `rule "empty" has no ` + "`then`" + ` verdict`, Hint: "add e.g. `then require_approval`"},
		diag{File: "a.pam", Line: 3, Col: 1, At: "}", Msg: `rule "empty" has no ` + "`when`" + ` condition: a rule needs at least one criterion`, Hint: "add a `when` condition"},
		diag{File: "a.pam", Line: 7, Col: 1, At: "}", Msg: `rule "no-then" has no ` + "`then`" + ` verdict`, Hint: "add e.g. `then require_approval`"},
		diag{File: "a.pam", Line: 12, Col: 1, At: "}", Msg: `rule "window-only" has no ` + "`when`" + ` condition: a rule needs at least one criterion`, Hint: "add a `when` condition"},
		// A syntax error elsewhere in the rule does not hide a missing field…
		diag{File: "a.pam", Line: 15, Col: 3, At: "priorty", Msg: "unknown field `priorty` in rule", Hint: "did you mean `priority`?"},
		diag{File: "a.pam", Line: 17, Col: 1, At: "}", Msg: `rule "typo-and-missing" has no ` + "`then`" + ` verdict`, Hint: "add e.g. `then require_approval`"},
		// …but a field the parser dropped is not called missing.
		diag{File: "a.pam", Line: 21, Col: 12, At: "signr", Msg: "unknown criterion `signr`", Hint: "did you mean `signer`?"},
		diag{File: "a.pam", Line: 22, Col: 1, At: "}", Msg: `rule "bad-continuation" has no ` + "`then`" + ` verdict`, Hint: "add e.g. `then require_approval`"},
	)
}

func TestLoadBadValuesInConditions(t *testing.T) {
	srcs := one(`rule "values" {
  when user == "u" and (thumbprint == "abc" or hash in ["` + hashA + `", "zz"])
  then auto_deny
}

rule "risk" {
  when tool == "t" and risk in [1, 7]
  then auto_deny
}

rule "empty-string" {
  when user == "u" and not group == ""
  then auto_deny
}
`)
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 2, Col: 39, At: `"abc"`, Msg: "thumbprint must be 64 hexadecimal characters"},
		diag{File: "a.pam", Line: 2, Col: 125, At: `"zz"`, Msg: "hash must be 64 hexadecimal characters (a SHA-256 digest)"},
		diag{File: "a.pam", Line: 7, Col: 36, At: "7]", Msg: "risk must be between 0 and 4"},
		diag{File: "a.pam", Line: 12, Col: 37, At: `""`, Msg: "group must not be empty"},
	)
}

func TestLoadCELErrorsAtTheirPosition(t *testing.T) {
	srcs := one("rule \"one-line\" {\n" +
		"  when user == \"u\" and cel `obs.commandLine.foo(`\n" +
		"  then auto_deny\n" +
		"}\n\n" +
		"rule \"two-lines\" {\n" +
		"  when cel `has(obs.commandLine) &&\n" +
		"      obs.nope == 1`\n" +
		"  then auto_deny\n" +
		"}\n\n" +
		"rule \"undeclared\" {\n" +
		"  when cel `has(obs.commandLine) &&\n" +
		"      bogus`\n" +
		"  then auto_deny\n" +
		"}\n\n" +
		"rule \"not-bool\" {\n" +
		"  when cel `obs.commandLine`\n" +
		"  then auto_deny\n" +
		"}\n")
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		// `(` opens a call that never closes: CEL reports the end of the
		// expression, column 20 of the backquoted text.
		diag{File: "a.pam", Line: 2, Col: 49, At: "`\n"[:1],
			Msg: "CEL: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', ')', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"},
		diag{File: "a.pam", Line: 7, Col: 12, At: "`has(",
			Msg: "CEL: unknown observation field obs.nope; the observation has subjectUsername, targetExecutablePath, targetExecutableHash, targetExecutableSigner, targetExecutableSignerThumbprint, parentImage, commandLine, adGroups, toolName, riskTier"},
		diag{File: "a.pam", Line: 14, Col: 7, At: "bogus", Msg: "CEL: undeclared reference to 'bogus'"},
		diag{File: "a.pam", Line: 19, Col: 12, At: "`obs.", Msg: "CEL: the expression has type dyn, not bool"},
	)
}

func TestLoadDurations(t *testing.T) {
	srcs := one(`rule "bad-unit" {
  when user == "u"
  then auto_approve for 90x
}

rule "too-long" {
  when user == "u"
  then auto_approve for 24h1m
}

rule "zero" {
  when user == "v"
  then auto_approve for 0m
}

rule "minutes-first" {
  when user == "w"
  then auto_approve for 30m1h
}

rule "ok" {
  when user == "x"
  then auto_approve for 90m
}
`)
	repo := Load(srcs)
	hint := "write minutes and hours like 30m, 2h or 1h30m"
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 3, Col: 25, At: "90x", Msg: `invalid duration "90x"`, Hint: hint},
		diag{File: "a.pam", Line: 8, Col: 25, At: "24h1m", Msg: "duration must be between 1 and 1440"},
		diag{File: "a.pam", Line: 13, Col: 25, At: "0m", Msg: "duration must be between 1 and 1440"},
		diag{File: "a.pam", Line: 18, Col: 25, At: "30m1h", Msg: `invalid duration "30m1h"`, Hint: hint},
	)
	if r := mustOrg(t, repo, "").Rules; len(r) != 1 || *r[0].ApprovalDurationMinutes != 90 {
		t.Errorf("rules = %+v", r)
	}
}

func TestLoadTestBlocks(t *testing.T) {
	srcs := map[string]string{"a_test.pam": `test "nothing" {
  description "has none of at, observe, expect"
}

test "no-at" {
  observe { user = "u"  path = ` + "`C:\\a.exe`" + ` }
  expect  pending
}

test "bad-at" {
  at      2026-06-15T25:00:00Z
  observe { user = "u"  path = ` + "`C:\\a.exe`" + ` }
  expect  pending for 1h1h
}

test "verdict-not-outcome" {
  at      2026-06-15T10:00:00Z
  observe { user = "u"  path = ` + "`C:\\a.exe`" + ` }
  expect  auto_approve
}

test "unknown-flow" {
  at      2026-06-15T10:00:00Z
  flow    tool_action
  observe { user = "u"  tool = "t" }
  expect  pending
}
`}
	repo := Load(srcs)
	f := "a_test.pam"
	checkDiags(t, srcs, repo.Diags,
		diag{File: f, Line: 3, Col: 1, At: "}", Msg: `test "nothing" has no ` + "`at`", Hint: "add e.g. `at 2026-06-15T10:00:00Z`: decisions depend on the instant"},
		diag{File: f, Line: 3, Col: 1, At: "}", Msg: `test "nothing" has no ` + "`expect`", Hint: "add e.g. `expect auto_approved by \"rule name\"`"},
		diag{File: f, Line: 3, Col: 1, At: "}", Msg: `test "nothing" has no ` + "`observe`", Hint: "add an `observe { … }` block"},
		diag{File: f, Line: 8, Col: 1, At: "}", Msg: `test "no-at" has no ` + "`at`", Hint: "add e.g. `at 2026-06-15T10:00:00Z`: decisions depend on the instant"},
		diag{File: f, Line: 11, Col: 11, At: "2026-06-15T25", Msg: `invalid timestamp "2026-06-15T25:00:00Z"`, Hint: "write an RFC 3339 instant with a zone, like 2026-06-15T10:00:00+01:00 or …Z"},
		diag{File: f, Line: 13, Col: 23, At: "1h1h", Msg: `invalid duration "1h1h"`, Hint: "write minutes and hours like 30m, 2h or 1h30m"},
		// The parser's error only: the dropped `expect` is not "missing".
		diag{File: f, Line: 19, Col: 11, At: "auto_approve", Msg: "`auto_approve` is a verdict, not an outcome", Hint: "tests expect an outcome: write `auto_approved`"},
		diag{File: f, Line: 24, Col: 11, At: "tool_action", Msg: "unknown flow `tool_action`", Hint: "expected one of: uac, tool, jit"},
	)
	if n := len(mustOrg(t, repo, "").Tests); n != 0 {
		t.Errorf("%d tests kept", n)
	}
}

func TestLoadObservations(t *testing.T) {
	srcs := map[string]string{"a_test.pam": `test "tool-flow-with-a-path" {
  at      2026-06-15T10:00:00Z
  observe {
    user = "u"
    tool = "shell"
    path = ` + "`C:\\a.exe`" + `
  }
  expect  pending
}

test "jit-with-signer-and-risk" {
  at      2026-06-15T10:00:00Z
  flow    jit
  observe {
    user   = "u"
    signer = "s"
    risk   = 2
    groups = ["a"]
  }
  expect  pending
}

test "typos-and-types" {
  at      2026-06-15T10:00:00Z
  observe {
    usr    = "u"
    path   = 5
    groups = "a"
    risk   = "2"
    hash   = "abc"
  }
  expect  pending
}

test "uac-without-path" {
  at      2026-06-15T10:00:00Z
  site    "not-a-uuid"
  observe {
    user = "u"
    hash = "abc"
  }
  expect  pending
}
`}
	repo := Load(srcs)
	f := "a_test.pam"
	checkDiags(t, srcs, repo.Diags,
		diag{File: f, Line: 6, Col: 5, At: "path", Msg: "observation.targetExecutablePath: is not part of a ai_tool_action observation"},
		diag{File: f, Line: 16, Col: 5, At: "signer", Msg: "observation.targetExecutableSigner: is not part of a tech_jit_admin observation"},
		diag{File: f, Line: 17, Col: 5, At: "risk", Msg: "observation.riskTier: is not part of a tech_jit_admin observation"},
		diag{File: f, Line: 26, Col: 5, At: "usr", Msg: "unknown observation field `usr`", Hint: "did you mean `user`?"},
		diag{File: f, Line: 27, Col: 14, At: "5", Msg: "`path` takes a string, found 5", Hint: "put it in quotes (paths in backquotes: `C:\\…`)"},
		diag{File: f, Line: 28, Col: 5, At: "groups", Msg: "`groups` takes a list", Hint: `write groups = ["Domain Admins", "IT"] (or [] for none)`},
		diag{File: f, Line: 29, Col: 14, At: `"2"`, Msg: "`risk` takes a number 0-4"},
		diag{File: f, Line: 37, Col: 11, At: `"not-a-uuid"`, Msg: "observation.siteId: must be a UUID (or absent for a device without a site)"},
		diag{File: f, Line: 38, Col: 11, At: "{", Msg: "observation.targetExecutablePath: is required for uac_intercept"},
		diag{File: f, Line: 40, Col: 5, At: "hash", Msg: "observation.targetExecutableHash: must be 64 hexadecimal characters"},
	)
}

func TestLoadSettings(t *testing.T) {
	srcs := map[string]string{
		"a.pam": `settings {
  default_unmatched_verdict = auto_deny
  uac_interception          = maybe
  default_unmatched         = [auto_deny]
}
`,
		"b/org.pam": `org "b"

settings {
  default_unmatched = auto_approve
}

settings {
  default_unmatched = auto_deny
}
`,
		"x_test.pam": `test "override" {
  at      2026-06-15T10:00:00Z
  observe { user = "u"  path = ` + "`C:\\a.exe`" + ` }
  settings {
    default_unmatch = auto_deny
  }
  expect  pending
}
`,
	}
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 2, Col: 3, At: "default_unmatched_verdict", Msg: "unknown setting `default_unmatched_verdict`", Hint: "did you mean `default_unmatched`?"},
		diag{File: "a.pam", Line: 3, Col: 3, At: "uac_interception", Msg: "bad value for `uac_interception`"},
		diag{File: "a.pam", Line: 4, Col: 3, At: "default_unmatched ", Msg: "bad value for `default_unmatched`"},
		diag{File: "b/org.pam", Line: 4, Col: 23, At: "auto_approve", Msg: "default_unmatched must be require_approval or auto_deny, found auto_approve", Hint: "auto_approve is never a default"},
		diag{File: "b/org.pam", Line: 7, Col: 1, At: "settings", Msg: "second settings block for this org (first at b/org.pam:3:1)", Hint: "merge them"},
		diag{File: "x_test.pam", Line: 5, Col: 5, At: "default_unmatch ", Msg: "unknown setting `default_unmatch`", Hint: "did you mean `default_unmatched`?"},
	)
}

func TestLoadSettingsValues(t *testing.T) {
	repo := loadOK(t, one(`settings {
  default_unmatched = auto_deny
  uac_interception  = true
}
`))
	o := mustOrg(t, repo, "")
	if o.Config.DefaultUnmatchedVerdict != engine.VerdictAutoDeny || o.UACInterception == nil || !*o.UACInterception || o.ConfigAt == nil {
		t.Errorf("config = %+v, uac = %v, at = %v", o.Config, o.UACInterception, o.ConfigAt)
	}
}

func TestLoadPolicyErrors(t *testing.T) {
	srcs := one(`policy "features" {
  feature software {
    mode = allowlist
    executable {
      name   = "ok"
      sha256 = "` + hashA + `"
    }
    executable "named" {
      sha256 = "abc"
    }
    executable {
      name      = "empty glob"
      path_glob = ""
    }
  }
  assign group "g" when ` + "`device.os == \"windows\"`" + `
  assign group "g"
}

policy "settings" {
  feature software {
    mode       = allowlist
    executabel { name = "x" }
    priority   = "high"
  }
  feature pam { uac_interception = yes }
  feature pam { uac_interception = true }
  feature pan {}
}

policy "enum" {
  feature software {
    mode = greylist
  }
}

policy "required" {
  feature software {
    priority = 3
  }
}
`)
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 9, Col: 7, At: "sha256", Msg: "features.software_policy.executable[1].sha256: must be 64 hexadecimal characters"},
		diag{File: "a.pam", Line: 13, Col: 7, At: "path_glob", Msg: "features.software_policy.executable[2].pathGlob: must not be empty"},
		diag{File: "a.pam", Line: 17, Col: 10, At: `group "g"`, Msg: "assignments[1]: assigns the policy to the same device_group as assignments[0]; a policy attaches to each target once"},
		diag{File: "a.pam", Line: 23, Col: 5, At: "executabel", Msg: "unknown setting `executabel`", Hint: "did you mean `executable`?"},
		diag{File: "a.pam", Line: 24, Col: 18, At: `"high"`, Msg: "`priority` takes a whole number, found \"high\""},
		diag{File: "a.pam", Line: 26, Col: 36, At: "yes", Msg: "`uac_interception` takes true or false, found yes"},
		diag{File: "a.pam", Line: 27, Col: 11, At: "pam", Msg: "feature `pam` set twice in one policy", Hint: "merge the two blocks"},
		diag{File: "a.pam", Line: 28, Col: 11, At: "pan", Msg: "unknown feature `pan`", Hint: "did you mean `pam`?"},
		diag{File: "a.pam", Line: 33, Col: 5, At: "mode", Msg: `features.software_policy.mode: "greylist": must be one of allowlist, blocklist, audit`},
		diag{File: "a.pam", Line: 38, Col: 11, At: "software", Msg: "features.software_policy.mode: is required; must be one of allowlist, blocklist, audit"},
	)
}

func TestLoadAssignmentConditionErrors(t *testing.T) {
	srcs := one("policy \"p\" {\n" +
		"  feature pam {\n" +
		"    uac_interception = true\n" +
		"  }\n" +
		"  assign group \"a\" when `device.os == `\n" +
		"  assign group \"b\" when `device.os`\n" +
		"  assign group \"c\" priority 2 when `has(device.os) &&\n" +
		"    device.tags.exists(t, t = \"x\")`\n" +
		"  assign group \"d\" when `\"é\" = device.os &&\n" +
		"    device.x = 1`\n" +
		"}\n")
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 5, Col: 39, At: "`\n"[:1],
			Msg: "assignment condition: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"},
		diag{File: "a.pam", Line: 6, Col: 26, At: "device.os`",
			Msg: "assignment condition: condition must be a bool expression, not dyn (compare the attribute explicitly, e.g. `device.x == true`)"},
		diag{File: "a.pam", Line: 8, Col: 29, At: `= "x"`,
			Msg: "assignment condition: Syntax error: token recognition error at: '= '"},
		diag{File: "a.pam", Line: 8, Col: 31, At: `"x")`,
			Msg: "assignment condition: Syntax error: extraneous input '\"x\"' expecting ')'"},
		// Errors on two lines of one condition, in order; columns count
		// bytes, like every position (é is two).
		diag{File: "a.pam", Line: 9, Col: 31, At: "= device.os",
			Msg: "assignment condition: Syntax error: token recognition error at: '= '"},
		diag{File: "a.pam", Line: 9, Col: 33, At: "device.os &&",
			Msg: "assignment condition: Syntax error: mismatched input 'device' expecting <EOF>"},
		diag{File: "a.pam", Line: 10, Col: 14, At: "= 1",
			Msg: "assignment condition: Syntax error: token recognition error at: '= '"},
	)
}

func TestLoadPolicyInNamedOrg(t *testing.T) {
	// Regression: ValidatePolicy wants a UUID orgId, and every policy of an
	// org named in a rule file was refused.
	repo := loadOK(t, one(`org "acme"

policy "kiosks" {
  feature pam {
    uac_interception = false
  }
  assign org "acme"
  assign group "kiosks" priority 10 when `+"`device.os == \"windows\"`"+`
}
`))
	o := mustOrg(t, repo, "acme")
	if len(o.Policies) != 1 || o.Policies[0].OrgID != "acme" || len(o.Policies[0].Assignments) != 2 {
		t.Fatalf("policies = %+v", o.Policies)
	}
	if got := string(o.Policies[0].Features["pam"]); got != `{"uacInterceptionEnabled":false}` {
		t.Errorf("pam feature = %s", got)
	}
}

func TestLoadSignerGroupErrors(t *testing.T) {
	srcs := one(`signers "bad" {
  id         "not-a-uuid"
  cn         "A"
}

signers "bad-entries" {
  cn         "A" thumbprint "abc"
  thumbprint "` + strings.Repeat("g", 64) + `"
  cn         "   "
}
`)
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 2, Col: 14, At: `"not-a-uuid"`, Msg: "signer group id must be a UUID"},
		diag{File: "a.pam", Line: 7, Col: 14, At: `"A" thumbprint`, Msg: "signers[0].thumbprint: must be 64 hexadecimal characters"},
		diag{File: "a.pam", Line: 8, Col: 14, At: `"gggg`, Msg: "signers[1].thumbprint: must be 64 hexadecimal characters"},
		diag{File: "a.pam", Line: 9, Col: 14, At: `"   "`, Msg: "signers[2]: needs a subjectCn or a thumbprint"},
	)
}

// TestLoadReportsEveryError puts problems of many kinds in several files
// and expects all of them, sorted by file and position.
func TestLoadReportsEveryError(t *testing.T) {
	srcs := map[string]string{
		"b.pam": `rule "b1" {
  when hash == "nope"
  then auto_deny
}

rule "b2" {
  when user == "u"
  then auto_approve for 90x
}
`,
		"a.pam": `rule "a1" {
  when user == "u"
  during 08:00-18:00 "Mars/Olympus"
  then auto_deny
}

rule "a2" {
  when signer in signers("ghost")
  then auto_deny
}

rule "a3" {
  when tool == "t"
  then ignore
}
`,
		"c_test.pam": `test "c1" {
  observe { user = "u"  path = "x" }
}
`,
	}
	repo := Load(srcs)
	var got []string
	for _, d := range repo.Diags {
		got = append(got, d.String())
	}
	want := []string{
		`a.pam:3:22: error: time zone unknown time zone "Mars/Olympus": use an IANA name like "America/Chicago" (names are case-sensitive)`,
		`a.pam:8:26: error: unknown signer group "ghost"`,
		"a.pam:14:8: error: `ignore` is not allowed on a tool-action rule: a tool action must be decided",
		`b.pam:2:16: error: hash must be 64 hexadecimal characters (a SHA-256 digest)`,
		`b.pam:8:25: error: invalid duration "90x"`,
		"c_test.pam:3:1: error: test \"c1\" has no `at`",
		"c_test.pam:3:1: error: test \"c1\" has no `expect`",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("diagnostics (-want +got):\n%s", d)
	}
	if repo.Diags.Errors() != len(want) {
		t.Errorf("Errors() = %d", repo.Diags.Errors())
	}
}

// --- orgs ------------------------------------------------------------------

func fileOrgs(repo *Repository) map[string]string {
	m := map[string]string{}
	for _, f := range repo.Files {
		m[filepath.ToSlash(f.Path)] = f.Org
	}
	return m
}

func p(s string) string { return filepath.FromSlash(s) }

func TestOrgResolution(t *testing.T) {
	rule := func(name string) string {
		return "rule \"" + name + "\" {\n  when user == \"u\"\n  then auto_deny\n}\n"
	}
	srcs := map[string]string{
		p("top.pam"):                 rule("top"),
		p("acme/org.pam"):            "org \"acme\"\n",
		p("acme/rules.pam"):          rule("acme-1"),
		p("acme/deep/er/rules.pam"):  rule("acme-2"),
		p("acme/own.pam"):            "org \"contoso\"\n\n" + rule("contoso-by-file"),
		p("acme/contoso/org.pam"):    "# the org of this tree\norg \"contoso\"\n\n" + rule("contoso-in-org-pam"),
		p("acme/contoso/x/more.pam"): rule("contoso-deep"),
		p("loose/org.pam"):           rule("not-an-org-file"), // an org.pam without org names nothing
		p("loose/file.pam"):          "org \"solo\"\n" + rule("solo"),
	}
	repo := loadOK(t, srcs)
	want := map[string]string{
		"top.pam": "", "acme/org.pam": "acme", "acme/rules.pam": "acme", "acme/deep/er/rules.pam": "acme",
		"acme/own.pam": "contoso", "acme/contoso/org.pam": "contoso", "acme/contoso/x/more.pam": "contoso",
		"loose/org.pam": "", "loose/file.pam": "solo",
	}
	if d := cmp.Diff(want, fileOrgs(repo)); d != "" {
		t.Errorf("file orgs (-want +got):\n%s", d)
	}
	var orgs []string
	for _, o := range repo.Orgs {
		orgs = append(orgs, o.Name)
	}
	if d := cmp.Diff([]string{"", "acme", "contoso", "solo"}, orgs); d != "" {
		t.Errorf("orgs (-want +got):\n%s", d)
	}
	for org, rules := range map[string][]string{
		"":        {"not-an-org-file", "top"},
		"acme":    {"acme-2", "acme-1"},
		"contoso": {"contoso-in-org-pam", "contoso-deep", "contoso-by-file"},
		"solo":    {"solo"},
	} {
		o := mustOrg(t, repo, org)
		if d := cmp.Diff(rules, ruleNames(o)); d != "" {
			t.Errorf("org %q rules (-want +got):\n%s", org, d)
		}
		for _, r := range o.Rules {
			if r.OrgID != org {
				t.Errorf("rule %q has orgId %q, want %q", r.Name, r.OrgID, org)
			}
		}
	}
}

func TestOrgWithoutDeclarationsIsSingleTenant(t *testing.T) {
	repo := loadOK(t, map[string]string{
		"a.pam":     "rule \"a\" {\n  when user == \"u\"\n  then auto_deny\n}\n",
		"sub/b.pam": "rule \"b\" {\n  when user == \"v\"\n  then auto_deny\n}\n",
	})
	if len(repo.Orgs) != 1 || repo.Orgs[0].Name != "" || len(repo.Orgs[0].Rules) != 2 {
		t.Errorf("orgs = %+v", repo.Orgs)
	}
}

func TestOrgDeclarationErrors(t *testing.T) {
	srcs := map[string]string{
		"late.pam": `rule "r" {
  when user == "u"
  then auto_deny
}

org "late"
`,
		"twice.pam": `org "one"
org "two"
`,
	}
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "late.pam", Line: 6, Col: 1, At: "org", Msg: "the org declaration must come before everything else", Hint: "move it to the top of the file"},
		diag{File: "twice.pam", Line: 2, Col: 1, At: `org "two"`, Msg: "second org declaration (first at 1:1)", Hint: "a file belongs to one org"},
	)
	// The first declaration counts.
	if d := cmp.Diff(map[string]string{"late.pam": "late", "twice.pam": "one"}, fileOrgs(repo)); d != "" {
		t.Errorf("file orgs (-want +got):\n%s", d)
	}
}

func TestOrgsAreSeparate(t *testing.T) {
	srcs := map[string]string{
		"acme.pam": `org "acme"

signers "vendors" {
  cn "Acme Signer"
}

rule "same-name" {
  when signer in signers("vendors")
  then auto_approve
}
`,
		"contoso.pam": `org "contoso"

rule "same-name" {
  when signer in signers("vendors")
  then auto_approve
}
`,
	}
	repo := Load(srcs)
	// The group of acme is unknown in contoso, and rule names repeat freely
	// across orgs.
	checkDiags(t, srcs, repo.Diags,
		diag{File: "contoso.pam", Line: 4, Col: 26, At: `"vendors"`, Msg: `unknown signer group "vendors" in org "contoso"`, Hint: `declare it with signers "vendors" { … }`})

	acme := mustOrg(t, repo, "acme")
	if len(acme.Groups) != 1 || acme.Groups[0].OrgID != "acme" || acme.Groups[0].ID != DerivedID("signers", "acme", "vendors") {
		t.Errorf("acme groups = %+v", acme.Groups)
	}
	if got := *acme.Rules[0].MatchSignerGroupID; got != acme.Groups[0].ID {
		t.Errorf("acme's rule refers to %s, want its group %s", got, acme.Groups[0].ID)
	}
	if c := mustOrg(t, repo, "contoso"); len(c.Groups) != 0 || len(c.Rules) != 0 {
		t.Errorf("contoso = %+v", c)
	}
}

func TestOrgsCompileAndTestSeparately(t *testing.T) {
	srcs := map[string]string{
		"acme/org.pam": "org \"acme\"\n",
		"acme/r.pam": `rule "r" {
  when user == "alice"
  then auto_approve
}
`,
		"acme/r_test.pam": `test "alice in acme" {
  at      2026-06-15T10:00:00Z
  observe { user = "alice"  path = ` + "`C:\\a.exe`" + ` }
  expect  auto_approved by "r"
}
`,
		"contoso/org.pam": "org \"contoso\"\n",
		"contoso/r.pam": `rule "r" {
  when user == "alice"
  then auto_deny
}

signers "ids" {
  id "0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70"
  cn "Contoso"
}

rule "uses-ids" {
  when signer in signers("0C9A7F3E-5D21-4B8E-A1F4-6E2D9B3C8A70")
  then auto_approve
}
`,
		"contoso/r_test.pam": `test "alice in contoso" {
  at      2026-06-15T10:00:00Z
  observe { user = "alice"  path = ` + "`C:\\a.exe`" + ` }
  expect  denied by "r"
}
`,
	}
	for k, v := range srcs {
		delete(srcs, k)
		srcs[p(k)] = v
	}
	repo := loadOK(t, srcs)
	rep := Check(repo, CheckOptions{})
	if len(rep.Diags) != 0 {
		t.Fatalf("diagnostics: %v", rep.Diags)
	}
	if len(rep.RuleSet) != 2 || rep.RuleSet["acme"].Len() != 1 || rep.RuleSet["contoso"].Len() != 2 {
		t.Errorf("rule sets = %v", rep.RuleSet)
	}
	for _, tr := range rep.Tests {
		if !tr.Passed {
			t.Errorf("%s (org %q): %v", tr.Name, tr.Org, tr.Failures)
		}
	}
	if len(rep.Tests) != 2 {
		t.Errorf("%d tests ran", len(rep.Tests))
	}
	// A group referred to by id in another case resolves to the group's id.
	c := mustOrg(t, repo, "contoso")
	if got := *c.Rules[1].MatchSignerGroupID; got != "0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70" {
		t.Errorf("reference by id = %s", got)
	}
}

func TestDerivedIDIsStableUUID(t *testing.T) {
	a := DerivedID("signers", "acme", "vendors")
	if !engine.IsUUID(a) || a != DerivedID("signers", "acme", "vendors") {
		t.Errorf("DerivedID = %q", a)
	}
	if a[14] != '8' || !strings.ContainsRune("89ab", rune(a[19])) {
		t.Errorf("DerivedID %q is not a version 8, RFC 4122 variant UUID", a)
	}
	for _, b := range []string{DerivedID("signers", "acme", "vendor"), DerivedID("signers", "", "vendors"), DerivedID("rule", "acme", "vendors")} {
		if a == b {
			t.Errorf("collision: %s", b)
		}
	}
}

func TestLoadRuleFieldErrorsAtTheirValues(t *testing.T) {
	long := strings.Repeat("n", 256)
	srcs := one(`rule "priority" {
  priority 100001
  when     user == "u"
  then     auto_deny
}

rule "huge-priority" {
  priority 99999999999999999999
  when     user == "u"
  then     auto_deny
}

rule "site" {
  site "london-office"
  when user == "u"
  then auto_deny
}

rule "description" {
  description "` + strings.Repeat("d", 2001) + `"
  when        user == "u"
  then        auto_deny
}

rule "` + long + `" {
  when user == "u"
  then auto_deny
}

rule "timestamps" {
  when    user == "u"
  then    auto_deny
  created 2026-06-15T10:00:00
  updated 2026-13-01T00:00:00Z
}
`)
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags,
		diag{File: "a.pam", Line: 2, Col: 12, At: "100001", Msg: "priority: must be between 0 and 100000"},
		diag{File: "a.pam", Line: 8, Col: 12, At: "9999", Msg: "99999999999999999999 is not a whole number in range"},
		diag{File: "a.pam", Line: 14, Col: 8, At: `"london-office"`, Msg: "site must be a UUID or null"},
		diag{File: "a.pam", Line: 20, Col: 15, At: `"ddd`, Msg: "description: must be at most 2000 characters"},
		diag{File: "a.pam", Line: 25, Col: 6, At: `"nnn`, Msg: "rule name must be at most 255 characters"},
		diag{File: "a.pam", Line: 33, Col: 11, At: "2026-06-15T10:00:00\n"[:19], Msg: `invalid timestamp "2026-06-15T10:00:00"`,
			Hint: "write an RFC 3339 instant with a zone, like 2026-06-15T10:00:00+01:00 or …Z"},
		diag{File: "a.pam", Line: 34, Col: 11, At: "2026-13", Msg: `invalid timestamp "2026-13-01T00:00:00Z"`,
			Hint: "write an RFC 3339 instant with a zone, like 2026-06-15T10:00:00+01:00 or …Z"},
	)
}
