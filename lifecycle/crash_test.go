package lifecycle

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

var (
	crashRounds = flag.Int("crash.rounds", 3, "kill-and-reopen rounds of TestCrashRecovery")
	crashSeed   = flag.Uint64("crash.seed", 0, "seed of TestCrashRecovery's kill points and the child's choices (0: taken from the clock)")
)

// Environment of the child process TestCrashRecovery runs.
const (
	crashDirEnv   = "ELEVATE_CRASH_DIR"   // the data directory; its presence makes TestCrashChild run
	crashRoundEnv = "ELEVATE_CRASH_ROUND" // 1 for the first round, which creates the inventory
	crashSeedEnv  = "ELEVATE_CRASH_SEED"
)

// The inventory the child creates in the first round and finds later.
const (
	crashOrg     = "01900000-0000-7000-8000-00000000c0a1"
	crashSite    = "01900000-0000-7000-8000-00000000c0a2"
	crashDevice  = "01900000-0000-7000-8000-00000000c0a3"
	crashWorkers = 8
)

// TestCrashChild is the process TestCrashRecovery kills: crashWorkers
// goroutines walk fresh requests through the lifecycle forever, writing
// "ACK <id> <status>" to stdout after each call has returned, that is after
// its synced commit. It does nothing unless run by TestCrashRecovery.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrashRecovery")
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	// The parent holds stdin open until it kills the child: end of input
	// means the parent is gone.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		crashExit("stdin closed: parent gone")
	}()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		crashExit("open: %v", err)
	}
	var org *store.Org
	err = st.View(func(sn *store.Snapshot) error {
		var err error
		org, err = sn.Org(crashOrg)
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound) && round == 1:
		err = st.Update(func(tx *store.Tx) error {
			if err := tx.PutOrg(&store.Org{ID: crashOrg, Name: "crash", ActuatorEnabled: true}); err != nil {
				return err
			}
			if err := tx.PutSite(&store.Site{ID: crashSite, OrgID: crashOrg, Name: "HQ"}); err != nil {
				return err
			}
			return tx.PutDevice(&store.Device{ID: crashDevice, OrgID: crashOrg, SiteID: crashSite, Hostname: "WIN-CRASH-01"})
		})
		if err != nil {
			crashExit("creating the inventory: %v", err)
		}
	case err != nil:
		crashExit("round %d: organisation: %v", round, err)
	case !org.ActuatorEnabled:
		crashExit("round %d: stored organisation %+v", round, org)
	default:
		if err := st.View(func(sn *store.Snapshot) error { _, err := sn.Device(crashDevice); return err }); err != nil {
			crashExit("round %d: device: %v", round, err)
		}
	}
	svc := New(Config{Store: st})
	crashLine("READY")
	for w := range crashWorkers {
		go crashWorker(svc, rand.New(rand.NewPCG(seed, uint64(w))), round, w)
	}
	select {}
}

// crashWorker ingests a request, then maybe responds, then maybe actuates
// and maybe revokes it, acknowledging each step, forever.
func crashWorker(svc *Service, rng *rand.Rand, round, w int) {
	actor := Actor{ID: fmt.Sprintf("admin-%d", w), Name: "Admin"}
	for n := 0; ; n++ {
		now := time.Now().UTC()
		res, err := svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: crashDevice, Observation: engine.Observation{
			SubjectUsername: `crash\user`, TargetExecutablePath: fmt.Sprintf(`C:\crash\r%d\w%d\%d.exe`, round, w, n), ObservedAt: &now}})
		if err != nil || res.Request == nil || res.Request.Status != store.StatusPending {
			crashExit("ingest: %+v %v", res, err)
		}
		id := res.Request.ID
		crashAck(id, store.StatusPending)
		if rng.IntN(8) == 0 {
			continue // left pending
		}
		d := Approve
		if rng.IntN(4) == 0 {
			d = Deny
		}
		r, err := svc.Respond(RespondInput{OrgID: crashOrg, ID: id, Decision: d, Actor: actor})
		if err != nil {
			crashExit("respond %s: %v", id, err)
		}
		crashAck(id, r.Status)
		if d == Deny {
			continue
		}
		next := rng.IntN(4) // 0: stays approved, 1: revoked, 2: actuating, 3: actuating then revoked
		if next >= 2 {
			if _, err := svc.Actuate(ActuateInput{OrgID: crashOrg, DeviceID: crashDevice, RequestID: id, Actor: actor}); err != nil {
				crashExit("actuate %s: %v", id, err)
			}
			crashAck(id, store.StatusActuating)
		}
		if next == 1 || next == 3 {
			r, err := svc.Revoke(RevokeInput{OrgID: crashOrg, ID: id, Reason: "crash test", Actor: actor})
			if err != nil {
				crashExit("revoke %s: %v", id, err)
			}
			crashAck(id, r.Status)
		}
	}
}

