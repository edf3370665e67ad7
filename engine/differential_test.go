package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/glob"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/elevate-pam/elevate/dsl/syntax"
)

// The differential tests hold the indexed native evaluator (Decide) to the
// reference semantics: every rule's CEL program, tried in order
// (DecideReference). Rule sets and observations are drawn from small pools
// of values so that matches, ties, shadowing, case and Unicode folding,
// negation, absent data, windows and sites all collide often.

var (
	dfSigners = []string{"Mozilla Corporation", "mozilla CORPORATION", "Vendor Inc.", "Vendor Inc. ",
		"Ünïcode GmbH", "üNÏCODE gmbh", "\u212aelvin Ltd", "kelvin ltd", "ſtrasse AG", "STRASSE AG"}
	dfHashes = []string{strings.Repeat("ab", 32), strings.Repeat("AB", 32), strings.Repeat("0f", 32), "abc"}
	dfThumbs = []string{strings.Repeat("1a", 32), strings.Repeat("1A", 32), strings.Repeat("2b", 32), "zz"}
	dfPaths  = []string{`C:\Users\sarah\Downloads\FirefoxSetup.exe`, `c:/users/bob/downloads/setup.exe`,
		`C:\Program Files\Vendor\app.exe`, `C:\Program Files`, `C:\Tools\a?b.exe`, `C:\Tools\axb.exe`,
		`D:\dir\x.exe`, `D:\dir\sub\x.exe`, `C:\Users\sarah\AppData\Local\Temp\x\y.msi`, `setup.exe`, `C:\ÄPFEL\Ü.exe`}
	dfGlobs = []string{`C:\Users\*\Downloads\*.exe`, `**\setup.exe`, `C:\Program Files\**`, `c:/program files/*/APP.exe`,
		`*`, `**`, `C:\Tools\a?b.exe`, `D:\dir\**\*.exe`, `D:\dir\*.exe`, `**.msi`, `C:\Users\*\AppData\Local\Temp\**`,
		`setup.exe`, `*.exe`, `C:\äpfel\*`, `**\*x*`, `C:\Program Files`}
	dfUsers   = []string{`acme\sarah`, `ACME\Sarah`, `sarah`, `bob`, `helper`}
	dfGroups  = []string{"Admins", "admins", "Helpdesk", "Straße", "STRASSE"}
	dfTools   = []string{"file_read", "FILE_READ", "shell_exec", "registry_write"}
	dfCmds    = []string{"/quiet", "/S", "--silent", "INSTALL"}
	dfCmdObs  = []string{"setup.exe /QUIET /norestart", "msiexec /i x.msi", "app --Silent", "install /s"}
	dfSites   = []string{"11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"}
	dfZones   = []string{"UTC", "Europe/London", "America/New_York", "Asia/Kolkata"}
	dfGroupID = []string{"aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002",
		"aaaaaaaa-0000-0000-0000-000000000003", "aaaaaaaa-0000-0000-0000-00000000000f"}
	dfBase = time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC) // spans the 2026 US and EU DST changes
)

func dfPick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }
func dfStr(r *rand.Rand, xs []string) *string {
	s := dfPick(r, xs)
	return &s
}
func dfInt(v int) *int { return &v }

func dfGroupsFor(r *rand.Rand) []SignerGroup {
	tp := func(s string) *string { return &s }
	return []SignerGroup{
		{ID: dfGroupID[0], Name: "cn-only", Signers: []SignerEntry{CNEntry("Mozilla Corporation"), CNEntry("Vendor Inc.")}},
		{ID: dfGroupID[1], Name: "pinned", Signers: []SignerEntry{
			{Thumbprint: tp(strings.Repeat("1a", 32))},
			{SubjectCN: tp("Ünïcode GmbH"), Thumbprint: tp(strings.Repeat("2B", 32))},
			{SubjectCN: tp("kelvin ltd"), Thumbprint: tp("not-hex")}, // dropped entirely
			{SubjectCN: tp("STRASSE AG"), Thumbprint: tp("  ")},      // CN entry
		}},
		{ID: dfGroupID[2], Name: "empty", Signers: nil},
		// dfGroupID[3] is referenced but missing
	}
}

