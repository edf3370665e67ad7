// Package server is Elevate's HTTP API: a thin layer that parses, checks
// who is calling, calls the lifecycle and store, and maps their errors to
// statuses in one error envelope. No business rule lives only here.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/simulate"
	"github.com/elevate-pam/elevate/store"
)

// Defaults of the agent-facing surface (pam-semantics §6.1, §14.1).
const (
	DefaultMaxBody   = 32 << 10 // bytes of a request body
	DefaultRateBurst = 600      // agent requests a device may make at once
	DefaultRatePerS  = 10.0     // agent requests per second it regains
)

// Config wires a server.
type Config struct {
	Lifecycle *lifecycle.Service
	Logger    *slog.Logger // nil: slog.Default()
	// MaxBody caps request bodies, counted on the bytes read (so chunked
	// bodies are capped too); 0 means DefaultMaxBody.
	MaxBody int64
	// RateBurst and RatePerSecond shape each device's token bucket; zero
	// means the defaults.
	RateBurst     float64
	RatePerSecond float64
	// JWTSecret verifies users' HS256 bearer tokens; empty refuses every
	// HS256 token.
	JWTSecret []byte
	// Auth configures the other ways users authenticate (JWKS keys).
	Auth AuthConfig
	// Surfaces switches API surfaces on and off: a surface mapped to false
	// answers 404 on every route. Missing surfaces are on.
	Surfaces map[string]bool
	// CORS configures cross-origin access; nil allows no foreign origin.
	CORS *CORSConfig
	// LogLevel, when set, is the level variable behind Logger, so the log
	// verbosity can be changed while the server runs.
	LogLevel *slog.LevelVar
	// RulesDir is the rule-file repository served beside the API-managed
	// rules ("" = none); LoadRuleFiles and WatchRuleFiles keep it current.
	RulesDir string
	// FakeClock, when set, is the lifecycle's clock and may be set by a
	// system-scope caller over PUT /api/v1/debug/clock.
	FakeClock *lifecycle.FakeClock
	// PreviewMaxScan caps the requests a rule preview reads; 0 means
	// simulate.DefaultMaxScan.
	PreviewMaxScan int
	// History is where previews and simulations read the request history.
	// Nil means a projection of the store, loaded in the background when
	// New is called (the store is read until it is ready) and kept current
	// by the store's watch: about 100 bytes of memory per request.
	History simulate.Reader
	// HistoryFromStore makes previews and simulations scan the store each
	// time instead, holding no projection in memory.
	HistoryFromStore bool
	// RequestTimeout ends a request that takes longer with 408; 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// API surfaces, each with its own enable switch.
const (
	SurfaceAgent     = "agent"     // /api/v1/agents/…
	SurfacePAM       = "pam"       // /api/v1/pam/… and device actuation
	SurfaceInventory = "inventory" // orgs, sites, device groups, devices, API keys
	SurfaceDebug     = "debug"     // /api/v1/debug/… (only with a fake clock)
	SurfaceMetrics   = "metrics"   // /metrics
	SurfaceOpenAPI   = "openapi"   // /openapi.json
)

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	lc        *lifecycle.Service
	log       *slog.Logger
	maxBody   int64
	limiter   *limiter
	router    *httprouter.Router
	jwtSecret []byte
	handlers  *handlerPool // goroutines the timeout layer runs handlers on
	surfaces  map[string]bool
	routes    []Route
	conf      Config
	history   simulate.Reader // previews and simulations read from it
	files     *ruleFiles
	m         *metrics
	outer     http.Handler // the router behind CORS and the request timeout
}

// NewChecked is New after checking the configuration: the CORS settings
// and the token-verification keys must be usable, so a server never
// starts with a configuration it would fail on later.
func NewChecked(c Config) (*Server, error) {
	if c.CORS != nil {
		if err := c.CORS.Validate(); err != nil {
			return nil, err
		}
	}
	s := New(c)
	if err := s.AuthError(); err != nil {
		return nil, err
	}
	return s, nil
}

