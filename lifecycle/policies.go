package lifecycle

import (
	"errors"
	"fmt"
	"sync"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/store"
)

// policyState is the configuration policies the service resolves from,
// built again when the store's policy version moves.
type policyState struct {
	mu    sync.Mutex
	ver   uint64
	cache *policy.Cache
}

// policies returns the resolution cache for the policies sn holds.
func (s *Service) policies(sn *store.Snapshot) (*policy.Cache, error) {
	ver, err := sn.PolicyVersion()
	if err != nil {
		return nil, err
	}
	s.pol.mu.Lock()
	defer s.pol.mu.Unlock()
	if s.pol.cache != nil && s.pol.ver == ver {
		return s.pol.cache, nil
	}
	ps, err := sn.Policies()
	if err != nil {
		return nil, err
	}
	if s.pol.cache == nil {
		s.pol.cache = policy.NewCache(ps)
	} else {
		s.pol.cache.SetPolicies(ps)
	}
	s.pol.ver = ver
	return s.pol.cache, nil
}

// PolicyDevice is a stored device as resolution sees it: its organisation
// gives its partner; its stored attributes are what conditions read
// besides its own fields.
func PolicyDevice(dev *store.Device, org *store.Org) *policy.Device {
	d := &policy.Device{ID: dev.ID, OrgID: dev.OrgID, SiteID: dev.SiteID, GroupIDs: dev.GroupIDs, OS: dev.OS,
		Hostname: dev.Hostname, Attributes: dev.Attributes}
	if org != nil {
		d.PartnerID = org.PartnerID
	}
	return d
}

// Resolved is a device's resolution of one feature, with the device and
// organisation it was made for.
type Resolved struct {
	policy.Resolution
	Device *store.Device
	Org    *store.Org
}

// ResolvePolicy resolves feature for a stored device through the
// configuration-policy hierarchy (explain lists the assignments passed
// over). ErrNotFound when the device does not exist.
func (s *Service) ResolvePolicy(deviceID, feature string, explain bool) (*Resolved, error) {
	if _, ok := policy.LookupFeature(feature); !ok {
		return nil, engine.FieldErrors{{Field: "feature", Reason: fmt.Sprintf("unknown feature %q", feature)}}
	}
	var out Resolved
	err := s.st.View(func(sn *store.Snapshot) error {
		dev, err := sn.Device(deviceID)
		if err != nil {
			return err
		}
		org, err := sn.Org(dev.OrgID)
		if err != nil {
			return err
		}
		c, err := s.policies(sn)
		if err != nil {
			return err
		}
		d := PolicyDevice(dev, org)
		if explain {
			out.Resolution = c.Resolver().Resolve(d, feature, true)
		} else {
			out.Resolution = c.Resolve(d, feature)
		}
		out.Device, out.Org = dev, org
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// PamSettings is what the device's agent is told of the pam feature:
// whether it captures UAC prompts, from the closest applicable policy, else
// the organisation's own setting, else off (pam-semantics §10.2).
func (s *Service) PamSettings(deviceID string) (uacInterceptionEnabled bool, r *Resolved, err error) {
	r, err = s.ResolvePolicy(deviceID, policy.FeaturePAM, false)
	if err != nil {
		return false, nil, err
	}
	on, err := policy.PamSettings(r.Resolution, r.Org.UacInterceptionEnabled)
	return on, r, err
}

// softwareBridge is the default BridgeFunc: the software policy the
// device resolves to through the hierarchy, if any (pam-semantics §5: the
// winner only; empty settings at the winner mean none, not the next one).
func (s *Service) softwareBridge(dev *store.Device) (*engine.Bridge, error) {
	var res policy.Resolution
	err := s.st.View(func(sn *store.Snapshot) error {
		org, err := sn.Org(dev.OrgID)
		if err != nil {
			return err
		}
		c, err := s.policies(sn)
		if err != nil {
			return err
		}
		res = c.Resolve(PolicyDevice(dev, org), policy.FeatureSoftwarePolicy)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res.Source != policy.SourcePolicy {
		return nil, nil
	}
	sp, _, err := policy.SoftwarePolicyFrom(res.Policy)
	if err != nil {
		return nil, err // the caller fails safe: pending
	}
	return engine.NewBridge(*sp)
}
