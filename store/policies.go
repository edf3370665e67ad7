package store

import (
	"encoding/json"

	"github.com/elevate-pam/elevate/policy"
)

// PutPolicy creates or replaces a configuration policy (with its
// assignments). The caller validates it (policy.ValidatePolicy).
func (tx *Tx) PutPolicy(p *policy.Policy) error {
	id, err := ParseID(p.ID)
	if err != nil {
		return invalid("policy", "id must be a UUID")
	}
	if p.OrgID != "" {
		org, err := ParseID(p.OrgID)
		if err != nil {
			return invalid("policy", "orgId must be a UUID")
		}
		if err := tx.requireOrg(org); err != nil {
			return err
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tx.set(key(pPolicy, id[:]), b)
	_, err = tx.bumpVersion(NilID)
	return err
}

// DeletePolicy removes a policy; ErrNotFound if absent.
func (tx *Tx) DeletePolicy(id string) error {
	pid, err := ParseID(id)
	if err != nil {
		return ErrNotFound
	}
	k := key(pPolicy, pid[:])
	if _, ok, err := tx.get(k); err != nil {
		return err
	} else if !ok {
		return ErrNotFound
	}
	tx.del(k)
	_, err = tx.bumpVersion(NilID)
	return err
}

// Policies lists every configuration policy.
func (s *Snapshot) Policies() ([]policy.Policy, error) {
	return listJSON[policy.Policy](s.r, []byte{pPolicy})
}

// PolicyVersion is the version of the set of configuration policies: it
// moves with every write of one (0 before any), so what is built from the
// policies can be kept until it moves. It is kept beside the
// organisations' rule-set versions, under the nil id no organisation has.
func (s *Snapshot) PolicyVersion() (uint64, error) { return readVersion(s.r, NilID) }
