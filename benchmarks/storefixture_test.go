package benchmarks

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// ---------------------------------------------------------------------------
// Durable-state fixture: 1,000,000 stored elevation requests
// ---------------------------------------------------------------------------

// The store fixture is deterministic (math/rand/v2 PCG, fixed seeds, no
// clock, no map iteration): the same version always yields the same
// inventory and the same rows, byte for byte.
const (
	storeSeedHi = 0x454c45564154455f // "ELEVATE_"
	storeSeedLo = 0x53544f5245303031 // "STORE001"
	rowSeedHi   = 0x454c45564154455f // "ELEVATE_"
	rowSeedLo   = 0x524f575330303031 // "ROWS0001"

	storeRows    = 1_000_000
	storeChunk   = 500 // requests per st.Update while building
	storeVersion = "v3"
)

// The rows' requestedAt times cover the 90 days before storeEnd (the
// decision benchmark's evaluation instant), evenly spaced with jitter.
var (
	storeEnd   = evalAt
	storeSpan  = 90 * 24 * time.Hour
	storeStart = storeEnd.Add(-storeSpan)
	// storeDay is the one-day window of the time-range list query:
	// Sunday 8 March 2026, both ends inclusive.
	storeDayFrom = time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)
	storeDayTo   = storeDayFrom.Add(24*time.Hour - time.Nanosecond)
)

// storeOrgSpec shapes one organisation: its share of the rows (percent),
// its sites and its devices. Totals: 20 sites, 1,000 devices.
type storeOrgSpec struct {
	name, domain   string
	weight         int
	sites, devices int
}

var storeOrgSpecs = []storeOrgSpec{
	{"Acme Manufacturing", "ACME", 40, 8, 400},
	{"Globex", "GLOBEX", 25, 5, 250},
	{"Initech", "INITECH", 15, 3, 150},
	{"Umbrella Health", "UMBRELLA", 12, 2, 120},
	{"Stark Logistics", "STARK", 8, 2, 80},
}

// Status mix of the stored rows, in basis points (sum 10,000): mostly
// decided and finished requests, few pending.
var storeStatusMix = []struct {
	status store.Status
	bp     int
}{
	{store.StatusDenied, 3830},
	{store.StatusExpired, 3000},
	{store.StatusAutoApproved, 2200},
	{store.StatusApproved, 500},
	{store.StatusRevoked, 300},
	{store.StatusActuating, 150},
	{store.StatusPending, 20},
}

// Flow mix, percent: uac 80, ai_tool_action 15, tech_jit_admin 5.
func storeFlow(x int) engine.FlowType {
	switch {
	case x < 80:
		return engine.FlowUAC
	case x < 95:
		return engine.FlowToolAct
	}
	return engine.FlowJITAdmin
}

type storeApp struct {
	path, signer, hash, parent, args string
	download                         bool // path is under the user's Downloads folder
}

type storeActor struct{ id, name string }

type storeRuleRef struct{ id, name string }

// storeOrgInv is one organisation's inventory and the name material its
// requests draw from.
type storeOrgInv struct {
	org      store.Org
	sites    []store.Site
	devices  []store.Device
	users    []string // DOMAIN\first.last
	userIDs  []string
	groups   []string
	admins   []storeActor
	rules    []storeRuleRef
	policies []storeRuleRef // software policies: id, name
}

type storeInventory struct {
	orgs []*storeOrgInv
	apps []storeApp
}

func uuid4(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		a>>32, (a>>16)&0xffff, a&0xfff, 0x8000|(b>>48)&0x3fff, b&0xffffffffffff)
}

// uuid7 is a version 7 UUID whose timestamp is t and whose other bits come
// from r, so request ids sort by time as store.NewID's do.
func uuid7(t time.Time, r *rand.Rand) string {
	var id store.ID
	binary.BigEndian.PutUint64(id[0:8], uint64(t.UnixMilli())<<16|uint64(r.Uint32()&0xffff))
	binary.BigEndian.PutUint64(id[8:16], r.Uint64())
	id[6] = 0x70 | id[6]&0x0f
	id[8] = 0x80 | id[8]&0x3f
	return id.String()
}

