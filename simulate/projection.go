package simulate

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// Projection is the request history held in memory in the compact form
// previews and replays read: per organisation, in (requestedAt, id) order,
// one small row per request holding the fields a decision looks at, with
// every string interned once (paths, signers, users and command lines
// repeat across requests) and each distinct observation stored once. It is
// kept current by the store's watch, so a preview sees a request as soon
// as its ingest has returned, and rebuilt from the store when the server
// starts.
//
// Readers hold the read lock for a short stretch of rows at a time and
// resume from a (requestedAt, id) cursor, so a long replay never holds up
// the store's writer for long, and rows inserted meanwhile neither repeat
// nor vanish.
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

	loadMu  sync.Mutex // guards loading and queue
	loading bool
	queue   []*store.Request
	broken  atomic.Bool
}

// obsKey is one distinct observation, AD groups aside (they vary from
// request to request and a preview never reads them): interned strings
// (0 = empty), the risk tier (0 = none) and the flow.
type obsKey struct {
	user, path, hash, signer, parent, cmd, tool uint32
	risk                                        uint16
	flow                                        uint8 // index in flows
}

var flows = []engine.FlowType{engine.FlowUAC, engine.FlowToolAct, engine.FlowJITAdmin}

// recKey is a recorded decision, interned.
type recKey struct {
	outcome          engine.Outcome
	ruleID, ruleName uint32
}

// histRow is one request.
type histRow struct {
	at     int64 // Unix nanoseconds
	id     store.ID
	obs    uint32
	groups uint32 // 0 = none reported
	site   uint32
	device uint32
	rec    uint32
	status uint8 // index in store.Statuses, or noStatus
}

const noStatus = 255

// orgRows is one organisation's requests, ordered by (at, id).
type orgRows struct {
	rows []histRow
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
	// The scan builds rows nobody else reads yet, under p.mu; commits made
	// meanwhile only queue under p.loadMu, so the store's writer never
	// waits for the scan.
	var err error
	p.mu.Lock()
	err = st.ScanRows(store.ScanOptions{}, func(r *store.Request) bool {
		err = p.put(r)
		return err == nil
	})
	for _, o := range p.orgs {
		o.rows = slices.Clip(o.rows) // no spare capacity beyond the next append's
	}
	p.mu.Unlock()
	// Stop queueing and apply the queue, in commit order; commits from now
	// on wait for this and follow.
	p.loadMu.Lock()
	p.mu.Lock()
	for _, r := range p.queue {
		if e := p.put(r); e != nil && err == nil {
			err = e
		}
	}
	p.queue, p.loading = nil, false
	if err != nil {
		p.broken.Store(true) // its watch stays registered: it must do nothing
	}
	p.mu.Unlock()
	p.loadMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("simulate: loading the request history: %w", err)
	}
	return p, nil
}

// Apply records new requests and new states of known ones (the store's
// watch calls it after each commit). The requests are not kept. A request
// the projection cannot hold marks it broken: it no longer answers for
// the store (StoreHistory then reads the store itself).
func (p *Projection) Apply(rs []*store.Request) {
	if p.broken.Load() {
		return
	}
	p.loadMu.Lock()
	if p.loading {
		p.queue = append(p.queue, rs...)
		p.loadMu.Unlock()
		return
	}
	p.loadMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range rs {
		if err := p.put(r); err != nil {
			p.broken.Store(true)
			return
		}
	}
}

// Broken reports whether a request could not be recorded, so the
// projection no longer mirrors the store.
func (p *Projection) Broken() bool { return p.broken.Load() }

// Len is the number of requests held.
func (p *Projection) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.rows
}

// Footprint estimates the memory the projection holds, in bytes: its rows,
// interned strings and tables, with Go's map overhead approximated.
func (p *Projection) Footprint() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	const mapEntry = 24 // per entry, besides key and value
	var n int64
	for _, o := range p.orgs {
		n += int64(cap(o.rows)) * int64(unsafe.Sizeof(histRow{}))
	}
	for _, s := range p.strs {
		n += int64(len(s)) + 2*16 + 4 + mapEntry // the bytes, the header in strs and as map key, the id
	}
	n += int64(len(p.obs)) * (2*int64(unsafe.Sizeof(obsKey{})) + 4 + mapEntry)
	n += int64(len(p.recs)) * (2*int64(unsafe.Sizeof(recKey{})) + 4 + mapEntry)
	for _, g := range p.groups {
		n += int64(len(g))*16 + 24 + 8*int64(len(g)) + 16 + 4 + mapEntry // the list and its joined map key (approx.)
	}
	return n
}

