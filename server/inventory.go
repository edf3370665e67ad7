package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// Inventory administration: partners, organisations, sites, device groups
// and devices. Reads need devices:read; writes need devices:write and MFA.
// Tenancy is checked on every call: an organisation, site, group or device
// the caller cannot reach is reported as not found, never as forbidden. The
// site axis (a caller restricted to some sites) is a 403 SITE_DENIED on
// writes and on a device read by id, and a silent narrowing of lists.

// Bounds of inventory fields.
const (
	invMaxName       = 200 // partner, organisation, site and group names, in characters
	invMaxHostname   = 255
	invMaxOS         = 100
	invMaxGroups     = 100 // groups one device is in
	invMaxAttributes = 64  // attribute keys of one device
	invMaxAttrKey    = 64  // characters of an attribute key
)

// Audit actions of inventory changes.
const (
	auditOrgCreated          = "org_created"
	auditSiteCreated         = "site_created"
	auditGroupCreated        = "device_group_created"
	auditDeviceCreated       = "device_created"
	auditDeviceUpdated       = "device_updated"
	auditDeviceStatusChanged = "device_status_changed"
	auditDeviceTokenRotated  = "device_token_rotated"
)

// inventoryRoutes registers the inventory administration endpoints.
func (s *Server) inventoryRoutes() {
	const p = "/api/v1"
	read := func(h userHandler) httprouter.Handle { return s.user(PermRead, false, h) }
	write := func(h userHandler) httprouter.Handle { return s.user(PermWrite, true, h) }
	s.route("GET", p+"/partners", SurfaceInventory, read(s.invListPartners))
	s.route("POST", p+"/partners", SurfaceInventory, write(s.invCreatePartner))
	s.route("GET", p+"/orgs", SurfaceInventory, read(s.invListOrgs))
	s.route("GET", p+"/orgs/:id", SurfaceInventory, read(s.invGetOrg))
	s.route("POST", p+"/orgs", SurfaceInventory, write(s.invCreateOrg))
	s.route("GET", p+"/sites", SurfaceInventory, read(s.invListSites))
	s.route("POST", p+"/sites", SurfaceInventory, write(s.invCreateSite))
	s.route("GET", p+"/device-groups", SurfaceInventory, read(s.invListGroups))
	s.route("POST", p+"/device-groups", SurfaceInventory, write(s.invCreateGroup))
	s.route("GET", p+"/devices", SurfaceInventory, read(s.invListDevices))
	s.route("POST", p+"/devices", SurfaceInventory, write(s.invCreateDevice))
	s.route("GET", p+"/devices/:id", SurfaceInventory, read(s.invGetDevice))
	s.route("PATCH", p+"/devices/:id", SurfaceInventory, write(s.invPatchDevice))
	s.route("POST", p+"/devices/:id/token", SurfaceInventory, write(s.invRotateToken))
}

// API shapes. They are written out rather than taken from the store's
// JSON so that nothing stored (a device's token hash) leaks by accident.

type invPartner struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	CreatedAt *string `json:"createdAt"`
}

type invOrg struct {
	ID        string    `json:"id"`
	PartnerID *string   `json:"partnerId"`
	Name      string    `json:"name"`
	CreatedAt *string   `json:"createdAt"`
	PAM       invOrgPAM `json:"pam"`
}

// invOrgPAM is the organisation's PAM settings, read-only here (the PAM
// configuration endpoint changes them).
type invOrgPAM struct {
	DefaultUnmatchedVerdict engine.Verdict `json:"defaultUnmatchedVerdict"`
	UacInterceptionEnabled  *bool          `json:"uacInterceptionEnabled"`
	ActuatorEnabled         bool           `json:"actuatorEnabled"`
}

type invSite struct {
	ID        string  `json:"id"`
	OrgID     string  `json:"orgId"`
	Name      string  `json:"name"`
	CreatedAt *string `json:"createdAt"`
}

type invGroup struct {
	ID        string  `json:"id"`
	OrgID     string  `json:"orgId"`
	Name      string  `json:"name"`
	CreatedAt *string `json:"createdAt"`
}

type invDevice struct {
	ID         string         `json:"id"`
	OrgID      string         `json:"orgId"`
	SiteID     *string        `json:"siteId"`
	GroupIDs   []string       `json:"groupIds"`
	Hostname   string         `json:"hostname"`
	Status     string         `json:"status"`
	OS         *string        `json:"os"`
	Attributes map[string]any `json:"attributes"`
	// HasAgentToken says whether an agent token is set (never the token
	// or its hash).
	HasAgentToken bool    `json:"hasAgentToken"`
	CreatedAt     *string `json:"createdAt"`
}

func invTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

func invOpt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func invPartnerOf(p *store.Partner) invPartner {
	return invPartner{ID: p.ID, Name: p.Name, CreatedAt: invTime(p.CreatedAt)}
}

func invOrgOf(o *store.Org) invOrg {
	v := o.DefaultUnmatchedVerdict
	if v == "" {
		v = engine.VerdictRequireApproval
	}
	return invOrg{ID: o.ID, PartnerID: invOpt(o.PartnerID), Name: o.Name, CreatedAt: invTime(o.CreatedAt),
		PAM: invOrgPAM{DefaultUnmatchedVerdict: v, UacInterceptionEnabled: o.UacInterceptionEnabled, ActuatorEnabled: o.ActuatorEnabled}}
}

func invSiteOf(st *store.Site) invSite {
	return invSite{ID: st.ID, OrgID: st.OrgID, Name: st.Name, CreatedAt: invTime(st.CreatedAt)}
}

func invGroupOf(g *store.DeviceGroup) invGroup {
	return invGroup{ID: g.ID, OrgID: g.OrgID, Name: g.Name, CreatedAt: invTime(g.CreatedAt)}
}

func invDeviceOf(d *store.Device) invDevice {
	out := invDevice{ID: d.ID, OrgID: d.OrgID, SiteID: invOpt(d.SiteID), GroupIDs: append([]string{}, d.GroupIDs...),
		Hostname: d.Hostname, Status: d.Status, OS: invOpt(d.OS), Attributes: d.Attributes,
		HasAgentToken: d.TokenHash != "", CreatedAt: invTime(d.CreatedAt)}
	if out.Status == "" {
		out.Status = store.DeviceActive
	}
	if out.Attributes == nil {
		out.Attributes = map[string]any{}
	}
	return out
}

// Errors and checks.

func invBad(field, msg string) error {
	return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: field, Message: field + ": " + msg}
}

func invSiteDenied() error {
	return &apiError{Status: http.StatusForbidden, Code: "SITE_DENIED", Message: "Site access denied"}
}

func invForbidden(msg string) error {
	return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: msg}
}

// invStoreError maps what the store refuses to write: a missing
// organisation is a 404, an invalid value a 400 (its target taken from the
// problem's leading field name, else fallback), a contradiction of stored
// state a 409.
func invStoreError(err error, fallback string) error {
	var ie *store.InvalidError
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ie) && ie.What == "reference":
		return errNotFound("no such organisation") // the caller's own org is not in the store
	case errors.As(err, &ie):
		target := fallback
		if len(ie.Problems) > 0 {
			if f, _, ok := strings.Cut(ie.Problems[0], ":"); ok && !strings.ContainsAny(f, " ") {
				target = f
			}
		}
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: target, Message: ie.Error()}
	case errors.As(err, &ce):
		return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: ce.Error()}
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("not found")
	}
	return err
}

// invSiteAllowed reports whether the caller may act on a device at site;
// for a site-restricted caller a device without a site is not allowed.
func invSiteAllowed(c *Caller, site string) bool {
	if c.Sites == nil {
		return true
	}
	return site != "" && containsID(c.Sites, site)
}

// invText checks a free-text field: trimmed, at most max characters, no
// control characters, and present when required. Absent (nil) gives "".
func invText(field string, v *string, required bool, max int) (string, error) {
	if v == nil {
		if required {
			return "", invBad(field, "is required")
		}
		return "", nil
	}
	t := strings.TrimSpace(*v)
	switch {
	case t == "" && required:
		return "", invBad(field, "is required")
	case utf8.RuneCountInString(t) > max:
		return "", invBad(field, fmt.Sprintf("must be at most %d characters", max))
	case strings.ContainsFunc(t, unicode.IsControl):
		return "", invBad(field, "must not contain control characters")
	}
	return t, nil
}

// invUUID parses an id field into its canonical form.
func invUUID(field, v string) (string, error) {
	id, err := store.ParseID(strings.TrimSpace(v))
	if err != nil || id == store.NilID {
		return "", invBad(field, "must be a UUID")
	}
	return id.String(), nil
}

