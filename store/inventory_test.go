package store

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
	"github.com/google/go-cmp/cmp"
)

type inv struct {
	st                 *Store
	partner            string
	org, org2          string
	site, site2, group string // site2 and group2 belong to org2
	group2             string
}

func newInv(t *testing.T) *inv {
	t.Helper()
	v := &inv{st: openTemp(t), partner: NewID(t0), org: NewID(t0), org2: NewID(t0), site: NewID(t0), site2: NewID(t0),
		group: NewID(t0), group2: NewID(t0)}
	mustUpdate(t, v.st, func(tx *Tx) error {
		return errors.Join(
			tx.PutPartner(&Partner{ID: v.partner, Name: "msp"}),
			tx.PutOrg(&Org{ID: v.org, PartnerID: v.partner, Name: "acme", DefaultUnmatchedVerdict: engine.VerdictAutoDeny}),
			tx.PutOrg(&Org{ID: v.org2, Name: "globex"}),
			tx.PutSite(&Site{ID: v.site, OrgID: v.org, Name: "HQ"}),
			tx.PutSite(&Site{ID: v.site2, OrgID: v.org2, Name: "Branch"}),
			tx.PutDeviceGroup(&DeviceGroup{ID: v.group, OrgID: v.org, Name: "servers"}),
			tx.PutDeviceGroup(&DeviceGroup{ID: v.group2, OrgID: v.org2, Name: "laptops"}),
		)
	})
	return v
}

func (v *inv) snap(t *testing.T, fn func(s *Snapshot) error) {
	t.Helper()
	if err := v.st.View(fn); err != nil {
		t.Fatal(err)
	}
}

func isInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

func isConflict(err error) bool {
	var ce *ConflictError
	return errors.As(err, &ce)
}

func TestPutOrgAndFriendsValidate(t *testing.T) {
	v := newInv(t)
	cases := map[string]func(tx *Tx) error{
		"partner bad id":      func(tx *Tx) error { return tx.PutPartner(&Partner{ID: "x", Name: "p"}) },
		"partner no name":     func(tx *Tx) error { return tx.PutPartner(&Partner{ID: NewID(t0), Name: " "}) },
		"org bad id":          func(tx *Tx) error { return tx.PutOrg(&Org{ID: "x", Name: "o"}) },
		"org no name":         func(tx *Tx) error { return tx.PutOrg(&Org{ID: NewID(t0)}) },
		"org unknown partner": func(tx *Tx) error { return tx.PutOrg(&Org{ID: NewID(t0), Name: "o", PartnerID: NewID(t0)}) },
		"org bad partner id":  func(tx *Tx) error { return tx.PutOrg(&Org{ID: NewID(t0), Name: "o", PartnerID: "p"}) },
		"org bad verdict": func(tx *Tx) error {
			return tx.PutOrg(&Org{ID: NewID(t0), Name: "o", DefaultUnmatchedVerdict: engine.VerdictAutoApprove})
		},
		"site unknown org":   func(tx *Tx) error { return tx.PutSite(&Site{ID: NewID(t0), OrgID: NewID(t0), Name: "s"}) },
		"site no name":       func(tx *Tx) error { return tx.PutSite(&Site{ID: NewID(t0), OrgID: v.org}) },
		"group unknown org":  func(tx *Tx) error { return tx.PutDeviceGroup(&DeviceGroup{ID: NewID(t0), OrgID: NewID(t0), Name: "g"}) },
		"group bad id":       func(tx *Tx) error { return tx.PutDeviceGroup(&DeviceGroup{ID: "g", OrgID: v.org, Name: "g"}) },
		"command bad ids":    func(tx *Tx) error { return tx.PutCommand(&Command{ID: "c", OrgID: v.org, DeviceID: NewID(t0)}) },
		"command bad device": func(tx *Tx) error { return tx.PutCommand(&Command{ID: NewID(t0), OrgID: v.org, DeviceID: "d"}) },
		"policy bad id":      func(tx *Tx) error { return tx.PutPolicy(&policy.Policy{ID: "p", Name: "p"}) },
		"policy unknown org": func(tx *Tx) error { return tx.PutPolicy(&policy.Policy{ID: NewID(t0), OrgID: NewID(t0), Name: "p"}) },
		"policy bad org":     func(tx *Tx) error { return tx.PutPolicy(&policy.Policy{ID: NewID(t0), OrgID: "o", Name: "p"}) },
	}
	for name, fn := range cases {
		if err := v.st.Update(fn); !isInvalid(err) {
			t.Errorf("%s: %v, want *InvalidError", name, err)
		}
	}
	v.snap(t, func(s *Snapshot) error {
		o, err := s.Org(v.org)
		if err != nil || o.PartnerID != v.partner || o.Config().DefaultUnmatchedVerdict != engine.VerdictAutoDeny {
			t.Errorf("Org = %+v, %v", o, err)
		}
		ps, err := s.Partners()
		if err != nil || len(ps) != 1 {
			t.Errorf("Partners = %v, %v", ps, err)
		}
		orgs, err := s.Orgs()
		if err != nil || len(orgs) != 2 {
			t.Errorf("Orgs = %v, %v", orgs, err)
		}
		sites, err := s.Sites(v.org)
		if err != nil || len(sites) != 1 || sites[0].ID != v.site {
			t.Errorf("Sites = %v, %v", sites, err)
		}
		if st, err := s.Site(v.org2, v.site); !errors.Is(err, ErrNotFound) {
			t.Errorf("Site of another org = %v, %v", st, err)
		}
		gs, err := s.DeviceGroups(v.org2)
		if err != nil || len(gs) != 1 || gs[0].ID != v.group2 {
			t.Errorf("DeviceGroups = %v, %v", gs, err)
		}
		if _, err := s.Org("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Org(bad id) = %v", err)
		}
		if _, err := s.Sites("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Sites(bad id) = %v", err)
		}
		return nil
	})
}

