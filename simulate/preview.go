// Package simulate answers "what would this rule have done": a draft rule
// tried against the stored history of requests.
package simulate

import (
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
// every request of the window (newest first, at most MaxScan): no priority
// shadowing, no software policy, no site scope. A request becomes a
// candidate with what it recorded — never AD groups or a thumbprint, so a
// draft that needs them matches nothing.
func Preview(st *store.Store, in PreviewInput) (*PreviewResult, error) {
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
	res := &PreviewResult{WindowDays: days, StatusBreakdown: map[string]int{}, Sample: []Sample{}}
	for _, s := range store.Statuses {
		res.StatusBreakdown[string(s)] = 0
	}
	var sites map[string]bool
	if in.Sites != nil {
		sites = map[string]bool{}
		for _, s := range in.Sites {
			sites[canonical(s)] = true
		}
	}
	site := canonical(in.SiteID)
	err = st.ScanRows(store.ScanOptions{OrgID: in.OrgID, From: in.Now.Add(-time.Duration(days) * 24 * time.Hour), To: in.Now, Newest: true},
		func(r *store.Request) bool {
			if in.Flow != "" && r.Flow != in.Flow || site != "" && r.SiteID != site || sites != nil && !sites[r.SiteID] {
				return true
			}
			res.TotalScanned++
			obs := engine.Observation{SubjectUsername: r.SubjectUsername, TargetExecutablePath: r.TargetExecutablePath,
				TargetExecutableHash: r.TargetExecutableHash, TargetExecutableSigner: r.TargetExecutableSigner,
				ParentImage: r.ParentImage, CommandLine: r.CommandLine, ToolName: r.ToolName, RiskTier: r.RiskTier}
			dec := rs.Decide(&engine.Input{Flow: flow, Observation: obs, At: r.RequestedAt})
			if dec.RuleID == previewRuleID {
				res.TotalMatched++
				res.StatusBreakdown[string(r.Status)]++
				if len(res.Sample) < SampleSize {
					// The row is lent for this call only: keep copies.
					res.Sample = append(res.Sample, Sample{ID: strings.Clone(r.ID), RequestedAt: r.RequestedAt, FlowType: r.Flow,
						SubjectUsername: nonEmpty(r.SubjectUsername), TargetExecutablePath: nonEmpty(r.TargetExecutablePath),
						ToolName: nonEmpty(r.ToolName), Status: r.Status})
				}
			}
			if res.TotalScanned >= maxScan {
				res.Truncated = true
				return false
			}
			return true
		})
	return res, err
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
