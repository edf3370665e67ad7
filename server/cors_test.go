package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// infraRaw sends a request with the given headers and returns the
// response with its body read.
func infraRaw(t *testing.T, e *env, method, path string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func infraCORSHeaders(h http.Header) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out = append(out, k)
		}
	}
	return out
}

const (
	infraConsole = "https://console.example.com"
	infraEvil    = "https://evil.example.net"
)

func infraPreflight(origin string) map[string]string {
	return map[string]string{"Origin": origin, "Access-Control-Request-Method": "PUT",
		"Access-Control-Request-Headers": "authorization, content-type"}
}

func TestCORSOff(t *testing.T) {
	e, _ := infraEnv(t, Config{}, true)
	resp, _ := infraRaw(t, e, "GET", "/healthz", map[string]string{"Origin": infraConsole})
	if resp.StatusCode != 200 || len(infraCORSHeaders(resp.Header)) > 0 {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = infraRaw(t, e, "OPTIONS", "/healthz", infraPreflight(infraConsole))
	if h := infraCORSHeaders(resp.Header); len(h) > 0 {
		t.Fatalf("preflight without CORS configured: %d %v", resp.StatusCode, h)
	}
}

func TestCORSPreflight(t *testing.T) {
	e, _ := infraEnv(t, Config{CORS: &CORSConfig{AllowedOrigins: []string{infraConsole, "HTTPS://Admin.Example.com:443"},
		AllowCredentials: true, MaxAge: 10 * time.Minute, ExposedHeaders: []string{"Retry-After", "X-Correlation-Id"}}}, true)
	for _, origin := range []string{infraConsole, "https://admin.example.com"} {
		resp, body := infraRaw(t, e, "OPTIONS", "/api/v1/pam/elevation-requests/x/respond", infraPreflight(origin))
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || body != "" ||
			h.Get("Access-Control-Allow-Origin") != origin || !strings.Contains(h.Get("Vary"), "Origin") ||
			h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type, X-API-Key" ||
			h.Get("Access-Control-Max-Age") != "600" || h.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("%s: %d %v %q", origin, resp.StatusCode, h, body)
		}
		for _, m := range []string{"GET", "POST", "PUT", "PATCH"} {
			if !strings.Contains(h.Get("Access-Control-Allow-Methods"), m) {
				t.Errorf("Allow-Methods %q lacks %s", h.Get("Access-Control-Allow-Methods"), m)
			}
		}
	}
	// A foreign origin's preflight is refused in the envelope, with no
	// CORS header to let the browser go on.
	resp, body := infraRaw(t, e, "OPTIONS", "/api/v1/pam/elevation-requests", infraPreflight(infraEvil))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"code":"CORS_ORIGIN_DENIED"`) ||
		!strings.Contains(body, `"success":false`) || len(infraCORSHeaders(resp.Header)) > 0 {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}

	// Actual requests: the allowed origin may read the answer (and the
	// exposed headers), a foreign one is served without CORS headers.
	resp, _ = infraRaw(t, e, "GET", "/healthz", map[string]string{"Origin": infraConsole})
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != infraConsole ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" ||
		resp.Header.Get("Access-Control-Expose-Headers") != "Retry-After, X-Correlation-Id" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = infraRaw(t, e, "GET", "/healthz", map[string]string{"Origin": infraEvil})
	if resp.StatusCode != 200 || len(infraCORSHeaders(resp.Header)) > 0 || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	// Errors carry the headers too, so the page can read them.
	resp, _ = infraRaw(t, e, "GET", "/api/v1/pam/elevation-requests", map[string]string{"Origin": infraConsole})
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != infraConsole {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	// Without Access-Control-Request-Method, OPTIONS is no preflight.
	resp, _ = infraRaw(t, e, "OPTIONS", "/healthz", map[string]string{"Origin": infraEvil})
	if resp.StatusCode == http.StatusForbidden {
		t.Fatalf("plain OPTIONS refused as a preflight")
	}
}

func TestCORSWildcard(t *testing.T) {
	e, _ := infraEnv(t, Config{CORS: &CORSConfig{AllowedOrigins: []string{"*"}, AllowedHeaders: []string{"Content-Type"}}}, true)
	resp, _ := infraRaw(t, e, "OPTIONS", "/healthz", infraPreflight(infraEvil))
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "Content-Type" || resp.Header.Get("Access-Control-Allow-Credentials") != "" ||
		resp.Header.Get("Access-Control-Max-Age") != "600" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = infraRaw(t, e, "GET", "/healthz", map[string]string{"Origin": infraEvil})
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%v", resp.Header)
	}
	// "*" with credentials is refused by Validate; a server built with it
	// anyway allows no origin rather than every one.
	e, _ = infraEnv(t, Config{CORS: &CORSConfig{AllowedOrigins: []string{"*"}, AllowCredentials: true}}, true)
	resp, _ = infraRaw(t, e, "GET", "/healthz", map[string]string{"Origin": infraEvil})
	if len(infraCORSHeaders(resp.Header)) > 0 {
		t.Fatalf("%v", resp.Header)
	}
	if resp, _ := infraRaw(t, e, "OPTIONS", "/healthz", infraPreflight(infraEvil)); resp.StatusCode != 403 {
		t.Fatalf("%d", resp.StatusCode)
	}
}

func TestCORSValidate(t *testing.T) {
	var nilConf *CORSConfig
	for _, ok := range []*CORSConfig{nilConf, {AllowedOrigins: []string{"*"}},
		{AllowedOrigins: []string{infraConsole, "http://localhost:5173"}, AllowCredentials: true, MaxAge: time.Hour,
			AllowedHeaders: []string{"Authorization"}, ExposedHeaders: []string{"X-Correlation-Id"}}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for want, bad := range map[string]*CORSConfig{
		"is empty":         {},
		"AllowCredentials": {AllowedOrigins: []string{"*"}, AllowCredentials: true},
		"trailing /":       {AllowedOrigins: []string{infraConsole + "/"}},
		"path":             {AllowedOrigins: []string{infraConsole + "/app"}},
		"scheme":           {AllowedOrigins: []string{"console.example.com"}},
		`"null"`:           {AllowedOrigins: []string{"null"}},
		"ftp":              {AllowedOrigins: []string{"ftp://files.example.com"}},
		"AllowedHeaders":   {AllowedOrigins: []string{infraConsole}, AllowedHeaders: []string{"X Bad"}},
		"ExposedHeaders":   {AllowedOrigins: []string{infraConsole}, ExposedHeaders: []string{""}},
		"MaxAge":           {AllowedOrigins: []string{infraConsole}, MaxAge: -time.Second},
	} {
		err := bad.Validate()
		if err == nil {
			t.Errorf("%s: %+v accepted", want, bad)
		} else if want != "scheme" && want != "ftp" && !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}
