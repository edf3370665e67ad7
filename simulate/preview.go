// Package simulate answers "what would this rule have done": a draft rule
// tried against the stored history of requests.
package simulate

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/store"
)

// Preview limits (pam-semantics §8, §14.1).
const (
	DefaultWindowDays = 30
	MaxWindowDays     = 90
	DefaultMaxScan    = 1_000_000
	SampleSize        = 10
)

// previewRuleID names the draft inside its one-rule set.
const previewRuleID = "00000000-0000-4000-8000-000000000001"

// PreviewInput is a draft rule and where to try it.
type PreviewInput struct {
	OrgID string
	Draft engine.Rule
	// Groups are the organisation's signer groups, for a draft naming one.
	Groups     []engine.SignerGroup
	WindowDays int
	Flow       engine.FlowType // "" = every flow
	SiteID     string          // "" = every site
	// Sites narrows to a site-restricted caller's sites (nil: all).
	Sites   []string
	Now     time.Time
	MaxScan int // 0 = DefaultMaxScan
	// Workers decide in parallel; 0 means one per CPU.
	Workers int
	// Ctx, when set, ends the preview with its error once it is done.
	Ctx context.Context
}

// Sample is one matched request as the preview shows it.
type Sample struct {
	ID                   string          `json:"id"`
	RequestedAt          time.Time       `json:"requestedAt"`
	FlowType             engine.FlowType `json:"flowType"`
	SubjectUsername      *string         `json:"subjectUsername"`
	TargetExecutablePath *string         `json:"targetExecutablePath"`
	ToolName             *string         `json:"toolName"`
	Status               store.Status    `json:"status"`
}

// PreviewResult is the preview's answer.
type PreviewResult struct {
	TotalMatched    int            `json:"totalMatched"`
	TotalScanned    int            `json:"totalScanned"`
	WindowDays      int            `json:"windowDays"`
	Truncated       bool           `json:"truncated"`
	StatusBreakdown map[string]int `json:"statusBreakdown"`
	Sample          []Sample       `json:"sample"`
}

// PreviewOptionKeys are the keys of a preview body (pam-semantics §8) that
// choose what to scan; the other keys describe the draft.
var PreviewOptionKeys = []string{"windowDays", "flowType", "siteId"}

// ignoredRuleKeys are rule fields a preview body may carry that do not
// take part: the draft is tried as an enabled, organisation-wide rule.
var ignoredRuleKeys = []string{"verdict", "name", "priority", "description", "enabled", "approvalDurationMinutes", "orgId"}

// IsDraftCriterion reports whether a preview body key is one of the
// draft's criteria: neither an option nor a rule field the preview ignores.
func IsDraftCriterion(k string) bool {
	return !slices.Contains(PreviewOptionKeys, k) && !slices.Contains(ignoredRuleKeys, k)
}

// DraftFromBody is the draft a preview body's criteria describe, read as
// POST /pam/rules reads a rule (unknown fields refused), validated and
// normalised. Errors are the rule decoder's or an engine.FieldErrors.
func DraftFromBody(body map[string]json.RawMessage) (engine.Rule, error) {
	fields := map[string]json.RawMessage{"name": json.RawMessage(`"preview"`), "verdict": json.RawMessage(`"require_approval"`)}
	for k, v := range body {
		if IsDraftCriterion(k) {
			fields[k] = v
		}
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return engine.Rule{}, err
	}
	d, err := lifecycle.DecodeRule(raw)
	if err != nil {
		return engine.Rule{}, err
	}
	if err := engine.ValidateRule(d); err != nil {
		return engine.Rule{}, err
	}
	return engine.NormalizeRule(*d), nil
}

// Preview evaluates the draft alone, as an enabled org-wide rule, against
// every request of the window (newest first, at most MaxScan) read from the
// store: no priority shadowing, no software policy, no site scope. A
// request becomes a candidate with what it recorded — never AD groups or a
// thumbprint, so a draft that needs them matches nothing.
func Preview(st *store.Store, in PreviewInput) (*PreviewResult, error) {
	return PreviewFrom(StoreReader{st}, in)
}

// A Reader reads a scope of request history: the store itself, or the
// projection of it a server keeps.
type Reader interface {
	Source(sc Scope, stat *ScanStat) Source
}

// PreviewFrom is Preview over any history reader. The draft is decided on
// every core; the sample is still the newest matches in scan order.
func PreviewFrom(h Reader, in PreviewInput) (*PreviewResult, error) {
	days := in.WindowDays
	if days == 0 {
		days = DefaultWindowDays
	}
	maxScan := in.MaxScan
	if maxScan <= 0 {
		maxScan = DefaultMaxScan
	}
	d := in.Draft.Clone()
	d.ID, d.OrgID, d.SiteID, d.Enabled, d.Priority = previewRuleID, in.OrgID, nil, true, 0
	d.Verdict = engine.VerdictRequireApproval
	rs, err := engine.Compile([]engine.Rule{d}, in.Groups, engine.CompileOptions{})
	if err != nil {
		return nil, err
	}
	flow := engine.FlowUAC
	if d.HasToolCriterion() {
		flow = engine.FlowToolAct
	}
	sc := Scope{OrgID: in.OrgID, From: in.Now.Add(-time.Duration(days) * 24 * time.Hour), To: in.Now,
		Flow: in.Flow, SiteID: in.SiteID, Sites: in.Sites, MaxScan: maxScan, Ctx: in.Ctx}
	res := &PreviewResult{WindowDays: days, StatusBreakdown: map[string]int{}, Sample: []Sample{}}
	for _, s := range store.Statuses {
		res.StatusBreakdown[string(s)] = 0
	}
	var stat ScanStat
	if sh, ok := h.(*StoreHistory); ok {
		h = sh.reader()
	}
	if p, ok := h.(*Projection); ok {
		err = p.preview(sc, &stat, flow, rs, d, in.Groups, in.Workers, res)
	} else {
		err = previewCases(h.Source(sc, &stat), in.Workers, flow, rs, res)
	}
	if err != nil {
		return nil, err
	}
	res.TotalScanned, res.Truncated = stat.Scanned, stat.Truncated
	return res, nil
}

