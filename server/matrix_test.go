package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/store"
)

// The caller × endpoint matrix: every registered route (Server.Routes, so
// a new route cannot escape it) is called by every kind of caller, and
// each answer is checked for its exact status, the error envelope on every
// refusal, and the absence of any row of a tenant the caller may not see:
// another organisation's ids for A's callers, A's ids for B's, and also
// site S2's ids for the caller restricted to site S1. A caller aiming at
// another tenant's ids must get the answer a made-up id gets (404, never a
// 403 that confirms the row exists).
//
// The fixture (mxFixture):
//
//	partner P ─ org A: sites S1, S2; devices dA1 (S1, agent token tok-1),
//	                   dA2 (S2), dA0 (no site); device group gA; signer
//	                   group sgA; rules rA1 (S1), rA2 (S2), rA0 (org-wide);
//	                   per device a pending (pA1, pA2, pA0) and an approved
//	                   (apA1, apA2, apA0) request; API keys kAmfa, kAnomfa
//	                   (all permissions, used as callers), kA1 and kA2
//	                   (confined to S1 and S2)
//	partner Q ─ org B: site SB, device dB, group gB, signer group sgB,
//	                   rules rB (SB) and rB0, requests pB and apB, key kB

// mxTenant is what a request names: a tenant's organisation and partner,
// one of its sites and the rows at that site, and its org-wide rows.
type mxTenant struct {
	org, partner, site, device, group, signerGroup, rule, pending, approved, key string
}

// Tenants a cell aims at.
const (
	mxA     = "A"     // org A, rows at S1
	mxAS2   = "A-S2"  // org A, rows at S2
	mxB     = "B"     // org B
	mxGhost = "ghost" // ids that exist nowhere
)

// mxCred is how a caller presents itself.
type mxCred int

const (
	credUser    mxCred = iota // a valid user token or API key
	credAgent                 // A's device agent token
	credNone                  // nothing
	credInvalid               // a token that must not authenticate
)

// mxCaller is one kind of caller. Its credential comes from the fixture
// (the tokens carry the fixture's ids).
type mxCaller struct {
	name       string
	cred       mxCred
	scope      string
	perms      []string
	mfa        bool
	restricted bool   // to site S1
	apiKey     bool   // an API key rather than a user's token
	home       string // the tenant it belongs to (system: A, which it names)
}

var mxCallers = []mxCaller{
	{name: "orgA", scope: ScopeOrganization, perms: allPerms, mfa: true, home: mxA},
	{name: "partnerP", scope: ScopePartner, perms: allPerms, mfa: true, home: mxA},
	{name: "system", scope: ScopeSystem, perms: allPerms, mfa: true, home: mxA},
	{name: "orgB", scope: ScopeOrganization, perms: allPerms, mfa: true, home: mxB},
	{name: "siteS1", scope: ScopeOrganization, perms: allPerms, mfa: true, restricted: true, home: mxA},
	{name: "noMFA", scope: ScopeOrganization, perms: allPerms, home: mxA},
	{name: "readOnly", scope: ScopeOrganization, perms: []string{PermRead}, mfa: true, home: mxA},
	{name: "readWrite", scope: ScopeOrganization, perms: []string{PermRead, PermWrite}, mfa: true, home: mxA},
	{name: "keyMFA", scope: ScopeOrganization, perms: allPerms, mfa: true, apiKey: true, home: mxA},
	{name: "keyNoMFA", scope: ScopeOrganization, perms: allPerms, apiKey: true, home: mxA},
	{name: "noToken", cred: credNone, home: mxA},
	{name: "badSignature", cred: credInvalid, home: mxA},
	{name: "expired", cred: credInvalid, home: mxA},
	{name: "agentToken", cred: credAgent, home: mxA},
}

func mxCallerNamed(name string) *mxCaller {
	for i := range mxCallers {
		if mxCallers[i].name == name {
			return &mxCallers[i]
		}
	}
	panic("no caller " + name)
}

// mxWant is an expected answer; an empty code accepts any.
type mxWant struct {
	status int
	code   string
}

func (w mxWant) String() string { return strings.TrimSpace(fmt.Sprintf("%d %s", w.status, w.code)) }

// mxAgent as a route's perm marks the agent route.
const mxAgent = "agent"

// mxRoute is one registered route: how to call it on a tenant's rows, and
// what each kind of caller gets.
type mxRoute struct {
	method, path string // the registered pattern
	// perm is the permission the route's gate asks for ("" for a public
	// route, mxAgent for the agent route); mfa whether it asks for MFA.
	perm string
	mfa  bool
	// orgQ: the route reads ?orgId=; partner and system callers name the
	// tenant's organisation there.
	orgQ bool
	// pure: a POST that changes nothing (so cells can share a fixture).
	pure bool
	// req builds the path and a body that succeeds for a permitted caller.
	req func(x *mxTenant) (path, body string)
	// ok is the status a permitted caller gets on its own tenant's rows.
	ok int
	// who refuses callers by what they are, after the gate (zero: none).
	who func(c *mxCaller) mxWant
	// cross is the status an organisation-scope caller gets when the
	// request names another tenant's ids (or ids of no one); 0 when the
	// route names no tenant's rows. crossP is a partner's (0: 404).
	cross, crossP int
	// site is what the S1-restricted caller gets on S2's rows (zero: the
	// route has no site axis).
	site mxWant
	// shows are ids a 2xx answer on the caller's own tenant must hold.
	shows func(x *mxTenant) []string
}

func (r *mxRoute) mutates() bool { return r.method != "GET" && !r.pure }

// Refusals by the kind of caller.
var (
	mxForbidden   = mxWant{403, "FORBIDDEN"}
	mxSiteDenied  = mxWant{403, "SITE_DENIED"}
	mxSystemOnly  = func(c *mxCaller) mxWant { return mxIf(c.scope != ScopeSystem, mxForbidden) }
	mxNotOrgScope = func(c *mxCaller) mxWant { return mxIf(c.scope == ScopeOrganization, mxForbidden) }
	mxNoAPIKeys   = func(c *mxCaller) mxWant { return mxIf(c.apiKey, mxForbidden) }
	mxAllSites    = func(c *mxCaller) mxWant { return mxIf(c.restricted, mxSiteDenied) }
)

