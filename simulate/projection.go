package simulate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// Projection is the request history held in memory in the compact form
// previews and replays read: per organisation, in requestedAt order, the
// fields a decision looks at, with every string interned once (paths,
// signers, users and command lines repeat across requests) and each
// distinct observation stored once. It is kept current by the store's
// watch, so a preview sees a request as soon as its ingest has returned,
// and rebuilt from the store when the server starts.
//
// Readers copy rows out in short batches under a read lock, so a long
// replay never holds up the store's writer for more than a batch.
type Projection struct {
	mu     sync.RWMutex
	strs   []string
	strIDs map[string]uint32
	obs    []obsKey
	obsIDs map[obsKey]uint32
	risk   []*int // by obsKey.risk-1; shared, never written
	groups [][]string
	grpIDs map[string]uint32
	recs   []recKey
	recIDs map[recKey]uint32
	orgs   map[store.ID]*orgRows
	rows   int

	loading bool
	queue   []*store.Request
}

// obsKey is one distinct observation: interned strings (0 = empty), the
// AD-group list (0 = none reported), the risk tier (0 = none) and the flow.
type obsKey struct {
	user, path, hash, signer, parent, cmd, tool, groups uint32
	risk                                                uint32
	flow                                                engine.FlowType
}

// recKey is a recorded decision, interned.
type recKey struct {
	outcome          engine.Outcome
	ruleID, ruleName uint32
}

// orgRows holds one organisation's requests as columns, ordered by
// (requestedAt, id).
type orgRows struct {
	at     []int64 // Unix nanoseconds
	id     []store.ID
	obs    []uint32
	site   []uint32
	device []uint32
	rec    []uint32
	status []uint8 // index in store.Statuses
}

// NewProjection returns an empty projection.
func NewProjection() *Projection {
	p := &Projection{strIDs: map[string]uint32{}, obsIDs: map[obsKey]uint32{}, grpIDs: map[string]uint32{},
		recIDs: map[recKey]uint32{}, orgs: map[store.ID]*orgRows{}}
	p.strs = append(p.strs, "")
	p.strIDs[""] = 0
	p.groups = append(p.groups, nil)
	return p
}

// LoadProjection builds the projection of everything st holds and keeps it
// current from then on: writes committed while it loads are applied after
// the load, in commit order.
func LoadProjection(st *store.Store) (*Projection, error) {
	p := NewProjection()
	p.loading = true
	if err := st.Watch(p.Apply); err != nil {
		return nil, err
	}
	var err error
	p.mu.Lock()
	err = st.ScanRows(store.ScanOptions{}, func(r *store.Request) bool {
		err = p.put(r)
		return err == nil
	})
	p.mu.Unlock()
	// Whatever the scan found, stop queueing: the queue is applied now.
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.queue {
		if e := p.put(r); e != nil && err == nil {
			err = e
		}
	}
	p.queue, p.loading = nil, false
	if err != nil {
		return nil, fmt.Errorf("simulate: loading the request history: %w", err)
	}
	return p, nil
}

// Apply records new requests and new states of known ones (the store's
// watch calls it after each commit). The requests are not kept.
func (p *Projection) Apply(rs []*store.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loading {
		p.queue = append(p.queue, rs...)
		return
	}
	for _, r := range rs {
		_ = p.put(r) // the store validated them; an unparsable id is skipped
	}
}

// Len is the number of requests held.
func (p *Projection) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.rows
}

// Footprint estimates the memory the projection holds, in bytes: its
// columns, interned strings and tables, with Go's map overhead
// approximated.
func (p *Projection) Footprint() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	const rowBytes = 8 + 16 + 4*4 + 1 // at, id, obs/site/device/rec, status
	var n int64
	for _, o := range p.orgs {
		n += int64(cap(o.at)) * rowBytes
	}
	for _, s := range p.strs {
		n += int64(len(s)) + 16 + 48 // the string, its header in strs, its map entry
	}
	n += int64(len(p.obs)) * (2*(36+16) + 4) // slice and map key, map overhead
	n += int64(len(p.recs)) * (2*24 + 16)
	for _, g := range p.groups {
		for _, s := range g {
			n += int64(len(s)) + 16
		}
		n += 24 + 48
	}
	return n
}

