package simulate

import (
	"cmp"
	"slices"
	"time"

	"github.com/elevate-pam/elevate/engine"
)

// MaxFlipExamples bounds the examples kept per flip group.
const MaxFlipExamples = 5

// Transition counts the requests whose outcome went From → To.
type Transition struct {
	From  engine.Outcome `json:"from"`
	To    engine.Outcome `json:"to"`
	Count int            `json:"count"`
}

// Decider is what took a decision: a rule, a software policy, the org
// default, or a fail-safe.
type Decider struct {
	By       string `json:"by"` // rule, software_policy, org_default, fail_safe, no_rule
	RuleID   string `json:"ruleId,omitempty"`
	RuleName string `json:"ruleName,omitempty"`
	PolicyID string `json:"softwarePolicyId,omitempty"`
}

func deciderOf(d engine.Decision) Decider {
	return Decider{By: deciderKey(d), RuleID: d.RuleID, RuleName: d.RuleName, PolicyID: d.SoftwarePolicyID}
}

// FlipGroup is the requests whose outcome flipped the same way for the same
// reason: what decided them before and what decides them now.
type FlipGroup struct {
	From      engine.Outcome `json:"from"`
	To        engine.Outcome `json:"to"`
	Base      Decider        `json:"base"`
	Candidate Decider        `json:"candidate"`
	// Widens is true for new auto-approvals.
	Widens   bool          `json:"widens"`
	Count    int           `json:"count"`
	Examples []FlipExample `json:"examples"`
}

// FlipExample is one flipped request.
type FlipExample struct {
	ID                   string          `json:"id"`
	OrgID                string          `json:"orgId"`
	RequestedAt          time.Time       `json:"requestedAt"`
	Flow                 engine.FlowType `json:"flowType"`
	SubjectUsername      string          `json:"subjectUsername,omitempty"`
	TargetExecutablePath string          `json:"targetExecutablePath,omitempty"`
	ToolName             string          `json:"toolName,omitempty"`
}

// DiffReport compares two chains over the same history.
type DiffReport struct {
	Total int `json:"total"`
	// Matrix has one entry per (from, to) pair seen, unchanged ones
	// included, in outcome order.
	Matrix  []Transition `json:"matrix"`
	Changed int          `json:"changed"`
	// Widened counts requests newly auto-approved.
	Widened int `json:"widened"`
	// Flips lists the changed requests by group: widening groups first,
	// then the largest.
	Flips     []FlipGroup `json:"flips"`
	Base      *Report     `json:"base"`
	Candidate *Report     `json:"candidate"`
}

type flipKey struct {
	from, to  engine.Outcome
	base, cnd Decider
	org       string
}

// diffTally is one worker's share of a diff.
type diffTally struct {
	base, cand *tally
	matrix     map[[2]engine.Outcome]int
	flips      map[flipKey]*FlipGroup
	shB, shC   []int32
}

