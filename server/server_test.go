package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/store"
)

var t0 = time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)

type env struct {
	st     *store.Store
	lc     *lifecycle.Service
	clock  *lifecycle.FakeClock
	srv    *httptest.Server
	org    string
	device string
	token  string
	logs   *bytes.Buffer
	server *Server
}

// newEnv serves the API on a loopback port over a store on disk holding
// one org, one active device (agent token "tok-1") and the given rules.
func newEnv(t *testing.T, c Config, rules ...engine.Rule) *env {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, clock: lifecycle.NewFakeClock(t0), org: store.NewID(t0), device: store.NewID(t0), token: "tok-1", logs: &bytes.Buffer{}}
	e.lc = lifecycle.New(lifecycle.Config{Store: st, Clock: e.clock})
	err = st.Update(func(tx *store.Tx) error {
		if err := tx.PutOrg(&store.Org{ID: e.org, Name: "acme"}); err != nil {
			return err
		}
		if err := tx.PutDevice(&store.Device{ID: e.device, OrgID: e.org, Hostname: "WIN-1", TokenHash: store.TokenHash(e.token)}); err != nil {
			return err
		}
		for i := range rules {
			r := rules[i]
			r.ID, r.OrgID, r.CreatedAt = store.NewID(t0), e.org, t0.Add(time.Duration(i))
			if _, err := tx.PutRule(&r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Lifecycle = e.lc
	c.Logger = slog.New(slog.NewTextHandler(e.logs, nil))
	e.server = New(c)
	var h http.Handler = e.server
	for _, wrap := range testHandlerWraps {
		h = wrap(t, h)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(func() { e.srv.Close(); st.Close() })
	return e
}

// testHandlerWraps wrap every test server's handler (the OpenAPI test
// checks each response against the document this way).
var testHandlerWraps []func(t *testing.T, h http.Handler) http.Handler

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) do(t *testing.T, method, path, token, contentType string, body io.Reader) reply {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %q", method, path, raw)
	}
	return r
}

func (e *env) ingest(t *testing.T, body string) reply {
	t.Helper()
	return e.do(t, "POST", "/api/v1/agents/"+e.device+"/elevation-requests", e.token, "application/json", strings.NewReader(body))
}

func errCode(r reply) string {
	m, _ := r.body["error"].(map[string]any)
	s, _ := m["code"].(string)
	return s
}

func errTarget(r reply) string {
	m, _ := r.body["error"].(map[string]any)
	s, _ := m["target"].(string)
	return s
}

const firefox = `{"subject_username":"acme\\sarah","target_executable_path":"C:\\Users\\sarah\\Downloads\\FirefoxSetup.exe",
	"target_executable_signer":"Mozilla Corporation","pid":4242,"observed_at":"2026-06-15T09:59:00Z","extra_key":"ignored"}`

func TestAgentIngest(t *testing.T) {
	e := newEnv(t, Config{},
		engine.Rule{Name: "mozilla", Enabled: true, Priority: 1, Verdict: engine.VerdictAutoApprove, MatchSigner: ptr("Mozilla Corporation")},
		engine.Rule{Name: "updater", Enabled: true, Priority: 2, Verdict: engine.VerdictIgnore, MatchSigner: ptr("Updater Inc")})
	r := e.ingest(t, firefox)
	if r.status != http.StatusCreated || r.body["status"] != "auto_approved" || r.body["success"] != true {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	stored, err := e.st.Request(e.org, r.body["id"].(string))
	if err != nil || stored.SubjectUsername != `acme\sarah` || *stored.PID != 4242 || !stored.RequestedAt.Equal(t0.Add(-time.Minute)) {
		t.Fatalf("%+v %v", stored, err)
	}
	r = e.ingest(t, `{"subject_username":"u","target_executable_path":"C:\\x.exe"}`)
	if r.status != http.StatusCreated || r.body["status"] != "pending" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	r = e.ingest(t, `{"subject_username":"u","target_executable_path":"C:\\u.exe","target_executable_signer":"Updater Inc"}`)
	if r.status != http.StatusOK || r.body["status"] != "ignored" || r.body["id"] != nil {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if _, total, _ := e.st.ListRequests(store.Filter{OrgID: e.org}); total != 2 {
		t.Fatalf("%d rows stored", total)
	}
}

func TestAgentAuth(t *testing.T) {
	e := newEnv(t, Config{})
	other := store.NewID(t0)
	quarantined := store.NewID(t0)
	if err := e.st.Update(func(tx *store.Tx) error {
		if err := tx.PutDevice(&store.Device{ID: other, OrgID: e.org, Hostname: "B", TokenHash: store.TokenHash("tok-2")}); err != nil {
			return err
		}
		return tx.PutDevice(&store.Device{ID: quarantined, OrgID: e.org, Hostname: "Q", TokenHash: store.TokenHash("tok-3"),
			Status: store.DeviceQuarantined})
	}); err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/agents/" + e.device + "/elevation-requests"
	for name, c := range map[string]struct {
		path, token string
		status      int
	}{
		"no token":             {path, "", 401},
		"unknown token":        {path, "nope", 401},
		"another device's":     {path, "tok-2", 401},
		"quarantined device":   {"/api/v1/agents/" + quarantined + "/elevation-requests", "tok-3", 403},
		"id that is not UUID":  {"/api/v1/agents/x/elevation-requests", "tok-1", 401},
		"upper-case device id": {"/api/v1/agents/" + strings.ToUpper(e.device) + "/elevation-requests", "tok-1", 201},
	} {
		r := e.do(t, "POST", c.path, c.token, "application/json", strings.NewReader(firefox))
		if r.status != c.status {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		if c.status == 401 && !strings.HasPrefix(r.header.Get("Www-Authenticate"), "Bearer") {
			t.Errorf("%s: no WWW-Authenticate", name)
		}
	}
	if _, total, _ := e.st.ListRequests(store.Filter{OrgID: e.org}); total != 1 {
		t.Fatalf("%d rows stored (only the authenticated request may be)", total)
	}
}

func TestAgentBodyChecks(t *testing.T) {
	e := newEnv(t, Config{})
	big := `{"subject_username":"u","target_executable_path":"C:\\x.exe","command_line":"` + strings.Repeat("a", 40<<10) + `"}`
	if r := e.ingest(t, big); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("big body: %d %s", r.status, r.raw)
	}
	// A chunked body has no Content-Length: the cap counts bytes read.
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte(big)); pw.Close() }()
	if r := e.do(t, "POST", "/api/v1/agents/"+e.device+"/elevation-requests", e.token, "application/json", pr); r.status != 413 {
		t.Fatalf("chunked big body: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "POST", "/api/v1/agents/"+e.device+"/elevation-requests", e.token, "text/plain", strings.NewReader(firefox)); r.status != 415 {
		t.Fatalf("text/plain: %d", r.status)
	}
	for body, target := range map[string]string{
		`{"target_executable_path":"C:\\x.exe"}`: "subject_username",
		`{"subject_username":"u"}`:               "target_executable_path",
		`{"subject_username":"u","target_executable_path":"C:\\x","target_executable_hash":"ABC"}`:      "target_executable_hash",
		`{"subject_username":"u","target_executable_path":"C:\\x","pid":-1}`:                            "pid",
		`{"subject_username":"u","target_executable_path":"C:\\x","pid":1.5}`:                           "pid",
		`{"subject_username":"u","target_executable_path":"C:\\x","observed_at":"2026-06-15 10:00"}`:    "observed_at",
		`{"subject_username":"u","target_executable_path":"C:\\x","observed_at":"2026-06-15T10:00:00"}`: "observed_at",
		`{"subject_username":7,"target_executable_path":"C:\\x"}`:                                       "subject_username",
		`{"subject_username":"` + strings.Repeat("u", 256) + `","target_executable_path":"C:\\x"}`:      "subject_username",
	} {
		r := e.ingest(t, body)
		if r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != target {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	if r := e.ingest(t, `[1,2]`); r.status != 400 {
		t.Errorf("array body: %d", r.status)
	}
	// Upper-case hashes are normalised, not refused.
	r := e.ingest(t, `{"subject_username":"u","target_executable_path":"C:\\x","target_executable_hash":" `+strings.Repeat("AB", 32)+` "}`)
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	stored, _ := e.st.Request(e.org, r.body["id"].(string))
	if stored.TargetExecutableHash != strings.Repeat("ab", 32) {
		t.Fatalf("hash %q", stored.TargetExecutableHash)
	}
}

func TestAgentRateLimit(t *testing.T) {
	e := newEnv(t, Config{RateBurst: 2, RatePerSecond: 0.5})
	for i := range 2 {
		if r := e.ingest(t, firefox); r.status != 201 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := e.ingest(t, firefox)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" || errCode(r) != "RATE_LIMITED" {
		t.Fatalf("%d %v %s", r.status, r.header, r.raw)
	}
	// Refused attempts take no token: after two seconds one is back.
	e.ingest(t, firefox)
	e.clock.Advance(2 * time.Second)
	if r := e.ingest(t, firefox); r.status != 201 {
		t.Fatalf("after the refill: %d", r.status)
	}
	if _, total, _ := e.st.ListRequests(store.Filter{OrgID: e.org}); total != 3 {
		t.Fatalf("%d rows stored", total)
	}
}

func TestConventions(t *testing.T) {
	e := newEnv(t, Config{})
	if r := e.do(t, "GET", "/healthz?v=1", "", "", nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
	if r := e.do(t, "GET", "/healthz?v=2", "", "", nil); r.status != 400 || errCode(r) != "UNSUPPORTED_VERSION" || errTarget(r) != "v" {
		t.Fatalf("v=2: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "GET", "/api/v1/nothing", "", "", nil); r.status != 404 || r.body["success"] != false || errCode(r) != "NOT_FOUND" {
		t.Fatalf("unknown route: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "GET", "/api/v1/agents/"+e.device+"/elevation-requests", e.token, "", nil); r.status != 405 {
		t.Fatalf("GET on a POST route: %d", r.status)
	}
	if r := e.do(t, "GET", "/readyz", "", "", nil); r.status != 200 {
		t.Fatalf("readyz: %d", r.status)
	}
	e.st.Close()
	if r := e.do(t, "GET", "/readyz", "", "", nil); r.status != 503 {
		t.Fatalf("readyz on a closed store: %d", r.status)
	}
	if r := e.ingest(t, firefox); r.status != 503 {
		t.Fatalf("ingest on a closed store: %d %s", r.status, r.raw)
	}
}

func TestInternalErrorsHideDetails(t *testing.T) {
	e := newEnv(t, Config{})
	s := New(Config{Lifecycle: e.lc, Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	w := httptest.NewRecorder()
	s.fail(w, httptest.NewRequest("GET", "/x", nil), errors.New("open /var/lib/secret.db: permission denied"))
	body := w.Body.String()
	if w.Code != 500 || strings.Contains(body, "secret") || !strings.Contains(body, `"correlationId"`) {
		t.Fatalf("%d %s", w.Code, body)
	}
	var env struct {
		Error struct{ CorrelationID string } `json:"error"`
	}
	json.Unmarshal(w.Body.Bytes(), &env)
	if id := env.Error.CorrelationID; id == "" || !strings.Contains(e.logs.String(), id) || !strings.Contains(e.logs.String(), "secret.db") {
		t.Fatalf("the log must hold the correlation id and the error: %s", e.logs.String())
	}
}

func ptr(s string) *string { return &s }
