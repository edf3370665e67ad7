package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// DefaultRequestTimeout is how long a request may take before it ends
// with 408.
const DefaultRequestTimeout = 30 * time.Second

// timeout ends requests that run longer than the limit with 408 in the
// error envelope. The handler runs with a deadline context and writes to
// a buffer; whatever it writes after the deadline is dropped. A handler
// past its deadline may still finish its work (a store write that was
// already queued commits), so a 408 means "outcome unknown", like a lost
// connection.
func (s *Server) timeout(next http.Handler) http.Handler {
	limit := s.conf.RequestTimeout
	if limit <= 0 {
		limit = DefaultRequestTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), limit)
		defer cancel()
		tw := &timeoutWriter{header: make(http.Header, 4)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			next.ServeHTTP(tw, req.WithContext(ctx))
		}()
		select {
		case <-done:
			tw.mu.Lock()
			defer tw.mu.Unlock()
			dst := w.Header()
			for k, v := range tw.header {
				dst[k] = v
			}
			if tw.code == 0 {
				tw.code = http.StatusOK
			}
			w.WriteHeader(tw.code)
			w.Write(tw.buf.Bytes())
		case <-ctx.Done():
			tw.mu.Lock()
			tw.late = true
			tw.mu.Unlock()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return // the client went away
			}
			s.log.Warn("request timed out", "method", req.Method, "path", req.URL.Path, "limit", limit.String())
			w.Header().Set("Content-Type", "application/json")
			s.fail(w, req, &apiError{Status: http.StatusRequestTimeout, Code: "REQUEST_TIMEOUT",
				Message: "the request took longer than " + limit.String() + "; its outcome is unknown"})
		}
	})
}

// timeoutWriter buffers a handler's answer until it is done; after the
// deadline it swallows writes.
type timeoutWriter struct {
	mu     sync.Mutex
	header http.Header
	buf    bytes.Buffer
	code   int
	late   bool
}

func (tw *timeoutWriter) Header() http.Header { return tw.header }

func (tw *timeoutWriter) Write(b []byte) (int, error) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.late {
		return 0, http.ErrHandlerTimeout
	}
	if tw.code == 0 {
		tw.code = http.StatusOK
	}
	return tw.buf.Write(b)
}

func (tw *timeoutWriter) WriteHeader(code int) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.late || tw.code != 0 {
		return
	}
	tw.code = code
}
