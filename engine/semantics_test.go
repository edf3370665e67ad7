package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Table tests of the decision chain (pam-semantics §2–§6). Every case is
// decided by both the indexed native path (Decide) and the pure CEL path
// (DecideReference), each with and without explain, and each result must
// equal the expectation.

var (
	semAt    = time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC) // a Monday
	semT0    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	semHashA = strings.Repeat("ab", 32)
	semHashB = strings.Repeat("cd", 32)
	semTPA   = strings.Repeat("1f", 32)
	semTPB   = strings.Repeat("2e", 32)
	semSite1 = "11111111-1111-4111-8111-111111111111"
	semSite2 = "22222222-2222-4222-8222-222222222222"
	semGrp   = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	semGrp2  = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
)

func semIntP(n int) *int { return &n }

// semWant is the part of a Decision a case pins. RuleName is implied by
// RuleID (semRule names rule X "name-X"); Err says whether Error is set.
type semWant struct {
	Outcome          Outcome
	Verdict          Verdict
	RuleID           string
	DurationMinutes  int
	DecidedBy        DecidedBy
	SoftwarePolicyID string
	Err              bool
}

func (w semWant) String() string {
	return fmt.Sprintf("{%s verdict=%q rule=%q dur=%d by=%q policy=%q err=%v}",
		w.Outcome, w.Verdict, w.RuleID, w.DurationMinutes, w.DecidedBy, w.SoftwarePolicyID, w.Err)
}

func semGot(d Decision) semWant {
	return semWant{d.Outcome, d.Verdict, d.RuleID, d.DurationMinutes, d.DecidedBy, d.SoftwarePolicyID, d.Error != ""}
}

// semByRule is the decision of rule id with verdict v (auto_approve with
// the default 15 minutes).
func semByRule(id string, v Verdict) semWant {
	w := semWant{Verdict: v, RuleID: id, DecidedBy: DecidedByRule}
	switch v {
	case VerdictAutoDeny:
		w.Outcome = OutcomeDenied
	case VerdictAutoApprove:
		w.Outcome, w.DurationMinutes = OutcomeAutoApproved, DefaultGrantMinutes
	default:
		w.Outcome = OutcomePending
	}
	return w
}

func semDenied(id string) semWant { return semByRule(id, VerdictAutoDeny) }

func semApproved(id string, minutes int) semWant {
	return semWant{Outcome: OutcomeAutoApproved, Verdict: VerdictAutoApprove, RuleID: id, DurationMinutes: minutes, DecidedBy: DecidedByRule}
}

var (
	semOrgPending = semWant{Outcome: OutcomePending, Verdict: VerdictRequireApproval, DecidedBy: DecidedByOrgDefault}
	semOrgDenied  = semWant{Outcome: OutcomeDenied, Verdict: VerdictAutoDeny, DecidedBy: DecidedByOrgDefault}
	semHuman      = semWant{Outcome: OutcomePending} // tool/JIT without a match: no verdict, no stage
	semFailSafe   = semWant{Outcome: OutcomePending, Err: true}
)

// semRule builds an enabled rule named "name-<id>" with priority 100 and a
// fixed createdAt; f sets criteria.
func semRule(id string, v Verdict, f func(r *Rule)) Rule {
	r := Rule{ID: id, Name: "name-" + id, Enabled: true, Priority: DefaultRulePriority, Verdict: v, CreatedAt: semT0}
	if f != nil {
		f(&r)
	}
	return r
}

// semDeny is the common "one auto_deny rule r with these criteria" shape.
func semDeny(f func(r *Rule)) []Rule { return []Rule{semRule("r", VerdictAutoDeny, f)} }

func semUAC(f func(o *Observation)) Input {
	in := Input{Flow: FlowUAC, At: semAt, Observation: Observation{SubjectUsername: "alice", TargetExecutablePath: `C:\Tools\app.exe`}}
	if f != nil {
		f(&in.Observation)
	}
	return in
}

func semTool(tool string, tier *int, f func(o *Observation)) Input {
	in := Input{Flow: FlowToolAct, At: semAt, Observation: Observation{SubjectUsername: "alice", ToolName: tool, RiskTier: tier}}
	if f != nil {
		f(&in.Observation)
	}
	return in
}

func semJIT(f func(o *Observation)) Input {
	in := Input{Flow: FlowJITAdmin, At: semAt, Observation: Observation{SubjectUsername: "alice"}}
	if f != nil {
		f(&in.Observation)
	}
	return in
}

func semAtTime(in Input, at time.Time) Input { in.At = at; return in }

type semCase struct {
	name    string
	rules   []Rule
	groups  []SignerGroup
	lenient bool
	in      Input
	want    semWant
}

// semDecideBoth decides in through both paths, with and without explain,
// and compares every result with want.
func semDecideBoth(t *testing.T, rs *RuleSet, in Input, want semWant) {
	t.Helper()
	for _, path := range []struct {
		name string
		f    func(*Input) Decision
	}{{"Decide", rs.Decide}, {"DecideReference", rs.DecideReference}} {
		for _, explain := range []bool{false, true} {
			in := in
			in.Explain = explain
			d := path.f(&in)
			if got := semGot(d); got != want {
				t.Errorf("%s(explain=%v) = %v, want %v (decision: %v)", path.name, explain, got, want, d)
				continue
			}
			wantName := ""
			if want.RuleID != "" {
				wantName = "name-" + want.RuleID
			}
			if d.RuleName != wantName {
				t.Errorf("%s(explain=%v): RuleName = %q, want %q", path.name, explain, d.RuleName, wantName)
			}
			if !explain && d.Explain != nil {
				t.Errorf("%s(explain=false): got %d trace entries", path.name, len(d.Explain))
			}
		}
	}
}

func semRun(t *testing.T, cases []semCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs, err := Compile(c.rules, c.groups, CompileOptions{Lenient: c.lenient})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			semDecideBoth(t, rs, c.in, c.want)
		})
	}
}

func TestSemanticsHash(t *testing.T) {
	rule := semDeny(func(r *Rule) { r.MatchHash = sp(semHashA) })
	hash := func(h string) Input { return semUAC(func(o *Observation) { o.TargetExecutableHash = h }) }
	semRun(t, []semCase{
		{"equal", rule, nil, false, hash(semHashA), semDenied("r")},
		{"rule uppercase", semDeny(func(r *Rule) { r.MatchHash = sp(strings.ToUpper(semHashA)) }), nil, false, hash(semHashA), semDenied("r")},
		{"observed uppercase", rule, nil, false, hash(strings.ToUpper(semHashA)), semDenied("r")},
		{"different", rule, nil, false, hash(semHashB), semOrgPending},
		{"absent", rule, nil, false, semUAC(nil), semOrgPending},
		{"observed padded is not trimmed", rule, nil, false, hash(semHashA + " "), semOrgPending},
	})
}

func TestSemanticsSigner(t *testing.T) {
	rule := semDeny(func(r *Rule) { r.MatchSigner = sp("Vendor Inc.") })
	padded := semDeny(func(r *Rule) { r.MatchSigner = sp("Vendor Inc. ") })
	signer := func(s string) Input { return semUAC(func(o *Observation) { o.TargetExecutableSigner = s }) }
	semRun(t, []semCase{
		{"case-insensitive", rule, nil, false, signer("VENDOR inc."), semDenied("r")},
		{"rule trailing space not trimmed", padded, nil, false, signer("Vendor Inc."), semOrgPending},
		{"observed trailing space not trimmed", rule, nil, false, signer("Vendor Inc. "), semOrgPending},
		{"both with trailing space", padded, nil, false, signer("vendor inc. "), semDenied("r")},
		{"prefix is not enough", semDeny(func(r *Rule) { r.MatchSigner = sp("Vendor") }), nil, false, signer("Vendor Inc."), semOrgPending},
		{"absent", rule, nil, false, semUAC(nil), semOrgPending},
		{"quotes and backslashes", semDeny(func(r *Rule) { r.MatchSigner = sp(`Vendor "Q" \ Co`) }), nil, false, signer(`vendor "q" \ co`), semDenied("r")},
		{"unicode case folding", semDeny(func(r *Rule) { r.MatchSigner = sp("Société Générale") }), nil, false, signer("SOCIÉTÉ GÉNÉRALE"), semDenied("r")},
	})
}

func TestSemanticsThumbprint(t *testing.T) {
	rule := semDeny(func(r *Rule) { r.MatchSignerThumbprint = sp(semTPA) })
	tp := func(s string) Input { return semUAC(func(o *Observation) { o.TargetExecutableSignerThumbprint = s }) }
	bad := "zz" + semTPA[2:]
	semRun(t, []semCase{
		{"equal", rule, nil, false, tp(semTPA), semDenied("r")},
		{"rule uppercase", semDeny(func(r *Rule) { r.MatchSignerThumbprint = sp(strings.ToUpper(semTPA)) }), nil, false, tp(semTPA), semDenied("r")},
		{"observed uppercase", rule, nil, false, tp(strings.ToUpper(semTPA)), semDenied("r")},
		{"rule padded is trimmed", semDeny(func(r *Rule) { r.MatchSignerThumbprint = sp("  " + semTPA + "\t") }), nil, false, tp(semTPA), semDenied("r")},
		{"different", rule, nil, false, tp(semTPB), semOrgPending},
		{"observed malformed (63 hex)", rule, nil, false, tp(semTPA[:63]), semOrgPending},
		{"observed malformed (non-hex)", rule, nil, false, tp(strings.Repeat("zz", 32)), semOrgPending},
		{"rule malformed (lenient) never matches, even its own text", semDeny(func(r *Rule) { r.MatchSignerThumbprint = sp(bad) }), nil, true, tp(bad), semOrgPending},
		{"rule malformed short (lenient) never matches", semDeny(func(r *Rule) { r.MatchSignerThumbprint = sp("abc") }), nil, true, tp("abc"), semOrgPending},
		{"absent", rule, nil, false, semUAC(func(o *Observation) { o.TargetExecutableSigner = "Vendor" }), semOrgPending},
	})
}

