package lifecycle

import (
	"bytes"
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

// Audit actions of rule, signer-group and settings administration.
const (
	auditRuleCreated   = "rule.created"
	auditRuleUpdated   = "rule.updated"
	auditRuleDeleted   = "rule.deleted"
	auditGroupCreated  = "signer_group.created"
	auditGroupUpdated  = "signer_group.updated"
	auditGroupDeleted  = "signer_group.deleted"
	auditConfigUpdated = "config.updated"
)

// ErrInUse is returned when a signer group cannot be deleted because rules
// still reference it.
var ErrInUse = errors.New("in use")

// InUseError says how many rules still reference a signer group.
type InUseError struct{ Rules int }

func (e *InUseError) Error() string {
	return fmt.Sprintf("the signer group is referenced by %d rule(s); change or delete them first", e.Rules)
}

func (e *InUseError) Unwrap() error { return ErrInUse }

// Admin is who changes rules or settings, and which sites they may act
// on (nil: every site).
type Admin struct {
	Actor
	Sites []string
}

// audit records an administrative change in the organisation's chain.
func (a Admin) audit(tx *store.Tx, org string, at time.Time, action, subject string, d map[string]any) {
	tx.Audit(store.AuditRecord{OrgID: org, At: at, Action: action, Subject: subject, ActorKind: actorKind(a.Actor),
		ActorID: a.ID, ActorName: a.Name, Details: details(d)})
}

// siteAllowed applies the site axis of rule writes (pam-semantics §11): a
// site-restricted administrator may write only rules of their sites; an
// org-wide rule is not "of their sites".
func (a Admin) siteAllowed(site *string) bool {
	if a.Sites == nil {
		return true
	}
	if site == nil {
		return false
	}
	for _, s := range a.Sites {
		if strings.EqualFold(s, *site) {
			return true
		}
	}
	return false
}

// ruleReadOnly are the rule's fields a PATCH may not set: orgId is
// dropped (pam-semantics §1.1), the rest are refused.
var ruleReadOnly = map[string]bool{"id": true, "createdByUserId": true, "createdAt": true, "updatedAt": true}

// CreateRule validates, normalises and stores a new rule of the
// organisation. A signer group or site it names must be the org's own.
func (s *Service) CreateRule(org string, r engine.Rule, a Admin) (*engine.Rule, error) {
	r.OrgID = org
	if err := engine.ValidateRule(&r); err != nil {
		return nil, err
	}
	if !a.siteAllowed(r.SiteID) {
		return nil, ErrSiteDenied
	}
	now := s.clock.Now()
	r = engine.NormalizeRule(r)
	r.ID, r.CreatedAt, r.UpdatedAt, r.CreatedByUserID = store.NewID(now), now, now, a.ID
	if r.SiteID != nil {
		canon := canonical(*r.SiteID)
		r.SiteID = &canon
	}
	if g := r.MatchSignerGroupID; g != nil {
		canon := canonical(*g)
		r.MatchSignerGroupID = &canon
	}
	err := s.st.Update(func(tx *store.Tx) error {
		if err := s.checkRuleRefs(tx, &r); err != nil {
			return err
		}
		if _, err := tx.PutRule(&r); err != nil {
			return err
		}
		a.audit(tx, r.OrgID, now, auditRuleCreated, r.ID, map[string]any{"rule": r})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// PatchRule overlays patch (a JSON object of rule fields; a null clears
// the field) on the stored rule, validates the result as a whole and
// stores it. An empty patch is a valid no-op that moves updatedAt.
func (s *Service) PatchRule(org, id string, patch map[string]json.RawMessage, a Admin) (*engine.Rule, error) {
	var out *engine.Rule
	err := s.st.Update(func(tx *store.Tx) error {
		old, err := tx.Rule(org, id)
		if err != nil {
			return err
		}
		if !a.siteAllowed(old.SiteID) {
			return ErrSiteDenied
		}
		r, err := mergeRule(old, patch)
		if err != nil {
			return err
		}
		if err := engine.ValidateRule(r); err != nil {
			return err
		}
		if !a.siteAllowed(r.SiteID) {
			return ErrSiteDenied
		}
		n := engine.NormalizeRule(*r)
		r = &n
		if r.SiteID != nil {
			canon := canonical(*r.SiteID)
			r.SiteID = &canon
		}
		if g := r.MatchSignerGroupID; g != nil {
			canon := canonical(*g)
			r.MatchSignerGroupID = &canon
		}
		r.UpdatedAt = s.clock.Now()
		if err := s.checkRuleRefs(tx, r); err != nil {
			return err
		}
		if _, err := tx.PutRule(r); err != nil {
			return err
		}
		a.audit(tx, org, r.UpdatedAt, auditRuleUpdated, r.ID, map[string]any{"before": old, "after": r})
		out = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRule removes a rule.
func (s *Service) DeleteRule(org, id string, a Admin) error {
	err := s.st.Update(func(tx *store.Tx) error {
		old, err := tx.Rule(org, id)
		if err != nil {
			return err
		}
		if !a.siteAllowed(old.SiteID) {
			return ErrSiteDenied
		}
		if _, err := tx.DeleteRule(org, old.ID); err != nil {
			return err
		}
		a.audit(tx, org, s.clock.Now(), auditRuleDeleted, old.ID, map[string]any{"rule": old})
		return nil
	})
	return err
}

// mergeRule overlays a PATCH body on a stored rule.
func mergeRule(old *engine.Rule, patch map[string]json.RawMessage) (*engine.Rule, error) {
	b, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var es engine.FieldErrors
	for k, v := range patch {
		switch {
		case k == "orgId":
		case ruleReadOnly[k]:
			es = append(es, &engine.FieldError{Field: k, Reason: "is read-only"})
		default:
			m[k] = v
		}
	}
	if len(es) > 0 {
		return nil, es
	}
	b, err = json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return DecodeRule(b)
}

// ruleFieldNames are the JSON names of a rule's fields.
var ruleFieldNames = func() map[string]bool {
	names := map[string]bool{}
	t := reflect.TypeOf(engine.Rule{})
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names[name] = true
		}
	}
	return names
}()

// DecodeRule reads a rule from a write's JSON body strictly: an unknown
// field is an error naming it (the rule's own decoder, which applies the
// create defaults, would drop it), as is a value of the wrong type.
func DecodeRule(data []byte) (*engine.Rule, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, decodeFieldError(err)
	}
	var es engine.FieldErrors
	for k := range m {
		if !ruleFieldNames[k] {
			es = append(es, &engine.FieldError{Field: k, Reason: "is not a known field"})
		}
	}
	for _, k := range []string{"name", "enabled", "priority", "verdict"} {
		if v, ok := m[k]; ok && string(v) == "null" {
			es = append(es, &engine.FieldError{Field: k, Reason: "must not be null"})
		}
	}
	if v, ok := m["timeWindow"]; ok && string(v) != "null" {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		var tw engine.TimeWindow
		if err := dec.Decode(&tw); err != nil {
			fe := decodeFieldError(err).(engine.FieldErrors)
			for _, e := range fe {
				e.Field = "timeWindow." + e.Field
			}
			es = append(es, fe...)
		}
	}
	if len(es) > 0 {
		slices.SortFunc(es, func(a, b *engine.FieldError) int { return strings.Compare(a.Field, b.Field) })
		return nil, es
	}
	var r engine.Rule
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, decodeFieldError(err)
	}
	return &r, nil
}

// decodeFieldError turns a JSON decoding error into a field error.
func decodeFieldError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return engine.FieldErrors{&engine.FieldError{Field: te.Field, Reason: "must be a " + te.Type.String()}}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return engine.FieldErrors{&engine.FieldError{Field: f, Reason: "is not a known field"}}
	}
	return engine.FieldErrors{&engine.FieldError{Field: "body", Reason: msg}}
}

// checkRuleRefs requires a rule's site and signer group to be the
// organisation's own: a reference to another organisation's (or a
// missing) one is refused rather than stored to fail closed later.
func (s *Service) checkRuleRefs(tx *store.Tx, r *engine.Rule) error {
	rd := tx.Read()
	if r.SiteID != nil {
		if _, err := rd.Site(r.OrgID, *r.SiteID); errors.Is(err, store.ErrNotFound) {
			return engine.FieldErrors{&engine.FieldError{Field: "siteId", Reason: "no such site in the organisation"}}
		} else if err != nil {
			return err
		}
	}
	if r.Condition != nil {
		names, err := engine.ConditionSignerGroups(*r.Condition)
		if err != nil {
			return engine.FieldErrors{&engine.FieldError{Field: "condition", Reason: err.Error()}}
		}
		if len(names) > 0 {
			groups, err := rd.RuleSet(r.OrgID)
			if err != nil {
				return err
			}
			for _, n := range names {
				if c := countNamed(groups.SignerGroups, n); c != 1 && !hasGroupID(groups.SignerGroups, n) {
					return engine.FieldErrors{&engine.FieldError{Field: "condition",
						Reason: fmt.Sprintf("signers(%q): the organisation has %d signer groups of that name (one is needed)", n, c)}}
				}
			}
		}
	}
	if g := r.MatchSignerGroupID; g != nil {
		if _, err := rd.SignerGroup(r.OrgID, *g); errors.Is(err, store.ErrNotFound) {
			return engine.FieldErrors{&engine.FieldError{Field: "matchSignerGroupId", Reason: "no such signer group in the organisation"}}
		} else if err != nil {
			return err
		}
	}
	return nil
}

func sameName(a, b string) bool { return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b)) }