func dfRule(r *rand.Rand, i int, lenient bool) Rule {
	ru := Rule{
		ID:       fmt.Sprintf("r%03d", r.IntN(1000)),
		Name:     fmt.Sprintf("rule-%d", i),
		Enabled:  r.IntN(8) != 0,
		Priority: r.IntN(4) * 10,
		Verdict:  dfPick(r, []Verdict{VerdictAutoApprove, VerdictAutoDeny, VerdictRequireApproval, VerdictIgnore}),
	}
	ru.ID = fmt.Sprintf("%s-%d", ru.ID, i) // unique, but not in input order
	if r.IntN(3) == 0 {
		ru.CreatedAt = dfBase.Add(time.Duration(r.IntN(3)) * time.Hour)
	}
	if r.IntN(4) == 0 {
		ru.SiteID = dfStr(r, dfSites)
	}
	if r.IntN(2) == 0 {
		ru.ApprovalDurationMinutes = dfInt(1 + r.IntN(600))
	}
	tool := r.IntN(4) == 0
	n := 1 + r.IntN(3)
	if lenient && r.IntN(15) == 0 {
		n = 0 // a criteria-less stored rule
	}
	withCond := r.IntN(3) == 0
	if withCond && r.IntN(3) == 0 {
		n = 0 // the condition is the rule's only criterion
	}
	for k := 0; k < n; k++ {
		switch c := r.IntN(9); {
		case tool && c < 4:
			ru.MatchToolName = dfStr(r, dfTools)
		case tool && c < 7:
			ru.MatchRiskTier = dfInt(r.IntN(5))
		case tool || c == 7:
			if r.IntN(2) == 0 {
				ru.MatchUser = dfStr(r, dfUsers)
			} else {
				ru.MatchAdGroup = dfStr(r, dfGroups)
			}
		default:
			switch r.IntN(7) {
			case 0:
				ru.MatchSigner = dfStr(r, dfSigners)
			case 1:
				h := strings.ToLower(dfPick(r, dfHashes[:3]))
				ru.MatchHash = &h
			case 2:
				ru.MatchSignerThumbprint = dfStr(r, dfThumbs[:3])
			case 3:
				ru.MatchPathGlob = dfStr(r, dfGlobs)
			case 4:
				ru.MatchParentImage = dfStr(r, dfGlobs)
			case 5:
				ru.MatchCommandLine = dfStr(r, dfCmds)
			case 6:
				ru.MatchSignerGroupID = dfStr(r, dfGroupID)
			}
		}
	}
	if withCond {
		c := dfCondition(r, tool, lenient)
		ru.Condition = &c
	}
	if ru.MatchSignerGroupID != nil && !lenient {
		ru.MatchSigner, ru.MatchSignerThumbprint = nil, nil
	}
	if ru.HasToolCriterion() && ru.Verdict == VerdictIgnore && !lenient {
		ru.Verdict = VerdictRequireApproval
	}
	for _, k := range NegateKeys {
		if r.IntN(6) == 0 {
			ru.MatchNegate = append(ru.MatchNegate, k)
		}
	}
	if r.IntN(4) == 0 {
		hm := func() string { return fmt.Sprintf("%02d:%02d", r.IntN(24), r.IntN(4)*15) }
		w := &TimeWindow{Start: hm(), End: hm(), Timezone: dfStr(r, dfZones)}
		if r.IntN(3) == 0 {
			w.Timezone = nil
		}
		for d := 0; d < 7; d++ {
			if r.IntN(3) == 0 {
				w.Days = append(w.Days, d)
			}
		}
		if lenient && r.IntN(5) == 0 {
			w.Start = "25:00"
		}
		if lenient && r.IntN(8) == 0 {
			w.Timezone = dfStr(r, []string{"Mars/Olympus", "", "america/chicago"})
		}
		ru.TimeWindow = w
	}
	if lenient && r.IntN(25) == 0 {
		ru.Verdict = "approve" // not a verdict: poisoned
	}
	if lenient && r.IntN(25) == 0 {
		ru.ApprovalDurationMinutes = dfInt(5000)
	}
	if lenient && r.IntN(20) == 0 {
		h := "NOT-A-HASH"
		ru.MatchHash = &h
	}
	if lenient && r.IntN(12) == 0 { // stored empty criteria and sites
		e := ""
		switch r.IntN(5) {
		case 0:
			ru.MatchCommandLine = &e
		case 1:
			ru.MatchUser = &e
		case 2:
			ru.MatchToolName = &e
		case 3:
			ru.MatchAdGroup = &e
		case 4:
			ru.SiteID = &e
		}
	}
	return ru
}

