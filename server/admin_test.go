package server

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/elevate-pam/elevate/store"
)

var secret = []byte("test-secret-test-secret-test-secret")

func token(t *testing.T, c Claims) string {
	t.Helper()
	if c.Subject == "" {
		c.Subject = "user-1"
	}
	if c.ExpiresAt == nil {
		c.ExpiresAt = jwt.NewNumericDate(t0.Add(time.Hour))
	}
	s, err := MintToken(secret, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// adminEnv adds to the base environment a second org with its own device,
// a site for the first device, and three pending requests: one at the
// site, one without a site, one in the other org.
type adminEnv struct {
	*env
	otherOrg, site, otherSite          string
	atSite, noSite, inOther, otherDevi string
}

func newAdminEnv(t *testing.T) *adminEnv {
	e := &adminEnv{env: newEnv(t, Config{JWTSecret: secret})}
	e.otherOrg, e.site, e.otherSite, e.otherDevi = store.NewID(t0), store.NewID(t0), store.NewID(t0), store.NewID(t0)
	noSiteDev := store.NewID(t0)
	if err := e.st.Update(func(tx *store.Tx) error {
		if err := tx.PutOrg(&store.Org{ID: e.otherOrg, Name: "globex", ActuatorEnabled: true}); err != nil {
			return err
		}
		if err := tx.PutOrg(&store.Org{ID: e.org, Name: "acme", ActuatorEnabled: true}); err != nil {
			return err
		}
		for _, s := range []string{e.site, e.otherSite} {
			if err := tx.PutSite(&store.Site{ID: s, OrgID: e.org, Name: "HQ"}); err != nil {
				return err
			}
		}
		if err := tx.PutDevice(&store.Device{ID: e.device, OrgID: e.org, SiteID: e.site, Hostname: "WIN-1", TokenHash: store.TokenHash(e.token)}); err != nil {
			return err
		}
		if err := tx.PutDevice(&store.Device{ID: noSiteDev, OrgID: e.org, Hostname: "NOSITE", TokenHash: store.TokenHash("tok-ns")}); err != nil {
			return err
		}
		return tx.PutDevice(&store.Device{ID: e.otherDevi, OrgID: e.otherOrg, Hostname: "GX-1", TokenHash: store.TokenHash("tok-gx")})
	}); err != nil {
		t.Fatal(err)
	}
	post := func(dev, tok string) string {
		r := e.do(t, "POST", "/api/v1/agents/"+dev+"/elevation-requests", tok, "application/json", strings.NewReader(firefox))
		if r.status != 201 {
			t.Fatalf("ingest: %d %s", r.status, r.raw)
		}
		e.clock.Advance(time.Second)
		return r.body["id"].(string)
	}
	e.atSite, e.noSite, e.inOther = post(e.device, e.token), post(noSiteDev, "tok-ns"), post(e.otherDevi, "tok-gx")
	return e
}

var allPerms = []string{PermRead, PermWrite, PermExecute}

func TestAdminListsAndTenancy(t *testing.T) {
	e := newAdminEnv(t)
	orgUser := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}, Name: "Ann"})
	r := e.do(t, "GET", "/api/v1/pam/elevation-requests", orgUser, "", nil)
	if r.status != 200 || len(r.body["requests"].([]any)) != 2 || strings.Contains(r.raw, e.inOther) {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	first := r.body["requests"].([]any)[0].(map[string]any)
	if first["id"] != e.noSite || r.body["pagination"].(map[string]any)["total"] != 2.0 {
		t.Fatalf("newest first: %s", r.raw)
	}
	r = e.do(t, "GET", "/api/v1/pam/elevation-requests?siteId="+e.site, orgUser, "", nil)
	row := r.body["requests"].([]any)[0].(map[string]any)
	if len(r.body["requests"].([]any)) != 1 || row["deviceHostname"] != "WIN-1" || row["siteName"] != "HQ" {
		t.Fatalf("%s", r.raw)
	}
	for q, target := range map[string]string{"status=maybe": "status", "flowType=x": "flowType", "deviceId=x": "deviceId",
		"from=2026-01-01": "from"} {
		if r := e.do(t, "GET", "/api/v1/pam/elevation-requests?"+q, orgUser, "", nil); r.status != 400 || errTarget(r) != target {
			t.Errorf("%s: %d %s", q, r.status, r.raw)
		}
	}
	if r := e.do(t, "GET", "/api/v1/pam/elevation-requests?page=abc&limit=1000", orgUser, "", nil); r.body["pagination"].(map[string]any)["limit"] != 100.0 ||
		r.body["pagination"].(map[string]any)["page"] != 1.0 {
		t.Fatalf("pagination: %s", r.raw)
	}
	// A site-restricted caller sees only its site's rows, and another
	// site in the filter is a 403.
	siteUser := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}, SiteIDs: []string{e.site}})
	r = e.do(t, "GET", "/api/v1/pam/elevation-requests", siteUser, "", nil)
	if len(r.body["requests"].([]any)) != 1 || !strings.Contains(r.raw, e.atSite) {
		t.Fatalf("%s", r.raw)
	}
	if r := e.do(t, "GET", "/api/v1/pam/elevation-requests?siteId="+e.otherSite, siteUser, "", nil); r.status != 403 {
		t.Fatalf("%d", r.status)
	}
	// Partner and system callers name the org, or list every org they
	// reach; one they cannot reach is not found.
	sys := token(t, Claims{Scope: ScopeSystem, Permissions: allPerms, AMR: []string{"mfa"}})
	if r := e.do(t, "GET", "/api/v1/pam/elevation-requests", sys, "", nil); r.status != 200 || len(r.body["requests"].([]any)) != 3 ||
		!strings.Contains(r.raw, e.inOther) || !strings.Contains(r.raw, e.atSite) {
		t.Fatalf("system without orgId: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "GET", "/api/v1/pam/elevation-requests?orgId="+e.otherOrg, sys, "", nil); r.status != 200 || !strings.Contains(r.raw, e.inOther) {
		t.Fatalf("system: %d %s", r.status, r.raw)
	}
	partner := token(t, Claims{Scope: ScopePartner, PartnerID: store.NewID(t0), Permissions: allPerms})
	if r := e.do(t, "GET", "/api/v1/pam/elevation-requests?orgId="+e.org, partner, "", nil); r.status != 404 {
		t.Fatalf("unreachable org: %d", r.status)
	}
	if r := e.do(t, "GET", "/api/v1/pam/elevation-requests?orgId="+e.otherOrg, orgUser, "", nil); r.status != 400 {
		t.Fatalf("org user naming another org: %d", r.status)
	}
}

