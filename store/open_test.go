package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/google/go-cmp/cmp"
)

func TestReopenFindsEverything(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Dir() != dir {
		t.Errorf("Dir = %s", st.Dir())
	}
	org, site, dev, rule := NewID(t0), NewID(t0), NewID(t0), NewID(t0)
	req := fullRequest()
	req.OrgID, req.DeviceID, req.SiteID = org, dev, site
	var lastHash string
	err = st.Update(func(tx *Tx) error {
		if err := tx.PutOrg(&Org{ID: org, Name: "acme"}); err != nil {
			return err
		}
		if err := tx.PutSite(&Site{ID: site, OrgID: org, Name: "HQ"}); err != nil {
			return err
		}
		if err := tx.PutDevice(&Device{ID: dev, OrgID: org, SiteID: site, Hostname: "h", TokenHash: TokenHash("tok")}); err != nil {
			return err
		}
		if _, err := tx.PutRule(&engine.Rule{ID: rule, OrgID: org, Name: "r", Enabled: true, Priority: 5, Verdict: engine.VerdictAutoApprove}); err != nil {
			return err
		}
		if err := tx.PutRequest(req); err != nil {
			return err
		}
		tx.Audit(AuditRecord{OrgID: org, Action: "a1", ActorKind: ActorSystem, At: t0})
		tx.Audit(AuditRecord{OrgID: org, Action: "a2", ActorKind: ActorSystem, At: t0})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.AuditLog(org, 0, func(r *AuditRecord) bool { lastHash = r.Hash; return true })
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	st = openAt(t, dir)
	got, err := st.Request(org, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(utc(req), got, reqCmp); d != "" {
		t.Fatalf("request after reopen (-want +got):\n%s", d)
	}
	list, total, err := st.ListRequests(Filter{OrgID: org, Status: req.Status, SiteID: site, DeviceID: dev})
	if err != nil || total != 1 || len(list) != 1 {
		t.Fatalf("ListRequests after reopen: %d %d %v", len(list), total, err)
	}
	err = st.View(func(s *Snapshot) error {
		if _, err := s.Org(org); err != nil {
			return err
		}
		if d, err := s.DeviceByToken("tok"); err != nil || d.ID != dev {
			return fmt.Errorf("DeviceByToken: %v %v", d, err)
		}
		rs, err := s.RuleSet(org)
		if err != nil || rs.Version != 1 || len(rs.Rules) != 1 {
			return fmt.Errorf("RuleSet: %+v %v", rs, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The audit chain continues from the stored head.
	mustUpdate(t, st, func(tx *Tx) error {
		tx.Audit(AuditRecord{OrgID: org, Action: "a3", ActorKind: ActorSystem, At: t0})
		return nil
	})
	var recs []*AuditRecord
	st.AuditLog(org, 3, func(r *AuditRecord) bool { recs = append(recs, r); return true })
	if len(recs) != 1 || recs[0].Seq != 3 || recs[0].PrevHash != lastHash {
		t.Fatalf("record after reopen: %+v (want seq 3, prevHash %s)", recs, lastHash)
	}
	if rep, err := st.VerifyAudit(); err != nil || len(rep.Breaks) != 0 || rep.Records != 3 {
		t.Fatalf("VerifyAudit = %+v, %v", rep, err)
	}
}

func TestNoSyncAndInMemory(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	org := NewID(t0)
	mustUpdate(t, st, func(tx *Tx) error { return tx.PutOrg(&Org{ID: org, Name: "o"}) })
	st.Close()
	st = openAt(t, dir)
	if err := st.View(func(s *Snapshot) error { _, err := s.Org(org); return err }); err != nil {
		t.Fatalf("NoSync write lost after a clean close: %v", err)
	}

	mem, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	mustUpdate(t, mem, func(tx *Tx) error { return tx.PutOrg(&Org{ID: org, Name: "o"}) })
	if err := mem.View(func(s *Snapshot) error { _, err := s.Org(org); return err }); err != nil {
		t.Fatal(err)
	}
}

func TestOpenTwiceIsLocked(t *testing.T) {
	dir := t.TempDir()
	st := openAt(t, dir)
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	abs, _ := filepath.Abs(dir)
	if msg := err.Error(); !strings.Contains(msg, abs) || !strings.Contains(msg, "another") {
		t.Errorf("message does not name the directory and the cause: %s", msg)
	}
	// The first store is unaffected, and the directory opens once it is
	// closed.
	mustUpdate(t, st, func(tx *Tx) error { return tx.PutOrg(&Org{ID: NewID(t0), Name: "o"}) })
	st.Close()
	st2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	st2.Close()
}

const lockHelperEnv = "ELEVATE_STORE_LOCK_HELPER_DIR"

// TestLockHelperProcess is run as a child process by
// TestOpenLockedFromAnotherProcess.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	st, err := Open(dir, Options{})
	switch {
	case err == nil:
		st.Close()
		fmt.Println("RESULT: opened")
	case errors.Is(err, ErrLocked):
		fmt.Println("RESULT: locked: " + err.Error())
	default:
		fmt.Println("RESULT: other: " + err.Error())
	}
}

func TestOpenLockedFromAnotherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	st := openAt(t, dir)
	run := func() string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if r, ok := strings.CutPrefix(l, "RESULT: "); ok {
				return r
			}
		}
		t.Fatalf("helper printed no result:\n%s", out)
		return ""
	}
	if r := run(); !strings.HasPrefix(r, "locked: ") || !strings.Contains(r, "another") {
		t.Fatalf("child Open while the parent holds the store: %s", r)
	}
	st.Close()
	if r := run(); r != "opened" {
		t.Fatalf("child Open after the parent closed: %s", r)
	}
}

func TestSchema(t *testing.T) {
	t.Run("new store records the version", func(t *testing.T) {
		st := openTemp(t)
		v, ok := rawGet(t, st, schemaKey)
		if !ok {
			t.Fatal("no schema key")
		}
		if n, err := parseUvarint(v); err != nil || n != SchemaVersion {
			t.Fatalf("schema = %d, %v", n, err)
		}
	})
	t.Run("too new", func(t *testing.T) {
		dir := t.TempDir()
		st := openAt(t, dir)
		rawPut(t, st, schemaKey, uvarint(SchemaVersion+1))
		st.Close()
		_, err := Open(dir, Options{})
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, fmt.Sprintf("schema version %d", SchemaVersion+1)) || !strings.Contains(msg, fmt.Sprintf("up to %d", SchemaVersion)) {
			t.Errorf("message does not name both versions: %s", msg)
		}
		// Refusing must release the directory.
		_, err = Open(dir, Options{})
		if errors.Is(err, ErrLocked) {
			t.Fatalf("a refused open left the directory locked: %v", err)
		}
	})
	t.Run("data without schema", func(t *testing.T) {
		dir := t.TempDir()
		st := openAt(t, dir)
		mustUpdate(t, st, func(tx *Tx) error { return tx.PutOrg(&Org{ID: NewID(t0), Name: "o"}) })
		rawDelete(t, st, schemaKey)
		st.Close()
		_, err := Open(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), "no schema version") {
			t.Fatalf("Open = %v, want a refusal naming the missing schema version", err)
		}
		if errors.Is(err, ErrSchemaTooNew) || errors.Is(err, ErrLocked) {
			t.Fatalf("wrong sentinel: %v", err)
		}
	})
	t.Run("garbage schema value", func(t *testing.T) {
		dir := t.TempDir()
		st := openAt(t, dir)
		rawPut(t, st, schemaKey, []byte{0xff, 0xff})
		st.Close()
		if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "schema version") {
			t.Fatalf("Open = %v", err)
		}
	})
	t.Run("version 1 gains request counters", func(t *testing.T) {
		dir := t.TempDir()
		st := openAt(t, dir)
		org, dev := NewID(t0), NewID(t0)
		var rs []*Request
		for i, s := range []Status{StatusPending, StatusPending, StatusDenied, StatusApproved} {
			rs = append(rs, newReq(org, dev, "", t0.Add(time.Duration(i)*time.Second), s))
		}
		putAll(t, st, rs...)
		// What a version 1 directory looks like: no counters.
		o, _ := ParseID(org)
		for _, c := range []byte{0, statusCode(StatusPending), statusCode(StatusDenied), statusCode(StatusApproved)} {
			rawDelete(t, st, key(pCount, o[:], []byte{c}))
		}
		rawPut(t, st, schemaKey, uvarint(1))
		st.Close()
		st, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for s, want := range map[Status]int{"": 4, StatusPending: 2, StatusDenied: 1, StatusApproved: 1, StatusRevoked: 0} {
			if _, total, err := st.ListRequests(Filter{OrgID: org, Status: s, Limit: 1}); err != nil || total != want {
				t.Errorf("status %q: total %d, want %d (%v)", s, total, want, err)
			}
		}
		if v, _ := rawGet(t, st, schemaKey); string(v) != string(uvarint(SchemaVersion)) {
			t.Errorf("schema after migration: %v", v)
		}
	})
	t.Run("older without migration", func(t *testing.T) {
		dir := t.TempDir()
		st := openAt(t, dir)
		rawPut(t, st, schemaKey, uvarint(0))
		st.Close()
		if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "no migration") {
			t.Fatalf("Open = %v", err)
		}
	})
}

