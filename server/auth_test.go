package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/elevate-pam/elevate/store"
)

// Keys are generated once per test binary: RSA generation is slow under
// the race detector.
var (
	rsaKeys = sync.OnceValue(func() []*rsa.PrivateKey {
		var out []*rsa.PrivateKey
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			out = append(out, k)
		}
		return out
	})
	ecKeys = sync.OnceValue(func() []*ecdsa.PrivateKey {
		var out []*ecdsa.PrivateKey
		for range 2 {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			out = append(out, k)
		}
		return out
	})
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf is the public JWK of an RSA or EC private key.
func jwkOf(kid string, priv any) map[string]any {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(k.N.Bytes()),
			"e": b64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PrivateKey:
		raw, err := k.PublicKey.Bytes()
		if err != nil {
			panic(err)
		}
		return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
	}
	panic("unknown key type")
}

func jwksDoc(keys ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

// signed makes a token of claims with method and key; kid "" leaves the
// header without kid.
func signed(t *testing.T, m jwt.SigningMethod, key any, kid string, c Claims) string {
	t.Helper()
	if c.Subject == "" {
		c.Subject = "user-1"
	}
	if c.ExpiresAt == nil {
		c.ExpiresAt = jwt.NewNumericDate(t0.Add(time.Hour))
	}
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwksServer serves a JWK set that tests can replace, or fail.
type jwksServer struct {
	*httptest.Server
	doc  atomic.Pointer[[]byte]
	down atomic.Bool
	hits atomic.Int64
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	js := &jwksServer{}
	js.doc.Store(&doc)
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		js.hits.Add(1)
		if js.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*js.doc.Load())
	}))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) set(doc []byte) { js.doc.Store(&doc) }

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func orgClaims(e *env) Claims {
	return Claims{Scope: ScopeOrganization, OrgID: e.org, Permissions: allPerms, AMR: []string{"mfa"}}
}

// active asks for the active grants with tok: a read any valid caller may
// make.
func active(t *testing.T, e *env, tok string) reply {
	t.Helper()
	return e.do(t, "GET", "/api/v1/pam/active", tok, "", nil)
}

