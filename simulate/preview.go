// Package simulate answers "what would this rule have done": a draft rule
// tried against the stored history of requests.
package simulate

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/engine"
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
	var stat ScanStat
	src := h.Source(Scope{OrgID: in.OrgID, From: in.Now.Add(-time.Duration(days) * 24 * time.Hour), To: in.Now,
		Flow: in.Flow, SiteID: in.SiteID, Sites: in.Sites, MaxScan: maxScan}, &stat)
	type part struct {
		matched   int
		breakdown [8]int // by index in store.Statuses, then unknown
		sample    []*Case
	}
	parts, err := run(src, Options{}, func(int) *part { return &part{} }, func(w *part, c *Case) {
		// The case becomes a candidate with only what the preview may use.
		in := engine.Input{Flow: flow, At: c.At, Observation: engine.Observation{SubjectUsername: c.Observation.SubjectUsername,
			TargetExecutablePath: c.Observation.TargetExecutablePath, TargetExecutableHash: c.Observation.TargetExecutableHash,
			TargetExecutableSigner: c.Observation.TargetExecutableSigner, ParentImage: c.Observation.ParentImage,
			CommandLine: c.Observation.CommandLine, ToolName: c.Observation.ToolName, RiskTier: c.Observation.RiskTier}}
		if rs.Decide(&in).RuleID != previewRuleID {
			return
		}
		w.matched++
		i := slices.Index(store.Statuses, c.Status)
		if i < 0 {
			i = len(store.Statuses)
		}
		w.breakdown[i]++
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
		return nil, err
	}
	res := &PreviewResult{WindowDays: days, StatusBreakdown: map[string]int{}, Sample: []Sample{},
		TotalScanned: stat.Scanned, Truncated: stat.Truncated}
	var sample []*Case
	for _, w := range parts {
		res.TotalMatched += w.matched
		for i, s := range store.Statuses {
			res.StatusBreakdown[string(s)] += w.breakdown[i]
		}
		sample = append(sample, w.sample...)
	}
	slices.SortFunc(sample, func(a, b *Case) int { return cmp.Compare(a.seq, b.seq) })
	for _, c := range sample[:min(len(sample), SampleSize)] {
		res.Sample = append(res.Sample, Sample{ID: c.ID, RequestedAt: c.At, FlowType: c.Flow,
			SubjectUsername: nonEmpty(c.Observation.SubjectUsername), TargetExecutablePath: nonEmpty(c.Observation.TargetExecutablePath),
			ToolName: nonEmpty(c.Observation.ToolName), Status: c.Status})
	}
	return res, nil
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
		return s.Store.ScanRows(store.ScanOptions{OrgID: sc.OrgID, From: sc.From, To: sc.To, Newest: true}, func(r *store.Request) bool {
			if !f.keepRequest(r) {
				return true
			}
			if sc.MaxScan > 0 && stat.Scanned >= sc.MaxScan {
				stat.Truncated = true
				return false
			}
			stat.Scanned++
			// The row is lent for this call only: the case keeps a copy.
			CaseOf(r.Clone(), &c)
			more := yield(&c)
			if sc.MaxScan > 0 && stat.Scanned >= sc.MaxScan {
				stat.Truncated = true
				return false
			}
			return more
		})
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
