package store

import (
	"errors"
	"sync"
	"testing"
)

// TestWatchSeesCommittedRequestsOnly: a watcher is told of the requests of
// operations that committed, as they were written, before Update returns;
// not of failed operations nor of writes rolled back to a savepoint.
func TestWatchSeesCommittedRequestsOnly(t *testing.T) {
	w := newWorld(t, 41, 0)
	var mu sync.Mutex
	var seen []*Request
	if err := w.st.Watch(func(rs []*Request) {
		mu.Lock()
		seen = append(seen, rs...)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	told := func() []*Request {
		mu.Lock()
		defer mu.Unlock()
		out := seen
		seen = nil
		return out
	}
	a, b, c := w.newRequest(w.orgs[0]), w.newRequest(w.orgs[0]), w.newRequest(w.orgs[1])
	mustUpdate(t, w.st, func(tx *Tx) error {
		if err := tx.PutRequest(a); err != nil {
			return err
		}
		sp := tx.Savepoint()
		if err := tx.PutRequest(c); err != nil {
			return err
		}
		tx.Rollback(sp)
		return tx.PutRequest(b)
	})
	got := told()
	if len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID {
		t.Fatalf("told of %d requests, want a and b (c was rolled back)", len(got))
	}
	if !sameRequests(t, "told", []*Request{utc(a.Clone()), utc(b.Clone())}, []*Request{utc(got[0]), utc(got[1])}) {
		t.Fatal("the requests told are not those written")
	}
	a.SubjectUsername = "changed after the write" // the watcher's copy is its own
	if got[0].SubjectUsername == a.SubjectUsername {
		t.Fatal("the watcher was handed the caller's request, not a copy")
	}

	boom := errors.New("boom")
	if err := w.st.Update(func(tx *Tx) error {
		if err := tx.PutRequest(c); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if got := told(); len(got) != 0 {
		t.Fatalf("told of %d requests of a failed operation", len(got))
	}

	// Concurrent writers share commits: each committed request is told once.
	var wg sync.WaitGroup
	ids := make(chan string, 64)
	for range 8 {
		r := w.newRequest(w.orgs[1])
		wg.Go(func() {
			mustUpdate(t, w.st, func(tx *Tx) error { return tx.PutRequest(r) })
			ids <- r.ID
		})
	}
	wg.Wait()
	close(ids)
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	got = told()
	for _, r := range got {
		if !want[r.ID] {
			t.Fatalf("told of %s, never written or told twice", r.ID)
		}
		delete(want, r.ID)
	}
	if len(want) != 0 {
		t.Fatalf("%d committed requests never told", len(want))
	}
}

// A watcher that panics neither stops the writer nor the other watchers.
func TestWatcherPanicIsContained(t *testing.T) {
	w := newWorld(t, 43, 0)
	if err := w.st.Watch(func([]*Request) { panic("watcher bug") }); err != nil {
		t.Fatal(err)
	}
	var told []*Request
	var mu sync.Mutex
	if err := w.st.Watch(func(rs []*Request) { mu.Lock(); told = append(told, rs...); mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r := w.newRequest(w.orgs[0])
		mustUpdate(t, w.st, func(tx *Tx) error { return tx.PutRequest(r) })
	}
	mu.Lock()
	defer mu.Unlock()
	if len(told) != 3 {
		t.Fatalf("the second watcher was told of %d requests, want 3", len(told))
	}
}