// --- corruption ---

// corruptFixture stores three requests of one org and one of another org,
// returning the store and the middle request.
func corruptFixture(t *testing.T) (*Store, *Request, *Request) {
	st := openTemp(t)
	org, other, dev := NewID(t0), NewID(t0), NewID(t0)
	var victim *Request
	var rs []*Request
	for i := range 3 {
		r := newReq(org, dev, "", t0.Add(time.Duration(i)*time.Minute), StatusPending)
		rs = append(rs, r)
		if i == 1 {
			victim = r
		}
	}
	foreign := newReq(other, NewID(t0), "", t0, StatusPending)
	putAll(t, st, append(rs, foreign)...)
	return st, victim, foreign
}

func victimKey(r *Request) []byte {
	org, _ := ParseID(r.OrgID)
	id, _ := ParseID(r.ID)
	return requestKey(org, r.RequestedAt, id)
}

func TestCorruptRequestRowIsReported(t *testing.T) {
	garbage := map[string]func(good []byte) []byte{
		"bad header": func([]byte) []byte { return []byte("garbage!") },
		"bad body": func(good []byte) []byte {
			return append(append([]byte(nil), good[:facetLen]...), 0xee, 1, 2, 3)
		},
		"truncated": func(good []byte) []byte { return good[:len(good)-3] },
		"empty":     func([]byte) []byte { return []byte{} },
	}
	for name, mk := range garbage {
		t.Run(name, func(t *testing.T) {
			st, victim, foreign := corruptFixture(t)
			k := victimKey(victim)
			good, _ := rawGet(t, st, k)
			rawPut(t, st, k, mk(good))
			wantKey := keyString(k)
			if !strings.HasPrefix(wantKey, "request/"+victim.OrgID+"/") || !strings.HasSuffix(wantKey, victim.ID) {
				t.Fatalf("keyString = %s", wantKey)
			}
			check := func(what string, err error) {
				t.Helper()
				ce := asCorrupt(t, err)
				if ce.Key != wantKey {
					t.Errorf("%s: CorruptError.Key = %s, want %s", what, ce.Key, wantKey)
				}
				if !strings.Contains(ce.Error(), wantKey) {
					t.Errorf("%s: message does not name the key: %s", what, ce.Error())
				}
			}
			_, err := st.Request(victim.OrgID, victim.ID)
			check("Request", err)
			_, _, err = st.ListRequests(Filter{OrgID: victim.OrgID})
			check("ListRequests", err)
			_, _, err = st.ListRequests(Filter{OrgID: victim.OrgID, Status: StatusPending, Limit: 10})
			check("ListRequests by status", err)
			_, _, err = st.ListRequests(Filter{OrgID: victim.OrgID, DeviceID: victim.DeviceID, From: victim.RequestedAt, To: victim.RequestedAt})
			check("ListRequests by device and time", err)
			for _, o := range []ScanOptions{{OrgID: victim.OrgID}, {OrgID: victim.OrgID, Newest: true}, {}, {Newest: true}} {
				n := 0
				err = st.ScanRequests(o, func(*Request) bool { n++; return true })
				check(fmt.Sprintf("ScanRequests(%+v)", o), err)
			}
			err = st.Update(func(tx *Tx) error { _, err := tx.Request(victim.OrgID, victim.ID); return err })
			check("tx.Request", err)
			// Writing the next state of a corrupt request is refused, not
			// silently overwritten.
			next := *victim
			next.Status, next.DeniedAt = StatusDenied, t0
			err = st.Update(func(tx *Tx) error { return tx.PutRequest(&next) })
			check("PutRequest over a corrupt row", err)
			// Another org is unaffected.
			if _, total, err := st.ListRequests(Filter{OrgID: foreign.OrgID}); err != nil || total != 1 {
				t.Errorf("other org: %d, %v", total, err)
			}
			if _, err := st.Request(foreign.OrgID, foreign.ID); err != nil {
				t.Errorf("other org's request: %v", err)
			}
		})
	}
}