// newStoreInventory builds the five organisations, their 20 sites and
// 1,000 devices (the 50th, 100th, … device of each org has no site: 19
// in all), and the shared catalogue
// of 240 executables.
func newStoreInventory() *storeInventory {
	r := rand.New(rand.NewPCG(storeSeedHi, storeSeedLo))
	inv := &storeInventory{}
	created := time.Date(2024, 2, 1, 9, 0, 0, 0, time.UTC)
	for oi, spec := range storeOrgSpecs {
		o := &storeOrgInv{org: store.Org{ID: uuid4(r), Name: spec.name, CreatedAt: created, ActuatorEnabled: oi%2 == 0}}
		for i := range spec.sites {
			o.sites = append(o.sites, store.Site{ID: uuid4(r), OrgID: o.org.ID, Name: fmt.Sprintf("%s site %d", spec.name, i+1), CreatedAt: created})
		}
		for i := range spec.devices {
			d := store.Device{ID: uuid4(r), OrgID: o.org.ID, Hostname: fmt.Sprintf("WIN-%s-%04d", spec.domain, i+1),
				Status: store.DeviceActive, OS: "windows", CreatedAt: created.Add(time.Duration(i) * time.Hour)}
			if i%50 != 49 {
				d.SiteID = o.sites[i%len(o.sites)].ID
			}
			o.devices = append(o.devices, d)
		}
		for i := range max(40, spec.devices*3/4) {
			f, l := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
			o.users = append(o.users, fmt.Sprintf(`%s\%s.%s%d`, spec.domain, f, l, i))
			o.userIDs = append(o.userIDs, uuid4(r))
		}
		for i := range 12 {
			o.groups = append(o.groups, fmt.Sprintf(`%s\%s-%s`, spec.domain, groupDepts[i%len(groupDepts)], groupRoles[r.IntN(len(groupRoles))]))
		}
		o.groups = append(o.groups, spec.domain+`\Domain Users`)
		for i := range 8 {
			o.admins = append(o.admins, storeActor{uuid4(r), fmt.Sprintf("%s %s (admin %d)", firstNames[(i*5+oi)%len(firstNames)], lastNames[(i*7+oi)%len(lastNames)], i+1)})
		}
		for i := range 50 {
			o.rules = append(o.rules, storeRuleRef{uuid4(r), fmt.Sprintf("%s rule #%d", vendorStems[i%len(vendorStems)], i+1)})
		}
		for i := range 3 {
			o.policies = append(o.policies, storeRuleRef{uuid4(r), fmt.Sprintf("%s software policy %d", spec.name, i+1)})
		}
		inv.orgs = append(inv.orgs, o)
	}
	for i := range 240 {
		stem, kind := vendorStems[i%len(vendorStems)], vendorKinds[r.IntN(len(vendorKinds))]
		vendorName := fmt.Sprintf("%s %s %d", stem, kind, i)
		exe := exeNames[r.IntN(len(exeNames))]
		a := storeApp{hash: hex64(r), parent: `C:\Windows\explorer.exe`, args: " /S"}
		if r.IntN(5) != 0 {
			a.signer = vendorName + " " + vendorSuffixes[r.IntN(len(vendorSuffixes))]
		}
		switch x := r.IntN(10); {
		case x < 5:
			a.path = fmt.Sprintf(`C:\Program Files\%s\%s.exe`, vendorName, exe)
			a.args = " /update /quiet"
		case x < 8:
			a.path = fmt.Sprintf(`%s-%s-x64.exe`, strings.ReplaceAll(vendorName, " ", ""), exe)
			a.download = true
			a.parent = `C:\Program Files\Mozilla Firefox\firefox.exe`
		case x < 9:
			a.path = fmt.Sprintf(`C:\Users\%%s\AppData\Local\%s\%s.exe`, vendorName, exe)
			a.download = true
		default:
			a.path = fmt.Sprintf(`C:\Tools\%s\bin\%s.exe`, strings.ReplaceAll(vendorName, " ", ""), exe)
			a.parent = `C:\Windows\System32\cmd.exe`
			a.args = " --install"
		}
		inv.apps = append(inv.apps, a)
	}
	return inv
}

// put writes the inventory in one operation.
func (inv *storeInventory) put(tx *store.Tx) error {
	for _, o := range inv.orgs {
		if err := tx.PutOrg(&o.org); err != nil {
			return err
		}
		for i := range o.sites {
			if err := tx.PutSite(&o.sites[i]); err != nil {
				return err
			}
		}
		for i := range o.devices {
			d := o.devices[i]
			if err := tx.PutDevice(&d); err != nil {
				return err
			}
		}
	}
	return nil
}

