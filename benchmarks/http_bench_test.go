package benchmarks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/server"
	"github.com/elevate-pam/elevate/store"
)

// ---------------------------------------------------------------------------
// HTTP API fixture
// ---------------------------------------------------------------------------

const (
	httpRules   = 201 // 200 background rules of the generator's mix + the late-match target
	httpDevices = 32  // agents, each with its own token
	httpBodies  = 32  // agent bodies per device, each recording a request
	httpWarm    = 4   // untimed requests per client before a timed run
)

// httpSecret signs the benchmark user's HS256 bearer token.
var httpSecret = []byte("elevate-http-benchmark-secret-0123456789abcdef")

// httpFixture is one organisation with the 201-rule set of the decision
// benchmark's generator, its three sites, 32 active devices with agent
// tokens, a user token (organization scope, devices:read), the decide body
// and, per device, agent bodies that the rule set records (none ignored,
// so every ingest answers 201 and writes a request).
type httpFixture struct {
	tenant
	tokens []string       // agent token of devices[i]
	bodies [][][]byte     // agent bodies of devices[i]
	user   string         // bearer JWT of the decide caller
	decide []byte         // POST /api/v1/pam/decide body
	mix    map[string]int // status each agent body is recorded with
}

var httpFixtures memo[int, *httpFixture]

func getHTTPFixture(tb testing.TB) *httpFixture {
	tb.Helper()
	return httpFixtures.get(httpRules, func() *httpFixture {
		f, err := buildHTTPFixture()
		if err != nil {
			tb.Fatalf("HTTP fixture: %v", err)
		}
		return f
	})
}

// agentBody is the agent's elevation-request body (snake_case).
type agentBody struct {
	SubjectUsername string   `json:"subject_username"`
	Path            string   `json:"target_executable_path"`
	Hash            string   `json:"target_executable_hash,omitempty"`
	Signer          string   `json:"target_executable_signer,omitempty"`
	Thumbprint      string   `json:"target_executable_signer_thumbprint,omitempty"`
	PID             int64    `json:"pid"`
	ParentImage     string   `json:"parent_image,omitempty"`
	CommandLine     string   `json:"command_line,omitempty"`
	ObservedAt      string   `json:"observed_at"`
	AdGroups        []string `json:"ad_groups,omitempty"`
}

// httpObservedAt is every agent body's observed_at (and the decide
// observation's observedAt): the decision benchmark's instant, so
// time-window rules decide the same way in every run.
var httpObservedAt = evalAt

