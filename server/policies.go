package server

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/store"
)

// Configuration policies over the API (pam-semantics §10): named bundles of
// feature settings (pam, software_policy) with their assignments to the
// partner → organization → site → device group → device hierarchy, the
// resolution a device gets from them, and what its agent is told.
//
// Ownership. A policy belongs to one organisation (orgId) or, partner-wide,
// to a partner (partnerId, no orgId). Organisation callers read their
// organisation's policies and their partner's partner-wide ones, and write
// only the former; partner callers read and write the policies of their
// organisations and their own partner-wide ones; system callers everything.
// A policy out of reach is not found (404); a partner-wide policy an
// organisation caller can read but not change is 403 FORBIDDEN.
//
// Assignments name objects of the owner only: the organisation itself,
// its partner, its sites, device groups and devices (for a partner-wide
// policy: the partner, its organisations and theirs). Any other target —
// missing or another tenant's — is the same 400 on assignments[i].targetId,
// so the answer never tells whether another tenant's object exists.
//
// The site axis: a site-restricted caller may read policies but not write
// them (403 SITE_DENIED): policies are organisation-wide objects, like
// device groups. What it reads leaves out assignments to sites outside its
// sites and to devices not at its sites; assignments of a partner-wide
// policy to another organisation's objects are left out for every caller
// who does not reach that organisation.

// Audit actions of policy administration. A partner-wide policy's changes
// are recorded in the chain of every organisation of its partner, in
// summary (its assignments may name other organisations' objects).
const (
	auditPolicyCreated = "policy.created"
	auditPolicyUpdated = "policy.updated"
	auditPolicyDeleted = "policy.deleted"
)

// policyRoutes registers the configuration-policy endpoints, the device's
// effective policy and the agent's pam settings.
func (s *Server) policyRoutes() {
	const p = "/api/v1"
	s.route("GET", p+"/configuration-policies", SurfacePAM, s.user(PermRead, false, s.listPolicies))
	s.route("POST", p+"/configuration-policies", SurfacePAM, s.user(PermWrite, true, s.createPolicy))
	s.route("GET", p+"/configuration-policies/:id", SurfacePAM, s.user(PermRead, false, s.getPolicy))
	s.route("PATCH", p+"/configuration-policies/:id", SurfacePAM, s.user(PermWrite, true, s.patchPolicy))
	s.route("DELETE", p+"/configuration-policies/:id", SurfacePAM, s.user(PermWrite, true, s.deletePolicy))
	s.route("GET", p+"/devices/:id/effective-policy", SurfacePAM, s.user(PermRead, false, s.effectivePolicy))
	s.route("GET", p+"/agents/:id/pam-settings", SurfaceAgent, s.handle(s.agentPamSettings))
}

// API shapes.

type apiPolicy struct {
	ID          string                     `json:"id"`
	OrgID       *string                    `json:"orgId"`     // null for a partner-wide policy
	PartnerID   *string                    `json:"partnerId"` // set only for a partner-wide policy
	Name        string                     `json:"name"`
	Description *string                    `json:"description"`
	Active      bool                       `json:"active"`
	Features    map[string]json.RawMessage `json:"features"`
	Assignments []apiAssignment            `json:"assignments"`
	CreatedAt   *string                    `json:"createdAt"`
	UpdatedAt   *string                    `json:"updatedAt"`
	// ReadOnly: the caller may not change the policy (a partner-wide
	// policy for an organisation caller; anything for a site-restricted
	// caller).
	ReadOnly bool `json:"readOnly"`
}

type apiAssignment struct {
	ID        string       `json:"id"`
	Level     policy.Level `json:"level"`
	TargetID  string       `json:"targetId"`
	Priority  int          `json:"priority"`
	Condition *string      `json:"condition"`
	CreatedAt *string      `json:"createdAt"`
}

// policyView is what one caller reaches of the policies, read in one
// snapshot.
type policyView struct {
	c   *Caller
	sn  *store.Snapshot
	all bool // a system caller
	// orgs are the organisations the caller reaches; partners those whose
	// partner-wide policies it reads; writePartners those whose
	// partner-wide policies it may change. Keys are canonical ids.
	orgs, partners, writePartners map[string]bool
	groups                        map[string][]store.DeviceGroup // by organisation, read on first need
}