func TestJWKSFileVerifiesRS256AndES256(t *testing.T) {
	rk, ek := rsaKeys()[0], ecKeys()[0]
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, jwksDoc(jwkOf("r1", rk), jwkOf("e1", ek)))
	e := newEnv(t, Config{JWTSecret: secret, Auth: AuthConfig{JWKSFile: path}})
	c := orgClaims(e)
	for name, tok := range map[string]string{
		"RS256":             signed(t, jwt.SigningMethodRS256, rk, "r1", c),
		"ES256":             signed(t, jwt.SigningMethodES256, ek, "e1", c),
		"RS256 without kid": signed(t, jwt.SigningMethodRS256, rk, "", c), // the only RSA key
		"ES256 without kid": signed(t, jwt.SigningMethodES256, ek, "", c), // the only EC key
		"HS256":             token(t, c),
	} {
		if r := active(t, e, tok); r.status != 200 {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	// The claims reach the gates as with HS256 tokens.
	ro := c
	ro.Permissions = []string{PermRead}
	r := e.do(t, "POST", "/api/v1/pam/elevation-requests/"+store.NewID(t0)+"/revoke", signed(t, jwt.SigningMethodES256, ek, "e1", ro),
		"application/json", strings.NewReader(`{"reason":"x"}`))
	if r.status != 403 || errCode(r) != "FORBIDDEN" {
		t.Fatalf("read-only ES256 caller: %d %s", r.status, r.raw)
	}
}

func TestJWKSTokensRefused(t *testing.T) {
	rk, other, ek := rsaKeys()[0], rsaKeys()[1], ecKeys()[0]
	js := newJWKSServer(t, jwksDoc(jwkOf("r1", rk), jwkOf("r2", other), jwkOf("e1", ek)))
	e := newEnv(t, Config{JWTSecret: secret, Auth: AuthConfig{JWKSURL: js.URL, Issuer: "https://idp.example", Audience: "elevate"}})
	good := orgClaims(e)
	good.Issuer, good.Audience = "https://idp.example", jwt.ClaimStrings{"other", "elevate"}
	if r := active(t, e, signed(t, jwt.SigningMethodRS256, rk, "r1", good)); r.status != 200 {
		t.Fatalf("good token: %d %s", r.status, r.raw)
	}
	if r := active(t, e, token(t, good)); r.status != 200 {
		t.Fatalf("good HS256 token: %d %s", r.status, r.raw)
	}
	with := func(f func(c *Claims)) Claims { c := good; f(&c); return c }
	pubDER, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	critical := jwt.NewWithClaims(jwt.SigningMethodRS256, good)
	critical.Header["kid"], critical.Header["crit"] = "r1", []string{"exp"}
	crit, _ := critical.SignedString(rk)
	numericKid := jwt.NewWithClaims(jwt.SigningMethodRS256, good)
	numericKid.Header["kid"] = 1
	numKid, _ := numericKid.SignedString(rk)
	noExp := good
	noExp.ExpiresAt, noExp.Subject = nil, "user-1"
	noExpT := jwt.NewWithClaims(jwt.SigningMethodRS256, noExp)
	noExpT.Header["kid"] = "r1"
	noExpTok, _ := noExpT.SignedString(rk)
	for name, tok := range map[string]string{
		"unknown kid":                  signed(t, jwt.SigningMethodRS256, rk, "nope", good),
		"kid of another key":           signed(t, jwt.SigningMethodRS256, rk, "r2", good),
		"alg none":                     none,
		"HS256 with the RSA key (PEM)": signed(t, jwt.SigningMethodHS256, pubPEM, "r1", good),
		"HS256 with the RSA key (DER)": signed(t, jwt.SigningMethodHS256, pubDER, "r1", good),
		"HS256 with the modulus":       signed(t, jwt.SigningMethodHS256, rk.N.Bytes(), "r1", good),
		"HS384 with the secret":        signed(t, jwt.SigningMethodHS384, secret, "", good),
		"PS256 with the RSA key":       signed(t, jwt.SigningMethodPS256, rk, "r1", good),
		"RS512 with the RSA key":       signed(t, jwt.SigningMethodRS512, rk, "r1", good),
		"ES256 naming an RSA kid":      signed(t, jwt.SigningMethodES256, ek, "r1", good),
		"RS256 without kid, 2 keys":    signed(t, jwt.SigningMethodRS256, rk, "", good),
		"expired":                      signed(t, jwt.SigningMethodRS256, rk, "r1", with(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(t0.Add(-time.Minute)) })),
		"not yet valid":                signed(t, jwt.SigningMethodRS256, rk, "r1", with(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(t0.Add(time.Minute)) })),
		"no exp":                       noExpTok,
		"wrong issuer":                 signed(t, jwt.SigningMethodRS256, rk, "r1", with(func(c *Claims) { c.Issuer = "https://evil.example" })),
		"no issuer":                    signed(t, jwt.SigningMethodES256, ek, "e1", with(func(c *Claims) { c.Issuer = "" })),
		"wrong audience":               signed(t, jwt.SigningMethodRS256, rk, "r1", with(func(c *Claims) { c.Audience = jwt.ClaimStrings{"someone-else"} })),
		"no audience":                  signed(t, jwt.SigningMethodES256, ek, "e1", with(func(c *Claims) { c.Audience = nil })),
		"HS256 with the wrong issuer":  token(t, with(func(c *Claims) { c.Issuer = "https://evil.example" })),
		"HS256 without audience":       token(t, with(func(c *Claims) { c.Audience = nil })),
		"no sub":                       signed(t, jwt.SigningMethodRS256, rk, "r1", with(func(c *Claims) { c.Subject = " " })) + "",
		"crit header":                  crit,
		"numeric kid":                  numKid,
		"tampered payload":             tamper(signed(t, jwt.SigningMethodRS256, rk, "r1", good)),
	} {
		r := active(t, e, tok)
		if r.status != 401 || errCode(r) != "UNAUTHORIZED" || r.header.Get("Www-Authenticate") == "" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	// Within the 30 s leeway, exp and nbf are forgiven.
	skew := with(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(t0.Add(-20 * time.Second)) })
	if r := active(t, e, signed(t, jwt.SigningMethodRS256, rk, "r1", skew)); r.status != 200 {
		t.Fatalf("leeway: %d %s", r.status, r.raw)
	}
}

