package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/elevate-pam/elevate/engine"
)

// PutRequest writes r (rewriting its ids in canonical lowercase form): a new request when it does not exist yet, else the
// next state of the stored one. It maintains the id, status, flow, device
// and site indexes and the sweep indexes. requestedAt, org, device, site
// and flow never change once stored.
func (tx *Tx) PutRequest(r *Request) error {
	if err := r.validate(); err != nil {
		return err
	}
	r.canonicalIDs()
	org, _ := ParseID(r.OrgID)
	id, _ := ParseID(r.ID)
	old, err := getRequest(tx, org, id)
	switch {
	case err == ErrNotFound:
		old = nil
	case err != nil:
		return err
	}
	if old != nil && (!old.RequestedAt.Equal(r.RequestedAt) || old.DeviceID != r.DeviceID ||
		old.SiteID != r.SiteID || old.Flow != r.Flow) {
		return &ConflictError{Msg: fmt.Sprintf("request %s: requestedAt, device, site and flow cannot change", r.ID)}
	}
	row, err := encodeRequest(make([]byte, 0, 256), r)
	if err != nil {
		return err
	}
	f, _ := r.facet()
	fv := row[:facetLen]
	at := r.RequestedAt
	tx.set(requestKey(org, at, id), row)
	tx.set(key(pRequestID, org[:], id[:]), ts(at))
	if old != nil {
		of, _ := old.facet()
		if of.status != f.status {
			tx.del(indexKey(org, ixStatus, []byte{statusCode(of.status)}, at, id))
		}
		if old.Status == StatusPending {
			tx.del(key(pPending, ts(at), org[:], id[:]))
		}
		if old.Status.Active() && !old.ExpiresAt.IsZero() {
			tx.del(key(pExpiry, ts(old.ExpiresAt), org[:], id[:]))
		}
	}
	if old == nil {
		if err := tx.addCount(org, 0, 1); err != nil {
			return err
		}
	}
	if old == nil || old.Status != r.Status {
		if old != nil {
			if err := tx.addCount(org, statusCode(old.Status), -1); err != nil {
				return err
			}
		}
		if err := tx.addCount(org, statusCode(r.Status), 1); err != nil {
			return err
		}
	}
	tx.set(indexKey(org, ixStatus, []byte{statusCode(f.status)}, at, id), fv)
	tx.set(indexKey(org, ixFlow, []byte{flowCode(f.flow)}, at, id), fv)
	tx.set(indexKey(org, ixDevice, f.device[:], at, id), fv)
	if f.site != NilID {
		tx.set(indexKey(org, ixSite, f.site[:], at, id), fv)
	}
	if r.Status == StatusPending {
		tx.set(key(pPending, ts(at), org[:], id[:]), nil)
	}
	if r.Status.Active() && !r.ExpiresAt.IsZero() {
		tx.set(key(pExpiry, ts(r.ExpiresAt), org[:], id[:]), nil)
	}
	if tx.watched {
		tx.puts = append(tx.puts, row) // decoded for the watchers once committed
	}
	return nil
}

// addCount moves the organisation's request counter for a status (0: all
// statuses) by delta.
func (tx *Tx) addCount(org ID, status byte, delta int64) error {
	k := key(pCount, org[:], []byte{status})
	n, err := readCount(tx, k)
	if err != nil {
		return err
	}
	tx.set(k, u64(uint64(n+delta)))
	return nil
}