// storeQueries names the list-query targets: the largest organisation
// (40 % of the rows), its first device and its first site.
type storeQueries struct {
	org, device, site string
}

func (inv *storeInventory) queries() storeQueries {
	o := inv.orgs[0]
	return storeQueries{org: o.org.ID, device: o.devices[0].ID, site: o.sites[0].ID}
}

// storeCounts is what the generator counted: rows per organisation and
// status, and the expected totals of the list queries.
type storeCounts struct {
	Rows        int            `json:"rows"`
	PerOrg      []int          `json:"perOrg"`
	PerStatus   map[string]int `json:"perStatus"`
	PerFlow     map[string]int `json:"perFlow"`
	Org         int            `json:"org"`         // rows of the query org
	Pending     int            `json:"pending"`     // … pending
	FlowTool    int            `json:"flowTool"`    // … ai_tool_action
	Device      int            `json:"device"`      // … of the query device
	Site        int            `json:"site"`        // … at the query site
	Day         int            `json:"day"`         // … requested on storeDay
	DayAll      int            `json:"dayAll"`      // rows of every org requested on storeDay
	PendingSite int            `json:"pendingSite"` // … pending at the query site
	RowBytes    int64          `json:"rowBytes"`    // sum of binary row sizes
}

func (c *storeCounts) add(oi int, q storeQueries, r *store.Request) {
	if c.PerOrg == nil {
		c.PerOrg = make([]int, len(storeOrgSpecs))
		c.PerStatus, c.PerFlow = map[string]int{}, map[string]int{}
	}
	c.Rows++
	c.PerOrg[oi]++
	c.PerStatus[string(r.Status)]++
	c.PerFlow[string(r.Flow)]++
	inDay := !r.RequestedAt.Before(storeDayFrom) && !r.RequestedAt.After(storeDayTo)
	if inDay {
		c.DayAll++
	}
	if r.OrgID != q.org {
		return
	}
	c.Org++
	pending := r.Status == store.StatusPending
	if pending {
		c.Pending++
	}
	if r.Flow == engine.FlowToolAct {
		c.FlowTool++
	}
	if r.DeviceID == q.device {
		c.Device++
	}
	if r.SiteID == q.site {
		c.Site++
		if pending {
			c.PendingSite++
		}
	}
	if inDay {
		c.Day++
	}
}

