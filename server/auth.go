package server

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/julienschmidt/httprouter"

	"github.com/elevate-pam/elevate/store"
)

// Caller scopes.
const (
	ScopeOrganization = "organization"
	ScopePartner      = "partner"
	ScopeSystem       = "system"
)

// Permissions.
const (
	PermRead    = "devices:read"
	PermWrite   = "devices:write"
	PermExecute = "devices:execute"
)

// Claims are what a user's bearer token (a JWT) says about them. Any
// identity provider that can put these claims in a token can be used.
type Claims struct {
	jwt.RegisteredClaims
	Name        string   `json:"name,omitempty"`
	Scope       string   `json:"scope"`                // organization, partner or system
	OrgID       string   `json:"org_id,omitempty"`     // organization scope: the caller's org
	PartnerID   string   `json:"partner_id,omitempty"` // partner scope: the caller's partner
	Permissions []string `json:"permissions,omitempty"`
	AMR         []string `json:"amr,omitempty"`      // "mfa" when the session passed multi-factor authentication
	SiteIDs     []string `json:"site_ids,omitempty"` // present: the only sites the caller may see and act on
	// SitesRestricted marks a caller restricted to SiteIDs even when the
	// list is empty (then no site at all).
	SitesRestricted bool `json:"sites_restricted,omitempty"`
}

// Caller is an authenticated user, or a program holding one of a user's
// API keys.
type Caller struct {
	// ID is the user's id (for an API key: its creator's, who answers for
	// it and cannot approve their own requests through it either).
	ID, Name  string
	Scope     string
	OrgID     string
	PartnerID string
	perms     []string
	MFA       bool
	// Sites is nil for a caller who may see every site.
	Sites []string
	// APIKeyID is the API key the caller authenticated with; empty for a
	// bearer token.
	APIKeyID string
}

// Can reports whether the caller holds perm.
func (c *Caller) Can(perm string) bool {
	return slices.Contains(c.perms, perm) || slices.Contains(c.perms, "*")
}

// MintToken signs claims with an HS256 secret: for `elevate token`, tests
// and development.
func MintToken(secret []byte, c Claims) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// Token verification limits.
const (
	tokenLeeway   = 30 * time.Second // clock skew allowed on exp and nbf
	touchInterval = time.Minute      // an API key's lastUsedAt is written at most this often
)

// authenticate reads the caller from the request's credential: a bearer
// JWT (HS256 with the server's secret; RS256 or ES256 with a key of the
// JWKS), or an API key as a bearer token or in X-API-Key. Every refusal is
// the same 401; only a store that cannot answer is another error.
func (s *Server) authenticate(req *http.Request) (*Caller, error) {
	unauth := &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: "a valid bearer token is required",
		Header: http.Header{"Www-Authenticate": {`Bearer realm="elevate"`}}}
	cred, ok := credential(req)
	if !ok {
		return nil, unauth
	}
	if strings.HasPrefix(cred, apiKeyPrefix) {
		c, err := s.apiKeyCaller(cred)
		if errors.Is(err, errRefused) {
			return nil, unauth
		}
		return c, err
	}
	c, err := s.tokenCaller(cred)
	if err != nil {
		s.log.Debug("bearer token refused", "method", req.Method, "path", req.URL.Path, "reason", err.Error())
		return nil, unauth
	}
	return c, nil
}

// errRefused: the credential does not authenticate anyone.
var errRefused = errors.New("credential refused")

// credential returns the one credential the request presents: the
// Authorization bearer value or the X-API-Key header (which must hold an
// API key). Both, either twice, or neither present nothing.
func credential(req *http.Request) (string, bool) {
	auth, keys := req.Header.Values("Authorization"), req.Header.Values("X-Api-Key")
	switch {
	case len(auth)+len(keys) != 1:
		return "", false
	case len(keys) == 1:
		k := strings.TrimSpace(keys[0])
		return k, strings.HasPrefix(k, apiKeyPrefix)
	}
	raw, ok := strings.CutPrefix(auth[0], "Bearer ")
	raw = strings.TrimSpace(raw)
	return raw, ok && raw != ""
}