func TestSemanticsSignerGroup(t *testing.T) {
	group := SignerGroup{ID: semGrp, Name: "trusted", Signers: []SignerEntry{
		CNEntry("Acme Corp"),
		{Thumbprint: sp(semTPA)}, // pinned, no CN
		{SubjectCN: sp("Both Co"), Thumbprint: sp(strings.ToUpper(semTPB))}, // both fields
		{SubjectCN: sp("Bad Co"), Thumbprint: sp("not-a-thumbprint")},       // malformed: dropped entirely
		{SubjectCN: sp("Blank Co"), Thumbprint: sp("  ")},                   // blank thumbprint: a CN entry
		{}, // neither field: dropped
	}}
	onlyBad := SignerGroup{ID: semGrp2, Name: "bad", Signers: []SignerEntry{{SubjectCN: sp("Bad Co"), Thumbprint: sp("xyz")}}}
	empty := SignerGroup{ID: semGrp2, Name: "empty", Signers: []SignerEntry{}}
	grpRule := semDeny(func(r *Rule) { r.MatchSignerGroupID = sp(semGrp) })
	negRule := semDeny(func(r *Rule) { r.MatchSignerGroupID = sp(semGrp); r.MatchNegate = []NegateKey{NegSignerGroup} })
	grp2Rule := semDeny(func(r *Rule) { r.MatchSignerGroupID = sp(semGrp2) })
	neg2Rule := semDeny(func(r *Rule) { r.MatchSignerGroupID = sp(semGrp2); r.MatchNegate = []NegateKey{NegSignerGroup} })
	gs := []SignerGroup{group}
	cn := func(s string) Input { return semUAC(func(o *Observation) { o.TargetExecutableSigner = s }) }
	cnTP := func(s, tp string) Input {
		return semUAC(func(o *Observation) { o.TargetExecutableSigner, o.TargetExecutableSignerThumbprint = s, tp })
	}
	semRun(t, []semCase{
		{"bare CN entry, case-insensitive", grpRule, gs, false, cn("ACME CORP"), semDenied("r")},
		{"bare CN entry with any thumbprint", grpRule, gs, false, cnTP("acme corp", semHashB), semDenied("r")},
		{"bare CN entry, other CN", grpRule, gs, false, cn("Acme Corporation"), semOrgPending},
		{"pinned entry, only a thumbprint observed", grpRule, gs, false, cnTP("", semTPA), semDenied("r")},
		{"pinned entry, uppercase observed thumbprint", grpRule, gs, false, cnTP("Whoever", strings.ToUpper(semTPA)), semDenied("r")},
		{"pinned entry, other thumbprint", grpRule, gs, false, cnTP("Whoever", semHashB), semOrgPending},
		{"both-field entry, both hold", grpRule, gs, false, cnTP("both co", semTPB), semDenied("r")},
		{"both-field entry never falls back to CN", grpRule, gs, false, cn("Both Co"), semOrgPending},
		{"both-field entry, CN differs", grpRule, gs, false, cnTP("Other Co", semTPB), semOrgPending},
		{"malformed-thumbprint entry dropped, not degraded to CN", grpRule, gs, false, cn("Bad Co"), semOrgPending},
		{"malformed-thumbprint entry dropped, even with its text", grpRule, gs, false, cnTP("Bad Co", "not-a-thumbprint"), semOrgPending},
		{"blank thumbprint with CN is a CN entry", grpRule, gs, false, cn("blank co"), semDenied("r")},
		{"no CN and no thumbprint observed", grpRule, gs, false, semUAC(nil), semOrgPending},
		{"negated, CN outside the group", negRule, gs, false, cn("Other Co"), semDenied("r")},
		{"negated, CN in the group", negRule, gs, false, cn("Acme Corp"), semOrgPending},
		{"negated, absent data", negRule, gs, false, semUAC(nil), semOrgPending},
		{"missing group fails closed", grpRule, nil, false, cn("Acme Corp"), semOrgPending},
		{"missing group fails closed, negated", negRule, nil, false, cn("Other Co"), semOrgPending},
		{"missing group (other id) fails closed", grp2Rule, gs, false, cnTP("Acme Corp", semTPA), semOrgPending},
		{"empty group fails closed", grp2Rule, []SignerGroup{empty}, false, cn("Acme Corp"), semOrgPending},
		{"empty group fails closed, negated", neg2Rule, []SignerGroup{empty}, false, cn("Acme Corp"), semOrgPending},
		{"group of only malformed entries fails closed", grp2Rule, []SignerGroup{onlyBad}, false, cn("Bad Co"), semOrgPending},
		{"group of only malformed entries fails closed, negated", neg2Rule, []SignerGroup{onlyBad}, false, cn("Other"), semOrgPending},
	})
}

func TestSemanticsPathAndProcess(t *testing.T) {
	pf := semDeny(func(r *Rule) { r.MatchPathGlob = sp(`C:\Program Files\**`) })
	dl := semDeny(func(r *Rule) { r.MatchPathGlob = sp(`C:\Users\*\Downloads\*.exe`) })
	parent := semDeny(func(r *Rule) { r.MatchParentImage = sp(`**\explorer.exe`) })
	cmd := semDeny(func(r *Rule) { r.MatchCommandLine = sp("--Silent") })
	path := func(p string) Input { return semUAC(func(o *Observation) { o.TargetExecutablePath = p }) }
	par := func(p string) Input { return semUAC(func(o *Observation) { o.ParentImage = p }) }
	cl := func(c string) Input { return semUAC(func(o *Observation) { o.CommandLine = c }) }
	semRun(t, []semCase{
		{"path glob below", pf, nil, false, path(`c:/program files/x/y.exe`), semDenied("r")},
		{"path glob not the directory itself", pf, nil, false, path(`C:\Program Files`), semOrgPending},
		{"path glob other dir", pf, nil, false, path(`C:\Program Files (x86)\a.exe`), semOrgPending},
		{"path glob ? literal", semDeny(func(r *Rule) { r.MatchPathGlob = sp(`C:\a?.exe`) }), nil, false, path(`C:\ab.exe`), semOrgPending},
		{"path glob literal ?", semDeny(func(r *Rule) { r.MatchPathGlob = sp(`C:\a?.exe`) }), nil, false, path(`c:/A?.EXE`), semDenied("r")},
		{"path glob single star one segment", dl, nil, false, path(`C:\Users\bob\Downloads\x.EXE`), semDenied("r")},
		{"path glob single star does not cross", dl, nil, false, path(`C:\Users\bob\x\Downloads\x.exe`), semOrgPending},
		{"path glob exact", semDeny(func(r *Rule) { r.MatchPathGlob = sp(`C:\Tools\App.exe`) }), nil, false, semUAC(nil), semDenied("r")},
		{"path glob extension", semDeny(func(r *Rule) { r.MatchPathGlob = sp(`**.msi`) }), nil, false, path(`D:\a\b.MSI`), semDenied("r")},
		{"path glob base name", semDeny(func(r *Rule) { r.MatchPathGlob = sp(`**\App.exe`) }), nil, false, semUAC(nil), semDenied("r")},
		{"path glob base name needs the separator", semDeny(func(r *Rule) { r.MatchPathGlob = sp(`**\App.exe`) }), nil, false, path(`C:\Tools\myapp.exe`), semOrgPending},
		{"path glob short prefix", semDeny(func(r *Rule) { r.MatchPathGlob = sp(`C:\*`) }), nil, false, path(`c:/app.exe`), semDenied("r")},
		{"path glob short prefix does not cross", semDeny(func(r *Rule) { r.MatchPathGlob = sp(`C:\*`) }), nil, false, semUAC(nil), semOrgPending},
		{"path glob with quotes and backslashes in CEL", semDeny(func(r *Rule) { r.MatchPathGlob = sp(`C:\"q"\*`) }), nil, false, path(`C:\"Q"\x`), semDenied("r")},
		{"parent image", parent, nil, false, par(`C:\Windows\Explorer.EXE`), semDenied("r")},
		{"parent image needs a separator", parent, nil, false, par(`explorer.exe`), semOrgPending},
		{"parent image absent", parent, nil, false, semUAC(nil), semOrgPending},
		{"parent image is not the path", parent, nil, false, path(`C:\Windows\explorer.exe`), semOrgPending},
		{"command line substring case-insensitive", cmd, nil, false, cl(`setup.exe --SILENT /norestart`), semDenied("r")},
		{"command line is the substring", cmd, nil, false, cl(`--silent`), semDenied("r")},
		{"command line without it", cmd, nil, false, cl(`setup.exe --sil ent`), semOrgPending},
		{"command line absent", cmd, nil, false, semUAC(nil), semOrgPending},
		{"command line with quotes and backslashes", semDeny(func(r *Rule) { r.MatchCommandLine = sp(`"c:\program files\x.exe" /S`) }), nil, false,
			cl(`"C:\Program Files\X.exe" /s /norestart`), semDenied("r")},
		{"command line with control characters", semDeny(func(r *Rule) { r.MatchCommandLine = sp("a\tb\x00c") }), nil, false,
			cl("xA\tB\x00Cx"), semDenied("r")},
	})
}

