package dsl

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
)

// TestCase is one `test` block: a fixed instant, an observation, and the
// decision expected for it.
type TestCase struct {
	Name   string
	At     Origin
	File   string
	Time   time.Time
	Flow   engine.FlowType
	Obs    engine.Observation
	Config *engine.OrgConfig // overrides the org's settings it sets
	// Software names a policy of the repository whose software feature is
	// the device's resolved software policy (the bridge runs before rules).
	Software   string
	softwareAt syntax.Pos
	bridge     *engine.Bridge

	Outcome     engine.Outcome
	By          string // rule name, "default", "software_policy" or "" (not checked)
	ByRule      bool   // By names a rule
	Duration    *int
	expectBlock *syntax.Expect
}

// observeKeys maps the keys of an `observe` block to observation fields
// (by their API names, which observation validation reports).
var observeKeys = []struct {
	dsl, json string
	str       func(o *engine.Observation) *string // string-valued fields
}{
	{"user", "subjectUsername", func(o *engine.Observation) *string { return &o.SubjectUsername }},
	{"path", "targetExecutablePath", func(o *engine.Observation) *string { return &o.TargetExecutablePath }},
	{"hash", "targetExecutableHash", func(o *engine.Observation) *string { return &o.TargetExecutableHash }},
	{"signer", "targetExecutableSigner", func(o *engine.Observation) *string { return &o.TargetExecutableSigner }},
	{"thumbprint", "targetExecutableSignerThumbprint", func(o *engine.Observation) *string { return &o.TargetExecutableSignerThumbprint }},
	{"parent", "parentImage", func(o *engine.Observation) *string { return &o.ParentImage }},
	{"cmdline", "commandLine", func(o *engine.Observation) *string { return &o.CommandLine }},
	{"groups", "adGroups", nil},
	{"tool", "toolName", func(o *engine.Observation) *string { return &o.ToolName }},
	{"risk", "riskTier", nil},
	{"duration", "requestedDurationMinutes", nil},
}

var flowNames = map[string]engine.FlowType{
	"uac": engine.FlowUAC, "tool": engine.FlowToolAct, "jit": engine.FlowJITAdmin,
	string(engine.FlowUAC): engine.FlowUAC, string(engine.FlowToolAct): engine.FlowToolAct, string(engine.FlowJITAdmin): engine.FlowJITAdmin,
}

func (l *lowerer) test(d *syntax.Block) {
	if !l.unique("test", d.Label) {
		return
	}
	tc := &TestCase{Name: d.Label.Value, At: l.here(d.Label.Pos), File: l.file}
	ok := true
	var observe *syntax.Body
	var flowSet bool
	for _, f := range d.Fields {
		switch f.Key {
		case "at":
			t, good := l.timestamp(f.Value.(*syntax.Lit))
			tc.Time, ok = t, ok && good
		case "flow":
			lit := f.Value.(*syntax.Lit)
			fl, found := flowNames[lit.Text]
			if !found {
				l.errorf(lit.Pos, syntax.DidYouMean(lit.Text, []string{"uac", "tool", "jit"}), "unknown flow `%s`", lit.Text)
				ok = false
			}
			tc.Flow, flowSet = fl, true
		case "site":
			tc.Obs.SiteID = *str(f)
		case "software":
			tc.Software, tc.softwareAt = *str(f), f.Value.Position()
		case "observe":
			observe = f.Value.(*syntax.Body)
		case "settings":
			cfg, _, good := l.orgSettings(f.Value.(*syntax.Body))
			tc.Config, ok = &cfg, ok && good
		case "expect":
			e := f.Value.(*syntax.Expect)
			tc.expectBlock = e
			tc.Outcome = engine.Outcome(e.Outcome.Text)
			if e.By != nil {
				tc.By = e.By.Value
				tc.ByRule = e.By.Kind == syntax.String || e.By.Kind == syntax.RawString
			}
			if e.For != nil {
				m, good := l.minutes(e.For)
				tc.Duration, ok = &m, ok && good
			}
		}
	}
	if tc.Time.IsZero() && ok {
		l.missing(d, "at", "add e.g. `at 2026-06-15T10:00:00Z`: decisions depend on the instant", "test %q has no `at`", tc.Name)
		ok = false
	}
	if tc.expectBlock == nil {
		l.missing(d, "expect", "add e.g. `expect auto_approved by \"rule name\"`", "test %q has no `expect`", tc.Name)
		ok = false
	}
	if observe == nil {
		l.missing(d, "observe", "add an `observe { … }` block", "test %q has no `observe`", tc.Name)
		ok = false
	} else {
		ok = l.observation(observe, tc) && ok
	}
	if !flowSet {
		tc.Flow = engine.FlowUAC
		if tc.Obs.ToolName != "" || tc.Obs.RiskTier != nil {
			tc.Flow = engine.FlowToolAct
		}
	}
	if ok && observe != nil {
		if err := engine.ValidateObservation(tc.Flow, &tc.Obs); err != nil {
			l.fieldErrors(err, func(field string) syntax.Pos {
				// Fix: the fields are "observation.…"; matched without the
				// prefix, every error was placed at the observe block
				// instead of at its attribute (or the test's site).
				field = strings.TrimPrefix(field, "observation.")
				for _, k := range observeKeys {
					if strings.HasPrefix(field, k.json) {
						if a := observe.AttrOf(k.dsl); a != nil {
							return a.KeyPos
						}
					}
				}
				if field == "siteId" {
					if f := d.FieldOf("site"); f != nil {
						return f.Value.Position()
					}
				}
				return observe.Position()
			})
			ok = false
		}
		tc.Obs = engine.NormalizeObservation(tc.Obs)
	}
	if ok {
		l.org.Tests = append(l.org.Tests, tc)
	}
}