// tamper flips the payload's scope without re-signing.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	p = bytes.Replace(p, []byte(`"organization"`), []byte(`"system"      `), 1)
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return strings.Join(parts, ".")
}

func TestJWKSOnlyRefusesHS256(t *testing.T) {
	rk := rsaKeys()[0]
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, jwksDoc(jwkOf("r1", rk)))
	e := newEnv(t, Config{Auth: AuthConfig{JWKSFile: path}}) // no JWT secret
	c := orgClaims(e)
	if r := active(t, e, signed(t, jwt.SigningMethodRS256, rk, "r1", c)); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	for _, key := range [][]byte{secret, rk.N.Bytes()} {
		if r := active(t, e, signed(t, jwt.SigningMethodHS256, key, "", c)); r.status != 401 {
			t.Fatalf("HS256 without a configured secret: %d", r.status)
		}
	}
}

func TestJWKSURLRotation(t *testing.T) {
	old, next := rsaKeys()[0], rsaKeys()[1]
	js := newJWKSServer(t, jwksDoc(jwkOf("k1", old)))
	e := newEnv(t, Config{Auth: AuthConfig{JWKSURL: js.URL}})
	c := orgClaims(e)
	if r := active(t, e, signed(t, jwt.SigningMethodRS256, old, "k1", c)); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if n := js.hits.Load(); n != 1 {
		t.Fatalf("%d fetches, want the one at start", n)
	}
	// The identity provider rotates: k2 replaces k1. The first token with
	// k2 makes the server fetch the set again.
	js.set(jwksDoc(jwkOf("k2", next)))
	if r := active(t, e, signed(t, jwt.SigningMethodRS256, next, "k2", c)); r.status != 200 {
		t.Fatalf("after rotation: %d %s", r.status, r.raw)
	}
	if r := active(t, e, signed(t, jwt.SigningMethodRS256, old, "k1", c)); r.status != 401 {
		t.Fatalf("the retired key still verifies: %d", r.status)
	}
	// More unknown kids within 30 s fetch nothing more.
	for i := range 5 {
		if r := active(t, e, signed(t, jwt.SigningMethodRS256, next, "k9", c)); r.status != 401 {
			t.Fatalf("unknown kid %d: %d", i, r.status)
		}
	}
	if n := js.hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

func TestJWKSURLDownKeepsLastGoodKeys(t *testing.T) {
	rk, ek := rsaKeys()[0], ecKeys()[0]
	js := newJWKSServer(t, jwksDoc(jwkOf("r1", rk), jwkOf("e1", ek)))
	// A refresh is due on every request.
	e := newEnv(t, Config{Auth: AuthConfig{JWKSURL: js.URL, JWKSRefresh: time.Nanosecond}})
	c := orgClaims(e)
	toks := []string{signed(t, jwt.SigningMethodRS256, rk, "r1", c), signed(t, jwt.SigningMethodES256, ek, "e1", c)}
	check := func(stage string) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if r := active(t, e, toks[i%2]); r.status != 200 {
					t.Errorf("%s: %d %s", stage, r.status, r.raw)
				}
			})
		}
		wg.Wait()
	}
	check("up")
	js.down.Store(true)
	check("answering 503")
	js.down.Store(false)
	js.set([]byte(`{"keys": "not a list"}`))
	check("serving an invalid set")
	js.Close()
	check("gone")
	if !strings.Contains(e.logs.String(), "keeping the last good keys") {
		t.Fatalf("failed fetches are not logged:\n%s", e.logs.String())
	}
}

