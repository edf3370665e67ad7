package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

var ann = Admin{Actor: Actor{Kind: store.ActorUser, ID: "user-ann", Name: "Ann"}}

// adminFixture adds to the base fixture a second site in the org and a
// second org ("globex") with its own site, device and signer group.
type adminFixture struct {
	*fixture
	site2                               string
	other, otherSite, otherDev, otherGr string
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	f := &adminFixture{fixture: newFixture(t)}
	f.site2, f.other, f.otherSite, f.otherDev, f.otherGr = store.NewID(t0), store.NewID(t0), store.NewID(t0), store.NewID(t0), store.NewID(t0)
	err := f.st.Update(func(tx *store.Tx) error {
		if err := tx.PutSite(&store.Site{ID: f.site2, OrgID: f.org, Name: "Branch"}); err != nil {
			return err
		}
		if err := tx.PutOrg(&store.Org{ID: f.other, Name: "globex"}); err != nil {
			return err
		}
		if err := tx.PutSite(&store.Site{ID: f.otherSite, OrgID: f.other, Name: "GX"}); err != nil {
			return err
		}
		if err := tx.PutDevice(&store.Device{ID: f.otherDev, OrgID: f.other, SiteID: f.otherSite, Hostname: "GX-1"}); err != nil {
			return err
		}
		_, err := tx.PutSignerGroup(&engine.SignerGroup{ID: f.otherGr, OrgID: f.other, Name: "theirs",
			Signers: []engine.SignerEntry{engine.CNEntry("Mozilla Corporation")}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// jsonRule decodes a rule body the way the API does (create defaults).
func jsonRule(t *testing.T, s string) engine.Rule {
	t.Helper()
	var r engine.Rule
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func jsonPatch(t *testing.T, s string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *adminFixture) create(t *testing.T, body string) *engine.Rule {
	t.Helper()
	r, err := f.svc.CreateRule(f.org, jsonRule(t, body), ann)
	if err != nil {
		t.Fatalf("create %s: %v", body, err)
	}
	return r
}

func (f *adminFixture) stored(t *testing.T, org, id string) *engine.Rule {
	t.Helper()
	var r *engine.Rule
	if err := f.st.View(func(sn *store.Snapshot) error {
		var err error
		r, err = sn.Rule(org, id)
		return err
	}); err != nil {
		t.Fatalf("rule %s: %v", id, err)
	}
	return r
}

func (f *adminFixture) version(t *testing.T, org string) uint64 {
	t.Helper()
	v, err := f.st.RuleVersion(org)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *adminFixture) rules(t *testing.T, org string) []engine.Rule {
	t.Helper()
	var rs []engine.Rule
	if err := f.st.View(func(sn *store.Snapshot) error {
		var err error
		rs, err = sn.Rules(org)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rs
}

func (f *adminFixture) group(org, id string) (*engine.SignerGroup, error) {
	var g *engine.SignerGroup
	err := f.st.View(func(sn *store.Snapshot) error {
		var err error
		g, err = sn.SignerGroup(org, id)
		return err
	})
	return g, err
}

// cnIn sets the input's signers to bare subject CNs, as a JSON body would.
func cnIn(t *testing.T, in SignerGroupInput, cns ...string) SignerGroupInput {
	t.Helper()
	b, err := json.Marshal(map[string][]string{"signers": cns})
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	return in
}

func wantShape(t *testing.T, err error, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want %v", err, sentinel)
	}
	var fe engine.FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("got %T, want engine.FieldErrors", err)
	}
}

var hashUpper = strings.Repeat("AB", 32)

func TestCreateRuleDefaultsAndNormalisation(t *testing.T) {
	f := newAdminFixture(t)
	v0 := f.version(t, f.org)
	r := f.create(t, `{"name":"allow hash","verdict":"auto_approve","matchHash":"`+hashUpper+`","siteId":"`+strings.ToUpper(f.site)+`"}`)
	if !r.Enabled || r.Priority != 100 || *r.MatchHash != strings.ToLower(hashUpper) || *r.SiteID != f.site ||
		r.OrgID != f.org || r.CreatedByUserID != "user-ann" || !r.CreatedAt.Equal(t0) || !r.UpdatedAt.Equal(t0) || r.ID == "" {
		t.Fatalf("created %+v", r)
	}
	if got := f.stored(t, f.org, r.ID); got.ID != r.ID || *got.MatchHash != *r.MatchHash || !got.Enabled || got.Priority != 100 {
		t.Fatalf("stored %+v", got)
	}
	if v := f.version(t, f.org); v != v0+1 {
		t.Fatalf("version %d → %d", v0, v)
	}
	recs := audits(t, f.st, f.org, r.ID)
	if actions(recs) != "rule.created" || recs[0].ActorKind != store.ActorUser || recs[0].ActorID != "user-ann" ||
		recs[0].ActorName != "Ann" || !strings.Contains(string(recs[0].Details), "allow hash") {
		t.Fatalf("audit %+v", recs)
	}

	// The thumbprint is trimmed and lowercased; an org id in the input is
	// replaced by the org the call acts on.
	in := jsonRule(t, `{"name":"pinned","verdict":"require_approval","enabled":false,"priority":0,"matchSignerThumbprint":"  `+strings.Repeat("CD", 32)+` "}`)
	in.OrgID = f.other
	r2, err := f.svc.CreateRule(f.org, in, ann)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Enabled || r2.Priority != 0 || *r2.MatchSignerThumbprint != strings.Repeat("cd", 32) || r2.OrgID != f.org {
		t.Fatalf("%+v", r2)
	}
	if len(f.rules(t, f.other)) != 0 || len(f.rules(t, f.org)) != 2 {
		t.Fatal("the rule went to the wrong org")
	}
	mustVerify(t, f.st)
}

func TestCreateRuleRefused(t *testing.T) {
	f := newAdminFixture(t)
	g, err := f.svc.CreateSignerGroup(f.org, cnIn(t, SignerGroupInput{Name: sp("mine")}, "X"), ann)
	if err != nil {
		t.Fatal(err)
	}
	v0 := f.version(t, f.org)
	n0 := len(audits(t, f.st, f.org, ""))
	for _, c := range []struct {
		body, field string
		sentinel    error
	}{
		{`{"name":"n","verdict":"auto_approve","timeWindow":{"start":"08:00","end":"17:00"}}`, "criteria", engine.ErrNoCriterion},
		{`{"name":"n","verdict":"auto_approve"}`, "criteria", engine.ErrNoCriterion},
		{`{"name":"n","verdict":"auto_approve","matchSigner":"S","matchToolName":"t"}`, "criteria", engine.ErrMixedShape},
		{`{"name":"n","verdict":"auto_approve","matchHash":"` + hashUpper + `","matchRiskTier":0}`, "criteria", engine.ErrMixedShape},
		{`{"name":"n","verdict":"auto_approve","matchSignerGroupId":"` + g.ID + `","matchSigner":"S"}`, "matchSignerGroupId", engine.ErrGroupWithSigner},
		{`{"name":"n","verdict":"auto_approve","matchSignerGroupId":"` + g.ID + `","matchSignerThumbprint":"` + hashUpper + `"}`, "matchSignerGroupId", engine.ErrGroupWithSigner},
		{`{"name":"n","verdict":"ignore","matchToolName":"t"}`, "verdict", engine.ErrIgnoreOnToolRule},
		{`{"name":"n","verdict":"ignore","matchRiskTier":0}`, "verdict", engine.ErrIgnoreOnToolRule},
		{`{"name":"n","verdict":"ignore","matchUser":"u","matchRiskTier":2}`, "verdict", engine.ErrIgnoreOnToolRule},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","timeWindow":{"start":"25:00","end":"17:00"}}`, "timeWindow.start", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","timeWindow":{"start":"08:00","end":"12:60"}}`, "timeWindow.end", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","timeWindow":{"start":"08:00","end":"17:00","timezone":"Mars/Olympus_Mons"}}`, "timeWindow.timezone", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","timeWindow":{"start":"08:00","end":"17:00","timezone":"+05:00"}}`, "timeWindow.timezone", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","timeWindow":{"start":"08:00","end":"17:00","days":[7]}}`, "timeWindow.days[0]", nil},
		{`{"name":"n","verdict":"auto_approve","matchHash":"` + hashUpper[:63] + `"}`, "matchHash", nil},
		{`{"name":"n","verdict":"auto_approve","matchHash":" ` + hashUpper + `"}`, "matchHash", nil},
		{`{"name":"n","verdict":"auto_approve","matchSignerThumbprint":"xyz"}`, "matchSignerThumbprint", nil},
		{`{"name":"n","verdict":"auto_approve","matchSigner":""}`, "matchSigner", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","priority":-1}`, "priority", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","priority":100001}`, "priority", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","approvalDurationMinutes":0}`, "approvalDurationMinutes", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","approvalDurationMinutes":1441}`, "approvalDurationMinutes", nil},
		{`{"name":"n","matchUser":"u"}`, "verdict", nil},
		{`{"name":"n","verdict":"allow","matchUser":"u"}`, "verdict", nil},
		{`{"verdict":"auto_approve","matchUser":"u"}`, "name", nil},
		{`{"name":"` + strings.Repeat("n", 256) + `","verdict":"auto_approve","matchUser":"u"}`, "name", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","matchNegate":["colour"]}`, "matchNegate[0]", nil},
		{`{"name":"n","verdict":"auto_approve","matchSignerGroupId":"` + f.otherGr + `"}`, "matchSignerGroupId", nil},
		{`{"name":"n","verdict":"auto_approve","matchSignerGroupId":"` + store.NewID(t0) + `"}`, "matchSignerGroupId", nil},
		{`{"name":"n","verdict":"auto_approve","matchSignerGroupId":"not-a-uuid"}`, "matchSignerGroupId", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","siteId":"` + f.otherSite + `"}`, "siteId", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","siteId":"` + store.NewID(t0) + `"}`, "siteId", nil},
		{`{"name":"n","verdict":"auto_approve","matchUser":"u","siteId":"hq"}`, "siteId", nil},
	} {
		_, err := f.svc.CreateRule(f.org, jsonRule(t, c.body), ann)
		if c.sentinel != nil && !errors.Is(err, c.sentinel) {
			t.Errorf("%s: %v, want %v", c.body, err, c.sentinel)
			continue
		}
		var fe engine.FieldErrors
		if !errors.As(err, &fe) || fe[0].Field != c.field {
			t.Errorf("%s: %v, want a field error on %s first", c.body, err, c.field)
		}
	}
	if v := f.version(t, f.org); v != v0 {
		t.Fatalf("a refused create moved the version %d → %d", v0, v)
	}
	if n := len(audits(t, f.st, f.org, "")); n != n0 {
		t.Fatalf("a refused create was audited (%d → %d records)", n0, n)
	}
	if len(f.rules(t, f.org)) != 0 {
		t.Fatal("a refused rule was stored")
	}
}

func TestPatchRuleMerge(t *testing.T) {
	f := newAdminFixture(t)
	r := f.create(t, `{"name":"moz","description":"d","priority":10,"verdict":"auto_approve","matchSigner":"Mozilla Corporation","matchUser":"acme\\sarah"}`)
	patch := func(id, body string) (*engine.Rule, error) {
		return f.svc.PatchRule(f.org, id, jsonPatch(t, body), ann)
	}

	// null clears a criterion; the other fields stay.
	f.clock.Advance(time.Minute)
	got, err := patch(r.ID, `{"matchUser":null}`)
	if err != nil {
		t.Fatal(err)
	}
	if got.MatchUser != nil || *got.MatchSigner != "Mozilla Corporation" || *got.Description != "d" || got.Priority != 10 ||
		!got.Enabled || got.Name != "moz" || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0.Add(time.Minute)) ||
		got.CreatedByUserID != "user-ann" || got.ID != r.ID || got.OrgID != f.org {
		t.Fatalf("%+v", got)
	}
	if s := f.stored(t, f.org, r.ID); s.MatchUser != nil || !s.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("stored %+v", s)
	}

	// Clearing the last criterion is refused and changes nothing.
	v := f.version(t, f.org)
	_, err = patch(r.ID, `{"matchSigner":null}`)
	wantShape(t, err, engine.ErrNoCriterion)
	if s := f.stored(t, f.org, r.ID); s.MatchSigner == nil || f.version(t, f.org) != v {
		t.Fatalf("a refused patch was stored: %+v", s)
	}

	// A tool rule: adding a hash mixes shapes, ignore is refused; swapping
	// shapes in one patch is valid and the hash is lowercased.
	tool := f.create(t, `{"name":"tool","verdict":"auto_approve","matchToolName":"file_read"}`)
	_, err = patch(tool.ID, `{"matchHash":"`+hashUpper+`"}`)
	wantShape(t, err, engine.ErrMixedShape)
	_, err = patch(tool.ID, `{"verdict":"ignore"}`)
	wantShape(t, err, engine.ErrIgnoreOnToolRule)
	got, err = patch(tool.ID, `{"matchToolName":null,"matchHash":"`+hashUpper+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	if got.MatchToolName != nil || *got.MatchHash != strings.ToLower(hashUpper) {
		t.Fatalf("%+v", got)
	}
	if _, err := patch(tool.ID, `{"verdict":"ignore"}`); err != nil {
		t.Fatalf("ignore on an executable rule: %v", err)
	}
	got, err = patch(tool.ID, `{"matchSignerThumbprint":" `+strings.Repeat("EF", 32)+`"}`)
	if err != nil || *got.MatchSignerThumbprint != strings.Repeat("ef", 32) {
		t.Fatalf("%+v %v", got, err)
	}

	// An empty patch is a valid no-op that moves updatedAt (and is
	// audited, and moves the version).
	f.clock.Advance(time.Minute)
	v = f.version(t, f.org)
	got, err = patch(r.ID, `{}`)
	if err != nil || !got.UpdatedAt.Equal(t0.Add(2*time.Minute)) || !got.CreatedAt.Equal(t0) {
		t.Fatalf("%+v %v", got, err)
	}
	if f.version(t, f.org) != v+1 {
		t.Fatal("the empty patch did not move the version")
	}

	// Read-only fields are refused; orgId is dropped.
	for _, k := range []string{"id", "createdAt", "updatedAt", "createdByUserId"} {
		val := `"` + store.NewID(t0) + `"`
		if strings.HasSuffix(k, "At") {
			val = `"2020-01-01T00:00:00Z"`
		}
		_, err := patch(r.ID, `{"`+k+`":`+val+`}`)
		wantField(t, err, k)
	}
	got, err = patch(r.ID, `{"orgId":"`+f.other+`","description":"still ours"}`)
	if err != nil || got.OrgID != f.org || *got.Description != "still ours" {
		t.Fatalf("%+v %v", got, err)
	}
	if len(f.rules(t, f.other)) != 0 {
		t.Fatal("orgId in a patch moved the rule")
	}

	// Field checks apply to the fields present.
	for body, field := range map[string]string{
		`{"priority":"high"}`:                            "priority",
		`{"name":""}`:                                    "name",
		`{"verdict":"auto_approve_all"}`:                 "verdict",
		`{"matchHash":"abc"}`:                            "matchHash",
		`{"siteId":"` + f.otherSite + `"}`:               "siteId",
		`{"timeWindow":{"start":"24:00","end":"01:00"}}`: "timeWindow.start",
		`{"timeWindow":{"start":"08:00","end":"17:00","timezone":"Europe/Londres"}}`: "timeWindow.timezone",
		`{"matchSigner":null,"matchSignerGroupId":"` + f.otherGr + `"}`:              "matchSignerGroupId",
	} {
		_, err := patch(r.ID, body)
		wantField(t, err, field)
	}

	// Null clears nullable fields.
	got, err = patch(r.ID, `{"description":null,"timeWindow":null,"matchNegate":null,"approvalDurationMinutes":null}`)
	if err != nil || got.Description != nil || got.TimeWindow != nil {
		t.Fatalf("%+v %v", got, err)
	}

	// Another org's rule, or no rule at all: not found.
	if _, err := f.svc.PatchRule(f.other, r.ID, jsonPatch(t, `{}`), ann); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another org: %v", err)
	}
	if _, err := patch(store.NewID(t0), `{}`); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	recs := audits(t, f.st, f.org, r.ID)
	if !strings.HasPrefix(actions(recs), "rule.created,rule.updated,") {
		t.Fatalf("audit %s", actions(recs))
	}
	for _, rec := range recs[1:] {
		if rec.Action != "rule.updated" || !strings.Contains(string(rec.Details), `"before"`) || !strings.Contains(string(rec.Details), `"after"`) {
			t.Fatalf("%+v", rec)
		}
	}
	mustVerify(t, f.st)
}

// A field the rule does not have is refused, not dropped: a misspelt
// criterion ("matchPathGlb") would otherwise widen the rule silently.
func TestPatchRuleUnknownField(t *testing.T) {
	f := newAdminFixture(t)
	r := f.create(t, `{"name":"r","verdict":"auto_approve","matchUser":"bob"}`)
	_, err := f.svc.PatchRule(f.org, r.ID, jsonPatch(t, `{"matchPathGlb":"C:\\tools\\*"}`), ann)
	wantField(t, err, "matchPathGlb")
	// Nested fields too: without "days" an office-days window holds every day.
	_, err = f.svc.PatchRule(f.org, r.ID, jsonPatch(t, `{"timeWindow":{"start":"08:00","end":"18:00","dayz":[1,2,3,4,5]}}`), ann)
	var fe engine.FieldErrors
	if !errors.As(err, &fe) || !strings.HasPrefix(fe[0].Field, "timeWindow") {
		t.Errorf("misspelt timeWindow.days: %v", err)
	}
	if _, err := DecodeRule([]byte(`{"name":"n","verdict":"auto_approve","matchUser":"u","timeWindow":{"start":"08:00","end":"18:00","tz":"Europe/London"}}`)); err == nil {
		t.Error("DecodeRule dropped timeWindow.tz")
	}
}

// enabled and priority are not nullable: a null must be refused, not read
// as "back to the create default" (a disabled rule would come back on).
func TestPatchRuleNullOnNonNullableField(t *testing.T) {
	f := newAdminFixture(t)
	r := f.create(t, `{"name":"off","enabled":false,"priority":7,"verdict":"auto_approve","matchSigner":"Vendor"}`)
	for _, k := range []string{"enabled", "priority", "name", "verdict"} {
		got, err := f.svc.PatchRule(f.org, r.ID, jsonPatch(t, `{"`+k+`":null}`), ann)
		var fe engine.FieldErrors
		if !errors.As(err, &fe) {
			t.Errorf("%s: null accepted: %+v", k, got)
		}
	}
	if s := f.stored(t, f.org, r.ID); s.Enabled || s.Priority != 7 {
		t.Fatalf("stored rule changed: enabled %v priority %d", s.Enabled, s.Priority)
	}
}

func TestDeleteRule(t *testing.T) {
	f := newAdminFixture(t)
	r := f.create(t, `{"name":"x","verdict":"auto_deny","matchUser":"u"}`)
	if err := f.svc.DeleteRule(f.other, r.ID, ann); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another org: %v", err)
	}
	v := f.version(t, f.org)
	if err := f.svc.DeleteRule(f.org, strings.ToUpper(r.ID), ann); err != nil {
		t.Fatal(err)
	}
	if len(f.rules(t, f.org)) != 0 || f.version(t, f.org) != v+1 {
		t.Fatal("not deleted")
	}
	if err := f.svc.DeleteRule(f.org, r.ID, ann); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := f.svc.DeleteRule(f.org, "not-a-uuid", ann); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bad id: %v", err)
	}
	recs := audits(t, f.st, f.org, r.ID)
	if actions(recs) != "rule.created,rule.deleted" || recs[1].ActorID != "user-ann" {
		t.Fatalf("%+v", recs)
	}
}

// Every rule write moves the version, so the next decision sees it.
func TestRuleWritesReachDecisions(t *testing.T) {
	f := newAdminFixture(t)
	if r := f.uac(t, `C:\x.exe`, "Vendor").Request; r.Status != store.StatusPending {
		t.Fatal(r.Status)
	}
	r := f.create(t, `{"name":"allow","verdict":"auto_approve","matchSigner":"Vendor"}`)
	if got := f.uac(t, `C:\x.exe`, "Vendor").Request; got.Status != store.StatusAutoApproved || got.Decision.RuleName != "allow" {
		t.Fatalf("after create: %+v", got)
	}
	if _, err := f.svc.PatchRule(f.org, r.ID, jsonPatch(t, `{"verdict":"auto_deny"}`), ann); err != nil {
		t.Fatal(err)
	}
	if got := f.uac(t, `C:\x.exe`, "Vendor").Request; got.Status != store.StatusDenied {
		t.Fatalf("after patch: %+v", got)
	}
	if _, err := f.svc.PatchRule(f.org, r.ID, jsonPatch(t, `{"enabled":false}`), ann); err != nil {
		t.Fatal(err)
	}
	if got := f.uac(t, `C:\x.exe`, "Vendor").Request; got.Status != store.StatusPending {
		t.Fatalf("after disabling: %+v", got)
	}
	if _, err := f.svc.PatchRule(f.org, r.ID, jsonPatch(t, `{"enabled":true}`), ann); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteRule(f.org, r.ID, ann); err != nil {
		t.Fatal(err)
	}
	if got := f.uac(t, `C:\x.exe`, "Vendor").Request; got.Status != store.StatusPending {
		t.Fatalf("after delete: %+v", got)
	}
}

func TestRuleSiteAxis(t *testing.T) {
	f := newAdminFixture(t)
	orgWide := f.create(t, `{"name":"org-wide","verdict":"auto_deny","matchUser":"u"}`)
	atSite2 := f.create(t, `{"name":"branch","verdict":"auto_deny","matchUser":"u","siteId":"`+f.site2+`"}`)
	hq := Admin{Actor: ann.Actor, Sites: []string{strings.ToUpper(f.site)}}
	v0 := f.version(t, f.org)
	n0 := len(audits(t, f.st, f.org, ""))

	for name, body := range map[string]string{
		"org-wide":      `{"name":"n","verdict":"auto_deny","matchUser":"u"}`,
		"another site":  `{"name":"n","verdict":"auto_deny","matchUser":"u","siteId":"` + f.site2 + `"}`,
		"explicit null": `{"name":"n","verdict":"auto_deny","matchUser":"u","siteId":null}`,
	} {
		if _, err := f.svc.CreateRule(f.org, jsonRule(t, body), hq); !errors.Is(err, ErrSiteDenied) {
			t.Errorf("create %s: %v", name, err)
		}
	}
	for name, id := range map[string]string{"org-wide": orgWide.ID, "another site": atSite2.ID} {
		if _, err := f.svc.PatchRule(f.org, id, jsonPatch(t, `{"siteId":"`+f.site+`"}`), hq); !errors.Is(err, ErrSiteDenied) {
			t.Errorf("patch %s into the caller's site: %v", name, err)
		}
		if err := f.svc.DeleteRule(f.org, id, hq); !errors.Is(err, ErrSiteDenied) {
			t.Errorf("delete %s: %v", name, err)
		}
	}
	if f.version(t, f.org) != v0 || len(audits(t, f.st, f.org, "")) != n0 {
		t.Fatal("a denied write changed something")
	}

	own, err := f.svc.CreateRule(f.org, jsonRule(t, `{"name":"hq","verdict":"auto_deny","matchUser":"u","siteId":"`+f.site+`"}`), hq)
	if err != nil {
		t.Fatal(err)
	}
	// Moving their rule out of their sites (org-wide or another site) is
	// refused: the new site counts too.
	for _, body := range []string{`{"siteId":null}`, `{"siteId":"` + f.site2 + `"}`} {
		if _, err := f.svc.PatchRule(f.org, own.ID, jsonPatch(t, body), hq); !errors.Is(err, ErrSiteDenied) {
			t.Errorf("patch %s: %v", body, err)
		}
	}
	if _, err := f.svc.PatchRule(f.org, own.ID, jsonPatch(t, `{"description":"mine"}`), hq); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteRule(f.org, own.ID, hq); err != nil {
		t.Fatal(err)
	}
	// A caller restricted to no site at all may write no rule.
	none := Admin{Actor: ann.Actor, Sites: []string{}}
	if _, err := f.svc.CreateRule(f.org, jsonRule(t, `{"name":"n","verdict":"auto_deny","matchUser":"u","siteId":"`+f.site+`"}`), none); !errors.Is(err, ErrSiteDenied) {
		t.Fatalf("no sites: %v", err)
	}
	// An unrestricted administrator may move rules anywhere in the org.
	if _, err := f.svc.PatchRule(f.org, atSite2.ID, jsonPatch(t, `{"siteId":null}`), ann); err != nil {
		t.Fatal(err)
	}
}

func TestSignerGroupLifecycle(t *testing.T) {
	f := newAdminFixture(t)
	var in SignerGroupInput
	tp := strings.Repeat("AB", 32)
	if err := json.Unmarshal([]byte(`{"name":"  Vendors  ","description":"trusted","signers":["Mozilla Corporation"," mozilla corporation ",
		{"subjectCn":" Contoso ","thumbprint":"`+tp+`"},{"subjectCn":"contoso","thumbprint":"`+strings.ToLower(tp)+`"},{"thumbprint":" `+tp+` "}]}`), &in); err != nil {
		t.Fatal(err)
	}
	g, err := f.svc.CreateSignerGroup(f.org, in, ann)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(g.Signers)
	want := `["Mozilla Corporation",{"subjectCn":"Contoso","thumbprint":"` + strings.ToLower(tp) + `"},{"thumbprint":"` + strings.ToLower(tp) + `"}]`
	if g.Name != "Vendors" || g.OrgID != f.org || string(b) != want || *g.Description != "trusted" {
		t.Fatalf("%+v %s", g, b)
	}
	if s, err := f.group(f.org, g.ID); err != nil || s.Name != "Vendors" || len(s.Signers) != 3 {
		t.Fatalf("stored %+v %v", s, err)
	}

	// Invalid groups.
	for body, field := range map[string]string{
		`{"signers":[]}`: "name",
		`{"name":"   "}`: "name",
		`{"name":"x","signers":[{"thumbprint":"zz"}]}`: "signers[0].thumbprint",
		`{"name":"x","signers":[{}]}`:                  "signers[0]",
		`{"name":"x","signers":["   "]}`:               "signers[0]",
	} {
		var in SignerGroupInput
		if err := json.Unmarshal([]byte(body), &in); err != nil {
			t.Fatal(err)
		}
		_, err := f.svc.CreateSignerGroup(f.org, in, ann)
		wantField(t, err, field)
	}

	// Names are unique per org (trimmed, any case); another org may reuse one.
	var ce *store.ConflictError
	if _, err := f.svc.CreateSignerGroup(f.org, SignerGroupInput{Name: sp(" vendors")}, ann); !errors.As(err, &ce) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := f.svc.CreateSignerGroup(f.other, SignerGroupInput{Name: sp("Vendors")}, ann); err != nil {
		t.Fatalf("another org's group of the same name: %v", err)
	}
	g2, err := f.svc.CreateSignerGroup(f.org, cnIn(t, SignerGroupInput{Name: sp("Others")}, "X"), ann)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.UpdateSignerGroup(f.org, g2.ID, SignerGroupInput{Name: sp("VENDORS")}, ann); !errors.As(err, &ce) {
		t.Fatalf("rename onto an existing name: %v", err)
	}
	// An update changes only what it names; renaming to its own name in
	// another case is fine.
	up, err := f.svc.UpdateSignerGroup(f.org, g2.ID, cnIn(t, SignerGroupInput{}, "Y"), ann)
	if err != nil || up.Name != "Others" || len(up.Signers) != 1 || *up.Signers[0].SubjectCN != "Y" {
		t.Fatalf("%+v %v", up, err)
	}
	if up, err = f.svc.UpdateSignerGroup(f.org, g2.ID, SignerGroupInput{Name: sp("OTHERS")}, ann); err != nil || up.Name != "OTHERS" {
		t.Fatalf("%+v %v", up, err)
	}
	if _, err := f.svc.UpdateSignerGroup(f.other, g2.ID, SignerGroupInput{Name: sp("x")}, ann); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another org's update: %v", err)
	}

	// A rule referencing the group decides through it.
	r1 := f.create(t, `{"name":"vendors","priority":1,"verdict":"auto_approve","matchSignerGroupId":"`+strings.ToUpper(g.ID)+`"}`)
	if *r1.MatchSignerGroupID != g.ID {
		t.Fatalf("group id stored as %q", *r1.MatchSignerGroupID)
	}
	r2 := f.create(t, `{"name":"vendors-deny","priority":2,"verdict":"auto_deny","matchSignerGroupId":"`+g.ID+`"}`)
	if got := f.uac(t, `C:\setup.exe`, "MOZILLA CORPORATION").Request; got.Status != store.StatusAutoApproved || got.Decision.RuleName != "vendors" {
		t.Fatalf("%+v", got)
	}

	// In use: refused with the count, nothing changes.
	err = f.svc.DeleteSignerGroup(f.org, g.ID, ann)
	var iu *InUseError
	if !errors.As(err, &iu) || iu.Rules != 2 || !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "2 rule") {
		t.Fatalf("delete in use: %v", err)
	}
	if _, err := f.group(f.org, g.ID); err != nil {
		t.Fatal("a refused delete removed the group")
	}
	if err := f.svc.DeleteRule(f.org, r1.ID, ann); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteSignerGroup(f.org, g.ID, ann); !errors.As(err, &iu) || iu.Rules != 1 {
		t.Fatalf("delete with one user left: %v", err)
	}
	if _, err := f.svc.PatchRule(f.org, r2.ID, jsonPatch(t, `{"matchSignerGroupId":null,"matchSigner":"Mozilla Corporation"}`), ann); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteSignerGroup(f.org, g.ID, ann); err != nil {
		t.Fatal(err)
	}
	if _, err := f.group(f.org, g.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := f.svc.DeleteSignerGroup(f.org, g.ID, ann); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// An update never resurrects a deleted group.
	if _, err := f.svc.UpdateSignerGroup(f.org, g.ID, SignerGroupInput{Name: sp("back")}, ann); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update after delete: %v", err)
	}
	if _, err := f.group(f.org, g.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("resurrected")
	}
	// Another org's group is not this org's to delete.
	if err := f.svc.DeleteSignerGroup(f.org, f.otherGr, ann); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another org's group: %v", err)
	}
	if got := actions(audits(t, f.st, f.org, g.ID)); got != "signer_group.created,signer_group.deleted" {
		t.Fatalf("audit %s", got)
	}
	if got := actions(audits(t, f.st, f.org, g2.ID)); got != "signer_group.created,signer_group.updated,signer_group.updated" {
		t.Fatalf("audit %s", got)
	}
	mustVerify(t, f.st)
}

