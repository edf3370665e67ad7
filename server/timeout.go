package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRequestTimeout is how long a request may take before it ends
// with 408.
const DefaultRequestTimeout = 30 * time.Second

// statusClientGone is the status counted for a request whose client went
// away before the response was decided; nothing is sent.
const statusClientGone = 499

// maxPooledBuffer is the largest response buffer kept for reuse.
const maxPooledBuffer = 64 << 10

var responseBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// timeout ends requests that run longer than the limit with 408.
//
// The handler runs in a goroutine of its own with a context that ends at
// the deadline, and writes into a buffer. If it returns in time, the
// buffered response is sent. If the deadline passes first, the client gets
// a 408 envelope with Connection: close, and nothing the handler writes
// reaches the client (its writes fail with http.ErrHandlerTimeout once the
// 408 is decided). Handlers cannot stream: a response reaches the client
// only once it is complete.
//
// A handler past its deadline may still finish its work (a store write
// already under way commits), so a 408 means "outcome unknown", as a lost
// connection would; clients should re-read before they retry a write.
//
// A client that goes away first is sent nothing. net/http's own recovery
// handles a panic that escapes the handler: it is carried back to the
// serving goroutine.
//
// This layer also counts every request in the HTTP metrics, with the
// status the client got, under the route that instrument named (or
// "unmatched").
func (s *Server) timeout(next http.Handler) http.Handler {
	limit := s.conf.RequestTimeout
	if limit <= 0 {
		limit = DefaultRequestTimeout
	}
	m := s.metrics()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(req.Context(), limit)
		defer cancel()
		tw := &timeoutWriter{h: http.Header{}, done: make(chan struct{})}
		inner := req.WithContext(ctx)
		s.handlers.run(func() { tw.serve(next, inner) })

		returned := false
		select {
		case <-tw.done:
			returned = true
		case <-ctx.Done():
			select { // it may have returned all the same
			case <-tw.done:
				returned = true
			default:
			}
		}
		if returned && tw.panicked != nil {
			tw.close()
			panic(tw.panicked)
		}
		buf := tw.close()
		defer recycle(buf)
		rm := tw.route.Load()
		if rm == nil {
			rm = m.unmatchedFor(req.Method)
		}
		if !returned || tw.late {
			// Whatever the handler answered (typically an error about its
			// ended context) is not sent.
			if ctx.Err() != context.DeadlineExceeded {
				rm.observe(statusClientGone, time.Since(start))
				return
			}
			s.log.Warn("request timed out", "method", req.Method, "route", rm.route, "path", req.URL.Path, "limit", limit.String())
			s.fail(w, req, &apiError{Status: http.StatusRequestTimeout, Code: "REQUEST_TIMEOUT",
				Message: "the request took longer than " + limit.String() + "; its outcome is unknown",
				Header:  http.Header{"Connection": {"close"}}})
			rm.observe(http.StatusRequestTimeout, time.Since(start))
			return
		}
		code := tw.code
		if code == 0 {
			code = http.StatusOK
		}
		dst := w.Header()
		for k, v := range tw.h {
			dst[k] = v
		}
		// The body goes in one write as the handler's last act, so net/http
		// sends small ones with a Content-Length and large ones chunked.
		w.WriteHeader(code)
		if buf != nil && buf.Len() > 0 {
			w.Write(buf.Bytes())
		}
		rm.observe(code, time.Since(start))
	})
}

// handlerPool runs handlers on goroutines that are kept a while after
// their handler returns: a goroutine's stack grows to what handlers need
// once, not again on every request. A request never waits for a goroutine;
// when none is idle a new one starts.
type handlerPool struct{ idle chan func() }

// handlerIdle is how long a handler goroutine waits for more work.
const handlerIdle = 10 * time.Second

func newHandlerPool() *handlerPool { return &handlerPool{idle: make(chan func())} }

func (p *handlerPool) run(f func()) {
	if p == nil {
		go f()
		return
	}
	select {
	case p.idle <- f:
	default:
		go p.work(f)
	}
}

func (p *handlerPool) work(f func()) {
	t := time.NewTimer(handlerIdle)
	defer t.Stop()
	for {
		f()
		t.Reset(handlerIdle)
		select {
		case f = <-p.idle:
		case <-t.C:
			return
		}
	}
}

// timeoutWriter buffers a handler's response until the timeout layer
// decides what the client gets. It offers no Unwrap and no Flush on
// purpose: the handler must never reach the connection, since it may still
// be running after the 408 has been sent. A writer serves one request.
type timeoutWriter struct {
	h      http.Header   // the handler's alone until it returns
	mu     sync.Mutex    // guards buf, code and closed
	buf    *bytes.Buffer // from responseBuffers at the first write
	code   int
	closed bool // the response is decided; writes are refused
	// route is set by instrument when the request matched a route.
	route atomic.Pointer[routeMetrics]
	// Set by the handler's goroutine before done closes; read only after.
	done     chan struct{}
	panicked any
	late     bool // the handler returned after its context ended
}

// serve runs the handler and reports how it ended.
func (tw *timeoutWriter) serve(next http.Handler, req *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				p = fmt.Sprintf("%v\n%s", p, debug.Stack())
			}
			tw.panicked = p
		}
		tw.late = req.Context().Err() != nil
		close(tw.done)
	}()
	next.ServeHTTP(tw, req)
}

// close refuses further writes and hands over the buffered body.
func (tw *timeoutWriter) close() *bytes.Buffer {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.closed = true
	buf := tw.buf
	tw.buf = nil
	return buf
}

func recycle(buf *bytes.Buffer) {
	if buf != nil && buf.Cap() <= maxPooledBuffer {
		buf.Reset()
		responseBuffers.Put(buf)
	}
}

func (tw *timeoutWriter) Header() http.Header { return tw.h }

func (tw *timeoutWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	// Informational (1xx) answers cannot pass through a buffer; the first
	// final status is the one sent.
	if !tw.closed && tw.code == 0 && code >= 200 {
		tw.code = code
	}
}

func (tw *timeoutWriter) Write(p []byte) (int, error) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.closed {
		return 0, http.ErrHandlerTimeout
	}
	if tw.code == 0 {
		tw.code = http.StatusOK
	}
	if tw.buf == nil {
		tw.buf = responseBuffers.Get().(*bytes.Buffer)
	}
	return tw.buf.Write(p)
}
