package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/store"
)

// Limits of the list endpoints (pam-semantics §9).
const (
	defaultPageSize = 50
	maxPageSize     = 100
	maxActive       = 500
)

// listRequests is GET /api/v1/pam/elevation-requests.
func (s *Server) listRequests(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	q := req.URL.Query()
	f := store.Filter{OrgID: org, Sites: c.Sites}
	bad := func(field, msg string) error {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: field, Message: field + ": " + msg}
	}
	if v := q.Get("status"); v != "" {
		if !store.Status(v).Valid() {
			return bad("status", "must be one of pending, approved, auto_approved, denied, expired, revoked, actuating")
		}
		f.Status = store.Status(v)
	}
	if v := q.Get("flowType"); v != "" {
		if !engine.FlowType(v).Valid() {
			return bad("flowType", "must be uac_intercept, tech_jit_admin or ai_tool_action")
		}
		f.Flow = engine.FlowType(v)
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"deviceId", &f.DeviceID}, {"siteId", &f.SiteID}} {
		if v := q.Get(p.name); v != "" {
			if _, err := store.ParseID(v); err != nil {
				return bad(p.name, "must be a UUID")
			}
			*p.dst = canonicalID(v)
		}
	}
	if f.SiteID != "" && c.Sites != nil && !containsID(c.Sites, f.SiteID) {
		return &apiError{Status: http.StatusForbidden, Code: "SITE_DENIED", Message: "Site access denied"}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return bad(p.name, "must be an RFC 3339 time with Z or an offset")
			}
			*p.dst = t
		}
	}
	page, limit := 1, defaultPageSize
	if n, ok := leadingInt(q.Get("page")); ok && n > 0 {
		page = n
	}
	if n, ok := leadingInt(q.Get("limit")); ok && n != 0 {
		limit = min(max(n, 1), maxPageSize)
	}
	f.Offset, f.Limit = (page-1)*limit, limit
	rows, total, err := s.lc.Store().ListRequests(f)
	if err != nil {
		return err
	}
	out, err := s.apiRows(org, rows)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "requests": out,
		"pagination": map[string]int{"page": page, "limit": limit, "total": total}})
	return nil
}

// activeRequests is GET /api/v1/pam/active: grants active now, newest
// approval first, at most 500.
func (s *Server) activeRequests(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	rows, err := s.lc.Store().ActiveRequests(org, s.lc.Clock().Now(), c.Sites, maxActive)
	if err != nil {
		return err
	}
	out, err := s.apiRows(org, rows)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "active": out})
	return nil
}

// apiRows is the list endpoints' row: the stored request in the API's
// field names plus the device's host name and the site's name.
func (s *Server) apiRows(org string, rows []*store.Request) ([]map[string]any, error) {
	out := make([]map[string]any, 0, len(rows))
	hosts, sites := map[string]any{}, map[string]any{}
	err := s.lc.Store().View(func(sn *store.Snapshot) error {
		for _, r := range rows {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				return err
			}
			if _, ok := hosts[r.DeviceID]; !ok {
				hosts[r.DeviceID] = nil
				if d, err := sn.Device(r.DeviceID); err == nil {
					hosts[r.DeviceID] = d.Hostname
				} else if !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			if _, ok := sites[r.SiteID]; !ok && r.SiteID != "" {
				sites[r.SiteID] = nil
				if st, err := sn.Site(org, r.SiteID); err == nil {
					sites[r.SiteID] = st.Name
				} else if !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			m["deviceHostname"], m["siteName"] = hosts[r.DeviceID], sites[r.SiteID]
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// leadingInt reads an integer the way JavaScript's parseInt does: optional
// space and sign, then the longest run of digits; false when there is none.
func leadingInt(s string) (int, bool) {
	s = strings.TrimLeft(s, " \t\n\r")
	end := 0
	if end < len(s) && (s[end] == '-' || s[end] == '+') {
		end++
	}
	start := end
	for end < len(s) && s[end] >= '0' && s[end] <= '9' && end-start < 9 {
		end++
	}
	if end == start {
		return 0, false
	}
	n, err := strconv.Atoi(s[:end])
	return n, err == nil
}

func containsID(ids []string, id string) bool {
	for _, x := range ids {
		if sameID(x, id) {
			return true
		}
	}
	return false
}

// decodeBody reads a JSON object body into v (unknown fields are errors).
func (s *Server) decodeBody(w http.ResponseWriter, req *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, s.maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "PAYLOAD_TOO_LARGE", Message: "request body is too large"}
		case errors.As(err, &te):
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: te.Field, Message: te.Field + ": must be a " + te.Type.String()}
		}
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Message: "request body: " + err.Error()}
	}
	if dec.More() {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Message: "request body: one JSON object expected"}
	}
	return nil
}