func invStatus(field, v string) (string, error) {
	switch v {
	case store.DeviceActive, store.DeviceQuarantined, store.DeviceDecommissioned:
		return v, nil
	}
	return "", invBad(field, "must be one of active, quarantined, decommissioned")
}

func invAttributes(a map[string]any) error {
	if len(a) > invMaxAttributes {
		return invBad("attributes", fmt.Sprintf("at most %d attributes", invMaxAttributes))
	}
	for k := range a {
		if strings.TrimSpace(k) == "" || utf8.RuneCountInString(k) > invMaxAttrKey || strings.ContainsFunc(k, unicode.IsControl) {
			return invBad("attributes", fmt.Sprintf("keys must be 1 to %d characters without control characters", invMaxAttrKey))
		}
	}
	return nil
}

// invGroupIDs canonicalises and de-duplicates group ids, keeping the
// caller's order.
func invGroupIDs(in []string) ([]string, error) {
	if len(in) > invMaxGroups {
		return nil, invBad("groupIds", fmt.Sprintf("at most %d groups", invMaxGroups))
	}
	out := make([]string, 0, len(in))
	for _, g := range in {
		id, err := invUUID("groupIds", g)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// invCheckRefs verifies that site and groups exist in org (400 naming the
// field otherwise), so that a reference never reaches across tenants. The
// store checks the same again inside the write.
func (s *Server) invCheckRefs(org, site string, groups []string) error {
	return s.lc.Store().View(func(sn *store.Snapshot) error {
		if site != "" {
			if _, err := sn.Site(org, site); errors.Is(err, store.ErrNotFound) {
				return invBad("siteId", "no such site in the organisation")
			} else if err != nil {
				return err
			}
		}
		if len(groups) == 0 {
			return nil
		}
		all, err := sn.DeviceGroups(org)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if !slices.ContainsFunc(all, func(x store.DeviceGroup) bool { return sameID(x.ID, g) }) {
				return invBad("groupIds", "no such group in the organisation: "+g)
			}
		}
		return nil
	})
}

// invPage applies the list conventions (page from 1, limit 1 to 100,
// default 50) to rows already in their stable order.
func invPage[T any](req *http.Request, rows []T) ([]T, map[string]int) {
	q := req.URL.Query()
	page, limit := 1, defaultPageSize
	if n, ok := leadingInt(q.Get("page")); ok && n > 0 {
		page = n
	}
	if n, ok := leadingInt(q.Get("limit")); ok && n != 0 {
		limit = min(max(n, 1), maxPageSize)
	}
	total := len(rows)
	from := min((page-1)*limit, total)
	to := min(from+limit, total)
	return rows[from:to], map[string]int{"page": page, "limit": limit, "total": total}
}

func (s *Server) invAudit(tx *store.Tx, c *Caller, org, action, subject, from, to string, details map[string]any) error {
	rec := store.AuditRecord{OrgID: org, At: s.lc.Clock().Now(), Action: action, ActorKind: store.ActorUser,
		ActorID: c.ID, ActorName: c.Name, Subject: subject, From: from, To: to}
	if len(details) > 0 {
		b, err := json.Marshal(details)
		if err != nil {
			return err
		}
		rec.Details = b
	}
	tx.Audit(rec)
	return nil
}

// newAgentToken makes a device's agent token: 24 random bytes, base64url.
func newAgentToken() string {
	var b [24]byte
	rand.Read(b[:]) // crypto/rand does not fail on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Partners.

// invListPartners is GET /api/v1/partners: every partner for a system
// caller, its own for a partner caller.
func (s *Server) invListPartners(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	if c.Scope == ScopeOrganization {
		return invForbidden("partners are listed by partner and system callers")
	}
	var all []store.Partner
	if err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		all, err = sn.Partners()
		return err
	}); err != nil {
		return err
	}
	out := []invPartner{}
	for i := range all {
		if c.Scope == ScopeSystem || c.PartnerID != "" && sameID(all[i].ID, c.PartnerID) {
			out = append(out, invPartnerOf(&all[i]))
		}
	}
	page, pg := invPage(req, out)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "partners": page, "pagination": pg})
	return nil
}