// Diff replays src through base and candidate and reports how the outcomes
// change: the transition matrix and the flipped requests grouped by what
// decided them before and after, new auto-approvals first.
func Diff(src Source, base, candidate Chain, opt Options) (*DiffReport, error) {
	rb, rc := newResolver(base), newResolver(candidate)
	parts, err := run(src, opt, func(int) *diffTally {
		return &diffTally{base: newTally(), cand: newTally(), matrix: map[[2]engine.Outcome]int{}, flips: map[flipKey]*FlipGroup{}}
	}, func(dt *diffTally, c *Case) {
		ocB, dB, wB, shB := rb.decide(c, dt.shB)
		ocC, dC, wC, shC := rc.decide(c, dt.shC)
		dt.shB, dt.shC = shB, shC
		dt.base.add(c, ocB, dB, wB, shB)
		dt.cand.add(c, ocC, dC, wC, shC)
		dt.matrix[[2]engine.Outcome{dB.Outcome, dC.Outcome}]++
		if dB.Outcome == dC.Outcome {
			return
		}
		k := flipKey{from: dB.Outcome, to: dC.Outcome, base: deciderOf(dB), cnd: deciderOf(dC), org: c.OrgID}
		g := dt.flips[k]
		if g == nil {
			g = &FlipGroup{From: k.from, To: k.to, Base: k.base, Candidate: k.cnd, Examples: []FlipExample{},
				Widens: dC.Outcome == engine.OutcomeAutoApproved}
			dt.flips[k] = g
		}
		g.Count++
		g.Examples = append(g.Examples, FlipExample{ID: c.ID, OrgID: c.OrgID, RequestedAt: c.At, Flow: c.Flow,
			SubjectUsername: c.Observation.SubjectUsername, TargetExecutablePath: c.Observation.TargetExecutablePath,
			ToolName: c.Observation.ToolName})
		g.Examples = newestExamples(g.Examples)
	})
	if err != nil {
		return nil, err
	}
	rep := &DiffReport{Matrix: []Transition{}, Flips: []FlipGroup{}}
	bt, ct := newTally(), newTally()
	matrix := map[[2]engine.Outcome]int{}
	flips := map[flipKey]*FlipGroup{}
	for _, p := range parts {
		bt.merge(p.base)
		ct.merge(p.cand)
		for k, n := range p.matrix {
			matrix[k] += n
		}
		for k, g := range p.flips {
			dst := flips[k]
			if dst == nil {
				flips[k] = g
				continue
			}
			dst.Count += g.Count
			dst.Examples = newestExamples(append(dst.Examples, g.Examples...))
		}
	}
	rep.Base, rep.Candidate = bt.report(), ct.report()
	rep.Total = rep.Base.Total
	for k, n := range matrix {
		rep.Matrix = append(rep.Matrix, Transition{From: k[0], To: k[1], Count: n})
		if k[0] != k[1] {
			rep.Changed += n
			if k[1] == engine.OutcomeAutoApproved {
				rep.Widened += n
			}
		}
	}
	slices.SortFunc(rep.Matrix, func(a, b Transition) int {
		if c := cmp.Compare(OutcomeRank(a.From), OutcomeRank(b.From)); c != 0 {
			return c
		}
		return cmp.Compare(OutcomeRank(a.To), OutcomeRank(b.To))
	})
	for _, g := range flips {
		rep.Flips = append(rep.Flips, *g)
	}
	slices.SortFunc(rep.Flips, func(a, b FlipGroup) int {
		switch {
		case a.Widens != b.Widens:
			if a.Widens {
				return -1
			}
			return 1
		case a.Count != b.Count:
			return cmp.Compare(b.Count, a.Count)
		}
		return cmp.Or(cmp.Compare(OutcomeRank(a.From), OutcomeRank(b.From)), cmp.Compare(OutcomeRank(a.To), OutcomeRank(b.To)),
			cmp.Compare(a.Candidate.RuleName+a.Candidate.RuleID, b.Candidate.RuleName+b.Candidate.RuleID),
			cmp.Compare(a.Base.RuleName+a.Base.RuleID, b.Base.RuleName+b.Base.RuleID))
	})
	return rep, nil
}

// newestExamples keeps the MaxFlipExamples newest examples (then by id),
// newest first: the same whatever order the history is read in.
func newestExamples(es []FlipExample) []FlipExample {
	slices.SortFunc(es, func(a, b FlipExample) int {
		if c := b.RequestedAt.Compare(a.RequestedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return es[:min(len(es), MaxFlipExamples)]
}

// OutcomeOrder lists the outcomes from widest to narrowest access.
var OutcomeOrder = []engine.Outcome{engine.OutcomeAutoApproved, engine.OutcomeIgnored, engine.OutcomePending, engine.OutcomeDenied}

// OutcomeRank is o's place in OutcomeOrder; unknown outcomes come last.
func OutcomeRank(o engine.Outcome) int {
	if i := slices.Index(OutcomeOrder, o); i >= 0 {
		return i
	}
	return len(OutcomeOrder)
}