func (s *Server) policyView(sn *store.Snapshot, c *Caller) (*policyView, error) {
	v := &policyView{c: c, sn: sn, orgs: map[string]bool{}, partners: map[string]bool{}, writePartners: map[string]bool{},
		groups: map[string][]store.DeviceGroup{}}
	switch c.Scope {
	case ScopeSystem:
		v.all = true
	case ScopeOrganization:
		org := canonicalID(c.OrgID)
		v.orgs[org] = true
		o, err := sn.Org(org)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err == nil && o.PartnerID != "" {
			v.partners[canonicalID(o.PartnerID)] = true
		}
	case ScopePartner:
		if c.PartnerID == "" {
			break
		}
		partner := canonicalID(c.PartnerID)
		v.partners[partner], v.writePartners[partner] = true, true
		orgs, err := sn.Orgs()
		if err != nil {
			return nil, err
		}
		for _, o := range orgs {
			if sameID(o.PartnerID, partner) {
				v.orgs[canonicalID(o.ID)] = true
			}
		}
	}
	return v, nil
}

// visible reports whether the caller may read p.
func (v *policyView) visible(p *policy.Policy) bool {
	switch {
	case v.all:
		return true
	case p.OrgID != "":
		return v.orgs[canonicalID(p.OrgID)]
	}
	return p.PartnerID != "" && v.partners[canonicalID(p.PartnerID)]
}

// writable reports whether the caller's scope lets it change p (the site
// axis is checked apart).
func (v *policyView) writable(p *policy.Policy) bool {
	switch {
	case v.all:
		return true
	case p.OrgID != "":
		return v.orgs[canonicalID(p.OrgID)]
	}
	return p.PartnerID != "" && v.writePartners[canonicalID(p.PartnerID)]
}

// find returns the visible policy id, or a 404.
func (v *policyView) find(id string) (*policy.Policy, error) {
	p, err := findPolicy(v.sn, id)
	if err != nil {
		return nil, err
	}
	if !v.visible(p) {
		return nil, errNotFound("no such configuration policy")
	}
	return p, nil
}

// findPolicy reads policy id (404 when absent).
func findPolicy(sn *store.Snapshot, id string) (*policy.Policy, error) {
	all, err := sn.Policies()
	if err != nil {
		return nil, err
	}
	for i := range all {
		if sameID(all[i].ID, id) {
			return &all[i], nil
		}
	}
	return nil, errNotFound("no such configuration policy")
}

// inReachedOrg reports whether found holds for one of the organisations
// the caller reaches that p may name objects of.
func (v *policyView) inReachedOrg(p *policy.Policy, found func(org string) bool) bool {
	if p.OrgID != "" {
		return v.orgs[canonicalID(p.OrgID)] && found(canonicalID(p.OrgID))
	}
	orgs := make([]string, 0, len(v.orgs))
	for o := range v.orgs {
		orgs = append(orgs, o)
	}
	slices.Sort(orgs)
	return slices.ContainsFunc(orgs, found)
}

func (v *policyView) orgGroups(org string) []store.DeviceGroup {
	gs, ok := v.groups[org]
	if !ok {
		gs, _ = v.sn.DeviceGroups(org) // unreadable reads as none: the assignment is hidden
		v.groups[org] = gs
	}
	return gs
}

// assignmentVisible reports whether the caller may see an assignment of a
// policy it reads: its target must be in an organisation the caller
// reaches and, for a site-restricted caller, a site of its own or a device
// at one.
func (v *policyView) assignmentVisible(p *policy.Policy, a *policy.Assignment) bool {
	c := v.c
	switch a.Level {
	case policy.LevelPartner:
		return v.all || v.partners[canonicalID(a.Target)]
	case policy.LevelOrganization:
		return v.all || v.orgs[canonicalID(a.Target)]
	case policy.LevelSite:
		if c.Sites != nil && !containsID(c.Sites, a.Target) {
			return false
		}
		return v.all || v.inReachedOrg(p, func(org string) bool {
			_, err := v.sn.Site(org, a.Target)
			return err == nil
		})
	case policy.LevelDeviceGroup:
		return v.all || v.inReachedOrg(p, func(org string) bool {
			return slices.ContainsFunc(v.orgGroups(org), func(g store.DeviceGroup) bool { return sameID(g.ID, a.Target) })
		})
	case policy.LevelDevice:
		if v.all && c.Sites == nil {
			return true
		}
		d, err := v.sn.Device(a.Target)
		if err != nil {
			return false
		}
		return (v.all || v.orgs[canonicalID(d.OrgID)]) && invSiteAllowed(c, d.SiteID)
	}
	return v.all
}

