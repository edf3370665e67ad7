package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// The hierarchy of the resolution tests: partner P with organisations A
// and B; A has sites S1 and S2 and groups G1 and G2; partner Q has
// organisation C.
const (
	partnerP = "00000000-0000-4000-8000-0000000000a1"
	partnerQ = "00000000-0000-4000-8000-0000000000a2"
	orgA     = "00000000-0000-4000-8000-0000000000b1"
	orgB     = "00000000-0000-4000-8000-0000000000b2"
	orgC     = "00000000-0000-4000-8000-0000000000b3"
	siteS1   = "00000000-0000-4000-8000-0000000000c1"
	siteS2   = "00000000-0000-4000-8000-0000000000c2"
	groupG1  = "00000000-0000-4000-8000-0000000000d1"
	groupG2  = "00000000-0000-4000-8000-0000000000d2"
	devX     = "00000000-0000-4000-8000-0000000000e1"
	devY     = "00000000-0000-4000-8000-0000000000e2"
)

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// pol is a policy of org A setting uacInterceptionEnabled to on, with the
// assignments given.
func pol(name string, on bool, as ...Assignment) Policy {
	return Policy{ID: fmt.Sprintf("00000000-0000-4000-8000-%012x", len(name)*1000+int(name[0])), OrgID: orgA, Name: name, Active: true,
		Features:    map[string]json.RawMessage{FeaturePAM: json.RawMessage(fmt.Sprintf(`{"uacInterceptionEnabled":%t}`, on))},
		Assignments: as}
}

func at(l Level, target string, prio int, minute int) Assignment {
	return Assignment{ID: fmt.Sprintf("%s-%s-%d-%d", l, target[len(target)-2:], prio, minute), Level: l, Target: target,
		Priority: prio, CreatedAt: t0.Add(time.Duration(minute) * time.Minute)}
}

func with(p Policy, f func(*Policy)) Policy { f(&p); return p }

// deviceX is in org A (partner P), site S1, group G1, a Windows laptop.
func deviceX() *Device {
	return &Device{ID: devX, OrgID: orgA, PartnerID: partnerP, SiteID: siteS1, GroupIDs: []string{groupG1}, OS: "windows",
		Hostname: "lap-01", Attributes: map[string]any{"tags": []any{"laptop"}}}
}