// Words a random condition compares: executable rules use the executable
// and neutral words, tool rules the tool and neutral words, lenient rule
// sets any (a mixed shape is invalid but still evaluated).
var (
	dfExecWords = []string{"signer", "thumbprint", "hash", "path", "parent", "cmdline", "user", "group"}
	dfToolWords = []string{"tool", "risk", "user", "group"}
	dfAllWords  = syntax.Criteria
	dfGroupRefs = []string{"cn-only", "PINNED", "empty", "missing", dfGroupID[0], strings.ToUpper(dfGroupID[1]), dfGroupID[2], dfGroupID[3]}
	dfCELAtoms  = []string{
		`has(obs.commandLine) && obs.commandLine.size() > 3`,
		`obs.commandLine.size() > 12`,
		`obs.riskTier >= 2`,
		`at.getHours() < 12`,
		`at.getDayOfWeek() == 1 || obs.toolName == "file_read"`,
		`obs.adGroups.exists(g, g.startsWith("A"))`,
		`obs.adGroups.size() == 0`,
		`obs.targetExecutablePath.endsWith(".exe") // a comment ) || true`,
		"obs.subjectUsername.contains('sarah') // line one\n|| obs['subjectUsername'] == 'bob'",
		`!has(obs.targetExecutableSigner)`,
		`has(obs.parentImage) ? obs.parentImage.contains("Users") : at.getMinutes() < 30`,
	}
	dfCELErrors  = []string{`dyn(obs.toolName) > 1`, `dyn(obs.parentImage) + 1 > 2`} // type errors at run time
	dfCELInvalid = []string{`obs.nope`, `obs.commandLine`, `1 +`, `has(obs.siteId)`} // compile errors: lenient only
	// Handwritten conditions: comments, odd spacing, raw strings.
	dfExecConds = []string{
		"signer in signers(\"cn-only\") # trusted\n or hash == \"" + strings.Repeat("ab", 32) + "\"",
		"not (path ~ `C:\\Program Files\\**` or parent ~ `**\\setup.exe`) and cmdline contains \"/S\"",
		"(user==`ACME\\Sarah`)or(group!=\"admins\")",
		"not not signer != \"Vendor Inc. \"",
		"thumbprint in [\"" + strings.Repeat("1A", 32) + "\", \"" + strings.Repeat("2b", 32) + "\"] or not signer in signers(\"pinned\")",
	}
	dfToolConds = []string{
		"tool in [\"file_read\", \"SHELL_EXEC\"] and not risk in [0, 1]",
		"risk == 0 or (user == \"helper\" and tool != \"registry_write\")",
		"not (tool == \"file_read\" or group == \"Admins\")",
	}
)

// dfCondition returns a random condition for a rule of the given shape:
// usually a random tree printed by syntax.FormatExpr, sometimes a
// handwritten one.
func dfCondition(r *rand.Rand, tool, lenient bool) string {
	if r.IntN(6) == 0 {
		if tool {
			return dfPick(r, dfToolConds)
		}
		return dfPick(r, dfExecConds)
	}
	words := dfExecWords
	if tool {
		words = dfToolWords
	}
	if lenient && r.IntN(3) == 0 {
		words = dfAllWords
	}
	return syntax.FormatExpr(dfCondExpr(r, 3, words, lenient))
}

