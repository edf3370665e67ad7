package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Input is everything one decision needs besides the rule set.
type Input struct {
	Flow        FlowType
	Observation Observation
	// At is the evaluation instant (pam-semantics §3: the agent's observed
	// time for uac, the server's now for tool actions and JIT). Zero means
	// Observation.ObservedAt; with neither the decision fails safe.
	At time.Time
	// Bridge holds the device's software policies (uac only); nil = none.
	Bridge *Bridge
	Org    OrgConfig
	// Explain asks for a trace of every stage and rule considered.
	Explain bool
}

// Decision is the result of deciding one observation. Empty fields are
// "nothing applies" and encode as JSON null.
type Decision struct {
	Outcome          Outcome
	Verdict          Verdict
	RuleID           string
	RuleName         string
	DurationMinutes  int // 0 unless auto-approved
	DecidedBy        DecidedBy
	SoftwarePolicyID string
	// Error says why the fail-safe produced this decision (outcome pending).
	Error   string
	Explain []TraceEntry
}

func nullable[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

// MarshalJSON writes the decision in the shape `elevate decide` and the API
// answer with: absent values are null.
func (d Decision) MarshalJSON() ([]byte, error) { return d.AppendJSON(nil) }

// AppendJSON appends the decision's JSON (as MarshalJSON, without HTML
// escaping: explain carries CEL with && in it) to b.
func (d Decision) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"outcome":`...)
	b = appendJSONString(b, string(d.Outcome))
	b = appendNullString(append(b, `,"verdict":`...), string(d.Verdict))
	b = appendNullString(append(b, `,"ruleId":`...), d.RuleID)
	b = appendNullString(append(b, `,"ruleName":`...), d.RuleName)
	b = append(b, `,"durationMinutes":`...)
	if d.DurationMinutes == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(d.DurationMinutes), 10)
	}
	b = appendNullString(append(b, `,"decidedBy":`...), string(d.DecidedBy))
	if d.SoftwarePolicyID != "" {
		b = appendJSONString(append(b, `,"softwarePolicyId":`...), d.SoftwarePolicyID)
	}
	if d.Error != "" {
		b = appendJSONString(append(b, `,"error":`...), d.Error)
	}
	if len(d.Explain) > 0 {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(d.Explain); err != nil {
			return nil, err
		}
		b = append(append(b, `,"explain":`...), bytes.TrimRight(buf.Bytes(), "\n")...)
	}
	return append(b, '}'), nil
}

func appendNullString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, s)
}

// appendJSONString appends s as a JSON string the way encoding/json does
// without HTML escaping: invalid UTF-8 becomes U+FFFD, and U+2028 and
// U+2029 are escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(b, s[start:]...), '"')
}

func (d Decision) String() string {
	s := string(d.Outcome)
	if d.RuleName != "" {
		s += fmt.Sprintf(" by rule %q", d.RuleName)
	} else if d.DecidedBy != "" {
		s += " by " + string(d.DecidedBy)
	}
	if d.DurationMinutes != 0 {
		s += fmt.Sprintf(" for %dm", d.DurationMinutes)
	}
	if d.Error != "" {
		s += " (fail-safe: " + d.Error + ")"
	}
	return s
}

// failSafe is the decision for any error on the decision path: a human
// decides. It never approves and never denies.
func failSafe(err error, trace []TraceEntry) Decision {
	return Decision{Outcome: OutcomePending, Error: err.Error(), Explain: trace}
}

// Decide runs the full decision chain for one observation through the
// index and native matchers. It never panics and never returns an error:
// any failure is a pending decision carrying the reason.
func (rs *RuleSet) Decide(in *Input) Decision { return rs.decide(in, false, nil) }

// DecideReference runs the same chain but tests every participating rule in
// order through its CEL program, without the index: the reference semantics
// the indexed path is proved against, and the baseline it is measured
// against.
func (rs *RuleSet) DecideReference(in *Input) Decision { return rs.decide(in, true, nil) }

// DecideShadowed is Decide that also reports, as indexes into Rules(), the
// rule that decided (winner; -1 when none did) and appends to shadowed the
// rules the decision shadowed: every participating rule after the winner
// (or, when a software policy decided, every participating rule) that
// matches as well. Rules that cannot be evaluated are not reported; a
// decision that failed safe reports none.
func (rs *RuleSet) DecideShadowed(in *Input, shadowed []int32) (d Decision, winner int32, out []int32) {
	sh := shadowing{winner: -1, shadowed: shadowed}
	d = rs.decide(in, false, &sh)
	if d.Error != "" {
		return d, -1, shadowed[:0]
	}
	return d, sh.winner, sh.shadowed
}

// shadowing collects what DecideShadowed reports.
type shadowing struct {
	winner   int32
	shadowed []int32
}

func (rs *RuleSet) decide(in *Input, reference bool, sh *shadowing) (d Decision) {
	var trace []TraceEntry
	defer func() {
		if p := recover(); p != nil {
			d = failSafe(fmt.Errorf("internal error: %v", p), trace)
		}
	}()
	if rs == nil || in == nil {
		return failSafe(fmt.Errorf("no rule set or input"), nil)
	}
	if !in.Flow.Valid() {
		return failSafe(fmt.Errorf("unknown flow type %q", in.Flow), nil)
	}
	at := in.At
	if at.IsZero() && in.Observation.ObservedAt != nil {
		at = *in.Observation.ObservedAt
	}
	if at.IsZero() {
		return failSafe(fmt.Errorf("no evaluation instant"), nil)
	}
	var c candidate
	prepare(&c, in.Flow, &in.Observation, at, rs.needs)

	if in.Flow == FlowUAC && in.Bridge != nil {
		br := in.Bridge.evaluate(&c, in.Explain)
		trace = br.trace
		if h := br.bind; h != nil {
			if sh != nil {
				sh.shadowed = rs.matchesAfter(&c, -1, sh.shadowed)
			}
			d := Decision{DecidedBy: DecidedBySoftwarePolicy, SoftwarePolicyID: h.policy.p.ID, Explain: trace}
			if h.policy.p.Mode == ModeBlocklist {
				d.Outcome, d.Verdict = OutcomeDenied, VerdictAutoDeny
			} else {
				d.Outcome, d.Verdict, d.DurationMinutes = OutcomeAutoApproved, VerdictAutoApprove, AllowlistGrantMinutes
			}
			return d
		}
	}

	var ord int32
	var err error
	if reference {
		ord, err = rs.firstMatchCEL(&c)
	} else {
		ord, err = rs.firstMatch(&c)
	}
	if in.Explain {
		trace = append(trace, rs.explainRules(&c, ord, err)...)
	}
	if err != nil {
		return failSafe(err, trace)
	}
	if sh != nil && ord >= 0 {
		sh.winner = ord
		sh.shadowed = rs.matchesAfter(&c, ord, sh.shadowed)
	}
	if ord < 0 {
		return unmatched(in, trace)
	}
	return ruleDecision(&rs.rules[ord], &c, trace)
}

// matchesAfter appends to out the participating rules after ordinal after
// that match the candidate, in evaluation order, through the index.
func (rs *RuleSet) matchesAfter(c *candidate, after int32, out []int32) []int32 {
	var cs cursorSet
	rs.index.gather(&cs, c)
	for {
		ord := cs.next()
		if ord < 0 {
			return out
		}
		if ord <= after {
			continue
		}
		r := &rs.rules[ord]
		if !r.participates(c) {
			continue
		}
		if ok, err := r.matches(c); ok && err == nil {
			out = append(out, ord)
		}
	}
}

// firstMatch finds the first participating rule, in evaluation order, that
// matches — looking only at the rules the index selects.
func (rs *RuleSet) firstMatch(c *candidate) (int32, error) {
	var cs cursorSet
	rs.index.gather(&cs, c)
	for {
		ord := cs.next()
		if ord < 0 {
			return -1, nil
		}
		r := &rs.rules[ord]
		if !r.participates(c) {
			continue
		}
		ok, err := r.matches(c)
		if err != nil || ok {
			return ord, err
		}
	}
}

// firstMatchCEL is firstMatch by brute force through every rule's CEL
// program.
func (rs *RuleSet) firstMatchCEL(c *candidate) (int32, error) {
	act := newActivation(c)
	for i := range rs.rules {
		r := &rs.rules[i]
		if !r.participates(c) {
			continue
		}
		ok, err := r.matchesCEL(act)
		if err != nil || ok {
			return int32(i), err
		}
	}
	return -1, nil
}

// ruleDecision maps the matched rule's verdict to the flow's outcome and
// grant duration (pam-semantics §4).
func ruleDecision(r *compiledRule, c *candidate, trace []TraceEntry) Decision {
	d := Decision{Verdict: r.rule.Verdict, RuleID: r.rule.ID, RuleName: r.rule.Name, DecidedBy: DecidedByRule, Explain: trace}
	switch r.rule.Verdict {
	case VerdictAutoApprove:
		d.Outcome = OutcomeAutoApproved
		d.DurationMinutes = grantMinutes(c.flow, r.grant, c.raw.RequestedDurationMinutes)
	case VerdictAutoDeny:
		d.Outcome = OutcomeDenied
	case VerdictRequireApproval:
		d.Outcome = OutcomePending
	case VerdictIgnore:
		d.Outcome = OutcomePending // a tool action or JIT request must be decided
		if c.flow == FlowUAC {
			d.Outcome = OutcomeIgnored
		}
	default: // unreachable: such rules are poisoned at compile time
		return failSafe(fmt.Errorf("rule %s has unknown verdict %q", quoteName(r), r.rule.Verdict), trace)
	}
	return d
}

// grantMinutes is the auto-approval duration: the rule's, else 15 for uac
// and tool actions; for JIT the rule's, else the requested, else 30, clamped
// to 1..480.
func grantMinutes(flow FlowType, rule int, requested *int) int {
	if flow != FlowJITAdmin {
		if rule != 0 {
			return rule
		}
		return DefaultGrantMinutes
	}
	m := DefaultJITMinutes
	if rule != 0 {
		m = rule
	} else if requested != nil {
		m = *requested
	}
	return min(max(m, 1), MaxJITMinutes)
}

// unmatched is the end of the chain: the org default for uac; tool actions
// and JIT requests always go to a human.
func unmatched(in *Input, trace []TraceEntry) Decision {
	if in.Flow != FlowUAC {
		if in.Explain {
			trace = append(trace, TraceEntry{Stage: StageDefault, Result: ResultApplied,
				Detail: fmt.Sprintf("no rule matched; %s requests without a rule go to a human (the org default applies to uac_intercept only)", in.Flow)})
		}
		return Decision{Outcome: OutcomePending, Explain: trace}
	}
	v := in.Org.defaultVerdict()
	d := Decision{Outcome: OutcomePending, Verdict: v, DecidedBy: DecidedByOrgDefault}
	if v == VerdictAutoDeny {
		d.Outcome = OutcomeDenied
	}
	if in.Explain {
		trace = append(trace, TraceEntry{Stage: StageDefault, Result: ResultApplied,
			Detail: fmt.Sprintf("no software policy or rule matched; the org default %s applies", v)})
	}
	d.Explain = trace
	return d
}