func (p *Projection) str(s string) uint32 {
	if id, ok := p.strIDs[s]; ok {
		return id
	}
	s = strings.Clone(s) // a scanned row's strings are borrowed
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

func (p *Projection) riskID(t *int) uint16 {
	if t == nil {
		return 0
	}
	for i, v := range p.risk {
		if *v == *t {
			return uint16(i + 1)
		}
	}
	v := *t
	p.risk = append(p.risk, &v)
	return uint16(len(p.risk))
}

func (p *Projection) observation(r *store.Request) (uint32, error) {
	f := slices.Index(flows, r.Flow)
	if f < 0 {
		return 0, fmt.Errorf("request %s: unknown flow %q", r.ID, r.Flow)
	}
	if len(p.risk) >= 1<<16-1 && r.RiskTier != nil {
		return 0, fmt.Errorf("request %s: too many distinct risk tiers", r.ID)
	}
	k := obsKey{user: p.str(r.SubjectUsername), path: p.str(r.TargetExecutablePath), hash: p.str(r.TargetExecutableHash),
		signer: p.str(r.TargetExecutableSigner), parent: p.str(r.ParentImage), cmd: p.str(r.CommandLine),
		tool: p.str(r.ToolName), risk: p.riskID(r.RiskTier), flow: uint8(f)}
	if id, ok := p.obsIDs[k]; ok {
		return id, nil
	}
	id := uint32(len(p.obs))
	p.obs = append(p.obs, k)
	p.obsIDs[k] = id
	return id, nil
}

func (p *Projection) recorded(d store.DecisionRecord) uint32 {
	k := recKey{outcome: engine.Outcome(p.strs[p.str(string(d.Outcome))]), ruleID: p.str(d.RuleID), ruleName: p.str(d.RuleName)}
	if id, ok := p.recIDs[k]; ok {
		return id
	}
	id := uint32(len(p.recs))
	p.recs = append(p.recs, k)
	p.recIDs[k] = id
	return id
}

// put inserts r, or overwrites the row with the same requestedAt and id.
// p.mu is held.
func (p *Projection) put(r *store.Request) error {
	org, err := store.ParseID(r.OrgID)
	if err != nil {
		return fmt.Errorf("request %s: orgId: %w", r.ID, err)
	}
	id, err := store.ParseID(r.ID)
	if err != nil {
		return fmt.Errorf("request %s: id: %w", r.ID, err)
	}
	st := slices.Index(store.Statuses, r.Status)
	switch {
	case r.Status == "":
		st = noStatus // a history file may leave it out
	case st < 0:
		return fmt.Errorf("request %s: unknown status %q", r.ID, r.Status)
	}
	obs, err := p.observation(r)
	if err != nil {
		return err
	}
	row := histRow{at: r.RequestedAt.UnixNano(), id: id, obs: obs, groups: p.groupList(r.AdGroups), site: p.str(r.SiteID),
		device: p.str(r.DeviceID), rec: p.recorded(r.Decision), status: uint8(st)}
	o := p.orgs[org]
	if o == nil {
		o = &orgRows{}
		p.orgs[org] = o
	}
	n := len(o.rows)
	if n == 0 || o.rows[n-1].cmp(row.at, id) < 0 {
		o.rows = append(o.rows, row) // the usual case: the newest request
		p.rows++
		return nil
	}
	i := o.after(row.at, id, true)
	if i < n && o.rows[i].at == row.at && o.rows[i].id == id {
		o.rows[i] = row
		return nil
	}
	o.rows = slices.Insert(o.rows, i, row)
	p.rows++
	return nil
}

func cmpID(a, b store.ID) int { return slices.Compare(a[:], b[:]) }

// cmp orders the row against (at, id).
func (r *histRow) cmp(at int64, id store.ID) int {
	if c := cmp.Compare(r.at, at); c != 0 {
		return c
	}
	return cmpID(r.id, id)
}

// after is the index of the first row after (at, id), or at it when
// orEqual: one binary search over both keys (many requests can share an
// instant).
func (o *orgRows) after(at int64, id store.ID, orEqual bool) int {
	i, found := slices.BinarySearchFunc(o.rows, struct{}{}, func(r histRow, _ struct{}) int { return r.cmp(at, id) })
	if found && !orEqual {
		i++
	}
	return i
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
	// newest are read first within each organisation, and organisations
	// one after the other.
	MaxScan int
	// Ctx, when set, ends the read with its error once it is done.
	Ctx context.Context
}

// stopped is the scope's context's error, if it has ended.
func (sc *Scope) stopped() error {
	if sc.Ctx == nil {
		return nil
	}
	return sc.Ctx.Err()
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
		batch := make([]Case, 0, 256)
		more := true
		flush := func() {
			for i := range batch {
				if more = yield(&batch[i]); !more {
					break
				}
			}
			batch = batch[:0]
		}
		err := p.scan(sc, stat, func(orgID string, r *histRow) bool {
			batch = append(batch, Case{})
			p.fill(r, orgID, &batch[len(batch)-1])
			return len(batch) < cap(batch)
		}, func() bool {
			flush()
			return more
		})
		if more {
			flush()
		}
		return err
	}
}