func buildHTTPFixture() (*httpFixture, error) {
	g := newRuleGen(httpRules)                                  // the generator state generateRules starts from: same vendors, users, groups, sites
	r := rand.New(rand.NewPCG(storeSeedHi, 0x4854545042303031)) // "HTTPB001"
	f := &httpFixture{tenant: tenant{org: store.Org{ID: uuid4(r), Name: "Acme HTTP"}}, mix: map[string]int{}}
	for i, id := range g.sites {
		f.sites = append(f.sites, store.Site{ID: id, OrgID: f.org.ID, Name: fmt.Sprintf("Site %d", i+1)})
	}
	for i := range httpDevices {
		tok := fmt.Sprintf("agt_bench_%02d_%s", i+1, hex64(r)[:32])
		f.tokens = append(f.tokens, tok)
		f.devices = append(f.devices, store.Device{ID: uuid4(r), OrgID: f.org.ID, SiteID: g.sites[i%len(g.sites)],
			Hostname: fmt.Sprintf("WIN-HTTP-%03d", i+1), Status: store.DeviceActive, OS: "windows", TokenHash: store.TokenHash(tok)})
	}
	for _, rule := range generateRules(httpRules) {
		rule.OrgID = f.org.ID
		f.rules = append(f.rules, rule)
	}
	user, err := server.MintToken(httpSecret, server.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "7d0c2a52-1b8e-4f4e-9a51-3c1d00000001",
			IssuedAt: jwt.NewNumericDate(evalAt), ExpiresAt: jwt.NewNumericDate(evalAt.Add(24 * time.Hour))},
		Name: "Bench Operator", Scope: server.ScopeOrganization, OrgID: f.org.ID,
		Permissions: []string{server.PermRead},
	})
	if err != nil {
		return nil, err
	}
	f.user = user

	// The decide body: the late-match observation at the first site, which
	// only the target rule matches.
	obs := lateMatchInput(g.sites[0]).Observation
	at := httpObservedAt
	obs.ObservedAt = &at
	f.decide, err = json.Marshal(map[string]any{"flowType": engine.FlowUAC, "observation": obs, "explain": false})
	if err != nil {
		return nil, err
	}

	// Agent bodies: signed software from the rule set's vendors (which its
	// signer rules decide either way), the late-match updater
	// (auto-approved) and unknown installers (org default: pending). Each
	// is sent once to a server over an in-memory store with the same rules;
	// those it records (201) are kept, ignored ones (200) dropped.
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := f.setup(st); err != nil {
		return nil, err
	}
	h := f.handler(lifecycle.New(lifecycle.Config{Store: st, Clock: &stepClock{base: evalAt}}))
	observed := httpObservedAt.Format(time.RFC3339Nano)
	f.bodies = make([][][]byte, len(f.devices))
	for i, dev := range f.devices {
		for tries := 0; len(f.bodies[i]) < httpBodies; tries++ {
			if tries == 20*httpBodies {
				return nil, fmt.Errorf("device %d: only %d of %d candidate bodies record a request", i, len(f.bodies[i]), tries)
			}
			a := agentBody{SubjectUsername: g.pick(g.users), PID: int64(1000 + r.IntN(60000)), ObservedAt: observed,
				AdGroups: []string{`ACME\Domain Users`, g.pick(g.groups), g.pick(g.groups)}}
			switch x := r.IntN(100); {
			case x < 50:
				v := g.vendors[r.IntN(len(g.vendors))]
				a.Path = `C:\Program Files\` + v.dir + `\` + pick(r, exeNames) + ".exe"
				a.Hash, a.Signer, a.Thumbprint = hex64(r), v.cn, hex64(r)
				a.ParentImage, a.CommandLine = `C:\Windows\explorer.exe`, `"`+a.Path+`" /update`
			case x < 70:
				o := lateMatchInput("").Observation
				a.SubjectUsername, a.Path, a.Hash, a.Signer, a.Thumbprint = o.SubjectUsername, o.TargetExecutablePath,
					o.TargetExecutableHash, o.TargetExecutableSigner, o.TargetExecutableSignerThumbprint
				a.ParentImage, a.CommandLine, a.AdGroups = o.ParentImage, o.CommandLine, o.AdGroups
			default:
				o := noMatchInput("").Observation
				a.Path, a.Hash, a.Signer, a.Thumbprint = o.TargetExecutablePath, hex64(r), o.TargetExecutableSigner, o.TargetExecutableSignerThumbprint
				a.ParentImage, a.CommandLine = o.ParentImage, o.CommandLine
			}
			body, err := json.Marshal(a)
			if err != nil {
				return nil, err
			}
			req := httptest.NewRequest("POST", "/api/v1/agents/"+dev.ID+"/elevation-requests", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+f.tokens[i])
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			var ans struct {
				Success bool
				ID      *string
				Status  string
			}
			if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
				return nil, fmt.Errorf("device %d: answer %d is not JSON: %s", i, w.Code, w.Body.Bytes())
			}
			switch {
			case w.Code == http.StatusOK && ans.Status == "ignored":
				continue
			case w.Code != http.StatusCreated || !ans.Success || ans.ID == nil || ans.Status == "":
				return nil, fmt.Errorf("device %d: %d %s", i, w.Code, w.Body.Bytes())
			}
			f.bodies[i] = append(f.bodies[i], body)
			f.mix[ans.Status]++
		}
	}
	return f, nil
}

// handler is the API server over lc, configured as served except for the
// agents' rate limit, raised so that it never refuses: the benchmark
// measures serving, not throttling. Logs are discarded.
func (f *httpFixture) handler(lc *lifecycle.Service) http.Handler {
	return server.New(server.Config{
		Lifecycle:     lc,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		JWTSecret:     httpSecret,
		RateBurst:     1e12,
		RatePerSecond: 1e12,
	})
}

// httpEnv is the API served on a loopback port over a fresh store on disk
// with synced writes (store.Options{}: every answered ingest is durable).
type httpEnv struct {
	st  *store.Store
	srv *httptest.Server
}

func newHTTPEnv(tb testing.TB, f *httpFixture) *httpEnv {
	tb.Helper()
	st, err := store.Open(tb.TempDir(), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.setup(st); err != nil {
		st.Close()
		tb.Fatal(err)
	}
	srv := httptest.NewServer(f.handler(lifecycle.New(lifecycle.Config{Store: st, Clock: &stepClock{base: evalAt}})))
	tb.Cleanup(func() { srv.Close(); st.Close() })
	return &httpEnv{st: st, srv: srv}
}

// HTTP operations the benchmark measures.
const (
	opHealthz = "healthz" // GET /healthz
	opDecide  = "decide"  // POST /api/v1/pam/decide
	opIngest  = "ingest"  // POST /api/v1/agents/:id/elevation-requests
)

// targets gives each of n clients what it sends. For ingest, client i is
// the agent of device i: its own token, URL and bodies.
func (f *httpFixture) targets(op, base string, n int) []loadTarget {
	ts := make([]loadTarget, n)
	for i := range ts {
		switch op {
		case opHealthz:
			ts[i] = loadTarget{method: "GET", url: base + "/healthz", want: http.StatusOK, wantBody: []byte(`"status":"ok"`)}
		case opDecide:
			ts[i] = loadTarget{method: "POST", url: base + "/api/v1/pam/decide", token: f.user, bodies: [][]byte{f.decide},
				want: http.StatusOK, wantBody: []byte(`"ruleId":"` + targetRuleID + `"`)}
		case opIngest:
			d := i % len(f.devices)
			ts[i] = loadTarget{method: "POST", url: base + "/api/v1/agents/" + f.devices[d].ID + "/elevation-requests",
				token: f.tokens[d], bodies: f.bodies[d], want: http.StatusCreated, wantBody: []byte(`"success":true`)}
		default:
			panic("unknown HTTP benchmark operation " + op)
		}
	}
	return ts
}

// ---------------------------------------------------------------------------
// Benchmarks: HTTP API on loopback
// ---------------------------------------------------------------------------

// httpCases are the measured operations and their client counts.
var httpCases = []struct {
	op      string
	clients []int
}{
	{opHealthz, []int{1, 16}},
	{opDecide, []int{1, 16}},
	{opIngest, []int{1, 16, 32}},
}

// BenchmarkHTTP measures the API served by a real net/http server on
// 127.0.0.1 (httptest.NewServer around server.New) from a Go load generator
// in the same process: `clients` goroutines, each sending its requests one
// after another over its own keep-alive connection (shared
// http.Transport). b.N is the total number of requests, split evenly among
// the clients; every answer's status and a marker in its body are checked,
// and the first wrong one fails the benchmark. Reported: req/s (b.N ÷ wall
// time of the run), p50-µs and p99-µs (nearest rank over every request's
// latency, from building the request to reading the answer's last byte)
// and cpu-µs/req (the process's user + system CPU time during the run ÷
// b.N: client, server, store and runtime together); B/op and allocs/op
// count the client's allocations too.
//
//   - op=healthz: GET /healthz, the same server, middleware (CORS, request
//     timeout, metrics) and dispatch (version check, router) with a handler
//     that only answers: the ceiling of the loopback, net/http, the
//     middleware and the load generator on the same cores.
//   - op=decide: POST /api/v1/pam/decide, a user JWT (HS256, organization
//     scope, devices:read) and the late-match uac_intercept observation,
//     which only the last of the organisation's 201 rules matches
//     (auto_approved); nothing is stored.
//   - op=ingest: POST /api/v1/agents/:id/elevation-requests, client i is
//     the agent of device i with its own token, cycling through 32 bodies
//     that the rule set records (201); every answer is durable (synced
//     badger store on disk). req/fsync is requests per synced commit.
func BenchmarkHTTP(b *testing.B) {
	f := getHTTPFixture(b)
	for _, c := range httpCases {
		b.Run("op="+c.op, func(b *testing.B) {
			for _, n := range c.clients {
				b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { benchHTTP(b, f, c.op, n) })
			}
		})
	}
}

func benchHTTP(b *testing.B, f *httpFixture, op string, clients int) {
	e := newHTTPEnv(b, f)
	g := newLoadGen(f.targets(op, e.srv.URL, clients))
	defer g.close()
	if err := g.warm(httpWarm); err != nil {
		b.Fatal(err)
	}
	before, cpu0 := e.st.Stats(), cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	res, err := g.run(b.N)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if err != nil {
		b.Fatal(err)
	}
	after := e.st.Stats()
	if op == opIngest {
		if got := after.Ops - before.Ops; got != b.N {
			b.Fatalf("store committed %d operations, want %d", got, b.N)
		}
		if c := after.Commits - before.Commits; c > 0 {
			b.ReportMetric(float64(b.N)/float64(c), "req/fsync")
		}
	}
	b.ReportMetric(res.perSecond(), "req/s")
	b.ReportMetric(float64(res.quantile(0.50))/float64(time.Microsecond), "p50-µs")
	b.ReportMetric(float64(res.quantile(0.99))/float64(time.Microsecond), "p99-µs")
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/req")
}

// ---------------------------------------------------------------------------
// Fixture checks (plain go test)
// ---------------------------------------------------------------------------

// TestHTTPBenchFixtures checks what BenchmarkHTTP relies on, without
// timing: the answers it expects, that every operation's load runs and is
// counted, that ingests are stored, and that a wrong answer fails a run.
func TestHTTPBenchFixtures(t *testing.T) {
	f := getHTTPFixture(t)
	if len(f.rules) != httpRules || len(f.devices) != httpDevices {
		t.Fatalf("%d rules, %d devices", len(f.rules), len(f.devices))
	}
	total, size := 0, 0
	for i, bs := range f.bodies {
		if len(bs) != httpBodies {
			t.Fatalf("device %d has %d bodies", i, len(bs))
		}
		total += len(bs)
		for _, b := range bs {
			size += len(b)
		}
	}
	t.Logf("agent bodies by recorded status: %v; mean %d bytes; decide body %d bytes; user token %d bytes",
		f.mix, size/total, len(f.decide), len(f.user))
	if f.mix["auto_approved"] == 0 || f.mix["pending"] == 0 || f.mix["auto_approved"]+f.mix["pending"] == total {
		t.Errorf("agent bodies should be recorded with several statuses, got %v", f.mix)
	}

	e := newHTTPEnv(t, f)
	// The decide answer in full: the target rule decides.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/pam/decide", bytes.NewReader(f.decide))
	req.Header.Set("Authorization", "Bearer "+f.user)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ans struct {
		Success  bool
		Decision struct {
			Outcome   engine.Outcome
			RuleID    *string
			DecidedBy *engine.DecidedBy
		}
	}
	if err := json.Unmarshal(raw, &ans); err != nil || resp.StatusCode != 200 || !ans.Success ||
		ans.Decision.Outcome != engine.OutcomeAutoApproved || ans.Decision.RuleID == nil || *ans.Decision.RuleID != targetRuleID ||
		ans.Decision.DecidedBy == nil || *ans.Decision.DecidedBy != engine.DecidedByRule {
		t.Fatalf("decide: %d %s (%v)", resp.StatusCode, raw, err)
	}

	const clients, n = 4, 4 * 6
	for _, op := range []string{opHealthz, opDecide, opIngest} {
		g := newLoadGen(f.targets(op, e.srv.URL, clients))
		if err := g.warm(1); err != nil {
			t.Fatalf("%s warm-up: %v", op, err)
		}
		res, err := g.run(n)
		g.close()
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if res.n != n || len(res.lat) != n || res.quantile(0.5) <= 0 || res.quantile(0.99) < res.quantile(0.5) || res.perSecond() <= 0 {
			t.Fatalf("%s: %d requests, p50 %v, p99 %v, %.0f/s", op, res.n, res.quantile(0.5), res.quantile(0.99), res.perSecond())
		}
	}
	if _, got, err := e.st.ListRequests(store.Filter{OrgID: f.org.ID}); err != nil || got != clients+n {
		t.Fatalf("%d requests stored (%v), want %d", got, err, clients+n)
	}

	// A wrong answer fails the run: another device's token is refused.
	bad := f.targets(opIngest, e.srv.URL, 2)
	bad[1].token = f.tokens[0]
	g := newLoadGen(bad)
	defer g.close()
	if _, err := g.run(10); err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Fatalf("run with a refused client: %v", err)
	}
}