func hasGroupID(groups []engine.SignerGroup, id string) bool {
	return slices.ContainsFunc(groups, func(g engine.SignerGroup) bool { return sameID(g.ID, id) })
}

func countNamed(groups []engine.SignerGroup, name string) int {
	n := 0
	for _, g := range groups {
		if sameName(g.Name, name) {
			n++
		}
	}
	return n
}

// rulesUsing counts the organisation's rules that use a signer group: by
// id, or by name in a condition.
func rulesUsing(rules []engine.Rule, g *engine.SignerGroup) int {
	n := 0
	for _, r := range rules {
		if r.MatchSignerGroupID != nil && strings.EqualFold(*r.MatchSignerGroupID, g.ID) || conditionNames(r, g.Name) || conditionNames(r, g.ID) {
			n++
		}
	}
	return n
}

// rulesUsingName counts the rules whose condition names a signer group.
func rulesUsingName(rules []engine.Rule, name string) int {
	n := 0
	for _, r := range rules {
		if conditionNames(r, name) {
			n++
		}
	}
	return n
}

// conditionNames reports whether a rule's condition names the group. A
// condition that no longer parses counts as naming it: deleting or
// renaming a group must not be what silences a rule.
func conditionNames(r engine.Rule, name string) bool {
	if r.Condition == nil {
		return false
	}
	names, err := engine.ConditionSignerGroups(*r.Condition)
	return err != nil || slices.ContainsFunc(names, func(x string) bool { return sameName(x, name) || sameID(x, name) })
}

