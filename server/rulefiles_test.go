package server

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Rule files of the tests: a rule with a passing test, the same rule
// renamed, a parse error, and a failing test.
const (
	fileRuleV1 = `rule "file-allow" {
  priority 5
  when     signer == "Vendor A"
  then     auto_approve for 30m
}
`
	fileTestV1 = `test "vendor a is approved" {
  at 2026-06-15T10:00:00Z
  observe {
    user   = "u"
    path   = ` + "`C:\\x.exe`" + `
    signer = "Vendor A"
  }
  expect auto_approved by "file-allow" for 30m
}
`
	fileRuleV2 = `rule "file-deny" {
  priority 5
  when     signer == "Vendor A"
  then     auto_deny
}
`
	fileTestV2 = `test "vendor a is refused" {
  at 2026-06-15T10:00:00Z
  observe {
    user   = "u"
    path   = ` + "`C:\\x.exe`" + `
    signer = "Vendor A"
  }
  expect denied by "file-deny"
}
`
	fileRuleBroken = `rule "file-allow" {
  when signer === "Vendor A SECRET-MARKER"
  then auto_approve
}
`
	fileTestFailing = `test "vendor a must be pending" {
  at 2026-06-15T10:00:00Z
  observe {
    user   = "u"
    path   = ` + "`C:\\x.exe`" + `
    signer = "Vendor A"
  }
  expect pending
}
`
)

func rfWrite(t *testing.T, dir, name, src string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

const vendorA = `{"flowType":"uac_intercept","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x.exe","targetExecutableSigner":"Vendor A"}}`

func (e *rulesEnv) decided(t *testing.T, tok, body string) map[string]any {
	t.Helper()
	r := e.call(t, "POST", "/api/v1/pam/decide", tok, body)
	if r.status != 200 {
		t.Fatalf("decide: %d %s", r.status, r.raw)
	}
	return rtObj(r.body, "decision")
}

func (e *rulesEnv) readyz(t *testing.T) reply {
	t.Helper()
	r := e.call(t, "GET", "/readyz", "", "")
	if r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.raw)
	}
	return r
}