func TestSetConfig(t *testing.T) {
	f := newAdminFixture(t)
	for _, v := range []engine.Verdict{engine.VerdictAutoApprove, engine.VerdictIgnore, "maybe"} {
		_, err := f.svc.SetConfig(f.org, ConfigInput{DefaultUnmatchedVerdict: &v}, ann)
		wantField(t, err, "defaultUnmatchedVerdict")
	}
	if got := f.uac(t, `C:\x.exe`, "Nobody").Request; got.Status != store.StatusPending {
		t.Fatalf("default: %s", got.Status)
	}
	deny := engine.VerdictAutoDeny
	o, err := f.svc.SetConfig(f.org, ConfigInput{DefaultUnmatchedVerdict: &deny}, ann)
	if err != nil || o.DefaultUnmatchedVerdict != deny || o.UacInterceptionEnabled != nil || !o.ActuatorEnabled {
		t.Fatalf("%+v %v", o, err)
	}
	got := f.uac(t, `C:\x.exe`, "Nobody").Request
	if got.Status != store.StatusDenied || got.DenialReason != "Blocked by org default (no matching policy or rule)" {
		t.Fatalf("after auto_deny: %+v", got)
	}
	// Other flows are not governed by the org default.
	d, err := f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowJITAdmin, Observation: engine.Observation{SubjectUsername: "u"}})
	if err != nil || d.Outcome != engine.OutcomePending {
		t.Fatalf("%+v %v", d, err)
	}
	// Each setting is set on its own; the others are kept.
	yes, no := true, false
	if o, err = f.svc.SetConfig(f.org, ConfigInput{UacInterceptionEnabled: &yes, ActuatorEnabled: &no}, ann); err != nil ||
		o.DefaultUnmatchedVerdict != deny || o.UacInterceptionEnabled == nil || !*o.UacInterceptionEnabled || o.ActuatorEnabled {
		t.Fatalf("%+v %v", o, err)
	}
	if o, err = f.svc.SetConfig(f.org, ConfigInput{ClearUacInterception: true}, ann); err != nil || o.UacInterceptionEnabled != nil ||
		o.DefaultUnmatchedVerdict != deny {
		t.Fatalf("%+v %v", o, err)
	}
	if _, err := f.svc.SetConfig(store.NewID(t0), ConfigInput{}, ann); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown org: %v", err)
	}
	recs := audits(t, f.st, f.org, f.org)
	if actions(recs) != "config.updated,config.updated,config.updated" || !strings.Contains(string(recs[0].Details), `"before"`) ||
		!strings.Contains(string(recs[0].Details), `"auto_deny"`) {
		t.Fatalf("%+v", recs)
	}
	// Settings of one org leave the other alone.
	var other *store.Org
	f.st.View(func(sn *store.Snapshot) error { other, err = sn.Org(f.other); return err })
	if other.DefaultUnmatchedVerdict != "" {
		t.Fatalf("other org: %+v", other)
	}
}

