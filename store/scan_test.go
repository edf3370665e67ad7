package store

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// scanFixture stores random requests of three organisations (some with
// tied times) and returns them.
func scanFixture(t *testing.T) (*Store, []*Request) {
	t.Helper()
	st := openTemp(t)
	rng := rand.New(rand.NewPCG(7, 11))
	var all []*Request
	for c := 0; c < 1500; c += 300 {
		var chunk []*Request
		for range 300 {
			r := randomRequest(rng)
			r.OrgID = []string{"01900000-0000-7000-8000-0000000000a1", "01900000-0000-7000-8000-0000000000b1",
				"01900000-0000-7000-8000-0000000000c1"}[rng.IntN(3)]
			r.RequestedAt = t0.Add(time.Duration(rng.IntN(10*24*60)) * time.Minute)
			chunk = append(chunk, r)
		}
		putAll(t, st, chunk...)
		all = append(all, chunk...)
	}
	return st, all
}

func idsIn(rs []*Request) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// The borrowing scan visits exactly what the allocating one does, in the
// same order, and a Clone of what it lends is the stored request.
func TestScanRowsMatchesScanRequests(t *testing.T) {
	st, _ := scanFixture(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 60 {
		o := ScanOptions{Newest: i%2 == 1}
		if i%3 != 0 {
			o.OrgID = "01900000-0000-7000-8000-0000000000b1"
		}
		if i%4 != 0 {
			o.From = t0.Add(time.Duration(rng.IntN(12*24)) * time.Hour)
			o.To = o.From.Add(time.Duration(rng.IntN(5*24)) * time.Hour)
		}
		var want, got []*Request
		if err := st.ScanRequests(o, func(r *Request) bool { want = append(want, r); return true }); err != nil {
			t.Fatal(err)
		}
		if err := st.ScanRows(o, func(r *Request) bool { got = append(got, r.Clone()); return true }); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%+v: ScanRows differs from ScanRequests:\n%s", o, diff)
		}
	}
}

func TestScanRowsParallel(t *testing.T) {
	st, all := scanFixture(t)
	for _, workers := range []int{1, 2, 3, 7} {
		for _, w := range [][2]time.Time{{t0, t0.Add(10 * 24 * time.Hour)}, {t0.Add(36 * time.Hour), t0.Add(37 * time.Hour)},
			{t0.Add(-time.Hour), t0}, {t0.Add(time.Hour), t0}} {
			o := ScanOptions{From: w[0], To: w[1]}
			var want []string
			for _, r := range all {
				if !r.RequestedAt.Before(o.From) && !r.RequestedAt.After(o.To) {
					want = append(want, r.ID)
				}
			}
			var mu sync.Mutex
			var got []string
			err := st.ScanRowsParallel(o, workers, func(worker int, r *Request) bool {
				if worker < 0 || worker >= workers {
					t.Errorf("worker %d", worker)
				}
				mu.Lock()
				got = append(got, strings.Clone(r.ID)) // lent: valid only during the call
				mu.Unlock()
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(want, got) {
				t.Fatalf("workers %d, window %v: %d rows, want %d", workers, w, len(got), len(want))
			}
		}
	}
	// Stopping one worker stops them all.
	var mu sync.Mutex
	n := 0
	if err := st.ScanRowsParallel(ScanOptions{From: t0, To: t0.Add(10 * 24 * time.Hour)}, 2, func(int, *Request) bool {
		mu.Lock()
		defer mu.Unlock()
		n++
		return false
	}); err != nil || n > 2 {
		t.Fatalf("after a stop: %d calls, %v", n, err)
	}
	if err := st.ScanRowsParallel(ScanOptions{From: t0}, 2, func(int, *Request) bool { return true }); err == nil {
		t.Fatal("an unbounded parallel scan was accepted")
	}
}

// A window shorter than the workers are many is not cut into empty or
// repeated slices: every row is visited once, also at the smallest instant.
func TestScanRowsParallelTinyWindow(t *testing.T) {
	st := openTemp(t)
	org, dev := NewID(t0), NewID(t0)
	r := newReq(org, dev, "", minTime, StatusPending)
	putAll(t, st, r)
	var mu sync.Mutex
	n := 0
	for _, w := range [][2]time.Time{{minTime, minTime}, {minTime, minTime.Add(1)}, {time.Time{}.Add(1), minTime.Add(2)}} {
		n = 0
		if err := st.ScanRowsParallel(ScanOptions{From: w[0], To: w[1]}, 4, func(int, *Request) bool {
			mu.Lock()
			n++
			mu.Unlock()
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("window %v: row visited %d times", w, n)
		}
	}
}

func TestSavepointRollback(t *testing.T) {
	st := openTemp(t)
	org := NewID(t0)
	mustUpdate(t, st, func(tx *Tx) error { return tx.PutOrg(&Org{ID: org, Name: "before"}) })
	mustUpdate(t, st, func(tx *Tx) error {
		tx.Audit(AuditRecord{OrgID: org, Action: "kept", ActorKind: ActorSystem, At: t0})
		sp := tx.Savepoint()
		if err := tx.PutOrg(&Org{ID: org, Name: "dropped"}); err != nil {
			return err
		}
		tx.Audit(AuditRecord{OrgID: org, Action: "dropped", ActorKind: ActorSystem, At: t0})
		if o, _ := tx.Org(org); o.Name != "dropped" {
			t.Errorf("inside: %q", o.Name)
		}
		tx.Rollback(sp)
		if o, _ := tx.Org(org); o.Name != "before" {
			t.Errorf("after rollback: %q", o.Name)
		}
		return nil
	})
	var acts []string
	st.AuditLog(org, 0, func(r *AuditRecord) bool { acts = append(acts, r.Action); return true })
	if len(acts) != 1 || acts[0] != "kept" {
		t.Fatalf("audit %v", acts)
	}
	var o *Org
	st.View(func(s *Snapshot) error { var err error; o, err = s.Org(org); return err })
	if o.Name != "before" {
		t.Fatalf("stored %q", o.Name)
	}
}

// A counter that disagrees with the index it counts is reported, not
// believed, whenever a list walks the whole range.
func TestCounterDisagreementIsReported(t *testing.T) {
	st := openTemp(t)
	org, dev := NewID(t0), NewID(t0)
	putAll(t, st, newReq(org, dev, "", t0, StatusPending), newReq(org, dev, "", t0.Add(time.Second), StatusPending))
	o, _ := ParseID(org)
	rawPut(t, st, key(pCount, o[:], []byte{statusCode(StatusPending)}), u64(5))
	if _, _, err := st.ListRequests(Filter{OrgID: org, Status: StatusPending, Limit: 50}); err == nil {
		t.Fatal("a wrong counter was believed")
	} else if ce := asCorrupt(t, err); !strings.HasPrefix(ce.Key, "request-count/") {
		t.Fatalf("key %s", ce.Key)
	}
}