func (p *Projection) str(s string) uint32 {
	if id, ok := p.strIDs[s]; ok {
		return id
	}
	s = strings.Clone(s)
	id := uint32(len(p.strs))
	p.strs = append(p.strs, s)
	p.strIDs[s] = id
	return id
}

func (p *Projection) groupList(gs []string) uint32 {
	if gs == nil {
		return 0
	}
	k := "\x00" + strings.Join(gs, "\x00")
	if id, ok := p.grpIDs[k]; ok {
		return id
	}
	id := uint32(len(p.groups))
	cp := make([]string, len(gs))
	for i, g := range gs {
		cp[i] = p.strs[p.str(g)]
	}
	p.groups = append(p.groups, cp)
	p.grpIDs[k] = id
	return id
}

func (p *Projection) riskID(t *int) uint32 {
	if t == nil {
		return 0
	}
	for i, v := range p.risk {
		if *v == *t {
			return uint32(i + 1)
		}
	}
	v := *t
	p.risk = append(p.risk, &v)
	return uint32(len(p.risk))
}

func (p *Projection) observation(r *store.Request) uint32 {
	k := obsKey{user: p.str(r.SubjectUsername), path: p.str(r.TargetExecutablePath), hash: p.str(r.TargetExecutableHash),
		signer: p.str(r.TargetExecutableSigner), parent: p.str(r.ParentImage), cmd: p.str(r.CommandLine),
		tool: p.str(r.ToolName), groups: p.groupList(r.AdGroups), risk: p.riskID(r.RiskTier),
		flow: engine.FlowType(p.strs[p.str(string(r.Flow))])}
	if id, ok := p.obsIDs[k]; ok {
		return id
	}
	id := uint32(len(p.obs))
	p.obs = append(p.obs, k)
	p.obsIDs[k] = id
	return id
}

func (p *Projection) recorded(d store.DecisionRecord) uint32 {
	// Strings of a scanned row are borrowed: everything kept is interned.
	k := recKey{outcome: engine.Outcome(p.strs[p.str(string(d.Outcome))]), ruleID: p.str(d.RuleID), ruleName: p.str(d.RuleName)}
	if id, ok := p.recIDs[k]; ok {
		return id
	}
	id := uint32(len(p.recs))
	p.recs = append(p.recs, k)
	p.recIDs[k] = id
	return id
}

// put inserts r, or overwrites the stored row with the same id and
// requestedAt. p.mu is held.
func (p *Projection) put(r *store.Request) error {
	org, err := store.ParseID(r.OrgID)
	if err != nil {
		return fmt.Errorf("request %s: orgId: %w", r.ID, err)
	}
	id, err := store.ParseID(r.ID)
	if err != nil {
		return fmt.Errorf("request %s: id: %w", r.ID, err)
	}
	o := p.orgs[org]
	if o == nil {
		o = &orgRows{}
		p.orgs[org] = o
	}
	at := r.RequestedAt.UnixNano()
	n := len(o.at)
	i := n
	if n > 0 && o.rowCmp(n-1, at, id) >= 0 {
		i, _ = slices.BinarySearchFunc(o.at, at, func(a, b int64) int { return cmp.Compare(a, b) })
		for i < n && o.at[i] == at && cmpID(o.id[i], id) < 0 {
			i++
		}
	}
	st := slices.Index(store.Statuses, r.Status)
	if st < 0 {
		return fmt.Errorf("request %s: unknown status %q", r.ID, r.Status)
	}
	obs, site, dev, rec := p.observation(r), p.str(r.SiteID), p.str(r.DeviceID), p.recorded(r.Decision)
	if i < n && o.at[i] == at && o.id[i] == id {
		o.obs[i], o.site[i], o.device[i], o.rec[i], o.status[i] = obs, site, dev, rec, uint8(st)
		return nil
	}
	o.at = slices.Insert(o.at, i, at)
	o.id = slices.Insert(o.id, i, id)
	o.obs = slices.Insert(o.obs, i, obs)
	o.site = slices.Insert(o.site, i, site)
	o.device = slices.Insert(o.device, i, dev)
	o.rec = slices.Insert(o.rec, i, rec)
	o.status = slices.Insert(o.status, i, uint8(st))
	p.rows++
	return nil
}

