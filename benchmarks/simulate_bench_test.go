package benchmarks

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/simulate"
	"github.com/elevate-pam/elevate/store"
)

// ---------------------------------------------------------------------------
// Preview and replay over 1,000,000 stored requests
// ---------------------------------------------------------------------------

// The history is the store fixture (1,000,000 requests of five
// organisations over 90 days). Three ways to read it are compared in the
// same run:
//
//   - naive: scan the store for every run and decide on one core (what the
//     preview did before the projection);
//   - store: the same scan, decisions spread over every core;
//   - projection: the in-memory projection the server keeps (loaded once,
//     outside the timer), decisions on every core.
//
// The preview reads all five organisations in one scan, so that one draft
// meets a million requests (a preview reads one organisation; the per-row
// work is the same).

var projections memo[int, *projectionFixture]

type projectionFixture struct {
	p          *simulate.Projection
	heapBytes  uint64 // live heap the projection added, after a full GC
	loadTime   time.Duration
	footprint  int64
	rows, orgs int
}

// getProjection loads the projection of the store fixture once per process
// and measures what it holds.
func getProjection(tb testing.TB) *projectionFixture {
	tb.Helper()
	f := getStoreFixture(tb)
	pf := projections.get(storeRows, func() *projectionFixture {
		before := liveHeap()
		start := time.Now()
		p, err := simulate.LoadProjection(f.st)
		if err != nil {
			tb.Fatalf("projection: %v", err)
		}
		pf := &projectionFixture{p: p, loadTime: time.Since(start), footprint: p.Footprint(), rows: p.Len()}
		pf.heapBytes = liveHeap() - before
		tb.Logf("projection of %d requests: loaded in %.2f s, %.1f MiB of live heap (estimate %.1f MiB)",
			pf.rows, pf.loadTime.Seconds(), float64(pf.heapBytes)/(1<<20), float64(pf.footprint)/(1<<20))
		return pf
	})
	if pf == nil {
		tb.Fatal("projection unavailable")
	}
	return pf
}

func liveHeap() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

type historyVariant struct {
	name    string
	reader  simulate.Reader
	workers int
}

func historyVariants(tb testing.TB) []historyVariant {
	f := getStoreFixture(tb)
	pf := getProjection(tb)
	st := simulate.StoreReader{Store: f.st}
	return []historyVariant{
		{"naive", st, 1},
		{"store", st, 0},
		{"projection", pf.p, 0},
	}
}

// previewDraft matches programs run from a Downloads folder (about one
// request in five of the fixture: 219,607).
func previewDraft() engine.Rule {
	return engine.Rule{Name: "downloads", Verdict: engine.VerdictAutoDeny, MatchPathGlob: ptr(`C:\Users\*\Downloads\**`)}
}

// BenchmarkPreview previews one draft over the whole 90-day window.
func BenchmarkPreview(b *testing.B) {
	for _, v := range historyVariants(b) {
		b.Run("source="+v.name, func(b *testing.B) {
			in := simulate.PreviewInput{Draft: previewDraft(), WindowDays: 90, Now: storeEnd, MaxScan: 2 * storeRows, Workers: v.workers}
			var res *simulate.PreviewResult
			for b.Loop() {
				var err error
				if res, err = simulate.PreviewFrom(v.reader, in); err != nil {
					b.Fatal(err)
				}
			}
			if res.TotalScanned != storeRows {
				b.Fatalf("scanned %d requests, want %d", res.TotalScanned, storeRows)
			}
			b.ReportMetric(float64(res.TotalScanned)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(res.TotalMatched), "matched")
		})
	}
}