func actor(c *Caller) lifecycle.Actor {
	return lifecycle.Actor{Kind: store.ActorUser, ID: c.ID, Name: c.Name}
}

// requestID reads the :id of a request route (400 unless a UUID).
func (s *Server) requestID(ps httprouter.Params) (string, error) {
	id := ps.ByName("id")
	if _, err := store.ParseID(id); err != nil {
		return "", &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "id", Message: "id: must be a UUID"}
	}
	return canonicalID(id), nil
}

// respond is POST /api/v1/pam/elevation-requests/:id/respond.
func (s *Server) respond(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
	var body struct {
		Decision        string  `json:"decision"`
		Reason          *string `json:"reason"`
		DurationMinutes *int    `json:"durationMinutes"`
		Proof           any     `json:"proof"`
		ReauthPassword  *string `json:"reauthPassword"`
		ReauthMfaCode   *string `json:"reauthMfaCode"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	id, err := s.requestID(ps)
	if err != nil {
		return err
	}
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	r, err := s.lc.Respond(lifecycle.RespondInput{OrgID: org, ID: id, Decision: body.Decision, Reason: body.Reason,
		DurationMinutes: body.DurationMinutes, Actor: actor(c), Sites: c.Sites})
	if err != nil {
		return lifecycleError(err, nil)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "id": r.ID, "status": r.Status})
	return nil
}

// revoke is POST /api/v1/pam/elevation-requests/:id/revoke.
func (s *Server) revoke(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
	var body struct {
		Reason string `json:"reason"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	id, err := s.requestID(ps)
	if err != nil {
		return err
	}
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	r, err := s.lc.Revoke(lifecycle.RevokeInput{OrgID: org, ID: id, Reason: body.Reason, Actor: actor(c), Sites: c.Sites})
	if err != nil {
		return lifecycleError(err, nil)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "id": r.ID, "status": r.Status})
	return nil
}

// actuate is POST /api/v1/devices/:id/actuate-elevation: queue the go
// signal for an approved UAC elevation on the device.
func (s *Server) actuate(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
	var body struct {
		ElevationRequestID string  `json:"elevationRequestId"`
		TimeoutMs          int     `json:"timeoutMs"`
		Username           *string `json:"username"`
		Password           *string `json:"password"` // accepted and ignored: no credential crosses the wire
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	var dev *store.Device
	err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		dev, err = sn.Device(ps.ByName("id"))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("no such device")
	}
	if err != nil {
		return err
	}
	if ok, err := s.reaches(c, dev.OrgID); err != nil {
		return err
	} else if !ok {
		return errNotFound("no such device")
	}
	cmd, err := s.lc.Actuate(lifecycle.ActuateInput{OrgID: dev.OrgID, DeviceID: dev.ID, RequestID: body.ElevationRequestID,
		TimeoutMs: body.TimeoutMs, Actor: actor(c), Sites: c.Sites})
	if err != nil {
		return lifecycleError(err, nil)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": cmd.ID, "deviceId": cmd.DeviceID, "type": cmd.Type, "status": cmd.Status,
		"elevationRequestId": cmd.ElevationRequestID, "createdAt": cmd.CreatedAt.UTC().Format(time.RFC3339Nano)})
	return nil
}

// reaches reports whether the caller may see organisation org.
func (s *Server) reaches(c *Caller, org string) (bool, error) {
	switch c.Scope {
	case ScopeSystem:
		return true, nil
	case ScopeOrganization:
		return sameID(c.OrgID, org), nil
	}
	var o *store.Org
	err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		o, err = sn.Org(org)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && c.PartnerID != "" && sameID(o.PartnerID, c.PartnerID), err
}
