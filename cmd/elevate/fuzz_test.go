package main

import (
	"io"
	"os"
	"testing"

	"github.com/elevate-pam/elevate/engine"
)

// FuzzDecideRequest: no request, however malformed, panics the decoder or
// the engine, and whatever decodes is decided by both evaluators alike.
func FuzzDecideRequest(f *testing.F) {
	if data, err := os.ReadFile("../../rules/decide-example.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"flowType":"ai_tool_action","rules":[{"name":"t","verdict":"auto_approve","matchToolName":"x"}],"observation":{"subjectUsername":"h","toolName":"X","observedAt":"2026-01-01T00:00:00Z"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, lenient := range []bool{false, true} {
			in, rs, err := buildDecision(data, lenient, io.Discard, nil)
			if err != nil {
				continue
			}
			fast, ref := rs.Decide(in), rs.DecideReference(in)
			if fast.Outcome != ref.Outcome || fast.RuleID != ref.RuleID || fast.DurationMinutes != ref.DurationMinutes {
				t.Fatalf("evaluators disagree on %q: %v vs %v", data, fast, ref)
			}
			if fast.Error != "" && fast.Outcome != engine.OutcomePending {
				t.Fatalf("a fail-safe decision must be pending: %v", fast)
			}
		}
	})
}