// invCreatePartner is POST /api/v1/partners (system callers only).
func (s *Server) invCreatePartner(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	if c.Scope != ScopeSystem {
		return invForbidden("only a system caller may create partners")
	}
	if c.Sites != nil {
		return invSiteDenied()
	}
	var body struct {
		Name *string `json:"name"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	name, err := invText("name", body.Name, true, invMaxName)
	if err != nil {
		return err
	}
	now := s.lc.Clock().Now().UTC()
	p := &store.Partner{ID: store.NewID(now), Name: name, CreatedAt: now}
	if err := s.lc.Store().Update(func(tx *store.Tx) error { return tx.PutPartner(p) }); err != nil {
		return invStoreError(err, "name")
	}
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "partner": invPartnerOf(p)})
	return nil
}

// Organisations.

// invListOrgs is GET /api/v1/orgs: the organisations the caller reaches.
func (s *Server) invListOrgs(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	var all []store.Org
	if err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		all, err = sn.Orgs()
		return err
	}); err != nil {
		return err
	}
	out := []invOrg{}
	for i := range all {
		o := &all[i]
		ok := false
		switch c.Scope {
		case ScopeSystem:
			ok = true
		case ScopePartner:
			ok = c.PartnerID != "" && sameID(o.PartnerID, c.PartnerID)
		case ScopeOrganization:
			ok = sameID(o.ID, c.OrgID)
		}
		if ok {
			out = append(out, invOrgOf(o))
		}
	}
	page, pg := invPage(req, out)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "orgs": page, "pagination": pg})
	return nil
}

// invGetOrg is GET /api/v1/orgs/:id.
func (s *Server) invGetOrg(w http.ResponseWriter, _ *http.Request, ps httprouter.Params, c *Caller) error {
	id, err := s.requestID(ps)
	if err != nil {
		return err
	}
	if ok, err := s.reaches(c, id); err != nil {
		return err
	} else if !ok {
		return errNotFound("no such organisation")
	}
	var o *store.Org
	err = s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		o, err = sn.Org(id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("no such organisation")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "org": invOrgOf(o)})
	return nil
}

// invCreateOrg is POST /api/v1/orgs: a partner caller creates under its
// own partner, a system caller under partnerId or none.
func (s *Server) invCreateOrg(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	switch {
	case c.Scope == ScopeOrganization:
		return invForbidden("organisations are created by partner and system callers")
	case c.Scope == ScopePartner && c.PartnerID == "":
		return invForbidden("the caller names no partner")
	case c.Sites != nil:
		return invSiteDenied()
	}
	var body struct {
		Name      *string `json:"name"`
		PartnerID *string `json:"partnerId"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	name, err := invText("name", body.Name, true, invMaxName)
	if err != nil {
		return err
	}
	partner := ""
	if body.PartnerID != nil && *body.PartnerID != "" {
		if partner, err = invUUID("partnerId", *body.PartnerID); err != nil {
			return err
		}
	}
	noSuch := invBad("partnerId", "no such partner")
	if c.Scope == ScopePartner {
		if partner != "" && !sameID(partner, c.PartnerID) {
			return noSuch // another partner's id reads as a missing one
		}
		if partner, err = invUUID("partnerId", c.PartnerID); err != nil {
			return noSuch
		}
	}
	now := s.lc.Clock().Now().UTC()
	o := &store.Org{ID: store.NewID(now), PartnerID: partner, Name: name, CreatedAt: now}
	err = s.lc.Store().Update(func(tx *store.Tx) error {
		if err := tx.PutOrg(o); err != nil {
			return err
		}
		return s.invAudit(tx, c, o.ID, auditOrgCreated, o.ID, "", "", map[string]any{"name": o.Name, "partnerId": o.PartnerID})
	})
	if err != nil {
		var ie *store.InvalidError
		if errors.As(err, &ie) && len(ie.Problems) > 0 && strings.HasPrefix(ie.Problems[0], "partnerId:") {
			return noSuch
		}
		return invStoreError(err, "name")
	}
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "org": invOrgOf(o)})
	return nil
}

// Sites and device groups.

// invListSites is GET /api/v1/sites: the organisation's sites, narrowed to
// the caller's own for a site-restricted caller.
func (s *Server) invListSites(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	var all []store.Site
	if err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		all, err = sn.Sites(org)
		return err
	}); err != nil {
		return err
	}
	out := []invSite{}
	for i := range all {
		if invSiteAllowed(c, all[i].ID) {
			out = append(out, invSiteOf(&all[i]))
		}
	}
	page, pg := invPage(req, out)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "sites": page, "pagination": pg})
	return nil
}

