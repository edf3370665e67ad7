package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/store"
)

// keyEnv is the admin environment with its first org owned by a partner,
// and tokens for the callers the API-key tests need.
type keyEnv struct {
	*adminEnv
	partner                         string
	ann, bob, siteUser, noMFA, read string // org users (Bob is in the other org)
	partnerTok, otherPartner, sys   string
}

func newKeyEnv(t *testing.T) *keyEnv {
	e := &keyEnv{adminEnv: newAdminEnv(t), partner: store.NewID(t0)}
	if err := e.st.Update(func(tx *store.Tx) error {
		if err := tx.PutPartner(&store.Partner{ID: e.partner, Name: "msp"}); err != nil {
			return err
		}
		return tx.PutOrg(&store.Org{ID: e.org, PartnerID: e.partner, Name: "acme", ActuatorEnabled: true})
	}); err != nil {
		t.Fatal(err)
	}
	mfa := []string{"mfa"}
	e.ann = token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: mfa, Name: "Ann"})
	e.bob = token(t, Claims{Scope: ScopeOrganization, OrgID: e.otherOrg, Permissions: allPerms, AMR: mfa, Name: "Bob"})
	e.siteUser = token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: mfa, SiteIDs: []string{e.site}})
	e.noMFA = token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms})
	e.read = token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: []string{PermRead, PermWrite}, AMR: mfa})
	e.partnerTok = token(t, Claims{Scope: ScopePartner, PartnerID: e.partner, Permissions: allPerms, AMR: mfa})
	e.otherPartner = token(t, Claims{Scope: ScopePartner, PartnerID: store.NewID(t0), Permissions: allPerms, AMR: mfa})
	e.sys = token(t, Claims{Scope: ScopeSystem, Permissions: allPerms, AMR: mfa})
	return e
}

// create posts body as tok and returns the reply; the key's id and secret
// when it was created.
func (e *keyEnv) create(t *testing.T, tok, body string) (r reply, id, secret string) {
	t.Helper()
	r = e.do(t, "POST", "/api/v1/api-keys", tok, "application/json", strings.NewReader(body))
	if k, ok := r.body["apiKey"].(map[string]any); ok {
		id, _ = k["id"].(string)
		secret, _ = k["key"].(string)
	}
	return r, id, secret
}

func (e *keyEnv) mustCreate(t *testing.T, tok, body string) (id, secret string) {
	t.Helper()
	r, id, secret := e.create(t, tok, body)
	if r.status != 201 || id == "" || secret == "" {
		t.Fatalf("create %s: %d %s", body, r.status, r.raw)
	}
	return id, secret
}

// withHeader is e.do with the credential in a header of one's choice.
func (e *keyEnv) withHeader(t *testing.T, method, path, header, value, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(header, value)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: %q", method, path, raw)
	}
	return r
}