func TestResolve(t *testing.T) {
	bare := &Device{ID: devY, OrgID: orgA, PartnerID: partnerP} // no site, no group
	two := deviceX()
	two.GroupIDs = []string{groupG2, groupG1}
	for _, c := range []struct {
		name     string
		policies []Policy
		dev      *Device
		winner   string // policy name; "" = none
		source   string
		on       bool // uacInterceptionEnabled, with the org's own flag unset
		skipped  []string
	}{
		{"nothing assigned", nil, deviceX(), "", SourceDefault, false, nil},
		{"device", []Policy{pol("dev", true, at(LevelDevice, devX, 0, 0))}, deviceX(), "dev", SourcePolicy, true, nil},
		{"group", []Policy{pol("grp", true, at(LevelDeviceGroup, groupG1, 0, 0))}, deviceX(), "grp", SourcePolicy, true, nil},
		{"site", []Policy{pol("site", true, at(LevelSite, siteS1, 0, 0))}, deviceX(), "site", SourcePolicy, true, nil},
		{"org", []Policy{pol("org", true, at(LevelOrganization, orgA, 0, 0))}, deviceX(), "org", SourcePolicy, true, nil},
		{"partner-wide policy at the partner", []Policy{with(pol("partner", true, at(LevelPartner, partnerP, 0, 0)),
			func(p *Policy) { p.OrgID, p.PartnerID = "", partnerP })}, deviceX(), "partner", SourcePolicy, true, nil},
		{"partner-wide policy at a site of the org", []Policy{with(pol("pw", true, at(LevelSite, siteS1, 0, 0)),
			func(p *Policy) { p.OrgID, p.PartnerID = "", partnerP })}, deviceX(), "pw", SourcePolicy, true, nil},
		{"an org policy at its partner reaches its devices", []Policy{pol("up", true, at(LevelPartner, partnerP, 0, 0))},
			deviceX(), "up", SourcePolicy, true, nil},
		{"the closest level wins over any priority", []Policy{
			pol("org", true, at(LevelOrganization, orgA, 0, 0)),
			pol("site", false, at(LevelSite, siteS1, 99999, 0)),
		}, deviceX(), "site", SourcePolicy, false, nil},
		{"device beats group beats site", []Policy{
			pol("grp", false, at(LevelDeviceGroup, groupG1, 0, 0)),
			pol("dev", true, at(LevelDevice, devX, 50, 0)),
			pol("site", false, at(LevelSite, siteS1, 0, 0)),
		}, deviceX(), "dev", SourcePolicy, true, nil},
		{"lower priority wins within a level", []Policy{
			pol("p20", false, at(LevelSite, siteS1, 20, 0)),
			pol("p10", true, at(LevelSite, siteS1, 10, 5)),
		}, deviceX(), "p10", SourcePolicy, true, nil},
		{"equal priority: the earlier assignment", []Policy{
			pol("late", false, at(LevelSite, siteS1, 10, 9)),
			pol("early", true, at(LevelSite, siteS1, 10, 1)),
		}, deviceX(), "early", SourcePolicy, true, nil},
		{"equal priority and time: the assignment id", []Policy{
			pol("bbb", false, with1(at(LevelSite, siteS1, 10, 1), func(a *Assignment) { a.ID = "b" })),
			pol("aaa", true, with1(at(LevelSite, siteS1, 10, 1), func(a *Assignment) { a.ID = "a" })),
		}, deviceX(), "aaa", SourcePolicy, true, nil},
		{"an inactive policy is passed over", []Policy{
			with(pol("off", false, at(LevelDevice, devX, 0, 0)), func(p *Policy) { p.Active = false }),
			pol("org", true, at(LevelOrganization, orgA, 0, 0)),
		}, deviceX(), "org", SourcePolicy, true, []string{"off: " + ReasonInactive}},
		{"a closer policy without the feature does not shadow", []Policy{
			with(pol("sw", false, at(LevelDevice, devX, 0, 0)), func(p *Policy) {
				p.Features = map[string]json.RawMessage{FeatureSoftwarePolicy: json.RawMessage(`{"mode":"audit"}`)}
			}),
			pol("org", true, at(LevelOrganization, orgA, 0, 0)),
		}, deviceX(), "org", SourcePolicy, true, []string{"sw: " + ReasonFeatureNotSet}},
		{"empty settings at the closest level: the org's fallback, not the next assignment", []Policy{
			with(pol("empty", false, at(LevelSite, siteS1, 0, 0)), func(p *Policy) {
				p.Features = map[string]json.RawMessage{FeaturePAM: json.RawMessage(`null`)}
			}),
			pol("org", true, at(LevelOrganization, orgA, 0, 0)),
		}, deviceX(), "empty", SourceOrgFallback, false, nil},
		{"a condition that holds", []Policy{
			pol("win", true, with1(at(LevelDevice, devX, 0, 0), func(a *Assignment) { a.Condition = `device.os == "windows" && "laptop" in device.tags` })),
		}, deviceX(), "win", SourcePolicy, true, nil},
		{"a condition that fails", []Policy{
			pol("mac", false, with1(at(LevelDevice, devX, 0, 0), func(a *Assignment) { a.Condition = `device.os == "macos"` })),
			pol("org", true, at(LevelOrganization, orgA, 0, 0)),
		}, deviceX(), "org", SourcePolicy, true, []string{"mac: " + ReasonConditionFalse}},
		{"a condition guarded with has() that fails", []Policy{
			pol("role", false, with1(at(LevelSite, siteS1, 0, 0), func(a *Assignment) { a.Condition = `has(device.role) && device.role == "kiosk"` })),
			pol("org", true, at(LevelOrganization, orgA, 0, 0)),
		}, deviceX(), "org", SourcePolicy, true, []string{"role: " + ReasonConditionFalse}},
		{"conditions see the site and groups", []Policy{
			pol("sg", true, with1(at(LevelOrganization, orgA, 0, 0), func(a *Assignment) {
				a.Condition = `device.site == "` + siteS1 + `" && "` + groupG1 + `" in device.groups && device.hostname.startsWith("lap")`
			})),
		}, deviceX(), "sg", SourcePolicy, true, nil},
		{"a device without site or group sees device, org and partner", []Policy{
			pol("site", false, at(LevelSite, siteS1, 0, 0)),
			pol("grp", false, at(LevelDeviceGroup, groupG1, 0, 0)),
			pol("org", true, at(LevelOrganization, orgA, 0, 0)),
		}, bare, "org", SourcePolicy, true, nil},
		{"two groups: the better priority of either", []Policy{
			pol("g1", true, at(LevelDeviceGroup, groupG1, 5, 0)),
			pol("g2", false, at(LevelDeviceGroup, groupG2, 7, 0)),
		}, two, "g1", SourcePolicy, true, nil},
		{"another org's policy never reaches the device, wherever assigned", []Policy{
			with(pol("theirs", false, at(LevelDevice, devX, 0, 0), at(LevelSite, siteS1, 0, 0), at(LevelOrganization, orgA, 0, 0),
				at(LevelPartner, partnerP, 0, 0)), func(p *Policy) { p.OrgID = orgB }),
			pol("org", true, at(LevelOrganization, orgA, 5, 0)),
		}, deviceX(), "org", SourcePolicy, true, nil},
		{"another partner's policy neither", []Policy{
			with(pol("q", false, at(LevelPartner, partnerP, 0, 0), at(LevelDevice, devX, 0, 0)),
				func(p *Policy) { p.OrgID, p.PartnerID = "", partnerQ }),
		}, deviceX(), "", SourceDefault, false, nil},
		{"targets match case-insensitively", []Policy{pol("dev", true, at(LevelDevice, strings.ToUpper(devX), 0, 0))},
			deviceX(), "dev", SourcePolicy, true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := NewResolver(c.policies)
			res := r.Resolve(c.dev, FeaturePAM, true)
			got := ""
			if res.Winner != nil {
				got = res.Winner.PolicyName
			}
			if got != c.winner || res.Source != c.source {
				t.Fatalf("winner %q (%s), want %q (%s)", got, res.Source, c.winner, c.source)
			}
			on, err := PamSettings(res, nil)
			if err != nil || on != c.on {
				t.Fatalf("uacInterceptionEnabled %v (%v), want %v", on, err, c.on)
			}
			var skipped []string
			for _, s := range res.Skipped {
				reason, _, _ := strings.Cut(s.Reason, ":")
				skipped = append(skipped, s.PolicyName+": "+reason)
			}
			if !reflect.DeepEqual(skipped, c.skipped) {
				t.Fatalf("skipped %q, want %q", skipped, c.skipped)
			}
			if quiet := r.Resolve(c.dev, FeaturePAM, false); quiet.Skipped != nil || quiet.Source != res.Source {
				t.Fatalf("without explain: %+v", quiet)
			}
			if res.Source == SourcePolicy && res.Policy == nil {
				t.Fatal("no policy with the winner")
			}
		})
	}
}