// crashAck reports a transition that has returned. One write of less than
// PIPE_BUF bytes reaches a pipe whole, so lines never interleave.
func crashAck(id string, s store.Status) { crashLine("ACK " + id + " " + string(s)) }

func crashLine(s string) {
	if _, err := os.Stdout.Write([]byte(s + "\n")); err != nil {
		crashExit("stdout: %v", err)
	}
}

func crashExit(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", a...)
	os.Exit(2)
}

// crashRound is what the parent read from one child.
type crashRound struct {
	acks    map[string][]store.Status // request → acknowledged statuses, in order
	newAcks int                       // ACK lines
	killed  bool
	stderr  string
}

// TestCrashRecovery runs TestCrashChild in a child process on one data
// directory, kills it with SIGKILL at a random point, reopens the store and
// checks that every acknowledged transition survived, that nothing but the
// calls in flight at the kill (at most one per worker) went further, and
// that the audit chain is whole; then again, -crash.rounds times.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("inside the child process")
	}
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (-crash.seed=%d draws the same kill points and child choices)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x63726173))
	dir := t.TempDir()

	acked := map[string][]store.Status{} // every round's acknowledgements
	known := map[string]store.Status{}   // stored status of every request after the previous round
	for round := 1; round <= *crashRounds; round++ {
		cr := runCrashChild(t, dir, round, rng.Uint64(), rng)
		if t.Failed() {
			t.Logf("child stderr:\n%s", cr.stderr)
			return
		}
		for id, ss := range cr.acks {
			if _, ok := known[id]; ok {
				t.Fatalf("round %d acknowledged %s, a request of an earlier round", round, id)
			}
			acked[id] = ss
		}
		var unacked int
		known, unacked = checkCrashStore(t, dir, round, acked, known)
		t.Logf("round %d: %d acknowledgements for %d requests, %d unacknowledged transitions; %d requests stored",
			round, cr.newAcks, len(cr.acks), unacked, len(known))
		if t.Failed() {
			t.Logf("child stderr:\n%s", cr.stderr)
			return
		}
	}
}

// runCrashChild starts the child on dir and kills it after a random number
// of acknowledgements or a random delay, whichever comes first, reading its
// stdout to the end.
func runCrashChild(t *testing.T, dir string, round int, childSeed uint64, rng *rand.Rand) crashRound {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round),
		crashSeedEnv+"="+strconv.FormatUint(childSeed, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// Only complete lines count: a line cut short by the kill has no
	// newline and ends the stream with an error.
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()

	cr := crashRound{acks: map[string][]store.Status{}}
	killAfter := 1 + rng.IntN(400)
	delay := time.Duration(100+rng.IntN(500)) * time.Millisecond
	var timer <-chan time.Time
	ready := false
	kill := func() {
		if !cr.killed {
			cmd.Process.Kill()
			cr.killed = true
		}
	}
	for lines != nil {
		select {
		case line, ok := <-lines:
			if !ok {
				lines = nil
				break
			}
			f := strings.Fields(line)
			switch {
			case line == "READY" && !ready:
				ready = true
				timer = time.After(delay)
			case len(f) == 3 && f[0] == "ACK" && ready:
				s := store.Status(f[2])
				if !s.Valid() {
					t.Errorf("round %d: ACK of unknown status: %q", round, line)
				}
				cr.acks[f[1]] = append(cr.acks[f[1]], s)
				cr.newAcks++
				if cr.newAcks >= killAfter {
					kill()
				}
			default:
				t.Errorf("round %d: unexpected line from the child: %q", round, line)
			}
		case <-timer:
			timer = nil
			kill()
		}
	}
	werr := cmd.Wait()
	cr.stderr = stderr.String()
	if !cr.killed {
		t.Errorf("round %d: child exited before it was killed: %v", round, werr)
	}
	if strings.Contains(cr.stderr, "DATA RACE") {
		t.Errorf("round %d: the race detector reported in the child", round)
	}
	return cr
}

