package lifecycle

import (
	"errors"
	"fmt"
	"sync"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/store"
)

// policyState is the configuration policies the service resolves from:
// the stored ones and the rule files', built again when the store's policy
// version or the rule files' generation moves.
type policyState struct {
	mu    sync.Mutex
	ver   uint64
	gen   uint64
	cache *policy.Cache
}

// policies returns the resolution cache for the policies sn holds and the
// rule files give.
func (s *Service) policies(sn *store.Snapshot) (*policy.Cache, error) {
	ver, err := sn.PolicyVersion()
	if err != nil {
		return nil, err
	}
	var files []FileOrg
	var gen uint64
	if fs := s.files.Load(); fs != nil {
		files, gen = fs.orgs, fs.gen
	}
	s.pol.mu.Lock()
	defer s.pol.mu.Unlock()
	// Versions only move forward: a caller holding an older snapshot uses
	// the newer policies rather than putting the older ones back for
	// everyone.
	if s.pol.cache != nil && ver <= s.pol.ver && gen <= s.pol.gen {
		return s.pol.cache, nil
	}
	ps, err := sn.Policies()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		ps = append(ps, f.Policies...)
	}
	if s.pol.cache == nil {
		s.pol.cache = policy.NewCache(ps)
	} else {
		s.pol.cache.SetPolicies(ps)
	}
	s.pol.ver, s.pol.gen = ver, gen
	return s.pol.cache, nil
}

// PolicyDevice is a stored device as resolution sees it: its organisation
// gives its partner; its stored attributes are what conditions read
// besides its own fields. The names of its partner, site and groups are
// read where r has rule-file assignments that target names at that level
// (the organisation's name and the hostname come free).
func PolicyDevice(sn *store.Snapshot, dev *store.Device, org *store.Org, r *policy.Resolver) (*policy.Device, error) {
	d := &policy.Device{ID: dev.ID, OrgID: dev.OrgID, SiteID: dev.SiteID, GroupIDs: dev.GroupIDs, OS: dev.OS,
		Hostname: dev.Hostname, Attributes: dev.Attributes, OrgName: org.Name, PartnerID: org.PartnerID}
	if org.PartnerID != "" && r.NamesAt(policy.LevelPartner) {
		ps, err := sn.Partners()
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if sameID(p.ID, org.PartnerID) {
				d.PartnerName = p.Name
			}
		}
	}
	if dev.SiteID != "" && r.NamesAt(policy.LevelSite) {
		site, err := sn.Site(dev.OrgID, dev.SiteID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if site != nil {
			d.SiteName = site.Name
		}
	}
	if len(dev.GroupIDs) > 0 && r.NamesAt(policy.LevelDeviceGroup) {
		gs, err := sn.DeviceGroups(dev.OrgID)
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			for _, id := range dev.GroupIDs {
				if sameID(g.ID, id) {
					d.GroupNames = append(d.GroupNames, g.Name)
				}
			}
		}
	}
	return d, nil
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
		out.Resolution, err = s.resolveIn(sn, dev, org, feature, explain)
		out.Device, out.Org = dev, org
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// resolveIn resolves feature for a device within a snapshot, from the
// cache unless explaining.
func (s *Service) resolveIn(sn *store.Snapshot, dev *store.Device, org *store.Org, feature string, explain bool) (policy.Resolution, error) {
	c, err := s.policies(sn)
	if err != nil {
		return policy.Resolution{}, err
	}
	d, err := PolicyDevice(sn, dev, org, c.Resolver())
	if err != nil {
		return policy.Resolution{}, err
	}
	if explain {
		return c.Resolver().Resolve(d, feature, true), nil
	}
	return c.Resolve(d, feature), nil
}

// PamSettings is what the device's agent is told of the pam feature:
// whether it captures UAC prompts, from the closest applicable policy, else
// the organisation's own setting, else off (pam-semantics §10.2).
func (s *Service) PamSettings(deviceID string) (uacInterceptionEnabled bool, r *Resolved, err error) {
	r, err = s.ResolvePolicy(deviceID, policy.FeaturePAM, false)
	if err != nil {
		return false, nil, err
	}
	on, err := policy.PamSettings(r.Resolution, s.UACInterception(r.Org))
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
		res, err = s.resolveIn(sn, dev, org, policy.FeatureSoftwarePolicy, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	switch res.Source {
	case policy.SourceError:
		return nil, fmt.Errorf("software policy of device %s: policy %s: %s", dev.ID, res.Winner.PolicyID, res.Error) // pending
	case policy.SourcePolicy:
	default:
		return nil, nil
	}
	sp, _, err := policy.SoftwarePolicyFrom(res.Policy)
	if err != nil {
		return nil, err // the caller fails safe: pending
	}
	return engine.NewBridge(*sp)
}
