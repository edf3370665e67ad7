package lifecycle

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// damage closes the fixture's store, changes its directory with badger
// directly, as a failing disk or a careless tool might, and reopens it.
func damage(t *testing.T, f *fixture, fn func(txn *badger.Txn) error) {
	t.Helper()
	dir := f.st.Dir()
	f.st.Close()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	f.svc = New(Config{Store: st, Clock: f.clock})
}

func keyTime(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())^(1<<63))
}

// twoOrgGrants stores a grant in the fixture's org and one in a second org,
// both expiring a minute after t0, and returns the second org and grant.
func twoOrgGrants(t *testing.T, f *fixture) (string, *store.Request, *store.Request) {
	t.Helper()
	orgB, devB := store.NewID(t0), store.NewID(t0)
	grant := func(org, dev string, at time.Time) *store.Request {
		return &store.Request{ID: store.NewID(at), OrgID: org, DeviceID: dev, Flow: engine.FlowUAC, Status: store.StatusApproved,
			SubjectUsername: "u", RequestedAt: at, ApprovedAt: at, ExpiresAt: at.Add(time.Minute)}
	}
	a, b := grant(f.org, f.device, t0), grant(orgB, devB, t0.Add(time.Second))
	if err := f.st.Update(func(tx *store.Tx) error {
		if err := tx.PutOrg(&store.Org{ID: orgB, Name: "other"}); err != nil {
			return err
		}
		if err := tx.PutDevice(&store.Device{ID: devB, OrgID: orgB, Hostname: "B"}); err != nil {
			return err
		}
		if err := tx.PutRequest(a); err != nil {
			return err
		}
		return tx.PutRequest(b)
	}); err != nil {
		t.Fatal(err)
	}
	return orgB, a, b
}

func TestSweepPassesOverWhatItCannotExpire(t *testing.T) {
	f := newFixture(t)
	orgB, a, b := twoOrgGrants(t, f)
	// Org A's counter of approved requests is damaged: expiring its grant
	// cannot keep the counters, so the store refuses; org B's grant must
	// still expire, and the refusal is reported.
	org, _ := store.ParseID(f.org)
	damage(t, f, func(txn *badger.Txn) error {
		return txn.Set(append(append([]byte{'k'}, org[:]...), 2), []byte{1, 2, 3})
	})
	f.clock.Set(t0.Add(time.Hour))
	res, err := f.svc.Sweep()
	if res.Grants != 1 || err == nil || !strings.Contains(err.Error(), a.ID) || !strings.Contains(err.Error(), "request-count/") {
		t.Fatalf("sweep %+v, err %v", res, err)
	}
	if r, _ := f.st.Request(orgB, b.ID); r.Status != store.StatusExpired {
		t.Fatalf("org B's grant is %s", r.Status)
	}
	// Still refused at the next sweep, and still not in the way.
	if res, err := f.svc.Sweep(); res.Grants != 0 || err == nil {
		t.Fatalf("second sweep %+v, %v", res, err)
	}
}

func TestSweepIgnoresEntriesThatDoNotHold(t *testing.T) {
	// More misplaced pending entries than one sweep operation takes, ahead
	// of a request that is really stale: they are reported, take no slot,
	// and the stale request expires.
	f := newFixture(t)
	p := f.uac(t, `C:\a.exe`, "").Request
	org, _ := store.ParseID(f.org)
	id, _ := store.ParseID(p.ID)
	damage(t, f, func(txn *badger.Txn) error {
		for i := range sweepOpLimit + 10 {
			k := append([]byte{'p'}, keyTime(t0.Add(-time.Hour+time.Duration(i)*time.Second))...)
			k = append(append(k, org[:]...), id[:]...)
			if err := txn.Set(k, nil); err != nil {
				return err
			}
		}
		return nil
	})
	f.clock.Set(t0.Add(time.Hour))
	res, err := f.svc.Sweep()
	if res.Stale != 1 || err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("sweep %+v, err %v", res, err)
	}
	if r, _ := f.st.Request(f.org, p.ID); r.Status != store.StatusExpired {
		t.Fatalf("the stale request is %s", r.Status)
	}
}
