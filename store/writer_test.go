package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func hasOrg(t *testing.T, st *Store, id string) bool {
	t.Helper()
	err := st.View(func(s *Snapshot) error { _, err := s.Org(id); return err })
	switch {
	case err == nil:
		return true
	case errors.Is(err, ErrNotFound):
		return false
	}
	t.Fatal(err)
	return false
}

// holdWriter runs an operation that blocks the writer until release is
// called, so that the operations queued meanwhile form one batch.
func holdWriter(t *testing.T, st *Store) (release func(), done <-chan error) {
	t.Helper()
	entered := make(chan struct{})
	gate := make(chan struct{})
	ch := make(chan error, 1)
	go func() {
		ch <- st.Update(func(*Tx) error {
			select {
			case <-entered:
			default:
				close(entered)
			}
			<-gate
			return nil
		})
	}()
	<-entered
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return release, ch
}

// enqueue starts Update(fn) in a goroutine and waits until the operation
// is queued (the writer is held, so it stays queued).
func enqueue(t *testing.T, st *Store, fn func(*Tx) error) <-chan error {
	t.Helper()
	before := len(st.ops)
	ch := make(chan error, 1)
	go func() { ch <- st.Update(fn) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(st.ops) == before {
		if time.Now().After(deadline) {
			t.Fatal("operation was not queued")
		}
		time.Sleep(time.Millisecond)
	}
	return ch
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	st := openTemp(t)
	org, bad, good := NewID(t0), NewID(t0), NewID(t0)
	mustUpdate(t, st, func(tx *Tx) error {
		tx.Audit(AuditRecord{OrgID: org, Action: "first", ActorKind: ActorSystem})
		return nil
	})
	release, held := holdWriter(t, st)
	boom := errors.New("boom")
	// One batch: a failing op between two good ones.
	c1 := enqueue(t, st, func(tx *Tx) error {
		tx.Audit(AuditRecord{OrgID: org, Action: "before", ActorKind: ActorSystem})
		return tx.PutOrg(&Org{ID: NewID(t0), Name: "before"})
	})
	c2 := enqueue(t, st, func(tx *Tx) error {
		if err := tx.PutOrg(&Org{ID: bad, Name: "bad"}); err != nil {
			return err
		}
		tx.Audit(AuditRecord{OrgID: org, Action: "failed", ActorKind: ActorSystem})
		tx.Audit(AuditRecord{OrgID: NewID(t0), Action: "failed elsewhere", ActorKind: ActorSystem})
		// Reads inside the failing op see its own writes.
		if o, err := tx.Org(bad); err != nil || o.Name != "bad" {
			t.Errorf("tx.Org(own write) = %v, %v", o, err)
		}
		return boom
	})
	c3 := enqueue(t, st, func(tx *Tx) error {
		// Reads see earlier ops of the batch but not the failed one.
		if _, err := tx.Org(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("a later op sees the failed op's write: %v", err)
		}
		tx.Audit(AuditRecord{OrgID: org, Action: "after", ActorKind: ActorSystem})
		return tx.PutOrg(&Org{ID: good, Name: "good"})
	})
	before := st.Stats()
	release()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-c1; err != nil {
		t.Fatal(err)
	}
	if err := <-c2; !errors.Is(err, boom) {
		t.Fatalf("failing op returned %v", err)
	}
	if err := <-c3; err != nil {
		t.Fatal(err)
	}
	if hasOrg(t, st, bad) || !hasOrg(t, st, good) {
		t.Fatalf("bad org present %v, good org present %v", hasOrg(t, st, bad), hasOrg(t, st, good))
	}
	recs := checkChain(t, st, org, 3)
	if recs[1].Action != "before" || recs[2].Action != "after" {
		t.Fatalf("audit actions %s, %s", recs[1].Action, recs[2].Action)
	}
	rep, err := st.VerifyAudit()
	if err != nil || len(rep.Breaks) != 0 || rep.Orgs != 1 {
		t.Fatalf("VerifyAudit = %+v, %v", rep, err)
	}
	after := st.Stats()
	if after.Ops-before.Ops != 3 { // held op, c1, c3
		t.Errorf("Ops grew by %d, want 3", after.Ops-before.Ops)
	}
	if after.Commits-before.Commits != 2 { // the held op, then c1..c3 as one batch
		t.Errorf("Commits grew by %d, want 2 (queued ops share one commit)", after.Commits-before.Commits)
	}
}

func TestPanickingOp(t *testing.T) {
	st := openTemp(t)
	org := NewID(t0)
	err := st.Update(func(tx *Tx) error {
		tx.PutOrg(&Org{ID: org, Name: "o"})
		tx.Audit(AuditRecord{OrgID: org, Action: "x"})
		var m map[string]int
		m["boom"]++ // panics
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("Update = %v, want a panic error", err)
	}
	if hasOrg(t, st, org) {
		t.Fatal("a panicking op's write was committed")
	}
	// The writer keeps working, also for ops batched with a panicking one.
	release, held := holdWriter(t, st)
	c1 := enqueue(t, st, func(tx *Tx) error { panic("again") })
	c2 := enqueue(t, st, func(tx *Tx) error {
		tx.Audit(AuditRecord{OrgID: org, Action: "y"})
		return tx.PutOrg(&Org{ID: org, Name: "o"})
	})
	release()
	<-held
	if err := <-c1; err == nil || !strings.Contains(err.Error(), "again") {
		t.Fatalf("second panic: %v", err)
	}
	if err := <-c2; err != nil {
		t.Fatal(err)
	}
	if !hasOrg(t, st, org) {
		t.Fatal("op after a panic not committed")
	}
	checkChain(t, st, org, 1)
}

func TestClosed(t *testing.T) {
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close = %v", err)
	}
	if err := st.View(func(*Snapshot) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("View after Close = %v", err)
	}
	if _, _, err := st.ListRequests(Filter{OrgID: NewID(t0)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("ListRequests after Close = %v", err)
	}
	if _, err := st.Request(NewID(t0), NewID(t0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Request after Close = %v", err)
	}
	if _, err := st.VerifyAudit(); !errors.Is(err, ErrClosed) {
		t.Fatalf("VerifyAudit after Close = %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// TestCloseWhileUpdating: Updates racing Close either commit (and are then
// durable) or fail with ErrClosed; nothing panics or hangs.
func TestCloseWhileUpdating(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var committed []string
	var closedErrs atomic.Int64
	start := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range 40 {
				id := NewID(t0)
				err := st.Update(func(tx *Tx) error { return tx.PutOrg(&Org{ID: id, Name: fmt.Sprintf("%d-%d", w, i)}) })
				switch {
				case err == nil:
					mu.Lock()
					committed = append(committed, id)
					mu.Unlock()
				case errors.Is(err, ErrClosed):
					closedErrs.Add(1)
					return
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	close(start)
	time.Sleep(20 * time.Millisecond)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	st = openAt(t, dir)
	var orgs []Org
	st.View(func(s *Snapshot) error { var err error; orgs, err = s.Orgs(); return err })
	if len(orgs) != len(committed) {
		t.Fatalf("%d orgs on disk, %d Updates acknowledged", len(orgs), len(committed))
	}
	t.Logf("%d committed, %d refused after Close", len(committed), closedErrs.Load())
}

func TestConcurrentUpdates(t *testing.T) {
	st := openTemp(t)
	const workers, perWorker = 32, 20
	var wg sync.WaitGroup
	ids := make([][]string, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				id := NewID(t0)
				ok := i%5 != 4
				err := st.Update(func(tx *Tx) error {
					if err := tx.PutOrg(&Org{ID: id, Name: "o"}); err != nil {
						return err
					}
					if !ok {
						return errors.New("refused")
					}
					return nil
				})
				if (err == nil) != ok {
					t.Errorf("Update = %v, want success %v", err, ok)
				}
				if ok {
					ids[w] = append(ids[w], id)
				}
			}
		}()
	}
	wg.Wait()
	want := 0
	for _, l := range ids {
		for _, id := range l {
			want++
			if !hasOrg(t, st, id) {
				t.Fatalf("org %s acknowledged but missing", id)
			}
		}
	}
	var orgs []Org
	st.View(func(s *Snapshot) error { var err error; orgs, err = s.Orgs(); return err })
	s := st.Stats()
	if len(orgs) != want || s.Ops != want {
		t.Fatalf("%d orgs, Stats.Ops %d, want %d", len(orgs), s.Ops, want)
	}
	if s.Commits > s.Ops || s.Commits == 0 {
		t.Fatalf("Stats = %+v", s)
	}
	t.Logf("stats: %+v", s)
}

// TestTooBigOperation: an operation too large for one badger transaction
// fails with ErrTooBig; the operations batched with it still commit.
func TestTooBigOperation(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a large operation")
	}
	st := openTemp(t)
	a, b := NewID(t0), NewID(t0)
	release, held := holdWriter(t, st)
	c1 := enqueue(t, st, func(tx *Tx) error { return tx.PutOrg(&Org{ID: a, Name: "a"}) })
	c2 := enqueue(t, st, func(tx *Tx) error {
		for i := range 200_000 {
			tx.set(key(pCommand, []byte(fmt.Sprintf("big-%08d", i))), []byte("0123456789"))
		}
		return nil
	})
	c3 := enqueue(t, st, func(tx *Tx) error { return tx.PutOrg(&Org{ID: b, Name: "b"}) })
	release()
	<-held
	if err := <-c1; err != nil {
		t.Fatal(err)
	}
	if err := <-c2; !errors.Is(err, ErrTooBig) {
		t.Fatalf("big op = %v, want ErrTooBig", err)
	}
	if err := <-c3; err != nil {
		t.Fatal(err)
	}
	if !hasOrg(t, st, a) || !hasOrg(t, st, b) {
		t.Fatal("ops batched with the big one were lost")
	}
	if n := countPrefix(t, st, []byte{pCommand}); n != 0 {
		t.Fatalf("%d entries of the refused op written", n)
	}
}

// TestBatchSplitBySize: ops whose writes together exceed one group commit
// are split over several commits; each op's results are its last run's.
func TestBatchSplitBySize(t *testing.T) {
	st := openTemp(t)
	release, held := holdWriter(t, st)
	big := strings.Repeat("x", 600<<10) // 0.6 MB: seven of them exceed maxBatchBytes
	var chans []<-chan error
	org := NewID(t0)
	mustUpdateLater := func(i int) <-chan error {
		return enqueue(t, st, func(tx *Tx) error {
			tx.Audit(AuditRecord{OrgID: org, Action: fmt.Sprint(i), ActorKind: ActorSystem})
			return tx.PutOrg(&Org{ID: NewID(t0), Name: big})
		})
	}
	for i := range 12 {
		chans = append(chans, mustUpdateLater(i))
	}
	before := st.Stats()
	release()
	<-held
	for _, c := range chans {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	after := st.Stats()
	if after.Ops-before.Ops != 13 || after.Commits-before.Commits < 3 {
		t.Errorf("stats before %+v after %+v: want 13 more ops in at least 3 commits", before, after)
	}
	recs := checkChain(t, st, org, 12)
	for i, r := range recs {
		if r.Action != fmt.Sprint(i) {
			t.Fatalf("record %d is op %s: ops committed out of order", i+1, r.Action)
		}
	}
}

const closeHelperEnv = "ELEVATE_STORE_CLOSE_HELPER"

// TestCloseDuringReadsHelper is run as a child process by
// TestCloseDuringReads: a crash there must not take the whole test binary
// down.
func TestCloseDuringReadsHelper(t *testing.T) {
	if os.Getenv(closeHelperEnv) == "" {
		t.Skip("helper process only")
	}
	for round := range 2 {
		dir := t.TempDir()
		st, err := Open(dir, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		org, dev := NewID(t0), NewID(t0)
		for i := 0; i < 10000; i += 1000 {
			mustUpdate(t, st, func(tx *Tx) error {
				for j := i; j < i+1000; j++ {
					if err := tx.PutRequest(newReq(org, dev, "", t0.Add(time.Duration(j)*time.Second), StatusPending)); err != nil {
						return err
					}
				}
				return nil
			})
		}
		// Reopen, so that the rows are read from table files.
		st.Close()
		if st, err = Open(dir, Options{}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					err := st.ScanRequests(ScanOptions{OrgID: org}, func(*Request) bool { return true })
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							fmt.Printf("round %d: read racing Close: %v\n", round, err)
						}
						return
					}
				}
			}()
		}
		time.Sleep(30 * time.Millisecond)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
	fmt.Println("RESULT: ok")
}

// TestCloseDuringReads: the Store is safe for concurrent use, so Close while
// reads are in flight must let them finish or fail with ErrClosed. Close
// does not wait for reads: badger unmaps the table files under a running
// iterator and the process dies with SIGSEGV.
func TestCloseDuringReads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCloseDuringReadsHelper$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), closeHelperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "RESULT: ok") {
		s := string(out)
		if i := strings.Index(s, "goroutine "); i > 0 {
			s = s[:i] // the first lines say what happened
		}
		t.Fatalf("BUG: Close while reads are in flight crashed the process (%v):\n%s", err, s)
	}
}

// failCommit is an operation whose commit fails with an error other than
// a conflict: it writes to the badger transaction directly and discards it,
// so the commit is refused ("Trying to commit a discarded txn").
func failCommit(tx *Tx) error {
	if err := tx.txn.Set([]byte{'z', 'z'}, []byte("x")); err != nil {
		return err
	}
	tx.txn.Discard()
	return nil
}

// TestFailedCommitStopsWrites: after a commit error other than a conflict
// what is readable may not be durable, so the store refuses every later
// Update (with an error wrapping ErrFailed) until it is reopened; reads go
// on.
func TestFailedCommitStopsWrites(t *testing.T) {
	dir := t.TempDir()
	st := openAt(t, dir)
	org := NewID(t0)
	mustUpdate(t, st, func(tx *Tx) error { return tx.PutOrg(&Org{ID: org, Name: "before"}) })
	err := st.Update(failCommit)
	if err == nil || errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "commit") {
		t.Fatalf("the failing commit returned %v", err)
	}
	for i := range 2 {
		ran := false
		err := st.Update(func(tx *Tx) error { ran = true; return tx.PutOrg(&Org{ID: NewID(t0), Name: "after"}) })
		if !errors.Is(err, ErrFailed) || ran {
			t.Fatalf("Update #%d after a failed commit = %v (ran %v), want ErrFailed without running", i, err, ran)
		}
	}
	if !hasOrg(t, st, org) {
		t.Error("reads fail after a failed commit")
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close after a failed commit: %v", err)
	}
	// Reopened, the store accepts writes again.
	st = openAt(t, dir)
	if !hasOrg(t, st, org) {
		t.Error("org written before the failure lost")
	}
	mustUpdate(t, st, func(tx *Tx) error { return tx.PutOrg(&Org{ID: NewID(t0), Name: "reopened"}) })
}

// While writes arrive concurrently, the writer holds a commit open for the
// commit window, so operations that arrive within it share one sync; a
// caller writing alone never waits for the window.
func TestCommitWindow(t *testing.T) {
	st, err := Open(t.TempDir(), Options{CommitWindow: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(*Tx) error { return nil }
	// B and C queue behind A: one commit of two, so writes are now
	// concurrent.
	release, a := holdWriter(t, st)
	b, c := enqueue(t, st, put), enqueue(t, st, put)
	release()
	for _, ch := range []<-chan error{a, b, c} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	before := st.Stats().Commits
	// D opens a commit that waits for the window; E arrives within it.
	d := make(chan error, 1)
	go func() { d <- st.Update(put) }()
	e := st.Update(put)
	if err := <-d; err != nil || e != nil {
		t.Fatal(err, e)
	}
	if n := st.Stats().Commits - before; n != 1 {
		t.Fatalf("D and E took %d commits, want 1", n)
	}
}

func TestCommitWindowLoneWriter(t *testing.T) {
	st, err := Open(t.TempDir(), Options{CommitWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	done := make(chan error, 1)
	go func() {
		for range 5 {
			if err := st.Update(func(*Tx) error { return nil }); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sequential writes waited for the commit window")
	}
}