func TestSemanticsUserAndGroups(t *testing.T) {
	user := semDeny(func(r *Rule) { r.MatchUser = sp("alice") })
	domUser := semDeny(func(r *Rule) { r.MatchUser = sp(`CORP\alice`) })
	ad := semDeny(func(r *Rule) { r.MatchAdGroup = sp("Domain Admins") })
	adNeg := semDeny(func(r *Rule) { r.MatchAdGroup = sp("Domain Admins"); r.MatchNegate = []NegateKey{NegAdGroup} })
	withUser := func(u string) Input { return semUAC(func(o *Observation) { o.SubjectUsername = u }) }
	uacGroups := func(g []string) Input { return semUAC(func(o *Observation) { o.AdGroups = g }) }
	jitGroups := func(g []string) Input { return semJIT(func(o *Observation) { o.AdGroups = g }) }
	semRun(t, []semCase{
		{"user case-insensitive", user, nil, false, withUser("ALICE"), semDenied("r")},
		{"user no domain stripping", user, nil, false, withUser(`CORP\alice`), semOrgPending},
		{"user no UPN stripping", user, nil, false, withUser(`alice@corp.example`), semOrgPending},
		{"domain user case-insensitive", domUser, nil, false, withUser(`corp\ALICE`), semDenied("r")},
		{"domain user vs bare", domUser, nil, false, withUser(`alice`), semOrgPending},
		{"user on JIT", user, nil, false, semJIT(nil), semDenied("r")},
		{"user-only rule does not govern a tool action", user, nil, false, semTool("run_script", nil, nil), semHuman},
		{"AD group, any group equal case-insensitively", ad, nil, false, jitGroups([]string{"Users", "DOMAIN ADMINS"}), semDenied("r")},
		{"AD group, not in list", ad, nil, false, jitGroups([]string{"Users", "Domain Admins2"}), semHuman},
		{"AD group, empty list", ad, nil, false, jitGroups([]string{}), semHuman},
		{"AD group, absent", ad, nil, false, jitGroups(nil), semHuman},
		{"AD group on uac", ad, nil, false, uacGroups([]string{"domain admins"}), semDenied("r")},
		{"AD group on uac, absent", ad, nil, false, uacGroups(nil), semOrgPending},
		{"negated AD group, empty list is present", adNeg, nil, false, jitGroups([]string{}), semDenied("r")},
		{"negated AD group, other groups", adNeg, nil, false, jitGroups([]string{"Users"}), semDenied("r")},
		{"negated AD group, in list", adNeg, nil, false, jitGroups([]string{"users", "domain admins"}), semHuman},
		{"negated AD group, absent never matches", adNeg, nil, false, jitGroups(nil), semHuman},
		{"negated AD group on uac, empty list", adNeg, nil, false, uacGroups([]string{}), semDenied("r")},
		{"negated AD group on uac, absent never matches", adNeg, nil, false, uacGroups(nil), semOrgPending},
	})
}

func TestSemanticsToolAndRisk(t *testing.T) {
	tool := semDeny(func(r *Rule) { r.MatchToolName = sp("run_script") })
	tier0 := semDeny(func(r *Rule) { r.MatchRiskTier = semIntP(0) })
	tier2 := semDeny(func(r *Rule) { r.MatchRiskTier = semIntP(2) })
	both := semDeny(func(r *Rule) { r.MatchToolName = sp("run_script"); r.MatchRiskTier = semIntP(3) })
	semRun(t, []semCase{
		{"tool name case-insensitive", tool, nil, false, semTool("Run_Script", nil, nil), semDenied("r")},
		{"tool name exact, prefix not stripped", tool, nil, false, semTool("mcp__breeze__run_script", nil, nil), semHuman},
		{"tool name exact, no substring", tool, nil, false, semTool("run_script_v2", nil, nil), semHuman},
		{"risk tier 0 equal", tier0, nil, false, semTool("x", semIntP(0), nil), semDenied("r")},
		{"risk tier 0 vs absent", tier0, nil, false, semTool("x", nil, nil), semHuman},
		{"risk tier 0 vs 1", tier0, nil, false, semTool("x", semIntP(1), nil), semHuman},
		{"risk tier exact, not >=", tier2, nil, false, semTool("x", semIntP(3), nil), semHuman},
		{"risk tier exact, not <=", tier2, nil, false, semTool("x", semIntP(1), nil), semHuman},
		{"risk tier 2 equal", tier2, nil, false, semTool("x", semIntP(2), nil), semDenied("r")},
		{"tool and tier both hold", both, nil, false, semTool("RUN_SCRIPT", semIntP(3), nil), semDenied("r")},
		{"tool holds, tier not", both, nil, false, semTool("run_script", semIntP(2), nil), semHuman},
		{"tool rule on JIT: no tool data", tool, nil, false, semJIT(nil), semHuman},
		{"tier-0 rule on JIT: no tier data", tier0, nil, false, semJIT(nil), semHuman},
		{"tool rule on uac: no tool data", tool, nil, false, semUAC(nil), semOrgPending},
		{"tier-0 rule on uac: no tier data", tier0, nil, false, semUAC(nil), semOrgPending},
	})
}

// TestSemanticsNegation covers matchNegate on every criterion with
// matching, non-matching and absent data.
func TestSemanticsNegation(t *testing.T) {
	type negCase struct {
		key     NegateKey
		set     func(r *Rule)
		in      func(v string) Input // v: "same", "other" or "" (absent)
		noMatch semWant
	}
	uac := func(f func(o *Observation, same bool)) func(string) Input {
		return func(v string) Input {
			return semUAC(func(o *Observation) {
				if v != "" {
					f(o, v == "same")
				}
			})
		}
	}
	pick := func(same bool, a, b string) string {
		if same {
			return a
		}
		return b
	}
	cases := []negCase{
		{NegHash, func(r *Rule) { r.MatchHash = sp(semHashA) },
			uac(func(o *Observation, s bool) { o.TargetExecutableHash = pick(s, semHashA, semHashB) }), semOrgPending},
		{NegSigner, func(r *Rule) { r.MatchSigner = sp("Vendor") },
			uac(func(o *Observation, s bool) { o.TargetExecutableSigner = pick(s, "VENDOR", "Other") }), semOrgPending},
		{NegSignerThumbprint, func(r *Rule) { r.MatchSignerThumbprint = sp(semTPA) },
			uac(func(o *Observation, s bool) { o.TargetExecutableSignerThumbprint = pick(s, semTPA, semTPB) }), semOrgPending},
		{NegPathGlob, func(r *Rule) { r.MatchPathGlob = sp(`C:\Windows\**`) },
			func(v string) Input {
				return semUAC(func(o *Observation) {
					o.TargetExecutablePath = map[string]string{"same": `C:\Windows\x.exe`, "other": `D:\x.exe`}[v]
				})
			}, semOrgPending},
		{NegParentImage, func(r *Rule) { r.MatchParentImage = sp(`**\cmd.exe`) },
			uac(func(o *Observation, s bool) { o.ParentImage = pick(s, `C:\Windows\cmd.exe`, `C:\Windows\explorer.exe`) }), semOrgPending},
		{NegCommandLine, func(r *Rule) { r.MatchCommandLine = sp("/quiet") },
			uac(func(o *Observation, s bool) { o.CommandLine = pick(s, "msiexec /QUIET", "msiexec /i") }), semOrgPending},
		{NegUser, func(r *Rule) { r.MatchUser = sp("alice") },
			func(v string) Input {
				return semJIT(func(o *Observation) { o.SubjectUsername = map[string]string{"same": "Alice", "other": "bob"}[v] })
			}, semHuman},
		{NegAdGroup, func(r *Rule) { r.MatchAdGroup = sp("admins") },
			func(v string) Input {
				return semJIT(func(o *Observation) { o.AdGroups = map[string][]string{"same": {"ADMINS"}, "other": {"users"}}[v] })
			}, semHuman},
		{NegToolName, func(r *Rule) { r.MatchToolName = sp("run_script") },
			func(v string) Input {
				return semTool(map[string]string{"same": "run_script", "other": "file_write"}[v], semIntP(2), nil)
			}, semHuman},
		{NegRiskTier, func(r *Rule) { r.MatchRiskTier = semIntP(2) },
			func(v string) Input {
				return semTool("x", map[string]*int{"same": semIntP(2), "other": semIntP(3)}[v], nil)
			}, semHuman},
	}
	var sc []semCase
	for _, c := range cases {
		plain := semDeny(c.set)
		neg := semDeny(func(r *Rule) { c.set(r); r.MatchNegate = []NegateKey{c.key} })
		dup := semDeny(func(r *Rule) { c.set(r); r.MatchNegate = []NegateKey{c.key, c.key} })
		k := string(c.key)
		sc = append(sc,
			semCase{k + "/plain same", plain, nil, false, c.in("same"), semDenied("r")},
			semCase{k + "/plain other", plain, nil, false, c.in("other"), c.noMatch},
			semCase{k + "/plain absent", plain, nil, false, c.in(""), c.noMatch},
			semCase{k + "/negated same", neg, nil, false, c.in("same"), c.noMatch},
			semCase{k + "/negated other", neg, nil, false, c.in("other"), semDenied("r")},
			semCase{k + "/negated absent never matches", neg, nil, false, c.in(""), c.noMatch},
			semCase{k + "/duplicate key negates once", dup, nil, false, c.in("other"), semDenied("r")},
			semCase{k + "/duplicate key negates once, same", dup, nil, false, c.in("same"), c.noMatch},
		)
	}
	// Negate keys for criteria the rule does not set have no effect.
	unrelated := semDeny(func(r *Rule) {
		r.MatchUser = sp("alice")
		r.MatchNegate = []NegateKey{NegHash, NegSigner, NegSignerThumbprint, NegSignerGroup, NegPathGlob,
			NegParentImage, NegCommandLine, NegAdGroup, NegToolName, NegRiskTier}
	})
	perCrit := semDeny(func(r *Rule) {
		r.MatchUser = sp("alice")
		r.MatchSigner = sp("Vendor")
		r.MatchNegate = []NegateKey{NegSigner}
	})
	sc = append(sc,
		semCase{"unset keys/no effect, matching user", unrelated, nil, false, semUAC(nil), semDenied("r")},
		semCase{"unset keys/no effect, other user", unrelated, nil, false, semUAC(func(o *Observation) { o.SubjectUsername = "bob" }), semOrgPending},
		semCase{"per criterion/negated signer, plain user", perCrit, nil, false,
			semUAC(func(o *Observation) { o.TargetExecutableSigner = "Other" }), semDenied("r")},
		semCase{"per criterion/user still positive", perCrit, nil, false,
			semUAC(func(o *Observation) { o.SubjectUsername = "bob"; o.TargetExecutableSigner = "Other" }), semOrgPending},
		semCase{"per criterion/negated signer absent", perCrit, nil, false, semUAC(nil), semOrgPending},
	)
	semRun(t, sc)
}

