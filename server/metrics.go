package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are one server's Prometheus collectors, in a registry of its
// own (several servers in one process do not collide).
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	evalTime  *prometheus.HistogramVec
	reloads   *prometheus.CounterVec
	reloadOK  prometheus.Gauge
	reloadAt  prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "elevate_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status."}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "elevate_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}}, []string{"route", "method"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "elevate_decisions_total",
			Help: "Engine decisions, by flow and outcome (agent ingest and /pam/decide)."}, []string{"flow", "outcome"}),
		evalTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "elevate_decision_eval_seconds",
			Help:    "Time the engine took to decide (/pam/decide), by flow.",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2}}, []string{"flow"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "elevate_rules_reload_total",
			Help: "Rule-file loads, by result (ok, error)."}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "elevate_rules_last_reload_success",
			Help: "1 when the last rule-file load succeeded, 0 when it failed (the last good set stays in use)."}),
		reloadAt: prometheus.NewGauge(prometheus.GaugeOpts{Name: "elevate_rules_last_reload_timestamp_seconds",
			Help: "When the rule files were last loaded or tried (Unix seconds)."}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.decisions, m.evalTime, m.reloads, m.reloadOK, m.reloadAt,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument wraps a route's handler with its metrics. route is the
// pattern ("POST /api/v1/agents/:id/elevation-requests"), never the path
// with its ids, so the label set stays small.
func (s *Server) instrument(route string, h httprouter.Handle) httprouter.Handle {
	method, pattern, _ := cutSpace(route)
	dur := s.m.duration.WithLabelValues(pattern, method)
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, req, ps)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		dur.Observe(time.Since(start).Seconds())
		s.m.requests.WithLabelValues(pattern, method, strconv.Itoa(sw.status)).Inc()
	}
}

func cutSpace(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}

// recordDecision counts one engine decision (flow, outcome) and, when
// eval is positive, the time the evaluation took.
func (s *Server) recordDecision(flow, outcome string, eval time.Duration) {
	s.m.decisions.WithLabelValues(flow, outcome).Inc()
	if eval > 0 {
		s.m.evalTime.WithLabelValues(flow).Observe(eval.Seconds())
	}
}

// recordRuleReload notes the outcome of loading the rule files.
func (s *Server) recordRuleReload(ok bool, at time.Time) {
	result, v := "ok", 1.0
	if !ok {
		result, v = "error", 0
	}
	s.m.reloads.WithLabelValues(result).Inc()
	s.m.reloadOK.Set(v)
	s.m.reloadAt.Set(float64(at.UnixNano()) / 1e9)
}

// metricsHandler is GET /metrics in the Prometheus text format. It needs
// no token, like most scrape targets: switch the surface off (or keep the
// port private) where the counts should not be public.
func (s *Server) metricsHandler(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}).ServeHTTP(w, req)
}
