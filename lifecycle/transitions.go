package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// Decision values of Respond.
const (
	Approve = "approve"
	Deny    = "deny"
)

// RespondInput is an administrator's decision on a pending request.
type RespondInput struct {
	OrgID           string
	ID              string
	Decision        string  // approve or deny
	Reason          *string // ≤ 2000 characters
	DurationMinutes *int    // approve: 1..1440, default 15
	Actor           Actor
	// Sites restricts a site-scoped caller (nil: unrestricted). A request
	// whose device has no site is not site-checked.
	Sites []string
}

// Respond approves or denies a pending request: a compare-and-swap on
// pending. The loser of a race gets a *StateError.
func (s *Service) Respond(in RespondInput) (*store.Request, error) {
	var es engine.FieldErrors
	if in.Decision != Approve && in.Decision != Deny {
		es = append(es, &engine.FieldError{Field: "decision", Reason: "must be approve or deny"})
	}
	if in.Reason != nil && tooLong(*in.Reason, MaxReasonLength) {
		es = append(es, &engine.FieldError{Field: "reason", Reason: fmt.Sprintf("must be at most %d characters", MaxReasonLength)})
	}
	dur := DefaultRespondMinutes
	if in.DurationMinutes != nil {
		dur = *in.DurationMinutes
		if dur < 1 || dur > MaxRespondMinutes {
			es = append(es, &engine.FieldError{Field: "durationMinutes", Reason: fmt.Sprintf("must be 1 to %d", MaxRespondMinutes)})
		}
	}
	if len(es) > 0 {
		return nil, es
	}
	reason := ""
	if in.Reason != nil {
		reason = *in.Reason
	}
	var out *store.Request
	err := s.st.Update(func(tx *store.Tx) error {
		now := s.clock.Now()
		r, err := requestFor(tx, in.OrgID, in.ID, in.Sites)
		if err != nil {
			return err
		}
		if in.Decision == Approve && r.SubjectUserID != "" && r.SubjectUserID == in.Actor.ID {
			return ErrSelfApproval
		}
		if r.Status != store.StatusPending {
			return &StateError{ID: r.ID, Want: "pending", Current: r.Status}
		}
		from := r.Status
		rec := store.AuditRecord{OrgID: r.OrgID, At: now, Subject: r.ID, ActorKind: actorKind(in.Actor), ActorID: in.Actor.ID,
			ActorName: in.Actor.Name, From: string(from), Reason: reason}
		if in.Decision == Approve {
			r.Status = store.StatusApproved
			r.ApprovedAt, r.ApprovedBy, r.ApprovedByName, r.ApprovalReason = now, in.Actor.ID, in.Actor.Name, reason
			r.DurationMinutes = dur
			r.ExpiresAt = now.Add(time.Duration(dur) * time.Minute)
			rec.Action = auditApproved
			rec.Details = details(map[string]any{"durationMinutes": dur, "expiresAt": r.ExpiresAt.Format(time.RFC3339Nano)})
		} else {
			r.Status = store.StatusDenied
			r.DeniedAt, r.DeniedBy, r.DeniedByName, r.DenialReason = now, in.Actor.ID, in.Actor.Name, reason
			rec.Action = auditDenied
		}
		rec.To = string(r.Status)
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		tx.Audit(rec)
		out = r
		return nil
	})
	return out, err
}

// RevokeInput ends an active grant early.
type RevokeInput struct {
	OrgID  string
	ID     string
	Reason string // required, 1..2000
	Actor  Actor
	Sites  []string
}

// Revoke moves an active request (approved, auto_approved or actuating) to
// revoked: a compare-and-swap on an active status. Like the reference
// semantics it does not look at expiresAt, so a grant past due but not yet
// swept can still be revoked.
func (s *Service) Revoke(in RevokeInput) (*store.Request, error) {
	if strings.TrimSpace(in.Reason) == "" || tooLong(in.Reason, MaxReasonLength) {
		return nil, engine.FieldErrors{{Field: "reason", Reason: fmt.Sprintf("is required, 1 to %d characters", MaxReasonLength)}}
	}
	var out *store.Request
	err := s.st.Update(func(tx *store.Tx) error {
		now := s.clock.Now()
		r, err := requestFor(tx, in.OrgID, in.ID, in.Sites)
		if err != nil {
			return err
		}
		if !r.Status.Active() {
			return &StateError{ID: r.ID, Want: "active", Current: r.Status}
		}
		from := r.Status
		r.Status = store.StatusRevoked
		r.RevokedAt, r.RevokedBy, r.RevokedByName, r.RevokedReason = now, in.Actor.ID, in.Actor.Name, in.Reason
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		tx.Audit(store.AuditRecord{OrgID: r.OrgID, At: now, Action: auditRevoked, Subject: r.ID, ActorKind: actorKind(in.Actor),
			ActorID: in.Actor.ID, ActorName: in.Actor.Name, From: string(from), To: string(r.Status), Reason: in.Reason})
		out = r
		return nil
	})
	return out, err
}