func dfCondExpr(r *rand.Rand, depth int, words []string, lenient bool) syntax.Expr {
	if depth > 0 && r.IntN(3) != 0 {
		switch r.IntN(5) {
		case 0:
			return &syntax.Not{X: dfCondExpr(r, depth-1, words, lenient)}
		case 1:
			return &syntax.Paren{X: dfCondExpr(r, depth-1, words, lenient)}
		default:
			op := "and"
			if r.IntN(2) == 0 {
				op = "or"
			}
			return &syntax.Binary{Op: op, X: dfCondExpr(r, depth-1, words, lenient), Y: dfCondExpr(r, depth-1, words, lenient)}
		}
	}
	if r.IntN(7) == 0 {
		src := dfPick(r, dfCELAtoms)
		switch {
		case r.IntN(30) == 0:
			src = dfPick(r, dfCELErrors)
		case lenient && r.IntN(15) == 0:
			src = dfPick(r, dfCELInvalid)
		}
		return &syntax.CelAtom{Src: &syntax.Lit{Kind: syntax.String, Value: src}}
	}
	return dfCompare(r, dfPick(r, words), lenient)
}

// dfCompare is a random comparison of one criterion word.
func dfCompare(r *rand.Rand, word string, lenient bool) *syntax.Compare {
	str := func(v string) *syntax.Lit { return &syntax.Lit{Kind: syntax.String, Value: v} }
	value := func() *syntax.Lit {
		var pool []string
		switch word {
		case "risk":
			n := r.IntN(5)
			if lenient && r.IntN(10) == 0 {
				n = 7
			}
			return &syntax.Lit{Kind: syntax.Int, Text: strconv.Itoa(n)}
		case "signer":
			pool = dfSigners
		case "thumbprint":
			pool = dfThumbs[:3]
			if lenient {
				pool = append(dfThumbs[:4:4], "  ")
			}
		case "hash":
			pool = dfHashes[:3]
			if lenient {
				pool = dfHashes
			}
		case "path", "parent":
			pool = dfGlobs
		case "cmdline":
			pool = dfCmds
		case "user":
			pool = dfUsers
		case "group":
			pool = dfGroups
		case "tool":
			pool = dfTools
		}
		if lenient && r.IntN(20) == 0 {
			return str("") // stored empty values: invalid, but a comparison
		}
		return str(dfPick(r, pool))
	}
	c := &syntax.Compare{Field: &syntax.Lit{Kind: syntax.Ident, Text: word}}
	switch word {
	case "path", "parent":
		c.Op = dfPick(r, []string{"~", "!~"})
	case "cmdline":
		c.Op = "contains"
	default:
		c.Op = dfPick(r, []string{"==", "==", "!=", "in"})
	}
	switch {
	case c.Op != "in":
		c.Value = value()
	case word == "signer" && r.IntN(2) == 0:
		c.Value = &syntax.SignersRef{Name: str(dfPick(r, dfGroupRefs))}
	default:
		l := &syntax.List{}
		for k := 1 + r.IntN(3); k > 0; k-- {
			l.Elems = append(l.Elems, value())
		}
		c.Value = l
	}
	return c
}

func dfObservation(r *rand.Rand) (FlowType, Observation, time.Time) {
	flow := dfPick(r, []FlowType{FlowUAC, FlowUAC, FlowToolAct, FlowJITAdmin})
	var o Observation
	maybe := func(xs []string) string {
		if r.IntN(4) == 0 {
			return ""
		}
		return dfPick(r, xs)
	}
	o.SubjectUsername = dfPick(r, dfUsers)
	o.TargetExecutablePath = maybe(dfPaths)
	o.TargetExecutableHash = maybe(dfHashes)
	o.TargetExecutableSigner = maybe(dfSigners)
	o.TargetExecutableSignerThumbprint = maybe(dfThumbs)
	o.ParentImage = maybe(dfPaths)
	o.CommandLine = maybe(dfCmdObs)
	switch r.IntN(3) {
	case 0:
		o.AdGroups = []string{}
	case 1:
		o.AdGroups = []string{dfPick(r, dfGroups), dfPick(r, dfGroups)}
	}
	o.ToolName = maybe(dfTools)
	if r.IntN(4) != 0 {
		o.RiskTier = dfInt(r.IntN(5))
	}
	if r.IntN(2) == 0 {
		o.RequestedDurationMinutes = dfInt(1 + r.IntN(1000))
	}
	if r.IntN(3) != 0 {
		o.SiteID = dfPick(r, dfSites)
	}
	at := dfBase.Add(time.Duration(r.IntN(60*24*40)) * time.Minute).Add(time.Duration(r.IntN(60)) * time.Second)
	return flow, o, at
}

