package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/elevate-pam/elevate/dsl"
	"github.com/elevate-pam/elevate/policy"
)

// resolveRepo is a repository of three orgs. acme has policies at every
// level; globex only org settings (uac_interception = true) and a software
// policy; initech one partner-level policy and no settings.
var resolveRepo = map[string]string{
	"acme/org.pam": "org \"acme\"\n",
	"acme/policies.pam": `policy "org-baseline" {
  feature pam {
    uac_interception = true
  }
  feature software {
    mode = audit
    executable "anything" {
      path_glob = ` + "`**`" + `
    }
  }
  assign org "acme" priority 5
}

policy "london-off" {
  feature pam {
    uac_interception = false
  }
  assign site "london" priority 1
}

policy "developers-on" {
  feature pam {
    uac_interception = true
  }
  assign group "developers" priority 20
}

policy "linux-developers-off" {
  feature pam {
    uac_interception = false
  }
  assign group "developers" priority 10 when ` + "`device.os == \"linux\"`" + `
}

policy "retired-developers-rule" {
  enabled false
  feature pam {
    uac_interception = false
  }
  assign group "developers" priority 0
}

policy "developers-block" {
  feature software {
    mode     = blocklist
    priority = 10
    executable "PsExec" {
      path_glob = ` + "`**\\PsExec*.exe`" + `
    }
    executable "AnyDesk" {
      signer = "philandro Software GmbH"
    }
  }
  assign group "developers" priority 10
}

policy "laptop-1-override" {
  feature pam {
    uac_interception = false
  }
  assign device "laptop-1" priority 50
}

policy "kiosk-empty" {
  feature pam {}
  assign group "kiosks"
}

policy "tagged-laptops" {
  feature pam {
    uac_interception = true
  }
  assign site "london" when ` + "`has(device.tags) && \"laptop\" in device.tags`" + `
}
`,
	"globex/org.pam":      "org \"globex\"\n",
	"globex/settings.pam": "settings {\n  uac_interception = true\n}\n",
	"globex/policies.pam": `policy "globex-audit" {
  feature software {
    mode = audit
  }
  assign org "globex"
}
`,
	"initech/org.pam": "org \"initech\"\n",
	"initech/policies.pam": `policy "msp-baseline" {
  feature pam {
    uac_interception = true
  }
  assign partner "Northwind"
}
`,
}

type resolveJSON struct {
	Device   map[string]any `json:"device"`
	Features map[string]struct {
		Settings   json.RawMessage   `json:"settings"`
		From       string            `json:"from"`
		Resolution policy.Resolution `json:"resolution"`
	} `json:"features"`
}

// runResolveDevice writes device to a file and runs elevate resolve on it.
func runResolveDevice(t *testing.T, dir, device string, args ...string) (int, string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "device.json")
	if err := os.WriteFile(p, []byte(device), 0o644); err != nil {
		t.Fatal(err)
	}
	return runCmd(append([]string{"resolve", "--rules", dir, "--device", p}, args...)...)
}

func resolveJSONOf(t *testing.T, dir, device string, args ...string) resolveJSON {
	t.Helper()
	code, out, errs := runResolveDevice(t, dir, device, append([]string{"--format", "json"}, args...)...)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if errs != "" {
		t.Errorf("stderr: %s", errs)
	}
	var r resolveJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return r
}

func appliedTo(name string, lv policy.Level, target string, prio int) *policy.Applied {
	return &policy.Applied{PolicyName: name, Level: lv, TargetID: target, Priority: prio}
}

func skippedAt(name string, lv policy.Level, target string, prio int, reason string) policy.Skipped {
	return policy.Skipped{Applied: *appliedTo(name, lv, target, prio), Reason: reason}
}

// featureWant is one feature's expected answer.
type featureWant struct {
	settings string // effective settings, compact JSON
	from     string
	source   string
	winner   *policy.Applied
	skipped  []policy.Skipped
}