func with1(a Assignment, f func(*Assignment)) Assignment { f(&a); return a }

// The org's own flag is the fallback when nothing applies and when the
// winner's settings are empty; a malformed winning setting is off.
func TestPamSettingsFallback(t *testing.T) {
	on, off := true, false
	empty := with(pol("empty", false, at(LevelSite, siteS1, 0, 0)), func(p *Policy) {
		p.Features = map[string]json.RawMessage{FeaturePAM: json.RawMessage(`null`)}
	})
	for _, c := range []struct {
		name     string
		policies []Policy
		org      *bool
		want     bool
		err      bool
	}{
		{"nothing assigned, org on", nil, &on, true, false},
		{"nothing assigned, org off", nil, &off, false, false},
		{"nothing assigned, org unset", nil, nil, false, false},
		{"empty winner, org on", []Policy{empty}, &on, true, false},
		{"winner off beats org on", []Policy{pol("p", false, at(LevelSite, siteS1, 0, 0))}, &on, false, false},
		{"winner without the flag: off", []Policy{with(pol("p", false, at(LevelSite, siteS1, 0, 0)), func(p *Policy) {
			p.Features = map[string]json.RawMessage{FeaturePAM: json.RawMessage(`{}`)}
		})}, &on, false, false},
		{"malformed winner: off, not the org's", []Policy{with(pol("p", false, at(LevelSite, siteS1, 0, 0)), func(p *Policy) {
			p.Features = map[string]json.RawMessage{FeaturePAM: json.RawMessage(`{"uacInterceptionEnabled":"yes"}`)}
		})}, &on, false, true},
	} {
		got, err := PamSettings(NewResolver(c.policies).Resolve(deviceX(), FeaturePAM, false), c.org)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("%s: %v (%v), want %v", c.name, got, err, c.want)
		}
	}
}

