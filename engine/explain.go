package engine

import (
	"fmt"
	"strings"
)

// TraceEntry is one step of an explained decision: a software policy, a
// rule, or the default at the end of the chain.
type TraceEntry struct {
	Stage    string `json:"stage"`
	RuleID   string `json:"ruleId,omitempty"`
	RuleName string `json:"ruleName,omitempty"`
	Priority *int   `json:"priority,omitempty"`
	PolicyID string `json:"policyId,omitempty"`
	Result   string `json:"result"`
	// Criterion is the first criterion that failed (no_match), or empty.
	Criterion string `json:"criterion,omitempty"`
	Detail    string `json:"detail,omitempty"`
	// Expression is the CEL condition of that criterion, or of the whole
	// rule when it matched.
	Expression string `json:"expression,omitempty"`
}

// Trace stages and results.
const (
	StageSoftwarePolicy = "software_policy"
	StageRule           = "rule"
	StageDefault        = "default"

	ResultMatched  = "matched"  // decided the request
	ResultNoMatch  = "no_match" // a criterion failed
	ResultSkipped  = "skipped"  // did not take part (disabled, other site, not a tool rule, inactive policy)
	ResultShadowed = "shadowed" // would match, but an earlier rule decided
	ResultError    = "error"    // could not be evaluated; the decision failed safe
	ResultApplied  = "applied"
)

// explainRules walks every rule in evaluation order and says what each did
// for the candidate. winner is the deciding rule's ordinal (-1 for none);
// when evalErr is set the rule at winner failed safe.
func (rs *RuleSet) explainRules(c *candidate, winner int32, evalErr error) []TraceEntry {
	out := make([]TraceEntry, 0, len(rs.rules))
	var winnerName string
	if winner >= 0 {
		winnerName = quoteName(&rs.rules[winner])
	}
	for i := range rs.rules {
		r := &rs.rules[i]
		p := r.rule.Priority
		te := TraceEntry{Stage: StageRule, RuleID: r.rule.ID, RuleName: r.rule.Name, Priority: &p}
		switch {
		case !r.rule.Enabled:
			te.Result, te.Detail = ResultSkipped, "rule is disabled"
		case r.scoped && (c.site == "" || r.site != c.site):
			te.Result = ResultSkipped
			if c.site == "" {
				te.Detail = fmt.Sprintf("rule is scoped to site %s; the device has no site, so only org-wide rules apply", r.site)
			} else {
				te.Detail = fmt.Sprintf("rule is scoped to site %s; the device is in site %s", r.site, c.site)
			}
		case c.flow == FlowToolAct && !r.hasTool:
			te.Result, te.Detail = ResultSkipped, "not a tool-action rule: only rules with a tool or risk-tier criterion govern tool actions"
		case r.poison != "":
			te.Result, te.Detail = ResultError, r.poison
			if winner >= 0 && int32(i) > winner {
				te.Result, te.Detail = ResultShadowed, "invalid rule not reached: "+winnerName+" decided first ("+r.poison+")"
			}
		case r.never:
			te.Result, te.Detail = ResultNoMatch, "rule has no criterion and never matches"
		default:
			explainCriteria(r, c, &te)
			if te.Result == ResultMatched && int32(i) != winner {
				te.Result, te.Detail = ResultShadowed, "would match, but "+winnerName+" decided first"
			}
		}
		if int32(i) == winner && evalErr != nil {
			te.Result, te.Detail = ResultError, evalErr.Error()
		}
		out = append(out, te)
	}
	return out
}

func explainCriteria(r *compiledRule, c *candidate, te *TraceEntry) {
	for i := range r.crits {
		cr := &r.crits[i]
		present, ok := cr.test(c)
		if present && ok != cr.negate {
			continue
		}
		te.Result, te.Criterion, te.Expression = ResultNoMatch, cr.kind.String(), cr.celExpr()
		te.Detail = failureDetail(cr, c, present)
		return
	}
	if r.cond != nil {
		ok, err := r.cond.eval(c)
		if err != nil || !ok {
			te.Result, te.Criterion, te.Expression = ResultNoMatch, "condition", r.cond.celSource()
			te.Detail = "the condition is not definitely true: " + r.cond.describe(c)
			if err != nil {
				te.Result, te.Detail = ResultError, "condition: "+err.Error()
			}
			return
		}
	}
	te.Result, te.Expression = ResultMatched, r.celSrc
	te.Detail = fmt.Sprintf("all %d criteria hold", len(r.crits))
	if r.cond != nil {
		te.Detail = fmt.Sprintf("all %d criteria and the condition hold", len(r.crits))
	}
}

