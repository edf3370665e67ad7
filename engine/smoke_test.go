package engine

import (
	"testing"
	"time"
)

func sp(s string) *string { return &s }

func TestSmoke(t *testing.T) {
	rules := []Rule{
		{ID: "a", Name: "moz", Enabled: true, Priority: 50, Verdict: VerdictAutoApprove, MatchSigner: sp("Mozilla Corporation"), MatchPathGlob: sp(`C:\Users\*\Downloads\*.exe`)},
		{ID: "b", Name: "temp", Enabled: true, Priority: 5, Verdict: VerdictAutoDeny, MatchPathGlob: sp(`C:\Users\*\AppData\Local\Temp\**`)},
	}
	rs, err := Compile(rules, nil, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	in := &Input{Flow: FlowUAC, At: at, Explain: true, Observation: Observation{SubjectUsername: `acme\sarah`, TargetExecutablePath: `C:\Users\sarah\Downloads\FirefoxSetup.exe`, TargetExecutableSigner: "MOZILLA corporation"}}
	d := rs.Decide(in)
	r := rs.DecideReference(in)
	t.Logf("%v / %v", d, r)
	for _, e := range d.Explain {
		t.Logf("%+v", e)
	}
	t.Log(rs.CEL(0), rs.CEL(1))
	if d.RuleID != "a" || r.RuleID != "a" {
		t.Fatal("want a")
	}
}
