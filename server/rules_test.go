package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/elevate-pam/elevate/dsl"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// rulesEnv is the base environment with a partner owning both orgs,
// two sites in the first org (the device is at the first), a second org
// ("globex") with a site, a device and a signer group, and a server
// built from the given configuration.
type rulesEnv struct {
	*env
	server                                 *Server
	partner, other, site, site2, otherSite string
	otherDev, otherGroup                   string
}

func newRulesEnv(t *testing.T, conf func(e *rulesEnv, c *Config)) *rulesEnv {
	t.Helper()
	e := &rulesEnv{env: newEnv(t, Config{JWTSecret: secret})}
	e.partner, e.other, e.site, e.site2, e.otherSite = store.NewID(t0), store.NewID(t0), store.NewID(t0), store.NewID(t0), store.NewID(t0)
	e.otherDev, e.otherGroup = store.NewID(t0), store.NewID(t0)
	err := e.st.Update(func(tx *store.Tx) error {
		if err := tx.PutPartner(&store.Partner{ID: e.partner, Name: "MSP"}); err != nil {
			return err
		}
		if err := tx.PutOrg(&store.Org{ID: e.org, Name: "acme", PartnerID: e.partner}); err != nil {
			return err
		}
		if err := tx.PutOrg(&store.Org{ID: e.other, Name: "globex", PartnerID: e.partner}); err != nil {
			return err
		}
		for _, s := range []*store.Site{{ID: e.site, OrgID: e.org, Name: "HQ"}, {ID: e.site2, OrgID: e.org, Name: "Branch"},
			{ID: e.otherSite, OrgID: e.other, Name: "GX"}} {
			if err := tx.PutSite(s); err != nil {
				return err
			}
		}
		if err := tx.PutDevice(&store.Device{ID: e.device, OrgID: e.org, SiteID: e.site, Hostname: "WIN-1", TokenHash: store.TokenHash(e.token)}); err != nil {
			return err
		}
		if err := tx.PutDevice(&store.Device{ID: e.otherDev, OrgID: e.other, SiteID: e.otherSite, Hostname: "GX-1", TokenHash: store.TokenHash("tok-gx")}); err != nil {
			return err
		}
		_, err := tx.PutSignerGroup(&engine.SignerGroup{ID: e.otherGroup, OrgID: e.other, Name: "theirs",
			Signers: []engine.SignerEntry{engine.CNEntry("Mozilla Corporation")}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c := Config{}
	if conf != nil {
		conf(e, &c)
	}
	c.Lifecycle, c.JWTSecret, c.Logger = e.lc, secret, slog.New(slog.NewTextHandler(e.logs, nil))
	e.server = New(c)
	old := e.srv
	var h http.Handler = e.server
	for _, wrap := range testHandlerWraps {
		h = wrap(t, h)
	}
	e.srv = httptest.NewServer(h)
	old.Close()
	return e
}

// Callers of the rules environment. Tokens outlive clock moves of a day.
func (e *rulesEnv) tok(t *testing.T, c Claims) string {
	t.Helper()
	if c.Scope == "" {
		c.Scope, c.OrgID = ScopeOrganization, e.org
	}
	if c.Permissions == nil {
		c.Permissions = allPerms
	}
	c.ExpiresAt = jwt.NewNumericDate(t0.Add(48 * time.Hour))
	return token(t, c)
}

func (e *rulesEnv) admin(t *testing.T) string {
	return e.tok(t, Claims{Name: "Ann", AMR: []string{"mfa"}})
}

func (e *rulesEnv) call(t *testing.T, method, path, tok, body string) reply {
	t.Helper()
	if body == "" {
		return e.do(t, method, path, tok, "", nil)
	}
	return e.do(t, method, path, tok, "application/json", strings.NewReader(body))
}

func rtObj(v any, path ...string) map[string]any {
	m, _ := v.(map[string]any)
	for _, k := range path {
		m, _ = m[k].(map[string]any)
	}
	return m
}

func rtList(v map[string]any, k string) []any {
	l, _ := v[k].([]any)
	return l
}

func (e *rulesEnv) auditActions(t *testing.T, org string) []string {
	t.Helper()
	var out []string
	if err := e.st.AuditLog(org, 1, func(r *store.AuditRecord) bool {
		out = append(out, r.Action)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *rulesEnv) storedRules(t *testing.T, org string) []engine.Rule {
	t.Helper()
	var rs []engine.Rule
	if err := e.st.View(func(sn *store.Snapshot) error {
		var err error
		rs, err = sn.Rules(org)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rs
}

func (e *rulesEnv) createRule(t *testing.T, tok, body string) map[string]any {
	t.Helper()
	r := e.call(t, "POST", "/api/v1/pam/rules", tok, body)
	if r.status != http.StatusCreated || r.body["success"] != true {
		t.Fatalf("create %s: %d %s", body, r.status, r.raw)
	}
	return rtObj(r.body, "rule")
}

var upperHash = strings.Repeat("AB", 32)

func TestRulesCreate(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	rule := e.createRule(t, adm, `{"name":"moz","verdict":"auto_approve","matchSigner":"Mozilla Corporation"}`)
	if rule["enabled"] != true || rule["priority"] != 100.0 || rule["source"] != "api" || rule["id"] == "" || rule["orgId"] != e.org ||
		rule["createdByUserId"] != "user-1" || rule["createdAt"] != t0.Format(time.RFC3339) || rule["siteId"] != nil {
		t.Fatalf("%v", rule)
	}
	// Hash and thumbprint are lowercased (the thumbprint trimmed).
	rule = e.createRule(t, adm, `{"name":"h","verdict":"auto_deny","matchHash":"`+upperHash+`","orgId":"`+strings.ToUpper(e.org)+`"}`)
	if rule["matchHash"] != strings.ToLower(upperHash) {
		t.Fatalf("%v", rule)
	}
	rule = e.createRule(t, adm, `{"name":"tp","verdict":"auto_deny","matchSignerThumbprint":" `+upperHash+` ","siteId":"`+e.site+`"}`)
	if rule["matchSignerThumbprint"] != strings.ToLower(upperHash) || rule["siteId"] != e.site {
		t.Fatalf("%v", rule)
	}

	for _, c := range []struct{ body, target string }{
		{`{"name":"n","verdict":"auto_approve","timeWindow":{"start":"08:00","end":"17:00"}}`, "criteria"},
		{`{"name":"n","verdict":"auto_approve","matchSigner":"S","matchToolName":"t"}`, "criteria"},
		{`{"name":"n","verdict":"auto_approve","matchSignerGroupId":"` + e.otherGroup + `","matchSigner":"S"}`, "matchSignerGroupId"},
		{`{"name":"n","verdict":"ignore","matchRiskTier":0}`, "verdict"},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","timeWindow":{"start":"08:00","end":"17:00","timezone":"Europe/Atlantis"}}`, "timeWindow.timezone"},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","timeWindow":{"start":"25:00","end":"17:00"}}`, "timeWindow.start"},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","orgId":"` + e.other + `"}`, "orgId"},
		{`{"name":"n","verdict":"auto_approve","matchSignerGroupId":"` + e.otherGroup + `"}`, "matchSignerGroupId"},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","siteId":"` + e.otherSite + `"}`, "siteId"},
		{`{"name":"n","verdict":"auto_approve","matchHash":"abc"}`, "matchHash"},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","priority":"high"}`, "priority"},
	} {
		r := e.call(t, "POST", "/api/v1/pam/rules", adm, c.body)
		if r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != c.target {
			t.Errorf("%s: %d %s (want target %s)", c.body, r.status, r.raw, c.target)
		}
	}
	// Fields the server sets are refused.
	for _, f := range []string{`"id":"` + store.NewID(t0) + `"`, `"createdAt":"2026-01-01T00:00:00Z"`, `"updatedAt":"2026-01-01T00:00:00Z"`,
		`"createdByUserId":"someone"`} {
		body := `{"name":"n","verdict":"auto_approve","matchUser":"u",` + f + `}`
		if r := e.call(t, "POST", "/api/v1/pam/rules", adm, body); r.status != 400 || errCode(r) != "VALIDATION" {
			t.Errorf("%s: %d %s", f, r.status, r.raw)
		}
	}
	if n := len(e.storedRules(t, e.org)); n != 3 {
		t.Fatalf("%d rules stored", n)
	}
	if n := len(e.storedRules(t, e.other)); n != 0 {
		t.Fatalf("%d rules stored in the other org", n)
	}
	if got := strings.Join(e.auditActions(t, e.org), ","); got != "rule.created,rule.created,rule.created" {
		t.Fatalf("audit: %s", got)
	}
}

// A misspelt field must not be dropped: the rule would be stored with one
// criterion fewer, i.e. wider than written.
func TestRulesUnknownFieldRefused(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	r := e.call(t, "POST", "/api/v1/pam/rules", adm, `{"name":"tools","verdict":"auto_approve","matchUser":"bob","matchPathGlb":"C:\\tools\\*"}`)
	if r.status != 400 || errTarget(r) != "matchPathGlb" {
		t.Errorf("create: %d %s", r.status, r.raw)
	}
	rule := e.createRule(t, adm, `{"name":"bob","verdict":"auto_approve","matchUser":"bob","matchSigner":"S"}`)
	r = e.call(t, "PATCH", "/api/v1/pam/rules/"+rule["id"].(string), adm, `{"matchSigner":null,"matchPathGlb":"C:\\tools\\*"}`)
	if r.status != 400 || errTarget(r) != "matchPathGlb" {
		t.Errorf("patch: %d %s", r.status, r.raw)
	}
	r = e.call(t, "POST", "/api/v1/pam/rules/preview", adm, `{"matchUser":"bob","matchPathGlb":"C:\\tools\\*"}`)
	if r.status != 400 || errTarget(r) != "matchPathGlb" {
		t.Errorf("preview: %d %s", r.status, r.raw)
	}
	// Inside the time window too: a misspelt "days" would make an
	// office-days rule hold every day, a misspelt "timezone" move it to UTC.
	for _, w := range []string{`{"start":"08:00","end":"18:00","dayz":[1,2,3,4,5]}`, `{"start":"08:00","end":"18:00","tz":"Europe/London"}`} {
		r = e.call(t, "POST", "/api/v1/pam/rules", adm, `{"name":"office","verdict":"auto_approve","matchUser":"bob","timeWindow":`+w+`}`)
		if r.status != 400 || !strings.HasPrefix(errTarget(r), "timeWindow") {
			t.Errorf("create with window %s: %d %s", w, r.status, r.raw)
		}
		r = e.call(t, "PATCH", "/api/v1/pam/rules/"+rule["id"].(string), adm, `{"timeWindow":`+w+`}`)
		if r.status != 400 || !strings.HasPrefix(errTarget(r), "timeWindow") {
			t.Errorf("patch with window %s: %d %s", w, r.status, r.raw)
		}
	}
	if n := len(e.storedRules(t, e.org)); n != 1 {
		t.Errorf("%d rules stored", n)
	}
}

func TestRulesPatch(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	rule := e.createRule(t, adm, `{"name":"moz","description":"d","priority":5,"verdict":"auto_approve","matchSigner":"Mozilla Corporation","matchUser":"acme\\sarah"}`)
	id := rule["id"].(string)
	path := "/api/v1/pam/rules/" + id
	patch := func(body string) reply { t.Helper(); return e.call(t, "PATCH", path, adm, body) }

	e.clock.Advance(time.Minute)
	r := patch(`{"matchUser":null}`)
	got := rtObj(r.body, "rule")
	if r.status != 200 || got["matchUser"] != nil || got["matchSigner"] != "Mozilla Corporation" || got["description"] != "d" ||
		got["priority"] != 5.0 || got["updatedAt"] != t0.Add(time.Minute).Format(time.RFC3339) || got["createdAt"] != t0.Format(time.RFC3339) {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if r := patch(`{"matchSigner":null}`); r.status != 400 || errTarget(r) != "criteria" {
		t.Fatalf("clearing the last criterion: %d %s", r.status, r.raw)
	}
	// Swap shapes in one patch, then try ignore on the tool rule.
	if r := patch(`{"matchSigner":null,"matchToolName":"file_read"}`); r.status != 200 {
		t.Fatalf("swap to tool: %d %s", r.status, r.raw)
	}
	if r := patch(`{"verdict":"ignore"}`); r.status != 400 || errTarget(r) != "verdict" {
		t.Fatalf("ignore on a tool rule: %d %s", r.status, r.raw)
	}
	if r := patch(`{"matchHash":"` + upperHash + `"}`); r.status != 400 || errTarget(r) != "criteria" {
		t.Fatalf("hash on a tool rule: %d %s", r.status, r.raw)
	}
	r = patch(`{"matchToolName":null,"matchHash":"` + upperHash + `"}`)
	if r.status != 200 || rtObj(r.body, "rule")["matchHash"] != strings.ToLower(upperHash) {
		t.Fatalf("swap back: %d %s", r.status, r.raw)
	}
	// An empty body moves updatedAt.
	e.clock.Advance(time.Minute)
	if r := patch(`{}`); r.status != 200 || rtObj(r.body, "rule")["updatedAt"] != t0.Add(2*time.Minute).Format(time.RFC3339) {
		t.Fatalf("empty patch: %d %s", r.status, r.raw)
	}
	// Read-only fields are refused with their target; orgId is dropped.
	for k, v := range map[string]string{"id": `"` + store.NewID(t0) + `"`, "createdAt": `"2020-01-01T00:00:00Z"`,
		"updatedAt": `"2020-01-01T00:00:00Z"`, "createdByUserId": `"x"`} {
		if r := patch(`{"` + k + `":` + v + `}`); r.status != 400 || errTarget(r) != k {
			t.Errorf("%s: %d %s", k, r.status, r.raw)
		}
	}
	r = patch(`{"orgId":"` + e.other + `","name":"renamed"}`)
	if r.status != 200 || rtObj(r.body, "rule")["orgId"] != e.org || rtObj(r.body, "rule")["name"] != "renamed" {
		t.Fatalf("orgId: %d %s", r.status, r.raw)
	}
	if len(e.storedRules(t, e.other)) != 0 {
		t.Fatal("the rule moved org")
	}
	// Not an object; not a UUID.
	for _, body := range []string{`null`, `[1]`, `"x"`} {
		if r := patch(body); r.status != 400 {
			t.Errorf("body %s: %d %s", body, r.status, r.raw)
		}
	}
	if r := e.call(t, "PATCH", "/api/v1/pam/rules/nope", adm, `{}`); r.status != 400 || errTarget(r) != "id" {
		t.Fatalf("bad id: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "PATCH", "/api/v1/pam/rules/"+store.NewID(t0), adm, `{}`); r.status != 404 {
		t.Fatalf("unknown id: %d %s", r.status, r.raw)
	}
	// Upper-case ids name the same rule.
	if r := e.call(t, "PATCH", "/api/v1/pam/rules/"+strings.ToUpper(id), adm, `{"description":"up"}`); r.status != 200 {
		t.Fatalf("upper-case id: %d %s", r.status, r.raw)
	}

	if r := e.call(t, "DELETE", path, adm, ""); r.status != 200 || r.body["success"] != true {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", path, adm, ""); r.status != 404 || errCode(r) != "NOT_FOUND" {
		t.Fatalf("second delete: %d %s", r.status, r.raw)
	}
	acts := e.auditActions(t, e.org)
	if acts[0] != "rule.created" || acts[len(acts)-1] != "rule.deleted" || strings.Count(strings.Join(acts, ","), "rule.updated") != 6 {
		t.Fatalf("audit: %v", acts)
	}
	if rep, err := e.st.VerifyAudit(); err != nil || len(rep.Breaks) > 0 {
		t.Fatalf("audit chain: %v %v", rep, err)
	}
}

// Another org's rule is not found (never forbidden), whatever the caller
// tries.
func TestRulesTenancy(t *testing.T) {
	e := newRulesEnv(t, nil)
	theirs := e.createRule(t, e.tok(t, Claims{Scope: ScopeOrganization, OrgID: e.other, AMR: []string{"mfa"}}),
		`{"name":"gx","verdict":"auto_deny","matchUser":"u"}`)
	adm := e.admin(t)
	path := "/api/v1/pam/rules/" + theirs["id"].(string)
	if r := e.call(t, "PATCH", path, adm, `{"name":"mine now"}`); r.status != 404 || errCode(r) != "NOT_FOUND" {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", path, adm, ""); r.status != 404 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	r := e.call(t, "GET", "/api/v1/pam/rules", adm, "")
	if r.status != 200 || len(rtList(r.body, "rules")) != 0 || strings.Contains(r.raw, theirs["id"].(string)) {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/api/v1/pam/rules?orgId="+e.other, adm, ""); r.status != 400 {
		t.Fatalf("org user naming another org: %d %s", r.status, r.raw)
	}
	if got := e.storedRules(t, e.other); len(got) != 1 || got[0].Name != "gx" {
		t.Fatalf("%+v", got)
	}
	// A partner caller reaching both orgs names one; a system caller too.
	partner := e.tok(t, Claims{Scope: ScopePartner, PartnerID: e.partner, AMR: []string{"mfa"}})
	if r := e.call(t, "GET", "/api/v1/pam/rules", partner, ""); r.status != 400 || errTarget(r) != "orgId" {
		t.Fatalf("partner without orgId: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/api/v1/pam/rules?orgId="+e.other, partner, ""); r.status != 200 || len(rtList(r.body, "rules")) != 1 {
		t.Fatalf("partner: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", path+"?orgId="+e.other, partner, ""); r.status != 200 {
		t.Fatalf("partner delete: %d %s", r.status, r.raw)
	}
	stranger := e.tok(t, Claims{Scope: ScopePartner, PartnerID: store.NewID(t0), AMR: []string{"mfa"}})
	if r := e.call(t, "GET", "/api/v1/pam/rules?orgId="+e.org, stranger, ""); r.status != 404 {
		t.Fatalf("unreachable org: %d %s", r.status, r.raw)
	}
}

func TestRulesSiteRestriction(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	orgWide := e.createRule(t, adm, `{"name":"org-wide","verdict":"auto_deny","matchUser":"u"}`)["id"].(string)
	atHQ := e.createRule(t, adm, `{"name":"hq","verdict":"auto_deny","matchUser":"u","siteId":"`+e.site+`"}`)["id"].(string)
	atBranch := e.createRule(t, adm, `{"name":"branch","verdict":"auto_deny","matchUser":"u","siteId":"`+e.site2+`"}`)["id"].(string)
	hq := e.tok(t, Claims{AMR: []string{"mfa"}, SiteIDs: []string{e.site}})

	r := e.call(t, "GET", "/api/v1/pam/rules", hq, "")
	if r.status != 200 || len(rtList(r.body, "rules")) != 1 || rtObj(rtList(r.body, "rules")[0])["id"] != atHQ {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	for name, c := range map[string]struct{ method, path, body string }{
		"create org-wide":        {"POST", "/api/v1/pam/rules", `{"name":"n","verdict":"auto_deny","matchUser":"u"}`},
		"create at branch":       {"POST", "/api/v1/pam/rules", `{"name":"n","verdict":"auto_deny","matchUser":"u","siteId":"` + e.site2 + `"}`},
		"patch org-wide":         {"PATCH", "/api/v1/pam/rules/" + orgWide, `{"siteId":"` + e.site + `"}`},
		"patch branch":           {"PATCH", "/api/v1/pam/rules/" + atBranch, `{"siteId":"` + e.site + `"}`},
		"move own to org-wide":   {"PATCH", "/api/v1/pam/rules/" + atHQ, `{"siteId":null}`},
		"move own to the branch": {"PATCH", "/api/v1/pam/rules/" + atHQ, `{"siteId":"` + e.site2 + `"}`},
		"delete org-wide":        {"DELETE", "/api/v1/pam/rules/" + orgWide, ""},
		"delete branch":          {"DELETE", "/api/v1/pam/rules/" + atBranch, ""},
	} {
		if r := e.call(t, c.method, c.path, hq, c.body); r.status != 403 || errCode(r) != "SITE_DENIED" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if n := len(e.storedRules(t, e.org)); n != 3 {
		t.Fatalf("%d rules", n)
	}
	if r := e.call(t, "PATCH", "/api/v1/pam/rules/"+atHQ, hq, `{"description":"ours"}`); r.status != 200 {
		t.Fatalf("own rule: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/api/v1/pam/rules", hq, `{"name":"n","verdict":"auto_deny","matchUser":"u","siteId":"`+e.site+`"}`); r.status != 201 {
		t.Fatalf("create at own site: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", "/api/v1/pam/rules/"+atHQ, hq, ""); r.status != 200 {
		t.Fatalf("delete own: %d %s", r.status, r.raw)
	}
	// Restricted to no site: sees and writes nothing.
	none := e.tok(t, Claims{AMR: []string{"mfa"}, SitesRestricted: true})
	if r := e.call(t, "GET", "/api/v1/pam/rules", none, ""); r.status != 200 || len(rtList(r.body, "rules")) != 0 {
		t.Fatalf("no sites: %d %s", r.status, r.raw)
	}
	// The export is narrowed the same way.
	body, ct, status := e.getText(t, "/api/v1/pam/rules?format=pam", hq)
	if status != 200 || !strings.HasPrefix(ct, "text/plain") || strings.Contains(body, `"org-wide"`) || strings.Contains(body, `"branch"`) {
		t.Fatalf("export: %d %s %s", status, ct, body)
	}
}

func TestRulesGates(t *testing.T) {
	e := newRulesEnv(t, nil)
	rule := e.createRule(t, e.admin(t), `{"name":"r","verdict":"auto_deny","matchUser":"u"}`)["id"].(string)
	group := rtObj(e.call(t, "POST", "/api/v1/pam/signer-groups", e.admin(t), `{"name":"g"}`).body, "signerGroup")["id"].(string)
	noMFA := e.tok(t, Claims{})
	reader := e.tok(t, Claims{Permissions: []string{PermRead}, AMR: []string{"mfa"}})
	writerNoMFA := e.tok(t, Claims{Permissions: []string{PermWrite}})
	executor := e.tok(t, Claims{Permissions: []string{PermRead, PermExecute}, AMR: []string{"mfa"}})
	decideBody := `{"flowType":"uac_intercept","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x.exe"}}`
	type ep struct{ method, path, body string }
	writes := []ep{
		{"POST", "/api/v1/pam/rules", `{"name":"n","verdict":"auto_deny","matchUser":"u"}`},
		{"PATCH", "/api/v1/pam/rules/" + rule, `{}`},
		{"DELETE", "/api/v1/pam/rules/" + rule, ""},
		{"POST", "/api/v1/pam/signer-groups", `{"name":"g2"}`},
		{"PATCH", "/api/v1/pam/signer-groups/" + group, `{"description":"x"}`},
		{"DELETE", "/api/v1/pam/signer-groups/" + group, ""},
		{"PUT", "/api/v1/pam/config", `{"defaultUnmatchedVerdict":"auto_deny"}`},
	}
	reads := []ep{
		{"GET", "/api/v1/pam/rules", ""},
		{"GET", "/api/v1/pam/signer-groups", ""},
		{"GET", "/api/v1/pam/config", ""},
		{"POST", "/api/v1/pam/decide", decideBody},
	}
	preview := ep{"POST", "/api/v1/pam/rules/preview", `{"matchUser":"u"}`}
	for _, w := range writes {
		if r := e.call(t, w.method, w.path, noMFA, w.body); r.status != 403 || errCode(r) != "MFA_REQUIRED" {
			t.Errorf("%s %s without MFA: %d %s", w.method, w.path, r.status, r.raw)
		}
		if r := e.call(t, w.method, w.path, writerNoMFA, w.body); r.status != 403 || errCode(r) != "MFA_REQUIRED" {
			t.Errorf("%s %s, writer without MFA: %d %s", w.method, w.path, r.status, r.raw)
		}
		for name, tok := range map[string]string{"reader": reader, "executor": executor} {
			if r := e.call(t, w.method, w.path, tok, w.body); r.status != 403 || errCode(r) != "FORBIDDEN" {
				t.Errorf("%s %s by %s: %d %s", w.method, w.path, name, r.status, r.raw)
			}
		}
		if r := e.call(t, w.method, w.path, "", w.body); r.status != 401 {
			t.Errorf("%s %s without a token: %d", w.method, w.path, r.status)
		}
	}
	for _, rd := range reads {
		if r := e.call(t, rd.method, rd.path, e.tok(t, Claims{Permissions: []string{PermRead}}), rd.body); r.status != 200 {
			t.Errorf("%s %s by a reader without MFA: %d %s", rd.method, rd.path, r.status, r.raw)
		}
		if r := e.call(t, rd.method, rd.path, e.tok(t, Claims{Permissions: []string{PermWrite}, AMR: []string{"mfa"}}), rd.body); r.status != 403 {
			t.Errorf("%s %s without devices:read: %d %s", rd.method, rd.path, r.status, r.raw)
		}
	}
	// Preview: devices:write, no MFA.
	if r := e.call(t, preview.method, preview.path, writerNoMFA, preview.body); r.status != 200 {
		t.Errorf("preview without MFA: %d %s", r.status, r.raw)
	}
	if r := e.call(t, preview.method, preview.path, reader, preview.body); r.status != 403 || errCode(r) != "FORBIDDEN" {
		t.Errorf("preview by a reader: %d %s", r.status, r.raw)
	}
	// Nothing the refused calls asked for happened.
	if n := len(e.storedRules(t, e.org)); n != 1 {
		t.Fatalf("%d rules", n)
	}
	if got := strings.Join(e.auditActions(t, e.org), ","); got != "rule.created,signer_group.created" {
		t.Fatalf("audit: %s", got)
	}
}

// A rule written over the API decides the next agent request.
func TestRuleWritesReachIngest(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	if r := e.ingest(t, firefox); r.status != 201 || r.body["status"] != "pending" {
		t.Fatalf("before: %d %s", r.status, r.raw)
	}
	v0, _ := e.st.RuleVersion(e.org)
	id := e.createRule(t, adm, `{"name":"moz","verdict":"auto_approve","matchSigner":"Mozilla Corporation"}`)["id"].(string)
	if v, _ := e.st.RuleVersion(e.org); v <= v0 {
		t.Fatalf("version %d → %d", v0, v)
	}
	r := e.ingest(t, firefox)
	if r.status != 201 || r.body["status"] != "auto_approved" {
		t.Fatalf("after create: %d %s", r.status, r.raw)
	}
	if got, _ := e.st.Request(e.org, r.body["id"].(string)); got.Decision.RuleName != "moz" {
		t.Fatalf("%+v", got.Decision)
	}
	if r := e.call(t, "PATCH", "/api/v1/pam/rules/"+id, adm, `{"verdict":"auto_deny"}`); r.status != 200 {
		t.Fatal(r.raw)
	}
	if r := e.ingest(t, firefox); r.body["status"] != "denied" {
		t.Fatalf("after patch: %s", r.raw)
	}
	// A rule of another site does not apply to this device.
	if r := e.call(t, "PATCH", "/api/v1/pam/rules/"+id, adm, `{"siteId":"`+e.site2+`"}`); r.status != 200 {
		t.Fatal(r.raw)
	}
	if r := e.ingest(t, firefox); r.body["status"] != "pending" {
		t.Fatalf("after moving the rule to another site: %s", r.raw)
	}
	if r := e.call(t, "DELETE", "/api/v1/pam/rules/"+id, adm, ""); r.status != 200 {
		t.Fatal(r.raw)
	}
	if r := e.ingest(t, firefox); r.body["status"] != "pending" {
		t.Fatalf("after delete: %s", r.raw)
	}
}

// getText fetches a non-JSON answer.
func (e *rulesEnv) getText(t *testing.T, path, tok string) (body, contentType string, status int) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.Header.Get("Content-Type"), resp.StatusCode
}

func TestRulesExportPam(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	g := rtObj(e.call(t, "POST", "/api/v1/pam/signer-groups", adm,
		`{"name":"vendors","description":"trusted","signers":["Mozilla Corporation",{"subjectCn":"Contoso","thumbprint":"`+upperHash+`"}]}`).body, "signerGroup")
	for _, body := range []string{
		`{"name":"moz","priority":10,"verdict":"auto_approve","approvalDurationMinutes":30,"matchSigner":"Mozilla Corporation","matchPathGlob":"C:\\Users\\*\\Downloads\\*.exe"}`,
		`{"name":"office hours","description":"only at work","verdict":"auto_approve","matchUser":"acme\\sarah","timeWindow":{"start":"08:00","end":"18:00","days":[1,2,3,4,5],"timezone":"Europe/London"}}`,
		`{"name":"helper reads","verdict":"auto_approve","matchToolName":"file_read","matchRiskTier":2}`,
		`{"name":"not bob","verdict":"require_approval","matchUser":"bob","matchCommandLine":"-enc","matchNegate":["user"]}`,
		`{"name":"vendors","verdict":"auto_approve","matchSignerGroupId":"` + g["id"].(string) + `"}`,
		`{"name":"hq hash","enabled":false,"siteId":"` + e.site + `","verdict":"auto_deny","matchHash":"` + upperHash + `"}`,
		`{"name":"parent","verdict":"ignore","matchParentImage":"C:\\Windows\\explorer.exe","matchAdGroup":"Admins"}`,
	} {
		e.createRule(t, adm, body)
	}
	body, ct, status := e.getText(t, "/api/v1/pam/rules?format=pam", adm)
	if status != 200 || ct != "text/plain; charset=utf-8" {
		t.Fatalf("%d %q %s", status, ct, body)
	}
	if strings.Contains(body, "not exported") {
		t.Fatalf("something was left out:\n%s", body)
	}
	repo := dsl.Load(map[string]string{"export.pam": body})
	if n := repo.Diags.Errors(); n > 0 {
		t.Fatalf("%d errors loading the export: %v\n%s", n, repo.Diags, body)
	}
	if len(repo.Orgs) != 1 {
		t.Fatalf("%d orgs", len(repo.Orgs))
	}
	got := map[string]engine.Rule{}
	for _, r := range repo.Orgs[0].Rules {
		got[r.Name] = engine.NormalizeRule(r)
	}
	stored := e.storedRules(t, e.org)
	if len(got) != len(stored) {
		t.Fatalf("%d rules exported, %d stored", len(got), len(stored))
	}
	for _, s := range stored {
		r, ok := got[s.Name]
		if !ok {
			t.Errorf("%q not exported", s.Name)
			continue
		}
		// The file form has no org; everything else comes back.
		s.OrgID, r.OrgID = "", ""
		if r.Condition != nil || s.Condition != nil {
			t.Errorf("%q: condition %v / %v", s.Name, r.Condition, s.Condition)
		}
		if !reflect.DeepEqual(ruleJSON(t, r), ruleJSON(t, s)) {
			t.Errorf("%q:\nexported %s\nstored   %s", s.Name, ruleJSON(t, r), ruleJSON(t, s))
		}
	}
	if len(repo.Orgs[0].Groups) != 1 || repo.Orgs[0].Groups[0].ID != g["id"] || len(repo.Orgs[0].Groups[0].Signers) != 2 {
		t.Fatalf("groups: %+v", repo.Orgs[0].Groups)
	}
	// The export passes the checker as a repository of its own.
	if rep := dsl.Check(repo, dsl.CheckOptions{NoLint: true}); rep.Diags.Errors() > 0 {
		t.Fatalf("check: %v", rep.Diags)
	}
	if r := e.call(t, "GET", "/api/v1/pam/rules?format=xml", adm, ""); r.status != 400 || errTarget(r) != "format" {
		t.Fatalf("format=xml: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/api/v1/pam/rules?format=json", adm, ""); r.status != 200 || len(rtList(r.body, "rules")) != 7 {
		t.Fatalf("format=json: %d %s", r.status, r.raw)
	}
	// Empty org: still a valid (empty) file.
	gx := e.tok(t, Claims{Scope: ScopeOrganization, OrgID: e.other})
	body, _, status = e.getText(t, "/api/v1/pam/rules?format=pam", gx)
	if status != 200 || dsl.Load(map[string]string{"x.pam": body}).Diags.Errors() > 0 || strings.Contains(body, "rule ") {
		t.Fatalf("other org: %d %s", status, body)
	}
}

func ruleJSON(t *testing.T, r engine.Rule) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSignerGroupsHTTP(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	r := e.call(t, "POST", "/api/v1/pam/signer-groups", adm,
		`{"name":"  Vendors ","signers":["Mozilla Corporation"," MOZILLA CORPORATION",{"thumbprint":"`+upperHash+`"},{"thumbprint":"`+strings.ToLower(upperHash)+`"}]}`)
	g := rtObj(r.body, "signerGroup")
	if r.status != 201 || g["name"] != "Vendors" || g["orgId"] != e.org || len(rtList(g, "signers")) != 2 ||
		rtList(g, "signers")[0] != "Mozilla Corporation" || rtObj(rtList(g, "signers")[1])["thumbprint"] != strings.ToLower(upperHash) {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	id := g["id"].(string)
	if r := e.call(t, "POST", "/api/v1/pam/signer-groups", adm, `{"name":"vendors"}`); r.status != 409 || errCode(r) != "CONFLICT" {
		t.Fatalf("duplicate: %d %s", r.status, r.raw)
	}
	for body, target := range map[string]string{
		`{"signers":[]}`: "name",
		`{"name":"x","signers":[{"thumbprint":"12"}]}`: "signers[0].thumbprint",
		`{"name":"x","colour":"red"}`:                  "",
	} {
		if r := e.call(t, "POST", "/api/v1/pam/signer-groups", adm, body); r.status != 400 || (target != "" && errTarget(r) != target) {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	e.call(t, "POST", "/api/v1/pam/signer-groups", adm, `{"name":"Alpha"}`)
	r = e.call(t, "GET", "/api/v1/pam/signer-groups", adm, "")
	if gs := rtList(r.body, "signerGroups"); r.status != 200 || len(gs) != 2 || rtObj(gs[0])["name"] != "Alpha" || rtObj(gs[1])["source"] != "api" {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	if strings.Contains(r.raw, e.otherGroup) {
		t.Fatal("another org's group is listed")
	}
	if r := e.call(t, "PATCH", "/api/v1/pam/signer-groups/"+e.otherGroup, adm, `{"name":"mine"}`); r.status != 404 {
		t.Fatalf("another org's group: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", "/api/v1/pam/signer-groups/"+e.otherGroup, adm, ""); r.status != 404 {
		t.Fatalf("another org's group: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "PATCH", "/api/v1/pam/signer-groups/"+id, adm, `{"name":"alpha"}`); r.status != 409 {
		t.Fatalf("rename onto another: %d %s", r.status, r.raw)
	}

	// A rule through the group decides /pam/decide.
	rule := e.createRule(t, adm, `{"name":"vendors","verdict":"auto_approve","matchSignerGroupId":"`+id+`"}`)["id"].(string)
	r = e.call(t, "POST", "/api/v1/pam/decide", adm,
		`{"flowType":"uac_intercept","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x.exe","targetExecutableSigner":"mozilla corporation"}}`)
	if r.status != 200 || rtObj(r.body, "decision")["ruleName"] != "vendors" || rtObj(r.body, "decision")["outcome"] != "auto_approved" {
		t.Fatalf("decide: %d %s", r.status, r.raw)
	}
	r = e.call(t, "DELETE", "/api/v1/pam/signer-groups/"+id, adm, "")
	if r.status != 409 || errCode(r) != "IN_USE" || rtObj(r.body, "error", "details")["rules"] != 1.0 || !strings.Contains(r.raw, "1 rule") {
		t.Fatalf("in use: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", "/api/v1/pam/rules/"+rule, adm, ""); r.status != 200 {
		t.Fatal(r.raw)
	}
	if r := e.call(t, "DELETE", "/api/v1/pam/signer-groups/"+id, adm, ""); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", "/api/v1/pam/signer-groups/"+id, adm, ""); r.status != 404 {
		t.Fatalf("second delete: %d %s", r.status, r.raw)
	}
	acts := strings.Join(e.auditActions(t, e.org), ",")
	if acts != "signer_group.created,signer_group.created,rule.created,rule.deleted,signer_group.deleted" {
		t.Fatalf("audit: %s", acts)
	}
}

// A misspelt key in a pinned entry must not leave a CN-only entry that
// anyone can forge with a self-made certificate.
func TestSignerGroupMisspeltThumbprintRefused(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	r := e.call(t, "POST", "/api/v1/pam/signer-groups", adm, `{"name":"pinned","signers":[{"subjectCn":"Contoso","thumbprnt":"`+upperHash+`"}]}`)
	if r.status != 400 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	id := rtObj(e.call(t, "POST", "/api/v1/pam/signer-groups", adm, `{"name":"ok"}`).body, "signerGroup")["id"].(string)
	r = e.call(t, "PATCH", "/api/v1/pam/signer-groups/"+id, adm, `{"signers":[{"subjectCn":"Contoso","thumbprnt":"`+upperHash+`"}]}`)
	if r.status != 400 {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
}

func TestConfigHTTP(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	r := e.call(t, "GET", "/api/v1/pam/config", adm, "")
	c := rtObj(r.body, "config")
	if r.status != 200 || c["defaultUnmatchedVerdict"] != "require_approval" || c["uacInterceptionEnabled"] != nil || c["orgId"] != e.org {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	for body, target := range map[string]string{
		`{"defaultUnmatchedVerdict":"auto_approve"}`: "defaultUnmatchedVerdict",
		`{"defaultUnmatchedVerdict":"ignore"}`:       "defaultUnmatchedVerdict",
		`{"defaultUnmatchedVerdict":null}`:           "defaultUnmatchedVerdict",
		`{"defaultUnmatchedVerdict":5}`:              "defaultUnmatchedVerdict",
		`{"uacInterceptionEnabled":"yes"}`:           "uacInterceptionEnabled",
		`{"actuatorEnabled":null}`:                   "actuatorEnabled",
		`{"colour":"red"}`:                           "colour",
	} {
		if r := e.call(t, "PUT", "/api/v1/pam/config", adm, body); r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != target {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	if r := e.ingest(t, `{"subject_username":"u","target_executable_path":"C:\\x.exe"}`); r.body["status"] != "pending" {
		t.Fatalf("before: %s", r.raw)
	}
	r = e.call(t, "PUT", "/api/v1/pam/config", adm, `{"defaultUnmatchedVerdict":"auto_deny"}`)
	if r.status != 200 || rtObj(r.body, "config")["defaultUnmatchedVerdict"] != "auto_deny" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	r = e.ingest(t, `{"subject_username":"u","target_executable_path":"C:\\x.exe"}`)
	if r.status != 201 || r.body["status"] != "denied" {
		t.Fatalf("unmatched after auto_deny: %d %s", r.status, r.raw)
	}
	if got, _ := e.st.Request(e.org, r.body["id"].(string)); got.DenialReason != "Blocked by org default (no matching policy or rule)" {
		t.Fatalf("%q", got.DenialReason)
	}
	// A rule still decides.
	e.createRule(t, adm, `{"name":"moz","verdict":"auto_approve","matchSigner":"Mozilla Corporation"}`)
	if r := e.ingest(t, firefox); r.body["status"] != "auto_approved" {
		t.Fatalf("%s", r.raw)
	}
	// uacInterceptionEnabled: set, then null clears it; the other settings stay.
	r = e.call(t, "PUT", "/api/v1/pam/config", adm, `{"uacInterceptionEnabled":true}`)
	if c := rtObj(r.body, "config"); r.status != 200 || c["uacInterceptionEnabled"] != true || c["defaultUnmatchedVerdict"] != "auto_deny" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	r = e.call(t, "PUT", "/api/v1/pam/config", adm, `{"uacInterceptionEnabled":null}`)
	if c := rtObj(r.body, "config"); r.status != 200 || c["uacInterceptionEnabled"] != nil || c["defaultUnmatchedVerdict"] != "auto_deny" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if c := rtObj(e.call(t, "GET", "/api/v1/pam/config", adm, "").body, "config"); c["uacInterceptionEnabled"] != nil {
		t.Fatalf("%v", c)
	}
	// An empty body changes nothing.
	if r := e.call(t, "PUT", "/api/v1/pam/config", adm, `{}`); r.status != 200 || rtObj(r.body, "config")["defaultUnmatchedVerdict"] != "auto_deny" {
		t.Fatalf("%d %s", r.status, r.raw)
	}

	// A partner reaching both orgs must name one; the other org is untouched.
	partner := e.tok(t, Claims{Scope: ScopePartner, PartnerID: e.partner, AMR: []string{"mfa"}})
	if r := e.call(t, "PUT", "/api/v1/pam/config", partner, `{"defaultUnmatchedVerdict":"auto_deny"}`); r.status != 400 || errTarget(r) != "orgId" {
		t.Fatalf("partner without orgId: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/api/v1/pam/config", partner, ""); r.status != 400 || errTarget(r) != "orgId" {
		t.Fatalf("partner GET without orgId: %d %s", r.status, r.raw)
	}
	r = e.call(t, "GET", "/api/v1/pam/config?orgId="+e.other, partner, "")
	if r.status != 200 || rtObj(r.body, "config")["defaultUnmatchedVerdict"] != "require_approval" || rtObj(r.body, "config")["orgId"] != e.other {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if r := e.call(t, "PUT", "/api/v1/pam/config?orgId="+e.other, partner, `{"uacInterceptionEnabled":false}`); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if c := rtObj(e.call(t, "GET", "/api/v1/pam/config", adm, "").body, "config"); c["uacInterceptionEnabled"] != nil {
		t.Fatalf("the partner's write reached the wrong org: %v", c)
	}
	if r := e.call(t, "PUT", "/api/v1/pam/config?orgId="+e.other, adm, `{}`); r.status != 400 {
		t.Fatalf("org user naming another org: %d %s", r.status, r.raw)
	}
	if got := e.auditActions(t, e.other); len(got) != 1 || got[0] != "config.updated" {
		t.Fatalf("other org audit: %v", got)
	}
}

func TestDecideHTTP(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	e.createRule(t, adm, `{"name":"moz","verdict":"auto_approve","approvalDurationMinutes":20,"matchSigner":"Mozilla Corporation"}`)
	e.createRule(t, adm, `{"name":"hq tom","verdict":"auto_deny","matchUser":"tom","siteId":"`+e.site+`"}`)
	e.createRule(t, adm, `{"name":"office","verdict":"auto_approve","matchUser":"kim","timeWindow":{"start":"08:00","end":"18:00"}}`)
	e.createRule(t, adm, `{"name":"reads","verdict":"auto_approve","matchToolName":"file_read","matchRiskTier":2}`)
	reader := e.tok(t, Claims{Permissions: []string{PermRead}})
	_, before, _ := e.st.ListRequests(store.Filter{OrgID: e.org})
	v0, _ := e.st.RuleVersion(e.org)
	decide := func(body string) reply { t.Helper(); return e.call(t, "POST", "/api/v1/pam/decide", reader, body) }

	r := decide(`{"flowType":"uac_intercept","explain":true,"observation":{"subjectUsername":"u","targetExecutablePath":"C:\\setup.exe","targetExecutableSigner":"Mozilla Corporation","observedAt":"2026-06-15T09:00:00Z"}}`)
	d := rtObj(r.body, "decision")
	if r.status != 200 || d["outcome"] != "auto_approved" || d["ruleName"] != "moz" || d["durationMinutes"] != 20.0 || d["decidedBy"] != "rule" ||
		len(rtList(d, "explain")) == 0 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	r = decide(`{"flowType":"uac_intercept","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\setup.exe"}}`)
	if d := rtObj(r.body, "decision"); r.status != 200 || d["outcome"] != "pending" || d["ruleName"] != nil || d["decidedBy"] != "org_default" || d["explain"] != nil {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	// Site: from the device, or from the observation.
	tom := `{"subjectUsername":"tom","targetExecutablePath":"C:\\x.exe"`
	if d := rtObj(decide(`{"flowType":"uac_intercept","observation":`+tom+`}}`).body, "decision"); d["ruleName"] != nil {
		t.Fatalf("no site: %v", d)
	}
	if d := rtObj(decide(`{"flowType":"uac_intercept","deviceId":"`+e.device+`","observation":`+tom+`}}`).body, "decision"); d["ruleName"] != "hq tom" {
		t.Fatalf("device at HQ: %v", d)
	}
	if d := rtObj(decide(`{"flowType":"uac_intercept","observation":`+tom+`,"siteId":"`+strings.ToUpper(e.site)+`"}}`).body, "decision"); d["ruleName"] != "hq tom" {
		t.Fatalf("observation at HQ: %v", d)
	}
	// The instant: at, else observedAt for uac.
	kim := `{"flowType":"uac_intercept","observation":{"subjectUsername":"kim","targetExecutablePath":"C:\\x.exe"`
	if d := rtObj(decide(kim+`},"at":"2026-06-15T20:00:00Z"}`).body, "decision"); d["ruleName"] != nil {
		t.Fatalf("at 20:00: %v", d)
	}
	if d := rtObj(decide(kim+`,"observedAt":"2026-06-15T20:00:00Z"}}`).body, "decision"); d["ruleName"] != nil {
		t.Fatalf("observed at 20:00: %v", d)
	}
	if d := rtObj(decide(kim+`,"observedAt":"2026-06-15T20:00:00Z"},"at":"2026-06-15T09:00:00Z"}`).body, "decision"); d["ruleName"] != "office" {
		t.Fatalf("at 09:00: %v", d)
	}
	// Tool actions.
	if d := rtObj(decide(`{"flowType":"ai_tool_action","observation":{"toolName":"file_read","riskTier":2}}`).body, "decision"); d["ruleName"] != "reads" {
		t.Fatalf("tool: %v", d)
	}

	for body, target := range map[string]string{
		`{"flowType":"uac_intercept","observation":{"subjectUsername":"u"}}`:                                                                     "observation.targetExecutablePath",
		`{"flowType":"uac_intercept","observation":{"targetExecutablePath":"C:\\x"}}`:                                                            "observation.subjectUsername",
		`{"flowType":"uac_intercept","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x","targetExecutableHash":"zz"}}`:          "observation.targetExecutableHash",
		`{"flowType":"uac_intercept","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x","toolName":"t"}}`:                       "observation.toolName",
		`{"flowType":"tech_jit_admin","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x"}}`:                                     "observation.targetExecutablePath",
		`{"flowType":"ai_tool_action","observation":{"toolName":"t","riskTier":9}}`:                                                              "observation.riskTier",
		`{"flowType":"uac_intercept","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x","siteId":"hq"}}`:                        "observation.siteId",
		`{"flowType":"teleport","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x"}}`:                                           "flowType",
		`{"observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x"}}`:                                                                 "flowType",
		`{"flowType":"uac_intercept","deviceId":"x","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x"}}`:                       "deviceId",
		`{"flowType":"uac_intercept","deviceId":"` + e.otherDev + `","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x"}}`:      "deviceId",
		`{"flowType":"uac_intercept","deviceId":"` + store.NewID(t0) + `","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x"}}`: "deviceId",
	} {
		if r := decide(body); r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != target {
			t.Errorf("%s: %d %s (want target %s)", body, r.status, r.raw, target)
		}
	}
	if r := decide(`{"flowType":"uac_intercept","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x","colour":"red"}}`); r.status != 400 {
		t.Errorf("unknown observation field: %d %s", r.status, r.raw)
	}
	// Nothing is stored.
	if _, after, _ := e.st.ListRequests(store.Filter{OrgID: e.org}); after != before {
		t.Fatalf("requests %d → %d", before, after)
	}
	if v, _ := e.st.RuleVersion(e.org); v != v0 {
		t.Fatal("decide moved the rule version")
	}
	if got := e.auditActions(t, e.org); len(got) != 4 {
		t.Fatalf("decide was audited: %v", got)
	}
	// The other org's rules do not decide for this one.
	gx := e.tok(t, Claims{Scope: ScopeOrganization, OrgID: e.other, Permissions: []string{PermRead}})
	r = e.call(t, "POST", "/api/v1/pam/decide", gx, `{"flowType":"uac_intercept","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\setup.exe","targetExecutableSigner":"Mozilla Corporation"}}`)
	if d := rtObj(r.body, "decision"); r.status != 200 || d["ruleName"] != nil {
		t.Fatalf("other org: %d %s", r.status, r.raw)
	}
}

// putRows stores requests of the org directly, i minutes before now.
func (e *rulesEnv) putRows(t *testing.T, rows ...store.Request) {
	t.Helper()
	err := e.st.Update(func(tx *store.Tx) error {
		for i := range rows {
			r := rows[i]
			r.ID = store.NewID(t0)
			if r.OrgID == "" {
				r.OrgID, r.DeviceID, r.SiteID = e.org, e.device, e.site
			}
			if r.Flow == "" {
				r.Flow = engine.FlowUAC
			}
			if r.Status == "" {
				r.Status = store.StatusPending
			}
			if r.SubjectUsername == "" {
				r.SubjectUsername = `acme\sarah`
			}
			if r.RequestedAt.IsZero() {
				r.RequestedAt = e.clock.Now().Add(-time.Duration(i+1) * time.Minute)
			}
			if r.Status.Active() {
				r.ApprovedAt, r.ExpiresAt = r.RequestedAt, r.RequestedAt.Add(15*time.Minute)
			}
			if err := tx.PutRequest(&r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPreviewHTTP(t *testing.T) {
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.PreviewMaxScan = 3 })
	writer := e.tok(t, Claims{Permissions: []string{PermWrite}})
	preview := func(tok, body string) reply {
		t.Helper()
		return e.call(t, "POST", "/api/v1/pam/rules/preview", tok, body)
	}
	e.putRows(t,
		store.Request{TargetExecutablePath: `C:\a.exe`, TargetExecutableSigner: "Mozilla Corporation", AdGroups: []string{"Admins"}},
		store.Request{TargetExecutablePath: `C:\b.exe`, TargetExecutableSigner: "Mozilla Corporation", Status: store.StatusDenied},
	)
	r := preview(writer, `{"matchSigner":"mozilla corporation","verdict":"auto_approve","name":"ignored","priority":1}`)
	sb := rtObj(r.body, "statusBreakdown")
	if r.status != 200 || r.body["success"] != true || r.body["totalMatched"] != 2.0 || r.body["totalScanned"] != 2.0 ||
		r.body["windowDays"] != 30.0 || r.body["truncated"] != false || len(sb) != 7 || sb["pending"] != 1.0 || sb["denied"] != 1.0 ||
		sb["actuating"] != 0.0 || len(rtList(r.body, "sample")) != 2 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	s0 := rtObj(rtList(r.body, "sample")[0])
	if s0["targetExecutablePath"] != `C:\a.exe` || s0["flowType"] != "uac_intercept" || s0["status"] != "pending" || s0["toolName"] != nil ||
		s0["subjectUsername"] != `acme\sarah` {
		t.Fatalf("sample: %v", s0)
	}
	// Exactly at the cap: truncated.
	e.putRows(t, store.Request{TargetExecutablePath: `C:\c.exe`, RequestedAt: e.clock.Now().Add(-time.Hour)})
	r = preview(writer, `{"matchPathGlob":"**"}`)
	if r.body["truncated"] != true || r.body["totalScanned"] != 3.0 || r.body["totalMatched"] != 3.0 {
		t.Fatalf("at the cap: %s", r.raw)
	}
	if r := preview(writer, `{"matchPathGlob":"**","flowType":"tech_jit_admin"}`); r.body["truncated"] != false || r.body["totalScanned"] != 0.0 {
		t.Fatalf("flow filter: %s", r.raw)
	}
	// Drafts that need AD groups or thumbprints match nothing.
	for _, body := range []string{`{"matchAdGroup":"Admins"}`, `{"matchUser":"nobody","matchAdGroup":"x","matchNegate":["adGroup","user"]}`,
		`{"matchSignerThumbprint":"` + upperHash + `"}`} {
		if r := preview(writer, body); r.status != 200 || r.body["totalMatched"] != 0.0 {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	// Shape checks 1–3 apply, 4 does not.
	for body, target := range map[string]string{
		`{}`: "criteria",
		`{"timeWindow":{"start":"08:00","end":"09:00"}}`:                  "criteria",
		`{"matchSigner":"S","matchToolName":"t"}`:                         "criteria",
		`{"matchSigner":"S","matchSignerGroupId":"` + e.otherGroup + `"}`: "matchSignerGroupId",
		`{"matchUser":"u","windowDays":0}`:                                "windowDays",
		`{"matchUser":"u","windowDays":91}`:                               "windowDays",
		`{"matchUser":"u","windowDays":"7"}`:                              "windowDays",
		`{"matchUser":"u","flowType":"x"}`:                                "flowType",
		`{"matchUser":"u","siteId":"hq"}`:                                 "siteId",
		`{"matchHash":"xyz"}`:                                             "matchHash",
	} {
		if r := preview(writer, body); r.status != 400 || errTarget(r) != target {
			t.Errorf("%s: %d %s (want %s)", body, r.status, r.raw, target)
		}
	}
	if r := preview(writer, `{"matchToolName":"t","verdict":"ignore"}`); r.status != 200 {
		t.Errorf("ignore on a tool draft: %d %s", r.status, r.raw)
	}
	// A draft naming a missing (or another org's) signer group fails
	// closed: no match, and no error.
	for _, g := range []string{store.NewID(t0), e.otherGroup} {
		if r := preview(writer, `{"matchSignerGroupId":"`+g+`"}`); r.status != 200 || r.body["totalMatched"] != 0.0 {
			t.Errorf("group %s: %d %s", g, r.status, r.raw)
		}
	}
	if r := preview(writer, `{"matchUser":"acme\\sarah","windowDays":90}`); r.body["windowDays"] != 90.0 {
		t.Fatalf("%s", r.raw)
	}
	// Nothing is stored or audited by a preview.
	if got := e.auditActions(t, e.org); len(got) != 0 {
		t.Fatalf("audit: %v", got)
	}
}

func TestPreviewSites(t *testing.T) {
	e := newRulesEnv(t, nil)
	noSite := store.NewID(t0)
	if err := e.st.Update(func(tx *store.Tx) error {
		return tx.PutDevice(&store.Device{ID: noSite, OrgID: e.org, Hostname: "N"})
	}); err != nil {
		t.Fatal(err)
	}
	e.putRows(t,
		store.Request{TargetExecutablePath: `C:\a.exe`},
		store.Request{OrgID: e.org, DeviceID: noSite, TargetExecutablePath: `C:\b.exe`},
		store.Request{OrgID: e.other, DeviceID: e.otherDev, SiteID: e.otherSite, TargetExecutablePath: `C:\c.exe`},
	)
	all := e.tok(t, Claims{Permissions: []string{PermWrite}})
	hq := e.tok(t, Claims{Permissions: []string{PermWrite}, SiteIDs: []string{e.site}})
	branch := e.tok(t, Claims{Permissions: []string{PermWrite}, SiteIDs: []string{e.site2}})
	body := `{"matchPathGlob":"**"`
	for name, c := range map[string]struct {
		tok, body string
		status    int
		scanned   float64
	}{
		"everything":            {all, body + `}`, 200, 2},
		"one site":              {all, body + `,"siteId":"` + e.site + `"}`, 200, 1},
		"another org's site":    {all, body + `,"siteId":"` + e.otherSite + `"}`, 200, 0},
		"restricted":            {hq, body + `}`, 200, 1},
		"restricted, own site":  {hq, body + `,"siteId":"` + strings.ToUpper(e.site) + `"}`, 200, 1},
		"restricted, elsewhere": {branch, body + `}`, 200, 0},
		"restricted, HQ":        {branch, body + `,"siteId":"` + e.site + `"}`, 403, 0},
	} {
		r := e.call(t, "POST", "/api/v1/pam/rules/preview", c.tok, c.body)
		if r.status != c.status || (c.status == 200 && r.body["totalScanned"] != c.scanned) {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		if c.status == 403 && errCode(r) != "SITE_DENIED" {
			t.Errorf("%s: %s", name, r.raw)
		}
	}
}

func TestDebugClock(t *testing.T) {
	plain := newRulesEnv(t, nil)
	sysTok := plain.tok(t, Claims{Scope: ScopeSystem, AMR: []string{"mfa"}})
	if r := plain.call(t, "GET", "/api/v1/debug/clock", sysTok, ""); r.status != 404 {
		t.Fatalf("without a fake clock: %d %s", r.status, r.raw)
	}
	if r := plain.call(t, "PUT", "/api/v1/debug/clock", sysTok, `{"advance":"1m"}`); r.status != 404 {
		t.Fatalf("without a fake clock: %d %s", r.status, r.raw)
	}

	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.FakeClock = e.clock })
	sys := e.tok(t, Claims{Scope: ScopeSystem, AMR: []string{"mfa"}})
	org := e.admin(t)
	if r := e.call(t, "GET", "/api/v1/debug/clock", org, ""); r.status != 403 {
		t.Fatalf("org scope: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "PUT", "/api/v1/debug/clock", org, `{"advance":"1h"}`); r.status != 403 {
		t.Fatalf("org scope: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "PUT", "/api/v1/debug/clock", e.tok(t, Claims{Scope: ScopeSystem}), `{"advance":"1h"}`); r.status != 403 || errCode(r) != "MFA_REQUIRED" {
		t.Fatalf("system without MFA: %d %s", r.status, r.raw)
	}
	if !e.clock.Now().Equal(t0) {
		t.Fatal("a refused call moved the clock")
	}
	if r := e.call(t, "GET", "/api/v1/debug/clock", sys, ""); r.status != 200 || r.body["now"] != t0.Format(time.RFC3339) {
		t.Fatalf("get: %d %s", r.status, r.raw)
	}

	// A grant, then time passes.
	e.createRule(t, org, `{"name":"moz","verdict":"auto_approve","approvalDurationMinutes":15,"matchSigner":"Mozilla Corporation"}`)
	r := e.ingest(t, firefox)
	id := r.body["id"].(string)
	if r := e.call(t, "PUT", "/api/v1/debug/clock", sys, `{"advance":"14m"}`); r.status != 200 || r.body["now"] != t0.Add(14*time.Minute).Format(time.RFC3339) {
		t.Fatalf("advance: %d %s", r.status, r.raw)
	}
	if _, err := e.lc.Sweep(); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.st.Request(e.org, id); got.Status != store.StatusAutoApproved {
		t.Fatalf("before expiry: %s", got.Status)
	}
	if r := e.call(t, "PUT", "/api/v1/debug/clock", sys, `{"now":"`+t0.Add(16*time.Minute).Format(time.RFC3339)+`"}`); r.status != 200 {
		t.Fatalf("set: %d %s", r.status, r.raw)
	}
	if !e.lc.Clock().Now().Equal(t0.Add(16 * time.Minute)) {
		t.Fatalf("the lifecycle's clock is %v", e.lc.Clock().Now())
	}
	if _, err := e.lc.Sweep(); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.st.Request(e.org, id); got.Status != store.StatusExpired || got.ExpiredCause != "window" {
		t.Fatalf("after expiry: %+v", got)
	}
	act := e.call(t, "GET", "/api/v1/pam/active", org, "")
	if act.status != 200 || len(rtList(act.body, "active")) != 0 {
		t.Fatalf("active: %s", act.raw)
	}

	// Refusals: back in time, negative, both, neither, garbage.
	now := e.clock.Now()
	for body, target := range map[string]string{
		`{"now":"` + now.Add(-time.Second).Format(time.RFC3339) + `"}`: "now",
		`{"advance":"-5m"}`:  "advance",
		`{"advance":"soon"}`: "advance",
		`{"now":"` + now.Add(time.Hour).Format(time.RFC3339) + `","advance":"1m"}`: "",
		`{}`:                 "",
		`{"now":"tomorrow"}`: "",
	} {
		r := e.call(t, "PUT", "/api/v1/debug/clock", sys, body)
		if r.status != 400 || (target != "" && errTarget(r) != target) {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	if !e.clock.Now().Equal(now) {
		t.Fatalf("a refused call moved the clock to %v", e.clock.Now())
	}
	// Setting the same instant is not going back.
	if r := e.call(t, "PUT", "/api/v1/debug/clock", sys, `{"now":"`+now.Format(time.RFC3339)+`"}`); r.status != 200 {
		t.Fatalf("same instant: %d %s", r.status, r.raw)
	}
	// Offsets are converted to UTC.
	later := now.Add(time.Hour).In(time.FixedZone("x", 2*3600))
	if r := e.call(t, "PUT", "/api/v1/debug/clock", sys, `{"now":"`+later.Format(time.RFC3339)+`"}`); r.status != 200 ||
		r.body["now"] != now.Add(time.Hour).UTC().Format(time.RFC3339) {
		t.Fatalf("offset: %d %s", r.status, r.raw)
	}
}

// TestPreviewSource: a draft in the rule language gives the answer its
// equivalent criteria give; it must declare exactly one rule, may declare
// the signer groups it uses, and its errors name draft.pam:line:col.
func TestPreviewSource(t *testing.T) {
	e := newRulesEnv(t, nil)
	writer := e.tok(t, Claims{Permissions: []string{PermWrite}})
	preview := func(body string) reply {
		t.Helper()
		return e.call(t, "POST", "/api/v1/pam/rules/preview", writer, body)
	}
	source := func(text, extra string) string {
		b, _ := json.Marshal(text)
		return `{"source":` + string(b) + extra + `}`
	}
	e.putRows(t,
		store.Request{TargetExecutablePath: `C:\a.exe`, TargetExecutableSigner: "Mozilla Corporation"},
		store.Request{TargetExecutablePath: `C:\dir\b.exe`, TargetExecutableSigner: "Mozilla Corporation", Status: store.StatusDenied},
		store.Request{TargetExecutablePath: `C:\c.exe`, TargetExecutableSigner: "Contoso Ltd"},
		store.Request{Flow: engine.FlowToolAct, ToolName: "file_read", SubjectUsername: "helper"},
	)
	for name, c := range map[string]struct {
		criteria, text string
		matched        float64
	}{
		"conjunction": {`{"matchSigner":"Mozilla Corporation","matchPathGlob":"C:\\*.exe","windowDays":7}`,
			"rule \"p\" {\n  when signer == \"Mozilla Corporation\" and path ~ `C:\\*.exe`\n  then auto_approve\n}\n", 1},
		"condition": {`{"condition":"signer == \"Contoso Ltd\" or path ~ ` + "`C:\\\\dir\\\\**`" + `","windowDays":7}`,
			"rule \"p\" {\n  when signer == \"Contoso Ltd\" or path ~ `C:\\dir\\**`\n  then auto_deny\n}\n", 2},
		"tool": {`{"matchToolName":"file_read","windowDays":7}`,
			"rule \"p\" {\n  when tool == \"file_read\"\n  then require_approval\n}\n", 1},
	} {
		want, got := preview(c.criteria), preview(source(c.text, `,"windowDays":7`))
		if want.status != 200 || want.body["totalMatched"] != c.matched || !reflect.DeepEqual(got.body, want.body) {
			t.Errorf("%s:\ncriteria %d %s\nsource   %d %s", name, want.status, want.raw, got.status, got.raw)
		}
	}
	// A group the text declares; the flow and site options apply.
	grouped := "signers \"moz\" {\n  cn \"Mozilla Corporation\"\n}\n\nrule \"p\" {\n  when signer in signers(\"moz\")\n  then auto_approve\n}\n"
	if r := preview(source(grouped, "")); r.status != 200 || r.body["totalMatched"] != 2.0 || r.body["totalScanned"] != 4.0 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if r := preview(source(grouped, `,"flowType":"ai_tool_action"`)); r.status != 200 || r.body["totalScanned"] != 1.0 || r.body["totalMatched"] != 0.0 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if r := preview(source("org \"acme\"\n"+grouped, `,"siteId":"`+e.site2+`"`)); r.status != 200 || r.body["totalScanned"] != 0.0 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	for name, c := range map[string]struct{ body, target, msg string }{
		"two rules":       {source(grouped+"rule \"q\" {\n  when user == \"u\"\n  then auto_deny\n}\n", ""), "source", `exactly one rule \(the text declares 2\)`},
		"no rule":         {source("signers \"moz\" {\n  cn \"M\"\n}\n", ""), "source", `exactly one rule \(the text declares 0\)`},
		"syntax error":    {source("rule \"p\" {\n  when signer = \"M\"\n  then auto_approve\n}\n", ""), "source", `^draft\.pam:2:\d+: `},
		"another org":     {source("org \"globex\"\n"+grouped, ""), "source", `^draft\.pam:1:5: `},
		"not a string":    {`{"source":["rule"]}`, "source", `must be a string`},
		"with criteria":   {source(grouped, `,"matchUser":"u"`), "matchUser", `not with source`},
		"with a verdict":  {source(grouped, `,"verdict":"auto_deny"`), "verdict", `not with source`},
		"bad window":      {source(grouped, `,"windowDays":0`), "windowDays", `must be 1 to 90`},
		"settings":        {source(grouped+"settings {\n  default_unmatched = auto_deny\n}\n", ""), "source", `^draft\.pam:9:1: .*settings`},
		"unknown signers": {source("rule \"p\" {\n  when signer in signers(\"nope\")\n  then auto_approve\n}\n", ""), "source", `^draft\.pam:2:\d+: unknown signer group`},
	} {
		r := preview(c.body)
		msg, _ := rtObj(r.body, "error")["message"].(string)
		if r.status != 400 || errTarget(r) != c.target || !regexp.MustCompile(c.msg).MatchString(msg) {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
}

// TestPreviewFileSignerGroup: a draft may name a signer group the rule
// files give the organisation, by id (criteria) as well as one it stores.
func TestPreviewFileSignerGroup(t *testing.T) {
	dir := t.TempDir()
	rfWrite(t, dir, "acme.pam", "org \"acme\"\n\nsigners \"file-moz\" {\n  cn \"Mozilla Corporation\"\n}\n\n"+
		"rule \"file-rule\" {\n  priority 5\n  when     signer in signers(\"file-moz\") and user == \"nobody\"\n  then     auto_deny\n}\n")
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.RulesDir = dir })
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	writer := e.tok(t, Claims{Permissions: []string{PermWrite}})
	e.putRows(t,
		store.Request{TargetExecutablePath: `C:\a.exe`, TargetExecutableSigner: "Mozilla Corporation"},
		store.Request{TargetExecutablePath: `C:\c.exe`, TargetExecutableSigner: "Contoso Ltd"},
	)
	fileGroup := dsl.DerivedID("signers", "acme", "file-moz")
	stored := e.call(t, "POST", "/api/v1/pam/signer-groups", e.admin(t), `{"name":"contoso","signers":["Contoso Ltd"]}`)
	if stored.status != 201 {
		t.Fatalf("%d %s", stored.status, stored.raw)
	}
	for g, path := range map[string]string{fileGroup: `C:\a.exe`, strings.ToUpper(fileGroup): `C:\a.exe`, rtObj(stored.body, "signerGroup")["id"].(string): `C:\c.exe`} {
		r := e.call(t, "POST", "/api/v1/pam/rules/preview", writer, `{"matchSignerGroupId":"`+g+`"}`)
		sample := rtList(r.body, "sample")
		if r.status != 200 || r.body["totalMatched"] != 1.0 || len(sample) != 1 || rtObj(sample[0])["targetExecutablePath"] != path {
			t.Errorf("group %s: %d %s", g, r.status, r.raw)
		}
	}
	// Also in a condition, by id.
	r := e.call(t, "POST", "/api/v1/pam/rules/preview", writer, `{"condition":"signer in signers(\"`+fileGroup+`\") or user == \"x\""}`)
	if r.status != 200 || r.body["totalMatched"] != 1.0 {
		t.Errorf("condition: %d %s", r.status, r.raw)
	}
}
