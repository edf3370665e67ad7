package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/odata"
	"github.com/elevate-pam/elevate/store"
)

// Limits of the list endpoints (pam-semantics §9).
const (
	defaultPageSize = 50
	maxPageSize     = 100
	maxActive       = 500
)

// Limits of OData queries on the request list: a $filter or a
// non-default $orderby is answered by scanning rows, at most
// maxFilterScan of them (narrow with from/to, status, …), and a
// non-default order sorts at most maxSortRows matches.
const (
	maxFilterScan = 100_000
	maxSortRows   = 10_000
)

// requestSchema is the request list row's properties as $filter and
// $orderby may name them.
var requestSchema = odata.Schema{
	"id": odata.GUID, "orgId": odata.GUID, "deviceId": odata.GUID, "siteId": odata.GUID,
	"flowType": odata.String, "status": odata.String, "subjectUsername": odata.String, "subjectUserId": odata.String,
	"targetExecutablePath": odata.String, "targetExecutableHash": odata.String, "targetExecutableSigner": odata.String,
	"parentImage": odata.String, "commandLine": odata.String, "toolName": odata.String, "riskTier": odata.Number,
	"pid": odata.Number, "actionDigest": odata.String, "executionId": odata.String, "reason": odata.String,
	"requestedAt": odata.DateTime, "createdAt": odata.DateTime, "approvedAt": odata.DateTime, "expiresAt": odata.DateTime,
	"deniedAt": odata.DateTime, "revokedAt": odata.DateTime, "expiredAt": odata.DateTime, "actuatedAt": odata.DateTime,
	"approvedBy": odata.String, "approvedByName": odata.String, "approvalReason": odata.String,
	"deniedBy": odata.String, "deniedByName": odata.String, "denialReason": odata.String,
	"revokedBy": odata.String, "revokedByName": odata.String, "revokedReason": odata.String, "expiredCause": odata.String,
	"matchedPolicyName": odata.String, "pamRuleId": odata.String, "pamRuleName": odata.String, "decisionSource": odata.String,
	"durationMinutes": odata.Number, "deviceHostname": odata.String, "siteName": odata.String,
}

// listQuery is a parsed request-list query.
type listQuery struct {
	f           store.Filter // without OrgID, Offset and Limit
	page, limit int
	offset      int
	filter      *odata.Filter
	order       []odata.OrderKey // nil: requestedAt desc, id desc
}

// parseListQuery reads the list's query parameters (pam-semantics §9)
// and the OData ones: $filter, $orderby, $top (a page size, ≤ 100) and
// $skip (rows to skip; with it, page is ignored).
func parseListQuery(q url.Values, c *Caller) (*listQuery, error) {
	lq := &listQuery{f: store.Filter{Sites: c.Sites}}
	f := &lq.f
	bad := func(field, msg string) error {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: field, Message: field + ": " + msg}
	}
	if v := q.Get("status"); v != "" {
		if !store.Status(v).Valid() {
			return nil, bad("status", "must be one of pending, approved, auto_approved, denied, expired, revoked, actuating")
		}
		f.Status = store.Status(v)
	}
	if v := q.Get("flowType"); v != "" {
		if !engine.FlowType(v).Valid() {
			return nil, bad("flowType", "must be uac_intercept, tech_jit_admin or ai_tool_action")
		}
		f.Flow = engine.FlowType(v)
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"deviceId", &f.DeviceID}, {"siteId", &f.SiteID}} {
		if v := q.Get(p.name); v != "" {
			if _, err := store.ParseID(v); err != nil {
				return nil, bad(p.name, "must be a UUID")
			}
			*p.dst = canonicalID(v)
		}
	}
	if f.SiteID != "" && c.Sites != nil && !containsID(c.Sites, f.SiteID) {
		return nil, &apiError{Status: http.StatusForbidden, Code: "SITE_DENIED", Message: "Site access denied"}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, bad(p.name, "must be an RFC 3339 time with Z or an offset")
			}
			*p.dst = t
		}
	}
	lq.page, lq.limit = 1, defaultPageSize
	if n, ok := leadingInt(q.Get("page")); ok && n > 0 {
		lq.page = n
	}
	if n, ok := leadingInt(q.Get("limit")); ok && n != 0 {
		lq.limit = min(max(n, 1), maxPageSize)
	}
	if v, ok := q["$top"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 || n > maxPageSize {
			return nil, bad("$top", fmt.Sprintf("must be an integer from 0 to %d", maxPageSize))
		}
		lq.limit = n
	}
	lq.offset = (lq.page - 1) * lq.limit
	if v, ok := q["$skip"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 {
			return nil, bad("$skip", "must be a non-negative integer")
		}
		lq.offset = n
	}
	if v := q.Get("$filter"); v != "" {
		flt, err := odata.ParseFilter(v, requestSchema)
		if err != nil {
			return nil, odataError("$filter", err)
		}
		lq.filter = flt
	}
	if v := q.Get("$orderby"); v != "" {
		keys, err := odata.ParseOrderBy(v, requestSchema)
		if err != nil {
			return nil, odataError("$orderby", err)
		}
		if !(len(keys) == 1 && keys[0].Field == "requestedAt" && keys[0].Desc) {
			lq.order = keys
		}
	}
	return lq, nil
}

