package engine

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/elevate-pam/elevate/dsl/syntax"
)

// FieldError says which field of an input is wrong and why. Shape checks
// (pam-semantics §1.1) wrap one of the Err* sentinels so callers can branch
// with errors.Is.
type FieldError struct {
	Field  string // JSON name of the field, e.g. "matchHash" or "timeWindow.start"
	Reason string
	Err    error // optional sentinel
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrors is every problem found in one input, in field order.
type FieldErrors []*FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap exposes the individual errors to errors.Is / errors.As.
func (es FieldErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es FieldErrors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// The rule-shape checks of pam-semantics §1.1, in the order they run.
var (
	ErrNoCriterion       = errors.New("a rule needs at least one criterion (signer, thumbprint, signer group, hash, path, parent, command line, user, AD group, tool, risk tier); a time window alone is not one")
	ErrMixedShape        = errors.New("executable criteria (signer, thumbprint, signer group, hash, path, parent, command line) and tool-action criteria (tool, risk tier) cannot be mixed: no observation carries both")
	ErrGroupWithSigner   = errors.New("matchSignerGroupId cannot be combined with matchSigner or matchSignerThumbprint")
	ErrIgnoreOnToolRule  = errors.New(`verdict "ignore" is not allowed on a tool-action rule: a tool action must be decided`)
	errUnknownVerdict    = errors.New("unknown verdict")
	errDurationRange     = errors.New("approvalDurationMinutes out of range")
	hhmmRE               = regexp.MustCompile(`^[0-9]{1,2}:[0-9]{2}$`)
	uuidRE               = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	validNegateKey       = map[NegateKey]bool{}
	errNotInFlow         = "is not part of a %s observation"
	errMustBeHex64       = "must be 64 hexadecimal characters"
	errMustNotBeEmpty    = "must not be empty"
	errTooLongFmt        = "must be at most %d characters"
	errOutOfRangeFmt     = "must be between %d and %d"
	errUnknownVerdictMsg = "must be one of auto_approve, auto_deny, require_approval, ignore"
)

func init() {
	for _, k := range NegateKeys {
		validNegateKey[k] = true
	}
}

// IsHex64 reports whether s is exactly 64 hexadecimal digits (any case).
func IsHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// IsUUID reports whether s is a UUID in canonical textual form.
func IsUUID(s string) bool { return uuidRE.MatchString(s) }

// strLen counts characters, not bytes, the way the API's limits are stated.
func strLen(s string) int { return utf8.RuneCountInString(s) }

func checkString(es *FieldErrors, field string, v *string, max int) {
	if v == nil {
		return
	}
	switch n := strLen(*v); {
	case n == 0:
		*es = append(*es, &FieldError{Field: field, Reason: errMustNotBeEmpty})
	case n > max:
		*es = append(*es, &FieldError{Field: field, Reason: fmt.Sprintf(errTooLongFmt, max)})
	}
}

// ValidateRule checks every field constraint of pam-semantics §1 and then the
// rule-shape checks of §1.1 (the first failing one is reported). It does not
// modify r; NormalizeRule gives the stored form. The same function serves the
// API (create, and PATCH on the merged rule) and the rule-file compiler.
func ValidateRule(r *Rule) error {
	var es FieldErrors
	if n := strLen(r.Name); n == 0 {
		es = append(es, &FieldError{Field: "name", Reason: "is required"})
	} else if n > 255 {
		es = append(es, &FieldError{Field: "name", Reason: fmt.Sprintf(errTooLongFmt, 255)})
	}
	if r.Description != nil && strLen(*r.Description) > 2000 {
		es = append(es, &FieldError{Field: "description", Reason: fmt.Sprintf(errTooLongFmt, 2000)})
	}
	if r.Priority < 0 || r.Priority > MaxRulePriority {
		es = append(es, &FieldError{Field: "priority", Reason: fmt.Sprintf(errOutOfRangeFmt, 0, MaxRulePriority)})
	}
	if r.SiteID != nil && !IsUUID(*r.SiteID) {
		es = append(es, &FieldError{Field: "siteId", Reason: "must be a UUID or null"})
	}
	if r.Verdict == "" {
		es = append(es, &FieldError{Field: "verdict", Reason: "is required; " + errUnknownVerdictMsg, Err: errUnknownVerdict})
	} else if !r.Verdict.Valid() {
		es = append(es, &FieldError{Field: "verdict", Reason: fmt.Sprintf("%q: %s", r.Verdict, errUnknownVerdictMsg), Err: errUnknownVerdict})
	}
	if d := r.ApprovalDurationMinutes; d != nil && (*d < 1 || *d > MaxRuleDurationMinutes) {
		es = append(es, &FieldError{Field: "approvalDurationMinutes", Reason: fmt.Sprintf(errOutOfRangeFmt, 1, MaxRuleDurationMinutes), Err: errDurationRange})
	}
	checkString(&es, "matchSigner", r.MatchSigner, maxStringCriterionLength)
	if t := r.MatchSignerThumbprint; t != nil && !IsHex64(strings.TrimSpace(*t)) {
		es = append(es, &FieldError{Field: "matchSignerThumbprint", Reason: errMustBeHex64})
	}
	if g := r.MatchSignerGroupID; g != nil && !IsUUID(*g) {
		es = append(es, &FieldError{Field: "matchSignerGroupId", Reason: "must be a UUID"})
	}
	if h := r.MatchHash; h != nil && !IsHex64(*h) {
		es = append(es, &FieldError{Field: "matchHash", Reason: errMustBeHex64 + " (a SHA-256 digest)"})
	}
	checkString(&es, "matchPathGlob", r.MatchPathGlob, maxPathCriterionLength)
	checkString(&es, "matchParentImage", r.MatchParentImage, maxPathCriterionLength)
	checkString(&es, "matchCommandLine", r.MatchCommandLine, maxPathCriterionLength)
	checkString(&es, "matchUser", r.MatchUser, maxStringCriterionLength)
	checkString(&es, "matchAdGroup", r.MatchAdGroup, maxStringCriterionLength)
	checkString(&es, "matchToolName", r.MatchToolName, maxToolNameLength)
	if t := r.MatchRiskTier; t != nil && (*t < 0 || *t > 4) {
		es = append(es, &FieldError{Field: "matchRiskTier", Reason: fmt.Sprintf(errOutOfRangeFmt, 0, 4)})
	}
	if len(r.MatchNegate) > maxNegateKeys {
		es = append(es, &FieldError{Field: "matchNegate", Reason: fmt.Sprintf("must have at most %d keys", maxNegateKeys)})
	}
	for i, k := range r.MatchNegate {
		if !validNegateKey[k] {
			es = append(es, &FieldError{Field: fmt.Sprintf("matchNegate[%d]", i),
				Reason: fmt.Sprintf("unknown key %q; known keys: %s", k, joinNegateKeys())})
		}
	}
	if r.Condition != nil {
		es = append(es, validateCondition(*r.Condition)...)
	}
	if r.TimeWindow != nil {
		es = append(es, validateTimeWindow(r.TimeWindow)...)
	}
	if err := CheckRuleShape(r); err != nil {
		es = append(es, err.(*FieldError))
	}
	return es.orNil()
}

func joinNegateKeys() string {
	s := make([]string, len(NegateKeys))
	for i, k := range NegateKeys {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// CheckRuleShape runs the four shape checks of pam-semantics §1.1 in order
// and returns the first failure as a *FieldError wrapping its sentinel.
func CheckRuleShape(r *Rule) error {
	switch {
	case !r.HasCriterion():
		return &FieldError{Field: "criteria", Reason: ErrNoCriterion.Error(), Err: ErrNoCriterion}
	case r.HasExecutableCriterion() && r.HasToolCriterion():
		return &FieldError{Field: "criteria", Reason: ErrMixedShape.Error(), Err: ErrMixedShape}
	case r.MatchSignerGroupID != nil && (r.MatchSigner != nil || r.MatchSignerThumbprint != nil):
		return &FieldError{Field: "matchSignerGroupId", Reason: ErrGroupWithSigner.Error(), Err: ErrGroupWithSigner}
	case r.Verdict == VerdictIgnore && r.HasToolCriterion():
		return &FieldError{Field: "verdict", Reason: ErrIgnoreOnToolRule.Error(), Err: ErrIgnoreOnToolRule}
	}
	return nil
}

func validateTimeWindow(w *TimeWindow) FieldErrors {
	var es FieldErrors
	for _, f := range []struct{ name, v string }{{"timeWindow.start", w.Start}, {"timeWindow.end", w.End}} {
		if _, ok := parseHHMM(f.v); !ok {
			es = append(es, &FieldError{Field: f.name, Reason: fmt.Sprintf("%q is not a time of day HH:MM between 00:00 and 23:59", f.v)})
		}
	}
	if len(w.Days) > 7 {
		es = append(es, &FieldError{Field: "timeWindow.days", Reason: "must have at most 7 days"})
	}
	for i, d := range w.Days {
		if d < 0 || d > 6 {
			es = append(es, &FieldError{Field: fmt.Sprintf("timeWindow.days[%d]", i), Reason: "must be 0 (Sunday) to 6 (Saturday)"})
		}
	}
	if w.Timezone != nil {
		if strLen(*w.Timezone) > 64 {
			es = append(es, &FieldError{Field: "timeWindow.timezone", Reason: fmt.Sprintf(errTooLongFmt, 64)})
		} else if _, err := LoadZone(*w.Timezone); err != nil {
			es = append(es, &FieldError{Field: "timeWindow.timezone", Reason: err.Error()})
		}
	}
	return es
}

// parseHHMM parses "H:MM" or "HH:MM" into minutes since midnight; hours
// above 23 or minutes above 59 are rejected.
func parseHHMM(s string) (int, bool) {
	if !hhmmRE.MatchString(s) {
		return 0, false
	}
	i := strings.IndexByte(s, ':')
	h, m := atoiDigits(s[:i]), atoiDigits(s[i+1:])
	if h > 23 || m > 59 {
		return 0, false
	}
	return h*60 + m, true
}

func atoiDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// MaxConditionLength bounds a rule's condition text (characters).
const MaxConditionLength = 16384

// validateCondition parses a condition and checks its values; positions in
// the reasons are line:col within the condition.
func validateCondition(src string) FieldErrors {
	switch n := strLen(src); {
	case n == 0:
		return FieldErrors{{Field: "condition", Reason: errMustNotBeEmpty + " (use null for no condition)"}}
	case n > MaxConditionLength:
		return FieldErrors{{Field: "condition", Reason: fmt.Sprintf(errTooLongFmt, MaxConditionLength)}}
	}
	x, errs := syntax.ParseExpr(src)
	var es FieldErrors
	for _, e := range errs {
		es = append(es, &FieldError{Field: "condition", Reason: e.Error()})
	}
	if x != nil {
		for _, e := range CheckCondition(x) {
			es = append(es, &FieldError{Field: "condition", Reason: e.Error()})
		}
	}
	return es
}

// NormalizeRule returns the stored form of a rule: the top-level conjuncts
// of its condition that fit a free match* field move there (so a plain
// conjunction is always stored as match* fields and the condition holds only
// what they cannot say, in canonical text); matchNegate lists each negated
// criterion once, in criterion order, and only for criteria the rule has;
// thumbprint trimmed and lowercased, hash lowercased (it is not trimmed: a
// padded hash is invalid). Everything else is kept verbatim.
func NormalizeRule(r Rule) Rule {
	r = splitCondition(r)
	r = normalizeNegate(r)
	if r.MatchSignerThumbprint != nil {
		// A blank thumbprint stays as stored: trimmed to "" it would read
		// as "no criterion" and widen the rule.
		if t := strings.ToLower(strings.TrimSpace(*r.MatchSignerThumbprint)); t != "" {
			r.MatchSignerThumbprint = &t
		}
	}
	if r.MatchHash != nil {
		h := strings.ToLower(*r.MatchHash)
		r.MatchHash = &h
	}
	return r
}

// ValidateSignerGroup checks a signer group as written through the API.
func ValidateSignerGroup(g *SignerGroup) error {
	var es FieldErrors
	if n := strLen(strings.TrimSpace(g.Name)); n == 0 {
		es = append(es, &FieldError{Field: "name", Reason: "is required"})
	} else if n > 255 {
		es = append(es, &FieldError{Field: "name", Reason: fmt.Sprintf(errTooLongFmt, 255)})
	}
	if len(g.Signers) > MaxSignerGroupEntries {
		es = append(es, &FieldError{Field: "signers", Reason: fmt.Sprintf("must have at most %d entries", MaxSignerGroupEntries)})
	}
	for i, e := range g.Signers {
		f := fmt.Sprintf("signers[%d]", i)
		cn := e.SubjectCN != nil && strings.TrimSpace(*e.SubjectCN) != ""
		tp := e.Thumbprint != nil && strings.TrimSpace(*e.Thumbprint) != ""
		switch {
		case !cn && !tp:
			es = append(es, &FieldError{Field: f, Reason: "needs a subjectCn or a thumbprint"})
		case tp && !IsHex64(strings.TrimSpace(*e.Thumbprint)):
			es = append(es, &FieldError{Field: f + ".thumbprint", Reason: errMustBeHex64})
		case cn && strLen(strings.TrimSpace(*e.SubjectCN)) > 255:
			es = append(es, &FieldError{Field: f + ".subjectCn", Reason: fmt.Sprintf(errTooLongFmt, 255)})
		}
	}
	return es.orNil()
}

// NormalizeSignerGroup returns the stored form of a valid group: name and
// entries trimmed, thumbprints lowercased, duplicates dropped (first spelling
// kept; strings keyed by lowercase CN, objects by lowercase CN + thumbprint).
func NormalizeSignerGroup(g SignerGroup) SignerGroup {
	g.Name = strings.TrimSpace(g.Name)
	seen := map[string]bool{}
	out := make([]SignerEntry, 0, len(g.Signers))
	for _, e := range g.Signers {
		var n SignerEntry
		n.bare = e.bare
		key := "s:"
		if e.SubjectCN != nil {
			if cn := strings.TrimSpace(*e.SubjectCN); cn != "" {
				n.SubjectCN = &cn
			}
		}
		if e.Thumbprint != nil {
			if tp := strings.ToLower(strings.TrimSpace(*e.Thumbprint)); tp != "" {
				n.Thumbprint = &tp
			}
		}
		if !n.bare {
			key = "o:"
		}
		if n.SubjectCN != nil {
			key += foldKey(*n.SubjectCN)
		}
		key += "|"
		if n.Thumbprint != nil {
			key += *n.Thumbprint
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, n)
	}
	g.Signers = out
	return g
}

// matchEntry is a signer-group entry as the matcher sees it.
type matchEntry struct {
	cn         string // "" when the entry has no CN
	thumbprint string // lowercase 64 hex, "" when the entry has no thumbprint
}

// entriesForMatch normalises stored entries defensively before matching
// (pam-semantics §1.2): a present-but-malformed thumbprint drops the whole
// entry (it never degrades to CN-only); a blank thumbprint with a CN is a CN
// entry; entries with neither field are dropped.
func entriesForMatch(signers []SignerEntry) []matchEntry {
	out := make([]matchEntry, 0, len(signers))
	for _, e := range signers {
		var m matchEntry
		if e.Thumbprint != nil {
			tp := strings.ToLower(strings.TrimSpace(*e.Thumbprint))
			if tp != "" && !IsHex64(tp) {
				continue
			}
			m.thumbprint = tp
		}
		if e.SubjectCN != nil {
			m.cn = strings.TrimSpace(*e.SubjectCN)
		}
		if m.cn == "" && m.thumbprint == "" {
			continue
		}
		out = append(out, m)
	}
	return out
}

// ValidateOrgConfig checks an org configuration: auto_approve is never a
// default.
func ValidateOrgConfig(c *OrgConfig) error {
	switch c.DefaultUnmatchedVerdict {
	case "", VerdictRequireApproval, VerdictAutoDeny:
		return nil
	}
	return FieldErrors{{Field: "defaultUnmatchedVerdict",
		Reason: fmt.Sprintf("%q: must be require_approval or auto_deny", c.DefaultUnmatchedVerdict)}}
}

// ValidateSoftwarePolicy checks a software policy's mode and entries.
func ValidateSoftwarePolicy(p *SoftwarePolicy) error {
	var es FieldErrors
	switch p.Mode {
	case ModeAllowlist, ModeBlocklist, ModeAudit:
	default:
		es = append(es, &FieldError{Field: "mode", Reason: fmt.Sprintf("%q: must be allowlist, blocklist or audit", p.Mode)})
	}
	for i, e := range p.Executable {
		f := fmt.Sprintf("executable[%d]", i)
		if e.SHA256 != nil && !IsHex64(strings.TrimSpace(*e.SHA256)) {
			es = append(es, &FieldError{Field: f + ".sha256", Reason: errMustBeHex64})
		}
		checkString(&es, f+".signer", e.Signer, maxStringCriterionLength)
		checkString(&es, f+".publisher", e.Publisher, maxStringCriterionLength)
		checkString(&es, f+".pathGlob", e.PathGlob, maxPathCriterionLength)
	}
	return es.orNil()
}

// flowFields says which observation fields each flow carries (pam-semantics
// §6: uac carries the executable and, by this project's decision, AD groups;
// tool actions a tool, tier and user; JIT a user and AD groups).
type obsField uint16

const (
	fUser obsField = 1 << iota
	fPath
	fHash
	fSigner
	fThumbprint
	fParent
	fCmdline
	fGroups
	fTool
	fRisk
	fDuration
)

var flowFields = map[FlowType]obsField{
	FlowUAC:      fUser | fPath | fHash | fSigner | fThumbprint | fParent | fCmdline | fGroups,
	FlowToolAct:  fUser | fTool | fRisk,
	FlowJITAdmin: fUser | fGroups | fDuration,
}

// ValidateObservation checks an observation for a flow the way an ingest
// endpoint would: the flow's required fields are present, lengths are within
// the API limits, hashes and thumbprints are 64 hex, and no field foreign to
// the flow is set (the engine would ignore it, which would surprise the
// caller).
func ValidateObservation(flow FlowType, o *Observation) error {
	if !flow.Valid() {
		return FieldErrors{{Field: "flowType", Reason: fmt.Sprintf("%q: must be uac_intercept, ai_tool_action or tech_jit_admin", flow)}}
	}
	var es FieldErrors
	allowed := flowFields[flow]
	foreign := func(f obsField, name string, set bool) {
		if set && allowed&f == 0 {
			es = append(es, &FieldError{Field: "observation." + name, Reason: fmt.Sprintf(errNotInFlow, flow)})
		}
	}
	foreign(fPath, "targetExecutablePath", o.TargetExecutablePath != "")
	foreign(fHash, "targetExecutableHash", o.TargetExecutableHash != "")
	foreign(fSigner, "targetExecutableSigner", o.TargetExecutableSigner != "")
	foreign(fThumbprint, "targetExecutableSignerThumbprint", o.TargetExecutableSignerThumbprint != "")
	foreign(fParent, "parentImage", o.ParentImage != "")
	foreign(fCmdline, "commandLine", o.CommandLine != "")
	foreign(fGroups, "adGroups", o.AdGroups != nil)
	foreign(fTool, "toolName", o.ToolName != "")
	foreign(fRisk, "riskTier", o.RiskTier != nil)
	foreign(fDuration, "requestedDurationMinutes", o.RequestedDurationMinutes != nil)

	if o.SubjectUsername == "" {
		es = append(es, &FieldError{Field: "observation.subjectUsername", Reason: "is required"})
	} else if strLen(o.SubjectUsername) > 255 {
		es = append(es, &FieldError{Field: "observation.subjectUsername", Reason: fmt.Sprintf(errTooLongFmt, 255)})
	}
	switch flow {
	case FlowUAC:
		if o.TargetExecutablePath == "" {
			es = append(es, &FieldError{Field: "observation.targetExecutablePath", Reason: "is required for uac_intercept"})
		}
	case FlowToolAct:
		if o.ToolName == "" {
			es = append(es, &FieldError{Field: "observation.toolName", Reason: "is required for ai_tool_action"})
		}
	}
	lim := func(name, v string, max int) {
		if strLen(v) > max {
			es = append(es, &FieldError{Field: "observation." + name, Reason: fmt.Sprintf(errTooLongFmt, max)})
		}
	}
	lim("targetExecutablePath", o.TargetExecutablePath, 4096)
	lim("targetExecutableSigner", o.TargetExecutableSigner, 255)
	lim("parentImage", o.ParentImage, 4096)
	lim("commandLine", o.CommandLine, 8192)
	lim("toolName", o.ToolName, maxToolNameLength)
	if h := strings.TrimSpace(o.TargetExecutableHash); h != "" && !IsHex64(h) {
		es = append(es, &FieldError{Field: "observation.targetExecutableHash", Reason: errMustBeHex64})
	}
	if t := strings.TrimSpace(o.TargetExecutableSignerThumbprint); t != "" && !IsHex64(t) {
		es = append(es, &FieldError{Field: "observation.targetExecutableSignerThumbprint", Reason: errMustBeHex64})
	}
	if len(o.AdGroups) > 200 {
		es = append(es, &FieldError{Field: "observation.adGroups", Reason: "must have at most 200 groups"})
	}
	for i, g := range o.AdGroups {
		if n := strLen(g); n == 0 || n > 255 {
			es = append(es, &FieldError{Field: fmt.Sprintf("observation.adGroups[%d]", i), Reason: "must be 1 to 255 characters"})
		}
	}
	if o.SiteID != "" && !IsUUID(o.SiteID) {
		es = append(es, &FieldError{Field: "observation.siteId", Reason: "must be a UUID (or absent for a device without a site)"})
	}
	if o.ObservedAt != nil && o.ObservedAt.IsZero() {
		es = append(es, &FieldError{Field: "observation.observedAt", Reason: "must be a real instant, not the zero time"})
	}
	if o.RiskTier != nil && (*o.RiskTier < 0 || *o.RiskTier > 4) {
		es = append(es, &FieldError{Field: "observation.riskTier", Reason: fmt.Sprintf(errOutOfRangeFmt, 0, 4)})
	}
	if d := o.RequestedDurationMinutes; d != nil && *d < 1 {
		es = append(es, &FieldError{Field: "observation.requestedDurationMinutes", Reason: "must be at least 1"})
	}
	return es.orNil()
}

// NormalizeObservation applies the ingest normalisation of pam-semantics
// §14.1: the observed hash and thumbprint are trimmed and lowercased.
func NormalizeObservation(o Observation) Observation {
	o.TargetExecutableHash = strings.ToLower(strings.TrimSpace(o.TargetExecutableHash))
	o.TargetExecutableSignerThumbprint = strings.ToLower(strings.TrimSpace(o.TargetExecutableSignerThumbprint))
	return o
}
