package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/elevate-pam/elevate/engine"
)

const decideUsage = `Usage: elevate decide [--explain] [--lenient] [FILE]

Reads one self-contained decision request (JSON, from FILE or stdin) and
prints one JSON decision. The evaluation instant is observation.observedAt.

  {"flowType": "uac_intercept" | "ai_tool_action" | "tech_jit_admin",
   "rules": [rule JSON as in the API],
   "signerGroups": [{"id", "name", "signers": ["CN" | {"subjectCn", "thumbprint"}]}],
   "softwarePolicy": {"id", "mode", "priority", "isActive", "executable": [...]} | null,
   "orgConfig": {"defaultUnmatchedVerdict": "require_approval" | "auto_deny"},
   "observation": {"subjectUsername", "targetExecutablePath", ..., "observedAt"}}

Exit status: 0 decided (whatever the outcome), 2 invalid request.

Flags:
`

// decideRequest is the input of elevate decide. Rules are decoded the way
// the API decodes them (unknown properties dropped); the request itself and
// its observation are strict, so a misspelt key is an error rather than
// silently missing data.
type decideRequest struct {
	FlowType       engine.FlowType      `json:"flowType"`
	Rules          []json.RawMessage    `json:"rules"`
	SignerGroups   []engine.SignerGroup `json:"signerGroups"`
	SoftwarePolicy json.RawMessage      `json:"softwarePolicy"`
	OrgConfig      engine.OrgConfig     `json:"orgConfig"`
	Observation    json.RawMessage      `json:"observation"`
}

func runDecide(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("decide", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, decideUsage); fs.PrintDefaults() }
	explain := fs.Bool("explain", false, "include the trace: every stage and rule considered, and why each did or did not match")
	lenient := fs.Bool("lenient", false, "load rules that fail validation the way a store might hold them (they stay fail-safe); problems go to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "elevate decide: at most one input file")
		return exitUsage
	}
	in := stdin
	name := "stdin"
	if p := fs.Arg(0); p != "" && p != "-" {
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(stderr, "elevate decide: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		in, name = f, p
	}
	data, err := io.ReadAll(in)
	if err != nil {
		fmt.Fprintf(stderr, "elevate decide: reading %s: %v\n", name, err)
		return exitInternal
	}
	input, rs, err := buildDecision(data, *lenient, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "elevate decide: %s: %v\n", name, err)
		return exitUsage
	}
	input.Explain = *explain
	d := rs.Decide(input)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		fmt.Fprintf(stderr, "elevate decide: %v\n", err)
		return exitInternal
	}
	return exitOK
}

// strictUnmarshal decodes JSON refusing unknown keys and trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// describeJSONError names the field of a JSON type error.
func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("%s: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, err)
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(msg, "json: unknown field "))
	}
	return err
}

func buildDecision(data []byte, lenient bool, warn io.Writer) (*engine.Input, *engine.RuleSet, error) {
	var req decideRequest
	if err := strictUnmarshal(data, &req); err != nil {
		return nil, nil, err
	}
	if req.FlowType == "" {
		return nil, nil, errors.New("flowType: is required (uac_intercept, ai_tool_action or tech_jit_admin)")
	}
	if len(req.Observation) == 0 || string(req.Observation) == "null" {
		return nil, nil, errors.New("observation: is required")
	}
	var obs engine.Observation
	if err := strictUnmarshal(req.Observation, &obs); err != nil {
		return nil, nil, fmt.Errorf("observation: %w", err)
	}
	if err := engine.ValidateObservation(req.FlowType, &obs); err != nil {
		return nil, nil, err
	}
	if obs.ObservedAt == nil {
		return nil, nil, errors.New("observation.observedAt: is required (it is the evaluation instant), e.g. \"2026-06-15T10:00:00+01:00\"")
	}
	obs = engine.NormalizeObservation(obs)
	if err := engine.ValidateOrgConfig(&req.OrgConfig); err != nil {
		return nil, nil, fmt.Errorf("orgConfig: %w", err)
	}

	rules := make([]engine.Rule, len(req.Rules))
	for i, raw := range req.Rules {
		if err := json.Unmarshal(raw, &rules[i]); err != nil {
			return nil, nil, fmt.Errorf("rules[%d]: %w", i, describeJSONError(err))
		}
	}
	groups := req.SignerGroups
	if !lenient {
		for i := range groups {
			if err := engine.ValidateSignerGroup(&groups[i]); err != nil {
				return nil, nil, fmt.Errorf("signerGroups[%d] %q: %w", i, groups[i].ID, err)
			}
			groups[i] = engine.NormalizeSignerGroup(groups[i])
		}
	}
	rs, err := engine.Compile(rules, groups, engine.CompileOptions{Lenient: lenient})
	if err != nil {
		return nil, nil, fmt.Errorf("invalid rules:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	for _, issue := range rs.Issues() {
		fmt.Fprintf(warn, "elevate decide: warning: %v\n", issue)
	}

	input := &engine.Input{Flow: req.FlowType, Observation: obs, At: *obs.ObservedAt, Org: req.OrgConfig}
	if p := req.SoftwarePolicy; len(p) > 0 && string(p) != "null" {
		// isActive must be stated: a blocklist silently read as inactive
		// would let through what it was written to stop.
		var active struct {
			IsActive *bool `json:"isActive"`
		}
		var sp engine.SoftwarePolicy
		if err := json.Unmarshal(p, &active); err != nil {
			return nil, nil, fmt.Errorf("softwarePolicy: %w", describeJSONError(err))
		}
		if active.IsActive == nil {
			return nil, nil, errors.New("softwarePolicy.isActive: is required (true or false)")
		}
		if err := strictUnmarshal(p, &sp); err != nil {
			return nil, nil, fmt.Errorf("softwarePolicy: %w", err)
		}
		b, err := engine.NewBridge(sp)
		if err != nil {
			return nil, nil, fmt.Errorf("softwarePolicy: %w", err)
		}
		input.Bridge = b
	}
	return input, rs, nil
}