// odataError reports a bad $filter or $orderby with the position of the
// offending character.
func odataError(param string, err error) error {
	var oe *odata.Error
	if errors.As(err, &oe) {
		return &apiError{Status: http.StatusBadRequest, Code: "INVALID_QUERY", Target: param, Message: param + ": " + oe.Error(),
			Details: map[string]any{"position": oe.Pos}}
	}
	return &apiError{Status: http.StatusBadRequest, Code: "INVALID_QUERY", Target: param, Message: param + ": " + err.Error()}
}

// listRequests is GET /api/v1/pam/elevation-requests: newest first, one
// organisation's rows, or — for a partner or system caller who names no
// orgId — the rows of every organisation they reach.
func (s *Server) listRequests(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	lq, err := parseListQuery(req.URL.Query(), c)
	if err != nil {
		return err
	}
	orgs, err := s.listOrgs(req, c)
	if err != nil {
		return err
	}
	var out []map[string]any
	var total int
	if lq.filter == nil && lq.order == nil {
		out, total, err = s.pageByIndex(orgs, lq)
	} else {
		out, total, err = s.pageByScan(orgs, lq)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "requests": out,
		"pagination": map[string]int{"page": lq.page, "limit": lq.limit, "total": total}})
	return nil
}

// newestFirst orders API rows by requestedAt desc, then id desc.
func newestFirst(a, b map[string]any) int {
	return odata.Compare(a, b, []odata.OrderKey{{Field: "requestedAt", Desc: true, Kind: odata.DateTime}, {Field: "id", Desc: true, Kind: odata.GUID}})
}

// pageByIndex answers from the store's indexes: each organisation's first
// offset+limit rows, merged.
func (s *Server) pageByIndex(orgs []string, lq *listQuery) ([]map[string]any, int, error) {
	var all []map[string]any
	total := 0
	for _, org := range orgs {
		f := lq.f
		f.OrgID = org
		if len(orgs) == 1 {
			f.Offset, f.Limit = lq.offset, lq.limit
		} else {
			f.Offset, f.Limit = 0, lq.offset+lq.limit
		}
		if lq.limit == 0 {
			f.Offset, f.Limit = math.MaxInt32, 1 // count only
		}
		rows, n, err := s.lc.Store().ListRequests(f)
		if err != nil {
			return nil, 0, err
		}
		total += n
		if lq.limit == 0 {
			continue
		}
		m, err := s.apiRows(org, rows)
		if err != nil {
			return nil, 0, err
		}
		all = append(all, m...)
	}
	if len(orgs) == 1 {
		return nonNil(all), total, nil
	}
	slices.SortFunc(all, newestFirst)
	return nonNil(window(all, lq.offset, lq.limit)), total, nil
}

// pageByScan answers a $filter or a non-default $orderby by walking the
// rows newest first and testing each as the API shows it.
func (s *Server) pageByScan(orgs []string, lq *listQuery) ([]map[string]any, int, error) {
	var kept []map[string]any
	total, scanned := 0, 0
	need := lq.offset + lq.limit
	for _, org := range orgs {
		var rows []*store.Request
		var scanErr error
		err := s.lc.Store().ScanRequests(store.ScanOptions{OrgID: org, From: lq.f.From, To: lq.f.To, Newest: true}, func(r *store.Request) bool {
			scanned++
			if scanned > maxFilterScan {
				scanErr = &apiError{Status: http.StatusBadRequest, Code: "QUERY_TOO_BROAD",
					Message: fmt.Sprintf("the query would read more than %d requests; narrow it with from/to, status, flowType, deviceId or siteId", maxFilterScan)}
				return false
			}
			if lq.f.Matches(r) {
				rows = append(rows, r)
			}
			return true
		})
		if err == nil {
			err = scanErr
		}
		if err != nil {
			return nil, 0, err
		}
		m, err := s.apiRows(org, rows)
		if err != nil {
			return nil, 0, err
		}
		for _, row := range m {
			if lq.filter != nil {
				ok, err := lq.filter.Match(row)
				if err != nil {
					return nil, 0, err
				}
				if !ok {
					continue
				}
			}
			total++
			if lq.order == nil && len(orgs) == 1 {
				if total <= need {
					kept = append(kept, row)
				}
				continue
			}
			kept = append(kept, row)
			if len(kept) > maxSortRows {
				return nil, 0, &apiError{Status: http.StatusBadRequest, Code: "QUERY_TOO_BROAD",
					Message: fmt.Sprintf("more than %d rows match; narrow the query to sort it by other than requestedAt", maxSortRows)}
			}
		}
	}
	if lq.order != nil {
		keys := append(slices.Clone(lq.order), odata.OrderKey{Field: "id", Desc: true, Kind: odata.GUID})
		slices.SortStableFunc(kept, func(a, b map[string]any) int { return odata.Compare(a, b, keys) })
	} else if len(orgs) > 1 {
		slices.SortFunc(kept, newestFirst)
	}
	return nonNil(window(kept, lq.offset, lq.limit)), total, nil
}