// resolveSoftware attaches each test's named software policy, once every
// policy of the org is known.
func (l *lowerer) resolveSoftware() {
	for _, tc := range l.org.Tests {
		if tc.Software == "" {
			continue
		}
		l.file = tc.File
		var names []string
		found := false
		for i := range l.org.Policies {
			p := &l.org.Policies[i]
			names = append(names, p.Name)
			if p.Name != tc.Software {
				continue
			}
			found = true
			sp, ok, err := policy.SoftwarePolicyFrom(p)
			switch {
			case err != nil:
				l.errorf(tc.softwareAt, "", "policy %q: %v", p.Name, err)
			case !ok:
				l.errorf(tc.softwareAt, "add `feature software { … }` to it", "policy %q has no software feature", p.Name)
			default:
				b, err := engine.NewBridge(*sp)
				if err != nil {
					l.errorf(tc.softwareAt, "", "policy %q: %v", p.Name, err)
					continue
				}
				tc.bridge = b
			}
		}
		if !found {
			l.errorf(tc.softwareAt, syntax.DidYouMean(tc.Software, names), "unknown policy %q", tc.Software)
		}
	}
}

func (l *lowerer) observation(b *syntax.Body, tc *TestCase) bool {
	ok := true
	var keys []string
	for _, k := range observeKeys {
		keys = append(keys, k.dsl)
	}
	seen := map[string]bool{}
	for _, a := range b.Attrs {
		if seen[a.Key] {
			l.errorf(a.KeyPos, "", "`%s` set twice", a.Key)
			ok = false
			continue
		}
		seen[a.Key] = true
		if a.Key == "groups" {
			list, isList := a.Value.(*syntax.List)
			if !isList {
				l.errorf(a.KeyPos, `write groups = ["Domain Admins", "IT"] (or [] for none)`, "`groups` takes a list")
				ok = false
				continue
			}
			tc.Obs.AdGroups = []string{}
			for _, e := range list.Elems {
				if e.Kind != syntax.String && e.Kind != syntax.RawString {
					l.errorf(e.Pos, "", "group names are strings")
					ok = false
					continue
				}
				tc.Obs.AdGroups = append(tc.Obs.AdGroups, e.Value)
			}
			continue
		}
		lit, isLit := a.Value.(*syntax.Lit)
		if !isLit {
			l.errorf(a.KeyPos, "", "`%s` takes a single value", a.Key)
			ok = false
			continue
		}
		switch a.Key {
		case "risk":
			n, err := strconv.Atoi(lit.Text)
			if lit.Kind != syntax.Int || err != nil {
				l.errorf(lit.Pos, "", "`risk` takes a number 0-4")
				ok = false
				continue
			}
			tc.Obs.RiskTier = &n
			continue
		case "duration":
			m, good := syntax.ParseDuration(lit.Text)
			if lit.Kind == syntax.Int {
				m, good = 0, false
			}
			if !good {
				l.errorf(lit.Pos, "write e.g. duration = 2h", "`duration` takes a duration")
				ok = false
				continue
			}
			tc.Obs.RequestedDurationMinutes = &m
			continue
		}
		if lit.Kind != syntax.String && lit.Kind != syntax.RawString {
			l.errorf(lit.Pos, "put it in quotes (paths in backquotes: `C:\\…`)", "`%s` takes a string, found %s", a.Key, lit.Text)
			ok = false
			continue
		}
		set := false
		for _, k := range observeKeys {
			if k.dsl == a.Key && k.str != nil {
				*k.str(&tc.Obs), set = lit.Value, true
			}
		}
		if !set {
			l.errorf(a.KeyPos, syntax.DidYouMean(a.Key, keys), "unknown observation field `%s`", a.Key)
			ok = false
		}
	}
	return ok
}

