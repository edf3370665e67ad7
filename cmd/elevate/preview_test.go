package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/elevate-pam/elevate/simulate"
	"github.com/elevate-pam/elevate/store"
)

const (
	pOrgA    = "01900000-0000-7000-8000-0000000002a1"
	pOrgB    = "01900000-0000-7000-8000-0000000002b1"
	pSite1   = "01900000-0000-7000-8000-0000000025a1"
	pSite2   = "01900000-0000-7000-8000-0000000025a2"
	pVendors = "01900000-0000-7000-8000-0000000029a1"
	pNow     = "2026-03-31T12:00:00Z"
)

// previewFixture: two organisations; Acme has a stored signer group, a
// stored rule and nine requests, Beta one. With --now pNow the default
// 30-day window holds p01–p07 and p09; p08 is 49 days old.
const previewFixture = `{"kind":"org","id":"` + pOrgA + `","name":"Acme"}
{"kind":"org","id":"` + pOrgB + `","name":"Beta"}
{"kind":"site","id":"` + pSite1 + `","orgId":"` + pOrgA + `","name":"HQ"}
{"kind":"site","id":"` + pSite2 + `","orgId":"` + pOrgA + `","name":"Lab"}
{"kind":"device","id":"01900000-0000-7000-8000-000000002da1","orgId":"` + pOrgA + `","siteId":"` + pSite1 + `","hostname":"ws-1","status":"active"}
{"kind":"device","id":"01900000-0000-7000-8000-000000002da2","orgId":"` + pOrgA + `","siteId":"` + pSite2 + `","hostname":"lab-1","status":"active"}
{"kind":"device","id":"01900000-0000-7000-8000-000000002db1","orgId":"` + pOrgB + `","hostname":"b-1","status":"active"}
{"kind":"signerGroup","id":"` + pVendors + `","orgId":"` + pOrgA + `","name":"vendors","signers":["Mozilla Corporation"]}
{"kind":"rule","id":"01900000-0000-7000-8000-0000000021a1","orgId":"` + pOrgA + `","name":"deny-old","priority":1,"verdict":"auto_deny","matchPathGlob":"C:\\Tools\\old.exe"}
{"id":"01900000-0000-7000-8000-000000200001","orgId":"` + pOrgA + `","deviceId":"01900000-0000-7000-8000-000000002da1","siteId":"` + pSite1 + `","flowType":"uac_intercept","status":"pending","subjectUsername":"sarah","targetExecutablePath":"C:\\Tools\\a.exe","requestedAt":"2026-03-30T10:00:00Z"}
{"id":"01900000-0000-7000-8000-000000200002","orgId":"` + pOrgA + `","deviceId":"01900000-0000-7000-8000-000000002da1","siteId":"` + pSite1 + `","flowType":"uac_intercept","status":"auto_approved","subjectUsername":"sarah","targetExecutablePath":"C:\\Tools\\b.exe","requestedAt":"2026-03-29T10:00:00Z","approvedAt":"2026-03-29T10:00:00Z","expiresAt":"2026-03-29T10:15:00Z"}
{"id":"01900000-0000-7000-8000-000000200003","orgId":"` + pOrgA + `","deviceId":"01900000-0000-7000-8000-000000002da2","siteId":"` + pSite2 + `","flowType":"uac_intercept","status":"denied","subjectUsername":"bob","targetExecutablePath":"C:\\Tools\\c.exe","requestedAt":"2026-03-28T10:00:00Z","deniedAt":"2026-03-28T10:01:00Z"}
{"id":"01900000-0000-7000-8000-000000200004","orgId":"` + pOrgA + `","deviceId":"01900000-0000-7000-8000-000000002da2","siteId":"` + pSite2 + `","flowType":"uac_intercept","status":"approved","subjectUsername":"bob","targetExecutablePath":"C:\\Tools\\d.exe","requestedAt":"2026-03-27T10:00:00Z","approvedAt":"2026-03-27T10:05:00Z","expiresAt":"2026-03-27T10:35:00Z","approvedBy":"admin","durationMinutes":30}
{"id":"01900000-0000-7000-8000-000000200005","orgId":"` + pOrgA + `","deviceId":"01900000-0000-7000-8000-000000002da1","siteId":"` + pSite1 + `","flowType":"uac_intercept","status":"expired","subjectUsername":"sarah","targetExecutablePath":"C:\\Tools\\e.exe","requestedAt":"2026-03-20T10:00:00Z"}
{"id":"01900000-0000-7000-8000-000000200006","orgId":"` + pOrgA + `","deviceId":"01900000-0000-7000-8000-000000002da1","siteId":"` + pSite1 + `","flowType":"tech_jit_admin","status":"revoked","subjectUsername":"tech","targetExecutablePath":"C:\\Tools\\f.exe","requestedAt":"2026-03-10T10:00:00Z","revokedAt":"2026-03-10T10:10:00Z","revokedBy":"admin"}
{"id":"01900000-0000-7000-8000-000000200007","orgId":"` + pOrgA + `","deviceId":"01900000-0000-7000-8000-000000002da1","siteId":"` + pSite1 + `","flowType":"uac_intercept","status":"pending","subjectUsername":"sarah","targetExecutablePath":"C:\\Other\\x.exe","targetExecutableSigner":"Mozilla Corporation","requestedAt":"2026-03-25T10:00:00Z"}
{"id":"01900000-0000-7000-8000-000000200008","orgId":"` + pOrgA + `","deviceId":"01900000-0000-7000-8000-000000002da1","siteId":"` + pSite1 + `","flowType":"uac_intercept","status":"pending","subjectUsername":"sarah","targetExecutablePath":"C:\\Tools\\old.exe","requestedAt":"2026-02-10T10:00:00Z"}
{"id":"01900000-0000-7000-8000-000000200009","orgId":"` + pOrgA + `","deviceId":"01900000-0000-7000-8000-000000002da1","siteId":"` + pSite1 + `","flowType":"ai_tool_action","status":"pending","subjectUsername":"bot","toolName":"shell.exec","riskTier":3,"requestedAt":"2026-03-15T10:00:00Z"}
{"id":"01900000-0000-7000-8000-000000200010","orgId":"` + pOrgB + `","deviceId":"01900000-0000-7000-8000-000000002db1","flowType":"uac_intercept","status":"pending","subjectUsername":"eve","targetExecutablePath":"C:\\Tools\\z.exe","requestedAt":"2026-03-30T11:00:00Z"}
`

