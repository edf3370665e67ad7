package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
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

// MaxDraftRules bounds the draft rules of one simulation.
const MaxDraftRules = 10_000

// MaxDraftBody bounds a simulation's request body when the server's own
// limit is lower: a whole candidate rule set is larger than the bodies
// other routes take.
const MaxDraftBody = 8 << 20

// draftFile is the name rule-language drafts are compiled under: their
// diagnostics say draft.pam:line:col.
const draftFile = "draft.pam"

// Simulation modes: the drafts join the organisation's live rules (a
// draft with a live rule's id replaces it), or they are its whole rule set.
const (
	modeAdd     = "add"
	modeReplace = "replace"
)

// historyOpts are the options preview and simulate share: which of the
// organisation's requests to read.
type historyOpts struct {
	days int
	flow engine.FlowType // "" = every flow
	site string          // "" = every site
}

// historyOptKeys are the body keys historyOptions reads.
var historyOptKeys = []string{"windowDays", "flowType", "siteId"}

// historyOptions reads windowDays (1–90, default 30), flowType and siteId
// from a preview or simulate body. A siteId outside a site-restricted
// caller's sites is 403.
func historyOptions(body map[string]json.RawMessage, c *Caller) (historyOpts, error) {
	var in struct {
		WindowDays *int
		FlowType   engine.FlowType
		SiteID     *string
	}
	for i, dst := range []any{&in.WindowDays, &in.FlowType, &in.SiteID} {
		k := historyOptKeys[i]
		if v, ok := body[k]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return historyOpts{}, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: k, Message: k + ": has the wrong type"}
			}
		}
	}
	o := historyOpts{days: simulate.DefaultWindowDays, flow: in.FlowType}
	if in.WindowDays != nil {
		if *in.WindowDays < 1 || *in.WindowDays > simulate.MaxWindowDays {
			return o, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "windowDays", Message: "windowDays: must be 1 to 90"}
		}
		o.days = *in.WindowDays
	}
	if o.flow != "" && !o.flow.Valid() {
		return o, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "flowType", Message: "flowType: must be uac_intercept, tech_jit_admin or ai_tool_action"}
	}
	if in.SiteID != nil {
		if _, err := store.ParseID(*in.SiteID); err != nil {
			return o, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "siteId", Message: "siteId: must be a UUID"}
		}
		o.site = canonicalID(*in.SiteID)
		if c.Sites != nil && !containsID(c.Sites, o.site) {
			return o, lifecycleError(lifecycle.ErrSiteDenied, nil)
		}
	}
	return o, nil
}

// draftSet is rule-language draft text compiled: its rules (where each is
// declared) and signer groups.
type draftSet struct {
	rules  []engine.Rule
	ruleAt []dsl.Origin
	groups []engine.SignerGroup
}

// compileDraftSource compiles rule-language text (a JSON string) the way a rule file is
// compiled (and its tests run) for the organisation o: an error is a 400
// naming draft.pam:line:col. A file declaring another organisation is
// refused; one declaring none is o's. Settings and software policies are
// refused: they stay live. The draft's rules can name only the signer
// groups it declares, as in a rule file.
func compileDraftSource(raw json.RawMessage, o *store.Org) (*draftSet, error) {
	var src string
	if err := json.Unmarshal(raw, &src); err != nil {
		return nil, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "source", Message: "source: must be a string"}
	}
	repo := dsl.Load(map[string]string{draftFile: src})
	rep := dsl.Check(repo, dsl.CheckOptions{})
	if n := rep.Diags.Errors(); n > 0 {
		var first dsl.Diagnostic
		for _, d := range rep.Diags {
			if d.Severity == dsl.SevError {
				first = d
				break
			}
		}
		msg := diagText(first.File, first.Pos, first.Msg)
		if n > 1 {
			msg += fmt.Sprintf(" (and %d more errors)", n-1)
		}
		diags := rep.Diags
		if diags == nil {
			diags = dsl.Diagnostics{}
		}
		return nil, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "source", Message: msg,
			Details: map[string]any{"diagnostics": diags}}
	}
	bad := func(pos syntax.Pos, format string, a ...any) error {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "source", Message: diagText(draftFile, pos, fmt.Sprintf(format, a...))}
	}
	if len(repo.Files) != 1 || len(repo.Orgs) != 1 {
		return nil, bad(syntax.Pos{}, "the draft must be one rule file")
	}
	org := repo.Orgs[0]
	if org.Name != "" && !strings.EqualFold(org.Name, o.Name) && !sameID(org.Name, o.ID) {
		pos := syntax.Pos{}
		for _, d := range repo.Files[0].AST.Decls {
			if d.Kind == syntax.KindOrg && d.Label != nil {
				pos = d.Label.Pos
				break
			}
		}
		return nil, bad(pos, "the draft declares org %q, not the organisation this request acts on (%s)", org.Name, o.Name)
	}
	if len(org.Policies) > 0 {
		return nil, bad(org.PolicyAt[0].Pos, "a draft holds rules and signer groups: software policies stay as they are live")
	}
	if org.ConfigAt != nil {
		return nil, bad(org.ConfigAt.Pos, "a draft holds rules and signer groups: the organisation's settings stay as they are live")
	}
	if n := rep.Failed(); n > 0 {
		var parts []string
		for _, t := range rep.Tests {
			if !t.Passed {
				parts = append(parts, fmt.Sprintf("%s:%d: test %q failed: %s", draftFile, t.Line, t.Name, strings.Join(t.Failures, "; ")))
			}
		}
		return nil, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "source", Message: strings.Join(parts, "\n")}
	}
	// Rules and groups keep the org the file names, as rule files' do (so a
	// group redeclared from a rule file stands in for it there too); a rule
	// without an id gets one derived from its name.
	ds := &draftSet{rules: org.Rules, ruleAt: org.RuleAt, groups: org.Groups}
	for i := range ds.rules {
		if ds.rules[i].ID == "" {
			ds.rules[i].ID = dsl.DerivedID("rule", o.ID, ds.rules[i].Name)
		}
	}
	return ds, nil
}

