package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func newAPIKey(v *inv, scope, secret string) *APIKey {
	k := &APIKey{ID: NewID(t0), Name: "ci " + secret, KeyHash: TokenHash(secret), Scope: scope,
		Permissions: []string{"devices:read"}, CreatedAt: t0, CreatedBy: "user-1"}
	switch scope {
	case APIKeyScopeOrganization:
		k.OrgID = v.org
	case APIKeyScopePartner:
		k.PartnerID = v.partner
	}
	return k
}

func putKey(t *testing.T, st *Store, k *APIKey) {
	t.Helper()
	mustUpdate(t, st, func(tx *Tx) error { return tx.PutAPIKey(k) })
}

func TestAPIKeyRoundTripAndHashLookup(t *testing.T) {
	v := newInv(t)
	k := newAPIKey(v, APIKeyScopeOrganization, "elv_secret-1")
	k.ID, k.OrgID = strings.ToUpper(k.ID), strings.ToUpper(k.OrgID) // stored canonical
	k.SiteIDs, k.MFA, k.ExpiresAt, k.CreatedByName = []string{strings.ToUpper(v.site)}, true, t0.Add(time.Hour), "Ann"
	k.KeyHash = strings.ToUpper(k.KeyHash)
	putKey(t, v.st, k)
	want := *k
	want.ID, want.OrgID, want.SiteIDs, want.KeyHash = strings.ToLower(k.ID), v.org, []string{v.site}, TokenHash("elv_secret-1")
	want.SitesRestricted = true
	v.snap(t, func(s *Snapshot) error {
		got, err := s.APIKey(want.ID)
		if err != nil {
			return err
		}
		if d := cmp.Diff(&want, got); d != "" {
			t.Errorf("read back (-want +got):\n%s", d)
		}
		byHash, err := s.APIKeyByHash(TokenHash("elv_secret-1"))
		if err != nil || byHash.ID != want.ID {
			t.Errorf("by hash: %+v %v", byHash, err)
		}
		if _, err := s.APIKeyByHash(strings.ToUpper(TokenHash("elv_secret-1"))); err != nil {
			t.Errorf("upper-case hash: %v", err)
		}
		for _, h := range []string{TokenHash("elv_secret-2"), "", "xyz", TokenHash("elv_secret-1")[1:]} {
			if _, err := s.APIKeyByHash(h); !errors.Is(err, ErrNotFound) {
				t.Errorf("hash %q: %v", h, err)
			}
		}
		if _, err := s.APIKey(NewID(t0)); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown id: %v", err)
		}
		if _, err := s.APIKey("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("bad id: %v", err)
		}
		return nil
	})
	// A key with an empty site list is restricted to no site.
	none := newAPIKey(v, APIKeyScopeOrganization, "elv_none")
	none.SitesRestricted = true
	putKey(t, v.st, none)
	v.snap(t, func(s *Snapshot) error {
		got, err := s.APIKey(none.ID)
		if err != nil || !got.SitesRestricted || len(got.SiteIDs) != 0 {
			t.Errorf("%+v %v", got, err)
		}
		return err
	})
}

