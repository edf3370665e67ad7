package benchmarks

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
)

// ---------------------------------------------------------------------------
// Synthetic rule generator
// ---------------------------------------------------------------------------

// The generator is fully deterministic: the same n always yields the same
// rules (math/rand/v2 PCG with a fixed seed, no map iteration, no clock).
const (
	genSeedHi = 0x454c45564154455f // "ELEVATE_"
	genSeedLo = 0x42454e4348303031 // "BENCH001"
)

// benchSizes are the rule-set sizes BenchmarkDecide measures.
var benchSizes = []int{10, 100, 1000, 10000}

// evalAt is the fixed evaluation instant of every benchmark decision:
// Tuesday 10 March 2026, 14:30 UTC (inside business hours in Europe, before
// them on the US west coast, at night in Asia-Pacific), so time-window rules
// are a mix of active and inactive.
var evalAt = time.Date(2026, 3, 10, 14, 30, 0, 0, time.UTC)

// The late-matching target rule: a signer rule for a vendor no other rule
// mentions, with the highest priority number, so it is last in evaluation
// order.
const (
	targetRuleID   = "b3f1c0de-7a11-4e57-9c1a-7a46e7000001"
	targetVendorCN = "Northwind Traders Deployment Services Ltd"
	targetPriority = engine.MaxRulePriority
	observedUser   = `ACME\jdoe`
)

// observedGroups are the AD groups of the observed user; no generated rule
// names them.
var observedGroups = []string{`ACME\Domain Users`, `ACME\Finance`, `ACME\VPN-Users`}