// BenchmarkPreviewParallelScan is the other way to avoid one core's scan:
// no projection, the store's window cut into one key range per core
// (store.ScanRowsParallel), each decided where it is read. It answers the
// counts only (no scan cap, no sample order), so it is a bound on what the
// option could do, not a preview.
func BenchmarkPreviewParallelScan(b *testing.B) {
	f := getStoreFixture(b)
	draft := previewDraft()
	draft.ID, draft.Enabled = "00000000-0000-4000-8000-000000000001", true
	rs, err := engine.Compile([]engine.Rule{draft}, nil, engine.CompileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	workers := runtime.GOMAXPROCS(0)
	var scanned, matched int
	for b.Loop() {
		counts := make([][2]int, workers)
		err := f.st.ScanRowsParallel(store.ScanOptions{From: storeEnd.Add(-storeSpan), To: storeEnd}, workers, func(w int, r *store.Request) bool {
			in := engine.Input{Flow: engine.FlowUAC, At: r.RequestedAt, Observation: engine.Observation{SubjectUsername: r.SubjectUsername,
				TargetExecutablePath: r.TargetExecutablePath, TargetExecutableHash: r.TargetExecutableHash,
				TargetExecutableSigner: r.TargetExecutableSigner, ParentImage: r.ParentImage, CommandLine: r.CommandLine,
				ToolName: r.ToolName, RiskTier: r.RiskTier}}
			counts[w][0]++
			if rs.Decide(&in).RuleID == draft.ID {
				counts[w][1]++
			}
			return true
		})
		if err != nil {
			b.Fatal(err)
		}
		scanned, matched = 0, 0
		for _, c := range counts {
			scanned, matched = scanned+c[0], matched+c[1]
		}
	}
	if scanned != storeRows {
		b.Fatalf("scanned %d requests, want %d", scanned, storeRows)
	}
	b.ReportMetric(float64(scanned)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(matched), "matched")
}

// BenchmarkReplay replays the history through a 1,000-rule set (the
// decision benchmark's generated rules) for every organisation.
func BenchmarkReplay(b *testing.B) {
	rs, err := engine.Compile(generateRules(1000), nil, engine.CompileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	chain := simulate.Chain{RuleSet: func(string) (*engine.RuleSet, error) { return rs, nil }}
	from := storeEnd.Add(-storeSpan)
	for _, v := range historyVariants(b) {
		b.Run("source="+v.name, func(b *testing.B) {
			var rep *simulate.Report
			for b.Loop() {
				var err error
				src := v.reader.Source(simulate.Scope{From: from, To: storeEnd}, nil)
				if rep, err = simulate.Replay(src, chain, simulate.Options{Workers: v.workers}); err != nil {
					b.Fatal(err)
				}
			}
			if rep.Total != storeRows {
				b.Fatalf("replayed %d requests, want %d", rep.Total, storeRows)
			}
			b.ReportMetric(float64(rep.Total)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkProjectionLoad builds the projection from the store, as a
// server does when it starts, and reports the memory it holds.
func BenchmarkProjectionLoad(b *testing.B) {
	f := getStoreFixture(b)
	var heap uint64
	var rows int
	for b.Loop() {
		b.StopTimer()
		before := liveHeap()
		b.StartTimer()
		p, err := simulate.LoadProjection(f.st)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		heap, rows = liveHeap()-before, p.Len()
		runtime.KeepAlive(p)
		b.StartTimer()
	}
	b.ReportMetric(float64(heap)/(1<<20), "MiB")
	b.ReportMetric(float64(heap)/float64(rows), "B/row")
}

// TestPreviewAndReplaySourcesAgree checks, without timing, that the three
// readers give the same preview and replay on a small store.
func TestPreviewAndReplaySourcesAgree(t *testing.T) {
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := simulate.LoadProjection(st)
	if err != nil {
		t.Fatal(err)
	}
	inv := newStoreInventory()
	if err := st.Update(inv.put); err != nil {
		t.Fatal(err)
	}
	if _, err := buildStoreRows(st, inv, 5000); err != nil {
		t.Fatal(err)
	}
	rs, err := engine.Compile(generateRules(100), nil, engine.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain := simulate.Chain{RuleSet: func(string) (*engine.RuleSet, error) { return rs, nil }}
	in := simulate.PreviewInput{Draft: previewDraft(), WindowDays: 90, Now: storeEnd}
	var first *simulate.PreviewResult
	var firstRep *simulate.Report
	for _, v := range []historyVariant{{"naive", simulate.StoreReader{Store: st}, 1}, {"store", simulate.StoreReader{Store: st}, 0}, {"projection", p, 0}} {
		res, err := simulate.PreviewFrom(v.reader, in)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := simulate.Replay(v.reader.Source(simulate.Scope{}, nil), chain, simulate.Options{Workers: v.workers})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first, firstRep = res, rep
			if res.TotalScanned != 5000 || res.TotalMatched == 0 || res.TotalMatched == 5000 || rep.Total != 5000 {
				t.Fatalf("preview scanned %d matched %d; replay %d", res.TotalScanned, res.TotalMatched, rep.Total)
			}
			continue
		}
		if res.TotalMatched != first.TotalMatched || len(res.Sample) != len(first.Sample) || res.Sample[0].ID != first.Sample[0].ID {
			t.Fatalf("%s: preview differs from the naive one", v.name)
		}
		for o, n := range firstRep.Outcomes {
			if rep.Outcomes[o] != n {
				t.Fatalf("%s: replay outcome %s: %d, naive %d", v.name, o, rep.Outcomes[o], n)
			}
		}
	}
}
