package benchmarks

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/store"
)

// ---------------------------------------------------------------------------
// Durable ingest fixture
// ---------------------------------------------------------------------------

const (
	ingestRules   = 50
	ingestDevices = 60
	ingestPool    = 512
)

// ingestFixture is one organisation with the 50-rule set of the decision
// benchmark's generator, its three sites, 60 devices, and a pool of agent
// observations that the rule set decides (none of them ignored, so every
// ingest records a request and its audit records).
type ingestFixture struct {
	tenant
	pool  []lifecycle.IngestInput
	mix   map[store.Status]int // status of each pool entry when ingested
	flows map[engine.FlowType]int
}

var ingestFixtures memo[int, *ingestFixture]

// stepClock starts at a fixed instant and moves one millisecond per
// reading, so requests get distinct, increasing times and time-window
// rules decide the same way in every run.
type stepClock struct {
	base time.Time
	n    atomic.Int64
}

func (c *stepClock) Now() time.Time { return c.base.Add(time.Duration(c.n.Add(1)) * time.Millisecond) }

func getIngestFixture(tb testing.TB) *ingestFixture {
	tb.Helper()
	return ingestFixtures.get(ingestRules, func() *ingestFixture {
		f, err := buildIngestFixture()
		if err != nil {
			tb.Fatalf("ingest fixture: %v", err)
		}
		return f
	})
}