// scanStretch is how many rows a reader reads per hold of the read lock.
const scanStretch = 4096

// scan calls fn, with the read lock held, for each row of the scope,
// newest first, counting them in stat and stopping at the scope's cap.
// When fn returns false, or every scanStretch rows, it lets go of the lock
// and calls pause (nil: nothing), which ends the scan by returning false.
func (p *Projection) scan(sc Scope, stat *ScanStat, fn func(orgID string, r *histRow) bool, pause func() bool) error {
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
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !sc.From.IsZero() {
		from = sc.From.UnixNano()
	}
	if !sc.To.IsZero() {
		to = sc.To.UnixNano()
	}
	capped := func() bool {
		if sc.MaxScan > 0 && stat.Scanned >= sc.MaxScan {
			stat.Truncated = true
			return true
		}
		return false
	}
	for _, org := range orgs {
		orgID := org.String()
		// The cursor: the oldest row read so far, (curAt, curID).
		curAt, curID, first := to, store.ID{}, true
		for done := false; !done; {
			done = true
			p.mu.RLock()
			if o := p.orgs[org]; o != nil {
				hi := o.after(curAt, curID, !first) // one past the newest row to read
				if first {
					hi = o.after(to, maxID, false)
				}
				for i, n := hi-1, 1; i >= 0 && o.rows[i].at >= from; i, n = i-1, n+1 {
					r := &o.rows[i]
					if f.keep(p, r) {
						if capped() {
							break
						}
						stat.Scanned++
						if !fn(orgID, r) {
							curAt, curID, first, done = r.at, r.id, false, i == 0
							break
						}
					}
					if n == scanStretch {
						curAt, curID, first, done = r.at, r.id, false, i == 0
						break
					}
				}
			}
			p.mu.RUnlock()
			if pause != nil && !pause() {
				return nil
			}
			if err := sc.stopped(); err != nil {
				return err
			}
		}
		if capped() {
			break
		}
	}
	return nil
}

var maxID = store.ID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// fill sets c to row r. p.mu is held.
func (p *Projection) fill(r *histRow, orgID string, c *Case) {
	k := &p.obs[r.obs]
	rec := p.recs[r.rec]
	*c = Case{ID: r.id.String(), OrgID: orgID, DeviceID: p.strs[r.device], SiteID: p.strs[r.site],
		Flow: flows[k.flow], At: time.Unix(0, r.at).UTC(), key: r.id,
		Observation: engine.Observation{SubjectUsername: p.strs[k.user], TargetExecutablePath: p.strs[k.path],
			TargetExecutableHash: p.strs[k.hash], TargetExecutableSigner: p.strs[k.signer], ParentImage: p.strs[k.parent],
			CommandLine: p.strs[k.cmd], ToolName: p.strs[k.tool], AdGroups: p.groups[r.groups]},
		Recorded: Recorded{Outcome: rec.outcome, RuleID: p.strs[rec.ruleID], RuleName: p.strs[rec.ruleName]}}
	if k.risk > 0 {
		c.Observation.RiskTier = p.risk[k.risk-1]
	}
	if r.status != noStatus {
		c.Status = store.Statuses[r.status]
	}
	if k.flow == 0 {
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

func (f scopeFilter) keep(p *Projection, r *histRow) bool {
	if f.flow != "" && flows[p.obs[r.obs].flow] != f.flow {
		return false
	}
	if f.site == "" && f.sites == nil {
		return true
	}
	s := p.strs[r.site]
	return (f.site == "" || s == f.site) && (f.sites == nil || f.sites[s])
}

// preview decides the draft (compiled alone in rs) for each row of the
// scope, in read order, adding the matches to res.
//
// A draft's verdict on a request depends on the request's instant only
// through a time window or a condition (which may read it); otherwise it
// is the same for every request with the same observation, and is decided
// once per distinct observation, on every core, before the rows are
// counted. A draft with a time window is decided that way without its
// window, then with it, at each instant, only where the rest matched (the
// window is ANDed). A draft with a condition is decided row by row.
func (p *Projection) preview(sc Scope, stat *ScanStat, flow engine.FlowType, rs *engine.RuleSet, draft engine.Rule,
	groups []engine.SignerGroup, workers int, res *PreviewResult) error {
	if draft.Condition != nil {
		return previewCases(p.Source(sc, stat), workers, flow, rs, res)
	}
	memoRS := rs
	if draft.TimeWindow != nil {
		d := draft.Clone()
		d.TimeWindow = nil
		var err error
		if memoRS, err = engine.Compile([]engine.Rule{d}, groups, engine.CompileOptions{}); err != nil {
			return err
		}
	}
	t := p.tables()
	memo := make([]uint8, len(t.obs)) // 0 unknown, 1 match, 2 no match
	// The distinct observations of the scope, decided in parallel.
	type obsAt struct {
		id uint32
		at int64 // any instant: the verdict does not depend on it
	}
	var todo []obsAt
	if err := p.scan(sc, nil, func(_ string, r *histRow) bool {
		if int(r.obs) < len(memo) && memo[r.obs] == 0 {
			memo[r.obs] = 2
			todo = append(todo, obsAt{r.obs, r.at})
		}
		return true
	}, nil); err != nil {
		return err
	}
	n := workers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for i := w; i < len(todo); i += n {
				if t.decide(memoRS, flow, todo[i].id, time.Unix(0, todo[i].at).UTC()) {
					memo[todo[i].id] = 1
				}
			}
		})
	}
	wg.Wait()
	var c Case
	return p.scan(sc, stat, func(orgID string, r *histRow) bool {
		at := time.Unix(0, r.at).UTC()
		var m bool
		switch {
		case int(r.obs) < len(memo) && memo[r.obs] != 0:
			m = memo[r.obs] == 1
		case int(r.obs) < len(memo):
			// A row the first pass did not see (it arrived since, or the
			// cap now falls elsewhere): decided here, and remembered.
			m = p.tablesLocked().decide(memoRS, flow, r.obs, at)
			memo[r.obs] = 2
			if m {
				memo[r.obs] = 1
			}
		default: // an observation newer than the memo
			m = p.tablesLocked().decide(memoRS, flow, r.obs, at)
		}
		if m && memoRS != rs {
			m = p.tablesLocked().decide(rs, flow, r.obs, at)
		}
		if !m {
			return true
		}
		res.TotalMatched++
		if r.status != noStatus {
			res.StatusBreakdown[string(store.Statuses[r.status])]++
		}
		if len(res.Sample) < SampleSize {
			p.fill(r, orgID, &c)
			res.Sample = append(res.Sample, previewSample(&c))
		}
		return true
	}, nil)
}

