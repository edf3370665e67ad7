package simulate

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// randomRows writes n requests of both organisations with random fields:
// times out of order (several on the same instant), every flow, sites and
// none, AD groups present, empty and absent, risk tiers.
func randomRows(t *testing.T, w *world, rng *rand.Rand, n int) []*store.Request {
	t.Helper()
	users := []string{`acme\sarah`, `acme\bob`, `ACME\Sarah`, "root"}
	paths := []string{`C:\x\setup.exe`, `C:\Program Files\App\app.exe`, ""}
	base := now.Add(-40 * 24 * time.Hour)
	var out []*store.Request
	err := w.st.Update(func(tx *store.Tx) error {
		for range n {
			at := base.Add(time.Duration(rng.IntN(40*24)) * time.Hour)
			r := &store.Request{ID: store.NewID(now), OrgID: w.org, DeviceID: w.devA, SiteID: w.siteA,
				Flow:   []engine.FlowType{engine.FlowUAC, engine.FlowToolAct, engine.FlowJITAdmin}[rng.IntN(3)],
				Status: store.StatusPending, SubjectUsername: users[rng.IntN(len(users))], RequestedAt: at, CreatedAt: at,
				Decision: store.DecisionRecord{Outcome: engine.OutcomePending}}
			switch rng.IntN(4) {
			case 0:
				r.DeviceID, r.SiteID = w.devB, w.siteB
			case 1:
				r.DeviceID, r.SiteID = w.devNoSite, ""
			case 2:
				r.OrgID, r.DeviceID, r.SiteID = w.other, w.devOther, ""
			}
			switch r.Flow {
			case engine.FlowUAC:
				r.TargetExecutablePath = paths[rng.IntN(len(paths))]
				r.TargetExecutableSigner = []string{"", "Mozilla Corporation"}[rng.IntN(2)]
				r.CommandLine = fmt.Sprintf("setup /q /n%d", rng.IntN(5))
			case engine.FlowToolAct:
				r.ToolName = []string{"bash", "write_file"}[rng.IntN(2)]
				r.RiskTier = []*int{nil, ip(1), ip(3)}[rng.IntN(3)]
			}
			r.AdGroups = [][]string{nil, {}, {"Admins", "Users"}}[rng.IntN(3)]
			if rng.IntN(3) == 0 {
				r.Status, r.Decision = store.StatusDenied, store.DecisionRecord{Outcome: engine.OutcomeDenied, RuleID: "r1", RuleName: "deny"}
			}
			if rng.IntN(10) == 0 && len(out) > 0 {
				r.RequestedAt, r.CreatedAt = out[len(out)-1].RequestedAt, out[len(out)-1].CreatedAt // a tie on time
			}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// settle moves some requests to a later state, as respond and the sweep do.
func settle(t *testing.T, w *world, rng *rand.Rand, rs []*store.Request) {
	t.Helper()
	err := w.st.Update(func(tx *store.Tx) error {
		for _, r := range rs {
			if r.Status != store.StatusPending || rng.IntN(2) == 0 {
				continue
			}
			r.Status = store.StatusDenied
			r.DeniedAt = now
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// read collects what a reader yields for a scope, with what it says it read.
func read(t *testing.T, h Reader, sc Scope) ([]Case, ScanStat) {
	t.Helper()
	var cs []Case
	var stat ScanStat
	err := h.Source(sc, &stat)(func(c *Case) bool {
		cp := *c
		cp.key, cp.seq = store.ID{}, 0
		if cp.Observation.ObservedAt != nil {
			at := *cp.Observation.ObservedAt
			cp.Observation.ObservedAt = &at
		}
		cs = append(cs, cp)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return cs, stat
}

func TestProjectionReadsWhatTheStoreHolds(t *testing.T) {
	w := newWorld(t)
	rng := rand.New(rand.NewPCG(1, 2))
	rs := randomRows(t, w, rng, 700)
	settle(t, w, rng, rs)
	rs = append(rs, randomRows(t, w, rng, 300)...)
	loaded, err := LoadProjection(w.st)
	if err != nil {
		t.Fatal(err)
	}
	settle(t, w, rng, rs) // seen by both projections through the watch
	if w.proj.Len() != 1000 || loaded.Len() != 1000 {
		t.Fatalf("Len = %d and %d, want 1000", w.proj.Len(), loaded.Len())
	}
	scopes := []Scope{
		{},
		{OrgID: w.org},
		{OrgID: w.other},
		{OrgID: w.org, From: now.Add(-20 * 24 * time.Hour), To: now.Add(-5 * 24 * time.Hour)},
		{OrgID: w.org, From: rs[3].RequestedAt, To: rs[3].RequestedAt},
		{OrgID: w.org, Flow: engine.FlowToolAct},
		{OrgID: w.org, SiteID: w.siteB},
		{OrgID: w.org, Sites: []string{w.siteA}},
		{OrgID: w.org, Sites: []string{}},
		{OrgID: w.org, MaxScan: 100},
		{OrgID: w.org, MaxScan: 300, Flow: engine.FlowUAC},
		{MaxScan: 900},
		{OrgID: store.NewID(now)},
	}
	for i, sc := range scopes {
		want, wantStat := read(t, StoreReader{w.st}, sc)
		for name, h := range map[string]Reader{"watched": w.proj, "loaded": loaded} {
			got, gotStat := read(t, h, sc)
			if gotStat != wantStat {
				t.Errorf("scope %d, %s: stat = %+v, want %+v", i, name, gotStat, wantStat)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("scope %d, %s: %d cases differ from the store's %d", i, name, len(got), len(want))
				for j := range min(len(got), len(want)) {
					if !reflect.DeepEqual(got[j], want[j]) {
						t.Fatalf("first difference at %d:\n got %+v\nwant %+v", j, got[j], want[j])
					}
				}
			}
		}
	}
}

// TestProjectionLoadsWhileWritesGoOn: requests committed while the
// projection is being built are neither lost nor left in an old state.
func TestProjectionLoadsWhileWritesGoOn(t *testing.T) {
	w := newWorld(t)
	rng := rand.New(rand.NewPCG(3, 4))
	rs := randomRows(t, w, rng, 2000)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		wrng := rand.New(rand.NewPCG(5, 6))
		for {
			select {
			case <-stop:
				return
			default:
			}
			more := randomRows(t, w, wrng, 5)
			settle(t, w, wrng, append(more, rs[wrng.IntN(len(rs))]))
		}
	})
	var loaded []*Projection
	for range 5 {
		p, err := LoadProjection(w.st)
		if err != nil {
			t.Fatal(err)
		}
		loaded = append(loaded, p)
	}
	close(stop)
	wg.Wait()
	want, _ := read(t, StoreReader{w.st}, Scope{})
	for i, p := range loaded {
		if got, _ := read(t, p, Scope{}); !reflect.DeepEqual(got, want) {
			t.Errorf("projection %d: %d cases, not the store's %d (or not in their state)", i, len(got), len(want))
			for j := range min(len(got), len(want)) {
				if !reflect.DeepEqual(got[j], want[j]) {
					t.Fatalf("first difference at %d:\n got %+v\nwant %+v", j, got[j], want[j])
				}
			}
		}
	}
}

func TestProjectionInternsRepeatedValues(t *testing.T) {
	w := newWorld(t)
	w.put(t, make([]row, 500)...)
	if n := len(w.proj.obs); n != 1 {
		t.Fatalf("500 identical observations stored as %d", n)
	}
	if n := len(w.proj.strs); n > 6 { // "", user, path, device, site, org-less ids
		t.Fatalf("%d interned strings for one user, path, device and site", n)
	}
	if f := w.proj.Footprint(); f <= 0 || f > 500*200 {
		t.Fatalf("footprint %d bytes for 500 rows", f)
	}
}

// A request the projection cannot hold breaks it: it stops taking writes,
// and the store history reads the store itself from then on.
func TestBrokenProjectionFallsBackToTheStore(t *testing.T) {
	w := newWorld(t)
	w.put(t, row{ago: time.Hour})
	h := WatchStore(w.st)
	p, err := h.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if h.reader() != Reader(p) {
		t.Fatal("the loaded projection is not read")
	}
	p.Apply([]*store.Request{{ID: "not-an-id", OrgID: w.org, Status: store.StatusPending, Flow: engine.FlowUAC}})
	if !p.Broken() {
		t.Fatal("an unrecordable request did not break the projection")
	}
	if _, ok := h.reader().(StoreReader); !ok {
		t.Fatalf("a broken projection is still read: %T", h.reader())
	}
	w.put(t, row{ago: time.Minute})
	res := preview(t, w, PreviewInput{Draft: userDraft(`acme\sarah`)})
	if got, err := PreviewFrom(h, PreviewInput{OrgID: w.org, Now: now, Draft: userDraft(`acme\sarah`)}); err != nil || got.TotalMatched != res.TotalMatched || res.TotalMatched != 2 {
		t.Fatalf("through the broken history: %+v %v, the store's %+v", got, err, res)
	}
}
