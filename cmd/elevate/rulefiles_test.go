package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRepo lays out a policy repository in a temporary directory.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

const goodRules = `signers "vendors" {
  cn "Mozilla Corporation"
}

rule "mozilla" {
  priority 50
  when     signer in signers("vendors") and path ~ ` + "`C:\\Program Files\\**`" + `
  then     auto_approve for 30m
}
`

const goodTests = `test "firefox" {
  at      2026-06-15T10:00:00Z
  observe {
    signer = "Mozilla Corporation"
    path   = ` + "`C:\\Program Files\\Mozilla\\firefox.exe`" + `
    user   = "sarah"
  }
  expect auto_approved by "mozilla" for 30m
}
`

func TestCheckExitCodes(t *testing.T) {
	failing := strings.Replace(goodTests, "for 30m", "for 45m", 1)
	cases := []struct {
		name  string
		files map[string]string
		args  []string
		code  int
		want  []string // substrings of stdout
	}{
		{"clean", map[string]string{"a.pam": goodRules, "a_test.pam": goodTests}, nil, exitOK,
			[]string{"tests: 1 passed, 0 failed"}},
		{"test failure prints the trace", map[string]string{"a.pam": goodRules, "a_test.pam": failing}, nil, exitTests,
			[]string{`FAIL`, `a_test.pam:1: test "firefox"`, "duration: want 45m, got 30m", `matched   rule "mozilla"`}},
		{"compile error", map[string]string{"a.pam": strings.Replace(goodRules, "priority", "priorty", 1)}, nil, exitCompile,
			[]string{"a.pam:6:3: error: unknown field `priorty` in rule", "did you mean `priority`?", "    ^"}},
		{"lint is a warning", map[string]string{"a.pam": goodRules + "\nsigners \"unused\" {\n  cn \"X\"\n}\n"}, nil, exitOK,
			[]string{"warning: signer group \"unused\" is not used by any rule [unused-signers]"}},
		{"strict makes lint an error", map[string]string{"a.pam": goodRules + "\nsigners \"unused\" {\n  cn \"X\"\n}\n"}, []string{"--strict"}, exitCompile,
			[]string{"error: signer group \"unused\""}},
		{"run filter", map[string]string{"a.pam": goodRules, "a_test.pam": failing}, []string{"--run", "^nothing$"}, exitOK,
			[]string{"tests: 0 passed, 0 failed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeRepo(t, tc.files)
			code, out, errOut := runCmd(append(append([]string{"check"}, tc.args...), dir)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestCheckJSON(t *testing.T) {
	dir := writeRepo(t, map[string]string{"a.pam": strings.Replace(goodRules, "priority", "priorty", 1)})
	code, out, _ := runCmd("check", "--format", "json", dir)
	if code != exitCompile {
		t.Fatalf("exit %d", code)
	}
	var rep struct {
		Diagnostics []struct {
			Severity, File, Message, Hint string
			Line, Col                     int
		}
		ExitCode int
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Diagnostics) != 1 || rep.Diagnostics[0].Line != 6 || rep.Diagnostics[0].Col != 3 ||
		rep.Diagnostics[0].Severity != "error" || rep.ExitCode != exitCompile || !strings.HasSuffix(rep.Diagnostics[0].File, "a.pam") {
		t.Errorf("diagnostics: %+v", rep)
	}
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{{"check"}, {"check", "a", "b"}, {"check", "--format", "xml", "."}, {"check", "/nonexistent/dir"}, {"check", "--run", "(", "."}} {
		if code, _, _ := runCmd(args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestFmt(t *testing.T) {
	messy := "rule \"x\" {\n   when   user==\"a\"   # who\n      then auto_deny\n}\n"
	want := "rule \"x\" {\n  when user == \"a\"  # who\n  then auto_deny\n}\n"
	dir := writeRepo(t, map[string]string{"a.pam": messy, "sub/b.pam": want, "notes.txt": "not a rule file"})
	a := filepath.Join(dir, "a.pam")

	code, out, _ := runCmd("fmt", "-l", dir)
	if code != exitOK || strings.TrimSpace(out) != a {
		t.Fatalf("fmt -l: exit %d, %q", code, out)
	}
	code, out, _ = runCmd("fmt", "-d", a)
	if code != exitOK || !strings.Contains(out, "-   when   user==\"a\"   # who") || !strings.Contains(out, "+  when user == \"a\"  # who") {
		t.Fatalf("fmt -d: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd("fmt", a)
	if code != exitOK || out != want {
		t.Fatalf("fmt: exit %d\n%s", code, out)
	}
	if code, _, _ = runCmd("fmt", "-w", dir); code != exitOK {
		t.Fatalf("fmt -w: exit %d", code)
	}
	if got, _ := os.ReadFile(a); string(got) != want {
		t.Fatalf("fmt -w wrote\n%s", got)
	}
	if code, out, _ = runCmd("fmt", "-l", dir); code != exitOK || out != "" {
		t.Fatalf("after -w, fmt -l: exit %d, %q", code, out)
	}
	// A file that does not parse is reported and left untouched.
	bad := filepath.Join(dir, "bad.pam")
	os.WriteFile(bad, []byte("rule \"x\" {\n  when user = \"a\"\n}\n"), 0o644)
	code, _, errOut := runCmd("fmt", "-w", bad)
	if code != exitCompile || !strings.Contains(errOut, "bad.pam:2:13") {
		t.Fatalf("bad file: exit %d\n%s", code, errOut)
	}
	if got, _ := os.ReadFile(bad); string(got) != "rule \"x\" {\n  when user = \"a\"\n}\n" {
		t.Fatal("a file that does not parse was rewritten")
	}
}

func TestExportRoundTrip(t *testing.T) {
	dir := writeRepo(t, map[string]string{"a.pam": goodRules})
	code, js, errOut := runCmd("export", "--to", "json", dir)
	if code != exitOK {
		t.Fatalf("to json: exit %d: %s", code, errOut)
	}
	var b struct {
		Rules []map[string]any `json:"rules"`
	}
	if err := json.Unmarshal([]byte(js), &b); err != nil || len(b.Rules) != 1 || b.Rules[0]["matchSignerGroupId"] == nil ||
		b.Rules[0]["approvalDurationMinutes"] != float64(30) || b.Rules[0]["condition"] != nil {
		t.Fatalf("bundle: %v\n%s", err, js)
	}
	jf := filepath.Join(t.TempDir(), "rules.json")
	os.WriteFile(jf, []byte(js), 0o644)
	code, pam, errOut := runCmd("export", "--to", "pam", jf)
	if code != exitOK || pam != goodRules {
		t.Fatalf("to pam: exit %d %s\n%s\nwant\n%s", code, errOut, pam, goodRules)
	}
}

func TestDecideWithRulesDir(t *testing.T) {
	dir := writeRepo(t, map[string]string{"a.pam": goodRules})
	req := map[string]any{"flowType": "uac_intercept", "observation": map[string]any{
		"subjectUsername": "sarah", "targetExecutablePath": `C:\Program Files\Mozilla\firefox.exe`,
		"targetExecutableSigner": "Mozilla Corporation", "observedAt": "2026-06-15T10:00:00Z"}}
	code, out, errOut := runWith(t, req, "--rules", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if d := decodeOut(t, out); d.Outcome != "auto_approved" || d.RuleName == nil || *d.RuleName != "mozilla" || *d.DurationMinutes != 30 {
		t.Errorf("decision: %s", out)
	}
	req["rules"] = []any{}
	if code, _, errOut = runWith(t, req, "--rules", dir); code != exitUsage || !strings.Contains(errOut, "leave them out") {
		t.Errorf("rules in the request with --rules: exit %d %s", code, errOut)
	}
	delete(req, "rules")
	broken := writeRepo(t, map[string]string{"a.pam": "rule \"x\" {\n  then auto_deny\n}\n"})
	if code, _, errOut = runWith(t, req, "--rules", broken); code != exitUsage || !strings.Contains(errOut, "does not compile") {
		t.Errorf("broken repository: exit %d %s", code, errOut)
	}
	if code, _, errOut = runWith(t, req, "--rules", dir, "--org", "acme"); code != exitUsage || !strings.Contains(errOut, `no org "acme"`) {
		t.Errorf("unknown org: exit %d %s", code, errOut)
	}
}

func TestDecideRefusesMisspeltSignerEntryKey(t *testing.T) {
	req := exampleRequest(t)
	req["signerGroups"] = []any{map[string]any{"id": "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "name": "g",
		"signers": []any{map[string]any{"subjectCn": "Contoso", "thumbprnt": strings.Repeat("ab", 32)}}}}
	code, _, errOut := runWith(t, req)
	if code != exitUsage || !strings.Contains(errOut, "thumbprnt") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestDecideRulesDirWithSeveralOrgsNeedsOrg(t *testing.T) {
	dir := writeRepo(t, map[string]string{"a.pam": goodRules, "acme/org.pam": "org \"acme\"\n", "acme/r.pam": strings.Replace(goodRules, "vendors", "acme-vendors", 2)})
	req := map[string]any{"flowType": "uac_intercept", "observation": map[string]any{
		"subjectUsername": "sarah", "targetExecutablePath": `C:\Program Files\Mozilla\firefox.exe`,
		"targetExecutableSigner": "Mozilla Corporation", "observedAt": "2026-06-15T10:00:00Z"}}
	if code, _, errOut := runWith(t, req, "--rules", dir); code != exitUsage || !strings.Contains(errOut, "--org") {
		t.Fatalf("several orgs without --org: exit %d %s", code, errOut)
	}
	if code, out, errOut := runWith(t, req, "--rules", dir, "--org", "acme"); code != exitOK || !strings.Contains(out, `"mozilla"`) {
		t.Fatalf("--org acme: exit %d %s %s", code, out, errOut)
	}
}