func cmpID(a, b store.ID) int { return slices.Compare(a[:], b[:]) }

// rowCmp orders row i against (at, id).
func (o *orgRows) rowCmp(i int, at int64, id store.ID) int {
	if c := cmp.Compare(o.at[i], at); c != 0 {
		return c
	}
	return cmpID(o.id[i], id)
}

// Scope selects the history a preview or replay reads.
type Scope struct {
	// OrgID is the organisation ("" = every one, one after the other).
	OrgID string
	// From and To bound requestedAt, both inclusive (zero = unbounded).
	From, To time.Time
	// Flow and SiteID keep only requests of that flow and site ("" = all).
	Flow   engine.FlowType
	SiteID string
	// Sites keeps only requests of these sites (nil = all), for callers
	// restricted to some sites.
	Sites []string
	// MaxScan stops the read after that many requests (0 = no cap); the
	// newest are read first.
	MaxScan int
}

// ScanStat says how much of the scope a source read.
type ScanStat struct {
	Scanned int `json:"totalScanned"`
	// Truncated is true exactly when the scan cap was reached.
	Truncated bool `json:"truncated"`
}

// Source yields the scope's requests newest first as cases that own their
// memory; stat, when set, is filled as they are read.
func (p *Projection) Source(sc Scope, stat *ScanStat) Source {
	return func(yield func(*Case) bool) error {
		var st ScanStat
		if stat == nil {
			stat = &st
		}
		*stat = ScanStat{}
		orgs, err := p.orgList(sc.OrgID)
		if err != nil {
			return err
		}
		f := newScopeFilter(sc)
		batch := make([]Case, 0, 256)
		for _, org := range orgs {
			orgID := org.String()
			// The cursor is the last row read, (at, id): rows inserted
			// between batches move indexes but not the cursor.
			var curAt int64
			var curID store.ID
			first := true
			for {
				batch = batch[:0]
				done := p.readBatch(org, orgID, sc, f, first, curAt, curID, &batch, stat)
				first = false
				for i := range batch {
					if !yield(&batch[i]) {
						return nil
					}
				}
				if done {
					break
				}
				last := &batch[len(batch)-1]
				curAt, curID = last.At.UnixNano(), last.key
			}
			if stat.Truncated {
				break
			}
		}
		return nil
	}
}

