package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/simulate"
	"github.com/elevate-pam/elevate/store"
)

const simBase = `rule "tools" {
  priority 10
  when     path ~ ` + "`C:\\Tools\\*`" + `
  then     auto_approve for 15m
}

rule "acme-deny" {
  priority 20
  when     signer == "Acme"
  then     auto_deny
}
`

// The candidate drops the denial of Acme's programs and approves one
// more program: 3 requests widen, 4 go to a person.
const simCandidate = `rule "tools" {
  priority 10
  when     path ~ ` + "`C:\\Tools\\*`" + `
  then     auto_approve for 15m
}

rule "q" {
  priority 5
  when     path ~ ` + "`C:\\Other\\q.exe`" + `
  then     auto_approve
}
`

// simHistory writes a JSON Lines history: 5 tools, 4 Acme programs, 3
// q.exe, as `elevate export --data` writes requests.
func simHistory(t *testing.T, dir string) string {
	t.Helper()
	org := store.NewID(time.Now())
	var b bytes.Buffer
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	add := func(n int, path, signer string) {
		for range n {
			at = at.Add(time.Minute)
			r := store.Request{ID: store.NewID(at), OrgID: org, DeviceID: store.NewID(at), Flow: engine.FlowUAC, Status: store.StatusPending,
				SubjectUsername: "u", TargetExecutablePath: path, TargetExecutableSigner: signer, RequestedAt: at, CreatedAt: at}
			line, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(append(line, '\n'))
		}
	}
	add(5, `C:\Tools\a.exe`, "")
	add(4, `C:\Other\z.exe`, "Acme")
	add(3, `C:\Other\q.exe`, "")
	p := filepath.Join(dir, "history.jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func gitRun(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=ci@example.com", "-c", "user.name=ci"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestSimulateDiffAgainstGitRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	repo := t.TempDir()
	rules := filepath.Join(repo, "policy", "rules")
	if err := os.MkdirAll(rules, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(src string) {
		if err := os.WriteFile(filepath.Join(rules, "main.pam"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(simBase)
	gitRun(t, repo, "init", "-q")
	gitRun(t, repo, "add", ".")
	gitRun(t, repo, "commit", "-q", "-m", "base")
	write(simCandidate) // the working tree: the candidate
	hist := simHistory(t, t.TempDir())

	var out, errb bytes.Buffer
	code := run([]string{"simulate", "--rules", rules, "--base", "HEAD", "--history", hist, "--format", "json"}, nil, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var d simulate.DiffReport
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if d.Total != 12 || d.Changed != 7 || d.Widened != 3 {
		t.Fatalf("total %d changed %d widened %d", d.Total, d.Changed, d.Widened)
	}
	if len(d.Flips) != 2 || !d.Flips[0].Widens || d.Flips[0].Candidate.RuleName != "q" || d.Flips[1].Base.RuleName != "acme-deny" {
		t.Fatalf("flips: %+v", d.Flips)
	}

	// Gating a merge: --fail-on widen exits non-zero, and the text report
	// calls the new approvals out first.
	out.Reset()
	errb.Reset()
	code = run([]string{"simulate", "--rules", rules, "--base", "HEAD", "--history", hist, "--fail-on", "widen"}, nil, &out, &errb)
	if code != exitWidens || !strings.Contains(errb.String(), "3 request(s) would newly be auto-approved") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	widen, narrow := strings.Index(text, "WIDENS 3× pending → auto_approved: rule q, was org default"), strings.Index(text, "4× denied → pending")
	if widen < 0 || narrow < widen || strings.Contains(text, "\033[") {
		t.Fatalf("text report:\n%s", text)
	}

	// The same revision on both sides changes nothing and passes the gate.
	gitRun(t, repo, "stash", "-q")
	code = run([]string{"simulate", "--rules", rules, "--base", "HEAD", "--history", hist, "--fail-on", "widen"}, nil, &out, &errb)
	if code != exitOK {
		t.Fatalf("same rules: exit %d: %s", code, errb.String())
	}
}

func TestSimulateReplayReport(t *testing.T) {
	rules := t.TempDir()
	if err := os.WriteFile(filepath.Join(rules, "main.pam"), []byte(simBase+`
rule "tools-a" {
  priority 30
  when     path ~ `+"`C:\\Tools\\a.exe`"+`
  then     auto_deny
}

rule "never" {
  priority 40
  when     path ~ `+"`D:\\*`"+`
  then     auto_approve
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	hist := simHistory(t, t.TempDir())
	var out, errb bytes.Buffer
	if code := run([]string{"simulate", "--rules", rules, "--history", hist, "--format", "json"}, nil, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep simulate.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(rep.Outcomes[engine.OutcomeAutoApproved], rep.Outcomes[engine.OutcomeDenied], rep.Outcomes[engine.OutcomePending])
	if rep.Total != 12 || got != "5 4 3" {
		t.Fatalf("total %d, outcomes %v", rep.Total, rep.Outcomes)
	}
	if len(rep.NeverFired) != 1 || rep.NeverFired[0].Name != "never" ||
		len(rep.AlwaysShadowed) != 1 || rep.AlwaysShadowed[0].Name != "tools-a" || rep.AlwaysShadowed[0].ShadowedBy[0].RuleName != "tools" {
		t.Fatalf("never fired %+v, always shadowed %+v", rep.NeverFired, rep.AlwaysShadowed)
	}
	out.Reset()
	if code := run([]string{"simulate", "--rules", rules, "--history", hist}, nil, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "tools-a: matched 5, all decided by tools (5)") {
		t.Fatalf("text report:\n%s", out.String())
	}
}

func TestSimulateRefusals(t *testing.T) {
	hist := simHistory(t, t.TempDir())
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "x.pam"), []byte("rule \"x\" {\n  when path ~\n}\n"), 0o600)
	for name, c := range map[string]struct {
		args []string
		code int
		msg  string
	}{
		"no history":         {[]string{"simulate", "--rules", bad}, exitUsage, "Usage"},
		"both histories":     {[]string{"simulate", "--data", "d", "--history", hist}, exitUsage, "Usage"},
		"broken candidate":   {[]string{"simulate", "--rules", bad, "--history", hist}, exitCompile, "x.pam:"},
		"fail-on, no base":   {[]string{"simulate", "--rules", t.TempDir(), "--history", hist, "--fail-on", "widen"}, exitUsage, "--fail-on needs --base"},
		"unknown revision":   {[]string{"simulate", "--rules", t.TempDir(), "--history", hist, "--base", "no-such-ref"}, exitUsage, "neither a directory nor a git revision"},
		"bad format":         {[]string{"simulate", "--rules", t.TempDir(), "--history", hist, "--format", "xml"}, exitUsage, "--format"},
		"missing history":    {[]string{"simulate", "--rules", t.TempDir(), "--history", filepath.Join(bad, "none.jsonl")}, exitUsage, "none.jsonl"},
		"not a history file": {[]string{"simulate", "--rules", t.TempDir(), "--history", filepath.Join(bad, "x.pam")}, exitUsage, "line 1"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, nil, &out, &errb); code != c.code || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%s: exit %d, want %d with %q: %s", name, code, c.code, c.msg, errb.String())
		}
	}
}

// simulate --data replays a data directory with its stored rules and
// settings: the fixture's stored rule deny-old (priority 1) takes part
// beside the rule files.
func TestSimulateReplayData(t *testing.T) {
	dir := previewDir(t)
	rules := t.TempDir()
	if err := os.WriteFile(filepath.Join(rules, "main.pam"), []byte(toolsDraft+`
rule "vendors" {
  priority 20
  when     signer == "Mozilla Corporation"
  then     auto_deny
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	replay := func(args ...string) *simulate.Report {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"simulate", "--rules", rules, "--data", dir, "--format", "json"}, args...), nil, &out, &errb)
		if code != exitOK || errb.Len() != 0 { // no progress display outside a terminal
			t.Fatalf("%v: exit %d: %q", args, code, errb.String())
		}
		var rep simulate.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		return &rep
	}
	counts := func(r *simulate.Report) string {
		return fmt.Sprintf("total %d, approved %d, denied %d, pending %d, ignored %d; by rule %d, by no rule %d",
			r.Total, r.Outcomes[engine.OutcomeAutoApproved], r.Outcomes[engine.OutcomeDenied], r.Outcomes[engine.OutcomePending],
			r.Outcomes[engine.OutcomeIgnored], r.ByDecider["rule"], r.ByDecider["no_rule"])
	}
	// Acme: p01–p05 approved by tools; p08 denied by the stored deny-old
	// ahead of tools; p07 denied by vendors; the JIT request p06 and the
	// tool action p09 match no rule. Beta: z.exe approved by tools.
	rep := replay()
	if got, want := counts(rep), "total 10, approved 6, denied 2, pending 2, ignored 0; by rule 8, by no rule 2"; got != want {
		t.Errorf("every org:\n got %s\nwant %s", got, want)
	}
	var stats []string
	for _, s := range rep.Rules {
		line := fmt.Sprintf("%s/%s %d/%d", s.OrgID[len(s.OrgID)-2:], s.Name, s.Decided, s.Shadowed)
		if len(s.ShadowedBy) > 0 {
			line += " behind " + s.ShadowedBy[0].RuleName
		}
		stats = append(stats, line)
	}
	if got, want := strings.Join(stats, "; "), "a1/deny-old 1/0; a1/tools 5/1 behind deny-old; a1/vendors 1/0; b1/tools 1/0; b1/vendors 0/0"; got != want {
		t.Errorf("rules:\n got %s\nwant %s", got, want)
	}
	if len(rep.NeverFired) != 1 || rep.NeverFired[0].Name != "vendors" || rep.NeverFired[0].OrgID != pOrgB || len(rep.AlwaysShadowed) != 0 {
		t.Errorf("never fired %+v, always shadowed %+v", rep.NeverFired, rep.AlwaysShadowed)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--org", "Acme"}, "total 9, approved 5, denied 2, pending 2, ignored 0; by rule 7, by no rule 2"},
		{[]string{"--org", pOrgB}, "total 1, approved 1, denied 0, pending 0, ignored 0; by rule 1, by no rule 0"},
		{[]string{"--from", "2026-03-01", "--to", "2026-03-28"}, "total 6, approved 3, denied 1, pending 2, ignored 0; by rule 4, by no rule 2"},
	} {
		if got := counts(replay(c.args...)); got != c.want {
			t.Errorf("%v:\n got %s\nwant %s", c.args, got, c.want)
		}
	}
	code, out, errOut := runCmd("simulate", "--rules", rules, "--data", dir)
	if code != exitOK || errOut != "" || !strings.HasPrefix(out, "Replayed 10 requests\n") ||
		!strings.Contains(out, "\n  auto_approved  6  60.0%\n") || strings.Contains(out, "\033[") {
		t.Errorf("text report: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCmd("simulate", "--rules", rules, "--data", dir, "--org", "Nope")
	if code != exitUsage || !strings.Contains(errOut, `--org: no organisation has the id or name "Nope"`) {
		t.Errorf("unknown org: exit %d: %s", code, errOut)
	}
}

// The progress display (drawn only when stderr is a terminal): a bar with
// the count out of the total, or a spinner with the count when the total
// is unknown; finishing erases it.
func TestSimulateProgressBar(t *testing.T) {
	for _, c := range []struct {
		total int
		shows string
	}{
		{1200, "512/1200"},
		{-1, "512/-"},
	} {
		var w bytes.Buffer
		progress, finish := progressBar(&w, c.total, 0)
		progress(512)
		finish()
		got := w.String()
		if !strings.Contains(got, "replaying") || !strings.Contains(got, c.shows) {
			t.Errorf("total %d: drew %q, want the count %q", c.total, got, c.shows)
		}
		// Erased: the last thing written blanks the line and returns to
		// its start, so the report prints on a clean line.
		if !regexp.MustCompile(`\r +\r$`).MatchString(got) {
			t.Errorf("total %d: not erased at the end: %q", c.total, got)
		}
	}
}