func TestEvaluate(t *testing.T) {
	f := newAdminFixture(t)
	f.create(t, `{"name":"moz","priority":1,"verdict":"auto_approve","approvalDurationMinutes":45,"matchSigner":"Mozilla Corporation"}`)
	f.create(t, `{"name":"hq only","priority":2,"verdict":"auto_deny","matchUser":"acme\\tom","siteId":"`+f.site+`"}`)
	f.create(t, `{"name":"tool","priority":3,"verdict":"auto_approve","matchToolName":"file_read","matchUser":"helper"}`)
	observed := t0.Add(-time.Hour)
	obs := engine.Observation{SubjectUsername: `acme\sarah`, TargetExecutablePath: `C:\setup.exe`,
		TargetExecutableSigner: "Mozilla Corporation", ObservedAt: &observed}
	d, err := f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowUAC, Observation: obs, Explain: true})
	if err != nil || d.Outcome != engine.OutcomeAutoApproved || d.RuleName != "moz" || d.DurationMinutes != 45 || len(d.Explain) == 0 {
		t.Fatalf("%+v %v", d, err)
	}
	if _, total, _ := f.st.ListRequests(store.Filter{OrgID: f.org}); total != 0 {
		t.Fatalf("evaluate stored %d requests", total)
	}
	if recs := audits(t, f.st, f.org, ""); strings.Contains(actions(recs), "requested") {
		t.Fatalf("evaluate was audited: %s", actions(recs))
	}

	// The site comes from the device when one is named, else from the
	// observation.
	tom := engine.Observation{SubjectUsername: `acme\tom`, TargetExecutablePath: `C:\x.exe`, ObservedAt: &observed}
	if d, _ := f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowUAC, Observation: tom}); d.Outcome != engine.OutcomePending {
		t.Fatalf("no site: %+v", d)
	}
	if d, _ := f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowUAC, Observation: tom, DeviceID: f.device}); d.RuleName != "hq only" {
		t.Fatalf("device at the site: %+v", d)
	}
	atSite := tom
	atSite.SiteID = f.site
	if d, _ := f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowUAC, Observation: atSite}); d.RuleName != "hq only" {
		t.Fatalf("observation at the site: %+v", d)
	}
	// A tool action without a subject is the helper's.
	two := 2
	d, err = f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowToolAct, Observation: engine.Observation{ToolName: "file_read", RiskTier: &two}})
	if err != nil || d.RuleName != "tool" {
		t.Fatalf("%+v %v", d, err)
	}

	// Refusals.
	_, err = f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowUAC, Observation: engine.Observation{SubjectUsername: "u"}})
	wantField(t, err, "observation.targetExecutablePath")
	_, err = f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowUAC, Observation: engine.Observation{SubjectUsername: "u",
		TargetExecutablePath: `C:\x`, TargetExecutableHash: "abc"}})
	wantField(t, err, "observation.targetExecutableHash")
	_, err = f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowJITAdmin, Observation: engine.Observation{SubjectUsername: "u", ToolName: "x"}})
	wantField(t, err, "observation.toolName")
	for _, flow := range []engine.FlowType{"", "uac"} {
		_, err = f.svc.Evaluate(f.org, EvaluateInput{Flow: flow, Observation: obs})
		wantField(t, err, "flowType")
	}
	if _, err := f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowUAC, Observation: obs, DeviceID: f.otherDev}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another org's device: %v", err)
	}
	if _, err := f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowUAC, Observation: obs, DeviceID: store.NewID(t0)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	if _, err := f.svc.Evaluate(store.NewID(t0), EvaluateInput{Flow: engine.FlowUAC, Observation: obs}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown org: %v", err)
	}
}