func TestRuleFilesServeAndReload(t *testing.T) {
	dir := t.TempDir()
	rfWrite(t, dir, "rules.pam", fileRuleV1)
	rfWrite(t, dir, "rules_test.pam", fileTestV1)
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.RulesDir = dir })
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	adm := e.admin(t)
	e.createRule(t, adm, `{"name":"api-first","priority":1,"verdict":"require_approval","matchSigner":"Vendor B"}`)

	r := e.call(t, "GET", "/api/v1/pam/rules", adm, "")
	rules := rtList(r.body, "rules")
	if r.status != 200 || len(rules) != 2 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	api, file := rtObj(rules[0]), rtObj(rules[1])
	if api["name"] != "api-first" || api["source"] != "api" || api["origin"] != nil {
		t.Fatalf("api rule: %v", api)
	}
	if file["name"] != "file-allow" || file["source"] != "file" || file["verdict"] != "auto_approve" || file["approvalDurationMinutes"] != 30.0 {
		t.Fatalf("file rule: %v", file)
	}
	if o, _ := file["origin"].(string); !regexp.MustCompile(`rules\.pam:1:\d+$`).MatchString(o) {
		t.Fatalf("origin %q", file["origin"])
	}
	// The export is of the stored rules only.
	if body, _, _ := e.getText(t, "/api/v1/pam/rules?format=pam", adm); strings.Contains(body, "file-allow") || !strings.Contains(body, "api-first") {
		t.Fatalf("export:\n%s", body)
	}
	// File rules are not the API's to change.
	if id, _ := file["id"].(string); id != "" {
		if r := e.call(t, "PATCH", "/api/v1/pam/rules/"+id, adm, `{"enabled":false}`); r.status != 404 {
			t.Fatalf("patch a file rule: %d %s", r.status, r.raw)
		}
		if r := e.call(t, "DELETE", "/api/v1/pam/rules/"+id, adm, ""); r.status != 404 {
			t.Fatalf("delete a file rule: %d %s", r.status, r.raw)
		}
	}
	// A site-restricted caller does not see org-wide file rules.
	hq := e.tok(t, Claims{SiteIDs: []string{e.site}})
	if r := e.call(t, "GET", "/api/v1/pam/rules", hq, ""); len(rtList(r.body, "rules")) != 0 {
		t.Fatalf("site-restricted list: %s", r.raw)
	}

	// The file rule decides, in /pam/decide and at ingest.
	if d := e.decided(t, adm, vendorA); d["ruleName"] != "file-allow" || d["outcome"] != "auto_approved" || d["durationMinutes"] != 30.0 {
		t.Fatalf("%v", d)
	}
	ing := e.ingest(t, `{"subject_username":"u","target_executable_path":"C:\\x.exe","target_executable_signer":"Vendor A"}`)
	if ing.status != 201 || ing.body["status"] != "auto_approved" {
		t.Fatalf("ingest: %d %s", ing.status, ing.raw)
	}
	rz := e.readyz(t)
	rf := rtObj(rz.body, "ruleFiles")
	if rz.body["status"] != "ready" || rf["ok"] != true || rf["generation"] != 1.0 || rf["failedAt"] != nil {
		t.Fatalf("readyz: %s", rz.raw)
	}
	// Unchanged files are not reloaded.
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	if st, ok := e.server.RuleFileStatus(); !ok || st.Generation != 1 || !st.OK {
		t.Fatalf("%+v", st)
	}

	// A broken file: refused with its place, the last good set stays.
	rfWrite(t, dir, "rules.pam", fileRuleBroken)
	err := e.server.LoadRuleFiles()
	if err == nil || !regexp.MustCompile(`rules\.pam:2:\d+`).MatchString(err.Error()) {
		t.Fatalf("broken file: %v", err)
	}
	if d := e.decided(t, adm, vendorA); d["ruleName"] != "file-allow" {
		t.Fatalf("after a failed reload: %v", d)
	}
	rz = e.readyz(t)
	rf = rtObj(rz.body, "ruleFiles")
	if rz.body["status"] != "degraded" || rf["ok"] != false || rf["generation"] != 1.0 || rf["failedAt"] == nil {
		t.Fatalf("readyz: %s", rz.raw)
	}
	// Asking again without a change reports the same failure.
	if err2 := e.server.LoadRuleFiles(); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("second attempt: %v", err2)
	}
	if st, _ := e.server.RuleFileStatus(); st.OK || st.Generation != 1 || st.Error == "" {
		t.Fatalf("%+v", st)
	}

	// Fixed with another rule: picked up.
	rfWrite(t, dir, "rules.pam", fileRuleV2)
	rfWrite(t, dir, "rules_test.pam", fileTestV2)
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	if d := e.decided(t, adm, vendorA); d["ruleName"] != "file-deny" || d["outcome"] != "denied" {
		t.Fatalf("after the fix: %v", d)
	}
	if r := e.ingest(t, `{"subject_username":"u","target_executable_path":"C:\\x.exe","target_executable_signer":"Vendor A"}`); r.body["status"] != "denied" {
		t.Fatalf("ingest after the fix: %s", r.raw)
	}
	rz = e.readyz(t)
	if rf := rtObj(rz.body, "ruleFiles"); rz.body["status"] != "ready" || rf["ok"] != true || rf["generation"] != 2.0 {
		t.Fatalf("readyz: %s", rz.raw)
	}

	// A failing test refuses the whole set too.
	rfWrite(t, dir, "more_test.pam", fileTestFailing)
	err = e.server.LoadRuleFiles()
	if err == nil || !strings.Contains(err.Error(), "vendor a must be pending") {
		t.Fatalf("failing test: %v", err)
	}
	if d := e.decided(t, adm, vendorA); d["ruleName"] != "file-deny" {
		t.Fatalf("after a failing test: %v", d)
	}
	if rz := e.readyz(t); rz.body["status"] != "degraded" {
		t.Fatalf("readyz: %s", rz.raw)
	}
	// A new rule in a new file with the failing test: still refused.
	rfWrite(t, dir, "extra.pam", `rule "extra" {
  when signer == "Vendor C"
  then auto_approve
}
`)
	if err := e.server.LoadRuleFiles(); err == nil {
		t.Fatal("a set with a failing test was loaded")
	}
	if d := e.decided(t, adm, strings.Replace(vendorA, "Vendor A", "Vendor C", 1)); d["ruleName"] != nil {
		t.Fatalf("a rule of a refused set decided: %v", d)
	}
	if err := os.Remove(filepath.Join(dir, "more_test.pam")); err != nil {
		t.Fatal(err)
	}
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	if d := e.decided(t, adm, strings.Replace(vendorA, "Vendor A", "Vendor C", 1)); d["ruleName"] != "extra" {
		t.Fatalf("%v", d)
	}
	// Removing every file removes their rules.
	for _, f := range []string{"rules.pam", "rules_test.pam", "extra.pam"} {
		os.Remove(filepath.Join(dir, f))
	}
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	if d := e.decided(t, adm, vendorA); d["ruleName"] != nil {
		t.Fatalf("after removing the files: %v", d)
	}
}

