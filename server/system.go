package server

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// systemRoutes registers /metrics and the system-scope administration
// endpoints (log level).
func (s *Server) systemRoutes() {
	// /metrics asks for no authentication, like most Prometheus targets:
	// it holds aggregate counts and timings labelled with route patterns,
	// flows and outcomes, never ids or names. Keep it on the operators'
	// network, or switch the metrics surface off.
	s.route("GET", "/metrics", SurfaceMetrics, s.metricsHandle())
	s.route("GET", "/api/v1/system/log-level", SurfaceInventory, s.user(PermRead, false, s.getLogLevel))
	s.route("PUT", "/api/v1/system/log-level", SurfaceInventory, s.user(PermWrite, true, s.putLogLevel))
}

// logLevels are the levels the log-level endpoint sets.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

func levelName(l slog.Level) string { return strings.ToLower(l.String()) }

// systemLogLevel is the server's level variable, for a system-scope
// caller; other callers are refused (403), and so is every caller when the
// level is fixed (409).
func (s *Server) systemLogLevel(c *Caller) (*slog.LevelVar, error) {
	if c.Scope != ScopeSystem {
		return nil, &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: "this endpoint needs the system scope"}
	}
	if s.conf.LogLevel == nil {
		return nil, &apiError{Status: http.StatusConflict, Code: "NOT_ADJUSTABLE",
			Message: "the server was started without a runtime-adjustable log level; restart it to change the level"}
	}
	return s.conf.LogLevel, nil
}

// getLogLevel is GET /api/v1/system/log-level: the current level.
func (s *Server) getLogLevel(w http.ResponseWriter, _ *http.Request, _ httprouter.Params, c *Caller) error {
	lv, err := s.systemLogLevel(c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "level": levelName(lv.Level())})
	return nil
}

// putLogLevel is PUT /api/v1/system/log-level {"level":"debug|info|warn|error"}:
// the level changes at once for every log line the server writes after it.
func (s *Server) putLogLevel(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	lv, err := s.systemLogLevel(c)
	if err != nil {
		return err
	}
	var body struct {
		Level *string `json:"level"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	if body.Level == nil {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "level", Message: "level: is required"}
	}
	to, ok := logLevels[*body.Level]
	if !ok {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "level", Message: "level: must be one of debug, info, warn, error"}
	}
	from := lv.Level()
	// The change is logged at warn under whichever level lets it through.
	logChange := func() {
		s.log.Warn("log level changed", "from", levelName(from), "to", levelName(to), "callerId", c.ID, "callerName", c.Name)
	}
	if to > slog.LevelWarn {
		logChange()
		lv.Set(to)
	} else {
		lv.Set(to)
		logChange()
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "level": levelName(to)})
	return nil
}
