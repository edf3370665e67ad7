package engine

import (
	"bytes"
	"encoding/json"
	"testing"
)

// referenceDecisionJSON is the decision's JSON through encoding/json: the
// shape AppendJSON must reproduce byte for byte.
func referenceDecisionJSON(d Decision) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(struct {
		Outcome          Outcome      `json:"outcome"`
		Verdict          *Verdict     `json:"verdict"`
		RuleID           *string      `json:"ruleId"`
		RuleName         *string      `json:"ruleName"`
		DurationMinutes  *int         `json:"durationMinutes"`
		DecidedBy        *DecidedBy   `json:"decidedBy"`
		SoftwarePolicyID *string      `json:"softwarePolicyId,omitempty"`
		Error            string       `json:"error,omitempty"`
		Explain          []TraceEntry `json:"explain,omitempty"`
	}{d.Outcome, nullable(d.Verdict), nullable(d.RuleID), nullable(d.RuleName), nullable(d.DurationMinutes),
		nullable(d.DecidedBy), nullable(d.SoftwarePolicyID), d.Error, d.Explain})
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func checkDecisionJSON(t *testing.T, d Decision) {
	t.Helper()
	got, err := d.AppendJSON([]byte("prefix"))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("prefix"), referenceDecisionJSON(d)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON\n got %s\nwant %s", got, want)
	}
	if m, err := d.MarshalJSON(); err != nil || !bytes.Equal(m, want[len("prefix"):]) {
		t.Fatalf("MarshalJSON: %s %v", m, err)
	}
}

func TestDecisionJSON(t *testing.T) {
	two := 2
	for _, d := range []Decision{
		{},
		{Outcome: OutcomeAutoApproved, Verdict: VerdictAutoApprove, RuleID: "r1", RuleName: "firefox", DurationMinutes: 15, DecidedBy: "rule"},
		{Outcome: OutcomePending, Error: "rule set unavailable: \"x\" \\ <&> \u2028\u2029 \x00\x01\x1f\t\n\r\b\f \xff\xfe é 漢"},
		{Outcome: OutcomeDenied, SoftwarePolicyID: "sp-1", DurationMinutes: -3,
			Explain: []TraceEntry{{Stage: "rule", RuleID: "r", RuleName: "a && b", Priority: &two}}},
	} {
		checkDecisionJSON(t, d)
	}
}

func FuzzDecisionJSON(f *testing.F) {
	f.Add("auto_approved", "name \"q\"", "err \xff\u2028", 5)
	f.Fuzz(func(t *testing.T, outcome, name, errText string, minutes int) {
		checkDecisionJSON(t, Decision{Outcome: Outcome(outcome), RuleName: name, RuleID: name + errText,
			Error: errText, DurationMinutes: minutes, DecidedBy: DecidedBy(errText), Verdict: Verdict(outcome)})
	})
}