// invCreateSite is POST /api/v1/sites?orgId=. A site-restricted caller
// cannot create sites.
func (s *Server) invCreateSite(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, name, now, err := s.invNamedBody(w, req, c)
	if err != nil {
		return err
	}
	st := &store.Site{ID: store.NewID(now), OrgID: org, Name: name, CreatedAt: now}
	err = s.lc.Store().Update(func(tx *store.Tx) error {
		if err := tx.PutSite(st); err != nil {
			return err
		}
		return s.invAudit(tx, c, org, auditSiteCreated, st.ID, "", "", map[string]any{"name": st.Name})
	})
	if err != nil {
		return invStoreError(err, "name")
	}
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "site": invSiteOf(st)})
	return nil
}

// invNamedBody reads the create body of a site or device group ({name})
// and the organisation it goes to. Both are organisation-wide objects, so
// a site-restricted caller cannot create them.
func (s *Server) invNamedBody(w http.ResponseWriter, req *http.Request, c *Caller) (org, name string, now time.Time, err error) {
	if c.Sites != nil {
		return "", "", now, invSiteDenied()
	}
	var body struct {
		Name *string `json:"name"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return "", "", now, err
	}
	if org, err = s.org(req, c); err != nil {
		return "", "", now, err
	}
	if name, err = invText("name", body.Name, true, invMaxName); err != nil {
		return "", "", now, err
	}
	return org, name, s.lc.Clock().Now().UTC(), nil
}

// invListGroups is GET /api/v1/device-groups. Groups belong to the
// organisation, not to a site, so a site-restricted caller sees them all
// (it needs their ids to place its devices).
func (s *Server) invListGroups(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	var all []store.DeviceGroup
	if err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		all, err = sn.DeviceGroups(org)
		return err
	}); err != nil {
		return err
	}
	out := make([]invGroup, len(all))
	for i := range all {
		out[i] = invGroupOf(&all[i])
	}
	page, pg := invPage(req, out)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "deviceGroups": page, "pagination": pg})
	return nil
}

// invCreateGroup is POST /api/v1/device-groups?orgId=. Groups are
// organisation-wide, so a site-restricted caller cannot create them.
func (s *Server) invCreateGroup(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, name, now, err := s.invNamedBody(w, req, c)
	if err != nil {
		return err
	}
	g := &store.DeviceGroup{ID: store.NewID(now), OrgID: org, Name: name, CreatedAt: now}
	err = s.lc.Store().Update(func(tx *store.Tx) error {
		if err := tx.PutDeviceGroup(g); err != nil {
			return err
		}
		return s.invAudit(tx, c, org, auditGroupCreated, g.ID, "", "", map[string]any{"name": g.Name})
	})
	if err != nil {
		return invStoreError(err, "name")
	}
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "deviceGroup": invGroupOf(g)})
	return nil
}

// Devices.

// invListDevices is GET /api/v1/devices?orgId=&siteId=&groupId=&status=:
// the organisation's devices in id (creation) order. A site-restricted
// caller sees only the devices of its sites; devices without a site are
// hidden from it.
func (s *Server) invListDevices(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	q := req.URL.Query()
	var site, group, status string
	if v := q.Get("siteId"); v != "" {
		if site, err = invUUID("siteId", v); err != nil {
			return err
		}
		if !invSiteAllowed(c, site) {
			return invSiteDenied()
		}
	}
	if v := q.Get("groupId"); v != "" {
		if group, err = invUUID("groupId", v); err != nil {
			return err
		}
	}
	if v := q.Get("status"); v != "" {
		if status, err = invStatus("status", v); err != nil {
			return err
		}
	}
	var all []store.Device
	if err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		all, err = sn.Devices(org)
		return err
	}); err != nil {
		return err
	}
	out := []invDevice{}
	for i := range all {
		d := &all[i]
		switch {
		case !invSiteAllowed(c, d.SiteID),
			site != "" && !sameID(d.SiteID, site),
			group != "" && !containsID(d.GroupIDs, group),
			status != "" && invDeviceOf(d).Status != status:
			continue
		}
		out = append(out, invDeviceOf(d))
	}
	page, pg := invPage(req, out)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "devices": page, "pagination": pg})
	return nil
}

// invDevice reads device :id for the caller: 400 for an id that is not a
// UUID, 404 when it does not exist or its organisation is out of reach,
// 403 SITE_DENIED when it is not at one of a restricted caller's sites.
func (s *Server) invDevice(ps httprouter.Params, c *Caller) (*store.Device, error) {
	id, err := s.requestID(ps)
	if err != nil {
		return nil, err
	}
	var d *store.Device
	err = s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		d, err = sn.Device(id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("no such device")
	}
	if err != nil {
		return nil, err
	}
	if ok, err := s.reaches(c, d.OrgID); err != nil {
		return nil, err
	} else if !ok {
		return nil, errNotFound("no such device")
	}
	if !invSiteAllowed(c, d.SiteID) {
		return nil, invSiteDenied()
	}
	return d, nil
}

// invReread reads device id again inside a write and repeats the checks
// that depend on it: the same organisation as read before, and the site
// axis.
func invReread(tx *store.Tx, c *Caller, before *store.Device) (*store.Device, error) {
	d, err := tx.Device(before.ID)
	if errors.Is(err, store.ErrNotFound) || err == nil && d.OrgID != before.OrgID {
		return nil, errNotFound("no such device")
	}
	if err != nil {
		return nil, err
	}
	if !invSiteAllowed(c, d.SiteID) {
		return nil, invSiteDenied()
	}
	return d, nil
}

// invGetDevice is GET /api/v1/devices/:id.
func (s *Server) invGetDevice(w http.ResponseWriter, _ *http.Request, ps httprouter.Params, c *Caller) error {
	d, err := s.invDevice(ps, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "device": invDeviceOf(d)})
	return nil
}

// invCreateDevice is POST /api/v1/devices?orgId=: 201 with the device and
// its agent token, which is shown this once (only its hash is stored).
func (s *Server) invCreateDevice(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	var body struct {
		Hostname   *string        `json:"hostname"`
		SiteID     *string        `json:"siteId"`
		GroupIDs   []string       `json:"groupIds"`
		OS         *string        `json:"os"`
		Status     *string        `json:"status"`
		Attributes map[string]any `json:"attributes"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	host, err := invText("hostname", body.Hostname, true, invMaxHostname)
	if err != nil {
		return err
	}
	site := ""
	if body.SiteID != nil && *body.SiteID != "" {
		if site, err = invUUID("siteId", *body.SiteID); err != nil {
			return err
		}
	}
	if !invSiteAllowed(c, site) {
		return invSiteDenied()
	}
	groups, err := invGroupIDs(body.GroupIDs)
	if err != nil {
		return err
	}
	osName, err := invText("os", body.OS, false, invMaxOS)
	if err != nil {
		return err
	}
	status := store.DeviceActive
	if body.Status != nil {
		if status, err = invStatus("status", *body.Status); err != nil {
			return err
		}
	}
	if err := invAttributes(body.Attributes); err != nil {
		return err
	}
	if err := s.invCheckRefs(org, site, groups); err != nil {
		return err
	}
	now := s.lc.Clock().Now().UTC()
	token := newAgentToken()
	d := &store.Device{ID: store.NewID(now), OrgID: org, SiteID: site, GroupIDs: groups, Hostname: host, Status: status,
		OS: osName, Attributes: body.Attributes, TokenHash: store.TokenHash(token), CreatedAt: now}
	if len(d.GroupIDs) == 0 {
		d.GroupIDs = nil
	}
	err = s.lc.Store().Update(func(tx *store.Tx) error {
		if err := tx.PutDevice(d); err != nil {
			return err
		}
		return s.invAudit(tx, c, org, auditDeviceCreated, d.ID, "", d.Status,
			map[string]any{"hostname": d.Hostname, "siteId": d.SiteID, "groupIds": d.GroupIDs})
	})
	if err != nil {
		return invStoreError(err, "hostname")
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "device": invDeviceOf(d), "agentToken": token})
	return nil
}

