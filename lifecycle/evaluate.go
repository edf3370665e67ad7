package lifecycle

import (
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// EvaluateInput is a decision asked for without recording anything: for
// testing agents and rules against the organisation's live rule set.
type EvaluateInput struct {
	Flow        engine.FlowType
	Observation engine.Observation
	// DeviceID, when set, names a device of the organisation: its site
	// and software policies take part as they would at ingest. Otherwise
	// Observation.SiteID (may be empty) is the site.
	DeviceID string
	// At is the evaluation instant; zero means the observation's
	// observedAt for uac and now for the other flows.
	At      time.Time
	Explain bool
}

// Evaluate decides an observation with the organisation's rules, settings
// and (given a device) software policies, exactly as ingest would, and
// stores nothing. Invalid observations are engine.FieldErrors; a device of
// another organisation is ErrNotFound.
func (s *Service) Evaluate(org string, in EvaluateInput) (engine.Decision, error) {
	var o *store.Org
	var dev *store.Device
	var ver uint64
	err := s.st.View(func(sn *store.Snapshot) error {
		var err error
		if o, err = sn.Org(org); err != nil {
			return err
		}
		if ver, err = sn.RuleVersion(o.ID); err != nil {
			return err
		}
		if in.DeviceID == "" {
			return nil
		}
		if dev, err = sn.Device(in.DeviceID); err != nil {
			return err
		}
		if !sameID(dev.OrgID, o.ID) {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return engine.Decision{}, err
	}
	if !in.Flow.Valid() {
		return engine.Decision{}, engine.FieldErrors{&engine.FieldError{Field: "flowType",
			Reason: "must be uac_intercept, tech_jit_admin or ai_tool_action"}}
	}
	obs := engine.NormalizeObservation(in.Observation)
	if dev != nil {
		obs.SiteID = dev.SiteID
	}
	if in.Flow == engine.FlowToolAct && obs.SubjectUsername == "" {
		obs.SubjectUsername = helperSubjectUsername
	}
	if err := engine.ValidateObservation(in.Flow, &obs); err != nil {
		return engine.Decision{}, err
	}
	at := in.At
	if at.IsZero() {
		at = s.clock.Now()
		if in.Flow == engine.FlowUAC && obs.ObservedAt != nil {
			at = obs.ObservedAt.UTC()
		}
	}
	rs, _, _, err := s.ruleSetAt(o.ID, ver)
	if err != nil {
		return engine.Decision{Outcome: engine.OutcomePending, Error: "rule set unavailable: " + err.Error()}, nil
	}
	input := &engine.Input{Flow: in.Flow, Observation: obs, At: at, Org: s.OrgConfig(o), Explain: in.Explain}
	if in.Flow == engine.FlowUAC && dev != nil && s.bridge != nil {
		b, err := s.bridge(dev)
		if err != nil {
			return engine.Decision{Outcome: engine.OutcomePending, Error: "software policies unavailable: " + err.Error()}, nil
		}
		input.Bridge = b
	}
	return rs.Decide(input), nil
}
