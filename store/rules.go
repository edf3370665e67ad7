package store

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/elevate-pam/elevate/engine"
)

// Rules and signer groups are stored as the API's JSON. Every write bumps
// the organisation's rule-set version, so a compiled rule set can be cached
// under its version and replaced when the version moves.

func (tx *Tx) bumpVersion(org ID) (uint64, error) {
	k := key(pVersion, org[:])
	v, ok, err := tx.get(k)
	if err != nil {
		return 0, err
	}
	var n uint64
	if ok {
		if len(v) != 8 {
			return 0, corrupt(k, fmt.Errorf("bad version"))
		}
		n = binary.BigEndian.Uint64(v)
	}
	n++
	tx.set(k, u64(n))
	return n, nil
}

func ruleKey(r *engine.Rule) ([]byte, ID, error) {
	v, err := ids(r.OrgID, r.ID)
	if err != nil {
		return nil, ID{}, invalid("rule", "orgId and id must be UUIDs")
	}
	return key(pRule, v[0][:], v[1][:]), v[0], nil
}

// PutRule creates or replaces a rule. The caller validates the rule's
// shape (engine.ValidateRule); the store checks only what it relies on.
func (tx *Tx) PutRule(r *engine.Rule) (version uint64, err error) {
	k, org, err := ruleKey(r)
	if err != nil {
		return 0, err
	}
	if err := tx.requireOrg(org); err != nil {
		return 0, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	tx.set(k, b)
	return tx.bumpVersion(org)
}

// DeleteRule removes a rule; ErrNotFound if it does not exist.
func (tx *Tx) DeleteRule(org, id string) (uint64, error) { return tx.deleteVersioned(pRule, org, id) }

// deleteVersioned removes a rule or signer group and bumps the org's
// rule-set version; ErrNotFound if there is no such entry.
func (tx *Tx) deleteVersioned(prefix byte, org, id string) (uint64, error) {
	v, err := ids(org, id)
	if err != nil {
		return 0, ErrNotFound
	}
	k := key(prefix, v[0][:], v[1][:])
	if _, ok, err := tx.get(k); err != nil {
		return 0, err
	} else if !ok {
		return 0, ErrNotFound
	}
	tx.del(k)
	return tx.bumpVersion(v[0])
}

// Rule reads one rule.
func (s *Snapshot) Rule(org, id string) (*engine.Rule, error) {
	v, err := ids(org, id)
	if err != nil {
		return nil, ErrNotFound
	}
	var r engine.Rule
	return &r, getJSON(s.r, key(pRule, v[0][:], v[1][:]), &r)
}

// Rule reads one rule inside an operation.
func (tx *Tx) Rule(org, id string) (*engine.Rule, error) { return (&Snapshot{tx}).Rule(org, id) }

// RuleSet is an organisation's stored rules (in evaluation order: priority,
// createdAt, id) and signer groups (by name), with the version they were
// read at.
type RuleSet struct {
	Version      uint64
	Rules        []engine.Rule
	SignerGroups []engine.SignerGroup
}

// RuleSet reads the organisation's rules and signer groups in one snapshot.
func (s *Snapshot) RuleSet(org string) (*RuleSet, error) {
	oid, err := ParseID(org)
	if err != nil {
		return nil, ErrNotFound
	}
	rs := &RuleSet{}
	if rs.Version, err = s.RuleVersion(org); err != nil {
		return nil, err
	}
	if rs.Rules, err = listJSON[engine.Rule](s.r, key(pRule, oid[:])); err != nil {
		return nil, err
	}
	slices.SortStableFunc(rs.Rules, func(a, b engine.Rule) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if rs.SignerGroups, err = listJSON[engine.SignerGroup](s.r, key(pSignerGroup, oid[:])); err != nil {
		return nil, err
	}
	slices.SortStableFunc(rs.SignerGroups, func(a, b engine.SignerGroup) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	return rs, nil
}

// RuleVersion is the organisation's rule-set version: 0 before any write.
func (s *Snapshot) RuleVersion(org string) (uint64, error) {
	oid, err := ParseID(org)
	if err != nil {
		return 0, ErrNotFound
	}
	return readVersion(s.r, oid)
}

// readVersion reads a version counter (0 before its first write).
func readVersion(rd reader, id ID) (uint64, error) {
	k := key(pVersion, id[:])
	v, ok, err := rd.get(k)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, corrupt(k, fmt.Errorf("bad version"))
	}
	return binary.BigEndian.Uint64(v), nil
}

// RuleVersion reads the version outside a snapshot.
func (s *Store) RuleVersion(org string) (uint64, error) {
	var v uint64
	err := s.View(func(sn *Snapshot) error {
		var err error
		v, err = sn.RuleVersion(org)
		return err
	})
	return v, err
}

// PutSignerGroup creates or replaces a signer group. Names are unique per
// organisation (case-insensitively, after trimming).
func (tx *Tx) PutSignerGroup(g *engine.SignerGroup) (uint64, error) {
	v, err := ids(g.OrgID, g.ID)
	if err != nil {
		return 0, invalid("signer group", "orgId and id must be UUIDs")
	}
	org := v[0]
	if err := tx.requireOrg(org); err != nil {
		return 0, err
	}
	others, err := listJSON[engine.SignerGroup](tx, key(pSignerGroup, org[:]))
	if err != nil {
		return 0, err
	}
	for _, o := range others {
		if !strings.EqualFold(o.ID, g.ID) && strings.EqualFold(strings.TrimSpace(o.Name), strings.TrimSpace(g.Name)) {
			return 0, &ConflictError{Msg: fmt.Sprintf("a signer group named %q already exists", g.Name)}
		}
	}
	b, err := json.Marshal(g)
	if err != nil {
		return 0, err
	}
	tx.set(key(pSignerGroup, org[:], v[1][:]), b)
	return tx.bumpVersion(org)
}

// DeleteSignerGroup removes a signer group; ErrNotFound if absent.
func (tx *Tx) DeleteSignerGroup(org, id string) (uint64, error) {
	return tx.deleteVersioned(pSignerGroup, org, id)
}

// RuleVersion reads the organisation's rule-set version inside an
// operation.
func (tx *Tx) RuleVersion(org string) (uint64, error) { return (&Snapshot{tx}).RuleVersion(org) }

// SignerGroup reads one signer group.
func (s *Snapshot) SignerGroup(org, id string) (*engine.SignerGroup, error) {
	v, err := ids(org, id)
	if err != nil {
		return nil, ErrNotFound
	}
	var g engine.SignerGroup
	return &g, getJSON(s.r, key(pSignerGroup, v[0][:], v[1][:]), &g)
}

// Rules lists the organisation's rules in evaluation order.
func (s *Snapshot) Rules(org string) ([]engine.Rule, error) {
	rs, err := s.RuleSet(org)
	if err != nil {
		return nil, err
	}
	return rs.Rules, nil
}
