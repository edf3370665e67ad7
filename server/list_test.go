package server

import (
	"net/url"
	"strings"
	"testing"

	"github.com/elevate-pam/elevate/store"
)

// ids lists the ids of a list reply's rows, in order.
func rowIDs(t *testing.T, r reply, field string) []string {
	t.Helper()
	rows, ok := r.body[field].([]any)
	if !ok {
		t.Fatalf("no %s in %s", field, r.raw)
	}
	var out []string
	for _, row := range rows {
		out = append(out, row.(map[string]any)["id"].(string))
	}
	return out
}

func TestListODataQueries(t *testing.T) {
	e := newAdminEnv(t)
	tok := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms})
	list := func(q string) reply {
		return e.do(t, "GET", "/api/v1/pam/elevation-requests?"+q, tok, "", nil)
	}
	enc := func(k, v string) string { return url.Values{k: {v}}.Encode() }

	r := list(enc("$filter", "deviceHostname eq 'NOSITE' and status eq 'pending'"))
	if got := rowIDs(t, r, "requests"); len(got) != 1 || got[0] != e.noSite || r.body["pagination"].(map[string]any)["total"] != 1.0 {
		t.Fatalf("filter by host: %s", r.raw)
	}
	r = list(enc("$filter", "siteId eq null"))
	if got := rowIDs(t, r, "requests"); len(got) != 1 || got[0] != e.noSite {
		t.Fatalf("siteId eq null: %s", r.raw)
	}
	r = list(enc("$filter", "contains(targetExecutablePath, 'Firefox') and not (siteName eq 'HQ')"))
	if got := rowIDs(t, r, "requests"); len(got) != 1 || got[0] != e.noSite {
		t.Fatalf("contains/not: %s", r.raw)
	}
	// A literal is data, never filter syntax.
	r = list(enc("$filter", "status eq 'x'' or status ne ''y'"))
	if got := rowIDs(t, r, "requests"); len(got) != 0 {
		t.Fatalf("quoted literal matched rows: %s", r.raw)
	}
	// Another org's rows never appear, whatever the filter says.
	r = list(enc("$filter", "orgId eq "+e.otherOrg))
	if got := rowIDs(t, r, "requests"); len(got) != 0 || strings.Contains(r.raw, e.inOther) {
		t.Fatalf("foreign org: %s", r.raw)
	}
	// $orderby, $top and $skip.
	r = list(enc("$orderby", "deviceHostname asc") + "&" + enc("$top", "1"))
	if got := rowIDs(t, r, "requests"); len(got) != 1 || got[0] != e.noSite || r.body["pagination"].(map[string]any)["total"] != 2.0 {
		t.Fatalf("orderby/top: %s", r.raw)
	}
	r = list(enc("$orderby", "deviceHostname asc") + "&" + enc("$skip", "1"))
	if got := rowIDs(t, r, "requests"); len(got) != 1 || got[0] != e.atSite {
		t.Fatalf("orderby/skip: %s", r.raw)
	}
	r = list(enc("$top", "0"))
	if got := rowIDs(t, r, "requests"); len(got) != 0 || r.body["pagination"].(map[string]any)["total"] != 2.0 {
		t.Fatalf("$top=0 counts: %s", r.raw)
	}
	// Bad queries are 400s that point at the character.
	for q, pos := range map[string]float64{
		enc("$filter", "status eq 'pending' an"): 21,
		enc("$filter", "stauts eq 'pending'"):    1,
		enc("$filter", "riskTier eq 'high'"):     13,
	} {
		r := list(q)
		if r.status != 400 || errCode(r) != "INVALID_QUERY" {
			t.Fatalf("%s: %d %s", q, r.status, r.raw)
		}
		d := r.body["error"].(map[string]any)["details"].(map[string]any)
		if d["position"] != pos {
			t.Errorf("%s: position %v, want %v (%s)", q, d["position"], pos, r.raw)
		}
	}
	for _, q := range []string{enc("$top", "101"), enc("$top", "x"), enc("$skip", "-1"), enc("$orderby", "nope")} {
		if r := list(q); r.status != 400 {
			t.Errorf("%s: %d %s", q, r.status, r.raw)
		}
	}
}

func TestListAcrossOrgs(t *testing.T) {
	e := newAdminEnv(t)
	partner := store.NewID(t0)
	if err := e.st.Update(func(tx *store.Tx) error {
		if err := tx.PutPartner(&store.Partner{ID: partner, Name: "msp"}); err != nil {
			return err
		}
		return tx.PutOrg(&store.Org{ID: e.org, Name: "acme", PartnerID: partner, ActuatorEnabled: true})
	}); err != nil {
		t.Fatal(err)
	}
	p := token(t, Claims{Scope: ScopePartner, PartnerID: partner, Permissions: allPerms})
	r := e.do(t, "GET", "/api/v1/pam/elevation-requests", p, "", nil)
	if got := rowIDs(t, r, "requests"); len(got) != 2 || strings.Contains(r.raw, e.inOther) {
		t.Fatalf("partner sees only its orgs: %s", r.raw)
	}
	sys := token(t, Claims{Scope: ScopeSystem, Permissions: allPerms})
	r = e.do(t, "GET", "/api/v1/pam/elevation-requests?limit=1&page=2", sys, "", nil)
	if got := rowIDs(t, r, "requests"); len(got) != 1 || r.body["pagination"].(map[string]any)["total"] != 3.0 {
		t.Fatalf("system page 2: %s", r.raw)
	}
	r = e.do(t, "GET", "/api/v1/pam/elevation-requests?"+url.Values{"$filter": {"deviceHostname eq 'GX-1'"}}.Encode(), sys, "", nil)
	if got := rowIDs(t, r, "requests"); len(got) != 1 || got[0] != e.inOther {
		t.Fatalf("system filter across orgs: %s", r.raw)
	}
	r = e.do(t, "GET", "/api/v1/pam/active", p, "", nil)
	if r.status != 200 {
		t.Fatalf("active: %s", r.raw)
	}
}