// Resolution is per feature: the winner for pam need not be the winner for
// software policies.
func TestResolvePerFeature(t *testing.T) {
	sw := with(pol("sw", false, at(LevelDevice, devX, 0, 0)), func(p *Policy) {
		p.Features = map[string]json.RawMessage{FeatureSoftwarePolicy: json.RawMessage(`{"mode":"blocklist"}`)}
	})
	r := NewResolver([]Policy{sw, pol("org", true, at(LevelOrganization, orgA, 0, 0))})
	if res := r.Resolve(deviceX(), FeatureSoftwarePolicy, false); res.Winner == nil || res.Winner.PolicyName != "sw" {
		t.Fatalf("software: %+v", res)
	}
	if res := r.Resolve(deviceX(), FeaturePAM, false); res.Winner == nil || res.Winner.PolicyName != "org" {
		t.Fatalf("pam: %+v", res)
	}
}

func TestResolveAllAgrees(t *testing.T) {
	var ps []Policy
	var devs []Device
	for i := range 40 {
		p := pol(fmt.Sprintf("p%02d", i), i%2 == 0, at(LevelSite, siteS1, i%5, i), at(LevelDeviceGroup, groupG2, i%3, i))
		if i%4 == 0 {
			p.Assignments[0].Condition = fmt.Sprintf(`device.hostname == "h%d"`, i%7)
		}
		ps = append(ps, p)
	}
	for i := range 1000 {
		d := *deviceX()
		d.ID, d.Hostname = fmt.Sprintf("00000000-0000-4000-8000-%012d", i), fmt.Sprintf("h%d", i%7)
		if i%3 == 0 {
			d.GroupIDs = []string{groupG2}
		}
		devs = append(devs, d)
	}
	r := NewResolver(ps)
	all := r.ResolveAll(devs, FeaturePAM, 3)
	for i := range devs {
		if one := r.Resolve(&devs[i], FeaturePAM, false); !reflect.DeepEqual(one, all[i]) {
			t.Fatalf("device %d: %+v, alone %+v", i, all[i], one)
		}
	}
}