// pid is the id of fixture request n.
func pid(n string) string { return "01900000-0000-7000-8000-0000002000" + n }

// previewDir imports previewFixture into a new data directory.
func previewDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	file := filepath.Join(t.TempDir(), "state.jsonl")
	if err := os.WriteFile(file, []byte(previewFixture), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd("import", "--data", dir, file)
	if code != exitOK || out != "" || !strings.HasPrefix(errOut, "imported 10 requests, 1 rules, 1 signer groups") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	return dir
}

// writeDraft writes a draft file and returns its path.
func writeDraft(t *testing.T, name, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const toolsDraft = `rule "tools" {
  priority 10
  when     path ~ ` + "`C:\\Tools\\*`" + `
  then     auto_approve for 15m
}
`

const toolsDraftJSON = `{"name": "tools", "priority": 10, "verdict": "auto_approve", "approvalDurationMinutes": 15,
  "matchPathGlob": "C:\\Tools\\*"}`

// previewJSON runs a preview with --format json and decodes its result.
func previewJSON(t *testing.T, args ...string) *simulate.PreviewResult {
	t.Helper()
	code, out, errOut := runCmd(append(append([]string{"preview"}, args...), "--format", "json")...)
	if code != exitOK || errOut != "" {
		t.Fatalf("preview %v: exit %d\n%s%s", args, code, out, errOut)
	}
	var res simulate.PreviewResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var raw map[string]json.RawMessage
	json.Unmarshal([]byte(out), &raw)
	for _, k := range []string{"totalMatched", "totalScanned", "windowDays", "truncated", "statusBreakdown", "sample"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("preview %v: no %q in\n%s", args, k, out)
		}
	}
	return &res
}