var dfIgnoreExplain = cmpopts.IgnoreFields(Decision{}, "Explain")

// dfCheck builds one random rule set and compares both evaluators on many
// observations; it returns how many decisions were decided by a rule.
func dfCheck(t testing.TB, seed uint64, nRules, nObs int) int {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	lenient := r.IntN(3) == 0
	rules := make([]Rule, nRules)
	for i := range rules {
		rules[i] = dfRule(r, i, lenient)
	}
	rs, err := Compile(rules, dfGroupsFor(r), CompileOptions{Lenient: true})
	if err != nil {
		t.Fatalf("seed %d: compile: %v", seed, err)
	}
	var org OrgConfig
	if r.IntN(2) == 0 {
		org.DefaultUnmatchedVerdict = VerdictAutoDeny
	}
	byRule := 0
	for k := 0; k < nObs; k++ {
		flow, o, at := dfObservation(r)
		in := &Input{Flow: flow, Observation: o, At: at, Org: org}
		fast, ref := rs.Decide(in), rs.DecideReference(in)
		if diff := cmp.Diff(dfErrNorm(ref), dfErrNorm(fast), dfIgnoreExplain); diff != "" {
			t.Fatalf("seed %d obs %d: indexed and CEL evaluators disagree (-cel +indexed):\n%s\nflow %s at %s\nobservation %+v\nrules:\n%s",
				seed, k, diff, flow, at, o, dfDump(rs))
		}
		if fast.DecidedBy == DecidedByRule {
			byRule++
		}
		in.Explain = true
		ex := rs.Decide(in)
		if diff := cmp.Diff(fast, ex, dfIgnoreExplain); diff != "" {
			t.Fatalf("seed %d obs %d: explain changed the decision:\n%s", seed, k, diff)
		}
		dfCheckTrace(t, seed, ex)
		in.Explain = false
		sd, winner, sh := rs.DecideShadowed(in, nil)
		if diff := cmp.Diff(fast, sd); diff != "" {
			t.Fatalf("seed %d obs %d: DecideShadowed changed the decision:\n%s", seed, k, diff)
		}
		if want := int32(-1); sd.DecidedBy == DecidedByRule && sd.Error == "" {
			if rs.rules[winner].rule.ID != sd.RuleID {
				t.Fatalf("seed %d obs %d: winner %d is not rule %s", seed, k, winner, sd.RuleID)
			}
		} else if winner != want {
			t.Fatalf("seed %d obs %d: winner %d without a deciding rule", seed, k, winner)
		}
		dfCheckShadowed(t, seed, ex, sh)
	}
	return byRule
}

// dfCheckShadowed: the rules DecideShadowed reports are exactly those the
// trace calls shadowed because they would match.
func dfCheckShadowed(t testing.TB, seed uint64, ex Decision, sh []int32) {
	var want []int32
	i := int32(0)
	for _, e := range ex.Explain {
		if e.Stage != StageRule {
			continue
		}
		if e.Result == ResultShadowed && strings.HasPrefix(e.Detail, "would match") {
			want = append(want, i)
		}
		i++
	}
	if ex.Error != "" {
		want = nil
	}
	if !slices.Equal(want, sh) {
		t.Fatalf("seed %d: shadowed rules %v, the trace says %v (%v)", seed, sh, want, ex)
	}
}

