package engine

import (
	"strings"
	"testing"
	"time"
)

// The largest rule the validation admits must compile (CEL's default
// source-size limit is too small for a full signer group) and stay within
// the cost limit, and deciding with it must stay correct on both paths.
func TestLargestLegalRuleCompiles(t *testing.T) {
	id := "aaaaaaaa-0000-0000-0000-000000000001"
	var ents []SignerEntry
	for i := 0; i < MaxSignerGroupEntries; i++ {
		cn := strings.Repeat("x", 250) + strings.Repeat("y", i%5)
		tp := strings.Repeat(string("0123456789abcdef"[i%16]), 63) + string("0123456789abcdef"[i/16%16])
		ents = append(ents, SignerEntry{SubjectCN: &cn, Thumbprint: &tp})
	}
	ents = append(ents[:MaxSignerGroupEntries-1], CNEntry("Vendor Inc."))
	long := strings.Repeat(`*a\`, maxPathCriterionLength/3+1)[:maxPathCriterionLength]
	r := Rule{Name: strings.Repeat("n", 255), Enabled: true, Priority: 1, Verdict: VerdictAutoDeny,
		MatchSignerGroupID: &id, MatchPathGlob: &long, MatchParentImage: &long,
		MatchCommandLine: sp(strings.Repeat("q", maxPathCriterionLength)), MatchUser: sp(strings.Repeat("u", 255)),
		MatchAdGroup: sp(strings.Repeat("g", 255))}
	if err := ValidateRule(&r); err != nil {
		t.Fatalf("the rule should be legal: %v", err)
	}
	rs, err := Compile([]Rule{r}, []SignerGroup{{ID: id, Name: "big", Signers: ents}}, CompileOptions{})
	if err != nil {
		t.Fatalf("largest legal rule does not compile: %.300v", err)
	}
	if _, err := rs.rules[0].prog.program(); err != nil {
		t.Fatal(err)
	}
	if c := rs.rules[0].prog.cost; c == 0 || c > celCostLimit {
		t.Fatalf("cost estimate %d, limit %d", c, celCostLimit)
	}
	at := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	in := &Input{Flow: FlowUAC, At: at, Observation: Observation{
		SubjectUsername: strings.Repeat("U", 255), TargetExecutableSigner: "VENDOR INC.",
		TargetExecutablePath: strings.Repeat("a/", 1365) + "x.exe", ParentImage: strings.Repeat(`a\`, 1365) + "p.exe",
		CommandLine: strings.Repeat("Q", 8192), AdGroups: []string{strings.Repeat("G", 255)}}}
	for name, d := range map[string]Decision{"indexed": rs.Decide(in), "cel": rs.DecideReference(in)} {
		if d.Outcome != OutcomeDenied || d.Error != "" {
			in.Explain = true
			e := rs.Decide(in).Explain[0]
			t.Errorf("%s: got %v, want denied by the rule (%s: %.200s)", name, d, e.Criterion, e.Detail)
		}
	}
}