// out is p as the caller sees it.
func (v *policyView) out(p *policy.Policy) apiPolicy {
	o := apiPolicy{ID: p.ID, OrgID: invOpt(p.OrgID), Name: p.Name, Description: p.Description, Active: p.Active,
		Features: p.Features, Assignments: []apiAssignment{}, CreatedAt: invTime(p.CreatedAt), UpdatedAt: invTime(p.UpdatedAt),
		ReadOnly: v.c.Sites != nil || !v.writable(p)}
	if p.OrgID == "" {
		o.PartnerID = invOpt(p.PartnerID)
	}
	if o.Features == nil {
		o.Features = map[string]json.RawMessage{}
	}
	for i := range p.Assignments {
		a := &p.Assignments[i]
		if !v.assignmentVisible(p, a) {
			continue
		}
		o.Assignments = append(o.Assignments, apiAssignment{ID: a.ID, Level: a.Level, TargetID: a.Target, Priority: a.Priority,
			Condition: invOpt(a.Condition), CreatedAt: invTime(a.CreatedAt)})
	}
	return o
}

// Reads.

// listPolicies is GET /api/v1/configuration-policies: the policies the
// caller reads, oldest first, a page at a time. With ?orgId= (always, for
// an organisation caller) the organisation's policies and its partner's
// partner-wide ones; without, every policy a partner or system caller
// reaches.
func (s *Server) listPolicies(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	narrow := ""
	if c.Scope == ScopeOrganization || req.URL.Query().Get("orgId") != "" {
		org, err := s.org(req, c)
		if err != nil {
			return err
		}
		narrow = org
	}
	out := []apiPolicy{}
	var pg map[string]int
	err := s.lc.Store().View(func(sn *store.Snapshot) error {
		v, err := s.policyView(sn, c)
		if err != nil {
			return err
		}
		partner := ""
		if narrow != "" {
			o, err := sn.Org(narrow)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				partner = o.PartnerID
			}
		}
		all, err := sn.Policies()
		if err != nil {
			return err
		}
		slices.SortStableFunc(all, func(a, b policy.Policy) int {
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
		})
		var kept []*policy.Policy
		for i := range all {
			p := &all[i]
			if !v.visible(p) {
				continue
			}
			if narrow != "" && !(p.OrgID != "" && sameID(p.OrgID, narrow) || p.OrgID == "" && partner != "" && sameID(p.PartnerID, partner)) {
				continue
			}
			kept = append(kept, p)
		}
		var page []*policy.Policy
		page, pg = invPage(req, kept)
		for _, p := range page {
			out = append(out, v.out(p))
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "policies": out, "pagination": pg})
	return nil
}

// getPolicy is GET /api/v1/configuration-policies/:id.
func (s *Server) getPolicy(w http.ResponseWriter, _ *http.Request, ps httprouter.Params, c *Caller) error {
	id, err := s.requestID(ps)
	if err != nil {
		return err
	}
	var out apiPolicy
	err = s.lc.Store().View(func(sn *store.Snapshot) error {
		v, err := s.policyView(sn, c)
		if err != nil {
			return err
		}
		p, err := v.find(id)
		if err != nil {
			return err
		}
		out = v.out(p)
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "policy": out})
	return nil
}

// Writes.

// policyBody reads a create or PATCH body: a JSON object.
func (s *Server) policyBody(w http.ResponseWriter, req *http.Request) (map[string]json.RawMessage, error) {
	var body map[string]json.RawMessage
	if err := s.decodeBody(w, req, &body); err != nil {
		return nil, err
	}
	if body == nil {
		return nil, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Message: "request body: a JSON object is required"}
	}
	return body, nil
}

// optString decodes a string field that may be null (nil) or absent.
func optString(body map[string]json.RawMessage, field string) (*string, error) {
	raw, ok := body[field]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, invBad(field, "must be a string")
	}
	return &s, nil
}

