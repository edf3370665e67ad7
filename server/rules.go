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

	"github.com/elevate-pam/elevate/dsl"
	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/simulate"
	"github.com/elevate-pam/elevate/store"
)

// pamRoutes registers rules, signer groups, org settings, preview,
// simulation and the stateless decision (pam-semantics §1, §8, §11 for the gates).
func (s *Server) pamRoutes() {
	s.route("GET", "/api/v1/pam/rules", SurfacePAM, s.user(PermRead, false, s.listRules))
	s.route("POST", "/api/v1/pam/rules", SurfacePAM, s.user(PermWrite, true, s.createRule))
	s.route("PATCH", "/api/v1/pam/rules/:id", SurfacePAM, s.user(PermWrite, true, s.patchRule))
	s.route("DELETE", "/api/v1/pam/rules/:id", SurfacePAM, s.user(PermWrite, true, s.deleteWith(s.lc.DeleteRule)))
	s.route("POST", "/api/v1/pam/rules/preview", SurfacePAM, s.user(PermWrite, false, s.previewRule))
	s.route("POST", "/api/v1/pam/rules/simulate", SurfacePAM, s.user(PermWrite, false, s.simulateRules))
	s.route("GET", "/api/v1/pam/signer-groups", SurfacePAM, s.user(PermRead, false, s.listSignerGroups))
	s.route("POST", "/api/v1/pam/signer-groups", SurfacePAM, s.user(PermWrite, true, s.createSignerGroup))
	s.route("PATCH", "/api/v1/pam/signer-groups/:id", SurfacePAM, s.user(PermWrite, true, s.patchSignerGroup))
	s.route("DELETE", "/api/v1/pam/signer-groups/:id", SurfacePAM, s.user(PermWrite, true, s.deleteWith(s.lc.DeleteSignerGroup)))
	s.route("GET", "/api/v1/pam/config", SurfacePAM, s.user(PermRead, false, s.getConfig))
	s.route("PUT", "/api/v1/pam/config", SurfacePAM, s.user(PermWrite, true, s.putConfig))
	s.route("POST", "/api/v1/pam/decide", SurfacePAM, s.user(PermRead, false, s.decide))
}

func admin(c *Caller) lifecycle.Admin { return lifecycle.Admin{Actor: actor(c), Sites: c.Sites} }

// apiRule is a rule as the list shows it: stored rules are "api", rules
// from the rule files are "file" (read-only over the API) with the place
// they were declared.
type apiRule struct {
	engine.Rule
	Source string `json:"source"`
	Origin string `json:"origin,omitempty"`
}

// listRules is GET /api/v1/pam/rules: the stored rules and those the rule
// files give the organisation, in evaluation order; ?format=pam prints the
// stored ones in the rule language instead. Site-restricted callers see
// only rules of their sites.
func (s *Server) listRules(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	format := req.URL.Query().Get("format")
	if format != "" && format != "json" && format != "pam" {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "format", Message: "format: must be json or pam"}
	}
	o, rs, err := s.orgRules(req, c)
	if err != nil {
		return err
	}
	visible := func(r *engine.Rule) bool { return ruleVisible(c, r) }
	if format == "pam" {
		return s.exportRules(w, rs, visible)
	}
	fileRules, _, origins := s.lc.FileRulesOf(o)
	out := make([]apiRule, 0, len(rs.Rules)+len(fileRules))
	for i := range fileRules {
		fileRules[i].OrgID = o.ID
		if visible(&fileRules[i]) {
			out = append(out, apiRule{Rule: fileRules[i], Source: "file", Origin: origins[i]})
		}
	}
	for i := range rs.Rules {
		if visible(&rs.Rules[i]) {
			out = append(out, apiRule{Rule: rs.Rules[i], Source: "api"})
		}
	}
	sortRules(out)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "rules": out})
	return nil
}

// orgRules reads the organisation a request acts on and its stored rules
// and signer groups, in one snapshot.
func (s *Server) orgRules(req *http.Request, c *Caller) (*store.Org, *store.RuleSet, error) {
	org, err := s.org(req, c)
	if err != nil {
		return nil, nil, err
	}
	var o *store.Org
	var rs *store.RuleSet
	err = s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		if o, err = sn.Org(org); err != nil {
			return err
		}
		rs, err = sn.RuleSet(org)
		return err
	})
	return o, rs, err
}