func TestCorruptIndexesAreReported(t *testing.T) {
	t.Run("index value", func(t *testing.T) {
		st, victim, _ := corruptFixture(t)
		org, _ := ParseID(victim.OrgID)
		id, _ := ParseID(victim.ID)
		rawPut(t, st, indexKey(org, ixStatus, []byte{statusCode(StatusPending)}, victim.RequestedAt, id), []byte{9, 9})
		_, _, err := st.ListRequests(Filter{OrgID: victim.OrgID, Status: StatusPending})
		asCorrupt(t, err)
	})
	t.Run("id index", func(t *testing.T) {
		st, victim, _ := corruptFixture(t)
		org, _ := ParseID(victim.OrgID)
		id, _ := ParseID(victim.ID)
		rawPut(t, st, key(pRequestID, org[:], id[:]), []byte{1, 2, 3})
		_, err := st.Request(victim.OrgID, victim.ID)
		asCorrupt(t, err)
	})
	t.Run("id index names a missing row", func(t *testing.T) {
		st, victim, _ := corruptFixture(t)
		rawDelete(t, st, victimKey(victim))
		_, err := st.Request(victim.OrgID, victim.ID)
		asCorrupt(t, err)
	})
	t.Run("malformed row key", func(t *testing.T) {
		st, victim, _ := corruptFixture(t)
		org, _ := ParseID(victim.OrgID)
		rawPut(t, st, key(pRequest, org[:], []byte{1, 2, 3}), []byte{1})
		err := st.ScanRequests(ScanOptions{OrgID: victim.OrgID}, func(*Request) bool { return true })
		asCorrupt(t, err)
		_, _, err = st.ListRequests(Filter{OrgID: victim.OrgID})
		asCorrupt(t, err)
	})
	t.Run("malformed sweep key", func(t *testing.T) {
		st, _, _ := corruptFixture(t)
		rawPut(t, st, []byte{pPending, 1, 2}, nil)
		// Reported beside the due requests, not instead of them.
		var bad []error
		err := st.Update(func(tx *Tx) error {
			var err error
			_, _, bad, err = tx.Due(t0.Add(time.Hour), 0, 10)
			return err
		})
		if err != nil || len(bad) != 1 {
			t.Fatalf("Due: err %v, bad %v", err, bad)
		}
		asCorrupt(t, bad[0])
	})
}

