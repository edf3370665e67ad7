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
