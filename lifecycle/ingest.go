package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// IngestInput is one elevation request as it arrives from an agent (uac), an
// AI helper (tool action) or a technician (JIT).
type IngestInput struct {
	Flow     engine.FlowType
	DeviceID string
	// Device, when set, is device DeviceID as the caller has just read it
	// (an agent's authentication reads it): Ingest does not read it again.
	// The record step checks in its own transaction that the device is
	// still what the decision was made from.
	Device      *store.Device
	Observation engine.Observation
	// SubjectUserID is the user asking (JIT): they may not approve it.
	SubjectUserID string
	// ExecutionID links a tool action to the helper's pending execution.
	ExecutionID string
	// ToolInput is the tool action's input; its canonical digest is stored.
	ToolInput json.RawMessage
	// Reason is the technician's justification (JIT, required).
	Reason string
	// PID is the process the agent saw asking (uac, optional).
	PID *int64
	// Explain asks for the decision trace.
	Explain bool
}

// IngestResult is the stored request (nil when a uac request was ignored)
// and the decision that produced it.
type IngestResult struct {
	Request  *store.Request
	Decision engine.Decision
}

// Ingest validates the input, decides it through the organisation's rules
// and records the request with its audit trail in one durable operation.
// Any failure on the decision path yields a pending request, never an
// approval.
func (s *Service) Ingest(in IngestInput) (*IngestResult, error) {
	now := s.clock.Now()
	dev := in.Device
	if dev != nil && dev.ID != in.DeviceID {
		return nil, fmt.Errorf("lifecycle: ingest for device %s given device %s", in.DeviceID, dev.ID)
	}
	var org *store.Org
	err := s.st.View(func(sn *store.Snapshot) error {
		var err error
		if dev == nil {
			if dev, err = sn.Device(in.DeviceID); err != nil {
				return err
			}
		}
		org, err = sn.Org(dev.OrgID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if dev.Status != store.DeviceActive {
		return nil, fmt.Errorf("%w: device %s is %s", ErrDeviceInactive, dev.ID, dev.Status)
	}

	obs := engine.NormalizeObservation(in.Observation)
	obs.SiteID = dev.SiteID
	var es engine.FieldErrors
	switch in.Flow {
	case engine.FlowToolAct:
		if obs.SubjectUsername == "" {
			obs.SubjectUsername = helperSubjectUsername
		}
	case engine.FlowJITAdmin:
		if strings.TrimSpace(in.Reason) == "" || tooLong(in.Reason, MaxReasonLength) {
			es = append(es, &engine.FieldError{Field: "reason", Reason: fmt.Sprintf("must be 1 to %d characters", MaxReasonLength)})
		}
		if d := obs.RequestedDurationMinutes; d != nil {
			c := min(max(*d, 1), engine.MaxJITMinutes)
			obs.RequestedDurationMinutes = &c
		}
	}
	if err := engine.ValidateObservation(in.Flow, &obs); err != nil {
		if fe, ok := err.(engine.FieldErrors); ok {
			es = append(es, fe...)
		} else {
			return nil, err
		}
	}
	var digest string
	if in.Flow == engine.FlowToolAct && len(in.ToolInput) > 0 {
		d, err := ActionDigest(in.ToolInput)
		if err != nil {
			es = append(es, &engine.FieldError{Field: "toolInput", Reason: "is not valid JSON: " + err.Error()})
		}
		digest = d
	}
	if len(es) > 0 {
		return nil, es
	}

	requestedAt := now
	at := now
	if in.Flow == engine.FlowUAC && obs.ObservedAt != nil {
		requestedAt = obs.ObservedAt.UTC()
		at = requestedAt
	}
	for attempt := 1; ; attempt++ {
		res, err := s.record(in, dev, org, &obs, digest, now, requestedAt, at, attempt == maxDecideAttempts)
		if !errors.Is(err, errDecisionStale) || attempt == maxDecideAttempts {
			return res, err
		}
		// The rules, the org's settings or the device changed between
		// the decision and its record: decide again on what is current.
		if err := s.st.View(func(sn *store.Snapshot) error {
			var err error
			if dev, err = sn.Device(in.DeviceID); err != nil {
				return err
			}
			org, err = sn.Org(dev.OrgID)
			return err
		}); err != nil {
			return nil, err
		}
		obs.SiteID = dev.SiteID
	}
}

// maxDecideAttempts bounds how often a decision is remade because what it
// was made from changed before it was recorded; the last attempt records a
// fail-safe pending request instead.
const maxDecideAttempts = 3

var errDecisionStale = errors.New("the rules or settings a decision was made from changed")

// record decides (or, with failSafe, records a pending request without
// deciding) and writes the request and its audit trail in one operation
// that first checks the decision's inputs still hold: the device is still
// active at its site, in its groups and with its attributes, OS and
// hostname (its software policy depends on them), and the org's rule-set version and default
// verdict and the configuration policies' version are those decided with. A decision made from rules an administrator has
// since changed is never recorded.
func (s *Service) record(in IngestInput, dev *store.Device, org *store.Org, obs *engine.Observation, digest string,
	now, requestedAt, at time.Time, failSafe bool) (*IngestResult, error) {
	var d engine.Decision
	var version, gen, policies uint64
	var bridge *engine.Bridge
	if failSafe {
		d = engine.Decision{Outcome: engine.OutcomePending, Error: "the rules or settings kept changing while this request was decided"}
	} else {
		// The configuration policies' version, read before the decision
		// resolves the device's software policy: a write after it makes the
		// decision stale below (one before it only costs a second try).
		if err := s.st.View(func(sn *store.Snapshot) error {
			var err error
			policies, err = sn.PolicyVersion()
			return err
		}); err != nil {
			return nil, err
		}
		d, version, gen, bridge = s.decide(in, dev, org, obs, at)
	}
	// stillHolds also gives a fail-safe request the device's current site,
	// so that it is decided by those who may act on that site.
	stillHolds := func(tx *store.Tx, r *store.Request) error {
		cur, err := tx.Device(dev.ID)
		if err != nil {
			return err
		}
		if cur.Status != store.DeviceActive {
			return fmt.Errorf("%w: device %s is %s", ErrDeviceInactive, cur.ID, cur.Status)
		}
		if failSafe {
			if r != nil {
				r.SiteID = cur.SiteID
			}
			return nil
		}
		o, err := tx.Org(org.ID)
		if err != nil {
			return err
		}
		v, err := tx.RuleVersion(org.ID)
		if err != nil {
			return err
		}
		pv, err := tx.Read().PolicyVersion()
		if err != nil {
			return err
		}
		if v != version || s.fileGen() != gen || cur.SiteID != dev.SiteID || o.DefaultUnmatchedVerdict != org.DefaultUnmatchedVerdict ||
			pv != policies || !slices.Equal(cur.GroupIDs, dev.GroupIDs) || !reflect.DeepEqual(cur.Attributes, dev.Attributes) ||
			cur.OS != dev.OS || cur.Hostname != dev.Hostname || o.PartnerID != org.PartnerID || o.Name != org.Name {
			return errDecisionStale
		}
		return nil
	}

	res := &IngestResult{Decision: d}
	if d.Outcome == engine.OutcomeIgnored {
		err := s.st.Update(func(tx *store.Tx) error {
			if err := stillHolds(tx, nil); err != nil {
				return err
			}
			tx.Audit(store.AuditRecord{OrgID: org.ID, At: now, Action: auditIgnored, ActorKind: store.ActorPolicy,
				ActorID: d.RuleID, ActorName: d.RuleName, Details: details(map[string]any{
					"deviceId": dev.ID, "flowType": in.Flow, "subjectUsername": obs.SubjectUsername,
					"targetExecutablePath": obs.TargetExecutablePath, "ruleId": d.RuleID, "ruleName": d.RuleName,
				})})
			return nil
		})
		if err != nil {
			return nil, err
		}
		return res, nil
	}

	r := &store.Request{
		ID: store.NewID(now), OrgID: org.ID, DeviceID: dev.ID, SiteID: dev.SiteID, Flow: in.Flow,
		SubjectUsername: obs.SubjectUsername, SubjectUserID: in.SubjectUserID,
		TargetExecutablePath: obs.TargetExecutablePath, TargetExecutableHash: obs.TargetExecutableHash,
		TargetExecutableSigner: obs.TargetExecutableSigner, ParentImage: obs.ParentImage, CommandLine: obs.CommandLine,
		AdGroups: obs.AdGroups, ToolName: obs.ToolName, RiskTier: obs.RiskTier, ActionDigest: digest,
		ExecutionID: in.ExecutionID, RequestedAt: requestedAt, CreatedAt: now,
		Decision: store.DecisionRecord{Outcome: d.Outcome, Verdict: d.Verdict, DecidedBy: d.DecidedBy, RuleID: d.RuleID,
			RuleName: d.RuleName, SoftwarePolicyID: d.SoftwarePolicyID, Error: d.Error, RuleSetVersion: version},
	}
	if in.PID != nil {
		pid := *in.PID
		r.PID = &pid
	}
	switch in.Flow {
	case engine.FlowUAC:
		r.Reason = "UAC consent UI observed for " + obs.TargetExecutablePath
	case engine.FlowToolAct:
		tier := "?"
		if obs.RiskTier != nil {
			tier = fmt.Sprint(*obs.RiskTier)
		}
		r.Reason = fmt.Sprintf("AI helper requested tool '%s' (tier %s)", obs.ToolName, tier)
	case engine.FlowJITAdmin:
		r.Reason = in.Reason
	}
	switch d.Outcome {
	case engine.OutcomeAutoApproved:
		r.Status = store.StatusAutoApproved
		r.DurationMinutes = d.DurationMinutes
		r.ApprovedAt = now
		r.ExpiresAt = now.Add(time.Duration(d.DurationMinutes) * time.Minute)
	case engine.OutcomeDenied:
		r.Status = store.StatusDenied
		r.DeniedAt = now
		r.DenialReason = denialReason(in.Flow, d)
	default:
		r.Status = store.StatusPending
	}
	if d.SoftwarePolicyID != "" {
		r.MatchedPolicyName = bridge.PolicyName(d.SoftwarePolicyID)
	}

	requester := store.AuditRecord{OrgID: org.ID, At: requestedAt, Action: auditRequested, Subject: r.ID,
		To: string(store.StatusPending), ActorKind: store.ActorEndUser, ActorName: obs.SubjectUsername,
		Details: details(map[string]any{"flowType": in.Flow, "deviceId": dev.ID, "targetExecutablePath": r.TargetExecutablePath,
			"toolName": r.ToolName, "actionDigest": digest})}
	if in.Flow == engine.FlowToolAct {
		requester.ActorKind = store.ActorAgent
	}
	if in.Flow == engine.FlowJITAdmin {
		requester.ActorKind, requester.ActorID = store.ActorUser, in.SubjectUserID
		requester.Reason = in.Reason
	}
	decided := store.AuditRecord{OrgID: org.ID, At: now, Subject: r.ID, ActorKind: store.ActorPolicy,
		From: string(store.StatusPending), To: string(r.Status), ActorID: d.RuleID, ActorName: d.RuleName,
		Details: details(map[string]any{"decidedBy": d.DecidedBy, "ruleId": d.RuleID, "ruleName": d.RuleName,
			"softwarePolicyId": d.SoftwarePolicyID, "ruleSetVersion": version, "durationMinutes": d.DurationMinutes,
			auditIngestFailSafeKey: d.Error})}
	switch r.Status {
	case store.StatusAutoApproved:
		decided.Action = auditAutoApproved
	case store.StatusDenied:
		decided.Action, decided.Reason = auditDenied, r.DenialReason
	}
	err := s.st.Update(func(tx *store.Tx) error {
		if err := stillHolds(tx, r); err != nil {
			return err
		}
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		tx.Audit(requester)
		if decided.Action != "" {
			tx.Audit(decided)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Request = r
	return res, nil
}

// decide runs the decision chain; every failure is a fail-safe pending
// decision carrying the reason. It returns the stored rule-set version and
// rule-file generation decided with, and the software policies consulted.
func (s *Service) decide(in IngestInput, dev *store.Device, org *store.Org, obs *engine.Observation, at time.Time) (engine.Decision, uint64, uint64, *engine.Bridge) {
	rs, version, gen, err := s.ruleSet(org.ID)
	if err != nil {
		return engine.Decision{Outcome: engine.OutcomePending, Error: "rule set unavailable: " + err.Error()}, version, gen, nil
	}
	input := &engine.Input{Flow: in.Flow, Observation: *obs, At: at, Org: s.OrgConfig(org), Explain: in.Explain}
	if in.Flow == engine.FlowUAC && s.bridge != nil {
		b, err := s.bridge(dev)
		if err != nil {
			return engine.Decision{Outcome: engine.OutcomePending, Error: "software policies unavailable: " + err.Error()}, version, gen, nil
		}
		input.Bridge = b
	}
	return rs.Decide(input), version, gen, input.Bridge
}

// denialReason is the stored reason of an automatic denial (pam-semantics
// §6.1, §6.2): tool actions quote the rule name in single quotes.
func denialReason(flow engine.FlowType, d engine.Decision) string {
	switch d.DecidedBy {
	case engine.DecidedBySoftwarePolicy:
		return "Blocked by software policy"
	case engine.DecidedByOrgDefault:
		return "Blocked by org default (no matching policy or rule)"
	}
	if flow == engine.FlowToolAct {
		return fmt.Sprintf("Denied by PAM rule '%s'", d.RuleName)
	}
	if flow == engine.FlowJITAdmin {
		return `Denied by PAM rule "` + d.RuleName + `"`
	}
	return `Blocked by PAM rule "` + d.RuleName + `"`
}

// details encodes audit details, leaving out empty values.
func details(m map[string]any) json.RawMessage {
	for k, v := range m {
		switch x := v.(type) {
		case string:
			if x == "" {
				delete(m, k)
			}
		case engine.DecidedBy:
			if x == "" {
				delete(m, k)
			}
		case int:
			if x == 0 {
				delete(m, k)
			}
		case uint64:
			if x == 0 {
				delete(m, k)
			}
		}
	}
	b, _ := json.Marshal(m)
	return b
}