func TestResolveWinners(t *testing.T) {
	dir := writeRepo(t, resolveRepo)
	pamOff, pamOn := `{"uacInterceptionEnabled":false}`, `{"uacInterceptionEnabled":true}`
	const (
		dev, grp, site, org, partner = policy.LevelDevice, policy.LevelDeviceGroup, policy.LevelSite, policy.LevelOrganization, policy.LevelPartner
	)
	for _, c := range []struct {
		name, device string
		pam, sw      featureWant
	}{
		{"device level wins over every priority",
			`{"id": "laptop-1", "org": "acme", "site": "london", "groups": ["developers"], "os": "windows"}`,
			featureWant{pamOff, "policy", "policy", appliedTo("laptop-1-override", dev, "laptop-1", 50), nil},
			featureWant{`{"mode":"blocklist","priority":10,"executable":[{"name":"PsExec","pathGlob":"**\\PsExec*.exe"},{"name":"AnyDesk","signer":"philandro Software GmbH"}]}`,
				"policy", "policy", appliedTo("developers-block", grp, "developers", 10), []policy.Skipped{
					skippedAt("laptop-1-override", dev, "laptop-1", 50, policy.ReasonFeatureNotSet),
					skippedAt("retired-developers-rule", grp, "developers", 0, policy.ReasonInactive),
					skippedAt("linux-developers-off", grp, "developers", 10, policy.ReasonFeatureNotSet),
				}}},
		{"group beats site; inactive, false condition and a policy without pam are passed over",
			`{"id": "pc-2", "org": "acme", "site": "london", "groups": ["developers"], "os": "windows"}`,
			featureWant{pamOn, "policy", "policy", appliedTo("developers-on", grp, "developers", 20), []policy.Skipped{
				skippedAt("retired-developers-rule", grp, "developers", 0, policy.ReasonInactive),
				// Equal priority: the assignment declared first comes first.
				skippedAt("linux-developers-off", grp, "developers", 10, policy.ReasonConditionFalse),
				skippedAt("developers-block", grp, "developers", 10, policy.ReasonFeatureNotSet),
			}},
			featureWant{`{"mode":"blocklist","priority":10,"executable":[{"name":"PsExec","pathGlob":"**\\PsExec*.exe"},{"name":"AnyDesk","signer":"philandro Software GmbH"}]}`,
				"policy", "policy", appliedTo("developers-block", grp, "developers", 10), []policy.Skipped{
					skippedAt("retired-developers-rule", grp, "developers", 0, policy.ReasonInactive),
					skippedAt("linux-developers-off", grp, "developers", 10, policy.ReasonFeatureNotSet),
				}}},
		{"a true condition applies; org and group compared ignoring case",
			`{"id": "build-9", "org": "ACME", "groups": ["Developers"], "os": "linux"}`,
			featureWant{pamOff, "policy", "policy", appliedTo("linux-developers-off", grp, "developers", 10), []policy.Skipped{
				skippedAt("retired-developers-rule", grp, "developers", 0, policy.ReasonInactive),
			}},
			featureWant{`{"mode":"blocklist","priority":10,"executable":[{"name":"PsExec","pathGlob":"**\\PsExec*.exe"},{"name":"AnyDesk","signer":"philandro Software GmbH"}]}`,
				"policy", "policy", appliedTo("developers-block", grp, "developers", 10), []policy.Skipped{
					skippedAt("retired-developers-rule", grp, "developers", 0, policy.ReasonInactive),
					skippedAt("linux-developers-off", grp, "developers", 10, policy.ReasonFeatureNotSet),
				}}},
		{"no site, no group: the org's policy",
			`{"id": "new-pc", "org": "acme"}`,
			featureWant{pamOn, "policy", "policy", appliedTo("org-baseline", org, "acme", 5), nil},
			featureWant{`{"mode":"audit","priority":0,"executable":[{"name":"anything","pathGlob":"**"}]}`, "policy", "policy", appliedTo("org-baseline", org, "acme", 5), nil}},
		{"an attribute condition holds at the site",
			`{"id": "lt-5", "org": "acme", "site": "London", "attributes": {"tags": ["laptop"]}}`,
			featureWant{pamOn, "policy", "policy", appliedTo("tagged-laptops", site, "london", 0), nil},
			featureWant{`{"mode":"audit","priority":0,"executable":[{"name":"anything","pathGlob":"**"}]}`, "policy", "policy", appliedTo("org-baseline", org, "acme", 5), []policy.Skipped{
				skippedAt("tagged-laptops", site, "london", 0, policy.ReasonFeatureNotSet),
				skippedAt("london-off", site, "london", 1, policy.ReasonFeatureNotSet),
			}}},
		{"an attribute condition is false without the attribute",
			`{"id": "ws-6", "org": "acme", "site": "london"}`,
			featureWant{pamOff, "policy", "policy", appliedTo("london-off", site, "london", 1), []policy.Skipped{
				skippedAt("tagged-laptops", site, "london", 0, policy.ReasonConditionFalse),
			}},
			featureWant{`{"mode":"audit","priority":0,"executable":[{"name":"anything","pathGlob":"**"}]}`, "policy", "policy", appliedTo("org-baseline", org, "acme", 5), []policy.Skipped{
				skippedAt("tagged-laptops", site, "london", 0, policy.ReasonFeatureNotSet),
				skippedAt("london-off", site, "london", 1, policy.ReasonFeatureNotSet),
			}}},
		// A rule file's empty `feature pam {}` is the settings {}: the
		// winner supplies them and the absent flag reads as off. It does not
		// fall back to the org (only settings that are null do, which a rule
		// file cannot write).
		{"empty pam settings win and read as off",
			`{"id": "kiosk-3", "org": "acme", "site": "london", "groups": ["kiosks"]}`,
			featureWant{pamOff, "policy", "policy", appliedTo("kiosk-empty", grp, "kiosks", 0), nil},
			featureWant{`{"mode":"audit","priority":0,"executable":[{"name":"anything","pathGlob":"**"}]}`, "policy", "policy", appliedTo("org-baseline", org, "acme", 5), []policy.Skipped{
				skippedAt("kiosk-empty", grp, "kiosks", 0, policy.ReasonFeatureNotSet),
				skippedAt("tagged-laptops", site, "london", 0, policy.ReasonFeatureNotSet), // checked before the condition
				skippedAt("london-off", site, "london", 1, policy.ReasonFeatureNotSet),
			}}},
		{"no pam policy: the org's settings",
			`{"id": "g-1", "org": "globex"}`,
			featureWant{pamOn, "org_settings", "default", nil, []policy.Skipped{
				skippedAt("globex-audit", org, "globex", 0, policy.ReasonFeatureNotSet),
			}},
			featureWant{`{"mode":"audit","priority":0,"executable":[]}`, "policy", "policy", appliedTo("globex-audit", org, "globex", 0), nil}},
		{"partner level, ignoring case",
			`{"id": "i-1", "org": "initech", "partner": "northwind"}`,
			featureWant{pamOn, "policy", "policy", appliedTo("msp-baseline", partner, "Northwind", 0), nil},
			featureWant{"null", "default", "default", nil, []policy.Skipped{
				skippedAt("msp-baseline", partner, "Northwind", 0, policy.ReasonFeatureNotSet),
			}}},
		{"nothing applies and no org settings: off",
			`{"id": "i-2", "org": "initech"}`,
			featureWant{pamOff, "default", "default", nil, nil},
			featureWant{"null", "default", "default", nil, nil}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := resolveJSONOf(t, dir, c.device, "--explain")
			if len(r.Features) != 2 {
				t.Fatalf("features: %v", r.Features)
			}
			for feature, w := range map[string]featureWant{"pam": c.pam, "software_policy": c.sw} {
				got := r.Features[feature]
				var settings, wantSettings any
				if err := json.Unmarshal(got.Settings, &settings); err != nil {
					t.Fatalf("%s: settings %s: %v", feature, got.Settings, err)
				}
				if err := json.Unmarshal([]byte(w.settings), &wantSettings); err != nil {
					t.Fatalf("test bug: %s: %v", w.settings, err)
				}
				if d := cmp.Diff(wantSettings, settings); d != "" {
					t.Errorf("%s: settings (-want +got):\n%s", feature, d)
				}
				if got.From != w.from || got.Resolution.Source != w.source || got.Resolution.Feature != feature {
					t.Errorf("%s: from %s source %s feature %s; want %s, %s", feature, got.From, got.Resolution.Source, got.Resolution.Feature, w.from, w.source)
				}
				// Rule-file policies without an id get one derived from their
				// org's and their own names.
				var org struct{ Org string }
				if err := json.Unmarshal([]byte(c.device), &org); err != nil {
					t.Fatal(err)
				}
				derived := func(a *policy.Applied) {
					if a != nil {
						if want := dsl.DerivedID("policy", strings.ToLower(org.Org), a.PolicyName); a.PolicyID != want {
							t.Errorf("%s: policy %q has id %q, want %q", feature, a.PolicyName, a.PolicyID, want)
						}
						a.PolicyID = ""
					}
				}
				derived(got.Resolution.Winner)
				for i := range got.Resolution.Skipped {
					derived(&got.Resolution.Skipped[i].Applied)
				}
				if d := cmp.Diff(w.winner, got.Resolution.Winner); d != "" {
					t.Errorf("%s: winner (-want +got):\n%s", feature, d)
				}
				if d := cmp.Diff(w.skipped, got.Resolution.Skipped); d != "" {
					t.Errorf("%s: skipped (-want +got):\n%s", feature, d)
				}
			}
		})
	}
}