func diagText(file string, pos syntax.Pos, msg string) string {
	if file == "" {
		file = draftFile
	}
	if !pos.IsValid() {
		return file + ": " + msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, pos.Line, pos.Col, msg)
}

// orgGroups is every signer group an organisation's rules may name: the
// stored ones and those of the rule files, all as the organisation's (a
// draft is the organisation's, whatever org a file names).
func (s *Server) orgGroups(o *store.Org, stored []engine.SignerGroup) []engine.SignerGroup {
	_, fileGroups, _ := s.lc.FileRulesOf(o)
	groups := slices.Clone(stored)
	for _, g := range fileGroups {
		g.OrgID = o.ID
		groups = append(groups, g)
	}
	return groups
}

// prefixFieldErrors names a list item's field errors as the body does
// (rules[3].matchHash).
func prefixFieldErrors(err error, prefix string) error {
	var fes engine.FieldErrors
	if !errors.As(err, &fes) {
		return err
	}
	out := make(engine.FieldErrors, len(fes))
	for i, fe := range fes {
		c := *fe
		if c.Field == "" {
			c.Field = prefix
		} else {
			c.Field = prefix + "." + c.Field
		}
		out[i] = &c
	}
	return out
}

// draftRef names a draft rule in the answer, with the id it was given.
type draftRef struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Replaces bool   `json:"replaces"`
}

// simulateResult is the answer of POST /pam/rules/simulate.
type simulateResult struct {
	Success      bool       `json:"success"`
	Mode         string     `json:"mode"`
	WindowDays   int        `json:"windowDays"`
	TotalScanned int        `json:"totalScanned"`
	Truncated    bool       `json:"truncated"`
	Drafts       []draftRef `json:"drafts"`
	*simulate.DiffReport
}

