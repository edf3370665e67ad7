package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// exampleRequest loads the shipped example as a generic map so a test can
// change one thing about it.
func exampleRequest(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../rules/decide-example.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func runWith(t *testing.T, req any, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var in []byte
	switch v := req.(type) {
	case string:
		in = []byte(v)
	default:
		var err error
		if in, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	code = run(append([]string{"decide"}, args...), bytes.NewReader(in), &out, &errb)
	return code, out.String(), errb.String()
}

type decideOut struct {
	Outcome         string           `json:"outcome"`
	Verdict         *string          `json:"verdict"`
	RuleID          *string          `json:"ruleId"`
	RuleName        *string          `json:"ruleName"`
	DurationMinutes *int             `json:"durationMinutes"`
	DecidedBy       *string          `json:"decidedBy"`
	Error           string           `json:"error"`
	Explain         []map[string]any `json:"explain"`
}

func decodeOut(t *testing.T, s string) decideOut {
	t.Helper()
	var d decideOut
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatalf("output is not a decision: %v\n%s", err, s)
	}
	return d
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

func TestDecideShippedExample(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"decide", "--explain", "../../rules/decide-example.json"}, strings.NewReader(""), &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	d := decodeOut(t, out.String())
	if d.Outcome != "auto_approved" || str(d.RuleName) != "auto-approve-mozilla" || d.DurationMinutes == nil || *d.DurationMinutes != 30 || str(d.DecidedBy) != "rule" {
		t.Fatalf("unexpected decision: %s", out.String())
	}
	if len(d.Explain) != 5 || d.Explain[2]["result"] != "matched" || d.Explain[0]["stage"] != "software_policy" {
		t.Fatalf("unexpected trace: %s", out.String())
	}
	if strings.Contains(out.String(), `\u0026`) {
		t.Fatalf("CEL in the trace is HTML-escaped: %s", out.String())
	}
}

func TestDecideOutcomes(t *testing.T) {
	obs := func(m map[string]any) map[string]any { return m["observation"].(map[string]any) }
	cases := []struct {
		name     string
		edit     func(m map[string]any)
		outcome  string
		rule     string
		by       string
		duration int
	}{
		{"weekend falls through to the org default", func(m map[string]any) {
			obs(m)["observedAt"] = "2026-06-13T10:00:00+01:00" // a Saturday
		}, "pending", "<null>", "org_default", 0},
		{"org default auto_deny", func(m map[string]any) {
			obs(m)["observedAt"] = "2026-06-13T10:00:00+01:00"
			m["orgConfig"] = map[string]any{"defaultUnmatchedVerdict": "auto_deny"}
		}, "denied", "<null>", "org_default", 0},
		{"blocklisted hash beats the approving rule", func(m map[string]any) {
			obs(m)["targetExecutableHash"] = "0000000000000000000000000000000000000000000000000000000000000BAD"
		}, "denied", "<null>", "software_policy", 0},
		{"temp dir without a trusted signer is denied", func(m map[string]any) {
			obs(m)["targetExecutablePath"] = `C:\Users\sarah\AppData\Local\Temp\x\setup.exe`
			obs(m)["targetExecutableSigner"] = "Unknown Ltd"
		}, "denied", "no-temp-dir-binaries", "rule", 0},
		{"tool action", func(m map[string]any) {
			m["flowType"] = "ai_tool_action"
			m["observation"] = map[string]any{"subjectUsername": "helper", "toolName": "FILE_READ", "riskTier": 2, "observedAt": "2026-06-15T10:00:00Z"}
		}, "auto_approved", "helper-file-reads", "rule", 15},
		{"a lenient poisoned rule fails safe", func(m map[string]any) {
			rules := m["rules"].([]any)
			m["rules"] = append([]any{map[string]any{"name": "broken", "priority": 1, "verdict": "approve", "matchSigner": "Mozilla Corporation"}}, rules...)
		}, "pending", "<null>", "<null>", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := exampleRequest(t)
			tc.edit(m)
			code, out, errs := runWith(t, m, "--lenient")
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			d := decodeOut(t, out)
			dur := 0
			if d.DurationMinutes != nil {
				dur = *d.DurationMinutes
			}
			if d.Outcome != tc.outcome || str(d.RuleName) != tc.rule || str(d.DecidedBy) != tc.by || dur != tc.duration {
				t.Fatalf("got %s", out)
			}
		})
	}
}

func TestDecidePoisonedRuleWarnsAndExplains(t *testing.T) {
	m := exampleRequest(t)
	m["rules"] = append([]any{map[string]any{"name": "broken", "priority": 1, "verdict": "approve", "matchSigner": "Mozilla Corporation"}}, m["rules"].([]any)...)
	code, out, errs := runWith(t, m, "--lenient")
	if code != exitOK || !strings.Contains(errs, `warning: rule 0 "broken"`) || !strings.Contains(errs, "verdict") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if d := decodeOut(t, out); !strings.Contains(d.Error, "broken") || d.Verdict != nil {
		t.Fatalf("fail-safe decision should name the rule and carry no verdict: %s", out)
	}
	// Without --lenient the same request is refused.
	code, _, errs = runWith(t, m)
	if code != exitUsage || !strings.Contains(errs, `rules:`) || !strings.Contains(errs, `"broken"`) || !strings.Contains(errs, "verdict") {
		t.Fatalf("strict mode: exit %d, stderr %q", code, errs)
	}
}