func TestPutDevice(t *testing.T) {
	v := newInv(t)
	dev := NewID(t0)
	put := func(d *Device) error { return v.st.Update(func(tx *Tx) error { return tx.PutDevice(d) }) }
	base := func() *Device {
		return &Device{ID: dev, OrgID: v.org, SiteID: v.site, GroupIDs: []string{v.group}, Hostname: "WIN-1",
			TokenHash: TokenHash("token-1"), Attributes: map[string]any{"os": "win11"}}
	}
	refused := map[string]func(d *Device){
		"unknown org":            func(d *Device) { d.OrgID = NewID(t0) },
		"bad org":                func(d *Device) { d.OrgID = "o" },
		"bad id":                 func(d *Device) { d.ID = "d" },
		"no hostname":            func(d *Device) { d.Hostname = "  " },
		"unknown site":           func(d *Device) { d.SiteID = NewID(t0) },
		"site of another org":    func(d *Device) { d.SiteID = v.site2 },
		"bad site id":            func(d *Device) { d.SiteID = "s" },
		"unknown group":          func(d *Device) { d.GroupIDs = []string{v.group, NewID(t0)} },
		"group of another org":   func(d *Device) { d.GroupIDs = []string{v.group2} },
		"bad group id":           func(d *Device) { d.GroupIDs = []string{"g"} },
		"bad status":             func(d *Device) { d.Status = "retired" },
		"token hash not hex":     func(d *Device) { d.TokenHash = strings.Repeat("z", 64) },
		"token hash wrong width": func(d *Device) { d.TokenHash = "abcd" },
	}
	for name, mut := range refused {
		d := base()
		mut(d)
		if err := put(d); !isInvalid(err) {
			t.Errorf("%s: %v, want *InvalidError", name, err)
		}
	}
	v.snap(t, func(s *Snapshot) error {
		if _, err := s.Device(dev); !errors.Is(err, ErrNotFound) {
			t.Errorf("refused device stored: %v", err)
		}
		return nil
	})

	if err := put(base()); err != nil {
		t.Fatal(err)
	}
	v.snap(t, func(s *Snapshot) error {
		d, err := s.Device(dev)
		if err != nil || d.Status != DeviceActive || d.OrgID != v.org || d.Attributes["os"] != "win11" {
			t.Errorf("Device = %+v, %v", d, err)
		}
		if d, err := s.DeviceByToken("token-1"); err != nil || d.ID != dev {
			t.Errorf("DeviceByToken = %v, %v", d, err)
		}
		if _, err := s.DeviceByToken("token-2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeviceByToken(unknown) = %v", err)
		}
		ds, err := s.Devices(v.org)
		if err != nil || len(ds) != 1 {
			t.Errorf("Devices = %v, %v", ds, err)
		}
		if ds, _ := s.Devices(v.org2); len(ds) != 0 {
			t.Errorf("Devices of the other org = %v", ds)
		}
		return nil
	})

	// A device never moves between organisations.
	moved := base()
	moved.OrgID, moved.SiteID, moved.GroupIDs = v.org2, v.site2, []string{v.group2}
	if err := put(moved); !isConflict(err) {
		t.Fatalf("moving a device to another org: %v, want *ConflictError", err)
	}

	// Token rotation: the new token finds the device, the old one not.
	d := base()
	d.TokenHash = strings.ToUpper(TokenHash("token-2")) // hex in either case
	d.Status = DeviceQuarantined
	if err := put(d); err != nil {
		t.Fatal(err)
	}
	v.snap(t, func(s *Snapshot) error {
		if got, err := s.DeviceByToken("token-2"); err != nil || got.ID != dev || got.Status != DeviceQuarantined {
			t.Errorf("DeviceByToken(new) = %v, %v", got, err)
		}
		if _, err := s.DeviceByToken("token-1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeviceByToken(old) = %v, want ErrNotFound", err)
		}
		return nil
	})
	// Same token again in lower case: still found.
	d = base()
	d.TokenHash = TokenHash("token-2")
	if err := put(d); err != nil {
		t.Fatal(err)
	}
	v.snap(t, func(s *Snapshot) error {
		if got, err := s.DeviceByToken("token-2"); err != nil || got.ID != dev {
			t.Errorf("DeviceByToken after re-put in other case = %v, %v", got, err)
		}
		return nil
	})
	// Token removed: not found any more.
	d = base()
	d.TokenHash = ""
	if err := put(d); err != nil {
		t.Fatal(err)
	}
	v.snap(t, func(s *Snapshot) error {
		if _, err := s.DeviceByToken("token-2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeviceByToken after removal = %v", err)
		}
		return nil
	})
	if n := countPrefix(t, v.st, []byte{pToken}); n != 0 {
		t.Errorf("%d token index entries left, want 0", n)
	}
	// Two token changes in one operation leave only the last.
	mustUpdate(t, v.st, func(tx *Tx) error {
		a, b := base(), base()
		a.TokenHash, b.TokenHash = TokenHash("a"), TokenHash("b")
		return errors.Join(tx.PutDevice(a), tx.PutDevice(b))
	})
	v.snap(t, func(s *Snapshot) error {
		if _, err := s.DeviceByToken("a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeviceByToken(a) = %v", err)
		}
		if got, err := s.DeviceByToken("b"); err != nil || got.ID != dev {
			t.Errorf("DeviceByToken(b) = %v, %v", got, err)
		}
		return nil
	})
}