// describe lists what each literal of a condition gave for the candidate.
func (n *condNode) describe(c *candidate) string {
	var parts []string
	var walk func(n *condNode)
	walk = func(n *condNode) {
		switch n.op {
		case 'c':
			present, ok := n.crit.test(c)
			res := "false"
			switch {
			case n.crit.kind == cSignerGroup && !n.crit.found:
				res = "false (signer group " + n.crit.group + " does not exist or has no usable entries)"
			case !present:
				res = "unknown (" + obsKeyOf(n.crit.kind) + " absent)"
			case ok != n.crit.negate:
				res = "true"
			}
			parts = append(parts, n.crit.String()+": "+res)
		case 'x':
			v, err := evalBool(n.cel.prog, c.activation())
			res := fmt.Sprint(v)
			if missing := c.absentKeys(n.cel.keys); len(missing) > 0 {
				res = "unknown (" + strings.Join(missing, ", ") + " absent)"
			}
			if err != nil {
				res = "error: " + err.Error()
			}
			parts = append(parts, "cel "+n.cel.src+": "+res)
		default:
			for i := range n.kids {
				walk(&n.kids[i])
			}
		}
	}
	walk(n)
	return strings.Join(parts, "; ")
}

func obsKeyOf(k critKind) string {
	if k == cSignerGroup {
		return keySigner + "/" + keyThumbprint
	}
	return critObsKey[k]
}

func observed(cr *criterion, c *candidate) string {
	o := &c.raw
	switch cr.kind {
	case cHash:
		return fmt.Sprintf("%q", o.TargetExecutableHash)
	case cThumbprint:
		return fmt.Sprintf("%q", o.TargetExecutableSignerThumbprint)
	case cSigner:
		return fmt.Sprintf("%q", o.TargetExecutableSigner)
	case cSignerGroup:
		return fmt.Sprintf("%q/%q", o.TargetExecutableSigner, o.TargetExecutableSignerThumbprint)
	case cToolName:
		return fmt.Sprintf("%q", o.ToolName)
	case cRiskTier:
		return fmt.Sprint(*o.RiskTier)
	case cUser:
		return fmt.Sprintf("%q", o.SubjectUsername)
	case cAdGroup:
		return fmt.Sprintf("%q", o.AdGroups)
	case cPathGlob:
		return fmt.Sprintf("%q", o.TargetExecutablePath)
	case cParentImage:
		return fmt.Sprintf("%q", o.ParentImage)
	case cCommandLine:
		return fmt.Sprintf("%q", o.CommandLine)
	}
	return ""
}

func failureDetail(cr *criterion, c *candidate, present bool) string {
	switch {
	case cr.kind == cTimeWindow:
		if !cr.win.valid {
			return "the time window is malformed (bad HH:MM or zone) and is never active"
		}
		local := c.at.In(cr.win.loc)
		return fmt.Sprintf("evaluation instant %s is %s %s in %s, outside the window %s",
			c.at.UTC().Format("2006-01-02T15:04:05Z"), local.Weekday().String()[:3], local.Format("15:04"),
			cr.win.loc, describeWindow(cr.win))
	case cr.kind == cSignerGroup && !cr.found:
		return fmt.Sprintf("signer group %s does not exist or has no usable entries, so the criterion never holds", cr.group)
	case !present:
		neg := ""
		if cr.negate {
			neg = " (a negated criterion still needs the data)"
		}
		return fmt.Sprintf("the observation has no %s%s", obsKeyOf(cr.kind), neg)
	case cr.kind == cThumbprint && !cr.valid:
		return "the rule's thumbprint is not 64 hex digits and never matches"
	case cr.negate:
		return fmt.Sprintf("%s is %s, which the rule excludes (%s)", obsKeyOf(cr.kind), observed(cr, c), cr)
	}
	return fmt.Sprintf("%s is %s; the rule wants %s", obsKeyOf(cr.kind), observed(cr, c), cr)
}

func describeWindow(w window) string {
	s := fmt.Sprintf("%02d:%02d-%02d:%02d", w.start/60, w.start%60, w.end/60, w.end%60)
	if w.restricted {
		var days []string
		for d := 0; d < 7; d++ {
			if w.days&(1<<d) != 0 {
				days = append(days, [...]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}[d])
			}
		}
		if len(days) == 0 {
			days = []string{"no valid day"}
		}
		s = strings.Join(days, ",") + " " + s
	}
	return s
}