func TestCacheInvalidation(t *testing.T) {
	cond := pol("laptops", true, with1(at(LevelDevice, devX, 0, 0), func(a *Assignment) { a.Condition = `"laptop" in device.tags` }))
	org := pol("org", false, at(LevelOrganization, orgA, 0, 0))
	c := NewCache([]Policy{cond, org})
	name := func(res Resolution) string {
		if res.Winner == nil {
			return ""
		}
		return res.Winner.PolicyName
	}
	d := deviceX()
	if got := name(c.Resolve(d, FeaturePAM)); got != "laptops" {
		t.Fatalf("first: %q", got)
	}
	// The device changes: its tags no longer hold the condition.
	d.Attributes = map[string]any{"tags": []any{"desktop"}}
	if got := name(c.Resolve(d, FeaturePAM)); got != "org" {
		t.Fatalf("after the device changed: %q", got)
	}
	// So does its site: nothing of the cache is stale.
	d.Attributes = map[string]any{"tags": []any{"laptop"}}
	if got := name(c.Resolve(d, FeaturePAM)); got != "laptops" {
		t.Fatalf("changed back: %q", got)
	}
	// The policies change.
	c.SetPolicies([]Policy{org})
	if got := name(c.Resolve(d, FeaturePAM)); got != "org" {
		t.Fatalf("after the policies changed: %q", got)
	}
	// Precompute fills the cache with what Resolve gives.
	devs := []Device{*deviceX(), *deviceX()}
	devs[1].ID = devY
	c.SetPolicies([]Policy{cond, org})
	c.Precompute(devs, FeaturePAM)
	for i := range devs {
		if got, want := c.Resolve(&devs[i], FeaturePAM), c.Resolver().Resolve(&devs[i], FeaturePAM, false); !reflect.DeepEqual(got, want) {
			t.Fatalf("device %d: cached %+v, resolved %+v", i, got, want)
		}
	}
	c.Forget(devX)
	if got := name(c.Resolve(&devs[0], FeaturePAM)); got != "laptops" {
		t.Fatalf("after Forget: %q", got)
	}
}

// Concurrent resolutions while the policies change see one policy set or
// the other, never a mix, and never a stale answer after the change.
func TestCacheConcurrent(t *testing.T) {
	a := []Policy{pol("a", true, at(LevelOrganization, orgA, 0, 0))}
	b := []Policy{pol("b", false, at(LevelOrganization, orgA, 0, 0))}
	c := NewCache(a)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			d := deviceX()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res := c.Resolve(d, FeaturePAM)
				if res.Winner == nil || res.Winner.PolicyName != "a" && res.Winner.PolicyName != "b" {
					t.Error("no winner")
					return
				}
			}
		})
	}
	for i := range 200 {
		c.SetPolicies([][]Policy{a, b}[i%2])
	}
	close(stop)
	wg.Wait()
	if res := c.Resolve(deviceX(), FeaturePAM); res.Winner.PolicyName != "b" {
		t.Fatalf("after the last change: %q", res.Winner.PolicyName)
	}
}

// Rule-file policies name their organisation and targets by id or name;
// one given to every organisation still only reaches a device through
// its own places.
func TestResolveRuleFilePolicies(t *testing.T) {
	named := deviceX()
	named.OrgName, named.SiteName, named.GroupNames, named.PartnerName = "Acme", "HQ", []string{"Laptops"}, "MSP"
	file := func(org, name string, on bool, as ...Assignment) Policy {
		p := pol(name, on, as...)
		p.OrgID, p.FromFiles, p.FileOrg = "", true, org
		return p
	}
	for _, c := range []struct {
		name     string
		policies []Policy
		winner   string
	}{
		{"site by name", []Policy{file("acme", "hq", true, at(LevelSite, "hq", 0, 0))}, "hq"},
		{"group by name beats site by id", []Policy{
			file("acme", "site", false, at(LevelSite, siteS1, 0, 0)),
			file("acme", "laptops", true, at(LevelDeviceGroup, "LAPTOPS", 0, 0)),
		}, "laptops"},
		{"the device by hostname", []Policy{file("acme", "lap", true, at(LevelDevice, "lap-01", 0, 0))}, "lap"},
		{"org by name, file org by id", []Policy{file(orgA, "org", true, at(LevelOrganization, "acme", 0, 0))}, "org"},
		{"partner by name", []Policy{file("acme", "msp", true, at(LevelPartner, "msp", 0, 0))}, "msp"},
		{"a file policy of another organisation", []Policy{file("globex", "theirs", true, at(LevelSite, "hq", 0, 0))}, ""},
		{"every organisation, through the device's own site", []Policy{file("", "all", true, at(LevelSite, "hq", 0, 0))}, "all"},
		{"every organisation, but another org's name", []Policy{file("", "all", true, at(LevelOrganization, "globex", 0, 0))}, ""},
		{"an organisation named \"*\" is not every organisation", []Policy{file("*", "star", true, at(LevelSite, "hq", 0, 0))}, ""},
		{"files naming the org by id: an org named like that id is not it", []Policy{file(orgB, "by id", true, at(LevelSite, "hq", 0, 0))}, ""},
		{"a target written as an id is not matched by a name", []Policy{file("acme", "id target", true, at(LevelSite, siteS2, 0, 0))}, ""},
		{"by id and by name: one assignment each, in precedence order", []Policy{
			file("acme", "by-name", true, at(LevelSite, "HQ", 5, 0)),
			file("acme", "by-id", false, at(LevelSite, siteS1, 1, 0)),
		}, "by-id"},
	} {
		res := NewResolver(c.policies).Resolve(named, FeaturePAM, true)
		got := ""
		if res.Winner != nil {
			got = res.Winner.PolicyName
		}
		if got != c.winner {
			t.Errorf("%s: winner %q, want %q", c.name, got, c.winner)
		}
	}
	// A JSON policy can never be a rule-file one.
	var p Policy
	if err := json.Unmarshal([]byte(`{"name":"x","FromFiles":true,"fromFiles":true,"FileOrg":"acme"}`), &p); err != nil || p.FromFiles || p.FileOrg != "" {
		t.Fatalf("a rule-file policy from JSON: %+v %v", p, err)
	}
}

