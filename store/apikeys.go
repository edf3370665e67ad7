package store

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/elevate-pam/elevate/engine"
)

// API-key scopes: the tenant level a key acts at, as for users' tokens.
const (
	APIKeyScopeOrganization = "organization"
	APIKeyScopePartner      = "partner"
	APIKeyScopeSystem       = "system"
)

// MaxAPIKeyName is the longest API-key name, in characters.
const MaxAPIKeyName = 255

// APIKey is a long-lived credential a user made for a program. The key
// itself is shown to its creator once and never stored: only its SHA-256
// (TokenHash), which is how a presented key is found.
//
// API keys are one global table (a key may be partner- or system-scoped,
// so it has no single organisation); tenants are told apart by OrgID and
// PartnerID, which APIKeyFilter matches.
type APIKey struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	KeyHash string `json:"keyHash"` // hex SHA-256 of the key
	// Scope is organization (OrgID set), partner (PartnerID set, no OrgID)
	// or system (neither).
	Scope       string   `json:"scope"`
	OrgID       string   `json:"orgId,omitempty"`
	PartnerID   string   `json:"partnerId,omitempty"`
	Permissions []string `json:"permissions"`
	// SiteIDs are the only sites the key may see and act on when
	// SitesRestricted (an empty list then means no site at all).
	SiteIDs         []string `json:"siteIds,omitempty"`
	SitesRestricted bool     `json:"sitesRestricted,omitempty"`
	// MFA makes the key pass the routes that require multi-factor
	// authentication.
	MFA           bool      `json:"mfa"`
	CreatedAt     time.Time `json:"createdAt"`
	CreatedBy     string    `json:"createdBy"` // the creating user's id
	CreatedByName string    `json:"createdByName,omitempty"`
	ExpiresAt     time.Time `json:"expiresAt,omitzero"` // zero: never
	LastUsedAt    time.Time `json:"lastUsedAt,omitzero"`
	RevokedAt     time.Time `json:"revokedAt,omitzero"`
	RevokedBy     string    `json:"revokedBy,omitempty"`
}

// Revoked reports whether the key has been revoked.
func (k *APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// Expired reports whether the key has expired at now.
func (k *APIKey) Expired(now time.Time) bool {
	return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)
}