// summary renders the counts and the sample's ids in order.
func previewSummary(r *simulate.PreviewResult) string {
	var b strings.Builder
	b.WriteString(jsonString(map[string]any{"matched": r.TotalMatched, "scanned": r.TotalScanned, "days": r.WindowDays,
		"truncated": r.Truncated, "statuses": r.StatusBreakdown}))
	b.WriteString(" sample:")
	for _, s := range r.Sample {
		b.WriteString(" " + strings.TrimPrefix(s.ID, "01900000-0000-7000-8000-0000002000"))
	}
	return b.String()
}

func jsonString(v any) string {
	b, _ := json.Marshal(v) // maps marshal with sorted keys
	return string(b)
}

func breakdown(pending, approved, autoApproved, denied, expired, revoked, actuating int) map[string]int {
	return map[string]int{"pending": pending, "approved": approved, "auto_approved": autoApproved, "denied": denied,
		"expired": expired, "revoked": revoked, "actuating": actuating}
}

func wantSummary(matched, scanned, days int, truncated bool, statuses map[string]int, sample ...string) string {
	return previewSummary(&simulate.PreviewResult{TotalMatched: matched, TotalScanned: scanned, WindowDays: days,
		Truncated: truncated, StatusBreakdown: statuses, Sample: samples(sample...)})
}

func samples(ids ...string) []simulate.Sample {
	out := make([]simulate.Sample, len(ids))
	for i, id := range ids {
		out[i].ID = pid(id)
	}
	return out
}

func TestPreviewRuleFileAndJSONAgree(t *testing.T) {
	dir := previewDir(t)
	pam := writeDraft(t, "draft.pam", toolsDraft)
	js := writeDraft(t, "draft.json", toolsDraftJSON)
	want := wantSummary(6, 8, 30, false, breakdown(1, 1, 1, 1, 1, 1, 0), "01", "02", "03", "04", "05", "06")
	for _, draft := range [][]string{{"--rule", pam}, {"--json", js}} {
		res := previewJSON(t, append([]string{"--data", dir, "--org", "Acme", "--now", pNow}, draft...)...)
		if got := previewSummary(res); got != want {
			t.Errorf("%v:\n got %s\nwant %s", draft, got, want)
		}
		if len(res.StatusBreakdown) != 7 {
			t.Errorf("%v: breakdown has %d statuses, want 7", draft, len(res.StatusBreakdown))
		}
		s := res.Sample[0]
		if s.RequestedAt.Format("2006-01-02T15:04:05Z07:00") != "2026-03-30T10:00:00Z" || s.FlowType != "uac_intercept" ||
			s.Status != store.StatusPending || s.SubjectUsername == nil || *s.SubjectUsername != "sarah" ||
			s.TargetExecutablePath == nil || *s.TargetExecutablePath != `C:\Tools\a.exe` || s.ToolName != nil {
			t.Errorf("%v: first sample %+v", draft, s)
		}
	}
}