// The origin names the file within the repository, and /readyz, which
// anyone may call, says the rule files failed without quoting them or
// naming the server's directories.
func TestRuleFilesDoNotDiscloseTheServer(t *testing.T) {
	dir := t.TempDir()
	rfWrite(t, dir, "rules.pam", fileRuleV1)
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.RulesDir = dir })
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	r := e.call(t, "GET", "/api/v1/pam/rules", e.admin(t), "")
	if o, _ := rtObj(rtList(r.body, "rules")[0])["origin"].(string); !regexp.MustCompile(`^rules\.pam:1:\d+$`).MatchString(o) {
		t.Errorf("origin %q", o)
	}
	rfWrite(t, dir, "rules.pam", fileRuleBroken)
	if err := e.server.LoadRuleFiles(); err == nil {
		t.Fatal("loaded a broken file")
	}
	rz := e.readyz(t)
	if strings.Contains(rz.raw, dir) || strings.Contains(rz.raw, "SECRET-MARKER") {
		t.Errorf("readyz discloses the rule files: %s", rz.raw)
	}
}

func TestRuleFilesNamedOrgs(t *testing.T) {
	dir := t.TempDir()
	rfWrite(t, dir, "acme.pam", `org "acme"

signers "acme-vendors" {
  cn "Vendor G"
}

rule "acme-only" {
  when signer == "Vendor A"
  then auto_approve
}
`)
	rfWrite(t, dir, "globex/org.pam", `org "globex"
`)
	rfWrite(t, dir, "globex/rules.pam", `rule "globex-only" {
  when signer == "Vendor G"
  then auto_deny
}
`)
	rfWrite(t, dir, "shared.pam", `rule "everyone" {
  priority 1
  when signer == "Vendor S"
  then require_approval
}
`)
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.RulesDir = dir })
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	acme := e.admin(t)
	globex := e.tok(t, Claims{Scope: ScopeOrganization, OrgID: e.other, AMR: []string{"mfa"}})
	obs := func(signer string) string { return strings.Replace(vendorA, "Vendor A", signer, 1) }
	for name, c := range map[string]struct {
		tok, signer string
		rule        any
	}{
		"acme, its rule":      {acme, "Vendor A", "acme-only"},
		"acme, globex's":      {acme, "Vendor G", nil},
		"acme, shared":        {acme, "Vendor S", "everyone"},
		"globex, its rule":    {globex, "Vendor G", "globex-only"},
		"globex, acme's":      {globex, "Vendor A", nil},
		"globex, shared":      {globex, "Vendor S", "everyone"},
		"globex, acme's CN":   {globex, "Vendor G", "globex-only"},
		"acme, no such thing": {acme, "Vendor Z", nil},
	} {
		if d := e.decided(t, c.tok, obs(c.signer)); d["ruleName"] != c.rule {
			t.Errorf("%s: %v", name, d)
		}
	}
	names := func(tok string) string {
		var out []string
		for _, r := range rtList(e.call(t, "GET", "/api/v1/pam/rules", tok, "").body, "rules") {
			out = append(out, rtObj(r)["name"].(string))
		}
		return strings.Join(out, ",")
	}
	if got := names(acme); got != "everyone,acme-only" {
		t.Errorf("acme lists %s", got)
	}
	if got := names(globex); got != "everyone,globex-only" {
		t.Errorf("globex lists %s", got)
	}
	r := e.call(t, "GET", "/api/v1/pam/signer-groups", acme, "")
	if gs := rtList(r.body, "signerGroups"); len(gs) != 1 || rtObj(gs[0])["name"] != "acme-vendors" || rtObj(gs[0])["source"] != "file" {
		t.Errorf("acme groups: %s", r.raw)
	}
	if r := e.call(t, "GET", "/api/v1/pam/signer-groups", globex, ""); strings.Contains(r.raw, "acme-vendors") {
		t.Errorf("globex sees acme's group: %s", r.raw)
	}
	// The agent of acme's device is decided by acme's files.
	if r := e.ingest(t, `{"subject_username":"u","target_executable_path":"C:\\x.exe","target_executable_signer":"Vendor A"}`); r.body["status"] != "auto_approved" {
		t.Errorf("acme ingest: %s", r.raw)
	}
	gx := e.do(t, "POST", "/api/v1/agents/"+e.otherDev+"/elevation-requests", "tok-gx", "application/json",
		strings.NewReader(`{"subject_username":"u","target_executable_path":"C:\\x.exe","target_executable_signer":"Vendor A"}`))
	if gx.body["status"] != "pending" {
		t.Errorf("globex ingest: %s", gx.raw)
	}
}