func TestJWKSFileReload(t *testing.T) {
	a, b := rsaKeys()[0], ecKeys()[0]
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, jwksDoc(jwkOf("a", a)))
	logs := &bytes.Buffer{}
	ks, err := newKeySet(AuthConfig{JWKSFile: path}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ks.now = func() time.Time { return now }
	has := func(kid, alg string) bool { _, err := ks.key(kid, alg); return err == nil }
	if !has("a", algRS256) || has("b", algES256) {
		t.Fatal("initial set")
	}
	mtime := time.Now()
	rewrite := func(doc []byte) {
		mtime = mtime.Add(time.Second)
		writeFile(t, path, doc)
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	rewrite(jwksDoc(jwkOf("b", b)))
	if !has("a", algRS256) {
		t.Fatal("the file was read again before the check interval")
	}
	now = now.Add(jwksFileCheck)
	if has("a", algRS256) || !has("b", algES256) {
		t.Fatal("the changed file was not read again")
	}
	rewrite([]byte(`{"keys": [`))
	now = now.Add(jwksFileCheck)
	if !has("b", algES256) {
		t.Fatal("a bad file replaced the last good keys")
	}
	os.Remove(path)
	now = now.Add(jwksFileCheck)
	if !has("b", algES256) {
		t.Fatal("a missing file replaced the last good keys")
	}
	if n := strings.Count(logs.String(), "keeping the last good keys"); n != 2 {
		t.Fatalf("%d log lines, want one per bad version:\n%s", n, logs.String())
	}
	now = now.Add(jwksFileCheck)
	has("b", algES256)
	if n := strings.Count(logs.String(), "keeping the last good keys"); n != 2 {
		t.Fatalf("the same problem was logged again:\n%s", logs.String())
	}
	rewrite(jwksDoc(jwkOf("a", a), jwkOf("b", b)))
	now = now.Add(jwksFileCheck)
	if !has("a", algRS256) || !has("b", algES256) {
		t.Fatal("the file did not recover")
	}
}

func TestJWKSURLRefreshSchedule(t *testing.T) {
	a, b := rsaKeys()[0], rsaKeys()[1]
	js := newJWKSServer(t, jwksDoc(jwkOf("a", a)))
	ks, err := newKeySet(AuthConfig{JWKSURL: js.URL, JWKSRefresh: time.Hour}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ks.now = func() time.Time { return now }
	has := func(kid string) bool { _, err := ks.key(kid, algRS256); return err == nil }
	js.set(jwksDoc(jwkOf("a", a), jwkOf("b", b)))
	// An unknown kid fetches at once, then not again for 30 s.
	if !has("b") || js.hits.Load() != 2 {
		t.Fatalf("unknown kid: %d fetches", js.hits.Load())
	}
	has("c")
	now = now.Add(jwksKidRefetch - time.Second)
	has("c")
	if n := js.hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (none within 30 s of the last)", n)
	}
	now = now.Add(time.Second)
	has("c")
	if n := js.hits.Load(); n != 3 {
		t.Fatalf("%d fetches after 30 s", n)
	}
	// The periodic refresh drops keys the provider dropped.
	js.set(jwksDoc(jwkOf("b", b)))
	if !has("a") {
		t.Fatal("refreshed before the period")
	}
	now = now.Add(time.Hour)
	if has("a") || !has("b") {
		t.Fatal("the periodic refresh did not happen")
	}
	// A failed refresh keeps the keys and is tried again after 30 s, not
	// after the full period.
	js.down.Store(true)
	now = now.Add(time.Hour)
	hits := js.hits.Load()
	if !has("b") || js.hits.Load() != hits+1 {
		t.Fatal("a failed refresh lost the keys")
	}
	js.down.Store(false)
	js.set(jwksDoc(jwkOf("a", a)))
	now = now.Add(jwksRetryAfterFail)
	if !has("a") || has("b") {
		t.Fatal("not retried after a failure")
	}
}

func TestJWKSURLDownAtStart(t *testing.T) {
	rk := rsaKeys()[0]
	js := newJWKSServer(t, jwksDoc(jwkOf("r1", rk)))
	js.down.Store(true)
	// The server starts without keys (a URL that fails is not fatal) and
	// refuses tokens until a fetch succeeds.
	e := newEnv(t, Config{Auth: AuthConfig{JWKSURL: js.URL, JWKSRefresh: time.Nanosecond}})
	if !strings.Contains(e.logs.String(), "keeping the last good keys") {
		t.Fatalf("the failed first fetch is not logged:\n%s", e.logs.String())
	}
	tok := signed(t, jwt.SigningMethodRS256, rk, "r1", orgClaims(e))
	if r := active(t, e, tok); r.status != 401 {
		t.Fatalf("no keys yet: %d", r.status)
	}
	js.down.Store(false)
	if r := active(t, e, tok); r.status != 200 {
		t.Fatalf("after the provider came up: %d %s", r.status, r.raw)
	}
}

func TestJWKSOverTLS(t *testing.T) {
	ek := ecKeys()[1]
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(jwksDoc(jwkOf("e", ek)))
	}))
	defer ts.Close()
	e := newEnv(t, Config{Auth: AuthConfig{JWKSURL: ts.URL, HTTPClient: ts.Client()}})
	if r := active(t, e, signed(t, jwt.SigningMethodES256, ek, "e", orgClaims(e))); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
}

func TestNewKeySetRefusesBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, b)
		return p
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := file("good.json", jwksDoc(jwkOf("r", rsaKeys()[0])))
	for name, c := range map[string]AuthConfig{
		"file and URL":     {JWKSFile: good, JWKSURL: "https://idp.example/jwks"},
		"missing file":     {JWKSFile: filepath.Join(dir, "nope.json")},
		"not JSON":         {JWKSFile: file("bad.json", []byte("keys"))},
		"no keys member":   {JWKSFile: file("nokeys.json", []byte(`{"keys": null}`))},
		"no usable key":    {JWKSFile: file("weak.json", jwksDoc(jwkOf("w", weak)))},
		"a directory":      {JWKSFile: dir},
		"plain http":       {JWKSURL: "http://idp.example/jwks"},
		"another scheme":   {JWKSURL: "file:///etc/jwks.json"},
		"not a URL":        {JWKSURL: "://"},
		"relative URL":     {JWKSURL: "/jwks"},
		"http to a domain": {JWKSURL: "http://localhost.example/jwks"},
	} {
		if ks, err := newKeySet(c, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%s: accepted (%v)", name, ks != nil)
		}
	}
	if ks, err := newKeySet(AuthConfig{}, nil); ks != nil || err != nil {
		t.Fatalf("no JWKS: %v %v", ks, err)
	}
	// A server with a broken configuration says so, refuses the tokens
	// that need it and keeps the others working.
	e := newEnv(t, Config{JWTSecret: secret, Auth: AuthConfig{JWKSFile: filepath.Join(dir, "nope.json")}})
	s := New(Config{Lifecycle: e.lc, Logger: slog.New(slog.DiscardHandler), Auth: AuthConfig{JWKSFile: filepath.Join(dir, "nope.json")}})
	if s.AuthError() == nil {
		t.Fatal("AuthError is nil")
	}
	if New(Config{Lifecycle: e.lc, Logger: slog.New(slog.DiscardHandler), Auth: AuthConfig{JWKSFile: good}}).AuthError() != nil {
		t.Fatal("AuthError for a good file")
	}
	if r := active(t, e, signed(t, jwt.SigningMethodRS256, rsaKeys()[0], "r", orgClaims(e))); r.status != 401 {
		t.Fatalf("RS256 without a key set: %d", r.status)
	}
	if r := active(t, e, token(t, orgClaims(e))); r.status != 200 {
		t.Fatalf("HS256 beside a broken JWKS: %d", r.status)
	}
	if !strings.Contains(e.logs.String(), "authentication configuration") {
		t.Fatalf("not logged:\n%s", e.logs.String())
	}
}

