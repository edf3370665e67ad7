package simulate

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// Case is one historical request as a replay sees it: what was observed,
// when, where, and what was decided at the time.
type Case struct {
	ID       string          `json:"id"`
	OrgID    string          `json:"orgId"`
	DeviceID string          `json:"deviceId,omitempty"`
	SiteID   string          `json:"siteId,omitempty"`
	Flow     engine.FlowType `json:"flowType"`
	// At is the request's own instant: time windows are judged at it.
	At          time.Time          `json:"requestedAt"`
	Observation engine.Observation `json:"observation"`
	// Recorded is the decision taken when the request arrived.
	Recorded Recorded `json:"decision"`
	// Status is the request's status now ("" when the source has none).
	Status store.Status `json:"status,omitempty"`

	key store.ID // the id, parsed, when the source has it
	seq int      // read order, for answers that keep the first matches
}

// Recorded is the stored decision of a historical request.
type Recorded struct {
	Outcome  engine.Outcome `json:"outcome"`
	RuleID   string         `json:"ruleId,omitempty"`
	RuleName string         `json:"ruleName,omitempty"`
}

// Chain is a rule set as a replay runs it: per organisation, the compiled
// rules and settings, and per request its device's software policies.
type Chain struct {
	// RuleSet returns the organisation's compiled rule set. It is called
	// once per organisation per run.
	RuleSet func(org string) (*engine.RuleSet, error)
	// Org returns the organisation's settings (default verdict); nil means
	// the defaults.
	Org func(org string) (engine.OrgConfig, error)
	// Bridge returns the software policies of the request's device (uac
	// only); nil means none.
	Bridge func(c *Case) (*engine.Bridge, error)
}

// Source yields historical requests in any order until yield returns
// false. Cases may be reused after yield returns; a case's
// Observation.ObservedAt may point at its own At.
type Source func(yield func(*Case) bool) error

// Outcomes counts decisions by outcome.
type Outcomes map[engine.Outcome]int

// RuleStats is what one rule did over the history.
type RuleStats struct {
	OrgID    string `json:"orgId,omitempty"`
	ID       string `json:"id"`
	Name     string `json:"name"`
	Priority int    `json:"priority"`
	Enabled  bool   `json:"enabled"`
	// Decided counts the requests the rule decided.
	Decided int `json:"decided"`
	// Shadowed counts requests it matched while an earlier rule (or a
	// software policy) decided.
	Shadowed int `json:"shadowed"`
	// ShadowedBy names what decided those requests, most often first.
	ShadowedBy []Shadower `json:"shadowedBy,omitempty"`
}

// Shadower is a rule or software policy that decided requests another rule
// also matched.
type Shadower struct {
	RuleID   string `json:"ruleId,omitempty"`
	RuleName string `json:"ruleName,omitempty"`
	PolicyID string `json:"softwarePolicyId,omitempty"`
	Count    int    `json:"count"`
}

// Report is a replay's answer.
type Report struct {
	Total    int      `json:"total"`
	Outcomes Outcomes `json:"outcomes"`
	// ByDecider counts decisions by what took them: rules, the org
	// default, software policies, fail-safes.
	ByDecider map[string]int `json:"byDecider"`
	Rules     []RuleStats    `json:"rules"`
	// NeverFired are enabled rules that matched no request at all.
	NeverFired []RuleStats `json:"neverFired"`
	// AlwaysShadowed are rules that matched requests but decided none.
	AlwaysShadowed []RuleStats `json:"alwaysShadowed"`
	// Errors counts decisions that failed safe, by reason.
	Errors map[string]int `json:"errors,omitempty"`
	// Unrecorded names observation fields the history does not keep, so
	// criteria on them cannot match as they did live.
	Unrecorded []string `json:"unrecordedFields"`
}

// UnrecordedFields are the observation fields stored history lacks: a
// criterion on them matches no replayed request.
var UnrecordedFields = []string{"targetExecutableSignerThumbprint"}

// Options tune a run.
type Options struct {
	// Workers decide in parallel; 0 means one per CPU.
	Workers int
	// Progress, when set, is called now and then with the requests done.
	Progress func(done int)
}