func TestRuleFileSettings(t *testing.T) {
	dir := t.TempDir()
	rfWrite(t, dir, "settings.pam", `settings {
  default_unmatched = auto_deny
}
`)
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.RulesDir = dir })
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	adm := e.admin(t)
	if c := rtObj(e.call(t, "GET", "/api/v1/pam/config", adm, "").body, "config"); c["defaultUnmatchedVerdict"] != "auto_deny" {
		t.Fatalf("%v", c)
	}
	unmatched := `{"subject_username":"u","target_executable_path":"C:\\x.exe"}`
	if r := e.ingest(t, unmatched); r.body["status"] != "denied" {
		t.Fatalf("file default: %s", r.raw)
	}
	if d := e.decided(t, adm, vendorA); d["outcome"] != "denied" || d["decidedBy"] != "org_default" {
		t.Fatalf("%v", d)
	}
	// The org's own setting wins.
	if r := e.call(t, "PUT", "/api/v1/pam/config", adm, `{"defaultUnmatchedVerdict":"require_approval"}`); r.status != 200 ||
		rtObj(r.body, "config")["defaultUnmatchedVerdict"] != "require_approval" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if r := e.ingest(t, unmatched); r.body["status"] != "pending" {
		t.Fatalf("stored setting: %s", r.raw)
	}
	// Removing the setting from the files reaches orgs that have not set
	// their own.
	globex := e.tok(t, Claims{Scope: ScopeOrganization, OrgID: e.other})
	if c := rtObj(e.call(t, "GET", "/api/v1/pam/config", globex, "").body, "config"); c["defaultUnmatchedVerdict"] != "auto_deny" {
		t.Fatalf("globex: %v", c)
	}
	rfWrite(t, dir, "settings.pam", "# nothing\n")
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	if c := rtObj(e.call(t, "GET", "/api/v1/pam/config", globex, "").body, "config"); c["defaultUnmatchedVerdict"] != "require_approval" {
		t.Fatalf("globex after removal: %v", c)
	}
}

// uac_interception in the files is a setting like default_unmatched: an
// org that has not set its own gets the files'.
func TestRuleFileUacInterceptionSetting(t *testing.T) {
	dir := t.TempDir()
	rfWrite(t, dir, "settings.pam", `settings {
  uac_interception = true
}
`)
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.RulesDir = dir })
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	if c := rtObj(e.call(t, "GET", "/api/v1/pam/config", e.admin(t), "").body, "config"); c["uacInterceptionEnabled"] != true {
		t.Fatalf("%v", c)
	}
}

