package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/elevate-pam/elevate/store"
)

const (
	tOrgA  = "01900000-0000-7000-8000-0000000000a1"
	tOrgB  = "01900000-0000-7000-8000-0000000000b1"
	tDevA  = "01900000-0000-7000-8000-000000000da1"
	tDevB  = "01900000-0000-7000-8000-000000000db1"
	tSiteA = "01900000-0000-7000-8000-0000000005a1"
)

// dataFixture is a small state file as an administrator might write it:
// inventory, a signer group, a rule, a policy and four requests.
const dataFixture = `{"kind":"partner","id":"01900000-0000-7000-8000-00000000000a","name":"MSP"}
{"kind":"org","id":"` + tOrgA + `","partnerId":"01900000-0000-7000-8000-00000000000a","name":"Acme","actuatorEnabled":true}
{"kind":"org","id":"` + tOrgB + `","name":"Beta","actuatorEnabled":false}
{"kind":"site","id":"` + tSiteA + `","orgId":"` + tOrgA + `","name":"HQ"}
{"kind":"device","id":"` + tDevA + `","orgId":"` + tOrgA + `","siteId":"` + tSiteA + `","hostname":"ws-1","status":"active"}
{"kind":"device","id":"` + tDevB + `","orgId":"` + tOrgB + `","hostname":"lab-1","status":"active"}
{"kind":"signerGroup","id":"01900000-0000-7000-8000-0000000009a1","orgId":"` + tOrgA + `","name":"vendors","signers":["Mozilla Corporation"]}
{"kind":"rule","id":"01900000-0000-7000-8000-0000000001a1","orgId":"` + tOrgA + `","name":"vendors","verdict":"auto_approve","matchSignerGroupId":"01900000-0000-7000-8000-0000000009a1"}
{"kind":"policy","id":"01900000-0000-7000-8000-000000000ca1","orgId":"` + tOrgA + `","name":"pam on","features":{"pam":{"uacInterceptionEnabled":true}},"assignments":[{"level":"organization","targetId":"` + tOrgA + `","priority":1}]}
{"id":"01900000-0000-7000-8000-000000100001","orgId":"` + tOrgA + `","deviceId":"` + tDevA + `","siteId":"` + tSiteA + `","flowType":"uac_intercept","status":"pending","subjectUsername":"sarah","commandLine":"setup.exe /S > log.txt","requestedAt":"2026-03-01T09:00:00Z","decision":{"outcome":"pending","decidedBy":"org_default"}}
{"id":"01900000-0000-7000-8000-000000100002","orgId":"` + tOrgB + `","deviceId":"` + tDevB + `","flowType":"tech_jit_admin","status":"approved","subjectUsername":"tech","requestedAt":"2026-03-02T09:00:00Z","approvedAt":"2026-03-02T09:05:00Z","expiresAt":"2026-03-02T09:35:00Z","approvedBy":"admin","durationMinutes":30,"decision":{"outcome":"pending"}}
{"id":"01900000-0000-7000-8000-000000100003","orgId":"` + tOrgA + `","deviceId":"` + tDevA + `","flowType":"ai_tool_action","status":"denied","subjectUsername":"bot","toolName":"shell.exec","riskTier":4,"requestedAt":"2026-03-03T09:00:00Z","deniedAt":"2026-03-03T09:00:00Z","decision":{"outcome":"denied","decidedBy":"rule","ruleId":"01900000-0000-7000-8000-0000000001a1","ruleName":"vendors"}}
{"id":"01900000-0000-7000-8000-000000100004","orgId":"` + tOrgA + `","deviceId":"` + tDevA + `","flowType":"uac_intercept","status":"auto_approved","subjectUsername":"sarah","requestedAt":"2026-03-04T09:00:00Z","approvedAt":"2026-03-04T09:00:00Z","expiresAt":"2026-03-04T09:15:00Z","decision":{"outcome":"auto_approved","decidedBy":"rule","ruleId":"01900000-0000-7000-8000-0000000001a1","ruleName":"vendors"}}
`