// Without --org, a rule file's org declaration names the organisation.
func TestPreviewOrgFromRuleFile(t *testing.T) {
	dir := previewDir(t)
	pam := writeDraft(t, "beta.pam", "org \"beta\"\n\n"+toolsDraft)
	res := previewJSON(t, "--data", dir, "--now", pNow, "--rule", pam)
	if got, want := previewSummary(res), wantSummary(1, 1, 30, false, breakdown(1, 0, 0, 0, 0, 0, 0), "10"); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestPreviewFilters(t *testing.T) {
	dir := previewDir(t)
	pam := writeDraft(t, "draft.pam", toolsDraft)
	base := []string{"--data", dir, "--org", "acme", "--now", pNow, "--rule", pam}
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"60 days": {[]string{"--window-days", "60"},
			wantSummary(7, 9, 60, false, breakdown(2, 1, 1, 1, 1, 1, 0), "01", "02", "03", "04", "05", "06", "08")},
		"2 days": {[]string{"--window-days", "2"},
			wantSummary(1, 1, 2, false, breakdown(1, 0, 0, 0, 0, 0, 0), "01")},
		"uac only": {[]string{"--flow", "uac_intercept"},
			wantSummary(5, 6, 30, false, breakdown(1, 1, 1, 1, 1, 0, 0), "01", "02", "03", "04", "05")},
		"jit only": {[]string{"--flow", "tech_jit_admin"},
			wantSummary(1, 1, 30, false, breakdown(0, 0, 0, 0, 0, 1, 0), "06")},
		"site 2": {[]string{"--site", strings.ToUpper(pSite2)},
			wantSummary(2, 2, 30, false, breakdown(0, 1, 0, 1, 0, 0, 0), "03", "04")},
		"truncated": {[]string{"--max-scan", "3"},
			wantSummary(3, 3, 30, true, breakdown(1, 0, 1, 1, 0, 0, 0), "01", "02", "03")},
		// The cap reached exactly is truncated too (pam-semantics §8).
		"cap reached": {[]string{"--max-scan", "8"},
			wantSummary(6, 8, 30, true, breakdown(1, 1, 1, 1, 1, 1, 0), "01", "02", "03", "04", "05", "06")},
		"cap not reached": {[]string{"--max-scan", "9"},
			wantSummary(6, 8, 30, false, breakdown(1, 1, 1, 1, 1, 1, 0), "01", "02", "03", "04", "05", "06")},
		// The window ends at --now, both ends inclusive: p03 is at --now,
		// p05 a day before the window.
		"earlier now": {[]string{"--now", "2026-03-28T10:00:00Z", "--window-days", "7"},
			wantSummary(2, 3, 7, false, breakdown(0, 1, 0, 1, 0, 0, 0), "03", "04")},
	} {
		res := previewJSON(t, append(append([]string{}, base...), c.args...)...)
		if got := previewSummary(res); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, c.want)
		}
	}
}

func TestPreviewSignerGroups(t *testing.T) {
	dir := previewDir(t)
	base := []string{"--data", dir, "--org", pOrgA, "--now", pNow}
	vendorsMatch := wantSummary(1, 8, 30, false, breakdown(1, 0, 0, 0, 0, 0, 0), "07")
	none := wantSummary(0, 8, 30, false, breakdown(0, 0, 0, 0, 0, 0, 0))
	for name, c := range map[string]struct {
		draft []string
		want  string
	}{
		// The organisation's stored group, by name in a rule file…
		"stored, by name": {[]string{"--rule", writeDraft(t, "v.pam", `rule "v" {
  when signer in signers("vendors")
  then auto_approve
}
`)}, vendorsMatch},
		// …and by id in the API's JSON.
		"stored, by id": {[]string{"--json", writeDraft(t, "v.json", `{"matchSignerGroupId": "`+pVendors+`"}`)}, vendorsMatch},
		// A group the draft declares.
		"declared": {[]string{"--rule", writeDraft(t, "m.pam", `signers "mine" {
  cn "Mozilla Corporation"
}

rule "m" {
  when signer in signers("mine")
  then auto_approve
}
`)}, vendorsMatch},
		// A declared group of a stored group's name replaces it.
		"shadowing": {[]string{"--rule", writeDraft(t, "s.pam", `signers "vendors" {
  cn "Someone Else"
}

rule "s" {
  when signer in signers("vendors")
  then auto_approve
}
`)}, none},
		// A missing group fails closed (the API's semantics).
		"missing, by id": {[]string{"--json", writeDraft(t, "x.json", `{"matchSignerGroupId": "01900000-0000-7000-8000-0000000029ff"}`)}, none},
	} {
		res := previewJSON(t, append(append([]string{}, base...), c.draft...)...)
		if got := previewSummary(res); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, c.want)
		}
	}
}