// TestDeviceTokenOwnedByOneDevice: an agent token hash identifies one
// device. Regression test: PutDevice used to let a second device (even of
// another org) take a token hash another device held, and a later token
// change on the first device then deleted the index entry that belonged to
// the second, so its agent could no longer authenticate.
func TestDeviceTokenOwnedByOneDevice(t *testing.T) {
	v := newInv(t)
	a, b := NewID(t0), NewID(t0)
	tok := TokenHash("shared")
	mustUpdate(t, v.st, func(tx *Tx) error {
		return tx.PutDevice(&Device{ID: a, OrgID: v.org, Hostname: "a", TokenHash: tok})
	})
	for _, org := range []string{v.org2, v.org} {
		err := v.st.Update(func(tx *Tx) error {
			return tx.PutDevice(&Device{ID: b, OrgID: org, Hostname: "b", TokenHash: strings.ToUpper(tok)})
		})
		if !isConflict(err) {
			t.Fatalf("PutDevice (org %s) with another device's token = %v, want *ConflictError", org, err)
		}
	}
	// Once a has rotated its token, b may take the old one.
	mustUpdate(t, v.st, func(tx *Tx) error {
		return tx.PutDevice(&Device{ID: a, OrgID: v.org, Hostname: "a", TokenHash: TokenHash("rotated")})
	})
	mustUpdate(t, v.st, func(tx *Tx) error {
		return tx.PutDevice(&Device{ID: b, OrgID: v.org2, Hostname: "b", TokenHash: tok})
	})
	// In one operation: a gives up a token and b takes it.
	mustUpdate(t, v.st, func(tx *Tx) error {
		return errors.Join(
			tx.PutDevice(&Device{ID: a, OrgID: v.org, Hostname: "a", TokenHash: TokenHash("third")}),
			tx.PutDevice(&Device{ID: b, OrgID: v.org2, Hostname: "b", TokenHash: TokenHash("rotated")}))
	})
	v.snap(t, func(s *Snapshot) error {
		for token, want := range map[string]string{"third": a, "rotated": b} {
			if got, err := s.DeviceByToken(token); err != nil || got.ID != want {
				t.Errorf("DeviceByToken(%s) = %v, %v; want %s", token, got, err, want)
			}
		}
		if _, err := s.DeviceByToken("shared"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeviceByToken(shared) = %v", err)
		}
		return nil
	})
}