func buildIngestFixture() (*ingestFixture, error) {
	g := newRuleGen(ingestRules)                                // the generator state generateRules starts from: same vendors, users, groups, sites
	r := rand.New(rand.NewPCG(storeSeedHi, 0x494e474553543031)) // "INGEST01"
	f := &ingestFixture{tenant: tenant{org: store.Org{ID: uuid4(r), Name: "Acme Ingest"}}, mix: map[store.Status]int{}, flows: map[engine.FlowType]int{}}
	for i, id := range g.sites {
		f.sites = append(f.sites, store.Site{ID: id, OrgID: f.org.ID, Name: fmt.Sprintf("Site %d", i+1)})
	}
	for i := range ingestDevices {
		f.devices = append(f.devices, store.Device{ID: uuid4(r), OrgID: f.org.ID, SiteID: g.sites[i%len(g.sites)],
			Hostname: fmt.Sprintf("WIN-ING-%03d", i+1), Status: store.DeviceActive, OS: "windows"})
	}
	for _, rule := range generateRules(ingestRules) {
		rule.OrgID = f.org.ID
		f.rules = append(f.rules, rule)
	}

	// Candidate observations: signed software from the rule set's vendors
	// (which its signer rules decide either way), the late-match updater
	// (auto-approved), unknown installers (org default: pending), AI tool
	// actions and JIT requests.
	var cands []lifecycle.IngestInput
	for len(cands) < 2*ingestPool {
		dev := f.devices[r.IntN(len(f.devices))]
		user := g.pick(g.users)
		groups := []string{`ACME\Domain Users`, g.pick(g.groups), g.pick(g.groups)}
		in := lifecycle.IngestInput{DeviceID: dev.ID, Flow: engine.FlowUAC}
		switch x := r.IntN(100); {
		case x < 40:
			v := g.vendors[r.IntN(len(g.vendors))]
			path := `C:\Program Files\` + v.dir + `\` + pick(r, exeNames) + ".exe"
			in.Observation = engine.Observation{SubjectUsername: user, TargetExecutablePath: path, TargetExecutableHash: hex64(r),
				TargetExecutableSigner: v.cn, TargetExecutableSignerThumbprint: hex64(r), ParentImage: `C:\Windows\explorer.exe`,
				CommandLine: `"` + path + `" /update`, AdGroups: groups}
		case x < 55:
			in.Observation = lateMatchInput("").Observation
			in.Observation.SiteID = ""
		case x < 80:
			in.Observation = noMatchInput("").Observation
			in.Observation.SiteID = ""
			in.Observation.SubjectUsername = user
			in.Observation.TargetExecutableHash = hex64(r)
		case x < 95:
			tier := r.IntN(5)
			in.Flow = engine.FlowToolAct
			in.Observation = engine.Observation{SubjectUsername: user, ToolName: pick(r, toolNames), RiskTier: &tier}
			in.ExecutionID = uuid4(r)
			in.ToolInput = json.RawMessage(fmt.Sprintf(`{"command":"Get-Service -Name svc%d","timeoutSeconds":30}`, r.IntN(1000)))
		default:
			d := 60
			in.Flow = engine.FlowJITAdmin
			in.Observation = engine.Observation{SubjectUsername: user, AdGroups: groups, RequestedDurationMinutes: &d}
			in.SubjectUserID = uuid4(r)
			in.Reason = fmt.Sprintf("Driver install for ticket INC-%06d", r.IntN(1000000))
		}
		if in.Flow == engine.FlowUAC {
			pid := int64(1000 + r.IntN(60000))
			in.PID = &pid
		}
		cands = append(cands, in)
	}

	// Ingest every candidate once into an in-memory store with the same
	// rules and clock, keep the first ingestPool that record a request.
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := f.setup(st); err != nil {
		return nil, err
	}
	svc := lifecycle.New(lifecycle.Config{Store: st, Clock: &stepClock{base: evalAt}})
	for _, in := range cands {
		res, err := svc.Ingest(in)
		if err != nil {
			return nil, fmt.Errorf("ingest %s %s: %w", in.Flow, in.Observation.TargetExecutablePath, err)
		}
		if res.Request == nil || len(f.pool) == ingestPool {
			continue
		}
		f.pool = append(f.pool, in)
		f.mix[res.Request.Status]++
		f.flows[in.Flow]++
	}
	if len(f.pool) < ingestPool {
		return nil, fmt.Errorf("only %d of %d observations record a request", len(f.pool), len(cands))
	}
	return f, nil
}

// tenant is one organisation with its sites, devices and rules, as the
// benchmark fixtures build it.
type tenant struct {
	org     store.Org
	sites   []store.Site
	devices []store.Device
	rules   []engine.Rule
}

// setup writes the organisation, its sites, devices and rules.
func (f *tenant) setup(st *store.Store) error {
	return st.Update(func(tx *store.Tx) error {
		if err := tx.PutOrg(&f.org); err != nil {
			return err
		}
		for i := range f.sites {
			if err := tx.PutSite(&f.sites[i]); err != nil {
				return err
			}
		}
		for i := range f.devices {
			d := f.devices[i]
			if err := tx.PutDevice(&d); err != nil {
				return err
			}
		}
		for i := range f.rules {
			r := f.rules[i]
			if _, err := tx.PutRule(&r); err != nil {
				return err
			}
		}
		return nil
	})
}

// runWriters runs b.N operations on the given number of goroutines, each
// taking the next operation number until b.N are done, and times the whole.
func runWriters(b *testing.B, writers int, op func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	b.ResetTimer()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) || failed.Load() != nil {
					return
				}
				if err := op(int(i)); err != nil {
					failed.Store(&err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if e := failed.Load(); e != nil {
		b.Fatal(*e)
	}
}

// ---------------------------------------------------------------------------
// Benchmarks: durable writes
// ---------------------------------------------------------------------------

// BenchmarkStoreIngest measures durable writes on a fresh store opened with
// synced writes (store.Options{}), on the given number of concurrent
// writers. op=synced_update is the baseline: one st.Update writing one
// small value (a partner, ~70 bytes of JSON), i.e. the cost of one synced
// commit. op=ingest is lifecycle.Service.Ingest of an agent observation:
// decide through the 50-rule set, then record the request (its row, id,
// index and sweep entries) and its one or two audit records in one
// durable operation. commits/op is the writer's synced transactions per
// operation (store.Stats), so 1/commits/op operations share one fsync.
func BenchmarkStoreIngest(b *testing.B) {
	if testing.Short() {
		b.Skip("durable-state benchmarks are skipped in -short mode")
	}
	for _, op := range []string{"synced_update", "ingest"} {
		b.Run("op="+op, func(b *testing.B) {
			for _, writers := range []int{1, 16} {
				b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
					f := getIngestFixture(b)
					st, err := store.Open(b.TempDir(), store.Options{})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { st.Close() })
					if err := f.setup(st); err != nil {
						b.Fatal(err)
					}
					svc := lifecycle.New(lifecycle.Config{Store: st, Clock: &stepClock{base: evalAt}})
					var fn func(i int) error
					switch op {
					case "synced_update":
						partners := make([]store.Partner, ingestPool)
						for i := range partners {
							partners[i] = store.Partner{ID: uuid4(rand.New(rand.NewPCG(uint64(i), 7))), Name: "bench partner"}
						}
						fn = func(i int) error {
							p := &partners[i%len(partners)]
							return st.Update(func(tx *store.Tx) error { return tx.PutPartner(p) })
						}
					case "ingest":
						fn = func(i int) error {
							res, err := svc.Ingest(f.pool[i%len(f.pool)])
							if err == nil && res.Request == nil {
								err = fmt.Errorf("pool entry %d recorded no request", i%len(f.pool))
							}
							return err
						}
					}
					if err := fn(0); err != nil { // compiles and caches the rule set
						b.Fatal(err)
					}
					before := st.Stats()
					b.ReportAllocs()
					runWriters(b, writers, fn)
					after := st.Stats()
					if got := after.Ops - before.Ops; got != b.N {
						b.Fatalf("writer committed %d operations, want %d", got, b.N)
					}
					if s := b.Elapsed().Seconds(); s > 0 {
						b.ReportMetric(float64(b.N)/s, "ops/s")
					}
					b.ReportMetric(float64(after.Commits-before.Commits)/float64(b.N), "commits/op")
				})
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Benchmarks: list queries over 1,000,000 requests
// ---------------------------------------------------------------------------

type storeListQuery struct {
	name   string
	filter store.Filter
	want   func(*storeCounts) int
}

// storeListQueries are the API's list requests against the largest
// organisation, first page of 50, newest first.
func storeListQueries(q storeQueries) []storeListQuery {
	base := store.Filter{OrgID: q.org, Limit: 50}
	with := func(m func(*store.Filter)) store.Filter { f := base; m(&f); return f }
	same := func(name string, f store.Filter, want func(*storeCounts) int) storeListQuery {
		return storeListQuery{name, f, want}
	}
	return []storeListQuery{
		same("none", base, func(c *storeCounts) int { return c.Org }),
		same("status", with(func(f *store.Filter) { f.Status = store.StatusPending }), func(c *storeCounts) int { return c.Pending }),
		same("flow", with(func(f *store.Filter) { f.Flow = engine.FlowToolAct }), func(c *storeCounts) int { return c.FlowTool }),
		same("device", with(func(f *store.Filter) { f.DeviceID = q.device }), func(c *storeCounts) int { return c.Device }),
		same("site", with(func(f *store.Filter) { f.SiteID = q.site }), func(c *storeCounts) int { return c.Site }),
		same("day", with(func(f *store.Filter) { f.From, f.To = storeDayFrom, storeDayTo }), func(c *storeCounts) int { return c.Day }),
		same("status_site", with(func(f *store.Filter) { f.Status, f.SiteID = store.StatusPending, q.site }),
			func(c *storeCounts) int { return c.PendingSite }),
	}
}

// checkPage verifies a result page against its filter: the right length,
// newest first, every row matching.
func checkPage(f store.Filter, page []*store.Request, total int) error {
	if want := min(f.Limit, total); len(page) != want {
		return fmt.Errorf("page of %d rows, want %d", len(page), want)
	}
	for i, r := range page {
		if r.OrgID != f.OrgID || f.Status != "" && r.Status != f.Status || f.Flow != "" && r.Flow != f.Flow ||
			f.DeviceID != "" && r.DeviceID != f.DeviceID || f.SiteID != "" && r.SiteID != f.SiteID ||
			!f.From.IsZero() && r.RequestedAt.Before(f.From) || !f.To.IsZero() && r.RequestedAt.After(f.To) {
			return fmt.Errorf("row %d (%s) does not match the filter", i, r.ID)
		}
		if i > 0 {
			p := page[i-1]
			if c := r.RequestedAt.Compare(p.RequestedAt); c > 0 || c == 0 && r.ID > p.ID {
				return fmt.Errorf("row %d is newer than row %d", i, i-1)
			}
		}
	}
	return nil
}

// BenchmarkStoreList measures store.ListRequests, first page of 50, on the
// largest organisation (≈ 400,000 of the 1,000,000 rows): no filter,
// status=pending, flow=ai_tool_action, one device, one site, one day, and
// status=pending at one site. "matches" is the total ListRequests returns:
// a stored counter for the first two, a count over the smallest filtered
// index range for the others.
func BenchmarkStoreList(b *testing.B) {
	if testing.Short() {
		b.Skip("durable-state benchmarks are skipped in -short mode")
	}
	f := getStoreFixture(b)
	for _, lq := range storeListQueries(f.q) {
		b.Run("query="+lq.name, func(b *testing.B) {
			page, total, err := f.st.ListRequests(lq.filter)
			if err != nil {
				b.Fatal(err)
			}
			if want := lq.want(f.marker.Counts); total != want {
				b.Fatalf("total %d, the generator counted %d", total, want)
			}
			if err := checkPage(lq.filter, page, total); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if page, total, err = f.st.ListRequests(lq.filter); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total), "matches")
		})
	}
}

// ---------------------------------------------------------------------------
// Benchmarks: full scans and row decoding
// ---------------------------------------------------------------------------

// BenchmarkStoreScan decodes every request of the 1,000,000-row store
// whose requestedAt is inside a window, across every organisation.
// window=90d is the fixture's whole span (all rows): format=binary is
// store.ScanRequests, format=json the same loop over a raw badger database
// holding the same rows as the API's JSON under the same keys, decoded with
// json.Unmarshal. window=1d is ScanRequests of one day (about 11,000 rows)
// across every organisation. Each iteration is a whole scan; rows/s is rows
// decoded per second.
func BenchmarkStoreScan(b *testing.B) {
	if testing.Short() {
		b.Skip("durable-state benchmarks are skipped in -short mode")
	}
	sf := getStoreFixture(b)
	scanBinary := func(from, to time.Time) func(fn func(*store.Request) bool) error {
		return func(fn func(*store.Request) bool) error {
			return sf.st.ScanRequests(store.ScanOptions{From: from, To: to}, fn)
		}
	}
	scans := []struct {
		window, format string
		from, to       time.Time
		want           int
		scan           func(fn func(*store.Request) bool) error
	}{
		{"90d", "binary", storeStart, storeEnd, sf.marker.Counts.Rows, scanBinary(storeStart, storeEnd)},
		{"90d", "json", storeStart, storeEnd, sf.marker.Counts.Rows, func(fn func(*store.Request) bool) error {
			return scanJSON(getJSONFixture(b).db, storeStart, storeEnd, fn)
		}},
		{"90d", "binary-borrowed", storeStart, storeEnd, sf.marker.Counts.Rows, func(fn func(*store.Request) bool) error {
			return sf.st.ScanRows(store.ScanOptions{From: storeStart, To: storeEnd}, fn)
		}},
		{"1d", "binary", storeDayFrom, storeDayTo, sf.marker.Counts.DayAll, scanBinary(storeDayFrom, storeDayTo)},
	}
	for _, sc := range scans {
		b.Run("window="+sc.window+"/format="+sc.format, func(b *testing.B) {
			if sc.format == "json" {
				getJSONFixture(b) // built or opened outside the timer
			}
			var n int
			var outside *store.Request
			b.ReportAllocs()
			for b.Loop() {
				n = 0
				err := sc.scan(func(r *store.Request) bool {
					n++
					if r.RequestedAt.Before(sc.from) || r.RequestedAt.After(sc.to) {
						outside = r
					}
					return true
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			if n != sc.want || outside != nil {
				b.Fatalf("scan decoded %d rows, want %d (row outside the window: %v)", n, sc.want, outside)
			}
			if s := b.Elapsed().Seconds(); s > 0 {
				b.ReportMetric(float64(n)*float64(b.N)/s, "rows/s")
			}
		})
	}
	// The same whole-window scan on both cores: ScanRowsParallel cuts the
	// window into two halves scanned concurrently from one snapshot.
	b.Run("window=90d/format=binary-parallel", func(b *testing.B) {
		const workers = 2
		var counts [workers]struct {
			n       int
			outside bool
			_       [48]byte // keep the two counters off one cache line
		}
		b.ReportAllocs()
		for b.Loop() {
			counts = [workers]struct {
				n       int
				outside bool
				_       [48]byte
			}{}
			err := sf.st.ScanRowsParallel(store.ScanOptions{From: storeStart, To: storeEnd}, workers, func(w int, r *store.Request) bool {
				counts[w].n++
				if r.RequestedAt.Before(storeStart) || r.RequestedAt.After(storeEnd) {
					counts[w].outside = true
				}
				return true
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		n := counts[0].n + counts[1].n
		if n != sf.marker.Counts.Rows || counts[0].outside || counts[1].outside {
			b.Fatalf("parallel scan decoded %d rows, want %d", n, sf.marker.Counts.Rows)
		}
		if s := b.Elapsed().Seconds(); s > 0 {
			b.ReportMetric(float64(n)*float64(b.N)/s, "rows/s")
		}
	})
}

// BenchmarkStoreRowDecode decodes one request row per iteration, cycling
// through the fixture's first 4,096 rows: format=binary is
// store.UnmarshalRow of the stored row, format=json is json.Unmarshal of
// the API JSON into a store.Request. B/row is the rows' mean encoded size.
func BenchmarkStoreRowDecode(b *testing.B) {
	if testing.Short() {
		b.Skip("durable-state benchmarks are skipped in -short mode")
	}
	var bins, jsons [][]byte
	genRequests(newStoreInventory(), storeRows, func(_ int, r *store.Request) bool {
		row, err := store.MarshalRow(r)
		if err != nil {
			b.Fatal(err)
		}
		js, err := json.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		bins, jsons = append(bins, row), append(jsons, js)
		return len(bins) < 4096
	})
	formats := []struct {
		name   string
		rows   [][]byte
		decode func([]byte, *store.Request) error
	}{
		{"binary", bins, store.UnmarshalRow},
		{"json", jsons, func(b []byte, r *store.Request) error { return json.Unmarshal(b, r) }},
	}
	for _, ft := range formats {
		b.Run("format="+ft.name, func(b *testing.B) {
			size := 0
			for _, row := range ft.rows {
				size += len(row)
			}
			var r store.Request
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if err := ft.decode(ft.rows[i], &r); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(ft.rows) {
					i = 0
				}
			}
			if r.ID == "" || !slices.Contains(store.Statuses, r.Status) {
				b.Fatalf("decoded %+v", r)
			}
			b.ReportMetric(float64(size)/float64(len(ft.rows)), "B/row")
		})
	}
}

// ---------------------------------------------------------------------------
// Fixture test (runs in a plain `go test`; in memory)
// ---------------------------------------------------------------------------

func TestStoreIngestFixture(t *testing.T) {
	f := getIngestFixture(t)
	if len(f.rules) != ingestRules || len(f.pool) != ingestPool {
		t.Fatalf("%d rules, %d pool entries", len(f.rules), len(f.pool))
	}
	for _, s := range []store.Status{store.StatusAutoApproved, store.StatusDenied, store.StatusPending} {
		if f.mix[s] == 0 {
			t.Errorf("no pool entry ends %s: %v", s, f.mix)
		}
	}
	for _, fl := range []engine.FlowType{engine.FlowUAC, engine.FlowToolAct, engine.FlowJITAdmin} {
		if f.flows[fl] == 0 {
			t.Errorf("no pool entry of flow %s: %v", fl, f.flows)
		}
	}
	t.Logf("%d rules; pool of %d: statuses %v, flows %v", len(f.rules), len(f.pool), f.mix, f.flows)
}