// createPolicy is POST /api/v1/configuration-policies: an organisation's
// policy (the one the request acts on, see ?orgId=) or, with partnerId, a
// partner-wide one (partner and system callers only).
func (s *Server) createPolicy(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	if c.Sites != nil {
		return invSiteDenied()
	}
	body, err := s.policyBody(w, req)
	if err != nil {
		return err
	}
	for _, k := range []string{"id", "createdAt", "updatedAt", "readOnly"} {
		if _, ok := body[k]; ok {
			return invBad(k, "is set by the server")
		}
	}
	orgField, err := optString(body, "orgId")
	if err != nil {
		return err
	}
	partnerField, err := optString(body, "partnerId")
	if err != nil {
		return err
	}
	now := s.lc.Clock().Now().UTC()
	p := policy.Policy{ID: store.NewID(now), Active: true, Features: map[string]json.RawMessage{}, Assignments: []policy.Assignment{},
		CreatedAt: now, UpdatedAt: now}
	if partnerField != nil && *partnerField != "" {
		noSuch := invBad("partnerId", "no such partner")
		switch {
		case orgField != nil && *orgField != "":
			return invBad("orgId", "a policy belongs to an organisation or, partner-wide, to a partner: give one of orgId and partnerId")
		case req.URL.Query().Get("orgId") != "":
			return &apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Target: "orgId",
				Message: "orgId: a partner-wide policy (partnerId) belongs to no organisation"}
		case c.Scope == ScopeOrganization:
			return invForbidden("partner-wide policies are written by partner and system callers")
		}
		partner, err := invUUID("partnerId", *partnerField)
		if err != nil {
			return err
		}
		if c.Scope == ScopePartner && !sameID(partner, c.PartnerID) {
			return noSuch // another partner's id reads as a missing one
		}
		p.PartnerID = partner
	} else {
		org, err := s.org(req, c)
		if err != nil {
			return err
		}
		if orgField != nil && *orgField != "" && !sameID(*orgField, org) {
			return invBad("orgId", "not the organisation this request acts on (use ?orgId=)")
		}
		p.OrgID = org
	}
	delete(body, "orgId")
	delete(body, "partnerId")
	if err := applyPolicyBody(&p, body, true, now); err != nil {
		return lifecycleError(err, nil)
	}
	if err := validateAPIPolicy(&p); err != nil {
		return lifecycleError(err, nil)
	}
	var out apiPolicy
	err = s.lc.Store().Update(func(tx *store.Tx) error {
		sn := tx.Read()
		if err := checkPolicyTargets(sn, &p, nil); err != nil {
			return err
		}
		if err := tx.PutPolicy(&p); err != nil {
			return err
		}
		if err := s.auditPolicy(tx, c, &p, auditPolicyCreated, map[string]any{"policy": &p}, nil); err != nil {
			return err
		}
		v, err := s.policyView(sn, c)
		if err != nil {
			return err
		}
		out = v.out(&p)
		return nil
	})
	if err != nil {
		return policyWriteError(err)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "policy": out})
	return nil
}

// errPolicyChanged: the policy changed between the read a PATCH was
// merged on and its write.
var errPolicyChanged = errors.New("the policy changed meanwhile")

// patchRetries is how often a PATCH is merged again when the policy
// changed under it, before it gives up with 409.
const patchRetries = 3

// patchPolicy is PATCH /api/v1/configuration-policies/:id: the body's
// fields are laid over the stored policy (null clears description;
// features merge per feature, null removing one; assignments, when given,
// replace the list, an assignment with the id of an existing one keeping
// its id and createdAt) and the result is validated whole. The merge and
// validation run outside the store's writer; the write checks the policy
// is still the one merged on, and merges again if not.
func (s *Server) patchPolicy(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
	if c.Sites != nil {
		return invSiteDenied()
	}
	id, err := s.requestID(ps)
	if err != nil {
		return err
	}
	body, err := s.policyBody(w, req)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		var old *policy.Policy
		err := s.lc.Store().View(func(sn *store.Snapshot) error {
			v, err := s.policyView(sn, c)
			if err != nil {
				return err
			}
			if old, err = v.find(id); err != nil {
				return err
			}
			if !v.writable(old) {
				return invForbidden("a partner-wide policy is changed by partner and system callers")
			}
			return nil
		})
		if err != nil {
			return err
		}
		before, err := json.Marshal(old)
		if err != nil {
			return err
		}
		now := s.lc.Clock().Now().UTC()
		next := clonePolicy(old)
		if err := applyPolicyBody(next, body, false, now); err != nil {
			return lifecycleError(err, nil)
		}
		next.UpdatedAt = now
		if err := validateAPIPolicy(next); err != nil {
			return lifecycleError(err, nil)
		}
		var out apiPolicy
		err = s.lc.Store().Update(func(tx *store.Tx) error {
			sn := tx.Read()
			cur, err := findPolicy(sn, id)
			if err != nil {
				return err
			}
			if b, err := json.Marshal(cur); err != nil {
				return err
			} else if !bytes.Equal(b, before) {
				return errPolicyChanged
			}
			kept := func(a *policy.Assignment) bool {
				return slices.ContainsFunc(cur.Assignments, func(o policy.Assignment) bool {
					return sameID(o.ID, a.ID) && o.Level == a.Level && sameID(o.Target, a.Target)
				})
			}
			if err := checkPolicyTargets(sn, next, kept); err != nil {
				return err
			}
			if err := tx.PutPolicy(next); err != nil {
				return err
			}
			if err := s.auditPolicy(tx, c, next, auditPolicyUpdated, map[string]any{"before": cur, "after": next}, changedPolicyFields(cur, next)); err != nil {
				return err
			}
			v, err := s.policyView(sn, c)
			if err != nil {
				return err
			}
			out = v.out(next)
			return nil
		})
		if errors.Is(err, errPolicyChanged) {
			if attempt < patchRetries {
				continue
			}
			return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: "the policy is being changed by someone else; try again"}
		}
		if err != nil {
			return policyWriteError(err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "policy": out})
		return nil
	}
}

