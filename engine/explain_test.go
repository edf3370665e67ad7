package engine

import (
	"strings"
	"testing"
	"time"
)

func sp(s string) *string { return &s }

// The trace walks the rules in evaluation order and says, for each, the
// first criterion that failed (with its CEL) or that it decided.
func TestExplainTrace(t *testing.T) {
	rules := []Rule{
		{ID: "a", Name: "moz", Enabled: true, Priority: 50, Verdict: VerdictAutoApprove, MatchSigner: sp("Mozilla Corporation"), MatchPathGlob: sp(`C:\Users\*\Downloads\*.exe`)},
		{ID: "b", Name: "temp", Enabled: true, Priority: 5, Verdict: VerdictAutoDeny, MatchPathGlob: sp(`C:\Users\*\AppData\Local\Temp\**`)},
		{ID: "c", Name: "later", Enabled: true, Priority: 90, Verdict: VerdictAutoDeny, MatchUser: sp(`ACME\SARAH`)},
		{ID: "d", Name: "off", Enabled: false, Priority: 1, Verdict: VerdictAutoDeny, MatchUser: sp(`acme\sarah`)},
	}
	rs, err := Compile(rules, nil, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{Flow: FlowUAC, At: time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC), Explain: true, Observation: Observation{
		SubjectUsername: `acme\sarah`, TargetExecutablePath: `C:\Users\sarah\Downloads\FirefoxSetup.exe`, TargetExecutableSigner: "MOZILLA corporation"}}
	d := rs.Decide(in)
	if d.RuleID != "a" || d.Outcome != OutcomeAutoApproved {
		t.Fatalf("got %v", d)
	}
	want := []struct{ id, result, criterion string }{
		{"d", ResultSkipped, ""}, {"b", ResultNoMatch, "pathGlob"}, {"a", ResultMatched, ""}, {"c", ResultShadowed, ""},
	}
	if len(d.Explain) != len(want) {
		t.Fatalf("trace has %d entries, want %d: %+v", len(d.Explain), len(want), d.Explain)
	}
	for i, w := range want {
		e := d.Explain[i]
		if e.RuleID != w.id || e.Result != w.result || e.Criterion != w.criterion {
			t.Errorf("entry %d = {%s %s %s}, want %+v", i, e.RuleID, e.Result, e.Criterion, w)
		}
	}
	if got := d.Explain[2].Expression; got != rs.CEL(2) {
		t.Errorf("matched rule's expression %q, want its program %q", got, rs.CEL(2))
	}
	if e := d.Explain[1]; !strings.HasPrefix(e.Expression, "has(obs.targetExecutablePath) && pathGlob(") || !strings.Contains(e.Detail, "FirefoxSetup.exe") {
		t.Errorf("failing criterion not described: %+v", e)
	}
	if !strings.Contains(d.Explain[3].Detail, `"moz"`) {
		t.Errorf("shadowed rule should name the rule that decided: %+v", d.Explain[3])
	}
}

// A cel atom whose observation field is absent is unknown, not false: the
// trace says which field was missing.
func TestExplainCELAtomAbsentIsUnknown(t *testing.T) {
	rules := []Rule{{ID: "a", Name: "a", Enabled: true, Priority: 1, Verdict: VerdictAutoDeny,
		Condition: sp("cel `obs.commandLine.contains(\"/q\")` and user == \"x\"")}}
	rs, err := Compile(rules, nil, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	d := rs.Decide(&Input{Flow: FlowUAC, At: at, Explain: true,
		Observation: Observation{SubjectUsername: "x", TargetExecutablePath: `C:\a.exe`}})
	if got := d.Explain[0].Detail; !strings.Contains(got, "unknown (commandLine absent)") || d.Explain[0].Result != ResultNoMatch {
		t.Fatalf("trace: %s %s", d.Explain[0].Result, got)
	}
}

// In a condition, a signer group that resolves to nothing is reported as
// such, not as absent observation data.
func TestExplainMissingSignerGroupInCondition(t *testing.T) {
	rules := []Rule{{ID: "a", Name: "a", Enabled: true, Priority: 1, Verdict: VerdictAutoDeny,
		Condition: sp(`signer in signers("nowhere") or user == "zz"`)}}
	rs, err := Compile(rules, nil, CompileOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	d := rs.Decide(&Input{Flow: FlowUAC, At: at, Explain: true,
		Observation: Observation{SubjectUsername: "x", TargetExecutablePath: `C:\a.exe`, TargetExecutableSigner: "Vendor"}})
	if got := d.Explain[0].Detail; !strings.Contains(got, `signer group nowhere does not exist`) {
		t.Fatalf("trace: %s", got)
	}
}
