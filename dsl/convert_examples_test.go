package dsl

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
)

func sp(s string) *string { return &s }
func ip(n int) *int       { return &n }

// TestConvertPlainConjunctions checks the table of LANGUAGE.md 8.7: a plain
// conjunction is stored in the match* fields, negations in matchNegate in
// criterion order; anything richer stays in the condition, canonically.
func TestConvertPlainConjunctions(t *testing.T) {
	repo := loadOK(t, one(`signers "vendors" {
  id "0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70"
  cn "Vendor"
}

rule "exe" {
  when user != "svc" and not signer in signers("vendors") and hash == "`+strings.ToUpper(hashA)+`"
       and path !~ `+"`C:\\Windows\\**`"+` and parent ~ `+"`C:\\p.exe`"+` and not cmdline contains "/x"
       and group == "IT"
  then auto_deny
}

rule "tool" {
  when not (risk == 4) and tool == "shell"
  then require_approval
}

rule "rich" {
  when user == "a" and (group == "x" or group == "y") and user == "b" and not (signer == "s" and hash in ["`+hashA+`"])
       and cel `+"`obs.commandLine.contains(\"q\")`"+`
  then require_approval
}

rule "signer-beside-group" {
  when signer == "Vendor" and signer in signers("vendors")
  then auto_approve
}
`))
	rules := mustOrg(t, repo, "").Rules
	want := []engine.Rule{
		{Name: "exe", Enabled: true, Priority: 100, Verdict: engine.VerdictAutoDeny,
			MatchSignerGroupID: sp("0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70"), MatchHash: sp(hashA),
			MatchPathGlob: sp(`C:\Windows\**`), MatchParentImage: sp(`C:\p.exe`), MatchCommandLine: sp("/x"),
			MatchUser: sp("svc"), MatchAdGroup: sp("IT"),
			MatchNegate: []engine.NegateKey{engine.NegSignerGroup, engine.NegPathGlob, engine.NegCommandLine, engine.NegUser}},
		{Name: "tool", Enabled: true, Priority: 100, Verdict: engine.VerdictRequireApproval,
			MatchToolName: sp("shell"), MatchRiskTier: ip(4), MatchNegate: []engine.NegateKey{engine.NegRiskTier}},
		{Name: "rich", Enabled: true, Priority: 100, Verdict: engine.VerdictRequireApproval, MatchUser: sp("a"),
			Condition: sp(`(group == "x" or group == "y") and user == "b" and not (signer == "s" and hash in ["` + hashA + `"]) and cel ` + "`obs.commandLine.contains(\"q\")`")},
		{Name: "signer-beside-group", Enabled: true, Priority: 100, Verdict: engine.VerdictAutoApprove, MatchSigner: sp("Vendor"),
			Condition: sp(`signer in signers("0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70")`)},
	}
	if d := cmp.Diff(want, rules, ruleCmp...); d != "" {
		t.Errorf("rules (-want +got):\n%s", d)
	}

	// And back: the match* fields print first, the signer group by name.
	files, errs := FromBundle(ToBundle(repo))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	text := string(syntax.Format(files[""]))
	for _, line := range []string{
		`  when not signer in signers("vendors")`,
		`       and hash == "` + hashA + `"`,
		`       and path !~ ` + "`C:\\Windows\\**`",
		`       and parent ~ ` + "`C:\\p.exe`",
		`       and not cmdline contains "/x"`,
		`       and user != "svc"`,
		`       and group == "IT"`,
		`  when tool == "shell" and risk != 4`,
		`  when signer == "Vendor" and signer in signers("vendors")`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("no line %q in\n%s", line, text)
		}
	}
}