// loadHistory starts loading the projection of the store's requests that
// previews and simulations read; until it is ready they scan the store.
func (s *Server) loadHistory() simulate.Reader {
	if s.conf.HistoryFromStore {
		return simulate.StoreReader{Store: s.lc.Store()}
	}
	start := time.Now()
	h := simulate.WatchStore(s.lc.Store())
	go func() {
		p, err := h.Wait()
		if err != nil {
			s.log.Error("request history not held in memory: previews and simulations scan the store", "err", err)
			return
		}
		if n := p.Len(); n > 0 {
			s.log.Info("request history held in memory", "requests", n, "bytes", p.Footprint(),
				"took", time.Since(start).Round(time.Millisecond))
		}
	}()
	return h
}

// New builds the server and its routes.
func New(c Config) *Server {
	s := &Server{lc: c.Lifecycle, log: c.Logger, maxBody: c.MaxBody, jwtSecret: c.JWTSecret, surfaces: c.Surfaces, conf: c,
		handlers: newHandlerPool()}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.m = newMetrics()
	s.history = c.History
	if s.history == nil {
		s.history = s.loadHistory()
	}
	if c.RulesDir != "" {
		s.files = &ruleFiles{dir: c.RulesDir}
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	burst, rate := c.RateBurst, c.RatePerSecond
	if burst <= 0 {
		burst = DefaultRateBurst
	}
	if rate <= 0 {
		rate = DefaultRatePerS
	}
	s.limiter = newLimiter(burst, rate, c.Lifecycle.Clock().Now)

	r := httprouter.New()
	r.HandleOPTIONS = false // preflights are the CORS layer's; other OPTIONS get the 405 envelope
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.fail(w, req, errNotFound("no such endpoint"))
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.fail(w, req, &apiError{Status: http.StatusMethodNotAllowed, Code: "METHOD_NOT_ALLOWED", Message: "method not allowed on this endpoint"})
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, p any) {
		s.fail(w, req, fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
	}
	s.router = r
	s.route("GET", "/healthz", "", s.handle(s.healthz))
	s.route("GET", "/readyz", "", s.handle(s.readyz))
	s.route("POST", "/api/v1/agents/:id/elevation-requests", SurfaceAgent, s.handle(s.agentIngest))
	s.route("GET", "/api/v1/pam/elevation-requests", SurfacePAM, s.user(PermRead, false, s.listRequests))
	s.route("GET", "/api/v1/pam/active", SurfacePAM, s.user(PermRead, false, s.activeRequests))
	s.route("POST", "/api/v1/pam/elevation-requests/:id/respond", SurfacePAM, s.user(PermExecute, true, s.respond))
	s.route("POST", "/api/v1/pam/elevation-requests/:id/revoke", SurfacePAM, s.user(PermExecute, true, s.revoke))
	s.route("POST", "/api/v1/devices/:id/actuate-elevation", SurfacePAM, s.user(PermExecute, true, s.actuate))
	s.pamRoutes()
	s.authRoutes()
	s.inventoryRoutes()
	s.policyRoutes()
	s.systemRoutes()
	s.openapiRoutes()
	if c.FakeClock != nil {
		s.route("GET", "/api/v1/debug/clock", SurfaceDebug, s.user(PermRead, false, s.getClock))
		s.route("PUT", "/api/v1/debug/clock", SurfaceDebug, s.user(PermWrite, true, s.setClock))
	}
	s.outer = s.cors(s.timeout(http.HandlerFunc(s.dispatch)))
	return s
}

// route registers a handler unless its surface is switched off (then the
// path answers 404 like any unknown one). Every route is instrumented under
// its pattern, and the pattern is recorded for the route listing.
func (s *Server) route(method, path, surface string, h httprouter.Handle) {
	if surface != "" && !s.surfaceOn(surface) {
		return
	}
	s.routes = append(s.routes, Route{Method: method, Path: path, Surface: surface})
	s.router.Handle(method, path, s.instrument(method+" "+path, h))
}

func (s *Server) surfaceOn(name string) bool {
	on, ok := s.surfaces[name]
	return on || !ok
}

// Route is a registered endpoint.
type Route struct{ Method, Path, Surface string }

// Routes lists the registered endpoints in registration order.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) { s.outer.ServeHTTP(w, req) }

// dispatch checks the API version and routes.
func (s *Server) dispatch(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if v, ok := req.URL.Query()["v"]; ok && (len(v) != 1 || v[0] != "1") {
		s.fail(w, req, &apiError{Status: http.StatusBadRequest, Code: "UNSUPPORTED_VERSION", Target: "v",
			Message: "this server implements API version 1 (?v=1, or no v)"})
		return
	}
	s.router.ServeHTTP(w, req)
}

type handler func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) error