// SignerGroupInput is the body of a signer-group create or update.
type SignerGroupInput struct {
	Name        *string            `json:"name"`
	Description *string            `json:"description"`
	Signers     *[]json.RawMessage `json:"signers"`
}

// signers decodes the entries strictly (engine.StrictSignerEntry): a
// misspelt key must not turn a pinned entry into a forgeable CN-only one.
func (in SignerGroupInput) signers() ([]engine.SignerEntry, error) {
	out := make([]engine.SignerEntry, 0, len(*in.Signers))
	for i, raw := range *in.Signers {
		e, err := engine.StrictSignerEntry(raw)
		if err != nil {
			return nil, engine.FieldErrors{&engine.FieldError{Field: fmt.Sprintf("signers[%d]", i), Reason: err.Error()}}
		}
		out = append(out, e)
	}
	return out, nil
}

// CreateSignerGroup validates, normalises and stores a signer group.
func (s *Service) CreateSignerGroup(org string, in SignerGroupInput, a Admin) (*engine.SignerGroup, error) {
	g := engine.SignerGroup{OrgID: org}
	if in.Name == nil {
		return nil, engine.FieldErrors{&engine.FieldError{Field: "name", Reason: "is required"}}
	}
	g.Name, g.Description = *in.Name, in.Description
	g.Signers = []engine.SignerEntry{}
	if in.Signers != nil {
		var err error
		if g.Signers, err = in.signers(); err != nil {
			return nil, err
		}
	}
	g.ID = store.NewID(s.clock.Now())
	return s.putSignerGroup(&g, auditGroupCreated, a)
}

