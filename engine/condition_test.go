package engine

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

// Tests of rule conditions (Rule.Condition): three-valued logic, every
// criterion word, signer groups, cel atoms, combination with the match*
// fields, tool-flow participation, validation, shape checks, NormalizeRule
// and explain.
//
// Compile normalises every rule first, which moves a condition's plain
// conjuncts into match* fields; a case run only through Compile would then
// often test the match* path instead of the condition evaluator. So every
// decision case is run on two rule sets: Compile's, and one compiled from
// the rules as written (condCompileRaw, no NormalizeRule). Each is decided
// through both evaluators (Decide and DecideReference), with and without
// explain, and all must give the expected decision.

// condCompileRaw compiles rules the way Compile does — same order, same
// signer-group resolution, same fail-safe poisoning — but without
// NormalizeRule, so conditions reach the condition evaluator verbatim.
func condCompileRaw(t testing.TB, rules []Rule, groups []SignerGroup) *RuleSet {
	t.Helper()
	env, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	gctx := groupCtx{groups: map[string]groupInfo{}, byName: map[string][]string{}}
	for _, g := range groups {
		id := strings.ToLower(g.ID)
		gctx.groups[id] = groupInfo{g.Name, g.OrgID, entriesForMatch(g.Signers)}
		k := foldKey(strings.TrimSpace(g.Name))
		gctx.byName[k] = append(gctx.byName[k], id)
	}
	sorted := make([]Rule, len(rules))
	for i := range rules {
		sorted[i] = rules[i].Clone()
	}
	slices.SortStableFunc(sorted, func(a, b Rule) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	rs := &RuleSet{needs: needs{parent: true, cmdline: true, groups: true}}
	for _, r := range sorted {
		var poison string
		if err := ValidateRule(&r); errors.Is(err, errUnknownVerdict) || errors.Is(err, errDurationRange) {
			poison = err.Error()
		}
		cr, _, err := compileRule(env, r, gctx)
		if r.ApprovalDurationMinutes != nil && poison == "" {
			cr.grant = *r.ApprovalDurationMinutes
		}
		if err != nil && poison == "" {
			poison = err.Error()
		}
		cr.poison = poison
		cr.ord = int32(len(rs.rules))
		rs.rules = append(rs.rules, cr)
	}
	rs.index = buildIndex(rs.rules)
	return rs
}

// condRule is an enabled rule "name-<id>" (priority 100) whose condition
// is cond; f may add fields.
func condRule(id string, v Verdict, cond string, f func(r *Rule)) Rule {
	return semRule(id, v, func(r *Rule) {
		r.Condition = &cond
		if f != nil {
			f(r)
		}
	})
}

// condDeny is one auto_deny rule "r" with only the condition.
func condDeny(cond string) []Rule { return []Rule{condRule("r", VerdictAutoDeny, cond, nil)} }

type condCase struct {
	name    string
	rules   []Rule
	groups  []SignerGroup
	lenient bool
	in      Input
	want    semWant
}

// condSets compiles the rules both ways (see the file comment).
func condSets(t *testing.T, rules []Rule, groups []SignerGroup, lenient bool) map[string]*RuleSet {
	t.Helper()
	rs, err := Compile(rules, groups, CompileOptions{Lenient: lenient})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return map[string]*RuleSet{"compiled": rs, "raw": condCompileRaw(t, rules, groups)}
}

func condRun(t *testing.T, cases []condCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for name, rs := range condSets(t, c.rules, c.groups, c.lenient) {
				t.Run(name, func(t *testing.T) { semDecideBoth(t, rs, c.in, c.want) })
			}
		})
	}
}

var (
	condV      = "Vendor Inc."
	condOrg1   = "0a000000-0000-4000-8000-000000000001"
	condOrg2   = "0a000000-0000-4000-8000-000000000002"
	condTrust  = SignerGroup{ID: semGrp, Name: "trusted", Signers: []SignerEntry{CNEntry("Acme Corp"), {Thumbprint: sp(semTPA)}}}
	condTrusts = []SignerGroup{condTrust}
)

func condSigner(s string) Input {
	return semUAC(func(o *Observation) { o.TargetExecutableSigner = s })
}

func condCmd(s string) Input { return semUAC(func(o *Observation) { o.CommandLine = s }) }

func condUser(in Input, user string) Input { in.Observation.SubjectUsername = user; return in }

func TestConditionThreeValued(t *testing.T) {
	m, n := semDenied("r"), semOrgPending
	none := semUAC(nil)
	parent := semUAC(func(o *Observation) { o.ParentImage = `C:\Windows\explorer.exe` })
	condRun(t, []condCase{
		{name: "positive, equal", rules: condDeny(`signer == "vendor inc."`), in: condSigner(condV), want: m},
		{name: "positive, absent", rules: condDeny(`signer == "Vendor Inc."`), in: none, want: n},
		{name: "not, other value", rules: condDeny(`not signer == "Vendor Inc."`), in: condSigner("Other"), want: m},
		{name: "not, absent is unknown", rules: condDeny(`not signer == "Vendor Inc."`), in: none, want: n},
		{name: "not, equal", rules: condDeny(`not signer == "Vendor Inc."`), in: condSigner("VENDOR INC."), want: n},
		{name: "!=, other value", rules: condDeny(`signer != "Vendor Inc."`), in: condSigner("Other"), want: m},
		{name: "!=, absent is unknown", rules: condDeny(`signer != "Vendor Inc."`), in: none, want: n},
		{name: "not of parentheses, absent", rules: condDeny(`not (signer == "Vendor Inc.")`), in: none, want: n},
		{name: "not !=, absent", rules: condDeny(`not signer != "Vendor Inc."`), in: none, want: n},
		{name: "not !=, equal", rules: condDeny(`not signer != "Vendor Inc."`), in: condSigner(condV), want: m},
		{name: "not not, absent", rules: condDeny(`not not signer == "Vendor Inc."`), in: none, want: n},
		{name: "not not, equal", rules: condDeny(`not not signer == "Vendor Inc."`), in: condSigner(condV), want: m},
		{name: "unknown or true", rules: condDeny(`not signer == "Vendor Inc." or user == "alice"`), in: none, want: m},
		{name: "unknown or false", rules: condDeny(`not signer == "Vendor Inc." or user == "bob"`), in: none, want: n},
		{name: "unknown and true", rules: condDeny(`signer != "X" and user == "alice"`), in: none, want: n},
		{name: "true and true", rules: condDeny(`signer != "X" and user == "alice"`), in: condSigner("Y"), want: m},
		{name: "not (unknown and false) is true", rules: condDeny(`not (signer == "X" and user == "bob")`), in: none, want: m},
		{name: "not (unknown and true) is unknown", rules: condDeny(`not (signer == "X" and user == "alice")`), in: none, want: n},
		{name: "not (unknown or false) is unknown", rules: condDeny(`not (signer == "X" or user == "bob")`), in: none, want: n},
		{name: "not (false or false) is true", rules: condDeny(`not (signer == "X" or user == "bob")`), in: condSigner("Y"), want: m},
		{name: "not (false or true) is false", rules: condDeny(`not (signer == "X" or user == "alice")`), in: condSigner("Y"), want: n},
		{name: "nested not inside or inside not", rules: condDeny(`not (user == "bob" or not (signer == "X"))`), in: condSigner("X"), want: m},
		{name: "nested not inside or inside not, absent", rules: condDeny(`not (user == "bob" or not (signer == "X"))`), in: none, want: n},
		{name: "!~ on absent parent", rules: condDeny("parent !~ `**\\cmd.exe`"), in: none, want: n},
		{name: "!~ on present parent", rules: condDeny("parent !~ `**\\cmd.exe`"), in: parent, want: m},
		{name: "not !~ is ~, absent", rules: condDeny("not parent !~ `**`"), in: none, want: n},
		{name: "not !~ is ~, present", rules: condDeny("not parent !~ `**`"), in: parent, want: m},
		{name: "not cmdline, absent", rules: condDeny(`not cmdline contains "/quiet"`), in: none, want: n},
		{name: "not cmdline, other", rules: condDeny(`not cmdline contains "/quiet"`), in: condCmd("setup.exe"), want: m},
		{name: "not cmdline, contains", rules: condDeny(`not cmdline contains "/quiet"`), in: condCmd("setup /QUIET"), want: n},
		{name: "empty AD-group list is present", rules: condDeny(`not group == "Admins"`),
			in: semUAC(func(o *Observation) { o.AdGroups = []string{} }), want: m},
		{name: "absent AD-group list is unknown", rules: condDeny(`not group == "Admins"`), in: none, want: n},
		{name: "JIT has no path: !~ unknown", rules: condDeny("path !~ `C:\\Windows\\**`"), in: semJIT(nil), want: semHuman},
		{name: "JIT has no tool: != unknown", rules: condDeny(`tool != "shell_exec"`), in: semJIT(nil), want: semHuman},
		{name: "JIT has no risk: not in unknown", rules: condDeny(`not risk in [3, 4]`), in: semJIT(nil), want: semHuman},
		{name: "JIT user or absent tool", rules: condDeny(`tool != "x" or user == "alice"`), in: semJIT(nil), want: m},
	})
}

