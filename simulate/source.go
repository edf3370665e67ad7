package simulate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/store"
)

// CaseOf fills c from a stored request, with what the request recorded
// (never a thumbprint; AD groups when the agent reported them).
func CaseOf(r *store.Request, c *Case) {
	*c = Case{ID: r.ID, OrgID: r.OrgID, DeviceID: r.DeviceID, SiteID: r.SiteID, Flow: r.Flow, At: r.RequestedAt,
		Observation: engine.Observation{SubjectUsername: r.SubjectUsername, TargetExecutablePath: r.TargetExecutablePath,
			TargetExecutableHash: r.TargetExecutableHash, TargetExecutableSigner: r.TargetExecutableSigner,
			ParentImage: r.ParentImage, CommandLine: r.CommandLine, AdGroups: r.AdGroups, ToolName: r.ToolName,
			RiskTier: r.RiskTier},
		Recorded: Recorded{Outcome: r.Decision.Outcome, RuleID: r.Decision.RuleID, RuleName: r.Decision.RuleName},
		Status:   r.Status}
	if r.Flow == engine.FlowUAC {
		c.Observation.ObservedAt = &c.At
	}
}

// StoreSource reads the requests of one organisation ("" = every one)
// requested within [from, to] (zero = unbounded) from a store.
func StoreSource(st *store.Store, org string, from, to time.Time) Source {
	return StoreReader{st}.Source(Scope{OrgID: org, From: from, To: to}, nil)
}

// History is a JSON Lines history as `elevate export --data` writes it:
// its requests, held as a projection (a million requests fit in a fraction
// of the file's size), and its organisations when the file has them (by
// id).
type History struct {
	Orgs map[string]*store.Org
	proj *Projection
}

// Len is the number of requests held.
func (h *History) Len() int { return h.proj.Len() }