// ruleVisible says whether a caller may see a rule (pam-semantics §9): a
// site-restricted caller sees only rules of its sites, not org-wide ones.
func ruleVisible(c *Caller, r *engine.Rule) bool {
	return c.Sites == nil || r.SiteID != nil && containsID(c.Sites, *r.SiteID)
}

// sortRules puts rules in evaluation order: priority, createdAt, id.
func sortRules(rs []apiRule) {
	slices.SortStableFunc(rs, func(a, b apiRule) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
}

// exportRules writes the organisation's stored rules and signer groups as
// one rule file. Anything the language cannot carry is named in a comment
// at the top and left out.
func (s *Server) exportRules(w http.ResponseWriter, rs *store.RuleSet, visible func(*engine.Rule) bool) error {
	b := &dsl.Bundle{}
	for _, r := range rs.Rules {
		if visible(&r) {
			r.OrgID = ""
			b.Rules = append(b.Rules, r)
		}
	}
	for _, g := range rs.SignerGroups {
		g.OrgID = ""
		b.SignerGroups = append(b.SignerGroups, g)
	}
	files, errs := dsl.FromBundle(b)
	var buf bytes.Buffer
	for _, e := range errs {
		fmt.Fprintf(&buf, "# not exported: %s\n", strings.ReplaceAll(e.Error(), "\n", " "))
	}
	if len(errs) > 0 {
		buf.WriteString("\n")
	}
	if f := files[""]; f != nil {
		buf.Write(syntax.Format(f))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
	return nil
}

// createRule is POST /api/v1/pam/rules.
func (s *Server) createRule(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := s.decodeBody(w, req, &raw); err != nil {
		return err
	}
	rule, err := lifecycle.DecodeRule(raw)
	if err != nil {
		return lifecycleError(err, nil)
	}
	body := *rule
	if body.OrgID != "" && !sameID(body.OrgID, org) {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "orgId", Message: "orgId: not the organisation this request acts on (use ?orgId=)"}
	}
	if body.ID != "" || !body.CreatedAt.IsZero() || !body.UpdatedAt.IsZero() || body.CreatedByUserID != "" {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Message: "id, createdAt, updatedAt and createdByUserId are set by the server"}
	}
	r, err := s.lc.CreateRule(org, body, admin(c))
	if err != nil {
		return lifecycleError(err, nil)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "rule": apiRule{Rule: *r, Source: "api"}})
	return nil
}

// patchRule is PATCH /api/v1/pam/rules/:id: the body's fields are laid
// over the stored rule (null clears one) and the result is validated whole.
func (s *Server) patchRule(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
	org, id, err := s.orgAndID(req, ps, c)
	if err != nil {
		return err
	}
	var patch map[string]json.RawMessage
	if err := s.decodeBody(w, req, &patch); err != nil {
		return err
	}
	if patch == nil {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Message: "request body: a JSON object is required"}
	}
	r, err := s.lc.PatchRule(org, id, patch, admin(c))
	if err != nil {
		return lifecycleError(err, nil)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "rule": apiRule{Rule: *r, Source: "api"}})
	return nil
}

// deleteWith is DELETE of a rule or signer group by :id.
func (s *Server) deleteWith(del func(org, id string, a lifecycle.Admin) error) userHandler {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
		org, id, err := s.orgAndID(req, ps, c)
		if err != nil {
			return err
		}
		if err := del(org, id, admin(c)); err != nil {
			return lifecycleError(err, nil)
		}
		writeJSON(w, http.StatusOK, map[string]any{"success": true})
		return nil
	}
}

// orgAndID resolves the organisation a request acts on and the route's
// :id (400 unless a UUID).
func (s *Server) orgAndID(req *http.Request, ps httprouter.Params, c *Caller) (string, string, error) {
	org, err := s.org(req, c)
	if err != nil {
		return "", "", err
	}
	id, err := s.requestID(ps)
	return org, id, err
}