func TestParseJWKS(t *testing.T) {
	rk, ek := rsaKeys()[0], ecKeys()[0]
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	r, ec := jwkOf("r", rk), jwkOf("e", ek)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	raw384, _ := p384.PublicKey.Bytes()
	offCurve := with(ec, "y", b64(bytes.Repeat([]byte{1}, 32)))
	cases := []struct {
		name          string
		key           map[string]any
		used, skipped int
	}{
		{"RSA", r, 1, 0},
		{"RSA without use and alg", with(r, "use", nil, "alg", nil), 1, 0},
		{"EC", ec, 1, 0},
		{"EC with alg", with(ec, "alg", "ES256"), 1, 0},
		{"encryption key", with(r, "use", "enc"), 0, 0},
		{"key_ops without verify", with(r, "key_ops", []string{"encrypt"}), 0, 0},
		{"key_ops with verify", with(r, "key_ops", []string{"verify"}), 1, 0},
		{"symmetric key", map[string]any{"kty": "oct", "k": b64(secret), "kid": "s"}, 0, 0},
		{"OKP key", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(make([]byte, 32))}, 0, 0},
		{"RSA for PS256", with(r, "alg", "PS256"), 0, 0},
		{"EC for ES384", with(ec, "alg", "ES384"), 0, 0},
		{"P-384", map[string]any{"kty": "EC", "crv": "P-384", "x": b64(raw384[1:49]), "y": b64(raw384[49:])}, 0, 0},
		{"private RSA", with(r, "d", b64(rk.D.Bytes())), 0, 1},
		{"private EC", with(ec, "d", b64(mustBytes(ek.Bytes()))), 0, 1},
		{"padded base64", with(r, "n", base64.URLEncoding.EncodeToString(append(rk.N.Bytes(), 0))), 0, 1},
		{"missing n", with(r, "n", nil), 0, 1},
		{"even e", with(r, "e", b64([]byte{2})), 0, 1},
		{"huge e", with(r, "e", b64([]byte{1, 0, 0, 0, 1})), 0, 1},
		{"short x", with(ec, "x", b64([]byte{1, 2})), 0, 1},
		{"point off the curve", offCurve, 0, 1},
		{"kid not a string", with(r, "kid", 7), 0, 1},
	}
	for _, c := range cases {
		keys, skipped, err := parseJWKS(jwksDoc(c.key))
		if err != nil || len(keys) != c.used || len(skipped) != c.skipped {
			t.Errorf("%s: %d used, %v skipped, %v", c.name, len(keys), skipped, err)
		}
	}
	// Member names are exact: "KTY" is not "kty".
	if keys, _, _ := parseJWKS([]byte(`{"keys":[{"KTY":"RSA","N":"` + r["n"].(string) + `","E":"AQAB"}]}`)); len(keys) != 0 {
		t.Error("member names matched without regard to case")
	}
	for _, doc := range []string{``, `[]`, `{}`, `{"keys":{}}`, `{"keys":null}`, `{"keys":[1]`} {
		if _, _, err := parseJWKS([]byte(doc)); err == nil {
			t.Errorf("%q: accepted", doc)
		}
	}
	if keys, skipped, err := parseJWKS([]byte(`{"keys":[1, "x", {"kty":"RSA"}]}`)); err != nil || len(keys) != 0 || len(skipped) != 3 {
		t.Errorf("malformed entries: %v %v %v", keys, skipped, err)
	}
}

