package server

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// infraLog is a log sink safe to read while the server writes to it.
type infraLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *infraLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *infraLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLogLevel(t *testing.T) {
	logs := &infraLog{}
	level := &slog.LevelVar{}
	e, s := infraEnv(t, Config{JWTSecret: secret, LogLevel: level,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))}, false)
	sys := token(t, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "admin-7"}, Scope: ScopeSystem, Permissions: allPerms, AMR: []string{"mfa"}})
	const path = "/api/v1/system/log-level"
	put := func(tok, body string) reply {
		return e.do(t, "PUT", path, tok, "application/json", strings.NewReader(body))
	}

	if r := e.do(t, "GET", path, sys, "", nil); r.status != 200 || r.body["level"] != "info" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	s.log.Debug("probe before")
	if r := put(sys, `{"level":"debug"}`); r.status != 200 || r.body["level"] != "debug" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	s.log.Debug("probe after")
	out := logs.String()
	if strings.Contains(out, "probe before") || !strings.Contains(out, "probe after") {
		t.Fatalf("debug lines before and after the switch:\n%s", out)
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, `msg="log level changed"`) || !strings.Contains(out, "callerId=admin-7") {
		t.Fatalf("the change is not logged at warn with the caller:\n%s", out)
	}
	if r := e.do(t, "GET", path, sys, "", nil); r.body["level"] != "debug" {
		t.Fatalf("%s", r.raw)
	}
	// Going quieter than warn: the change is still logged (before it).
	if r := put(sys, `{"level":"error"}`); r.status != 200 || level.Level() != slog.LevelError {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if !strings.Contains(logs.String(), "to=error") {
		t.Fatalf("the switch to error is not logged:\n%s", logs.String())
	}

	for name, c := range map[string]struct {
		method, token, body string
		status              int
		code                string
	}{
		"no token":           {"GET", "", "", 401, "UNAUTHORIZED"},
		"org scope read":     {"GET", token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}}), "", 403, "FORBIDDEN"},
		"org scope write":    {"PUT", token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}}), `{"level":"debug"}`, 403, "FORBIDDEN"},
		"partner scope":      {"PUT", token(t, Claims{Scope: ScopePartner, PartnerID: e.org, Permissions: allPerms, AMR: []string{"mfa"}}), `{"level":"debug"}`, 403, "FORBIDDEN"},
		"system without MFA": {"PUT", token(t, Claims{Scope: ScopeSystem, Permissions: allPerms}), `{"level":"debug"}`, 403, "MFA_REQUIRED"},
		"system read-only":   {"PUT", token(t, Claims{Scope: ScopeSystem, Permissions: []string{PermRead}, AMR: []string{"mfa"}}), `{"level":"debug"}`, 403, "FORBIDDEN"},
		"unknown level":      {"PUT", sys, `{"level":"verbose"}`, 400, "VALIDATION"},
		"upper case":         {"PUT", sys, `{"level":"DEBUG"}`, 400, "VALIDATION"},
		"no level":           {"PUT", sys, `{}`, 400, "VALIDATION"},
		"unknown field":      {"PUT", sys, `{"level":"debug","x":1}`, 400, "VALIDATION"},
	} {
		var r reply
		if c.method == "GET" {
			r = e.do(t, "GET", path, c.token, "", nil)
		} else {
			r = put(c.token, c.body)
		}
		if r.status != c.status || errCode(r) != c.code {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if level.Level() != slog.LevelError {
		t.Fatalf("a refused call changed the level to %v", level.Level())
	}
}

func TestLogLevelFixed(t *testing.T) {
	e, _ := infraEnv(t, Config{JWTSecret: secret}, false)
	sys := token(t, Claims{Scope: ScopeSystem, Permissions: allPerms, AMR: []string{"mfa"}})
	for _, method := range []string{"GET", "PUT"} {
		r := e.do(t, method, "/api/v1/system/log-level", sys, "application/json", strings.NewReader(`{"level":"debug"}`))
		if r.status != 409 || errCode(r) != "NOT_ADJUSTABLE" || !strings.Contains(r.raw, "runtime-adjustable") {
			t.Errorf("%s: %d %s", method, r.status, r.raw)
		}
	}
	off, _ := infraEnv(t, Config{JWTSecret: secret, Surfaces: map[string]bool{SurfaceInventory: false}}, false)
	if r := off.do(t, "GET", "/api/v1/system/log-level", sys, "", nil); r.status != 404 {
		t.Errorf("inventory surface off: %d", r.status)
	}
}
