package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// FlowType names one of the three ways an elevation request arises.
type FlowType string

const (
	FlowUAC      FlowType = "uac_intercept"  // an agent saw a Windows UAC prompt
	FlowToolAct  FlowType = "ai_tool_action" // an AI helper wants to run a risky tool
	FlowJITAdmin FlowType = "tech_jit_admin" // a technician asks for temporary admin
)

// Valid reports whether f is one of the known flows.
func (f FlowType) Valid() bool {
	return f == FlowUAC || f == FlowToolAct || f == FlowJITAdmin
}

// Verdict is what a rule (or the org default, or a software policy) says.
type Verdict string

const (
	VerdictAutoApprove     Verdict = "auto_approve"
	VerdictAutoDeny        Verdict = "auto_deny"
	VerdictRequireApproval Verdict = "require_approval"
	VerdictIgnore          Verdict = "ignore"
)

// Valid reports whether v is one of the four rule verdicts.
func (v Verdict) Valid() bool {
	switch v {
	case VerdictAutoApprove, VerdictAutoDeny, VerdictRequireApproval, VerdictIgnore:
		return true
	}
	return false
}

// Outcome is the state a decision puts a request in.
type Outcome string

const (
	OutcomeAutoApproved Outcome = "auto_approved"
	OutcomeDenied       Outcome = "denied"
	OutcomePending      Outcome = "pending"
	OutcomeIgnored      Outcome = "ignored" // uac only: nothing is stored
)

// DecidedBy names the stage of the chain that produced a decision.
type DecidedBy string

const (
	DecidedBySoftwarePolicy DecidedBy = "software_policy"
	DecidedByRule           DecidedBy = "rule"
	DecidedByOrgDefault     DecidedBy = "org_default"
)

// Durations of the semantics (pam-semantics §4, §5).
const (
	DefaultGrantMinutes      = 15  // uac and tool-action auto-approvals without a rule duration
	AllowlistGrantMinutes    = 15  // software-policy allowlist hits
	DefaultJITMinutes        = 30  // JIT request without a requested duration
	MaxJITMinutes            = 480 // JIT clamp
	MaxRuleDurationMinutes   = 1440
	DefaultRulePriority      = 100
	MaxRulePriority          = 100000
	MaxSignerGroupEntries    = 500
	maxNegateKeys            = 11
	maxPathCriterionLength   = 4096
	maxStringCriterionLength = 255
	maxToolNameLength        = 100
)

// NegateKey names a criterion in a rule's matchNegate list.
type NegateKey string

const (
	NegSigner           NegateKey = "signer"
	NegSignerThumbprint NegateKey = "signerThumbprint"
	NegSignerGroup      NegateKey = "signerGroup"
	NegHash             NegateKey = "hash"
	NegPathGlob         NegateKey = "pathGlob"
	NegParentImage      NegateKey = "parentImage"
	NegCommandLine      NegateKey = "commandLine"
	NegUser             NegateKey = "user"
	NegAdGroup          NegateKey = "adGroup"
	NegToolName         NegateKey = "toolName"
	NegRiskTier         NegateKey = "riskTier"
)

// NegateKeys lists every key matchNegate accepts, in criterion order.
var NegateKeys = []NegateKey{
	NegSigner, NegSignerThumbprint, NegSignerGroup, NegHash, NegPathGlob,
	NegParentImage, NegCommandLine, NegUser, NegAdGroup, NegToolName, NegRiskTier,
}

// TimeWindow restricts a rule to local wall-clock minutes (both ends
// inclusive; start > end is an overnight window) and optionally weekdays
// (0 = Sunday … 6 = Saturday) in an IANA zone (absent = UTC).
type TimeWindow struct {
	Start    string  `json:"start"`
	End      string  `json:"end"`
	Days     []int   `json:"days,omitempty"`
	Timezone *string `json:"timezone,omitempty"`
}