// PutAPIKey creates or replaces an API key. The hash is looked up through
// an index that only a key not revoked has; two keys cannot share a hash.
func (tx *Tx) PutAPIKey(k *APIKey) error {
	canonical(&k.ID, &k.OrgID, &k.PartnerID)
	for i := range k.SiteIDs {
		canonical(&k.SiteIDs[i])
	}
	k.KeyHash = strings.ToLower(k.KeyHash)
	k.CreatedAt, k.ExpiresAt, k.LastUsedAt, k.RevokedAt = k.CreatedAt.UTC(), k.ExpiresAt.UTC(), k.LastUsedAt.UTC(), k.RevokedAt.UTC()
	if len(k.SiteIDs) > 0 {
		k.SitesRestricted = true
	}
	var probs []string
	id, err := ParseID(k.ID)
	if err != nil || id == NilID {
		probs = append(probs, "id: must be a UUID")
	}
	if strings.TrimSpace(k.Name) == "" || utf8.RuneCountInString(k.Name) > MaxAPIKeyName {
		probs = append(probs, fmt.Sprintf("name: must be 1 to %d characters", MaxAPIKeyName))
	}
	if !engine.IsHex64(k.KeyHash) {
		probs = append(probs, "keyHash: must be 64 hex characters")
	}
	var org ID
	switch k.Scope {
	case APIKeyScopeOrganization:
		if org, err = ParseID(k.OrgID); err != nil || org == NilID {
			probs = append(probs, "orgId: an organization-scope key needs its organisation's UUID")
		}
	case APIKeyScopePartner:
		if k.OrgID != "" {
			probs = append(probs, "orgId: a partner-scope key has none")
		}
		if p, err := ParseID(k.PartnerID); err != nil || p == NilID {
			probs = append(probs, "partnerId: a partner-scope key needs its partner's UUID")
		}
	case APIKeyScopeSystem:
		if k.OrgID != "" || k.PartnerID != "" {
			probs = append(probs, "scope: a system-scope key has no orgId or partnerId")
		}
	default:
		probs = append(probs, fmt.Sprintf("scope: %q must be organization, partner or system", k.Scope))
	}
	if k.Scope == APIKeyScopeOrganization && k.PartnerID != "" {
		if p, err := ParseID(k.PartnerID); err != nil || p == NilID {
			probs = append(probs, "partnerId: must be a UUID")
		}
	}
	if len(k.Permissions) == 0 || slices.ContainsFunc(k.Permissions, func(p string) bool { return strings.TrimSpace(p) == "" }) {
		probs = append(probs, "permissions: at least one, none empty")
	}
	var sites []ID
	for _, s := range k.SiteIDs {
		sid, err := ParseID(s)
		if err != nil || sid == NilID {
			probs = append(probs, fmt.Sprintf("siteIds: %q is not a UUID", s))
			continue
		}
		if slices.Contains(sites, sid) {
			probs = append(probs, "siteIds: "+s+" is listed twice")
		}
		sites = append(sites, sid)
	}
	if k.CreatedAt.IsZero() || !representable(k.CreatedAt) {
		probs = append(probs, "createdAt: is required")
	}
	if !representable(k.ExpiresAt) || !representable(k.LastUsedAt) || !representable(k.RevokedAt) {
		probs = append(probs, "times: out of range")
	}
	if !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(k.CreatedAt) {
		probs = append(probs, "expiresAt: must be after createdAt")
	}
	if strings.TrimSpace(k.CreatedBy) == "" {
		probs = append(probs, "createdBy: is required")
	}
	if probs != nil {
		return invalid("API key", probs...)
	}
	if k.Scope == APIKeyScopeOrganization {
		if err := tx.requireOrg(org); err != nil {
			return err
		}
		for i, sid := range sites {
			if _, ok, err := tx.get(key(pSite, org[:], sid[:])); err != nil {
				return err
			} else if !ok {
				return invalid("API key", "siteIds: no such site in the organisation: "+k.SiteIDs[i])
			}
		}
	}
	hash, _ := hex.DecodeString(k.KeyHash)
	if cur, ok, err := tx.get(key(pAPIKeyHash, hash)); err != nil {
		return err
	} else if ok && !bytes.Equal(cur, id[:]) {
		return &ConflictError{Msg: fmt.Sprintf("API key %s: the key hash is already another key's", k.ID)}
	}
	var old APIKey
	switch err := getJSON(tx, key(pAPIKey, id[:]), &old); err {
	case nil:
		if old.KeyHash != k.KeyHash {
			oh, _ := hex.DecodeString(old.KeyHash)
			tx.del(key(pAPIKeyHash, oh))
		}
	case ErrNotFound:
	default:
		return err
	}
	if k.Revoked() {
		tx.del(key(pAPIKeyHash, hash))
	} else {
		tx.set(key(pAPIKeyHash, hash), slices.Clone(id[:]))
	}
	return putJSON(tx, key(pAPIKey, id[:]), k)
}

// RevokeAPIKey marks a key revoked at at by the user by and removes its
// hash from the lookup index, so the key no longer authenticates. The
// record stays for the listing and the audit trail. Revoking a revoked key
// changes nothing and returns it as it is.
func (tx *Tx) RevokeAPIKey(id string, at time.Time, by string) (*APIKey, error) {
	k, err := tx.APIKey(id)
	if err != nil {
		return nil, err
	}
	if k.Revoked() {
		return k, nil
	}
	if at.IsZero() {
		return nil, invalid("API key revocation", "at: is required")
	}
	k.RevokedAt, k.RevokedBy = at.UTC(), by
	return k, tx.PutAPIKey(k)
}