func TestSemanticsTimeWindow(t *testing.T) {
	d := func(y int, mo time.Month, day, h, mi, s int) time.Time {
		return time.Date(y, mo, day, h, mi, s, 0, time.UTC)
	}
	win := func(start, end string, days []int, tz *string) []Rule {
		return semDeny(func(r *Rule) {
			r.MatchUser = sp("alice")
			r.TimeWindow = &TimeWindow{Start: start, End: end, Days: days, Timezone: tz}
		})
	}
	at := func(t time.Time) Input { return semAtTime(semUAC(nil), t) }
	office := win("09:00", "17:00", nil, nil)
	one := win("12:30", "12:30", nil, nil)
	night := win("22:00", "06:00", nil, nil)
	friNight := win("22:00", "06:00", []int{5}, nil)
	tokyoMon := win("07:00", "09:00", []int{1}, sp("Asia/Tokyo"))
	tokyoSun := win("07:00", "09:00", []int{0}, sp("Asia/Tokyo"))
	nyMorning := win("09:00", "10:00", nil, sp("America/New_York"))
	utcMorning := win("09:00", "10:00", []int{}, nil)
	midnight := win("00:00", "00:00", nil, nil)
	london := win("01:00", "01:59", nil, sp("Europe/London"))
	london0130 := win("01:30", "01:30", nil, sp("Europe/London"))
	ny0130 := win("01:30", "01:30", nil, sp("America/New_York"))
	ny0230 := win("02:30", "02:30", nil, sp("America/New_York"))
	nyRepeat := win("01:00", "01:59", nil, sp("America/New_York"))
	shortHour := win("7:05", "7:05", nil, nil)
	m, n := semDenied("r"), semOrgPending
	semRun(t, []semCase{
		{"start inclusive", office, nil, false, at(d(2026, 6, 15, 9, 0, 0)), m},
		{"before start", office, nil, false, at(d(2026, 6, 15, 8, 59, 59)), n},
		{"end 17:00 includes 17:00:59", office, nil, false, at(d(2026, 6, 15, 17, 0, 59)), m},
		{"after end", office, nil, false, at(d(2026, 6, 15, 17, 1, 0)), n},
		{"start==end one-minute window, :00", one, nil, false, at(d(2026, 6, 15, 12, 30, 0)), m},
		{"start==end one-minute window, :59", one, nil, false, at(d(2026, 6, 15, 12, 30, 59)), m},
		{"start==end one-minute window, next minute", one, nil, false, at(d(2026, 6, 15, 12, 31, 0)), n},
		{"start==end one-minute window, previous minute", one, nil, false, at(d(2026, 6, 15, 12, 29, 59)), n},
		{"H:MM accepted", shortHour, nil, false, at(d(2026, 6, 15, 7, 5, 30)), m},
		{"midnight is minute 0", midnight, nil, false, at(d(2026, 6, 15, 0, 0, 30)), m},
		{"midnight window not at 23:59", midnight, nil, false, at(d(2026, 6, 15, 23, 59, 0)), n},
		{"overnight at start", night, nil, false, at(d(2026, 6, 15, 22, 0, 0)), m},
		{"overnight before midnight", night, nil, false, at(d(2026, 6, 15, 23, 30, 0)), m},
		{"overnight after midnight", night, nil, false, at(d(2026, 6, 16, 3, 0, 0)), m},
		{"overnight end inclusive", night, nil, false, at(d(2026, 6, 16, 6, 0, 59)), m},
		{"overnight after end", night, nil, false, at(d(2026, 6, 16, 6, 1, 0)), n},
		{"overnight before start", night, nil, false, at(d(2026, 6, 15, 21, 59, 59)), n},
		{"overnight midday", night, nil, false, at(d(2026, 6, 15, 12, 0, 0)), n},
		{"Friday-only overnight, Friday 23:00", friNight, nil, false, at(d(2026, 6, 19, 23, 0, 0)), m},
		{"Friday-only overnight, Saturday 02:00 not active", friNight, nil, false, at(d(2026, 6, 20, 2, 0, 0)), n},
		{"Friday-only overnight, Friday 02:00 active", friNight, nil, false, at(d(2026, 6, 19, 2, 0, 0)), m},
		{"Friday-only overnight, Thursday 23:00", friNight, nil, false, at(d(2026, 6, 18, 23, 0, 0)), n},
		{"weekday of the zone: Sunday UTC is Monday in Tokyo", tokyoMon, nil, false, at(d(2026, 6, 14, 23, 0, 0)), m},
		{"weekday of the zone: not Sunday in Tokyo", tokyoSun, nil, false, at(d(2026, 6, 14, 23, 0, 0)), n},
		{"weekday of the zone: Monday UTC evening is Tuesday in Tokyo", tokyoMon, nil, false, at(d(2026, 6, 15, 23, 0, 0)), n},
		{"absent timezone is UTC, empty days every day", utcMorning, nil, false, at(d(2026, 6, 15, 9, 30, 0)), m},
		{"absent timezone is UTC, on a Sunday too", utcMorning, nil, false, at(d(2026, 6, 14, 9, 30, 0)), m},
		{"New York morning not at 09:30 UTC", nyMorning, nil, false, at(d(2026, 6, 15, 9, 30, 0)), n},
		{"New York morning at 13:30 UTC (EDT)", nyMorning, nil, false, at(d(2026, 6, 15, 13, 30, 0)), m},
		{"New York morning at 14:30 UTC in winter (EST)", nyMorning, nil, false, at(d(2026, 1, 15, 14, 30, 0)), m},
		{"New York morning not at 13:30 UTC in winter", nyMorning, nil, false, at(d(2026, 1, 15, 13, 30, 0)), n},
		{"instant given in another zone is the same instant", utcMorning, nil, false,
			at(time.Date(2026, 6, 15, 11, 30, 0, 0, time.FixedZone("CEST", 2*3600))), m},
		// DST: spring forward.
		{"NY spring-forward day: 01:30 EST exists", ny0130, nil, false, at(d(2026, 3, 8, 6, 30, 0)), m},
		{"NY spring-forward day: 02:30 skipped (07:30Z is 03:30 EDT)", ny0230, nil, false, at(d(2026, 3, 8, 7, 30, 0)), n},
		{"NY spring-forward day: 02:30 skipped (06:30Z is 01:30 EST)", ny0230, nil, false, at(d(2026, 3, 8, 6, 30, 0)), n},
		{"London spring-forward day: 01:30 skipped (00:30Z is 00:30 GMT)", london0130, nil, false, at(d(2026, 3, 29, 0, 30, 0)), n},
		{"London spring-forward day: 01:30 skipped (01:30Z is 02:30 BST)", london0130, nil, false, at(d(2026, 3, 29, 1, 30, 0)), n},
		{"London spring-forward day: 01:00-01:59 skipped (00:59:59Z)", london, nil, false, at(d(2026, 3, 29, 0, 59, 59)), n},
		{"London spring-forward day: 01:00-01:59 skipped (01:00Z is 02:00 BST)", london, nil, false, at(d(2026, 3, 29, 1, 0, 0)), n},
		{"London day after: 00:30Z is 01:30 BST", london0130, nil, false, at(d(2026, 3, 30, 0, 30, 0)), m},
		// DST: fall back, the 01:xx hour happens twice.
		{"NY fall-back: first 01:30 (EDT)", nyRepeat, nil, false, at(d(2026, 11, 1, 5, 30, 0)), m},
		{"NY fall-back: second 01:30 (EST)", nyRepeat, nil, false, at(d(2026, 11, 1, 6, 30, 0)), m},
		{"NY fall-back: 00:59 EDT", nyRepeat, nil, false, at(d(2026, 11, 1, 4, 59, 0)), n},
		{"NY fall-back: 02:00 EST", nyRepeat, nil, false, at(d(2026, 11, 1, 7, 0, 0)), n},
		{"London fall-back: 01:30 BST", london, nil, false, at(d(2026, 10, 25, 0, 30, 0)), m},
		{"London fall-back: 01:30 GMT", london, nil, false, at(d(2026, 10, 25, 1, 30, 0)), m},
		{"London fall-back: 02:00 GMT", london, nil, false, at(d(2026, 10, 25, 2, 0, 0)), n},
		// A window is an extra condition, never a criterion on its own.
		{"window holds, criterion fails", office, nil, false,
			semAtTime(semUAC(func(o *Observation) { o.SubjectUsername = "bob" }), d(2026, 6, 15, 10, 0, 0)), n},
	})

	// Malformed windows reached via a lenient compile are never active,
	// even at an instant an all-day window covers.
	var mal []semCase
	for _, w := range []TimeWindow{
		{Start: "25:00", End: "23:59"},
		{Start: "00:00", End: "24:00"},
		{Start: "00:00", End: "12:60"},
		{Start: "0:0", End: "23:59"},
		{Start: "", End: "23:59"},
		{Start: "00:00", End: "23:59", Timezone: sp("Mars/Olympus_Mons")},
		{Start: "00:00", End: "23:59", Timezone: sp("")},
		{Start: "00:00", End: "23:59", Timezone: sp("Local")},
		{Start: "00:00", End: "23:59", Timezone: sp("america/new_york")},
		{Start: "00:00", End: "23:59", Timezone: sp("+05:00")},
		{Start: "00:00", End: "23:59", Days: []int{7}},
	} {
		tz := "<nil>"
		if w.Timezone != nil {
			tz = *w.Timezone
		}
		mal = append(mal, semCase{
			name: fmt.Sprintf("malformed %q-%q tz=%q days=%v never active", w.Start, w.End, tz, w.Days),
			rules: semDeny(func(r *Rule) {
				r.MatchUser = sp("alice")
				r.TimeWindow = &w
			}),
			lenient: true, in: at(d(2026, 6, 15, 12, 0, 0)), want: n,
		})
	}
	mal = append(mal, semCase{"all-day control window is active", win("00:00", "23:59", []int{0, 1, 2, 3, 4, 5, 6}, sp("UTC")), nil, false,
		at(d(2026, 6, 15, 12, 0, 0)), m})
	semRun(t, mal)
}

