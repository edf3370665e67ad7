package engine

import (
	"strings"
	"testing"
	"time"
)

// Cases found in review: each once let a rule be skipped, a stored rule
// approve too much, or the two evaluators disagree.

var rgAt = time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)

func rgBoth(t *testing.T, rs *RuleSet, in *Input) Decision {
	t.Helper()
	fast, ref := rs.Decide(in), rs.DecideReference(in)
	fast.Explain, ref.Explain = nil, nil
	if fast.Outcome != ref.Outcome || fast.RuleID != ref.RuleID || fast.DurationMinutes != ref.DurationMinutes || (fast.Error == "") != (ref.Error == "") {
		t.Fatalf("evaluators disagree: indexed %v, CEL %v", fast, ref)
	}
	return fast
}

func TestRegressionLongNonASCIIPathKey(t *testing.T) {
	dir := `C:\` + strings.Repeat("é", 2100) // 4,203 bytes, 2,103 characters: a legal glob
	for _, glob := range []string{dir + `\*.exe`, `*\` + strings.Repeat("é", 2100) + `\*`} {
		rules := []Rule{
			{ID: "deny", Name: "deny", Enabled: true, Priority: 1, Verdict: VerdictAutoDeny, MatchPathGlob: sp(glob)},
			{ID: "all", Name: "all", Enabled: true, Priority: 2, Verdict: VerdictAutoApprove, MatchPathGlob: sp("**")},
		}
		rs, err := Compile(rules, nil, CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		in := &Input{Flow: FlowUAC, At: rgAt, Observation: Observation{SubjectUsername: "u", TargetExecutablePath: dir + `\x.exe`}}
		if d := rgBoth(t, rs, in); d.RuleID != "deny" {
			t.Fatalf("glob %.20q…: got %v, want denied by the first rule", glob, d)
		}
	}
}

func TestRegressionEmptyStoredCriteriaAreAbsent(t *testing.T) {
	cases := []struct {
		name string
		rule Rule
		flow FlowType
		obs  Observation
	}{
		{"empty command line", Rule{MatchCommandLine: sp("")}, FlowUAC,
			Observation{SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`, CommandLine: "x.exe /s"}},
		{"negated empty tool", Rule{MatchToolName: sp(""), MatchNegate: []NegateKey{NegToolName}}, FlowToolAct,
			Observation{SubjectUsername: "u", ToolName: "shell_exec"}},
		{"negated empty user", Rule{MatchUser: sp(""), MatchNegate: []NegateKey{NegUser}}, FlowJITAdmin,
			Observation{SubjectUsername: "u"}},
		{"negated empty path", Rule{MatchPathGlob: sp(""), MatchNegate: []NegateKey{NegPathGlob}}, FlowUAC,
			Observation{SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`}},
		{"empty AD group", Rule{MatchAdGroup: sp("")}, FlowJITAdmin,
			Observation{SubjectUsername: "u", AdGroups: []string{""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rule
			r.ID, r.Name, r.Enabled, r.Verdict = "r", "r", true, VerdictAutoApprove
			rs, err := Compile([]Rule{r}, nil, CompileOptions{Lenient: true})
			if err != nil {
				t.Fatal(err)
			}
			d := rgBoth(t, rs, &Input{Flow: tc.flow, At: rgAt, Observation: tc.obs})
			if d.Outcome == OutcomeAutoApproved || d.RuleID != "" {
				t.Fatalf("a rule whose only criterion is empty must never match; got %v", d)
			}
		})
	}
}

func TestRegressionEmptySiteIsNotOrgWide(t *testing.T) {
	r := Rule{ID: "r", Name: "r", Enabled: true, Verdict: VerdictAutoApprove, MatchUser: sp("mallory"), SiteID: sp("")}
	rs, err := Compile([]Rule{r}, nil, CompileOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{"22222222-2222-2222-2222-222222222222", ""} {
		d := rgBoth(t, rs, &Input{Flow: FlowJITAdmin, At: rgAt, Observation: Observation{SubjectUsername: "mallory", SiteID: site}})
		if d.Outcome != OutcomePending || d.RuleID != "" {
			t.Fatalf("site %q: a rule scoped to a malformed site must not apply; got %v", site, d)
		}
	}
}

func TestRegressionRuleSetSharesNothing(t *testing.T) {
	d := 30
	tz := "Europe/London"
	rules := []Rule{{ID: "r", Name: "r", Enabled: true, Verdict: VerdictAutoApprove, MatchUser: sp("bob"),
		ApprovalDurationMinutes: &d, TimeWindow: &TimeWindow{Start: "00:00", End: "23:59", Timezone: &tz}}}
	rs, err := Compile(rules, nil, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{Flow: FlowUAC, At: rgAt, Observation: Observation{SubjectUsername: "bob", TargetExecutablePath: `C:\x.exe`}}
	// Change everything reachable from the input and from Rules().
	d = 999999
	*rules[0].MatchUser = "alice"
	got := rs.Rules()
	*got[0].ApprovalDurationMinutes = -5
	*got[0].MatchUser = "eve"
	got[0].TimeWindow.Start = "25:00"
	if dec := rgBoth(t, rs, in); dec.Outcome != OutcomeAutoApproved || dec.DurationMinutes != 30 {
		t.Fatalf("the compiled set changed with its inputs: %v", dec)
	}
	if again := rs.Rules(); *again[0].ApprovalDurationMinutes != 30 || *again[0].MatchUser != "bob" {
		t.Fatalf("Rules() exposes internal state: %+v", again[0])
	}
}

func TestRegressionForeignOrgSignerGroupFailsClosed(t *testing.T) {
	gid := "aaaaaaaa-0000-0000-0000-000000000001"
	rules := []Rule{{ID: "r", Name: "r", OrgID: "org-a", Enabled: true, Verdict: VerdictAutoApprove, MatchSignerGroupID: sp(gid)}}
	groups := []SignerGroup{{ID: gid, OrgID: "org-b", Name: "theirs", Signers: []SignerEntry{CNEntry("Vendor")}}}
	rs, err := Compile(rules, groups, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := rgBoth(t, rs, &Input{Flow: FlowUAC, At: rgAt, Observation: Observation{SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`, TargetExecutableSigner: "Vendor"}})
	if d.RuleID != "" || len(rs.Issues()) != 1 {
		t.Fatalf("another org's group must behave as missing: %v, issues %v", d, rs.Issues())
	}
}