// deletePolicy is DELETE /api/v1/configuration-policies/:id.
func (s *Server) deletePolicy(w http.ResponseWriter, _ *http.Request, ps httprouter.Params, c *Caller) error {
	if c.Sites != nil {
		return invSiteDenied()
	}
	id, err := s.requestID(ps)
	if err != nil {
		return err
	}
	err = s.lc.Store().Update(func(tx *store.Tx) error {
		sn := tx.Read()
		v, err := s.policyView(sn, c)
		if err != nil {
			return err
		}
		p, err := v.find(id)
		if err != nil {
			return err
		}
		if !v.writable(p) {
			return invForbidden("a partner-wide policy is deleted by partner and system callers")
		}
		if err := tx.DeletePolicy(p.ID); err != nil {
			return err
		}
		return s.auditPolicy(tx, c, p, auditPolicyDeleted, map[string]any{"policy": p}, nil)
	})
	if err != nil {
		return policyWriteError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
	return nil
}

// policyWriteError maps what a policy write returns: the API's own
// errors and validation problems as such, a policy or organisation gone
// meanwhile as 404.
func policyWriteError(err error) error {
	var ae *apiError
	var ie *store.InvalidError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("no such configuration policy")
	case errors.As(err, &ie) && ie.What == "reference":
		return errNotFound("no such organisation")
	}
	return lifecycleError(err, nil)
}

// clonePolicy copies p deeply enough to be changed without touching p.
func clonePolicy(p *policy.Policy) *policy.Policy {
	n := *p
	n.Features = make(map[string]json.RawMessage, len(p.Features))
	for k, v := range p.Features {
		n.Features[k] = v
	}
	n.Assignments = slices.Clone(p.Assignments)
	if n.Assignments == nil {
		n.Assignments = []policy.Assignment{}
	}
	if p.Description != nil {
		d := *p.Description
		n.Description = &d
	}
	return &n
}

// applyPolicyBody lays a create or PATCH body over p (for a create, p is
// the empty policy). Fields the server sets, and a change of owner, are
// refused. Assignments are replaced as a whole: one that names the id of
// an assignment p has keeps that id and its createdAt, the others are new
// (created now); a create names no assignment ids.
func applyPolicyBody(p *policy.Policy, body map[string]json.RawMessage, create bool, now time.Time) error {
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		raw := body[k]
		null := string(raw) == "null"
		switch k {
		case "id", "createdAt", "updatedAt", "readOnly":
			return invBad(k, "is set by the server")
		case "orgId", "partnerId":
			cur := p.OrgID
			if k == "partnerId" {
				cur = p.PartnerID
			}
			v, err := optString(body, k)
			if err != nil {
				return err
			}
			next := ""
			if v != nil {
				next = *v
			}
			if !(next == "" && cur == "" || sameID(next, cur)) {
				return invBad(k, "the owner of a policy cannot be changed")
			}
		case "name":
			var s string
			if null || json.Unmarshal(raw, &s) != nil {
				return invBad(k, "must be a string (it is required)")
			}
			p.Name = strings.TrimSpace(s)
		case "description":
			v, err := optString(body, k)
			if err != nil {
				return err
			}
			if v != nil && *v == "" {
				v = nil
			}
			p.Description = v
		case "active":
			var b bool
			if null || json.Unmarshal(raw, &b) != nil {
				return invBad(k, "must be true or false")
			}
			p.Active = b
		case "features":
			if null {
				p.Features = map[string]json.RawMessage{}
				continue
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(raw, &m) != nil || m == nil {
				return invBad(k, "must be an object of feature settings by feature name")
			}
			for name, settings := range m {
				if string(settings) == "null" {
					delete(p.Features, name)
					continue
				}
				var buf bytes.Buffer
				if err := json.Compact(&buf, settings); err != nil {
					return err
				}
				p.Features[name] = json.RawMessage(buf.Bytes())
			}
		case "assignments":
			as, err := decodeAssignments(raw, p.Assignments, create, now)
			if err != nil {
				return err
			}
			p.Assignments = as
		default:
			return invBad(k, "is not a known field")
		}
	}
	return nil
}