// TouchAPIKey records that the key was used at at (kept only when later
// than the recorded use). It writes: callers should throttle it.
func (tx *Tx) TouchAPIKey(id string, at time.Time) error {
	kid, err := ParseID(id)
	if err != nil || kid == NilID {
		return ErrNotFound
	}
	var k APIKey
	if err := getJSON(tx, key(pAPIKey, kid[:]), &k); err != nil {
		return err
	}
	if !at.After(k.LastUsedAt) || !representable(at) {
		return nil
	}
	k.LastUsedAt = at.UTC()
	return putJSON(tx, key(pAPIKey, kid[:]), &k)
}

// APIKey reads an API key by id.
func (s *Snapshot) APIKey(id string) (*APIKey, error) {
	kid, err := ParseID(id)
	if err != nil || kid == NilID {
		return nil, ErrNotFound
	}
	var k APIKey
	if err := getJSON(s.r, key(pAPIKey, kid[:]), &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// APIKey reads an API key inside an operation.
func (tx *Tx) APIKey(id string) (*APIKey, error) { return (&Snapshot{tx}).APIKey(id) }

// APIKeyByHash finds the key whose SHA-256 (hex, as TokenHash returns) is
// hash. Revoked keys are not found; expiry is the caller's to check.
func (s *Snapshot) APIKeyByHash(hash string) (*APIKey, error) {
	if !engine.IsHex64(hash) {
		return nil, ErrNotFound
	}
	h, _ := hex.DecodeString(strings.ToLower(hash))
	v, ok, err := s.r.get(key(pAPIKeyHash, h))
	if err != nil {
		return nil, err
	}
	if !ok || len(v) != 16 {
		return nil, ErrNotFound
	}
	var k APIKey
	hk := key(pAPIKey, v)
	if err := getJSON(s.r, hk, &k); err != nil {
		if err == ErrNotFound {
			return nil, corrupt(key(pAPIKeyHash, h), fmt.Errorf("names API key %s, which does not exist", idString(v)))
		}
		return nil, err
	}
	// The index is only ever written with the record; a mismatch means
	// damage, and a damaged entry must not authenticate anything.
	if k.KeyHash != hex.EncodeToString(h) || k.Revoked() {
		return nil, corrupt(key(pAPIKeyHash, h), fmt.Errorf("API key %s does not carry this hash or is revoked", k.ID))
	}
	return &k, nil
}

// APIKeyFilter selects the API keys of a tenant. The zero filter selects
// nothing.
type APIKeyFilter struct {
	// All selects every key (a system-scope caller).
	All bool
	// OrgIDs selects the organization-scope keys of these organisations.
	OrgIDs []string
	// PartnerID, when set, selects the keys that carry this partner id
	// (partner-scope keys and organization-scope keys made by the
	// partner's users).
	PartnerID string
	// IncludeRevoked lists revoked keys too.
	IncludeRevoked bool
}

// Matches reports whether the filter's tenant holds k (IncludeRevoked
// aside).
func (f APIKeyFilter) Matches(k *APIKey) bool {
	if f.All {
		return true
	}
	if k.Scope == APIKeyScopeOrganization && k.OrgID != "" {
		for _, o := range f.OrgIDs {
			if sameIDText(o, k.OrgID) {
				return true
			}
		}
	}
	return f.PartnerID != "" && k.Scope != APIKeyScopeSystem && sameIDText(f.PartnerID, k.PartnerID)
}

func sameIDText(a, b string) bool {
	x, err1 := ParseID(a)
	y, err2 := ParseID(b)
	return err1 == nil && err2 == nil && x == y && x != NilID
}

// APIKeys lists the keys the filter selects, newest first.
func (s *Snapshot) APIKeys(f APIKeyFilter) ([]APIKey, error) {
	all, err := listJSON[APIKey](s.r, []byte{pAPIKey})
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for i := range all {
		if f.Matches(&all[i]) && (f.IncludeRevoked || !all[i].Revoked()) {
			out = append(out, all[i])
		}
	}
	slices.SortFunc(out, func(a, b APIKey) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return out, nil
}
