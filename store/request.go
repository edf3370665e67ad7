package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/engine"
)

// Status is where an elevation request is in its lifecycle
// (pam-semantics §7).
type Status string

const (
	StatusPending      Status = "pending"
	StatusApproved     Status = "approved"
	StatusAutoApproved Status = "auto_approved"
	StatusDenied       Status = "denied"
	StatusExpired      Status = "expired"
	StatusRevoked      Status = "revoked"
	StatusActuating    Status = "actuating"
)

// Statuses lists every status in a fixed order (the order of status
// breakdowns).
var Statuses = []Status{StatusPending, StatusApproved, StatusAutoApproved, StatusDenied, StatusExpired, StatusRevoked, StatusActuating}

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return statusCode(s) != 0 }

// Active reports whether s grants elevation (approved, auto_approved or
// actuating), ignoring expiresAt; see Request.ActiveAt.
func (s Status) Active() bool {
	return s == StatusApproved || s == StatusAutoApproved || s == StatusActuating
}

// Terminal reports whether no transition leaves s.
func (s Status) Terminal() bool {
	return s == StatusDenied || s == StatusExpired || s == StatusRevoked
}

func statusCode(s Status) byte {
	for i, v := range Statuses {
		if v == s {
			return byte(i + 1)
		}
	}
	return 0
}

func statusOf(c byte) (Status, bool) {
	if c == 0 || int(c) > len(Statuses) {
		return "", false
	}
	return Statuses[c-1], true
}

var flows = []engine.FlowType{engine.FlowUAC, engine.FlowToolAct, engine.FlowJITAdmin}

func flowCode(f engine.FlowType) byte {
	for i, v := range flows {
		if v == f {
			return byte(i + 1)
		}
	}
	return 0
}

func flowOf(c byte) (engine.FlowType, bool) {
	if c == 0 || int(c) > len(flows) {
		return "", false
	}
	return flows[c-1], true
}

// DecisionRecord is what the engine said when the request arrived.
type DecisionRecord struct {
	Outcome          engine.Outcome   `json:"outcome"`
	Verdict          engine.Verdict   `json:"verdict,omitempty"`
	DecidedBy        engine.DecidedBy `json:"decidedBy,omitempty"`
	RuleID           string           `json:"ruleId,omitempty"`
	RuleName         string           `json:"ruleName,omitempty"`
	SoftwarePolicyID string           `json:"softwarePolicyId,omitempty"`
	// Error is the reason a fail-safe decision was taken.
	Error string `json:"error,omitempty"`
	// RuleSetVersion is the organisation's rule-set version decided with.
	RuleSetVersion uint64 `json:"ruleSetVersion,omitempty"`
}

// Request is one stored elevation request: every field of the API's list
// rows that is not a join, plus what the lifecycle needs. Zero values mean
// absent (times, strings) except where a pointer says otherwise.
type Request struct {
	ID                     string
	OrgID                  string
	DeviceID               string
	SiteID                 string
	Flow                   engine.FlowType
	Status                 Status
	SubjectUsername        string
	SubjectUserID          string
	TargetExecutablePath   string
	TargetExecutableHash   string
	TargetExecutableSigner string
	ParentImage            string
	CommandLine            string
	PID                    *int64
	AdGroups               []string // nil: not reported
	ToolName               string
	RiskTier               *int
	ActionDigest           string
	ExecutionID            string
	Reason                 string

	RequestedAt time.Time // immutable: it places the row in time order
	CreatedAt   time.Time

	Decision DecisionRecord
	// MatchedPolicyName names the software policy that decided, if one did.
	MatchedPolicyName string

	DurationMinutes int // the granted duration, once approved
	ApprovedAt      time.Time
	ApprovedBy      string
	ApprovedByName  string
	ApprovalReason  string
	ExpiresAt       time.Time

	DeniedAt     time.Time
	DeniedBy     string
	DeniedByName string
	DenialReason string

	RevokedAt     time.Time
	RevokedBy     string
	RevokedByName string
	RevokedReason string

	ExpiredAt    time.Time
	ExpiredCause string // "window" (grant ran out) or "stale" (never decided)

	ActuatedAt         time.Time
	ActuatedBy         string
	ActuationCommandID string
}

// ActiveAt reports whether the request grants elevation at now: an active
// status and an expiry still in the future. A grant is not active after
// expiresAt even before the expiry sweep has flipped it, and a grant
// without an expiry (which the store refuses to write) is never active.
func (r *Request) ActiveAt(now time.Time) bool {
	return r.Status.Active() && !r.ExpiresAt.IsZero() && now.Before(r.ExpiresAt)
}