func runIn(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// importedDir returns a data directory holding dataFixture.
func importedDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	file := filepath.Join(t.TempDir(), "state.jsonl")
	if err := os.WriteFile(file, []byte(dataFixture), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd("import", "--data", dir, file)
	if code != exitOK || out != "" {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	want := "imported 4 requests, 1 rules, 1 signer groups, 1 policies, 6 inventory rows; skipped 0\n"
	if errOut != want {
		t.Fatalf("import summary = %q, want %q", errOut, want)
	}
	return dir
}

func countLines(s string) int { return strings.Count(s, "\n") }

func TestDataRoundTrip(t *testing.T) {
	dir := importedDir(t)
	code, first, errOut := runCmd("export", "--data", dir, "--all")
	if code != exitOK || countLines(first) != 13 {
		t.Fatalf("export --all: exit %d, %d lines\n%s%s", code, countLines(first), first, errOut)
	}
	if !strings.Contains(first, `"setup.exe /S > log.txt"`) {
		t.Errorf("export escapes HTML characters:\n%s", first)
	}

	// Through stdin into a second directory, and out again: the same bytes.
	dir2 := filepath.Join(t.TempDir(), "data")
	if code, _, errOut := runIn(first, "import", "--data", dir2); code != exitOK {
		t.Fatalf("import from stdin: exit %d: %s", code, errOut)
	}
	if _, second, _ := runCmd("export", "--data", dir2, "--all"); second != first {
		t.Errorf("second export differs:\n%s\n---\n%s", first, second)
	}

	// Importing the same state again writes nothing.
	code, _, errOut = runIn(first, "import", "--data", dir2, "-")
	if code != exitOK || !strings.HasSuffix(errOut, "skipped 13\n") || !strings.HasPrefix(errOut, "imported 0 requests") {
		t.Errorf("re-import: exit %d: %s", code, errOut)
	}

	// The default is requests only: plain API rows.
	code, rows, errOut := runCmd("export", "--data", dir)
	if code != exitOK || countLines(rows) != 4 || strings.Contains(rows, `"kind"`) {
		t.Errorf("export: exit %d\n%s%s", code, rows, errOut)
	}
	if errOut != "exported 4 requests, 0 rules, 0 signer groups, 0 policies, 0 inventory rows\n" {
		t.Errorf("export summary = %q", errOut)
	}
	code, rest, _ := runCmd("export", "--data="+dir, "--no-requests", "--rules", "--signer-groups")
	if code != exitOK || countLines(rest) != 2 || !strings.Contains(rest, `"kind":"signerGroup"`) || !strings.Contains(rest, `"kind":"rule"`) {
		t.Errorf("rules and signer groups: exit %d\n%s", code, rest)
	}
}

func TestDataExportFilters(t *testing.T) {
	dir := importedDir(t)
	for _, c := range []struct {
		args  []string
		lines int
		has   string
	}{
		{[]string{"--org", "Acme"}, 3, tOrgA},
		{[]string{"--org", "acme"}, 3, tOrgA},
		{[]string{"--org", strings.ToUpper(tOrgB)}, 1, tOrgB},
		{[]string{"--org", "Beta", "--all"}, 3, `"kind":"org"`}, // org, device, one request; no partner
		{[]string{"--from", "2026-03-02", "--to", "2026-03-03"}, 2, "100002"},
		{[]string{"--from", "2026-03-02T09:00:00Z", "--to", "2026-03-02T09:00:00Z"}, 1, "100002"},
		{[]string{"--to", "2026-03-01"}, 1, "100001"},
	} {
		args := append([]string{"export", "--data", dir}, c.args...)
		code, out, errOut := runCmd(args...)
		if code != exitOK || countLines(out) != c.lines || !strings.Contains(out, c.has) {
			t.Errorf("%q: exit %d, %d lines, want %d with %s\n%s%s", c.args, code, countLines(out), c.lines, c.has, out, errOut)
		}
	}
}

func TestDataUsageErrors(t *testing.T) {
	dir := importedDir(t)
	// A second organisation named like the first makes the name ambiguous.
	twin := `{"kind":"org","id":"01900000-0000-7000-8000-0000000000c1","name":"ACME"}` + "\n" +
		`{"kind":"org","id":"01900000-0000-7000-8000-0000000000c2","name":"acme"}` + "\n"
	if code, _, errOut := runIn(twin, "import", "--data", dir); code != exitOK {
		t.Fatalf("import: %s", errOut)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"export", "--data", dir, "--org", "Nobody"}, "no organisation"},
		{[]string{"export", "--data", dir, "--org", "01900000-0000-7000-8000-0000000000ff"}, "no organisation"},
		{[]string{"export", "--data", dir, "--org", "aCmE"}, "3 organisations are named"},
		{[]string{"export", "--data", dir, "--from", "yesterday"}, "--from"},
		{[]string{"export", "--data", dir, "--from", "2026-03-05", "--to", "2026-03-01"}, "after"},
		{[]string{"export", "--data", dir, "--no-requests"}, "nothing to export"},
		{[]string{"export", "--data", dir, "extra"}, "Usage"},
		{[]string{"export", "--data", dir, "--to", "pam"}, "--to"},
		{[]string{"export", "--data", filepath.Join(dir, "missing")}, "no data directory"},
		{[]string{"import", dir}, "Usage"},
		{[]string{"import", "--data", dir, "a", "b"}, "Usage"},
		{[]string{"import", "--data", dir, filepath.Join(dir, "missing.jsonl")}, "missing.jsonl"},
		{[]string{"audit"}, "Usage"},
		{[]string{"audit", "check", "--data", dir}, "Usage"},
		{[]string{"audit", "verify"}, "Usage"},
		{[]string{"audit", "verify", "--data", filepath.Join(dir, "missing")}, "no data directory"},
	} {
		code, out, errOut := runCmd(c.args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, c.msg) {
			t.Errorf("%q: exit %d, want %d; stderr lacks %q:\n%s%s", c.args, code, exitUsage, c.msg, out, errOut)
		}
	}
	// Exact name match wins over matches that ignore case.
	if code, out, errOut := runCmd("export", "--data", dir, "--org", "Acme"); code != exitOK || countLines(out) != 3 {
		t.Errorf("exact name: exit %d\n%s%s", code, out, errOut)
	}
}

