package server

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/store"
)

// invEnv is the base environment plus two partners, a second org, sites,
// groups and devices:
//
//	partner P owns org A (e.org, with device e.device, no site)
//	partner Q owns org B
//	A: sites s1, s2; group g1; device d1 at s1, device d2 at s2
//	B: site sb; group gb; device db at sb
type invEnv struct {
	*env
	pP, pQ, orgB           string
	s1, s2, sb, g1, gb     string
	d1, d2, db             string
	sys, userA, userB      string // tokens with every permission and MFA
	partnerP, siteUser     string
	readOnly, noMFA, nobod string
}

func newInvEnv(t *testing.T) *invEnv {
	t.Helper()
	e := &invEnv{env: newEnv(t, Config{JWTSecret: secret})}
	id := func() string { return store.NewID(t0) }
	e.pP, e.pQ, e.orgB = id(), id(), id()
	e.s1, e.s2, e.sb, e.g1, e.gb = id(), id(), id(), id(), id()
	e.d1, e.d2, e.db = id(), id(), id()
	err := e.st.Update(func(tx *store.Tx) error {
		for _, p := range []*store.Partner{{ID: e.pP, Name: "P"}, {ID: e.pQ, Name: "Q"}} {
			if err := tx.PutPartner(p); err != nil {
				return err
			}
		}
		if err := tx.PutOrg(&store.Org{ID: e.org, PartnerID: e.pP, Name: "acme", ActuatorEnabled: true}); err != nil {
			return err
		}
		if err := tx.PutOrg(&store.Org{ID: e.orgB, PartnerID: e.pQ, Name: "globex"}); err != nil {
			return err
		}
		for _, s := range []*store.Site{{ID: e.s1, OrgID: e.org, Name: "HQ"}, {ID: e.s2, OrgID: e.org, Name: "Branch"},
			{ID: e.sb, OrgID: e.orgB, Name: "GX"}} {
			if err := tx.PutSite(s); err != nil {
				return err
			}
		}
		for _, g := range []*store.DeviceGroup{{ID: e.g1, OrgID: e.org, Name: "Kiosks"}, {ID: e.gb, OrgID: e.orgB, Name: "GX"}} {
			if err := tx.PutDeviceGroup(g); err != nil {
				return err
			}
		}
		for _, d := range []*store.Device{
			{ID: e.d1, OrgID: e.org, SiteID: e.s1, Hostname: "HQ-1", TokenHash: store.TokenHash("tok-d1")},
			{ID: e.d2, OrgID: e.org, SiteID: e.s2, Hostname: "BR-1", TokenHash: store.TokenHash("tok-d2")},
			{ID: e.db, OrgID: e.orgB, SiteID: e.sb, Hostname: "GX-1", TokenHash: store.TokenHash("tok-db")},
		} {
			if err := tx.PutDevice(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mfa := []string{"mfa"}
	e.sys = token(t, Claims{Scope: ScopeSystem, Permissions: allPerms, AMR: mfa, Name: "Root"})
	e.userA = token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: mfa, Name: "Ann"})
	e.userB = token(t, Claims{Scope: ScopeOrganization, OrgID: e.orgB, Permissions: allPerms, AMR: mfa})
	e.partnerP = token(t, Claims{Scope: ScopePartner, PartnerID: e.pP, Permissions: allPerms, AMR: mfa})
	e.siteUser = token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: mfa, SiteIDs: []string{e.s1}})
	e.readOnly = token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: []string{PermRead}, AMR: mfa})
	e.noMFA = token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms})
	e.nobod = token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, AMR: mfa})
	return e
}

func (e *invEnv) call(t *testing.T, method, path, tok, body string) reply {
	t.Helper()
	if body == "" {
		return e.do(t, method, "/api/v1"+path, tok, "", nil)
	}
	return e.do(t, method, "/api/v1"+path, tok, "application/json", strings.NewReader(body))
}

// ids lists the "id" of each object in r.body[key].
func invIDs(r reply, key string) []string {
	var out []string
	rows, _ := r.body[key].([]any)
	for _, row := range rows {
		m, _ := row.(map[string]any)
		s, _ := m["id"].(string)
		out = append(out, s)
	}
	return out
}

func invObj(r reply, key string) map[string]any {
	m, _ := r.body[key].(map[string]any)
	return m
}

func invSameSet(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !containsID(got, w) {
			return false
		}
	}
	return true
}

func (e *invEnv) ingestAs(t *testing.T, dev, tok string) reply {
	t.Helper()
	return e.do(t, "POST", "/api/v1/agents/"+dev+"/elevation-requests", tok, "application/json", strings.NewReader(firefox))
}