// condGrid is a set of observations over a small vocabulary, covering
// absent and present data of every field the tests' conditions use.
func condGrid() []Input {
	var out []Input
	for _, signer := range []string{"", "Vendor", "Other", "Acme Corp"} {
		for _, user := range []string{"alice", "bob"} {
			for _, cmd := range []string{"", "setup /quiet", "x"} {
				for _, groups := range [][]string{nil, {}, {"Admins"}} {
					for _, hash := range []string{"", semHashA} {
						for _, tp := range []string{"", semTPA} {
							for _, path := range []string{`C:\Tools\app.exe`, `D:\x\setup.exe`} {
								parent := "" // present with one of the command lines
								if cmd == "x" {
									parent = `C:\Windows\explorer.exe`
								}
								out = append(out, Input{Flow: FlowUAC, At: semAt, Observation: Observation{
									SubjectUsername: user, TargetExecutablePath: path, TargetExecutableSigner: signer,
									TargetExecutableHash: hash, TargetExecutableSignerThumbprint: tp, CommandLine: cmd,
									AdGroups: groups, ParentImage: parent}})
							}
						}
					}
				}
			}
		}
	}
	for _, user := range []string{"alice", "bob"} {
		for _, tool := range []string{"shell_exec", "file_read"} {
			for _, tier := range []*int{nil, semIntP(0), semIntP(2)} {
				out = append(out, semTool(tool, tier, func(o *Observation) { o.SubjectUsername = user }))
			}
		}
		for _, groups := range [][]string{nil, {}, {"Admins"}} {
			out = append(out, semJIT(func(o *Observation) { o.SubjectUsername, o.AdGroups = user, groups }))
		}
	}
	for i := range out {
		if i%3 == 0 {
			out[i].At = semAt.Add(3 * time.Hour)
		}
	}
	return out
}

// condCmpDecision compares two decisions by what they decide: everything
// but the explain trace and the wording of an error.
func condCmpDecision(a, b Decision) string { return gocmp.Diff(semGot(a), semGot(b)) }

// condSameDecisions asserts that two rule sets decide every grid
// observation alike, through both evaluators.
func condSameDecisions(t *testing.T, what string, a, b *RuleSet) {
	t.Helper()
	for i, in := range condGrid() {
		in := in
		da, db := a.Decide(&in), b.Decide(&in)
		ra, rb := a.DecideReference(&in), b.DecideReference(&in)
		for _, d := range []struct {
			name string
			x, y Decision
		}{{"a: Decide vs DecideReference", da, ra}, {"b: Decide vs DecideReference", db, rb}, {"a vs b", da, db}} {
			if diff := condCmpDecision(d.x, d.y); diff != "" {
				t.Fatalf("%s: observation %d (%s %+v): %s disagree:\n%s", what, i, in.Flow, in.Observation, d.name, diff)
			}
		}
	}
}

// De Morgan and list expansion hold in three-valued logic, and a
// conjunction of possibly negated comparisons means exactly what the
// match* fields with matchNegate mean.
func TestConditionEquivalences(t *testing.T) {
	rule := func(f func(r *Rule)) []Rule { return []Rule{semRule("r", VerdictAutoDeny, f)} }
	cond := func(c string) func(r *Rule) { return func(r *Rule) { r.Condition = &c } }
	for _, eq := range []struct {
		name string
		a, b func(r *Rule)
	}{
		{"De Morgan over or", cond(`not (signer == "Vendor" or cmdline contains "x")`), cond(`not signer == "Vendor" and not cmdline contains "x"`)},
		{"De Morgan over or, != spelling", cond(`not (signer == "Vendor" or cmdline contains "x")`), cond(`signer != "Vendor" and not (cmdline contains "x")`)},
		{"De Morgan over and", cond(`not (signer == "Vendor" and cmdline contains "x")`), cond(`signer != "Vendor" or not cmdline contains "x"`)},
		{"double De Morgan", cond(`not (not signer == "Vendor" or not group == "Admins")`), cond(`signer == "Vendor" and group == "Admins"`)},
		{"in is any of", cond(`signer in ["Vendor", "Other"]`), cond(`signer == "Vendor" or signer == "Other"`)},
		{"not in is none of", cond(`not user in ["alice", "bob"]`), cond(`user != "alice" and user != "bob"`)},
		{"negated in, absent data", cond(`not signer in ["Vendor", "Other"]`), cond(`signer != "Vendor" and signer != "Other"`)},
		{"distribution", cond(`user == "alice" and (signer == "Vendor" or cmdline contains "quiet")`),
			cond(`(user == "alice" and signer == "Vendor") or (user == "alice" and cmdline contains "quiet")`)},
		{"negated conjunction = match* fields with matchNegate",
			cond(`not signer == "Vendor" and cmdline contains "quiet" and not group == "Admins" and hash == "` + semHashA + `"`),
			func(r *Rule) {
				r.MatchSigner, r.MatchCommandLine, r.MatchAdGroup, r.MatchHash = sp("Vendor"), sp("quiet"), sp("Admins"), sp(semHashA)
				r.MatchNegate = []NegateKey{NegSigner, NegAdGroup}
			}},
		{"negated thumbprint and path = fields", cond(`thumbprint != "` + semTPA + `" and path !~ ` + "`**\\setup.exe`"),
			func(r *Rule) {
				r.MatchSignerThumbprint, r.MatchPathGlob = sp(semTPA), sp(`**\setup.exe`)
				r.MatchNegate = []NegateKey{NegSignerThumbprint, NegPathGlob}
			}},
		{"negated group = fields", cond(`not signer in signers("trusted") and user == "bob"`),
			func(r *Rule) {
				r.MatchSignerGroupID, r.MatchUser = sp(semGrp), sp("bob")
				r.MatchNegate = []NegateKey{NegSignerGroup}
			}},
		{"tool conjunction = fields", cond(`tool != "file_read" and not risk == 0`),
			func(r *Rule) {
				r.MatchToolName, r.MatchRiskTier = sp("file_read"), semIntP(0)
				r.MatchNegate = []NegateKey{NegToolName, NegRiskTier}
			}},
	} {
		t.Run(eq.name, func(t *testing.T) {
			condSameDecisions(t, eq.name, condCompileRaw(t, rule(eq.a), condTrusts), condCompileRaw(t, rule(eq.b), condTrusts))
		})
	}
}

func TestConditionIn(t *testing.T) {
	m, n := semDenied("r"), semOrgPending
	tier := func(n int) Input { return semTool("shell_exec", semIntP(n), nil) }
	condRun(t, []condCase{
		{name: "user in, second", rules: condDeny(`user in ["bob", "ALICE"]`), in: semUAC(nil), want: m},
		{name: "user in, none", rules: condDeny(`user in ["bob", "carol"]`), in: semUAC(nil), want: n},
		{name: "user in, one element", rules: condDeny(`user in ["alice"]`), in: semUAC(nil), want: m},
		{name: "not user in, none", rules: condDeny(`not user in ["bob", "carol"]`), in: semUAC(nil), want: m},
		{name: "not user in, one", rules: condDeny(`not user in ["bob", "alice"]`), in: semUAC(nil), want: n},
		{name: "signer in, absent", rules: condDeny(`signer in ["A", "B"]`), in: semUAC(nil), want: n},
		{name: "not signer in, absent", rules: condDeny(`not signer in ["A", "B"]`), in: semUAC(nil), want: n},
		{name: "not signer in, other", rules: condDeny(`not signer in ["A", "B"]`), in: condSigner("C"), want: m},
		{name: "hash in", rules: condDeny(`hash in ["` + semHashB + `", "` + strings.ToUpper(semHashA) + `"]`),
			in: semUAC(func(o *Observation) { o.TargetExecutableHash = semHashA }), want: m},
		{name: "thumbprint in", rules: condDeny(`thumbprint in ["` + semTPB + `", "` + semTPA + `"]`),
			in: semUAC(func(o *Observation) { o.TargetExecutableSignerThumbprint = strings.ToUpper(semTPA) }), want: m},
		{name: "group in", rules: condDeny(`group in ["Helpdesk", "admins"]`), in: semJIT(func(o *Observation) { o.AdGroups = []string{"x", "Admins"} }), want: m},
		{name: "not group in, empty list present", rules: condDeny(`not group in ["Helpdesk", "admins"]`), in: semJIT(func(o *Observation) { o.AdGroups = []string{} }), want: m},
		{name: "tool in", rules: condDeny(`tool in ["file_read", "Shell_Exec"]`), in: tier(1), want: m},
		{name: "not tool in", rules: condDeny(`not tool in ["file_read", "Shell_Exec"]`), in: tier(1), want: semHuman},
		{name: "risk in, hit", rules: condDeny(`risk in [2, 3]`), in: tier(3), want: m},
		{name: "risk in, miss", rules: condDeny(`risk in [2, 3]`), in: tier(1), want: semHuman},
		{name: "risk in, absent", rules: condDeny(`risk in [2, 3]`), in: semTool("shell_exec", nil, nil), want: semHuman},
		{name: "not risk in, absent", rules: condDeny(`not risk in [2, 3]`), in: semTool("shell_exec", nil, nil), want: semHuman},
		{name: "not risk in, other", rules: condDeny(`risk != 2 and not risk in [3]`), in: tier(0), want: m},
	})
}