func TestRulesAndVersion(t *testing.T) {
	v := newInv(t)
	version := func(org string) uint64 {
		n, err := v.st.RuleVersion(org)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if version(v.org) != 0 {
		t.Fatal("version before any write is not 0")
	}
	mk := func(id string, prio int, created time.Time) *engine.Rule {
		return &engine.Rule{ID: id, OrgID: v.org, Name: "r-" + id[:8], Enabled: true, Priority: prio,
			Verdict: engine.VerdictAutoApprove, CreatedAt: created}
	}
	ids := []string{
		"00000000-0000-7000-8000-000000000005",
		"00000000-0000-7000-8000-000000000003",
		"00000000-0000-7000-8000-000000000004",
		"00000000-0000-7000-8000-000000000001",
		"00000000-0000-7000-8000-000000000002",
	}
	rules := []*engine.Rule{
		mk(ids[0], 10, t0.Add(time.Hour)),
		mk(ids[1], 10, t0),
		mk(ids[2], 10, t0), // same priority and createdAt as ids[1]: by id
		mk(ids[3], 50, t0.Add(-time.Hour)),
		mk(ids[4], 5, t0.Add(2*time.Hour)),
	}
	var versions []uint64
	for _, r := range rules {
		mustUpdate(t, v.st, func(tx *Tx) error {
			n, err := tx.PutRule(r)
			versions = append(versions, n)
			return err
		})
	}
	if !slices.Equal(versions, []uint64{1, 2, 3, 4, 5}) || version(v.org) != 5 {
		t.Fatalf("versions %v, stored %d", versions, version(v.org))
	}
	if version(v.org2) != 0 {
		t.Fatal("another org's version moved")
	}
	var rs *RuleSet
	v.snap(t, func(s *Snapshot) error { var err error; rs, err = s.RuleSet(v.org); return err })
	var order []string
	for _, r := range rs.Rules {
		order = append(order, r.ID)
	}
	want := []string{ids[4], ids[1], ids[2], ids[0], ids[3]} // prio 5; prio 10 by createdAt, then id; prio 50
	if !slices.Equal(order, want) || rs.Version != 5 {
		t.Fatalf("RuleSet order %v (version %d), want %v", order, rs.Version, want)
	}
	if d := cmp.Diff(*rules[4], rs.Rules[0]); d != "" {
		t.Errorf("stored rule differs (-want +got):\n%s", d)
	}
	// Two writes in one op: two bumps.
	mustUpdate(t, v.st, func(tx *Tx) error {
		r := *rules[0]
		r.Name = "renamed"
		if n, err := tx.PutRule(&r); err != nil || n != 6 {
			t.Errorf("PutRule in op = %d, %v", n, err)
		}
		n, err := tx.DeleteRule(v.org, ids[1])
		if n != 7 {
			t.Errorf("DeleteRule in op = %d", n)
		}
		return err
	})
	if version(v.org) != 7 {
		t.Fatalf("version %d, want 7", version(v.org))
	}
	v.snap(t, func(s *Snapshot) error {
		r, err := s.Rule(v.org, ids[0])
		if err != nil || r.Name != "renamed" {
			t.Errorf("Rule = %v, %v", r, err)
		}
		if _, err := s.Rule(v.org, ids[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted rule: %v", err)
		}
		if _, err := s.Rule(v.org2, ids[0]); !errors.Is(err, ErrNotFound) {
			t.Errorf("rule seen from another org: %v", err)
		}
		return nil
	})
	// Refusals do not bump.
	for name, fn := range map[string]func(tx *Tx) error{
		"delete missing":   func(tx *Tx) error { _, err := tx.DeleteRule(v.org, NewID(t0)); return err },
		"delete bad id":    func(tx *Tx) error { _, err := tx.DeleteRule(v.org, "x"); return err },
		"delete other org": func(tx *Tx) error { _, err := tx.DeleteRule(v.org2, ids[0]); return err },
	} {
		if err := v.st.Update(fn); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	for name, fn := range map[string]func(tx *Tx) error{
		"rule bad id":      func(tx *Tx) error { _, err := tx.PutRule(&engine.Rule{ID: "x", OrgID: v.org}); return err },
		"rule unknown org": func(tx *Tx) error { _, err := tx.PutRule(&engine.Rule{ID: NewID(t0), OrgID: NewID(t0)}); return err },
	} {
		if err := v.st.Update(fn); !isInvalid(err) {
			t.Errorf("%s: %v, want *InvalidError", name, err)
		}
	}
	if version(v.org) != 7 {
		t.Fatalf("refused writes moved the version to %d", version(v.org))
	}
	// A rule read inside an op sees the op's own write.
	mustUpdate(t, v.st, func(tx *Tx) error {
		r := *rules[3]
		r.Name = "in-op"
		if _, err := tx.PutRule(&r); err != nil {
			return err
		}
		got, err := tx.Rule(v.org, r.ID)
		if err != nil || got.Name != "in-op" {
			t.Errorf("tx.Rule(own write) = %v, %v", got, err)
		}
		return nil
	})
}

func signer(id, org, name string) *engine.SignerGroup {
	return &engine.SignerGroup{ID: id, OrgID: org, Name: name, Signers: []engine.SignerEntry{engine.CNEntry("Vendor " + name)}}
}

func TestSignerGroups(t *testing.T) {
	v := newInv(t)
	g1, g2, g3 := NewID(t0), NewID(t0), NewID(t0)
	put := func(g *engine.SignerGroup) (uint64, error) {
		var n uint64
		err := v.st.Update(func(tx *Tx) error { var err error; n, err = tx.PutSignerGroup(g); return err })
		return n, err
	}
	if n, err := put(signer(g1, v.org, "Vendors")); err != nil || n != 1 {
		t.Fatalf("PutSignerGroup = %d, %v", n, err)
	}
	if n, err := put(signer(g2, v.org, "Alpha")); err != nil || n != 2 {
		t.Fatalf("PutSignerGroup = %d, %v", n, err)
	}
	// Same name, other case and spacing: conflict; the version stays.
	for _, name := range []string{"vendors", " VENDORS ", "Vendors"} {
		if _, err := put(signer(g3, v.org, name)); !isConflict(err) {
			t.Errorf("duplicate name %q: %v, want *ConflictError", name, err)
		}
	}
	// Replacing a group under its own name (id in upper case too) is fine.
	if n, err := put(signer(strings.ToUpper(g1), v.org, "vendors ")); err != nil || n != 3 {
		t.Fatalf("re-put own name = %d, %v", n, err)
	}
	// The same name in another org is fine.
	if _, err := put(signer(g3, v.org2, "Vendors")); err != nil {
		t.Fatal(err)
	}
	if _, err := put(signer(NewID(t0), NewID(t0), "x")); !isInvalid(err) {
		t.Errorf("unknown org: %v", err)
	}
	if _, err := put(signer("x", v.org, "x")); !isInvalid(err) {
		t.Errorf("bad id: %v", err)
	}
	var rs *RuleSet
	v.snap(t, func(s *Snapshot) error { var err error; rs, err = s.RuleSet(v.org); return err })
	if rs.Version != 3 || len(rs.SignerGroups) != 2 || rs.SignerGroups[0].ID != g2 || rs.SignerGroups[1].Name != "vendors " {
		t.Fatalf("RuleSet = %+v", rs)
	}
	b, _ := json.Marshal(rs.SignerGroups[0].Signers)
	if string(b) != `["Vendor Alpha"]` {
		t.Errorf("signers stored as %s", b)
	}
	// Delete bumps; deleting again is ErrNotFound.
	var n uint64
	mustUpdate(t, v.st, func(tx *Tx) error { var err error; n, err = tx.DeleteSignerGroup(v.org, g2); return err })
	if n != 4 {
		t.Errorf("DeleteSignerGroup version %d", n)
	}
	if err := v.st.Update(func(tx *Tx) error { _, err := tx.DeleteSignerGroup(v.org, g2); return err }); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	// The freed name can be taken by another group.
	if _, err := put(signer(NewID(t0), v.org, "ALPHA")); err != nil {
		t.Errorf("reusing a deleted group's name: %v", err)
	}
}

// TestSignerGroupNameUniqueWithinOneOperation: the name check sees the
// operation's own writes. Regression test: PutSignerGroup used to iterate the
// badger transaction only, so two groups with the same name written in one
// operation were both accepted.
func TestSignerGroupNameUniqueWithinOneOperation(t *testing.T) {
	v := newInv(t)
	err := v.st.Update(func(tx *Tx) error {
		if _, err := tx.PutSignerGroup(signer(NewID(t0), v.org, "Vendors")); err != nil {
			return err
		}
		_, err := tx.PutSignerGroup(signer(NewID(t0), v.org, "vendors"))
		return err
	})
	if !isConflict(err) {
		var rs *RuleSet
		v.snap(t, func(s *Snapshot) error { var err error; rs, err = s.RuleSet(v.org); return err })
		t.Fatalf("two signer groups named Vendors/vendors written in one operation: Update = %v, stored groups %d",
			err, len(rs.SignerGroups))
	}
	// A rename and a create taking the freed name in one operation, and a
	// delete and a re-create: both fine.
	g1, g2 := NewID(t0), NewID(t0)
	mustUpdate(t, v.st, func(tx *Tx) error {
		_, err := tx.PutSignerGroup(signer(g1, v.org, "X"))
		return err
	})
	mustUpdate(t, v.st, func(tx *Tx) error {
		if _, err := tx.PutSignerGroup(signer(g1, v.org, "Y")); err != nil {
			return err
		}
		_, err := tx.PutSignerGroup(signer(g2, v.org, "x"))
		return err
	})
	mustUpdate(t, v.st, func(tx *Tx) error {
		if _, err := tx.DeleteSignerGroup(v.org, g2); err != nil {
			return err
		}
		_, err := tx.PutSignerGroup(signer(NewID(t0), v.org, "X"))
		return err
	})
	var rs *RuleSet
	v.snap(t, func(s *Snapshot) error { var err error; rs, err = s.RuleSet(v.org); return err })
	var names []string
	for _, g := range rs.SignerGroups {
		names = append(names, g.Name)
	}
	if !slices.Equal(names, []string{"X", "Y"}) {
		t.Fatalf("signer groups %v, want [X Y]", names)
	}
}

func TestPoliciesAndCommands(t *testing.T) {
	v := newInv(t)
	p1 := &policy.Policy{ID: NewID(t0), OrgID: v.org, Name: "p1", Active: true,
		Features: map[string]json.RawMessage{"pam": json.RawMessage(`{"enabled":true}`)}}
	p2 := &policy.Policy{ID: NewID(t0), PartnerID: v.partner, Name: "p2"}
	mustUpdate(t, v.st, func(tx *Tx) error { return errors.Join(tx.PutPolicy(p1), tx.PutPolicy(p2)) })
	var ps []policy.Policy
	v.snap(t, func(s *Snapshot) error { var err error; ps, err = s.Policies(); return err })
	if len(ps) != 2 {
		t.Fatalf("Policies = %v", ps)
	}
	for _, p := range ps {
		if p.ID == p2.ID && p.Active {
			t.Error("inactive policy came back active")
		}
		if p.ID == p1.ID && string(p.Features["pam"]) != `{"enabled":true}` {
			t.Errorf("features = %s", p.Features["pam"])
		}
	}
	mustUpdate(t, v.st, func(tx *Tx) error { return tx.DeletePolicy(p1.ID) })
	if err := v.st.Update(func(tx *Tx) error { return tx.DeletePolicy(p1.ID) }); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeletePolicy: %v", err)
	}
	if err := v.st.Update(func(tx *Tx) error { return tx.DeletePolicy("x") }); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeletePolicy(bad id): %v", err)
	}

	c := &Command{ID: NewID(t0), OrgID: v.org, DeviceID: NewID(t0), Type: "actuate_elevation", Status: "queued",
		ElevationRequestID: NewID(t0), Payload: json.RawMessage(`{"a":1}`), CreatedAt: t0}
	mustUpdate(t, v.st, func(tx *Tx) error { return tx.PutCommand(c) })
	v.snap(t, func(s *Snapshot) error {
		got, err := s.Command(v.org, c.ID)
		if err != nil {
			return err
		}
		if d := cmp.Diff(c, got); d != "" {
			t.Errorf("command (-want +got):\n%s", d)
		}
		if _, err := s.Command(v.org2, c.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("command seen from another org: %v", err)
		}
		if _, err := s.Command(v.org, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Command(bad id): %v", err)
		}
		return nil
	})
}

func TestErrorTypes(t *testing.T) {
	ce := &CorruptError{Key: "org/x", Err: errors.New("eof")}
	if !strings.Contains(ce.Error(), "org/x") || !strings.Contains(ce.Error(), "eof") || errors.Unwrap(ce).Error() != "eof" {
		t.Errorf("CorruptError: %s", ce)
	}
	ie := &InvalidError{What: "device", Problems: []string{"a", "b"}}
	if ie.Error() != "invalid device: a; b" {
		t.Errorf("InvalidError: %s", ie)
	}
	if (&ConflictError{Msg: "m"}).Error() != "m" {
		t.Error("ConflictError")
	}
}

// Organisation reads share decoded rows, but each read is the caller's own
// copy, and a changed row is read as changed.
func TestOrgReadsAreCopies(t *testing.T) {
	st := openAt(t, t.TempDir())
	on := true
	o := &Org{ID: NewID(time.Now()), Name: "acme", UacInterceptionEnabled: &on}
	mustUpdate(t, st, func(tx *Tx) error { return tx.PutOrg(o) })
	read := func() *Org {
		t.Helper()
		var got *Org
		if err := st.View(func(sn *Snapshot) error {
			var err error
			got, err = sn.Org(o.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	a := read()
	a.Name, *a.UacInterceptionEnabled = "changed", false
	if b := read(); b.Name != "acme" || !*b.UacInterceptionEnabled {
		t.Fatalf("a caller's changes reached another read: %+v", b)
	}
	off := false
	o.Name, o.UacInterceptionEnabled = "renamed", &off
	mustUpdate(t, st, func(tx *Tx) error { return tx.PutOrg(o) })
	if b := read(); b.Name != "renamed" || *b.UacInterceptionEnabled {
		t.Fatalf("the changed row was not read: %+v", b)
	}
}
