package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A newcomer's path: register a device, serve, let its agent report a
// prompt, stop the server cleanly; the request and its audit trail stay.
func TestServeAgentIngest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	code, out, errOut := runCmd("device", "add", "--data", dir, "--org", "acme", "--hostname", "WIN-1")
	if code != exitOK {
		t.Fatalf("device add: %d %s", code, errOut)
	}
	var dev struct{ DeviceID, OrgID, Token string }
	if err := json.Unmarshal([]byte(out), &dev); err != nil || dev.Token == "" {
		t.Fatalf("device add printed %q", out)
	}
	// The same org name finds the same org.
	if _, out2, _ := runCmd("device", "add", "--data", dir, "--org", "ACME", "--hostname", "WIN-2"); !strings.Contains(out2, dev.OrgID) {
		t.Fatalf("second device: %s", out2)
	}

	code, tok, errOut := runCmd("token", "--data", dir, "--org", dev.OrgID, "--name", "Ann")
	if code != exitOK {
		t.Fatalf("token: %d %s", code, errOut)
	}
	tok = strings.TrimSpace(tok)

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		done <- runServe(ctx, []string{"--data", dir, "--addr", "127.0.0.1:0"}, &bytes.Buffer{}, &logs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("serve exited %d: %s", code, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/agents/"+dev.DeviceID+"/elevation-requests",
		strings.NewReader(`{"subject_username":"acme\\sarah","target_executable_path":"C:\\x.exe"}`))
	req.Header.Set("Authorization", "Bearer "+dev.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || body["status"] != "pending" {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	// An administrator approves it over the API with the minted token.
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if st, out := call("GET", "/api/v1/pam/elevation-requests?status=pending", ""); st != 200 || !strings.Contains(out, body["id"].(string)) {
		t.Fatalf("list: %d %s", st, out)
	}
	if st, out := call("POST", "/api/v1/pam/elevation-requests/"+body["id"].(string)+"/respond", `{"decision":"approve"}`); st != 200 ||
		!strings.Contains(out, `"approved"`) {
		t.Fatalf("respond: %d %s", st, out)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("serve exited %d: %s", code, logs.String())
	}
	if code, out, _ := runCmd("audit", "verify", "--data", dir); code != exitOK || !strings.HasPrefix(out, "ok: 2 records") {
		t.Fatalf("audit verify: %d %s", code, out)
	}
	if code, out, _ := runCmd("export", "--data", dir); code != exitOK || !strings.Contains(out, body["id"].(string)) {
		t.Fatalf("export: %d %s", code, out)
	}
}
