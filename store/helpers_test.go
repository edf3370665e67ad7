package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/elevate-pam/elevate/engine"
	"github.com/google/go-cmp/cmp"
)

// t0 anchors every generated time.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// openTemp opens a fresh on-disk store that is closed when the test ends.
func openTemp(t testing.TB) *Store {
	t.Helper()
	return openAt(t, t.TempDir())
}

// openAt opens the store in dir; the store is closed at cleanup (closing
// twice is harmless).
func openAt(t testing.TB, dir string) *Store {
	t.Helper()
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustUpdate(t testing.TB, st *Store, fn func(*Tx) error) {
	t.Helper()
	if err := st.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// nilUUID is the nil UUID in text: no request, org, device or site has it.
const nilUUID = "00000000-0000-0000-0000-000000000000"

// rid returns a random canonical (lowercase) id from rng.
func rid(rng *rand.Rand) string {
	var id ID
	for id == NilID {
		for i := range id {
			id[i] = byte(rng.UintN(256))
		}
	}
	return id.String()
}

// rawPut writes a key directly into badger, bypassing the store's writer
// (to simulate corruption or tampering).
func rawPut(t testing.TB, st *Store, k, v []byte) {
	t.Helper()
	if err := st.db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) }); err != nil {
		t.Fatal(err)
	}
}

func rawDelete(t testing.TB, st *Store, k []byte) {
	t.Helper()
	if err := st.db.Update(func(txn *badger.Txn) error { return txn.Delete(k) }); err != nil {
		t.Fatal(err)
	}
}

func rawGet(t testing.TB, st *Store, k []byte) ([]byte, bool) {
	t.Helper()
	var v []byte
	var ok bool
	err := st.db.View(func(txn *badger.Txn) error {
		var err error
		v, ok, err = txnGet(txn, k)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

// countPrefix counts the keys under prefix.
func countPrefix(t testing.TB, st *Store, prefix []byte) int {
	t.Helper()
	n := 0
	err := st.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// asCorrupt asserts err is (or wraps) a *CorruptError and returns it.
func asCorrupt(t testing.TB, err error) *CorruptError {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *CorruptError", err, err)
	}
	return ce
}

// reqCmp compares requests; times must be equal instants and both in UTC.
var reqCmp = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) && a.Location() == b.Location() }),
}

// utc returns a copy of r with every time in UTC (what decoding yields).
func utc(r *Request) *Request {
	c := *r
	for _, p := range []*time.Time{&c.RequestedAt, &c.CreatedAt, &c.ApprovedAt, &c.ExpiresAt, &c.DeniedAt,
		&c.RevokedAt, &c.ExpiredAt, &c.ActuatedAt} {
		if !p.IsZero() {
			*p = p.UTC()
		} else {
			*p = time.Time{}
		}
	}
	return &c
}

var zones = func() []*time.Location {
	out := []*time.Location{time.UTC, time.FixedZone("X+0530", 5*3600+1800), time.FixedZone("X-08", -8*3600)}
	if l, err := time.LoadLocation("Europe/Berlin"); err == nil {
		out = append(out, l)
	}
	return out
}()

