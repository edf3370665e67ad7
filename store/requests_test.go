package store

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	gocmp "github.com/google/go-cmp/cmp"
)

// world is a store filled with random requests and the same requests in
// memory (the oracle).
type world struct {
	st      *Store
	orgs    []string // orgs[len-1] has no requests
	devices map[string][]string
	sites   map[string][]string
	reqs    map[string]*Request // id → as stored (times in UTC)
	byOrg   map[string][]*Request
	times   []time.Time // requestedAt values in use
	rng     *rand.Rand
}

const worldMinutes = 400 // requestedAt spread: few slots, many ties

func (w *world) randAt() time.Time {
	at := t0.Add(time.Duration(w.rng.IntN(worldMinutes)) * time.Minute)
	if w.rng.IntN(5) == 0 {
		at = at.Add(time.Duration(w.rng.IntN(3)) * time.Nanosecond) // near-ties
	}
	return at.In(zones[w.rng.IntN(len(zones))])
}

// setStatus moves r to st, keeping the fields the store checks coherent:
// an active request always has approvedAt and expiresAt; any other may
// keep an expiresAt or not.
func (w *world) setStatus(r *Request, st Status) {
	r.Status = st
	if st.Active() && r.ApprovedAt.IsZero() {
		r.ApprovedAt = r.RequestedAt.Add(time.Duration(w.rng.IntN(60)) * time.Minute)
	}
	newExpiry := w.rng.IntN(3) > 0
	switch {
	case !newExpiry && !st.Active():
		r.ExpiresAt = time.Time{}
	case !newExpiry && !r.ExpiresAt.IsZero():
		// a grant keeps the expiry it has
	default:
		base := r.ApprovedAt
		if base.IsZero() {
			base = r.RequestedAt
		}
		r.ExpiresAt = base.Add(time.Duration(w.rng.IntN(600)) * time.Minute)
	}
}

func (w *world) newRequest(org string) *Request {
	r := randomRequest(w.rng)
	if w.rng.IntN(5) > 0 { // most rows small, some with every field
		*r = Request{ID: r.ID, Flow: r.Flow, SubjectUsername: "user" + r.ID[:4], Reason: r.Reason[:min(len(r.Reason), 10)],
			Decision: DecisionRecord{Outcome: engine.OutcomePending, RuleSetVersion: uint64(w.rng.IntN(9))}}
	}
	r.OrgID = org
	r.DeviceID = w.devices[org][w.rng.IntN(len(w.devices[org]))]
	r.SiteID = ""
	if k := w.rng.IntN(len(w.sites[org]) + 1); k < len(w.sites[org]) {
		r.SiteID = w.sites[org][k]
	}
	r.RequestedAt = w.randAt()
	r.ApprovedAt = time.Time{}
	w.setStatus(r, Statuses[w.rng.IntN(len(Statuses))])
	return r
}