func TestDataImportRefused(t *testing.T) {
	dir := importedDir(t)
	_, before, _ := runCmd("export", "--data", dir, "--all")

	bad := `{"kind":"site","id":"01900000-0000-7000-8000-0000000005a2","orgId":"` + tOrgA + `","name":"Annex"}
{"kind":"site","id":"not-a-uuid","orgId":"` + tOrgA + `","name":"Annex"}

{"id":"01900000-0000-7000-8000-000000100001","orgId":"` + tOrgA + `","deviceId":"` + tDevA + `","flowType":"uac_intercept","status":"denied","subjectUsername":"sarah","requestedAt":"2026-03-01T09:00:00Z"}
{"kind":"gizmo"}
`
	file := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(file, []byte(bad), 0o644)
	code, out, errOut := runCmd("import", "--data", dir, file)
	if code != exitInternal || out != "" {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitInternal, out, errOut)
	}
	want := []string{
		file + ":2: site not-a-uuid: id: must be a UUID (not the nil UUID)",
		file + ":4: request 01900000-0000-7000-8000-000000100001 already exists with different content",
		file + `:5: unknown kind "gizmo"`,
		"elevate import: 3 invalid line(s); nothing imported",
	}
	if got := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, strings.Join(want, "\n"))
	}
	if _, after, _ := runCmd("export", "--data", dir, "--all"); after != before {
		t.Error("a refused import changed the store")
	}

	code, _, errOut = runIn("{\n", "import", "--data", dir)
	if code != exitInternal || !strings.HasPrefix(errOut, "<stdin>:1: invalid JSON") {
		t.Errorf("stdin: exit %d: %s", code, errOut)
	}
}

func TestDataImportDryRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	code, _, errOut := runIn(dataFixture, "import", "--data", dir, "--dry-run")
	if code != exitOK || errOut != "would import 4 requests, 1 rules, 1 signer groups, 1 policies, 6 inventory rows; skipped 0\n" {
		t.Errorf("dry run: exit %d: %q", code, errOut)
	}
	if code, out, _ := runCmd("export", "--data", dir, "--all"); code != exitOK || out != "" {
		t.Errorf("dry run wrote:\n%s", out)
	}
}

