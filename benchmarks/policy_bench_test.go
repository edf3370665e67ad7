package benchmarks

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/policy"
)

// ---------------------------------------------------------------------------
// Configuration-policy resolution: 100,000 devices, 10 assignments each
// ---------------------------------------------------------------------------

// The policy fixture is one partner with 10 organisations; each has 10
// sites and 50 device groups and 10,000 devices, each device on one site
// and in one group. Every device is the target of exactly ten assignments
// that reach it, closest first:
//
//	device  3: an inactive policy; a policy without the pam feature; a
//	           policy whose condition holds for every other device
//	group   2: priorities 10 and 20, the first with a condition on os
//	site    2: priorities 10 and 20
//	org     2: one conditional on a tag, one plain
//	partner 1: a partner-wide policy
//
// so a resolution passes over two to five assignments before one applies
// and evaluates up to three conditions.
const (
	polOrgs          = 10
	polSitesPerOrg   = 10
	polGroupsPerOrg  = 50
	polDevicesPerOrg = 10_000
)

type policyFixture struct {
	policies []policy.Policy
	devices  []policy.Device
}

var policyFixtures memo[int, *policyFixture]

func fid(kind byte, n int) string { return fmt.Sprintf("00000000-0000-4000-8%03x-%012x", kind, n) }

func getPolicyFixture() *policyFixture {
	return policyFixtures.get(0, buildPolicyFixture)
}

func buildPolicyFixture() *policyFixture {
	f := &policyFixture{}
	partner := fid(0xa, 0)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pam := func(on bool) map[string]json.RawMessage {
		return map[string]json.RawMessage{policy.FeaturePAM: json.RawMessage(fmt.Sprintf(`{"uacInterceptionEnabled":%t}`, on))}
	}
	n := 0
	// add appends a policy and returns its index in f.policies.
	add := func(org, partnerID, name string, active bool, features map[string]json.RawMessage, as ...policy.Assignment) int {
		n++
		for i := range as {
			as[i].ID = fid(0xf, n*16+i)
			as[i].CreatedAt = t0.Add(time.Duration(n) * time.Second)
		}
		f.policies = append(f.policies, policy.Policy{ID: fid(0xe, n), OrgID: org, PartnerID: partnerID, Name: name, Active: active,
			Features: features, Assignments: as})
		return len(f.policies) - 1
	}
	asg := func(l policy.Level, target string, prio int, cond string) policy.Assignment {
		return policy.Assignment{Level: l, Target: target, Priority: prio, Condition: cond}
	}
	add("", partner, "partner baseline", true, pam(false), asg(policy.LevelPartner, partner, 0, ""))
	dev := 0
	for o := range polOrgs {
		org := fid(0xb, o)
		add(org, "", fmt.Sprintf("org %d kiosks", o), true, pam(true), asg(policy.LevelOrganization, org, 10, `"kiosk" in device.tags`))
		add(org, "", fmt.Sprintf("org %d", o), true, pam(false), asg(policy.LevelOrganization, org, 20, ""))
		for s := range polSitesPerOrg {
			site := fid(0xc, o*polSitesPerOrg+s)
			add(org, "", fmt.Sprintf("site %d/%d", o, s), true, pam(s%2 == 0), asg(policy.LevelSite, site, 10, ""), asg(policy.LevelSite, site, 20, ""))
		}
		for g := range polGroupsPerOrg {
			group := fid(0xd, o*polGroupsPerOrg+g)
			add(org, "", fmt.Sprintf("group %d/%d macs", o, g), true, pam(true), asg(policy.LevelDeviceGroup, group, 10, `device.os == "macos"`))
			add(org, "", fmt.Sprintf("group %d/%d", o, g), true, pam(false), asg(policy.LevelDeviceGroup, group, 20, ""))
		}
		// Device-level policies, each assigned to many devices.
		const perPolicy = 500
		var inactive, software, conditional int
		for d := range polDevicesPerOrg {
			id := fid(0x1, dev)
			if d%perPolicy == 0 {
				inactive = add(org, "", fmt.Sprintf("retired %d/%d", o, d), false, pam(true))
				software = add(org, "", fmt.Sprintf("software %d/%d", o, d), true,
					map[string]json.RawMessage{policy.FeatureSoftwarePolicy: json.RawMessage(`{"mode":"audit"}`)})
				conditional = add(org, "", fmt.Sprintf("even hosts %d/%d", o, d), true, pam(true))
			}
			for k, pi := range []int{inactive, software, conditional} {
				a := asg(policy.LevelDevice, id, 0, "")
				if pi == conditional {
					a.Condition = `device.hostname.endsWith("0") || device.hostname.endsWith("2")`
				}
				a.ID, a.CreatedAt = fid(0xf, 1<<30+dev*4+k), t0 // in this order at equal priority and time
				f.policies[pi].Assignments = append(f.policies[pi].Assignments, a)
			}
			os := "windows"
			if d%3 == 0 {
				os = "macos"
			}
			f.devices = append(f.devices, policy.Device{ID: id, OrgID: org, PartnerID: partner,
				SiteID: fid(0xc, o*polSitesPerOrg+d%polSitesPerOrg), GroupIDs: []string{fid(0xd, o*polGroupsPerOrg+d%polGroupsPerOrg)},
				OS: os, Hostname: fmt.Sprintf("host-%06d", dev), Attributes: map[string]any{"tags": []any{"managed"}}})
			dev++
		}
	}
	return f
}