// handle adapts a handler that returns its error to httprouter.
func (s *Server) handle(h handler) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		if req.ContentLength != 0 && req.Method != http.MethodGet {
			mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				s.fail(w, req, &apiError{Status: http.StatusUnsupportedMediaType, Code: "UNSUPPORTED_MEDIA_TYPE",
					Message: "request bodies must be application/json"})
				return
			}
		}
		if err := h(w, req, ps); err != nil {
			s.fail(w, req, err)
		}
	}
}

// apiError is an error with its HTTP status and envelope fields.
type apiError struct {
	Status  int
	Code    string
	Message string
	Target  string
	Details any
	Header  http.Header // extra response headers (Retry-After)
}

func (e *apiError) Error() string { return e.Message }

func errNotFound(msg string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: msg}
}

// fail writes the error envelope. Errors that are not an *apiError are
// internal: the client sees a correlation id, the log has the rest.
func (s *Server) fail(w http.ResponseWriter, req *http.Request, err error) {
	var ae *apiError
	if errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrFailed) {
		s.log.Warn("store unavailable", "method", req.Method, "path", req.URL.Path, "error", err.Error())
		err = &apiError{Status: http.StatusServiceUnavailable, Code: "UNAVAILABLE", Message: "the store cannot serve requests now"}
	}
	if !errors.As(err, &ae) && req.Context().Err() != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		// The request ran out of time or its client left: the timeout
		// layer has answered (408) or nobody is listening.
		s.log.Debug("request ended early", "method", req.Method, "path", req.URL.Path, "error", err.Error())
		return
	}
	if !errors.As(err, &ae) {
		id := correlationID()
		s.log.Error("internal error", "correlationId", id, "method", req.Method, "path", req.URL.Path, "error", err.Error())
		ae = &apiError{Status: http.StatusInternalServerError, Code: "INTERNAL",
			Message: "internal error; quote the correlation id when reporting it"}
		w.Header().Set("X-Correlation-Id", id)
		writeJSON(w, ae.Status, envelope{Error: errorBody{Code: ae.Code, Message: ae.Message, CorrelationID: id}})
		return
	}
	for k, v := range ae.Header {
		w.Header()[k] = v
	}
	writeJSON(w, ae.Status, envelope{Error: errorBody{Code: ae.Code, Message: ae.Message, Target: ae.Target, Details: ae.Details}})
}

type envelope struct {
	Success bool      `json:"success"`
	Error   errorBody `json:"error"`
}

