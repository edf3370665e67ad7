package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths.
func selfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "elevate-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, keyPath
}

// startServe runs serve in the background until the test ends.
func startServe(t *testing.T, args ...string) (addr string, logs *lockedWriter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan int, 1)
	w := &lockedWriter{w: &bytes.Buffer{}}
	go func() { done <- runServe(ctx, args, io.Discard, w, ready) }()
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("serve exited %d: %s", code, w.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve ended with %d", code)
		}
	})
	return addr, w
}

// A server over TLS, with rule files, a fake clock and settings from the
// environment: the file rule decides, the clock moves on request.
func TestServeTLSRuleFilesFakeClockAndEnv(t *testing.T) {
	tmp := t.TempDir()
	data, rules := filepath.Join(tmp, "data"), filepath.Join(tmp, "rules")
	os.MkdirAll(rules, 0o700)
	os.WriteFile(filepath.Join(rules, "tools.pam"), []byte("rule \"tools\" {\n  when path ~ `C:\\Tools\\*.exe`\n  then auto_approve\n}\n"), 0o600)
	code, out, errOut := runCmd("device", "add", "--data", data, "--org", "acme", "--hostname", "WIN-1")
	if code != exitOK {
		t.Fatalf("device add: %s", errOut)
	}
	var dev struct{ DeviceID, OrgID, Token string }
	json.Unmarshal([]byte(out), &dev)
	_, org, _ := runCmd("token", "--data", data, "--org", dev.OrgID)
	_, sys, _ := runCmd("token", "--data", data, "--scope", "system")
	cert, key := selfSigned(t, tmp)
	t.Setenv("ELEVATE_FAKE_CLOCK_START", "2026-06-15T10:00:00Z")
	t.Setenv("ELEVATE_RULES", rules)
	addr, _ := startServe(t, "--data", data, "--addr", "127.0.0.1:0", "--fake-clock", "--tls-cert", cert, "--tls-key", key)

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	call := func(method, path, tok, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok))
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if st, m := call("GET", "/readyz", "", ""); st != 200 || m["status"] != "ready" {
		t.Fatalf("readyz: %d %v", st, m)
	}
	st, m := call("POST", "/api/v1/pam/decide", org, `{"flowType":"uac_intercept","observation":{"subjectUsername":"bob","targetExecutablePath":"C:\\Tools\\x.exe","observedAt":"2026-06-15T10:00:00Z"}}`)
	if st != 200 || m["decision"].(map[string]any)["outcome"] != "auto_approved" {
		t.Fatalf("decide with the file rule: %d %v", st, m)
	}
	if st, m := call("GET", "/api/v1/debug/clock", sys, ""); st != 200 || m["now"] != "2026-06-15T10:00:00Z" {
		t.Fatalf("clock: %d %v", st, m)
	}
	if st, m := call("PUT", "/api/v1/debug/clock", sys, `{"advance":"2h"}`); st != 200 || m["now"] != "2026-06-15T12:00:00Z" {
		t.Fatalf("advance: %d %v", st, m)
	}
	if st, _ := call("PUT", "/api/v1/debug/clock", org, `{"advance":"2h"}`); st != 403 {
		t.Fatalf("org caller set the clock: %d", st)
	}
}

// Rule files that do not compile stop the start, naming the place.
func TestServeRefusesBrokenRuleFiles(t *testing.T) {
	tmp := t.TempDir()
	rules := filepath.Join(tmp, "rules")
	os.MkdirAll(rules, 0o700)
	os.WriteFile(filepath.Join(rules, "bad.pam"), []byte("rule \"x\" {\n  when pathh ~ `a`\n  then auto_approve\n}\n"), 0o600)
	var errb bytes.Buffer
	code := runServe(context.Background(), []string{"--data", filepath.Join(tmp, "data"), "--addr", "127.0.0.1:0", "--rules", rules}, io.Discard, &errb, nil)
	if code != exitCompile || !strings.Contains(errb.String(), "bad.pam:2:") {
		t.Fatalf("%d %s", code, errb.String())
	}
	for _, args := range [][]string{
		{"--rules", filepath.Join(tmp, "missing")},
		{"--tls-cert", "x.pem"},
		{"--disable", "everything"},
		{"--cors-origins", "*", "--cors-credentials"},
		{"--log-level", "chatty"},
	} {
		errb.Reset()
		args = append([]string{"--data", filepath.Join(tmp, "data"), "--addr", "127.0.0.1:0"}, args...)
		if code := runServe(context.Background(), args, io.Discard, &errb, nil); code != exitUsage {
			t.Errorf("%v: %d %s", args, code, errb.String())
		}
	}
	t.Setenv("ELEVATE_SWEEP_EVERY", "soon")
	errb.Reset()
	if code := runServe(context.Background(), []string{"--data", filepath.Join(tmp, "data")}, io.Discard, &errb, nil); code != exitUsage ||
		!strings.Contains(errb.String(), "ELEVATE_SWEEP_EVERY") {
		t.Errorf("bad env value: %d %s", code, errb.String())
	}
}

// lockedWriter lets the server's log and the test share a buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