func mxIf(cond bool, w mxWant) mxWant {
	if cond {
		return w
	}
	return mxWant{}
}

func mxStatic(path string) func(*mxTenant) (string, string) {
	return func(*mxTenant) (string, string) { return path, "" }
}

func mxIDs(f func(x *mxTenant) string) func(x *mxTenant) []string {
	return func(x *mxTenant) []string { return []string{f(x)} }
}

// mxRoutes is the matrix's table: one case per registered route.
func mxRoutes() []mxRoute {
	const v1 = "/api/v1"
	return []mxRoute{
		// Public.
		{method: "GET", path: "/healthz", req: mxStatic("/healthz"), ok: 200},
		{method: "GET", path: "/readyz", req: mxStatic("/readyz"), ok: 200},
		{method: "GET", path: "/metrics", req: mxStatic("/metrics"), ok: 200},
		{method: "GET", path: "/openapi.json", req: mxStatic("/openapi.json"), ok: 200},

		// The agent.
		{method: "POST", path: v1 + "/agents/:id/elevation-requests", perm: mxAgent, ok: 201, cross: 401,
			req: func(x *mxTenant) (string, string) { return v1 + "/agents/" + x.device + "/elevation-requests", firefox }},

		// The device's pam settings: the agent's own (no fixture policy gives
		// dA1 the feature, so the answer names no id; see mxAddPolicies).
		{method: "GET", path: v1 + "/agents/:id/pam-settings", perm: mxAgent, ok: 200, cross: 401,
			req: func(x *mxTenant) (string, string) { return v1 + "/agents/" + x.device + "/pam-settings", "" }},

		// Requests.
		{method: "GET", path: v1 + "/pam/elevation-requests", perm: PermRead, orgQ: true, ok: 200, cross: 200, site: mxSiteDenied,
			req:   func(x *mxTenant) (string, string) { return v1 + "/pam/elevation-requests?siteId=" + x.site, "" },
			shows: func(x *mxTenant) []string { return []string{x.pending, x.approved} }},
		{method: "GET", path: v1 + "/pam/active", perm: PermRead, orgQ: true, ok: 200, cross: 200,
			req: mxStatic(v1 + "/pam/active"), shows: mxIDs(func(x *mxTenant) string { return x.approved })},
		{method: "POST", path: v1 + "/pam/elevation-requests/:id/respond", perm: PermExecute, mfa: true, orgQ: true, ok: 200, cross: 404, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/pam/elevation-requests/" + x.pending + "/respond", `{"decision":"approve","reason":"matrix","durationMinutes":30}`
			},
			shows: mxIDs(func(x *mxTenant) string { return x.pending })},
		{method: "POST", path: v1 + "/pam/elevation-requests/:id/revoke", perm: PermExecute, mfa: true, orgQ: true, ok: 200, cross: 404, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/pam/elevation-requests/" + x.approved + "/revoke", `{"reason":"matrix"}`
			},
			shows: mxIDs(func(x *mxTenant) string { return x.approved })},
		{method: "POST", path: v1 + "/devices/:id/actuate-elevation", perm: PermExecute, mfa: true, ok: 201, cross: 404, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/devices/" + x.device + "/actuate-elevation", `{"elevationRequestId":"` + x.approved + `","timeoutMs":5000}`
			},
			shows: mxIDs(func(x *mxTenant) string { return x.approved })},

		// Rules, signer groups, settings, preview, decide.
		{method: "GET", path: v1 + "/pam/rules", perm: PermRead, orgQ: true, ok: 200, cross: 200,
			req: mxStatic(v1 + "/pam/rules"), shows: mxIDs(func(x *mxTenant) string { return x.rule })},
		{method: "POST", path: v1 + "/pam/rules", perm: PermWrite, mfa: true, orgQ: true, ok: 201, cross: 400, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/pam/rules", `{"name":"matrix rule","verdict":"auto_deny","priority":5,"siteId":"` + x.site +
					`","matchSignerGroupId":"` + x.signerGroup + `"}`
			},
			shows: mxIDs(func(x *mxTenant) string { return x.site })},
		{method: "PATCH", path: v1 + "/pam/rules/:id", perm: PermWrite, mfa: true, orgQ: true, ok: 200, cross: 404, site: mxSiteDenied,
			req:   func(x *mxTenant) (string, string) { return v1 + "/pam/rules/" + x.rule, `{"priority":7}` },
			shows: mxIDs(func(x *mxTenant) string { return x.rule })},
		{method: "DELETE", path: v1 + "/pam/rules/:id", perm: PermWrite, mfa: true, orgQ: true, ok: 200, cross: 404, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) { return v1 + "/pam/rules/" + x.rule, "" }},
		{method: "POST", path: v1 + "/pam/rules/preview", perm: PermWrite, orgQ: true, pure: true, ok: 200, cross: 200, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/pam/rules/preview", `{"matchSigner":"Mozilla Corporation","siteId":"` + x.site + `","windowDays":7}`
			},
			shows: mxIDs(func(x *mxTenant) string { return x.pending })},
		// A simulation reads only the tenant's history (a site of another
		// organisation narrows it to nothing); the S1 caller may not name S2.
		{method: "POST", path: v1 + "/pam/rules/simulate", perm: PermWrite, orgQ: true, pure: true, ok: 200, cross: 200, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/pam/rules/simulate", `{"rules":[{"name":"matrix draft","verdict":"auto_approve","priority":1,"siteId":"` + x.site +
					`","matchSigner":"Mozilla Corporation"}],"siteId":"` + x.site + `","windowDays":7}`
			},
			shows: func(x *mxTenant) []string { return []string{x.pending, x.rule} }},
		{method: "GET", path: v1 + "/pam/signer-groups", perm: PermRead, orgQ: true, ok: 200, cross: 200,
			req: mxStatic(v1 + "/pam/signer-groups"), shows: mxIDs(func(x *mxTenant) string { return x.signerGroup })},
		{method: "POST", path: v1 + "/pam/signer-groups", perm: PermWrite, mfa: true, orgQ: true, ok: 201, cross: 201,
			req: func(*mxTenant) (string, string) {
				return v1 + "/pam/signer-groups", `{"name":"matrix signers","signers":["Contoso Ltd"]}`
			}},
		{method: "PATCH", path: v1 + "/pam/signer-groups/:id", perm: PermWrite, mfa: true, orgQ: true, ok: 200, cross: 404,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/pam/signer-groups/" + x.signerGroup, `{"description":"matrix"}`
			},
			shows: mxIDs(func(x *mxTenant) string { return x.signerGroup })},
		{method: "DELETE", path: v1 + "/pam/signer-groups/:id", perm: PermWrite, mfa: true, orgQ: true, ok: 200, cross: 404,
			req: func(x *mxTenant) (string, string) { return v1 + "/pam/signer-groups/" + x.signerGroup, "" }},
		{method: "GET", path: v1 + "/pam/config", perm: PermRead, orgQ: true, ok: 200, cross: 200,
			req: mxStatic(v1 + "/pam/config"), shows: mxIDs(func(x *mxTenant) string { return x.org })},
		{method: "PUT", path: v1 + "/pam/config", perm: PermWrite, mfa: true, orgQ: true, ok: 200, cross: 200,
			req:   func(*mxTenant) (string, string) { return v1 + "/pam/config", `{"defaultUnmatchedVerdict":"auto_deny"}` },
			shows: mxIDs(func(x *mxTenant) string { return x.org })},
		// A device of another organisation (or of none) is a 400 on
		// deviceId. The site axis applies as to preview: the S1 caller may
		// not decide for a device at S2, and its trace must not show rules
		// of other sites.
		{method: "POST", path: v1 + "/pam/decide", perm: PermRead, orgQ: true, pure: true, ok: 200, cross: 400, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/pam/decide", `{"flowType":"uac_intercept","observation":{"subjectUsername":"acme\\sarah",` +
					`"targetExecutablePath":"C:\\x.exe"},"deviceId":"` + x.device + `","explain":true}`
			}},

		// API keys.
		// An organisation's key may name only its own sites (400 for
		// another's, as for none); a partner's key is not checked so.
		{method: "POST", path: v1 + "/api-keys", perm: PermWrite, mfa: true, who: mxNoAPIKeys, ok: 201, cross: 400, crossP: 201, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/api-keys", `{"name":"matrix key","permissions":["devices:read"],"siteIds":["` + x.site + `"]}`
			}},
		{method: "GET", path: v1 + "/api-keys", perm: PermRead, ok: 200,
			req: mxStatic(v1 + "/api-keys"), shows: mxIDs(func(x *mxTenant) string { return x.key })},
		{method: "DELETE", path: v1 + "/api-keys/:id", perm: PermWrite, mfa: true, who: mxNoAPIKeys, ok: 200, cross: 404,
			// A key outside a restricted caller's sites is hidden from it,
			// so it is not found rather than denied.
			site:  mxWant{404, "NOT_FOUND"},
			req:   func(x *mxTenant) (string, string) { return v1 + "/api-keys/" + x.key, "" },
			shows: mxIDs(func(x *mxTenant) string { return x.key })},

		// Inventory.
		{method: "GET", path: v1 + "/partners", perm: PermRead, who: mxNotOrgScope, ok: 200,
			req: mxStatic(v1 + "/partners"), shows: mxIDs(func(x *mxTenant) string { return x.partner })},
		{method: "POST", path: v1 + "/partners", perm: PermWrite, mfa: true, who: mxSystemOnly, ok: 201,
			req: func(*mxTenant) (string, string) { return v1 + "/partners", `{"name":"Matrix MSP"}` }},
		{method: "GET", path: v1 + "/orgs", perm: PermRead, ok: 200,
			req: mxStatic(v1 + "/orgs"), shows: mxIDs(func(x *mxTenant) string { return x.org })},
		{method: "GET", path: v1 + "/orgs/:id", perm: PermRead, ok: 200, cross: 404,
			req:   func(x *mxTenant) (string, string) { return v1 + "/orgs/" + x.org, "" },
			shows: mxIDs(func(x *mxTenant) string { return x.org })},
		{method: "POST", path: v1 + "/orgs", perm: PermWrite, mfa: true, who: mxNotOrgScope, ok: 201, cross: 403, crossP: 400,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/orgs", `{"name":"Matrix Org","partnerId":"` + x.partner + `"}`
			},
			shows: mxIDs(func(x *mxTenant) string { return x.partner })},
		{method: "GET", path: v1 + "/sites", perm: PermRead, orgQ: true, ok: 200, cross: 200,
			req: mxStatic(v1 + "/sites"), shows: mxIDs(func(x *mxTenant) string { return x.site })},
		{method: "POST", path: v1 + "/sites", perm: PermWrite, mfa: true, orgQ: true, who: mxAllSites, ok: 201, cross: 201,
			req: func(*mxTenant) (string, string) { return v1 + "/sites", `{"name":"Annex"}` }},
		{method: "GET", path: v1 + "/device-groups", perm: PermRead, orgQ: true, ok: 200, cross: 200,
			req: mxStatic(v1 + "/device-groups"), shows: mxIDs(func(x *mxTenant) string { return x.group })},
		{method: "POST", path: v1 + "/device-groups", perm: PermWrite, mfa: true, orgQ: true, who: mxAllSites, ok: 201, cross: 201,
			req: func(*mxTenant) (string, string) { return v1 + "/device-groups", `{"name":"Matrix group"}` }},
		{method: "GET", path: v1 + "/devices", perm: PermRead, orgQ: true, ok: 200, cross: 200, site: mxSiteDenied,
			req:   func(x *mxTenant) (string, string) { return v1 + "/devices?siteId=" + x.site, "" },
			shows: mxIDs(func(x *mxTenant) string { return x.device })},
		{method: "POST", path: v1 + "/devices", perm: PermWrite, mfa: true, orgQ: true, ok: 201, cross: 400, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/devices", `{"hostname":"MATRIX-1","siteId":"` + x.site + `","groupIds":["` + x.group + `"]}`
			},
			shows: mxIDs(func(x *mxTenant) string { return x.site })},
		{method: "GET", path: v1 + "/devices/:id", perm: PermRead, ok: 200, cross: 404, site: mxSiteDenied,
			req:   func(x *mxTenant) (string, string) { return v1 + "/devices/" + x.device, "" },
			shows: mxIDs(func(x *mxTenant) string { return x.device })},
		{method: "PATCH", path: v1 + "/devices/:id", perm: PermWrite, mfa: true, ok: 200, cross: 404, site: mxSiteDenied,
			req:   func(x *mxTenant) (string, string) { return v1 + "/devices/" + x.device, `{"hostname":"RENAMED-1"}` },
			shows: mxIDs(func(x *mxTenant) string { return x.device })},
		{method: "POST", path: v1 + "/devices/:id/token", perm: PermWrite, mfa: true, ok: 200, cross: 404, site: mxSiteDenied,
			req:   func(x *mxTenant) (string, string) { return v1 + "/devices/" + x.device + "/token", "" },
			shows: mxIDs(func(x *mxTenant) string { return x.device })},

		// Configuration policies (the fixture's are in mxAddPolicies). A
		// site-restricted caller reads them but writes none; a target of
		// another tenant is a 400 on the assignment, like one of no one.
		{method: "GET", path: v1 + "/configuration-policies", perm: PermRead, orgQ: true, ok: 200, cross: 200,
			req: mxStatic(v1 + "/configuration-policies"), shows: mxIDs(mxPolicyOf)},
		{method: "POST", path: v1 + "/configuration-policies", perm: PermWrite, mfa: true, orgQ: true, who: mxAllSites, ok: 201, cross: 400,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/configuration-policies", `{"name":"matrix policy","features":{"pam":{"uacInterceptionEnabled":false}},` +
					`"assignments":[{"level":"site","targetId":"` + x.site + `","priority":5}]}`
			},
			shows: mxIDs(func(x *mxTenant) string { return x.site })},
		{method: "GET", path: v1 + "/configuration-policies/:id", perm: PermRead, ok: 200, cross: 404,
			req:   func(x *mxTenant) (string, string) { return v1 + "/configuration-policies/" + mxPolicyOf(x), "" },
			shows: mxIDs(mxPolicyOf)},
		{method: "PATCH", path: v1 + "/configuration-policies/:id", perm: PermWrite, mfa: true, who: mxAllSites, ok: 200, cross: 404,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/configuration-policies/" + mxPolicyOf(x), `{"description":"matrix"}`
			},
			shows: mxIDs(mxPolicyOf)},
		{method: "DELETE", path: v1 + "/configuration-policies/:id", perm: PermWrite, mfa: true, who: mxAllSites, ok: 200, cross: 404,
			req: func(x *mxTenant) (string, string) { return v1 + "/configuration-policies/" + mxPolicyOf(x), "" }},
		{method: "GET", path: v1 + "/devices/:id/effective-policy", perm: PermRead, ok: 200, cross: 404, site: mxSiteDenied,
			req: func(x *mxTenant) (string, string) {
				return v1 + "/devices/" + x.device + "/effective-policy?explain=true", ""
			},
			shows: mxIDs(mxPolicyOf)},

		// System administration.
		{method: "GET", path: v1 + "/system/log-level", perm: PermRead, who: mxSystemOnly, ok: 200, req: mxStatic(v1 + "/system/log-level")},
		{method: "PUT", path: v1 + "/system/log-level", perm: PermWrite, mfa: true, who: mxSystemOnly, ok: 200,
			req: func(*mxTenant) (string, string) { return v1 + "/system/log-level", `{"level":"info"}` }},
		{method: "GET", path: v1 + "/debug/clock", perm: PermRead, who: mxSystemOnly, ok: 200, req: mxStatic(v1 + "/debug/clock")},
		{method: "PUT", path: v1 + "/debug/clock", perm: PermWrite, mfa: true, who: mxSystemOnly, ok: 200,
			req: func(*mxTenant) (string, string) { return v1 + "/debug/clock", `{"advance":"1m"}` }},
	}
}

