package lifecycle

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/store"
)

var raceSeed = flag.Uint64("race.seed", 20260615, "seed of the operation mix of the lifecycle race tests (0: taken from the clock)")

// Size of the race tests: requests, and goroutines racing on each one.
const (
	raceRequests   = 20
	raceContenders = 100
)

// raceGrantExpiry is how long after its approval a grant expires when
// Respond is given no duration.
const raceGrantExpiry = DefaultRespondMinutes * time.Minute

// raceOp is one contender's call.
type raceOp int

const (
	opApprove raceOp = iota
	opDeny
	opRevoke
	opActuate
	opSweep
	numRaceOps
)

func (o raceOp) String() string {
	return [...]string{"approve", "deny", "revoke", "actuate", "sweep"}[o]
}

// target is the status a successful call of o moves its request to.
func (o raceOp) target() store.Status {
	return [...]store.Status{store.StatusApproved, store.StatusDenied, store.StatusRevoked, store.StatusActuating, store.StatusExpired}[o]
}

// want is the StateError.Want a losing call of o reports.
func (o raceOp) want() string { return [...]string{"pending", "pending", "active", "approved", ""}[o] }

// accepts reports whether o's compare-and-swap succeeds on status s.
func (o raceOp) accepts(s store.Status) bool {
	switch o {
	case opApprove, opDeny:
		return s == store.StatusPending
	case opRevoke:
		return s.Active()
	case opActuate:
		return s == store.StatusApproved
	}
	return false
}

// raceResult is what one contender got back.
type raceResult struct {
	op    raceOp
	actor string
	err   error
	req   *store.Request // Respond and Revoke
	cmd   *store.Command // Actuate
	sweep SweepResult
}

// legalNext is the lifecycle's transition graph (pam-semantics §7) as the
// audit log records it: ingest records the arrival as a transition into
// pending, then each later status change is one record.
var legalNext = map[store.Status][]store.Status{
	store.StatusPending:      {store.StatusApproved, store.StatusAutoApproved, store.StatusDenied, store.StatusExpired},
	store.StatusApproved:     {store.StatusActuating, store.StatusRevoked, store.StatusExpired},
	store.StatusAutoApproved: {store.StatusRevoked, store.StatusExpired},
	store.StatusActuating:    {store.StatusRevoked, store.StatusExpired},
}

// reachable reports whether status to can follow from (or equals it).
func reachable(from, to store.Status) bool {
	if from == to {
		return true
	}
	for _, n := range legalNext[from] {
		if reachable(n, to) {
			return true
		}
	}
	return false
}