// rawRow overwrites the stored row of r with the row encoding of w,
// bypassing validate: what a damaged or foreign data directory may hold.
func rawRow(t *testing.T, st *Store, r, w *Request) {
	t.Helper()
	b, err := encodeRequest(nil, w)
	if err != nil {
		t.Fatal(err)
	}
	rawPut(t, st, victimKey(r), b)
}

// TestGrantWithoutExpiryRowIsCorrupt: MarshalRow and PutRequest refuse an
// active request without expiresAt (it would be active for ever), and a
// stored row of one reads back as corrupt wherever the row is decoded.
func TestGrantWithoutExpiryRowIsCorrupt(t *testing.T) {
	st := openTemp(t)
	org, dev := NewID(t0), NewID(t0)
	g := newReq(org, dev, "", t0, StatusApproved)
	other := newReq(org, dev, "", t0.Add(time.Minute), StatusApproved)
	noExpiry := *g
	noExpiry.ExpiresAt = time.Time{}
	var ie *InvalidError
	if _, err := MarshalRow(&noExpiry); !errors.As(err, &ie) {
		t.Fatalf("MarshalRow(approved without expiresAt) = %v, want *InvalidError", err)
	}
	if err := st.Update(func(tx *Tx) error { return tx.PutRequest(&noExpiry) }); !errors.As(err, &ie) {
		t.Fatalf("PutRequest(approved without expiresAt) = %v, want *InvalidError", err)
	}
	putAll(t, st, g, other)
	rawRow(t, st, g, &noExpiry)
	wantKey := keyString(victimKey(g))
	check := func(what string, err error) {
		t.Helper()
		ce := asCorrupt(t, err)
		if ce.Key != wantKey || !strings.Contains(ce.Error(), "approvedAt and expiresAt") {
			t.Errorf("%s: %v, want a CorruptError at %s about approvedAt and expiresAt", what, err, wantKey)
		}
	}
	_, err := st.Request(org, g.ID)
	check("Request", err)
	_, _, err = st.ListRequests(Filter{OrgID: org})
	check("ListRequests", err)
	_, err = st.ActiveRequests(org, t0.Add(time.Hour), nil, 0)
	check("ActiveRequests", err)
	err = st.ScanRequests(ScanOptions{OrgID: org}, func(*Request) bool { return true })
	check("ScanRequests", err)
	// The grant's expiry sweep entry is still there: the sweep reports the
	// row beside the other due grant.
	var grants []*Request
	var bad []error
	mustUpdate(t, st, func(tx *Tx) error {
		var err error
		grants, _, bad, err = tx.Due(t0.Add(48*time.Hour), time.Hour, 10)
		return err
	})
	if !slices.Equal(idsOf(grants), []string{other.ID}) || len(bad) != 1 {
		t.Fatalf("Due: grants %v, bad %v; want [%s] and one error", idsOf(grants), bad, other.ID)
	}
	check("Due", bad[0])
}

