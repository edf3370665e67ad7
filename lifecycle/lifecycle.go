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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
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
	// Bridge resolves a device's software policies for uac requests; nil
	// means the software policy the device resolves to through the stored
	// configuration policies.
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
	files atomic.Pointer[fileSet]
	pol   policyState
}

type compiled struct {
	version uint64 // the stored rules' version
	gen     uint64 // the rule files' generation
	rs      *engine.RuleSet
	err     error
}

// FileOrg is what the rule files declare for organisations: rules and
// signer groups that join the stored ones, and settings used where the
// organisation has not set its own over the API.
type FileOrg struct {
	// Org names the organisations it applies to: "" every organisation,
	// else one organisation's id or (case-insensitive) name.
	Org   string
	Rules []engine.Rule
	// RuleOrigins says where each rule was declared (file:line:col).
	RuleOrigins []string
	Groups      []engine.SignerGroup
	// Config, when not nil, is the settings the files declare, and
	// UACInterception the pam feature's org-level fallback they set.
	Config          *engine.OrgConfig
	UACInterception *bool
	// Policies are the configuration policies the files declare, each
	// marked FromFiles (dsl.FilePolicies).
	Policies []policy.Policy
}

type fileSet struct {
	gen  uint64
	orgs []FileOrg
}

// SetFileRules replaces the rule files' contribution as a whole; decisions
// made from then on see the new set. It returns the new generation.
func (s *Service) SetFileRules(orgs []FileOrg) uint64 {
	for {
		old := s.files.Load()
		next := &fileSet{gen: 1, orgs: slices.Clone(orgs)}
		if old != nil {
			next.gen = old.gen + 1
		}
		if s.files.CompareAndSwap(old, next) {
			return next.gen
		}
	}
}

// fileOrgs returns the file declarations that apply to an organisation
// and the generation they belong to.
func (s *Service) fileOrgs(o *store.Org) ([]FileOrg, uint64) {
	fs := s.files.Load()
	if fs == nil {
		return nil, 0
	}
	var out []FileOrg
	for _, f := range fs.orgs {
		// An id only ever names the organisation with that id: another
		// organisation named like it is not it.
		if f.Org == "" || sameID(f.Org, o.ID) || !engine.IsUUID(f.Org) && strings.EqualFold(f.Org, o.Name) {
			out = append(out, f)
		}
	}
	return out, fs.gen
}

// FileRulesOf returns the rules and signer groups the rule files give an
// organisation, and where each rule was declared (for listing; they are
// read-only over the API).
func (s *Service) FileRulesOf(o *store.Org) (rules []engine.Rule, groups []engine.SignerGroup, origins []string) {
	fos, _ := s.fileOrgs(o)
	for _, f := range fos {
		for i, r := range f.Rules {
			rules = append(rules, r.Clone())
			at := ""
			if i < len(f.RuleOrigins) {
				at = f.RuleOrigins[i]
			}
			origins = append(origins, at)
		}
		groups = append(groups, f.Groups...)
	}
	return rules, groups, origins
}

// OrgConfig is the organisation's effective settings: its own where set
// over the API, else the rule files', else the defaults.
func (s *Service) OrgConfig(o *store.Org) engine.OrgConfig {
	c := o.Config()
	if c.DefaultUnmatchedVerdict == "" {
		fos, _ := s.fileOrgs(o)
		for _, f := range fos {
			if f.Config != nil && f.Config.DefaultUnmatchedVerdict != "" {
				c.DefaultUnmatchedVerdict = f.Config.DefaultUnmatchedVerdict
			}
		}
	}
	return c
}

// UACInterception is the organisation's uacInterceptionEnabled: its own
// where set over the API, else the rule files' (nil: not set).
func (s *Service) UACInterception(o *store.Org) *bool {
	if o.UacInterceptionEnabled != nil {
		return o.UacInterceptionEnabled
	}
	fos, _ := s.fileOrgs(o)
	var v *bool
	for _, f := range fos {
		if f.UACInterception != nil {
			v = f.UACInterception
		}
	}
	return v
}

func sameID(a, b string) bool {
	x, err1 := store.ParseID(a)
	y, err2 := store.ParseID(b)
	return err1 == nil && err2 == nil && x == y
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
	if s.bridge == nil {
		s.bridge = s.softwareBridge
	}
	return s
}

// Store is the underlying store.
func (s *Service) Store() *store.Store { return s.st }

// Clock is the service's clock.
func (s *Service) Clock() Clock { return s.clock }

// RuleSet returns the organisation's compiled rule set: its stored rules
// and signer groups together with those the rule files give it, compiled
// again when the stored version or the files' generation has moved.
// Stored rules are compiled leniently (an invalid one fails safe when
// reached); a rule set that cannot be read at all is an error, which
// ingest turns into a fail-safe decision.
func (s *Service) RuleSet(org string) (*engine.RuleSet, uint64, error) {
	rs, ver, _, err := s.ruleSet(org)
	return rs, ver, err
}

func (s *Service) ruleSet(org string) (*engine.RuleSet, uint64, uint64, error) {
	ver, err := s.st.RuleVersion(org)
	if err != nil {
		return nil, 0, 0, err
	}
	return s.ruleSetAt(org, ver)
}

// ruleSetAt is ruleSet for a caller that has just read the org's stored
// rule-set version ver.
func (s *Service) ruleSetAt(org string, ver uint64) (*engine.RuleSet, uint64, uint64, error) {
	gen := uint64(0)
	if fs := s.files.Load(); fs != nil {
		gen = fs.gen
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cache[org]; c != nil && c.version == ver && c.gen == gen {
		return c.rs, c.version, c.gen, c.err
	}
	var stored *store.RuleSet
	var o *store.Org
	err := s.st.View(func(sn *store.Snapshot) error {
		var err error
		if o, err = sn.Org(org); err != nil {
			return err
		}
		stored, err = sn.RuleSet(org)
		return err
	})
	c := &compiled{version: ver, gen: gen}
	if err != nil {
		c.err = fmt.Errorf("reading rules: %w", err)
	} else {
		rules, groups := stored.Rules, stored.SignerGroups
		fos, fgen := s.fileOrgs(o)
		for _, f := range fos {
			rules = append(rules, f.Rules...)
			groups = append(groups, f.Groups...)
		}
		c.version, c.gen = stored.Version, fgen
		c.rs, c.err = engine.Compile(rules, groups, engine.CompileOptions{Lenient: true})
	}
	s.cache[org] = c
	return c.rs, c.version, c.gen, c.err
}

func tooLong(s string, n int) bool { return len([]rune(s)) > n }

// fileGen is the rule files' current generation (0: none loaded).
func (s *Service) fileGen() uint64 {
	if fs := s.files.Load(); fs != nil {
		return fs.gen
	}
	return 0
}

// Bridge is the software-policy resolver the service was configured with
// (nil: none).
func (s *Service) Bridge() BridgeFunc { return s.bridge }