// UpdateSignerGroup changes the fields the input sets. The read and the
// write are one operation, so concurrent updates never lose each other's
// changes; a rename is refused while rule conditions name the group.
func (s *Service) UpdateSignerGroup(org, id string, in SignerGroupInput, a Admin) (*engine.SignerGroup, error) {
	var entries []engine.SignerEntry
	if in.Signers != nil {
		var err error
		if entries, err = in.signers(); err != nil {
			return nil, err
		}
	}
	var out *engine.SignerGroup
	err := s.st.Update(func(tx *store.Tx) error {
		rd := tx.Read()
		old, err := rd.SignerGroup(org, id)
		if err != nil {
			return err
		}
		g := *old
		if in.Name != nil {
			g.Name = *in.Name
		}
		if in.Description != nil {
			g.Description = in.Description
		}
		if in.Signers != nil {
			g.Signers = entries
		}
		if err := engine.ValidateSignerGroup(&g); err != nil {
			return err
		}
		n := engine.NormalizeSignerGroup(g)
		if !sameName(n.Name, old.Name) {
			rules, err := rd.Rules(org)
			if err != nil {
				return err
			}
			if c := rulesUsingName(rules, old.Name); c > 0 {
				return &InUseError{Rules: c}
			}
		}
		if _, err := tx.PutSignerGroup(&n); err != nil {
			return err // a duplicate name is a *store.ConflictError
		}
		a.audit(tx, n.OrgID, s.clock.Now(), auditGroupUpdated, n.ID, map[string]any{"before": old, "after": n})
		out = &n
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) putSignerGroup(g *engine.SignerGroup, action string, a Admin) (*engine.SignerGroup, error) {
	if err := engine.ValidateSignerGroup(g); err != nil {
		return nil, err
	}
	n := engine.NormalizeSignerGroup(*g)
	err := s.st.Update(func(tx *store.Tx) error {
		if _, err := tx.PutSignerGroup(&n); err != nil {
			return err
		}
		a.audit(tx, n.OrgID, s.clock.Now(), action, n.ID, map[string]any{"signerGroup": n})
		return nil
	})
	if err != nil {
		return nil, err // a duplicate name is a *store.ConflictError
	}
	return &n, nil
}

// DeleteSignerGroup removes a signer group no rule references (else an
// *InUseError with the count).
func (s *Service) DeleteSignerGroup(org, id string, a Admin) error {
	err := s.st.Update(func(tx *store.Tx) error {
		rd := tx.Read()
		g, err := rd.SignerGroup(org, id)
		if err != nil {
			return err
		}
		rules, err := rd.Rules(org)
		if err != nil {
			return err
		}
		if n := rulesUsing(rules, g); n > 0 {
			return &InUseError{Rules: n}
		}
		if _, err := tx.DeleteSignerGroup(org, g.ID); err != nil {
			return err
		}
		a.audit(tx, org, s.clock.Now(), auditGroupDeleted, g.ID, map[string]any{"signerGroup": g})
		return nil
	})
	return err
}

// ConfigInput is the body of PUT /pam/config: the settings it names are
// set, the others kept.
type ConfigInput struct {
	DefaultUnmatchedVerdict *engine.Verdict `json:"defaultUnmatchedVerdict"`
	UacInterceptionEnabled  *bool           `json:"uacInterceptionEnabled"`
	ActuatorEnabled         *bool           `json:"actuatorEnabled"`
	// ClearUacInterception sets uacInterceptionEnabled back to "not set".
	ClearUacInterception bool `json:"-"`
}

// SetConfig changes the organisation's PAM settings.
func (s *Service) SetConfig(org string, in ConfigInput, a Admin) (*store.Org, error) {
	if v := in.DefaultUnmatchedVerdict; v != nil && *v != engine.VerdictRequireApproval && *v != engine.VerdictAutoDeny {
		return nil, engine.FieldErrors{&engine.FieldError{Field: "defaultUnmatchedVerdict", Reason: "must be require_approval or auto_deny"}}
	}
	var out *store.Org
	err := s.st.Update(func(tx *store.Tx) error {
		o, err := tx.Org(org)
		if err != nil {
			return err
		}
		before := *o
		if v := in.DefaultUnmatchedVerdict; v != nil {
			o.DefaultUnmatchedVerdict = *v
		}
		if in.ClearUacInterception {
			o.UacInterceptionEnabled = nil
		} else if v := in.UacInterceptionEnabled; v != nil {
			o.UacInterceptionEnabled = v
		}
		if v := in.ActuatorEnabled; v != nil {
			o.ActuatorEnabled = *v
		}
		if err := tx.PutOrg(o); err != nil {
			return err
		}
		a.audit(tx, o.ID, s.clock.Now(), auditConfigUpdated, o.ID, map[string]any{"before": configOf(&before), "after": configOf(o)})
		out = o
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func configOf(o *store.Org) map[string]any {
	return map[string]any{"defaultUnmatchedVerdict": o.DefaultUnmatchedVerdict, "uacInterceptionEnabled": o.UacInterceptionEnabled,
		"actuatorEnabled": o.ActuatorEnabled}
}

func canonical(id string) string {
	if v, err := store.ParseID(id); err == nil {
		return v.String()
	}
	return id
}