// checkCrashStore reopens the store after a kill and checks it against
// what the child acknowledged. It returns every request's stored status
// and the number of transitions committed but not acknowledged.
func checkCrashStore(t *testing.T, dir string, round int, acked map[string][]store.Status, known map[string]store.Status) (map[string]store.Status, int) {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatalf("round %d: reopening after the kill: %v", round, err)
	}
	defer st.Close()
	mustVerify(t, st)

	stored := map[string]*store.Request{}
	err = st.ScanRequests(store.ScanOptions{OrgID: crashOrg}, func(r *store.Request) bool {
		stored[r.ID] = r
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	trails, _ := auditBySubject(t, st, crashOrg)
	for subject := range trails {
		if stored[subject] == nil {
			t.Errorf("round %d: audit records about %s, which is not a stored request", round, subject)
		}
	}

	out := map[string]store.Status{}
	unacked := 0 // transitions committed past the last acknowledgement
	for id, r := range stored {
		out[id] = r.Status
		states, err := checkPath(trails[id])
		if err != nil {
			t.Errorf("round %d: request %s: audit trail: %v", round, id, err)
			continue
		}
		if last := states[len(states)-1]; last != r.Status {
			t.Errorf("round %d: request %s is %s, its audit trail ends in %s", round, id, r.Status, last)
		}
		if r.Status == store.StatusActuating {
			err := st.View(func(sn *store.Snapshot) error {
				_, err := sn.Command(crashOrg, r.ActuationCommandID)
				return err
			})
			if err != nil {
				t.Errorf("round %d: actuating request %s: command %q: %v", round, id, r.ActuationCommandID, err)
			}
		}
		if prev, ok := known[id]; ok {
			// Nothing touches an earlier round's requests.
			if prev != r.Status {
				t.Errorf("round %d: request %s of an earlier round moved from %s to %s", round, id, prev, r.Status)
			}
			continue
		}
		acks := acked[id]
		if len(acks) == 0 {
			// Ingested, killed before the acknowledgement.
			if len(states) != 1 {
				t.Errorf("round %d: unacknowledged request %s went through %v", round, id, states)
			}
			unacked++
			continue
		}
		// The acknowledgements are the first statuses of the trail, and
		// at most one more transition (the call in flight) follows them.
		if len(states) < len(acks) || !slices.Equal(states[:len(acks)], acks) {
			t.Errorf("round %d: request %s acknowledged %v, its audit trail holds %v", round, id, acks, states)
			continue
		}
		if !reachable(acks[len(acks)-1], r.Status) {
			t.Errorf("round %d: request %s acknowledged %s, stored %s", round, id, acks[len(acks)-1], r.Status)
		}
		switch extra := len(states) - len(acks); extra {
		case 0:
		case 1:
			unacked++
		default:
			t.Errorf("round %d: request %s went %d transitions past its acknowledgements %v: %v", round, id, extra, acks, states)
		}
	}
	for id := range acked {
		if stored[id] == nil {
			t.Errorf("round %d: acknowledged request %s (%v) is not stored", round, id, acked[id])
		}
	}
	for id := range known {
		if stored[id] == nil {
			t.Errorf("round %d: request %s of an earlier round is gone", round, id)
		}
	}
	if unacked > crashWorkers {
		t.Errorf("round %d: %d transitions committed without acknowledgement, but only %d calls can be in flight", round, unacked, crashWorkers)
	}
	return out, unacked
}