func TestAdminAuthMatrix(t *testing.T) {
	e := newAdminEnv(t)
	respond := "/api/v1/pam/elevation-requests/" + e.atSite + "/respond"
	body := `{"decision":"deny","reason":"no"}`
	for name, c := range map[string]struct {
		token  string
		status int
		code   string
	}{
		"no token":          {"", 401, "UNAUTHORIZED"},
		"agent token":       {e.token, 401, "UNAUTHORIZED"},
		"bad signature":     {token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}}) + "x", 401, "UNAUTHORIZED"},
		"expired":           {token(t, Claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(t0.Add(-time.Hour))}, Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}}), 401, "UNAUTHORIZED"},
		"unknown scope":     {token(t, Claims{Scope: "user", OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}}), 403, "FORBIDDEN"},
		"read only":         {token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: []string{PermRead}, AMR: []string{"mfa"}}), 403, "FORBIDDEN"},
		"no MFA":            {token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms}), 403, "MFA_REQUIRED"},
		"other org's user":  {token(t, Claims{Scope: ScopeOrganization, OrgID: e.otherOrg, Permissions: allPerms, AMR: []string{"mfa"}}), 404, "NOT_FOUND"},
		"other site's user": {token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}, SiteIDs: []string{e.otherSite}}), 403, "SITE_DENIED"},
	} {
		r := e.do(t, "POST", respond, c.token, "application/json", strings.NewReader(body))
		if r.status != c.status || errCode(r) != c.code {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	// A user token on the agent route is refused too.
	user := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}})
	if r := e.do(t, "POST", "/api/v1/agents/"+e.device+"/elevation-requests", user, "application/json", strings.NewReader(firefox)); r.status != 401 {
		t.Fatalf("user token on the agent route: %d", r.status)
	}
	if got, _ := e.st.Request(e.org, e.atSite); got.Status != store.StatusPending {
		t.Fatalf("a refused call changed the request: %s", got.Status)
	}
}

