package server

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics. Each server has its own registry (never the process-global
// one), so several servers in one process do not collide. GET /metrics
// serves it in the Prometheus exposition format.
//
// HTTP requests are labelled with the route pattern ("/api/v1/devices/:id"),
// never the raw path, so ids do not multiply the series. Requests that match
// no route (404, 405, redirects, a refused API version) are counted under
// route "unmatched" with the method folded to a known one or "other".
// Requests the CORS layer answers itself (preflights) are not counted.
// The status is the one the client got: 408 for a request that ran out of
// time, 499 for one whose client went away first.

// Label value of requests that matched no route.
const unmatchedRoute = "unmatched"

// Histogram buckets, in seconds.
var (
	httpBuckets     = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	decisionBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1}
)

// metrics is one server's registry and the instruments in it.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec   // route, method, status
	duration     *prometheus.HistogramVec // route, method
	decisions    *prometheus.CounterVec   // flow, outcome
	decisionEval *prometheus.HistogramVec // flow
	reloads      *prometheus.CounterVec   // result
	reloadOK     prometheus.Gauge
	reloadAt     prometheus.Gauge
	reloadSeen   sync.Once                // the reload gauges appear at the first load
	unmatched    map[string]*routeMetrics // by method, "other" for the rest
	handler      http.Handler
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "elevate_http_requests_total",
		Help: "HTTP requests answered, by route pattern, method and status.",
	}, []string{"route", "method", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "elevate_http_request_duration_seconds",
		Help:    "Time from a request's arrival to its response being decided, by route pattern and method.",
		Buckets: httpBuckets,
	}, []string{"route", "method"})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "elevate_decisions_total",
		Help: "Engine decisions, by flow and outcome.",
	}, []string{"flow", "outcome"})
	m.decisionEval = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "elevate_decision_eval_seconds",
		Help:    "Time the engine took to evaluate one decision, by flow.",
		Buckets: decisionBuckets,
	}, []string{"flow"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "elevate_rules_reload_total",
		Help: "Loads of the rule files, by result (ok or error).",
	}, []string{"result"})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "elevate_rules_last_reload_success",
		Help: "1 if the last load of the rule files succeeded, 0 if it failed.",
	})
	m.reloadAt = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "elevate_rules_last_reload_timestamp_seconds",
		Help: "Unix time of the last load of the rule files, successful or not (elevate_rules_last_reload_success tells which).",
	})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.decisions, m.decisionEval, m.reloads,
	)
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	m.unmatched = map[string]*routeMetrics{}
	for _, method := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"} {
		m.unmatched[method] = m.route(unmatchedRoute, method)
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
	return m
}

// metrics returns the server's metrics. New makes them before the first
// route; a Server built by hand (in a test) gets them on first use.
func (s *Server) metrics() *metrics {
	if s.m == nil {
		s.m = newMetrics()
	}
	return s.m
}

// unmatchedFor is the series of requests that matched no route.
func (m *metrics) unmatchedFor(method string) *routeMetrics {
	if rm, ok := m.unmatched[method]; ok {
		return rm
	}
	return m.unmatched["other"]
}

// routeMetrics are one route's series, resolved once so that counting a
// request neither hashes labels nor allocates.
type routeMetrics struct {
	route, method string
	requests      *prometheus.CounterVec
	duration      prometheus.Observer
	codes         atomic.Pointer[[]statusCounter] // copied on write; grows by the statuses seen
	mu            sync.Mutex                      // serialises growing codes
}

type statusCounter struct {
	code int
	c    prometheus.Counter
}

func (m *metrics) route(route, method string) *routeMetrics {
	return &routeMetrics{route: route, method: method, requests: m.requests,
		duration: m.duration.WithLabelValues(route, method)}
}

// observe counts one answered request.
func (rm *routeMetrics) observe(code int, took time.Duration) {
	rm.duration.Observe(took.Seconds())
	rm.counter(code).Inc()
}

func (rm *routeMetrics) counter(code int) prometheus.Counter {
	if p := rm.codes.Load(); p != nil {
		for _, sc := range *p {
			if sc.code == code {
				return sc.c
			}
		}
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	var old []statusCounter
	if p := rm.codes.Load(); p != nil {
		old = *p
		for _, sc := range old {
			if sc.code == code {
				return sc.c
			}
		}
	}
	c := rm.requests.WithLabelValues(rm.route, rm.method, strconv.Itoa(code))
	codes := append(append(make([]statusCounter, 0, len(old)+1), old...), statusCounter{code, c})
	rm.codes.Store(&codes)
	return c
}

// instrument wraps a route's handler with its metrics; route is "METHOD
// /pattern". Behind the request timeout (every route served by the
// Server), the handler only names its route to the timeout's writer, which
// counts the request once the response is decided. Elsewhere the wrapper
// captures the status itself.
func (s *Server) instrument(route string, h httprouter.Handle) httprouter.Handle {
	method, pattern, _ := strings.Cut(route, " ")
	rm := s.metrics().route(pattern, method)
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		if tw, ok := w.(*timeoutWriter); ok {
			tw.route.Store(rm)
			h(w, req, ps)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		finished := false
		defer func() {
			code := sw.code
			switch {
			case !finished:
				code = http.StatusInternalServerError // panicking: the router's panic handler answers 500
			case code == 0:
				code = http.StatusOK
			}
			rm.observe(code, time.Since(start))
		}()
		if _, ok := w.(http.Flusher); ok {
			h(flushStatusWriter{sw}, req, ps)
		} else {
			h(sw, req, ps)
		}
		finished = true
	}
}

// statusWriter remembers the status a handler answers.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// flushStatusWriter is a statusWriter over a writer that can flush.
type flushStatusWriter struct{ *statusWriter }

func (w flushStatusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.ResponseWriter.(http.Flusher).Flush()
}

// metricsHandle serves the server's registry.
func (s *Server) metricsHandle() httprouter.Handle {
	h := s.metrics().handler
	return func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) { h.ServeHTTP(w, req) }
}

// recordDecision counts one engine decision (flow, outcome) and, when
// eval is positive, the time the evaluation took (callers that do not
// time the engine pass 0).
func (s *Server) recordDecision(flow, outcome string, eval time.Duration) {
	m := s.metrics()
	m.decisions.WithLabelValues(flow, outcome).Inc()
	if eval > 0 {
		m.decisionEval.WithLabelValues(flow).Observe(eval.Seconds())
	}
}

// recordRuleReload notes the outcome of loading the rule files. The two
// gauges are absent until the first load, so that a server without rule
// files does not look like one whose last load failed.
func (s *Server) recordRuleReload(ok bool, at time.Time) {
	m := s.metrics()
	m.reloadSeen.Do(func() { m.reg.MustRegister(m.reloadOK, m.reloadAt) })
	result, v := "error", 0.0
	if ok {
		result, v = "ok", 1
	}
	m.reloads.WithLabelValues(result).Inc()
	m.reloadOK.Set(v)
	m.reloadAt.Set(float64(at.UnixNano()) / 1e9)
}
