package dsl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
)

// filesOf formats a FromBundle result as a repository: one file per org.
func filesOf(files map[string]*syntax.File) map[string]string {
	srcs := map[string]string{}
	for i, org := range Orgs(files) {
		srcs[fmt.Sprintf("org%02d.pam", i)] = string(syntax.Format(files[org]))
	}
	return srcs
}

var ruleCmp = []cmp.Option{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmpopts.EquateEmpty(),
}

// entryKey is how a signer-group entry is compared after conversion: a
// CN-only object entry prints like a bare CN and comes back as one.
func entryKeys(es []engine.SignerEntry) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range es {
		k := "cn:"
		if e.SubjectCN != nil {
			k += *e.SubjectCN
		}
		k += "|tp:"
		if e.Thumbprint != nil {
			k += *e.Thumbprint
		}
		// NormalizeSignerGroup keeps a bare "X" and an object {"subjectCn":
		// "X"} as two entries; printed, both are `cn "X"` and the loader
		// keeps one. They match the same signers.
		fold := strings.ToLower(k)
		if seen[fold] {
			continue
		}
		seen[fold] = true
		out = append(out, k)
	}
	return out
}

func compareGroups(want, got []engine.SignerGroup) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d signer groups, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if sameJSON(w, g) {
			continue
		}
		if d := cmp.Diff(
			[]any{w.ID, w.OrgID, w.Name, w.Description, entryKeys(w.Signers)},
			[]any{g.ID, g.OrgID, g.Name, g.Description, entryKeys(g.Signers)}, cmpopts.EquateEmpty()); d != "" {
			return fmt.Sprintf("signer group %d (%q) (-want +got):\n%s", i, w.Name, d)
		}
	}
	return ""
}

// byOrg orders values the way ToBundle does: orgs by name, declarations in
// the order given.
func byOrg[T any](xs []T, org func(T) string) []T {
	out := slices.Clone(xs)
	slices.SortStableFunc(out, func(a, b T) int { return strings.Compare(org(a), org(b)) })
	return out
}