// auditBySubject returns org's transition records grouped by subject, each
// group in log order, and the number of records read (refusals included).
func auditBySubject(t testing.TB, st *store.Store, org string) (map[string][]store.AuditRecord, int) {
	t.Helper()
	out := map[string][]store.AuditRecord{}
	n := 0
	err := st.AuditLog(org, 0, func(r *store.AuditRecord) bool {
		n++
		if r.Action == auditActuateRefused {
			return true // a refusal records no transition
		}
		out[r.Subject] = append(out[r.Subject], *r)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, n
}

// checkPath checks one request's audit trail: it opens with the requested
// record entering pending, and every later record leaves the status the
// previous one entered, along a legal transition, under the action named
// after the status it enters. It returns the statuses the request held, in
// order.
func checkPath(recs []store.AuditRecord) ([]store.Status, error) {
	if len(recs) == 0 {
		return nil, errors.New("no audit records")
	}
	if r := recs[0]; r.Action != auditRequested || r.From != "" || r.To != string(store.StatusPending) {
		return nil, fmt.Errorf("first record is %s %q→%q, want requested →pending", r.Action, r.From, r.To)
	}
	states := []store.Status{store.StatusPending}
	for _, r := range recs[1:] {
		prev := states[len(states)-1]
		to := store.Status(r.To)
		if store.Status(r.From) != prev {
			return states, fmt.Errorf("record %d (%s) leaves %q but the request was %q", r.Seq, r.Action, r.From, prev)
		}
		if !slices.Contains(legalNext[prev], to) {
			return states, fmt.Errorf("record %d: illegal transition %s→%s", r.Seq, prev, to)
		}
		if r.Action != r.To {
			return states, fmt.Errorf("record %d: action %q for a transition to %s", r.Seq, r.Action, to)
		}
		states = append(states, to)
	}
	return states, nil
}

// raceScenario is one race: requests prepared in some status, then every
// request's contenders released together.
type raceScenario struct {
	// prepare creates the requests, moves them where the race starts and
	// sets the clock.
	prepare func(t *testing.T, f *fixture) []string
	// weights of the operations drawn for each contender.
	weights [numRaceOps]int
	// pastExpiry: the clock is past every grant's expiresAt, so Actuate
	// reports a still-approved request as expired.
	pastExpiry bool
}

// raceOutcome is the final status of every raced request and the sums of
// the sweeps' results.
type raceOutcome struct {
	final map[store.Status]int
	paths map[string]int // statuses held from the start of the race on → requests
	sweep SweepResult
}

func raceSeedFor(t *testing.T) uint64 {
	seed := *raceSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("operation mix seed %d (-race.seed=%d draws the same mix)", seed, seed)
	return seed
}

// runRace runs a scenario and checks everything that holds whatever the
// interleaving.
func runRace(t *testing.T, sc raceScenario) raceOutcome {
	f := newFixture(t)
	ids := sc.prepare(t, f)
	rng := rand.New(rand.NewPCG(raceSeedFor(t), 0x6c696665))

	// Records present before the race: those are not the contenders'.
	before, _ := auditBySubject(t, f.st, f.org)
	beforeLen := map[string]int{}
	startStatus := map[string]store.Status{}
	for _, id := range ids {
		beforeLen[id] = len(before[id])
		r, err := f.st.Request(f.org, id)
		if err != nil {
			t.Fatal(err)
		}
		startStatus[id] = r.Status
	}

	// Every request gets at least one contender of each weighted
	// operation, the rest drawn at random.
	total := 0
	for _, w := range sc.weights {
		total += w
	}
	plans := make([][]raceOp, len(ids))
	for i := range plans {
		p := make([]raceOp, 0, raceContenders)
		for op, w := range sc.weights {
			if w > 0 {
				p = append(p, raceOp(op))
			}
		}
		for len(p) < raceContenders {
			n := rng.IntN(total)
			op := raceOp(0)
			for ; n >= sc.weights[op]; op++ {
				n -= sc.weights[op]
			}
			p = append(p, op)
		}
		rng.Shuffle(len(p), func(a, b int) { p[a], p[b] = p[b], p[a] })
		plans[i] = p
	}

	// The contenders of all requests start in one shuffled order, so that
	// the writer's queue interleaves the requests.
	results := make([][]raceResult, len(ids))
	var order [][2]int
	for i := range ids {
		results[i] = make([]raceResult, len(plans[i]))
		for j := range plans[i] {
			order = append(order, [2]int{i, j})
		}
	}
	rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, ij := range order {
		i, j := ij[0], ij[1]
		id, op := ids[i], plans[i][j]
		res := &results[i][j]
		res.op = op
		res.actor = fmt.Sprintf("user-%d-%d", i, j)
		actor := Actor{ID: res.actor, Name: res.actor}
		wg.Go(func() {
			<-start
			switch op {
			case opApprove, opDeny:
				d := Approve
				if op == opDeny {
					d = Deny
				}
				res.req, res.err = f.svc.Respond(RespondInput{OrgID: f.org, ID: id, Decision: d, Actor: actor})
			case opRevoke:
				res.req, res.err = f.svc.Revoke(RevokeInput{OrgID: f.org, ID: id, Reason: "race", Actor: actor})
			case opActuate:
				res.cmd, res.err = f.svc.Actuate(ActuateInput{OrgID: f.org, DeviceID: f.device, RequestID: id, Actor: actor})
			case opSweep:
				res.sweep, res.err = f.svc.Sweep()
			}
		})
	}
	close(start)
	wg.Wait()

	after, records := auditBySubject(t, f.st, f.org)
	rep := mustVerify(t, f.st)
	if rep.Records != uint64(records) {
		t.Errorf("VerifyAudit walked %d records, the log holds %d", rep.Records, records)
	}
	for subject := range after {
		if _, ok := beforeLen[subject]; !ok {
			t.Errorf("audit records about %q, which is none of the raced requests", subject)
		}
	}

	out := raceOutcome{final: map[store.Status]int{}, paths: map[string]int{}}
	sweptStale, sweptGrants := 0, 0
	for i, id := range ids {
		fail := func(format string, a ...any) {
			t.Helper()
			t.Errorf("request %d (%s, %s at the start): %s", i, id, startStatus[id], fmt.Sprintf(format, a...))
		}
		recs := after[id]
		if beforeLen[id] == 0 || len(recs) < beforeLen[id] {
			fail("%d audit records before the race, %d after", beforeLen[id], len(recs))
			continue
		}
		if !slices.EqualFunc(recs[:beforeLen[id]], before[id], func(a, b store.AuditRecord) bool { return a.Hash == b.Hash }) {
			fail("the race changed audit records written before it")
			continue
		}
		states, err := checkPath(recs)
		if err != nil {
			fail("audit trail: %v (statuses %v)", err, states)
			continue
		}
		held := states[beforeLen[id]-1:] // statuses held from the start of the race on
		out.paths[fmt.Sprint(held)]++
		if held[0] != startStatus[id] {
			fail("audit trail has the request %s before the race, the store %s", held[0], startStatus[id])
			continue
		}

		// Winners, and what every loser saw.
		winners := map[raceOp][]*raceResult{}
		for j := range results[i] {
			res := &results[i][j]
			if res.op == opSweep {
				if res.err != nil {
					fail("sweep: %v", res.err)
				}
				continue
			}
			if res.err == nil {
				winners[res.op] = append(winners[res.op], res)
				continue
			}
			var se *StateError
			switch {
			case !errors.As(res.err, &se):
				fail("%s by %s: unexpected error %v", res.op, res.actor, res.err)
			case se.ID != id || se.Want != res.op.want():
				fail("%s by %s: StateError %+v, want one about %s wanting %q", res.op, res.actor, se, id, res.op.want())
			case res.req != nil || res.cmd != nil:
				fail("%s by %s: lost but returned a result", res.op, res.actor)
			case res.op == opActuate && se.Current == store.StatusExpired && sc.pastExpiry:
				// An approved grant past its expiresAt, swept or not.
			case res.op.accepts(se.Current):
				fail("%s by %s lost on status %s, which it accepts", res.op, res.actor, se.Current)
			case !slices.Contains(held, se.Current):
				fail("%s by %s lost on status %s, which the request never held (held %v)", res.op, res.actor, se.Current, held)
			}
		}
		if sc.pastExpiry && len(winners[opActuate]) > 0 {
			fail("actuation of a grant past its expiresAt succeeded")
		}
		for op, ws := range winners {
			if len(ws) > 1 {
				fail("%s succeeded %d times", op, len(ws))
			}
			for _, w := range ws {
				switch {
				case w.req != nil && (w.req.ID != id || w.req.Status != op.target()):
					fail("%s by %s returned %s in status %s", op, w.actor, w.req.ID, w.req.Status)
				case w.cmd != nil && (w.cmd.ElevationRequestID != id || w.cmd.Type != actuateCommandType):
					fail("actuate by %s returned command %+v", w.actor, w.cmd)
				case w.req == nil && w.cmd == nil:
					fail("%s by %s succeeded without a result", op, w.actor)
				}
			}
		}

		// The race's audit records are exactly the winners' transitions,
		// each by its winner, plus at most one expiry by the sweep.
		expired := 0
		raced := recs[beforeLen[id]:]
		for _, r := range raced {
			if r.To == string(store.StatusExpired) {
				expired++
				if r.ActorKind != store.ActorSystem {
					fail("expiry recorded with actor kind %s", r.ActorKind)
				}
				if store.Status(r.From) == store.StatusPending {
					sweptStale++
				} else {
					sweptGrants++
				}
				continue
			}
			var by []string
			for _, op := range []raceOp{opApprove, opDeny, opRevoke, opActuate} {
				if op.target() == store.Status(r.To) {
					for _, w := range winners[op] {
						by = append(by, w.actor)
					}
				}
			}
			if len(by) != 1 || by[0] != r.ActorID {
				fail("audit record %d (%s→%s by %s) is not the transition of exactly one winner (winners %v)", r.Seq, r.From, r.To, r.ActorID, by)
			}
		}
		nw := 0
		for _, ws := range winners {
			nw += len(ws)
		}
		if len(raced) != nw+expired {
			fail("%d audit records for %d winning calls and %d expiries", len(raced), nw, expired)
		}

		// Exactly one call decides a pending request; at most one ends it.
		responds := len(winners[opApprove]) + len(winners[opDeny])
		terminal := len(winners[opDeny]) + len(winners[opRevoke]) + expired
		if startStatus[id] == store.StatusPending {
			expiredPending := 0
			if len(held) > 1 && held[1] == store.StatusExpired {
				expiredPending = 1
			}
			if responds+expiredPending != 1 {
				fail("%d approve, %d deny and %d sweep expiries won, want exactly one in all",
					len(winners[opApprove]), len(winners[opDeny]), expiredPending)
			}
		} else if responds != 0 {
			fail("%d responds won on a request that was not pending", responds)
		}
		if terminal > 1 {
			fail("%d transitions into a terminal status", terminal)
		}

		// The status the winners imply is the one stored and the one the
		// audit trail ends in.
		implied := startStatus[id]
		if len(winners[opApprove]) > 0 {
			implied = store.StatusApproved
		}
		if len(winners[opActuate]) > 0 {
			implied = store.StatusActuating
		}
		switch {
		case len(winners[opDeny]) > 0:
			implied = store.StatusDenied
		case len(winners[opRevoke]) > 0:
			implied = store.StatusRevoked
		case expired > 0:
			implied = store.StatusExpired
		}
		got, err := f.st.Request(f.org, id)
		if err != nil {
			fail("%v", err)
			continue
		}
		out.final[got.Status]++
		if last := held[len(held)-1]; got.Status != implied || last != implied {
			fail("stored status %s, audit trail ends in %s, winners imply %s", got.Status, last, implied)
		}

		// The stored request names the winners and nobody else.
		by := func(op raceOp) string {
			if ws := winners[op]; len(ws) == 1 {
				return ws[0].actor
			}
			return ""
		}
		if startStatus[id] == store.StatusPending && got.ApprovedBy != by(opApprove) {
			fail("approvedBy %q, approve won by %q", got.ApprovedBy, by(opApprove))
		}
		if got.DeniedBy != by(opDeny) || got.RevokedBy != by(opRevoke) {
			fail("deniedBy %q revokedBy %q, winners %q %q", got.DeniedBy, got.RevokedBy, by(opDeny), by(opRevoke))
		}
		if a := winners[opActuate]; len(a) == 1 {
			if got.ActuatedBy != a[0].actor || got.ActuationCommandID != a[0].cmd.ID {
				fail("actuated by %q with command %q, won by %q with command %q", got.ActuatedBy, got.ActuationCommandID, a[0].actor, a[0].cmd.ID)
			}
			err := f.st.View(func(sn *store.Snapshot) error {
				c, err := sn.Command(f.org, a[0].cmd.ID)
				if err == nil && c.ElevationRequestID != id {
					err = fmt.Errorf("command %s is for %s", c.ID, c.ElevationRequestID)
				}
				return err
			})
			if err != nil {
				fail("actuation command: %v", err)
			}
		}
		if expired > 0 {
			cause := expiredCauseWindow
			if held[len(held)-2] == store.StatusPending {
				cause = expiredCauseStale
			}
			if got.ExpiredCause != cause || !got.ExpiredAt.Equal(f.clock.Now()) {
				fail("expired %s cause %q, want %s cause %q", got.ExpiredAt, got.ExpiredCause, f.clock.Now(), cause)
			}
		}
	}

	for i := range results {
		for _, res := range results[i] {
			if res.op == opSweep {
				out.sweep.Grants += res.sweep.Grants
				out.sweep.Stale += res.sweep.Stale
			}
		}
	}
	if out.sweep.Stale != sweptStale || out.sweep.Grants != sweptGrants {
		t.Errorf("sweeps report %d stale and %d grants expired, the audit log %d and %d",
			out.sweep.Stale, out.sweep.Grants, sweptStale, sweptGrants)
	}
	checkIndexes(t, f, ids)
	t.Logf("paths %v, sweeps expired %+v", out.paths, out.sweep)
	return out
}

// checkIndexes checks that the status indexes and the sweep's queues name
// each raced request under its stored status only.
func checkIndexes(t *testing.T, f *fixture, ids []string) {
	t.Helper()
	want := map[store.Status]int{}
	var active, pending []string
	for _, id := range ids {
		r, err := f.st.Request(f.org, id)
		if err != nil {
			t.Fatal(err)
		}
		want[r.Status]++
		if r.Status.Active() {
			active = append(active, id)
		}
		if r.Status == store.StatusPending {
			pending = append(pending, id)
		}
	}
	for _, s := range store.Statuses {
		list, total, err := f.st.ListRequests(store.Filter{OrgID: f.org, Status: s})
		if err != nil {
			t.Fatal(err)
		}
		if total != want[s] || len(list) != want[s] {
			t.Errorf("status index lists %d (%d rows) %s requests, the store holds %d", total, len(list), s, want[s])
		}
		for _, r := range list {
			if r.Status != s {
				t.Errorf("status index lists %s under %s", r.Status, s)
			}
		}
	}
	// Far enough ahead, the sweep would take every active grant and every
	// pending request, and nothing else.
	var grants, stale []string
	far := f.clock.Now().Add(48 * time.Hour)
	err := f.st.Update(func(tx *store.Tx) error {
		g, s, _, err := tx.Due(far, DefaultPendingTTL, 10*len(ids))
		grants, stale = nil, nil
		for _, r := range g {
			grants = append(grants, r.ID)
		}
		for _, r := range s {
			stale = append(stale, r.ID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(grants)
	slices.Sort(stale)
	slices.Sort(active)
	slices.Sort(pending)
	if !slices.Equal(grants, active) || !slices.Equal(stale, pending) {
		t.Errorf("sweep queues hold grants %v and pending %v, the store has active %v and pending %v", grants, stale, active, pending)
	}
}

// pendingRequests ingests n uac requests that the org default leaves
// pending.
func pendingRequests(t *testing.T, f *fixture, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		r := f.uac(t, fmt.Sprintf(`C:\race\tool%d.exe`, i), "").Request
		if r.Status != store.StatusPending {
			t.Fatalf("ingest: %s, want pending", r.Status)
		}
		ids[i] = r.ID
	}
	return ids
}

// TestRaceTransitions races approve, deny, revoke and actuate on pending
// requests: one respond decides each request, then at most one actuation
// and at most one revocation follow an approval, in that order.
func TestRaceTransitions(t *testing.T) {
	out := runRace(t, raceScenario{
		prepare: func(t *testing.T, f *fixture) []string { return pendingRequests(t, f, raceRequests) },
		weights: [numRaceOps]int{opApprove: 2, opDeny: 1, opRevoke: 3, opActuate: 3},
	})
	if n := out.final[store.StatusPending] + out.final[store.StatusExpired]; n != 0 {
		t.Errorf("%d requests left pending or expired", n)
	}
	if out.sweep != (SweepResult{}) {
		t.Errorf("sweep result %+v without sweeps", out.sweep)
	}
}

// TestRaceSweepStalePending races the expiry sweep against the responders
// on requests already past the pending TTL: for each request exactly one of
// the sweep's expiry and a respond wins.
func TestRaceSweepStalePending(t *testing.T) {
	out := runRace(t, raceScenario{
		prepare: func(t *testing.T, f *fixture) []string {
			ids := pendingRequests(t, f, raceRequests)
			f.clock.Set(t0.Add(DefaultPendingTTL + time.Minute))
			return ids
		},
		weights: [numRaceOps]int{opApprove: 15, opDeny: 15, opRevoke: 10, opActuate: 10, opSweep: 2},
	})
	if out.final[store.StatusPending] != 0 {
		t.Errorf("%d requests left pending", out.final[store.StatusPending])
	}
	if out.sweep.Grants != 0 {
		t.Errorf("sweep expired %d grants approved within their window", out.sweep.Grants)
	}
}

// TestRaceSweepExpiredGrants races the sweep against revocation and
// actuation of grants past their expiresAt: per grant, exactly one of the
// sweep's expiry and a revoke wins, and actuation always loses.
func TestRaceSweepExpiredGrants(t *testing.T) {
	out := runRace(t, raceScenario{
		prepare: func(t *testing.T, f *fixture) []string {
			ids := pendingRequests(t, f, raceRequests)
			for i, id := range ids {
				if _, err := f.svc.Respond(RespondInput{OrgID: f.org, ID: id, Decision: Approve, Actor: Actor{ID: "admin"}}); err != nil {
					t.Fatal(err)
				}
				if i%2 == 0 {
					if _, err := f.svc.Actuate(ActuateInput{OrgID: f.org, DeviceID: f.device, RequestID: id, Actor: Actor{ID: "admin"}}); err != nil {
						t.Fatal(err)
					}
				}
			}
			f.clock.Set(t0.Add(raceGrantExpiry + time.Minute))
			return ids
		},
		weights:    [numRaceOps]int{opApprove: 1, opDeny: 1, opRevoke: 8, opActuate: 8, opSweep: 1},
		pastExpiry: true,
	})
	if out.final[store.StatusExpired]+out.final[store.StatusRevoked] != raceRequests {
		t.Errorf("final statuses %v, want every grant expired or revoked", out.final)
	}
	if out.sweep.Stale != 0 || out.sweep.Grants != out.final[store.StatusExpired] {
		t.Errorf("sweeps expired %+v, %d grants ended expired", out.sweep, out.final[store.StatusExpired])
	}
}