// tokenCaller verifies a JWT: its alg must be HS256 (with a JWT secret
// configured) or RS256/ES256 (with a JWKS configured), exp is required,
// exp and nbf are checked on the server clock with tokenLeeway, and the
// configured issuer and audience must match.
func (s *Server) tokenCaller(raw string) (*Caller, error) {
	ks := s.auth().keys
	var methods []string
	if len(s.jwtSecret) > 0 {
		methods = append(methods, "HS256")
	}
	if ks != nil {
		methods = append(methods, algRS256, algES256)
	}
	if len(methods) == 0 {
		return nil, errors.New("no token verification key is configured")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithTimeFunc(s.lc.Clock().Now),
		jwt.WithLeeway(tokenLeeway), jwt.WithExpirationRequired()}
	if iss := s.conf.Auth.Issuer; iss != "" {
		opts = append(opts, jwt.WithIssuer(iss))
	}
	if aud := s.conf.Auth.Audience; aud != "" {
		opts = append(opts, jwt.WithAudience(aud))
	}
	rt := s.auth()
	now := s.lc.Clock().Now()
	var keys *[]jwk
	if ks != nil {
		ks.maybeRefresh()
		keys = ks.keys.Load()
	}
	if c, ok := rt.tokens.get(raw, now, keys); ok {
		return c, nil
	}
	var cl Claims
	var verifiedWith *[]jwk
	_, err := jwt.ParseWithClaims(raw, &cl, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("tokens with critical header extensions are not supported")
		}
		alg, _ := t.Header["alg"].(string)
		if alg != t.Method.Alg() {
			return nil, errors.New("alg mismatch")
		}
		switch alg {
		case "HS256":
			if len(s.jwtSecret) == 0 {
				return nil, errors.New("no JWT secret")
			}
			return s.jwtSecret, nil
		case algRS256, algES256:
			kid, ok := t.Header["kid"].(string)
			if _, present := t.Header["kid"]; present && !ok {
				return nil, errors.New("kid is not a string")
			}
			if ks == nil {
				return nil, errors.New("no JWKS")
			}
			verifiedWith = keys
			return ks.key(kid, alg)
		}
		return nil, fmt.Errorf("algorithm %q is not accepted", alg)
	}, opts...)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(cl.Subject) == "" {
		return nil, errors.New("no sub")
	}
	c := &Caller{ID: cl.Subject, Name: cl.Name, Scope: cl.Scope, OrgID: cl.OrgID, PartnerID: cl.PartnerID,
		perms: cl.Permissions, MFA: slices.Contains(cl.AMR, "mfa")}
	if cl.SiteIDs != nil || cl.SitesRestricted {
		c.Sites = append([]string{}, cl.SiteIDs...)
	}
	e := cachedToken{caller: *c, exp: cl.ExpiresAt.Time, keys: verifiedWith}
	if cl.NotBefore != nil {
		e.nbf = cl.NotBefore.Time
	}
	if rt != noAuthRuntime {
		rt.tokens.put(raw, e)
	}
	return c, nil
}

// apiKeyCaller finds an API key by the SHA-256 of the presented key (no
// comparison of secrets); an unknown, revoked or expired key is refused.
func (s *Server) apiKeyCaller(presented string) (*Caller, error) {
	var k *store.APIKey
	err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		k, err = sn.APIKeyByHash(store.TokenHash(presented))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errRefused
	}
	if err != nil {
		return nil, err
	}
	now := s.lc.Clock().Now()
	if k.Revoked() || k.Expired(now) {
		return nil, errRefused
	}
	s.touchAPIKey(k, now)
	c := &Caller{ID: k.CreatedBy, Name: "API key " + k.Name, Scope: k.Scope, OrgID: k.OrgID, PartnerID: k.PartnerID,
		perms: slices.Clone(k.Permissions), MFA: k.MFA, APIKeyID: k.ID}
	if k.SitesRestricted {
		c.Sites = append([]string{}, k.SiteIDs...)
	}
	return c, nil
}

// touchAPIKey records the key's use at most once per touchInterval (by
// what the key says and by what this server last wrote), so most requests
// write nothing. A failed write is logged, not fatal.
func (s *Server) touchAPIKey(k *store.APIKey, now time.Time) {
	recent := func(t time.Time) bool { d := now.Sub(t); return d >= 0 && d < touchInterval }
	if recent(k.LastUsedAt) {
		return
	}
	rt := s.auth()
	rt.mu.Lock()
	if t, ok := rt.touched[k.ID]; ok && recent(t) {
		rt.mu.Unlock()
		return
	}
	rt.touched[k.ID] = now
	rt.mu.Unlock()
	if err := s.lc.Store().Update(func(tx *store.Tx) error { return tx.TouchAPIKey(k.ID, now) }); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("recording an API key's use failed", "apiKeyId", k.ID, "error", err.Error())
	}
}

type userHandler func(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error

// user gates a route (pam-semantics §11): a bearer token (401), a known
// scope (403), the permission (403) and, where the route asks, MFA (403
// MFA_REQUIRED), in that order, before the handler sees the body.
func (s *Server) user(perm string, mfa bool, h userHandler) httprouter.Handle {
	return s.handle(func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) error {
		c, err := s.authenticate(req)
		if err != nil {
			return err
		}
		switch c.Scope {
		case ScopeOrganization, ScopePartner, ScopeSystem:
		default:
			return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: "this endpoint needs an organization, partner or system scope"}
		}
		if !c.Can(perm) {
			return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: "permission " + perm + " is required"}
		}
		if mfa && !c.MFA {
			return &apiError{Status: http.StatusForbidden, Code: "MFA_REQUIRED", Message: "MFA required"}
		}
		return h(w, req, ps, c)
	})
}