// readBatch copies up to cap(*batch) rows of org older than the cursor
// (all rows when first) and inside the scope into batch, newest first. It
// reports whether the organisation is done.
func (p *Projection) readBatch(org store.ID, orgID string, sc Scope, f scopeFilter, first bool, curAt int64, curID store.ID,
	batch *[]Case, stat *ScanStat) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	o := p.orgs[org]
	if o == nil {
		return true
	}
	// hi: one past the newest row to read.
	hi := len(o.at)
	if !sc.To.IsZero() {
		to := sc.To.UnixNano()
		hi, _ = slices.BinarySearchFunc(o.at, to, func(a, b int64) int {
			if a <= b {
				return -1
			}
			return 1
		})
	}
	if !first {
		i, _ := slices.BinarySearchFunc(o.at, curAt, func(a, b int64) int { return cmp.Compare(a, b) })
		for i < len(o.at) && o.at[i] == curAt && cmpID(o.id[i], curID) < 0 {
			i++
		}
		hi = min(hi, i)
	}
	from := int64(-1 << 63)
	if !sc.From.IsZero() {
		from = sc.From.UnixNano()
	}
	b := *batch
	defer func() { *batch = b }()
	capped := func() bool {
		if sc.MaxScan > 0 && stat.Scanned >= sc.MaxScan {
			stat.Truncated = true
			return true
		}
		return false
	}
	for i := hi - 1; i >= 0 && o.at[i] >= from; i-- {
		if !f.keep(p, o, i) {
			continue
		}
		if capped() {
			return true
		}
		stat.Scanned++
		b = append(b, Case{})
		p.fill(o, i, orgID, &b[len(b)-1])
		if len(b) == cap(b) {
			return capped() || i == 0
		}
	}
	capped()
	return true
}

// fill sets c to row i. p.mu is held.
func (p *Projection) fill(o *orgRows, i int, orgID string, c *Case) {
	k := &p.obs[o.obs[i]]
	rec := p.recs[o.rec[i]]
	at := time.Unix(0, o.at[i]).UTC()
	*c = Case{ID: o.id[i].String(), OrgID: orgID, DeviceID: p.strs[o.device[i]], SiteID: p.strs[o.site[i]],
		Flow: k.flow, At: at, Status: store.Statuses[o.status[i]], key: o.id[i],
		Observation: engine.Observation{SubjectUsername: p.strs[k.user], TargetExecutablePath: p.strs[k.path],
			TargetExecutableHash: p.strs[k.hash], TargetExecutableSigner: p.strs[k.signer], ParentImage: p.strs[k.parent],
			CommandLine: p.strs[k.cmd], ToolName: p.strs[k.tool], AdGroups: p.groups[k.groups]},
		Recorded: Recorded{Outcome: rec.outcome, RuleID: p.strs[rec.ruleID], RuleName: p.strs[rec.ruleName]}}
	if k.risk > 0 {
		c.Observation.RiskTier = p.risk[k.risk-1]
	}
	if k.flow == engine.FlowUAC {
		c.Observation.ObservedAt = &c.At
	}
}

// orgList is the organisations a scope reads, in descending id order (as
// the store reads them newest first).
func (p *Projection) orgList(org string) ([]store.ID, error) {
	if org != "" {
		id, err := store.ParseID(org)
		if err != nil {
			return nil, fmt.Errorf("orgId: %w", err)
		}
		return []store.ID{id}, nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	ids := make([]store.ID, 0, len(p.orgs))
	for id := range p.orgs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b store.ID) int { return cmpID(b, a) })
	return ids, nil
}

// scopeFilter is a scope's flow and site filters, on interned ids.
type scopeFilter struct {
	flow  engine.FlowType
	site  string
	sites map[string]bool
}

func newScopeFilter(sc Scope) scopeFilter {
	f := scopeFilter{flow: sc.Flow, site: canonical(sc.SiteID)}
	if sc.Sites != nil {
		f.sites = make(map[string]bool, len(sc.Sites))
		for _, s := range sc.Sites {
			f.sites[canonical(s)] = true
		}
	}
	return f
}

func (f scopeFilter) keepRequest(r *store.Request) bool {
	return (f.flow == "" || r.Flow == f.flow) && (f.site == "" || r.SiteID == f.site) && (f.sites == nil || f.sites[r.SiteID])
}

func (f scopeFilter) keep(p *Projection, o *orgRows, i int) bool {
	if f.flow != "" && p.obs[o.obs[i]].flow != f.flow {
		return false
	}
	if f.site == "" && f.sites == nil {
		return true
	}
	s := p.strs[o.site[i]]
	return (f.site == "" || s == f.site) && (f.sites == nil || f.sites[s])
}