// TestResult is the outcome of one test case.
type TestResult struct {
	Name     string              `json:"name"`
	Org      string              `json:"org,omitempty"`
	File     string              `json:"file"`
	Line     int                 `json:"line"`
	Passed   bool                `json:"passed"`
	Failures []string            `json:"failures,omitempty"`
	Decision engine.Decision     `json:"decision"`
	Trace    []engine.TraceEntry `json:"-"`
}

// Run decides the test case against a compiled rule set and compares.
func (tc *TestCase) Run(rs *engine.RuleSet, org *Org) TestResult {
	cfg := org.Config
	if tc.Config != nil && tc.Config.DefaultUnmatchedVerdict != "" {
		// A test's settings override only what they set.
		cfg.DefaultUnmatchedVerdict = tc.Config.DefaultUnmatchedVerdict
	}
	d := rs.Decide(&engine.Input{Flow: tc.Flow, Observation: tc.Obs, At: tc.Time, Org: cfg, Bridge: tc.bridge, Explain: true})
	res := TestResult{Name: tc.Name, Org: org.Name, File: tc.File, Line: tc.At.Pos.Line, Decision: d, Trace: d.Explain}
	res.Decision.Explain = nil
	if d.Error != "" {
		res.Failures = append(res.Failures, "the decision failed safe: "+d.Error)
	}
	if d.Outcome != tc.Outcome {
		res.Failures = append(res.Failures, fmt.Sprintf("outcome: want %s, got %s", tc.Outcome, d.Outcome))
	}
	switch {
	case tc.ByRule && (d.DecidedBy != engine.DecidedByRule || d.RuleName != tc.By):
		res.Failures = append(res.Failures, fmt.Sprintf("decided by: want rule %q, got %s", tc.By, describeSource(d)))
	case tc.By == "default" && d.DecidedBy != engine.DecidedByOrgDefault && !(d.DecidedBy == "" && d.Error == ""):
		res.Failures = append(res.Failures, "decided by: want the default (no rule), got "+describeSource(d))
	case tc.By == "software_policy" && d.DecidedBy != engine.DecidedBySoftwarePolicy:
		res.Failures = append(res.Failures, "decided by: want a software policy, got "+describeSource(d))
	}
	if tc.Duration != nil && d.DurationMinutes != *tc.Duration {
		got := "none"
		if d.DurationMinutes > 0 {
			got = syntax.FormatDuration(d.DurationMinutes)
		}
		res.Failures = append(res.Failures, fmt.Sprintf("duration: want %s, got %s", syntax.FormatDuration(*tc.Duration), got))
	}
	res.Passed = len(res.Failures) == 0
	return res
}

func describeSource(d engine.Decision) string {
	switch d.DecidedBy {
	case engine.DecidedByRule:
		return fmt.Sprintf("rule %q", d.RuleName)
	case engine.DecidedBySoftwarePolicy:
		return "software policy " + d.SoftwarePolicyID
	case engine.DecidedByOrgDefault:
		return "the org default"
	}
	if d.Error != "" {
		return "a fail-safe error"
	}
	return "the default (no rule matched)"
}

// FormatTrace renders an explain trace, one line per step.
func FormatTrace(trace []engine.TraceEntry) string {
	var b strings.Builder
	for _, te := range trace {
		fmt.Fprintf(&b, "  %-9s", te.Result)
		switch te.Stage {
		case engine.StageRule:
			fmt.Fprintf(&b, " rule %q", te.RuleName)
			if te.Priority != nil {
				fmt.Fprintf(&b, " (priority %d)", *te.Priority)
			}
		default:
			b.WriteString(" " + te.Stage)
		}
		if te.Criterion != "" {
			b.WriteString(": " + te.Criterion)
		}
		if te.Detail != "" {
			b.WriteString(" — " + te.Detail)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Filter compiles a --run pattern (a regular expression matched against
// test names, unanchored like go test -run).
func Filter(pattern string) (func(string) bool, error) {
	if pattern == "" {
		return func(string) bool { return true }, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, errors.New("invalid --run pattern: " + err.Error())
	}
	return re.MatchString, nil
}