func TestAPIKeyListingByTenant(t *testing.T) {
	v := newInv(t)
	orgKey := newAPIKey(v, APIKeyScopeOrganization, "a")
	org2Key := newAPIKey(v, APIKeyScopeOrganization, "b")
	org2Key.OrgID, org2Key.CreatedAt = v.org2, t0.Add(time.Minute)
	partnerKey := newAPIKey(v, APIKeyScopePartner, "c")
	partnerKey.CreatedAt = t0.Add(2 * time.Minute)
	orgOfPartner := newAPIKey(v, APIKeyScopeOrganization, "d")
	orgOfPartner.PartnerID, orgOfPartner.CreatedAt = v.partner, t0.Add(3*time.Minute)
	sysKey := newAPIKey(v, APIKeyScopeSystem, "e")
	sysKey.CreatedAt = t0.Add(4 * time.Minute)
	for _, k := range []*APIKey{orgKey, org2Key, partnerKey, orgOfPartner, sysKey} {
		putKey(t, v.st, k)
	}
	names := func(f APIKeyFilter) string {
		var out []string
		v.snap(t, func(s *Snapshot) error {
			ks, err := s.APIKeys(f)
			for _, k := range ks {
				out = append(out, k.Name)
			}
			return err
		})
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		f    APIKeyFilter
		want string
	}{
		{APIKeyFilter{}, ""},
		{APIKeyFilter{All: true}, "ci e,ci d,ci c,ci b,ci a"},
		{APIKeyFilter{OrgIDs: []string{strings.ToUpper(v.org)}}, "ci d,ci a"},
		{APIKeyFilter{OrgIDs: []string{v.org2}}, "ci b"},
		{APIKeyFilter{PartnerID: v.partner}, "ci d,ci c"},
		{APIKeyFilter{PartnerID: v.partner, OrgIDs: []string{v.org}}, "ci d,ci c,ci a"},
		{APIKeyFilter{PartnerID: NewID(t0)}, ""},
		{APIKeyFilter{OrgIDs: []string{"", "junk"}}, ""},
	} {
		if got := names(c.f); got != c.want {
			t.Errorf("%+v: %q, want %q", c.f, got, c.want)
		}
	}
	// A system key is nobody's but the system's, whatever it carries.
	if (APIKeyFilter{PartnerID: v.partner}).Matches(&APIKey{Scope: APIKeyScopeSystem, PartnerID: v.partner}) {
		t.Error("a partner filter matched a system key")
	}
}