// A device's fingerprint changes with anything resolution reads, and only
// with that.
func TestFingerprint(t *testing.T) {
	base := func() *Device {
		d := deviceX()
		d.Attributes = map[string]any{"tags": []any{"a", "b"}, "role": "kiosk", "n": 1.5, "ok": true, "m": map[string]any{"x": "1", "y": nil}}
		return d
	}
	same := base()
	same.Attributes = map[string]any{"m": map[string]any{"y": nil, "x": "1"}, "ok": true, "n": 1.5, "role": "kiosk", "tags": []any{"a", "b"}}
	if fingerprint(base()) != fingerprint(same) {
		t.Fatal("the same device, attributes in another order, fingerprints differently")
	}
	for name, change := range map[string]func(*Device){
		"site":          func(d *Device) { d.SiteID = siteS2 },
		"group":         func(d *Device) { d.GroupIDs = []string{groupG2} },
		"no group":      func(d *Device) { d.GroupIDs = nil },
		"os":            func(d *Device) { d.OS = "linux" },
		"site name":     func(d *Device) { d.SiteName = "HQ" },
		"tag order":     func(d *Device) { d.Attributes["tags"] = []any{"b", "a"} },
		"number":        func(d *Device) { d.Attributes["n"] = 2.5 },
		"string number": func(d *Device) { d.Attributes["n"] = "1.5" },
		"nested":        func(d *Device) { d.Attributes["m"] = map[string]any{"x": "2", "y": nil} },
		"bool":          func(d *Device) { d.Attributes["ok"] = false },
		"no role":       func(d *Device) { delete(d.Attributes, "role") },
		"a Go type":     func(d *Device) { d.Attributes["role"] = struct{ K string }{"kiosk"} },
	} {
		d := base()
		change(d)
		if fingerprint(d) == fingerprint(base()) {
			t.Errorf("%s: the fingerprint did not change", name)
		}
	}
}