func TestResolveWithoutExplainOmitsSkipped(t *testing.T) {
	dir := writeRepo(t, resolveRepo)
	r := resolveJSONOf(t, dir, `{"id": "pc-2", "org": "acme", "site": "london", "groups": ["developers"], "os": "windows"}`, "--feature", "pam")
	if len(r.Features) != 1 {
		t.Fatalf("features: %v", r.Features)
	}
	res := r.Features["pam"].Resolution
	if res.Winner == nil || res.Winner.PolicyName != "developers-on" || res.Skipped != nil {
		t.Errorf("resolution: %+v", res)
	}
	want := map[string]any{"id": "pc-2", "org": "acme", "site": "london", "groups": []any{"developers"}, "os": "windows"}
	if d := cmp.Diff(want, r.Device); d != "" {
		t.Errorf("device (-want +got):\n%s", d)
	}
	// The software alias of the feature.
	r = resolveJSONOf(t, dir, `{"org": "acme"}`, "--feature", "software")
	if _, ok := r.Features["software_policy"]; !ok || len(r.Features) != 1 {
		t.Errorf("features: %v", r.Features)
	}
}

func TestResolveText(t *testing.T) {
	dir := writeRepo(t, resolveRepo)
	code, out, errs := runResolveDevice(t, dir, `{"id": "pc-2", "org": "acme", "site": "london", "groups": ["developers"], "os": "windows"}`, "--explain")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d: %s", code, errs)
	}
	at := filepath.Join(dir, "acme", "policies.pam")
	want := `device "pc-2": org "acme", site "london", group "developers"

pam: uacInterceptionEnabled = true
  from policy "developers-on" (assign group "developers" priority 20) at ` + at + `:21:8
  passed over, closest first:
    policy "retired-developers-rule" (assign group "developers" priority 0): policy inactive
    policy "linux-developers-off" (assign group "developers" priority 10 when "device.os == \"linux\""): condition false
    policy "developers-block" (assign group "developers" priority 10): feature not set in this policy

software_policy: blocklist, 2 entries, priority 10
  from policy "developers-block" (assign group "developers" priority 10) at ` + at + `:43:8
  passed over, closest first:
    policy "retired-developers-rule" (assign group "developers" priority 0): policy inactive
    policy "linux-developers-off" (assign group "developers" priority 10 when "device.os == \"linux\""): feature not set in this policy
`
	if d := cmp.Diff(want, out); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}

	code, out, errs = runResolveDevice(t, dir, `{"id": "g-1", "org": "globex"}`, "--feature", "pam")
	want = `device "g-1": org "globex"

pam: uacInterceptionEnabled = true
  from the org settings (uac_interception = true at ` + filepath.Join(dir, "globex", "settings.pam") + `:1:1): no policy with a pam feature applies
`
	if code != exitOK || errs != "" || out != want {
		t.Errorf("exit %d, stderr %q, output:\n%s\nwant:\n%s", code, errs, out, want)
	}

	code, out, _ = runResolveDevice(t, dir, `{"org": "initech"}`)
	want = `device (no id): org "initech"

pam: uacInterceptionEnabled = false
  by default (off): no policy with a pam feature applies and the org settings do not set uac_interception

software_policy: none (UAC prompts go straight to the rules)
  no policy with a software_policy feature applies
`
	if code != exitOK || out != want {
		t.Errorf("exit %d, output:\n%s\nwant:\n%s", code, out, want)
	}
}