func TestRegressionBlankStoredThumbprintNeverWidens(t *testing.T) {
	rules := []Rule{{ID: "r", Name: "r", Enabled: true, Priority: 1, Verdict: VerdictAutoApprove,
		MatchUser: sp("bob"), MatchSignerThumbprint: sp("   ")}}
	rs, err := Compile(rules, nil, CompileOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{Flow: FlowUAC, At: rgAt, Observation: Observation{SubjectUsername: "bob", TargetExecutablePath: `C:\x.exe`,
		TargetExecutableSignerThumbprint: strings.Repeat("ab", 32)}}
	if d := rgBoth(t, rs, in); d.Outcome == OutcomeAutoApproved {
		t.Fatalf("a blank stored thumbprint was read as no criterion: %v", d)
	}
}

func TestRegressionCELAtomShapeFollowsFieldsRead(t *testing.T) {
	tool := Rule{Name: "t", Enabled: true, Priority: 1, Verdict: VerdictAutoApprove, Condition: sp("cel `obs.toolName == 'file_read'`")}
	if !tool.HasToolCriterion() || tool.HasExecutableCriterion() {
		t.Fatalf("a cel atom reading toolName is a tool criterion")
	}
	ign := tool
	ign.Verdict = VerdictIgnore
	if err := ValidateRule(&ign); err == nil || !strings.Contains(err.Error(), "ignore") {
		t.Fatalf("ignore on a cel tool rule: %v", err)
	}
	rs, err := Compile([]Rule{tool}, nil, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	risk := 2
	in := &Input{Flow: FlowToolAct, At: rgAt, Observation: Observation{SubjectUsername: "helper", ToolName: "file_read", RiskTier: &risk}}
	if d := rgBoth(t, rs, in); d.Outcome != OutcomeAutoApproved {
		t.Fatalf("a cel tool rule must govern tool actions: %v", d)
	}
	mixed := Rule{Name: "m", Enabled: true, Priority: 1, Verdict: VerdictAutoDeny,
		Condition: sp("cel `obs.toolName == 'x'` or path ~ `C:\\x\\**`")}
	if err := ValidateRule(&mixed); err == nil || !strings.Contains(err.Error(), "mixed") {
		t.Fatalf("mixing tool and executable fields through cel must be refused: %v", err)
	}
}

// A signer group beyond the API's limits makes a program too large to
// build; that is found at compile time (strict: error; lenient: the rule
// fails safe), never left to the reference evaluator alone.
func TestRegressionOversizedSignerGroupFailsAtCompile(t *testing.T) {
	var ents []SignerEntry
	for i := 0; i < 6000; i++ {
		ents = append(ents, CNEntry(strings.Repeat("x", 250)+strings.Repeat("y", i%50)))
	}
	g := SignerGroup{ID: "3f2504e0-4f89-41d3-9a0c-0305e82c3301", Name: "huge", Signers: ents}
	rules := []Rule{{ID: "r", Name: "r", Enabled: true, Priority: 1, Verdict: VerdictAutoApprove, MatchSignerGroupID: sp(g.ID)}}
	if _, err := Compile(rules, []SignerGroup{g}, CompileOptions{}); err == nil {
		t.Fatal("strict compile accepted a rule whose program cannot be built")
	}
	rs, err := Compile(rules, []SignerGroup{g}, CompileOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{Flow: FlowUAC, At: rgAt, Observation: Observation{SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`,
		TargetExecutableSigner: strings.Repeat("x", 250)}}
	if d := rgBoth(t, rs, in); d.Outcome != OutcomePending || d.Error == "" {
		t.Fatalf("got %v, want a fail-safe pending", d)
	}
}

// Two groups of one name: a condition naming it is ambiguous and fails
// closed like a missing group.
func TestRegressionAmbiguousSignerGroupNameFailsClosed(t *testing.T) {
	groups := []SignerGroup{
		{ID: "3f2504e0-4f89-41d3-9a0c-0305e82c3301", Name: "trusted", Signers: []SignerEntry{CNEntry("Good Corp")}},
		{ID: "3f2504e0-4f89-41d3-9a0c-0305e82c3302", Name: "trusted", Signers: []SignerEntry{CNEntry("Evil Corp")}},
	}
	rules := []Rule{{ID: "r", Name: "r", Enabled: true, Priority: 1, Verdict: VerdictAutoApprove,
		Condition: sp(`signer in signers("trusted") or user == "zz"`)}}
	rs, err := Compile(rules, groups, CompileOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{Flow: FlowUAC, At: rgAt, Observation: Observation{SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`, TargetExecutableSigner: "Evil Corp"}}
	if d := rgBoth(t, rs, in); d.Outcome == OutcomeAutoApproved {
		t.Fatalf("an ambiguous group name resolved: %v", d)
	}
	if len(rs.Issues()) == 0 {
		t.Error("no issue reported for the ambiguous group")
	}
}

// A cel atom must read fields by name: iterating obs would escape the
// presence guards and let a negated atom match absent data.
func TestRegressionCELAtomUsingObsWholeIsRefused(t *testing.T) {
	r := Rule{Name: "r", Enabled: true, Priority: 1, Verdict: VerdictAutoApprove,
		Condition: sp(`not cel "obs.exists(k, k == 'targetExecutableSigner' && obs[k] == 'Evil Corp')" and user == "u"`)}
	if err := ValidateRule(&r); err == nil || !strings.Contains(err.Error(), "by name") {
		t.Fatalf("ValidateRule: %v", err)
	}
}

// A stored condition the API would refuse (`not user == ""` holds for
// everyone) is poisoned, not evaluated.
func TestRegressionInvalidStoredConditionFailsSafe(t *testing.T) {
	rules := []Rule{{ID: "r", Name: "r", Enabled: true, Priority: 1, Verdict: VerdictAutoApprove, Condition: sp(`not user == ""`)}}
	rs, err := Compile(rules, nil, CompileOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{Flow: FlowUAC, At: rgAt, Observation: Observation{SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`}}
	if d := rgBoth(t, rs, in); d.Outcome != OutcomePending || d.Error == "" {
		t.Fatalf("got %v, want a fail-safe pending", d)
	}
}