func readCount(rd reader, k []byte) (int64, error) {
	v, ok, err := rd.get(k)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < 0 {
		return 0, corrupt(k, fmt.Errorf("bad counter"))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// Request reads one request inside the operation.
func (tx *Tx) Request(org, id string) (*Request, error) { return lookupRequest(tx, org, id) }

// Request reads one request.
func (s *Store) Request(org, id string) (*Request, error) {
	var r *Request
	err := s.view(func(rd view) error {
		var err error
		r, err = lookupRequest(rd, org, id)
		return err
	})
	return r, err
}

func lookupRequest(rd reader, org, id string) (*Request, error) {
	o, err := ParseID(org)
	if err != nil {
		return nil, ErrNotFound
	}
	i, err := ParseID(id)
	if err != nil {
		return nil, ErrNotFound
	}
	return getRequest(rd, o, i)
}

func getRequest(rd reader, org, id ID) (*Request, error) {
	nk := key(pRequestID, org[:], id[:])
	t, ok, err := rd.get(nk)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	if len(t) != 8 {
		return nil, corrupt(nk, fmt.Errorf("bad time"))
	}
	k := key(pRequest, org[:], t, id[:])
	v, ok, err := rd.get(k)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, corrupt(nk, fmt.Errorf("id index names a missing row"))
	}
	var r Request
	if err := decodeRequest(v, &r); err != nil {
		return nil, corrupt(k, err)
	}
	if err := rowMatchesKey(&r, k); err != nil {
		return nil, corrupt(k, err)
	}
	return &r, nil
}

// rowMatchesKey checks that a decoded row is the one its primary key
// (prefix, org, requestedAt, id) names: a row copied under another key is
// damage, never another request.
func rowMatchesKey(r *Request, k []byte) error {
	if len(k) != 1+16+8+16 || !idText(k[1:17], r.OrgID) || !idText(k[25:], r.ID) ||
		binary.BigEndian.Uint64(k[17:25]) != uint64(r.RequestedAt.UnixNano())^(1<<63) {
		return fmt.Errorf("row's id, org or requestedAt differ from its key")
	}
	return nil
}

// idText reports whether s is the canonical text of the 16-byte id b (the
// form the store writes ids in), without allocating.
func idText(b []byte, s string) bool {
	if len(s) != 36 {
		return false
	}
	var id ID
	copy(id[:], b)
	var buf [36]byte
	id.format(&buf)
	return string(buf[:]) == s
}

// Filter selects requests for ListRequests (pam-semantics §9). Zero fields
// do not filter.
type Filter struct {
	OrgID    string
	Status   Status
	Flow     engine.FlowType
	DeviceID string
	SiteID   string
	// From and To bound requestedAt, both inclusive.
	From, To time.Time
	// Sites, when not nil, narrows to requests whose site is in the list (a
	// site-restricted caller); requests without a site are hidden then.
	Sites []string
	// Offset and Limit page through the result, newest first.
	Offset, Limit int
}

type facetFilter struct {
	status, flow byte
	device, site ID
	sites        map[ID]bool // nil: unrestricted
}

func (f *facetFilter) match(v []byte) (bool, error) {
	if len(v) < facetLen || v[0] != rowFormat {
		return false, fmt.Errorf("bad row header")
	}
	if f.status != 0 && v[1] != f.status || f.flow != 0 && v[2] != f.flow {
		return false, nil
	}
	if f.device != NilID && !bytes.Equal(v[3:19], f.device[:]) {
		return false, nil
	}
	if f.site != NilID && !bytes.Equal(v[19:35], f.site[:]) {
		return false, nil
	}
	if f.sites != nil {
		var s ID
		copy(s[:], v[19:35])
		if !f.sites[s] {
			return false, nil
		}
	}
	return true, nil
}

// ListRequests returns one page of the requests matching f, ordered by
// requestedAt then id, both descending, and the total number of matches.
// It walks the narrowest index the filter names (device, site, status,
// flow, else the rows themselves) over the time range only, testing the
// other filters on the index entries; rows are decoded only for the page.
func (s *Store) ListRequests(f Filter) (page []*Request, total int, err error) {
	err = s.view(func(rd view) error {
		page, total, err = listRequests(rd, f)
		return err
	})
	return page, total, err
}

func listRequests(rd view, f Filter) ([]*Request, int, error) {
	org, err := ParseID(f.OrgID)
	if err != nil {
		return nil, 0, fmt.Errorf("orgId: %w", err)
	}
	ff := facetFilter{status: statusCode(f.Status), flow: flowCode(f.Flow)}
	if f.Status != "" && ff.status == 0 {
		return nil, 0, fmt.Errorf("unknown status %q", f.Status)
	}
	if f.Flow != "" && ff.flow == 0 {
		return nil, 0, fmt.Errorf("unknown flow type %q", f.Flow)
	}
	if ff.device, err = optID(f.DeviceID); err != nil {
		return nil, 0, fmt.Errorf("deviceId: %w", err)
	}
	if ff.site, err = optID(f.SiteID); err != nil {
		return nil, 0, fmt.Errorf("siteId: %w", err)
	}
	if f.SiteID != "" && ff.site == NilID || f.DeviceID != "" && ff.device == NilID {
		return nil, 0, nil // the nil UUID names nothing
	}
	if f.Sites != nil {
		ff.sites = map[ID]bool{}
		for _, s := range f.Sites {
			if id, err := ParseID(s); err == nil && id != NilID {
				ff.sites[id] = true
			}
		}
		if len(ff.sites) == 0 {
			return nil, 0, nil
		}
	}
	// Walk the smallest index range that one of the filters names; the
	// other filters are tested on its entries.
	var cands [][]byte
	if ff.device != NilID {
		cands = append(cands, key(pIndex, org[:], []byte{ixDevice}, ff.device[:]))
	}
	if ff.site != NilID {
		cands = append(cands, key(pIndex, org[:], []byte{ixSite}, ff.site[:]))
	}
	if ff.status != 0 {
		cands = append(cands, key(pIndex, org[:], []byte{ixStatus, ff.status}))
	}
	if ff.flow != 0 {
		cands = append(cands, key(pIndex, org[:], []byte{ixFlow, ff.flow}))
	}
	var prefix []byte
	switch len(cands) {
	case 0:
		prefix = key(pRequest, org[:])
	case 1:
		prefix = cands[0]
	default:
		prefix = smallestRange(rd, cands, f.From, f.To)
	}
	// With no filter but the status and no time bounds, the total is a
	// stored counter and the walk stops at the end of the page.
	counted := ff.device == NilID && ff.site == NilID && ff.flow == 0 && ff.sites == nil && f.From.IsZero() && f.To.IsZero()
	total := 0
	if counted {
		n, err := readCount(rd, key(pCount, org[:], []byte{ff.status}))
		if err != nil {
			return nil, 0, err
		}
		total = int(n)
	}
	idOff := len(prefix) // offset of ts+id in the key
	var ids [][]byte     // ts+id of the page
	var out []*Request
	seen := 0
	pageFull := false // the walk stopped at the end of the page
	err = func() error {
		it := rd.iter(badger.IteratorOptions{Reverse: true, Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		seek := upperSeek(prefix, f.To)
		var from []byte
		if !f.From.IsZero() {
			from = ts(clampTime(f.From))
		}
		if seek == nil {
			it.Rewind()
		} else {
			it.Seek(seek)
		}
		// A reverse Seek lands on the last key ≤ seek; seek itself is
		// outside the range (an upper bound), so skip an exact hit.
		for ; it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if seek != nil && bytes.Equal(k, seek) {
				continue
			}
			if len(k) != idOff+8+16 {
				return corrupt(item.KeyCopy(nil), fmt.Errorf("malformed request key"))
			}
			if from != nil && bytes.Compare(k[idOff:idOff+8], from) < 0 {
				break
			}
			var ok bool
			err := item.Value(func(v []byte) error {
				var err error
				ok, err = ff.match(v)
				return err
			})
			if err != nil {
				return corrupt(item.KeyCopy(nil), err)
			}
			if !ok {
				continue
			}
			if seen >= f.Offset && (f.Limit <= 0 || len(ids) < f.Limit) {
				ids = append(ids, bytes.Clone(k[idOff:]))
			}
			seen++
			if counted && f.Limit > 0 && len(ids) == f.Limit {
				pageFull = true
				break
			}
		}
		if !counted {
			total = seen
		} else if !pageFull {
			// The walk reached the end of the range: the counter must
			// agree with it.
			if seen != total {
				return corrupt(key(pCount, org[:], []byte{ff.status}),
					fmt.Errorf("counter says %d requests, the index holds %d", total, seen))
			}
		}
		// The page's rows, from the same snapshot.
		out = make([]*Request, 0, len(ids))
		for _, tid := range ids {
			k := key(pRequest, org[:], tid)
			v, ok, err := rd.get(k)
			if err != nil {
				return err
			}
			if !ok {
				return corrupt(k, fmt.Errorf("an index entry names a missing row"))
			}
			var r Request
			if err := decodeRequest(v, &r); err != nil {
				return corrupt(k, err)
			}
			if err := rowMatchesKey(&r, k); err != nil {
				return corrupt(k, err)
			}
			out = append(out, &r)
		}
		return nil
	}()
	return out, total, err
}

// ActiveRequests returns org's requests that grant elevation at now (active
// status and expiresAt unset or after now), newest approvedAt first, at most
// limit (≤ 0: all). sites narrows as in Filter.
func (s *Store) ActiveRequests(org string, now time.Time, sites []string, limit int) ([]*Request, error) {
	var out []*Request
	err := s.view(func(rd view) error {
		for _, st := range []Status{StatusApproved, StatusAutoApproved, StatusActuating} {
			page, _, err := listRequests(rd, Filter{OrgID: org, Status: st, Sites: sites})
			if err != nil {
				return err
			}
			for _, r := range page {
				if r.ActiveAt(now) {
					out = append(out, r)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b *Request) int {
		if c := b.ApprovedAt.Compare(a.ApprovedAt); c != 0 {
			return c
		}
		return cmpStr(b.ID, a.ID)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Scan options: which requests ScanRequests visits.
type ScanOptions struct {
	OrgID string // "" = every organisation
	// From and To bound requestedAt (inclusive); zero = unbounded.
	From, To time.Time
	// Newest visits newest first.
	Newest bool
}

// ScanRequests decodes every request in range and calls fn with it until
// fn returns false. fn may keep the request. With OrgID empty it visits
// organisation by organisation (in id order), each in time order.
func (s *Store) ScanRequests(o ScanOptions, fn func(*Request) bool) error {
	return s.scanRows(o, func(k []byte, item *badger.Item) (bool, error) {
		v, err := item.ValueCopy(nil)
		if err != nil {
			return false, err
		}
		r := new(Request)
		if err := decodeRequest(v, r); err != nil {
			return false, err
		}
		if err := rowMatchesKey(r, k); err != nil {
			return false, err
		}
		return fn(r), nil
	})
}

// ScanRows is ScanRequests for scans that look at each request once, such
// as preview and replay: the request passed to fn, and every string, slice
// and pointer in it, is valid only until fn returns (call Clone to keep
// one), which lets the scan decode without allocating.
func (s *Store) ScanRows(o ScanOptions, fn func(*Request) bool) error {
	return s.scanRows(o, borrowed(fn))
}

// ScanRowsParallel is ScanRows on several goroutines over one snapshot:
// the window (From and To must both be set) is cut into workers slices of
// equal duration, each scanned by its own worker, and fn is called
// concurrently, with the worker's index (0 ≤ worker < workers); one
// worker's calls come in ScanRows order within its slice. When any call
// returns false, every worker stops soon after.
func (s *Store) ScanRowsParallel(o ScanOptions, workers int, fn func(worker int, r *Request) bool) error {
	if workers < 1 || o.From.IsZero() || o.To.IsZero() {
		return fmt.Errorf("store: a parallel scan needs workers ≥ 1 and a bounded window")
	}
	from, to := clampTime(o.From), clampTime(o.To)
	if to.Before(from) {
		return nil
	}
	if d := to.Sub(from); d < time.Duration(workers) {
		workers = int(d) + 1 // no empty slices
	}
	// Slices of span nanoseconds, the last one shorter: none overlaps and
	// together they cover [from, to].
	span := to.Sub(from)/time.Duration(workers) + 1
	var stop atomic.Bool
	errs := make([]error, workers)
	err := s.view(func(rd view) error {
		var wg sync.WaitGroup
		for w := range workers {
			part := o
			part.From = from.Add(time.Duration(w) * span)
			part.To = from.Add(time.Duration(w+1)*span - 1)
			if w == workers-1 || part.To.After(to) {
				part.To = to
			}
			if part.From.After(to) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					if p := recover(); p != nil {
						errs[w] = fmt.Errorf("store: parallel scan worker %d panicked: %v", w, p)
						stop.Store(true)
					}
				}()
				errs[w] = scanRange(rd, part, borrowed(func(r *Request) bool {
					if stop.Load() || !fn(w, r) {
						stop.Store(true)
						return false
					}
					return true
				}))
				if errs[w] != nil {
					stop.Store(true)
				}
			}()
		}
		wg.Wait()
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// borrowed adapts fn to a row visitor that decodes each row in place, into
// one reused request.
func borrowed(fn func(*Request) bool) func(k []byte, item *badger.Item) (bool, error) {
	d := &rowScratch{ids: map[ID]string{}}
	var r Request
	return func(k []byte, item *badger.Item) (bool, error) {
		more := true
		err := item.Value(func(v []byte) error {
			if err := decodeRow(v, &r, d); err != nil {
				return err
			}
			if err := rowMatchesKey(&r, k); err != nil {
				return err
			}
			more = fn(&r)
			return nil
		})
		r = Request{}
		return more, err
	}
}

// scanRows walks the primary table over o's range, which is in time order
// within each organisation, jumping over the part of each organisation
// outside the window, and calls visit for each row in range. An error from
// visit is reported as damage at that key.
func (s *Store) scanRows(o ScanOptions, visit func(k []byte, item *badger.Item) (bool, error)) error {
	return s.view(func(rd view) error { return scanRange(rd, o, visit) })
}

func scanRange(rd view, o ScanOptions, visit func(k []byte, item *badger.Item) (bool, error)) error {
	prefix := []byte{pRequest}
	if o.OrgID != "" {
		org, err := ParseID(o.OrgID)
		if err != nil {
			return fmt.Errorf("orgId: %w", err)
		}
		prefix = key(pRequest, org[:])
	}
	var from, to []byte
	if !o.From.IsZero() {
		from = ts(clampTime(o.From))
	}
	if !o.To.IsZero() {
		to = ts(clampTime(o.To))
	}
	orgPrefix := func(k []byte) []byte { return slices.Clone(k[:17]) }
	// Values are small and stored inline with their keys: prefetching
	// would only add a copy and a goroutine per row.
	it := rd.iter(badger.IteratorOptions{Prefix: prefix, Reverse: o.Newest})
	defer it.Close()
	switch {
	case o.Newest && len(prefix) == 17:
		it.Seek(upperSeek(prefix, o.To))
	case o.Newest:
		it.Seek(prefixEnd(prefix))
	case len(prefix) == 17 && from != nil:
		it.Seek(append(slices.Clone(prefix), from...))
	default:
		it.Rewind()
	}
	for it.Valid() {
		item := it.Item()
		k := item.Key()
		if len(k) != 1+16+8+16 {
			return corrupt(item.KeyCopy(nil), fmt.Errorf("malformed request key"))
		}
		t := k[17:25]
		switch {
		case !o.Newest && from != nil && bytes.Compare(t, from) < 0:
			it.Seek(append(orgPrefix(k), from...)) // to the window in this org
			continue
		case !o.Newest && to != nil && bytes.Compare(t, to) > 0:
			it.Seek(prefixEnd(orgPrefix(k))) // past this org
			continue
		case o.Newest && to != nil && bytes.Compare(t, to) > 0:
			it.Seek(upperSeek(orgPrefix(k), o.To)) // to the window in this org
			continue
		case o.Newest && from != nil && bytes.Compare(t, from) < 0:
			it.Seek(orgPrefix(k)) // before this org: the previous one's newest
			continue
		}
		more, err := visit(k, item)
		if err != nil {
			return corrupt(item.KeyCopy(nil), err)
		}
		if !more {
			return nil
		}
		it.Next()
	}
	return nil
}

// smallestRange returns the candidate index prefix with the fewest
// entries in the window, walking all candidates' keys in step until the
// first runs out: the cost is the smallest range times the candidates.
func smallestRange(rd view, cands [][]byte, from, to time.Time) []byte {
	type walker struct {
		it     *badger.Iterator
		prefix []byte
	}
	ws := make([]walker, len(cands))
	for i, p := range cands {
		it := rd.iter(badger.IteratorOptions{Prefix: p})
		defer it.Close()
		if from.IsZero() {
			it.Rewind()
		} else {
			it.Seek(append(slices.Clone(p), ts(clampTime(from))...))
		}
		ws[i] = walker{it, p}
	}
	var end []byte
	if !to.IsZero() {
		end = ts(clampTime(to))
	}
	for {
		for _, w := range ws {
			if !w.it.Valid() {
				return w.prefix
			}
			k := w.it.Item().Key()
			if end != nil && len(k) >= len(w.prefix)+8 && bytes.Compare(k[len(w.prefix):len(w.prefix)+8], end) > 0 {
				return w.prefix
			}
			w.it.Next()
		}
	}
}

// Due lists, oldest first, up to limit requests that a sweep must expire
// at now: active grants whose expiresAt is before now, and pending
// requests whose requestedAt is before now-pendingTTL (both strict). An
// entry whose row cannot be read is left in place and reported in bad, so
// one damaged row does not stop the expiry of every other.
func (tx *Tx) Due(now time.Time, pendingTTL time.Duration, limit int) (grants, stale []*Request, bad []error, err error) {
	collect := func(prefix byte, bound time.Time, limit int) ([]*Request, error) {
		var out []*Request
		end := ts(clampTime(bound))
		err := tx.scan([]byte{prefix}, func(k, _ []byte) (bool, error) {
			if len(out) >= limit {
				return false, nil
			}
			if len(k) != 1+8+16+16 {
				bad = append(bad, corrupt(k, fmt.Errorf("malformed sweep key")))
				return true, nil
			}
			if bytes.Compare(k[1:9], end) >= 0 {
				return false, nil
			}
			var org, id ID
			copy(org[:], k[9:25])
			copy(id[:], k[25:41])
			r, err := getRequest(tx, org, id)
			var ce *CorruptError
			switch {
			case errors.As(err, &ce):
				bad = append(bad, err)
			case err == ErrNotFound:
				bad = append(bad, corrupt(k, fmt.Errorf("sweep entry names a missing request")))
			case err != nil:
				return false, err
			case !sweepEntryHolds(prefix, k, r):
				bad = append(bad, corrupt(k, fmt.Errorf("sweep entry does not match request %s (status %s)", r.ID, r.Status)))
			default:
				out = append(out, r)
			}
			return true, nil
		})
		return out, err
	}
	if grants, err = collect(pExpiry, now, limit); err != nil {
		return nil, nil, nil, err
	}
	stale, err = collect(pPending, now.Add(-pendingTTL), limit-len(grants))
	return grants, stale, bad, err
}

// sweepEntryHolds reports whether the request still is what its sweep
// entry says: an active grant expiring at the entry's time, or a pending
// request.
func sweepEntryHolds(prefix byte, k []byte, r *Request) bool {
	if prefix == pExpiry {
		return r.Status.Active() && bytes.Equal(ts(r.ExpiresAt), k[1:9])
	}
	return r.Status == StatusPending && bytes.Equal(ts(r.RequestedAt), k[1:9])
}

// Request reads one request in the snapshot.
func (s *Snapshot) Request(org, id string) (*Request, error) { return lookupRequest(s.r, org, id) }

// Matches reports whether a request passes the filter's status, flow,
// device, site, sites and time bounds (OrgID, Offset and Limit are not
// tested): the same test ListRequests applies through its indexes.
func (f Filter) Matches(r *Request) bool {
	switch {
	case f.Status != "" && r.Status != f.Status,
		f.Flow != "" && r.Flow != f.Flow,
		f.DeviceID != "" && !sameIDString(r.DeviceID, f.DeviceID),
		f.SiteID != "" && !sameIDString(r.SiteID, f.SiteID),
		!f.From.IsZero() && r.RequestedAt.Before(f.From),
		!f.To.IsZero() && r.RequestedAt.After(f.To):
		return false
	}
	if f.Sites != nil {
		if r.SiteID == "" {
			return false
		}
		for _, s := range f.Sites {
			if sameIDString(s, r.SiteID) {
				return true
			}
		}
		return false
	}
	return true
}

func sameIDString(a, b string) bool {
	x, err1 := ParseID(a)
	y, err2 := ParseID(b)
	return err1 == nil && err2 == nil && x == y && x != NilID
}