func TestSemanticsOrdering(t *testing.T) {
	user := func(r *Rule) { r.MatchUser = sp("alice") }
	rule := func(id string, v Verdict, prio int, created time.Time) Rule {
		r := semRule(id, v, user)
		r.Priority, r.CreatedAt = prio, created
		return r
	}
	t1, t2 := semT0, semT0.Add(time.Hour)
	req := VerdictRequireApproval
	semRun(t, []semCase{
		{"lower priority number first", []Rule{rule("a", VerdictAutoApprove, 200, t1), rule("b", VerdictAutoDeny, 100, t2)}, nil, false,
			semUAC(nil), semDenied("b")},
		{"priority 0 first", []Rule{rule("a", VerdictAutoApprove, 1, t1), rule("b", VerdictAutoDeny, 0, t2)}, nil, false,
			semUAC(nil), semDenied("b")},
		{"same priority: earlier createdAt first", []Rule{rule("a", VerdictAutoDeny, 100, t2), rule("b", req, 100, t1)}, nil, false,
			semUAC(nil), semByRule("b", req)},
		{"same priority and createdAt: id order", []Rule{rule("r-b", VerdictAutoDeny, 100, t1), rule("r-a", req, 100, t1)}, nil, false,
			semUAC(nil), semByRule("r-a", req)},
		{"ids compare as strings: 10 before 9", []Rule{rule("9", VerdictAutoDeny, 100, t1), rule("10", req, 100, t1)}, nil, false,
			semUAC(nil), semByRule("10", req)},
		{"priority beats createdAt", []Rule{rule("a", VerdictAutoDeny, 2, t1), rule("b", req, 1, t2)}, nil, false,
			semUAC(nil), semByRule("b", req)},
		{"createdAt beats id", []Rule{rule("a", VerdictAutoDeny, 5, t2), rule("b", req, 5, t1)}, nil, false,
			semUAC(nil), semByRule("b", req)},
		{"first match wins, no most-specific", []Rule{
			semRule("broad", VerdictAutoApprove, func(r *Rule) { r.Priority = 1; user(r) }),
			semRule("specific", VerdictAutoDeny, func(r *Rule) { r.Priority = 2; r.MatchHash = sp(semHashA); user(r) }),
		}, nil, false, semUAC(func(o *Observation) { o.TargetExecutableHash = semHashA }), semApproved("broad", 15)},
		{"no deny-overrides", []Rule{
			semRule("allow", VerdictAutoApprove, func(r *Rule) { r.Priority = 1; r.MatchSigner = sp("Vendor") }),
			semRule("deny", VerdictAutoDeny, func(r *Rule) { r.Priority = 2; r.MatchHash = sp(semHashA) }),
		}, nil, false, semUAC(func(o *Observation) { o.TargetExecutableHash = semHashA; o.TargetExecutableSigner = "vendor" }), semApproved("allow", 15)},
		{"earlier non-matching rule skipped", []Rule{
			semRule("bob", VerdictAutoDeny, func(r *Rule) { r.Priority = 1; r.MatchUser = sp("bob") }),
			semRule("alice", req, func(r *Rule) { r.Priority = 2; user(r) }),
		}, nil, false, semUAC(nil), semByRule("alice", req)},
		{"disabled rule skipped", []Rule{
			semRule("off", VerdictAutoApprove, func(r *Rule) { r.Priority = 1; r.Enabled = false; user(r) }),
			semRule("on", VerdictAutoDeny, func(r *Rule) { r.Priority = 2; user(r) }),
		}, nil, false, semUAC(nil), semDenied("on")},
		{"only disabled rules: org default", []Rule{
			semRule("off", VerdictAutoApprove, func(r *Rule) { r.Enabled = false; user(r) }),
		}, nil, false, semUAC(nil), semOrgPending},
		{"disabled tool rule on a tool action", []Rule{
			semRule("off", VerdictAutoApprove, func(r *Rule) { r.Enabled = false; r.MatchToolName = sp("x") }),
		}, nil, false, semTool("x", nil, nil), semHuman},
	})
}

func TestSemanticsSites(t *testing.T) {
	user := func(r *Rule) { r.MatchUser = sp("alice") }
	siteRule := semRule("site", VerdictAutoDeny, func(r *Rule) { r.Priority = 50; r.SiteID = sp(semSite1); user(r) })
	orgRule := semRule("org", VerdictRequireApproval, func(r *Rule) { r.Priority = 100; user(r) })
	lateSite := semRule("site", VerdictAutoDeny, func(r *Rule) { r.Priority = 200; r.SiteID = sp(semSite1); user(r) })
	siteTool := semRule("t", VerdictAutoDeny, func(r *Rule) { r.SiteID = sp(semSite1); r.MatchToolName = sp("x") })
	onSite := func(s string) Input { return semUAC(func(o *Observation) { o.SiteID = s }) }
	org := semByRule("org", VerdictRequireApproval)
	semRun(t, []semCase{
		{"device in the rule's site", []Rule{siteRule, orgRule}, nil, false, onSite(semSite1), semDenied("site")},
		{"device in another site", []Rule{siteRule, orgRule}, nil, false, onSite(semSite2), org},
		{"device without site sees only org-wide", []Rule{siteRule, orgRule}, nil, false, onSite(""), org},
		{"device without site, only site rules", []Rule{siteRule}, nil, false, onSite(""), semOrgPending},
		{"site rule gets no precedence beyond priority", []Rule{lateSite, orgRule}, nil, false, onSite(semSite1), org},
		{"site ids are UUIDs (case-insensitive)", []Rule{siteRule, orgRule}, nil, false, onSite(strings.ToUpper(semSite1)), semDenied("site")},
		{"site rule on JIT", []Rule{siteRule, orgRule}, nil, false, semJIT(func(o *Observation) { o.SiteID = semSite1 }), semDenied("site")},
		{"site tool rule, other site", []Rule{siteTool}, nil, false, semTool("x", nil, func(o *Observation) { o.SiteID = semSite2 }), semHuman},
		{"site tool rule, same site", []Rule{siteTool}, nil, false, semTool("x", nil, func(o *Observation) { o.SiteID = semSite1 }), semDenied("t")},
	})
}