// The API's preview body works as is: its windowDays, flowType and siteId
// apply, unless a flag gives them.
func TestPreviewJSONBodyOptions(t *testing.T) {
	dir := previewDir(t)
	js := writeDraft(t, "body.json", `{"matchPathGlob": "C:\\Tools\\*", "windowDays": 60, "flowType": "uac_intercept", "siteId": null}`)
	base := []string{"--data", dir, "--org", "Acme", "--now", pNow, "--json", js}
	if got, want := previewSummary(previewJSON(t, base...)),
		wantSummary(6, 7, 60, false, breakdown(2, 1, 1, 1, 1, 0, 0), "01", "02", "03", "04", "05", "08"); got != want {
		t.Errorf("body options:\n got %s\nwant %s", got, want)
	}
	if got, want := previewSummary(previewJSON(t, append(base, "--window-days", "30", "--flow", "tech_jit_admin")...)),
		wantSummary(1, 1, 30, false, breakdown(0, 0, 0, 0, 0, 1, 0), "06"); got != want {
		t.Errorf("flags over body:\n got %s\nwant %s", got, want)
	}
}

func TestPreviewText(t *testing.T) {
	dir := previewDir(t)
	pam := writeDraft(t, "draft.pam", toolsDraft)
	code, out, errOut := runCmd("preview", "--data", dir, "--org", "Acme", "--now", pNow, "--rule", pam, "--max-scan", "3")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		`Preview of "tools" in Acme: the 30 days to 2026-03-31T12:00:00Z`,
		"Matched 3 of 3 requests scanned",
		"Truncated: the scan stopped after 3 requests",
		"\n          pending  1  33.3%\n",
		"\n        actuating  0   0.0%\n",
		"Newest matches (3 of 3):",
		"  2026-03-30T10:00:00Z  pending        uac_intercept  sarah  C:\\Tools\\a.exe  " + pid("01") + "\n" +
			"  2026-03-29T10:00:00Z  auto_approved  uac_intercept  sarah  C:\\Tools\\b.exe  " + pid("02") + "\n" +
			"  2026-03-28T10:00:00Z  denied         uac_intercept  bob    C:\\Tools\\c.exe  " + pid("03") + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\033[") {
		t.Errorf("colour outside a terminal:\n%s", out)
	}
}

