package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/dsl"
	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
)

const resolveUsage = `Usage: elevate resolve --rules DIR --device FILE.json [--feature pam|software_policy|all]
         [--explain] [--format text|json]

Resolves the configuration policies of a policy repository (.pam files) for
one device and prints the effective settings of each feature: for pam
whether the agent captures UAC prompts, for software_policy the winning
policy's mode and entries; and where each came from (the winning policy,
its assignment's level, target and priority, or the org's settings, or the
feature's default). For each feature the closest level wins (device, group,
site, org, partner), then the lower assignment priority, then the
assignment declared first (files in path order, top to bottom). A
disabled policy, one without the feature, and an assignment whose condition
is false are passed over; --explain lists them with the reason, closest
first. An assignment whose condition cannot be evaluated (it reads an
attribute the device lacks, say) makes the feature unresolved: a server
then holds the device's UAC requests for approval.

The device file (FILE.json, or - for stdin) is one JSON object; targets in
rule files are names, so give the names (or ids) the files use. They are
compared ignoring case. Unknown keys are refused.

  {"id":         "laptop-042",          the device (assign device "…")
   "org":        "acme",                required: the org as the rule files
                                        name it (org "acme"; in a repository
                                        without org declarations, the name
                                        its assign org "…" lines use)
   "partner":    "northwind",           assign partner "…" (optional)
   "site":       "london",              assign site "…" (optional)
   "groups":     ["developers"],        assign group "…" (optional)
   "os":         "windows",             read by conditions as device.os
   "hostname":   "LAPTOP-042",          device.hostname
   "attributes": {"tags": ["laptop"]}}  further device.<name> for conditions

Exit status: 0 resolved, 1 internal error, 2 usage or invalid device,
3 the repository does not compile (file:line:col on stderr), 4 a feature
cannot be resolved (its answer says which assignment and why).

Flags:
`

