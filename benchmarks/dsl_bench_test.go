package benchmarks

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/elevate-pam/elevate/dsl"
	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
)

// ---------------------------------------------------------------------------
// Synthetic rule repository (.pam text)
// ---------------------------------------------------------------------------

// The repository generator is deterministic like the rule generator: its
// own fixed PCG seed, no map iteration, no clock.
const (
	dslSeedHi = 0x454c45564154455f // "ELEVATE_"
	dslSeedLo = 0x44534c4245544348 // "DSLBETCH"
)

// dslSizes are the repository sizes BenchmarkDSLLoadCompile measures;
// dslRecompileSize is the directory BenchmarkDSLRecompileChanged reloads.
var dslSizes = []int{1000, 10000}

const (
	dslRecompileSize = 1000
	dslRulesPerFile  = 100
	dslOrg           = "acme"
)

// Name material of the repository generator, on top of the pools above.
var (
	dslTeams    = []string{"installers", "vendors", "helpdesk", "developers", "ai-tools", "blocklist"}
	dslVerbs    = []string{"Trust", "Allow", "Review", "Block", "Hold"}
	dslCmdFlags = []string{"/uninstall", "/repair", "--remove", "/x", "-uninstall"}
	// celExec and celTool are the `cel` atoms a rule may carry (about 1 %
	// of rules): executable-side ones and tool-side ones, so a rule never
	// mixes shapes.
	celExec = []string{
		`has(obs.commandLine) && obs.commandLine.matches("(?i)\\s/(q|qn|quiet)\\b")`,
		`!has(obs.targetExecutableSigner)`,
		`obs.targetExecutablePath.endsWith(".msi") || obs.targetExecutablePath.endsWith(".msp")`,
		`at.getHours("Europe/London") < 7`,
	}
	celTool = []string{
		`obs.riskTier >= 3 && obs.toolName.startsWith("fs.")`,
		`obs.toolName.contains("delete")`,
	}
)

// dslGen writes a repository's text.
type dslGen struct {
	*ruleGen     // vendors, users, groups, tools, uuid, hex64
	n            int
	signerGroups []string // signer group names
	seq          int
	b            strings.Builder
}

// dslRepo is a generated repository: path → text, plus what the fixture
// checks need.
type dslRepo struct {
	n       int
	srcs    map[string]string
	paths   []string // sorted
	groups  int      // signer groups declared
	changed string   // path of the file BenchmarkDSLRecompileChanged edits
	edited  string   // that file after the edit
}

func q(s string) string { return syntax.Quote(s) }

// generateDSLRepo writes an n-rule repository for org "acme":
//
//	org.pam                         org "acme" and its settings
//	signers.pam                     max(3, n/100) signer groups
//	rules/<team>/<team>-NNN.pam     dslRulesPerFile rules each
//
// Every file is printed by syntax.Format (the layout `elevate fmt` gives),
// so the text is what a real repository checked with `elevate fmt -l`
// would hold. Every fifth rule file looks exported from the API: its rules
// carry id and created.
func generateDSLRepo(n int) *dslRepo {
	g := &dslGen{ruleGen: newRuleGen(n), n: n}
	g.rng = rand.New(rand.NewPCG(dslSeedHi, dslSeedLo))
	repo := &dslRepo{n: n, srcs: map[string]string{}}
	put := func(path, src string) {
		repo.srcs[path] = string(canonical(path, src))
		repo.paths = append(repo.paths, path)
	}

	put("org.pam", `org "acme"

# Organisation-wide PAM settings.
settings {
  default_unmatched = require_approval
  uac_interception = true
}
`)

	ng := max(3, n/100)
	g.b.Reset()
	g.b.WriteString("# Code-signing identities, referenced by rules as signer in signers(\"…\").\n\n")
	for i := range ng {
		g.signerGroup(i)
	}
	repo.groups = ng
	g.signerGroups = make([]string, ng)
	for i := range ng {
		g.signerGroups[i] = fmt.Sprintf("vendors-%03d", i)
	}
	put("signers.pam", g.b.String())

	files := (n + dslRulesPerFile - 1) / dslRulesPerFile
	for fi := range files {
		team := dslTeams[fi%len(dslTeams)]
		path := filepath.Join("rules", team, fmt.Sprintf("%s-%03d.pam", team, fi))
		k := min(dslRulesPerFile, n-fi*dslRulesPerFile)
		g.b.Reset()
		fmt.Fprintf(&g.b, "# %s rules, part %d.\n\n", team, fi)
		for range k {
			g.rule(fi%5 == 4)
		}
		put(path, g.b.String())
		if fi == files/2 {
			// The edit of BenchmarkDSLRecompileChanged: one rule's priority
			// changes and one rule is appended, as a reviewer's commit might.
			src := repo.srcs[path]
			at := strings.Index(src, "\n  priority ") + 1
			if at == 0 {
				panic("generateDSLRepo: no priority line to edit")
			}
			eol := at + strings.IndexByte(src[at:], '\n')
			repo.changed = path
			repo.edited = string(canonical(path, src[:at]+"  priority 7"+src[eol:]+`
rule "Hotfix: hold the new updater for review" {
  when signer == "Contoso Software 0 Inc." and path ~ `+"`C:\\Program Files\\Contoso\\Updater\\*.exe`"+`
  then require_approval
}
`))
		}
	}
	slices.Sort(repo.paths)
	return repo
}

