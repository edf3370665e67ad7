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
	s.route("GET", "/metrics", SurfaceMetrics, s.metricsHandler)
	s.route("GET", "/api/v1/system/log-level", SurfaceInventory, s.user(PermRead, false, s.getLogLevel))
	s.route("PUT", "/api/v1/system/log-level", SurfaceInventory, s.user(PermWrite, true, s.setLogLevel))
}

func (s *Server) systemOnly(c *Caller) error {
	if c.Scope != ScopeSystem {
		return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: "this endpoint is for system-scope callers"}
	}
	if s.conf.LogLevel == nil {
		return &apiError{Status: http.StatusConflict, Code: "NOT_ADJUSTABLE", Message: "this server was started without a run-time adjustable log level"}
	}
	return nil
}

// getLogLevel is GET /api/v1/system/log-level.
func (s *Server) getLogLevel(w http.ResponseWriter, _ *http.Request, _ httprouter.Params, c *Caller) error {
	if err := s.systemOnly(c); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "level": strings.ToLower(s.conf.LogLevel.Level().String())})
	return nil
}

// setLogLevel is PUT /api/v1/system/log-level {"level": "debug|info|warn|error"}:
// the log verbosity changes at once, without a restart.
func (s *Server) setLogLevel(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	if err := s.systemOnly(c); err != nil {
		return err
	}
	var body struct {
		Level string `json:"level"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	var l slog.Level
	switch body.Level {
	case "debug", "info", "warn", "error":
		l.UnmarshalText([]byte(body.Level))
	default:
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "level", Message: "level: must be debug, info, warn or error"}
	}
	old := s.conf.LogLevel.Level()
	s.conf.LogLevel.Set(l)
	s.log.Warn("log level changed", "from", old.String(), "to", l.String(), "by", c.ID)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "level": body.Level})
	return nil
}