// previewRule is POST /api/v1/pam/rules/preview (pam-semantics §8): a
// draft's criteria against the organisation's recent requests. The draft
// is the body's criteria, or one rule in the rule language (source).
func (s *Server) previewRule(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	o, stored, err := s.orgRules(req, c)
	if err != nil {
		return lifecycleError(err, nil)
	}
	org := o.ID
	var body map[string]json.RawMessage
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	_, fromSource := body["source"]
	if fromSource {
		for k := range body {
			if k != "source" && !slices.Contains(simulate.PreviewOptionKeys, k) {
				return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: k, Message: k + ": not with source (the rule text is the draft)"}
			}
		}
	}
	opts, err := historyOptions(body, c)
	if err != nil {
		return err
	}
	groups := s.orgGroups(o, stored.SignerGroups)
	var draft engine.Rule
	if fromSource {
		ds, err := compileDraftSource(body["source"], o)
		if err != nil {
			return err
		}
		if len(ds.rules) != 1 {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "source",
				Message: fmt.Sprintf("source: a preview needs exactly one rule (the text declares %d)", len(ds.rules))}
		}
		// The preview tries the draft as the organisation's: so are the
		// groups it declares.
		draft = ds.rules[0]
		for _, g := range ds.groups {
			g.OrgID = org
			groups = append(groups, g)
		}
	} else if draft, err = simulate.DraftFromBody(body); err != nil {
		return lifecycleError(err, nil)
	}
	res, err := simulate.PreviewFrom(s.history, simulate.PreviewInput{Ctx: req.Context(), OrgID: org, Draft: draft, Groups: groups, WindowDays: opts.days,
		Flow: opts.flow, SiteID: opts.site, Sites: c.Sites, Now: s.lc.Clock().Now(), MaxScan: s.previewMaxScan()})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool `json:"success"`
		*simulate.PreviewResult
	}{true, res})
	return nil
}

// listSignerGroups is GET /api/v1/pam/signer-groups, by name.
func (s *Server) listSignerGroups(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	o, rs, err := s.orgRules(req, c)
	if err != nil {
		return err
	}
	type apiGroup struct {
		engine.SignerGroup
		Source string `json:"source"`
	}
	out := make([]apiGroup, 0, len(rs.SignerGroups))
	for _, g := range rs.SignerGroups {
		out = append(out, apiGroup{g, "api"})
	}
	_, fileGroups, _ := s.lc.FileRulesOf(o)
	for _, g := range fileGroups {
		g.OrgID = o.ID
		out = append(out, apiGroup{g, "file"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "signerGroups": out})
	return nil
}

func (s *Server) createSignerGroup(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	var body lifecycle.SignerGroupInput
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	g, err := s.lc.CreateSignerGroup(org, body, admin(c))
	if err != nil {
		return lifecycleError(err, nil)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "signerGroup": g})
	return nil
}

func (s *Server) patchSignerGroup(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
	org, id, err := s.orgAndID(req, ps, c)
	if err != nil {
		return err
	}
	var body lifecycle.SignerGroupInput
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	g, err := s.lc.UpdateSignerGroup(org, id, body, admin(c))
	if err != nil {
		return lifecycleError(err, nil)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "signerGroup": g})
	return nil
}

// orgConfigBody is the organisation's PAM settings as the API shows them.
func (s *Server) orgConfigBody(o *store.Org) map[string]any {
	eff := s.lc.OrgConfig(o)
	def := eff.DefaultUnmatchedVerdict
	if def == "" {
		def = engine.VerdictRequireApproval
	}
	return map[string]any{"orgId": o.ID, "defaultUnmatchedVerdict": def, "uacInterceptionEnabled": s.lc.UACInterception(o),
		"actuatorEnabled": o.ActuatorEnabled}
}

// getConfig is GET /api/v1/pam/config: the effective settings.
func (s *Server) getConfig(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	var o *store.Org
	if err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		o, err = sn.Org(org)
		return err
	}); err != nil {
		return lifecycleError(err, nil)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "config": s.orgConfigBody(o)})
	return nil
}

// putConfig is PUT /api/v1/pam/config: sets the settings the body names
// (uacInterceptionEnabled: null clears it back to "not set").
func (s *Server) putConfig(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := s.decodeBody(w, req, &raw); err != nil {
		return err
	}
	var in lifecycle.ConfigInput
	for k, v := range raw {
		var err error
		switch k {
		case "defaultUnmatchedVerdict":
			err = json.Unmarshal(v, &in.DefaultUnmatchedVerdict)
			if err == nil && in.DefaultUnmatchedVerdict == nil {
				err = errors.New("null")
			}
		case "uacInterceptionEnabled":
			if string(v) == "null" {
				in.ClearUacInterception = true
			} else {
				err = json.Unmarshal(v, &in.UacInterceptionEnabled)
			}
		case "actuatorEnabled":
			err = json.Unmarshal(v, &in.ActuatorEnabled)
			if err == nil && in.ActuatorEnabled == nil {
				err = errors.New("null")
			}
		default:
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: k, Message: k + ": is not a known field"}
		}
		if err != nil {
			want := "a boolean"
			if k == "defaultUnmatchedVerdict" {
				want = "require_approval or auto_deny"
			}
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: k, Message: k + ": must be " + want}
		}
	}
	o, err := s.lc.SetConfig(org, in, admin(c))
	if err != nil {
		return lifecycleError(err, nil)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "config": s.orgConfigBody(o)})
	return nil
}