// Every criterion word of the language, positive and negated, compares
// exactly as its match* field does.
func TestConditionCriterionWords(t *testing.T) {
	m, n := semDenied("r"), semOrgPending
	hash := func(h string) Input { return semUAC(func(o *Observation) { o.TargetExecutableHash = h }) }
	tp := func(s string) Input { return semUAC(func(o *Observation) { o.TargetExecutableSignerThumbprint = s }) }
	par := func(p string) Input { return semUAC(func(o *Observation) { o.ParentImage = p }) }
	grp := func(gs ...string) Input { return semUAC(func(o *Observation) { o.AdGroups = gs }) }
	tool := func(name string, tier int) Input { return semTool(name, semIntP(tier), nil) }
	condRun(t, []condCase{
		{name: "signer case-insensitive", rules: condDeny(`signer == "vendor INC."`), in: condSigner("VENDOR inc."), want: m},
		{name: "signer not trimmed", rules: condDeny(`signer == "Vendor Inc. "`), in: condSigner(condV), want: n},
		{name: "signer unicode folding", rules: condDeny(`signer == "Société Générale"`), in: condSigner("SOCIÉTÉ GÉNÉRALE"), want: m},
		{name: "signer with quotes and backslashes", rules: condDeny("signer == `Vendor \"Q\" \\ Co`"), in: condSigner(`vendor "q" \ co`), want: m},
		{name: "thumbprint uppercase rule", rules: condDeny(`thumbprint == "` + strings.ToUpper(semTPA) + `"`), in: tp(semTPA), want: m},
		{name: "thumbprint padded rule is trimmed", rules: condDeny(`thumbprint == "  ` + semTPA + ` "`), in: tp(strings.ToUpper(semTPA)), want: m},
		{name: "thumbprint other", rules: condDeny(`thumbprint == "` + semTPA + `"`), in: tp(semTPB), want: n},
		{name: "thumbprint negated, other", rules: condDeny(`thumbprint != "` + semTPA + `"`), in: tp(semTPB), want: m},
		{name: "thumbprint malformed observed", rules: condDeny(`thumbprint == "` + semTPA + `"`), in: tp(semTPA[:63]), want: n},
		{name: "hash uppercase rule", rules: condDeny(`hash == "` + strings.ToUpper(semHashA) + `"`), in: hash(semHashA), want: m},
		{name: "hash other", rules: condDeny(`hash == "` + semHashA + `"`), in: hash(semHashB), want: n},
		{name: "hash negated", rules: condDeny(`hash != "` + semHashA + `"`), in: hash(semHashB), want: m},
		{name: "hash negated, absent", rules: condDeny(`hash != "` + semHashA + `"`), in: semUAC(nil), want: n},
		{name: "path glob", rules: condDeny("path ~ `c:\\tools\\*.EXE`"), in: semUAC(nil), want: m},
		{name: "path glob, double-quoted escapes", rules: condDeny(`path ~ "C:\\Tools\\*.exe"`), in: semUAC(nil), want: m},
		{name: "path glob, no match", rules: condDeny("path ~ `C:\\Tools\\*\\*.exe`"), in: semUAC(nil), want: n},
		{name: "path !~", rules: condDeny("path !~ `C:\\Tools\\**`"), in: semUAC(nil), want: n},
		{name: "path !~, other", rules: condDeny("path !~ `C:\\Windows\\**`"), in: semUAC(nil), want: m},
		{name: "path ? is literal", rules: condDeny("path ~ `C:\\Tools\\ap?.exe`"), in: semUAC(nil), want: n},
		{name: "parent glob", rules: condDeny("parent ~ `**\\explorer.exe`"), in: par(`C:\Windows\explorer.exe`), want: m},
		{name: "parent glob, absent", rules: condDeny("parent ~ `**`"), in: semUAC(nil), want: n},
		{name: "parent !~", rules: condDeny("parent !~ `**\\explorer.exe`"), in: par(`C:\Windows\cmd.exe`), want: m},
		{name: "cmdline substring, case-insensitive", rules: condDeny(`cmdline contains "/QUIET"`), in: condCmd("setup.exe /quiet /norestart"), want: m},
		{name: "cmdline not contained", rules: condDeny(`cmdline contains "/S"`), in: condCmd("setup.exe /quiet"), want: n},
		{name: "user case-insensitive", rules: condDeny(`user == "ALICE"`), in: semUAC(nil), want: m},
		{name: "user no domain stripping", rules: condDeny(`user == "alice"`), in: condUser(semUAC(nil), `CORP\alice`), want: n},
		{name: "user negated", rules: condDeny(`user != "bob"`), in: semUAC(nil), want: m},
		{name: "group case-insensitive", rules: condDeny(`group == "admins"`), in: grp("Users", "ADMINS"), want: m},
		{name: "group not in list", rules: condDeny(`group == "admins"`), in: grp("Users"), want: n},
		{name: "group absent list", rules: condDeny(`group == "admins"`), in: semUAC(nil), want: n},
		{name: "tool case-insensitive", rules: condDeny(`tool == "SHELL_EXEC"`), in: tool("shell_exec", 2), want: m},
		{name: "tool other", rules: condDeny(`tool == "shell_exec"`), in: tool("file_read", 2), want: semHuman},
		{name: "tool in uac is absent", rules: condDeny(`tool != "shell_exec"`), in: semUAC(nil), want: n},
		{name: "risk 0 exact", rules: condDeny(`risk == 0`), in: tool("x", 0), want: m},
		{name: "risk is exact, not >=", rules: condDeny(`risk == 2`), in: tool("x", 3), want: semHuman},
		{name: "risk negated", rules: condDeny(`risk != 2`), in: tool("x", 3), want: m},
		{name: "risk absent", rules: condDeny(`risk == 2`), in: semTool("x", nil, nil), want: semHuman},
		{name: "comment in the condition", rules: condDeny("user == \"alice\" # who\n  and signer == \"X\" # what"), in: condSigner("X"), want: m},
	})
}

func TestConditionSignerGroups(t *testing.T) {
	m, n := semDenied("r"), semOrgPending
	acme := condSigner("ACME CORP")
	pinned := semUAC(func(o *Observation) { o.TargetExecutableSignerThumbprint = semTPA })
	other := condSigner("Other Co")
	inOrg := func(org, cond string) []Rule {
		return []Rule{condRule("r", VerdictAutoDeny, cond, func(r *Rule) { r.OrgID = org })}
	}
	g1 := condTrust
	g1.OrgID = condOrg1
	g2 := SignerGroup{ID: semGrp2, OrgID: condOrg2, Name: "trusted", Signers: []SignerEntry{CNEntry("Other Co")}}
	both := []SignerGroup{g1, g2}
	condRun(t, []condCase{
		{name: "by name", rules: condDeny(`signer in signers("trusted")`), groups: condTrusts, in: acme, want: m},
		{name: "by name, case-insensitive", rules: condDeny(`signer in signers("TRUSTED")`), groups: condTrusts, in: acme, want: m},
		{name: "by name, thumbprint entry", rules: condDeny(`signer in signers("trusted")`), groups: condTrusts, in: pinned, want: m},
		{name: "by name, not a member", rules: condDeny(`signer in signers("trusted")`), groups: condTrusts, in: other, want: n},
		{name: "by id", rules: condDeny(`signer in signers("` + semGrp + `")`), groups: condTrusts, in: acme, want: m},
		{name: "by id, uppercase", rules: condDeny(`signer in signers("` + strings.ToUpper(semGrp) + `")`), groups: condTrusts, in: acme, want: m},
		{name: "negated, not a member", rules: condDeny(`not signer in signers("trusted")`), groups: condTrusts, in: other, want: m},
		{name: "negated, member", rules: condDeny(`not signer in signers("trusted")`), groups: condTrusts, in: acme, want: n},
		{name: "negated, no signer data", rules: condDeny(`not signer in signers("trusted")`), groups: condTrusts, in: semUAC(nil), want: n},
		{name: "in an or", rules: condDeny(`signer in signers("trusted") or user == "bob"`), groups: condTrusts, in: pinned, want: m},
		{name: "missing group never holds", rules: condDeny(`signer in signers("nope")`), groups: condTrusts, in: acme, want: n},
		{name: "missing group never holds, negated", rules: condDeny(`not signer in signers("nope")`), groups: condTrusts, in: other, want: n},
		{name: "missing group in an or", rules: condDeny(`not signer in signers("nope") or user == "alice"`), groups: condTrusts, in: other, want: m},
		{name: "missing id never holds", rules: condDeny(`signer in signers("` + semGrp2 + `")`), groups: condTrusts, in: acme, want: n},
		{name: "same org by name", rules: inOrg(condOrg1, `signer in signers("trusted")`), groups: []SignerGroup{g1}, in: acme, want: m},
		{name: "another org's group by id", rules: inOrg(condOrg2, `signer in signers("`+semGrp+`")`), groups: []SignerGroup{g1}, in: acme, want: n},
		{name: "another org's group by name", rules: inOrg(condOrg2, `signer in signers("trusted")`), groups: []SignerGroup{g1}, in: acme, want: n},
		{name: "another org's group, negated", rules: inOrg(condOrg2, `not signer in signers("trusted")`), groups: []SignerGroup{g1}, in: other, want: n},
		{name: "same name in two orgs: org 1's", rules: inOrg(condOrg1, `signer in signers("trusted")`), groups: both, in: acme, want: m},
		{name: "same name in two orgs: not org 2's", rules: inOrg(condOrg1, `signer in signers("trusted")`), groups: both, in: other, want: n},
		{name: "same name in two orgs: org 2's", rules: inOrg(condOrg2, `signer in signers("trusted")`), groups: both, in: other, want: m},
	})

	// A group that does not resolve is reported as a compile issue, by
	// name or by id, and the rule still compiles.
	for _, c := range []struct {
		cond   string
		org    string
		groups []SignerGroup
	}{
		{`signer in signers("nope")`, "", condTrusts},
		{`not signer in signers("nope") or user == "x"`, "", condTrusts},
		{`signer in signers("` + semGrp2 + `")`, "", condTrusts},
		{`signer in signers("trusted")`, condOrg2, []SignerGroup{g1}},
	} {
		rules := inOrg(c.org, c.cond)
		rs, err := Compile(rules, c.groups, CompileOptions{})
		if err != nil {
			t.Fatalf("%s: Compile: %v", c.cond, err)
		}
		iss := rs.Issues()
		if len(iss) != 1 || !strings.Contains(iss[0].Error(), "does not exist") {
			t.Errorf("%s: issues %v, want one saying the group does not exist", c.cond, iss)
		}
		if err := ValidateRule(&rules[0]); err != nil {
			t.Errorf("%s: a missing group is not a validation error: %v", c.cond, err)
		}
	}
	if rs, err := Compile(condDeny(`signer in signers("trusted")`), condTrusts, CompileOptions{}); err != nil || len(rs.Issues()) != 0 {
		t.Errorf("resolved group: err %v, issues %v", err, rs.Issues())
	}
}