// Rule is a PAM rule as the API stores it. Criteria are pointers: nil means
// "no criterion"; every present criterion must hold (AND).
type Rule struct {
	ID                      string      `json:"id,omitempty"`
	OrgID                   string      `json:"orgId,omitempty"`
	SiteID                  *string     `json:"siteId"`
	Name                    string      `json:"name"`
	Description             *string     `json:"description"`
	Enabled                 bool        `json:"enabled"`
	Priority                int         `json:"priority"`
	Verdict                 Verdict     `json:"verdict"`
	ApprovalDurationMinutes *int        `json:"approvalDurationMinutes"`
	MatchSigner             *string     `json:"matchSigner"`
	MatchSignerThumbprint   *string     `json:"matchSignerThumbprint"`
	MatchSignerGroupID      *string     `json:"matchSignerGroupId"`
	MatchHash               *string     `json:"matchHash"`
	MatchPathGlob           *string     `json:"matchPathGlob"`
	MatchParentImage        *string     `json:"matchParentImage"`
	MatchCommandLine        *string     `json:"matchCommandLine"`
	MatchUser               *string     `json:"matchUser"`
	MatchAdGroup            *string     `json:"matchAdGroup"`
	MatchToolName           *string     `json:"matchToolName"`
	MatchRiskTier           *int        `json:"matchRiskTier"`
	MatchNegate             []NegateKey `json:"matchNegate"`
	// Condition is a richer condition in the rule language (or, not,
	// parentheses, lists, cel atoms), ANDed with the match* criteria. A
	// plain conjunction is stored in the match* fields instead (see
	// NormalizeRule).
	Condition       *string     `json:"condition"`
	TimeWindow      *TimeWindow `json:"timeWindow"`
	CreatedByUserID string      `json:"createdByUserId,omitempty"`
	CreatedAt       time.Time   `json:"createdAt,omitzero"`
	UpdatedAt       time.Time   `json:"updatedAt,omitzero"`
}

// UnmarshalJSON applies the API's create defaults (enabled true, priority
// 100) to fields the document leaves out.
func (r *Rule) UnmarshalJSON(data []byte) error {
	type plain Rule
	p := plain{Enabled: true, Priority: DefaultRulePriority}
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*r = Rule(p)
	return nil
}

// Clone returns a deep copy: no pointer or slice of the copy aliases r.
func (r Rule) Clone() Rule {
	cs := func(p *string) *string {
		if p == nil {
			return nil
		}
		v := *p
		return &v
	}
	ci := func(p *int) *int {
		if p == nil {
			return nil
		}
		v := *p
		return &v
	}
	r.SiteID, r.Description, r.ApprovalDurationMinutes = cs(r.SiteID), cs(r.Description), ci(r.ApprovalDurationMinutes)
	r.MatchSigner, r.MatchSignerThumbprint, r.MatchSignerGroupID = cs(r.MatchSigner), cs(r.MatchSignerThumbprint), cs(r.MatchSignerGroupID)
	r.MatchHash, r.MatchPathGlob, r.MatchParentImage = cs(r.MatchHash), cs(r.MatchPathGlob), cs(r.MatchParentImage)
	r.MatchCommandLine, r.MatchUser, r.MatchAdGroup = cs(r.MatchCommandLine), cs(r.MatchUser), cs(r.MatchAdGroup)
	r.MatchToolName, r.MatchRiskTier = cs(r.MatchToolName), ci(r.MatchRiskTier)
	r.Condition = cs(r.Condition)
	if r.MatchNegate != nil {
		r.MatchNegate = append([]NegateKey{}, r.MatchNegate...)
	}
	if w := r.TimeWindow; w != nil {
		nw := *w
		nw.Timezone = cs(w.Timezone)
		if w.Days != nil {
			nw.Days = append([]int{}, w.Days...)
		}
		r.TimeWindow = &nw
	}
	return r
}

// withoutEmptyCriteria drops criteria whose text is empty. The API never
// stores one (min length 1), but a stored rule may hold one; like the
// reference implementation, which tests criteria by truthiness, the engine
// reads "" as "no criterion" — never as a substring of everything.
func (r Rule) withoutEmptyCriteria() Rule {
	for _, p := range []**string{&r.MatchSigner, &r.MatchSignerThumbprint, &r.MatchSignerGroupID, &r.MatchHash,
		&r.MatchPathGlob, &r.MatchParentImage, &r.MatchCommandLine, &r.MatchUser, &r.MatchAdGroup, &r.MatchToolName, &r.Condition} {
		if *p != nil && **p == "" {
			*p = nil
		}
	}
	return r
}