// mxCell is one call of a route: a caller aiming at a tenant's rows,
// optionally naming an organisation in ?orgId= other than the target's.
type mxCell struct {
	caller *mxCaller
	target string // mxA, mxAS2, mxB or mxGhost
	orgID  string // a tenant named in ?orgId= ("": the target's, for partner and system callers)
	want   mxWant
	// ghost: run the same call on ids of no one too; both answers must be
	// the same, so the answer does not tell whether the row exists.
	ghost bool
}

func (c mxCell) String() string {
	s := c.caller.name + "→" + c.target
	if c.orgID != "" {
		s += "?orgId=" + c.orgID
	}
	return s
}

// ghostly is the cell with every tenant not the caller's replaced by ids
// of no one.
func (c mxCell) ghostly() mxCell {
	if c.target != c.caller.home {
		c.target = mxGhost
	}
	if c.orgID != "" && c.orgID != c.caller.home {
		c.orgID = mxGhost
	}
	c.ghost = false
	return c
}

// cells lists the route's calls: every caller on A's rows (B's caller so
// aims at another tenant's), B's caller on its own rows, A's callers on
// B's rows, B's caller naming A in ?orgId=, and the S1 caller on S2's rows.
func (r *mxRoute) cells() []mxCell {
	var out []mxCell
	for i := range mxCallers {
		c := &mxCallers[i]
		out = append(out, mxCell{caller: c, target: mxA, ghost: c.home != mxA && r.cross != 0})
	}
	if r.cross != 0 {
		out = append(out, mxCell{caller: mxCallerNamed("orgB"), target: mxB})
		names := []string{"orgA", "partnerP", "keyMFA"}
		if r.perm == mxAgent {
			names = append(names, "agentToken")
		}
		for _, n := range names {
			out = append(out, mxCell{caller: mxCallerNamed(n), target: mxB, ghost: true})
		}
		if r.orgQ {
			out = append(out, mxCell{caller: mxCallerNamed("orgB"), target: mxB, orgID: mxA, ghost: true})
		}
	}
	if r.site.status != 0 {
		out = append(out, mxCell{caller: mxCallerNamed("siteS1"), target: mxAS2})
	}
	for i := range out {
		out[i].want = r.expect(out[i])
	}
	return out
}