func invAuditActions(t *testing.T, st *store.Store, org, subject string) []string {
	t.Helper()
	var out []string
	if err := st.AuditLog(org, 0, func(r *store.AuditRecord) bool {
		if r.Subject == subject {
			out = append(out, r.Action)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInventoryPartners(t *testing.T) {
	e := newInvEnv(t)
	r := e.call(t, "POST", "/partners", e.sys, `{"name":"  New MSP "}`)
	p := invObj(r, "partner")
	if r.status != 201 || r.body["success"] != true || p["name"] != "New MSP" || p["createdAt"] == nil {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	for name, tok := range map[string]string{"partner": e.partnerP, "org": e.userA} {
		if r := e.call(t, "POST", "/partners", tok, `{"name":"x"}`); r.status != 403 || errCode(r) != "FORBIDDEN" {
			t.Errorf("%s creates a partner: %d %s", name, r.status, r.raw)
		}
	}
	if r := e.call(t, "POST", "/partners", e.sys, `{"name":" "}`); r.status != 400 || errTarget(r) != "name" {
		t.Errorf("blank name: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/partners", e.sys, `{"name":"x","id":"y"}`); r.status != 400 {
		t.Errorf("unknown field: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/partners", e.sys, ""); r.status != 200 || !invSameSet(invIDs(r, "partners"), e.pP, e.pQ, p["id"].(string)) {
		t.Errorf("system list: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/partners", e.partnerP, ""); r.status != 200 || !invSameSet(invIDs(r, "partners"), e.pP) {
		t.Errorf("partner list: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/partners", e.userA, ""); r.status != 403 {
		t.Errorf("org list: %d %s", r.status, r.raw)
	}
}

func TestInventoryOrgs(t *testing.T) {
	e := newInvEnv(t)
	// A partner creates under its own partner; naming another partner
	// reads as naming a missing one.
	r := e.call(t, "POST", "/orgs", e.partnerP, `{"name":"initech"}`)
	created := invObj(r, "org")
	if r.status != 201 || created["partnerId"] != e.pP || created["name"] != "initech" {
		t.Fatalf("partner creates: %d %s", r.status, r.raw)
	}
	pam, _ := created["pam"].(map[string]any)
	if pam["defaultUnmatchedVerdict"] != "require_approval" || pam["actuatorEnabled"] != false || pam["uacInterceptionEnabled"] != nil {
		t.Fatalf("pam settings: %s", r.raw)
	}
	if got := invAuditActions(t, e.st, created["id"].(string), created["id"].(string)); len(got) != 1 || got[0] != auditOrgCreated {
		t.Fatalf("audit: %v", got)
	}
	for name, c := range map[string]struct {
		tok, body string
		status    int
		target    string
	}{
		"partner names another partner":  {e.partnerP, `{"name":"x","partnerId":"` + e.pQ + `"}`, 400, "partnerId"},
		"system names a missing partner": {e.sys, `{"name":"x","partnerId":"` + store.NewID(t0) + `"}`, 400, "partnerId"},
		"partnerId not a UUID":           {e.sys, `{"name":"x","partnerId":"nope"}`, 400, "partnerId"},
		"no name":                        {e.sys, `{}`, 400, "name"},
		"settings are not set here":      {e.sys, `{"name":"x","actuatorEnabled":true}`, 400, ""},
		"org scope":                      {e.userA, `{"name":"x"}`, 403, ""},
		"site-restricted":                {token(t, Claims{Scope: ScopeSystem, Permissions: allPerms, AMR: []string{"mfa"}, SiteIDs: []string{e.s1}}), `{"name":"x"}`, 403, ""},
	} {
		r := e.call(t, "POST", "/orgs", c.tok, c.body)
		if r.status != c.status || c.target != "" && errTarget(r) != c.target {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	r = e.call(t, "POST", "/orgs", e.sys, `{"name":"umbrella","partnerId":"`+strings.ToUpper(e.pQ)+`"}`)
	if r.status != 201 || invObj(r, "org")["partnerId"] != e.pQ {
		t.Fatalf("system with partner: %d %s", r.status, r.raw)
	}
	umbrella := invObj(r, "org")["id"].(string)
	r = e.call(t, "POST", "/orgs", e.sys, `{"name":"solo"}`)
	if r.status != 201 || invObj(r, "org")["partnerId"] != nil {
		t.Fatalf("system without partner: %d %s", r.status, r.raw)
	}
	solo := invObj(r, "org")["id"].(string)

	// Lists: own org, the partner's orgs, everything.
	if r := e.call(t, "GET", "/orgs", e.userA, ""); !invSameSet(invIDs(r, "orgs"), e.org) {
		t.Errorf("org list: %s", r.raw)
	}
	if r := e.call(t, "GET", "/orgs", e.partnerP, ""); !invSameSet(invIDs(r, "orgs"), e.org, created["id"].(string)) {
		t.Errorf("partner list: %s", r.raw)
	}
	r = e.call(t, "GET", "/orgs?limit=2&page=2", e.sys, "")
	if pg, _ := r.body["pagination"].(map[string]any); pg["total"] != 5.0 || len(invIDs(r, "orgs")) != 2 {
		t.Errorf("system list, page 2: %s", r.raw)
	}
	if r := e.call(t, "GET", "/orgs?limit=100", e.sys, ""); !invSameSet(invIDs(r, "orgs"), e.org, e.orgB, created["id"].(string), umbrella, solo) {
		t.Errorf("system list: %s", r.raw)
	}

	// One org: unreachable ones are not found.
	r = e.call(t, "GET", "/orgs/"+e.org, e.userA, "")
	if o := invObj(r, "org"); r.status != 200 || o["name"] != "acme" || o["pam"].(map[string]any)["actuatorEnabled"] != true {
		t.Errorf("own org: %d %s", r.status, r.raw)
	}
	for name, c := range map[string]struct{ tok, id string }{
		"org A reads B":        {e.userA, e.orgB},
		"partner P reads B":    {e.partnerP, e.orgB},
		"missing org":          {e.sys, store.NewID(t0)},
		"partner P reads solo": {e.partnerP, solo},
	} {
		if r := e.call(t, "GET", "/orgs/"+c.id, c.tok, ""); r.status != 404 || errCode(r) != "NOT_FOUND" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if r := e.call(t, "GET", "/orgs/"+e.orgB, e.partnerP, ""); strings.Contains(r.raw, "globex") {
		t.Errorf("404 leaks the name: %s", r.raw)
	}
	if r := e.call(t, "GET", "/orgs/not-a-uuid", e.sys, ""); r.status != 400 || errTarget(r) != "id" {
		t.Errorf("bad id: %d %s", r.status, r.raw)
	}
	// An org-scope caller whose org is not in the store creates nothing.
	ghost := token(t, Claims{Scope: ScopeOrganization, OrgID: store.NewID(t0), Permissions: allPerms, AMR: []string{"mfa"}})
	for _, p := range []string{"/sites", "/device-groups"} {
		if r := e.call(t, "POST", p, ghost, `{"name":"x"}`); r.status != 404 {
			t.Errorf("ghost org %s: %d %s", p, r.status, r.raw)
		}
	}
	if r := e.call(t, "POST", "/devices", ghost, `{"hostname":"x"}`); r.status != 404 {
		t.Errorf("ghost org device: %d %s", r.status, r.raw)
	}
}

func TestInventorySitesAndGroups(t *testing.T) {
	e := newInvEnv(t)
	r := e.call(t, "POST", "/sites", e.userA, `{"name":"Lab"}`)
	site := invObj(r, "site")
	if r.status != 201 || site["orgId"] != e.org || site["name"] != "Lab" {
		t.Fatalf("create site: %d %s", r.status, r.raw)
	}
	if got := invAuditActions(t, e.st, e.org, site["id"].(string)); len(got) != 1 || got[0] != auditSiteCreated {
		t.Fatalf("audit: %v", got)
	}
	if r := e.call(t, "GET", "/sites", e.userA, ""); !invSameSet(invIDs(r, "sites"), e.s1, e.s2, site["id"].(string)) {
		t.Errorf("org A sites: %s", r.raw)
	}
	if r := e.call(t, "GET", "/sites", e.userB, ""); !invSameSet(invIDs(r, "sites"), e.sb) {
		t.Errorf("org B sites: %s", r.raw)
	}
	if r := e.call(t, "GET", "/sites?orgId="+e.orgB, e.partnerP, ""); r.status != 404 {
		t.Errorf("partner P lists B's sites: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/sites?orgId="+e.orgB, e.partnerP, `{"name":"x"}`); r.status != 404 {
		t.Errorf("partner P creates in B: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/sites?orgId="+e.org, e.userB, `{"name":"x"}`); r.status != 400 || errTarget(r) != "orgId" {
		t.Errorf("org B names org A: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/sites?orgId="+e.orgB, e.sys, `{"name":"GX-2"}`); r.status != 201 || invObj(r, "site")["orgId"] != e.orgB {
		t.Errorf("system creates in B: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/sites", e.sys, `{"name":"x"}`); r.status != 400 || errTarget(r) != "orgId" {
		t.Errorf("system without orgId: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/sites", e.userA, `{"name":"a\u0000b"}`); r.status != 400 || errTarget(r) != "name" {
		t.Errorf("control character: %d %s", r.status, r.raw)
	}
	// A site-restricted caller sees its sites only and creates none.
	if r := e.call(t, "GET", "/sites", e.siteUser, ""); !invSameSet(invIDs(r, "sites"), e.s1) {
		t.Errorf("site user: %s", r.raw)
	}
	if r := e.call(t, "POST", "/sites", e.siteUser, `{"name":"x"}`); r.status != 403 || errCode(r) != "SITE_DENIED" {
		t.Errorf("site user creates a site: %d %s", r.status, r.raw)
	}

	r = e.call(t, "POST", "/device-groups", e.userA, `{"name":"Servers"}`)
	group := invObj(r, "deviceGroup")
	if r.status != 201 || group["orgId"] != e.org || group["name"] != "Servers" {
		t.Fatalf("create group: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/device-groups", e.userA, ""); !invSameSet(invIDs(r, "deviceGroups"), e.g1, group["id"].(string)) {
		t.Errorf("org A groups: %s", r.raw)
	}
	if r := e.call(t, "GET", "/device-groups?orgId="+e.orgB, e.sys, ""); !invSameSet(invIDs(r, "deviceGroups"), e.gb) {
		t.Errorf("org B groups: %s", r.raw)
	}
	if r := e.call(t, "GET", "/device-groups?orgId="+e.orgB, e.partnerP, ""); r.status != 404 {
		t.Errorf("partner P lists B's groups: %d", r.status)
	}
	if r := e.call(t, "GET", "/device-groups", e.siteUser, ""); r.status != 200 || len(invIDs(r, "deviceGroups")) != 2 {
		t.Errorf("site user lists groups: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/device-groups", e.siteUser, `{"name":"x"}`); r.status != 403 || errCode(r) != "SITE_DENIED" {
		t.Errorf("site user creates a group: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/device-groups", e.userA, `{"name":""}`); r.status != 400 || errTarget(r) != "name" {
		t.Errorf("empty name: %d %s", r.status, r.raw)
	}
}

func TestInventoryDeviceLifecycle(t *testing.T) {
	e := newInvEnv(t)
	e.clock.Advance(time.Second) // the new device's id sorts after the fixture's
	r := e.call(t, "POST", "/devices", e.userA,
		`{"hostname":"WS-9","siteId":"`+e.s1+`","groupIds":["`+e.g1+`","`+strings.ToUpper(e.g1)+`"],"os":"windows","attributes":{"role":"kiosk"}}`)
	dev := invObj(r, "device")
	tok, _ := r.body["agentToken"].(string)
	if r.status != 201 || len(tok) < 32 || dev["hostname"] != "WS-9" || dev["siteId"] != e.s1 || dev["status"] != "active" ||
		dev["os"] != "windows" || dev["hasAgentToken"] != true || dev["orgId"] != e.org {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if g := dev["groupIds"].([]any); len(g) != 1 || g[0] != e.g1 {
		t.Fatalf("groups are canonical and unique: %s", r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	id := dev["id"].(string)
	stored, err := e.lcDevice(id)
	if err != nil || stored.TokenHash != store.TokenHash(tok) {
		t.Fatalf("stored %+v %v", stored, err)
	}
	hash := stored.TokenHash

	// The token works on the agent endpoint at once.
	if r := e.ingestAs(t, id, tok); r.status != 201 {
		t.Fatalf("ingest with the new token: %d %s", r.status, r.raw)
	}

	// Reads never show the token or its hash.
	reads := []reply{
		e.call(t, "GET", "/devices/"+id, e.userA, ""),
		e.call(t, "GET", "/devices", e.userA, ""),
		e.call(t, "GET", "/devices?siteId="+e.s1, e.userA, ""),
	}
	for _, r := range reads {
		if r.status != 200 || strings.Contains(r.raw, tok) || strings.Contains(r.raw, hash) || strings.Contains(r.raw, "agentToken\"") {
			t.Fatalf("a read shows the token: %d %s", r.status, r.raw)
		}
	}
	if d := invObj(reads[0], "device"); d["hostname"] != "WS-9" || d["attributes"].(map[string]any)["role"] != "kiosk" {
		t.Fatalf("get: %s", reads[0].raw)
	}
	if !invSameSet(invIDs(reads[1], "devices"), e.device, e.d1, e.d2, id) {
		t.Fatalf("list: %s", reads[1].raw)
	}
	if got := invIDs(reads[1], "devices"); got[len(got)-1] != id || !slices.IsSorted(got) {
		t.Fatalf("list order is id (creation) order: %v", got)
	}
	if !invSameSet(invIDs(reads[2], "devices"), e.d1, id) {
		t.Fatalf("list by site: %s", reads[2].raw)
	}
	if r := e.call(t, "GET", "/devices?groupId="+e.g1, e.userA, ""); !invSameSet(invIDs(r, "devices"), id) {
		t.Fatalf("list by group: %s", r.raw)
	}

	// Quarantine: the agent is refused, the list filter finds it, the
	// change is audited; back to active, the agent works again.
	r = e.call(t, "PATCH", "/devices/"+id, e.userA, `{"status":"quarantined","hostname":"WS-9b"}`)
	if d := invObj(r, "device"); r.status != 200 || d["status"] != "quarantined" || d["hostname"] != "WS-9b" || d["siteId"] != e.s1 {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	if r := e.ingestAs(t, id, tok); r.status != 403 || errCode(r) != "DEVICE_QUARANTINED" {
		t.Fatalf("quarantined agent: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/devices?status=quarantined", e.userA, ""); !invSameSet(invIDs(r, "devices"), id) {
		t.Fatalf("list by status: %s", r.raw)
	}
	if r := e.call(t, "PATCH", "/devices/"+id, e.userA, `{"status":"active"}`); r.status != 200 {
		t.Fatalf("reactivate: %d %s", r.status, r.raw)
	}
	if r := e.ingestAs(t, id, tok); r.status != 201 {
		t.Fatalf("reactivated agent: %d %s", r.status, r.raw)
	}

	// Rotation: the old token stops working, the new one works.
	r = e.call(t, "POST", "/devices/"+id+"/token", e.userA, "")
	tok2, _ := r.body["agentToken"].(string)
	if r.status != 200 || tok2 == "" || tok2 == tok || invObj(r, "device")["id"] != id || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("rotate: %d %s", r.status, r.raw)
	}
	if r := e.ingestAs(t, id, tok); r.status != 401 {
		t.Fatalf("old token after rotation: %d %s", r.status, r.raw)
	}
	if r := e.ingestAs(t, id, tok2); r.status != 201 {
		t.Fatalf("new token: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/devices/"+id+"/token", e.userA, `{}`); r.status != 200 {
		t.Fatalf("rotate with {}: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/devices/"+id+"/token", e.userA, `{"x":1}`); r.status != 400 {
		t.Fatalf("rotate with a field: %d %s", r.status, r.raw)
	}

	// Clearing the site and the groups.
	r = e.call(t, "PATCH", "/devices/"+id, e.userA, `{"siteId":null,"groupIds":[],"os":"","attributes":{}}`)
	if d := invObj(r, "device"); r.status != 200 || d["siteId"] != nil || len(d["groupIds"].([]any)) != 0 || d["os"] != nil ||
		len(d["attributes"].(map[string]any)) != 0 || d["hostname"] != "WS-9b" {
		t.Fatalf("clear: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "PATCH", "/devices/"+id, e.userA, `{"siteId":"`+e.s2+`","groupIds":["`+e.g1+`"]}`); invObj(r, "device")["siteId"] != e.s2 {
		t.Fatalf("move: %d %s", r.status, r.raw)
	}

	want := []string{auditDeviceCreated, auditDeviceUpdated, auditDeviceStatusChanged, auditDeviceStatusChanged,
		auditDeviceTokenRotated, auditDeviceTokenRotated, auditDeviceUpdated, auditDeviceUpdated}
	if got := invAuditActions(t, e.st, e.org, id); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("audit: %v", got)
	}
	var status []string
	e.st.AuditLog(e.org, 0, func(r *store.AuditRecord) bool {
		if r.Subject == id && r.Action == auditDeviceStatusChanged {
			status = append(status, r.From+">"+r.To+" by "+r.ActorName)
		}
		return true
	})
	if strings.Join(status, ",") != "active>quarantined by Ann,quarantined>active by Ann" {
		t.Fatalf("status audit: %v", status)
	}
}

func (e *invEnv) lcDevice(id string) (*store.Device, error) {
	var d *store.Device
	err := e.st.View(func(sn *store.Snapshot) error {
		var err error
		d, err = sn.Device(id)
		return err
	})
	return d, err
}

func TestInventoryDeviceValidation(t *testing.T) {
	e := newInvEnv(t)
	for body, target := range map[string]string{
		`{}`:                            "hostname",
		`{"hostname":"  "}`:             "hostname",
		`{"hostname":7}`:                "hostname",
		`{"hostname":"h","siteId":"x"}`: "siteId",
		`{"hostname":"h","siteId":"` + e.sb + `"}`:                            "siteId", // org B's site
		`{"hostname":"h","siteId":"` + store.NewID(t0) + `"}`:                 "siteId",
		`{"hostname":"h","groupIds":["` + e.gb + `"]}`:                        "groupIds", // org B's group
		`{"hostname":"h","groupIds":["nope"]}`:                                "groupIds",
		`{"hostname":"h","status":"retired"}`:                                 "status",
		`{"hostname":"h","os":"` + strings.Repeat("x", 101) + `"}`:            "os",
		`{"hostname":"h","attributes":{"":1}}`:                                "attributes",
		`{"hostname":"h","agentTokenHash":"` + strings.Repeat("a", 64) + `"}`: "",
		`{"hostname":"h","orgId":"` + e.orgB + `"}`:                           "",
	} {
		r := e.call(t, "POST", "/devices", e.userA, body)
		if r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != target {
			t.Errorf("POST %s: %d %s", body, r.status, r.raw)
		}
	}
	for body, target := range map[string]string{
		`{"hostname":""}`:               "hostname",
		`{"siteId":5}`:                  "siteId",
		`{"siteId":"` + e.sb + `"}`:     "siteId",
		`{"groupIds":["` + e.gb + `"]}`: "groupIds",
		`{"status":"gone"}`:             "status",
		`{"agentTokenHash":"x"}`:        "",
		`{"orgId":"` + e.orgB + `"}`:    "",
	} {
		r := e.call(t, "PATCH", "/devices/"+e.d1, e.userA, body)
		if r.status != 400 || errTarget(r) != target {
			t.Errorf("PATCH %s: %d %s", body, r.status, r.raw)
		}
	}
	if r := e.call(t, "PATCH", "/devices/nope", e.userA, `{}`); r.status != 400 || errTarget(r) != "id" {
		t.Errorf("bad id: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/devices?status=gone", e.userA, ""); r.status != 400 || errTarget(r) != "status" {
		t.Errorf("bad status filter: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/devices?siteId=x", e.userA, ""); r.status != 400 || errTarget(r) != "siteId" {
		t.Errorf("bad site filter: %d %s", r.status, r.raw)
	}
	// Nothing was written by the refused calls.
	if r := e.call(t, "GET", "/devices", e.userA, ""); len(invIDs(r, "devices")) != 3 {
		t.Errorf("devices after refusals: %s", r.raw)
	}
	if d, _ := e.lcDevice(e.d1); d.SiteID != e.s1 || d.Hostname != "HQ-1" {
		t.Errorf("d1 changed: %+v", d)
	}
}

func TestInventoryDeviceTenancy(t *testing.T) {
	e := newInvEnv(t)
	// Org A's caller: B's device is not found on every route and never
	// listed.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/devices/" + e.db, ""},
		{"PATCH", "/devices/" + e.db, `{"status":"decommissioned"}`},
		{"POST", "/devices/" + e.db + "/token", ""},
		{"GET", "/devices/" + store.NewID(t0), ""},
	} {
		r := e.call(t, c.method, c.path, e.userA, c.body)
		if r.status != 404 || errCode(r) != "NOT_FOUND" || strings.Contains(r.raw, "GX-1") {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.raw)
		}
	}
	if d, _ := e.lcDevice(e.db); d.Status != store.DeviceActive || d.TokenHash != store.TokenHash("tok-db") {
		t.Fatalf("B's device changed: %+v", d)
	}
	if r := e.ingestAs(t, e.db, "tok-db"); r.status != 201 {
		t.Fatalf("B's agent: %d", r.status)
	}
	r := e.call(t, "GET", "/devices?limit=100", e.userA, "")
	if r.status != 200 || containsID(invIDs(r, "devices"), e.db) || strings.Contains(r.raw, e.orgB) {
		t.Errorf("A's list shows B: %s", r.raw)
	}
	if r := e.call(t, "GET", "/devices?siteId="+e.sb, e.userA, ""); r.status != 200 || len(invIDs(r, "devices")) != 0 {
		t.Errorf("A filtering by B's site: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/devices?orgId="+e.orgB, e.userA, ""); r.status != 400 {
		t.Errorf("A naming B: %d %s", r.status, r.raw)
	}
	// Partner P reaches A only.
	if r := e.call(t, "GET", "/devices?orgId="+e.orgB, e.partnerP, ""); r.status != 404 {
		t.Errorf("P lists B: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/devices?orgId="+e.orgB, e.partnerP, `{"hostname":"x"}`); r.status != 404 {
		t.Errorf("P creates in B: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/devices/"+e.db, e.partnerP, ""); r.status != 404 {
		t.Errorf("P reads B's device: %d", r.status)
	}
	if r := e.call(t, "GET", "/devices", e.partnerP, ""); r.status != 200 || !invSameSet(invIDs(r, "devices"), e.device, e.d1, e.d2) {
		t.Errorf("P's only org: %d %s", r.status, r.raw)
	}
	r = e.call(t, "POST", "/devices?orgId="+e.org, e.partnerP, `{"hostname":"P-1","siteId":"`+e.s2+`"}`)
	if r.status != 201 || invObj(r, "device")["orgId"] != e.org {
		t.Errorf("P creates in A: %d %s", r.status, r.raw)
	}
	// A system caller reaches every org.
	if r := e.call(t, "GET", "/devices/"+e.db, e.sys, ""); r.status != 200 || invObj(r, "device")["hostname"] != "GX-1" {
		t.Errorf("system reads B's device: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", "/devices?orgId="+e.orgB, e.sys, ""); !invSameSet(invIDs(r, "devices"), e.db) {
		t.Errorf("system lists B: %s", r.raw)
	}
	// Org B's caller sees only its own.
	if r := e.call(t, "GET", "/devices", e.userB, ""); !invSameSet(invIDs(r, "devices"), e.db) {
		t.Errorf("B's list: %s", r.raw)
	}
}

func TestInventorySiteRestriction(t *testing.T) {
	e := newInvEnv(t)
	u := e.siteUser
	if r := e.call(t, "GET", "/devices", u, ""); r.status != 200 || !invSameSet(invIDs(r, "devices"), e.d1) {
		t.Fatalf("site user's list (no s2 device, no siteless device): %s", r.raw)
	}
	if r := e.call(t, "GET", "/devices/"+e.d1, u, ""); r.status != 200 {
		t.Fatalf("own site's device: %d", r.status)
	}
	for name, c := range map[string]struct{ method, path, body string }{
		"list another site":        {"GET", "/devices?siteId=" + e.s2, ""},
		"read another site's":      {"GET", "/devices/" + e.d2, ""},
		"read a siteless device":   {"GET", "/devices/" + e.device, ""},
		"create at another site":   {"POST", "/devices", `{"hostname":"x","siteId":"` + e.s2 + `"}`},
		"create without a site":    {"POST", "/devices", `{"hostname":"x"}`},
		"move own device away":     {"PATCH", "/devices/" + e.d1, `{"siteId":"` + e.s2 + `"}`},
		"remove own device's site": {"PATCH", "/devices/" + e.d1, `{"siteId":null}`},
		"patch another site's":     {"PATCH", "/devices/" + e.d2, `{"siteId":"` + e.s1 + `"}`},
		"patch a siteless device":  {"PATCH", "/devices/" + e.device, `{"hostname":"x"}`},
		"rotate another site's":    {"POST", "/devices/" + e.d2 + "/token", ""},
	} {
		r := e.call(t, c.method, c.path, u, c.body)
		if r.status != 403 || errCode(r) != "SITE_DENIED" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if d, _ := e.lcDevice(e.d2); d.SiteID != e.s2 || d.TokenHash != store.TokenHash("tok-d2") {
		t.Fatalf("d2 changed: %+v", d)
	}
	r := e.call(t, "POST", "/devices", u, `{"hostname":"HQ-2","siteId":"`+e.s1+`"}`)
	if r.status != 201 {
		t.Fatalf("create at own site: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "PATCH", "/devices/"+e.d1, u, `{"hostname":"HQ-1b","groupIds":["`+e.g1+`"]}`); r.status != 200 {
		t.Fatalf("patch own device: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", "/devices/"+e.d1+"/token", u, ""); r.status != 200 {
		t.Fatalf("rotate own device: %d %s", r.status, r.raw)
	}
	// A restricted caller naming a site of another org is refused, not
	// let through.
	cross := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}, SiteIDs: []string{e.s1, e.sb}})
	if r := e.call(t, "POST", "/devices", cross, `{"hostname":"x","siteId":"`+e.sb+`"}`); r.status != 400 || errTarget(r) != "siteId" {
		t.Fatalf("other org's site in the claims: %d %s", r.status, r.raw)
	}
	// Restricted to no site at all.
	none := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}, SitesRestricted: true})
	if r := e.call(t, "GET", "/devices", none, ""); r.status != 200 || len(invIDs(r, "devices")) != 0 {
		t.Fatalf("no sites: %s", r.raw)
	}
	if r := e.call(t, "GET", "/sites", none, ""); r.status != 200 || len(invIDs(r, "sites")) != 0 {
		t.Fatalf("no sites: %s", r.raw)
	}
}

func TestInventoryGates(t *testing.T) {
	e := newInvEnv(t)
	devBody := `{"hostname":"x"}`
	for name, c := range map[string]struct {
		method, path, tok, body string
		status                  int
		code                    string
	}{
		"no token":                 {"GET", "/devices", "", "", 401, "UNAUTHORIZED"},
		"agent token":              {"GET", "/devices", "tok-d1", "", 401, "UNAUTHORIZED"},
		"no permission reads":      {"GET", "/devices", e.nobod, "", 403, "FORBIDDEN"},
		"unknown scope":            {"GET", "/orgs", token(t, Claims{Scope: "user", OrgID: e.org, Permissions: allPerms}), "", 403, "FORBIDDEN"},
		"read-only creates":        {"POST", "/devices", e.readOnly, devBody, 403, "FORBIDDEN"},
		"read-only patches":        {"PATCH", "/devices/" + e.d1, e.readOnly, `{"status":"quarantined"}`, 403, "FORBIDDEN"},
		"read-only rotates":        {"POST", "/devices/" + e.d1 + "/token", e.readOnly, "", 403, "FORBIDDEN"},
		"no MFA creates device":    {"POST", "/devices", e.noMFA, devBody, 403, "MFA_REQUIRED"},
		"no MFA patches":           {"PATCH", "/devices/" + e.d1, e.noMFA, `{"status":"quarantined"}`, 403, "MFA_REQUIRED"},
		"no MFA rotates":           {"POST", "/devices/" + e.d1 + "/token", e.noMFA, "", 403, "MFA_REQUIRED"},
		"no MFA creates site":      {"POST", "/sites", e.noMFA, `{"name":"x"}`, 403, "MFA_REQUIRED"},
		"no MFA creates group":     {"POST", "/device-groups", e.noMFA, `{"name":"x"}`, 403, "MFA_REQUIRED"},
		"no MFA creates org":       {"POST", "/orgs", token(t, Claims{Scope: ScopeSystem, Permissions: allPerms}), `{"name":"x"}`, 403, "MFA_REQUIRED"},
		"no MFA creates partner":   {"POST", "/partners", token(t, Claims{Scope: ScopeSystem, Permissions: allPerms}), `{"name":"x"}`, 403, "MFA_REQUIRED"},
		"read-only creates org":    {"POST", "/orgs", token(t, Claims{Scope: ScopeSystem, Permissions: []string{PermRead}, AMR: []string{"mfa"}}), `{"name":"x"}`, 403, "FORBIDDEN"},
		"wrong media type":         {"POST", "/devices", e.userA, "", 415, "UNSUPPORTED_MEDIA_TYPE"},
		"read-only reads":          {"GET", "/devices/" + e.d1, e.readOnly, "", 200, ""},
		"no MFA reads":             {"GET", "/device-groups", e.noMFA, "", 200, ""},
		"PUT is not a method here": {"PUT", "/devices/" + e.d1, e.userA, "", 405, "METHOD_NOT_ALLOWED"},
	} {
		var r reply
		if name == "wrong media type" {
			r = e.do(t, c.method, "/api/v1"+c.path, c.tok, "text/plain", strings.NewReader(devBody))
		} else {
			r = e.call(t, c.method, c.path, c.tok, c.body)
		}
		if r.status != c.status || c.code != "" && errCode(r) != c.code {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if r := e.call(t, "GET", "/devices", e.userA, ""); len(invIDs(r, "devices")) != 3 {
		t.Fatalf("a refused call wrote: %s", r.raw)
	}
	if d, _ := e.lcDevice(e.d1); d.Status != store.DeviceActive || d.TokenHash != store.TokenHash("tok-d1") {
		t.Fatalf("a refused call changed d1: %+v", d)
	}
}

func TestInventorySurfaceOff(t *testing.T) {
	e := newEnv(t, Config{JWTSecret: secret, Surfaces: map[string]bool{SurfaceInventory: false}})
	user := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}})
	for _, p := range []string{"/api/v1/devices", "/api/v1/orgs", "/api/v1/devices/" + e.device} {
		if r := e.do(t, "GET", p, user, "", nil); r.status != http.StatusNotFound {
			t.Errorf("%s with the surface off: %d", p, r.status)
		}
	}
}