func TestResolveSingleTenant(t *testing.T) {
	// The shipped example has no org declaration; its org-level
	// assignments name "acme".
	code, out, errs := runResolveDevice(t, "../../rules",
		`{"id": "kiosk-7", "org": "acme", "site": "5E1F0C2A-7B3D-4E8F-9A10-2B3C4D5E6F70"}`, "--format", "json")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r resolveJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if w := r.Features["pam"].Resolution.Winner; w == nil || w.PolicyName != "kiosks-no-uac-capture" || w.Level != policy.LevelSite {
		t.Errorf("pam winner: %+v", w)
	}
	if w := r.Features["software_policy"].Resolution.Winner; w == nil || w.PolicyName != "block-remote-admin-tools" || w.Level != policy.LevelOrganization {
		t.Errorf("software winner: %+v", w)
	}
	// An org no org-level assignment names resolves, with a warning.
	code, _, errs = runResolveDevice(t, "../../rules", `{"id": "x", "org": "acm"}`)
	if code != exitOK || errs != "elevate resolve: warning: no policy is assigned to org \"acm\": org-level assignments name \"acme\"\n" {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestResolveErrors(t *testing.T) {
	dir := writeRepo(t, resolveRepo)
	bad := writeRepo(t, map[string]string{
		"org.pam": "org \"acme\"\n",
		"p.pam":   "policy \"p\" {\n  feature pam {\n    uac_interception = maybe\n  }\n  assign org \"acme\"\n}\n",
	})
	for _, c := range []struct {
		name, dir, device string
		args              []string
		code              int
		stderr            string // the whole of it, or with "…" at the end its start
	}{
		{"unknown org", dir, `{"id": "x", "org": "umbrella"}`, nil, exitUsage,
			`elevate resolve: DEVICE: org "umbrella" is not declared by the rule files; they declare "acme", "globex", "initech"` + "\n"},
		{"no org", dir, `{"id": "x"}`, nil, exitUsage,
			`elevate resolve: DEVICE: org: is required: the org as the rule files name it, e.g. "org": "acme"` + "\n"},
		{"unknown key", dir, `{"id": "x", "org": "acme", "groupz": ["a"]}`, nil, exitUsage,
			`elevate resolve: DEVICE: unknown key "groupz" (did you mean "groups"?); a device has id, org, partner, site, groups, os, hostname, attributes (device facts conditions read go in "attributes")` + "\n"},
		{"unknown key, nothing close", dir, `{"org": "acme", "role": "server"}`, nil, exitUsage,
			`elevate resolve: DEVICE: unknown key "role"; a device has id, org, partner, site, groups, os, hostname, attributes (device facts conditions read go in "attributes")` + "\n"},
		{"wrong type", dir, `{"org": "acme", "groups": "developers"}`, nil, exitUsage,
			`elevate resolve: DEVICE: groups: expected []string, got JSON string` + "\n"},
		{"attribute shadowing a field", dir, `{"org": "acme", "attributes": {"os": "linux"}}`, nil, exitUsage,
			`elevate resolve: DEVICE: attributes.os: set it with the top-level "os" key, not as an attribute` + "\n"},
		{"not an object", dir, `["acme"]`, nil, exitUsage,
			`elevate resolve: DEVICE: the device must be a JSON object` + "\n"},
		{"bad feature", dir, `{"org": "acme"}`, []string{"--feature", "jit"}, exitUsage,
			`elevate resolve: --feature: unknown feature "jit"; use pam, software_policy or all` + "\n"},
		{"bad format", dir, `{"org": "acme"}`, []string{"--format", "yaml"}, exitUsage,
			"elevate resolve: --format must be text or json\n"},
		{"compile error", bad, `{"org": "acme"}`, nil, exitCompile,
			filepath.Join(bad, "p.pam") + ":3:24: error: `uac_interception` takes true or false, found maybe\n…"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "device.json")
			if err := os.WriteFile(p, []byte(c.device), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCmd(append([]string{"resolve", "--rules", c.dir, "--device", p}, c.args...)...)
			want := strings.ReplaceAll(c.stderr, "DEVICE", p)
			ok := errs == want
			if prefix, cut := strings.CutSuffix(want, "…"); cut {
				ok = strings.HasPrefix(errs, prefix)
			}
			if code != c.code || out != "" || !ok {
				t.Errorf("exit %d (want %d), stdout %q\nstderr:\n%s\nwant:\n%s", code, c.code, out, errs, want)
			}
		})
	}
	// The compile error names its file and position and the exit code
	// tells a broken repository from a bad device.
	code, _, errs := runResolveDevice(t, bad, `{"org": "acme"}`)
	if code != exitCompile || !strings.Contains(errs, "does not compile: 1 error(s)") {
		t.Errorf("exit %d: %s", code, errs)
	}
	// Usage: both flags are required.
	if code, _, _ := runCmd("resolve", "--rules", dir); code != exitUsage {
		t.Errorf("without --device: exit %d", code)
	}
}

func TestResolveStdin(t *testing.T) {
	dir := writeRepo(t, resolveRepo)
	var out, errb strings.Builder
	code := run([]string{"resolve", "--rules", dir, "--device", "-", "--feature", "pam", "--format", "json"},
		strings.NewReader(`{"id": "laptop-1", "org": "acme"}`), &out, &errb)
	if code != exitOK || !strings.Contains(out.String(), `"policyName": "laptop-1-override"`) {
		t.Errorf("exit %d: %s%s", code, out.String(), errb.String())
	}
}

// An assignment whose condition cannot be evaluated (it reads an attribute
// the device lacks) is reported as such: no settings, the reason, and what
// a server does about it.
func TestResolveUndecidableCondition(t *testing.T) {
	dir := writeRepo(t, map[string]string{"p.pam": `org "acme"

policy "kiosks-block" {
  feature software {
    mode = blocklist
  }
  assign site "hq" when ` + "`\"kiosk\" in device.tags`" + `
}

policy "org-allows" {
  feature software {
    mode = allowlist
  }
  assign org "acme"
}
`})
	code, js, _ := runResolveDevice(t, dir, `{"id": "pc-1", "org": "acme", "site": "hq"}`, "--feature", "software_policy", "--format", "json")
	if code != exitUnresolved {
		t.Fatalf("exit %d, want %d", code, exitUnresolved)
	}
	var r resolveJSON
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	got := r.Features["software_policy"]
	if got.From != "error" || got.Resolution.Source != policy.SourceError || got.Resolution.Winner == nil ||
		got.Resolution.Winner.PolicyName != "kiosks-block" || !strings.Contains(got.Resolution.Error, "tags") || string(got.Settings) != "null" {
		t.Fatalf("%+v", got)
	}
	code, out, _ := runResolveDevice(t, dir, `{"id": "pc-1", "org": "acme", "site": "hq"}`, "--feature", "software_policy")
	if code != exitUnresolved || !strings.Contains(out, `software_policy: cannot be resolved: policy "kiosks-block"`) || !strings.Contains(out, "holds this device's UAC requests") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// With the attribute the condition decides, and the org's allowlist wins.
	r = resolveJSONOf(t, dir, `{"id": "pc-1", "org": "acme", "site": "hq", "attributes": {"tags": ["office"]}}`, "--feature", "software_policy")
	if w := r.Features["software_policy"].Resolution.Winner; w == nil || w.PolicyName != "org-allows" {
		t.Fatalf("with tags: %+v", w)
	}
}