func TestAPIKeyRevocation(t *testing.T) {
	v := newInv(t)
	k := newAPIKey(v, APIKeyScopeOrganization, "elv_r")
	putKey(t, v.st, k)
	var got *APIKey
	mustUpdate(t, v.st, func(tx *Tx) error {
		var err error
		got, err = tx.RevokeAPIKey(k.ID, t0.Add(time.Hour), "user-2")
		return err
	})
	if !got.Revoked() || got.RevokedBy != "user-2" || !got.RevokedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("%+v", got)
	}
	v.snap(t, func(s *Snapshot) error {
		if _, err := s.APIKeyByHash(TokenHash("elv_r")); !errors.Is(err, ErrNotFound) {
			t.Errorf("a revoked key is still found by hash: %v", err)
		}
		if ks, _ := s.APIKeys(APIKeyFilter{OrgIDs: []string{v.org}}); len(ks) != 0 {
			t.Errorf("revoked key listed: %+v", ks)
		}
		if ks, _ := s.APIKeys(APIKeyFilter{OrgIDs: []string{v.org}, IncludeRevoked: true}); len(ks) != 1 || !ks[0].Revoked() {
			t.Errorf("revoked key not kept: %+v", ks)
		}
		return nil
	})
	// Revoking again changes nothing.
	mustUpdate(t, v.st, func(tx *Tx) error {
		var err error
		got, err = tx.RevokeAPIKey(k.ID, t0.Add(2*time.Hour), "user-3")
		return err
	})
	if got.RevokedBy != "user-2" || !got.RevokedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("second revocation changed the key: %+v", got)
	}
	// Touching a revoked key records the time but does not revive it.
	mustUpdate(t, v.st, func(tx *Tx) error { return tx.TouchAPIKey(k.ID, t0.Add(3*time.Hour)) })
	v.snap(t, func(s *Snapshot) error {
		if _, err := s.APIKeyByHash(TokenHash("elv_r")); !errors.Is(err, ErrNotFound) {
			t.Errorf("touch revived the key: %v", err)
		}
		return nil
	})
	err := v.st.Update(func(tx *Tx) error { _, err := tx.RevokeAPIKey(NewID(t0), t0, "u"); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestAPIKeyTouch(t *testing.T) {
	v := newInv(t)
	k := newAPIKey(v, APIKeyScopeSystem, "elv_t")
	putKey(t, v.st, k)
	for _, at := range []time.Time{t0.Add(time.Minute), t0.Add(30 * time.Second)} { // never moves back
		mustUpdate(t, v.st, func(tx *Tx) error { return tx.TouchAPIKey(k.ID, at) })
	}
	v.snap(t, func(s *Snapshot) error {
		got, err := s.APIKeyByHash(TokenHash("elv_t"))
		if err != nil || !got.LastUsedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("%+v %v", got, err)
		}
		return err
	})
	if err := v.st.Update(func(tx *Tx) error { return tx.TouchAPIKey(NewID(t0), t0) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestAPIKeyReplaceMovesTheHash(t *testing.T) {
	v := newInv(t)
	k := newAPIKey(v, APIKeyScopeOrganization, "old")
	putKey(t, v.st, k)
	k.KeyHash = TokenHash("new")
	putKey(t, v.st, k)
	v.snap(t, func(s *Snapshot) error {
		if _, err := s.APIKeyByHash(TokenHash("old")); !errors.Is(err, ErrNotFound) {
			t.Errorf("old hash still authenticates: %v", err)
		}
		if got, err := s.APIKeyByHash(TokenHash("new")); err != nil || got.ID != k.ID {
			t.Errorf("new hash: %+v %v", got, err)
		}
		return nil
	})
}

func TestAPIKeyRefusesInvalid(t *testing.T) {
	v := newInv(t)
	taken := newAPIKey(v, APIKeyScopeOrganization, "taken")
	putKey(t, v.st, taken)
	cases := map[string]func(k *APIKey){
		"bad id":              func(k *APIKey) { k.ID = "x" },
		"nil id":              func(k *APIKey) { k.ID = nilUUID },
		"blank name":          func(k *APIKey) { k.Name = "  " },
		"long name":           func(k *APIKey) { k.Name = strings.Repeat("é", MaxAPIKeyName+1) },
		"bad hash":            func(k *APIKey) { k.KeyHash = "abc" },
		"unknown scope":       func(k *APIKey) { k.Scope = "user" },
		"org without org":     func(k *APIKey) { k.OrgID = "" },
		"org bad partner":     func(k *APIKey) { k.PartnerID = "p" },
		"partner with org":    func(k *APIKey) { k.Scope, k.PartnerID = APIKeyScopePartner, v.partner },
		"partner no partner":  func(k *APIKey) { k.Scope, k.OrgID = APIKeyScopePartner, "" },
		"system with org":     func(k *APIKey) { k.Scope = APIKeyScopeSystem },
		"system with partner": func(k *APIKey) { k.Scope, k.OrgID, k.PartnerID = APIKeyScopeSystem, "", v.partner },
		"no permissions":      func(k *APIKey) { k.Permissions = nil },
		"empty permission":    func(k *APIKey) { k.Permissions = []string{"devices:read", " "} },
		"bad site":            func(k *APIKey) { k.SiteIDs = []string{"s"} },
		"duplicate site":      func(k *APIKey) { k.SiteIDs = []string{v.site, strings.ToUpper(v.site)} },
		"another org's site":  func(k *APIKey) { k.SiteIDs = []string{v.site2} },
		"unknown org":         func(k *APIKey) { k.OrgID = NewID(t0) },
		"no createdAt":        func(k *APIKey) { k.CreatedAt = time.Time{} },
		"expires before":      func(k *APIKey) { k.ExpiresAt = t0 },
		"no creator":          func(k *APIKey) { k.CreatedBy = "" },
		"hash of another key": func(k *APIKey) { k.KeyHash = taken.KeyHash },
	}
	for name, mutate := range cases {
		k := newAPIKey(v, APIKeyScopeOrganization, "fresh")
		mutate(k)
		err := v.st.Update(func(tx *Tx) error { return tx.PutAPIKey(k) })
		if name == "hash of another key" {
			if !isConflict(err) {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if !isInvalid(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	v.snap(t, func(s *Snapshot) error {
		if ks, _ := s.APIKeys(APIKeyFilter{All: true, IncludeRevoked: true}); len(ks) != 1 {
			t.Errorf("refused keys were written: %d keys", len(ks))
		}
		return nil
	})
}