// ActuateInput asks a device's agent to go ahead with an approved UAC
// elevation.
type ActuateInput struct {
	OrgID     string
	DeviceID  string
	RequestID string
	TimeoutMs int // 1000..60000, 0 = 8000
	Actor     Actor
	Sites     []string
}

// Actuate moves an approved request to actuating (single use) and queues
// the actuate_elevation command for the device, in one operation. Only
// approved (not auto_approved) requests qualify, and — unlike the
// reference, which never looks at expiresAt here — a grant past its expiry
// is refused even before the sweep has run: actuation would elevate a
// process outside the window that was approved.
func (s *Service) Actuate(in ActuateInput) (*store.Command, error) {
	timeout := in.TimeoutMs
	if timeout == 0 {
		timeout = DefaultActuateTimeout
	}
	if timeout < minActuateTimeout || timeout > maxActuateTimeout {
		return nil, engine.FieldErrors{{Field: "timeoutMs", Reason: fmt.Sprintf("must be %d to %d", minActuateTimeout, maxActuateTimeout)}}
	}
	if _, err := store.ParseID(in.RequestID); err != nil {
		return nil, engine.FieldErrors{{Field: "elevationRequestId", Reason: "must be a UUID"}}
	}
	var out *store.Command
	var refused *StateError
	err := s.st.Update(func(tx *store.Tx) error {
		now := s.clock.Now()
		refused = nil
		org, err := tx.Org(in.OrgID)
		if err != nil {
			return err
		}
		if !org.ActuatorEnabled {
			return ErrActuatorDisabled
		}
		dev, err := tx.Device(in.DeviceID)
		if err != nil {
			return err
		}
		if dev.OrgID != org.ID {
			return ErrNotFound
		}
		if !siteAllowed(in.Sites, dev.SiteID) {
			return ErrSiteDenied
		}
		if dev.Status == store.DeviceDecommissioned {
			return fmt.Errorf("%w: device %s is decommissioned", ErrDeviceInactive, dev.ID)
		}
		r, err := tx.Request(dev.OrgID, in.RequestID)
		if err != nil {
			return err
		}
		if r.DeviceID != dev.ID {
			return ErrNotFound
		}
		if r.Status != store.StatusApproved {
			refused = &StateError{ID: r.ID, Want: "approved", Current: r.Status}
			return refused
		}
		if !r.ActiveAt(now) {
			refused = &StateError{ID: r.ID, Want: "approved", Current: store.StatusExpired}
			return refused
		}
		payload, _ := json.Marshal(map[string]any{"elevationRequestId": r.ID, "timeoutMs": timeout,
			"targetPath": r.TargetExecutablePath, "commandLine": r.CommandLine, "subjectUsername": r.SubjectUsername})
		cmd := &store.Command{ID: store.NewID(now), OrgID: r.OrgID, DeviceID: dev.ID, Type: actuateCommandType,
			Status: "pending", ElevationRequestID: r.ID, Payload: payload, CreatedAt: now}
		r.Status = store.StatusActuating
		r.ActuatedAt, r.ActuatedBy, r.ActuationCommandID = now, in.Actor.ID, cmd.ID
		if err := tx.PutRequest(r); err != nil {
			return err
		}
		if err := tx.PutCommand(cmd); err != nil {
			return err
		}
		tx.Audit(store.AuditRecord{OrgID: r.OrgID, At: now, Action: auditActuated, Subject: r.ID, ActorKind: actorKind(in.Actor),
			ActorID: in.Actor.ID, ActorName: in.Actor.Name, From: string(store.StatusApproved), To: string(r.Status),
			Details: details(map[string]any{"commandId": cmd.ID, "timeoutMs": timeout})})
		out = cmd
		return nil
	})
	if refused != nil && errors.Is(err, refused) {
		// A refused actuation is itself worth an audit record; it is
		// written on its own, as the refusing operation wrote nothing.
		aerr := s.st.Update(func(tx *store.Tx) error {
			tx.Audit(store.AuditRecord{OrgID: in.OrgID, At: s.clock.Now(), Action: auditActuateRefused, Subject: refused.ID,
				ActorKind: actorKind(in.Actor), ActorID: in.Actor.ID, ActorName: in.Actor.Name, From: string(refused.Current),
				Reason: refused.Error()})
			return nil
		})
		if aerr != nil {
			return nil, errors.Join(err, aerr)
		}
	}
	return out, err
}

