package server

import (
	"net/http"
	"slices"
	"strings"
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

// Caller is an authenticated user.
type Caller struct {
	ID, Name  string
	Scope     string
	OrgID     string
	PartnerID string
	perms     []string
	MFA       bool
	// Sites is nil for a caller who may see every site.
	Sites []string
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

// authenticate reads the caller from a bearer JWT signed with the server's
// HS256 secret; exp and nbf are enforced.
func (s *Server) authenticate(req *http.Request) (*Caller, error) {
	unauth := &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: "a valid bearer token is required",
		Header: http.Header{"Www-Authenticate": {`Bearer realm="elevate"`}}}
	raw, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || len(s.jwtSecret) == 0 {
		return nil, unauth
	}
	var cl Claims
	_, err := jwt.ParseWithClaims(strings.TrimSpace(raw), &cl, func(*jwt.Token) (any, error) { return s.jwtSecret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(s.lc.Clock().Now), jwt.WithLeeway(30*time.Second))
	if err != nil || cl.Subject == "" {
		return nil, unauth
	}
	c := &Caller{ID: cl.Subject, Name: cl.Name, Scope: cl.Scope, OrgID: cl.OrgID, PartnerID: cl.PartnerID,
		perms: cl.Permissions, MFA: slices.Contains(cl.AMR, "mfa")}
	if cl.SiteIDs != nil || cl.SitesRestricted {
		c.Sites = append([]string{}, cl.SiteIDs...)
	}
	return c, nil
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
	var orgs []store.Org
	if err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		orgs, err = sn.Orgs()
		return err
	}); err != nil {
		return "", err
	}
	var reach []string
	for _, o := range orgs {
		if c.Scope == ScopeSystem || c.PartnerID != "" && sameID(o.PartnerID, c.PartnerID) {
			reach = append(reach, o.ID)
		}
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
// HS256 secret.
type AuthConfig struct{}
