package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/elevate-pam/elevate/dsl"
	"github.com/elevate-pam/elevate/engine"
)

const decideUsage = `Usage: elevate decide [--explain] [--lenient] [--rules DIR [--org NAME]] [FILE]

Reads one decision request (JSON, from FILE or stdin) and prints one JSON
decision. The evaluation instant is observation.observedAt. With --rules,
the rules, signer groups and org settings come from a policy repository of
.pam files (which must compile cleanly) and the request leaves out "rules"
and "signerGroups".

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
	rulesDir := fs.String("rules", "", "take rules from this policy repository (.pam files) instead of the request")
	orgName := fs.String("org", "", "with --rules: the org whose rules decide (needed when the repository has several)")
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
	var src *ruleSource
	if *rulesDir != "" {
		if src, err = loadRuleSource(*rulesDir, *orgName, stderr); err != nil {
			fmt.Fprintf(stderr, "elevate decide: %v\n", err)
			return exitUsage
		}
	}
	input, rs, err := buildDecision(data, *lenient, stderr, src)
	if err != nil {
		fmt.Fprintf(stderr, "elevate decide: %s: %v\n", name, err)
		return exitUsage
	}
	input.Explain = *explain
	d := rs.Decide(input)
	if err := printJSON(stdout, d); err != nil {
		fmt.Fprintf(stderr, "elevate decide: %v\n", err)
		return exitInternal
	}
	return exitOK
}

// printJSON writes v as indented JSON without HTML escaping (rules and
// explanations carry CEL with && in it).
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
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

// ruleSource is a rule set taken from a policy repository.
type ruleSource struct {
	rs  *engine.RuleSet
	cfg engine.OrgConfig
}

func loadRuleSource(dir, orgName string, stderr io.Writer) (*ruleSource, error) {
	repo, err := dsl.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	if repo.Diags.Errors() > 0 {
		dsl.Render(stderr, repo.Diags, repo.Sources())
		return nil, fmt.Errorf("%s does not compile (run elevate check %s)", dir, dir)
	}
	org, ok := repo.Org(orgName)
	if orgName == "" && len(repo.Orgs) > 1 {
		ok = false // several orgs: the org-less files alone are not "the" rules
	}
	if !ok {
		var names []string
		for _, o := range repo.Orgs {
			names = append(names, strconv.Quote(o.Name))
		}
		return nil, fmt.Errorf("no org %q in %s; it has %s (choose with --org)", orgName, dir, strings.Join(names, ", "))
	}
	rs, err := dsl.Compile(org)
	if err != nil {
		return nil, err
	}
	return &ruleSource{rs: rs, cfg: org.Config}, nil
}

func buildDecision(data []byte, lenient bool, warn io.Writer, src *ruleSource) (*engine.Input, *engine.RuleSet, error) {
	var req decideRequest
	if err := strictUnmarshal(data, &req); err != nil {
		return nil, nil, err
	}
	var rawGroups struct {
		SignerGroups json.RawMessage `json:"signerGroups"`
	}
	if err := json.Unmarshal(data, &rawGroups); err == nil && rawGroups.SignerGroups != nil && !lenient {
		if err := engine.StrictSignerGroups(rawGroups.SignerGroups); err != nil {
			return nil, nil, err
		}
	}
	if src != nil && (req.Rules != nil || req.SignerGroups != nil) {
		return nil, nil, errors.New("rules and signerGroups come from --rules; leave them out of the request")
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

	if src != nil {
		input := &engine.Input{Flow: req.FlowType, Observation: obs, At: *obs.ObservedAt, Org: src.cfg}
		if req.OrgConfig != (engine.OrgConfig{}) {
			input.Org = req.OrgConfig
		}
		if err := addBridge(input, req.SoftwarePolicy); err != nil {
			return nil, nil, err
		}
		return input, src.rs, nil
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
	if err := addBridge(input, req.SoftwarePolicy); err != nil {
		return nil, nil, err
	}
	return input, rs, nil
}

// addBridge attaches the request's software policy, if any.
func addBridge(input *engine.Input, p json.RawMessage) error {
	if len(p) > 0 && string(p) != "null" {
		// isActive must be stated: a blocklist silently read as inactive
		// would let through what it was written to stop.
		var active struct {
			IsActive *bool `json:"isActive"`
		}
		var sp engine.SoftwarePolicy
		if err := json.Unmarshal(p, &active); err != nil {
			return fmt.Errorf("softwarePolicy: %w", describeJSONError(err))
		}
		if active.IsActive == nil {
			return errors.New("softwarePolicy.isActive: is required (true or false)")
		}
		if err := strictUnmarshal(p, &sp); err != nil {
			return fmt.Errorf("softwarePolicy: %w", err)
		}
		b, err := engine.NewBridge(sp)
		if err != nil {
			return fmt.Errorf("softwarePolicy: %w", err)
		}
		input.Bridge = b
	}
	return nil
}
