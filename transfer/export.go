package transfer

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/store"
)

// ExportOptions choose what Export writes. The zero value writes nothing.
type ExportOptions struct {
	// OrgID narrows the export to one organisation ("" = every one). The
	// organisation's partner (with Inventory) and its partner's
	// partner-wide policies (with Policies) come along, so the file imports
	// into an empty store.
	OrgID string
	// From and To bound the requests' requestedAt, both inclusive; zero =
	// unbounded.
	From, To time.Time

	Requests     bool // elevation requests
	Rules        bool
	SignerGroups bool
	Inventory    bool // partners, organisations, sites, device groups, devices
	Policies     bool // configuration policies
}

// All turns on every kind of row.
func (o ExportOptions) All() ExportOptions {
	o.Requests, o.Rules, o.SignerGroups, o.Inventory, o.Policies = true, true, true, true, true
	return o
}

// exportData is what one snapshot yields before requests.
type exportData struct {
	partners     []store.Partner
	orgs         []store.Org
	sites        []store.Site
	groups       []store.DeviceGroup
	devices      []store.Device
	signerGroups []engine.SignerGroup
	rules        []engine.Rule
	policies     []policy.Policy
	walk         []string // organisations whose requests are exported
}

// Export writes the selected state to w as JSON Lines (see the package
// documentation for the format and order) and returns how many rows of
// each kind it wrote. Everything but the requests is read from one
// snapshot; the requests are read afterwards, organisation by organisation
// in time order, from snapshots of their own. Requests of an organisation
// missing from the store are not exported (they could not be imported).
func Export(st *store.Store, w io.Writer, o ExportOptions) (Stats, error) {
	var stats Stats
	var d exportData
	err := st.View(func(sn *store.Snapshot) error {
		var err error
		d, err = collect(sn, o)
		return err
	})
	if err != nil {
		return stats, err
	}

	bw := bufio.NewWriterSize(w, 64<<10)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	var line []byte
	var werr error // sticky: nothing is written after a failure
	emit := func(kind string, v any) error {
		if werr != nil {
			return werr
		}
		buf.Reset()
		if err := enc.Encode(v); err != nil {
			werr = fmt.Errorf("transfer: encoding a %s: %w", orRequest(kind), err)
			return werr
		}
		if line, werr = appendLine(line[:0], kind, buf.Bytes()); werr != nil {
			return werr
		}
		if _, werr = bw.Write(line); werr != nil {
			return werr
		}
		stats.add(orRequest(kind), 1)
		return nil
	}
	err = firstErr(
		emitAll(emit, KindPartner, d.partners),
		emitAll(emit, KindOrg, d.orgs),
		emitAll(emit, KindSite, d.sites),
		emitAll(emit, KindDeviceGroup, d.groups),
		emitAll(emit, KindDevice, d.devices),
		emitAll(emit, KindSignerGroup, d.signerGroups),
		emitAll(emit, KindRule, d.rules),
		emitAll(emit, KindPolicy, d.policies),
	)
	if err != nil {
		return stats, err
	}
	if o.Requests {
		err := scanInOrder(st, d.walk, o.From, o.To, func(r *store.Request) error { return emit("", r) })
		if err != nil {
			return stats, err
		}
	}
	return stats, bw.Flush()
}

// emitAll writes the rows of one kind.
func emitAll[T any](emit func(kind string, v any) error, kind string, rows []T) error {
	for i := range rows {
		if err := emit(kind, &rows[i]); err != nil {
			return err
		}
	}
	return nil
}

// collect reads everything but the requests from one snapshot.
func collect(sn *store.Snapshot, o ExportOptions) (exportData, error) {
	var d exportData
	var orgs []store.Org
	if o.OrgID != "" {
		org, err := sn.Org(o.OrgID)
		if errors.Is(err, store.ErrNotFound) {
			return d, fmt.Errorf("transfer: organisation %s: %w", o.OrgID, store.ErrNotFound)
		}
		if err != nil {
			return d, err
		}
		orgs = []store.Org{*org}
	} else {
		var err error
		if orgs, err = sn.Orgs(); err != nil {
			return d, err
		}
	}
	for _, org := range orgs {
		d.walk = append(d.walk, org.ID)
	}
	partnerOf := func(p string) bool {
		if o.OrgID == "" {
			return true
		}
		return orgs[0].PartnerID != "" && sameID(p, orgs[0].PartnerID)
	}
	if o.Inventory {
		d.orgs = orgs
		partners, err := sn.Partners()
		if err != nil {
			return d, err
		}
		for _, p := range partners {
			if partnerOf(p.ID) {
				d.partners = append(d.partners, p)
			}
		}
		for _, org := range orgs {
			sites, err := sn.Sites(org.ID)
			if err != nil {
				return d, err
			}
			d.sites = append(d.sites, sites...)
		}
		for _, org := range orgs {
			groups, err := sn.DeviceGroups(org.ID)
			if err != nil {
				return d, err
			}
			d.groups = append(d.groups, groups...)
		}
		for _, org := range orgs {
			devices, err := sn.Devices(org.ID)
			if err != nil {
				return d, err
			}
			d.devices = append(d.devices, devices...)
		}
	}
	if o.Rules || o.SignerGroups {
		for _, org := range orgs {
			rs, err := sn.RuleSet(org.ID)
			if err != nil {
				return d, err
			}
			if o.SignerGroups {
				d.signerGroups = append(d.signerGroups, rs.SignerGroups...)
			}
			if o.Rules {
				d.rules = append(d.rules, rs.Rules...)
			}
		}
	}
	if o.Policies {
		ps, err := sn.Policies()
		if err != nil {
			return d, err
		}
		for _, p := range ps {
			switch {
			case o.OrgID == "":
			case p.OrgID != "" && sameID(p.OrgID, orgs[0].ID):
			case p.OrgID == "" && p.PartnerID != "" && partnerOf(p.PartnerID):
			default:
				continue
			}
			d.policies = append(d.policies, p)
		}
	}
	return d, nil
}