// Name material. The vendor pool combines these with a running number, so
// it grows with n without repeating.
var (
	vendorStems = []string{"Contoso", "Fabrikam", "Adatum", "Litware", "Tailspin", "Wingtip", "Proseware",
		"Woodgrove", "Fourth Coffee", "Alpine Ski", "Blue Yonder", "Coho", "Lamna", "Margie", "Trey", "Wide World"}
	vendorKinds    = []string{"Software", "Systems", "Technologies", "Labs", "Networks", "Digital", "Solutions"}
	vendorSuffixes = []string{"Inc.", "Ltd", "GmbH", "LLC", "Corporation", "B.V.", "S.A."}
	firstNames     = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar", "peggy", "trent", "victor", "wendy"}
	lastNames      = []string{"smith", "jones", "garcia", "miller", "davis", "lopez", "wilson", "moore", "taylor", "thomas", "martin", "lee"}
	groupDepts     = []string{"IT", "Engineering", "Sales", "HR", "Support", "Design", "Ops", "Legal", "Research"}
	groupRoles     = []string{"Admins", "Developers", "PowerUsers", "Installers", "Helpdesk", "Contractors"}
	toolNames      = []string{"shell.exec", "fs.write", "fs.delete", "registry.write", "service.restart", "package.install",
		"net.firewall", "process.kill", "user.create", "scheduled_task.create", "driver.install", "bitlocker.suspend"}
	ianaZones = []string{"Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago",
		"America/Los_Angeles", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney", "UTC"}
	exeNames = []string{"setup", "install", "update", "updater", "launcher", "agent", "helper", "svc", "client", "console"}
)

type vendor struct {
	cn  string // certificate subject CN
	dir string // install directory name under Program Files
}

type ruleGen struct {
	rng     *rand.Rand
	vendors []vendor
	users   []string
	groups  []string
	sites   []string
	tools   []string
	seq     int
}

func newRuleGen(n int) *ruleGen {
	g := &ruleGen{rng: rand.New(rand.NewPCG(genSeedHi, genSeedLo))}
	// ~40% of the rules are signer rules; keep about three per vendor so the
	// signer buckets stay small however large the set grows.
	nv := max(4, n*4/10/3)
	for i := range nv {
		stem := vendorStems[i%len(vendorStems)]
		kind := vendorKinds[g.rng.IntN(len(vendorKinds))]
		suffix := vendorSuffixes[g.rng.IntN(len(vendorSuffixes))]
		name := fmt.Sprintf("%s %s %d", stem, kind, i)
		g.vendors = append(g.vendors, vendor{cn: name + " " + suffix, dir: name})
	}
	for i := range max(8, n/20) {
		f, l := firstNames[g.rng.IntN(len(firstNames))], lastNames[g.rng.IntN(len(lastNames))]
		g.users = append(g.users, fmt.Sprintf(`ACME\%s.%s%d`, f, l, i))
	}
	for i := range max(6, n/50) {
		d, r := groupDepts[g.rng.IntN(len(groupDepts))], groupRoles[g.rng.IntN(len(groupRoles))]
		g.groups = append(g.groups, fmt.Sprintf(`ACME\%s-%s-%d`, d, r, i))
	}
	for i := range 3 {
		g.sites = append(g.sites, g.uuid(uint64(i)))
	}
	g.tools = toolNames
	return g
}

func (g *ruleGen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

func (g *ruleGen) hex64() string { return hex64(g.rng) }

// hex64 draws a 64-hex-digit string (a SHA-256 or thumbprint) from r.
func hex64(r *rand.Rand) string {
	return fmt.Sprintf("%016x%016x%016x%016x", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
}

// uuid returns a version-4-shaped UUID from the generator's stream.
func (g *ruleGen) uuid(salt uint64) string {
	a, b := g.rng.Uint64()^salt, g.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		a>>32, (a>>16)&0xffff, a&0xfff, 0x8000|(b>>48)&0x3fff, b&0xffffffffffff)
}

func ptr[T any](v T) *T { return &v }

// verdict draws a verdict; tool-action rules cannot ignore.
func (g *ruleGen) verdict(tool bool) engine.Verdict {
	for {
		switch x := g.rng.IntN(100); {
		case x < 35:
			return engine.VerdictAutoApprove
		case x < 65:
			return engine.VerdictRequireApproval
		case x < 90:
			return engine.VerdictAutoDeny
		case !tool:
			return engine.VerdictIgnore
		}
	}
}

func (g *ruleGen) timeWindow() *engine.TimeWindow {
	w := &engine.TimeWindow{Start: "08:00", End: "18:00"}
	switch g.rng.IntN(4) {
	case 0:
		w.Start, w.End = "22:00", "06:30" // overnight maintenance
	case 1:
		w.Start, w.End = fmt.Sprintf("%d:%02d", 6+g.rng.IntN(4), 15*g.rng.IntN(4)), fmt.Sprintf("%d:00", 16+g.rng.IntN(6))
	}
	if g.rng.IntN(2) == 0 {
		w.Days = []int{1, 2, 3, 4, 5}
	}
	if z := g.rng.IntN(len(ianaZones) + 1); z < len(ianaZones) {
		w.Timezone = ptr(ianaZones[z])
	} // else: no zone, UTC
	return w
}

// pathGlob returns one of the four realistic Windows glob shapes.
func (g *ruleGen) pathGlob(n int) string {
	num := func() int { return g.rng.IntN(max(100, 2*n)) }
	switch g.rng.IntN(4) {
	case 0:
		return fmt.Sprintf(`C:\Program Files\Vendor%d\**`, num())
	case 1:
		return fmt.Sprintf(`C:\Users\*\AppData\Local\Vendor%d\*.exe`, num())
	case 2:
		return fmt.Sprintf(`**\tool%d.exe`, num())
	default:
		return fmt.Sprintf(`C:\Tools\App%d\bin\*.exe`, num())
	}
}

type ruleCategory uint8

const (
	catSigner ruleCategory = iota
	catHash
	catPath
	catOther // user, AD group or tool-action rules
)

// categories deals m categories in exact proportions 40/20/30/10 and
// shuffles them, so even small sets have the intended mix.
func (g *ruleGen) categories(m int) []ruleCategory {
	cats := make([]ruleCategory, 0, m)
	nSigner, nHash, nPath := m*4/10, m*2/10, m*3/10
	for range nSigner {
		cats = append(cats, catSigner)
	}
	for range nHash {
		cats = append(cats, catHash)
	}
	for range nPath {
		cats = append(cats, catPath)
	}
	for len(cats) < m {
		cats = append(cats, catOther)
	}
	g.rng.Shuffle(len(cats), func(i, j int) { cats[i], cats[j] = cats[j], cats[i] })
	return cats
}

func (g *ruleGen) rule(n int, cat ruleCategory) engine.Rule {
	g.seq++
	r := engine.Rule{
		ID:        g.uuid(0),
		Enabled:   g.rng.IntN(50) != 0,                // ~2% disabled
		Priority:  g.rng.IntN(engine.MaxRulePriority), // 0..99,999: below the target
		CreatedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(g.rng.IntN(2*365*24)) * time.Hour),
	}
	tool := false
	switch cat {
	case catSigner:
		v := g.vendors[g.rng.IntN(len(g.vendors))]
		r.MatchSigner = ptr(v.cn)
		r.Name = "Trust " + v.cn
		switch x := g.rng.IntN(10); {
		case x < 2: // narrowed to one user
			r.MatchUser = ptr(g.pick(g.users))
			r.Name += " for one user"
		case x < 4: // narrowed to (or, negated, away from) its install dir
			r.MatchPathGlob = ptr(`C:\Program Files\` + v.dir + `\**`)
			r.Name += " in its install dir"
			if x == 3 && g.rng.IntN(3) == 0 {
				r.MatchNegate = []engine.NegateKey{engine.NegPathGlob}
				r.Name = "Signed by " + v.cn + " outside its install dir"
			}
		}
	case catHash:
		r.MatchHash = ptr(g.hex64())
		r.Name = fmt.Sprintf("Known binary %s.exe", g.pick(exeNames))
	case catPath:
		r.MatchPathGlob = ptr(g.pathGlob(n))
		r.Name = "Path " + *r.MatchPathGlob
	case catOther:
		switch x := g.rng.IntN(10); {
		case x < 3:
			r.MatchUser = ptr(g.pick(g.users))
			r.Name = "User " + *r.MatchUser
		case x < 6:
			r.MatchAdGroup = ptr(g.pick(g.groups))
			r.Name = "Group " + *r.MatchAdGroup
		default:
			tool = true
			switch g.rng.IntN(3) {
			case 0:
				r.MatchToolName = ptr(g.pick(g.tools))
			case 1:
				r.MatchRiskTier = ptr(g.rng.IntN(5))
			default:
				r.MatchToolName = ptr(g.pick(g.tools))
				r.MatchRiskTier = ptr(g.rng.IntN(5))
			}
			r.Name = "AI tool action"
			if r.MatchToolName != nil {
				r.Name += " " + *r.MatchToolName
			}
			if g.rng.IntN(3) == 0 {
				r.MatchUser = ptr(g.pick(g.users))
			}
		}
	}
	r.Name = fmt.Sprintf("%s #%d", r.Name, g.seq)
	r.Verdict = g.verdict(tool)
	if r.Verdict == engine.VerdictAutoApprove && g.rng.IntN(2) == 0 {
		r.ApprovalDurationMinutes = ptr([]int{15, 30, 60, 240, 480}[g.rng.IntN(5)])
	}
	if g.rng.IntN(10) == 0 {
		r.TimeWindow = g.timeWindow()
	}
	if g.rng.IntN(40) == 0 {
		r.SiteID = ptr(g.sites[g.rng.IntN(len(g.sites))])
	}
	return r
}

// generateRules returns n valid rules: n-1 background rules in the
// 40/20/30/10 mix with priorities in 0..99,999, and the target signer rule
// with priority 100,000 (last in evaluation order). The slice is shuffled so
// the target is not last in input order either.
func generateRules(n int) []engine.Rule {
	if n < 1 {
		panic("generateRules: n must be positive")
	}
	g := newRuleGen(n)
	rules := make([]engine.Rule, 0, n)
	for _, cat := range g.categories(n - 1) {
		rules = append(rules, g.rule(n, cat))
	}
	rules = append(rules, engine.Rule{
		ID:                      targetRuleID,
		Name:                    "Northwind deployment tooling (late match target)",
		Enabled:                 true,
		Priority:                targetPriority,
		Verdict:                 engine.VerdictAutoApprove,
		ApprovalDurationMinutes: ptr(30),
		MatchSigner:             ptr(targetVendorCN),
		CreatedAt:               time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
	})
	g.rng.Shuffle(len(rules), func(i, j int) { rules[i], rules[j] = rules[j], rules[i] })
	return rules
}

// ---------------------------------------------------------------------------
// Observations
// ---------------------------------------------------------------------------

// lateMatchInput is a UAC prompt for a signed updater in Program Files whose
// only matching rule is the target signer rule.
func lateMatchInput(site string) *engine.Input {
	o := rand.New(rand.NewPCG(1, 2))
	path := `C:\Program Files\Northwind Traders\Deploy\nwdeploy.exe`
	return &engine.Input{
		Flow: engine.FlowUAC,
		At:   evalAt,
		Observation: engine.Observation{
			SubjectUsername:                  observedUser,
			TargetExecutablePath:             path,
			TargetExecutableHash:             hex64(o),
			TargetExecutableSigner:           targetVendorCN,
			TargetExecutableSignerThumbprint: hex64(o),
			ParentImage:                      `C:\Windows\explorer.exe`,
			CommandLine:                      `"` + path + `" /quiet /norestart`,
			AdGroups:                         observedGroups,
			SiteID:                           site,
		},
	}
}

// noMatchInput is a UAC prompt for an unknown installer in the user's
// Downloads folder, signed by a publisher no rule mentions: the org default
// decides.
func noMatchInput(site string) *engine.Input {
	o := rand.New(rand.NewPCG(3, 4))
	path := `C:\Users\jdoe\Downloads\OrbitSync-Setup-x64.exe`
	return &engine.Input{
		Flow: engine.FlowUAC,
		At:   evalAt,
		Observation: engine.Observation{
			SubjectUsername:                  observedUser,
			TargetExecutablePath:             path,
			TargetExecutableHash:             hex64(o),
			TargetExecutableSigner:           "Orbit Sync Software Ltd",
			TargetExecutableSignerThumbprint: hex64(o),
			ParentImage:                      `C:\Program Files\Mozilla Firefox\firefox.exe`,
			CommandLine:                      `"` + path + `"`,
			AdGroups:                         observedGroups,
			SiteID:                           site,
		},
	}
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

type fixture struct {
	n      int
	rules  []engine.Rule
	rs     *engine.RuleSet
	late   *engine.Input
	noMtch *engine.Input
}

// memo builds each fixture once per process: every -count repetition and
// every evaluator shares it.
type memo[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]V
}

func (c *memo[K, V]) get(k K, build func() V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		return v
	}
	if c.m == nil {
		c.m = map[K]V{}
	}
	v := build()
	c.m[k] = v
	return v
}

var fixtures memo[int, *fixture]

// getFixture generates and compiles the n-rule set once per process (every
// -count repetition and both evaluators share it) and checks it.
func getFixture(tb testing.TB, n int) *fixture {
	tb.Helper()
	return fixtures.get(n, func() *fixture { return buildFixture(tb, n) })
}

func buildFixture(tb testing.TB, n int) *fixture {
	rules := generateRules(n)
	rs, err := engine.Compile(rules, nil, engine.CompileOptions{})
	if err != nil {
		tb.Fatalf("compile %d rules: %v", n, err)
	}
	// The observations come from the generator's first site, so the rules
	// scoped to that site take part and those scoped to the others do not.
	site := newRuleGen(n).sites[0]
	f := &fixture{n: n, rules: rules, rs: rs, late: lateMatchInput(site), noMtch: noMatchInput(site)}
	if err := f.check(); err != nil {
		tb.Fatalf("rules=%d: %v", n, err)
	}
	return f
}

type evaluator struct {
	name string
	fn   func(*engine.RuleSet, *engine.Input) engine.Decision
}

var evaluators = []evaluator{
	{"indexed", (*engine.RuleSet).Decide},
	{"linear_cel", (*engine.RuleSet).DecideReference},
}

func checkLate(ev evaluator, f *fixture) error {
	d := ev.fn(f.rs, f.late)
	if d.Error != "" || d.DecidedBy != engine.DecidedByRule || d.RuleID != targetRuleID || d.Outcome != engine.OutcomeAutoApproved {
		return fmt.Errorf("%s late_match: got %v (rule %q, decidedBy %q), want auto_approved by rule %q",
			ev.name, d, d.RuleID, d.DecidedBy, targetRuleID)
	}
	return nil
}

func checkNoMatch(ev evaluator, f *fixture) error {
	d := ev.fn(f.rs, f.noMtch)
	if d.Error != "" || d.DecidedBy != engine.DecidedByOrgDefault || d.RuleID != "" || d.Outcome != engine.OutcomePending {
		return fmt.Errorf("%s no_match: got %v (rule %q, decidedBy %q), want pending by org_default", ev.name, d, d.RuleID, d.DecidedBy)
	}
	return nil
}

// check verifies the scenario expectations on both evaluators: the target
// rule is last in evaluation order and decides the late-match observation
// (so no earlier rule matches it), and nothing matches the no-match one.
func (f *fixture) check() error {
	if f.rs.Len() != f.n {
		return fmt.Errorf("compiled %d rules, want %d", f.rs.Len(), f.n)
	}
	if len(f.rs.Issues()) != 0 {
		return fmt.Errorf("compile issues: %v", f.rs.Issues())
	}
	ordered := f.rs.Rules()
	if last := ordered[len(ordered)-1]; last.ID != targetRuleID {
		return fmt.Errorf("last rule in evaluation order is %q (%s), want the target %q", last.ID, last.Name, targetRuleID)
	}
	for _, ev := range evaluators {
		if err := checkLate(ev, f); err != nil {
			return err
		}
		if err := checkNoMatch(ev, f); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------

var sink engine.Decision

// BenchmarkDecide measures one decision per iteration. Names are
// eval=<indexed|linear_cel>/rules=<n>/scenario=<late_match|no_match>, so
// `benchstat -col /eval` compares the evaluators side by side.
func BenchmarkDecide(b *testing.B) {
	for _, ev := range evaluators {
		b.Run("eval="+ev.name, func(b *testing.B) {
			for _, n := range benchSizes {
				b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
					f := getFixture(b, n) // generated, compiled and checked outside any timer
					scenarios := []struct {
						name  string
						in    *engine.Input
						check func(evaluator, *fixture) error
					}{
						{"late_match", f.late, checkLate},
						{"no_match", f.noMtch, checkNoMatch},
					}
					for _, sc := range scenarios {
						b.Run("scenario="+sc.name, func(b *testing.B) {
							if err := sc.check(ev, f); err != nil {
								b.Fatal(err)
							}
							eval, rs, in := ev.fn, f.rs, sc.in
							b.ReportAllocs()
							var d engine.Decision
							for b.Loop() {
								d = eval(rs, in)
							}
							sink = d
						})
					}
				})
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Fixture test (runs in a plain `go test`)
// ---------------------------------------------------------------------------

func TestBenchmarkFixtures(t *testing.T) {
	f := getFixture(t, 1000) // compiles without Lenient and runs fixture.check

	// The generator is deterministic.
	if again := generateRules(1000); !slices.EqualFunc(again, f.rules, func(a, b engine.Rule) bool {
		return a.ID == b.ID && a.Name == b.Name && a.Priority == b.Priority
	}) {
		t.Fatal("generateRules(1000) is not deterministic")
	}

	// Every rule passes ValidateRule on its own, and the mix is as intended.
	var signer, hash, path, other, windows, sites, tools int
	ids := map[string]bool{}
	for i := range f.rules {
		r := &f.rules[i]
		if err := engine.ValidateRule(r); err != nil {
			t.Fatalf("rule %q invalid: %v", r.Name, err)
		}
		if ids[r.ID] {
			t.Fatalf("duplicate rule id %q", r.ID)
		}
		ids[r.ID] = true
		switch {
		case r.MatchSigner != nil:
			signer++
		case r.MatchHash != nil:
			hash++
		case r.MatchPathGlob != nil:
			path++
		default:
			other++
		}
		if r.TimeWindow != nil {
			windows++
		}
		if r.SiteID != nil {
			sites++
		}
		if r.HasToolCriterion() {
			tools++
		}
		if r.ID != targetRuleID && r.Priority >= targetPriority {
			t.Fatalf("background rule %q has priority %d, not below the target's", r.Name, r.Priority)
		}
	}
	t.Logf("1000 rules: %d signer, %d hash, %d path, %d user/group/tool (%d tool); %d time windows, %d site-scoped",
		signer, hash, path, other, tools, windows, sites)
	within(t, "signer", signer, 395, 405)
	within(t, "hash", hash, 195, 205)
	within(t, "path", path, 295, 305)
	within(t, "user/group/tool", other, 95, 105)
	within(t, "tool", tools, 20, 100)
	within(t, "time window", windows, 60, 140)
	within(t, "site-scoped", sites, 5, 60)

	// "Exactly one rule matches the late observation": without the target
	// rule, both evaluators fall through to the org default.
	var rest []engine.Rule
	for _, r := range f.rules {
		if r.ID != targetRuleID {
			rest = append(rest, r)
		}
	}
	rs, err := engine.Compile(rest, nil, engine.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evaluators {
		if d := ev.fn(rs, f.late); d.DecidedBy != engine.DecidedByOrgDefault || d.Error != "" {
			t.Errorf("%s: without the target rule the late-match observation is decided by %v, want org_default", ev.name, d)
		}
	}

	// The small sizes are checked too (10,000 is checked by the benchmark).
	for _, n := range benchSizes[:2] {
		getFixture(t, n)
	}

	// For RESULTS.md: how many enabled rules sit under a C:\Users\* glob —
	// the rules whose glob shares its literal directory prefix with the
	// no-match observation's path in the user's Downloads folder.
	for _, n := range benchSizes {
		k := 0
		for _, r := range generateRules(n) {
			if r.Enabled && r.MatchSigner == nil && r.MatchPathGlob != nil && strings.HasPrefix(*r.MatchPathGlob, `C:\Users\*\`) {
				k++
			}
		}
		t.Logf(`rules=%d: %d enabled C:\Users\*\... path-glob rules`, n, k)
	}
}

// within checks that a fixture has between lo and hi rules of a kind.
func within(t *testing.T, name string, got, lo, hi int) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s: %d rules, want %d..%d", name, got, lo, hi)
	}
}
