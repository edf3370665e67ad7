package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
