// Package lifecycle is the one place where elevation requests are created
// and move between statuses (pam-semantics §6–§7): ingest decides through
// the engine and records the request; respond, revoke, actuate and the
// expiry sweep are compare-and-swap transitions inside one store
// operation. The HTTP server, the command line and the tests all go through
// it.
package lifecycle

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// Defaults of pam-semantics §7.
const (
	DefaultPendingTTL      = 15 * time.Minute
	DefaultRespondMinutes  = 15
	MaxRespondMinutes      = 1440
	MaxReasonLength        = 2000
	DefaultActuateTimeout  = 8000
	SweepBatch             = 500
	maxSubjectLength       = 255
	helperSubjectUsername  = "helper"
	actuateCommandType     = "actuate_elevation"
	minActuateTimeout      = 1000
	maxActuateTimeout      = 60000
	expiredCauseWindow     = "window"
	expiredCauseStale      = "stale"
	auditRequested         = "requested"
	auditAutoApproved      = "auto_approved"
	auditDenied            = "denied"
	auditApproved          = "approved"
	auditRevoked           = "revoked"
	auditExpired           = "expired"
	auditActuated          = "actuating"
	auditIgnored           = "ignored"
	auditActuateRefused    = "actuate_refused"
	auditIngestFailSafeKey = "failSafe"
)

// Errors the API maps to statuses: ErrNotFound 404, ErrSiteDenied and
// ErrSelfApproval 403, ErrActuatorDisabled 403, ErrDeviceInactive 400,
// *StateError 409, engine.FieldErrors 400.
var (
	ErrNotFound         = store.ErrNotFound
	ErrSiteDenied       = errors.New("site access denied")
	ErrSelfApproval     = errors.New("a request cannot be approved by its own subject")
	ErrActuatorDisabled = errors.New("actuation is disabled for this organisation")
	ErrDeviceInactive   = errors.New("device is not active")
)

// StateError is the loser's answer when a transition's compare-and-swap
// finds the request in another status.
type StateError struct {
	ID      string
	Want    string       // "pending", "active" or "approved"
	Current store.Status // the status found ("expired" for a grant past its expiresAt)
}

func (e *StateError) Error() string {
	return fmt.Sprintf("request is not %s (current status: %s)", e.Want, e.Current)
}

// Actor is who performs a transition.
type Actor struct {
	Kind string // store.ActorUser, ActorSystem, …
	ID   string
	Name string
}

// BridgeFunc returns the software policies that apply to a device (nil: none).
type BridgeFunc func(*store.Device) (*engine.Bridge, error)

// Config wires a Service.
type Config struct {
	Store *store.Store
	Clock Clock // nil: SystemClock
	// PendingTTL is how long a request may stay pending before the sweep
	// expires it (default 15 minutes, counted from requestedAt).
	PendingTTL time.Duration
	// Bridge resolves a device's software policies for uac requests.
	Bridge BridgeFunc
}

// Service runs the lifecycle over a store. It is safe for concurrent use.
type Service struct {
	st     *store.Store
	clock  Clock
	ttl    time.Duration
	bridge BridgeFunc

	mu    sync.Mutex
	cache map[string]*compiled // org → rule set at a version
}

type compiled struct {
	version uint64
	rs      *engine.RuleSet
	err     error
}

// New returns a Service.
func New(c Config) *Service {
	s := &Service{st: c.Store, clock: c.Clock, ttl: c.PendingTTL, bridge: c.Bridge, cache: map[string]*compiled{}}
	if s.clock == nil {
		s.clock = SystemClock{}
	}
	if s.ttl <= 0 {
		s.ttl = DefaultPendingTTL
	}
	return s
}

// Store is the underlying store.
func (s *Service) Store() *store.Store { return s.st }

// Clock is the service's clock.
func (s *Service) Clock() Clock { return s.clock }

// RuleSet returns the organisation's compiled rule set, compiling it when
// its stored version has moved. Stored rules are compiled leniently (an
// invalid one fails safe when reached); a rule set that cannot be read at
// all is an error, which ingest turns into a fail-safe decision.
func (s *Service) RuleSet(org string) (*engine.RuleSet, uint64, error) {
	ver, err := s.st.RuleVersion(org)
	if err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cache[org]; c != nil && c.version == ver {
		return c.rs, c.version, c.err
	}
	var stored *store.RuleSet
	err = s.st.View(func(sn *store.Snapshot) error {
		var err error
		stored, err = sn.RuleSet(org)
		return err
	})
	c := &compiled{}
	if err != nil {
		c.version, c.err = ver, fmt.Errorf("reading rules: %w", err)
	} else {
		c.version = stored.Version
		c.rs, c.err = engine.Compile(stored.Rules, stored.SignerGroups, engine.CompileOptions{Lenient: true})
	}
	s.cache[org] = c
	return c.rs, c.version, c.err
}

func tooLong(s string, n int) bool { return len([]rune(s)) > n }