// checkRoundTrip runs both directions of the conversion property for a
// bundle of normalised, valid values and describes the first difference:
//
//	(a) JSON → rule files → JSON gives back every rule field by field and
//	    every signer group and org setting;
//	(b) the rule files → JSON → rule files give back the same text, byte for
//	    byte.
func checkRoundTrip(b *Bundle) error {
	data, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("marshal: %v", err)
	}
	parsed, err := ParseBundle(data)
	if err != nil {
		return fmt.Errorf("ParseBundle: %v\n%s", err, data)
	}
	files, errs := FromBundle(parsed)
	if len(errs) > 0 {
		return fmt.Errorf("FromBundle refused valid values: %v", errs)
	}
	srcs := filesOf(files)
	dump := func() string {
		var s strings.Builder
		for _, p := range slices.Sorted(maps.Keys(srcs)) {
			fmt.Fprintf(&s, "=== %s\n%s", p, srcs[p])
		}
		return s.String()
	}
	repo := Load(srcs)
	if len(repo.Diags) > 0 {
		var s strings.Builder
		for _, d := range repo.Diags {
			fmt.Fprintf(&s, "%s (%s)\n", d, d.Hint)
		}
		return fmt.Errorf("converted files do not load:\n%s\n%s\nJSON: %s", s.String(), dump(), data)
	}
	back := ToBundle(repo)

	wantRules := byOrg(b.Rules, func(r engine.Rule) string { return r.OrgID })
	if len(back.Rules) != len(wantRules) {
		return fmt.Errorf("%d rules back, want %d\n%s", len(back.Rules), len(wantRules), dump())
	}
	for i := range wantRules {
		if sameJSON(wantRules[i], back.Rules[i]) {
			continue // the fast path; cmp explains a difference
		}
		if d := cmp.Diff(wantRules[i], back.Rules[i], ruleCmp...); d != "" {
			return fmt.Errorf("rule %d %q changed in JSON → DSL → JSON (-want +got):\n%s\n%s", i, wantRules[i].Name, d, dump())
		}
	}
	wantGroups := byOrg(b.SignerGroups, func(g engine.SignerGroup) string { return g.OrgID })
	if d := compareGroups(wantGroups, back.SignerGroups); d != "" {
		return fmt.Errorf("%s\n%s", d, dump())
	}
	wantCfg := byOrg(b.OrgConfigs, func(c OrgConfig) string { return c.OrgID })
	if d := cmp.Diff(wantCfg, back.OrgConfigs, cmpopts.EquateEmpty()); d != "" {
		return fmt.Errorf("org settings changed (-want +got):\n%s\n%s", d, dump())
	}

	// (b) DSL → JSON → DSL, byte for byte.
	files2, errs := FromBundle(back)
	if len(errs) > 0 {
		return fmt.Errorf("FromBundle refused loaded values: %v", errs)
	}
	if srcs2 := filesOf(files2); !maps.Equal(srcs, srcs2) {
		return fmt.Errorf("DSL → JSON → DSL changed the text (-first +second):\n%s", cmp.Diff(srcs, srcs2))
	}
	return nil
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// TestConvertRoundTripProperty checks the conversion property on a few
// thousand random bundles (fewer with -race, which makes each one about
// five times as costly, and with -short), split over the CPUs.
func TestConvertRoundTripProperty(t *testing.T) {
	n := 4000
	switch {
	case testing.Short():
		n = 300
	case raceEnabled:
		n = 2000
	}
	workers := runtime.GOMAXPROCS(0)
	var rules, groups atomic.Int64
	var mu sync.Mutex
	seen := map[string]int{}
	t.Run("seeds", func(t *testing.T) {
		for w := range workers {
			t.Run(fmt.Sprint(w), func(t *testing.T) {
				t.Parallel()
				for seed := uint64(w); seed < uint64(n); seed += uint64(workers) {
					b := newGen(seed).bundle()
					rules.Add(int64(len(b.Rules)))
					groups.Add(int64(len(b.SignerGroups)))
					mu.Lock()
					for _, r := range b.Rules {
						for _, f := range features(r) {
							seen[f]++
						}
					}
					mu.Unlock()
					if err := checkRoundTrip(b); err != nil {
						t.Fatalf("seed %d: %v", seed, err)
					}
				}
			})
		}
	})
	t.Logf("%d bundles, %d rules, %d signer groups", n, rules.Load(), groups.Load())
	if rules.Load() < int64(n) {
		t.Errorf("the generator made only %d valid rules in %d bundles", rules.Load(), n)
	}
	// The generator must keep reaching every kind of value.
	for _, f := range allFeatures {
		if seen[f] < n/200 {
			t.Errorf("only %d generated rules have %s", seen[f], f)
		}
	}
	t.Logf("features: %v", seen)
}

var allFeatures = []string{"condition", "cel", "or", "not", "in-list", "signer-group-ref", "matchSignerGroupId",
	"matchNegate", "timeWindow", "days", "timezone", "wrapped-days", "site", "description", "duration",
	"disabled", "createdAt", "tool-rule", "exec-rule", "createdBy", "long-text"}

// features names what a generated rule exercises, to keep the generator
// honest.
func features(r engine.Rule) []string {
	var fs []string
	add := func(ok bool, f string) {
		if ok {
			fs = append(fs, f)
		}
	}
	c := ""
	if r.Condition != nil {
		c = *r.Condition
	}
	add(c != "", "condition")
	add(strings.Contains(c, "cel "), "cel")
	add(strings.Contains(c, " or "), "or")
	add(strings.Contains(c, "not "), "not")
	add(strings.Contains(c, " in ["), "in-list")
	add(strings.Contains(c, "signers("), "signer-group-ref")
	add(r.MatchSignerGroupID != nil, "matchSignerGroupId")
	add(len(r.MatchNegate) > 0, "matchNegate")
	add(r.TimeWindow != nil, "timeWindow")
	add(r.TimeWindow != nil && len(r.TimeWindow.Days) > 0, "days")
	add(r.TimeWindow != nil && r.TimeWindow.Timezone != nil, "timezone")
	add(r.TimeWindow != nil && len(r.TimeWindow.Days) > 1 && r.TimeWindow.Days[0] == 6 && r.TimeWindow.Days[1] == 0, "wrapped-days")
	add(r.SiteID != nil, "site")
	add(r.Description != nil, "description")
	add(r.ApprovalDurationMinutes != nil, "duration")
	add(!r.Enabled, "disabled")
	add(!r.CreatedAt.IsZero(), "createdAt")
	add(r.HasToolCriterion(), "tool-rule")
	add(r.HasExecutableCriterion(), "exec-rule")
	add(r.CreatedByUserID != "", "createdBy")
	long := false
	for _, p := range []*string{r.MatchPathGlob, r.MatchParentImage, r.MatchCommandLine, r.Description} {
		long = long || p != nil && len([]rune(*p)) >= 2000
	}
	add(long, "long-text")
	return fs
}

