package server

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
)

func TestMetricsCountRoutesDecisionsAndReloads(t *testing.T) {
	e := newEnv(t, Config{JWTSecret: secret})
	e.do(t, "GET", "/healthz", "", "", nil)
	e.do(t, "GET", "/api/v1/pam/rules", "", "", nil) // 401
	tok := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms})
	r := e.do(t, "POST", "/api/v1/pam/decide", tok, "application/json",
		strings.NewReader(`{"flowType":"uac_intercept","observation":{"subjectUsername":"bob","targetExecutablePath":"C:\\x.exe","observedAt":"2026-06-15T10:00:00Z"}}`))
	if r.status != 200 {
		t.Fatalf("decide: %s", r.raw)
	}
	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`elevate_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`elevate_http_requests_total{method="GET",route="/api/v1/pam/rules",status="401"} 1`,
		`elevate_http_request_duration_seconds_count{method="POST",route="/api/v1/pam/decide"} 1`,
		`elevate_decisions_total{flow="uac_intercept",outcome="pending"} 1`,
		`elevate_decision_eval_seconds_count{flow="uac_intercept"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, e.org) || strings.Contains(text, e.device) {
		t.Error("an id reached a metric label")
	}
	off := newEnv(t, Config{Surfaces: map[string]bool{SurfaceMetrics: false}})
	if r := off.do(t, "GET", "/metrics", "", "", nil); r.status != 404 || errCode(r) != "NOT_FOUND" {
		t.Fatalf("metrics off: %d %s", r.status, r.raw)
	}
}

func TestCORS(t *testing.T) {
	for _, c := range []CORSConfig{{}, {AllowedOrigins: []string{"*"}, AllowCredentials: true}, {AllowedOrigins: []string{"https://x.example/path"}}} {
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
	e := newEnv(t, Config{JWTSecret: secret, CORS: &CORSConfig{AllowedOrigins: []string{"https://admin.example"}, AllowCredentials: true}})
	pre := func(origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", e.srv.URL+"/api/v1/pam/rules", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := pre("https://admin.example")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://admin.example" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("allowed preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := pre("https://evil.example"); resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("refused preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/healthz", nil)
	req.Header.Set("Origin", "https://evil.example")
	got, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got.Body.Close()
	if got.StatusCode != 200 || got.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign origin got CORS headers: %v", got.Header)
	}
	plain := newEnv(t, Config{})
	req, _ = http.NewRequest("GET", plain.srv.URL+"/healthz", nil)
	req.Header.Set("Origin", "https://admin.example")
	got, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got.Body.Close()
	if got.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS headers without a CORS configuration")
	}
}

func TestSlowRequestsEndWith408(t *testing.T) {
	e := newEnv(t, Config{RequestTimeout: 50 * time.Millisecond})
	release := make(chan struct{})
	finished := make(chan struct{})
	srv := e.server
	srv.router.GET("/slow", srv.handle(func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) error {
		<-req.Context().Done()
		<-release
		w.WriteHeader(200) // too late: dropped
		w.Write([]byte(`{"late":true}`))
		close(finished)
		return nil
	}))
	r := e.do(t, "GET", "/slow", "", "", nil)
	if r.status != 408 || errCode(r) != "REQUEST_TIMEOUT" || strings.Contains(r.raw, "late") {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	close(release)
	<-finished
	if r := e.do(t, "GET", "/healthz", "", "", nil); r.status != 200 {
		t.Fatalf("after a timeout: %d", r.status)
	}
}

func TestLogLevelAtRunTime(t *testing.T) {
	level := new(slog.LevelVar)
	level.Set(slog.LevelInfo)
	e := newEnv(t, Config{JWTSecret: secret, LogLevel: level})
	sys := token(t, Claims{Scope: ScopeSystem, Permissions: allPerms, AMR: []string{"mfa"}})
	org := token(t, Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}})
	noMFA := token(t, Claims{Scope: ScopeSystem, Permissions: allPerms})
	body := func() io.Reader { return strings.NewReader(`{"level":"debug"}`) }
	if r := e.do(t, "PUT", "/api/v1/system/log-level", org, "application/json", body()); r.status != 403 {
		t.Fatalf("org scope: %d", r.status)
	}
	if r := e.do(t, "PUT", "/api/v1/system/log-level", noMFA, "application/json", body()); r.status != 403 || errCode(r) != "MFA_REQUIRED" {
		t.Fatalf("no MFA: %d %s", r.status, r.raw)
	}
	if r := e.do(t, "PUT", "/api/v1/system/log-level", sys, "application/json", strings.NewReader(`{"level":"loud"}`)); r.status != 400 {
		t.Fatalf("bad level: %d", r.status)
	}
	if r := e.do(t, "PUT", "/api/v1/system/log-level", sys, "application/json", body()); r.status != 200 || level.Level() != slog.LevelDebug {
		t.Fatalf("set: %d %s %v", r.status, r.raw, level.Level())
	}
	if r := e.do(t, "GET", "/api/v1/system/log-level", sys, "", nil); r.status != 200 || r.body["level"] != "debug" {
		t.Fatalf("get: %s", r.raw)
	}
}