func TestAuditVerify(t *testing.T) {
	dir := importedDir(t)
	code, out, errOut := runCmd("audit", "verify", "--data", dir)
	if code != exitOK || out != "ok: 2 records in 2 organisations\n" {
		t.Errorf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCmd("audit", "verify", "--data", t.TempDir()); code != exitOK || out != "ok: 0 records in 0 organisations\n" {
		t.Errorf("empty store: exit %d: %s", code, out)
	}
}

// The store's tests break chains; here the report of a broken one.
func TestReportAuditBreaks(t *testing.T) {
	var out bytes.Buffer
	rep := &store.VerifyReport{Orgs: 3, Records: 41, Breaks: []*store.ChainBreak{
		{OrgID: tOrgA, Seq: 7, Key: "audit/" + tOrgA + "/7", Reason: "hash does not match the record's content (record altered)"},
		{OrgID: tOrgB, Seq: 1, Key: "audit/" + tOrgB + "/1", Reason: "head present but the log is empty (records removed)"},
	}}
	if code := reportAudit(rep, &out); code != exitInternal {
		t.Errorf("exit %d, want %d", code, exitInternal)
	}
	want := "broken: org " + tOrgA + ", record 7 (audit/" + tOrgA + "/7): hash does not match the record's content (record altered)\n" +
		"broken: org " + tOrgB + ", record 1 (audit/" + tOrgB + "/1): head present but the log is empty (records removed)\n" +
		"FAILED: 2 of 3 organisations have a broken audit chain (41 records checked)\n"
	if out.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestDataDirLocked(t *testing.T) {
	dir := importedDir(t)
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, args := range [][]string{
		{"export", "--data", dir},
		{"import", "--data", dir, os.DevNull},
		{"audit", "verify", "--data", dir},
	} {
		code, _, errOut := runCmd(args...)
		if code != exitInternal || !strings.Contains(errOut, "in use by another process") {
			t.Errorf("%q: exit %d: %s", args, code, errOut)
		}
	}
}

func TestHasDataFlag(t *testing.T) {
	for args, want := range map[string]bool{
		"--data DIR":         true,
		"-data DIR":          true,
		"--data=DIR":         true,
		"--to json --data=D": true,
		"--to json PATH":     false,
		"--database x":       false,
		"-- --data":          false,
		"data":               false,
	} {
		if got := hasDataFlag(strings.Fields(args)); got != want {
			t.Errorf("hasDataFlag(%q) = %v, want %v", args, got, want)
		}
	}
}

func TestAuditHeadAnchors(t *testing.T) {
	dir := importedDir(t)
	code, heads, errOut := runCmd("audit", "head", "--data", dir)
	if code != exitOK || strings.Count(heads, "\n") != 2 || !strings.Contains(heads, `"seq":1`) {
		t.Fatalf("audit head: exit %d\n%s%s", code, heads, errOut)
	}
	anchor := filepath.Join(t.TempDir(), "anchor.jsonl")
	write := func(s string) {
		if err := os.WriteFile(anchor, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(heads)
	if code, out, _ := runCmd("audit", "verify", "--data", dir, "--anchor", anchor); code != exitOK {
		t.Fatalf("anchored verify: exit %d: %s", code, out)
	}
	// An anchor the chain no longer has (taken "later" than the chain now
	// ends, as after records were cut from the end), and one whose hash
	// differs (as after a consistent rewrite).
	first, _, _ := strings.Cut(heads, "\n")
	gone := strings.Replace(first, `"seq":1`, `"seq":9`, 1)
	rewritten := regexp.MustCompile(`"hash":"[0-9a-f]{64}"`).ReplaceAllString(first, `"hash":"`+strings.Repeat("0", 64)+`"`)
	write(gone + "\n" + rewritten + "\n")
	code, out, _ := runCmd("audit", "verify", "--data", dir, "--anchor", anchor)
	if code != exitInternal || !strings.Contains(out, "record 9") || !strings.Contains(out, "anchored record is gone") ||
		!strings.Contains(out, "differs from the anchored one") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	write("not json\n")
	if code, _, errOut := runCmd("audit", "verify", "--data", dir, "--anchor", anchor); code != exitUsage || !strings.Contains(errOut, ":1: not an audit head") {
		t.Fatalf("bad anchor file: exit %d: %s", code, errOut)
	}
}