func TestWatchRuleFiles(t *testing.T) {
	dir := t.TempDir()
	rfWrite(t, dir, "rules.pam", fileRuleV1)
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.RulesDir = dir })
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.server.WatchRuleFiles(ctx, 5*time.Millisecond); close(done) }()
	rfWrite(t, dir, "rules.pam", fileRuleV2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, _ := e.server.RuleFileStatus(); st.Generation == 2 && st.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not reload the changed file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := e.decided(t, e.admin(t), vendorA); d["ruleName"] != "file-deny" {
		t.Fatalf("%v", d)
	}
	cancel()
	<-done
	// Without a rules directory there is nothing to watch or load.
	plain := newRulesEnv(t, nil)
	if err := plain.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	if _, ok := plain.server.RuleFileStatus(); ok {
		t.Fatal("status without a directory")
	}
	plain.server.WatchRuleFiles(context.Background(), time.Millisecond) // returns at once
	if rz := plain.readyz(t); rz.body["status"] != "ready" || rz.body["ruleFiles"] != nil {
		t.Fatalf("%s", rz.raw)
	}
	// A missing directory is a failed load.
	gone := filepath.Join(t.TempDir(), "missing")
	m := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.RulesDir = gone })
	if err := m.server.LoadRuleFiles(); err == nil {
		t.Fatal("a missing directory loaded")
	}
	if rz := m.readyz(t); rz.body["status"] != "degraded" {
		t.Fatalf("%s", rz.raw)
	}
}

// Decisions while the files are swapped: every decision is made with one
// whole set (the old or the new one), never a mix and never an error.
func TestRuleFilesReloadRace(t *testing.T) {
	dir := t.TempDir()
	rfWrite(t, dir, "rules.pam", fileRuleV1)
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.RulesDir = dir })
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	tok := e.tok(t, Claims{Permissions: []string{PermRead}})
	stop := make(chan struct{})
	var started, wg sync.WaitGroup
	var decisions, ingests atomic.Int64
	const deciders = 4
	started.Add(deciders + 1)
	for range deciders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for {
				r := e.call(t, "POST", "/api/v1/pam/decide", tok, vendorA)
				d := rtObj(r.body, "decision")
				ok := r.status == 200 && (d["ruleName"] == "file-allow" && d["outcome"] == "auto_approved" ||
					d["ruleName"] == "file-deny" && d["outcome"] == "denied")
				if !ok {
					t.Errorf("decision during reload: %d %s", r.status, r.raw)
				}
				decisions.Add(1)
				if first {
					started.Done()
					first = false
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	var ids []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 150; i++ {
			r := e.ingest(t, `{"subject_username":"u","target_executable_path":"C:\\x.exe","target_executable_signer":"Vendor A"}`)
			if r.status != 201 {
				t.Errorf("ingest: %d %s", r.status, r.raw)
			} else {
				ids = append(ids, r.body["id"].(string))
			}
			ingests.Add(1)
			if i == 0 {
				started.Done()
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	started.Wait()
	versions := []string{fileRuleV2, fileRuleBroken, fileRuleV1, fileRuleV2, fileRuleV1}
	for i := range 40 {
		rfWrite(t, dir, "rules.pam", versions[i%len(versions)])
		err := e.server.LoadRuleFiles()
		if broken := versions[i%len(versions)] == fileRuleBroken; broken != (err != nil) {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if decisions.Load() < deciders || ingests.Load() == 0 {
		t.Fatalf("%d decisions, %d ingests", decisions.Load(), ingests.Load())
	}
	// Every stored decision names the rule that fits its outcome; a
	// request decided while the set kept changing is left to a person.
	for _, id := range ids {
		got, err := e.st.Request(e.org, id)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case got.Status == "auto_approved" && got.Decision.RuleName == "file-allow":
		case got.Status == "denied" && got.Decision.RuleName == "file-deny":
		case got.Status == "pending" && got.Decision.Error != "":
		default:
			t.Errorf("request %s: %s by %q (%s)", id, got.Status, got.Decision.RuleName, got.Decision.Error)
		}
	}
}