// SweepResult counts what one sweep expired.
type SweepResult struct {
	Grants int // active grants past expiresAt
	Stale  int // pending requests older than the pending TTL
}

// sweepOpLimit bounds the requests one sweep operation expires, so that an
// operation stays far inside a transaction's size limit even when every
// row carries fields at their maximum length.
const sweepOpLimit = 50

// Sweep expires, at the clock's now, every active grant whose expiresAt has
// passed and every pending request older than the pending TTL (both
// strictly), oldest first, in small operations until none is left. Each
// expiry is a compare-and-swap, so a sweep racing a respond or revoke never
// overwrites it. A request whose row cannot be read is skipped (and
// reported in the returned error) so that it cannot stop the expiry of the
// others.
func (s *Service) Sweep() (SweepResult, error) {
	var total SweepResult
	var problems []error
	// refused holds the requests the store would not expire (a damaged
	// counter, a row that no longer validates): each is reported once and
	// then passed over, so it cannot hold up the others.
	refused := map[string]bool{}
	for {
		var res SweepResult
		var bad []error
		var newlyRefused []string
		limit := sweepOpLimit + len(refused)
		returned := 0
		err := s.st.Update(func(tx *store.Tx) error {
			res, bad, newlyRefused, returned = SweepResult{}, nil, nil, 0
			now := s.clock.Now()
			grants, stale, unreadable, err := tx.Due(now, s.ttl, limit)
			if err != nil {
				return err
			}
			bad = unreadable
			returned = len(grants) + len(stale)
			expire := func(r *store.Request, cause string) error {
				if refused[r.ID] {
					return nil
				}
				sp := tx.Savepoint()
				from := r.Status
				r.Status, r.ExpiredAt, r.ExpiredCause = store.StatusExpired, now, cause
				if err := tx.PutRequest(r); err != nil {
					var ce *store.CorruptError
					var ie *store.InvalidError
					if !errors.As(err, &ce) && !errors.As(err, &ie) {
						return err
					}
					tx.Rollback(sp)
					bad = append(bad, fmt.Errorf("request %s not expired: %w", r.ID, err))
					newlyRefused = append(newlyRefused, r.ID)
					return nil
				}
				tx.Audit(store.AuditRecord{OrgID: r.OrgID, At: now, Action: auditExpired, Subject: r.ID,
					ActorKind: store.ActorSystem, From: string(from), To: string(r.Status),
					Details: details(map[string]any{"cause": cause})})
				if cause == expiredCauseWindow {
					res.Grants++
				} else {
					res.Stale++
				}
				return nil
			}
			for _, r := range grants {
				if err := expire(r, expiredCauseWindow); err != nil {
					return err
				}
			}
			for _, r := range stale {
				if err := expire(r, expiredCauseStale); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, errors.Join(append(problems, err)...)
		}
		for _, id := range newlyRefused {
			refused[id] = true
		}
		if len(problems) < 20 {
			problems = append(problems, bad...)
		}
		total.Grants += res.Grants
		total.Stale += res.Stale
		if returned < limit { // nothing more is due
			return total, errors.Join(problems...)
		}
	}
}

// RunSweeper sweeps every interval until ctx ends, reporting errors to
// onErr (which may be nil).
func (s *Service) RunSweeper(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.Sweep(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// requestFor reads the request a caller restricted to sites (nil: any) may
// act on: ErrNotFound outside the org, ErrSiteDenied outside the sites.
func requestFor(tx *store.Tx, org, id string, sites []string) (*store.Request, error) {
	r, err := tx.Request(org, id)
	if err != nil {
		return nil, err
	}
	if !siteAllowed(sites, r.SiteID) {
		return nil, ErrSiteDenied
	}
	return r, nil
}

func siteAllowed(sites []string, site string) bool {
	if sites == nil || site == "" {
		return true
	}
	return slices.ContainsFunc(sites, func(s string) bool { return strings.EqualFold(s, site) })
}

func actorKind(a Actor) string {
	if a.Kind != "" {
		return a.Kind
	}
	return store.ActorUser
}