// decodeAssignments reads the assignments list of a body; old are the
// policy's assignments before the change.
func decodeAssignments(raw json.RawMessage, old []policy.Assignment, create bool, now time.Time) ([]policy.Assignment, error) {
	if string(raw) == "null" {
		return []policy.Assignment{}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, invBad("assignments", "must be a list of assignments")
	}
	out := make([]policy.Assignment, 0, len(items))
	used := map[string]int{}
	for i, item := range items {
		path := fmt.Sprintf("assignments[%d]", i)
		var m map[string]json.RawMessage
		if json.Unmarshal(item, &m) != nil || m == nil {
			return nil, invBad(path, "must be an object")
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var a policy.Assignment
		var kept *policy.Assignment
		for _, k := range keys {
			v, field := m[k], path+"."+k
			null := string(v) == "null"
			str := func() (string, error) {
				var s string
				if null || json.Unmarshal(v, &s) != nil {
					return "", invBad(field, "must be a string")
				}
				return s, nil
			}
			var err error
			switch k {
			case "id":
				if null {
					continue // a new assignment
				}
				var id string
				if id, err = str(); err != nil {
					return nil, err
				}
				if create {
					return nil, invBad(field, "is set by the server (leave it out)")
				}
				if j, dup := used[canonicalID(id)]; dup {
					return nil, invBad(field, fmt.Sprintf("the same assignment as assignments[%d]", j))
				}
				at := slices.IndexFunc(old, func(o policy.Assignment) bool { return sameID(o.ID, id) })
				if at < 0 {
					return nil, invBad(field, "no such assignment in this policy (leave id out for a new one)")
				}
				used[canonicalID(id)] = i
				kept = &old[at]
			case "level":
				var l string
				if l, err = str(); err != nil {
					return nil, err
				}
				a.Level = policy.Level(l)
			case "targetId":
				if a.Target, err = str(); err != nil {
					return nil, err
				}
			case "priority":
				if null || json.Unmarshal(v, &a.Priority) != nil {
					return nil, invBad(field, "must be an integer")
				}
			case "condition":
				if null {
					continue
				}
				if a.Condition, err = str(); err != nil {
					return nil, err
				}
			case "createdAt":
				return nil, invBad(field, "is set by the server")
			default:
				return nil, invBad(field, "is not a known field")
			}
		}
		switch {
		case kept != nil && kept.Level == a.Level && sameID(kept.Target, a.Target):
			a.ID, a.CreatedAt = kept.ID, kept.CreatedAt
		case kept != nil:
			// Moved elsewhere: it is a new assignment there, and must not
			// win ties by the age of the old one.
			a.ID, a.CreatedAt = kept.ID, now
		default:
			a.ID, a.CreatedAt = store.NewID(now), now
		}
		out = append(out, a)
	}
	return out, nil
}

// validateAPIPolicy is policy.ValidatePolicy plus what the API adds:
// targets are ids (names are for rule files), kept in canonical form.
func validateAPIPolicy(p *policy.Policy) error {
	// Targets in canonical form first, so that the policy's own checks
	// (one assignment per target among them) see them as stored.
	var es engine.FieldErrors
	for i := range p.Assignments {
		a := &p.Assignments[i]
		id, err := store.ParseID(strings.TrimSpace(a.Target))
		if err != nil || id == store.NilID {
			es = append(es, &engine.FieldError{Field: fmt.Sprintf("assignments[%d].targetId", i), Reason: "must be a UUID"})
			continue
		}
		a.Target = id.String()
	}
	if err := policy.ValidatePolicy(p); err != nil {
		var more engine.FieldErrors
		if !errors.As(err, &more) {
			return err
		}
		es = append(es, more...)
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

// checkPolicyTargets checks, inside the write, that p's owner exists and
// every assignment names an object of the owner (see the top of this
// file). Every bad target is listed; a missing target and another
// tenant's read the same.
func checkPolicyTargets(sn *store.Snapshot, p *policy.Policy, unchanged func(*policy.Assignment) bool) error {
	var orgs []store.Org
	partner, where := "", "in the policy's organisation"
	if p.OrgID != "" {
		o, err := sn.Org(p.OrgID)
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("no such organisation")
		}
		if err != nil {
			return err
		}
		orgs, partner = []store.Org{*o}, o.PartnerID
	} else {
		where = "among the partner's organisations"
		partners, err := sn.Partners()
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(partners, func(x store.Partner) bool { return sameID(x.ID, p.PartnerID) }) {
			return invBad("partnerId", "no such partner")
		}
		partner = p.PartnerID
		all, err := sn.Orgs()
		if err != nil {
			return err
		}
		for _, o := range all {
			if sameID(o.PartnerID, partner) {
				orgs = append(orgs, o)
			}
		}
	}
	inOrgs := func(id string) bool {
		return slices.ContainsFunc(orgs, func(o store.Org) bool { return sameID(o.ID, id) })
	}
	groups := map[string][]store.DeviceGroup{}
	var es engine.FieldErrors
	for i, a := range p.Assignments {
		if unchanged != nil && unchanged(&a) {
			// Checked when it was written; the hierarchy may have moved
			// since, which resolution sees (a device never gets a policy
			// its organisation does not own), so it does not block edits.
			continue
		}
		ok := false
		switch a.Level {
		case policy.LevelPartner:
			ok = partner != "" && sameID(a.Target, partner)
		case policy.LevelOrganization:
			ok = inOrgs(a.Target)
		case policy.LevelSite:
			for _, o := range orgs {
				_, err := sn.Site(o.ID, a.Target)
				if err == nil {
					ok = true
					break
				}
				if !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
		case policy.LevelDeviceGroup:
			for _, o := range orgs {
				gs, seen := groups[o.ID]
				if !seen {
					var err error
					if gs, err = sn.DeviceGroups(o.ID); err != nil {
						return err
					}
					groups[o.ID] = gs
				}
				if slices.ContainsFunc(gs, func(g store.DeviceGroup) bool { return sameID(g.ID, a.Target) }) {
					ok = true
					break
				}
			}
		case policy.LevelDevice:
			d, err := sn.Device(a.Target)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			ok = err == nil && inOrgs(d.OrgID)
		}
		if !ok {
			noun := strings.ReplaceAll(string(a.Level), "_", " ")
			reason := fmt.Sprintf("no %s with this id %s", noun, where)
			if a.Level == policy.LevelPartner {
				reason = "not the partner of the policy's owner"
			}
			es = append(es, &engine.FieldError{Field: fmt.Sprintf("assignments[%d].targetId", i), Reason: reason})
		}
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

// changedPolicyFields names the top-level fields a PATCH changed.
func changedPolicyFields(a, b *policy.Policy) []string {
	var out []string
	eq := func(x, y any) bool {
		bx, _ := json.Marshal(x)
		by, _ := json.Marshal(y)
		return bytes.Equal(bx, by)
	}
	for _, f := range []struct {
		name string
		x, y any
	}{{"name", a.Name, b.Name}, {"description", a.Description, b.Description}, {"active", a.Active, b.Active},
		{"features", a.Features, b.Features}, {"assignments", a.Assignments, b.Assignments}} {
		if !eq(f.x, f.y) {
			out = append(out, f.name)
		}
	}
	return out
}

// auditPolicy records a policy change: an organisation's policy in its
// chain with details; a partner-wide one in the chain of every
// organisation of its partner, in summary (no assignment targets, which
// may be other organisations' objects). changed names the fields an
// update changed.
func (s *Server) auditPolicy(tx *store.Tx, c *Caller, p *policy.Policy, action string, details map[string]any, changed []string) error {
	if p.OrgID != "" {
		if changed != nil {
			details["fields"] = changed
		}
		return s.invAudit(tx, c, p.OrgID, action, p.ID, "", "", details)
	}
	features := make([]string, 0, len(p.Features))
	for f := range p.Features {
		features = append(features, f)
	}
	slices.Sort(features)
	// Assignments are left out, even counted: they may name, or count,
	// other organisations' places.
	summary := map[string]any{"partnerWide": true, "partnerId": p.PartnerID, "name": p.Name, "active": p.Active,
		"features": features}
	if changed != nil {
		summary["fields"] = changed
	}
	orgs, err := tx.Orgs()
	if err != nil {
		return err
	}
	for _, o := range orgs {
		if sameID(o.PartnerID, p.PartnerID) {
			if err := s.invAudit(tx, c, o.ID, action, p.ID, "", "", summary); err != nil {
				return err
			}
		}
	}
	return nil
}

// The effective policy.

// pamSource says where a device's pam flag comes from: "policy" (the
// winning assignment's settings), "org_fallback" (the organisation's own
// setting, over the API or in its rule files) or "default" (neither: off).
func pamSource(res policy.Resolution, orgFlag *bool) string {
	switch {
	case res.Source == policy.SourcePolicy, res.Source == policy.SourceError:
		return res.Source
	case orgFlag != nil:
		return policy.SourceOrgFallback
	}
	return policy.SourceDefault
}

type apiResolution struct {
	Feature string `json:"feature"`
	// Source is the resolution's: policy, org_fallback (the winner's
	// settings are empty) or default (no assignment applies).
	Source   string          `json:"source"`
	Winner   *policy.Applied `json:"winner"`
	Settings json.RawMessage `json:"settings"` // the winner's settings; null unless source is policy
	// Effective is what the device uses: for pam {uacInterceptionEnabled,
	// source}, for software_policy the winning settings or null.
	Effective any               `json:"effective"`
	Skipped   *[]policy.Skipped `json:"skipped,omitempty"` // with explain
	// Error says the winner's settings do not decode (old data): the
	// device reads the feature's default.
	Error string `json:"error,omitempty"`
}

// effectivePolicy is GET /api/v1/devices/:id/effective-policy
// ?feature=pam|software_policy&explain=true: which policy supplies each
// feature (or the one asked for) to the device, and what the device
// therefore uses; with explain the assignments passed over, closest first,
// with why. The device is checked as GET /devices/:id does.
func (s *Server) effectivePolicy(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
	q := req.URL.Query()
	var features []string
	if f := q.Get("feature"); f != "" {
		if f != policy.FeaturePAM && f != policy.FeatureSoftwarePolicy {
			return invBad("feature", "must be pam or software_policy")
		}
		features = []string{f}
	} else {
		for _, f := range policy.Features() {
			features = append(features, f.Name)
		}
	}
	explain := false
	switch q.Get("explain") {
	case "", "false", "0":
	case "true", "1":
		explain = true
	default:
		return invBad("explain", "must be true or false")
	}
	dev, err := s.invDevice(ps, c)
	if err != nil {
		return err
	}
	out := make([]apiResolution, 0, len(features))
	for _, f := range features {
		r, err := s.lc.ResolvePolicy(dev.ID, f, explain)
		if err != nil {
			if errors.Is(err, lifecycle.ErrNotFound) {
				return errNotFound("no such device")
			}
			return lifecycleError(err, nil)
		}
		res := apiResolution{Feature: f, Source: r.Source, Winner: r.Winner, Error: r.Error}
		if r.Source == policy.SourcePolicy {
			res.Settings = r.Settings
		}
		if explain {
			skipped := r.Skipped
			if skipped == nil {
				skipped = []policy.Skipped{}
			}
			res.Skipped = &skipped
		}
		switch f {
		case policy.FeaturePAM:
			fallback := s.lc.UACInterception(r.Org) // the organisation's, or its rule files'
			on, err := policy.PamSettings(r.Resolution, fallback)
			if err != nil {
				res.Error, on = err.Error(), false
			}
			res.Effective = map[string]any{"uacInterceptionEnabled": on, "source": pamSource(r.Resolution, fallback)}
		default:
			res.Effective = res.Settings // nil marshals as null
		}
		out = append(out, res)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "deviceId": dev.ID, "orgId": dev.OrgID, "resolutions": out})
	return nil
}

// agentPamSettings is GET /api/v1/agents/:id/pam-settings: whether the
// agent of device :id captures UAC prompts (pam-semantics §10.2), from the
// closest applicable policy, else the organisation's setting, else off.
// policyId names the policy whose assignment won, when one did. Gates as
// the agent's other route: its token bound to :id (401), an inactive
// device 403.
func (s *Server) agentPamSettings(w http.ResponseWriter, req *http.Request, ps httprouter.Params) error {
	dev, err := s.agentDevice(req, ps.ByName("id"))
	if err != nil {
		return err
	}
	on, r, err := s.lc.PamSettings(dev.ID)
	if err != nil && r == nil {
		if errors.Is(err, lifecycle.ErrNotFound) {
			return errNotFound("no such device")
		}
		return lifecycleError(err, nil)
	}
	if err != nil {
		// Stored policies are validated, so only old data gets here; the
		// device reads off rather than failing.
		s.log.Warn("the winning policy's pam settings do not decode; the agent is told off", "deviceId", dev.ID, "error", err.Error())
		on = false
	}
	body := map[string]any{"success": true, "uacInterceptionEnabled": on, "source": pamSource(r.Resolution, s.lc.UACInterception(r.Org))}
	if r.Winner != nil {
		body["policyId"] = r.Winner.PolicyID
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