// expect is the answer a cell must get: the gate (pam-semantics §11:
// credential 401, permission 403, MFA 403 MFA_REQUIRED), then refusals by
// the kind of caller, then tenancy and the site axis.
func (r *mxRoute) expect(cl mxCell) mxWant {
	c := cl.caller
	switch {
	case r.perm == "":
		return mxWant{r.ok, ""}
	case r.perm == mxAgent:
		if c.cred != credAgent {
			return mxWant{401, "UNAUTHORIZED"}
		}
	case c.cred != credUser:
		return mxWant{401, "UNAUTHORIZED"}
	case !slices.Contains(c.perms, r.perm):
		return mxForbidden
	case r.mfa && !c.mfa:
		return mxWant{403, "MFA_REQUIRED"}
	}
	if r.who != nil {
		if w := r.who(c); w.status != 0 {
			return w
		}
	}
	switch {
	case cl.orgID != "" && cl.orgID != c.home:
		if c.scope == ScopePartner {
			return mxWant{404, "NOT_FOUND"}
		}
		return mxWant{400, "BAD_REQUEST"}
	case cl.target == mxAS2:
		return r.site
	case cl.target != c.home && r.cross != 0:
		if c.scope == ScopePartner {
			if r.crossP != 0 {
				return mxWant{r.crossP, ""}
			}
			return mxWant{404, "NOT_FOUND"}
		}
		w := mxWant{status: r.cross}
		switch r.cross {
		case 401:
			w.code = "UNAUTHORIZED"
		case 404:
			w.code = "NOT_FOUND"
		}
		return w
	}
	return mxWant{r.ok, ""}
}

