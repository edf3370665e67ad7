package simulate

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/store"
	"github.com/google/go-cmp/cmp"
)

func rule(id, name string, prio int, v engine.Verdict, mod func(*engine.Rule)) engine.Rule {
	r := engine.Rule{ID: id, Name: name, Priority: prio, Verdict: v, Enabled: true, CreatedAt: now}
	mod(&r)
	return r
}

// replayRules: A approves the tools folder; B denies Acme's signer; C
// (tools\x.exe) always sits behind A; D matches nothing in the history; E
// is disabled.
var replayRules = []engine.Rule{
	rule("a", "A", 1, engine.VerdictAutoApprove, func(r *engine.Rule) { r.MatchPathGlob = sp(`C:\Tools\*`) }),
	rule("b", "B", 2, engine.VerdictAutoDeny, func(r *engine.Rule) { r.MatchSigner = sp("Acme") }),
	rule("c", "C", 3, engine.VerdictAutoDeny, func(r *engine.Rule) { r.MatchPathGlob = sp(`C:\Tools\x.exe`) }),
	rule("d", "D", 4, engine.VerdictAutoApprove, func(r *engine.Rule) { r.MatchPathGlob = sp(`C:\Never\*`) }),
	rule("e", "E", 5, engine.VerdictAutoApprove, func(r *engine.Rule) { r.MatchPathGlob = sp(`*`); r.Enabled = false }),
}

// replayHistory: 10 tools\x.exe (A; C behind it), 5 tools\y.exe signed by
// Acme (A; B behind it), 7 other Acme programs (B), 3 others (default).
func replayHistory(org string) []Case {
	var cs []Case
	add := func(n int, path, signer string) {
		for range n {
			at := now.Add(-time.Duration(len(cs)) * time.Minute)
			cs = append(cs, Case{ID: caseID(len(cs)), OrgID: org, Flow: engine.FlowUAC, At: at,
				Observation: engine.Observation{SubjectUsername: "u", TargetExecutablePath: path, TargetExecutableSigner: signer}})
		}
	}
	add(10, `C:\Tools\x.exe`, "")
	add(5, `C:\Tools\y.exe`, "Acme")
	add(7, `C:\Other\z.exe`, "Acme")
	add(3, `C:\Other\q.exe`, "")
	return cs
}

