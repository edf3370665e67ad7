package benchmarks

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
)

// ---------------------------------------------------------------------------
// Adversarial path glob
// ---------------------------------------------------------------------------

// adversarialGlob is a path glob crafted against backtracking matchers: 40
// single stars each followed by an 'a', then a 'c' that the path never
// holds. A backtracking matcher (gobwas/glob, which the engine used before)
// tries every way of spreading the path's a's over the 40 stars before it
// gives up; the engine's literal prefix/suffix check plus bit-parallel NFA
// makes one pass over the path.
var adversarialGlob = `C:\Users\` + strings.Repeat(`*a`, 40) + `*c*.exe`

// adversarialPathLen is the length of the observed path in characters.
const adversarialPathLen = 4000

const (
	adversarialRuleID = "b3f1c0de-7a11-4e57-9c1a-7a46e7000002"
	adversarialDir    = `C:\Users\`
	adversarialExt    = `.exe`
)

// adversarialPath is a 4,000-character path under C:\Users\ that shares the
// glob's prefix and suffix (so the index hands the rule over and the
// pre-checks pass) and is all a's in between, with no 'c': it does not
// match. With mid = "c" it does.
func adversarialPath(mid string) string {
	pad := adversarialPathLen - len(adversarialDir) - len(mid) - len(adversarialExt)
	return adversarialDir + strings.Repeat("a", pad) + mid + adversarialExt
}

// adversarialRule is an ordinary, valid rule whose only criterion is the
// crafted glob.
func adversarialRule() engine.Rule {
	return engine.Rule{
		ID:            adversarialRuleID,
		Name:          "Crafted glob (adversarial benchmark)",
		Enabled:       true,
		Priority:      50,
		Verdict:       engine.VerdictAutoDeny,
		MatchPathGlob: ptr(adversarialGlob),
		CreatedAt:     time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
	}
}

// adversarialInput is the no_match observation (same user, groups, hash,
// signer, parent and site) with the 4,000-character path in place of the
// Downloads installer, so the only difference from scenario=no_match is
// the path and the crafted rule it meets.
func adversarialInput(site, mid string) *engine.Input {
	in := noMatchInput(site)
	in.Observation.TargetExecutablePath = adversarialPath(mid)
	in.Observation.CommandLine = `"` + in.Observation.TargetExecutablePath + `"`
	return in
}

type globFixture struct {
	rs       *engine.RuleSet
	in       *engine.Input // does not match: decided by the org default
	matching *engine.Input // has the 'c': decided by the crafted rule
}

var globFixtures memo[int, *globFixture]

// getGlobFixture compiles the crafted rule alone (background = 0) or with
// the background-rule set of BenchmarkDecide (background = 10000), once per
// process, and checks both observations on both evaluators.
func getGlobFixture(tb testing.TB, background int) *globFixture {
	tb.Helper()
	return globFixtures.get(background, func() *globFixture { return buildGlobFixture(tb, background) })
}

func buildGlobFixture(tb testing.TB, background int) *globFixture {
	rules := []engine.Rule{adversarialRule()}
	site := ""
	if background > 0 {
		rules = append(generateRules(background), rules...)
		site = newRuleGen(background).sites[0]
	}
	rs, err := engine.Compile(rules, nil, engine.CompileOptions{})
	if err != nil {
		tb.Fatalf("compile: %v", err)
	}
	f := &globFixture{rs: rs, in: adversarialInput(site, ""), matching: adversarialInput(site, "c")}
	if n := len(f.in.Observation.TargetExecutablePath); n != adversarialPathLen {
		tb.Fatalf("path is %d characters, want %d", n, adversarialPathLen)
	}
	if err := engine.ValidateObservation(f.in.Flow, &f.in.Observation); err != nil {
		tb.Fatalf("observation invalid: %v", err)
	}
	if err := f.check(); err != nil {
		tb.Fatalf("background=%d: %v", background, err)
	}
	return f
}

func (f *globFixture) check() error {
	if len(f.rs.Issues()) != 0 {
		return fmt.Errorf("compile issues: %v", f.rs.Issues())
	}
	for _, ev := range evaluators {
		if d := ev.fn(f.rs, f.in); d.Error != "" || d.DecidedBy != engine.DecidedByOrgDefault || d.Outcome != engine.OutcomePending {
			return fmt.Errorf("%s: 4,000-character path without 'c': got %v (rule %q, decidedBy %q), want pending by org_default",
				ev.name, d, d.RuleID, d.DecidedBy)
		}
		// The rule is live and reached: the same path with a 'c' matches it.
		if d := ev.fn(f.rs, f.matching); d.Error != "" || d.RuleID != adversarialRuleID || d.Outcome != engine.OutcomeDenied {
			return fmt.Errorf("%s: 4,000-character path with 'c': got %v (rule %q), want denied by %q",
				ev.name, d, d.RuleID, adversarialRuleID)
		}
	}
	return nil
}

// BenchmarkGlobAdversarial measures one indexed decision (RuleSet.Decide)
// of a uac_intercept observation whose 4,000-character path meets the
// crafted glob and does not match it: rules=1 is the crafted rule alone,
// rules=10001 the 10,000-rule set of BenchmarkDecide plus the crafted rule.
// Compare with BenchmarkDecide/eval=indexed/rules=.../scenario=no_match of
// the same run.
func BenchmarkGlobAdversarial(b *testing.B) {
	for _, background := range []int{0, 10000} {
		b.Run(fmt.Sprintf("rules=%d", background+1), func(b *testing.B) {
			f := getGlobFixture(b, background) // compiled and checked outside the timer
			rs, in := f.rs, f.in
			b.ReportAllocs()
			var d engine.Decision
			for b.Loop() {
				d = rs.Decide(in)
			}
			sink = d
		})
	}
}

// TestGlobAdversarialFixture checks the crafted-glob fixture in a plain
// `go test` run (no timing).
func TestGlobAdversarialFixture(t *testing.T) {
	getGlobFixture(t, 0)
}