func (e *keyEnv) list(t *testing.T, tok, query string) (ids []string, r reply) {
	t.Helper()
	r = e.do(t, "GET", "/api/v1/api-keys"+query, tok, "", nil)
	if r.status != 200 {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	for _, k := range r.body["apiKeys"].([]any) {
		ids = append(ids, k.(map[string]any)["id"].(string))
	}
	return ids, r
}

func TestAPIKeyCreateAndUse(t *testing.T) {
	e := newKeyEnv(t)
	r, id, secret := e.create(t, e.ann, `{"name":"ci","permissions":["devices:read"]}`)
	if r.status != 201 || r.body["success"] != true {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	k := r.body["apiKey"].(map[string]any)
	if !strings.HasPrefix(secret, "elv_") || len(secret) < 4+43 || k["scope"] != ScopeOrganization || k["orgId"] != e.org ||
		k["partnerId"] != nil || k["mfa"] != false || k["createdBy"] != "user-1" || k["createdAt"] != t0.Add(3*time.Second).Format(time.RFC3339Nano) ||
		k["name"] != "ci" || k["siteIds"] != nil || k["expiresAt"] != nil || k["keyHash"] != nil {
		t.Fatalf("%s", r.raw)
	}
	// Only the hash is stored.
	stored, err := storedKey(e.st, id)
	if err != nil || stored.KeyHash != store.TokenHash(secret) {
		t.Fatalf("%+v %v", stored, err)
	}
	raw, _ := json.Marshal(stored)
	if strings.Contains(string(raw), secret) || strings.Contains(string(raw), strings.TrimPrefix(secret, "elv_")) {
		t.Fatalf("the key is stored: %s", raw)
	}
	// The key works as a bearer token and in X-API-Key.
	if r := e.do(t, "GET", "/api/v1/pam/active", secret, "", nil); r.status != 200 {
		t.Fatalf("bearer: %d %s", r.status, r.raw)
	}
	if r := e.withHeader(t, "GET", "/api/v1/pam/active", "X-API-Key", secret, ""); r.status != 200 {
		t.Fatalf("X-API-Key: %d %s", r.status, r.raw)
	}
	r = e.do(t, "GET", "/api/v1/pam/elevation-requests", secret, "", nil)
	if r.status != 200 || len(r.body["requests"].([]any)) != 2 || strings.Contains(r.raw, e.inOther) {
		t.Fatalf("the key's tenant: %d %s", r.status, r.raw)
	}
	// It has only the permissions it was given.
	if r := e.do(t, "POST", "/api/v1/pam/elevation-requests/"+e.atSite+"/respond", secret, "application/json",
		strings.NewReader(`{"decision":"deny"}`)); r.status != 403 || errCode(r) != "FORBIDDEN" {
		t.Fatalf("write with a read key: %d %s", r.status, r.raw)
	}
	// The secret is never shown again.
	e.clock.Advance(time.Second)
	id2, secret2 := e.mustCreate(t, e.ann, `{"name":"second","permissions":["devices:read","devices:read"]}`)
	ids, lr := e.list(t, e.ann, "")
	if len(ids) != 2 || ids[0] != id2 || ids[1] != id {
		t.Fatalf("newest first: %v", ids)
	}
	for _, s := range []string{secret, secret2, store.TokenHash(secret), `"key"`, "keyHash"} {
		if strings.Contains(lr.raw, s) {
			t.Fatalf("the listing shows %q: %s", s, lr.raw)
		}
	}
	if !strings.Contains(lr.raw, `"permissions":["devices:read"]`) {
		t.Fatalf("duplicate permissions kept: %s", lr.raw)
	}
	// A key can list keys, with read permission.
	if ids, _ := e.list(t, secret, ""); len(ids) != 2 {
		t.Fatalf("listed with the key: %v", ids)
	}
}

func storedKey(st *store.Store, id string) (*store.APIKey, error) {
	var k *store.APIKey
	err := st.View(func(sn *store.Snapshot) error {
		var err error
		k, err = sn.APIKey(id)
		return err
	})
	return k, err
}

func TestAPIKeyLastUsedIsThrottled(t *testing.T) {
	e := newKeyEnv(t)
	id, secret := e.mustCreate(t, e.ann, `{"name":"ci","permissions":["devices:read"]}`)
	lastUsed := func() time.Time {
		k, err := storedKey(e.st, id)
		if err != nil {
			t.Fatal(err)
		}
		return k.LastUsedAt
	}
	use := func() {
		if r := e.do(t, "GET", "/api/v1/pam/active", secret, "", nil); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	}
	first := e.clock.Now()
	use()
	if !lastUsed().Equal(first) {
		t.Fatalf("lastUsedAt %v, want %v", lastUsed(), first)
	}
	commits := e.st.Stats().Commits
	for range 5 {
		e.clock.Advance(10 * time.Second)
		use()
	}
	if !lastUsed().Equal(first) || e.st.Stats().Commits != commits {
		t.Fatalf("written within the minute: %v, %d commits", lastUsed(), e.st.Stats().Commits-commits)
	}
	e.clock.Advance(10 * time.Second)
	use()
	if !lastUsed().Equal(first.Add(time.Minute)) {
		t.Fatalf("not written after a minute: %v", lastUsed())
	}
	if _, r := e.list(t, e.ann, ""); !strings.Contains(r.raw, `"lastUsedAt":"`+first.Add(time.Minute).Format(time.RFC3339Nano)) {
		t.Fatalf("%s", r.raw)
	}
}

func TestAPIKeyCreateValidation(t *testing.T) {
	e := newKeyEnv(t)
	for body, target := range map[string]string{
		`{"permissions":["devices:read"]}`:                                           "name",
		`{"name":"  ","permissions":["devices:read"]}`:                               "name",
		`{"name":"` + strings.Repeat("n", 256) + `","permissions":["devices:read"]}`: "name",
		`{"name":"x"}`:                                                                              "permissions",
		`{"name":"x","permissions":[]}`:                                                             "permissions",
		`{"name":"x","permissions":["admin"]}`:                                                      "permissions",
		`{"name":"x","permissions":["devices:read"],"siteIds":["s1"]}`:                              "siteIds",
		`{"name":"x","permissions":["devices:read"],"expiresAt":"tomorrow"}`:                        "expiresAt",
		`{"name":"x","permissions":["devices:read"],"expiresAt":"2026-06-15T09:00:00Z"}`:            "expiresAt",
		`{"name":"x","permissions":["devices:read"],"expiresAt":"` + t0.Format(time.RFC3339) + `"}`: "expiresAt",
		`{"name":"x","permissions":"devices:read"}`:                                                 "permissions",
	} {
		if r, _, _ := e.create(t, e.ann, body); r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != target {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	for _, body := range []string{`{"name":"x","permissions":["devices:read"],"scope":"system"}`, `[]`,
		`{"name":"x","permissions":["devices:read"],"siteIds":["` + store.NewID(t0) + `"]}`} { // not a site of the org
		if r, _, _ := e.create(t, e.ann, body); r.status != 400 {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	// Permissions are a subset of the creator's.
	for _, perms := range []string{`["devices:execute"]`, `["devices:read","devices:execute"]`, `["*"]`} {
		r, _, _ := e.create(t, e.read, `{"name":"x","permissions":`+perms+`}`)
		if r.status != 403 || errCode(r) != "FORBIDDEN" || errTarget(r) != "permissions" {
			t.Errorf("%s: %d %s", perms, r.status, r.raw)
		}
	}
	if r, _, _ := e.create(t, e.read, `{"name":"x","permissions":["devices:read","devices:write"]}`); r.status != 201 {
		t.Fatalf("own permissions: %d %s", r.status, r.raw)
	}
	star := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: []string{"*"}, AMR: []string{"mfa"}})
	if r, _, _ := e.create(t, star, `{"name":"x","permissions":["*"]}`); r.status != 201 {
		t.Fatalf("* from *: %d %s", r.status, r.raw)
	}
	// The gate: write permission and MFA.
	if r, _, _ := e.create(t, e.noMFA, `{"name":"x","permissions":["devices:read"]}`); r.status != 403 || errCode(r) != "MFA_REQUIRED" {
		t.Fatalf("without MFA: %d %s", r.status, r.raw)
	}
	ro := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: []string{PermRead}, AMR: []string{"mfa"}})
	if r, _, _ := e.create(t, ro, `{"name":"x","permissions":["devices:read"]}`); r.status != 403 || errCode(r) != "FORBIDDEN" {
		t.Fatalf("read-only: %d %s", r.status, r.raw)
	}
	if r, _, _ := e.create(t, "", `{"name":"x","permissions":["devices:read"]}`); r.status != 401 {
		t.Fatalf("anonymous: %d %s", r.status, r.raw)
	}
}

func TestAPIKeySites(t *testing.T) {
	e := newKeyEnv(t)
	// A site-restricted creator must restrict the key to its own sites.
	if r, _, _ := e.create(t, e.siteUser, `{"name":"x","permissions":["devices:read"]}`); r.status != 400 || errTarget(r) != "siteIds" {
		t.Fatalf("no siteIds: %d %s", r.status, r.raw)
	}
	for _, sites := range []string{`["` + e.otherSite + `"]`, `["` + e.site + `","` + e.otherSite + `"]`} {
		if r, _, _ := e.create(t, e.siteUser, `{"name":"x","permissions":["devices:read"],"siteIds":`+sites+`}`); r.status != 403 || errCode(r) != "SITE_DENIED" {
			t.Fatalf("%s: %d %s", sites, r.status, r.raw)
		}
	}
	e.clock.Advance(time.Second)
	r, siteKeyID, siteKey := e.create(t, e.siteUser, `{"name":"x","permissions":["devices:read"],"siteIds":["`+strings.ToUpper(e.site)+`"]}`)
	if r.status != 201 || !strings.Contains(r.raw, `"siteIds":["`+e.site+`"]`) {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	r = e.do(t, "GET", "/api/v1/pam/elevation-requests", siteKey, "", nil)
	if r.status != 200 || len(r.body["requests"].([]any)) != 1 || !strings.Contains(r.raw, e.atSite) {
		t.Fatalf("the key's sites: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "GET", "/api/v1/pam/elevation-requests?siteId="+e.otherSite, siteKey, "", nil); r.status != 403 {
		t.Fatalf("another site: %d %s", r.status, r.raw)
	}
	// An empty list is a key for no site at all.
	e.clock.Advance(time.Second)
	_, _, noSite := e.create(t, e.siteUser, `{"name":"none","permissions":["devices:read"],"siteIds":[]}`)
	if r := e.do(t, "GET", "/api/v1/pam/elevation-requests?siteId="+e.site, noSite, "", nil); r.status != 403 {
		t.Fatalf("a key without sites: %d %s", r.status, r.raw)
	}
	// An unrestricted creator may restrict a key; the site user sees only
	// keys within its sites.
	e.clock.Advance(time.Second)
	annSiteKey, _ := e.mustCreate(t, e.ann, `{"name":"y","permissions":["devices:read"],"siteIds":["`+e.site+`"]}`)
	annKey, _ := e.mustCreate(t, e.ann, `{"name":"z","permissions":["devices:read"]}`)
	ids, _ := e.list(t, e.siteUser, "")
	if strings.Join(ids, ",") != annSiteKey+","+idOf(t, e, noSite)+","+siteKeyID {
		t.Fatalf("site user's listing: %v", ids)
	}
	if r := e.do(t, "DELETE", "/api/v1/api-keys/"+annKey, e.siteUser, "", nil); r.status != 404 {
		t.Fatalf("site user revoking an unrestricted key: %d %s", r.status, r.raw)
	}
}

// idOf finds a key's id from its secret.
func idOf(t *testing.T, e *keyEnv, secret string) string {
	t.Helper()
	var id string
	if err := e.st.View(func(sn *store.Snapshot) error {
		k, err := sn.APIKeyByHash(store.TokenHash(secret))
		if err == nil {
			id = k.ID
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestAPIKeyMFA(t *testing.T) {
	e := newKeyEnv(t)
	_, plain := e.mustCreate(t, e.ann, `{"name":"plain","permissions":["devices:execute","devices:read"]}`)
	_, mfa := e.mustCreate(t, e.ann, `{"name":"bot","permissions":["devices:execute"],"mfa":true}`)
	respond := "/api/v1/pam/elevation-requests/" + e.atSite + "/respond"
	if r := e.do(t, "POST", respond, plain, "application/json", strings.NewReader(`{"decision":"deny"}`)); r.status != 403 || errCode(r) != "MFA_REQUIRED" {
		t.Fatalf("a key without MFA: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "POST", respond, mfa, "application/json", strings.NewReader(`{"decision":"deny","reason":"no"}`)); r.status != 200 {
		t.Fatalf("a key with MFA: %d %s", r.status, r.raw)
	}
	// The decision is the key creator's, made through the key.
	got, _ := e.st.Request(e.org, e.atSite)
	if got.DeniedBy != "user-1" || got.DeniedByName != "API key bot" {
		t.Fatalf("%q %q", got.DeniedBy, got.DeniedByName)
	}
}

func TestAPIKeyRevokeAndExpiry(t *testing.T) {
	e := newKeyEnv(t)
	id, secret := e.mustCreate(t, e.ann, `{"name":"ci","permissions":["devices:read"]}`)
	r := e.do(t, "DELETE", "/api/v1/api-keys/"+strings.ToUpper(id), e.ann, "", nil)
	k, _ := r.body["apiKey"].(map[string]any)
	if r.status != 200 || k["revokedAt"] != t0.Add(3*time.Second).Format(time.RFC3339Nano) || k["revokedBy"] != "user-1" || k["key"] != nil {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	for _, send := range []func() reply{
		func() reply { return e.do(t, "GET", "/api/v1/pam/active", secret, "", nil) },
		func() reply { return e.withHeader(t, "GET", "/api/v1/pam/active", "X-API-Key", secret, "") },
	} {
		if r := send(); r.status != 401 || errCode(r) != "UNAUTHORIZED" || r.header.Get("Www-Authenticate") == "" {
			t.Fatalf("revoked key: %d %s", r.status, r.raw)
		}
	}
	// Revoking again answers the same.
	e.clock.Advance(time.Minute)
	if r := e.do(t, "DELETE", "/api/v1/api-keys/"+id, e.ann, "", nil); r.status != 200 || !strings.Contains(r.raw, t0.Add(3*time.Second).Format(time.RFC3339Nano)) {
		t.Fatalf("second revocation: %d %s", r.status, r.raw)
	}
	if ids, _ := e.list(t, e.ann, ""); len(ids) != 0 {
		t.Fatalf("revoked keys listed by default: %v", ids)
	}
	if ids, _ := e.list(t, e.ann, "?includeRevoked=true"); len(ids) != 1 || ids[0] != id {
		t.Fatalf("includeRevoked: %v", ids)
	}
	if r := e.do(t, "GET", "/api/v1/api-keys?includeRevoked=yes", e.ann, "", nil); r.status != 400 {
		t.Fatalf("%d", r.status)
	}
	// Errors.
	if r := e.do(t, "DELETE", "/api/v1/api-keys/nope", e.ann, "", nil); r.status != 400 || errTarget(r) != "id" {
		t.Fatalf("bad id: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "DELETE", "/api/v1/api-keys/"+store.NewID(t0), e.ann, "", nil); r.status != 404 {
		t.Fatalf("unknown id: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "DELETE", "/api/v1/api-keys/"+id, e.noMFA, "", nil); r.status != 403 || errCode(r) != "MFA_REQUIRED" {
		t.Fatalf("without MFA: %d %s", r.status, r.raw)
	}
	// Expiry.
	exp := e.clock.Now().Add(time.Hour)
	_, short := e.mustCreate(t, e.ann, `{"name":"short","permissions":["devices:read"],"expiresAt":"`+exp.Format(time.RFC3339)+`"}`)
	if r := e.do(t, "GET", "/api/v1/pam/active", short, "", nil); r.status != 200 {
		t.Fatalf("before expiry: %d %s", r.status, r.raw)
	}
	e.clock.Set(exp)
	if r := e.do(t, "GET", "/api/v1/pam/active", short, "", nil); r.status != 401 || errCode(r) != "UNAUTHORIZED" {
		t.Fatalf("expired: %d %s", r.status, r.raw)
	}
	// The org's audit log has the creations and the revocation, without
	// secrets.
	var actions []string
	var log strings.Builder
	e.st.AuditLog(e.org, 0, func(r *store.AuditRecord) bool {
		if strings.HasPrefix(r.Action, "api_key_") {
			actions = append(actions, r.Action+":"+r.Subject)
			b, _ := json.Marshal(r)
			log.Write(b)
		}
		return true
	})
	if strings.Join(actions, " ") != "api_key_created:"+id+" api_key_revoked:"+id+" api_key_created:"+idOf(t, e, short) {
		t.Fatalf("audit: %v", actions)
	}
	if strings.Contains(log.String(), secret) || strings.Contains(log.String(), store.TokenHash(secret)) || !strings.Contains(log.String(), `"name":"ci"`) {
		t.Fatalf("audit: %s", log.String())
	}
}

func TestAPIKeyTenancy(t *testing.T) {
	e := newKeyEnv(t)
	annKey, _ := e.mustCreate(t, e.ann, `{"name":"ann","permissions":["devices:read"]}`)
	e.clock.Advance(time.Second)
	bobKey, _ := e.mustCreate(t, e.bob, `{"name":"bob","permissions":["devices:read"]}`)
	e.clock.Advance(time.Second)
	r, partnerKey, partnerSecret := e.create(t, e.partnerTok, `{"name":"msp","permissions":["devices:read"]}`)
	if r.status != 201 || r.body["apiKey"].(map[string]any)["scope"] != ScopePartner || r.body["apiKey"].(map[string]any)["partnerId"] != e.partner {
		t.Fatalf("partner key: %d %s", r.status, r.raw)
	}
	e.clock.Advance(time.Second)
	sysKey, sysSecret := e.mustCreate(t, e.sys, `{"name":"root","permissions":["devices:read"]}`)
	for name, c := range map[string]struct {
		tok  string
		want []string
	}{
		"Ann":           {e.ann, []string{annKey}},
		"Bob":           {e.bob, []string{bobKey}},
		"partner":       {e.partnerTok, []string{partnerKey, annKey}},
		"other partner": {e.otherPartner, nil},
		"system":        {e.sys, []string{sysKey, partnerKey, bobKey, annKey}},
	} {
		if ids, _ := e.list(t, c.tok, ""); strings.Join(ids, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s lists %v, want %v", name, ids, c.want)
		}
	}
	// Another tenant's key is not found.
	for name, c := range map[string]struct{ tok, id string }{
		"Bob revoking Ann's key":           {e.bob, annKey},
		"Ann revoking Bob's key":           {e.ann, bobKey},
		"Ann revoking the partner's key":   {e.ann, partnerKey},
		"Ann revoking the system key":      {e.ann, sysKey},
		"another partner revoking Ann's":   {e.otherPartner, annKey},
		"the partner revoking Bob's key":   {e.partnerTok, bobKey},
		"the partner revoking the sys key": {e.partnerTok, sysKey},
	} {
		if r := e.do(t, "DELETE", "/api/v1/api-keys/"+c.id, c.tok, "", nil); r.status != 404 || errCode(r) != "NOT_FOUND" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if k, _ := storedKey(e.st, annKey); k.Revoked() {
		t.Fatal("a refused revocation revoked the key")
	}
	// A partner's key reaches its organisations; the partner may revoke
	// its organisations' keys.
	if r := e.do(t, "GET", "/api/v1/pam/active?orgId="+e.org, partnerSecret, "", nil); r.status != 200 {
		t.Fatalf("partner key: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "GET", "/api/v1/pam/active?orgId="+e.otherOrg, partnerSecret, "", nil); r.status != 404 {
		t.Fatalf("partner key on another org: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "GET", "/api/v1/pam/active?orgId="+e.otherOrg, sysSecret, "", nil); r.status != 200 {
		t.Fatalf("system key: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "DELETE", "/api/v1/api-keys/"+annKey, e.partnerTok, "", nil); r.status != 200 {
		t.Fatalf("partner revoking its org's key: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "DELETE", "/api/v1/api-keys/"+bobKey, e.sys, "", nil); r.status != 200 {
		t.Fatalf("system revoking: %d %s", r.status, r.raw)
	}
}

func TestAPIKeysCannotManageKeys(t *testing.T) {
	e := newKeyEnv(t)
	id, strong := e.mustCreate(t, e.ann, `{"name":"strong","permissions":["devices:read","devices:write","devices:execute"],"mfa":true}`)
	_, weak := e.mustCreate(t, e.ann, `{"name":"weak","permissions":["devices:read","devices:write"]}`)
	body := `{"name":"child","permissions":["devices:read"]}`
	if r, _, _ := e.create(t, strong, body); r.status != 403 || errCode(r) != "FORBIDDEN" {
		t.Fatalf("a key creating a key: %d %s", r.status, r.raw)
	}
	if r := e.withHeader(t, "POST", "/api/v1/api-keys", "X-API-Key", strong, body); r.status != 403 {
		t.Fatalf("a key in X-API-Key creating a key: %d %s", r.status, r.raw)
	}
	if r, _, _ := e.create(t, weak, body); r.status != 403 || errCode(r) != "MFA_REQUIRED" {
		t.Fatalf("a key without MFA creating a key: %d %s", r.status, r.raw)
	}
	for _, k := range []string{strong, weak} {
		if r := e.do(t, "DELETE", "/api/v1/api-keys/"+id, k, "", nil); r.status != 403 {
			t.Fatalf("a key revoking a key: %d %s", r.status, r.raw)
		}
	}
	if ids, _ := e.list(t, e.ann, ""); len(ids) != 2 {
		t.Fatalf("%v", ids)
	}
}