func TestSemanticsToolParticipation(t *testing.T) {
	userOnly := semRule("user", VerdictAutoApprove, func(r *Rule) { r.Priority = 1; r.MatchUser = sp("alice") })
	adNeg := semRule("ad", VerdictAutoApprove, func(r *Rule) { r.Priority = 1; r.MatchAdGroup = sp("admins"); r.MatchNegate = []NegateKey{NegAdGroup} })
	exe := semRule("exe", VerdictAutoDeny, func(r *Rule) { r.Priority = 2; r.MatchPathGlob = sp("**") })
	toolRule := semRule("tool", VerdictRequireApproval, func(r *Rule) { r.Priority = 3; r.MatchToolName = sp("run_script") })
	toolUser := semRule("tooluser", VerdictAutoDeny, func(r *Rule) { r.Priority = 3; r.MatchToolName = sp("run_script"); r.MatchUser = sp("bob") })
	tierRule := semRule("tier", VerdictAutoApprove, func(r *Rule) { r.Priority = 4; r.MatchRiskTier = semIntP(2) })
	rules := []Rule{userOnly, adNeg, exe, toolRule, tierRule}
	semRun(t, []semCase{
		{"user-only rule never governs a tool action", rules, nil, false, semTool("run_script", semIntP(3), nil), semByRule("tool", VerdictRequireApproval)},
		{"tier rule governs", rules, nil, false, semTool("other", semIntP(2), nil), semApproved("tier", 15)},
		{"no tool rule matches", rules, nil, false, semTool("other", semIntP(3), nil), semHuman},
		{"only a user rule", []Rule{userOnly}, nil, false, semTool("run_script", semIntP(2), nil), semHuman},
		{"tool rule with user criterion, other user", []Rule{toolUser}, nil, false, semTool("run_script", nil, nil), semHuman},
		{"tool rule with user criterion, that user", []Rule{toolUser}, nil, false,
			semTool("run_script", nil, func(o *Observation) { o.SubjectUsername = "BOB" }), semDenied("tooluser")},
		{"uac uses the full set", rules, nil, false, semUAC(nil), semApproved("user", 15)},
		{"JIT uses the full set", rules, nil, false, semJIT(nil), semApproved("user", 30)},
		{"JIT: executable rule fails (no path)", []Rule{exe}, nil, false, semJIT(nil), semHuman},
	})
}

func TestSemanticsVerdicts(t *testing.T) {
	rule := func(v Verdict, dur *int) []Rule {
		return []Rule{semRule("r", v, func(r *Rule) { r.MatchUser = sp("alice"); r.ApprovalDurationMinutes = dur })}
	}
	toolRule := func(v Verdict, dur *int) []Rule {
		return []Rule{semRule("r", v, func(r *Rule) { r.MatchToolName = sp("run_script"); r.ApprovalDurationMinutes = dur })}
	}
	tool := semTool("run_script", semIntP(2), nil)
	jit := func(req *int) Input { return semJIT(func(o *Observation) { o.RequestedDurationMinutes = req }) }
	aa, req := VerdictAutoApprove, VerdictRequireApproval
	semRun(t, []semCase{
		{"uac auto_approve default 15", rule(aa, nil), nil, false, semUAC(nil), semApproved("r", 15)},
		{"uac auto_approve rule duration", rule(aa, semIntP(60)), nil, false, semUAC(nil), semApproved("r", 60)},
		{"uac auto_approve 1440 (no JIT clamp)", rule(aa, semIntP(1440)), nil, false, semUAC(nil), semApproved("r", 1440)},
		{"uac ignores a requested duration", rule(aa, nil), nil, false,
			semUAC(func(o *Observation) { o.RequestedDurationMinutes = semIntP(100) }), semApproved("r", 15)},
		{"uac auto_deny", rule(VerdictAutoDeny, semIntP(60)), nil, false, semUAC(nil), semDenied("r")},
		{"uac require_approval", rule(req, semIntP(60)), nil, false, semUAC(nil), semByRule("r", req)},
		{"uac ignore is ignored", rule(VerdictIgnore, nil), nil, false, semUAC(nil),
			semWant{Outcome: OutcomeIgnored, Verdict: VerdictIgnore, RuleID: "r", DecidedBy: DecidedByRule}},
		{"tool auto_approve default 15", toolRule(aa, nil), nil, false, tool, semApproved("r", 15)},
		{"tool auto_approve rule duration", toolRule(aa, semIntP(90)), nil, false, tool, semApproved("r", 90)},
		{"tool auto_approve 1440 (no JIT clamp)", toolRule(aa, semIntP(1440)), nil, false, tool, semApproved("r", 1440)},
		{"tool auto_deny", toolRule(VerdictAutoDeny, nil), nil, false, tool, semDenied("r")},
		{"tool require_approval", toolRule(req, nil), nil, false, tool, semByRule("r", req)},
		{"tool ignore (lenient) is pending", toolRule(VerdictIgnore, nil), nil, true, tool, semByRule("r", VerdictIgnore)},
		{"JIT rule absent, requested absent: 30", rule(aa, nil), nil, false, jit(nil), semApproved("r", 30)},
		{"JIT requested used", rule(aa, nil), nil, false, jit(semIntP(45)), semApproved("r", 45)},
		{"JIT requested 1000 clamped to 480", rule(aa, nil), nil, false, jit(semIntP(1000)), semApproved("r", 480)},
		{"JIT requested 480", rule(aa, nil), nil, false, jit(semIntP(480)), semApproved("r", 480)},
		{"JIT requested 0 clamped to 1", rule(aa, nil), nil, false, jit(semIntP(0)), semApproved("r", 1)},
		{"JIT requested -5 clamped to 1", rule(aa, nil), nil, false, jit(semIntP(-5)), semApproved("r", 1)},
		{"JIT rule duration beats requested", rule(aa, semIntP(20)), nil, false, jit(semIntP(100)), semApproved("r", 20)},
		{"JIT rule duration 600 clamped to 480", rule(aa, semIntP(600)), nil, false, jit(semIntP(10)), semApproved("r", 480)},
		{"JIT rule duration 1", rule(aa, semIntP(1)), nil, false, jit(nil), semApproved("r", 1)},
		{"JIT auto_deny", rule(VerdictAutoDeny, nil), nil, false, jit(semIntP(60)), semDenied("r")},
		{"JIT require_approval", rule(req, nil), nil, false, jit(nil), semByRule("r", req)},
		{"JIT ignore is pending", rule(VerdictIgnore, nil), nil, false, jit(nil), semByRule("r", VerdictIgnore)},
	})
}

func TestSemanticsNoMatch(t *testing.T) {
	bob := semDeny(func(r *Rule) { r.MatchUser = sp("bob") })
	org := func(in Input, v Verdict) Input { in.Org = OrgConfig{DefaultUnmatchedVerdict: v}; return in }
	semRun(t, []semCase{
		{"uac no rules, no org config", nil, nil, false, semUAC(nil), semOrgPending},
		{"uac no match, org require_approval", bob, nil, false, org(semUAC(nil), VerdictRequireApproval), semOrgPending},
		{"uac no match, org auto_deny", bob, nil, false, org(semUAC(nil), VerdictAutoDeny), semOrgDenied},
		{"uac no match, invalid org auto_approve never approves", bob, nil, false, org(semUAC(nil), VerdictAutoApprove), semOrgPending},
		{"uac no match, invalid org ignore", bob, nil, false, org(semUAC(nil), VerdictIgnore), semOrgPending},
		{"tool no match ignores org auto_deny", bob, nil, false, org(semTool("x", semIntP(2), nil), VerdictAutoDeny), semHuman},
		{"JIT no match ignores org auto_deny", bob, nil, false, org(semJIT(nil), VerdictAutoDeny), semHuman},
		{"JIT no rules", nil, nil, false, semJIT(nil), semHuman},
		{"tool no rules", nil, nil, false, semTool("x", nil, nil), semHuman},
	})
}