// tables are the projection's interned tables as they stand: entries are
// only ever appended, never changed, so a copy of the slice headers taken
// under the lock may be read without it.
type tables struct {
	strs []string
	obs  []obsKey
	risk []*int
}

func (p *Projection) tables() tables {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.tablesLocked()
}

// tablesLocked is tables with p.mu held.
func (p *Projection) tablesLocked() tables { return tables{p.strs, p.obs, p.risk} }

// decide reports whether the preview draft (alone in rs) matches
// observation id at instant at.
func (t tables) decide(rs *engine.RuleSet, flow engine.FlowType, id uint32, at time.Time) bool {
	k := &t.obs[id]
	o := engine.Observation{SubjectUsername: t.strs[k.user], TargetExecutablePath: t.strs[k.path],
		TargetExecutableHash: t.strs[k.hash], TargetExecutableSigner: t.strs[k.signer], ParentImage: t.strs[k.parent],
		CommandLine: t.strs[k.cmd], ToolName: t.strs[k.tool]}
	if k.risk > 0 {
		o.RiskTier = t.risk[k.risk-1]
	}
	in := previewCandidate(flow, at, &o)
	return rs.Decide(&in).RuleID == previewRuleID
}

// StoreHistory reads a store's request history: from the store itself
// until a projection of it, loading in the background, is ready, and from
// the projection after that. Both give the same answers; the projection
// gives them sooner. A projection that fails to load leaves the store.
type StoreHistory struct {
	direct StoreReader
	proj   atomic.Pointer[Projection]
	done   chan struct{}
	err    error
}

// WatchStore starts loading the projection of st and returns at once.
func WatchStore(st *store.Store) *StoreHistory {
	h := &StoreHistory{direct: StoreReader{st}, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		p, err := LoadProjection(st)
		if err != nil {
			h.err = err
			return
		}
		h.proj.Store(p)
	}()
	return h
}

// Wait waits for the projection and returns it, or why it is not there.
func (h *StoreHistory) Wait() (*Projection, error) {
	<-h.done
	return h.proj.Load(), h.err
}

// reader is what reads now.
func (h *StoreHistory) reader() Reader {
	if p := h.proj.Load(); p != nil && !p.Broken() {
		return p
	}
	return h.direct
}

// Source reads the scope from the projection when it is ready, else from
// the store.
func (h *StoreHistory) Source(sc Scope, stat *ScanStat) Source { return h.reader().Source(sc, stat) }