func TestConditionCEL(t *testing.T) {
	m, n := semDenied("r"), semOrgPending
	tool := func(tier int) Input { return semTool("shell_exec", semIntP(tier), nil) }
	groups := func(gs []string) Input { return semUAC(func(o *Observation) { o.AdGroups = gs }) }
	lenient := func(c condCase) condCase { c.lenient = true; return c }
	const boom = `cel "dyn(obs.commandLine) > 3"` // a type error whenever commandLine is present
	condRun(t, []condCase{
		{name: "true", rules: condDeny(`cel "obs.subjectUsername.startsWith('ali')"`), in: semUAC(nil), want: m},
		{name: "false", rules: condDeny(`cel "obs.subjectUsername == 'bob'"`), in: semUAC(nil), want: n},
		{name: "tier comparison in a tool rule", rules: condDeny(`tool == "shell_exec" and cel "obs.riskTier >= 2"`), in: tool(3), want: m},
		{name: "tier comparison in a tool rule, lower", rules: condDeny(`tool == "shell_exec" and cel "obs.riskTier >= 2"`), in: tool(1), want: semHuman},
		{name: "tier comparison, absent tier", rules: condDeny(`tool == "shell_exec" and cel "obs.riskTier >= 2"`), in: semTool("shell_exec", nil, nil), want: semHuman},
		{name: "absent key: no match, no error", rules: condDeny(`cel "obs.commandLine.size() > 3"`), in: semUAC(nil), want: n},
		{name: "present key", rules: condDeny(`cel "obs.commandLine.size() > 3"`), in: condCmd("abcdef"), want: m},
		{name: "index syntax is guarded too", rules: condDeny(`cel "obs['commandLine'].size() > 3"`), in: semUAC(nil), want: n},
		{name: "negated, absent key: no match", rules: condDeny(`not cel "obs.commandLine.size() > 3"`), in: semUAC(nil), want: n},
		{name: "negated, short", rules: condDeny(`not cel "obs.commandLine.size() > 3"`), in: condCmd("ab"), want: m},
		{name: "negated, long", rules: condDeny(`not cel "obs.commandLine.size() > 3"`), in: condCmd("abcdef"), want: n},
		{name: "negated in De Morgan form, absent key", rules: condDeny(`not (cel "obs.commandLine.size() > 3" or user == "bob")`), in: semUAC(nil), want: n},
		{name: "has() alone reads nothing", rules: condDeny(`cel "has(obs.commandLine)"`), in: semUAC(nil), want: n},
		{name: "not has() holds on absent data", rules: condDeny(`not cel "has(obs.commandLine)"`), in: semUAC(nil), want: m},
		{name: "has() guard written by hand", rules: condDeny(`cel "has(obs.commandLine) && obs.commandLine.size() > 3"`), in: condCmd("abcd"), want: m},
		{name: "evaluation instant", rules: condDeny(`cel "at.getHours() < 12" and user != "nobody"`), in: semUAC(nil), want: m},
		{name: "evaluation instant, afternoon", rules: condDeny(`cel "at.getHours() < 12" and user != "nobody"`), in: semAtTime(semUAC(nil), semAt.Add(4*time.Hour)), want: n},
		{name: "comprehension over groups", rules: condDeny(`cel "obs.adGroups.exists(g, g.startsWith('Adm'))"`), in: groups([]string{"Users", "Admins"}), want: m},
		{name: "comprehension over groups, empty", rules: condDeny(`cel "obs.adGroups.exists(g, g.startsWith('Adm'))"`), in: groups([]string{}), want: n},
		{name: "comprehension over groups, absent", rules: condDeny(`cel "obs.adGroups.exists(g, g.startsWith('Adm'))"`), in: semUAC(nil), want: n},
		{name: "negated comprehension, empty list", rules: condDeny(`not cel "obs.adGroups.all(g, g != 'x') && obs.adGroups.size() > 0"`), in: groups([]string{}), want: m},
		{name: "map and filter", rules: condDeny(`cel "obs.adGroups.map(g, g + '!').filter(g, g == 'ADMINS!').size() == 1"`), in: groups([]string{"ADMINS", "x"}), want: m},
		{name: "with a match* field", rules: []Rule{condRule("r", VerdictAutoDeny, `cel "obs.commandLine.contains('x')"`, func(r *Rule) { r.MatchUser = sp("alice") })}, in: condCmd("x"), want: m},
		// comments inside the atom cannot reach the surrounding program
		{name: "comment after the expression", rules: condDeny("cel `obs.commandLine.size() > 3 // )) || true`"), in: condCmd("ab"), want: n},
		{name: "comment, matching", rules: condDeny("cel `obs.commandLine.size() > 3 // )) || true`"), in: condCmd("abcd"), want: m},
		{name: "comment, negated", rules: condDeny("not cel `obs.commandLine.size() > 3 // )) || true`"), in: condCmd("ab"), want: m},
		{name: "comment, absent key still unknown", rules: condDeny("not cel `obs.commandLine.size() > 3 // x`"), in: semUAC(nil), want: n},
		{name: "comment before another conjunct", rules: condDeny("cel `true // (` and user == \"bob\""), in: semUAC(nil), want: n},
		{name: "comment before another disjunct", rules: condDeny("cel `false // (` or user == \"alice\""), in: semUAC(nil), want: m},
		{name: "comment on the first of two lines", rules: condDeny("cel `obs.commandLine.size() > 30 // long\n || obs.commandLine.contains('x')`"), in: condCmd("x"), want: m},
		{name: "comment in a double-quoted atom", rules: condDeny(`cel "false // \" ) || true" or user == "bob"`), in: semUAC(nil), want: n},
		// run-time errors fail safe on both evaluators
		{name: "runtime error fails safe", rules: condDeny(boom), in: condCmd("abcd"), want: semFailSafe},
		{name: "runtime error, negated, fails safe", rules: condDeny("not " + boom), in: condCmd("abcd"), want: semFailSafe},
		{name: "runtime error guarded by absent data", rules: condDeny(boom), in: semUAC(nil), want: n},
		{name: "runtime error decided away by or", rules: condDeny(`user == "alice" or ` + boom), in: condCmd("abcd"), want: m},
		{name: "runtime error decided away by or, error first", rules: condDeny(boom + ` or user == "alice"`), in: condCmd("abcd"), want: m},
		{name: "runtime error under a failing or", rules: condDeny(`user == "bob" or ` + boom), in: condCmd("abcd"), want: semFailSafe},
		{name: "runtime error decided away by and", rules: condDeny(boom + ` and user == "bob"`), in: condCmd("abcd"), want: n},
		{name: "runtime error in a nested and", rules: condDeny(`(` + boom + ` and user == "bob") or signer == "X"`), in: condCmd("abcd"), want: n},
		{name: "runtime error behind a failing match* field", rules: []Rule{condRule("r", VerdictAutoDeny, boom, func(r *Rule) { r.MatchUser = sp("bob") })}, in: condCmd("abcd"), want: n},
		{name: "runtime error behind a closed time window", rules: []Rule{condRule("r", VerdictAutoDeny, boom, func(r *Rule) { r.TimeWindow = &TimeWindow{Start: "20:00", End: "21:00"} })}, in: condCmd("abcd"), want: n},
		{name: "runtime error after an earlier match", rules: []Rule{
			condRule("r", VerdictAutoDeny, boom, func(r *Rule) { r.Priority = 20 }),
			semRule("a", VerdictAutoApprove, func(r *Rule) { r.Priority = 10; r.MatchUser = sp("alice") }),
		}, in: condCmd("abcd"), want: semApproved("a", 15)},
		{name: "runtime error before a later match", rules: []Rule{
			condRule("r", VerdictAutoDeny, boom, func(r *Rule) { r.Priority = 10 }),
			semRule("a", VerdictAutoApprove, func(r *Rule) { r.Priority = 20; r.MatchUser = sp("alice") }),
		}, in: condCmd("abcd"), want: semFailSafe},
		// atoms that do not compile: leniently loaded, the rule fails safe
		lenient(condCase{name: "unknown obs key, lenient", rules: condDeny(`cel "obs.commandline.size() > 3"`), in: condCmd("abcd"), want: semFailSafe}),
		lenient(condCase{name: "unknown obs key under has(), lenient", rules: condDeny(`cel "has(obs.siteId)"`), in: semUAC(nil), want: semFailSafe}),
		lenient(condCase{name: "non-bool, lenient", rules: condDeny(`cel "obs.commandLine"`), in: condCmd("abcd"), want: semFailSafe}),
		lenient(condCase{name: "syntax error, lenient", rules: condDeny(`user == "alice" and cel "1 +"`), in: semUAC(nil), want: semFailSafe}),
	})

	// The error is reported on both evaluators and names the rule.
	rs, err := Compile(condDeny(boom), nil, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := condCmd("abcd")
	for _, d := range []Decision{rs.Decide(&in), rs.DecideReference(&in)} {
		if !strings.Contains(d.Error, `rule "name-r" (r)`) || !strings.Contains(d.Error, "no such overload") {
			t.Errorf("error %q should name the rule and the CEL error", d.Error)
		}
	}

	// Atoms that cannot compile are validation errors and, without
	// Lenient, compile errors.
	for _, c := range []struct{ cond, want string }{
		{`cel "obs.commandline.size() > 3"`, "1:5: CEL: unknown observation field obs.commandline"},
		{`cel "obs['toolname'] == 'x'"`, "1:5: CEL: unknown observation field obs.toolname"},
		{`cel "has(obs.siteId)"`, "1:5: CEL: unknown observation field obs.siteId"},
		{`user == "bob" and cel "obs.foo == 1"`, "1:23: CEL: unknown observation field obs.foo"},
		{`cel "obs.commandLine"`, "1:5: CEL: the expression has type dyn, not bool"},
		{`cel "1 + 1"`, "1:5: CEL: the expression has type int, not bool"},
		{`cel "1 +"`, "1:9: CEL: Syntax error"},
		{`cel "nope(1)"`, "CEL: undeclared reference to 'nope'"},
		{"user == \"bob\" and\n  cel `\n  obs.commandLine.size() >`", "3:27: CEL: Syntax error"},
	} {
		r := condRule("r", VerdictAutoDeny, c.cond, nil)
		err := ValidateRule(&r)
		if err == nil || !strings.Contains(err.Error(), "condition: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidateRule(%q) = %v, want an error containing %q", c.cond, err, c.want)
		}
		if _, err := Compile([]Rule{r}, nil, CompileOptions{}); err == nil {
			t.Errorf("Compile(%q) succeeded", c.cond)
		}
	}
}