// dfErrNorm words a run-time error the same way on both evaluators: the
// native path says where it failed ("condition: …"), the reference path
// that the rule's program failed ("CEL evaluation: …").
func dfErrNorm(d Decision) Decision {
	d.Error = strings.Replace(d.Error, ": CEL evaluation: ", ": condition: ", 1)
	return d
}

// dfCheckTrace: exactly the deciding rule is "matched" in the trace, and no
// rule before it is matched or shadowed.
func dfCheckTrace(t testing.TB, seed uint64, d Decision) {
	matched := 0
	for _, e := range d.Explain {
		if e.Stage != StageRule {
			continue
		}
		if e.Result == ResultMatched {
			matched++
			if d.DecidedBy != DecidedByRule || e.RuleName != d.RuleName || e.RuleID != d.RuleID {
				t.Fatalf("seed %d: trace says %q matched but the decision is %v", seed, e.RuleName, d)
			}
		}
		if e.Result == ResultShadowed && matched == 0 && d.Error == "" {
			t.Fatalf("seed %d: %q shadowed before any rule matched: %v", seed, e.RuleName, d)
		}
	}
	if want := 0; d.DecidedBy == DecidedByRule {
		want = 1
		if matched != want {
			t.Fatalf("seed %d: %d matched entries in the trace for %v", seed, matched, d)
		}
	}
}

func dfDump(rs *RuleSet) string {
	var b strings.Builder
	for i := range rs.rules {
		r := &rs.rules[i]
		fmt.Fprintf(&b, "  %d %s %q enabled=%v site=%q verdict=%s poison=%q\n     %s\n", i, r.rule.ID, r.rule.Name,
			r.rule.Enabled, r.site, r.rule.Verdict, r.poison, r.celSrc)
	}
	return b.String()
}

func TestDifferentialIndexedVsCEL(t *testing.T) {
	seeds, obs := 400, 200
	if testing.Short() {
		seeds = 60
	}
	byRule := 0
	for s := 0; s < seeds; s++ {
		byRule += dfCheck(t, uint64(s), 1+s%40, obs)
	}
	// The pools are small on purpose: make sure rules really do decide a
	// good share of the observations, or the test proves little.
	if total := seeds * obs; byRule < total/10 {
		t.Fatalf("only %d of %d decisions came from a rule; the generator has drifted", byRule, total)
	}
}

// NormalizeRule never changes what a rule matches: each random rule is
// compiled as written (without normalisation), in its stored form, and as
// written through Compile (which normalises), and all three decide random
// observations alike through both evaluators.
func TestDifferentialNormalizePreservesDecisions(t *testing.T) {
	seeds, rulesPer, obs := 300, 6, 60
	if testing.Short() {
		seeds = 50
	}
	split, byRule := 0, 0
	for s := 0; s < seeds; s++ {
		seed := uint64(s)
		r := rand.New(rand.NewPCG(seed, 0x6e6f726d))
		lenient := r.IntN(3) == 0
		groups := dfGroupsFor(r)
		for i := 0; i < rulesPer; i++ {
			ru := dfRule(r, i, lenient)
			norm := NormalizeRule(ru)
			if again := NormalizeRule(norm); !cmp.Equal(norm, again) {
				t.Fatalf("seed %d rule %d: NormalizeRule is not idempotent:\n%s", seed, i, cmp.Diff(norm, again))
			}
			if ru.Condition != nil && (norm.Condition == nil || *norm.Condition != *ru.Condition) {
				split++
			}
			raw := condCompileRaw(t, []Rule{ru}, groups)
			stored, err := Compile([]Rule{norm}, groups, CompileOptions{Lenient: true})
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			compiled, err := Compile([]Rule{ru}, groups, CompileOptions{Lenient: true})
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			// A stored rule with an invalid condition is poisoned by Compile
			// (reaching it fails safe): only the raw evaluators compare.
			poisoned := conditionInvalid(ValidateRule(&ru))
			for k := 0; k < obs; k++ {
				flow, o, at := dfObservation(r)
				in := &Input{Flow: flow, Observation: o, At: at}
				want := semGot(raw.DecideReference(in))
				ds := map[string]Decision{"raw indexed": raw.Decide(in)}
				if !poisoned {
					ds["stored"], ds["stored reference"] = stored.Decide(in), stored.DecideReference(in)
					ds["compiled"], ds["compiled reference"] = compiled.Decide(in), compiled.DecideReference(in)
				} else if d := compiled.Decide(in); d.Outcome == OutcomeAutoApproved && d.Outcome != want.Outcome {
					t.Fatalf("seed %d rule %d: a poisoned rule decided %v", seed, i, d)
				}
				for name, d := range ds {
					if got := semGot(d); got != want {
						cond := "<nil>"
						if ru.Condition != nil {
							cond = *ru.Condition
						}
						t.Fatalf("seed %d rule %d obs %d: %s = %v, rule as written (reference) = %v\ncondition %q\nrule %+v\nstored %+v\nflow %s observation %+v",
							seed, i, k, name, got, want, cond, ru, norm, flow, o)
					}
				}
				if want.DecidedBy == DecidedByRule {
					byRule++
				}
			}
		}
	}
	if split < seeds/4 || byRule < seeds*rulesPer*obs/50 {
		t.Fatalf("only %d conditions split and %d decisions by a rule: the generator has drifted", split, byRule)
	}
}