// simulateRules is POST /api/v1/pam/rules/simulate: every stored request
// of the window replayed through the organisation's live rule set and
// through a candidate (the live rules with draft rules added or replaced,
// or the drafts alone), with the impact: the outcome transitions, the
// flipped requests by responsible rule (new auto-approvals first) and what
// each rule did on each side.
func (s *Server) simulateRules(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	org, err := s.org(req, c)
	if err != nil {
		return err
	}
	var body map[string]json.RawMessage
	raw, err := s.readBodyUpTo(w, req, max(s.maxBody, MaxDraftBody))
	if err != nil {
		return err
	}
	if err := decodeJSON(raw, &body); err != nil {
		return err
	}
	if body == nil {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Message: "request body: a JSON object is required"}
	}
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch k {
		case "rules", "source", "mode", "windowDays", "flowType", "siteId":
		default:
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: k, Message: k + ": is not a known field"}
		}
	}
	opts, err := historyOptions(body, c)
	if err != nil {
		return err
	}
	mode := modeAdd
	if v, ok := body["mode"]; ok {
		if err := json.Unmarshal(v, &mode); err != nil || mode != modeAdd && mode != modeReplace {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "mode", Message: "mode: must be add or replace"}
		}
	}
	present := func(k string) bool { v, ok := body[k]; return ok && string(v) != "null" }
	if present("rules") == present("source") {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Message: "give exactly one of rules (rule objects) and source (rule-language text)"}
	}
	if mode == modeReplace && c.Sites != nil {
		return &apiError{Status: http.StatusForbidden, Code: "SITE_DENIED",
			Message: "mode replace stands in for the rules of every site: a caller restricted to sites may only add"}
	}

	// The base: the live rule set, pinned to the stored rules the
	// candidate is built from (read again if a write came in between).
	var baseRS *engine.RuleSet
	var o *store.Org
	var stored *store.RuleSet
	for try := 0; ; try++ {
		rs, ver, err := s.lc.RuleSet(org)
		if err != nil {
			return lifecycleError(err, nil)
		}
		err = s.lc.Store().View(func(sn *store.Snapshot) error {
			var err error
			if o, err = sn.Org(org); err != nil {
				return err
			}
			stored, err = sn.RuleSet(org)
			return err
		})
		if err != nil {
			return lifecycleError(err, nil)
		}
		baseRS = rs
		if stored.Version == ver || try == 2 {
			break
		}
	}
	fileRules, fileGroups, _ := s.lc.FileRulesOf(o)
	groups := slices.Concat(stored.SignerGroups, fileGroups)
	fromSource := present("source")

	// The drafts.
	var drafts []engine.Rule
	if fromSource {
		ds, err := compileDraftSource(body["source"], o)
		if err != nil {
			return err
		}
		if len(ds.rules) > MaxDraftRules {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "source", Message: fmt.Sprintf("source: at most %d draft rules", MaxDraftRules)}
		}
		drafts = ds.rules
		groups = replaceGroups(groups, ds.groups)
	} else {
		var raws []json.RawMessage
		if err := json.Unmarshal(body["rules"], &raws); err != nil {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "rules", Message: "rules: must be an array of rules"}
		}
		if len(raws) > MaxDraftRules {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "rules", Message: fmt.Sprintf("rules: at most %d draft rules", MaxDraftRules)}
		}
		if drafts, err = decodeDrafts(raws, org); err != nil {
			return err
		}
	}

	// The candidate: drafts checked against the caller's sites, given ids,
	// and laid over (or standing in for) the live rules.
	now := s.lc.Clock().Now()
	live := make([]engine.Rule, 0, len(stored.Rules)+len(fileRules))
	live = append(append(live, stored.Rules...), fileRules...)
	liveByID := map[string]*engine.Rule{}
	for i := range live {
		if id := live[i].ID; id != "" {
			liveByID[strings.ToLower(id)] = &live[i]
		}
	}
	refs := make([]draftRef, len(drafts))
	replaced := map[string]bool{}
	seen := map[string]int{}
	for i := range drafts {
		d := &drafts[i]
		where := "rules[" + strconv.Itoa(i) + "]"
		if fromSource {
			where = "source"
		}
		if c.Sites != nil && d.SiteID != nil && !containsID(c.Sites, *d.SiteID) {
			return lifecycleError(lifecycle.ErrSiteDenied, nil)
		}
		if d.ID == "" {
			d.ID = dsl.DerivedID("rule", org, "draft\x00"+strconv.Itoa(i)+"\x00"+d.Name)
		}
		key := strings.ToLower(d.ID)
		if j, dup := seen[key]; dup {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: where + ".id",
				Message: fmt.Sprintf("%s.id: the same id as draft %d", where, j)}
		}
		seen[key] = i
		refs[i] = draftRef{ID: d.ID, Name: d.Name}
		if old := liveByID[key]; old != nil {
			if c.Sites != nil && !ruleVisible(c, old) {
				return lifecycleError(lifecycle.ErrSiteDenied, nil)
			}
			refs[i].Replaces, replaced[key] = mode == modeAdd, true
			if d.CreatedAt.IsZero() && !fromSource {
				d.CreatedAt = old.CreatedAt // as a PATCH keeps it
			}
		}
		if d.CreatedAt.IsZero() && !fromSource {
			d.CreatedAt = now.Add(time.Duration(i)) // as POST would, in the drafts' order
		}
		if !fromSource {
			// A rule object may name any signer group the organisation's
			// rules can use: its stored ones and those of its rule files
			// (only the organisation's groups are in the set).
			d.OrgID = ""
		}
	}
	var rules []engine.Rule
	if mode == modeAdd {
		for _, r := range live {
			if r.ID == "" || !replaced[strings.ToLower(r.ID)] {
				rules = append(rules, r)
			}
		}
	}
	rules = append(rules, drafts...)
	candRS, err := engine.Compile(rules, groups, engine.CompileOptions{Lenient: true})
	if err != nil {
		return err
	}

	// The run.
	var scan simulate.ScanStat
	src := s.history.Source(simulate.Scope{Ctx: req.Context(), OrgID: org, From: now.Add(-time.Duration(opts.days) * 24 * time.Hour),
		To: now, Flow: opts.flow, SiteID: opts.site, Sites: c.Sites, MaxScan: s.previewMaxScan()}, &scan)
	rep, err := simulate.Diff(src, pinnedChain(s.lc, org, baseRS), pinnedChain(s.lc, org, candRS), simulate.Options{})
	if err != nil {
		return err
	}
	if c.Sites != nil {
		visibleOnly(c, rep.Base, baseRS.Rules(), nil)
		visibleOnly(c, rep.Candidate, candRS.Rules(), seen)
	}
	writeJSON(w, http.StatusOK, simulateResult{Success: true, Mode: mode, WindowDays: opts.days, TotalScanned: scan.Scanned,
		Truncated: scan.Truncated, Drafts: refs, DiffReport: rep})
	return nil
}