func TestDecideInvalidInput(t *testing.T) {
	cases := []struct {
		name string
		edit func(m map[string]any)
		raw  string
		want []string
	}{
		{name: "bad rule hash", edit: func(m map[string]any) {
			m["rules"].([]any)[0].(map[string]any)["matchHash"] = "xyz"
		}, want: []string{"matchHash", "64 hexadecimal"}},
		{name: "unknown zone", edit: func(m map[string]any) {
			m["rules"].([]any)[1].(map[string]any)["timeWindow"].(map[string]any)["timezone"] = "Europe/Londn"
		}, want: []string{"timeWindow.timezone", "Europe/Londn"}},
		{name: "mixed shape", edit: func(m map[string]any) {
			m["rules"].([]any)[2].(map[string]any)["matchHash"] = strings.Repeat("a", 64)
		}, want: []string{"cannot be mixed"}},
		{name: "unknown top-level key", edit: func(m map[string]any) { m["observaton"] = map[string]any{} }, want: []string{"unknown field", "observaton"}},
		{name: "misspelt observation key", edit: func(m map[string]any) {
			m["observation"].(map[string]any)["targetExecutablePth"] = "x"
		}, want: []string{"observation", "targetExecutablePth"}},
		{name: "missing observedAt", edit: func(m map[string]any) { delete(m["observation"].(map[string]any), "observedAt") }, want: []string{"observedAt", "required"}},
		{name: "field foreign to the flow", edit: func(m map[string]any) { m["observation"].(map[string]any)["toolName"] = "x" }, want: []string{"observation.toolName", "uac_intercept"}},
		{name: "unknown flow", edit: func(m map[string]any) { m["flowType"] = "uac" }, want: []string{"flowType"}},
		{name: "type error", edit: func(m map[string]any) { m["rules"].([]any)[0].(map[string]any)["priority"] = "high" }, want: []string{"rules[0]", "priority"}},
		{name: "org default auto_approve", edit: func(m map[string]any) {
			m["orgConfig"] = map[string]any{"defaultUnmatchedVerdict": "auto_approve"}
		}, want: []string{"defaultUnmatchedVerdict"}},
		{name: "bad signer group thumbprint", edit: func(m map[string]any) {
			m["signerGroups"].([]any)[0].(map[string]any)["signers"] = []any{map[string]any{"thumbprint": "abc"}}
		}, want: []string{"signerGroups[0]", "thumbprint"}},
		{name: "not JSON", raw: "{", want: []string{"decide"}},
		{name: "trailing data", raw: `{"flowType":"uac_intercept"}}`, want: []string{"after the JSON value"}},
		{name: "policy without isActive", edit: func(m map[string]any) {
			delete(m["softwarePolicy"].(map[string]any), "isActive")
		}, want: []string{"softwarePolicy.isActive"}},
		{name: "misspelt policy key", edit: func(m map[string]any) {
			m["softwarePolicy"].(map[string]any)["exectuable"] = []any{}
		}, want: []string{"softwarePolicy", "exectuable"}},
		{name: "zero observedAt", edit: func(m map[string]any) {
			m["observation"].(map[string]any)["observedAt"] = "0001-01-01T00:00:00Z"
		}, want: []string{"observation.observedAt"}},
		{name: "site not a UUID", edit: func(m map[string]any) { m["observation"].(map[string]any)["siteId"] = "hq" }, want: []string{"observation.siteId"}},
		{name: "empty AD group", edit: func(m map[string]any) {
			m["flowType"] = "tech_jit_admin"
			m["observation"] = map[string]any{"subjectUsername": "bob", "adGroups": []any{""}, "observedAt": "2026-06-15T10:00:00Z"}
		}, want: []string{"observation.adGroups[0]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req any = tc.raw
			if tc.edit != nil {
				m := exampleRequest(t)
				tc.edit(m)
				req = m
			}
			code, out, errs := runWith(t, req)
			if code != exitUsage || out != "" {
				t.Fatalf("exit %d, stdout %q; want exit 2 and no decision", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Fatalf("stderr %q does not mention %q", errs, w)
				}
			}
		})
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, nil, &out, &errb); code != exitUsage {
		t.Fatalf("no args: exit %d", code)
	}
	if code := run([]string{"frobnicate"}, nil, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "frobnicate") {
		t.Fatalf("unknown command: exit %d %q", code, errb.String())
	}
	if code := run([]string{"decide", "a", "b"}, nil, &out, &errb); code != exitUsage {
		t.Fatalf("two files: exit %d", code)
	}
}