// genRequests calls fn with the n rows in requestedAt order, until fn
// returns false. Row i's time is storeStart + i·span/n plus jitter within
// its slot, so a smaller n spreads fewer rows over the same 90 days.
func genRequests(inv *storeInventory, n int, fn func(oi int, r *store.Request) bool) {
	rng := rand.New(rand.NewPCG(rowSeedHi, rowSeedLo))
	step := int64(storeSpan) / int64(n)
	cum := make([]int, len(storeOrgSpecs))
	s := 0
	for i, spec := range storeOrgSpecs {
		s += spec.weight
		cum[i] = s
	}
	for i := range n {
		at := storeStart.Add(time.Duration(int64(i)*step + rng.Int64N(step)))
		x := rng.IntN(100)
		oi := 0
		for x >= cum[oi] {
			oi++
		}
		if !fn(oi, genRequest(inv, inv.orgs[oi], rng, at)) {
			return
		}
	}
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// genRequest draws one request of org o requested at at, with the fields
// ingest and the later transitions would have set for its status.
func genRequest(inv *storeInventory, o *storeOrgInv, r *rand.Rand, at time.Time) *store.Request {
	dev := pick(r, o.devices)
	ui := r.IntN(len(o.users))
	user := o.users[ui]
	created := at.Add(time.Duration(r.IntN(1500)) * time.Millisecond)
	req := &store.Request{
		ID: uuid7(at, r), OrgID: o.org.ID, DeviceID: dev.ID, SiteID: dev.SiteID,
		Flow: storeFlow(r.IntN(100)), SubjectUsername: user, RequestedAt: at, CreatedAt: created,
	}
	groups := func() []string {
		g := []string{o.groups[len(o.groups)-1]}
		for range 1 + r.IntN(3) {
			g = append(g, pick(r, o.groups[:len(o.groups)-1]))
		}
		return g
	}
	switch req.Flow {
	case engine.FlowUAC:
		a := pick(r, inv.apps)
		path := a.path
		if strings.Contains(path, "%s") {
			path = fmt.Sprintf(path, shortUser(user))
		} else if a.download {
			path = `C:\Users\` + shortUser(user) + `\Downloads\` + path
		}
		pid := int64(1000 + r.IntN(60000))
		req.TargetExecutablePath, req.TargetExecutableHash, req.TargetExecutableSigner = path, a.hash, a.signer
		req.ParentImage, req.CommandLine, req.PID = a.parent, `"`+path+`"`+a.args, &pid
		req.AdGroups = groups()
		req.Reason = "UAC consent UI observed for " + path
	case engine.FlowToolAct:
		tier := r.IntN(5)
		req.ToolName, req.RiskTier = pick(r, toolNames), &tier
		req.ActionDigest, req.ExecutionID = hex64(r), uuid4(r)
		req.Reason = fmt.Sprintf("AI helper requested tool '%s' (tier %d)", req.ToolName, tier)
	case engine.FlowJITAdmin:
		req.SubjectUserID = o.userIDs[ui]
		req.AdGroups = groups()
		req.Reason = fmt.Sprintf("Install drivers for ticket INC-%06d", r.IntN(1000000))
	}

	x := r.IntN(10000)
	for _, m := range storeStatusMix {
		if x < m.bp {
			req.Status = m.status
			break
		}
		x -= m.bp
	}
	version := uint64(1 + (at.Sub(storeStart))*60/storeSpan)
	byRule := func(v engine.Verdict, outcome engine.Outcome) {
		rule := pick(r, o.rules)
		req.Decision = store.DecisionRecord{Outcome: outcome, Verdict: v, DecidedBy: engine.DecidedByRule,
			RuleID: rule.id, RuleName: rule.name, RuleSetVersion: version}
	}
	byDefault := func() {
		req.Decision = store.DecisionRecord{Outcome: engine.OutcomePending, DecidedBy: engine.DecidedByOrgDefault, RuleSetVersion: version}
	}
	autoApprove := func() {
		if req.Flow == engine.FlowUAC && r.IntN(6) == 0 {
			p := pick(r, o.policies)
			req.Decision = store.DecisionRecord{Outcome: engine.OutcomeAutoApproved, DecidedBy: engine.DecidedBySoftwarePolicy,
				SoftwarePolicyID: p.id, RuleSetVersion: version}
			req.MatchedPolicyName = p.name
		} else {
			byRule(engine.VerdictAutoApprove, engine.OutcomeAutoApproved)
		}
		req.DurationMinutes = pick(r, []int{15, 30, 60, 240})
		req.ApprovedAt = created
		req.ExpiresAt = created.Add(time.Duration(req.DurationMinutes) * time.Minute)
	}
	humanApprove := func() {
		if r.IntN(3) == 0 {
			byRule(engine.VerdictRequireApproval, engine.OutcomePending)
		} else {
			byDefault()
		}
		a := pick(r, o.admins)
		req.DurationMinutes = pick(r, []int{15, 30, 60})
		req.ApprovedAt = created.Add(time.Duration(30+r.IntN(600)) * time.Second)
		req.ApprovedBy, req.ApprovedByName = a.id, a.name
		if r.IntN(2) == 0 {
			req.ApprovalReason = "Approved per change ticket CHG-" + fmt.Sprint(100000+r.IntN(900000))
		}
		req.ExpiresAt = req.ApprovedAt.Add(time.Duration(req.DurationMinutes) * time.Minute)
	}
	approve := func() {
		if r.IntN(10) < 7 {
			autoApprove()
		} else {
			humanApprove()
		}
	}
	switch req.Status {
	case store.StatusAutoApproved:
		autoApprove()
	case store.StatusApproved:
		humanApprove()
	case store.StatusActuating:
		humanApprove()
		req.ActuatedAt = req.ApprovedAt.Add(time.Duration(5+r.IntN(120)) * time.Second)
		req.ActuatedBy, req.ActuationCommandID = req.ApprovedBy, uuid4(r)
	case store.StatusRevoked:
		approve()
		a := pick(r, o.admins)
		req.RevokedAt = req.ApprovedAt.Add(time.Duration(60+r.IntN(600)) * time.Second)
		req.RevokedBy, req.RevokedByName, req.RevokedReason = a.id, a.name, "Elevation no longer needed"
	case store.StatusExpired:
		if r.IntN(4) == 0 { // never decided: the sweep expired it
			byDefault()
			req.ExpiredAt = at.Add(15*time.Minute + time.Duration(r.IntN(60))*time.Second)
			req.ExpiredCause = "stale"
		} else {
			approve()
			req.ExpiredAt = req.ExpiresAt.Add(time.Duration(r.IntN(60)) * time.Second)
			req.ExpiredCause = "window"
		}
	case store.StatusDenied:
		switch y := r.IntN(10); {
		case y < 5:
			byRule(engine.VerdictAutoDeny, engine.OutcomeDenied)
			req.DeniedAt = created
			switch req.Flow {
			case engine.FlowToolAct:
				req.DenialReason = fmt.Sprintf("Denied by PAM rule '%s'", req.Decision.RuleName)
			case engine.FlowJITAdmin:
				req.DenialReason = fmt.Sprintf("Denied by PAM rule %q", req.Decision.RuleName)
			default:
				req.DenialReason = fmt.Sprintf("Blocked by PAM rule %q", req.Decision.RuleName)
			}
		case y < 7 && req.Flow == engine.FlowUAC:
			p := pick(r, o.policies)
			req.Decision = store.DecisionRecord{Outcome: engine.OutcomeDenied, DecidedBy: engine.DecidedBySoftwarePolicy,
				SoftwarePolicyID: p.id, RuleSetVersion: version}
			req.MatchedPolicyName = p.name
			req.DeniedAt, req.DenialReason = created, "Blocked by software policy"
		case y < 7:
			req.Decision = store.DecisionRecord{Outcome: engine.OutcomeDenied, DecidedBy: engine.DecidedByOrgDefault, RuleSetVersion: version}
			req.DeniedAt, req.DenialReason = created, "Blocked by org default (no matching policy or rule)"
		default: // a person said no
			byDefault()
			a := pick(r, o.admins)
			req.DeniedAt = created.Add(time.Duration(30+r.IntN(900)) * time.Second)
			req.DeniedBy, req.DeniedByName = a.id, a.name
			req.DenialReason = "Not an approved application"
		}
	default: // pending
		byDefault()
	}
	return req
}

func shortUser(u string) string {
	if i := strings.IndexByte(u, '\\'); i >= 0 {
		return u[i+1:]
	}
	return u
}

// ---------------------------------------------------------------------------
// Building and caching
// ---------------------------------------------------------------------------

// buildStoreRows writes the inventory, then n generated rows in operations
// of storeChunk requests (tx.PutRequest), and returns what it counted. The
// next chunk is generated while the previous one commits.
func buildStoreRows(st *store.Store, inv *storeInventory, n int) (*storeCounts, error) {
	if err := st.Update(inv.put); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	q := inv.queries()
	counts := &storeCounts{}
	chunks := make(chan []*store.Request, 4)
	go func() {
		defer close(chunks)
		chunk := make([]*store.Request, 0, storeChunk)
		genRequests(inv, n, func(oi int, r *store.Request) bool {
			counts.add(oi, q, r)
			if row, err := store.MarshalRow(r); err == nil {
				counts.RowBytes += int64(len(row))
			}
			chunk = append(chunk, r)
			if len(chunk) == storeChunk {
				chunks <- chunk
				chunk = make([]*store.Request, 0, storeChunk)
			}
			return true
		})
		if len(chunk) > 0 {
			chunks <- chunk
		}
	}()
	var err error
	for chunk := range chunks {
		if err != nil {
			continue // drain the generator
		}
		err = st.Update(func(tx *store.Tx) error {
			for _, r := range chunk {
				if err := tx.PutRequest(r); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// storeFixtureMarker is written next to the data directory once the
// build has completed; without it the directory is rebuilt.
type storeFixtureMarker struct {
	Version      string       `json:"version"`
	Rows         int          `json:"rows"`
	BuildSeconds float64      `json:"buildSeconds"`
	Counts       *storeCounts `json:"counts"`
}

func readMarker(path string, rows int) (*storeFixtureMarker, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var m storeFixtureMarker
	if json.Unmarshal(b, &m) != nil || m.Version != storeVersion || m.Rows != rows || m.Counts == nil {
		return nil, false
	}
	return &m, true
}

func writeMarker(path string, m *storeFixtureMarker) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// storeFixture is the opened 1M-row store, shared by every benchmark of
// the process.
type storeFixture struct {
	st     *store.Store
	inv    *storeInventory
	q      storeQueries
	marker *storeFixtureMarker
	built  bool // built by this process (else reused from the cache)
	waited time.Duration
}

var (
	storeFixtures memo[int, *storeFixture]
	jsonFixtures  memo[int, *jsonFixture]
	openFixtures  []func() error // closed by TestMain
)

func storeCacheDir() string { return filepath.Join(os.TempDir(), "elevate-bench-store-"+storeVersion) }

// getStoreFixture opens the cached 1M-row store, building it first
// (store.Options{NoSync: true}) if the cache is missing or incomplete. It
// then waits for badger's background compactions to finish, so they do not
// run under a timer.
func getStoreFixture(tb testing.TB) *storeFixture {
	tb.Helper()
	f := storeFixtures.get(storeRows, func() *storeFixture {
		f, err := openStoreFixture(tb, storeRows)
		if err != nil {
			tb.Fatalf("store fixture: %v", err)
		}
		return f
	})
	if f == nil {
		tb.Fatal("store fixture unavailable (an earlier build failed)")
	}
	return f
}

func openStoreFixture(tb testing.TB, rows int) (*storeFixture, error) {
	dir := storeCacheDir()
	dbDir, markerPath := filepath.Join(dir, "db"), filepath.Join(dir, "complete.json")
	inv := newStoreInventory()
	f := &storeFixture{inv: inv, q: inv.queries()}
	m, ok := readMarker(markerPath, rows)
	if !ok {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		start := time.Now()
		st, err := store.Open(dbDir, store.Options{NoSync: true})
		if err != nil {
			return nil, err
		}
		counts, err := buildStoreRows(st, inv, rows)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		m = &storeFixtureMarker{Version: storeVersion, Rows: rows, BuildSeconds: time.Since(start).Seconds(), Counts: counts}
		if err := writeMarker(markerPath, m); err != nil {
			return nil, err
		}
		f.built = true
	}
	f.marker = m
	st, err := store.Open(dbDir, store.Options{NoSync: true})
	if err != nil {
		return nil, err
	}
	f.st = st
	openFixtures = append(openFixtures, st.Close)
	f.waited = waitIdle()
	size := dirSize(dbDir)
	how := "reused"
	if f.built {
		how = "built"
	}
	tb.Logf("store fixture %s: %s, %d rows (%d in the query org), %.0f MiB on disk, build took %.0f s, waited %.1f s for background compaction",
		how, dbDir, m.Counts.Rows, m.Counts.Org, float64(size)/(1<<20), m.BuildSeconds, f.waited.Seconds())
	return f, nil
}

// waitIdle waits until the process has used under 5 % of one core for two
// consecutive half-second intervals (badger's compactors are idle), at
// most two minutes, and returns how long it waited.
func waitIdle() time.Duration {
	start := time.Now()
	quiet := 0
	last := cpuTime()
	for quiet < 2 && time.Since(start) < 2*time.Minute {
		time.Sleep(500 * time.Millisecond)
		now := cpuTime()
		if now-last < 25*time.Millisecond {
			quiet++
		} else {
			quiet = 0
		}
		last = now
	}
	return time.Since(start)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dirSize is the disk space the files under dir occupy (badger's value
// log and memtable files are sparse, so their length overstates it).
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				} else {
					n += fi.Size()
				}
			}
		}
		return nil
	})
	return n
}

// TestMain closes the fixture stores the benchmarks opened, so the cached
// directories are left cleanly closed for the next run.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, c := range openFixtures {
		if err := c(); err != nil {
			fmt.Fprintln(os.Stderr, "closing a benchmark fixture:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// JSON comparison database
// ---------------------------------------------------------------------------

// jsonFixture is a raw badger database holding the store fixture's request
// rows as the API's JSON (store.Request.MarshalJSON) under the store's own
// request keys ('q' org requestedAt id), so a scan of it visits the same
// rows in the same order as ScanRequests. It exists only to compare row
// formats; the store itself never holds JSON rows.
type jsonFixture struct {
	db        *badger.DB
	rows      int
	jsonBytes int64
	waited    time.Duration
}

type jsonFixtureMarker struct {
	Version   string `json:"version"`
	Rows      int    `json:"rows"`
	JSONBytes int64  `json:"jsonBytes"`
}

// requestKeyOf is the store's primary key of r (store/keys.go: 'q', org id,
// requestedAt as big-endian Unix nanoseconds with the sign bit flipped, id).
func requestKeyOf(r *store.Request) ([]byte, error) {
	org, err := store.ParseID(r.OrgID)
	if err != nil {
		return nil, err
	}
	id, err := store.ParseID(r.ID)
	if err != nil {
		return nil, err
	}
	k := make([]byte, 0, 1+16+8+16)
	k = append(k, 'q')
	k = append(k, org[:]...)
	k = binary.BigEndian.AppendUint64(k, uint64(r.RequestedAt.UnixNano())^(1<<63))
	return append(k, id[:]...), nil
}

// jsonBadgerOptions are store.Open's badger options (without sync).
func jsonBadgerOptions(dir string) badger.Options {
	return badger.DefaultOptions(dir).WithSyncWrites(false).WithLogger(nil).
		WithNumVersionsToKeep(1).WithMetricsEnabled(false).
		WithChecksumVerificationMode(options.OnBlockRead).WithCompression(options.None)
}

func getJSONFixture(tb testing.TB) *jsonFixture {
	tb.Helper()
	sf := getStoreFixture(tb)
	f := jsonFixtures.get(storeRows, func() *jsonFixture {
		f, err := openJSONFixture(tb, sf)
		if err != nil {
			tb.Fatalf("json fixture: %v", err)
		}
		return f
	})
	if f == nil {
		tb.Fatal("json fixture unavailable (an earlier build failed)")
	}
	return f
}

func openJSONFixture(tb testing.TB, sf *storeFixture) (*jsonFixture, error) {
	dir := filepath.Join(os.TempDir(), "elevate-bench-json-"+storeVersion)
	dbDir, markerPath := filepath.Join(dir, "db"), filepath.Join(dir, "complete.json")
	var m jsonFixtureMarker
	b, err := os.ReadFile(markerPath)
	built := false
	if err != nil || json.Unmarshal(b, &m) != nil || m.Version != storeVersion || m.Rows != sf.marker.Counts.Rows {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		db, err := badger.Open(jsonBadgerOptions(dbDir))
		if err != nil {
			return nil, err
		}
		m = jsonFixtureMarker{Version: storeVersion}
		wb := db.NewWriteBatch()
		err = sf.st.ScanRequests(store.ScanOptions{}, func(r *store.Request) bool {
			var k, v []byte
			if k, err = requestKeyOf(r); err != nil {
				return false
			}
			if v, err = json.Marshal(r); err != nil {
				return false
			}
			m.Rows++
			m.JSONBytes += int64(len(v))
			err = wb.Set(k, v)
			return err == nil
		})
		if err == nil {
			err = wb.Flush()
		} else {
			wb.Cancel()
		}
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		if err := writeMarkerJSON(markerPath, &m); err != nil {
			return nil, err
		}
		built = true
	}
	db, err := badger.Open(jsonBadgerOptions(dbDir))
	if err != nil {
		return nil, err
	}
	openFixtures = append(openFixtures, db.Close)
	f := &jsonFixture{db: db, rows: m.Rows, jsonBytes: m.JSONBytes, waited: waitIdle()}
	tb.Logf("json fixture (built=%v): %s, %d rows, %.0f B/row JSON (binary %.0f B/row), %.0f MiB on disk, waited %.1f s for background compaction",
		built, dbDir, m.Rows, float64(m.JSONBytes)/float64(m.Rows), float64(sf.marker.Counts.RowBytes)/float64(sf.marker.Counts.Rows),
		float64(dirSize(dbDir))/(1<<20), f.waited.Seconds())
	return f, nil
}

func writeMarkerJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// scanJSON is ScanRequests' loop over the JSON database: the same iterator
// options, the same key checks and value copy, then json.Unmarshal into a
// new store.Request instead of the binary decoder.
func scanJSON(db *badger.DB, from, to time.Time, fn func(*store.Request) bool) error {
	lo := binary.BigEndian.AppendUint64(nil, uint64(from.UnixNano())^(1<<63))
	hi := binary.BigEndian.AppendUint64(nil, uint64(to.UnixNano())^(1<<63))
	return db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'q'}, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != 1+16+8+16 {
				return errors.New("malformed request key")
			}
			t := k[17:25]
			if string(t) > string(hi) || string(t) < string(lo) {
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			r := new(store.Request)
			if err := json.Unmarshal(v, r); err != nil {
				return err
			}
			if !fn(r) {
				return nil
			}
		}
		return nil
	})
}

// ---------------------------------------------------------------------------
// Fixture test (runs in a plain `go test`; a few thousand rows in memory)
// ---------------------------------------------------------------------------

func TestStoreBenchFixture(t *testing.T) {
	const n = 10000
	inv := newStoreInventory()
	if len(inv.orgs) != 5 {
		t.Fatalf("%d orgs", len(inv.orgs))
	}
	sites, devices, noSite := 0, 0, 0
	for _, o := range inv.orgs {
		sites += len(o.sites)
		devices += len(o.devices)
		for _, d := range o.devices {
			if d.SiteID == "" {
				noSite++
			}
		}
	}
	if sites != 20 || devices != 1000 || noSite != 19 {
		t.Fatalf("%d sites, %d devices (%d without a site), want 20, 1000 (19)", sites, devices, noSite)
	}

	// Deterministic, and every row survives both codecs unchanged: the
	// binary and JSON scans decode the same information.
	var first [][]byte
	genRequests(inv, n, func(_ int, r *store.Request) bool {
		row, err := store.MarshalRow(r)
		if err != nil {
			t.Fatalf("row %s: %v", r.ID, err)
		}
		first = append(first, row)
		var back store.Request
		if err := store.UnmarshalRow(row, &back); err != nil || !reflect.DeepEqual(&back, r) {
			t.Fatalf("binary round trip of %s: %v\n got %+v\nwant %+v", r.ID, err, back, *r)
		}
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON store.Request
		if err := json.Unmarshal(js, &fromJSON); err != nil || !reflect.DeepEqual(&fromJSON, r) {
			t.Fatalf("JSON round trip of %s: %v\n got %+v\nwant %+v", r.ID, err, fromJSON, *r)
		}
		return true
	})
	i := 0
	genRequests(newStoreInventory(), n, func(_ int, r *store.Request) bool {
		row, _ := store.MarshalRow(r)
		if string(row) != string(first[i]) {
			t.Fatalf("row %d differs between two runs of the generator", i)
		}
		i++
		return true
	})

	// The counts the generator keeps are what ListRequests answers.
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := buildStoreRows(st, inv, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, lq := range storeListQueries(inv.queries()) {
		_, total, err := st.ListRequests(lq.filter)
		if err != nil {
			t.Fatal(err)
		}
		if want := lq.want(c); total != want {
			t.Errorf("query %s: total %d, generator counted %d", lq.name, total, want)
		}
	}
	n90, nDay := 0, 0
	if err := st.ScanRequests(store.ScanOptions{From: storeStart, To: storeEnd}, func(*store.Request) bool { n90++; return true }); err != nil {
		t.Fatal(err)
	}
	if err := st.ScanRequests(store.ScanOptions{From: storeDayFrom, To: storeDayTo}, func(*store.Request) bool { nDay++; return true }); err != nil {
		t.Fatal(err)
	}
	if n90 != c.Rows || nDay != c.DayAll {
		t.Errorf("scans decoded %d rows (90 days) and %d (one day), generator counted %d and %d", n90, nDay, c.Rows, c.DayAll)
	}
	if c.Pending == 0 || c.Day == 0 || c.Device == 0 || c.Site == 0 {
		t.Errorf("a query target is empty: %+v", c)
	}

	// The mix is as intended (within sampling error of 10,000 rows).
	share := func(k int) float64 { return float64(k) / float64(c.Rows) }
	for _, m := range storeStatusMix {
		if got, want := share(c.PerStatus[string(m.status)]), float64(m.bp)/10000; got < want*0.8-0.005 || got > want*1.2+0.005 {
			t.Errorf("status %s: %.3f of the rows, want ≈ %.3f", m.status, got, want)
		}
	}
	for i, spec := range storeOrgSpecs {
		if got, want := share(c.PerOrg[i]), float64(spec.weight)/100; got < want-0.03 || got > want+0.03 {
			t.Errorf("org %s: %.3f of the rows, want ≈ %.2f", spec.name, got, want)
		}
	}
	t.Logf("%d rows: per org %v, per status %v, per flow %v; %.0f B/row binary; query org: %d rows, %d pending, %d tool actions, device %d, site %d, day %d, pending at site %d",
		c.Rows, c.PerOrg, c.PerStatus, c.PerFlow, float64(c.RowBytes)/float64(c.Rows), c.Org, c.Pending, c.FlowTool, c.Device, c.Site, c.Day, c.PendingSite)
}
