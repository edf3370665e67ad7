package server

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
)

// infraTimeoutEnv serves a server with the given request timeout and the
// test-only routes in extra, registered like any other route.
func infraTimeoutEnv(t *testing.T, limit time.Duration, extra map[string]handler) (*env, *Server) {
	t.Helper()
	e := newEnv(t, Config{})
	s := New(Config{Lifecycle: e.lc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RequestTimeout: limit})
	for path, h := range extra {
		s.router.Handle("GET", path, s.instrument("GET "+path, s.handle(h)))
	}
	return infraServe(t, e, s, true), s
}

func TestTimeout408(t *testing.T) {
	returned := make(chan error, 2)
	e, s := infraTimeoutEnv(t, 200*time.Millisecond, map[string]handler{
		"/test/slow/:id": func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) error {
			select {
			case <-time.After(5 * time.Second):
			case <-req.Context().Done():
			}
			// The late answer goes nowhere, and says so.
			w.Header().Set("X-Late", "1")
			w.WriteHeader(http.StatusTeapot)
			_, err := w.Write([]byte("late"))
			returned <- err
			return nil
		},
		"/test/fast": func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) error {
			w.Header().Set("X-Fast", "1")
			writeJSON(w, http.StatusCreated, map[string]any{"success": true})
			return nil
		},
	})
	start := time.Now()
	r := e.do(t, "GET", "/test/slow/"+e.device, "", "", nil)
	if r.status != http.StatusRequestTimeout || errCode(r) != "REQUEST_TIMEOUT" || r.body["success"] != false {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the 408 came after %v", took)
	}
	if r.header.Get("X-Late") != "" || strings.Contains(r.raw, "late") {
		t.Fatalf("the late answer leaked: %v %s", r.header, r.raw)
	}
	// The late write was taken into the buffer that is thrown away, or
	// refused once the 408 was decided.
	if err := <-returned; err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		t.Fatalf("late write: %v", err)
	}
	// The connection is not kept for another request.
	if resp, _ := infraRaw(t, e, "GET", "/test/slow/x", nil); resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Errorf("%d, close %v", resp.StatusCode, resp.Close)
	}
	<-returned
	// A handler that finishes in time is answered as it wrote.
	r = e.do(t, "GET", "/test/fast", "", "", nil)
	if r.status != http.StatusCreated || r.header.Get("X-Fast") != "1" || r.header.Get("Content-Length") != "17" {
		t.Fatalf("%d %v %s", r.status, r.header, r.raw)
	}
	text := infraScrapeDirect(s) // a scrape may take longer than this server's limit
	if v, _ := infraMetric(text, "elevate_http_requests_total", map[string]string{"route": "/test/slow/:id", "status": "408"}); v != 2 {
		t.Errorf("the 408 is not counted under its route:\n%s", text)
	}
	if strings.Contains(text, `status="418"`) {
		t.Errorf("the late status was counted")
	}
}

// A handler that ignores its context and keeps writing across the deadline
// neither races with the 408 (run under -race) nor reaches the client.
func TestTimeoutLateWriter(t *testing.T) {
	var wrote, refused atomic.Int64
	finished := make(chan struct{}, 3)
	e, _ := infraTimeoutEnv(t, 30*time.Millisecond, map[string]handler{
		"/test/chatty": func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) error {
			defer func() { finished <- struct{}{} }()
			deadline := time.Now().Add(150 * time.Millisecond)
			for time.Now().Before(deadline) {
				w.Header().Set("X-Chatty", "1")
				w.WriteHeader(http.StatusOK)
				if _, err := w.Write([]byte("chatter ")); err != nil {
					refused.Add(1)
				} else {
					wrote.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
			return nil
		},
	})
	for range 3 {
		r := e.do(t, "GET", "/test/chatty", "", "", nil)
		if r.status != http.StatusRequestTimeout || strings.Contains(r.raw, "chatter") || r.header.Get("X-Chatty") != "" {
			t.Fatalf("%d %v %s", r.status, r.header, r.raw)
		}
		<-finished
	}
	if wrote.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("wrote %d, refused %d: the handler did not write across the deadline", wrote.Load(), refused.Load())
	}
}

// A panic that escapes the router inside the timeout's goroutine is
// carried back to the serving goroutine, where net/http recovers it: the
// connection fails, the process lives.
func TestTimeoutPanic(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler), conf: Config{RequestTimeout: time.Second}}
	srv := httptest.NewUnstartedServer(s.timeout(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()
	if resp, err := http.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d", resp.StatusCode)
	}
}

// A client that gives up is counted as 499 and sent nothing.
func TestTimeoutClientGone(t *testing.T) {
	e, _ := infraTimeoutEnv(t, 10*time.Second, map[string]handler{
		"/test/wait": func(_ http.ResponseWriter, req *http.Request, _ httprouter.Params) error {
			<-req.Context().Done()
			return nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/test/wait", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d", resp.StatusCode)
	}
	for range 100 {
		if v, _ := infraMetric(infraScrape(t, e), "elevate_http_requests_total", map[string]string{"route": "/test/wait", "status": "499"}); v == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the abandoned request is not counted as 499")
}

// BenchmarkTimeout measures the timeout layer (which also counts the
// request) on the production path: bare is the routed handler alone,
// timeout the same behind the layer.
func BenchmarkTimeout(b *testing.B) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	routed := s.instrument("POST /api/v1/agents/:id/elevation-requests", infraHandle)
	inner := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { routed(w, req, nil) })
	req := httptest.NewRequest("POST", "/api/v1/agents/x/elevation-requests", nil)
	run := func(b *testing.B, h http.Handler) {
		w := &infraDiscard{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, req)
		}
	}
	b.Run("bare", func(b *testing.B) {
		run(b, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { infraHandle(w, req, nil) }))
	})
	b.Run("timeout", func(b *testing.B) { run(b, s.timeout(inner)) })
	b.Run("timeout-parallel", func(b *testing.B) {
		h := s.timeout(inner)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := &infraDiscard{h: http.Header{}}
			for pb.Next() {
				h.ServeHTTP(w, req)
			}
		})
	})
}
