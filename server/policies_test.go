package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/store"
)

// The configuration-policy tests run on the inventory environment
// (newInvEnv): partner P owns org A (e.org: sites s1, s2, group g1,
// devices e.device without a site, d1 at s1, d2 at s2), partner Q owns
// org B (site sb, group gb, device db).

const polPath = "/configuration-policies"

// polCreate creates a policy and returns its JSON object.
func (e *invEnv) polCreate(t *testing.T, tok, query, body string) map[string]any {
	t.Helper()
	r := e.call(t, "POST", polPath+query, tok, body)
	if r.status != http.StatusCreated || r.body["success"] != true {
		t.Fatalf("create %s: %d %s", body, r.status, r.raw)
	}
	return invObj(r, "policy")
}

// polAssignments returns a policy object's assignments.
func polAssignments(p map[string]any) []map[string]any {
	var out []map[string]any
	as, _ := p["assignments"].([]any)
	for _, a := range as {
		m, _ := a.(map[string]any)
		out = append(out, m)
	}
	return out
}

// polTargets lists a policy object's assignment targets.
func polTargets(p map[string]any) []string {
	var out []string
	for _, a := range polAssignments(p) {
		out = append(out, a["targetId"].(string))
	}
	return out
}

// polDetails returns the targets of a validation error's details.
func polDetails(r reply) []string {
	m, _ := r.body["error"].(map[string]any)
	ds, _ := m["details"].([]any)
	var out []string
	for _, d := range ds {
		dm, _ := d.(map[string]any)
		s, _ := dm["target"].(string)
		out = append(out, s)
	}
	return out
}

func polErrMessage(r reply) string {
	m, _ := r.body["error"].(map[string]any)
	s, _ := m["message"].(string)
	return s
}