// Negated reports whether key is listed in the rule's matchNegate.
func (r *Rule) Negated(key NegateKey) bool {
	for _, k := range r.MatchNegate {
		if k == key {
			return true
		}
	}
	return false
}

// HasExecutableCriterion reports whether the rule has a criterion about the
// executable (signer, thumbprint, signer group, hash, path, parent, command
// line), in its match* fields or its condition.
func (r *Rule) HasExecutableCriterion() bool {
	return r.MatchSigner != nil || r.MatchSignerThumbprint != nil || r.MatchSignerGroupID != nil ||
		r.MatchHash != nil || r.MatchPathGlob != nil || r.MatchParentImage != nil || r.MatchCommandLine != nil ||
		r.conditionShape().exec
}

// HasToolCriterion reports whether the rule has a tool-action criterion
// (a risk tier counts when present, 0 included), in its match* fields or
// its condition.
func (r *Rule) HasToolCriterion() bool {
	return r.MatchToolName != nil || r.MatchRiskTier != nil || r.conditionShape().tool
}

// HasNeutralCriterion reports whether the rule narrows by user or AD group.
func (r *Rule) HasNeutralCriterion() bool {
	return r.MatchUser != nil || r.MatchAdGroup != nil
}

// HasCriterion reports whether the rule has any criterion at all; a time
// window is not a criterion, a condition is.
func (r *Rule) HasCriterion() bool {
	return r.HasExecutableCriterion() || r.HasToolCriterion() || r.HasNeutralCriterion() || r.conditionShape().any
}

// SignerEntry is one member of a signer group: a subject CN, a thumbprint,
// or both. A bare JSON string is a CN-only entry and stays a string when
// written back.
type SignerEntry struct {
	SubjectCN  *string `json:"subjectCn,omitempty"`
	Thumbprint *string `json:"thumbprint,omitempty"`
	bare       bool    // read from (and written as) a bare string
}

// CNEntry returns a bare-string entry for a subject CN.
func CNEntry(cn string) SignerEntry { return SignerEntry{SubjectCN: &cn, bare: true} }

// UnmarshalJSON accepts a bare CN string or an object. Other JSON values
// decode to an entry with neither field, which never matches.
func (e *SignerEntry) UnmarshalJSON(data []byte) error {
	*e = SignerEntry{}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		e.SubjectCN, e.bare = &s, true
		return nil
	}
	var obj struct {
		SubjectCN  *string `json:"subjectCn"`
		Thumbprint *string `json:"thumbprint"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil // stored junk: an entry with neither field, dropped before matching
	}
	e.SubjectCN, e.Thumbprint = obj.SubjectCN, obj.Thumbprint
	return nil
}

// StrictSignerEntry decodes an entry the way a write should: a string, or
// an object with only subjectCn and thumbprint as strings. UnmarshalJSON is
// lenient for stored data; a misspelt key there ("thumbprnt") would turn a
// pinned entry into a CN-only one anyone can forge.
func StrictSignerEntry(data []byte) (SignerEntry, error) {
	var e SignerEntry
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		return CNEntry(s), nil
	}
	var obj struct {
		SubjectCN  *string `json:"subjectCn"`
		Thumbprint *string `json:"thumbprint"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&obj); err != nil {
		return e, fmt.Errorf("a signer entry is a subject CN string or {\"subjectCn\", \"thumbprint\"}: %w", err)
	}
	e.SubjectCN, e.Thumbprint = obj.SubjectCN, obj.Thumbprint
	return e, nil
}

// StrictSignerGroups checks every entry of a JSON array of signer groups
// with StrictSignerEntry.
func StrictSignerGroups(data []byte) error {
	var groups []struct {
		Signers []json.RawMessage `json:"signers"`
	}
	if err := json.Unmarshal(data, &groups); err != nil {
		return err
	}
	for i, g := range groups {
		for j, raw := range g.Signers {
			if _, err := StrictSignerEntry(raw); err != nil {
				return fmt.Errorf("signerGroups[%d].signers[%d]: %w", i, j, err)
			}
		}
	}
	return nil
}