func TestAdminTransitions(t *testing.T) {
	e := newAdminEnv(t)
	user := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}, Name: "Ann"})
	post := func(path, body string) reply {
		return e.do(t, "POST", path, user, "application/json", strings.NewReader(body))
	}
	base := "/api/v1/pam/elevation-requests/"
	if r := post(base+"not-a-uuid/respond", `{"decision":"approve"}`); r.status != 400 || errTarget(r) != "id" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if r := post(base+e.atSite+"/respond", `{"decision":"approve","durationMinutes":1441}`); r.status != 400 || errTarget(r) != "durationMinutes" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if r := post(base+e.atSite+"/respond", `{"decision":"approve","color":"red"}`); r.status != 400 {
		t.Fatalf("unknown field: %d %s", r.status, r.raw)
	}
	r := post(base+e.atSite+"/respond", `{"decision":"approve","reason":"CHG-1","durationMinutes":30}`)
	if r.status != 200 || r.body["status"] != "approved" || r.body["id"] != e.atSite {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if r := post(base+e.atSite+"/respond", `{"decision":"deny"}`); r.status != 409 || !strings.Contains(r.raw, "current status: approved") {
		t.Fatalf("second respond: %d %s", r.status, r.raw)
	}
	act := e.do(t, "GET", "/api/v1/pam/active", user, "", nil)
	if act.status != 200 || len(act.body["active"].([]any)) != 1 {
		t.Fatalf("active: %s", act.raw)
	}
	r = post("/api/v1/devices/"+e.device+"/actuate-elevation", `{"elevationRequestId":"`+e.atSite+`","timeoutMs":5000}`)
	if r.status != 201 || r.body["type"] != "actuate_elevation" || r.body["status"] != "pending" || r.body["elevationRequestId"] != e.atSite {
		t.Fatalf("actuate: %d %s", r.status, r.raw)
	}
	if r := post("/api/v1/devices/"+e.device+"/actuate-elevation", `{"elevationRequestId":"`+e.atSite+`"}`); r.status != 409 || errCode(r) != "actuating" {
		t.Fatalf("second actuate: %d %s", r.status, r.raw)
	}
	if r := post("/api/v1/devices/not-a-uuid/actuate-elevation", `{"elevationRequestId":"`+e.atSite+`"}`); r.status != 400 || errCode(r) != "VALIDATION" {
		t.Fatalf("non-UUID device id: %d %s", r.status, r.raw)
	}
	if r := post("/api/v1/devices/"+e.otherDevi+"/actuate-elevation", `{"elevationRequestId":"`+e.inOther+`"}`); r.status != 404 {
		t.Fatalf("other org's device: %d %s", r.status, r.raw)
	}
	if r := post(base+e.atSite+"/revoke", `{}`); r.status != 400 || errTarget(r) != "reason" {
		t.Fatalf("revoke without reason: %d %s", r.status, r.raw)
	}
	if r := post(base+e.atSite+"/revoke", `{"reason":"done"}`); r.status != 200 || r.body["status"] != "revoked" {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := post(base+e.inOther+"/revoke", `{"reason":"x"}`); r.status != 404 {
		t.Fatalf("another org's request: %d", r.status)
	}
	got, _ := e.st.Request(e.org, e.atSite)
	if got.Status != store.StatusRevoked || got.ApprovedByName != "Ann" || got.RevokedBy != "user-1" {
		t.Fatalf("%+v", got)
	}
}