func TestCredentialHeaders(t *testing.T) {
	e := newEnv(t, Config{JWTSecret: secret})
	tok := token(t, orgClaims(e))
	send := func(h http.Header) int {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/pam/active", nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, c := range map[string]struct {
		h    http.Header
		want int
	}{
		"bearer":                {http.Header{"Authorization": {"Bearer " + tok}}, 200},
		"two authorizations":    {http.Header{"Authorization": {"Bearer " + tok, "Bearer " + tok}}, 401},
		"basic":                 {http.Header{"Authorization": {"Basic " + tok}}, 401},
		"empty bearer":          {http.Header{"Authorization": {"Bearer  "}}, 401},
		"a JWT in X-API-Key":    {http.Header{"X-Api-Key": {tok}}, 401},
		"unknown key":           {http.Header{"X-Api-Key": {"elv_" + strings.Repeat("A", 43)}}, 401},
		"unknown key as bearer": {http.Header{"Authorization": {"Bearer elv_x"}}, 401},
		"both headers":          {http.Header{"Authorization": {"Bearer " + tok}, "X-Api-Key": {"elv_x"}}, 401},
	} {
		if got := send(c.h); got != c.want {
			t.Errorf("%s: %d, want %d", name, got, c.want)
		}
	}
}

func mustBytes(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// A token verified once is remembered, but every use still checks its time
// window on the server clock, and a token verified with a JWKS key is
// used only while that key set is current.
func TestVerifiedTokensStillExpire(t *testing.T) {
	e := newEnv(t, Config{JWTSecret: secret})
	c := orgClaims(e)
	c.ExpiresAt = jwt.NewNumericDate(t0.Add(10 * time.Minute))
	tok := token(t, c)
	for range 3 {
		if r := active(t, e, tok); r.status != 200 {
			t.Fatalf("fresh token: %d %s", r.status, r.raw)
		}
	}
	e.clock.Set(t0.Add(10*time.Minute + tokenLeeway - time.Second))
	if r := active(t, e, tok); r.status != 200 {
		t.Fatalf("inside the leeway: %d %s", r.status, r.raw)
	}
	e.clock.Set(t0.Add(10*time.Minute + tokenLeeway))
	if r := active(t, e, tok); r.status != 401 {
		t.Fatalf("expired token answered %d", r.status)
	}
	if r := active(t, e, tamper(tok)); r.status != 401 {
		t.Fatalf("tampered copy of a verified token answered %d", r.status)
	}

	// Not valid before: refused until its time, then accepted, and never
	// remembered as refused.
	e.clock.Set(t0)
	nb := orgClaims(e)
	nb.NotBefore = jwt.NewNumericDate(t0.Add(5 * time.Minute))
	tok = token(t, nb)
	if r := active(t, e, tok); r.status != 401 {
		t.Fatalf("token before nbf answered %d", r.status)
	}
	e.clock.Set(t0.Add(5 * time.Minute))
	if r := active(t, e, tok); r.status != 200 {
		t.Fatalf("token at nbf: %d %s", r.status, r.raw)
	}
	e.clock.Set(t0.Add(4 * time.Minute)) // the clock is set back
	if r := active(t, e, tok); r.status != 401 {
		t.Fatalf("remembered token used before its nbf answered %d", r.status)
	}
}

func TestVerifiedTokensFollowJWKSFileChanges(t *testing.T) {
	rk := rsaKeys()[0]
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, jwksDoc(jwkOf("r1", rk)))
	e := newEnv(t, Config{Auth: AuthConfig{JWKSFile: path}})
	tok := signed(t, jwt.SigningMethodRS256, rk, "r1", orgClaims(e))
	if r := active(t, e, tok); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	ks := e.server.auth().keys
	now := time.Now()
	ks.now = func() time.Time { return now }
	// The key is withdrawn from the file: the token verified with it is
	// refused once the file is read again.
	writeFile(t, path, jwksDoc(jwkOf("e1", ecKeys()[0])))
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	now = now.Add(jwksFileCheck)
	if r := active(t, e, tok); r.status != 401 {
		t.Fatalf("token of a withdrawn key answered %d", r.status)
	}
}