type errorBody struct {
	Code          string `json:"code"`
	Message       string `json:"message"`
	Target        string `json:"target,omitempty"`
	Details       any    `json:"details,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
}

func correlationID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) error {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	return nil
}

// readyz answers 200 while the store is open and accepting writes, else
// 503. The rule files' state is reported too: a failed reload keeps the
// last good set in use (still ready), which the body says.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) error {
	if err := s.lc.Store().Healthy(); err != nil {
		s.log.Warn("not ready", "error", err.Error())
		return &apiError{Status: http.StatusServiceUnavailable, Code: "NOT_READY", Message: "the store cannot serve"}
	}
	body := map[string]any{"status": "ready"}
	if st, ok := s.RuleFileStatus(); ok {
		if !st.OK {
			body["status"] = "degraded"
		}
		// Unauthenticated: the state, not the paths or text of the files
		// (the error is in the log).
		body["ruleFiles"] = map[string]any{"ok": st.OK, "generation": st.Generation, "loadedAt": nullTime(st.LoadedAt), "failedAt": nullTime(st.FailedAt)}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// getClock is GET /api/v1/debug/clock (fake-clock servers only).
func (s *Server) getClock(w http.ResponseWriter, _ *http.Request, _ httprouter.Params, c *Caller) error {
	if c.Scope != ScopeSystem {
		return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: "the clock is for system-scope callers"}
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "now": s.conf.FakeClock.Now()})
	return nil
}

// setClock is PUT /api/v1/debug/clock: {"now": RFC 3339} sets the clock,
// {"advance": "90m"} moves it forward. The clock never goes back: grants
// and sweeps assume time moves forward.
func (s *Server) setClock(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	if c.Scope != ScopeSystem {
		return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: "the clock is for system-scope callers"}
	}
	var body struct {
		Now     *time.Time `json:"now"`
		Advance string     `json:"advance"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	cur := s.conf.FakeClock.Now()
	var next time.Time
	switch {
	case body.Now != nil && body.Advance == "":
		next = body.Now.UTC()
	case body.Now == nil && body.Advance != "":
		d, err := time.ParseDuration(body.Advance)
		if err != nil || d < 0 {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "advance", Message: "advance: must be a non-negative Go duration such as 90m"}
		}
		next = cur.Add(d)
	default:
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Message: "give exactly one of now and advance"}
	}
	if next.Before(cur) {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "now", Message: "now: the clock does not go back"}
	}
	s.conf.FakeClock.Set(next)
	s.log.Warn("clock set", "now", next, "by", c.ID)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "now": next})
	return nil
}

// lifecycleError maps the lifecycle's errors to API errors; names maps
// field paths to the names the caller used.
func lifecycleError(err error, names map[string]string) error {
	var fes engine.FieldErrors
	var se *lifecycle.StateError
	var inUse *lifecycle.InUseError
	var conflict *store.ConflictError
	switch {
	case errors.As(err, &fes):
		details := make([]map[string]string, len(fes))
		for i, fe := range fes {
			f := fe.Field
			if n, ok := names[f]; ok {
				f = n
			}
			details[i] = map[string]string{"target": f, "message": fe.Reason}
		}
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: details[0]["target"],
			Message: details[0]["target"] + ": " + details[0]["message"], Details: details}
	case errors.Is(err, lifecycle.ErrNotFound):
		return errNotFound("not found")
	case errors.Is(err, lifecycle.ErrDeviceInactive):
		return &apiError{Status: http.StatusForbidden, Code: "DEVICE_INACTIVE", Message: "the device is not active"}
	case errors.Is(err, lifecycle.ErrSiteDenied):
		return &apiError{Status: http.StatusForbidden, Code: "SITE_DENIED", Message: "Site access denied"}
	case errors.Is(err, lifecycle.ErrSelfApproval):
		return &apiError{Status: http.StatusForbidden, Code: "SELF_APPROVAL", Message: err.Error()}
	case errors.Is(err, lifecycle.ErrActuatorDisabled):
		return &apiError{Status: http.StatusForbidden, Code: "ACTUATOR_DISABLED", Message: err.Error()}
	case errors.As(err, &se):
		return &apiError{Status: http.StatusConflict, Code: string(se.Current), Message: se.Error()}
	case errors.As(err, &inUse):
		return &apiError{Status: http.StatusConflict, Code: "IN_USE", Message: inUse.Error(), Details: map[string]int{"rules": inUse.Rules}}
	case errors.As(err, &conflict):
		return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: conflict.Msg}
	}
	return err
}