// Rules whose condition holds a tool criterion take part in tool-action
// decisions; rules without one never do (pam-semantics §4).
func TestConditionToolParticipation(t *testing.T) {
	m := semDenied("r")
	tool := func(name, user string) Input {
		return semTool(name, semIntP(2), func(o *Observation) { o.SubjectUsername = user })
	}
	condRun(t, []condCase{
		{name: "tool word", rules: condDeny(`tool == "shell_exec"`), in: tool("shell_exec", "alice"), want: m},
		{name: "risk word, 0 counts", rules: condDeny(`risk == 0 or risk == 2`), in: tool("x", "alice"), want: m},
		{name: "negated tool word", rules: condDeny(`not tool == "file_read"`), in: tool("shell_exec", "alice"), want: m},
		{name: "tool word in an or with a user", rules: condDeny(`tool == "shell_exec" or user == "alice"`), in: tool("file_read", "alice"), want: m},
		{name: "tool rule, user branch, JIT", rules: condDeny(`tool == "shell_exec" or user == "alice"`), in: semJIT(nil), want: m},
		{name: "tool rule, JIT without the user", rules: condDeny(`tool == "shell_exec" or user == "bob"`), in: semJIT(nil), want: semHuman},
		{name: "user-only condition does not govern tools", rules: condDeny(`user == "alice"`), in: tool("shell_exec", "alice"), want: semHuman},
		{name: "user-only condition governs JIT", rules: condDeny(`user == "alice"`), in: semJIT(nil), want: m},
		{name: "user-only condition governs uac", rules: condDeny(`user == "alice"`), in: semUAC(nil), want: m},
		{name: "group-only condition does not govern tools", rules: condDeny(`not group == "x"`), in: tool("shell_exec", "alice"), want: semHuman},
		{name: "tool condition, user field", rules: []Rule{condRule("r", VerdictAutoDeny, `tool in ["a", "shell_exec"]`, func(r *Rule) { r.MatchUser = sp("alice") })},
			in: tool("shell_exec", "alice"), want: m},
		{name: "user condition, tool field", rules: []Rule{condRule("r", VerdictAutoDeny, `user != "bob"`, func(r *Rule) { r.MatchToolName = sp("shell_exec") })},
			in: tool("shell_exec", "alice"), want: m},
		{name: "tool rule shadows a later one", rules: []Rule{
			condRule("r", VerdictAutoDeny, `risk == 2`, func(r *Rule) { r.Priority = 1 }),
			semRule("b", VerdictAutoApprove, func(r *Rule) { r.MatchToolName = sp("shell_exec") }),
		}, in: tool("shell_exec", "alice"), want: m},
		{name: "require_approval tool rule", rules: []Rule{condRule("r", VerdictRequireApproval, `tool == "shell_exec"`, nil)},
			in: tool("shell_exec", "alice"), want: semByRule("r", VerdictRequireApproval)},
	})
}

// A condition is ANDed with the match* fields and the time window.
func TestConditionWithFieldsAndWindows(t *testing.T) {
	m, n := semDenied("r"), semOrgPending
	win := func(start, end string) func(r *Rule) {
		return func(r *Rule) { r.TimeWindow = &TimeWindow{Start: start, End: end} }
	}
	withUser := func(r *Rule) { r.MatchUser = sp("alice") }
	negUser := func(r *Rule) { r.MatchUser, r.MatchNegate = sp("bob"), []NegateKey{NegUser} }
	cond := `signer == "V" or cmdline contains "x"`
	condRun(t, []condCase{
		{name: "field and condition hold", rules: []Rule{condRule("r", VerdictAutoDeny, cond, withUser)}, in: condSigner("V"), want: m},
		{name: "condition holds, field does not", rules: []Rule{condRule("r", VerdictAutoDeny, cond, withUser)}, in: condUser(condSigner("V"), "bob"), want: n},
		{name: "field holds, condition does not", rules: []Rule{condRule("r", VerdictAutoDeny, cond, withUser)}, in: condSigner("W"), want: n},
		{name: "negated field and negated condition", rules: []Rule{condRule("r", VerdictAutoDeny, `not signer == "V"`, negUser)}, in: condSigner("W"), want: m},
		{name: "negated field and negated condition, absent", rules: []Rule{condRule("r", VerdictAutoDeny, `not signer == "V"`, negUser)}, in: semUAC(nil), want: n},
		{name: "condition moved beside a field of its own kind", rules: []Rule{condRule("r", VerdictAutoDeny, `user != "carol"`, withUser)}, in: semUAC(nil), want: m},
		{name: "same field twice, contradictory", rules: []Rule{condRule("r", VerdictAutoDeny, `user == "bob"`, withUser)}, in: semUAC(nil), want: n},
		{name: "window open", rules: []Rule{condRule("r", VerdictAutoDeny, `user == "alice"`, win("09:00", "11:00"))}, in: semUAC(nil), want: m},
		{name: "window closed", rules: []Rule{condRule("r", VerdictAutoDeny, `user == "alice"`, win("11:00", "12:00"))}, in: semUAC(nil), want: n},
		{name: "window open, condition false", rules: []Rule{condRule("r", VerdictAutoDeny, `user == "bob"`, win("09:00", "11:00"))}, in: semUAC(nil), want: n},
		{name: "window and cel instant", rules: []Rule{condRule("r", VerdictAutoDeny, `cel "at.getMinutes() == 0" and user != "nobody"`, win("09:00", "11:00"))}, in: semUAC(nil), want: m},
		{name: "window and cel instant, cel false", rules: []Rule{condRule("r", VerdictAutoDeny, `cel "at.getMinutes() == 5" and user != "nobody"`, win("09:00", "11:00"))}, in: semUAC(nil), want: n},
		{name: "time-window plus condition only", rules: []Rule{condRule("r", VerdictAutoDeny, `not signer == "V"`, win("00:00", "23:59"))}, in: condSigner("W"), want: m},
		{name: "priority: failing condition, later rule decides", rules: []Rule{
			condRule("r", VerdictAutoDeny, `signer == "V" or signer == "W"`, func(r *Rule) { r.Priority = 10 }),
			semRule("b", VerdictAutoApprove, func(r *Rule) { r.Priority = 20; r.MatchUser = sp("alice") }),
		}, in: condSigner("X"), want: semApproved("b", 15)},
		{name: "priority: condition decides first", rules: []Rule{
			condRule("r", VerdictAutoDeny, `signer == "V" or signer == "W"`, func(r *Rule) { r.Priority = 10 }),
			semRule("b", VerdictAutoApprove, func(r *Rule) { r.Priority = 20; r.MatchUser = sp("alice") }),
		}, in: condSigner("W"), want: m},
		{name: "disabled rule with a condition", rules: []Rule{condRule("r", VerdictAutoDeny, `user == "alice"`, func(r *Rule) { r.Enabled = false })}, in: semUAC(nil), want: n},
		{name: "site-scoped rule with a condition, other site", rules: []Rule{condRule("r", VerdictAutoDeny, `user == "alice"`, func(r *Rule) { r.SiteID = sp(semSite1) })},
			in: semUAC(func(o *Observation) { o.SiteID = semSite2 }), want: n},
		{name: "site-scoped rule with a condition, its site", rules: []Rule{condRule("r", VerdictAutoDeny, `user == "alice"`, func(r *Rule) { r.SiteID = sp(semSite1) })},
			in: semUAC(func(o *Observation) { o.SiteID = semSite1 }), want: m},
		{name: "ignore verdict with a condition", rules: []Rule{condRule("r", VerdictIgnore, `signer == "V" or signer == "W"`, nil)}, in: condSigner("w"),
			want: semWant{Outcome: OutcomeIgnored, Verdict: VerdictIgnore, RuleID: "r", DecidedBy: DecidedByRule}},
		{name: "empty condition is no condition (lenient)", lenient: true, rules: []Rule{condRule("r", VerdictAutoDeny, "", withUser)}, in: semUAC(nil), want: m},
		{name: "empty condition alone is no criterion (lenient)", lenient: true, rules: condDeny(""), in: semUAC(nil), want: n},
	})
}