// TestFromBundleText pins the layout FromBundle gives an API rule: every
// field, in the language's order, values quoted the canonical way.
func TestFromBundleText(t *testing.T) {
	data := `{
  "rules": [{
    "id": "6f1e2a4c-1b7d-4c3e-9a55-0d2f7e8b9c10", "orgId": "acme", "siteId": "26ecf05a-81d9-4ce2-a414-9b1b2c3d4e5f",
    "name": "Helper \"reads\" C:\\files", "description": "two\nlines", "enabled": false, "priority": 200,
    "verdict": "auto_approve", "approvalDurationMinutes": 90,
    "matchToolName": "file_read", "matchRiskTier": 0, "matchUser": "acme\\svc", "matchNegate": ["riskTier", "riskTier", "hash"],
    "condition": "group in [\"a\", \"b\"] or cel \"at.getHours() > 8\"",
    "timeWindow": {"start": "7:00", "end": "19:00", "days": [5, 6, 0, 1, 3, 3], "timezone": "Europe/London"},
    "createdByUserId": "b5d1c0de-7a41-4a8e-8f0e-3c2b1a09d8e7",
    "createdAt": "2026-05-02T09:14:00.123456789+05:30", "updatedAt": "2026-06-01T16:40:12Z"
  }, {
    "orgId": "acme", "name": "minimal", "verdict": "auto_deny", "matchSignerGroupId": "0C9A7F3E-5D21-4B8E-A1F4-6E2D9B3C8A70"
  }],
  "signerGroups": [{
    "id": "` + DerivedID("signers", "acme", "vendors") + `", "orgId": "acme", "name": "vendors",
    "signers": ["Mozilla Corporation", {"subjectCn": "mozilla corporation"}, {"subjectCn": "Microsoft Corporation", "thumbprint": "` + strings.ToUpper(hashB) + `"}, {"thumbprint": "` + hashA + `"}]
  }, {
    "id": "0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70", "orgId": "acme", "name": "by id", "description": "", "signers": []
  }],
  "orgConfigs": [{"orgId": "acme", "defaultUnmatchedVerdict": "auto_deny", "uacInterceptionEnabled": true}]
}`
	b, err := ParseBundle([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	files, errs := FromBundle(b)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := "org \"acme\"\n" +
		"\n" +
		"settings {\n" +
		"  default_unmatched = auto_deny\n" +
		"  uac_interception  = true\n" +
		"}\n" +
		"\n" +
		"signers \"vendors\" {\n" +
		"  cn         \"Mozilla Corporation\"\n" +
		"  cn         \"Microsoft Corporation\" thumbprint \"" + hashB + "\"\n" +
		"  thumbprint \"" + hashA + "\"\n" +
		"}\n" +
		"\n" +
		"signers \"by id\" {\n" +
		"  id          \"0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70\"\n" +
		"  description \"\"\n" +
		"}\n" +
		"\n" +
		"rule `Helper \"reads\" C:\\files` {\n" +
		"  id          \"6f1e2a4c-1b7d-4c3e-9a55-0d2f7e8b9c10\"\n" +
		"  description \"two\\nlines\"\n" +
		"  site        \"26ecf05a-81d9-4ce2-a414-9b1b2c3d4e5f\"\n" +
		"  priority    200\n" +
		"  enabled     false\n" +
		"  when        user == `acme\\svc`\n" +
		"              and tool == \"file_read\"\n" +
		"              and risk != 0\n" +
		"              and (group in [\"a\", \"b\"] or cel \"at.getHours() > 8\")\n" +
		"  during      fri-mon,wed,wed 7:00-19:00 \"Europe/London\"\n" +
		"  then        auto_approve for 1h30m\n" +
		"  created_by  \"b5d1c0de-7a41-4a8e-8f0e-3c2b1a09d8e7\"\n" +
		"  created     2026-05-02T09:14:00.123456789+05:30\n" +
		"  updated     2026-06-01T16:40:12Z\n" +
		"}\n" +
		"\n" +
		"rule \"minimal\" {\n" +
		"  when signer in signers(\"by id\")\n" +
		"  then auto_deny\n" +
		"}\n"
	if d := cmp.Diff(want, string(syntax.Format(files["acme"]))); d != "" {
		t.Errorf("text (-want +got):\n%s", d)
	}
	if len(files) != 1 {
		t.Errorf("files for orgs %q", Orgs(files))
	}
}

func TestFromBundleReportsWhatTheAPIRefuses(t *testing.T) {
	b := &Bundle{
		Rules: []engine.Rule{
			{Name: "good", Verdict: engine.VerdictAutoDeny, MatchUser: sp("u"), Enabled: true, Priority: 100},
			{Name: "bad-hash", Verdict: engine.VerdictAutoDeny, MatchHash: sp("abc"), Enabled: true, Priority: 100},
			{Name: "no-criterion", Verdict: engine.VerdictAutoDeny, Enabled: true, Priority: 100},
			{Name: "bad-condition", Verdict: engine.VerdictAutoDeny, Condition: sp("user = 1"), Enabled: true, Priority: 100},
		},
		Policies: []policy.Policy{
			{Name: "ok", OrgID: "acme", Active: true, Features: map[string]json.RawMessage{"pam": json.RawMessage(`{"uacInterceptionEnabled": true}`)}},
			{Name: "bad", Active: true, Features: map[string]json.RawMessage{"pam": json.RawMessage(`{"uacInterceptionEnabled": 1}`)}},
		},
	}
	files, errs := FromBundle(b)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		`rules[1] "bad-hash": matchHash: must be 64 hexadecimal characters (a SHA-256 digest)`,
		`rules[2] "no-criterion": criteria: ` + engine.ErrNoCriterion.Error(),
		`rules[3] "bad-condition": condition: 1:6: expected an operator after ` + "`user`" + `, found ` + "`=`" + ` (compare with ` + "`==`" + `)`,
		`policies[1] "bad": features.pam.uacInterceptionEnabled: must be a boolean (true or false), got a number`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("errors (-want +got):\n%s", d)
	}
	repo := loadOK(t, filesOf(files))
	if got := ruleNames(mustOrg(t, repo, "")); !cmp.Equal(got, []string{"good"}) {
		t.Errorf("rules = %q", got)
	}
	if p := mustOrg(t, repo, "acme").Policies; len(p) != 1 || p[0].Name != "ok" {
		t.Errorf("policies = %+v", p)
	}
}

func TestParseBundle(t *testing.T) {
	b, err := ParseBundle([]byte(` [{"name": "r", "verdict": "auto_deny", "matchUser": "u"}]`))
	if err != nil {
		t.Fatal(err)
	}
	// A bare array is a list of rules, with the API's create defaults.
	if len(b.Rules) != 1 || !b.Rules[0].Enabled || b.Rules[0].Priority != engine.DefaultRulePriority {
		t.Errorf("rules = %+v", b.Rules)
	}
	for _, bad := range []string{
		`{"rules": [], "signerGroups": [], "extra": 1}`,
		// Unknown keys inside rules and policies too (regression: their
		// own decoders ignored them, and a misspelt criterion vanished).
		`{"rules": [{"name": "r", "verdict": "auto_deny", "matchSginer": "Vendor", "matchUser": "u"}]}`,
		`[{"name": "r", "verdict": "auto_deny", "matchSginer": "Vendor", "matchUser": "u"}]`,
		`{"rules": [{"name": "r", "timeWindow": {"start": "08:00", "end": "09:00", "zone": "UTC"}}]}`,
		`{"rules": [], "policies": [{"name": "p", "feature": {}}]}`,
		`{"rules": [], "policies": [{"name": "p", "assignments": [{"level": "site", "target": "x"}]}]}`,
		`[{"name": 1}]`,
		`{"rules": [] `,
	} {
		if _, err := ParseBundle([]byte(bad)); err == nil {
			t.Errorf("ParseBundle(%s) accepted it", bad)
		}
	}
}

// TestConvertPolicies round-trips configuration policies and org settings
// of a UUID org, a named org and the unnamed one: the fields the language
// has words for.
func TestConvertPolicies(t *testing.T) {
	orgID := "9b1b2c3d-81d9-4ce2-a414-26ecf05a4e5f"
	data := `{"rules": [], "signerGroups": [], "policies": [
  {"id": "6f1e2a4c-1b7d-4c3e-9a55-0d2f7e8b9c10", "orgId": "` + orgID + `", "name": "block \"remote\" tools",
   "description": "a\nb", "active": false,
   "features": {"software_policy": {"mode": "blocklist", "priority": 10, "executable": [
     {"name": "AnyDesk", "signer": "philandro Software GmbH"},
     {"name": "PuTTY", "pathGlob": "C:\\Users\\*\\Downloads\\putty*.exe", "sha256": "` + hashA + `", "publisher": "S. Tatham"}]},
     "pam": {"uacInterceptionEnabled": false}},
   "assignments": [{"level": "organization", "targetId": "` + orgID + `"},
     {"level": "device_group", "targetId": "kiosks", "priority": 10, "condition": "device.os == \"windows\""},
     {"level": "site", "targetId": "london"}, {"level": "device", "targetId": "pc-1"}, {"level": "partner", "targetId": "p"}]},
  {"orgId": "acme", "name": "named org", "features": {"pam": {"uacInterceptionEnabled": true}}, "assignments": [{"level": "organization", "targetId": "acme"}]},
  {"name": "no org", "features": {}, "assignments": []}
], "orgConfigs": [{"orgId": "acme"}, {"orgId": "", "defaultUnmatchedVerdict": "require_approval"}]}`
	b, err := ParseBundle([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	files, errs := FromBundle(b)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	srcs := filesOf(files)
	repo := loadOK(t, srcs)
	back := ToBundle(repo)

	norm := func(ps []policy.Policy) []policy.Policy {
		out := byOrg(ps, func(p policy.Policy) string { return p.OrgID })
		for i := range out {
			for k, v := range out[i].Features {
				var m any
				if err := json.Unmarshal(v, &m); err != nil {
					t.Fatal(err)
				}
				out[i].Features[k], _ = json.Marshal(m)
			}
			if len(out[i].Features) == 0 {
				out[i].Features = nil
			}
		}
		return out
	}
	if d := cmp.Diff(norm(b.Policies), norm(back.Policies), ruleCmp...); d != "" {
		t.Errorf("policies (-want +got):\n%s", d)
	}
	if d := cmp.Diff(byOrg(b.OrgConfigs, func(c OrgConfig) string { return c.OrgID }), back.OrgConfigs); d != "" {
		t.Errorf("org settings (-want +got):\n%s", d)
	}
	files2, errs := FromBundle(back)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if d := cmp.Diff(srcs, filesOf(files2)); d != "" {
		t.Errorf("text changed (-first +second):\n%s", d)
	}
}

// TestConvertHandWrittenText: text as a person writes it becomes canonical
// after one trip through JSON and then stays put.
func TestConvertHandWrittenText(t *testing.T) {
	src := `# comments are not kept: the API has no place for them
org "acme"
settings { default_unmatched = auto_deny }
signers "trusted-vendors" {
  cn          "Mozilla Corporation"
  cn          "Microsoft Corporation" thumbprint "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
}
rule "no-temp-dir-binaries" {
  priority 5
  when     path ~ "C:\\Users\\*\\AppData\\Local\\Temp\\**"
           and (not signer in signers("trusted-vendors") or cel "!has(obs.targetExecutableSigner)")
  then     auto_deny
}
rule "mozilla-from-downloads" {
  description "Signed Mozilla installers, in office hours"
  priority    50
  when        signer == "Mozilla Corporation" and path ~ ` + "`C:\\Users\\*\\Downloads\\*.exe`" + `
  during      mon,tue,wed,thu,fri 8:00-18:00 "Europe/London"
  then        auto_approve for 90m
}
rule "helper" { when tool in ["file_read"] and risk in [1, 2]
  then auto_approve }
policy "kiosks" {
  feature pam { uac_interception = false }
  assign group "kiosks" when ` + "`device.os == \"windows\"`" + ` priority 10
}
test "ignored in conversion" {
  at 2026-06-15T10:00:00Z
  observe { user = "u" path = "x" }
  expect pending
}
`
	repo := loadOK(t, one(src))
	first := ToBundle(repo)
	files, errs := FromBundle(first)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	text := string(syntax.Format(files["acme"]))
	for _, want := range []string{
		"  when     path ~ `C:\\Users\\*\\AppData\\Local\\Temp\\**`\n" +
			"           and (not signer in signers(\"trusted-vendors\") or cel \"!has(obs.targetExecutableSigner)\")\n",
		"  during      mon-fri 8:00-18:00 \"Europe/London\"\n",
		"  then        auto_approve for 1h30m\n",
		"  when tool == \"file_read\" and risk in [1, 2]\n",
		"  assign group \"kiosks\" priority 10 when `device.os == \"windows\"`\n",
		"  cn \"Microsoft Corporation\" thumbprint \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
	if strings.Contains(text, "#") || strings.Contains(text, "test ") {
		t.Errorf("comments and tests are not part of the API's data:\n%s", text)
	}
	repo2 := loadOK(t, map[string]string{"x.pam": text})
	second := ToBundle(repo2)
	if d := cmp.Diff(first.Rules, second.Rules, ruleCmp...); d != "" {
		t.Errorf("rules (-first +second):\n%s", d)
	}
	files2, _ := FromBundle(second)
	if d := cmp.Diff(text, string(syntax.Format(files2["acme"]))); d != "" {
		t.Errorf("text (-first +second):\n%s", d)
	}
}

func TestConvertWindowDays(t *testing.T) {
	for _, c := range []struct {
		days []int
		want string
	}{
		{nil, "08:00-09:00"},
		{[]int{1, 2, 3, 4, 5}, "mon-fri 08:00-09:00"},
		{[]int{5, 6, 0, 1}, "fri-mon 08:00-09:00"},
		{[]int{0, 1, 2, 3, 4, 5, 6}, ""}, // a whole week: any spelling that comes back
		{[]int{3, 4, 5, 6, 0, 1, 2}, ""},
		{[]int{1, 2}, "mon,tue 08:00-09:00"},
		{[]int{6, 0}, "sat,sun 08:00-09:00"},
		{[]int{1, 1}, "mon,mon 08:00-09:00"},
		{[]int{1, 3, 5}, "mon,wed,fri 08:00-09:00"},
		{[]int{0, 1, 2, 0, 1, 2}, "sun-tue,sun-tue 08:00-09:00"},
		{[]int{6, 5, 4}, "sat,fri,thu 08:00-09:00"},
	} {
		r := engine.Rule{Name: "w", Enabled: true, Priority: 100, Verdict: engine.VerdictAutoDeny, MatchUser: sp("u"),
			TimeWindow: &engine.TimeWindow{Start: "08:00", End: "09:00", Days: c.days}}
		text := syntax.WindowText(RuleBlock(r, nil).FieldOf("during").Value.(*syntax.Window))
		if c.want != "" && text != c.want {
			t.Errorf("%v: %q, want %q", c.days, text, c.want)
		}
		if err := checkRoundTrip(&Bundle{Rules: []engine.Rule{r}}); err != nil {
			t.Errorf("%v: %v", c.days, err)
		}
	}
}

// TestConvertGroupsOfTwoOrgsWithOneName: each org's rule names its own
// group, though both groups have the same name.
func TestConvertGroupsOfTwoOrgsWithOneName(t *testing.T) {
	ga, gb := "0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70", "1c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70"
	b := &Bundle{
		SignerGroups: []engine.SignerGroup{
			{ID: ga, OrgID: "a", Name: "vendors", Signers: []engine.SignerEntry{engine.CNEntry("A")}},
			{ID: gb, OrgID: "b", Name: "vendors", Signers: []engine.SignerEntry{engine.CNEntry("B")}},
		},
		Rules: []engine.Rule{
			{OrgID: "a", Name: "r", Enabled: true, Priority: 100, Verdict: engine.VerdictAutoApprove, MatchSignerGroupID: sp(ga)},
			{OrgID: "b", Name: "r", Enabled: true, Priority: 100, Verdict: engine.VerdictAutoApprove, MatchSignerGroupID: sp(gb),
				Condition: sp(`user == "x" or signer in signers("` + gb + `")`)},
		},
	}
	if err := checkRoundTrip(b); err != nil {
		t.Fatal(err)
	}
}

// TestConvertDuplicateCNEntries is the regression for a bare CN beside a
// CN-only object entry of the same name.
func TestConvertDuplicateCNEntries(t *testing.T) {
	g := engine.NormalizeSignerGroup(engine.SignerGroup{ID: "0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70", Name: "g",
		Signers: []engine.SignerEntry{engine.CNEntry("X"), {SubjectCN: sp("x")}, {SubjectCN: sp("Y")}, engine.CNEntry("y ")}})
	if len(g.Signers) != 4 {
		t.Fatalf("test bug: NormalizeSignerGroup kept %d entries", len(g.Signers))
	}
	text := string(syntax.Format(&syntax.File{Decls: []*syntax.Block{SignerGroupBlock(g)}}))
	want := "signers \"g\" {\n  id \"0c9a7f3e-5d21-4b8e-a1f4-6e2d9b3c8a70\"\n  cn \"X\"\n  cn \"Y\"\n}\n"
	if text != want {
		t.Errorf("text:\n%s\nwant:\n%s", text, want)
	}
	if err := checkRoundTrip(&Bundle{SignerGroups: []engine.SignerGroup{g}}); err != nil {
		t.Error(err)
	}
}

// TestConvertLongCondition is the regression for the condition length
// limit: checked on the stored condition, as the API checks it, not on the
// whole `when`.
func TestConvertLongCondition(t *testing.T) {
	quotes := strings.Repeat(`"`, 4000) + "`" // each printed escaped: about 8000 characters
	r := engine.Rule{Name: "long", Enabled: true, Priority: 100, Verdict: engine.VerdictAutoDeny,
		MatchPathGlob: &quotes, MatchParentImage: &quotes, MatchCommandLine: &quotes}
	if err := engine.ValidateRule(&r); err != nil {
		t.Fatal(err)
	}
	if err := checkRoundTrip(&Bundle{Rules: []engine.Rule{r}}); err != nil {
		t.Fatal(err)
	}

	// A remaining condition over the limit is refused, at the `when`.
	var elems []string
	for i := range 70 {
		elems = append(elems, `"`+strings.Repeat("u", 250)+string(rune('a'+i%26))+`"`)
	}
	srcs := one("rule \"too-long\" {\n  when user in [" + strings.Join(elems, ", ") + "]\n  then auto_deny\n}\n")
	repo := Load(srcs)
	checkDiags(t, srcs, repo.Diags, diag{File: "a.pam", Line: 2, Col: 8, At: "user in",
		Msg: "condition must be at most 16384 characters"})
}

// TestConvertDeepCondition: a condition nested as deep as the API allows
// converts; joined to match* criteria it would need one level more, and
// FromBundle says so instead of writing a file that does not load.
func TestConvertDeepCondition(t *testing.T) {
	deep := `user == "a" or ` + strings.Repeat("not ", 63) + `user == "b"`
	r := engine.Rule{Name: "deep", Enabled: true, Priority: 100, Verdict: engine.VerdictAutoDeny, Condition: &deep}
	if err := engine.ValidateRule(&r); err != nil {
		t.Fatalf("test bug: %v", err)
	}
	if err := checkRoundTrip(&Bundle{Rules: []engine.Rule{engine.NormalizeRule(r)}}); err != nil {
		t.Fatal(err)
	}

	r.MatchAdGroup = sp("g")
	files, errs := FromBundle(&Bundle{Rules: []engine.Rule{r, {Name: "fine", Enabled: true, Priority: 100, Verdict: engine.VerdictAutoDeny, MatchUser: sp("u")}}})
	if len(errs) != 1 || errs[0].Error() != `rules[0] "deep": the condition cannot be written in a rule file: condition nested too deeply` {
		t.Fatalf("errors = %v", errs)
	}
	if got := ruleNames(mustOrg(t, loadOK(t, filesOf(files)), "")); !cmp.Equal(got, []string{"fine"}) {
		t.Errorf("rules = %q", got)
	}
}

// TestConvertExampleRepository converts the example repository to JSON and
// back: the same rules, groups, policies and settings, and text that then
// stays put.
func TestConvertExampleRepository(t *testing.T) {
	repo, err := LoadDir("../rules")
	if err != nil {
		t.Skip("no example repository:", err)
	}
	if len(repo.Diags) > 0 {
		t.Fatalf("the example repository has diagnostics: %v", repo.Diags)
	}
	first := ToBundle(repo)
	if len(first.Rules) == 0 {
		t.Fatal("no rules in the example repository")
	}
	files, errs := FromBundle(first)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	srcs := filesOf(files)
	second := ToBundle(loadOK(t, srcs))
	if d := cmp.Diff(first.Rules, second.Rules, ruleCmp...); d != "" {
		t.Errorf("rules (-repository +converted):\n%s", d)
	}
	if d := compareGroups(first.SignerGroups, second.SignerGroups); d != "" {
		t.Error(d)
	}
	if d := cmp.Diff(first.Policies, second.Policies, ruleCmp...); d != "" {
		t.Errorf("policies (-repository +converted):\n%s", d)
	}
	if d := cmp.Diff(first.OrgConfigs, second.OrgConfigs); d != "" {
		t.Errorf("settings (-repository +converted):\n%s", d)
	}
	files2, _ := FromBundle(second)
	if d := cmp.Diff(srcs, filesOf(files2)); d != "" {
		t.Errorf("text (-first +second):\n%s", d)
	}
}