// invPatchDevice is PATCH /api/v1/devices/:id: change hostname, site
// (null or "" removes it), groups (the list replaces the old one), os,
// status and attributes (the object replaces the old one). Absent fields
// are kept. A site-restricted caller needs both the old and the new site
// to be its own.
func (s *Server) invPatchDevice(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
	var body struct {
		Hostname   *string         `json:"hostname"`
		SiteID     json.RawMessage `json:"siteId"`
		GroupIDs   *[]string       `json:"groupIds"`
		OS         *string         `json:"os"`
		Status     *string         `json:"status"`
		Attributes *map[string]any `json:"attributes"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	before, err := s.invDevice(ps, c)
	if err != nil {
		return err
	}
	var host, osName, status string
	if body.Hostname != nil {
		if host, err = invText("hostname", body.Hostname, true, invMaxHostname); err != nil {
			return err
		}
	}
	if body.OS != nil {
		if osName, err = invText("os", body.OS, false, invMaxOS); err != nil {
			return err
		}
	}
	if body.Status != nil {
		if status, err = invStatus("status", *body.Status); err != nil {
			return err
		}
	}
	setSite, site := false, ""
	if body.SiteID != nil {
		setSite = true
		var v *string
		if err := json.Unmarshal(body.SiteID, &v); err != nil {
			return invBad("siteId", "must be a UUID, or null to remove the site")
		}
		if v != nil && *v != "" {
			if site, err = invUUID("siteId", *v); err != nil {
				return err
			}
		}
		if !invSiteAllowed(c, site) {
			return invSiteDenied()
		}
	}
	var groups []string
	if body.GroupIDs != nil {
		if groups, err = invGroupIDs(*body.GroupIDs); err != nil {
			return err
		}
	}
	if body.Attributes != nil {
		if err := invAttributes(*body.Attributes); err != nil {
			return err
		}
	}
	if err := s.invCheckRefs(before.OrgID, site, groups); err != nil {
		return err
	}
	var after *store.Device
	err = s.lc.Store().Update(func(tx *store.Tx) error {
		d, err := invReread(tx, c, before)
		if err != nil {
			return err
		}
		old := *d
		changed := []string{}
		if body.Hostname != nil && host != d.Hostname {
			d.Hostname, changed = host, append(changed, "hostname")
		}
		if setSite && site != d.SiteID {
			d.SiteID, changed = site, append(changed, "siteId")
		}
		if body.GroupIDs != nil && !slices.Equal(groups, d.GroupIDs) {
			d.GroupIDs, changed = groups, append(changed, "groupIds")
			if len(d.GroupIDs) == 0 {
				d.GroupIDs = nil
			}
		}
		if body.OS != nil && osName != d.OS {
			d.OS, changed = osName, append(changed, "os")
		}
		if body.Attributes != nil && !reflect.DeepEqual(*body.Attributes, d.Attributes) && len(*body.Attributes)+len(d.Attributes) > 0 {
			d.Attributes, changed = *body.Attributes, append(changed, "attributes")
			if len(d.Attributes) == 0 {
				d.Attributes = nil
			}
		}
		oldStatus := invDeviceOf(&old).Status
		if body.Status != nil && status != oldStatus {
			d.Status = status
		}
		after = d
		if len(changed) == 0 && d.Status == old.Status {
			return nil
		}
		if err := tx.PutDevice(d); err != nil {
			return err
		}
		if len(changed) > 0 {
			details := map[string]any{"fields": changed}
			if slices.Contains(changed, "siteId") {
				details["fromSiteId"], details["toSiteId"] = old.SiteID, d.SiteID
			}
			if err := s.invAudit(tx, c, d.OrgID, auditDeviceUpdated, d.ID, "", "", details); err != nil {
				return err
			}
		}
		if d.Status != oldStatus {
			return s.invAudit(tx, c, d.OrgID, auditDeviceStatusChanged, d.ID, oldStatus, d.Status, nil)
		}
		return nil
	})
	if err != nil {
		return invStoreError(err, "id")
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "device": invDeviceOf(after)})
	return nil
}

// invRotateToken is POST /api/v1/devices/:id/token: a new agent token,
// shown this once; the old one stops working when this returns. The body
// is empty or {}.
func (s *Server) invRotateToken(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
	if req.ContentLength != 0 {
		var body struct{}
		if err := s.decodeBody(w, req, &body); err != nil {
			return err
		}
	}
	before, err := s.invDevice(ps, c)
	if err != nil {
		return err
	}
	token := newAgentToken()
	var after *store.Device
	err = s.lc.Store().Update(func(tx *store.Tx) error {
		d, err := invReread(tx, c, before)
		if err != nil {
			return err
		}
		d.TokenHash = store.TokenHash(token)
		if err := tx.PutDevice(d); err != nil {
			return err
		}
		after = d
		return s.invAudit(tx, c, d.OrgID, auditDeviceTokenRotated, d.ID, "", "", nil)
	})
	if err != nil {
		return invStoreError(err, "id")
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "device": invDeviceOf(after), "agentToken": token})
	return nil
}
