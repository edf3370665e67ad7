package server

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
)

// infraEnv serves a server built from c over a fresh environment's
// lifecycle. Unless raw, its handler is wrapped like newEnv's, so that
// every response is checked against the OpenAPI document; raw is for
// responses no API operation describes (CORS preflights, test-only
// routes).
func infraEnv(t *testing.T, c Config, raw bool) (*env, *Server) {
	t.Helper()
	e := newEnv(t, Config{})
	c.Lifecycle = e.lc
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := New(c)
	return infraServe(t, e, s, raw), s
}

// infraServe serves s (built over e's lifecycle) on a loopback port of its
// own and returns an env whose requests go to it.
func infraServe(t *testing.T, e *env, s *Server, raw bool) *env {
	t.Helper()
	var h http.Handler = s
	if !raw {
		for _, wrap := range testHandlerWraps {
			h = wrap(t, h)
		}
	}
	e2 := *e
	e2.srv = httptest.NewServer(h)
	t.Cleanup(e2.srv.Close)
	return &e2
}

// infraScrape reads /metrics.
func infraScrape(t *testing.T, e *env) string {
	t.Helper()
	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	return string(raw)
}

// infraScrapeDirect reads the server's metrics without a request.
func infraScrapeDirect(s *Server) string {
	rec := httptest.NewRecorder()
	s.metrics().handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// infraMetric finds the sample of name whose labels include all of labels.
func infraMetric(text, name string, labels map[string]string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		match := true
		for k, v := range labels {
			if !strings.Contains(series, k+`="`+v+`"`) {
				match = false
			}
		}
		if match {
			f, err := strconv.ParseFloat(value, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func TestMetricsHTTP(t *testing.T) {
	e, _ := infraEnv(t, Config{}, false)
	for range 2 {
		if r := e.ingest(t, firefox); r.status != 201 {
			t.Fatalf("ingest: %d %s", r.status, r.raw)
		}
	}
	if r := e.do(t, "POST", "/api/v1/agents/"+e.device+"/elevation-requests", "nope", "application/json", strings.NewReader(firefox)); r.status != 401 {
		t.Fatalf("bad token: %d", r.status)
	}
	if r := e.do(t, "GET", "/api/v1/nothing/"+e.device, "", "", nil); r.status != 404 {
		t.Fatalf("unknown path: %d", r.status)
	}
	if r := e.do(t, "BREW", "/healthz", "", "", nil); r.status != 405 {
		t.Fatalf("odd method: %d", r.status)
	}
	text := infraScrape(t, e)
	route := "/api/v1/agents/:id/elevation-requests"
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"elevate_http_requests_total", map[string]string{"route": route, "method": "POST", "status": "201"}, 2},
		{"elevate_http_requests_total", map[string]string{"route": route, "method": "POST", "status": "401"}, 1},
		{"elevate_http_request_duration_seconds_count", map[string]string{"route": route, "method": "POST"}, 3},
		{"elevate_http_requests_total", map[string]string{"route": "unmatched", "method": "GET", "status": "404"}, 1},
		{"elevate_http_requests_total", map[string]string{"route": "unmatched", "method": "other", "status": "405"}, 1},
		{"elevate_rules_reload_total", map[string]string{"result": "error"}, 0},
	} {
		if got, ok := infraMetric(text, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if strings.Contains(text, e.device) || strings.Contains(text, "BREW") {
		t.Errorf("a raw id or method reached a label:\n%s", text)
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(text, "\n"+name+" ") {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}
	// Reload gauges appear with the first load only.
	if strings.Contains(text, "elevate_rules_last_reload_success") {
		t.Errorf("reload gauges before any load")
	}

	// A second server keeps its own counts.
	other, _ := infraEnv(t, Config{}, false)
	if _, ok := infraMetric(infraScrape(t, other), "elevate_http_requests_total", map[string]string{"route": route}); ok {
		t.Errorf("the second server counts the first one's requests")
	}
}

func TestMetricsDecisionsAndReloads(t *testing.T) {
	e, s := infraEnv(t, Config{}, false)
	s.recordDecision("uac_intercept", "auto_approved", 3*time.Millisecond)
	s.recordDecision("uac_intercept", "auto_approved", time.Millisecond)
	s.recordDecision("tech_jit_admin", "pending", time.Microsecond)
	s.recordDecision("uac_intercept", "denied", 0) // not timed: counted, not observed
	at := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	s.recordRuleReload(true, at)
	text := infraScrape(t, e)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"elevate_decisions_total", map[string]string{"flow": "uac_intercept", "outcome": "auto_approved"}, 2},
		{"elevate_decisions_total", map[string]string{"flow": "tech_jit_admin", "outcome": "pending"}, 1},
		{"elevate_decisions_total", map[string]string{"flow": "uac_intercept", "outcome": "denied"}, 1},
		{"elevate_decision_eval_seconds_count", map[string]string{"flow": "uac_intercept"}, 2},
		{"elevate_decision_eval_seconds_sum", map[string]string{"flow": "uac_intercept"}, 0.004},
		{"elevate_decision_eval_seconds_bucket", map[string]string{"flow": "uac_intercept", "le": "0.001"}, 1},
		{"elevate_rules_reload_total", map[string]string{"result": "ok"}, 1},
		{"elevate_rules_last_reload_success", nil, 1},
		{"elevate_rules_last_reload_timestamp_seconds", nil, float64(at.Unix())},
	} {
		if got, ok := infraMetric(text, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	s.recordRuleReload(false, at.Add(time.Minute))
	text = infraScrape(t, e)
	if v, _ := infraMetric(text, "elevate_rules_last_reload_success", nil); v != 0 {
		t.Errorf("success after a failed load: %v", v)
	}
	if v, _ := infraMetric(text, "elevate_rules_reload_total", map[string]string{"result": "error"}); v != 1 {
		t.Errorf("errors: %v", v)
	}
	if v, _ := infraMetric(text, "elevate_rules_last_reload_timestamp_seconds", nil); v != float64(at.Add(time.Minute).Unix()) {
		t.Errorf("timestamp: %v", v)
	}
}

func TestMetricsSurfaceOff(t *testing.T) {
	e, s := infraEnv(t, Config{Surfaces: map[string]bool{SurfaceMetrics: false}}, false)
	if r := e.do(t, "GET", "/metrics", "", "", nil); r.status != 404 || errCode(r) != "NOT_FOUND" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	// Metrics are still kept (decisions may be recorded), only not served.
	s.recordDecision("uac_intercept", "denied", time.Millisecond)
}

// Outside the timeout layer, instrument captures the status itself and
// keeps the writer's Flusher.
func TestInstrumentDirect(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	flushed := false
	h := s.instrument("GET /x/:id", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		w.WriteHeader(http.StatusAccepted)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
			flushed = true
		}
		if http.NewResponseController(w).Flush() != nil {
			t.Error("the response controller cannot reach the writer")
		}
	})
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest("GET", "/x/1", nil), nil)
	if !flushed || rec.Code != http.StatusAccepted || !rec.Flushed {
		t.Fatalf("flushed %v, code %d", flushed, rec.Code)
	}
	panicking := s.instrument("GET /p", func(http.ResponseWriter, *http.Request, httprouter.Params) { panic("boom") })
	func() {
		defer func() { recover() }()
		panicking(httptest.NewRecorder(), httptest.NewRequest("GET", "/p", nil), nil)
	}()
	text := infraScrapeDirect(s)
	if v, _ := infraMetric(text, "elevate_http_requests_total", map[string]string{"route": "/x/:id", "status": "202"}); v != 1 {
		t.Errorf("202 not counted:\n%s", text)
	}
	if v, _ := infraMetric(text, "elevate_http_requests_total", map[string]string{"route": "/p", "status": "500"}); v != 1 {
		t.Errorf("panic not counted as 500")
	}
}

// infraDiscard is a ResponseWriter that keeps nothing.
type infraDiscard struct{ h http.Header }

func (d *infraDiscard) Header() http.Header         { return d.h }
func (d *infraDiscard) Write(p []byte) (int, error) { return len(p), nil }
func (d *infraDiscard) WriteHeader(int)             {}

var infraBody = []byte(`{"success":true,"id":"0190f1e2-3b4c-7d5e-8f90-a1b2c3d4e5f6","status":"pending"}` + "\n")

func infraHandle(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	w.Write(infraBody)
}

// BenchmarkInstrument measures what instrument adds to a route: bare is the
// handler alone; direct is instrument outside the timeout layer (it wraps
// the writer and counts); behind-timeout is the production path, where it
// only names the route (the timeout layer counts, see BenchmarkTimeout),
// against bare-on-buffer.
func BenchmarkInstrument(b *testing.B) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	req := httptest.NewRequest("POST", "/api/v1/agents/x/elevation-requests", nil)
	run := func(b *testing.B, h httprouter.Handle, w http.ResponseWriter) {
		b.ReportAllocs()
		for b.Loop() {
			h(w, req, nil)
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, infraHandle, &infraDiscard{h: http.Header{}}) })
	b.Run("direct", func(b *testing.B) {
		run(b, s.instrument("POST /api/v1/agents/:id/elevation-requests", infraHandle), &infraDiscard{h: http.Header{}})
	})
	onBuffer := func(b *testing.B, h httprouter.Handle) {
		b.ReportAllocs()
		for b.Loop() {
			tw := &timeoutWriter{h: http.Header{}}
			h(tw, req, nil)
			recycle(tw.close())
		}
	}
	b.Run("bare-on-buffer", func(b *testing.B) { onBuffer(b, infraHandle) })
	b.Run("behind-timeout", func(b *testing.B) {
		onBuffer(b, s.instrument("POST /api/v1/agents/:id/elevation-requests", infraHandle))
	})
}