func (o Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// orgChain is a Chain resolved for one organisation.
type orgChain struct {
	rs  *engine.RuleSet
	org engine.OrgConfig
	err error
}

// resolver caches a Chain's per-organisation parts for one run.
type resolver struct {
	ch   Chain
	mu   sync.Mutex
	orgs map[string]*orgChain
}

func newResolver(ch Chain) *resolver { return &resolver{ch: ch, orgs: map[string]*orgChain{}} }

func (r *resolver) org(id string) *orgChain {
	r.mu.Lock()
	defer r.mu.Unlock()
	if oc := r.orgs[id]; oc != nil {
		return oc
	}
	oc := &orgChain{}
	if oc.rs, oc.err = r.ch.RuleSet(id); oc.err == nil && r.ch.Org != nil {
		oc.org, oc.err = r.ch.Org(id)
	}
	r.orgs[id] = oc
	return oc
}

// decide runs one case through the chain. Any failure is a fail-safe
// pending decision, as it would be live.
func (r *resolver) decide(c *Case, shadowed []int32) (*orgChain, engine.Decision, int32, []int32) {
	oc := r.org(c.OrgID)
	if oc.err != nil {
		return oc, engine.Decision{Outcome: engine.OutcomePending, Error: "rule set unavailable: " + oc.err.Error()}, -1, shadowed[:0]
	}
	obs := c.Observation
	obs.SiteID = c.SiteID
	in := &engine.Input{Flow: c.Flow, Observation: obs, At: c.At, Org: oc.org}
	if c.Flow == engine.FlowUAC && r.ch.Bridge != nil {
		b, err := r.ch.Bridge(c)
		if err != nil {
			return oc, engine.Decision{Outcome: engine.OutcomePending, Error: "software policies unavailable: " + err.Error()}, -1, shadowed[:0]
		}
		in.Bridge = b
	}
	d, winner, sh := oc.rs.DecideShadowed(in, shadowed[:0])
	return oc, d, winner, sh
}

// deciderKey names what took a decision, for ByDecider.
func deciderKey(d engine.Decision) string {
	switch {
	case d.Error != "":
		return "fail_safe"
	case d.DecidedBy != "":
		return string(d.DecidedBy)
	}
	return "no_rule"
}

// tally is one worker's share of a report.
type tally struct {
	total     int
	outcomes  Outcomes
	deciders  map[string]int
	errors    map[string]int
	decided   map[ruleKey]int
	shadowed  map[ruleKey]map[Shadower]int
	orgsSeen  map[*orgChain]string
	scratchSh []int32
}

type ruleKey struct {
	oc  *orgChain
	ord int32
}

func newTally() *tally {
	return &tally{outcomes: Outcomes{}, deciders: map[string]int{}, errors: map[string]int{}, decided: map[ruleKey]int{},
		shadowed: map[ruleKey]map[Shadower]int{}, orgsSeen: map[*orgChain]string{}}
}

func (t *tally) add(c *Case, oc *orgChain, d engine.Decision, winner int32, sh []int32) {
	t.total++
	t.outcomes[d.Outcome]++
	t.deciders[deciderKey(d)]++
	if d.Error != "" {
		t.errors[d.Error]++
	}
	if oc.rs == nil {
		return
	}
	t.orgsSeen[oc] = c.OrgID
	if winner >= 0 {
		t.decided[ruleKey{oc, winner}]++
	}
	if len(sh) == 0 {
		return
	}
	by := Shadower{RuleID: d.RuleID, RuleName: d.RuleName}
	if d.DecidedBy == engine.DecidedBySoftwarePolicy {
		by = Shadower{PolicyID: d.SoftwarePolicyID}
	}
	for _, ord := range sh {
		k := ruleKey{oc, ord}
		m := t.shadowed[k]
		if m == nil {
			m = map[Shadower]int{}
			t.shadowed[k] = m
		}
		m[by]++
	}
}

func (t *tally) merge(o *tally) {
	t.total += o.total
	for k, v := range o.outcomes {
		t.outcomes[k] += v
	}
	for k, v := range o.deciders {
		t.deciders[k] += v
	}
	for k, v := range o.errors {
		t.errors[k] += v
	}
	for k, v := range o.decided {
		t.decided[k] += v
	}
	for k, m := range o.shadowed {
		dst := t.shadowed[k]
		if dst == nil {
			dst = map[Shadower]int{}
			t.shadowed[k] = dst
		}
		for s, n := range m {
			dst[s] += n
		}
	}
	for k, v := range o.orgsSeen {
		t.orgsSeen[k] = v
	}
}

// Replay decides every case of src through chain and reports the outcome
// distribution, what each rule decided, the rules that never fired and the
// rules that only ever matched behind another.
func Replay(src Source, chain Chain, opt Options) (*Report, error) {
	res := newResolver(chain)
	ws, err := run(src, opt, func(int) *tally { return newTally() }, func(w *tally, c *Case) {
		oc, d, winner, sh := res.decide(c, w.scratchSh)
		w.scratchSh = sh
		w.add(c, oc, d, winner, sh)
	})
	if err != nil {
		return nil, err
	}
	t := newTally()
	for _, w := range ws {
		t.merge(w)
	}
	return t.report(), nil
}

// run feeds src's cases in batches to workers, each with its own state W
// made by newW, and returns the workers' states.
func run[W any](src Source, opt Options, newW func(i int) W, each func(W, *Case)) ([]W, error) {
	const batchSize = 512
	n := opt.workers()
	batches := make(chan []Case, 2*n)
	ws := make([]W, n)
	for i := range ws {
		ws[i] = newW(i)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for b := range batches {
				for j := range b {
					each(ws[i], &b[j])
				}
			}
		})
	}
	batch := make([]Case, 0, batchSize)
	done := 0
	send := func() {
		batches <- batch
		done += len(batch)
		batch = make([]Case, 0, batchSize)
		if opt.Progress != nil {
			opt.Progress(done)
		}
	}
	err := src(func(c *Case) bool {
		batch = append(batch, *c)
		cp := &batch[len(batch)-1]
		cp.Observation.AdGroups = slices.Clone(c.Observation.AdGroups)
		if c.Observation.ObservedAt == &c.At {
			cp.Observation.ObservedAt = &cp.At
		}
		cp.seq = done + len(batch) - 1
		if len(batch) == batchSize {
			send()
		}
		return true
	})
	if len(batch) > 0 {
		send()
	}
	close(batches)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return ws, nil
}