// scanInOrder calls fn for every request of the organisations in orgs
// with requestedAt in [from, to], oldest first, ties broken by
// organisation id and then request id. One organisation is one scan; for
// several, a merge reads each organisation's rows in batches that grow as
// they are consumed, so an idle organisation costs a few rows of memory
// and no open iterator.
func scanInOrder(st *store.Store, orgs []string, from, to time.Time, fn func(*store.Request) error) error {
	if len(orgs) == 1 {
		var ferr error
		err := st.ScanRequests(store.ScanOptions{OrgID: orgs[0], From: from, To: to}, func(r *store.Request) bool {
			ferr = fn(r)
			return ferr == nil
		})
		return firstErr(ferr, err)
	}
	h := &cursorHeap{}
	for _, org := range orgs {
		oid, err := store.ParseID(org)
		if err != nil {
			return fmt.Errorf("transfer: organisation id %q: %w", org, err)
		}
		c := &cursor{st: st, org: org, orgID: oid, from: from, to: to, batch: 4}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			h.items = append(h.items, c)
		}
	}
	heap.Init(h)
	for h.Len() > 0 {
		c := h.items[0]
		if err := fn(c.head); err != nil {
			return err
		}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

const maxCursorBatch = 1024

// cursor walks one organisation's requests in key order (requestedAt, id)
// by repeated bounded scans, each resuming after the last row it returned.
type cursor struct {
	st       *store.Store
	org      string
	orgID    store.ID
	from, to time.Time

	buf     []*store.Request
	pos     int
	batch   int
	drained bool // the last scan reached the end of the range

	head   *store.Request
	headID store.ID
}

// next moves to the following row; false at the end.
func (c *cursor) next() (bool, error) {
	if c.pos >= len(c.buf) {
		if c.drained {
			c.head = nil
			return false, nil
		}
		if err := c.fill(); err != nil {
			return false, err
		}
		if len(c.buf) == 0 {
			c.head = nil
			return false, nil
		}
	}
	c.head = c.buf[c.pos]
	c.buf[c.pos] = nil
	c.pos++
	id, err := store.ParseID(c.head.ID)
	if err != nil {
		return false, fmt.Errorf("transfer: stored request with id %q: %w", c.head.ID, err)
	}
	c.headID = id
	return true, nil
}

func (c *cursor) fill() error {
	c.buf, c.pos = c.buf[:0], 0
	from := c.from
	var lastAt time.Time
	var lastID store.ID
	resume := c.head != nil
	if resume {
		lastAt, lastID = c.head.RequestedAt, c.headID
		from = lastAt
	}
	n := c.batch
	err := c.st.ScanRequests(store.ScanOptions{OrgID: c.org, From: from, To: c.to}, func(r *store.Request) bool {
		if resume && r.RequestedAt.Equal(lastAt) {
			if id, err := store.ParseID(r.ID); err == nil && bytes.Compare(id[:], lastID[:]) <= 0 {
				return true
			}
		}
		c.buf = append(c.buf, r)
		return len(c.buf) < n
	})
	if err != nil {
		return err
	}
	c.drained = len(c.buf) < n
	c.batch = min(2*c.batch, maxCursorBatch)
	return nil
}

type cursorHeap struct{ items []*cursor }

func (h *cursorHeap) Len() int { return len(h.items) }
func (h *cursorHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if c := a.head.RequestedAt.Compare(b.head.RequestedAt); c != 0 {
		return c < 0
	}
	if c := bytes.Compare(a.orgID[:], b.orgID[:]); c != 0 {
		return c < 0
	}
	return bytes.Compare(a.headID[:], b.headID[:]) < 0
}
func (h *cursorHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *cursorHeap) Push(x any)    { h.items = append(h.items, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