// Only rule-file policies match by name: a device named after another
// device's id does not take that device's stored assignment.
func TestStoredTargetsMatchIdsOnly(t *testing.T) {
	impostor := &Device{ID: devY, OrgID: orgA, PartnerID: partnerP, Hostname: devX, SiteName: siteS1, OrgName: orgA}
	stored := pol("x only", true, at(LevelDevice, devX, 0, 0), at(LevelSite, siteS1, 0, 0))
	file := pol("file", true, at(LevelDevice, devX, 0, 0))
	file.OrgID, file.FromFiles, file.FileOrg = "", true, orgA
	byName := pol("by name", true, at(LevelDevice, "lap-01", 0, 0))
	byName.OrgID, byName.FromFiles, byName.FileOrg = "", true, orgA
	r := NewResolver([]Policy{stored, file}) // a file policy present: names are looked up
	res := r.Resolve(impostor, FeaturePAM, true)
	if res.Winner != nil {
		t.Fatalf("winner %+v: a hostname matched a target written as an id", res.Winner)
	}
	impostor.Hostname = "lap-01"
	if res := NewResolver([]Policy{stored, file, byName}).Resolve(impostor, FeaturePAM, true); res.Winner == nil || res.Winner.PolicyName != "by name" {
		t.Fatalf("by hostname: %+v", res.Winner)
	}
	for _, s := range res.Skipped {
		if s.PolicyName == "x only" {
			t.Fatalf("the stored assignment was considered: %+v", s)
		}
	}
	if res := NewResolver([]Policy{stored}).Resolve(impostor, FeaturePAM, false); res.Winner != nil {
		t.Fatalf("a stored policy matched a name: %+v", res.Winner)
	}
}

// An assignment whose condition cannot be evaluated, or does not compile,
// makes the resolution an error rather than letting a farther (perhaps
// laxer) policy win.
func TestResolveFailsClosedOnUndecidableConditions(t *testing.T) {
	for name, cond := range map[string]string{
		"an absent attribute": `device.role == "kiosk"`,
		"does not compile":    `device.os ==`,
		"a type mismatch":     `device.hostname > 3`,
	} {
		r := NewResolver([]Policy{
			pol("closer", false, with1(at(LevelSite, siteS1, 0, 0), func(a *Assignment) { a.Condition = cond })),
			pol("org", true, at(LevelOrganization, orgA, 0, 0)),
		})
		res := r.Resolve(deviceX(), FeaturePAM, true)
		if res.Source != SourceError || res.Winner == nil || res.Winner.PolicyName != "closer" || res.Error == "" || res.Settings != nil {
			t.Errorf("%s: %+v", name, res)
		}
		if on, err := PamSettings(res, nil); err == nil || on {
			t.Errorf("%s: pam settings %v %v", name, on, err)
		}
	}
}

// Names compare as strings.EqualFold does, beyond ASCII too.
func TestNamesFoldLikeEqualFold(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"HQ", "hq"}, {"ΟΔΟΣ", "οδος"}, {"ΟΔΟΣ", "οδοσ"}, {"Straße", "STRASSE"}, {"K", "\u212a"}, {"ſ", "S"},
	} {
		if got, want := lower(c.a) == lower(c.b), strings.EqualFold(c.a, c.b); got != want {
			t.Errorf("%q, %q: same key %v, EqualFold %v", c.a, c.b, got, want)
		}
	}
	if s := "019ecab9-4500-7000-8000-000000000001"; lower(s) != s {
		t.Fatal("an id in store form changed")
	}
	p := pol("greek site", true, at(LevelSite, "ΟΔΟΣ", 0, 0))
	p.OrgID, p.FromFiles, p.FileOrg = "", true, "acme"
	d := deviceX()
	d.OrgName, d.SiteName = "acme", "οδος"
	if res := NewResolver([]Policy{p}).Resolve(d, FeaturePAM, false); res.Winner == nil {
		t.Fatal("a site name equal under EqualFold did not match")
	}
}

// A condition that reads nothing of the device and always fails would make
// every device it is assigned to unresolvable: it is refused where it is
// written.
func TestConstantFailingConditionRefused(t *testing.T) {
	for _, c := range []struct {
		src string
		bad bool
	}{
		{`1 / 0 == 1`, true},
		{`[1][3] == 1`, true},
		{`false`, false},
		{`1 > 2`, false},
		{`device.os == "windows"`, false},
		{`has(device.tags) && 1 / 0 == 1`, false}, // reads the device: decided per device
	} {
		_, err := CompileCondition(c.src)
		if (err != nil) != c.bad {
			t.Errorf("%q: %v", c.src, err)
		}
	}
}