// decide is POST /api/v1/pam/decide: the decision (and, with explain, its
// trace) the organisation's live rules give an observation. Nothing is
// stored; this is for testing agents and rules.
func (s *Server) decide(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	raw, err := s.readBody(w, req)
	if err != nil {
		return err
	}
	var body decideBody
	if !fastDecideBody(raw, &body) {
		if err := decodeJSON(raw, &body); err != nil {
			return err
		}
	}
	if body.DeviceID != "" {
		if _, err := store.ParseID(body.DeviceID); err != nil {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "deviceId", Message: "deviceId: must be a UUID"}
		}
	}
	if body.Observation.SiteID != "" {
		if _, err := store.ParseID(body.Observation.SiteID); err != nil {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "observation.siteId", Message: "observation.siteId: must be a UUID"}
		}
		body.Observation.SiteID = canonicalID(body.Observation.SiteID)
	}
	if c.Sites != nil {
		// A site-restricted caller decides only for its sites, and its
		// trace shows only the rules it may list.
		site := body.Observation.SiteID
		if body.DeviceID != "" {
			var dev *store.Device
			err := s.lc.Store().View(func(sn *store.Snapshot) error {
				var err error
				dev, err = sn.Device(body.DeviceID)
				return err
			})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil && sameID(dev.OrgID, org) {
				site = dev.SiteID
			}
		}
		if site == "" || !containsID(c.Sites, site) {
			return lifecycleError(lifecycle.ErrSiteDenied, nil)
		}
	}
	in := lifecycle.EvaluateInput{Flow: body.FlowType, Observation: body.Observation, DeviceID: body.DeviceID, Explain: body.Explain}
	if body.At != nil {
		in.At = *body.At
	}
	start := time.Now()
	d, err := s.lc.Evaluate(org, in)
	if err != nil {
		if errors.Is(err, lifecycle.ErrNotFound) {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "deviceId", Message: "deviceId: no such device in the organisation"}
		}
		return lifecycleError(err, observationFields)
	}
	s.recordDecision(string(body.FlowType), string(d.Outcome), time.Since(start))
	if c.Sites != nil && len(d.Explain) > 0 {
		if d.Explain, err = s.visibleTrace(org, c, d.Explain); err != nil {
			return err
		}
	}
	out, err := d.AppendJSON(append(make([]byte, 0, 512), `{"success":true,"decision":`...))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(append(out, "}\n"...))
	return nil
}

// visibleTrace keeps the trace entries a site-restricted caller may see:
// software-policy stages, and rules of its sites (as GET /pam/rules).
func (s *Server) visibleTrace(org string, c *Caller, trace []engine.TraceEntry) ([]engine.TraceEntry, error) {
	rs, _, err := s.lc.RuleSet(org)
	if err != nil {
		return nil, err
	}
	visible := map[string]bool{}
	for _, r := range rs.Rules() {
		if r.ID != "" && ruleVisible(c, &r) {
			visible[r.ID] = true
		}
	}
	out := trace[:0:0]
	for _, e := range trace {
		if e.RuleID == "" && e.RuleName == "" || visible[e.RuleID] {
			out = append(out, e)
		}
	}
	return out, nil
}

// observationFields names observation fields as the decide body nests them.
var observationFields = func() map[string]string {
	m := map[string]string{}
	for _, f := range []string{"subjectUsername", "targetExecutablePath", "targetExecutableHash", "targetExecutableSigner",
		"targetExecutableSignerThumbprint", "parentImage", "commandLine", "adGroups", "toolName", "riskTier",
		"requestedDurationMinutes", "observedAt"} {
		m[f] = "observation." + f
		m["observation."+f] = "observation." + f
	}
	return m
}()