// previewCandidate is a request as the preview's draft sees it: what it
// recorded, never AD groups or a thumbprint, at its own instant.
func previewCandidate(flow engine.FlowType, at time.Time, o *engine.Observation) engine.Input {
	return engine.Input{Flow: flow, At: at, Observation: engine.Observation{SubjectUsername: o.SubjectUsername,
		TargetExecutablePath: o.TargetExecutablePath, TargetExecutableHash: o.TargetExecutableHash,
		TargetExecutableSigner: o.TargetExecutableSigner, ParentImage: o.ParentImage, CommandLine: o.CommandLine,
		ToolName: o.ToolName, RiskTier: o.RiskTier}}
}

func previewSample(c *Case) Sample {
	return Sample{ID: c.ID, RequestedAt: c.At, FlowType: c.Flow, SubjectUsername: nonEmpty(c.Observation.SubjectUsername),
		TargetExecutablePath: nonEmpty(c.Observation.TargetExecutablePath), ToolName: nonEmpty(c.Observation.ToolName), Status: c.Status}
}

// previewCases decides the draft for each case on workers goroutines; the
// sample is still the first matches in read order.
func previewCases(src Source, workers int, flow engine.FlowType, rs *engine.RuleSet, res *PreviewResult) error {
	type part struct {
		matched   int
		breakdown map[store.Status]int
		sample    []*Case
	}
	parts, err := run(src, Options{Workers: workers}, func(int) *part { return &part{breakdown: map[store.Status]int{}} }, func(w *part, c *Case) {
		in := previewCandidate(flow, c.At, &c.Observation)
		if rs.Decide(&in).RuleID != previewRuleID {
			return
		}
		w.matched++
		w.breakdown[c.Status]++
		// Keep this worker's earliest-read matches: the merge takes the
		// first SampleSize of all of them.
		if len(w.sample) < SampleSize || c.seq < w.sample[len(w.sample)-1].seq {
			j, _ := slices.BinarySearchFunc(w.sample, c.seq, func(s *Case, seq int) int { return cmp.Compare(s.seq, seq) })
			cp := *c
			w.sample = slices.Insert(w.sample, j, &cp)
			if len(w.sample) > SampleSize {
				w.sample = w.sample[:SampleSize]
			}
		}
	})
	if err != nil {
		return err
	}
	var sample []*Case
	for _, w := range parts {
		res.TotalMatched += w.matched
		for s, n := range w.breakdown {
			if s != "" {
				res.StatusBreakdown[string(s)] += n
			}
		}
		sample = append(sample, w.sample...)
	}
	slices.SortFunc(sample, func(a, b *Case) int { return cmp.Compare(a.seq, b.seq) })
	for _, c := range sample[:min(len(sample), SampleSize)] {
		res.Sample = append(res.Sample, previewSample(c))
	}
	return nil
}

// StoreReader reads history straight from the store: one scan per call,
// newest first, each request copied out of the scan's buffers.
type StoreReader struct{ Store *store.Store }

// Source yields the scope's requests newest first.
func (s StoreReader) Source(sc Scope, stat *ScanStat) Source {
	return func(yield func(*Case) bool) error {
		var st ScanStat
		if stat == nil {
			stat = &st
		}
		*stat = ScanStat{}
		f := newScopeFilter(sc)
		var c Case
		var stopped error
		err := s.Store.ScanRows(store.ScanOptions{OrgID: sc.OrgID, From: sc.From, To: sc.To, Newest: true}, func(r *store.Request) bool {
			if !f.keepRequest(r) {
				return true
			}
			if stat.Scanned%1024 == 0 {
				if stopped = sc.stopped(); stopped != nil {
					return false
				}
			}
			if sc.MaxScan > 0 && stat.Scanned >= sc.MaxScan {
				stat.Truncated = true
				return false
			}
			stat.Scanned++
			// The row is lent for this call only: the case keeps a copy.
			CaseOf(r, &c)
			ownCase(&c)
			more := yield(&c)
			if sc.MaxScan > 0 && stat.Scanned >= sc.MaxScan {
				stat.Truncated = true
				return false
			}
			return more
		})
		if err == nil {
			err = stopped
		}
		return err
	}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	c := strings.Clone(s)
	return &c
}

func canonical(id string) string {
	if v, err := store.ParseID(id); err == nil {
		return v.String()
	}
	return id
}
