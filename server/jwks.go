package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Limits and timings of the JWKS key set.
const (
	DefaultJWKSRefresh = 10 * time.Minute // URL: how often the set is fetched again
	jwksFetchTimeout   = 5 * time.Second  // URL: one fetch, connection to last byte
	jwksKidRefetch     = 30 * time.Second // URL: at most one fetch per this for unknown kids
	jwksRetryAfterFail = 30 * time.Second // URL: the next attempt after a failed fetch
	jwksFileCheck      = 2 * time.Second  // file: how often its mtime is looked at
	jwksMaxBytes       = 1 << 20          // a larger document is refused
	minRSABits         = 2048
	maxRSABits         = 8192
)

// Signing algorithms a JWKS key verifies.
const (
	algRS256 = "RS256"
	algES256 = "ES256"
)

// errUnknownKid: the set has no key of the token's kid and algorithm.
var errUnknownKid = errors.New("no key in the JWKS for the token's kid")

// jwk is one usable verification key.
type jwk struct {
	kid string
	alg string // algRS256 (*rsa.PublicKey) or algES256 (*ecdsa.PublicKey on P-256)
	key any
}

// keySet holds the public keys that verify RS256 and ES256 tokens, from a
// JWKS file or URL, and keeps them current. It is safe for concurrent use:
// readers take the current set without locking; loads are serialised, and
// a load that fails keeps the last good set.
type keySet struct {
	file    string
	url     string
	client  *http.Client
	refresh time.Duration
	log     *slog.Logger
	now     func() time.Time // wall clock of the cache (tests replace it before use)

	keys atomic.Pointer[[]jwk]
	due  atomic.Int64 // Unix nanoseconds of the next periodic check

	mu      sync.Mutex // serialises loads; guards the fields below
	kidAt   time.Time  // last fetch caused by an unknown kid
	modTime time.Time  // file: mtime and size of the version last read
	size    int64
	digest  [32]byte // SHA-256 of the document last adopted
}

// newKeySet builds the key set of c: nil when c names no JWKS. A file must
// be readable and hold at least one usable key now; a URL must be https
// (http only to a loopback address), and its first fetch is tried now but
// may fail (the keys are fetched again when a token needs them, and tokens
// fail until then).
func newKeySet(c AuthConfig, log *slog.Logger) (*keySet, error) {
	if c.JWKSFile == "" && c.JWKSURL == "" {
		return nil, nil
	}
	if c.JWKSFile != "" && c.JWKSURL != "" {
		return nil, errors.New("jwks: set the JWKS file or the JWKS URL, not both")
	}
	if log == nil {
		log = slog.Default()
	}
	ks := &keySet{file: c.JWKSFile, url: c.JWKSURL, refresh: c.JWKSRefresh, log: log, now: time.Now}
	if ks.refresh <= 0 {
		ks.refresh = DefaultJWKSRefresh
	}
	ks.keys.Store(&[]jwk{})
	if ks.file != "" {
		st, err := os.Stat(ks.file)
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		keys, err := ks.readFile(st)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("jwks: %s holds no usable RS256 or ES256 key", ks.file)
		}
		ks.due.Store(ks.now().Add(jwksFileCheck).UnixNano())
		return ks, nil
	}
	u, err := url.Parse(c.JWKSURL)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && loopback(u.Hostname())) {
		return nil, fmt.Errorf("jwks: the JWKS URL %q must be an https URL (http only to a loopback address)", c.JWKSURL)
	}
	ks.client = jwksClient(c.HTTPClient)
	ks.mu.Lock()
	ks.fetch()
	ks.mu.Unlock()
	return ks, nil
}

