package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"

	"github.com/elevate-pam/elevate/store"
)

// API keys: apiKeyPrefix followed by apiKeyBytes random bytes in unpadded
// base64url. The prefix tells them from JWTs (and makes leaked keys easy
// to find in code and logs).
const (
	apiKeyPrefix = "elv_"
	apiKeyBytes  = 32
)

// Audit actions of API keys (organization-scope keys only: the audit log
// is per organisation).
const (
	auditAPIKeyCreated = "api_key_created"
	auditAPIKeyRevoked = "api_key_revoked"
)

// authRoutes builds the authentication state (initAuth) and registers the
// API-key endpoints.
func (s *Server) authRoutes() {
	s.initAuth() // an error is logged and kept for AuthError
	s.route("POST", "/api/v1/api-keys", SurfaceInventory, s.user(PermWrite, true, s.createAPIKey))
	s.route("GET", "/api/v1/api-keys", SurfaceInventory, s.user(PermRead, false, s.listAPIKeys))
	s.route("DELETE", "/api/v1/api-keys/:id", SurfaceInventory, s.user(PermWrite, true, s.revokeAPIKey))
}

// errKeyManagement: only a user's interactive token manages API keys, so a
// leaked key cannot mint or remove others.
var errKeyManagement = &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: "API keys cannot create or revoke API keys"}

// grantable are the permissions a key can carry ("*" only from a caller
// who holds "*").
var grantable = []string{PermRead, PermWrite, PermExecute, "*"}

// createAPIKey is POST /api/v1/api-keys. The key takes the caller's scope,
// organisation and partner; its permissions and sites are a subset of the
// caller's. The key is in the response once; only its hash is stored.
func (s *Server) createAPIKey(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	if c.APIKeyID != "" {
		return errKeyManagement
	}
	var body struct {
		Name        *string   `json:"name"`
		Permissions []string  `json:"permissions"`
		SiteIDs     *[]string `json:"siteIds"`
		ExpiresAt   *string   `json:"expiresAt"`
		MFA         bool      `json:"mfa"`
	}
	if err := s.decodeBody(w, req, &body); err != nil {
		return err
	}
	bad := func(field, msg string) error {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: field, Message: field + ": " + msg}
	}
	now := s.lc.Clock().Now()
	if body.Name == nil || strings.TrimSpace(*body.Name) == "" || utf8.RuneCountInString(*body.Name) > store.MaxAPIKeyName {
		return bad("name", "must be 1 to 255 characters")
	}
	if len(body.Permissions) == 0 {
		return bad("permissions", "at least one permission is required")
	}
	var perms []string
	for _, p := range body.Permissions {
		if !slices.Contains(grantable, p) {
			return bad("permissions", `"`+p+`" is not a permission (devices:read, devices:write, devices:execute or *)`)
		}
		if !c.Can(p) {
			return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Target: "permissions",
				Message: "permissions: a key cannot have " + p + ", which the caller does not hold"}
		}
		if !slices.Contains(perms, p) {
			perms = append(perms, p)
		}
	}
	k := &store.APIKey{ID: store.NewID(now), Name: *body.Name, Scope: c.Scope, Permissions: perms, MFA: body.MFA,
		CreatedAt: now, CreatedBy: c.ID, CreatedByName: c.Name}
	if body.SiteIDs != nil {
		k.SitesRestricted, k.SiteIDs = true, []string{}
		for _, id := range *body.SiteIDs {
			if sid, err := store.ParseID(id); err != nil || sid == store.NilID {
				return bad("siteIds", "must be UUIDs")
			}
			if !containsID(k.SiteIDs, id) {
				k.SiteIDs = append(k.SiteIDs, canonicalID(id))
			}
		}
	}
	if c.Sites != nil {
		if !k.SitesRestricted {
			return bad("siteIds", "is required of a site-restricted caller (a subset of the caller's sites)")
		}
		for _, id := range k.SiteIDs {
			if !containsID(c.Sites, id) {
				return &apiError{Status: http.StatusForbidden, Code: "SITE_DENIED", Target: "siteIds", Message: "Site access denied"}
			}
		}
	}
	if body.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *body.ExpiresAt)
		if err != nil {
			return bad("expiresAt", "must be an RFC 3339 time with Z or an offset")
		}
		if !t.After(now) {
			return bad("expiresAt", "must be in the future")
		}
		k.ExpiresAt = t
	}
	switch c.Scope {
	case ScopeOrganization:
		k.OrgID, k.PartnerID = canonicalID(c.OrgID), canonicalID(c.PartnerID)
	case ScopePartner:
		k.PartnerID = canonicalID(c.PartnerID)
	}
	secret, err := newAPIKeySecret()
	if err != nil {
		return err
	}
	k.KeyHash = store.TokenHash(secret)
	err = s.lc.Store().Update(func(tx *store.Tx) error {
		if err := tx.PutAPIKey(k); err != nil {
			return err
		}
		return auditAPIKey(tx, k, auditAPIKeyCreated, c, now)
	})
	if err != nil {
		return apiKeyStoreError(err)
	}
	view := apiKeyView(k)
	view["key"] = secret
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "apiKey": view})
	return nil
}

// listAPIKeys is GET /api/v1/api-keys: the keys of the caller's tenant,
// newest first, without secrets or hashes; revoked ones only with
// ?includeRevoked=true. A site-restricted caller sees only keys confined
// to its sites.
func (s *Server) listAPIKeys(w http.ResponseWriter, req *http.Request, _ httprouter.Params, c *Caller) error {
	var withRevoked bool
	switch v := req.URL.Query().Get("includeRevoked"); v {
	case "", "false":
	case "true":
		withRevoked = true
	default:
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "includeRevoked", Message: "includeRevoked: must be true or false"}
	}
	var keys []store.APIKey
	err := s.lc.Store().View(func(sn *store.Snapshot) error {
		f, err := keyFilter(c, sn.Orgs)
		if err != nil {
			return err
		}
		f.IncludeRevoked = withRevoked
		keys, err = sn.APIKeys(f)
		return err
	})
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(keys))
	for i := range keys {
		if sitesCover(c, &keys[i]) {
			out = append(out, apiKeyView(&keys[i]))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "apiKeys": out})
	return nil
}