func storedPolicies(t *testing.T, st *store.Store) []policy.Policy {
	t.Helper()
	var ps []policy.Policy
	if err := st.View(func(sn *store.Snapshot) error {
		var err error
		ps, err = sn.Policies()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestPolicyCRUD(t *testing.T) {
	e := newInvEnv(t)
	p := e.polCreate(t, e.userA, "", `{"name":"  Kiosk lockdown ","description":"kiosks",
		"features":{"pam":{"uacInterceptionEnabled":true}},
		"assignments":[{"level":"site","targetId":"`+strings.ToUpper(e.s1)+`","priority":5},
			{"level":"device","targetId":"`+e.d1+`","condition":"device.hostname == \"HQ-1\""}]}`)
	id, _ := p["id"].(string)
	if _, err := store.ParseID(id); err != nil || p["orgId"] != e.org || p["partnerId"] != nil || p["name"] != "Kiosk lockdown" ||
		p["active"] != true || p["readOnly"] != false || p["createdAt"] != t0.Format(time.RFC3339Nano) || p["updatedAt"] != p["createdAt"] {
		t.Fatalf("created: %v", p)
	}
	as := polAssignments(p)
	if len(as) != 2 || as[0]["targetId"] != e.s1 || as[0]["priority"] != 5.0 || as[0]["condition"] != nil ||
		as[1]["level"] != "device" || as[1]["condition"] != `device.hostname == "HQ-1"` || as[1]["priority"] != 0.0 {
		t.Fatalf("assignments: %v", as)
	}
	for _, a := range as {
		if _, err := store.ParseID(a["id"].(string)); err != nil || a["createdAt"] != p["createdAt"] {
			t.Fatalf("assignment id/createdAt not set by the server: %v", a)
		}
	}
	keep, drop := as[0]["id"].(string), as[1]["id"].(string)

	if r := e.call(t, "GET", polPath+"/"+strings.ToUpper(id), e.userA, ""); r.status != 200 || invObj(r, "policy")["id"] != id {
		t.Fatalf("get: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", polPath, e.userA, ""); r.status != 200 || !invSameSet(invIDs(r, "policies"), id) {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}

	// PATCH: the kept assignment keeps its id and createdAt (its
	// priority may change), the one left out is gone, the new one is new.
	e.clock.Advance(time.Minute)
	r := e.call(t, "PATCH", polPath+"/"+id, e.userA, `{"description":"all kiosks","assignments":[
		{"id":"`+strings.ToUpper(keep)+`","level":"site","targetId":"`+e.s1+`","priority":7},
		{"level":"device_group","targetId":"`+e.g1+`"}]}`)
	if r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	p = invObj(r, "policy")
	as = polAssignments(p)
	later := t0.Add(time.Minute).Format(time.RFC3339Nano)
	if p["description"] != "all kiosks" || p["name"] != "Kiosk lockdown" || p["updatedAt"] != later || p["createdAt"] != t0.Format(time.RFC3339Nano) ||
		len(as) != 2 || as[0]["id"] != keep || as[0]["priority"] != 7.0 || as[0]["createdAt"] != t0.Format(time.RFC3339Nano) ||
		as[1]["id"] == drop || as[1]["createdAt"] != later || as[1]["level"] != "device_group" {
		t.Fatalf("patched: %s", r.raw)
	}
	// Features merge per feature; null clears the description and removes
	// a feature; an empty object still moves updatedAt.
	r = e.call(t, "PATCH", polPath+"/"+id, e.userA, `{"description":null,"features":{"software_policy":{"mode":"audit"}}}`)
	f := invObj(r, "policy")["features"].(map[string]any)
	if r.status != 200 || invObj(r, "policy")["description"] != nil || f["pam"] == nil || f["software_policy"] == nil {
		t.Fatalf("feature merge: %d %s", r.status, r.raw)
	}
	r = e.call(t, "PATCH", polPath+"/"+id, e.userA, `{"features":{"pam":null},"active":false}`)
	f = invObj(r, "policy")["features"].(map[string]any)
	if r.status != 200 || f["pam"] != nil || f["software_policy"] == nil || invObj(r, "policy")["active"] != false {
		t.Fatalf("feature removal: %d %s", r.status, r.raw)
	}
	e.clock.Advance(time.Minute)
	r = e.call(t, "PATCH", polPath+"/"+id, e.userA, `{}`)
	if r.status != 200 || invObj(r, "policy")["updatedAt"] != t0.Add(2*time.Minute).Format(time.RFC3339Nano) {
		t.Fatalf("empty patch: %d %s", r.status, r.raw)
	}
	r = e.call(t, "PATCH", polPath+"/"+id, e.userA, `{"assignments":null}`)
	if r.status != 200 || len(polAssignments(invObj(r, "policy"))) != 0 {
		t.Fatalf("assignments null: %d %s", r.status, r.raw)
	}
	// What is stored is what was answered.
	ps := storedPolicies(t, e.st)
	if len(ps) != 1 || ps[0].ID != id || ps[0].OrgID != e.org || ps[0].Active || ps[0].Description != nil {
		t.Fatalf("stored: %+v", ps)
	}

	if r := e.call(t, "DELETE", polPath+"/"+id, e.userA, ""); r.status != 200 || r.body["success"] != true {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if r := e.call(t, m, polPath+"/"+id, e.userA, ""); r.status != 404 || errCode(r) != "NOT_FOUND" {
			t.Fatalf("%s after delete: %d %s", m, r.status, r.raw)
		}
	}
	if r := e.call(t, "PATCH", polPath+"/"+id, e.userA, `{"name":"x"}`); r.status != 404 {
		t.Fatalf("patch after delete: %d %s", r.status, r.raw)
	}
	want := []string{"policy.created", "policy.updated", "policy.updated", "policy.updated", "policy.updated", "policy.updated", "policy.deleted"}
	if got := invAuditActions(t, e.st, e.org, id); !slices.Equal(got, want) {
		t.Fatalf("audit: %v", got)
	}
}

func TestPolicyValidation(t *testing.T) {
	e := newInvEnv(t)
	for name, c := range map[string]struct {
		body    string
		targets []string // the details' targets, in order; or the one target
	}{
		"whole policy": {`{"features":{"pam":{"uacInterceptionEnabled":"yes"},"software":{}},
			"assignments":[{"level":"org","targetId":"` + e.org + `"},{"level":"site","targetId":"` + e.s1 + `","condition":"device.os =="},
			{"level":"site","targetId":"` + e.s1 + `","priority":-1}]}`,
			[]string{"name", "features.pam.uacInterceptionEnabled", "features.software", "assignments[0].level", "assignments[1].condition",
				"assignments[2].priority", "assignments[2]"}},
		"target not a UUID":    {`{"name":"n","assignments":[{"level":"site","targetId":"HQ"}]}`, []string{"assignments[0].targetId"}},
		"unknown field":        {`{"name":"n","color":"red"}`, []string{"color"}},
		"unknown in an item":   {`{"name":"n","assignments":[{"level":"site","targetId":"` + e.s1 + `","weight":1}]}`, []string{"assignments[0].weight"}},
		"server fields":        {`{"name":"n","id":"` + store.NewID(t0) + `"}`, []string{"id"}},
		"assignment id":        {`{"name":"n","assignments":[{"id":"` + store.NewID(t0) + `","level":"site","targetId":"` + e.s1 + `"}]}`, []string{"assignments[0].id"}},
		"assignment createdAt": {`{"name":"n","assignments":[{"level":"site","targetId":"` + e.s1 + `","createdAt":"2026-01-01T00:00:00Z"}]}`, []string{"assignments[0].createdAt"}},
		"priority type":        {`{"name":"n","assignments":[{"level":"site","targetId":"` + e.s1 + `","priority":"high"}]}`, []string{"assignments[0].priority"}},
		"features type":        {`{"name":"n","features":[]}`, []string{"features"}},
		"active null":          {`{"name":"n","active":null}`, []string{"active"}},
		"orgId not the org's":  {`{"name":"n","orgId":"` + e.orgB + `"}`, []string{"orgId"}},
		"both owners":          {`{"name":"n","orgId":"` + e.org + `","partnerId":"` + e.pP + `"}`, []string{"orgId"}},
	} {
		r := e.call(t, "POST", polPath, e.userA, c.body)
		if r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != c.targets[0] {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
			continue
		}
		if len(c.targets) > 1 && !slices.Equal(polDetails(r), c.targets) {
			t.Errorf("%s: details %v, want %v", name, polDetails(r), c.targets)
		}
	}
	if ps := storedPolicies(t, e.st); len(ps) != 0 {
		t.Fatalf("refused creates stored %d policies", len(ps))
	}

	p := e.polCreate(t, e.userA, "", `{"name":"n","assignments":[{"level":"site","targetId":"`+e.s1+`"}]}`)
	id := p["id"].(string)
	for name, c := range map[string]struct{ body, target string }{
		"name null":              {`{"name":null}`, "name"},
		"name blank":             {`{"name":"  "}`, "name"},
		"unknown assignment id":  {`{"assignments":[{"id":"` + store.NewID(t0) + `","level":"site","targetId":"` + e.s1 + `"}]}`, "assignments[0].id"},
		"same assignment twice":  {`{"assignments":[{"id":"` + polAssignments(p)[0]["id"].(string) + `","level":"site","targetId":"` + e.s1 + `"},{"id":"` + polAssignments(p)[0]["id"].(string) + `","level":"site","targetId":"` + e.s2 + `"}]}`, "assignments[1].id"},
		"owner change":           {`{"orgId":"` + e.orgB + `"}`, "orgId"},
		"owner cleared":          {`{"orgId":null}`, "orgId"},
		"partner-wide by PATCH":  {`{"partnerId":"` + e.pP + `"}`, "partnerId"},
		"createdAt":              {`{"createdAt":"2026-01-01T00:00:00Z"}`, "createdAt"},
		"bad condition":          {`{"assignments":[{"level":"site","targetId":"` + e.s1 + `","condition":"1 +"}]}`, "assignments[0].condition"},
		"duplicate target":       {`{"assignments":[{"level":"site","targetId":"` + e.s1 + `"},{"level":"site","targetId":"` + strings.ToUpper(e.s1) + `"}]}`, "assignments[1]"},
		"pam settings not a map": {`{"features":{"pam":true}}`, "features.pam"},
	} {
		r := e.call(t, "PATCH", polPath+"/"+id, e.userA, c.body)
		if r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != c.target {
			t.Errorf("PATCH %s: %d %s", name, r.status, r.raw)
		}
	}
	// Repeating the owner is allowed.
	if r := e.call(t, "PATCH", polPath+"/"+id, e.userA, `{"orgId":"`+strings.ToUpper(e.org)+`","partnerId":null}`); r.status != 200 {
		t.Fatalf("owner repeated: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "PATCH", polPath+"/"+id, e.userA, `[1]`); r.status != 400 {
		t.Fatalf("array body: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", polPath+"/not-a-uuid", e.userA, ""); r.status != 400 || errTarget(r) != "id" {
		t.Fatalf("bad id: %d %s", r.status, r.raw)
	}
}

// TestPolicyForeignTargets: a target of another tenant is refused exactly
// like one that does not exist, and nothing is stored.
func TestPolicyForeignTargets(t *testing.T) {
	e := newInvEnv(t)
	ghost := store.NewID(t0)
	refusal := func(level, target string) reply {
		t.Helper()
		r := e.call(t, "POST", polPath, e.userA, `{"name":"n","assignments":[{"level":"site","targetId":"`+e.s1+`"},
			{"level":"`+level+`","targetId":"`+target+`"}]}`)
		if r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != "assignments[1].targetId" {
			t.Errorf("%s %s: %d %s", level, target, r.status, r.raw)
		}
		return r
	}
	for _, c := range []struct{ level, foreign string }{
		{"site", e.sb}, {"device_group", e.gb}, {"device", e.db}, {"organization", e.orgB}, {"partner", e.pQ},
	} {
		theirs, nobodys := refusal(c.level, c.foreign), refusal(c.level, ghost)
		if polErrMessage(theirs) != polErrMessage(nobodys) || strings.Contains(theirs.raw, "globex") {
			t.Errorf("%s: another tenant's target answers %q, a missing one %q", c.level, polErrMessage(theirs), polErrMessage(nobodys))
		}
	}
	// Every bad target is listed.
	r := e.call(t, "POST", polPath, e.userA, `{"name":"n","assignments":[{"level":"site","targetId":"`+e.sb+`"},
		{"level":"organization","targetId":"`+e.org+`"},{"level":"device","targetId":"`+e.db+`"}]}`)
	if r.status != 400 || !slices.Equal(polDetails(r), []string{"assignments[0].targetId", "assignments[2].targetId"}) {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if ps := storedPolicies(t, e.st); len(ps) != 0 {
		t.Fatalf("stored %d policies", len(ps))
	}
	// Every level with the organisation's own objects is accepted.
	p := e.polCreate(t, e.userA, "", `{"name":"own","assignments":[{"level":"partner","targetId":"`+e.pP+`"},
		{"level":"organization","targetId":"`+e.org+`"},{"level":"site","targetId":"`+e.s2+`"},
		{"level":"device_group","targetId":"`+e.g1+`"},{"level":"device","targetId":"`+e.d2+`"}]}`)
	// A PATCH is checked the same way.
	r = e.call(t, "PATCH", polPath+"/"+p["id"].(string), e.userA, `{"assignments":[{"level":"device","targetId":"`+e.db+`"}]}`)
	if r.status != 400 || errTarget(r) != "assignments[0].targetId" {
		t.Fatalf("patch to a foreign device: %d %s", r.status, r.raw)
	}
	// A partner caller acting on org A may not reach into org B either.
	r = e.call(t, "POST", polPath+"?orgId="+e.org, e.partnerP, `{"name":"n","assignments":[{"level":"site","targetId":"`+e.sb+`"}]}`)
	if r.status != 400 || errTarget(r) != "assignments[0].targetId" {
		t.Fatalf("partner: %d %s", r.status, r.raw)
	}
}

// TestPolicyTenancy: another organisation's policy is not found, and
// answers exactly as a policy that does not exist.
func TestPolicyTenancy(t *testing.T) {
	e := newInvEnv(t)
	mine := e.polCreate(t, e.userA, "", `{"name":"acme"}`)["id"].(string)
	e.clock.Advance(time.Second) // lists are oldest first
	theirs := e.polCreate(t, e.userB, "", `{"name":"globex","assignments":[{"level":"site","targetId":"`+e.sb+`"}]}`)["id"].(string)
	ghost := store.NewID(t0)
	for _, tok := range []string{e.userA, e.partnerP} {
		for _, c := range []struct{ method, body string }{{"GET", ""}, {"PATCH", `{"name":"mine now"}`}, {"DELETE", ""}} {
			a := e.call(t, c.method, polPath+"/"+theirs, tok, c.body)
			b := e.call(t, c.method, polPath+"/"+ghost, tok, c.body)
			if a.status != 404 || errCode(a) != "NOT_FOUND" || a.raw != b.raw || strings.Contains(a.raw, "globex") {
				t.Errorf("%s on another tenant's policy: %d %s (a missing one: %d %s)", c.method, a.status, a.raw, b.status, b.raw)
			}
		}
		r := e.call(t, "GET", polPath, tok, "")
		if ids := invIDs(r, "policies"); r.status != 200 || !invSameSet(ids, mine) {
			t.Errorf("list: %d %s", r.status, r.raw)
		}
	}
	if r := e.call(t, "GET", polPath+"?orgId="+e.orgB, e.userA, ""); r.status != 400 {
		t.Errorf("orgId of another organisation: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", polPath+"?orgId="+e.orgB, e.partnerP, ""); r.status != 404 {
		t.Errorf("partner naming another partner's organisation: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", polPath+"?orgId="+e.orgB, e.partnerP, `{"name":"x"}`); r.status != 404 {
		t.Errorf("partner creating in another partner's organisation: %d %s", r.status, r.raw)
	}
	// Nothing of B changed; the system reads and changes both.
	if r := e.call(t, "GET", polPath+"/"+theirs, e.userB, ""); r.status != 200 || invObj(r, "policy")["name"] != "globex" {
		t.Fatalf("B's policy: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", polPath, e.sys, ""); r.status != 200 || !invSameSet(invIDs(r, "policies"), mine, theirs) {
		t.Fatalf("system list: %d %s", r.status, r.raw)
	}
	r := e.call(t, "GET", polPath+"?limit=1&page=2", e.sys, "")
	if pg, _ := r.body["pagination"].(map[string]any); r.status != 200 || !slices.Equal(invIDs(r, "policies"), []string{theirs}) || pg["total"] != 2.0 {
		t.Fatalf("system list, page 2 of 1: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", polPath+"?orgId="+e.orgB, e.sys, ""); r.status != 200 || !invSameSet(invIDs(r, "policies"), theirs) {
		t.Fatalf("system list of B: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "PATCH", polPath+"/"+theirs, e.sys, `{"name":"renamed"}`); r.status != 200 {
		t.Fatalf("system patch: %d %s", r.status, r.raw)
	}
	// A partner caller manages its organisations' policies.
	if r := e.call(t, "PATCH", polPath+"/"+mine, e.partnerP, `{"name":"by P"}`); r.status != 200 || invObj(r, "policy")["readOnly"] != false {
		t.Fatalf("partner patch: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", polPath+"/"+mine, e.partnerP, ""); r.status != 200 {
		t.Fatalf("partner delete: %d %s", r.status, r.raw)
	}
}

func TestPolicyPartnerWide(t *testing.T) {
	e := newInvEnv(t)
	// A second organisation of P, with a site of its own.
	orgA2, siteA2 := store.NewID(t0), store.NewID(t0)
	if err := e.st.Update(func(tx *store.Tx) error {
		if err := tx.PutOrg(&store.Org{ID: orgA2, PartnerID: e.pP, Name: "initech"}); err != nil {
			return err
		}
		return tx.PutSite(&store.Site{ID: siteA2, OrgID: orgA2, Name: "IT"})
	}); err != nil {
		t.Fatal(err)
	}
	partnerQ := token(t, Claims{Scope: ScopePartner, PartnerID: e.pQ, Permissions: allPerms, AMR: []string{"mfa"}})
	body := `{"name":"P baseline","partnerId":"` + e.pP + `","features":{"pam":{"uacInterceptionEnabled":true}},
		"assignments":[{"level":"partner","targetId":"` + e.pP + `"},{"level":"organization","targetId":"` + e.org + `"},
		{"level":"site","targetId":"` + siteA2 + `"},{"level":"device","targetId":"` + e.d1 + `"}]}`
	p := e.polCreate(t, e.partnerP, "", body)
	id := p["id"].(string)
	if p["orgId"] != nil || p["partnerId"] != e.pP || len(polAssignments(p)) != 4 || p["readOnly"] != false {
		t.Fatalf("created: %v", p)
	}
	// Org A reads it, read-only, without the assignment to the other
	// organisation's site.
	r := e.call(t, "GET", polPath+"/"+id, e.userA, "")
	got := invObj(r, "policy")
	if r.status != 200 || got["readOnly"] != true || !invSameSet(polTargets(got), e.pP, e.org, e.d1) || strings.Contains(r.raw, siteA2) || strings.Contains(r.raw, orgA2) {
		t.Fatalf("org A reads: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", polPath, e.userA, ""); !invSameSet(invIDs(r, "policies"), id) || strings.Contains(r.raw, siteA2) {
		t.Fatalf("org A lists: %s", r.raw)
	}
	// … but does not change it.
	for _, c := range []struct{ method, body string }{{"PATCH", `{"name":"mine"}`}, {"DELETE", ""}} {
		if r := e.call(t, c.method, polPath+"/"+id, e.userA, c.body); r.status != 403 || errCode(r) != "FORBIDDEN" {
			t.Errorf("org A %s: %d %s", c.method, r.status, r.raw)
		}
	}
	if r := e.call(t, "POST", polPath, e.userA, `{"name":"x","partnerId":"`+e.pP+`"}`); r.status != 403 || errCode(r) != "FORBIDDEN" {
		t.Errorf("org A creates a partner-wide policy: %d %s", r.status, r.raw)
	}
	// Other tenants do not see it at all.
	for name, tok := range map[string]string{"org B": e.userB, "partner Q": partnerQ} {
		if r := e.call(t, "GET", polPath+"/"+id, tok, ""); r.status != 404 {
			t.Errorf("%s reads it: %d %s", name, r.status, r.raw)
		}
		if r := e.call(t, "PATCH", polPath+"/"+id, tok, `{"name":"x"}`); r.status != 404 {
			t.Errorf("%s patches it: %d %s", name, r.status, r.raw)
		}
		if r := e.call(t, "GET", polPath, tok, ""); strings.Contains(r.raw, id) {
			t.Errorf("%s lists it: %s", name, r.raw)
		}
	}
	// Partner P sees every assignment and changes it.
	r = e.call(t, "PATCH", polPath+"/"+id, e.partnerP, `{"features":{"pam":{"uacInterceptionEnabled":false}}}`)
	if r.status != 200 || len(polAssignments(invObj(r, "policy"))) != 4 {
		t.Fatalf("partner patch: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", polPath, e.partnerP, ""); !invSameSet(invIDs(r, "policies"), id) {
		t.Fatalf("partner list: %s", r.raw)
	}
	// Targets of a partner-wide policy are the partner's: not another
	// partner's, not another partner's organisations' objects.
	for _, c := range []struct{ level, target string }{{"partner", e.pQ}, {"organization", e.orgB}, {"site", e.sb}, {"device", e.db}} {
		r := e.call(t, "POST", polPath, e.partnerP, `{"name":"x","partnerId":"`+e.pP+`","assignments":[{"level":"`+c.level+`","targetId":"`+c.target+`"}]}`)
		if r.status != 400 || errTarget(r) != "assignments[0].targetId" {
			t.Errorf("partner-wide to %s of Q: %d %s", c.level, r.status, r.raw)
		}
	}
	// Another partner's id reads as no partner; the system may name any
	// that exists.
	if r := e.call(t, "POST", polPath, e.partnerP, `{"name":"x","partnerId":"`+e.pQ+`"}`); r.status != 400 || errTarget(r) != "partnerId" {
		t.Errorf("partner P for Q: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", polPath, e.sys, `{"name":"x","partnerId":"`+store.NewID(t0)+`"}`); r.status != 400 || errTarget(r) != "partnerId" {
		t.Errorf("system for no partner: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "POST", polPath+"?orgId="+e.org, e.sys, `{"name":"x","partnerId":"`+e.pQ+`"}`); r.status != 400 || errTarget(r) != "orgId" {
		t.Errorf("system with orgId and partnerId: %d %s", r.status, r.raw)
	}
	q := e.polCreate(t, e.sys, "", `{"name":"Q baseline","partnerId":"`+e.pQ+`","assignments":[{"level":"organization","targetId":"`+e.orgB+`"}]}`)
	if r := e.call(t, "GET", polPath+"/"+q["id"].(string), e.userB, ""); r.status != 200 || invObj(r, "policy")["readOnly"] != true {
		t.Fatalf("org B reads Q's policy: %d %s", r.status, r.raw)
	}
	// The change is in the audit chain of every organisation of P, in
	// summary (org A's chain never names initech's site).
	for _, org := range []string{e.org, orgA2} {
		if got := invAuditActions(t, e.st, org, id); !slices.Equal(got, []string{"policy.created", "policy.updated"}) {
			t.Errorf("audit of %s: %v", org, got)
		}
	}
	if err := e.st.AuditLog(e.org, 0, func(r *store.AuditRecord) bool {
		if strings.Contains(string(r.Details), siteA2) {
			t.Errorf("org A's audit names another organisation's site: %s", r.Details)
		}
		if r.Subject == id && strings.Contains(string(r.Details), `"assignments"`) {
			t.Errorf("org A's audit counts assignments that may be other organisations': %s", r.Details)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if got := invAuditActions(t, e.st, e.orgB, id); len(got) != 0 {
		t.Errorf("org B's audit: %v", got)
	}
	// Org A2 moves to partner Q: the assignment to its site no longer
	// checks out, but an edit that leaves it as it was is not refused for
	// it (and devices of A2 no longer reach P's policy anyway).
	if err := e.st.Update(func(tx *store.Tx) error {
		return tx.PutOrg(&store.Org{ID: orgA2, PartnerID: e.pQ, Name: "A2"})
	}); err != nil {
		t.Fatal(err)
	}
	if r := e.call(t, "PATCH", polPath+"/"+id, e.partnerP, `{"name":"P baseline, renamed"}`); r.status != 200 {
		t.Fatalf("rename after the move: %d %s", r.status, r.raw)
	}
	// A new assignment there is still refused.
	if r := e.call(t, "PATCH", polPath+"/"+id, e.partnerP, `{"assignments":[{"level":"organization","targetId":"`+orgA2+`"}]}`); r.status != 400 {
		t.Fatalf("a new assignment to a moved organisation: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", polPath+"/"+id, e.partnerP, ""); r.status != 200 {
		t.Fatalf("partner delete: %d %s", r.status, r.raw)
	}
}

// TestPolicySiteRestricted: a site-restricted caller reads policies
// (without assignments outside its sites) and writes none.
func TestPolicySiteRestricted(t *testing.T) {
	e := newInvEnv(t)
	p := e.polCreate(t, e.userA, "", `{"name":"n","assignments":[{"level":"organization","targetId":"`+e.org+`"},
		{"level":"site","targetId":"`+e.s1+`"},{"level":"site","targetId":"`+e.s2+`"},{"level":"device","targetId":"`+e.d1+`"},
		{"level":"device","targetId":"`+e.d2+`"},{"level":"device","targetId":"`+e.device+`"},{"level":"device_group","targetId":"`+e.g1+`"}]}`)
	id := p["id"].(string)
	r := e.call(t, "GET", polPath+"/"+id, e.siteUser, "")
	got := invObj(r, "policy")
	if r.status != 200 || got["readOnly"] != true || !invSameSet(polTargets(got), e.org, e.s1, e.d1, e.g1) {
		t.Fatalf("site user reads: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", polPath, e.siteUser, ""); r.status != 200 || strings.Contains(r.raw, e.s2) || strings.Contains(r.raw, e.d2) {
		t.Fatalf("site user lists: %d %s", r.status, r.raw)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", polPath, `{"name":"mine","assignments":[{"level":"site","targetId":"` + e.s1 + `"}]}`},
		{"PATCH", polPath + "/" + id, `{"name":"mine"}`},
		{"DELETE", polPath + "/" + id, ""},
	} {
		if r := e.call(t, c.method, c.path, e.siteUser, c.body); r.status != 403 || errCode(r) != "SITE_DENIED" {
			t.Errorf("site user %s: %d %s", c.method, r.status, r.raw)
		}
	}
	// Gates before that: permission and MFA.
	if r := e.call(t, "POST", polPath, e.readOnly, `{"name":"x"}`); r.status != 403 || errCode(r) != "FORBIDDEN" {
		t.Errorf("read-only caller: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", polPath+"/"+id, e.noMFA, ""); r.status != 403 || errCode(r) != "MFA_REQUIRED" {
		t.Errorf("no MFA: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", polPath, e.nobod, ""); r.status != 403 {
		t.Errorf("no permission: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "GET", polPath, "", ""); r.status != 401 {
		t.Errorf("no token: %d %s", r.status, r.raw)
	}
}

// resolutionOf returns the resolution of feature in an effective-policy
// answer.
func resolutionOf(t *testing.T, r reply, feature string) map[string]any {
	t.Helper()
	rs, _ := r.body["resolutions"].([]any)
	for _, x := range rs {
		m, _ := x.(map[string]any)
		if m["feature"] == feature {
			return m
		}
	}
	t.Fatalf("no %s resolution: %s", feature, r.raw)
	return nil
}

// skipped lists "policy name/reason" of a resolution's skipped entries.
func skippedOf(res map[string]any) []string {
	var out []string
	ss, _ := res["skipped"].([]any)
	for _, s := range ss {
		m, _ := s.(map[string]any)
		out = append(out, fmt.Sprintf("%s/%s/%s", m["policyName"], m["level"], m["reason"]))
	}
	return out
}

func TestEffectivePolicy(t *testing.T) {
	e := newInvEnv(t)
	// d1 (at s1) joins g1.
	if r := e.call(t, "PATCH", "/devices/"+e.d1, e.userA, `{"groupIds":["`+e.g1+`"]}`); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	create := func(tok, body string) string {
		t.Helper()
		return e.polCreate(t, tok, "", body)["id"].(string)
	}
	create(e.partnerP, `{"name":"partner","partnerId":"`+e.pP+`","features":{"pam":{"uacInterceptionEnabled":true}},
		"assignments":[{"level":"partner","targetId":"`+e.pP+`"}]}`)
	org := create(e.userA, `{"name":"org","features":{"pam":{"uacInterceptionEnabled":true}},
		"assignments":[{"level":"organization","targetId":"`+e.org+`"}]}`)
	site := create(e.userA, `{"name":"site","features":{"pam":{"uacInterceptionEnabled":false}},
		"assignments":[{"level":"site","targetId":"`+e.s1+`","priority":10}]}`)
	create(e.userA, `{"name":"site-mac","features":{"pam":{"uacInterceptionEnabled":true}},
		"assignments":[{"level":"site","targetId":"`+e.s1+`","priority":5,"condition":"device.hostname == \"MAC-1\""}]}`)
	group := create(e.userA, `{"name":"group","features":{"software_policy":{"mode":"blocklist","executable":[{"name":"x","signer":"Evil Inc"}]}},
		"assignments":[{"level":"device_group","targetId":"`+e.g1+`"}]}`)
	create(e.userA, `{"name":"device-off","active":false,"features":{"pam":{"uacInterceptionEnabled":true}},
		"assignments":[{"level":"device","targetId":"`+e.d1+`"}]}`)
	path := "/devices/" + e.d1 + "/effective-policy"

	r := e.call(t, "GET", path+"?explain=true", e.userA, "")
	if r.status != 200 || r.body["deviceId"] != e.d1 || r.body["orgId"] != e.org || len(r.body["resolutions"].([]any)) != 2 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	pam := resolutionOf(t, r, "pam")
	w, _ := pam["winner"].(map[string]any)
	eff, _ := pam["effective"].(map[string]any)
	if pam["source"] != "policy" || w["policyId"] != site || w["level"] != "site" || w["priority"] != 10.0 ||
		eff["uacInterceptionEnabled"] != false || eff["source"] != "policy" || pam["settings"].(map[string]any)["uacInterceptionEnabled"] != false {
		t.Fatalf("pam: %v", pam)
	}
	if got, want := skippedOf(pam), []string{
		"device-off/device/" + policy.ReasonInactive,
		"group/device_group/" + policy.ReasonFeatureNotSet,
		"site-mac/site/" + policy.ReasonConditionFalse,
	}; !slices.Equal(got, want) {
		t.Fatalf("pam skipped %v, want %v", got, want)
	}
	sw := resolutionOf(t, r, "software_policy")
	w, _ = sw["winner"].(map[string]any)
	if sw["source"] != "policy" || w["policyId"] != group || sw["effective"].(map[string]any)["mode"] != "blocklist" ||
		!slices.Equal(skippedOf(sw), []string{"device-off/device/" + policy.ReasonInactive}) {
		t.Fatalf("software_policy: %v", sw)
	}

	// One feature, without explain: no skipped list.
	r = e.call(t, "GET", path+"?feature=pam", e.userA, "")
	if rs := r.body["resolutions"].([]any); r.status != 200 || len(rs) != 1 || rs[0].(map[string]any)["skipped"] != nil {
		t.Fatalf("pam only: %d %s", r.status, r.raw)
	}
	// d2 (at s2, no group): the organisation's policy; nothing skipped.
	r = e.call(t, "GET", "/devices/"+e.d2+"/effective-policy?feature=pam&explain=1", e.userA, "")
	pam = resolutionOf(t, r, "pam")
	if w, _ := pam["winner"].(map[string]any); w["policyId"] != org || len(pam["skipped"].([]any)) != 0 ||
		pam["effective"].(map[string]any)["uacInterceptionEnabled"] != true {
		t.Fatalf("d2: %s", r.raw)
	}
	// d2's software policy: none applies.
	r = e.call(t, "GET", "/devices/"+e.d2+"/effective-policy?feature=software_policy", e.userA, "")
	sw = resolutionOf(t, r, "software_policy")
	if sw["source"] != "default" || sw["winner"] != nil || sw["settings"] != nil || sw["effective"] != nil {
		t.Fatalf("d2 software: %s", r.raw)
	}
	// Once the site's policy is turned off, the condition-less farther
	// levels decide again; closest wins whatever the priorities.
	if r := e.call(t, "PATCH", polPath+"/"+site, e.userA, `{"active":false}`); r.status != 200 {
		t.Fatal(r.raw)
	}
	r = e.call(t, "GET", path+"?feature=pam&explain=true", e.userA, "")
	pam = resolutionOf(t, r, "pam")
	if w, _ := pam["winner"].(map[string]any); w["policyId"] != org || len(skippedOf(pam)) != 4 {
		t.Fatalf("after deactivation: %s", r.raw)
	}

	// Bad parameters, and the device checks of GET /devices/:id.
	for q, target := range map[string]string{"?feature=software": "feature", "?feature=remote_access": "feature", "?explain=yes": "explain"} {
		if r := e.call(t, "GET", path+q, e.userA, ""); r.status != 400 || errTarget(r) != target {
			t.Errorf("%s: %d %s", q, r.status, r.raw)
		}
	}
	for name, c := range map[string]struct {
		path, tok string
		status    int
		code      string
	}{
		"another org's caller": {path, e.userB, 404, "NOT_FOUND"},
		"another org's device": {"/devices/" + e.db + "/effective-policy", e.userA, 404, "NOT_FOUND"},
		"no such device":       {"/devices/" + store.NewID(t0) + "/effective-policy", e.userA, 404, "NOT_FOUND"},
		"another partner":      {path, token(t, Claims{Scope: ScopePartner, PartnerID: e.pQ, Permissions: allPerms}), 404, "NOT_FOUND"},
		"other site":           {"/devices/" + e.d2 + "/effective-policy", e.siteUser, 403, "SITE_DENIED"},
		"own site":             {path, e.siteUser, 200, ""},
		"partner":              {path, e.partnerP, 200, ""},
		"system":               {path, e.sys, 200, ""},
		"read only":            {path, e.readOnly, 200, ""},
		"no permission":        {path, e.nobod, 403, "FORBIDDEN"},
	} {
		r := e.call(t, "GET", c.path, c.tok, "")
		if r.status != c.status || c.code != "" && errCode(r) != c.code {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
}

func TestAgentPamSettings(t *testing.T) {
	e := newInvEnv(t)
	settings := func(tok string) reply {
		t.Helper()
		return e.do(t, "GET", "/api/v1/agents/"+e.d1+"/pam-settings", tok, "", nil)
	}
	check := func(step string, on bool, source, policyID string) {
		t.Helper()
		r := settings("tok-d1")
		if r.status != 200 || r.body["success"] != true || r.body["uacInterceptionEnabled"] != on || r.body["source"] != source {
			t.Fatalf("%s: %d %s", step, r.status, r.raw)
		}
		if got, _ := r.body["policyId"].(string); got != policyID {
			t.Fatalf("%s: policyId %q, want %q", step, got, policyID)
		}
	}
	check("no policy, no org setting", false, "default", "")
	if r := e.call(t, "PUT", "/pam/config", e.userA, `{"uacInterceptionEnabled":true}`); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	check("org fallback", true, "org_fallback", "")
	id := e.polCreate(t, e.userA, "", `{"name":"no UAC on HQ-1","features":{"pam":{"uacInterceptionEnabled":false}},
		"assignments":[{"level":"device","targetId":"`+e.d1+`"}]}`)["id"].(string)
	check("device policy", false, "policy", id)
	if r := e.call(t, "PATCH", polPath+"/"+id, e.userA, `{"features":{"pam":{"uacInterceptionEnabled":true}}}`); r.status != 200 {
		t.Fatal(r.raw)
	}
	check("device policy turned on", true, "policy", id)
	// A policy without the pam feature does not shadow the organisation.
	if r := e.call(t, "PATCH", polPath+"/"+id, e.userA, `{"features":{"pam":null,"software_policy":{"mode":"audit"}}}`); r.status != 200 {
		t.Fatal(r.raw)
	}
	check("policy without pam", true, "org_fallback", "")
	if r := e.call(t, "PATCH", polPath+"/"+id, e.userA, `{"features":{"pam":{}}}`); r.status != 200 {
		t.Fatal(r.raw)
	}
	check("pam without the flag", false, "policy", id)
	if r := e.call(t, "DELETE", polPath+"/"+id, e.userA, ""); r.status != 200 {
		t.Fatal(r.raw)
	}
	check("deleted", true, "org_fallback", "")
	// An assignment whose condition cannot be evaluated (the device has no
	// tags): source error, capture off, not the organisation's setting.
	undecided := e.polCreate(t, e.userA, "", `{"name":"tagged","features":{"pam":{"uacInterceptionEnabled":true}},
		"assignments":[{"level":"device","targetId":"`+e.d1+`","condition":"'kiosk' in device.tags"}]}`)["id"].(string)
	check("undecidable condition", false, "error", undecided)
	r := e.do(t, "GET", "/api/v1/devices/"+e.d1+"/effective-policy?feature=pam", e.userA, "", nil)
	if r.status != 200 || !strings.Contains(r.raw, `"source":"error"`) || !strings.Contains(r.raw, "tags") {
		t.Fatalf("effective policy: %d %s", r.status, r.raw)
	}
	if r := e.call(t, "DELETE", polPath+"/"+undecided, e.userA, ""); r.status != 200 {
		t.Fatal(r.raw)
	}
	if r := e.call(t, "PUT", "/pam/config", e.userA, `{"uacInterceptionEnabled":null}`); r.status != 200 {
		t.Fatal(r.raw)
	}
	check("org setting cleared", false, "default", "")

	// Only d1's own agent token reads d1's settings.
	for name, tok := range map[string]string{"another device's token": "tok-d2", "another org's device": "tok-db", "unknown": "nope",
		"none": "", "a user": e.userA} {
		if r := settings(tok); r.status != 401 || errCode(r) != "UNAUTHORIZED" || !strings.HasPrefix(r.header.Get("Www-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if err := e.st.Update(func(tx *store.Tx) error {
		d, err := tx.Device(e.d1)
		if err != nil {
			return err
		}
		d.Status = store.DeviceQuarantined
		return tx.PutDevice(d)
	}); err != nil {
		t.Fatal(err)
	}
	if r := settings("tok-d1"); r.status != 403 || errCode(r) != "DEVICE_QUARANTINED" {
		t.Errorf("quarantined: %d %s", r.status, r.raw)
	}
}

func TestPolicySurfaceOff(t *testing.T) {
	e := newEnv(t, Config{JWTSecret: secret, Surfaces: map[string]bool{SurfacePAM: false, SurfaceAgent: false}})
	tok := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}})
	for _, p := range []string{"/api/v1/configuration-policies", "/api/v1/devices/" + e.device + "/effective-policy"} {
		if r := e.do(t, "GET", p, tok, "", nil); r.status != 404 {
			t.Errorf("%s: %d", p, r.status)
		}
	}
	if r := e.do(t, "GET", "/api/v1/agents/"+e.device+"/pam-settings", e.token, "", nil); r.status != 404 {
		t.Errorf("pam-settings: %d", r.status)
	}
}

// The matrix's configuration policies (newMatrixFixture calls
// mxAddPolicies):
//
//	polA  org A: software_policy; assigned to org A and site S1
//	polA2 org A: pam on; assigned to site S2 and device dA2
//	polP  partner-wide for P, inactive: pam on; assigned to P
//	polB  org B: pam off; assigned to org B, site SB and device dB
//	polQ  partner-wide for Q: software_policy; assigned to Q
//
// No policy gives dA1 the pam feature, so the agent's pam-settings
// answer names no fixture id (the matrix counts every id as unseen by an
// agent); TestAgentPamSettings covers an agent told its policy. The S1
// caller reads polA2 without its S2 assignments.

// mxPolicies maps a fixture's tenants to their policy.
var mxPolicies sync.Map // *mxTenant → policy id

// mxPolicyOf is the tenant's policy; for the ghost tenant, one of no one.
func mxPolicyOf(x *mxTenant) string {
	if id, ok := mxPolicies.Load(x); ok {
		return id.(string)
	}
	return store.NewID(t0)
}

func mxAddPolicies(t *testing.T, st *store.Store, f *mxFixture) {
	t.Helper()
	id := f.id
	for _, l := range []string{"polA", "polA2", "polP", "polB", "polQ"} {
		id[l] = store.NewID(t0)
		f.label[id[l]] = l
	}
	f.aIDs = append(f.aIDs, "polA", "polA2", "polP")
	f.bIDs = append(f.bIDs, "polB", "polQ")
	feat := func(name, settings string) map[string]json.RawMessage {
		return map[string]json.RawMessage{name: json.RawMessage(settings)}
	}
	software := feat(policy.FeatureSoftwarePolicy, `{"mode":"audit","executable":[{"name":"notepad","signer":"Microsoft Corporation"}]}`)
	as := func(pairs ...string) []policy.Assignment {
		var out []policy.Assignment
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, policy.Assignment{ID: store.NewID(t0), Level: policy.Level(pairs[i]), Target: id[pairs[i+1]], CreatedAt: t0})
		}
		return out
	}
	ps := []policy.Policy{
		{ID: id["polA"], OrgID: id["orgA"], Name: "acme software", Active: true, Features: software,
			Assignments: as("organization", "orgA", "site", "S1")},
		{ID: id["polA2"], OrgID: id["orgA"], Name: "branch UAC", Active: true, Features: feat(policy.FeaturePAM, `{"uacInterceptionEnabled":true}`),
			Assignments: as("site", "S2", "device", "dA2")},
		{ID: id["polP"], PartnerID: id["partnerP"], Name: "P baseline", Features: feat(policy.FeaturePAM, `{"uacInterceptionEnabled":true}`),
			Assignments: as("partner", "partnerP")},
		{ID: id["polB"], OrgID: id["orgB"], Name: "globex UAC", Active: true, Features: feat(policy.FeaturePAM, `{"uacInterceptionEnabled":false}`),
			Assignments: as("organization", "orgB", "site", "SB", "device", "dB")},
		{ID: id["polQ"], PartnerID: id["partnerQ"], Name: "Q software", Active: true, Features: software,
			Assignments: as("partner", "partnerQ")},
	}
	if err := st.Update(func(tx *store.Tx) error {
		for i := range ps {
			ps[i].CreatedAt, ps[i].UpdatedAt = t0, t0
			if err := policy.ValidatePolicy(&ps[i]); err != nil {
				return err
			}
			if err := tx.PutPolicy(&ps[i]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for tenant, l := range map[string]string{mxA: "polA", mxAS2: "polA2", mxB: "polB"} {
		mxPolicies.Store(f.tenants[tenant], id[l])
	}
}