// canonical parses one file and prints it as `elevate fmt` would; it
// panics on a parse error (the generator's bug).
func canonical(path, src string) []byte {
	f, errs := syntax.ParseFile(path, src)
	if len(errs) > 0 {
		panic(fmt.Sprintf("generated %s does not parse: %v", path, errs))
	}
	return syntax.Format(f)
}

func (g *dslGen) signerGroup(i int) {
	fmt.Fprintf(&g.b, "signers %s {\n", q(fmt.Sprintf("vendors-%03d", i)))
	if g.rng.IntN(2) == 0 {
		fmt.Fprintf(&g.b, "  description %s\n", q(fmt.Sprintf("Approved vendors, batch %d", i)))
	}
	for range 3 + g.rng.IntN(6) {
		v := g.vendors[g.rng.IntN(len(g.vendors))]
		switch g.rng.IntN(4) {
		case 0:
			fmt.Fprintf(&g.b, "  cn %s thumbprint %s\n", q(v.cn), q(g.hex64()))
		case 1:
			fmt.Fprintf(&g.b, "  thumbprint %s\n", q(g.hex64()))
		default:
			fmt.Fprintf(&g.b, "  cn %s\n", q(v.cn))
		}
	}
	g.b.WriteString("}\n\n")
}

// Rule shapes, by share of all rules (per mille).
const (
	shapeSigner     = 300 // signer == CN [and user | and path | and path !~]; some signer in [...]
	shapeGroupRef   = 80  // signer in signers("…") [and path], or not … and path
	shapeThumbprint = 50  // thumbprint == hex [and path]
	shapeHash       = 150 // hash == hex; some hash in [...]
	shapePath       = 220 // path ~ glob [and not cmdline contains | and parent ~ | or path ~]
	shapeUserGroup  = 100 // user / group == / in; some (group or group) and path
	//                       the rest, 100: tool / risk (AI tool actions)
)