// BenchmarkPolicyResolve resolves the pam feature for all 100,000 devices
// from freshly built policies: what a server precomputes on every policy
// change. cores=1 is the same work on one core.
func BenchmarkPolicyResolve(b *testing.B) {
	f := getPolicyFixture()
	for _, v := range []struct {
		name    string
		workers int
	}{{"cores=1", 1}, {"cores=all", 0}} {
		b.Run(v.name, func(b *testing.B) {
			var out []policy.Resolution
			for b.Loop() {
				r := policy.NewResolver(f.policies)
				out = r.ResolveAll(f.devices, policy.FeaturePAM, v.workers)
			}
			checkPolicyResolutions(b, f, out)
			b.ReportMetric(float64(len(f.devices))*float64(b.N)/b.Elapsed().Seconds(), "devices/s")
		})
	}
}

// BenchmarkPolicyPrecompute is the cache's precompute: resolve every
// device and fill the per-device cache.
func BenchmarkPolicyPrecompute(b *testing.B) {
	f := getPolicyFixture()
	for b.Loop() {
		c := policy.NewCache(f.policies)
		c.Precompute(f.devices, policy.FeaturePAM)
	}
	b.ReportMetric(float64(len(f.devices))*float64(b.N)/b.Elapsed().Seconds(), "devices/s")
}

// BenchmarkPolicyResolveOne is one device's resolution, with and without
// the explanation, and answered from the cache.
func BenchmarkPolicyResolveOne(b *testing.B) {
	f := getPolicyFixture()
	r := policy.NewResolver(f.policies)
	c := policy.NewCache(f.policies)
	for _, v := range []struct {
		name string
		fn   func(d *policy.Device) policy.Resolution
	}{
		{"resolve", func(d *policy.Device) policy.Resolution { return r.Resolve(d, policy.FeaturePAM, false) }},
		{"explain", func(d *policy.Device) policy.Resolution { return r.Resolve(d, policy.FeaturePAM, true) }},
		{"cached", func(d *policy.Device) policy.Resolution { return c.Resolve(d, policy.FeaturePAM) }},
	} {
		b.Run(v.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				v.fn(&f.devices[i%1000])
				i++
			}
		})
	}
}

// checkPolicyResolutions pins what the fixture resolves to, so a faster
// resolver cannot be a wrong one.
func checkPolicyResolutions(tb testing.TB, f *policyFixture, out []policy.Resolution) {
	tb.Helper()
	if len(out) != len(f.devices) {
		tb.Fatalf("%d resolutions for %d devices", len(out), len(f.devices))
	}
	counts := map[string]int{}
	for i, res := range out {
		d := &f.devices[i]
		var want string
		switch h := d.Hostname; {
		case h[len(h)-1] == '0' || h[len(h)-1] == '2':
			want = "even hosts"
		case d.OS == "macos":
			want = "group macs"
		default:
			want = "group"
		}
		got := ""
		if res.Winner != nil {
			got = res.Winner.PolicyName
		}
		if !matchesKind(got, want) {
			tb.Fatalf("device %d (%s, %s): winner %q, want a %q policy", i, d.Hostname, d.OS, got, want)
		}
		counts[want]++
	}
	if counts["even hosts"] == 0 || counts["group macs"] == 0 || counts["group"] == 0 {
		tb.Fatalf("the fixture does not exercise every level: %v", counts)
	}
}

func matchesKind(name, kind string) bool {
	switch kind {
	case "even hosts":
		return len(name) > 10 && name[:10] == "even hosts"
	case "group macs":
		return len(name) > 6 && name[:6] == "group " && name[len(name)-4:] == "macs"
	default:
		return len(name) > 6 && name[:6] == "group " && name[len(name)-4:] != "macs"
	}
}

// TestPolicyFixture checks the fixture's shape and answers without timing.
func TestPolicyFixture(t *testing.T) {
	f := getPolicyFixture()
	if len(f.devices) != polOrgs*polDevicesPerOrg {
		t.Fatalf("%d devices", len(f.devices))
	}
	r := policy.NewResolver(f.policies)
	out := r.ResolveAll(f.devices[:2000], policy.FeaturePAM, 0)
	checkPolicyResolutions(t, &policyFixture{devices: f.devices[:2000]}, out)
	// Every device is reached by exactly ten assignments.
	res := r.Resolve(&f.devices[1], policy.FeaturePAM, true) // host-000001: windows, odd
	if len(res.Skipped) != 4 {                               // retired, software, even hosts, group macs
		t.Fatalf("skipped %d before the winner: %+v", len(res.Skipped), res.Skipped)
	}
}

// BenchmarkPolicyIndex is the part of BenchmarkPolicyResolve that indexes
// the policies (policy.NewResolver), on one core.
func BenchmarkPolicyIndex(b *testing.B) {
	f := getPolicyFixture()
	for b.Loop() {
		policy.NewResolver(f.policies)
	}
}