func TestConditionValidate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, c := range []struct {
		name, cond string
		want       []string // substrings of the reasons, in order; nil = valid
	}{
		{"valid", `signer == "V" or (user in ["a", "b"] and not cmdline contains "x")`, nil},
		{"valid raw path", "path ~ `C:\\Program Files\\**`", nil},
		{"valid padded thumbprint", `thumbprint == " ` + strings.ToUpper(semTPA) + ` "`, nil},
		{"valid by-name group", `signer in signers("anything")`, nil},
		{"valid cel", `cel "has(obs.commandLine) && obs.commandLine.size() > 3 // c"`, nil},
		{"bad hash", `hash == "abc"`, []string{"1:9: hash must be 64 hexadecimal characters (a SHA-256 digest)"}},
		{"padded hash", `hash == " ` + semHashA + `"`, []string{"1:9: hash must be 64 hexadecimal characters"}},
		{"non-hex hash", `hash == "` + strings.Repeat("zz", 32) + `"`, []string{"1:9: hash must be 64 hexadecimal characters"}},
		{"bad thumbprint", `thumbprint == "zz"`, []string{"1:15: thumbprint must be 64 hexadecimal characters"}},
		{"bad thumbprint in a list", `thumbprint in ["` + semTPA + `", "x"]`, []string{"1:84: thumbprint must be 64 hexadecimal characters"}},
		{"risk out of range", `risk == 5`, []string{"1:9: risk must be between 0 and 4"}},
		{"risk out of range in a list", `risk in [1, 7]`, []string{"1:13: risk must be between 0 and 4"}},
		{"risk not a number", `risk == 99999999999999999999999`, []string{"1:9: risk tier 99999999999999999999999 is not a number"}},
		{"empty user", `user == ""`, []string{"1:9: user must not be empty"}},
		{"empty cmdline", `cmdline contains ""`, []string{"1:18: cmdline must not be empty"}},
		{"empty signer in a list", `signer in ["a", ""]`, []string{"1:17: signer must not be empty"}},
		{"empty group reference", `signer in signers("")`, []string{"1:19: signer group must not be empty"}},
		{"empty path", "path ~ ``", []string{"1:8: path must not be empty"}},
		{"signer 255", `signer == "` + long(255) + `"`, nil},
		{"signer 256", `signer == "` + long(256) + `"`, []string{"1:11: signer must be at most 255 characters"}},
		{"signer 255 characters, more bytes", `signer == "` + strings.Repeat("é", 255) + `"`, nil},
		{"user 256", `user == "` + long(256) + `"`, []string{"1:9: user must be at most 255 characters"}},
		{"group 256", `group == "` + long(256) + `"`, []string{"1:10: group must be at most 255 characters"}},
		{"signer group 256", `signer in signers("` + long(256) + `")`, []string{"1:19: signer group must be at most 255 characters"}},
		{"tool 100", `tool == "` + long(100) + `"`, nil},
		{"tool 101", `tool == "` + long(101) + `"`, []string{"1:9: tool must be at most 100 characters"}},
		{"path 4096", `path ~ "` + long(4096) + `"`, nil},
		{"path 4097", `path ~ "` + long(4097) + `"`, []string{"1:8: path must be at most 4096 characters"}},
		{"parent 4097", `parent !~ "` + long(4097) + `"`, []string{"1:11: parent must be at most 4096 characters"}},
		{"cmdline 4097", `cmdline contains "` + long(4097) + `"`, []string{"1:18: cmdline must be at most 4096 characters"}},
		{"several problems, in position order", `hash == "x" or signer == "" or path ~ ""`, []string{"1:9: hash", "1:26: signer must not be empty", "1:39: path must not be empty"}},
		{"problem on the second line", "user == \"bob\"\n  and hash == \"abc\"", []string{"2:15: hash must be 64 hexadecimal characters"}},
		{"empty condition", "", []string{"must not be empty (use null for no condition)"}},
		{"blank condition", "  ", []string{"1:3: expected a condition"}},
		{"over-long condition", strings.Repeat(`user == "bob" or `, 1000) + `user == "x"`, []string{"must be at most 16384 characters"}},
		// parse errors
		{"single =", `user = "bob"`, []string{"1:6: expected an operator after `user`, found `=` (compare with `==`)"}},
		{"dangling and", `signer == "a" and`, []string{"1:18: expected a condition"}},
		{"unknown criterion", `frobnicate == "x"`, []string{"1:1: unknown criterion `frobnicate`"}},
		{"typo criterion", `signre == "x"`, []string{"1:1: unknown criterion `signre` (did you mean `signer`?)"}},
		{"glob with ==", `path == "x"`, []string{"1:6: operator `==` does not apply to `path`"}},
		{"cmdline with ==", `cmdline == "x"`, []string{"1:9: operator `==` does not apply to `cmdline`"}},
		{"signers() on user", `user in signers("g")`, []string{"1:9: expected a list"}},
		{"unclosed paren", `(user == "a"`, []string{"1:13: expected `)` to close the `(` at 1:1"}},
		{"trailing word", `user == "bob" extra`, []string{"1:15: unexpected `extra` after the condition"}},
		{"empty list", `user in []`, []string{"1:9: empty list"}},
		{"risk as a string", `risk == "2"`, []string{"1:9: expected a risk tier (0-4)"}},
		{"user as a number", `user == 2`, []string{"1:9: expected a string to compare `user` with"}},
		{"&& instead of and", `user == "a" && user == "b"`, []string{"1:13: unexpected character '&' (write `and`)"}},
		{"bad escape", `user == "a\qb"`, []string{"1:11: unknown escape sequence \\q"}},
		{"unterminated string", `user == "bob`, []string{"1:9: string not terminated"}},
		{"cel without a string", `cel obs`, []string{"1:5: expected a CEL expression after `cel`"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := condRule("r", VerdictAutoDeny, c.cond, func(r *Rule) { r.MatchUser = sp("alice") })
			err := ValidateRule(&r)
			if c.want == nil {
				if err != nil {
					t.Fatalf("ValidateRule: %v", err)
				}
				return
			}
			var fes FieldErrors
			if !errors.As(err, &fes) {
				t.Fatalf("ValidateRule = %v, want FieldErrors", err)
			}
			var reasons []string
			for _, fe := range fes {
				if fe.Field != "condition" {
					t.Errorf("unexpected error on %s: %v", fe.Field, fe)
					continue
				}
				reasons = append(reasons, fe.Reason)
			}
			if len(reasons) < len(c.want) {
				t.Fatalf("reasons %q, want at least %d containing %q", reasons, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(reasons[i], w) {
					t.Errorf("reason %d = %q, want it to contain %q", i, reasons[i], w)
				}
			}
			if strings.HasPrefix(c.name, "over-long") || c.cond == "" {
				return
			}
			// The same problems, positions included, come out of
			// CheckCondition or the parser for rule files.
			x, perr := ParseCondition(c.cond)
			if perr != nil {
				if !strings.Contains(perr.Error(), c.want[0]) {
					t.Errorf("ParseCondition error %q, want it to contain %q", perr, c.want[0])
				}
				return
			}
			ces := CheckCondition(x)
			if len(ces) != len(c.want) {
				t.Fatalf("CheckCondition = %v, want %d errors", ces, len(c.want))
			}
			for i, ce := range ces {
				if !strings.Contains(ce.Error(), c.want[i]) {
					t.Errorf("CheckCondition[%d] = %q, want it to contain %q", i, ce, c.want[i])
				}
			}
		})
	}
}

func TestConditionRuleShape(t *testing.T) {
	h := `hash == "` + semHashA + `"`
	for _, c := range []struct {
		name string
		rule Rule
		want error // nil = valid
	}{
		{"condition only is a criterion", condRule("r", VerdictAutoDeny, `user == "bob"`, nil), nil},
		{"cel reading a field is a criterion", condRule("r", VerdictAutoDeny, `cel "has(obs.commandLine)"`, nil), nil},
		{"cel reading no field is not a criterion", condRule("r", VerdictAutoDeny, `cel "true"`, nil), ErrNoCriterion},
		{"negated cel reading no field is not a criterion", condRule("r", VerdictAutoDeny, `not cel "at.getHours() > 30"`, nil), ErrNoCriterion},
		{"negated condition only is a criterion", condRule("r", VerdictAutoDeny, `not group == "x"`, nil), nil},
		{"condition and a window", condRule("r", VerdictAutoDeny, `user == "bob"`, func(r *Rule) { r.TimeWindow = &TimeWindow{Start: "09:00", End: "17:00"} }), nil},
		{"window alone", semRule("r", VerdictAutoDeny, func(r *Rule) { r.TimeWindow = &TimeWindow{Start: "09:00", End: "17:00"} }), ErrNoCriterion},
		{"executable and tool in a condition", condRule("r", VerdictAutoDeny, h+` and tool == "x"`, nil), ErrMixedShape},
		{"executable or tool in a condition", condRule("r", VerdictAutoDeny, h+` or risk == 2`, nil), ErrMixedShape},
		{"mixed under not", condRule("r", VerdictAutoDeny, `not (path ~ "x" and risk == 0)`, nil), ErrMixedShape},
		{"group reference and tool", condRule("r", VerdictAutoDeny, `signer in signers("g") or tool == "x"`, nil), ErrMixedShape},
		{"tool field, executable condition", condRule("r", VerdictAutoDeny, `cmdline contains "y"`, func(r *Rule) { r.MatchToolName = sp("x") }), ErrMixedShape},
		{"executable field, tool condition", condRule("r", VerdictAutoDeny, `tool == "x"`, func(r *Rule) { r.MatchHash = sp(semHashA) }), ErrMixedShape},
		{"risk 0 field, parent condition", condRule("r", VerdictAutoDeny, `parent ~ "x"`, func(r *Rule) { r.MatchRiskTier = semIntP(0) }), ErrMixedShape},
		{"executable field, neutral condition", condRule("r", VerdictAutoDeny, `user == "bob"`, func(r *Rule) { r.MatchHash = sp(semHashA) }), nil},
		{"tool field, neutral condition", condRule("r", VerdictAutoDeny, `group != "A"`, func(r *Rule) { r.MatchToolName = sp("x") }), nil},
		{"ignore with a tool condition", condRule("r", VerdictIgnore, `tool == "x"`, nil), ErrIgnoreOnToolRule},
		{"ignore with a negated risk condition", condRule("r", VerdictIgnore, `not risk == 0`, nil), ErrIgnoreOnToolRule},
		{"ignore with a tool word in an or", condRule("r", VerdictIgnore, `user == "a" or tool in ["x"]`, nil), ErrIgnoreOnToolRule},
		{"ignore with an executable condition", condRule("r", VerdictIgnore, `signer == "X"`, nil), nil},
		{"ignore with a neutral condition", condRule("r", VerdictIgnore, `user == "bob"`, nil), nil},
		{"group reference beside a signer field", condRule("r", VerdictAutoDeny, `signer in signers("`+semGrp+`")`, func(r *Rule) { r.MatchSigner = sp("X") }), nil},
		{"group and signer in a condition", condRule("r", VerdictAutoDeny, `signer in signers("`+semGrp+`") and signer == "X"`, nil), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.rule
			err := ValidateRule(&r)
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("ValidateRule: %v", err)
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("ValidateRule = %v, want %v", err, c.want)
			}
			if got := CheckRuleShape(&r); !errors.Is(got, c.want) && (got != nil || c.want != nil) {
				t.Errorf("CheckRuleShape = %v, want %v", got, c.want)
			}
			if c.want != nil {
				return
			}
			// The stored form is valid too.
			n := NormalizeRule(r)
			if err := ValidateRule(&n); err != nil {
				t.Errorf("ValidateRule(NormalizeRule(r)): %v (condition %v)", err, n.Condition)
			}
		})
	}

	// An unparsable condition is reported as such, not as a missing
	// criterion or a shape problem.
	r := condRule("r", VerdictIgnore, `tool = "x"`, nil)
	err := ValidateRule(&r)
	if err == nil || errors.Is(err, ErrNoCriterion) || errors.Is(err, ErrMixedShape) || !strings.Contains(err.Error(), "condition: 1:6:") {
		t.Errorf("ValidateRule(unparsable) = %v", err)
	}
	if !r.HasCriterion() || r.HasToolCriterion() || r.HasExecutableCriterion() {
		t.Errorf("unparsable condition: HasCriterion %v HasTool %v HasExecutable %v", r.HasCriterion(), r.HasToolCriterion(), r.HasExecutableCriterion())
	}
}