func TestPreviewRefusals(t *testing.T) {
	dir := previewDir(t)
	pam := writeDraft(t, "draft.pam", toolsDraft)
	syntaxErr := writeDraft(t, "broken.pam", "rule \"x\" {\n  when path ~\n  then auto_approve\n}\n")
	unknownGroup := writeDraft(t, "group.pam", "rule \"g\" {\n  when signer in signers(\"nobody\")\n  then auto_approve\n}\n")
	two := writeDraft(t, "two.pam", toolsDraft+`
rule "more" {
  when path ~ `+"`D:\\*`"+`
  then auto_deny
}
`)
	noRule := writeDraft(t, "none.pam", "signers \"s\" {\n  cn \"X\"\n}\n")
	badJSON := writeDraft(t, "bad.json", `{"matchPathGlob": 3}`)
	unknownField := writeDraft(t, "field.json", `{"matchPathGlob": "C:\\*", "matchColour": "red"}`)
	noCriteria := writeDraft(t, "empty.json", `{"name": "x", "verdict": "auto_approve"}`)
	badDays := writeDraft(t, "days.json", `{"matchPathGlob": "C:\\*", "windowDays": 91}`)
	base := []string{"preview", "--data", dir, "--now", pNow}
	for name, c := range map[string]struct {
		args []string
		code int
		msg  string // a regular expression
	}{
		"syntax error": {append(base, "--org", "Acme", "--rule", syntaxErr), exitCompile, `(?m)^` + regexp.QuoteMeta(syntaxErr) + `:3:3: error: `},
		// Syntax is checked before the data directory is opened.
		"syntax error, no data": {[]string{"preview", "--data", filepath.Join(dir, "none"), "--rule", syntaxErr}, exitCompile, regexp.QuoteMeta(syntaxErr) + `:3:3: error: `},
		"unknown group":         {append(base, "--org", "Acme", "--rule", unknownGroup), exitCompile, regexp.QuoteMeta(unknownGroup) + `:2:26: error: unknown signer group "nobody"`},
		"two rules":             {append(base, "--org", "Acme", "--rule", two), exitUsage, `declares 2 rules \("tools", "more"\); a draft is exactly one rule`},
		"no rule":               {append(base, "--org", "Acme", "--rule", noRule), exitUsage, `declares no rule; a draft is exactly one rule`},
		"wrong type":            {append(base, "--org", "Acme", "--json", badJSON), exitCompile, regexp.QuoteMeta(badJSON) + `: matchPathGlob: must be a string`},
		"unknown field":         {append(base, "--org", "Acme", "--json", unknownField), exitCompile, regexp.QuoteMeta(unknownField) + `: matchColour: is not a known field`},
		"no criteria":           {append(base, "--org", "Acme", "--json", noCriteria), exitCompile, regexp.QuoteMeta(noCriteria) + `: `},
		"body windowDays":       {append(base, "--org", "Acme", "--json", badDays), exitCompile, `windowDays must be 1 to 90`},
		"unknown org":           {append(base, "--org", "Nope", "--rule", pam), exitUsage, `--org: no organisation has the id or name "Nope"`},
		"org needed":            {append(base, "--rule", pam), exitUsage, `2 organisations: choose one with --org: "Acme" \(` + pOrgA + `\), "Beta" \(` + pOrgB + `\)`},
		"no draft":              {append(base, "--org", "Acme"), exitUsage, `Usage: elevate preview`},
		"two drafts":            {append(base, "--org", "Acme", "--rule", pam, "--json", pam), exitUsage, `Usage: elevate preview`},
		"no data":               {[]string{"preview", "--rule", pam}, exitUsage, `Usage: elevate preview`},
		"missing data":          {[]string{"preview", "--data", filepath.Join(dir, "none"), "--rule", pam}, exitUsage, `no data directory at`},
		"window":                {append(base, "--org", "Acme", "--rule", pam, "--window-days", "91"), exitUsage, `--window-days must be 1 to 90`},
		"zero window":           {append(base, "--org", "Acme", "--rule", pam, "--window-days", "0"), exitUsage, `--window-days must be 1 to 90`},
		"flow":                  {append(base, "--org", "Acme", "--rule", pam, "--flow", "uac"), exitUsage, `--flow must be`},
		"site":                  {append(base, "--org", "Acme", "--rule", pam, "--site", "hq"), exitUsage, `--site must be a site id`},
		"foreign site":          {append(base, "--org", "Beta", "--rule", pam, "--site", pSite1), exitUsage, `organisation "Beta" has no site`},
		"now":                   {append(base, "--org", "Acme", "--rule", pam, "--now", "yesterday"), exitUsage, `--now: "yesterday" is not an RFC 3339 time`},
		"max-scan":              {append(base, "--org", "Acme", "--rule", pam, "--max-scan", "0"), exitUsage, `--max-scan must be at least 1`},
		"format":                {append(base, "--org", "Acme", "--rule", pam, "--format", "xml"), exitUsage, `--format must be text or json`},
		"missing draft":         {append(base, "--org", "Acme", "--rule", filepath.Join(dir, "none.pam")), exitUsage, `none.pam`},
	} {
		code, out, errOut := runCmd(c.args...)
		if code != c.code || !regexp.MustCompile(c.msg).MatchString(errOut) || out != "" {
			t.Errorf("%s: exit %d, want %d with %q:\n%s%s", name, code, c.code, c.msg, out, errOut)
		}
	}
}

// A data directory a running server holds is refused with what to do.
func TestPreviewDataInUse(t *testing.T) {
	dir := previewDir(t)
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pam := writeDraft(t, "draft.pam", toolsDraft)
	code, out, errOut := runCmd("preview", "--data", dir, "--org", "Acme", "--rule", pam)
	if code != exitInternal || out != "" || !strings.Contains(errOut, "stop it and run the preview again, or ask the server: POST /api/v1/pam/rules/preview") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}