// jwksClient is base (or a default client) refusing redirects that leave
// https.
func jwksClient(base *http.Client) *http.Client {
	c := &http.Client{Timeout: jwksFetchTimeout}
	if base != nil {
		cp := *base
		c = &cp
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" && !(req.URL.Scheme == "http" && loopback(req.URL.Hostname())) {
			return fmt.Errorf("jwks: refusing a redirect to %s", req.URL.Redacted())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 5 {
			return errors.New("jwks: too many redirects")
		}
		return nil
	}
	return c
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// key returns the key that verifies a token signed with alg (RS256 or
// ES256) naming kid. A token without kid needs a set with exactly one key
// for alg. An unknown kid makes a URL set fetch again, at most once per
// jwksKidRefetch.
func (ks *keySet) key(kid, alg string) (any, error) {
	ks.maybeRefresh()
	k, err := ks.find(kid, alg)
	if !errors.Is(err, errUnknownKid) || ks.url == "" {
		return k, err
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if k, err := ks.find(kid, alg); !errors.Is(err, errUnknownKid) {
		return k, err // fetched meanwhile
	}
	now := ks.now()
	if !ks.kidAt.IsZero() && now.Sub(ks.kidAt) < jwksKidRefetch {
		return nil, err
	}
	ks.kidAt = now
	ks.fetch()
	return ks.find(kid, alg)
}

func (ks *keySet) find(kid, alg string) (any, error) {
	var match []jwk
	for _, k := range *ks.keys.Load() {
		if k.alg == alg && (kid == "" || k.kid == kid) {
			match = append(match, k)
		}
	}
	switch {
	case len(match) == 1:
		return match[0].key, nil
	case kid == "":
		return nil, fmt.Errorf("a token without kid needs exactly one %s key in the JWKS, there are %d", alg, len(match))
	case len(match) == 0:
		return nil, errUnknownKid
	}
	return nil, fmt.Errorf("the JWKS has %d %s keys with kid %q", len(match), alg, kid)
}

// maybeRefresh reloads the set when its period is due: a file when its
// mtime or size changed, a URL every refresh. A request that finds another
// load running goes on with the current keys.
func (ks *keySet) maybeRefresh() {
	now := ks.now()
	if now.UnixNano() < ks.due.Load() || !ks.mu.TryLock() {
		return
	}
	defer ks.mu.Unlock()
	if now.UnixNano() < ks.due.Load() {
		return
	}
	if ks.url != "" {
		ks.fetch()
		return
	}
	ks.due.Store(now.Add(jwksFileCheck).UnixNano())
	st, err := os.Stat(ks.file)
	if err != nil {
		if !ks.modTime.IsZero() || ks.size != -1 {
			ks.log.Error("jwks: cannot read the key file; keeping the last good keys", "file", ks.file, "error", err.Error())
			ks.modTime, ks.size = time.Time{}, -1 // log once until the file is back
		}
		return
	}
	if st.ModTime().Equal(ks.modTime) && st.Size() == ks.size {
		return
	}
	if _, err := ks.readFile(st); err != nil {
		ks.log.Error("jwks: reloading the key file failed; keeping the last good keys", "file", ks.file, "error", err.Error())
	}
}

// readFile reads and adopts the key file whose stat is st. ks.mu is held
// (or ks is not shared yet). The version is remembered even when it is
// bad, so a bad file is reported once.
func (ks *keySet) readFile(st os.FileInfo) ([]jwk, error) {
	ks.modTime, ks.size = st.ModTime(), st.Size()
	f, err := os.Open(ks.file)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks: %s: %w", ks.file, err)
	}
	return ks.adopt(doc, ks.file)
}

// fetch loads the set from the URL; ks.mu is held. A failure keeps the
// last good set and tries again after jwksRetryAfterFail.
func (ks *keySet) fetch() {
	next := ks.refresh
	defer func() { ks.due.Store(ks.now().Add(next).UnixNano()) }()
	if err := ks.get(); err != nil {
		next = min(next, jwksRetryAfterFail)
		ks.log.Error("jwks: fetching the key set failed; keeping the last good keys", "url", ks.url, "error", err.Error())
	}
}

func (ks *keySet) get() error {
	ctx, cancel := context.WithTimeout(context.Background(), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	doc, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return err
	}
	_, err = ks.adopt(doc, ks.url)
	return err
}

// adopt parses a JWKS document and makes its keys current. An unchanged
// document is not parsed again; an invalid one changes nothing.
func (ks *keySet) adopt(doc []byte, src string) ([]jwk, error) {
	if len(doc) > jwksMaxBytes {
		return nil, fmt.Errorf("jwks: %s: larger than %d bytes", src, jwksMaxBytes)
	}
	sum := sha256.Sum256(doc)
	if sum == ks.digest {
		return *ks.keys.Load(), nil
	}
	keys, skipped, err := parseJWKS(doc)
	if err != nil {
		return nil, fmt.Errorf("jwks: %s: %w", src, err)
	}
	for _, s := range skipped {
		ks.log.Warn("jwks: key not used", "source", src, "reason", s)
	}
	if len(keys) == 0 {
		ks.log.Warn("jwks: the key set has no usable RS256 or ES256 key; such tokens are refused", "source", src)
	}
	ks.digest = sum
	ks.keys.Store(&keys)
	return keys, nil
}

// parseJWKS reads a JWK set (RFC 7517) and returns its RS256 and ES256
// signature keys. Keys for encryption, of other types, curves or
// algorithms are left out silently; keys that are malformed, too weak or
// carry private parts are left out with the reason in skipped. Member
// names are matched exactly.
func parseJWKS(doc []byte) (keys []jwk, skipped []string, err error) {
	var set map[string]json.RawMessage
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, nil, fmt.Errorf("not a JSON object: %w", err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(set["keys"], &raw); err != nil || bytes.Equal(bytes.TrimSpace(set["keys"]), []byte("null")) || set["keys"] == nil {
		return nil, nil, errors.New(`no "keys" array`)
	}
	for i, r := range raw {
		k, use, err := parseJWK(r)
		switch {
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("keys[%d]: %v", i, err))
		case use:
			keys = append(keys, k)
		}
	}
	return keys, skipped, nil
}

// parseJWK reads one key; use is false for a key that is not for RS256 or
// ES256 signatures.
func parseJWK(raw json.RawMessage) (k jwk, use bool, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return k, false, errors.New("not a JSON object")
	}
	str := func(name string) (string, error) {
		v, ok := m[name]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("%s: not a string", name)
		}
		return s, nil
	}
	var kty, u, alg string
	for name, dst := range map[string]*string{"kty": &kty, "use": &u, "alg": &alg, "kid": &k.kid} {
		if *dst, err = str(name); err != nil {
			return k, false, err
		}
	}
	if u != "" && u != "sig" {
		return k, false, nil
	}
	if ops, ok := m["key_ops"]; ok {
		var list []string
		if err := json.Unmarshal(ops, &list); err != nil {
			return k, false, errors.New("key_ops: not a list of strings")
		}
		if !slices.Contains(list, "verify") {
			return k, false, nil
		}
	}
	switch kty {
	case "RSA":
		if alg != "" && alg != algRS256 {
			return k, false, nil
		}
		if _, ok := m["d"]; ok {
			return k, false, fmt.Errorf("kid %q: holds a private key; publish public keys only", k.kid)
		}
		n, err := b64Field(str, "n")
		if err != nil {
			return k, false, err
		}
		e, err := b64Field(str, "e")
		if err != nil {
			return k, false, err
		}
		pub, err := rsaKey(n, e)
		if err != nil {
			return k, false, fmt.Errorf("kid %q: %w", k.kid, err)
		}
		k.alg, k.key = algRS256, pub
		return k, true, nil
	case "EC":
		crv, err := str("crv")
		if err != nil {
			return k, false, err
		}
		if crv != "P-256" || alg != "" && alg != algES256 {
			return k, false, nil
		}
		if _, ok := m["d"]; ok {
			return k, false, fmt.Errorf("kid %q: holds a private key; publish public keys only", k.kid)
		}
		x, err := b64Field(str, "x")
		if err != nil {
			return k, false, err
		}
		y, err := b64Field(str, "y")
		if err != nil {
			return k, false, err
		}
		if len(x) != 32 || len(y) != 32 {
			return k, false, fmt.Errorf("kid %q: P-256 coordinates must be 32 bytes each", k.kid)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return k, false, fmt.Errorf("kid %q: %w", k.kid, err)
		}
		k.alg, k.key = algES256, pub
		return k, true, nil
	}
	return k, false, nil
}

func b64Field(str func(string) (string, error), name string) ([]byte, error) {
	s, err := str(name)
	if err != nil {
		return nil, err
	}
	if s == "" {
		return nil, fmt.Errorf("%s: missing", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: not unpadded base64url", name)
	}
	return b, nil
}

func rsaKey(n, e []byte) (*rsa.PublicKey, error) {
	if len(e) == 0 || len(e) > 4 {
		return nil, errors.New("e: out of range")
	}
	var ev int
	for _, b := range e {
		ev = ev<<8 | int(b)
	}
	if ev < 3 || ev%2 == 0 {
		return nil, errors.New("e: must be an odd number of at least 3")
	}
	nv := new(big.Int).SetBytes(n)
	if bits := nv.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("a %d-bit RSA key; %d to %d bits are accepted", bits, minRSABits, maxRSABits)
	}
	return &rsa.PublicKey{N: nv, E: ev}, nil
}