// FuzzRoundTrip mutates bundles (JSON) from the generator. Inputs that are
// not valid API values, or that the language cannot name (a signer-group
// reference to a group of another org or to no group, duplicate names),
// are skipped; for the rest the conversion property must hold.
func FuzzRoundTrip(f *testing.F) {
	for seed := range uint64(40) {
		data, err := json.Marshal(newGen(seed).bundle())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`[{"name": "bare array", "verdict": "auto_deny", "matchUser": "u"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		if b, ok := representable(b); ok {
			if err := checkRoundTrip(b); err != nil {
				t.Fatalf("%v\ninput: %s", err, data)
			}
		}
	})
}

// representable returns the valid, normalised part of a bundle when the
// language can carry it without loss, and false when it cannot.
func representable(in *Bundle) (*Bundle, bool) {
	if len(in.Policies) > 0 {
		return nil, false // policies carry fields rule files have no words for
	}
	b := &Bundle{Rules: []engine.Rule{}, SignerGroups: []engine.SignerGroup{}, OrgConfigs: in.OrgConfigs}
	cfgs := map[string]bool{}
	for _, c := range in.OrgConfigs {
		if cfgs[c.OrgID] || engine.ValidateOrgConfig(&engine.OrgConfig{DefaultUnmatchedVerdict: c.DefaultUnmatchedVerdict}) != nil {
			return nil, false
		}
		cfgs[c.OrgID] = true
	}
	type key struct{ org, name string }
	groupOrg := map[string]string{} // id as written → org
	names := map[key]bool{}
	ids := map[string]bool{}
	for _, g := range in.SignerGroups {
		if engine.ValidateSignerGroup(&g) != nil || !engine.IsUUID(g.ID) || ids[strings.ToLower(g.ID)] {
			return nil, false
		}
		g = engine.NormalizeSignerGroup(g)
		if d := DerivedID("signers", g.OrgID, g.Name); strings.EqualFold(g.ID, d) && g.ID != d {
			return nil, false // an upper-case derived id comes back in lower case
		}
		if names[key{g.OrgID, g.Name}] || names[key{g.OrgID, strings.ToLower(g.ID)}] {
			return nil, false
		}
		names[key{g.OrgID, g.Name}], names[key{g.OrgID, strings.ToLower(g.ID)}] = true, true
		ids[strings.ToLower(g.ID)] = true
		groupOrg[g.ID] = g.OrgID
		b.SignerGroups = append(b.SignerGroups, g)
	}
	ruleNames := map[key]bool{}
	for _, r := range in.Rules {
		if engine.ValidateRule(&r) != nil {
			continue // FromBundle reports and drops it
		}
		r = engine.NormalizeRule(r)
		if ruleNames[key{r.OrgID, r.Name}] {
			return nil, false
		}
		ruleNames[key{r.OrgID, r.Name}] = true
		refs := []string{}
		if r.MatchSignerGroupID != nil {
			refs = append(refs, *r.MatchSignerGroupID)
		}
		if r.Condition != nil {
			x, err := engine.ParseCondition(*r.Condition)
			if err != nil {
				return nil, false
			}
			mapRefs(x, func(l *syntax.Lit) string { refs = append(refs, l.Value); return l.Value })
		}
		for _, ref := range refs {
			if org, ok := groupOrg[ref]; !ok || org != r.OrgID {
				return nil, false // by name, by id in another case, another org's, or none
			}
		}
		b.Rules = append(b.Rules, r)
	}
	return b, true
}