// grantProblem says what an active request lacks: every grant has the
// instant it was approved and the instant it ends.
func (r *Request) grantProblem() string {
	if r.Status.Active() && (r.ApprovedAt.IsZero() || r.ExpiresAt.IsZero()) {
		return fmt.Sprintf("approvedAt and expiresAt: are required for status %s", r.Status)
	}
	return ""
}

// PamRule is the rule the list endpoint reports (pam-semantics §6, §9): for
// uac_intercept only a rule that auto-approved or denied; for tool actions
// any rule that matched; for JIT a rule that decided.
func (r *Request) PamRule() (id, name string) {
	d := &r.Decision
	if d.DecidedBy != engine.DecidedByRule || d.RuleID == "" && d.RuleName == "" {
		return "", ""
	}
	if r.Flow != engine.FlowToolAct && d.Outcome == engine.OutcomePending {
		return "", ""
	}
	return d.RuleID, d.RuleName
}

// DecisionSource is the list endpoint's derived field: software_policy,
// pam_rule, human or "" (null).
func (r *Request) DecisionSource() string {
	switch {
	case r.Decision.SoftwarePolicyID != "":
		return "software_policy"
	case func() bool { id, name := r.PamRule(); return id != "" || name != "" }():
		return "pam_rule"
	case r.ApprovedBy != "" || r.DeniedBy != "" || r.RevokedBy != "":
		return "human"
	}
	return ""
}

// apiRequest is the JSON form, in the API's field names. Times are RFC 3339
// in UTC; absent values are null.
type apiRequest struct {
	ID                     string          `json:"id"`
	OrgID                  string          `json:"orgId"`
	DeviceID               string          `json:"deviceId"`
	SiteID                 *string         `json:"siteId"`
	FlowType               engine.FlowType `json:"flowType"`
	Status                 Status          `json:"status"`
	SubjectUsername        string          `json:"subjectUsername"`
	SubjectUserID          *string         `json:"subjectUserId"`
	TargetExecutablePath   *string         `json:"targetExecutablePath"`
	TargetExecutableHash   *string         `json:"targetExecutableHash"`
	TargetExecutableSigner *string         `json:"targetExecutableSigner"`
	ParentImage            *string         `json:"parentImage"`
	CommandLine            *string         `json:"commandLine"`
	PID                    *int64          `json:"pid"`
	AdGroups               []string        `json:"adGroups"`
	ToolName               *string         `json:"toolName"`
	RiskTier               *int            `json:"riskTier"`
	ActionDigest           *string         `json:"actionDigest"`
	ExecutionID            *string         `json:"executionId"`
	Reason                 *string         `json:"reason"`
	RequestedAt            *time.Time      `json:"requestedAt"`
	CreatedAt              *time.Time      `json:"createdAt"`
	Decision               json.RawMessage `json:"decision"`
	MatchedPolicyName      *string         `json:"matchedPolicyName"`
	SoftwarePolicyMatchID  *string         `json:"softwarePolicyMatchId"`
	PamRuleID              *string         `json:"pamRuleId"`
	PamRuleName            *string         `json:"pamRuleName"`
	DecisionSource         *string         `json:"decisionSource"`
	DurationMinutes        *int            `json:"durationMinutes"`
	ApprovedAt             *time.Time      `json:"approvedAt"`
	ApprovedBy             *string         `json:"approvedBy"`
	ApprovedByName         *string         `json:"approvedByName"`
	ApprovalReason         *string         `json:"approvalReason"`
	ExpiresAt              *time.Time      `json:"expiresAt"`
	DeniedAt               *time.Time      `json:"deniedAt"`
	DeniedBy               *string         `json:"deniedBy"`
	DeniedByName           *string         `json:"deniedByName"`
	DenialReason           *string         `json:"denialReason"`
	RevokedAt              *time.Time      `json:"revokedAt"`
	RevokedBy              *string         `json:"revokedBy"`
	RevokedByName          *string         `json:"revokedByName"`
	RevokedReason          *string         `json:"revokedReason"`
	ExpiredAt              *time.Time      `json:"expiredAt"`
	ExpiredCause           *string         `json:"expiredCause"`
	ActuatedAt             *time.Time      `json:"actuatedAt"`
	ActuatedBy             *string         `json:"actuatedBy"`
	ActuationCommandID     *string         `json:"actuationCommandId"`
}