func newWorld(t *testing.T, seed uint64, perOrg int) *world {
	t.Helper()
	w := &world{
		st:      openTemp(t),
		devices: map[string][]string{},
		sites:   map[string][]string{},
		reqs:    map[string]*Request{},
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b9)),
	}
	for range 4 {
		org := rid(w.rng)
		w.orgs = append(w.orgs, org)
		for range 6 {
			w.devices[org] = append(w.devices[org], rid(w.rng))
		}
		for range 4 {
			w.sites[org] = append(w.sites[org], rid(w.rng))
		}
	}
	var all []*Request
	for _, org := range w.orgs[:len(w.orgs)-1] {
		for range perOrg {
			all = append(all, w.newRequest(org))
		}
	}
	// Insert in operations of ≤ 500 requests. Some requests are written
	// twice in their operation: first pending, then in their final state,
	// so the second write must replace the first one's index entries.
	for start := 0; start < len(all); start += 500 {
		chunk := all[start:min(start+500, len(all))]
		mustUpdate(t, w.st, func(tx *Tx) error {
			for _, r := range chunk {
				if w.rng.IntN(10) == 0 && r.Status != StatusPending {
					first := *r
					first.Status, first.ExpiresAt = StatusPending, time.Time{}
					if err := tx.PutRequest(&first); err != nil {
						return err
					}
				}
				if err := tx.PutRequest(r); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, r := range all {
		w.reqs[r.ID] = utc(r)
	}
	// Move a fifth of them to new statuses in later operations.
	ids := make([]string, 0, len(w.reqs))
	for id := range w.reqs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	w.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	moved := ids[:len(ids)/5]
	for start := 0; start < len(moved); start += 300 {
		chunk := moved[start:min(start+300, len(moved))]
		var next []*Request
		for _, id := range chunk {
			r := *w.reqs[id]
			w.setStatus(&r, Statuses[w.rng.IntN(len(Statuses))])
			next = append(next, &r)
		}
		mustUpdate(t, w.st, func(tx *Tx) error {
			for _, r := range next {
				if err := tx.PutRequest(r); err != nil {
					return err
				}
			}
			return nil
		})
		for _, r := range next {
			w.reqs[r.ID] = utc(r)
		}
	}
	seen := map[time.Time]bool{}
	for _, r := range w.reqs {
		if !seen[r.RequestedAt] {
			seen[r.RequestedAt] = true
			w.times = append(w.times, r.RequestedAt)
		}
	}
	slices.SortFunc(w.times, time.Time.Compare)
	return w
}

func newestFirst(a, b *Request) int {
	return cmp.Or(b.RequestedAt.Compare(a.RequestedAt), strings.Compare(b.ID, a.ID))
}

func canon(s string) (ID, bool) {
	id, err := ParseID(s)
	return id, err == nil
}

// sorted returns org's requests, newest first (cached until the next
// write to the world).
func (w *world) sorted(org string) []*Request {
	if w.byOrg == nil {
		w.byOrg = map[string][]*Request{}
		for _, r := range w.reqs {
			w.byOrg[r.OrgID] = append(w.byOrg[r.OrgID], r)
		}
		for _, rs := range w.byOrg {
			slices.SortFunc(rs, newestFirst)
		}
	}
	return w.byOrg[org]
}

// canonStr is the canonical form of an id filter value ("" stays "").
func canonStr(s string) string {
	if id, ok := canon(s); ok {
		return id.String()
	}
	return s
}

func (w *world) oracleList(f Filter) ([]*Request, int) {
	var sites map[string]bool
	if f.Sites != nil {
		sites = map[string]bool{}
		for _, s := range f.Sites {
			if id, ok := canon(s); ok {
				sites[id.String()] = true
			}
		}
	}
	fdev, fsite := canonStr(f.DeviceID), canonStr(f.SiteID)
	var out []*Request
	for _, r := range w.sorted(canonStr(f.OrgID)) { // generated ids are canonical
		switch {
		case f.Status != "" && r.Status != f.Status,
			f.Flow != "" && r.Flow != f.Flow,
			fdev != "" && r.DeviceID != fdev,
			fsite != "" && r.SiteID != fsite,
			!f.From.IsZero() && r.RequestedAt.Before(f.From),
			!f.To.IsZero() && r.RequestedAt.After(f.To),
			sites != nil && (r.SiteID == "" || !sites[r.SiteID]):
			continue
		}
		out = append(out, r)
	}
	total := len(out)
	if f.Offset >= len(out) {
		return nil, total
	}
	out = out[f.Offset:]
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, total
}

// sameRequests compares two lists of requests: ids in order, then every
// field (through the deterministic row encoding, which is much cheaper than
// cmp; cmp explains a difference).
func sameRequests(t *testing.T, what string, want, got []*Request) bool {
	t.Helper()
	if d := gocmp.Diff(idsOf(want), idsOf(got)); d != "" {
		t.Errorf("%s: ids (-want +got):\n%s", what, d)
		return false
	}
	for i := range got {
		a, err1 := encodeRequest(nil, want[i])
		b, err2 := encodeRequest(nil, got[i])
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) || got[i].RequestedAt.Location() != time.UTC {
			t.Errorf("%s: request %s (-want +got):\n%s", what, got[i].ID, gocmp.Diff(want[i], got[i], reqCmp))
			return false
		}
	}
	return true
}

func (w *world) pick(list []string) string { return list[w.rng.IntN(len(list))] }

func (w *world) randTimeBound() time.Time {
	switch w.rng.IntN(4) {
	case 0: // an exact requestedAt in use: the inclusive bound matters
		return w.times[w.rng.IntN(len(w.times))].In(zones[w.rng.IntN(len(zones))])
	case 1:
		return w.times[w.rng.IntN(len(w.times))].Add(time.Duration(w.rng.IntN(3)-1) * time.Nanosecond)
	case 2: // outside the data
		return t0.Add(time.Duration(w.rng.IntN(2*worldMinutes)-worldMinutes/2) * time.Minute)
	}
	return t0.Add(time.Duration(w.rng.Int64N(int64(worldMinutes * time.Minute))))
}

// randSites returns nil (unrestricted), an empty list, or a subset of the
// org's sites, perhaps with foreign, malformed or upper-case entries.
func (w *world) randSites(org string) []string {
	switch w.rng.IntN(10) {
	case 0, 1, 2, 3, 4:
		return nil
	case 5:
		return []string{}
	case 6:
		return []string{"not-a-uuid"}
	}
	var out []string
	for _, s := range w.sites[org] {
		if w.rng.IntN(2) == 0 {
			if w.rng.IntN(4) == 0 {
				s = strings.ToUpper(s)
			}
			out = append(out, s)
		}
	}
	if w.rng.IntN(4) == 0 {
		out = append(out, w.pick(w.sites[w.pick(w.orgs)]), "garbage")
	}
	if out == nil {
		out = []string{w.pick(w.sites[org])}
	}
	return out
}

func (w *world) randFilter() Filter {
	org := w.orgs[w.rng.IntN(len(w.orgs)-1)]
	if w.rng.IntN(30) == 0 {
		org = w.orgs[len(w.orgs)-1] // the org without requests
	}
	f := Filter{OrgID: org}
	if w.rng.IntN(20) == 0 {
		f.OrgID = strings.ToUpper(org) // ids are case-insensitive
	}
	if w.rng.IntN(3) == 0 {
		f.Status = Statuses[w.rng.IntN(len(Statuses))]
	}
	if w.rng.IntN(4) == 0 {
		f.Flow = flows[w.rng.IntN(len(flows))]
	}
	switch w.rng.IntN(12) {
	case 0, 1, 2:
		f.DeviceID = w.pick(w.devices[org])
	case 3:
		f.DeviceID = strings.ToUpper(w.pick(w.devices[org]))
	case 4:
		f.DeviceID = w.pick(w.devices[w.orgs[(slices.Index(w.orgs, org)+1)%len(w.orgs)]]) // another org's device
	}
	switch w.rng.IntN(8) {
	case 0, 1:
		f.SiteID = w.pick(w.sites[org])
	case 2:
		f.SiteID = w.pick(w.sites[w.orgs[(slices.Index(w.orgs, org)+1)%len(w.orgs)]])
	}
	if w.rng.IntN(3) == 0 {
		f.From = w.randTimeBound()
	}
	if w.rng.IntN(3) == 0 {
		f.To = w.randTimeBound()
	}
	f.Sites = w.randSites(org)
	if w.rng.IntN(3) == 0 {
		f.Offset = w.rng.IntN(400)
	}
	if w.rng.IntN(5) > 0 {
		f.Limit = 1 + w.rng.IntN(60)
	}
	return f
}

func idsOf(rs []*Request) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func TestListRequestsOracle(t *testing.T) {
	w := newWorld(t, 42, 1000)
	f := w.oracleFilterCheck
	// Hand-picked filters first, then random ones.
	org := w.orgs[0]
	f(t, Filter{OrgID: org})
	f(t, Filter{OrgID: org, Limit: 10})
	f(t, Filter{OrgID: org, Offset: 995, Limit: 10})
	f(t, Filter{OrgID: org, Offset: 5000})
	f(t, Filter{OrgID: org, Sites: []string{}})
	f(t, Filter{OrgID: org, Sites: w.sites[org]})
	f(t, Filter{OrgID: org, From: w.times[10], To: w.times[10]})
	f(t, Filter{OrgID: org, From: w.times[20], To: w.times[10]})
	f(t, Filter{OrgID: w.orgs[len(w.orgs)-1]})
	for _, st := range Statuses {
		f(t, Filter{OrgID: org, Status: st})
	}
	for _, fl := range flows {
		f(t, Filter{OrgID: org, Flow: fl, Limit: 5})
	}
	for _, d := range w.devices[org] {
		f(t, Filter{OrgID: org, DeviceID: d, Status: StatusPending})
	}
	for _, s := range w.sites[org] {
		f(t, Filter{OrgID: org, SiteID: s, Flow: engine.FlowUAC, Sites: []string{s}})
		f(t, Filter{OrgID: org, SiteID: s, Sites: []string{w.sites[org][0], w.sites[org][1]}})
	}
	for range 400 {
		f(t, w.randFilter())
		if t.Failed() {
			return
		}
	}
	w.checkIndexes(t)
}

// oracleFilterCheck compares one ListRequests call with the oracle.
func (w *world) oracleFilterCheck(t *testing.T, f Filter) {
	t.Helper()
	got, total, err := w.st.ListRequests(f)
	if err != nil {
		t.Fatalf("ListRequests(%+v): %v", f, err)
	}
	want, wantTotal := w.oracleList(f)
	if total != wantTotal {
		t.Errorf("ListRequests(%+v): total %d, want %d", f, total, wantTotal)
	}
	for _, r := range got {
		if r.OrgID != canonStr(f.OrgID) {
			t.Fatalf("ListRequests(%+v) returned a request of org %s", f, r.OrgID)
		}
	}
	sameRequests(t, fmt.Sprintf("ListRequests(%+v)", f), want, got)
}

// checkIndexes counts the index entries of every org against the oracle:
// a status change must move its entries, never leave stale ones.
func (w *world) checkIndexes(t *testing.T) {
	t.Helper()
	type counts struct{ rows, sited, pending, expiring int }
	per := map[string]*counts{}
	byStatus := map[string]map[Status]int{}
	for _, org := range w.orgs {
		per[org] = &counts{}
		byStatus[org] = map[Status]int{}
	}
	for _, r := range w.reqs {
		c := per[r.OrgID]
		c.rows++
		byStatus[r.OrgID][r.Status]++
		if r.SiteID != "" {
			c.sited++
		}
		if r.Status == StatusPending {
			c.pending++
		}
		if r.Status.Active() && !r.ExpiresAt.IsZero() {
			c.expiring++
		}
	}
	totalPending, totalExpiring := 0, 0
	for _, org := range w.orgs {
		oid, _ := ParseID(org)
		c := per[org]
		totalPending += c.pending
		totalExpiring += c.expiring
		for name, pair := range map[string][2]int{
			"rows":         {countPrefix(t, w.st, key(pRequest, oid[:])), c.rows},
			"id index":     {countPrefix(t, w.st, key(pRequestID, oid[:])), c.rows},
			"status index": {countPrefix(t, w.st, key(pIndex, oid[:], []byte{ixStatus})), c.rows},
			"flow index":   {countPrefix(t, w.st, key(pIndex, oid[:], []byte{ixFlow})), c.rows},
			"device index": {countPrefix(t, w.st, key(pIndex, oid[:], []byte{ixDevice})), c.rows},
			"site index":   {countPrefix(t, w.st, key(pIndex, oid[:], []byte{ixSite})), c.sited},
		} {
			if pair[0] != pair[1] {
				t.Errorf("org %s: %d %s entries, want %d", org, pair[0], name, pair[1])
			}
		}
		for _, st := range Statuses {
			if n := countPrefix(t, w.st, key(pIndex, oid[:], []byte{ixStatus, statusCode(st)})); n != byStatus[org][st] {
				t.Errorf("org %s: %d %s index entries, want %d", org, n, st, byStatus[org][st])
			}
		}
	}
	if n := countPrefix(t, w.st, []byte{pPending}); n != totalPending {
		t.Errorf("%d pending sweep entries, want %d", n, totalPending)
	}
	if n := countPrefix(t, w.st, []byte{pExpiry}); n != totalExpiring {
		t.Errorf("%d expiry sweep entries, want %d", n, totalExpiring)
	}
}

func TestActiveAndScanOracle(t *testing.T) {
	w := newWorld(t, 7, 700)
	t.Run("ActiveRequests", func(t *testing.T) {
		for i := range 150 {
			org := w.orgs[w.rng.IntN(len(w.orgs))]
			now := t0.Add(time.Duration(w.rng.Int64N(int64(2 * worldMinutes * time.Minute))))
			if i%5 == 0 { // exactly at some request's expiry
				for _, r := range w.reqs {
					if r.OrgID == org && !r.ExpiresAt.IsZero() {
						now = r.ExpiresAt
						break
					}
				}
			}
			sites := w.randSites(org)
			limit := 0
			if w.rng.IntN(2) == 0 {
				limit = 1 + w.rng.IntN(40)
			}
			got, err := w.st.ActiveRequests(org, now, sites, limit)
			if err != nil {
				t.Fatal(err)
			}
			var want []*Request
			all, _ := w.oracleList(Filter{OrgID: org, Sites: sites})
			for _, r := range all {
				if r.ActiveAt(now) {
					want = append(want, r)
				}
			}
			slices.SortFunc(want, func(a, b *Request) int {
				return cmp.Or(b.ApprovedAt.Compare(a.ApprovedAt), strings.Compare(b.ID, a.ID))
			})
			if limit > 0 && len(want) > limit {
				want = want[:limit]
			}
			if !sameRequests(t, fmt.Sprintf("ActiveRequests(%s, %v, %v, %d)", org, now, sites, limit), want, got) {
				return
			}
		}
	})
	t.Run("ScanRequests", func(t *testing.T) {
		for i := range 100 {
			o := ScanOptions{Newest: w.rng.IntN(2) == 0}
			if i%4 != 0 {
				o.OrgID = w.orgs[w.rng.IntN(len(w.orgs))]
			}
			if w.rng.IntN(2) == 0 {
				o.From = w.randTimeBound()
			}
			if w.rng.IntN(2) == 0 {
				o.To = w.randTimeBound()
			}
			stop := -1
			if w.rng.IntN(4) == 0 {
				stop = 1 + w.rng.IntN(50)
			}
			var got []*Request
			err := w.st.ScanRequests(o, func(r *Request) bool {
				got = append(got, r)
				return len(got) != stop
			})
			if err != nil {
				t.Fatal(err)
			}
			var want []*Request
			for _, r := range w.reqs {
				if (o.OrgID == "" || r.OrgID == o.OrgID) &&
					(o.From.IsZero() || !r.RequestedAt.Before(o.From)) && (o.To.IsZero() || !r.RequestedAt.After(o.To)) {
					want = append(want, r)
				}
			}
			slices.SortFunc(want, func(a, b *Request) int {
				c := cmp.Or(a.RequestedAt.Compare(b.RequestedAt), strings.Compare(a.ID, b.ID))
				if o.Newest {
					return -c
				}
				return c
			})
			if o.OrgID == "" {
				// Across orgs the visiting order is not specified; within
				// each org it is time order.
				if stop >= 0 && len(want) >= stop {
					if len(got) != stop {
						t.Fatalf("Scan(%+v) visited %d after fn returned false at %d", o, len(got), stop)
					}
					continue
				}
				perOrg := func(rs []*Request) map[string][]string {
					m := map[string][]string{}
					for _, r := range rs {
						m[r.OrgID] = append(m[r.OrgID], r.ID)
					}
					return m
				}
				if d := gocmp.Diff(perOrg(want), perOrg(got)); d != "" {
					t.Fatalf("Scan(%+v) (-want +got):\n%s", o, d)
				}
				continue
			}
			if stop >= 0 && len(want) > stop {
				want = want[:stop]
			}
			if !sameRequests(t, fmt.Sprintf("Scan(%+v)", o), want, got) {
				return
			}
		}
	})
}

func TestListRequestsBadFilters(t *testing.T) {
	st := openTemp(t)
	org := NewID(t0)
	for name, f := range map[string]Filter{
		"no org":      {},
		"bad org":     {OrgID: "x"},
		"bad status":  {OrgID: org, Status: "limbo"},
		"bad flow":    {OrgID: org, Flow: "fax"},
		"bad device":  {OrgID: org, DeviceID: "d"},
		"bad site":    {OrgID: org, SiteID: "s"},
		"bad uuid ch": {OrgID: org, DeviceID: "0190a1b2-0000-7000-8000-00000000000g"},
	} {
		if _, _, err := st.ListRequests(f); err == nil {
			t.Errorf("%s: ListRequests(%+v) succeeded", name, f)
		}
	}
	if err := st.ScanRequests(ScanOptions{OrgID: "x"}, func(*Request) bool { return true }); err == nil {
		t.Error("ScanRequests with a bad org succeeded")
	}
	if _, err := st.ActiveRequests("x", t0, nil, 0); err == nil {
		t.Error("ActiveRequests with a bad org succeeded")
	}
}

func newReq(org, dev, site string, at time.Time, st Status) *Request {
	r := &Request{ID: NewID(at), OrgID: org, DeviceID: dev, SiteID: site, Flow: engine.FlowUAC, Status: st,
		SubjectUsername: "alice", RequestedAt: at}
	if st.Active() { // a grant has both; a day is longer than any test's now
		r.ApprovedAt, r.ExpiresAt = at, at.Add(24*time.Hour)
	}
	return r
}

func putAll(t *testing.T, st *Store, rs ...*Request) {
	t.Helper()
	mustUpdate(t, st, func(tx *Tx) error {
		for _, r := range rs {
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestPutRequestImmutableFields(t *testing.T) {
	st := openTemp(t)
	org, dev, site := NewID(t0), NewID(t0), NewID(t0)
	r := newReq(org, dev, site, t0, StatusPending)
	putAll(t, st, r)
	for name, mut := range map[string]func(r *Request){
		"requestedAt": func(r *Request) { r.RequestedAt = r.RequestedAt.Add(time.Nanosecond) },
		"device":      func(r *Request) { r.DeviceID = NewID(t0) },
		"site":        func(r *Request) { r.SiteID = "" },
		"flow":        func(r *Request) { r.Flow = engine.FlowJITAdmin },
	} {
		c := *r
		mut(&c)
		err := st.Update(func(tx *Tx) error { return tx.PutRequest(&c) })
		var ce *ConflictError
		if !errors.As(err, &ce) {
			t.Errorf("changing %s: %v, want *ConflictError", name, err)
		}
	}
	// The same instant in another zone is not a change.
	c := *r
	c.RequestedAt = c.RequestedAt.In(zones[1])
	c.Status, c.DeniedAt, c.DeniedBy = StatusDenied, t0, "bob"
	putAll(t, st, &c)
	got, err := st.Request(org, r.ID)
	if err != nil || got.Status != StatusDenied || got.DeniedBy != "bob" {
		t.Fatalf("Request = %+v, %v", got, err)
	}
	// An invalid request is refused with an *InvalidError.
	bad := *r
	bad.Status = "limbo"
	var ie *InvalidError
	if err := st.Update(func(tx *Tx) error { return tx.PutRequest(&bad) }); !errors.As(err, &ie) {
		t.Fatalf("PutRequest(invalid) = %v", err)
	}
}

// TestPutRequestUpperCaseIDs: ids are case-insensitive everywhere (ParseID
// accepts either case, lookups and filters do), so writing the next state of
// a request with its ids in upper case must not be refused as a change of
// device or site; the store keeps (and rewrites the caller's request to) the
// canonical lowercase form. Regression test: PutRequest used to compare the
// stored lowercase device id with the upper-case one and return a
// *ConflictError.
func TestPutRequestUpperCaseIDs(t *testing.T) {
	st := openTemp(t)
	org, dev, site := strings.ToUpper(NewID(t0)), strings.ToUpper(NewID(t0)), strings.ToUpper(NewID(t0))
	r := newReq(org, dev, site, t0, StatusPending)
	r.ID = strings.ToUpper(r.ID)
	want := *r
	putAll(t, st, r)
	next := want
	next.Status, next.DeniedAt, next.DeniedBy = StatusDenied, t0, "bob"
	if err := st.Update(func(tx *Tx) error { return tx.PutRequest(&next) }); err != nil {
		t.Fatalf("re-putting a request whose ids are upper case: %v", err)
	}
	got, err := st.Request(org, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	lower := strings.ToLower
	if got.ID != lower(want.ID) || got.OrgID != lower(org) || got.DeviceID != lower(dev) || got.SiteID != lower(site) || got.Status != StatusDenied {
		t.Fatalf("stored ids not canonical: %+v", got)
	}
	if _, total, _ := st.ListRequests(Filter{OrgID: org, DeviceID: dev, SiteID: site, Sites: []string{site}}); total != 1 {
		t.Fatalf("ListRequests by upper-case ids: %d", total)
	}
}

func TestRequestLookup(t *testing.T) {
	st := openTemp(t)
	org, dev := NewID(t0), NewID(t0)
	r := newReq(org, dev, "", t0, StatusPending)
	putAll(t, st, r)
	if got, err := st.Request(strings.ToUpper(org), strings.ToUpper(r.ID)); err != nil || got.ID != r.ID {
		t.Fatalf("Request(upper case) = %v, %v", got, err)
	}
	for _, c := range [][2]string{{org, NewID(t0)}, {NewID(t0), r.ID}, {"x", r.ID}, {org, "y"}} {
		if _, err := st.Request(c[0], c[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("Request(%s, %s) = %v, want ErrNotFound", c[0], c[1], err)
		}
	}
	// Inside an operation and in a snapshot, including the operation's own
	// unflushed write.
	r2 := newReq(org, dev, "", t0.Add(time.Second), StatusPending)
	mustUpdate(t, st, func(tx *Tx) error {
		if err := tx.PutRequest(r2); err != nil {
			return err
		}
		got, err := tx.Request(org, r2.ID)
		if err != nil || got.ID != r2.ID {
			t.Errorf("tx.Request(own write) = %v, %v", got, err)
		}
		return nil
	})
	err := st.View(func(s *Snapshot) error {
		got, err := s.Request(org, r2.ID)
		if err != nil || got.ID != r2.ID {
			t.Errorf("Snapshot.Request = %v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// --- Due ---

func due(t *testing.T, st *Store, now time.Time, ttl time.Duration, limit int) (grants, stale []string) {
	t.Helper()
	mustUpdate(t, st, func(tx *Tx) error {
		g, s, _, err := tx.Due(now, ttl, limit)
		grants, stale = idsOf(g), idsOf(s)
		return err
	})
	return grants, stale
}

func TestDue(t *testing.T) {
	st := openTemp(t)
	orgA, orgB, dev := NewID(t0), NewID(t0), NewID(t0)
	now := t0.Add(10 * time.Hour)
	ttl := time.Hour
	grant := func(org string, expires time.Time, status Status) *Request {
		r := newReq(org, dev, "", t0, status)
		r.ID = NewID(t0)
		r.ExpiresAt = expires
		return r
	}
	// Grants: due strictly before now.
	g2 := grant(orgA, now.Add(-2*time.Second), StatusApproved)
	g1 := grant(orgB, now.Add(-1*time.Second), StatusAutoApproved)
	g1a := grant(orgA, now.Add(-1*time.Second), StatusActuating) // tie with g1
	gNow := grant(orgA, now, StatusApproved)                     // not yet due
	gLater := grant(orgB, now.Add(time.Second), StatusApproved)
	deniedPast := grant(orgA, now.Add(-time.Hour), StatusDenied) // not active: never due
	// Pending: stale strictly before now-ttl.
	pend := func(org string, at time.Time) *Request { return newReq(org, dev, "", at, StatusPending) }
	p2 := pend(orgB, now.Add(-ttl-2*time.Second))
	p1 := pend(orgA, now.Add(-ttl-time.Second))
	pEdge := pend(orgA, now.Add(-ttl))
	pFresh := pend(orgB, now.Add(-ttl+time.Second))
	putAll(t, st, gLater, g1, gNow, g2, deniedPast, g1a, pFresh, p1, pEdge, p2)
	// A grant without an expiry is refused (it would never be swept).
	gNoExpiry := grant(orgA, time.Time{}, StatusApproved)
	var ie *InvalidError
	if err := st.Update(func(tx *Tx) error { return tx.PutRequest(gNoExpiry) }); !errors.As(err, &ie) {
		t.Fatalf("PutRequest(approved without expiresAt) = %v, want *InvalidError", err)
	}

	grants, stale := due(t, st, now, ttl, 100)
	if len(grants) != 3 || grants[0] != g2.ID || !slices.Contains(grants[1:], g1.ID) || !slices.Contains(grants[1:], g1a.ID) {
		t.Fatalf("grants = %v, want [%s then %s/%s]", grants, g2.ID, g1.ID, g1a.ID)
	}
	if !slices.Equal(stale, []string{p2.ID, p1.ID}) {
		t.Fatalf("stale = %v, want [%s %s]", stale, p2.ID, p1.ID)
	}
	// Limit bounds both lists together: grants first, oldest first, then
	// stale requests with what is left.
	for _, c := range []struct{ limit, grants, stale int }{{-1, 0, 0}, {0, 0, 0}, {1, 1, 0}, {2, 2, 0}, {3, 3, 0}, {4, 3, 1}, {5, 3, 2}, {6, 3, 2}} {
		grants, stale = due(t, st, now, ttl, c.limit)
		if len(grants) != c.grants || len(stale) != c.stale {
			t.Fatalf("limit %d: grants %v stale %v, want %d and %d", c.limit, grants, stale, c.grants, c.stale)
		}
		if len(grants) > 0 && grants[0] != g2.ID || len(stale) > 0 && stale[0] != p2.ID {
			t.Fatalf("limit %d: grants %v stale %v, not oldest first", c.limit, grants, stale)
		}
	}
	// At a later now, the boundary requests become due.
	grants, stale = due(t, st, now.Add(time.Nanosecond), ttl, 100)
	if len(grants) != 4 || grants[3] != gNow.ID || len(stale) != 3 || stale[2] != pEdge.ID {
		t.Fatalf("now+1ns: grants %v stale %v", grants, stale)
	}

	// Status changes remove the sweep entries: p2 approved (expiring
	// later) is no longer stale; g2 revoked is no longer a due grant; p1
	// approved with an expiry in the past becomes a due grant; g1 extended
	// is not due any more.
	p2.Status, p2.ApprovedAt, p2.ApprovedBy, p2.ExpiresAt = StatusApproved, now, "u", now.Add(time.Hour)
	g2.Status, g2.RevokedAt, g2.RevokedBy = StatusRevoked, now, "u"
	p1.Status, p1.ApprovedAt, p1.ExpiresAt = StatusApproved, now.Add(-time.Hour), now.Add(-30*time.Minute)
	g1.ExpiresAt = now.Add(time.Hour)
	putAll(t, st, p2, g2, p1, g1)
	grants, stale = due(t, st, now, ttl, 100)
	if !slices.Equal(grants, []string{p1.ID, g1a.ID}) {
		t.Fatalf("after changes: grants %v, want [%s %s]", grants, p1.ID, g1a.ID)
	}
	if len(stale) != 0 {
		t.Fatalf("after changes: stale %v, want none", stale)
	}
	// Expire what is due, as the sweep does; nothing is due afterwards.
	mustUpdate(t, st, func(tx *Tx) error {
		gs, ss, _, err := tx.Due(now, ttl, 100)
		if err != nil {
			return err
		}
		for _, r := range append(gs, ss...) {
			r.Status, r.ExpiredAt = StatusExpired, now
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	if grants, stale = due(t, st, now, ttl, 100); len(grants)+len(stale) != 0 {
		t.Fatalf("after the sweep: grants %v stale %v", grants, stale)
	}
	if n := countPrefix(t, st, []byte{pExpiry}); n != 4 { // gNow, gLater, g1, p2
		t.Errorf("%d expiry entries left, want 4", n)
	}
	if n := countPrefix(t, st, []byte{pPending}); n != 2 { // pEdge, pFresh
		t.Errorf("%d pending entries left, want 2", n)
	}
}

// TestDueSeesOwnWrites: a Tx's reads see its own writes (writer.go: "reads
// see them"). Regression test: Due used to iterate the badger transaction
// only, so a request moved out of pending earlier in the same operation was
// still returned as stale, and one made due in it was missed.
func TestDueSeesOwnWrites(t *testing.T) {
	st := openTemp(t)
	org, dev := NewID(t0), NewID(t0)
	now := t0.Add(10 * time.Hour)
	old := newReq(org, dev, "", t0, StatusPending)
	putAll(t, st, old)
	mustUpdate(t, st, func(tx *Tx) error {
		next := *old
		next.Status, next.DeniedAt, next.DeniedBy = StatusDenied, now, "u"
		if err := tx.PutRequest(&next); err != nil {
			return err
		}
		_, stale, _, err := tx.Due(now, time.Hour, 10)
		if err != nil {
			return err
		}
		if len(stale) != 0 {
			t.Errorf("Due in the operation that denied %s still lists it as stale (status %s)", old.ID, stale[0].Status)
		}
		// A pending request and a grant written in this operation are due.
		p := newReq(org, dev, "", t0.Add(time.Minute), StatusPending)
		g := newReq(org, dev, "", t0.Add(2*time.Minute), StatusApproved)
		g.ExpiresAt = now.Add(-time.Minute)
		if err := errors.Join(tx.PutRequest(p), tx.PutRequest(g)); err != nil {
			return err
		}
		grants, stale, _, err := tx.Due(now, time.Hour, 10)
		if err != nil {
			return err
		}
		if !slices.Equal(idsOf(stale), []string{p.ID}) || !slices.Equal(idsOf(grants), []string{g.ID}) {
			t.Errorf("Due after writing in the operation: grants %v stale %v", idsOf(grants), idsOf(stale))
		}
		return nil
	})
}

// TestActiveRequestsConsistentUnderWrites: a grant that is active in every
// committed state must appear exactly once in every ActiveRequests answer.
// ActiveRequests lists each active status in its own snapshot, so a grant
// moving between approved and actuating meanwhile is listed twice or not
// at all.
func TestActiveRequestsConsistentUnderWrites(t *testing.T) {
	st := openTemp(t)
	org, dev := NewID(t0), NewID(t0)
	r := newReq(org, dev, "", t0, StatusApproved)
	putAll(t, st, r)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := *r
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				c.Status = StatusActuating
			} else {
				c.Status = StatusApproved
			}
			if err := st.Update(func(tx *Tx) error { return tx.PutRequest(&c) }); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	counts := map[int]int{}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		got, err := st.ActiveRequests(org, t0.Add(time.Minute), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		counts[len(got)]++
		if len(got) != 1 && counts[len(got)] == 1 {
			t.Errorf("BUG: ActiveRequests returned %d entries for one grant that is active in every state: %v", len(got), idsOf(got))
		}
		// ListRequests answers from one snapshot: its rows match the filter.
		list, total, err := st.ListRequests(Filter{OrgID: org, Status: StatusApproved})
		if err != nil {
			t.Fatal(err)
		}
		if total != len(list) || total > 1 || total == 1 && list[0].Status != StatusApproved {
			t.Fatalf("ListRequests(approved) under writes: total %d, rows %v", total, list)
		}
	}
	close(stop)
	<-done
	t.Logf("answers by length: %v", counts)
}

// TestNilUUIDIsNoSite: the nil UUID is how a request without a site is
// keyed (NilID), so it must never act as a site. A site-restricted caller
// whose list holds the nil UUID must not see requests without a site
// (Filter.Sites: "requests without a site are hidden then"), and a filter
// on that "site" must not return every request.
func TestNilUUIDIsNoSite(t *testing.T) {
	st := openTemp(t)
	org, dev, site := NewID(t0), NewID(t0), NewID(t0)
	noSite := newReq(org, dev, "", t0, StatusApproved)
	sited := newReq(org, dev, site, t0.Add(time.Second), StatusApproved)
	putAll(t, st, noSite, sited)
	t.Run("Sites restriction", func(t *testing.T) {
		got, total, err := st.ListRequests(Filter{OrgID: org, Sites: []string{nilUUID}})
		if err != nil {
			t.Fatal(err)
		}
		if total != 0 {
			t.Errorf("BUG: Sites=[nil UUID] reveals %d requests without a site: %v", total, idsOf(got))
		}
		active, err := st.ActiveRequests(org, t0.Add(time.Hour), []string{nilUUID}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(active) != 0 {
			t.Errorf("BUG: ActiveRequests with sites=[nil UUID] reveals %v", idsOf(active))
		}
	})
	t.Run("SiteID filter", func(t *testing.T) {
		_, total, err := st.ListRequests(Filter{OrgID: org, SiteID: nilUUID})
		if err == nil && total == 2 {
			t.Errorf("BUG: SiteID=nil UUID filters nothing: both requests returned")
		}
	})
	t.Run("DeviceID filter", func(t *testing.T) {
		for _, f := range []Filter{{OrgID: org, DeviceID: nilUUID}, {OrgID: org, DeviceID: nilUUID, Status: StatusApproved},
			{OrgID: org, DeviceID: nilUUID, SiteID: site}} {
			got, total, err := st.ListRequests(f)
			if err != nil || total != 0 || len(got) != 0 {
				t.Errorf("ListRequests(%+v) = %v, %d, %v; want nothing", f, idsOf(got), total, err)
			}
		}
	})
	t.Run("PutRequest", func(t *testing.T) {
		for name, mut := range map[string]func(r *Request){
			"id":     func(r *Request) { r.ID = nilUUID },
			"org":    func(r *Request) { r.OrgID = nilUUID },
			"device": func(r *Request) { r.DeviceID = nilUUID },
		} {
			r := newReq(org, dev, "", t0.Add(time.Minute), StatusPending)
			mut(r)
			var ie *InvalidError
			if err := st.Update(func(tx *Tx) error { return tx.PutRequest(r) }); !errors.As(err, &ie) {
				t.Errorf("PutRequest with the nil UUID as %s = %v, want *InvalidError", name, err)
			}
		}
		if _, total, _ := st.ListRequests(Filter{OrgID: org}); total != 2 {
			t.Errorf("%d requests stored, want 2", total)
		}
	})
	t.Run("PutSite", func(t *testing.T) {
		err := st.Update(func(tx *Tx) error {
			if err := tx.PutOrg(&Org{ID: org, Name: "o"}); err != nil {
				return err
			}
			return tx.PutSite(&Site{ID: nilUUID, OrgID: org, Name: "the nil site"})
		})
		if err == nil {
			t.Errorf("BUG: PutSite accepted the nil UUID as a site id (requests at that site would be stored as having no site)")
		}
	})
}

// TestFarTimeBounds: a filter or scan bound far in the future or past (an
// API caller's "to=9999-12-31") must not wrap around in the key encoding
// and hide everything.
func TestFarTimeBounds(t *testing.T) {
	st := openTemp(t)
	org, dev := NewID(t0), NewID(t0)
	putAll(t, st, newReq(org, dev, "", t0, StatusPending), newReq(org, dev, "", t0.Add(time.Hour), StatusPending))
	farFuture := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	farPast := time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, f := range map[string]Filter{
		"to far future":   {OrgID: org, To: farFuture},
		"from far past":   {OrgID: org, From: farPast},
		"both":            {OrgID: org, From: farPast, To: farFuture},
		"status, to":      {OrgID: org, Status: StatusPending, To: farFuture},
		"device, from":    {OrgID: org, DeviceID: dev, From: farPast},
		"year 2300 bound": {OrgID: org, To: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		_, total, err := st.ListRequests(f)
		if err == nil && total != 2 {
			t.Errorf("BUG: ListRequests %s: total %d, want 2", name, total)
		}
	}
	for name, o := range map[string]ScanOptions{
		"to far future":         {OrgID: org, To: farFuture},
		"newest, to far future": {OrgID: org, To: farFuture, Newest: true},
		"from far past":         {OrgID: org, From: farPast},
		"all orgs, from":        {From: farPast},
	} {
		n := 0
		err := st.ScanRequests(o, func(*Request) bool { n++; return true })
		if err == nil && n != 2 {
			t.Errorf("BUG: ScanRequests %s: visited %d, want 2", name, n)
		}
	}
}

// TestFarExpiryIsNotDue: a grant that expires in the far future must not be
// swept now.
func TestFarExpiryIsNotDue(t *testing.T) {
	st := openTemp(t)
	org, dev := NewID(t0), NewID(t0)
	g := newReq(org, dev, "", t0, StatusApproved)
	g.ExpiresAt = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	if err := st.Update(func(tx *Tx) error { return tx.PutRequest(g) }); err != nil {
		return // refused: fine
	}
	grants, _ := due(t, st, t0.Add(time.Hour), time.Hour, 10)
	if len(grants) != 0 {
		t.Errorf("BUG: a grant expiring 9999-12-31 is due for expiry at %v", t0.Add(time.Hour))
	}
	if active, _ := st.ActiveRequests(org, t0.Add(time.Hour), nil, 0); len(active) != 1 {
		t.Errorf("BUG: a grant expiring 9999-12-31 is not active at %v", t0.Add(time.Hour))
	}
}