func TestSemanticsBridge(t *testing.T) {
	pol := func(id string, mode SoftwarePolicyMode, active bool, es ...SoftwarePolicyEntry) SoftwarePolicy {
		return SoftwarePolicy{ID: id, Name: id, Mode: mode, IsActive: active, Executable: es}
	}
	br := func(ps ...SoftwarePolicy) *Bridge {
		b, err := NewBridge(ps...)
		if err != nil {
			t.Fatalf("NewBridge: %v", err)
		}
		return b
	}
	with := func(in Input, b *Bridge) Input { in.Bridge = b; return in }
	hashObs := semUAC(func(o *Observation) { o.TargetExecutableHash = semHashA })
	signerObs := func(s string) Input { return semUAC(func(o *Observation) { o.TargetExecutableSigner = s }) }
	pathObs := func(p string) Input { return semUAC(func(o *Observation) { o.TargetExecutablePath = p }) }
	blockHash := br(pol("block", ModeBlocklist, true, SoftwarePolicyEntry{Name: "evil", SHA256: sp(strings.ToUpper(semHashA))}))
	allowHash := br(pol("allow", ModeAllowlist, true, SoftwarePolicyEntry{Name: "good", SHA256: sp(semHashA)}))
	auditHash := br(pol("audit", ModeAudit, true, SoftwarePolicyEntry{Name: "seen", SHA256: sp(semHashA)}))
	inactive := br(pol("block", ModeBlocklist, false, SoftwarePolicyEntry{Name: "evil", SHA256: sp(semHashA)}))
	nameOnly := br(pol("block", ModeBlocklist, true, SoftwarePolicyEntry{Name: "app.exe"}, SoftwarePolicyEntry{Name: `C:\Tools\app.exe`}))
	signer := br(pol("block", ModeBlocklist, true, SoftwarePolicyEntry{Name: "s", Signer: sp("  Evil Corp ")}))
	publisher := br(pol("block", ModeBlocklist, true, SoftwarePolicyEntry{Name: "p", Publisher: sp("Evil Corp")}))
	pathB := br(pol("block", ModeBlocklist, true, SoftwarePolicyEntry{Name: "games", PathGlob: sp(`C:\Games\**`)}))
	mixed := br(
		pol("allow", ModeAllowlist, true, SoftwarePolicyEntry{Name: "good", SHA256: sp(semHashA)}),
		pol("block", ModeBlocklist, true, SoftwarePolicyEntry{Name: "tools", PathGlob: sp(`C:\Tools\*`)}),
	)
	twoAllow := br(
		pol("allow-path", ModeAllowlist, true, SoftwarePolicyEntry{Name: "tools", PathGlob: sp(`C:\Tools\*`)}),
		pol("allow-sha", ModeAllowlist, true, SoftwarePolicyEntry{Name: "good", SHA256: sp(semHashA)}),
	)
	approve := []Rule{semRule("approve", VerdictAutoApprove, func(r *Rule) { r.MatchUser = sp("alice") })}
	approve60 := []Rule{semRule("approve", VerdictAutoApprove, func(r *Rule) { r.MatchUser = sp("alice"); r.ApprovalDurationMinutes = semIntP(60) })}
	deny := []Rule{semRule("deny", VerdictAutoDeny, func(r *Rule) { r.MatchUser = sp("alice") })}
	toolRule := []Rule{semRule("t", VerdictAutoApprove, func(r *Rule) { r.MatchToolName = sp("x") })}
	blocked := semWant{Outcome: OutcomeDenied, Verdict: VerdictAutoDeny, DecidedBy: DecidedBySoftwarePolicy, SoftwarePolicyID: "block"}
	allowed := semWant{Outcome: OutcomeAutoApproved, Verdict: VerdictAutoApprove, DurationMinutes: 15, DecidedBy: DecidedBySoftwarePolicy, SoftwarePolicyID: "allow"}
	semRun(t, []semCase{
		{"blocklist sha256 hit denies (case-insensitive)", nil, nil, false, with(hashObs, blockHash), blocked},
		{"allowlist hit approves for 15", nil, nil, false, with(hashObs, allowHash), allowed},
		{"allowlist, observed uppercase hash", nil, nil, false,
			with(semUAC(func(o *Observation) { o.TargetExecutableHash = strings.ToUpper(semHashA) }), allowHash), allowed},
		{"allowlist is 15 whatever the rules say", approve60, nil, false, with(hashObs, allowHash), allowed},
		{"blocklist beats an auto_approve rule", approve, nil, false, with(hashObs, blockHash), blocked},
		{"allowlist beats an auto_deny rule", deny, nil, false, with(hashObs, allowHash), allowed},
		{"audit hit never binds: rules decide", deny, nil, false, with(hashObs, auditHash), semDenied("deny")},
		{"audit hit never binds: org default", nil, nil, false, with(hashObs, auditHash), semOrgPending},
		{"inactive policy ignored", approve, nil, false, with(hashObs, inactive), semApproved("approve", 15)},
		{"no hit: rules decide", approve, nil, false, with(semUAC(nil), blockHash), semApproved("approve", 15)},
		{"name-only entries never match", nil, nil, false, with(semUAC(nil), nameOnly), semOrgPending},
		{"signer trimmed on both sides, case-insensitive", nil, nil, false, with(signerObs(" evil corp  "), signer), blocked},
		{"signer equal after trim only", nil, nil, false, with(signerObs("Evil Corp Ltd"), signer), semOrgPending},
		{"publisher entries never match (no publisher observed)", nil, nil, false, with(signerObs("Evil Corp"), publisher), semOrgPending},
		{"path glob hit", nil, nil, false, with(pathObs(`c:/GAMES/x/y.exe`), pathB), blocked},
		{"path glob dialect: not the directory itself", nil, nil, false, with(pathObs(`C:\Games`), pathB), semOrgPending},
		{"blocklist beats allowlist even by a weaker field", nil, nil, false, with(hashObs, mixed), blocked},
		{"within a mode the strongest field wins", nil, nil, false, with(hashObs, twoAllow), semWant{Outcome: OutcomeAutoApproved,
			Verdict: VerdictAutoApprove, DurationMinutes: 15, DecidedBy: DecidedBySoftwarePolicy, SoftwarePolicyID: "allow-sha"}},
		{"bridge ignores thumbprint and command line", nil, nil, false,
			with(semUAC(func(o *Observation) { o.TargetExecutableSignerThumbprint = semHashA; o.CommandLine = semHashA }), blockHash), semOrgPending},
		{"bridge not consulted for JIT", approve, nil, false, with(semJIT(nil), pathB), semApproved("approve", 30)},
		{"bridge not consulted for JIT, no rule", nil, nil, false,
			with(semJIT(func(o *Observation) { o.TargetExecutableHash = semHashA }), blockHash), semHuman},
		{"bridge not consulted for tool actions", toolRule, nil, false,
			with(semTool("x", nil, func(o *Observation) { o.TargetExecutablePath = `C:\Games\a.exe` }), pathB), semApproved("t", 15)},
		{"bridge not consulted for tool actions, no rule", nil, nil, false, with(semTool("x", nil, nil), pathB), semHuman},
	})
}