// mxFixture is a server with every route (a fake clock and an adjustable
// log level) over the two-tenant data described at the top.
type mxFixture struct {
	url    string
	server *Server
	// tenants by mxA, mxAS2, mxB, mxGhost.
	tenants map[string]*mxTenant
	// id is every fixture id by its label ("pA1"); label the reverse.
	id, label map[string]string
	// aIDs, bIDs and s2IDs are the labels of A's, B's and site S2's rows.
	aIDs, bIDs, s2IDs []string
	// creds is each caller's header and value.
	creds map[string][2]string
}

func newMatrixFixture(t *testing.T) *mxFixture {
	t.Helper()
	base := newEnv(t, Config{JWTSecret: secret})
	s := New(Config{Lifecycle: base.lc, JWTSecret: secret, FakeClock: base.clock, LogLevel: new(slog.LevelVar),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var h http.Handler = s
	for _, wrap := range testHandlerWraps {
		h = wrap(t, h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f := &mxFixture{url: srv.URL, server: s, id: map[string]string{}, label: map[string]string{}, creds: map[string][2]string{}}
	mk := func(label string) string {
		id := store.NewID(t0)
		f.id[label] = id
		return id
	}
	f.id["orgA"], f.id["dA1"] = base.org, base.device
	for _, l := range []string{"partnerP", "S1", "S2", "dA2", "dA0", "gA", "sgA", "rA1", "rA2", "rA0", "kAmfa", "kAnomfa", "kA1", "kA2",
		"partnerQ", "orgB", "SB", "dB", "gB", "sgB", "rB", "rB0", "kB"} {
		mk(l)
	}
	id := f.id
	keySecret := map[string]string{"kAmfa": "elv_matrix-a-mfa", "kAnomfa": "elv_matrix-a-nomfa", "kA1": "elv_matrix-a-s1",
		"kA2": "elv_matrix-a-s2", "kB": "elv_matrix-b"}
	err := base.st.Update(func(tx *store.Tx) error {
		for _, p := range []*store.Partner{{ID: id["partnerP"], Name: "P"}, {ID: id["partnerQ"], Name: "Q"}} {
			if err := tx.PutPartner(p); err != nil {
				return err
			}
		}
		for _, o := range []*store.Org{{ID: id["orgA"], PartnerID: id["partnerP"], Name: "acme", ActuatorEnabled: true},
			{ID: id["orgB"], PartnerID: id["partnerQ"], Name: "globex", ActuatorEnabled: true}} {
			if err := tx.PutOrg(o); err != nil {
				return err
			}
		}
		for _, st := range []*store.Site{{ID: id["S1"], OrgID: id["orgA"], Name: "HQ"}, {ID: id["S2"], OrgID: id["orgA"], Name: "Branch"},
			{ID: id["SB"], OrgID: id["orgB"], Name: "GX"}} {
			if err := tx.PutSite(st); err != nil {
				return err
			}
		}
		for _, g := range []*store.DeviceGroup{{ID: id["gA"], OrgID: id["orgA"], Name: "Kiosks"}, {ID: id["gB"], OrgID: id["orgB"], Name: "GX"}} {
			if err := tx.PutDeviceGroup(g); err != nil {
				return err
			}
		}
		for _, d := range []*store.Device{
			{ID: id["dA1"], OrgID: id["orgA"], SiteID: id["S1"], Hostname: "WIN-1", TokenHash: store.TokenHash(base.token)},
			{ID: id["dA2"], OrgID: id["orgA"], SiteID: id["S2"], Hostname: "BR-1", TokenHash: store.TokenHash("tok-a2")},
			{ID: id["dA0"], OrgID: id["orgA"], Hostname: "NOSITE-1", TokenHash: store.TokenHash("tok-a0")},
			{ID: id["dB"], OrgID: id["orgB"], SiteID: id["SB"], Hostname: "GX-1", TokenHash: store.TokenHash("tok-b")},
		} {
			if err := tx.PutDevice(d); err != nil {
				return err
			}
		}
		for _, g := range []*engine.SignerGroup{
			{ID: id["sgA"], OrgID: id["orgA"], Name: "acme signers", Signers: []engine.SignerEntry{engine.CNEntry("Contoso Ltd")}},
			{ID: id["sgB"], OrgID: id["orgB"], Name: "globex signers", Signers: []engine.SignerEntry{engine.CNEntry("Globex Ltd")}},
		} {
			if _, err := tx.PutSignerGroup(g); err != nil {
				return err
			}
		}
		for i, r := range []struct{ label, org, site string }{
			{"rA1", "orgA", "S1"}, {"rA2", "orgA", "S2"}, {"rA0", "orgA", ""}, {"rB", "orgB", "SB"}, {"rB0", "orgB", ""},
		} {
			rule := engine.Rule{ID: id[r.label], OrgID: id[r.org], Name: "rule " + r.label, Enabled: true, Priority: 10 + i,
				Verdict: engine.VerdictAutoDeny, MatchSigner: ptr("Nobody Ltd"), CreatedAt: t0, UpdatedAt: t0}
			if r.site != "" {
				rule.SiteID = ptr(id[r.site])
			}
			if _, err := tx.PutRule(&rule); err != nil {
				return err
			}
		}
		for _, k := range []struct {
			label, org string
			perms      []string
			mfa        bool
			sites      []string
		}{
			{"kAmfa", "orgA", allPerms, true, nil}, {"kAnomfa", "orgA", allPerms, false, nil},
			{"kA1", "orgA", []string{PermRead}, false, []string{id["S1"]}}, {"kA2", "orgA", []string{PermRead}, false, []string{id["S2"]}},
			{"kB", "orgB", []string{PermRead}, false, nil},
		} {
			if err := tx.PutAPIKey(&store.APIKey{ID: id[k.label], Name: "key " + k.label, KeyHash: store.TokenHash(keySecret[k.label]),
				Scope: store.APIKeyScopeOrganization, OrgID: id[k.org], Permissions: k.perms, MFA: k.mfa, SiteIDs: k.sites,
				SitesRestricted: k.sites != nil, CreatedAt: t0, CreatedBy: "fixture"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Requests: per device one left pending and one approved for an hour.
	observed := t0.Add(-time.Minute)
	hour := 60
	for _, d := range []struct{ dev, org, pending, approved string }{
		{"dA1", "orgA", "pA1", "apA1"}, {"dA2", "orgA", "pA2", "apA2"}, {"dA0", "orgA", "pA0", "apA0"}, {"dB", "orgB", "pB", "apB"},
	} {
		for _, l := range []string{d.pending, d.approved} {
			res, err := base.lc.Ingest(lifecycle.IngestInput{Flow: engine.FlowUAC, DeviceID: id[d.dev], Observation: engine.Observation{
				SubjectUsername: `acme\sarah`, TargetExecutablePath: `C:\Users\sarah\Downloads\FirefoxSetup.exe`,
				TargetExecutableSigner: "Mozilla Corporation", ObservedAt: &observed}})
			if err != nil || res.Request == nil || res.Request.Status != store.StatusPending {
				t.Fatalf("ingest on %s: %+v %v", d.dev, res, err)
			}
			id[l] = res.Request.ID
		}
		if _, err := base.lc.Respond(lifecycle.RespondInput{OrgID: id[d.org], ID: id[d.approved], Decision: lifecycle.Approve,
			DurationMinutes: &hour, Actor: lifecycle.Actor{Kind: store.ActorUser, ID: "fixture", Name: "Fixture"}}); err != nil {
			t.Fatal(err)
		}
	}
	for l, v := range id {
		f.label[strings.ToLower(v)] = l
	}
	f.aIDs = []string{"orgA", "partnerP", "S1", "S2", "dA1", "dA2", "dA0", "gA", "sgA", "rA1", "rA2", "rA0",
		"pA1", "pA2", "pA0", "apA1", "apA2", "apA0", "kAmfa", "kAnomfa", "kA1", "kA2"}
	f.bIDs = []string{"orgB", "partnerQ", "SB", "dB", "gB", "sgB", "rB", "rB0", "pB", "apB", "kB"}
	f.s2IDs = []string{"S2", "dA2", "rA2", "pA2", "apA2", "kA2"}
	if n := len(f.aIDs) + len(f.bIDs); n != len(id) {
		t.Fatalf("the leak lists name %d of the fixture's %d ids", n, len(id))
	}

	tenant := func(org, partner, site, dev, group, sg, rule, pending, approved, key string) *mxTenant {
		return &mxTenant{org: id[org], partner: id[partner], site: id[site], device: id[dev], group: id[group], signerGroup: id[sg],
			rule: id[rule], pending: id[pending], approved: id[approved], key: id[key]}
	}
	g := func() string { return store.NewID(t0) }
	f.tenants = map[string]*mxTenant{
		mxA:     tenant("orgA", "partnerP", "S1", "dA1", "gA", "sgA", "rA1", "pA1", "apA1", "kA1"),
		mxAS2:   tenant("orgA", "partnerP", "S2", "dA2", "gA", "sgA", "rA2", "pA2", "apA2", "kA2"),
		mxB:     tenant("orgB", "partnerQ", "SB", "dB", "gB", "sgB", "rB", "pB", "apB", "kB"),
		mxGhost: {org: g(), partner: g(), site: g(), device: g(), group: g(), signerGroup: g(), rule: g(), pending: g(), approved: g(), key: g()},
	}

	mfa := []string{"mfa"}
	bearer := func(tok string) [2]string { return [2]string{"Authorization", "Bearer " + tok} }
	user := func(sub string, c Claims) [2]string {
		c.Subject = sub
		return bearer(token(t, c))
	}
	forged, err := MintToken([]byte("not-the-server-secret-not-the-server-secret"), Claims{Scope: ScopeOrganization, OrgID: id["orgA"],
		Permissions: allPerms, AMR: mfa, RegisteredClaims: jwt.RegisteredClaims{Subject: "mallory", ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour))}})
	if err != nil {
		t.Fatal(err)
	}
	f.creds = map[string][2]string{
		"orgA":         user("ann", Claims{Scope: ScopeOrganization, OrgID: id["orgA"], Permissions: allPerms, AMR: mfa, Name: "Ann"}),
		"partnerP":     user("pat", Claims{Scope: ScopePartner, PartnerID: id["partnerP"], Permissions: allPerms, AMR: mfa, Name: "Pat"}),
		"system":       user("root", Claims{Scope: ScopeSystem, Permissions: allPerms, AMR: mfa, Name: "Root"}),
		"orgB":         user("bob", Claims{Scope: ScopeOrganization, OrgID: id["orgB"], Permissions: allPerms, AMR: mfa, Name: "Bob"}),
		"siteS1":       user("sue", Claims{Scope: ScopeOrganization, OrgID: id["orgA"], Permissions: allPerms, AMR: mfa, SiteIDs: []string{id["S1"]}}),
		"noMFA":        user("nina", Claims{Scope: ScopeOrganization, OrgID: id["orgA"], Permissions: allPerms}),
		"readOnly":     user("rita", Claims{Scope: ScopeOrganization, OrgID: id["orgA"], Permissions: []string{PermRead}, AMR: mfa}),
		"readWrite":    user("will", Claims{Scope: ScopeOrganization, OrgID: id["orgA"], Permissions: []string{PermRead, PermWrite}, AMR: mfa}),
		"keyMFA":       {"X-API-Key", keySecret["kAmfa"]},
		"keyNoMFA":     bearer(keySecret["kAnomfa"]),
		"noToken":      {},
		"badSignature": bearer(forged),
		"expired": user("ed", Claims{Scope: ScopeOrganization, OrgID: id["orgA"], Permissions: allPerms, AMR: mfa,
			RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(t0.Add(-time.Hour))}}),
		"agentToken": bearer(base.token),
	}
	for _, c := range mxCallers {
		if _, ok := f.creds[c.name]; !ok {
			t.Fatalf("no credential for caller %s", c.name)
		}
	}
	mxAddPolicies(t, base.st, f)
	return f
}

// forbidden lists the labels of the rows the caller may not see: B's for
// A's callers (and S2's for the S1 caller), A's for B's, everything for a
// caller who is not authenticated; nothing for the system.
func (f *mxFixture) forbidden(c *mxCaller) []string {
	switch {
	case c.cred != credUser:
		return append(slices.Clone(f.aIDs), f.bIDs...)
	case c.scope == ScopeSystem:
		return nil
	case c.home == mxB:
		return f.aIDs
	case c.restricted:
		return append(slices.Clone(f.bIDs), f.s2IDs...)
	}
	return f.bIDs
}

type mxReply struct {
	status int
	header http.Header
	raw    string
	body   map[string]any // nil unless the answer is a JSON object
}

func (r mxReply) code() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// call makes the cell's request and returns the answer and what was sent
// (path and body).
func (f *mxFixture) call(t *testing.T, r *mxRoute, cl mxCell) (mxReply, string) {
	t.Helper()
	x := f.tenants[cl.target]
	path, body := r.req(x)
	if r.orgQ {
		org := ""
		switch {
		case cl.orgID != "":
			org = f.tenants[cl.orgID].org
		case cl.caller.scope == ScopePartner || cl.caller.scope == ScopeSystem:
			org = x.org
		}
		if org != "" {
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			path += sep + "orgId=" + org
		}
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(r.method, f.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if cred := f.creds[cl.caller.name]; cred[0] != "" {
		req.Header.Set(cred[0], cred[1])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	rep := mxReply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if resp.Header.Get("Content-Type") == "application/json" {
		json.Unmarshal(raw, &rep.body)
	}
	return rep, path + " " + body
}

// check asserts a cell's answer: status and code, the envelope of a
// refusal, the content type, no row the caller may not see (unless the
// request itself named it), and on a 2xx on the caller's own rows the ids
// the answer must hold.
func (f *mxFixture) check(t *testing.T, r *mxRoute, cl mxCell, got mxReply, sent string) {
	t.Helper()
	if got.status != cl.want.status || cl.want.code != "" && got.code() != cl.want.code {
		t.Errorf("%s: got %d %s, want %s: %.300s", cl, got.status, got.code(), cl.want, got.raw)
	}
	wantCT := "application/json"
	if r.path == "/metrics" && got.status == 200 {
		wantCT = "text/plain"
	}
	if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, wantCT) {
		t.Errorf("%s: Content-Type %q", cl, ct)
	}
	if got.status >= 300 {
		if got.body == nil || got.body["success"] != false || got.code() == "" {
			t.Errorf("%s: %d without the error envelope: %.300s", cl, got.status, got.raw)
		}
		if got.status == 401 && !strings.HasPrefix(got.header.Get("Www-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate", cl)
		}
	}
	low, sentLow := strings.ToLower(got.raw), strings.ToLower(sent)
	for _, l := range f.forbidden(cl.caller) {
		if id := strings.ToLower(f.id[l]); strings.Contains(low, id) && !strings.Contains(sentLow, id) {
			t.Errorf("%s: the answer holds %s (%s), which the caller may not see: %.300s", cl, l, id, got.raw)
		}
	}
	if r.shows != nil && got.status < 300 && cl.target == cl.caller.home && cl.orgID == "" {
		for _, id := range r.shows(f.tenants[cl.target]) {
			if !strings.Contains(low, strings.ToLower(id)) {
				t.Errorf("%s: the answer lacks %s (%s): %.300s", cl, f.label[strings.ToLower(id)], id, got.raw)
			}
		}
	}
}

// TestMatrix runs every registered route under every kind of caller. Reads
// share one fixture; a route that changes state gets a fresh fixture for
// each call that should succeed, and one for all its refused calls, so no
// call sees another's change.
func TestMatrix(t *testing.T) {
	shared := newMatrixFixture(t)
	table := map[string]*mxRoute{}
	routes := mxRoutes()
	for i := range routes {
		r := &routes[i]
		key := r.method + " " + r.path
		if table[key] != nil {
			t.Fatalf("two matrix cases for %s", key)
		}
		table[key] = r
	}
	seen := map[string]bool{}
	cells, calls := 0, 0
	for _, rt := range shared.server.Routes() {
		key := rt.Method + " " + rt.Path
		r := table[key]
		if r == nil {
			t.Errorf("route %s has no case in the caller × endpoint matrix: add one to mxRoutes", key)
			continue
		}
		seen[key] = true
		t.Run(key, func(t *testing.T) {
			var refused *mxFixture
			fixture := func(w mxWant) *mxFixture {
				switch {
				case !r.mutates():
					return shared
				case w.status < 300:
					return newMatrixFixture(t)
				case refused == nil:
					refused = newMatrixFixture(t)
				}
				return refused
			}
			for _, cl := range r.cells() {
				cells++
				fx := fixture(cl.want)
				got, sent := fx.call(t, r, cl)
				calls++
				fx.check(t, r, cl, got, sent)
				if !cl.ghost {
					continue
				}
				gc := cl.ghostly()
				fx = fixture(gc.want)
				ghost, sent := fx.call(t, r, gc)
				calls++
				fx.check(t, r, gc, ghost, sent)
				if ghost.status != got.status || ghost.code() != got.code() {
					t.Errorf("%s answers %d %s but %s answers %d %s: the answer tells whether the row exists",
						cl, got.status, got.code(), gc, ghost.status, ghost.code())
				}
			}
		})
	}
	for key := range table {
		if !seen[key] {
			t.Errorf("matrix case %s names no registered route", key)
		}
	}
	t.Logf("%d routes × %d kinds of caller; %d cells, %d calls", len(seen), len(mxCallers), cells, calls)
}

// TestMatrixScopeLists: a partner's lists hold its organisations' rows and
// never another partner's; the system's hold every organisation's; the
// S1-restricted caller's lists are narrowed to S1.
func TestMatrixScopeLists(t *testing.T) {
	f := newMatrixFixture(t)
	a := []string{"pA1", "pA2", "pA0", "apA1", "apA2", "apA0"}
	for _, c := range []struct {
		caller, path string
		has, hasNot  []string
	}{
		{"partnerP", "/api/v1/pam/elevation-requests", a, f.bIDs},
		{"system", "/api/v1/pam/elevation-requests", append([]string{"pB", "apB"}, a...), nil},
		{"partnerP", "/api/v1/pam/active", []string{"apA1", "apA2", "apA0"}, f.bIDs},
		{"system", "/api/v1/pam/active", []string{"apA1", "apA2", "apA0", "apB"}, nil},
		{"partnerP", "/api/v1/orgs", []string{"orgA"}, f.bIDs},
		{"system", "/api/v1/orgs", []string{"orgA", "orgB"}, nil},
		{"partnerP", "/api/v1/partners", []string{"partnerP"}, f.bIDs},
		{"system", "/api/v1/partners", []string{"partnerP", "partnerQ"}, nil},
		{"partnerP", "/api/v1/api-keys", []string{"kAmfa", "kAnomfa", "kA1", "kA2"}, f.bIDs},
		{"system", "/api/v1/api-keys", []string{"kAmfa", "kB"}, nil},
		// A partner reaching one organisation needs no orgId.
		{"partnerP", "/api/v1/pam/rules", []string{"rA1", "rA2", "rA0"}, f.bIDs},
		{"partnerP", "/api/v1/devices", []string{"dA1", "dA2", "dA0"}, f.bIDs},
		{"partnerP", "/api/v1/sites", []string{"S1", "S2"}, f.bIDs},
		{"system", "/api/v1/pam/rules?orgId=" + f.id["orgB"], []string{"rB", "rB0"}, f.aIDs},
		{"system", "/api/v1/devices?orgId=" + f.id["orgB"], []string{"dB"}, f.aIDs},
		// Narrowed to S1: rows at S2 and rows without a site are hidden.
		{"siteS1", "/api/v1/pam/elevation-requests", []string{"pA1", "apA1"}, []string{"pA2", "apA2", "pA0", "apA0"}},
		{"siteS1", "/api/v1/pam/active", []string{"apA1"}, []string{"apA2", "apA0"}},
		{"siteS1", "/api/v1/pam/rules", []string{"rA1"}, []string{"rA2", "rA0"}},
		{"siteS1", "/api/v1/devices", []string{"dA1"}, []string{"dA2", "dA0"}},
		{"siteS1", "/api/v1/sites", []string{"S1"}, []string{"S2"}},
		{"siteS1", "/api/v1/api-keys", []string{"kA1"}, []string{"kA2", "kAmfa", "kAnomfa"}},
	} {
		r := &mxRoute{method: "GET", path: c.path, perm: PermRead, ok: 200, req: mxStatic(c.path)}
		cl := mxCell{caller: mxCallerNamed(c.caller), target: mxA, want: mxWant{200, ""}}
		got, _ := f.call(t, r, cl)
		if got.status != 200 {
			t.Errorf("%s GET %s: %d %.300s", c.caller, c.path, got.status, got.raw)
			continue
		}
		for _, l := range c.has {
			if !strings.Contains(got.raw, f.id[l]) {
				t.Errorf("%s GET %s: %s is missing: %.300s", c.caller, c.path, l, got.raw)
			}
		}
		for _, l := range c.hasNot {
			if strings.Contains(got.raw, f.id[l]) {
				t.Errorf("%s GET %s: %s is listed: %.300s", c.caller, c.path, l, got.raw)
			}
		}
	}
	// The system reaches both organisations, so a per-organisation list
	// needs its orgId; a partner naming an organisation it does not reach
	// gets 404, as for one that does not exist.
	for _, c := range []struct {
		caller, path string
		status       int
	}{
		{"system", "/api/v1/pam/rules", 400},
		{"partnerP", "/api/v1/pam/rules?orgId=" + f.id["orgB"], 404},
		{"partnerP", "/api/v1/pam/rules?orgId=" + store.NewID(t0), 404},
		{"partnerP", "/api/v1/pam/elevation-requests?orgId=" + f.id["orgB"], 404},
	} {
		r := &mxRoute{method: "GET", path: c.path, perm: PermRead, req: mxStatic(c.path)}
		got, _ := f.call(t, r, mxCell{caller: mxCallerNamed(c.caller), target: mxA})
		if got.status != c.status || got.body["success"] != false {
			t.Errorf("%s GET %s: %d, want %d: %.300s", c.caller, c.path, got.status, c.status, got.raw)
		}
	}
}
