package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/elevate-pam/elevate/engine"
)

// Partner is a managed-service provider owning organisations.
type Partner struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
}

// Org is a tenant and its PAM settings (pam-semantics §1.3).
type Org struct {
	ID        string    `json:"id"`
	PartnerID string    `json:"partnerId,omitempty"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	// DefaultUnmatchedVerdict: require_approval (also when empty) or
	// auto_deny.
	DefaultUnmatchedVerdict engine.Verdict `json:"defaultUnmatchedVerdict,omitempty"`
	// UacInterceptionEnabled is the org-level fallback of the pam feature
	// (nil = not set).
	UacInterceptionEnabled *bool `json:"uacInterceptionEnabled,omitempty"`
	// ActuatorEnabled allows actuate-elevation for this org.
	ActuatorEnabled bool `json:"actuatorEnabled"`
}

// Config is the organisation's settings as the decision engine takes them.
func (o *Org) Config() engine.OrgConfig {
	return engine.OrgConfig{DefaultUnmatchedVerdict: o.DefaultUnmatchedVerdict}
}

// Site is a location of an organisation.
type Site struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"orgId"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
}

// DeviceGroup is a named set of devices of an organisation.
type DeviceGroup struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"orgId"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
}

// Device statuses.
const (
	DeviceActive         = "active"
	DeviceQuarantined    = "quarantined"
	DeviceDecommissioned = "decommissioned"
)

// Device is an endpoint with an agent. Its agent token is never stored,
// only its SHA-256.
type Device struct {
	ID        string   `json:"id"`
	OrgID     string   `json:"orgId"`
	SiteID    string   `json:"siteId,omitempty"`
	GroupIDs  []string `json:"groupIds,omitempty"`
	Hostname  string   `json:"hostname"`
	Status    string   `json:"status"`
	OS        string   `json:"os,omitempty"`
	TokenHash string   `json:"agentTokenHash,omitempty"` // hex SHA-256 of the agent token
	// Attributes feed configuration-policy conditions.
	Attributes map[string]any `json:"attributes,omitempty"`
	CreatedAt  time.Time      `json:"createdAt,omitzero"`
}

// TokenHash is the stored form of an agent token.
func TokenHash(token string) string {
	s := sha256.Sum256([]byte(token))
	return fmt.Sprintf("%x", s[:])
}

func putJSON(tx *Tx, k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tx.set(k, b)
	return nil
}

func getJSON(rd reader, k []byte, v any) error {
	b, ok, err := rd.get(k)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotFound
	}
	if err := json.Unmarshal(b, v); err != nil {
		return corrupt(k, err)
	}
	return nil
}

// listJSON decodes every value under prefix; a value that does not decode
// is an error naming its key.
func listJSON[T any](rd reader, prefix []byte) ([]T, error) {
	var out []T
	err := rd.scan(prefix, func(k, b []byte) (bool, error) {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return false, corrupt(k, err)
		}
		out = append(out, v)
		return true, nil
	})
	return out, err
}

func ids(a ...string) ([]ID, error) {
	out := make([]ID, len(a))
	for i, s := range a {
		id, err := ParseID(s)
		if err != nil {
			return nil, err
		}
		if id == NilID {
			return nil, fmt.Errorf("the nil UUID names nothing")
		}
		out[i] = id
	}
	return out, nil
}

// canonical rewrites each id in its canonical lowercase form (ids that do
// not parse are left for validation to report).
func canonical(p ...*string) {
	for _, s := range p {
		if id, err := ParseID(*s); err == nil && id != NilID {
			*s = id.String()
		}
	}
}

func invalid(what string, problems ...string) error {
	return &InvalidError{What: what, Problems: problems}
}

// PutPartner creates or replaces a partner.
func (tx *Tx) PutPartner(p *Partner) error {
	canonical(&p.ID)
	v, err := ids(p.ID)
	if err != nil || strings.TrimSpace(p.Name) == "" {
		return invalid("partner", "id must be a UUID and name non-empty")
	}
	return putJSON(tx, key(pPartner, v[0][:]), p)
}

// PutOrg creates or replaces an organisation.
func (tx *Tx) PutOrg(o *Org) error {
	canonical(&o.ID, &o.PartnerID)
	oid, err := ids(o.ID)
	var probs []string
	if err != nil {
		probs = append(probs, "id: "+err.Error())
	}
	if strings.TrimSpace(o.Name) == "" {
		probs = append(probs, "name: is required")
	}
	if o.PartnerID != "" {
		pid, err := ParseID(o.PartnerID)
		if err != nil {
			probs = append(probs, "partnerId: "+err.Error())
		} else if _, ok, err := tx.get(key(pPartner, pid[:])); err != nil {
			return err
		} else if !ok {
			probs = append(probs, "partnerId: no such partner")
		}
	}
	if v := o.DefaultUnmatchedVerdict; v != "" && v != engine.VerdictRequireApproval && v != engine.VerdictAutoDeny {
		probs = append(probs, fmt.Sprintf("defaultUnmatchedVerdict: %q must be require_approval or auto_deny", v))
	}
	if probs != nil {
		return invalid("organisation", probs...)
	}
	return putJSON(tx, key(pOrg, oid[0][:]), o)
}

func (tx *Tx) requireOrg(org ID) error {
	if _, ok, err := tx.get(key(pOrg, org[:])); err != nil {
		return err
	} else if !ok {
		return invalid("reference", fmt.Sprintf("organisation %s does not exist", org))
	}
	return nil
}

// PutSite creates or replaces a site of an existing organisation.
func (tx *Tx) PutSite(s *Site) error {
	canonical(&s.ID, &s.OrgID)
	v, err := ids(s.OrgID, s.ID)
	if err != nil || strings.TrimSpace(s.Name) == "" {
		return invalid("site", "orgId and id must be UUIDs and name non-empty")
	}
	if err := tx.requireOrg(v[0]); err != nil {
		return err
	}
	return putJSON(tx, key(pSite, v[0][:], v[1][:]), s)
}

// PutDeviceGroup creates or replaces a device group.
func (tx *Tx) PutDeviceGroup(g *DeviceGroup) error {
	canonical(&g.ID, &g.OrgID)
	v, err := ids(g.OrgID, g.ID)
	if err != nil || strings.TrimSpace(g.Name) == "" {
		return invalid("device group", "orgId and id must be UUIDs and name non-empty")
	}
	if err := tx.requireOrg(v[0]); err != nil {
		return err
	}
	return putJSON(tx, key(pGroup, v[0][:], v[1][:]), g)
}

// PutDevice creates or replaces a device. Its site and groups must exist
// in its organisation; a device never moves between organisations.
func (tx *Tx) PutDevice(d *Device) error {
	canonical(&d.ID, &d.OrgID, &d.SiteID)
	for i := range d.GroupIDs {
		canonical(&d.GroupIDs[i])
	}
	v, err := ids(d.OrgID, d.ID)
	if err != nil || strings.TrimSpace(d.Hostname) == "" {
		return invalid("device", "orgId and id must be UUIDs and hostname non-empty")
	}
	org, id := v[0], v[1]
	if err := tx.requireOrg(org); err != nil {
		return err
	}
	switch d.Status {
	case "":
		d.Status = DeviceActive
	case DeviceActive, DeviceQuarantined, DeviceDecommissioned:
	default:
		return invalid("device", fmt.Sprintf("status %q must be active, quarantined or decommissioned", d.Status))
	}
	if d.SiteID != "" {
		sid, err := ParseID(d.SiteID)
		if err != nil {
			return invalid("device", "siteId: "+err.Error())
		}
		if _, ok, err := tx.get(key(pSite, org[:], sid[:])); err != nil {
			return err
		} else if !ok {
			return invalid("device", "siteId: no such site in the organisation")
		}
	}
	for _, g := range d.GroupIDs {
		gid, err := ParseID(g)
		if err != nil {
			return invalid("device", "groupIds: "+err.Error())
		}
		if _, ok, err := tx.get(key(pGroup, org[:], gid[:])); err != nil {
			return err
		} else if !ok {
			return invalid("device", "groupIds: no such group "+g)
		}
	}
	if d.TokenHash != "" && !engine.IsHex64(d.TokenHash) {
		return invalid("device", "agentTokenHash must be 64 hex characters")
	}
	if prev, ok, err := tx.get(key(pDeviceOrg, id[:])); err != nil {
		return err
	} else if ok && string(prev) != string(org[:]) {
		return &ConflictError{Msg: fmt.Sprintf("device %s belongs to another organisation", d.ID)}
	}
	var old Device
	switch err := getJSON(tx, key(pDevice, org[:], id[:]), &old); err {
	case nil:
		if old.TokenHash != "" && old.TokenHash != d.TokenHash {
			th, _ := hexID32(old.TokenHash)
			tx.del(key(pToken, th))
		}
	case ErrNotFound:
	default:
		return err
	}
	if d.TokenHash != "" {
		th, _ := hexID32(d.TokenHash)
		owner := append(slices.Clone(org[:]), id[:]...)
		if cur, ok, err := tx.get(key(pToken, th)); err != nil {
			return err
		} else if ok && !bytes.Equal(cur, owner) {
			return &ConflictError{Msg: fmt.Sprintf("device %s: the agent token is already another device's", d.ID)}
		}
		tx.set(key(pToken, th), owner)
	}
	tx.set(key(pDeviceOrg, id[:]), org[:])
	return putJSON(tx, key(pDevice, org[:], id[:]), d)
}

func hexID32(s string) ([]byte, error) { return hex.DecodeString(strings.ToLower(s)) }

// Snapshot readers.

// Org reads an organisation.
func (s *Snapshot) Org(id string) (*Org, error) {
	oid, err := ParseID(id)
	if err != nil {
		return nil, ErrNotFound
	}
	k := key(pOrg, oid[:])
	b, ok, err := s.r.get(k)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, ErrNotFound
	}
	return orgRows.decode(k, b)
}

// orgRows remembers decoded organisation rows by their bytes: every
// decision reads its organisation, and the row changes rarely. Keyed by
// content, an entry can never be stale.
var orgRows orgCache

// orgCacheSize bounds orgRows; a full cache starts over.
const orgCacheSize = 4096

type orgCache struct {
	mu sync.RWMutex
	m  map[string]*Org
}

// decode returns the organisation row b (at key k) as a copy the caller
// owns.
func (c *orgCache) decode(k, b []byte) (*Org, error) {
	c.mu.RLock()
	o := c.m[string(b)]
	c.mu.RUnlock()
	if o == nil {
		o = new(Org)
		if err := json.Unmarshal(b, o); err != nil {
			return nil, corrupt(k, err)
		}
		c.mu.Lock()
		if c.m == nil || len(c.m) >= orgCacheSize {
			c.m = make(map[string]*Org)
		}
		c.m[string(b)] = o
		c.mu.Unlock()
	}
	out := *o
	if o.UacInterceptionEnabled != nil {
		v := *o.UacInterceptionEnabled
		out.UacInterceptionEnabled = &v
	}
	return &out, nil
}

// Org reads an organisation inside an operation.
func (tx *Tx) Org(id string) (*Org, error) { return (&Snapshot{tx}).Org(id) }

// Device reads a device by id alone (the agent's route names no org).
func (s *Snapshot) Device(id string) (*Device, error) {
	did, err := ParseID(id)
	if err != nil {
		return nil, ErrNotFound
	}
	org, ok, err := s.r.get(key(pDeviceOrg, did[:]))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	var d Device
	return &d, getJSON(s.r, key(pDevice, org, did[:]), &d)
}

// Device reads a device inside an operation.
func (tx *Tx) Device(id string) (*Device, error) { return (&Snapshot{tx}).Device(id) }

// DeviceByToken finds the device an agent token belongs to.
func (s *Snapshot) DeviceByToken(token string) (*Device, error) {
	th := sha256.Sum256([]byte(token))
	v, ok, err := s.r.get(key(pToken, th[:]))
	if err != nil {
		return nil, err
	}
	if !ok || len(v) != 32 {
		return nil, ErrNotFound
	}
	var d Device
	return &d, getJSON(s.r, key(pDevice, v[:16], v[16:]), &d)
}

// Site reads a site of an organisation.
func (s *Snapshot) Site(org, id string) (*Site, error) {
	v, err := ids(org, id)
	if err != nil {
		return nil, ErrNotFound
	}
	var st Site
	return &st, getJSON(s.r, key(pSite, v[0][:], v[1][:]), &st)
}

// Partners lists every partner.
func (s *Snapshot) Partners() ([]Partner, error) { return listJSON[Partner](s.r, []byte{pPartner}) }

// Orgs lists every organisation.
func (s *Snapshot) Orgs() ([]Org, error) { return listJSON[Org](s.r, []byte{pOrg}) }

// Sites lists an organisation's sites.
func (s *Snapshot) Sites(org string) ([]Site, error) { return orgList[Site](s.r, pSite, org) }

// DeviceGroups lists an organisation's device groups.
func (s *Snapshot) DeviceGroups(org string) ([]DeviceGroup, error) {
	return orgList[DeviceGroup](s.r, pGroup, org)
}

// Devices lists an organisation's devices.
func (s *Snapshot) Devices(org string) ([]Device, error) { return orgList[Device](s.r, pDevice, org) }

func orgList[T any](rd reader, prefix byte, org string) ([]T, error) {
	oid, err := ParseID(org)
	if err != nil {
		return nil, ErrNotFound
	}
	return listJSON[T](rd, key(prefix, oid[:]))
}

// Orgs lists every organisation inside an operation.
func (tx *Tx) Orgs() ([]Org, error) { return (&Snapshot{tx}).Orgs() }