// caseID is the n-th case's id.
func caseID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// historyOf holds cases as a history file would.
func historyOf(t *testing.T, cs []Case) *History {
	t.Helper()
	h := &History{Orgs: map[string]*store.Org{}, proj: NewProjection()}
	for _, c := range cs {
		o := c.Observation
		r := &store.Request{ID: c.ID, OrgID: c.OrgID, DeviceID: c.DeviceID, SiteID: c.SiteID, Flow: c.Flow, RequestedAt: c.At,
			Status: c.Status, SubjectUsername: o.SubjectUsername, TargetExecutablePath: o.TargetExecutablePath,
			TargetExecutableHash: o.TargetExecutableHash, TargetExecutableSigner: o.TargetExecutableSigner,
			ParentImage: o.ParentImage, CommandLine: o.CommandLine, AdGroups: o.AdGroups, ToolName: o.ToolName, RiskTier: o.RiskTier,
			Decision: store.DecisionRecord{Outcome: c.Recorded.Outcome, RuleID: c.Recorded.RuleID, RuleName: c.Recorded.RuleName}}
		if err := h.proj.put(r); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// filesChain is the chain of rules given as one rule-file set for every
// organisation of h.
func filesChain(t *testing.T, h *History, rules []engine.Rule) Chain {
	t.Helper()
	ch, done, err := h.FileChain([]lifecycle.FileOrg{{Rules: rules}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { done() })
	return ch
}

func TestReplayKnownAnswers(t *testing.T) {
	for _, workers := range []int{1, 3} {
		h := historyOf(t, replayHistory(store.NewID(now)))
		rep, err := Replay(h.Source(), filesChain(t, h, replayRules), Options{Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Total != 25 {
			t.Fatalf("total %d", rep.Total)
		}
		want := Outcomes{engine.OutcomeAutoApproved: 15, engine.OutcomeDenied: 7, engine.OutcomePending: 3, engine.OutcomeIgnored: 0}
		if diff := cmp.Diff(want, rep.Outcomes); diff != "" {
			t.Fatalf("outcomes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]int{"rule": 22, "org_default": 3}, rep.ByDecider); diff != "" {
			t.Fatalf("deciders (-want +got):\n%s", diff)
		}
		wantRules := []RuleStats{
			{ID: "a", Name: "A", Priority: 1, Enabled: true, Decided: 15},
			{ID: "b", Name: "B", Priority: 2, Enabled: true, Decided: 7, Shadowed: 5, ShadowedBy: []Shadower{{RuleID: "a", RuleName: "A", Count: 5}}},
			{ID: "c", Name: "C", Priority: 3, Enabled: true, Shadowed: 10, ShadowedBy: []Shadower{{RuleID: "a", RuleName: "A", Count: 10}}},
			{ID: "d", Name: "D", Priority: 4, Enabled: true},
			{ID: "e", Name: "E", Priority: 5},
		}
		if diff := cmp.Diff(wantRules, rep.Rules); diff != "" {
			t.Fatalf("workers %d: rules (-want +got):\n%s", workers, diff)
		}
		if len(rep.NeverFired) != 1 || rep.NeverFired[0].ID != "d" {
			t.Fatalf("never fired: %+v", rep.NeverFired)
		}
		if len(rep.AlwaysShadowed) != 1 || rep.AlwaysShadowed[0].ID != "c" || rep.AlwaysShadowed[0].ShadowedBy[0].RuleName != "A" {
			t.Fatalf("always shadowed: %+v", rep.AlwaysShadowed)
		}
	}
}

// Time windows are judged at each request's own instant.
func TestReplayTimeWindowsAtEachRequest(t *testing.T) {
	office := rule("w", "office hours", 1, engine.VerdictAutoApprove, func(r *engine.Rule) {
		r.MatchPathGlob = sp(`C:\*`)
		r.TimeWindow = &engine.TimeWindow{Days: []int{1, 2, 3, 4, 5}, Start: "09:00", End: "17:00", Timezone: sp("UTC")}
	})
	mon := time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC) // a Monday
	var cs []Case
	org := store.NewID(now)
	for h := range 24 {
		cs = append(cs, Case{ID: caseID(h), OrgID: org, Flow: engine.FlowUAC, At: mon.Add(time.Duration(h) * time.Hour),
			Observation: engine.Observation{SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`}})
	}
	h := historyOf(t, cs)
	rep, err := Replay(h.Source(), filesChain(t, h, []engine.Rule{office}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcomes[engine.OutcomeAutoApproved] != 9 || rep.Outcomes[engine.OutcomePending] != 15 {
		t.Fatalf("outcomes %v, want 9 approved (09:00–17:00, both ends inclusive) and 15 pending", rep.Outcomes)
	}
}

func TestDiffKnownAnswers(t *testing.T) {
	// The candidate drops B (Acme programs outside tools go to the default)
	// and adds a wide approval for C:\Other\q.exe at the top.
	cand := []engine.Rule{
		rule("q", "Q", 0, engine.VerdictAutoApprove, func(r *engine.Rule) { r.MatchPathGlob = sp(`C:\Other\q.exe`) }),
		replayRules[0], replayRules[2], replayRules[3],
	}
	h := historyOf(t, replayHistory(store.NewID(now)))
	base, candidate := filesChain(t, h, replayRules), filesChain(t, h, cand)
	for _, workers := range []int{1, 4} {
		d, err := Diff(h.Source(), base, candidate, Options{Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		wantMatrix := []Transition{
			{From: engine.OutcomeAutoApproved, To: engine.OutcomeAutoApproved, Count: 15},
			{From: engine.OutcomePending, To: engine.OutcomeAutoApproved, Count: 3},
			{From: engine.OutcomeDenied, To: engine.OutcomePending, Count: 7},
		}
		if diff := cmp.Diff(wantMatrix, d.Matrix); diff != "" {
			t.Fatalf("matrix (-want +got):\n%s", diff)
		}
		if d.Total != 25 || d.Changed != 10 || d.Widened != 3 {
			t.Fatalf("total %d changed %d widened %d", d.Total, d.Changed, d.Widened)
		}
		if len(d.Flips) != 2 {
			t.Fatalf("%d flip groups: %+v", len(d.Flips), d.Flips)
		}
		w := d.Flips[0]
		if !w.Widens || w.Count != 3 || w.Candidate.RuleName != "Q" || w.Base.By != "org_default" || len(w.Examples) != 3 {
			t.Fatalf("first group is not the widening one: %+v", w)
		}
		n := d.Flips[1]
		if n.Widens || n.Count != 7 || n.Base.RuleName != "B" || n.Candidate.By != "org_default" || len(n.Examples) != MaxFlipExamples {
			t.Fatalf("second group: %+v", n)
		}
		// Examples are the newest, newest first, whatever the workers.
		var ats []time.Time
		for _, e := range n.Examples {
			ats = append(ats, e.RequestedAt)
		}
		if !slices.IsSortedFunc(ats, func(a, b time.Time) int { return b.Compare(a) }) || n.Examples[0].ID != caseID(15) {
			t.Fatalf("examples %+v", n.Examples)
		}
		if len(d.Candidate.NeverFired) != 1 || d.Candidate.NeverFired[0].ID != "d" {
			t.Fatalf("candidate never fired: %+v", d.Candidate.NeverFired)
		}
	}
}

// Replaying the live rule set over the history it just decided reproduces
// every recorded outcome: preview, replay and live decisions share one
// compiled rule set and evaluator.
func TestReplayReproducesLiveDecisions(t *testing.T) {
	w := newWorld(t)
	clock := lifecycle.NewFakeClock(now.Add(-24 * time.Hour))
	lc := lifecycle.New(lifecycle.Config{Store: w.st, Clock: clock})
	siteA := w.siteA
	rules := append(slices.Clone(replayRules),
		rule("s", "site A tools", 0, engine.VerdictAutoDeny, func(r *engine.Rule) {
			r.SiteID = &siteA
			r.MatchPathGlob = sp(`C:\Tools\site\*`)
		}),
		rule("n", "nights", 6, engine.VerdictAutoApprove, func(r *engine.Rule) {
			r.MatchPathGlob = sp(`C:\Other\*`)
			r.TimeWindow = &engine.TimeWindow{Start: "22:00", End: "06:00", Timezone: sp("Europe/Berlin")}
		}),
		rule("t", "tool", 1, engine.VerdictAutoApprove, func(r *engine.Rule) { r.MatchToolName = sp("read_file"); r.MatchRiskTier = ip(1) }),
		rule("j", "jit", 1, engine.VerdictRequireApproval, func(r *engine.Rule) { r.MatchUser = sp("tech") }),
	)
	if err := w.st.Update(func(tx *store.Tx) error {
		for i := range rules {
			r := rules[i]
			r.ID, r.OrgID = store.NewID(now), w.org
			if _, err := tx.PutRule(&r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	paths := []string{`C:\Tools\x.exe`, `C:\Tools\site\a.exe`, `C:\Other\z.exe`, `C:\Other\q.exe`, `C:\Never\n.exe`}
	signers := []string{"", "Acme", "Other"}
	devs := []string{w.devA, w.devB, w.devNoSite}
	recorded := map[string]engine.Outcome{}
	for i := range 150 {
		clock.Set(now.Add(-24 * time.Hour).Add(time.Duration(i) * 17 * time.Minute))
		in := lifecycle.IngestInput{DeviceID: devs[i%3]}
		switch i % 5 {
		case 3:
			in.Flow = engine.FlowToolAct
			in.Observation = engine.Observation{ToolName: []string{"read_file", "write_file"}[i%2], RiskTier: ip(1 + i%3)}
		case 4:
			in.Flow, in.Reason = engine.FlowJITAdmin, "maintenance"
			in.Observation = engine.Observation{SubjectUsername: []string{"tech", "other"}[i%2]}
		default:
			at := clock.Now()
			in.Flow = engine.FlowUAC
			in.Observation = engine.Observation{SubjectUsername: "u", TargetExecutablePath: paths[i%len(paths)],
				TargetExecutableSigner: signers[i%len(signers)], ObservedAt: &at}
		}
		res, err := lc.Ingest(in)
		if err != nil {
			t.Fatalf("ingest %d: %v", i, err)
		}
		if res.Request != nil {
			recorded[res.Request.ID] = res.Decision.Outcome
		}
	}
	var mismatches []string
	src := StoreSource(w.st, w.org, time.Time{}, time.Time{})
	seen := 0
	err := src(func(c *Case) bool {
		seen++
		if c.Recorded.Outcome != recorded[c.ID] {
			mismatches = append(mismatches, "stored "+c.ID)
		}
		return true
	})
	if err != nil || seen != len(recorded) {
		t.Fatalf("history: %d cases of %d (%v)", seen, len(recorded), err)
	}
	d, err := Diff(src, LiveChain(lc), LiveChain(lc), Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if d.Changed != 0 {
		t.Fatalf("the live chain against itself changed %d", d.Changed)
	}
	// Replay each case alone and compare with what was recorded.
	res := newResolver(LiveChain(lc))
	var outcomes = map[engine.Outcome]int{}
	src(func(c *Case) bool {
		_, dec, _, _ := res.decide(c, nil)
		outcomes[dec.Outcome]++
		if dec.Outcome != recorded[c.ID] || dec.RuleID != c.Recorded.RuleID {
			mismatches = append(mismatches, fmt.Sprintf("%s %s: replayed %s by %q, recorded %s by %q",
				c.ID, c.Flow, dec.Outcome, dec.RuleName, recorded[c.ID], c.Recorded.RuleName))
		}
		return true
	})
	if len(mismatches) > 0 {
		t.Fatalf("%d mismatches:\n%v", len(mismatches), mismatches)
	}
	if len(outcomes) < 3 {
		t.Fatalf("the history exercises too few outcomes: %v", outcomes)
	}
}

// A history export replays through the rule files as a server would: a
// file set declared for an organisation by name applies to it only, and the
// organisation's settings come from the export.
func TestHistoryFileChainMatchesOrgsByName(t *testing.T) {
	acme, other := store.NewID(now), store.NewID(now)
	var b strings.Builder
	fmt.Fprintf(&b, `{"kind":"org","id":%q,"name":"Acme","defaultUnmatchedVerdict":"auto_deny"}`+"\n", strings.ToUpper(acme))
	for i, c := range []struct{ org, path string }{{acme, `C:\Tools\a.exe`}, {acme, `C:\Other\b.exe`}, {other, `C:\Tools\a.exe`}} {
		at := now.Add(time.Duration(i) * time.Minute)
		line, err := json.Marshal(store.Request{ID: store.NewID(at), OrgID: c.org, Flow: engine.FlowUAC, Status: store.StatusPending,
			SubjectUsername: "u", TargetExecutablePath: c.path, RequestedAt: at, CreatedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	h, err := ReadHistory(strings.NewReader(b.String()), "", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ch, done, err := h.FileChain([]lifecycle.FileOrg{{Org: "acme", Rules: replayRules[:1]}})
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	res := newResolver(ch)
	got := map[string]engine.Outcome{}
	if err := h.Source()(func(c *Case) bool {
		_, d, _, _ := res.decide(c, nil)
		got[c.OrgID+" "+c.Observation.TargetExecutablePath] = d.Outcome
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]engine.Outcome{acme + ` C:\Tools\a.exe`: engine.OutcomeAutoApproved,
		acme + ` C:\Other\b.exe`: engine.OutcomeDenied, other + ` C:\Tools\a.exe`: engine.OutcomePending}
	if !maps.Equal(got, want) || h.Len() != 3 {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if _, err := ReadHistory(strings.NewReader(`{"id":"r","orgId":"acme","flowType":"uac_intercept","requestedAt":"2026-06-15T10:00:00Z"}`), "", time.Time{}, time.Time{}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a request without an org UUID: %v", err)
	}
}