// replaceGroups adds a draft's signer groups; one with the id of a live
// group stands in for it.
func replaceGroups(live, draft []engine.SignerGroup) []engine.SignerGroup {
	ids := map[string]bool{}
	for _, g := range draft {
		ids[strings.ToLower(g.ID)] = true
	}
	out := make([]engine.SignerGroup, 0, len(live)+len(draft))
	for _, g := range live {
		if !ids[strings.ToLower(g.ID)] {
			out = append(out, g)
		}
	}
	return append(out, draft...)
}

// decodeDrafts reads draft rules as POST /pam/rules reads a rule, except
// that an id (a UUID) and createdAt may be given: the draft then stands in
// for the live rule of that id.
func decodeDrafts(raws []json.RawMessage, org string) ([]engine.Rule, error) {
	drafts := make([]engine.Rule, len(raws))
	for i, raw := range raws {
		where := "rules[" + strconv.Itoa(i) + "]"
		if t := strings.TrimSpace(string(raw)); !strings.HasPrefix(t, "{") {
			return nil, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: where, Message: where + ": must be a rule object"}
		}
		d, err := lifecycle.DecodeRule(raw)
		if err != nil {
			return nil, lifecycleError(prefixFieldErrors(err, where), nil)
		}
		if d.OrgID != "" && !sameID(d.OrgID, org) {
			return nil, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: where + ".orgId",
				Message: where + ".orgId: not the organisation this request acts on (use ?orgId=)"}
		}
		if d.ID != "" {
			if _, err := store.ParseID(d.ID); err != nil {
				return nil, &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: where + ".id", Message: where + ".id: must be a UUID"}
			}
			d.ID = canonicalID(d.ID)
		}
		d.OrgID = org
		if err := engine.ValidateRule(d); err != nil {
			return nil, lifecycleError(prefixFieldErrors(err, where), nil)
		}
		r := engine.NormalizeRule(*d)
		if r.SiteID != nil {
			canon := canonicalID(*r.SiteID)
			r.SiteID = &canon
		}
		if g := r.MatchSignerGroupID; g != nil {
			canon := canonicalID(*g)
			r.MatchSignerGroupID = &canon
		}
		drafts[i] = r
	}
	return drafts, nil
}

// pinnedChain is the live chain with the organisation's rule set fixed.
func pinnedChain(lc *lifecycle.Service, org string, rs *engine.RuleSet) simulate.Chain {
	ch := simulate.LiveChain(lc)
	live := ch.RuleSet
	ch.RuleSet = func(o string) (*engine.RuleSet, error) {
		if sameID(o, org) {
			return rs, nil
		}
		return live(o)
	}
	return ch
}

// visibleOnly narrows a report's rule lists to the rules a site-restricted
// caller may list (as GET /pam/rules shows them) and its drafts. What
// decided its requests is still named, as /pam/decide names it.
func visibleOnly(c *Caller, rep *simulate.Report, rules []engine.Rule, drafts map[string]int) {
	type key struct {
		id, name string
		prio     int
	}
	visible := map[key]bool{}
	for i := range rules {
		r := &rules[i]
		k := key{r.ID, r.Name, r.Priority}
		_, draft := drafts[strings.ToLower(r.ID)]
		v := ruleVisible(c, r) || r.ID != "" && draft
		if old, ok := visible[k]; ok {
			v = v && old
		}
		visible[k] = v
	}
	keep := func(ss []simulate.RuleStats) []simulate.RuleStats {
		out := ss[:0]
		for _, st := range ss {
			if visible[key{st.ID, st.Name, st.Priority}] {
				out = append(out, st)
			}
		}
		return out
	}
	rep.Rules, rep.NeverFired, rep.AlwaysShadowed = keep(rep.Rules), keep(rep.NeverFired), keep(rep.AlwaysShadowed)
}

// previewMaxScan is the most requests a preview or simulation reads.
func (s *Server) previewMaxScan() int {
	if s.conf.PreviewMaxScan > 0 {
		return s.conf.PreviewMaxScan
	}
	return simulate.DefaultMaxScan
}