// condNormCase is one NormalizeRule case: a rule (criteria set by in) and
// the expected stored criteria.
type condNormCase struct {
	name    string
	in      func(r *Rule)
	want    func(r *Rule)
	lenient bool // the input is not valid; it must still keep its meaning
}

func condNormBase(f func(r *Rule)) Rule {
	r := Rule{ID: "r", Name: "name-r", Enabled: true, Priority: DefaultRulePriority, Verdict: VerdictAutoDeny, CreatedAt: semT0}
	f(&r)
	return r
}

var condNormCases = []condNormCase{
	{name: "plain conjunction moves entirely",
		in:   func(r *Rule) { r.Condition = sp("signer == \"Vendor\" and path ~ `C:\\x\\**`") },
		want: func(r *Rule) { r.MatchSigner, r.MatchPathGlob = sp("Vendor"), sp(`C:\x\**`) }},
	{name: "negations become matchNegate",
		in: func(r *Rule) { r.Condition = sp(`not signer == "Vendor" and user != "bob"`) },
		want: func(r *Rule) {
			r.MatchSigner, r.MatchUser = sp("Vendor"), sp("bob")
			r.MatchNegate = []NegateKey{NegSigner, NegUser}
		}},
	{name: "matchNegate in NegateKeys order",
		in: func(r *Rule) {
			r.Condition = sp(`user != "bob" and not (signer == "Vendor") and not not group == "Admins"`)
		},
		want: func(r *Rule) {
			r.MatchSigner, r.MatchUser, r.MatchAdGroup = sp("Vendor"), sp("bob"), sp("Admins")
			r.MatchNegate = []NegateKey{NegSigner, NegUser}
		}},
	{name: "one comparison per field",
		in:   func(r *Rule) { r.Condition = sp(`user == "alice" and user == "bob"`) },
		want: func(r *Rule) { r.MatchUser, r.Condition = sp("alice"), sp(`user == "bob"`) }},
	{name: "taken field keeps the comparison in the condition",
		in: func(r *Rule) {
			r.MatchSigner = sp("Vendor")
			r.Condition = sp(`not signer == "Other" and user == "bob"`)
		},
		want: func(r *Rule) {
			r.MatchSigner, r.MatchUser, r.Condition = sp("Vendor"), sp("bob"), sp(`not signer == "Other"`)
		}},
	{name: "unparsable condition kept verbatim",
		in:   func(r *Rule) { r.Condition = sp(`signer=="Vendor"   or  signer == 'x'`) },
		want: func(r *Rule) { r.Condition = sp(`signer=="Vendor"   or  signer == 'x'`) }, lenient: true}, // unparsable ('): kept verbatim
	{name: "disjunction reprinted",
		in:   func(r *Rule) { r.Condition = sp(`signer=="Vendor"   or  not(signer == "Other")`) },
		want: func(r *Rule) { r.Condition = sp(`signer == "Vendor" or not (signer == "Other")`) }},
	{name: "disjunction beside a movable conjunct",
		in: func(r *Rule) { r.Condition = sp(`(signer == "Vendor" or signer == "Other") and user == "bob"`) },
		want: func(r *Rule) {
			r.MatchUser, r.Condition = sp("bob"), sp(`signer == "Vendor" or signer == "Other"`)
		}},
	{name: "redundant parentheses",
		in: func(r *Rule) {
			r.Condition = sp(`((user == "a")) and ((signer == "b" or signer == "c") and (cmdline contains "x"))`)
		},
		want: func(r *Rule) {
			r.MatchUser, r.MatchCommandLine, r.Condition = sp("a"), sp("x"), sp(`signer == "b" or signer == "c"`)
		}},
	{name: "negated conjunction is not split",
		in:   func(r *Rule) { r.Condition = sp(`not (user == "a" and signer == "b")`) },
		want: func(r *Rule) { r.Condition = sp(`not (user == "a" and signer == "b")`) }},
	{name: "one-element list moves, longer lists stay",
		in: func(r *Rule) { r.Condition = sp(`user in ["bob"] and signer in ["a", "b"] and not group in ["x"]`) },
		want: func(r *Rule) {
			r.MatchUser, r.MatchAdGroup, r.MatchNegate, r.Condition = sp("bob"), sp("x"), []NegateKey{NegAdGroup}, sp(`signer in ["a", "b"]`)
		}},
	{name: "group by name stays",
		in:   func(r *Rule) { r.Condition = sp(`signer in signers("trusted")`) },
		want: func(r *Rule) { r.Condition = sp(`signer in signers("trusted")`) }},
	{name: "group by id moves",
		in:   func(r *Rule) { r.Condition = sp(`not signer in signers("` + semGrp + `")`) },
		want: func(r *Rule) { r.MatchSignerGroupID, r.MatchNegate = sp(semGrp), []NegateKey{NegSignerGroup} }},
	{name: "group by id after a signer stays",
		in:   func(r *Rule) { r.Condition = sp(`signer == "X" and signer in signers("` + semGrp + `")`) },
		want: func(r *Rule) { r.MatchSigner, r.Condition = sp("X"), sp(`signer in signers("`+semGrp+`")`) }},
	{name: "group by id beside a thumbprint field stays",
		in: func(r *Rule) {
			r.MatchSignerThumbprint = sp(semTPA)
			r.Condition = sp(`signer in signers("` + semGrp + `")`)
		},
		want: func(r *Rule) {
			r.MatchSignerThumbprint, r.Condition = sp(semTPA), sp(`signer in signers("`+semGrp+`")`)
		}},
	{name: "signer and thumbprint after a group stay",
		in: func(r *Rule) {
			r.Condition = sp(`signer in signers("` + semGrp + `") and thumbprint == "` + semTPA + `" and signer == "X"`)
		},
		want: func(r *Rule) {
			r.MatchSignerGroupID, r.Condition = sp(semGrp), sp(`thumbprint == "`+semTPA+`" and signer == "X"`)
		}},
	{name: "negate key of an absent criterion dropped before a positive move",
		in:   func(r *Rule) { r.MatchNegate = []NegateKey{NegSigner}; r.Condition = sp(`signer == "X"`) },
		want: func(r *Rule) { r.MatchSigner = sp("X") }},
	{name: "negate keys deduplicated and ordered",
		in: func(r *Rule) {
			r.MatchUser, r.MatchHash = sp("bob"), sp(semHashA)
			r.MatchNegate = []NegateKey{NegUser, NegToolName, NegUser, NegHash, NegSigner}
		},
		want: func(r *Rule) {
			r.MatchUser, r.MatchHash = sp("bob"), sp(semHashA)
			r.MatchNegate = []NegateKey{NegHash, NegUser}
		}},
	{name: "empty matchNegate is nil",
		in:   func(r *Rule) { r.MatchUser, r.MatchNegate = sp("bob"), []NegateKey{} },
		want: func(r *Rule) { r.MatchUser = sp("bob") }},
	{name: "tool and risk",
		in: func(r *Rule) { r.Condition = sp(`risk == 2 and tool == "x" and not risk == 0`) },
		want: func(r *Rule) {
			r.MatchRiskTier, r.MatchToolName, r.Condition = semIntP(2), sp("x"), sp(`not risk == 0`)
		}},
	{name: "negated risk 0",
		in:   func(r *Rule) { r.Condition = sp(`not risk in [0]`) },
		want: func(r *Rule) { r.MatchRiskTier, r.MatchNegate = semIntP(0), []NegateKey{NegRiskTier} }},
	{name: "cel atom stays",
		in:   func(r *Rule) { r.Condition = sp(`cel "true" and user == "bob"`) },
		want: func(r *Rule) { r.MatchUser, r.Condition = sp("bob"), sp(`cel "true"`) }},
	{name: "negated cel atom stays",
		in: func(r *Rule) { r.Condition = sp("user == \"bob\" and not cel `obs.commandLine.contains(\"x\") // c`") },
		want: func(r *Rule) {
			r.MatchUser, r.Condition = sp("bob"), sp("not cel `obs.commandLine.contains(\"x\") // c`")
		}},
	{name: "hash and thumbprint normalised",
		in: func(r *Rule) {
			r.Condition = sp(`hash == "` + strings.ToUpper(semHashA) + `" and thumbprint == " ` + strings.ToUpper(semTPA) + `"`)
		},
		want: func(r *Rule) { r.MatchHash, r.MatchSignerThumbprint = sp(semHashA), sp(semTPA) }},
	{name: "raw strings keep their text",
		in: func(r *Rule) {
			r.Condition = sp("parent !~ `C:\\Windows\\**` and cmdline contains \"a \\\"b\\\"\" and (path ~ `x` or path ~ \"y\")")
		},
		want: func(r *Rule) {
			r.MatchParentImage, r.MatchCommandLine, r.MatchNegate = sp(`C:\Windows\**`), sp(`a "b"`), []NegateKey{NegParentImage}
			r.Condition = sp(`path ~ "x" or path ~ "y"`)
		}},
	{name: "comments dropped",
		in: func(r *Rule) {
			r.Condition = sp("user == \"bob\" # who\nand (signer == \"a\" # one\n or signer == \"b\")")
		},
		want: func(r *Rule) { r.MatchUser, r.Condition = sp("bob"), sp(`signer == "a" or signer == "b"`) }},
	{name: "everything moves",
		in: func(r *Rule) {
			r.Condition = sp(`hash == "` + semHashA + `" and thumbprint == "` + semTPA + `" and signer != "S" and path ~ "p" and parent ~ "q"` +
				` and cmdline contains "c" and user == "u" and group == "g"`)
		},
		want: func(r *Rule) {
			r.MatchHash, r.MatchSignerThumbprint, r.MatchSigner, r.MatchPathGlob = sp(semHashA), sp(semTPA), sp("S"), sp("p")
			r.MatchParentImage, r.MatchCommandLine, r.MatchUser, r.MatchAdGroup = sp("q"), sp("c"), sp("u"), sp("g")
			r.MatchNegate = []NegateKey{NegSigner}
		}},
	{name: "no condition, nothing to do",
		in:   func(r *Rule) { r.MatchUser = sp("bob") },
		want: func(r *Rule) { r.MatchUser = sp("bob") }},
	// Invalid values (lenient loads) keep their meaning too.
	{name: "empty value stays: a comparison, not an absent criterion", lenient: true,
		in:   func(r *Rule) { r.Condition = sp(`cmdline contains "" and user == "alice"`) },
		want: func(r *Rule) { r.MatchUser, r.Condition = sp("alice"), sp(`cmdline contains ""`) }},
	{name: "negated empty value stays", lenient: true,
		in:   func(r *Rule) { r.Condition = sp(`not user == ""`) },
		want: func(r *Rule) { r.Condition = sp(`not user == ""`) }},
	{name: "blank thumbprint stays", lenient: true,
		in:   func(r *Rule) { r.Condition = sp(`thumbprint != "  " and user == "alice"`) },
		want: func(r *Rule) { r.MatchUser, r.Condition = sp("alice"), sp(`thumbprint != "  "`) }},
	{name: "malformed hash moves", lenient: true,
		in:   func(r *Rule) { r.Condition = sp(`hash != "XYZ"`) },
		want: func(r *Rule) { r.MatchHash, r.MatchNegate = sp("xyz"), []NegateKey{NegHash} }},
	{name: "out-of-range risk moves", lenient: true,
		in:   func(r *Rule) { r.Condition = sp(`risk == 7`) },
		want: func(r *Rule) { r.MatchRiskTier = semIntP(7) }},
	{name: "bad cel atom stays", lenient: true,
		in:   func(r *Rule) { r.Condition = sp(`cel "obs.nope" and user == "alice"`) },
		want: func(r *Rule) { r.MatchUser, r.Condition = sp("alice"), sp(`cel "obs.nope"`) }},
}