// MarshalJSON writes bare entries back as strings.
func (e SignerEntry) MarshalJSON() ([]byte, error) {
	if e.bare && e.SubjectCN != nil && e.Thumbprint == nil {
		return json.Marshal(*e.SubjectCN)
	}
	type plain SignerEntry
	return json.Marshal(plain(e))
}

// Bare reports whether the entry is a bare CN string.
func (e SignerEntry) Bare() bool { return e.bare }

// SignerGroup is a named, reusable set of trusted signers.
type SignerGroup struct {
	ID          string        `json:"id"`
	OrgID       string        `json:"orgId,omitempty"`
	Name        string        `json:"name"`
	Description *string       `json:"description,omitempty"`
	Signers     []SignerEntry `json:"signers"`
}

// Observation is what a decision is made about: the union of the three
// flows' fields. Empty strings mean "absent"; AdGroups distinguishes nil
// (absent) from an empty list (present, with no groups). Fields a flow does
// not carry are ignored by the engine (see ValidateObservation).
type Observation struct {
	SubjectUsername                  string     `json:"subjectUsername,omitempty"`
	TargetExecutablePath             string     `json:"targetExecutablePath,omitempty"`
	TargetExecutableHash             string     `json:"targetExecutableHash,omitempty"`
	TargetExecutableSigner           string     `json:"targetExecutableSigner,omitempty"`
	TargetExecutableSignerThumbprint string     `json:"targetExecutableSignerThumbprint,omitempty"`
	ParentImage                      string     `json:"parentImage,omitempty"`
	CommandLine                      string     `json:"commandLine,omitempty"`
	AdGroups                         []string   `json:"adGroups,omitempty"`
	ToolName                         string     `json:"toolName,omitempty"`
	RiskTier                         *int       `json:"riskTier,omitempty"`
	RequestedDurationMinutes         *int       `json:"requestedDurationMinutes,omitempty"`
	SiteID                           string     `json:"siteId,omitempty"`
	ObservedAt                       *time.Time `json:"observedAt,omitempty"`
}

// SoftwarePolicyMode is how a software policy's hits bind.
type SoftwarePolicyMode string

const (
	ModeAllowlist SoftwarePolicyMode = "allowlist"
	ModeBlocklist SoftwarePolicyMode = "blocklist"
	ModeAudit     SoftwarePolicyMode = "audit"
)

// SoftwarePolicyEntry identifies an executable by hash, signer, publisher or
// path glob; an entry with only a name never matches.
type SoftwarePolicyEntry struct {
	Name      string  `json:"name"`
	SHA256    *string `json:"sha256,omitempty"`
	Signer    *string `json:"signer,omitempty"`
	Publisher *string `json:"publisher,omitempty"`
	PathGlob  *string `json:"pathGlob,omitempty"`
}

// SoftwarePolicy is the device's resolved software policy, consulted for
// uac_intercept before any PAM rule.
type SoftwarePolicy struct {
	ID         string                `json:"id"`
	Name       string                `json:"name,omitempty"`
	Mode       SoftwarePolicyMode    `json:"mode"`
	Priority   int                   `json:"priority"`
	IsActive   bool                  `json:"isActive"`
	Executable []SoftwarePolicyEntry `json:"executable"`
}

// OrgConfig is an organisation's PAM settings that matter to decisions.
type OrgConfig struct {
	// DefaultUnmatchedVerdict applies to uac requests no rule matched:
	// require_approval (also when empty) or auto_deny.
	DefaultUnmatchedVerdict Verdict `json:"defaultUnmatchedVerdict,omitempty"`
}

// defaultVerdict returns the effective unmatched verdict for uac.
func (c OrgConfig) defaultVerdict() Verdict {
	if c.DefaultUnmatchedVerdict == VerdictAutoDeny {
		return VerdictAutoDeny
	}
	return VerdictRequireApproval
}