// TestRowUnderAnotherKeyIsCorrupt: a row is read by its key, so a valid
// row stored under another request's key (copied, or restored to the
// wrong place) must not pass for that request.
func TestRowUnderAnotherKeyIsCorrupt(t *testing.T) {
	// Each case stores, under the victim's key, a valid row of another
	// request: sibling is the row of another request of the same org.
	cases := map[string]func(t *testing.T, st *Store, victim, foreign *Request, sibling []byte){
		"another request's row": func(t *testing.T, st *Store, victim, _ *Request, sibling []byte) {
			rawPut(t, st, victimKey(victim), sibling)
		},
		"another org's row": func(t *testing.T, st *Store, victim, foreign *Request, _ []byte) {
			v, ok := rawGet(t, st, victimKey(foreign))
			if !ok {
				t.Fatal("foreign row missing")
			}
			rawPut(t, st, victimKey(victim), v)
		},
		"other id": func(t *testing.T, st *Store, victim, _ *Request, _ []byte) {
			w := *victim
			w.ID = NewID(t0)
			rawRow(t, st, victim, &w)
		},
		"other org": func(t *testing.T, st *Store, victim, _ *Request, _ []byte) {
			w := *victim
			w.OrgID = NewID(t0)
			rawRow(t, st, victim, &w)
		},
		"other requestedAt": func(t *testing.T, st *Store, victim, _ *Request, _ []byte) {
			w := *victim
			w.RequestedAt = w.RequestedAt.Add(time.Nanosecond)
			rawRow(t, st, victim, &w)
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			st, victim, foreign := corruptFixture(t)
			list, _, err := st.ListRequests(Filter{OrgID: victim.OrgID})
			if err != nil || len(list) != 3 || list[0].ID == victim.ID {
				t.Fatalf("fixture: %v, %v", idsOf(list), err)
			}
			sibling, _ := rawGet(t, st, victimKey(list[0]))
			mk(t, st, victim, foreign, sibling)
			wantKey := keyString(victimKey(victim))
			check := func(what string, err error) {
				t.Helper()
				ce := asCorrupt(t, err)
				if ce.Key != wantKey || !strings.Contains(ce.Error(), "differ from its key") {
					t.Errorf("%s: %v, want a CorruptError at %s saying the row differs from its key", what, err, wantKey)
				}
			}
			_, err = st.Request(victim.OrgID, victim.ID)
			check("Request", err)
			err = st.Update(func(tx *Tx) error { _, err := tx.Request(victim.OrgID, victim.ID); return err })
			check("tx.Request", err)
			err = st.View(func(s *Snapshot) error { _, err := s.Request(victim.OrgID, victim.ID); return err })
			check("Snapshot.Request", err)
			next := *victim
			next.Status, next.DeniedAt = StatusDenied, t0
			err = st.Update(func(tx *Tx) error { return tx.PutRequest(&next) })
			check("PutRequest over it", err)
			// The victim is pending: the sweep reports it and still returns
			// the other stale requests.
			var stale []*Request
			var bad []error
			mustUpdate(t, st, func(tx *Tx) error {
				var err error
				_, stale, bad, err = tx.Due(t0.Add(time.Hour), 0, 10)
				return err
			})
			if len(stale) != 3 || slices.Contains(idsOf(stale), victim.ID) || len(bad) != 1 {
				t.Fatalf("Due: stale %v, bad %v; want the 3 others and one error", idsOf(stale), bad)
			}
			check("Due", bad[0])
		})
	}
}