// ReadHistory reads a JSON Lines export. Request lines become cases
// (filtered to org unless it is "" and to [from, to] when set); org lines
// give the organisations' default verdicts; other lines are skipped. A line
// that is not JSON is an error naming its number.
func ReadHistory(r io.Reader, org string, from, to time.Time) (*History, error) {
	h := &History{Orgs: map[string]*store.Org{}, proj: NewProjection()}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var head struct {
			Kind *string `json:"kind"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		switch {
		case head.Kind == nil:
			var req store.Request
			if err := json.Unmarshal(line, &req); err != nil {
				return nil, fmt.Errorf("line %d: request: %v", n, err)
			}
			_, errOrg := store.ParseID(req.OrgID)
			_, errID := store.ParseID(req.ID)
			if errOrg != nil || errID != nil || req.RequestedAt.IsZero() || !req.Flow.Valid() {
				return nil, fmt.Errorf("line %d: a request needs an id and an orgId (UUIDs), requestedAt and a valid flowType", n)
			}
			if org != "" && !sameID(req.OrgID, org) || !from.IsZero() && req.RequestedAt.Before(from) || !to.IsZero() && req.RequestedAt.After(to) {
				continue
			}
			h.proj.mu.Lock()
			err := h.proj.put(&req)
			h.proj.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
		case *head.Kind == "org":
			var o store.Org
			if err := json.Unmarshal(line, &o); err != nil {
				return nil, fmt.Errorf("line %d: org: %v", n, err)
			}
			if _, err := store.ParseID(o.ID); err != nil {
				return nil, fmt.Errorf("line %d: org: id: %v", n, err)
			}
			o.ID = canonical(o.ID)
			h.Orgs[o.ID] = &o
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return h, nil
}

// Source yields the history's cases, newest first.
func (h *History) Source() Source { return h.proj.Source(Scope{}, nil) }

func sameID(a, b string) bool { return canonical(a) == canonical(b) }

// LiveChain is the chain a lifecycle service decides with now: each
// organisation's stored rules merged with the rule files it has loaded,
// its settings, and its software policies.
func LiveChain(lc *lifecycle.Service) Chain {
	return Chain{
		RuleSet: func(org string) (*engine.RuleSet, error) {
			rs, _, err := lc.RuleSet(org)
			return rs, err
		},
		Org: func(org string) (engine.OrgConfig, error) {
			var o *store.Org
			err := lc.Store().View(func(sn *store.Snapshot) error {
				var err error
				o, err = sn.Org(org)
				return err
			})
			if err != nil {
				return engine.OrgConfig{}, err
			}
			return lc.OrgConfig(o), nil
		},
		Bridge: deviceBridge(lc),
	}
}

// deviceBridge resolves a case's device's software policies (as they are
// now: policies keep no history) once per device and run.
func deviceBridge(lc *lifecycle.Service) func(*Case) (*engine.Bridge, error) {
	bf := lc.Bridge()
	if bf == nil {
		return nil
	}
	type entry struct {
		b   *engine.Bridge
		err error
	}
	var mu sync.Mutex
	cache := map[string]entry{}
	return func(c *Case) (*engine.Bridge, error) {
		mu.Lock()
		e, ok := cache[c.DeviceID]
		mu.Unlock()
		if ok {
			return e.b, e.err
		}
		var dev *store.Device
		if c.DeviceID != "" {
			e.err = lc.Store().View(func(sn *store.Snapshot) error {
				var err error
				dev, err = sn.Device(c.DeviceID)
				return err
			})
		}
		switch {
		case dev == nil && (e.err == nil || errors.Is(e.err, store.ErrNotFound)):
			// A device the store does not know (gone since, or a history
			// file's): no software policy reaches it.
			e.err = nil
		case e.err == nil:
			e.b, e.err = bf(dev)
		}
		mu.Lock()
		cache[c.DeviceID] = e
		mu.Unlock()
		return e.b, e.err
	}
}

// FileChain is the chain a server holding only the rule files would decide
// the history with: the history's organisations (their settings from its
// org lines; an organisation it only names gets the defaults) in an
// in-memory store, the files loaded as a server loads its rule directory,
// decided through LiveChain. No software policies. done releases the
// store.
func (h *History) FileChain(files []lifecycle.FileOrg) (ch Chain, done func() error, err error) {
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		return Chain{}, nil, err
	}
	err = st.Update(func(tx *store.Tx) error {
		seen := map[string]bool{}
		put := func(o store.Org) error {
			if seen[o.ID] {
				return nil
			}
			seen[o.ID] = true
			o.PartnerID = "" // partners play no part in decisions
			if o.Name == "" {
				o.Name = o.ID
			}
			return tx.PutOrg(&o)
		}
		for _, o := range h.Orgs {
			if err := put(*o); err != nil {
				return err
			}
		}
		orgs, err := h.proj.orgList("")
		if err != nil {
			return err
		}
		for _, id := range orgs {
			if err := put(store.Org{ID: id.String()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		st.Close()
		return Chain{}, nil, err
	}
	lc := lifecycle.New(lifecycle.Config{Store: st})
	lc.SetFileRules(files)
	return LiveChain(lc), st.Close, nil
}

// ownCase gives a case filled from a borrowed row memory of its own: its
// strings are copied into one allocation, its slices and pointers copied
// (store.Request.Clone does as much by reflection, some twenty times
// slower; TestOwnCase checks that every string of a Case is here).
func ownCase(c *Case) {
	o := &c.Observation
	strs := [...]*string{&c.ID, &c.OrgID, &c.DeviceID, &c.SiteID, (*string)(&c.Flow),
		&o.SubjectUsername, &o.TargetExecutablePath, &o.TargetExecutableHash, &o.TargetExecutableSigner,
		&o.TargetExecutableSignerThumbprint, &o.ParentImage, &o.CommandLine, &o.ToolName, &o.SiteID,
		(*string)(&c.Recorded.Outcome), &c.Recorded.RuleID, &c.Recorded.RuleName, (*string)(&c.Status)}
	n := 0
	for _, p := range strs {
		n += len(*p)
	}
	for _, g := range o.AdGroups {
		n += len(g)
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range strs {
		b.WriteString(*p)
	}
	for _, g := range o.AdGroups {
		b.WriteString(g)
	}
	all, off := b.String(), 0
	take := func(l int) string {
		s := all[off : off+l]
		off += l
		return s
	}
	for _, p := range strs {
		*p = take(len(*p))
	}
	if o.AdGroups != nil {
		gs := make([]string, len(o.AdGroups))
		for i, g := range o.AdGroups {
			gs[i] = take(len(g))
		}
		o.AdGroups = gs
	}
	for _, p := range []**int{&o.RiskTier, &o.RequestedDurationMinutes} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	if o.ObservedAt != nil && o.ObservedAt != &c.At { // a case's pointer to its own At stays
		v := *o.ObservedAt
		o.ObservedAt = &v
	}
}