// org resolves the organisation a request acts on: an organization-scope
// caller's own (another orgId is a 400); for partner and system callers the
// orgId query parameter, which must be one they can reach (else 404, so
// existence is not confirmed), or their only organisation.
func (s *Server) org(req *http.Request, c *Caller) (string, error) {
	want := req.URL.Query().Get("orgId")
	if c.Scope == ScopeOrganization {
		if want != "" && !sameID(want, c.OrgID) {
			return "", &apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Target: "orgId", Message: "orgId: not the caller's organisation"}
		}
		return canonicalID(c.OrgID), nil
	}
	reach, err := s.reachable(c)
	if err != nil {
		return "", err
	}
	if want != "" {
		for _, o := range reach {
			if sameID(o, want) {
				return o, nil
			}
		}
		return "", errNotFound("no such organisation")
	}
	if len(reach) == 1 {
		return reach[0], nil
	}
	return "", &apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Target: "orgId", Message: "orgId: is required for a caller who reaches several organisations"}
}

func sameID(a, b string) bool {
	x, err1 := store.ParseID(a)
	y, err2 := store.ParseID(b)
	return err1 == nil && err2 == nil && x == y
}

func canonicalID(s string) string {
	if id, err := store.ParseID(s); err == nil {
		return id.String()
	}
	return s
}

// AuthConfig configures the verification of users' tokens beyond the
// HS256 secret (Config.JWTSecret). API keys need no configuration: they
// live in the store.
type AuthConfig struct {
	// JWKSFile is a JWK set (RFC 7517) on disk whose keys verify RS256 and
	// ES256 tokens. It must be readable and hold a usable key when the
	// server is built; it is read again when its modification time or size
	// changes (looked at every few seconds at most), and a version that
	// does not parse is logged and leaves the last good keys in place.
	JWKSFile string
	// JWKSURL is the same fetched over https (http only to a loopback
	// address): every JWKSRefresh, and again when a token names an
	// unknown kid (at most once per 30 s). A failed fetch keeps the last
	// good keys. Set JWKSFile or JWKSURL, not both.
	JWKSURL string
	// JWKSRefresh is how often JWKSURL is fetched again; 0 means 10 min.
	JWKSRefresh time.Duration
	// HTTPClient fetches JWKSURL; nil means a client with a 5 s timeout.
	// Each fetch is limited to 5 s either way, and redirects away from
	// https are refused.
	HTTPClient *http.Client
	// Issuer, when set, must equal the iss claim of every token, whatever
	// its algorithm.
	Issuer string
	// Audience, when set, must be one of the aud claim's values in every
	// token.
	Audience string

	rt *authRuntime // built by initAuth while New runs
}

// authRuntime is the authentication state of one server.
type authRuntime struct {
	keys *keySet // nil: no JWKS configured (or it failed to load)
	err  error   // why the configuration could not be loaded

	mu      sync.Mutex
	touched map[string]time.Time // API key id → when this server last recorded its use

	tokens tokenCache // verified bearer tokens
}

// initAuth builds the authentication state from s.conf.Auth: it reads the
// JWKS file or tries the JWKS URL now. New calls it (through authRoutes);
// a second call returns the first one's result. A configuration error is
// logged and kept (AuthError): tokens that need what failed are refused,
// everything else keeps working.
func (s *Server) initAuth() error {
	if rt := s.conf.Auth.rt; rt != nil {
		return rt.err
	}
	rt := &authRuntime{touched: map[string]time.Time{}}
	rt.keys, rt.err = newKeySet(s.conf.Auth, s.log)
	if rt.err != nil {
		rt.keys = nil
		s.log.Error("authentication configuration", "error", rt.err.Error())
	}
	s.conf.Auth.rt = rt
	return rt.err
}

// AuthError reports why the authentication configuration (Config.Auth)
// could not be loaded when the server was built, or nil. A server with
// such an error refuses every token that needs the JWKS.
func (s *Server) AuthError() error { return s.auth().err }

// auth returns the authentication state; a server built without New has
// none configured.
func (s *Server) auth() *authRuntime {
	if rt := s.conf.Auth.rt; rt != nil {
		return rt
	}
	return noAuthRuntime
}

// noAuthRuntime is the state of a server whose authentication was never
// initialised: no JWKS.
var noAuthRuntime = &authRuntime{touched: map[string]time.Time{}}