func FuzzDifferential(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42, 1 << 40} {
		f.Add(s, uint8(12))
	}
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		dfCheck(t, seed, int(n%64), 30)
	})
}

// FuzzGlob holds the hot-path matcher to the dynamic-programming reference
// on arbitrary globs and paths, and both to gobwas/glob (with '/' as the
// separator and every literal quoted) where the input is small enough for a
// backtracking matcher to finish.
func FuzzGlob(f *testing.F) {
	for _, g := range dfGlobs {
		for _, p := range dfPaths {
			f.Add(g, p)
		}
	}
	f.Add("a*a*a*a*a*a*a*a*b", strings.Repeat("a", 200))
	f.Add(`{a,b}[x]\?`, `{a,b}[x]/?`)
	f.Fuzz(func(t *testing.T, glob, path string) {
		want := globMatchDP(glob, path)
		g, err := compileGlob(glob)
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", glob, err)
		}
		if got := g.match(normPath(path)); got != want {
			t.Fatalf("glob %q path %q: compiled %v, reference %v", glob, path, got, want)
		}
		if len(path) <= 64 && strings.Count(glob, "*") <= 6 {
			if got := gobwasMatch(t, glob, path); got != want {
				t.Fatalf("glob %q path %q: gobwas %v, reference %v", glob, path, got, want)
			}
		}
	})
}

// FuzzFoldKey: equal index keys exactly when strings.EqualFold says equal.
func FuzzFoldKey(f *testing.F) {
	for _, s := range dfSigners {
		f.Add(s, strings.ToUpper(s))
	}
	f.Add("\u212a", "k")
	f.Add("\xff", "\xfe")
	f.Fuzz(func(t *testing.T, a, b string) {
		if got, want := foldKey(a) == foldKey(b), strings.EqualFold(a, b); got != want {
			t.Fatalf("foldKey(%q)=%q foldKey(%q)=%q, EqualFold=%v", a, foldKey(a), b, foldKey(b), want)
		}
	})
}

// gobwasMatch matches with gobwas/glob: the dialect's literals quoted, runs
// of two or more stars as '**', '/' as the only separator.
func gobwasMatch(t *testing.T, globText, path string) bool {
	var b strings.Builder
	for _, tok := range tokenizeGlob(normPath(globText)) {
		switch tok.star {
		case 0:
			b.WriteString(glob.QuoteMeta(tok.lit))
		case 1:
			b.WriteString("*")
		default:
			b.WriteString("**")
		}
	}
	g, err := glob.Compile(b.String(), '/')
	if err != nil {
		t.Fatalf("gobwas compile of %q: %v", b.String(), err)
	}
	return g.Match(normPath(path))
}