// rstr returns a random string, sometimes empty, sometimes with multi-byte
// or odd characters.
func rstr(rng *rand.Rand, maxLen int) string {
	if rng.IntN(4) == 0 {
		return ""
	}
	alphabet := []rune("abcXYZ019 _-./\\\"'<>&é漢字🙂\x00\n\t")
	n := 1 + rng.IntN(maxLen)
	rs := make([]rune, n)
	for i := range rs {
		rs[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(rs)
}

func rtime(rng *rand.Rand) time.Time {
	if rng.IntN(4) == 0 {
		return time.Time{}
	}
	// Anywhere within ±100 years of t0, at nanosecond precision, in a
	// random zone.
	d := time.Duration(rng.Int64N(int64(200*365*24*time.Hour))) - 100*365*24*time.Hour
	return t0.Add(d).In(zones[rng.IntN(len(zones))])
}

// randomRequest builds a random request that passes validate.
func randomRequest(rng *rand.Rand) *Request {
	r := &Request{
		ID:                     rid(rng),
		OrgID:                  rid(rng),
		DeviceID:               rid(rng),
		Flow:                   flows[rng.IntN(len(flows))],
		Status:                 Statuses[rng.IntN(len(Statuses))],
		SubjectUsername:        "u" + rstr(rng, 20),
		SubjectUserID:          rstr(rng, 40),
		TargetExecutablePath:   rstr(rng, 200),
		TargetExecutableHash:   rstr(rng, 64),
		TargetExecutableSigner: rstr(rng, 30),
		ParentImage:            rstr(rng, 30),
		CommandLine:            rstr(rng, 300),
		ToolName:               rstr(rng, 20),
		ActionDigest:           rstr(rng, 64),
		ExecutionID:            rstr(rng, 36),
		Reason:                 rstr(rng, 100),
		RequestedAt:            rtime(rng),
		CreatedAt:              rtime(rng),
		Decision: DecisionRecord{
			Outcome:          engine.Outcome(rstr(rng, 10)),
			Verdict:          engine.Verdict(rstr(rng, 10)),
			DecidedBy:        engine.DecidedBy(rstr(rng, 10)),
			RuleID:           rstr(rng, 36),
			RuleName:         rstr(rng, 30),
			SoftwarePolicyID: rstr(rng, 36),
			Error:            rstr(rng, 50),
		},
		MatchedPolicyName:  rstr(rng, 30),
		ApprovedAt:         rtime(rng),
		ApprovedBy:         rstr(rng, 36),
		ApprovedByName:     rstr(rng, 20),
		ApprovalReason:     rstr(rng, 50),
		ExpiresAt:          rtime(rng),
		DeniedAt:           rtime(rng),
		DeniedBy:           rstr(rng, 36),
		DeniedByName:       rstr(rng, 20),
		DenialReason:       rstr(rng, 50),
		RevokedAt:          rtime(rng),
		RevokedBy:          rstr(rng, 36),
		RevokedByName:      rstr(rng, 20),
		RevokedReason:      rstr(rng, 50),
		ExpiredAt:          rtime(rng),
		ExpiredCause:       rstr(rng, 6),
		ActuatedAt:         rtime(rng),
		ActuatedBy:         rstr(rng, 36),
		ActuationCommandID: rstr(rng, 36),
	}
	if rng.IntN(3) > 0 {
		r.SiteID = rid(rng)
	}
	switch rng.IntN(4) {
	case 0:
		r.Decision.RuleSetVersion = rng.Uint64() // full range, incl. > MaxInt64
	case 1:
		r.Decision.RuleSetVersion = uint64(rng.IntN(100))
	}
	if rng.IntN(2) == 0 {
		v := rng.Int64() - rng.Int64()
		if rng.IntN(3) == 0 {
			v = 0
		}
		r.PID = &v
	}
	if rng.IntN(2) == 0 {
		v := rng.IntN(7) - 2
		r.RiskTier = &v
	}
	switch rng.IntN(3) {
	case 0: // nil: not reported
	case 1:
		r.AdGroups = []string{}
	case 2:
		for range 1 + rng.IntN(5) {
			r.AdGroups = append(r.AdGroups, rstr(rng, 30)) // may hold ""
		}
	}
	if rng.IntN(3) == 0 {
		r.DurationMinutes = rng.IntN(2000) - 10
	}
	if r.RequestedAt.IsZero() {
		r.RequestedAt = t0.In(zones[rng.IntN(len(zones))])
	}
	// Every grant has the instant it was approved and the instant it ends
	// (validate refuses an active request without either).
	if r.Status.Active() && r.ApprovedAt.IsZero() {
		r.ApprovedAt = t0.Add(time.Minute)
	}
	if r.Status.Active() && r.ExpiresAt.IsZero() {
		r.ExpiresAt = r.ApprovedAt.Add(time.Hour)
	}
	return r
}

func mustRow(t testing.TB, r *Request) []byte {
	t.Helper()
	b, err := MarshalRow(r)
	if err != nil {
		t.Fatalf("MarshalRow: %v", err)
	}
	return b
}

func describe(r *Request) string {
	return fmt.Sprintf("%s org=%s at=%s status=%s", r.ID, r.OrgID, r.RequestedAt.Format(time.RFC3339Nano), r.Status)
}