func (t *tally) report() *Report {
	rep := &Report{Total: t.total, Outcomes: t.outcomes, ByDecider: t.deciders, Rules: []RuleStats{},
		NeverFired: []RuleStats{}, AlwaysShadowed: []RuleStats{}, Unrecorded: UnrecordedFields}
	if len(t.errors) > 0 {
		rep.Errors = t.errors
	}
	for _, o := range OutcomeOrder {
		rep.Outcomes[o] += 0 // every outcome is reported, zeros included
	}
	ocs := make([]*orgChain, 0, len(t.orgsSeen))
	for oc := range t.orgsSeen {
		ocs = append(ocs, oc)
	}
	slices.SortFunc(ocs, func(a, b *orgChain) int { return cmp.Compare(t.orgsSeen[a], t.orgsSeen[b]) })
	multiOrg := len(ocs) > 1
	for _, oc := range ocs {
		for i, r := range oc.rs.Rules() {
			k := ruleKey{oc, int32(i)}
			st := RuleStats{ID: r.ID, Name: r.Name, Priority: r.Priority, Enabled: r.Enabled, Decided: t.decided[k]}
			if multiOrg {
				st.OrgID = t.orgsSeen[oc]
			}
			for s, n := range t.shadowed[k] {
				s.Count = n
				st.ShadowedBy = append(st.ShadowedBy, s)
				st.Shadowed += n
			}
			slices.SortFunc(st.ShadowedBy, func(a, b Shadower) int {
				if c := cmp.Compare(b.Count, a.Count); c != 0 {
					return c
				}
				return cmp.Compare(a.RuleName+a.RuleID+a.PolicyID, b.RuleName+b.RuleID+b.PolicyID)
			})
			rep.Rules = append(rep.Rules, st)
			switch {
			case !r.Enabled:
			case st.Decided == 0 && st.Shadowed == 0:
				rep.NeverFired = append(rep.NeverFired, st)
			case st.Decided == 0:
				rep.AlwaysShadowed = append(rep.AlwaysShadowed, st)
			}
		}
	}
	return rep
}