// distinct draws k different elements of s.
func (g *dslGen) distinct(s []string, k int) []string {
	out := make([]string, 0, k)
	for len(out) < k {
		if x := g.pick(s); !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func (g *dslGen) installDir(v vendor) string { return `C:\Program Files\` + v.dir + `\**` }

// rule writes one rule declaration. exported rules carry id and created,
// as `elevate export --to pam` writes them.
func (g *dslGen) rule(exported bool) {
	g.seq++
	var when []string // conjuncts
	var name string
	tool := false
	v := g.vendors[g.rng.IntN(len(g.vendors))]
	switch x := g.rng.IntN(1000); {
	case x < shapeSigner:
		name = "Trust " + v.cn
		when = append(when, "signer == "+q(v.cn))
		switch y := g.rng.IntN(20); {
		case y < 4:
			when = append(when, "user == "+q(g.pick(g.users)))
			name += " for one user"
		case y < 7:
			when = append(when, "path ~ "+q(g.installDir(v)))
			name += " in its install dir"
		case y < 8:
			when = append(when, "path !~ "+q(g.installDir(v)))
			name = "Signed by " + v.cn + " outside its install dir"
		case y < 9: // a list: stored as a condition
			w := g.vendors[g.rng.IntN(len(g.vendors))]
			when[0] = fmt.Sprintf("signer in [%s, %s]", q(v.cn), q(w.cn))
			name = "Trust " + v.dir + " and " + w.dir
		}
	case x < shapeSigner+shapeGroupRef:
		grp := g.pick(g.signerGroups)
		switch y := g.rng.IntN(10); {
		case y < 5:
			name = "Vendors of " + grp
			when = append(when, "signer in signers("+q(grp)+")")
		case y < 8:
			name = "Vendors of " + grp + " from Downloads"
			when = append(when, "signer in signers("+q(grp)+")", "path ~ "+q(`C:\Users\*\Downloads\**`))
		default:
			name = "Temp-dir binaries not signed by " + grp
			when = append(when, "path ~ "+q(`C:\Users\*\AppData\Local\Temp\**`), "not signer in signers("+q(grp)+")")
		}
	case x < shapeSigner+shapeGroupRef+shapeThumbprint:
		name = "Certificate of " + v.cn
		when = append(when, "thumbprint == "+q(g.hex64()))
		if g.rng.IntN(3) == 0 {
			when = append(when, "path ~ "+q(g.installDir(v)))
		}
	case x < shapeSigner+shapeGroupRef+shapeThumbprint+shapeHash:
		name = fmt.Sprintf("Known binary %s.exe", g.pick(exeNames))
		if g.rng.IntN(7) == 0 {
			hs := make([]string, 2+g.rng.IntN(4))
			for i := range hs {
				hs[i] = q(g.hex64())
			}
			when = append(when, "hash in ["+strings.Join(hs, ", ")+"]")
			name = fmt.Sprintf("Known builds of %s.exe", g.pick(exeNames))
		} else {
			when = append(when, "hash == "+q(g.hex64()))
		}
	case x < shapeSigner+shapeGroupRef+shapeThumbprint+shapeHash+shapePath:
		glob := g.pathGlob(g.n)
		name = "Path " + glob
		when = append(when, "path ~ "+q(glob))
		switch g.rng.IntN(8) {
		case 0:
			when = append(when, "not cmdline contains "+q(g.pick(dslCmdFlags)))
		case 1:
			when = append(when, "parent ~ "+q(`C:\Program Files\`+v.dir+`\Updater\*.exe`))
		case 2: // an alternative: stored as a condition
			when[0] = "(path ~ " + q(glob) + " or path ~ " + q(g.pathGlob(g.n)) + ")"
		}
	case x < shapeSigner+shapeGroupRef+shapeThumbprint+shapeHash+shapePath+shapeUserGroup:
		switch y := g.rng.IntN(10); {
		case y < 3:
			u := g.pick(g.users)
			name = "User " + u
			when = append(when, "user == "+q(u))
		case y < 6:
			grp := g.pick(g.groups)
			name = "Group " + grp
			when = append(when, "group == "+q(grp))
		case y < 8:
			us := g.distinct(g.users, 3)
			name = "Admins " + strings.Join(us, ", ")
			when = append(when, fmt.Sprintf("user in [%s, %s, %s]", q(us[0]), q(us[1]), q(us[2])))
		default:
			ab := g.distinct(g.groups, 2)
			a, b := ab[0], ab[1]
			name = "Groups " + a + " or " + b + " from Downloads"
			when = append(when, "(group == "+q(a)+" or group == "+q(b)+")", "path ~ "+q(`C:\Users\*\Downloads\*.exe`))
			if g.rng.IntN(2) == 0 {
				when = append(when, "not signer in signers("+q(g.pick(g.signerGroups))+")")
			}
		}
	default:
		tool = true
		t := g.pick(g.tools)
		name = "AI tool " + t
		switch y := g.rng.IntN(10); {
		case y < 4:
			when = append(when, "tool == "+q(t))
		case y < 6:
			when = append(when, "tool == "+q(t), fmt.Sprintf("risk == %d", g.rng.IntN(5)))
		case y < 7:
			when = append(when, fmt.Sprintf("risk == %d", g.rng.IntN(5)))
			name = "AI tool actions of one risk tier"
		case y < 9:
			u := g.pick(g.tools)
			for u == t {
				u = g.pick(g.tools)
			}
			when = append(when, fmt.Sprintf("tool in [%s, %s]", q(t), q(u)), "risk in [2, 3]")
			name += " or " + u
		default:
			when = append(when, "tool == "+q(t), "not risk in [3, 4]")
		}
		if g.rng.IntN(4) == 0 {
			when = append(when, "user == "+q(g.pick(g.users)))
		}
	}
	if g.rng.IntN(100) == 0 { // ~1 %: a cel atom
		if tool {
			when = append(when, "cel "+q(g.pick(celTool)))
		} else {
			when = append(when, "cel "+q(g.pick(celExec)))
		}
	}

	b := &g.b
	if g.rng.IntN(10) == 0 {
		fmt.Fprintf(b, "# Change CHG-%05d.\n", g.rng.IntN(100000))
	}
	fmt.Fprintf(b, "rule %s {\n", q(fmt.Sprintf("%s #%d", name, g.seq)))
	if exported {
		fmt.Fprintf(b, "  id %s\n", q(g.uuid(0)))
	}
	if g.rng.IntN(5) == 0 {
		fmt.Fprintf(b, "  description %s\n", q(fmt.Sprintf("%s, requested in ticket SEC-%04d", g.pick(dslVerbs), g.rng.IntN(10000))))
	}
	if g.rng.IntN(7) != 0 { // else the default, 100
		fmt.Fprintf(b, "  priority %d\n", 10*g.rng.IntN(engine.MaxRulePriority/10+1))
	}
	if g.rng.IntN(50) == 0 {
		b.WriteString("  enabled false\n")
	}
	if g.rng.IntN(50) == 0 { // a site id (a UUID)
		fmt.Fprintf(b, "  site %s\n", q(g.pick(g.sites)))
	}
	fmt.Fprintf(b, "  when %s\n", strings.Join(when, " and "))
	if g.rng.IntN(10) == 0 {
		fmt.Fprintf(b, "  during %s\n", g.window())
	}
	verdict := g.verdict(tool)
	fmt.Fprintf(b, "  then %s", verdict)
	if verdict == engine.VerdictAutoApprove && g.rng.IntN(2) == 0 {
		fmt.Fprintf(b, " for %s", g.pick([]string{"15m", "30m", "1h", "90m", "4h", "8h"}))
	}
	b.WriteString("\n")
	if exported {
		fmt.Fprintf(b, "  created %s\n", evalAt.AddDate(-1, 0, -g.rng.IntN(700)).Format("2006-01-02T15:04:05Z07:00"))
	}
	b.WriteString("}\n\n")
}

// window draws a `during` value: days or none, a day or overnight span,
// usually an IANA zone.
func (g *dslGen) window() string {
	var s string
	switch g.rng.IntN(6) {
	case 0, 1:
		s = "mon-fri "
	case 2:
		s = "sat-sun "
	case 3:
		s = "mon,wed,fri "
	case 4:
		s = "fri-mon "
	}
	switch g.rng.IntN(3) {
	case 0:
		s += "22:00-06:30"
	case 1:
		s += fmt.Sprintf("%d:%02d-%d:00", 6+g.rng.IntN(4), 15*g.rng.IntN(4), 16+g.rng.IntN(6))
	default:
		s += "08:00-18:00"
	}
	if z := g.rng.IntN(len(ianaZones) + 1); z < len(ianaZones) {
		s += " " + q(ianaZones[z])
	}
	return s
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

type dslFixture struct {
	repo   *dslRepo
	loaded *dsl.Repository // dsl.Load(repo.srcs), checked
	org    *dsl.Org
	json   []byte // dsl.ToBundle(loaded), marshalled
}

var dslFixtures memo[int, *dslFixture]

func getDSLFixture(tb testing.TB, n int) *dslFixture {
	tb.Helper()
	return dslFixtures.get(n, func() *dslFixture { return buildDSLFixture(tb, n) })
}

func buildDSLFixture(tb testing.TB, n int) *dslFixture {
	repo := generateDSLRepo(n)
	f := &dslFixture{repo: repo}
	var err error
	if f.loaded, f.org, err = loadAndCheck(repo.srcs, n, repo.groups); err != nil {
		tb.Fatalf("rules=%d: %v", n, err)
	}
	if n == dslRecompileSize {
		edited := cloneMap(repo.srcs)
		edited[repo.changed] = repo.edited
		if _, _, err := loadAndCheck(edited, n+1, repo.groups); err != nil {
			tb.Fatalf("rules=%d, %s edited: %v", n, repo.changed, err)
		}
	}
	if f.json, err = json.Marshal(dsl.ToBundle(f.loaded)); err != nil {
		tb.Fatal(err)
	}
	return f // BenchmarkJSONCompile checks that the JSON compiles to n rules
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// loadAndCheck loads a repository and compiles its one org, and demands
// zero diagnostics, n rules, the signer groups, and a clean rule set.
func loadAndCheck(srcs map[string]string, n, groups int) (*dsl.Repository, *dsl.Org, error) {
	repo := dsl.Load(srcs)
	if len(repo.Diags) != 0 {
		var b strings.Builder
		dsl.Render(&b, repo.Diags[:min(len(repo.Diags), 5)], repo.Sources())
		return nil, nil, fmt.Errorf("%d diagnostics, the first:\n%s", len(repo.Diags), b.String())
	}
	org, ok := repo.Org(dslOrg)
	if !ok || len(repo.Orgs) != 1 {
		return nil, nil, fmt.Errorf("want the one org %q, got %d orgs", dslOrg, len(repo.Orgs))
	}
	if len(org.Rules) != n || len(org.Groups) != groups {
		return nil, nil, fmt.Errorf("loaded %d rules and %d signer groups, want %d and %d", len(org.Rules), len(org.Groups), n, groups)
	}
	rs, err := dsl.Compile(org)
	if err != nil {
		return nil, nil, fmt.Errorf("compile: %v", err)
	}
	if rs.Len() != n || len(rs.Issues()) != 0 {
		return nil, nil, fmt.Errorf("compiled %d rules with issues %v", rs.Len(), rs.Issues())
	}
	return repo, org, nil
}

// compileJSON is the baseline: the same rules arriving as API JSON.
func compileJSON(data []byte) (*engine.RuleSet, error) {
	var b dsl.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, err
	}
	return engine.Compile(b.Rules, b.SignerGroups, engine.CompileOptions{})
}

// parseAll parses every file, as dsl.Load's first step does.
func parseAll(srcs map[string]string, paths []string) (decls int) {
	for _, p := range paths {
		f, errs := syntax.ParseFile(p, srcs[p])
		if len(errs) > 0 {
			panic(errs)
		}
		decls += len(f.Decls)
	}
	return decls
}

func reportRules(b *testing.B, n int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/s, "rules/s")
	}
}

// ---------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------

var (
	rsSink   *engine.RuleSet
	repoSink *dsl.Repository
)

// BenchmarkDSLLoadCompile measures what turning a repository's text into a
// rule set costs: dsl.Load of the path → text map (parse, lower, validate)
// and dsl.Compile of its org (engine.Compile). Target: ≤ 1 s at 10,000
// rules.
func BenchmarkDSLLoadCompile(b *testing.B) {
	for _, n := range dslSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			srcs := getDSLFixture(b, n).repo.srcs
			b.ReportAllocs()
			for b.Loop() {
				repo := dsl.Load(srcs)
				org, _ := repo.Org(dslOrg)
				rs, err := dsl.Compile(org)
				if err != nil {
					b.Fatal(err)
				}
				rsSink = rs
			}
			reportRules(b, n)
		})
	}
}

// BenchmarkDSLStages splits BenchmarkDSLLoadCompile: stage=parse is
// syntax.ParseFile over every file (Load's first step); stage=load is the
// whole dsl.Load (parse, then lower and validate every declaration), so
// lowering costs load − parse; stage=compile is dsl.Compile of the loaded
// org alone. Only at 10,000 rules, to keep the run short: every stage is
// linear in the rule count.
func BenchmarkDSLStages(b *testing.B) {
	for _, n := range dslSizes[1:] {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			f := getDSLFixture(b, n)
			b.Run("stage=parse", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					parseAll(f.repo.srcs, f.repo.paths)
				}
				reportRules(b, n)
			})
			b.Run("stage=load", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					repoSink = dsl.Load(f.repo.srcs)
				}
				reportRules(b, n)
			})
			b.Run("stage=compile", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					rs, err := dsl.Compile(f.org)
					if err != nil {
						b.Fatal(err)
					}
					rsSink = rs
				}
				reportRules(b, n)
			})
		})
	}
}

// BenchmarkDSLRecompileChanged measures the reload after one file of a
// 1,000-rule directory changed. Each iteration alternates between the
// original and the edited file, and there is no incremental path: the
// whole repository is loaded and compiled again.
//
//   - op=load_compile: dsl.Load of every source (in memory) + dsl.Compile,
//     the reload a watcher holding the texts would do. Target: ≤ 100 ms.
//   - op=loaddir_check: dsl.LoadDir of the directory on disk + dsl.Check
//     (compile, lint, no tests), what `elevate check DIR` does; the file
//     write of the edit is outside the timer.
func BenchmarkDSLRecompileChanged(b *testing.B) {
	n := dslRecompileSize
	b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
		f := getDSLFixture(b, n)
		versions := [2]map[string]string{f.repo.srcs, cloneMap(f.repo.srcs)}
		versions[1][f.repo.changed] = f.repo.edited

		b.Run("op=load_compile", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i ^= 1
				repo := dsl.Load(versions[i])
				org, _ := repo.Org(dslOrg)
				rs, err := dsl.Compile(org)
				if err != nil {
					b.Fatal(err)
				}
				rsSink = rs
			}
		})

		dir := b.TempDir()
		for p, src := range f.repo.srcs {
			full := filepath.Join(dir, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(src), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		changed := filepath.Join(dir, f.repo.changed)
		write := func(i int) {
			if err := os.WriteFile(changed, []byte(versions[i][f.repo.changed]), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		loadDir := func(b *testing.B) *dsl.Repository {
			repo, err := dsl.LoadDir(dir)
			if err != nil {
				b.Fatal(err)
			}
			return repo
		}

		b.Run("op=loaddir_check", func(b *testing.B) {
			if rep := dsl.Check(loadDir(b), dsl.CheckOptions{}); rep.Diags.Errors() != 0 || rep.RuleSet[dslOrg] == nil {
				b.Fatalf("check: %d errors", rep.Diags.Errors())
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				b.StopTimer()
				i ^= 1
				write(i)
				b.StartTimer()
				rep := dsl.Check(loadDir(b), dsl.CheckOptions{})
				rsSink = rep.RuleSet[dslOrg]
			}
			write(0)
		})
	})
}

// BenchmarkJSONCompile is the baseline of the same run: the same rules and
// signer groups as API JSON (dsl.ToBundle of the loaded repository,
// marshalled once), unmarshalled and compiled by engine.Compile.
func BenchmarkJSONCompile(b *testing.B) {
	for _, n := range dslSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			data := getDSLFixture(b, n).json
			b.ReportAllocs()
			for b.Loop() {
				rs, err := compileJSON(data)
				if err != nil {
					b.Fatal(err)
				}
				rsSink = rs
			}
			reportRules(b, n)
			if rsSink.Len() != n || len(rsSink.Issues()) != 0 {
				b.Fatalf("the JSON bundle compiled to %d rules, issues %v", rsSink.Len(), rsSink.Issues())
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Fixture test (runs in a plain `go test`)
// ---------------------------------------------------------------------------

func TestDSLBenchmarkFixtures(t *testing.T) {
	f := getDSLFixture(t, dslRecompileSize) // zero diagnostics, compiles cleanly, edit too

	again := generateDSLRepo(dslRecompileSize)
	for _, p := range f.repo.paths {
		if again.srcs[p] != f.repo.srcs[p] {
			t.Fatalf("generateDSLRepo is not deterministic: %s differs", p)
		}
	}
	// The text is a fixed point of the formatter.
	for _, p := range f.repo.paths {
		if got := string(canonical(p, f.repo.srcs[p])); got != f.repo.srcs[p] {
			t.Fatalf("%s is not in `elevate fmt` layout", p)
		}
	}
	if len(f.repo.paths) != 2+dslRecompileSize/dslRulesPerFile {
		t.Errorf("%d files, want %d", len(f.repo.paths), 2+dslRecompileSize/dslRulesPerFile)
	}

	// The mix, counted on the lowered rules.
	var cond, cel, group, window, list, or, not, tool, exported, dur, lines int
	for _, r := range f.org.Rules {
		if r.Condition != nil {
			cond++
			c := *r.Condition
			if strings.Contains(c, "cel ") {
				cel++
			}
			if strings.Contains(c, " in [") {
				list++
			}
			if strings.Contains(c, " or ") {
				or++
			}
			if strings.Contains(c, "not ") {
				not++
			}
		}
		if r.MatchSignerGroupID != nil || (r.Condition != nil && strings.Contains(*r.Condition, "signers(")) {
			group++
		}
		if r.TimeWindow != nil {
			window++
		}
		if r.HasToolCriterion() {
			tool++
		}
		if r.ID != "" {
			exported++
		}
		if r.ApprovalDurationMinutes != nil {
			dur++
		}
	}
	for _, p := range f.repo.paths {
		lines += strings.Count(f.repo.srcs[p], "\n")
	}
	t.Logf("1000 rules in %d files (%d lines): %d with a condition beyond match* fields (%d or, %d not, %d in-list, %d cel); "+
		"%d signer-group refs, %d time windows, %d tool rules, %d exported (id), %d with a duration",
		len(f.repo.paths), lines, cond, or, not, list, cel, group, window, tool, exported, dur)
	within(t, "rich condition", cond, 60, 200)
	within(t, "cel", cel, 3, 25)
	within(t, "signer group", group, 50, 150)
	within(t, "time window", window, 60, 140)
	within(t, "tool", tool, 60, 140)
	within(t, "exported", exported, 200, 200)

	// What `elevate check` says about it (op=loaddir_check's work).
	rep := dsl.Check(f.loaded, dsl.CheckOptions{})
	if rep.Diags.Errors() != 0 {
		t.Fatalf("check: %d errors", rep.Diags.Errors())
	}
	t.Logf("elevate check: %d lint warnings", len(rep.Diags))

	// The JSON baseline holds the same rules and compiles cleanly.
	var b dsl.Bundle
	if err := json.Unmarshal(f.json, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Rules) != dslRecompileSize || len(b.SignerGroups) != f.repo.groups {
		t.Fatalf("bundle: %d rules, %d groups", len(b.Rules), len(b.SignerGroups))
	}
	if rs, err := compileJSON(f.json); err != nil || rs.Len() != dslRecompileSize || len(rs.Issues()) != 0 {
		t.Fatalf("the JSON bundle does not compile cleanly: %v", err)
	}
}