// deviceFile is the device JSON elevate resolve reads.
type deviceFile struct {
	ID         string         `json:"id,omitempty"`
	Org        string         `json:"org"`
	Partner    string         `json:"partner,omitempty"`
	Site       string         `json:"site,omitempty"`
	Groups     []string       `json:"groups,omitempty"`
	OS         string         `json:"os,omitempty"`
	Hostname   string         `json:"hostname,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// deviceKeys are the keys of a device file, in the order the usage gives.
var deviceKeys = []string{"id", "org", "partner", "site", "groups", "os", "hostname", "attributes"}

// featureResult is one feature's answer in the JSON output.
type featureResult struct {
	// Settings are the effective settings: for pam {"uacInterceptionEnabled"},
	// for software_policy {"mode", "priority", "executable"}, or null when
	// no software policy applies.
	Settings any `json:"settings"`
	// From says where Settings come from: "policy" (the winner's
	// settings), "org_settings" (the org's settings block) or "default"
	// (the feature's default: pam off, no software policy).
	From       string            `json:"from"`
	Resolution policy.Resolution `json:"resolution"`

	// For text output.
	at     dsl.Origin // the winning policy's declaration
	orgSet *bool      // the org's uac_interception, if set
}

type resolveOutput struct {
	Device   deviceFile                `json:"device"`
	Features map[string]*featureResult `json:"features"`
}

// softwareSettings are the effective settings of a software_policy winner.
type softwareSettings struct {
	Mode       string                       `json:"mode"`
	Priority   int                          `json:"priority"`
	Executable []engine.SoftwarePolicyEntry `json:"executable"`
}

// Settings sources in the output.
const (
	fromPolicy      = "policy"
	fromOrgSettings = "org_settings"
	fromDefault     = "default"
	fromError       = "error" // an assignment's condition cannot be decided
)

func runResolve(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("resolve", resolveUsage, stderr)
	rulesDir := fs.String("rules", "", "the policy repository (.pam files) (required)")
	devicePath := fs.String("device", "", "the device, a JSON file, or - for stdin (required)")
	featureArg := fs.String("feature", "all", "pam, software_policy (or software) or all")
	explain := fs.Bool("explain", false, "also list every assignment passed over, closest first, with the reason")
	format := fs.String("format", "text", "text or json")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "elevate resolve: "+format+"\n", a...)
		return code
	}
	if fs.NArg() != 0 || *rulesDir == "" || *devicePath == "" {
		fs.Usage()
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		return fail(exitUsage, "--format must be text or json")
	}
	var features []string
	switch *featureArg {
	case "all":
		for _, f := range policy.Features() {
			features = append(features, f.Name)
		}
	default:
		f, ok := policy.LookupFeature(*featureArg)
		if !ok {
			return fail(exitUsage, "--feature: unknown feature %q; use pam, software_policy or all", *featureArg)
		}
		features = []string{f.Name}
	}

	if st, err := os.Stat(*rulesDir); err != nil || !st.IsDir() {
		return fail(exitUsage, "--rules: %s is not a directory", *rulesDir)
	}
	var data []byte
	var err error
	if *devicePath == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(*devicePath)
	}
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	dev, err := parseDevice(data)
	if err != nil {
		return fail(exitUsage, "%s: %v", deviceName(*devicePath), err)
	}

	repo, err := dsl.LoadDir(*rulesDir)
	if err != nil {
		return fail(exitInternal, "%v", err)
	}
	// Compile like elevate check (rules too: a repository is used whole),
	// without lint and without running tests.
	rep := dsl.Check(repo, dsl.CheckOptions{NoLint: true, Run: func(string) bool { return false }})
	if n := rep.Diags.Errors(); n > 0 {
		dsl.Render(stderr, rep.Diags, repo.Sources())
		return fail(exitCompile, "%s does not compile: %d error(s) (run elevate check %s)", *rulesDir, n, *rulesDir)
	}
	org, err := pickRepoOrg(repo, dev.Org)
	if err != nil {
		return fail(exitUsage, "%s: %v", deviceName(*devicePath), err)
	}
	if org.Name != "" {
		dev.Org = org.Name // the declared spelling
	}
	if w := orgTargetWarning(org, dev.Org); w != "" {
		fmt.Fprintf(stderr, "elevate resolve: warning: %s\n", w)
	}

	out := resolveOutput{Device: dev, Features: map[string]*featureResult{}}
	r := policy.NewResolver(dsl.FilePolicies(org, nil))
	pd := dev.policyDevice()
	at := map[string]dsl.Origin{}
	for i, p := range org.Policies {
		at[p.Name] = org.PolicyAt[i]
	}
	for _, feature := range features {
		res := r.Resolve(&pd, feature, *explain)
		fr, err := effective(res, org.UACInterception)
		if err != nil {
			return fail(exitInternal, "%v", err)
		}
		if res.Winner != nil {
			fr.at = at[res.Winner.PolicyName]
		}
		out.Features[feature] = fr
	}

	code := exitOK
	for _, fr := range out.Features {
		if fr.From == fromError {
			code = exitUnresolved
		}
	}
	if *format == "json" {
		if err := printJSON(stdout, out); err != nil {
			return fail(exitInternal, "%v", err)
		}
		return code
	}
	printResolve(stdout, out, features, org, *explain)
	return code
}

// exitUnresolved: a feature of the device cannot be resolved.
const exitUnresolved = 4

func deviceName(path string) string {
	if path == "-" {
		return "stdin"
	}
	return path
}

// parseDevice reads a device file strictly: unknown keys, wrong types and
// attributes that would shadow the device's own fields are refused.
func parseDevice(data []byte) (deviceFile, error) {
	var dev deviceFile
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return dev, errors.New("the device must be a JSON object")
		}
		return dev, describeJSONError(err)
	}
	if keys == nil {
		return dev, errors.New("the device must be a JSON object")
	}
	var unknown []string
	for k := range keys {
		if !slices.Contains(deviceKeys, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		k := unknown[0]
		msg := fmt.Sprintf("unknown key %q", k)
		if s := syntax.Suggest(k, deviceKeys); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return dev, fmt.Errorf("%s; a device has %s (device facts conditions read go in \"attributes\")", msg, strings.Join(deviceKeys, ", "))
	}
	if err := strictUnmarshal(data, &dev); err != nil {
		return dev, err
	}
	if strings.TrimSpace(dev.Org) == "" {
		return dev, errors.New(`org: is required: the org as the rule files name it, e.g. "org": "acme"`)
	}
	for i, g := range dev.Groups {
		if strings.TrimSpace(g) == "" {
			return dev, fmt.Errorf("groups[%d]: empty group name", i)
		}
	}
	var shadowed []string
	for k := range dev.Attributes {
		if slices.Contains(deviceKeys[:len(deviceKeys)-1], k) {
			shadowed = append(shadowed, k)
		}
	}
	if len(shadowed) > 0 {
		slices.Sort(shadowed)
		return dev, fmt.Errorf("attributes.%s: set it with the top-level %q key, not as an attribute", shadowed[0], shadowed[0])
	}
	return dev, nil
}

// policyDevice is the device as resolution sees it. Rule files name their
// targets by id or name, and the device file uses the same words, so each
// place is given as both.
func (d deviceFile) policyDevice() policy.Device {
	return policy.Device{ID: d.ID, OrgID: d.Org, PartnerID: d.Partner, SiteID: d.Site, GroupIDs: d.Groups,
		OS: d.OS, Hostname: d.Hostname, Attributes: d.Attributes,
		Name: d.ID, OrgName: d.Org, PartnerName: d.Partner, SiteName: d.Site, GroupNames: d.Groups}
}

// pickRepoOrg finds the org the device belongs to. A repository without org
// declarations is one org: the device's org is then only the name its
// org-level assignments use.
func pickRepoOrg(repo *dsl.Repository, name string) (*dsl.Org, error) {
	if len(repo.Orgs) == 1 && repo.Orgs[0].Name == "" {
		return repo.Orgs[0], nil
	}
	var found *dsl.Org
	var known []string
	for _, o := range repo.Orgs {
		if o.Name == "" {
			continue
		}
		known = append(known, strconv.Quote(o.Name))
		if o.Name == name || found == nil && strings.EqualFold(o.Name, name) {
			found = o
		}
	}
	if found != nil {
		return found, nil
	}
	if len(known) == 0 {
		return nil, fmt.Errorf("the repository declares no org")
	}
	return nil, fmt.Errorf("org %q is not declared by the rule files; they declare %s", name, strings.Join(known, ", "))
}

// orgTargetWarning points out a device org that no org-level assignment
// names, when some do: usually a misspelling, which would silently leave
// the org-wide policies out.
func orgTargetWarning(org *dsl.Org, name string) string {
	var targets []string
	for _, p := range org.Policies {
		for _, a := range p.Assignments {
			if a.Level != policy.LevelOrganization {
				continue
			}
			if strings.EqualFold(a.Target, name) {
				return ""
			}
			if q := strconv.Quote(a.Target); !slices.Contains(targets, q) {
				targets = append(targets, q)
			}
		}
	}
	if len(targets) == 0 {
		return ""
	}
	return fmt.Sprintf("no policy is assigned to org %q: org-level assignments name %s", name, strings.Join(targets, ", "))
}

// effective turns a resolution into the feature's effective settings.
func effective(res policy.Resolution, orgFlag *bool) (*featureResult, error) {
	fr := &featureResult{Resolution: res, From: fromDefault, orgSet: orgFlag}
	switch {
	case res.Source == policy.SourceError:
		// No settings can be given: a server holds the device's UAC
		// requests for approval and tells its agent capture is off.
		fr.From = fromError
	case res.Feature == policy.FeaturePAM:
		if res.Source == policy.SourcePolicy {
			fr.From = fromPolicy
		}
		on, err := policy.PamSettings(res, orgFlag)
		if err != nil {
			return nil, err
		}
		fr.Settings = map[string]any{"uacInterceptionEnabled": on}
		if res.Source != policy.SourcePolicy && orgFlag != nil {
			fr.From = fromOrgSettings
		}
	case res.Feature == policy.FeatureSoftwarePolicy:
		if res.Source == policy.SourcePolicy {
			fr.From = fromPolicy
			sp, _, err := policy.SoftwarePolicyFrom(res.Policy)
			if err != nil {
				return nil, fmt.Errorf("policy %q: %w", res.Policy.Name, err)
			}
			fr.Settings = softwareSettings{Mode: string(sp.Mode), Priority: sp.Priority, Executable: sp.Executable}
		}
	}
	// The tie-break dates of rule-file assignments are not the policies'.
	if w := fr.Resolution.Winner; w != nil {
		w.CreatedAt = time.Time{}
	}
	skipped := slices.Clone(fr.Resolution.Skipped)
	for i := range skipped {
		skipped[i].CreatedAt = time.Time{}
	}
	fr.Resolution.Skipped = skipped
	return fr, nil
}

// printResolve writes the text form.
func printResolve(w io.Writer, out resolveOutput, features []string, org *dsl.Org, explain bool) {
	d := out.Device
	var where []string
	add := func(k, v string) {
		if v != "" {
			where = append(where, k+" "+strconv.Quote(v))
		}
	}
	add("org", d.Org)
	add("partner", d.Partner)
	add("site", d.Site)
	for _, g := range d.Groups {
		add("group", g)
	}
	name := "device"
	if d.ID != "" {
		name += " " + strconv.Quote(d.ID)
	} else {
		name += " (no id)"
	}
	fmt.Fprintf(w, "%s: %s\n", name, strings.Join(where, ", "))

	conds := map[string]string{} // policy, level, target → condition
	for _, p := range org.Policies {
		for _, a := range p.Assignments {
			conds[p.Name+"\x00"+string(a.Level)+"\x00"+strings.ToLower(a.Target)] = a.Condition
		}
	}
	assignment := func(a policy.Applied) string {
		s := fmt.Sprintf("assign %s %q priority %d", a.Level.DSLName(), a.TargetID, a.Priority)
		if c := conds[a.PolicyName+"\x00"+string(a.Level)+"\x00"+strings.ToLower(a.TargetID)]; c != "" {
			s += " when " + strconv.Quote(c)
		}
		return s
	}
	for _, f := range features {
		fr := out.Features[f]
		res := fr.Resolution
		fmt.Fprintln(w)
		switch {
		case fr.From == fromError:
			fmt.Fprintf(w, "%s: cannot be resolved: policy %q (%s) at %s: %s\n", f, res.Winner.PolicyName, assignment(*res.Winner), fr.at, res.Error)
			if f == policy.FeaturePAM {
				fmt.Fprintln(w, "  a server tells this device's agent capture is off")
			} else {
				fmt.Fprintln(w, "  a server holds this device's UAC requests for approval (pending)")
			}
		case f == policy.FeaturePAM:
			on := fr.Settings.(map[string]any)["uacInterceptionEnabled"].(bool)
			fmt.Fprintf(w, "pam: uacInterceptionEnabled = %t\n", on)
		case f == policy.FeatureSoftwarePolicy:
			if s, ok := fr.Settings.(softwareSettings); ok {
				n := len(s.Executable)
				fmt.Fprintf(w, "software_policy: %s, %d %s, priority %d\n", s.Mode, n, plural(n, "entry", "entries"), s.Priority)
			} else {
				fmt.Fprintln(w, "software_policy: none (UAC prompts go straight to the rules)")
			}
		default:
			fmt.Fprintf(w, "%s:\n", f)
		}
		var settingsAt string
		if org.ConfigAt != nil {
			settingsAt = " at " + org.ConfigAt.String()
		}
		switch {
		case fr.From == fromError:
		case res.Source == policy.SourcePolicy:
			fmt.Fprintf(w, "  from policy %q (%s) at %s\n", res.Winner.PolicyName, assignment(*res.Winner), fr.at)
		case res.Source == policy.SourceOrgFallback && fr.From == fromOrgSettings:
			fmt.Fprintf(w, "  from the org settings (uac_interception = %t%s): policy %q (%s) at %s applies but its %s settings are empty\n",
				*fr.orgSet, settingsAt, res.Winner.PolicyName, assignment(*res.Winner), fr.at, f)
		case res.Source == policy.SourceOrgFallback:
			fmt.Fprintf(w, "  by default: policy %q (%s) at %s applies but its %s settings are empty\n",
				res.Winner.PolicyName, assignment(*res.Winner), fr.at, f)
		case fr.From == fromOrgSettings:
			fmt.Fprintf(w, "  from the org settings (uac_interception = %t%s): no policy with a %s feature applies\n", *fr.orgSet, settingsAt, f)
		case f == policy.FeaturePAM:
			fmt.Fprintln(w, "  by default (off): no policy with a pam feature applies and the org settings do not set uac_interception")
		default:
			fmt.Fprintf(w, "  no policy with a %s feature applies\n", f)
		}
		if !explain {
			continue
		}
		if len(res.Skipped) == 0 {
			fmt.Fprintln(w, "  passed over: none")
			continue
		}
		fmt.Fprintln(w, "  passed over, closest first:")
		for _, s := range res.Skipped {
			fmt.Fprintf(w, "    policy %q (%s): %s\n", s.PolicyName, assignment(s.Applied), s.Reason)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