func window[T any](xs []T, offset, limit int) []T {
	if offset >= len(xs) {
		return nil
	}
	return xs[offset:min(len(xs), offset+limit)]
}

func nonNil(rows []map[string]any) []map[string]any {
	if rows == nil {
		return []map[string]any{}
	}
	return rows
}

// reachable lists the organisations a partner or system caller reaches.
func (s *Server) reachable(c *Caller) ([]string, error) {
	var orgs []store.Org
	if err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		orgs, err = sn.Orgs()
		return err
	}); err != nil {
		return nil, err
	}
	var reach []string
	for _, o := range orgs {
		if c.Scope == ScopeSystem || c.Scope == ScopePartner && c.PartnerID != "" && sameID(o.PartnerID, c.PartnerID) {
			reach = append(reach, o.ID)
		}
	}
	return reach, nil
}

// listOrgs is the organisations a list reads: the one named by ?orgId=
// (or an organisation-scope caller's own), else every organisation a
// partner or system caller reaches.
func (s *Server) listOrgs(req *http.Request, c *Caller) ([]string, error) {
	if c.Scope == ScopeOrganization || req.URL.Query().Get("orgId") != "" {
		org, err := s.org(req, c)
		if err != nil {
			return nil, err
		}
		return []string{org}, nil
	}
	return s.reachable(c)
}

// activeRequests is GET /api/v1/pam/active: grants active now, newest
// approval first, at most 500 — of one organisation, or of every one a
// partner or system caller reaches when they name none.
func (s *Server) activeRequests(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	orgs, err := s.listOrgs(req, c)
	if err != nil {
		return err
	}
	now := s.lc.Clock().Now()
	var out []map[string]any
	for _, org := range orgs {
		rows, err := s.lc.Store().ActiveRequests(org, now, c.Sites, maxActive)
		if err != nil {
			return err
		}
		m, err := s.apiRows(org, rows)
		if err != nil {
			return err
		}
		out = append(out, m...)
	}
	if len(orgs) > 1 {
		slices.SortStableFunc(out, func(a, b map[string]any) int {
			return odata.Compare(a, b, []odata.OrderKey{{Field: "approvedAt", Desc: true, Kind: odata.DateTime}, {Field: "id", Desc: true, Kind: odata.GUID}})
		})
		out = window(out, 0, maxActive)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "active": nonNil(out)})
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
	b, err := s.readBody(w, req)
	if err != nil {
		return err
	}
	return decodeJSON(b, v)
}

// readBody reads the whole request body: 413 over the server's limit.
func (s *Server) readBody(w http.ResponseWriter, req *http.Request) ([]byte, error) {
	return s.readBodyUpTo(w, req, s.maxBody)
}

// readBodyUpTo is readBody with the limit given.
func (s *Server) readBodyUpTo(w http.ResponseWriter, req *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, req.Body, limit)
	// io.ReadAll's loop, sized by the declared length (+1 for the read
	// that finds the end) so a body is read into one allocation.
	size := int64(512)
	if n := req.ContentLength; n > 0 && n <= limit {
		size = n + 1
	}
	b := make([]byte, 0, size)
	var err error
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		var m int
		m, err = body.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			break
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "PAYLOAD_TOO_LARGE",
				Message: fmt.Sprintf("request body is over %d bytes", limit)}
		}
		return nil, &apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Message: "request body could not be read"}
	}
	return b, nil
}

// decodeJSON reads one JSON object from b into v; unknown fields are
// errors.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
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
	devID, err := s.requestID(ps) // a device id: the same UUID check
	if err != nil {
		return err
	}
	var dev *store.Device
	err = s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		dev, err = sn.Device(devID)
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