func TestConditionNormalizeRule(t *testing.T) {
	for _, c := range condNormCases {
		t.Run(c.name, func(t *testing.T) {
			in := condNormBase(c.in)
			orig := in.Clone()
			got := NormalizeRule(in)
			want := condNormBase(c.want)
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Errorf("NormalizeRule (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(orig, in); diff != "" {
				t.Errorf("NormalizeRule modified its input:\n%s", diff)
			}
			if again := NormalizeRule(got); !gocmp.Equal(got, again) {
				t.Errorf("not idempotent:\n%s", gocmp.Diff(got, again))
			}
			if !c.lenient {
				if err := ValidateRule(&in); err != nil {
					t.Fatalf("input invalid: %v", err)
				}
				if err := ValidateRule(&got); err != nil {
					t.Errorf("normalised rule invalid: %v", err)
				}
			}
		})
	}
}

// NormalizeRule never changes what a rule matches: the rule as written
// (compiled without normalisation) and its stored form decide every
// observation alike, and so does Compile, which normalises itself.
func TestConditionNormalizePreservesDecisions(t *testing.T) {
	groups := []SignerGroup{condTrust, {ID: semGrp2, Name: "empty"}}
	for _, c := range condNormCases {
		t.Run(c.name, func(t *testing.T) {
			raw := condNormBase(c.in)
			raw.Verdict = VerdictAutoApprove
			if raw.HasToolCriterion() {
				raw.Verdict = VerdictAutoDeny
			}
			rawRS := condCompileRaw(t, []Rule{raw}, groups)
			for _, rules := range [][]Rule{{raw}, {NormalizeRule(raw)}, {NormalizeRule(NormalizeRule(raw))}} {
				rs, err := Compile(rules, groups, CompileOptions{Lenient: true})
				if err != nil {
					t.Fatal(err)
				}
				if r := rules[0]; r.Condition != nil && conditionInvalid(ValidateRule(&r)) {
					// An invalid stored condition is poisoned: it fails safe
					// instead of deciding like the rule as written.
					if d := rs.Decide(&Input{Flow: FlowUAC, At: semAt, Observation: Observation{SubjectUsername: "alice", TargetExecutablePath: `C:\Tools\app.exe`}}); d.Error == "" {
						t.Errorf("%s: an invalid stored condition decided %v", c.name, d)
					}
					continue
				}
				condSameDecisions(t, c.name, rawRS, rs)
			}
		})
	}
}

func TestConditionExplain(t *testing.T) {
	rules := []Rule{
		condRule("c", VerdictAutoDeny, "signer == \"V\" or not path ~ `**\\*.exe` or cel \"obs.subjectUsername == 'bob'\"",
			func(r *Rule) { r.Priority = 10; r.MatchUser = sp("alice") }),
		condRule("m", VerdictAutoApprove, `user == "alice" or signer == "V"`, func(r *Rule) { r.Priority = 20; r.MatchPathGlob = sp(`**`) }),
	}
	in := Input{Flow: FlowUAC, At: semAt, Explain: true, Observation: Observation{SubjectUsername: "alice", TargetExecutablePath: `C:\x\a.exe`}}
	for name, rs := range condSets(t, rules, nil, false) {
		for _, decide := range []func(*Input) Decision{rs.Decide, rs.DecideReference} {
			d := decide(&in)
			if d.RuleID != "m" || len(d.Explain) != 2 {
				t.Fatalf("%s: got %v with trace %+v", name, d, d.Explain)
			}
			e := d.Explain[0]
			if e.Result != ResultNoMatch || e.Criterion != "condition" {
				t.Errorf("%s: failing condition entry %+v", name, e)
			}
			for _, want := range []string{
				"the condition is not definitely true: ",
				`signer "V": unknown (targetExecutableSigner absent)`,
				`not pathGlob "**\\*.exe": false`,
				`cel obs.subjectUsername == "bob": false`,
			} {
				if !strings.Contains(e.Detail, want) {
					t.Errorf("%s: detail %q lacks %q", name, e.Detail, want)
				}
			}
			if !strings.Contains(e.Expression, "has(obs.targetExecutableSigner) && eqFold(obs.targetExecutableSigner, \"V\")") ||
				!strings.Contains(e.Expression, "has(obs.targetExecutablePath) && !(pathGlob(") {
				t.Errorf("%s: expression %q is not the condition's CEL", name, e.Expression)
			}
			if e := d.Explain[1]; e.Result != ResultMatched || e.Detail != "all 1 criteria and the condition hold" {
				t.Errorf("%s: matched entry %+v", name, e)
			}
		}
	}

	// A run-time CEL error: the rule's entry is an error naming the
	// condition, the decision fails safe, on both evaluators.
	boom := []Rule{condRule("e", VerdictAutoDeny, `user == "bob" or cel "dyn(obs.commandLine) > 3"`, nil)}
	in = Input{Flow: FlowUAC, At: semAt, Explain: true, Observation: Observation{SubjectUsername: "alice", TargetExecutablePath: `C:\x\a.exe`, CommandLine: "abcd"}}
	for name, rs := range condSets(t, boom, nil, false) {
		for i, decide := range []func(*Input) Decision{rs.Decide, rs.DecideReference} {
			d := decide(&in)
			if d.Outcome != OutcomePending || d.Error == "" || len(d.Explain) != 1 {
				t.Fatalf("%s/%d: got %v with trace %+v", name, i, d, d.Explain)
			}
			e := d.Explain[0]
			if e.Result != ResultError || e.Criterion != "condition" || !strings.Contains(e.Detail, "no such overload") || e.Detail != d.Error {
				t.Errorf("%s/%d: error entry %+v (decision error %q)", name, i, e, d.Error)
			}
		}
	}

	// A negated atom is shown negated, with the literal's result; an
	// absent key under it is not an error.
	neg := []Rule{condRule("n", VerdictAutoDeny, `not cel "obs.commandLine.size() > 3" and user == "bob" or user == "carol"`, nil)}
	for _, c := range []struct{ cmd, want string }{
		{"", `cel !(obs.commandLine.size() > 3): unknown (commandLine absent); user "bob": false; user "carol": false`},
		{"ab", `cel !(obs.commandLine.size() > 3): true; user "bob": false; user "carol": false`},
		{"abcd", `cel !(obs.commandLine.size() > 3): false; user "bob": false; user "carol": false`},
	} {
		in.Observation.CommandLine = c.cmd
		for name, rs := range condSets(t, neg, nil, false) {
			d := rs.Decide(&in)
			if d.Error != "" || len(d.Explain) != 2 || d.Explain[0].Result != ResultNoMatch || !strings.HasSuffix(d.Explain[0].Detail, c.want) {
				t.Errorf("%s, command line %q: got %v with trace %+v, want detail ending %q", name, c.cmd, d, d.Explain, c.want)
			}
		}
	}
}