func fileRule(name, org, signer string, v engine.Verdict) engine.Rule {
	return engine.Rule{ID: store.NewID(t0), OrgID: org, Name: name, Enabled: true, Priority: 5, Verdict: v, MatchSigner: &signer}
}

func TestFileRules(t *testing.T) {
	f := newAdminFixture(t)
	observed := t0
	obs := engine.Observation{SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`, TargetExecutableSigner: "Vendor", ObservedAt: &observed}
	decide := func(org string) engine.Decision {
		t.Helper()
		d, err := f.svc.Evaluate(org, EvaluateInput{Flow: engine.FlowUAC, Observation: obs})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := decide(f.org); d.Outcome != engine.OutcomePending {
		t.Fatalf("before files: %+v", d)
	}
	// Org "" applies to every org.
	gen := f.svc.SetFileRules([]FileOrg{{Rules: []engine.Rule{fileRule("file-allow", "", "Vendor", engine.VerdictAutoApprove)}, RuleOrigins: []string{"a.pam:3:1"}}})
	if gen != 1 {
		t.Fatalf("generation %d", gen)
	}
	if d := decide(f.org); d.RuleName != "file-allow" || d.Outcome != engine.OutcomeAutoApproved {
		t.Fatalf("%+v", d)
	}
	if d := decide(f.other); d.RuleName != "file-allow" {
		t.Fatalf("other org: %+v", d)
	}
	var acme, globex *store.Org
	f.st.View(func(sn *store.Snapshot) error {
		acme, _ = sn.Org(f.org)
		globex, _ = sn.Org(f.other)
		return nil
	})
	rules, _, origins := f.svc.FileRulesOf(acme)
	if len(rules) != 1 || rules[0].Name != "file-allow" || len(origins) != 1 || origins[0] != "a.pam:3:1" {
		t.Fatalf("%+v %v", rules, origins)
	}
	// Ingest decides with them too.
	if got := f.uac(t, `C:\x.exe`, "Vendor").Request; got.Status != store.StatusAutoApproved || got.Decision.RuleName != "file-allow" {
		t.Fatalf("%+v", got)
	}

	// A named org: by name (any case) or by id; the other org does not
	// see them.
	if gen := f.svc.SetFileRules([]FileOrg{{Org: "ACME", Rules: []engine.Rule{fileRule("acme-deny", "acme", "Vendor", engine.VerdictAutoDeny)}}}); gen != 2 {
		t.Fatalf("generation %d", gen)
	}
	if d := decide(f.org); d.RuleName != "acme-deny" {
		t.Fatalf("%+v", d)
	}
	if d := decide(f.other); d.Outcome != engine.OutcomePending || d.RuleName != "" {
		t.Fatalf("other org sees acme's file rule: %+v", d)
	}
	if rules, _, _ := f.svc.FileRulesOf(globex); len(rules) != 0 {
		t.Fatalf("%+v", rules)
	}
	f.svc.SetFileRules([]FileOrg{{Org: strings.ToUpper(f.other), Rules: []engine.Rule{fileRule("gx", f.other, "Vendor", engine.VerdictAutoDeny)}}})
	if d := decide(f.other); d.RuleName != "gx" {
		t.Fatalf("by id: %+v", d)
	}
	if d := decide(f.org); d.RuleName != "" {
		t.Fatalf("acme sees globex's: %+v", d)
	}

	// Stored rules and file rules are one set, by priority.
	f.create(t, `{"name":"stored-first","priority":1,"verdict":"require_approval","matchSigner":"Vendor"}`)
	f.svc.SetFileRules([]FileOrg{{Rules: []engine.Rule{fileRule("file-allow", "", "Vendor", engine.VerdictAutoApprove)}}})
	if d := decide(f.org); d.RuleName != "stored-first" {
		t.Fatalf("%+v", d)
	}
	// Removing the files removes their rules.
	f.svc.SetFileRules(nil)
	if d := decide(f.other); d.RuleName != "" {
		t.Fatalf("after removal: %+v", d)
	}
}

func TestFileSettings(t *testing.T) {
	f := newAdminFixture(t)
	f.svc.SetFileRules([]FileOrg{{Org: "acme", Config: &engine.OrgConfig{DefaultUnmatchedVerdict: engine.VerdictAutoDeny}}})
	var acme, globex *store.Org
	f.st.View(func(sn *store.Snapshot) error {
		acme, _ = sn.Org(f.org)
		globex, _ = sn.Org(f.other)
		return nil
	})
	if c := f.svc.OrgConfig(acme); c.DefaultUnmatchedVerdict != engine.VerdictAutoDeny {
		t.Fatalf("%+v", c)
	}
	if c := f.svc.OrgConfig(globex); c.DefaultUnmatchedVerdict != "" {
		t.Fatalf("globex: %+v", c)
	}
	if got := f.uac(t, `C:\x.exe`, "Nobody").Request; got.Status != store.StatusDenied {
		t.Fatalf("file default: %s", got.Status)
	}
	// The org's own setting wins over the files'.
	ra := engine.VerdictRequireApproval
	if _, err := f.svc.SetConfig(f.org, ConfigInput{DefaultUnmatchedVerdict: &ra}, ann); err != nil {
		t.Fatal(err)
	}
	if got := f.uac(t, `C:\x.exe`, "Nobody").Request; got.Status != store.StatusPending {
		t.Fatalf("stored setting: %s", got.Status)
	}
}

// Concurrent patches of one rule: each is applied whole to the rule as
// the previous one left it, so patches of different fields never undo
// each other.
func TestPatchRuleConcurrent(t *testing.T) {
	f := newAdminFixture(t)
	r := f.create(t, `{"name":"r","verdict":"auto_approve","matchSigner":"S"}`)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	start := make(chan struct{})
	wg.Add(3)
	go func() {
		defer wg.Done()
		<-start
		for i := range n {
			if _, err := f.svc.PatchRule(f.org, r.ID, jsonPatch(t, fmt.Sprintf(`{"description":"d-%d"}`, i)), ann); err != nil {
				errs <- err
			}
		}
	}()
	go func() {
		defer wg.Done()
		<-start
		for i := range n {
			if _, err := f.svc.PatchRule(f.org, r.ID, jsonPatch(t, fmt.Sprintf(`{"priority":%d}`, i+1)), ann); err != nil {
				errs <- err
			}
		}
	}()
	go func() {
		defer wg.Done()
		<-start
		for i := range n {
			if _, err := f.svc.PatchRule(f.org, r.ID, jsonPatch(t, fmt.Sprintf(`{"matchUser":"u-%d"}`, i)), ann); err != nil {
				errs <- err
			}
		}
	}()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("patch: %v", err)
	}
	got := f.stored(t, f.org, r.ID)
	if got.Description == nil || *got.Description != fmt.Sprintf("d-%d", n-1) || got.Priority != n ||
		got.MatchUser == nil || *got.MatchUser != fmt.Sprintf("u-%d", n-1) || *got.MatchSigner != "S" {
		t.Fatalf("lost update: %+v", got)
	}
	if recs := audits(t, f.st, f.org, r.ID); len(recs) != 1+3*n {
		t.Fatalf("%d audit records", len(recs))
	}
	mustVerify(t, f.st)
}

// The same field patched concurrently: last writer wins, every patch
// succeeds and the result is one of them.
func TestPatchRuleConcurrentSameField(t *testing.T) {
	f := newAdminFixture(t)
	r := f.create(t, `{"name":"r","verdict":"auto_approve","matchSigner":"S"}`)
	const n = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = f.svc.PatchRule(f.org, r.ID, jsonPatch(t, fmt.Sprintf(`{"description":"w-%d","priority":%d}`, i, i)), ann)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("patch %d: %v", i, err)
		}
	}
	got := f.stored(t, f.org, r.ID)
	if got.Description == nil || *got.Description != fmt.Sprintf("w-%d", got.Priority) {
		t.Fatalf("a mix of two patches: %+v", got)
	}
	// The last audit record is the state stored.
	recs := audits(t, f.st, f.org, r.ID)
	if !strings.Contains(string(recs[len(recs)-1].Details), fmt.Sprintf(`"description":"w-%d"`, got.Priority)) {
		t.Fatalf("last audit %s, stored w-%d", recs[len(recs)-1].Details, got.Priority)
	}
}

// Deleting a signer group while rules are being pointed at it: whatever
// the interleaving, no stored rule may reference a missing group.
func TestDeleteSignerGroupRacesRuleWrites(t *testing.T) {
	f := newAdminFixture(t)
	holder := f.create(t, `{"name":"holder","verdict":"auto_approve","matchUser":"u"}`)
	for i := range 30 {
		g, err := f.svc.CreateSignerGroup(f.org, cnIn(t, SignerGroupInput{Name: sp(fmt.Sprintf("g%d", i))}, "X"), ann)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		var delErr, createErr, patchErr error
		wg.Add(3)
		go func() {
			defer wg.Done()
			<-start
			delErr = f.svc.DeleteSignerGroup(f.org, g.ID, ann)
		}()
		go func() {
			defer wg.Done()
			<-start
			_, createErr = f.svc.CreateRule(f.org, jsonRule(t, fmt.Sprintf(`{"name":"ref%d","verdict":"auto_approve","matchSignerGroupId":"%s"}`, i, g.ID)), ann)
		}()
		go func() {
			defer wg.Done()
			<-start
			_, patchErr = f.svc.PatchRule(f.org, holder.ID, jsonPatch(t, `{"matchSignerGroupId":"`+g.ID+`"}`), ann)
		}()
		close(start)
		wg.Wait()
		var iu *InUseError
		if delErr != nil && !errors.As(delErr, &iu) {
			t.Fatalf("round %d: delete: %v", i, delErr)
		}
		for name, err := range map[string]error{"create": createErr, "patch": patchErr} {
			var fe engine.FieldErrors
			if err != nil && (!errors.As(err, &fe) || fe[0].Field != "matchSignerGroupId") {
				t.Fatalf("round %d: %s: %v", i, name, err)
			}
			if err != nil && delErr != nil {
				t.Fatalf("round %d: %s refused although the group stayed: %v", i, name, err)
			}
		}
		if delErr == nil && (createErr == nil || patchErr == nil) {
			t.Fatalf("round %d: the group was deleted and a rule referencing it was written too", i)
		}
		for _, r := range f.rules(t, f.org) {
			if r.MatchSignerGroupID == nil {
				continue
			}
			if _, err := f.group(f.org, *r.MatchSignerGroupID); err != nil {
				t.Fatalf("round %d: rule %q references missing group %s", i, r.Name, *r.MatchSignerGroupID)
			}
		}
		// Release the group for the next round.
		if _, err := f.svc.PatchRule(f.org, holder.ID, jsonPatch(t, `{"matchSignerGroupId":null}`), ann); err != nil {
			t.Fatal(err)
		}
	}
}

// Concurrent updates of different fields of one signer group must not
// undo each other.
func TestUpdateSignerGroupConcurrent(t *testing.T) {
	f := newAdminFixture(t)
	g, err := f.svc.CreateSignerGroup(f.org, cnIn(t, SignerGroupInput{Name: sp("g")}, "s"), ann)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		var nameErr, signersErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_, nameErr = f.svc.UpdateSignerGroup(f.org, g.ID, SignerGroupInput{Name: sp(fmt.Sprintf("name-%d", i))}, ann)
		}()
		go func() {
			defer wg.Done()
			<-start
			_, signersErr = f.svc.UpdateSignerGroup(f.org, g.ID, cnIn(t, SignerGroupInput{}, fmt.Sprintf("cn-%d", i)), ann)
		}()
		close(start)
		wg.Wait()
		if nameErr != nil || signersErr != nil {
			t.Fatalf("round %d: %v %v", i, nameErr, signersErr)
		}
		got, err := f.group(f.org, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != fmt.Sprintf("name-%d", i) || len(got.Signers) != 1 || *got.Signers[0].SubjectCN != fmt.Sprintf("cn-%d", i) {
			t.Fatalf("round %d: lost update: name %q, signers %q", i, got.Name, *got.Signers[0].SubjectCN)
		}
	}
}

// An update racing a delete never brings the group back.
func TestUpdateSignerGroupRacesDelete(t *testing.T) {
	f := newAdminFixture(t)
	for i := range 30 {
		g, err := f.svc.CreateSignerGroup(f.org, SignerGroupInput{Name: sp(fmt.Sprintf("g%d", i))}, ann)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		var upErr, delErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_, upErr = f.svc.UpdateSignerGroup(f.org, g.ID, SignerGroupInput{Description: sp("x")}, ann)
		}()
		go func() {
			defer wg.Done()
			<-start
			delErr = f.svc.DeleteSignerGroup(f.org, g.ID, ann)
		}()
		close(start)
		wg.Wait()
		if delErr != nil {
			t.Fatalf("delete: %v", delErr)
		}
		if upErr != nil && !errors.Is(upErr, ErrNotFound) {
			t.Fatalf("update: %v", upErr)
		}
		if _, err := f.group(f.org, g.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("round %d: the deleted group is back (%v)", i, err)
		}
	}
}

// A condition may name a signer group (`signer in signers("…")`): such a
// reference counts like matchSignerGroupId. A missing group is refused at
// write time, and the group cannot be deleted or renamed away from under
// the rule — a deny rule of the form "not signed by a trusted vendor"
// would otherwise stop denying.
func TestSignerGroupReferencedByCondition(t *testing.T) {
	f := newAdminFixture(t)
	if _, err := f.svc.CreateRule(f.org, jsonRule(t, `{"name":"dangling","verdict":"auto_deny","condition":"signer in signers(\"nosuch\") or user == \"x\""}`), ann); err == nil {
		t.Error("a condition naming a missing signer group was stored")
	}
	g, err := f.svc.CreateSignerGroup(f.org, cnIn(t, SignerGroupInput{Name: sp("trusted")}, "Good Vendor"), ann)
	if err != nil {
		t.Fatal(err)
	}
	f.create(t, `{"name":"untrusted temp","verdict":"auto_deny","condition":"path ~ \"C:\\\\Temp\\\\**\" and not signer in signers(\"trusted\")"}`)
	observed := t0
	evil := engine.Observation{SubjectUsername: "u", TargetExecutablePath: `C:\Temp\x.exe`, TargetExecutableSigner: "Evil Corp", ObservedAt: &observed}
	denied := func() bool {
		t.Helper()
		d, err := f.svc.Evaluate(f.org, EvaluateInput{Flow: engine.FlowUAC, Observation: evil})
		if err != nil {
			t.Fatal(err)
		}
		return d.Outcome == engine.OutcomeDenied && d.RuleName == "untrusted temp"
	}
	if !denied() {
		t.Fatal("the deny rule does not deny")
	}
	if _, err := f.svc.UpdateSignerGroup(f.org, g.ID, SignerGroupInput{Name: sp("trusted-v2")}, ann); err == nil && !denied() {
		t.Error("renaming the group silently disabled the deny rule")
	}
	err = f.svc.DeleteSignerGroup(f.org, g.ID, ann)
	var iu *InUseError
	if !errors.As(err, &iu) {
		t.Errorf("deleting a group a condition references: %v", err)
	}
	if !denied() {
		t.Error("the deny rule no longer denies")
	}
}

// JSON field names match case-insensitively, as on create: a patch
// spelling a field in another case either applies or is refused, never
// answered as a success that changed nothing.
func TestPatchRuleKeyCase(t *testing.T) {
	f := newAdminFixture(t)
	r := f.create(t, `{"name":"r","verdict":"auto_approve","matchSigner":"S"}`)
	got, err := f.svc.PatchRule(f.org, r.ID, jsonPatch(t, `{"Enabled":false}`), ann)
	if err == nil && got.Enabled {
		t.Errorf("patch {\"Enabled\":false} succeeded and left the rule enabled")
	}
	got, err = f.svc.PatchRule(f.org, r.ID, jsonPatch(t, `{"ID":"`+store.NewID(t0)+`"}`), ann)
	if err == nil && got.ID != r.ID {
		t.Errorf("the id changed to %s", got.ID)
	}
}

// The language names a group in signers("…") by name or by id; a
// reference by id counts like one by name.
func TestSignerGroupReferencedByIDInCondition(t *testing.T) {
	f := newAdminFixture(t)
	g, err := f.svc.CreateSignerGroup(f.org, cnIn(t, SignerGroupInput{Name: sp("trusted")}, "Good Vendor"), ann)
	if err != nil {
		t.Fatal(err)
	}
	// A top-level conjunct is stored as matchSignerGroupId; inside an
	// "or" the reference stays in the condition.
	for _, cond := range []string{`path ~ \"C:\\\\Temp\\\\**\" and not signer in signers(\"` + g.ID + `\")`,
		`not signer in signers(\"` + strings.ToUpper(g.ID) + `\") or user == \"kiosk\"`} {
		r, err := f.svc.CreateRule(f.org, jsonRule(t, `{"name":"by id","verdict":"auto_deny","condition":"`+cond+`"}`), ann)
		if err != nil {
			t.Errorf("a condition naming the group by id (%s): %v", cond, err)
			continue
		}
		var iu *InUseError
		if err := f.svc.DeleteSignerGroup(f.org, g.ID, ann); !errors.As(err, &iu) {
			t.Fatalf("deleting a group a condition names by id (%s): %v", cond, err)
		}
		if err := f.svc.DeleteRule(f.org, r.ID, ann); err != nil {
			t.Fatal(err)
		}
	}
}