func ns(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func sv(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func tv(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}

// MarshalJSON writes the request in the API's field names, with the derived
// pamRuleId, pamRuleName and decisionSource.
func (r Request) MarshalJSON() ([]byte, error) {
	a := apiRequest{
		ID: r.ID, OrgID: r.OrgID, DeviceID: r.DeviceID, SiteID: ns(r.SiteID), FlowType: r.Flow, Status: r.Status,
		SubjectUsername: r.SubjectUsername, SubjectUserID: ns(r.SubjectUserID),
		TargetExecutablePath: ns(r.TargetExecutablePath), TargetExecutableHash: ns(r.TargetExecutableHash),
		TargetExecutableSigner: ns(r.TargetExecutableSigner), ParentImage: ns(r.ParentImage), CommandLine: ns(r.CommandLine),
		PID: r.PID, AdGroups: r.AdGroups, ToolName: ns(r.ToolName), RiskTier: r.RiskTier, ActionDigest: ns(r.ActionDigest),
		ExecutionID: ns(r.ExecutionID), Reason: ns(r.Reason), RequestedAt: nt(r.RequestedAt), CreatedAt: nt(r.CreatedAt),
		MatchedPolicyName: ns(r.MatchedPolicyName), SoftwarePolicyMatchID: ns(r.Decision.SoftwarePolicyID),
		ApprovedAt: nt(r.ApprovedAt), ApprovedBy: ns(r.ApprovedBy), ApprovedByName: ns(r.ApprovedByName),
		ApprovalReason: ns(r.ApprovalReason), ExpiresAt: nt(r.ExpiresAt),
		DeniedAt: nt(r.DeniedAt), DeniedBy: ns(r.DeniedBy), DeniedByName: ns(r.DeniedByName), DenialReason: ns(r.DenialReason),
		RevokedAt: nt(r.RevokedAt), RevokedBy: ns(r.RevokedBy), RevokedByName: ns(r.RevokedByName), RevokedReason: ns(r.RevokedReason),
		ExpiredAt: nt(r.ExpiredAt), ExpiredCause: ns(r.ExpiredCause),
		ActuatedAt: nt(r.ActuatedAt), ActuatedBy: ns(r.ActuatedBy), ActuationCommandID: ns(r.ActuationCommandID),
		DecisionSource: ns(r.DecisionSource()),
	}
	a.Decision = json.RawMessage("null")
	if r.Decision != (DecisionRecord{}) {
		b, err := json.Marshal(r.Decision)
		if err != nil {
			return nil, err
		}
		a.Decision = b
	}
	if r.DurationMinutes != 0 {
		a.DurationMinutes = &r.DurationMinutes
	}
	id, name := r.PamRule()
	a.PamRuleID, a.PamRuleName = ns(id), ns(name)
	return json.Marshal(a)
}

// UnmarshalJSON reads the API form. The derived fields are ignored, except
// that a row without a "decision" key (an export from another system) keeps
// its pamRuleId/pamRuleName and softwarePolicyMatchId as the decision;
// "decision": null is a request without a recorded decision.
func (r *Request) UnmarshalJSON(data []byte) error {
	var a apiRequest
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	*r = Request{
		ID: a.ID, OrgID: a.OrgID, DeviceID: a.DeviceID, SiteID: sv(a.SiteID), Flow: a.FlowType, Status: a.Status,
		SubjectUsername: a.SubjectUsername, SubjectUserID: sv(a.SubjectUserID),
		TargetExecutablePath: sv(a.TargetExecutablePath), TargetExecutableHash: sv(a.TargetExecutableHash),
		TargetExecutableSigner: sv(a.TargetExecutableSigner), ParentImage: sv(a.ParentImage), CommandLine: sv(a.CommandLine),
		PID: a.PID, AdGroups: a.AdGroups, ToolName: sv(a.ToolName), RiskTier: a.RiskTier, ActionDigest: sv(a.ActionDigest),
		ExecutionID: sv(a.ExecutionID), Reason: sv(a.Reason), RequestedAt: tv(a.RequestedAt), CreatedAt: tv(a.CreatedAt),
		MatchedPolicyName: sv(a.MatchedPolicyName),
		ApprovedAt:        tv(a.ApprovedAt), ApprovedBy: sv(a.ApprovedBy), ApprovedByName: sv(a.ApprovedByName),
		ApprovalReason: sv(a.ApprovalReason), ExpiresAt: tv(a.ExpiresAt),
		DeniedAt: tv(a.DeniedAt), DeniedBy: sv(a.DeniedBy), DeniedByName: sv(a.DeniedByName), DenialReason: sv(a.DenialReason),
		RevokedAt: tv(a.RevokedAt), RevokedBy: sv(a.RevokedBy), RevokedByName: sv(a.RevokedByName), RevokedReason: sv(a.RevokedReason),
		ExpiredAt: tv(a.ExpiredAt), ExpiredCause: sv(a.ExpiredCause),
		ActuatedAt: tv(a.ActuatedAt), ActuatedBy: sv(a.ActuatedBy), ActuationCommandID: sv(a.ActuationCommandID),
	}
	if a.DurationMinutes != nil {
		r.DurationMinutes = *a.DurationMinutes
	}
	switch {
	case a.Decision == nil: // no decision key: a row from another system
		r.Decision = legacyDecision(&a)
	case string(a.Decision) != "null":
		if err := json.Unmarshal(a.Decision, &r.Decision); err != nil {
			return fmt.Errorf("decision: %w", err)
		}
	}
	return nil
}

// legacyDecision reconstructs what a row without a decision object says
// about how it was decided.
func legacyDecision(a *apiRequest) DecisionRecord {
	d := DecisionRecord{}
	switch a.Status {
	case StatusAutoApproved:
		d.Outcome = engine.OutcomeAutoApproved
	case StatusDenied:
		if a.DeniedBy == nil {
			d.Outcome = engine.OutcomeDenied
		} else {
			d.Outcome = engine.OutcomePending
		}
	default:
		d.Outcome = engine.OutcomePending
		if a.Status == StatusRevoked && a.ApprovedBy == nil {
			d.Outcome = engine.OutcomeAutoApproved
		}
	}
	if p := sv(a.SoftwarePolicyMatchID); p != "" {
		d.DecidedBy, d.SoftwarePolicyID = engine.DecidedBySoftwarePolicy, p
	} else if id, name := sv(a.PamRuleID), sv(a.PamRuleName); id != "" || name != "" {
		d.DecidedBy, d.RuleID, d.RuleName = engine.DecidedByRule, id, name
	}
	return d
}

// canonicalIDs rewrites the ids the store embeds in keys in their
// canonical lowercase form, so a row reads back the way it is keyed.
func (r *Request) canonicalIDs() {
	for _, p := range []*string{&r.ID, &r.OrgID, &r.DeviceID, &r.SiteID} {
		if id, err := ParseID(*p); err == nil {
			*p = id.String()
		}
	}
}

// validate checks what the store relies on: ids it embeds in keys, a known
// flow and status, and a request time.
func (r *Request) validate() error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	for _, f := range []struct{ name, v string }{{"id", r.ID}, {"orgId", r.OrgID}, {"deviceId", r.DeviceID}} {
		if _, err := ids(f.v); err != nil {
			bad("%s: %v", f.name, err)
		}
	}
	if _, err := optID(r.SiteID); err != nil {
		bad("siteId: %v", err)
	}
	if flowCode(r.Flow) == 0 {
		bad("flowType: %q is not a flow type", r.Flow)
	}
	if statusCode(r.Status) == 0 {
		bad("status: %q is not a status", r.Status)
	}
	if r.RequestedAt.IsZero() {
		bad("requestedAt: is required")
	}
	if r.SubjectUsername == "" {
		bad("subjectUsername: is required")
	}
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"requestedAt", r.RequestedAt}, {"createdAt", r.CreatedAt}, {"approvedAt", r.ApprovedAt}, {"expiresAt", r.ExpiresAt},
		{"deniedAt", r.DeniedAt}, {"revokedAt", r.RevokedAt}, {"expiredAt", r.ExpiredAt}, {"actuatedAt", r.ActuatedAt}} {
		if !representable(f.t) {
			bad("%s: %s is outside the years 1678 to 2262", f.name, f.t.Format(time.RFC3339))
		}
	}
	if p := r.grantProblem(); p != "" {
		bad("%s", p)
	}
	if len(errs) == 0 {
		return nil
	}
	return &InvalidError{What: "elevation request " + r.ID, Problems: errs}
}

// RequestFields lists the JSON field names of a request in the API form
// (the names MarshalJSON writes and UnmarshalJSON reads).
func RequestFields() []string {
	t := reflect.TypeOf(apiRequest{})
	out := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}