// TestDueReportsCorruptRows: an unreadable row, or a sweep entry naming a
// missing request, is reported in bad and left in place; the other due
// requests are still returned (and can be expired), and only they count
// against the limit.
func TestDueReportsCorruptRows(t *testing.T) {
	st := openTemp(t)
	org, dev := NewID(t0), NewID(t0)
	now := t0.Add(10 * time.Hour)
	var gs, ps []*Request
	for i := range 4 {
		g := newReq(org, dev, "", t0.Add(time.Duration(i)*time.Minute), StatusApproved)
		g.ExpiresAt = now.Add(time.Duration(i-4) * time.Second)
		gs = append(gs, g)
	}
	for i := range 3 {
		ps = append(ps, newReq(org, dev, "", t0.Add(time.Duration(10+i)*time.Minute), StatusPending))
	}
	putAll(t, st, append(append([]*Request{}, gs...), ps...)...)
	// gs[1]: garbage; gs[2]: a grant row without expiresAt; ps[1]: its id
	// index entry is gone, so its sweep entry names a missing request.
	rawPut(t, st, victimKey(gs[1]), []byte("garbage!"))
	noExpiry := *gs[2]
	noExpiry.ExpiresAt = time.Time{}
	rawRow(t, st, gs[2], &noExpiry)
	o, _ := ParseID(org)
	id, _ := ParseID(ps[1].ID)
	rawDelete(t, st, key(pRequestID, o[:], id[:]))

	sweep := func(limit int) (grants, stale []string, bad []error) {
		t.Helper()
		mustUpdate(t, st, func(tx *Tx) error {
			g, s, b, err := tx.Due(now, time.Hour, limit)
			grants, stale, bad = idsOf(g), idsOf(s), b
			return err
		})
		return grants, stale, bad
	}
	grants, stale, bad := sweep(100)
	if !slices.Equal(grants, []string{gs[0].ID, gs[3].ID}) || !slices.Equal(stale, []string{ps[0].ID, ps[2].ID}) {
		t.Fatalf("grants %v stale %v; want [%s %s] and [%s %s]", grants, stale, gs[0].ID, gs[3].ID, ps[0].ID, ps[2].ID)
	}
	if len(bad) != 3 {
		t.Fatalf("bad = %v, want 3 errors", bad)
	}
	wantKeys := []string{keyString(victimKey(gs[1])), keyString(victimKey(gs[2])),
		keyString(key(pPending, ts(ps[1].RequestedAt), o[:], id[:]))}
	for i, err := range bad {
		if ce := asCorrupt(t, err); ce.Key != wantKeys[i] {
			t.Errorf("bad[%d] = %v, want a CorruptError at %s", i, err, wantKeys[i])
		}
	}
	if !strings.Contains(bad[2].Error(), "missing request") {
		t.Errorf("bad[2] = %v, want it to name a missing request", bad[2])
	}
	// Corrupt entries do not use up the limit.
	grants, stale, _ = sweep(3)
	if len(grants) != 2 || !slices.Equal(stale, []string{ps[0].ID}) {
		t.Fatalf("limit 3: grants %v stale %v", grants, stale)
	}
	// Expire what is returned; the corrupt entries stay, reported again.
	mustUpdate(t, st, func(tx *Tx) error {
		g, s, _, err := tx.Due(now, time.Hour, 100)
		if err != nil {
			return err
		}
		for _, r := range append(g, s...) {
			r.Status, r.ExpiredAt = StatusExpired, now
			if err := tx.PutRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	if grants, stale, bad = sweep(100); len(grants)+len(stale) != 0 || len(bad) != 3 {
		t.Fatalf("after the sweep: grants %v stale %v bad %v", grants, stale, bad)
	}
}

func TestCorruptInventoryIsReported(t *testing.T) {
	st := openTemp(t)
	org1, org2, site, dev, rule := NewID(t0), NewID(t0), NewID(t0), NewID(t0), NewID(t0)
	mustUpdate(t, st, func(tx *Tx) error {
		for _, o := range []string{org1, org2} {
			if err := tx.PutOrg(&Org{ID: o, Name: "o"}); err != nil {
				return err
			}
		}
		if err := tx.PutSite(&Site{ID: site, OrgID: org1, Name: "s"}); err != nil {
			return err
		}
		if err := tx.PutDevice(&Device{ID: dev, OrgID: org1, Hostname: "h", TokenHash: TokenHash("t")}); err != nil {
			return err
		}
		_, err := tx.PutRule(&engine.Rule{ID: rule, OrgID: org1, Name: "r"})
		return err
	})
	o1, _ := ParseID(org1)
	d, _ := ParseID(dev)
	r, _ := ParseID(rule)
	rawPut(t, st, key(pOrg, o1[:]), []byte(`{"id": "`))
	rawPut(t, st, key(pDevice, o1[:], d[:]), []byte(`[1,2`))
	rawPut(t, st, key(pRule, o1[:], r[:]), []byte(`{"priority":"high"}`))
	wantOrgKey := "org/" + org1
	err := st.View(func(s *Snapshot) error {
		_, err := s.Orgs()
		if ce := asCorrupt(t, err); ce.Key != wantOrgKey {
			t.Errorf("Orgs: Key = %s, want %s", ce.Key, wantOrgKey)
		}
		var se *json.SyntaxError
		if !errors.As(err, &se) && !strings.Contains(err.Error(), "unexpected end") {
			t.Errorf("Orgs: cause not kept: %v", err)
		}
		_, err = s.Org(org1)
		if ce := asCorrupt(t, err); ce.Key != wantOrgKey {
			t.Errorf("Org: Key = %s", ce.Key)
		}
		if _, err := s.Org(org2); err != nil {
			t.Errorf("other org: %v", err)
		}
		wantDev := "device/" + org1 + "/" + dev
		for name, err := range map[string]error{
			"Devices":       func() error { _, err := s.Devices(org1); return err }(),
			"Device":        func() error { _, err := s.Device(dev); return err }(),
			"DeviceByToken": func() error { _, err := s.DeviceByToken("t"); return err }(),
		} {
			if ce := asCorrupt(t, err); ce.Key != wantDev {
				t.Errorf("%s: Key = %s, want %s", name, ce.Key, wantDev)
			}
		}
		_, err = s.RuleSet(org1)
		if ce := asCorrupt(t, err); ce.Key != "rule/"+org1+"/"+rule {
			t.Errorf("RuleSet: Key = %s", ce.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A corrupt rule-set version.
	rawPut(t, st, key(pVersion, o1[:]), []byte{1})
	if _, err := st.RuleVersion(org1); asCorrupt(t, err).Key != "rule-version/"+org1 {
		t.Errorf("RuleVersion: %v", err)
	}
	err = st.Update(func(tx *Tx) error {
		_, err := tx.PutRule(&engine.Rule{ID: NewID(t0), OrgID: org1, Name: "r2"})
		return err
	})
	asCorrupt(t, err)
}