// revokeAPIKey is DELETE /api/v1/api-keys/:id. The key is kept, marked
// revoked, and stops authenticating at once; revoking it again answers
// the same. Another tenant's key is 404.
func (s *Server) revokeAPIKey(w http.ResponseWriter, req *http.Request, ps httprouter.Params, c *Caller) error {
	if c.APIKeyID != "" {
		return errKeyManagement
	}
	id := ps.ByName("id")
	if kid, err := store.ParseID(id); err != nil || kid == store.NilID {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: "id", Message: "id: must be a UUID"}
	}
	now := s.lc.Clock().Now()
	var out *store.APIKey
	err := s.lc.Store().Update(func(tx *store.Tx) error {
		k, err := tx.APIKey(id)
		if err != nil {
			return err
		}
		f, err := keyFilter(c, tx.Orgs)
		if err != nil {
			return err
		}
		if !f.Matches(k) || !sitesCover(c, k) {
			return store.ErrNotFound
		}
		if k.Revoked() {
			out = k
			return nil
		}
		if out, err = tx.RevokeAPIKey(id, now, c.ID); err != nil {
			return err
		}
		return auditAPIKey(tx, out, auditAPIKeyRevoked, c, now)
	})
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("no such API key")
	}
	if err != nil {
		return apiKeyStoreError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "apiKey": apiKeyView(out)})
	return nil
}

// keyFilter selects the caller's tenant: its organisation; a partner's
// keys and those of its organisations; everything for the system.
func keyFilter(c *Caller, orgs func() ([]store.Org, error)) (store.APIKeyFilter, error) {
	switch c.Scope {
	case ScopeSystem:
		return store.APIKeyFilter{All: true}, nil
	case ScopeOrganization:
		return store.APIKeyFilter{OrgIDs: []string{c.OrgID}}, nil
	case ScopePartner:
		if c.PartnerID == "" {
			return store.APIKeyFilter{}, nil
		}
		all, err := orgs()
		if err != nil {
			return store.APIKeyFilter{}, err
		}
		f := store.APIKeyFilter{PartnerID: c.PartnerID}
		for _, o := range all {
			if sameID(o.PartnerID, c.PartnerID) {
				f.OrgIDs = append(f.OrgIDs, o.ID)
			}
		}
		return f, nil
	}
	return store.APIKeyFilter{}, nil
}

// sitesCover reports whether a site-restricted caller may see k: only a
// key confined to some of the caller's sites.
func sitesCover(c *Caller, k *store.APIKey) bool {
	if c.Sites == nil {
		return true
	}
	if !k.SitesRestricted {
		return false
	}
	for _, s := range k.SiteIDs {
		if !containsID(c.Sites, s) {
			return false
		}
	}
	return true
}

// auditAPIKey records a key's creation or revocation in its organisation's
// audit log; keys of other scopes have no organisation log.
func auditAPIKey(tx *store.Tx, k *store.APIKey, action string, c *Caller, now time.Time) error {
	if k.Scope != store.APIKeyScopeOrganization {
		return nil
	}
	d := map[string]any{"name": k.Name, "scope": k.Scope, "permissions": k.Permissions, "mfa": k.MFA}
	if k.SitesRestricted {
		d["siteIds"] = keyStrings(k.SiteIDs)
	}
	if !k.ExpiresAt.IsZero() {
		d["expiresAt"] = k.ExpiresAt
	}
	details, err := json.Marshal(d)
	if err != nil {
		return err
	}
	tx.Audit(store.AuditRecord{OrgID: k.OrgID, At: now, Action: action, ActorKind: store.ActorUser, ActorID: c.ID,
		ActorName: c.Name, Subject: k.ID, Details: details})
	return nil
}

// apiKeyView is a key as the API shows it: never the key or its hash.
func apiKeyView(k *store.APIKey) map[string]any {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	m := map[string]any{"id": k.ID, "name": k.Name, "scope": k.Scope, "permissions": keyStrings(k.Permissions), "mfa": k.MFA,
		"createdAt": ts(k.CreatedAt), "createdBy": k.CreatedBy}
	for name, v := range map[string]string{"orgId": k.OrgID, "partnerId": k.PartnerID, "createdByName": k.CreatedByName, "revokedBy": k.RevokedBy} {
		if v != "" {
			m[name] = v
		}
	}
	if k.SitesRestricted {
		m["siteIds"] = keyStrings(k.SiteIDs)
	}
	for name, t := range map[string]time.Time{"expiresAt": k.ExpiresAt, "lastUsedAt": k.LastUsedAt, "revokedAt": k.RevokedAt} {
		if !t.IsZero() {
			m[name] = ts(t)
		}
	}
	return m
}

// keyStrings is s, with nil as an empty list (JSON [] rather than null).
func keyStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// apiKeyStoreError maps the store's refusals of a key to API errors.
func apiKeyStoreError(err error) error {
	var ie *store.InvalidError
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ie):
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Message: strings.Join(ie.Problems, "; ")}
	case errors.As(err, &ce):
		return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: ce.Msg}
	}
	return err
}

// newAPIKeySecret makes a key: the prefix and 32 random bytes.
func newAPIKeySecret() (string, error) {
	b := make([]byte, apiKeyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return apiKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}