func TestSemanticsFailSafe(t *testing.T) {
	user := func(r *Rule) { r.MatchUser = sp("alice") }
	poison := func(f func(r *Rule)) Rule {
		return semRule("bad", VerdictAutoApprove, func(r *Rule) { r.Priority = 2; user(r); f(r) })
	}
	unknownVerdict := poison(func(r *Rule) { r.Verdict = "allow" })
	dur0 := poison(func(r *Rule) { r.ApprovalDurationMinutes = semIntP(0) })
	earlier := semRule("good", VerdictAutoDeny, func(r *Rule) { r.Priority = 1; user(r) })
	later := semRule("later", VerdictAutoDeny, func(r *Rule) { r.Priority = 3; user(r) })
	blk, err := NewBridge(SoftwarePolicy{ID: "block", Mode: ModeBlocklist, IsActive: true, Executable: []SoftwarePolicyEntry{{Name: "all", PathGlob: sp("**")}}})
	if err != nil {
		t.Fatal(err)
	}
	orgDeny := func(in Input) Input { in.Org.DefaultUnmatchedVerdict = VerdictAutoDeny; return in }
	withBlk := func(in Input) Input { in.Bridge = blk; return in }
	blocked := semWant{Outcome: OutcomeDenied, Verdict: VerdictAutoDeny, DecidedBy: DecidedBySoftwarePolicy, SoftwarePolicyID: "block"}
	var cases []semCase
	for _, p := range []struct {
		name string
		r    Rule
	}{
		{"unknown verdict", unknownVerdict},
		{"empty verdict", poison(func(r *Rule) { r.Verdict = "" })},
		{"duration 0", dur0},
		{"duration 5000", poison(func(r *Rule) { r.ApprovalDurationMinutes = semIntP(5000) })},
		{"duration 0 on a deny rule", poison(func(r *Rule) { r.Verdict = VerdictAutoDeny; r.ApprovalDurationMinutes = semIntP(0) })},
	} {
		n := "poisoned " + p.name
		cases = append(cases,
			semCase{n + " reached", []Rule{p.r, later}, nil, true, semUAC(nil), semFailSafe},
			semCase{n + " reached even without a criterion match", []Rule{p.r, later}, nil, true,
				semUAC(func(o *Observation) { o.SubjectUsername = "bob" }), semFailSafe},
			semCase{n + " reached: org auto_deny not applied", []Rule{p.r}, nil, true, orgDeny(semUAC(nil)), semFailSafe},
			semCase{n + " reached on JIT", []Rule{p.r, later}, nil, true, semJIT(nil), semFailSafe},
			semCase{n + " shadowed by an earlier match", []Rule{p.r, earlier, later}, nil, true, semUAC(nil), semDenied("good")},
			semCase{n + " not reached when the bridge binds", []Rule{p.r}, nil, true, withBlk(semUAC(nil)), blocked},
		)
	}
	disabled := unknownVerdict
	disabled.Enabled = false
	otherSite := unknownVerdict
	otherSite.SiteID = sp(semSite1)
	toolPoison := semRule("badtool", "allow", func(r *Rule) { r.Priority = 1; r.MatchToolName = sp("x") })
	none := semRule("none", VerdictAutoApprove, func(r *Rule) { r.Priority = 1 })
	twOnly := semRule("tw", VerdictAutoApprove, func(r *Rule) { r.Priority = 1; r.TimeWindow = &TimeWindow{Start: "00:00", End: "23:59"} })
	zero := semAtTime(semUAC(nil), time.Time{})
	cases = append(cases,
		semCase{"disabled poisoned rule is not reached", []Rule{disabled, later}, nil, true, semUAC(nil), semDenied("later")},
		semCase{"poisoned rule of another site is not reached", []Rule{otherSite, later}, nil, true, semUAC(nil), semDenied("later")},
		semCase{"poisoned non-tool rule does not take part in a tool action", []Rule{unknownVerdict}, nil, true, semTool("x", nil, nil), semHuman},
		semCase{"poisoned tool rule reached by a tool action", []Rule{toolPoison}, nil, true, semTool("x", nil, nil), semFailSafe},
		semCase{"unknown flow", []Rule{earlier}, nil, false, Input{Flow: "bogus", At: semAt, Observation: Observation{SubjectUsername: "alice"}}, semFailSafe},
		semCase{"empty flow", []Rule{earlier}, nil, false, Input{At: semAt, Observation: Observation{SubjectUsername: "alice"}}, semFailSafe},
		semCase{"zero evaluation instant", []Rule{earlier}, nil, false, zero, semFailSafe},
		semCase{"zero instant with org auto_deny is still pending", nil, nil, false, orgDeny(zero), semFailSafe},
		semCase{"zero instant: bridge not consulted", nil, nil, false, withBlk(zero), semFailSafe},
		semCase{"criteria-less rule (lenient) never matches", []Rule{none}, nil, true, semUAC(nil), semOrgPending},
		semCase{"criteria-less rule (lenient) never matches a tool action", []Rule{none}, nil, true, semTool("x", nil, nil), semHuman},
		semCase{"criteria-less rule (lenient) never matches JIT", []Rule{none}, nil, true, semJIT(nil), semHuman},
		semCase{"time-window-only rule (lenient) never matches", []Rule{twOnly}, nil, true, semUAC(nil), semOrgPending},
		semCase{"time-window-only rule (lenient) never matches JIT", []Rule{twOnly}, nil, true, semJIT(nil), semHuman},
		semCase{"criteria-less rule does not shadow a later one", []Rule{none, twOnly, later}, nil, true, semUAC(nil), semDenied("later")},
	)
	semRun(t, cases)

	t.Run("observedAt used when At is zero", func(t *testing.T) {
		rs, err := Compile([]Rule{semRule("w", VerdictAutoDeny, func(r *Rule) {
			user(r)
			r.TimeWindow = &TimeWindow{Start: "03:00", End: "03:59"}
		})}, nil, CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		inWin := time.Date(2026, 6, 15, 3, 30, 0, 0, time.UTC)
		outWin := time.Date(2026, 6, 15, 4, 30, 0, 0, time.UTC)
		semDecideBoth(t, rs, semAtTime(semUAC(func(o *Observation) { o.ObservedAt = &inWin }), time.Time{}), semDenied("w"))
		semDecideBoth(t, rs, semAtTime(semUAC(func(o *Observation) { o.ObservedAt = &outWin }), time.Time{}), semOrgPending)
	})

	t.Run("nil rule set", func(t *testing.T) {
		var rs *RuleSet
		in := semUAC(nil)
		for name, d := range map[string]Decision{"Decide": rs.Decide(&in), "DecideReference": rs.DecideReference(&in)} {
			if got := semGot(d); got != semFailSafe {
				t.Errorf("%s on a nil RuleSet = %v, want %v", name, got, semFailSafe)
			}
		}
	})

	t.Run("nil input", func(t *testing.T) {
		rs, err := Compile(nil, nil, CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for name, d := range map[string]Decision{"Decide": rs.Decide(nil), "DecideReference": rs.DecideReference(nil)} {
			if got := semGot(d); got != semFailSafe {
				t.Errorf("%s(nil) = %v, want %v", name, got, semFailSafe)
			}
		}
	})

	t.Run("strict compile rejects what lenient loads", func(t *testing.T) {
		for _, c := range []struct {
			name string
			r    Rule
			want error
		}{
			{"criteria-less", none, ErrNoCriterion},
			{"time-window-only", twOnly, ErrNoCriterion},
			{"ignore on a tool rule", semRule("ti", VerdictIgnore, func(r *Rule) { r.MatchToolName = sp("x") }), ErrIgnoreOnToolRule},
			{"unknown verdict", unknownVerdict, nil},
			{"duration 0", dur0, nil},
			{"malformed window", semRule("mw", VerdictAutoApprove, func(r *Rule) {
				user(r)
				r.TimeWindow = &TimeWindow{Start: "25:00", End: "26:00"}
			}), nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				_, err := Compile([]Rule{c.r}, nil, CompileOptions{})
				if err == nil {
					t.Fatal("strict Compile succeeded")
				}
				if c.want != nil && !errors.Is(err, c.want) {
					t.Errorf("strict Compile error %v is not %v", err, c.want)
				}
				var re *RuleError
				if !errors.As(err, &re) || re.RuleID != c.r.ID {
					t.Errorf("strict Compile error %v does not name rule %q", err, c.r.ID)
				}
				rs, err := Compile([]Rule{c.r}, nil, CompileOptions{Lenient: true})
				if err != nil {
					t.Fatalf("lenient Compile: %v", err)
				}
				if len(rs.Issues()) == 0 {
					t.Error("lenient Compile reported no issue")
				}
			})
		}
	})
}

// TestSemanticsForeignFields: fields a flow does not carry are ignored by
// the engine even when the caller sets them.
func TestSemanticsForeignFields(t *testing.T) {
	exeRules := []Rule{
		semRule("path", VerdictAutoApprove, func(r *Rule) { r.MatchPathGlob = sp("**") }),
		semRule("hash", VerdictAutoApprove, func(r *Rule) { r.MatchHash = sp(semHashA) }),
		semRule("signer", VerdictAutoApprove, func(r *Rule) { r.MatchSigner = sp("Vendor") }),
		semRule("thumb", VerdictAutoApprove, func(r *Rule) { r.MatchSignerThumbprint = sp(semTPA) }),
		semRule("parent", VerdictAutoApprove, func(r *Rule) { r.MatchParentImage = sp("**") }),
		semRule("cmd", VerdictAutoApprove, func(r *Rule) { r.MatchCommandLine = sp("x") }),
	}
	allExe := func(o *Observation) {
		o.TargetExecutablePath, o.TargetExecutableHash, o.TargetExecutableSigner = `C:\x.exe`, semHashA, "Vendor"
		o.TargetExecutableSignerThumbprint, o.ParentImage, o.CommandLine = semTPA, `C:\p.exe`, "x"
	}
	adTool := semRule("t", VerdictAutoDeny, func(r *Rule) { r.MatchToolName = sp("x"); r.MatchAdGroup = sp("admins") })
	adToolNeg := semRule("t", VerdictAutoDeny, func(r *Rule) {
		r.MatchToolName = sp("x")
		r.MatchAdGroup = sp("admins")
		r.MatchNegate = []NegateKey{NegAdGroup}
	})
	semRun(t, []semCase{
		{"toolName and riskTier on uac", []Rule{
			semRule("tool", VerdictAutoApprove, func(r *Rule) { r.MatchToolName = sp("run_script") }),
			semRule("tier", VerdictAutoApprove, func(r *Rule) { r.MatchRiskTier = semIntP(2) }),
		}, nil, false, semUAC(func(o *Observation) { o.ToolName = "run_script"; o.RiskTier = semIntP(2) }), semOrgPending},
		{"negated toolName on uac still needs the data", []Rule{
			semRule("tool", VerdictAutoApprove, func(r *Rule) { r.MatchToolName = sp("other"); r.MatchNegate = []NegateKey{NegToolName} }),
		}, nil, false, semUAC(func(o *Observation) { o.ToolName = "run_script" }), semOrgPending},
		{"executable fields on JIT", exeRules, nil, false, semJIT(allExe), semHuman},
		{"toolName on JIT", []Rule{semRule("tool", VerdictAutoApprove, func(r *Rule) { r.MatchToolName = sp("x") })}, nil, false,
			semJIT(func(o *Observation) { o.ToolName = "x"; o.RiskTier = semIntP(0) }), semHuman},
		{"adGroups on a tool action", []Rule{adTool}, nil, false,
			semTool("x", nil, func(o *Observation) { o.AdGroups = []string{"admins"} }), semHuman},
		{"negated adGroup on a tool action: groups are absent", []Rule{adToolNeg}, nil, false,
			semTool("x", nil, func(o *Observation) { o.AdGroups = []string{} }), semHuman},
		{"executable fields on a tool action", []Rule{semRule("t", VerdictAutoDeny, func(r *Rule) { r.MatchToolName = sp("x") })}, nil, false,
			semTool("x", nil, allExe), semDenied("t")},
		{"requested duration on a tool action", []Rule{semRule("t", VerdictAutoApprove, func(r *Rule) { r.MatchToolName = sp("x") })}, nil, false,
			semTool("x", nil, func(o *Observation) { o.RequestedDurationMinutes = semIntP(400) }), semApproved("t", 15)},
	})
}

// TestSemanticsOutOfRangeTier: a risk tier outside 0..4 on a rule (loaded
// leniently) and on an observation (the engine does not validate
// observations) still compares by exact equality (§2) on both paths.
func TestSemanticsOutOfRangeTier(t *testing.T) {
	for _, tier := range []int{9, -1} {
		t.Run(fmt.Sprint(tier), func(t *testing.T) {
			rs, err := Compile(semDeny(func(r *Rule) { r.MatchRiskTier = semIntP(tier) }), nil, CompileOptions{Lenient: true})
			if err != nil {
				t.Fatal(err)
			}
			in := semTool("x", semIntP(tier), nil)
			if got := semGot(rs.DecideReference(&in)); got != semDenied("r") {
				t.Errorf("DecideReference = %v, want %v", got, semDenied("r"))
			}
			if got := semGot(rs.Decide(&in)); got != semDenied("r") {
				t.Errorf("Decide = %v, want %v", got, semDenied("r"))
			}
		})
	}
}