// Conditions naming a group race its deletion: no interleaving leaves a
// condition naming a missing group.
func TestDeleteSignerGroupRacesConditionRule(t *testing.T) {
	f := newAdminFixture(t)
	for i := range 30 {
		name := fmt.Sprintf("g%d", i)
		g, err := f.svc.CreateSignerGroup(f.org, cnIn(t, SignerGroupInput{Name: sp(name)}, "X"), ann)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		var delErr, createErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			delErr = f.svc.DeleteSignerGroup(f.org, g.ID, ann)
		}()
		go func() {
			defer wg.Done()
			<-start
			_, createErr = f.svc.CreateRule(f.org, jsonRule(t, fmt.Sprintf(`{"name":"c%d","verdict":"auto_deny","condition":"not signer in signers(\"%s\") and user == \"u\""}`, i, name)), ann)
		}()
		close(start)
		wg.Wait()
		var iu *InUseError
		if delErr != nil && !errors.As(delErr, &iu) {
			t.Fatalf("round %d: delete: %v", i, delErr)
		}
		var fe engine.FieldErrors
		if createErr != nil && !errors.As(createErr, &fe) {
			t.Fatalf("round %d: create: %v", i, createErr)
		}
		if (delErr == nil) == (createErr == nil) {
			t.Fatalf("round %d: delete %v, create %v: exactly one must win", i, delErr, createErr)
		}
		if createErr == nil {
			if _, err := f.group(f.org, g.ID); err != nil {
				t.Fatalf("round %d: the rule names a deleted group", i)
			}
		}
	}
}
