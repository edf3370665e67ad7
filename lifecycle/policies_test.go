package lifecycle

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/store"
)

func (f *fixture) putPolicy(t *testing.T, p policy.Policy) {
	t.Helper()
	if p.ID == "" {
		p.ID = store.NewID(t0)
	}
	if err := policy.ValidatePolicy(&p); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Update(func(tx *store.Tx) error { return tx.PutPolicy(&p) }); err != nil {
		t.Fatal(err)
	}
}

// Stored configuration policies reach ingest: the software policy the
// device resolves to decides before the rules, and a change of policies is
// seen by the next request.
func TestIngestUsesResolvedSoftwarePolicy(t *testing.T) {
	f := newFixture(t, rule("approve-signed", 10, engine.VerdictAutoApprove, signer("Bad Vendor")))
	path := `C:\x\bad.exe`
	if r := f.uac(t, path, "Bad Vendor").Request; r.Status != store.StatusAutoApproved {
		t.Fatalf("no policy yet: %+v", r.Status)
	}
	block := policy.Policy{ID: store.NewID(t0), OrgID: f.org, Name: "Blocked tools", Active: true,
		Features: map[string]json.RawMessage{policy.FeatureSoftwarePolicy: json.RawMessage(
			`{"mode":"blocklist","executable":[{"name":"bad","pathGlob":"C:\\x\\bad.exe"}]}`)},
		Assignments: []policy.Assignment{{ID: store.NewID(t0), Level: policy.LevelSite, Target: f.site, CreatedAt: t0}}}
	f.putPolicy(t, block)
	r := f.uac(t, path, "Bad Vendor").Request
	if r.Status != store.StatusDenied || r.MatchedPolicyName != "Blocked tools" || r.DecisionSource() != "software_policy" {
		t.Fatalf("with the site's blocklist: %+v", r)
	}
	// A closer assignment with empty settings (the API refuses to write
	// them; older data may hold them): no software policy at all, not the
	// site's (pam-semantics §5: the winner only).
	empty := policy.Policy{ID: store.NewID(t0), OrgID: f.org, Name: "none here", Active: true,
		Features:    map[string]json.RawMessage{policy.FeatureSoftwarePolicy: json.RawMessage(`null`)},
		Assignments: []policy.Assignment{{ID: store.NewID(t0), Level: policy.LevelDevice, Target: f.device, CreatedAt: t0}}}
	if err := f.st.Update(func(tx *store.Tx) error { return tx.PutPolicy(&empty) }); err != nil {
		t.Fatal(err)
	}
	if r := f.uac(t, path, "Bad Vendor").Request; r.Status != store.StatusAutoApproved {
		t.Fatalf("device-level empty settings: %s by %s", r.Status, r.DecisionSource())
	}
	// The blocklist deactivated and the empty one removed: the rules decide.
	block.Active = false
	f.putPolicy(t, block)
	if r := f.uac(t, path, "Bad Vendor").Request; r.Status != store.StatusAutoApproved {
		t.Fatalf("inactive blocklist: %s", r.Status)
	}
	// Settings the bridge cannot take fail safe: pending with the reason.
	bad := block
	bad.Active = true
	bad.Features = map[string]json.RawMessage{policy.FeatureSoftwarePolicy: json.RawMessage(`{"mode":"sometimes"}`)}
	if err := f.st.Update(func(tx *store.Tx) error { return tx.PutPolicy(&bad) }); err != nil { // bypassing validation
		t.Fatal(err)
	}
	if err := f.st.Update(func(tx *store.Tx) error {
		ps, err := tx.Read().Policies()
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Name == "none here" {
				return tx.DeletePolicy(p.ID)
			}
		}
		return errors.New("not found")
	}); err != nil {
		t.Fatal(err)
	}
	if r := f.uac(t, path, "Bad Vendor").Request; r.Status != store.StatusPending || r.Decision.Error == "" {
		t.Fatalf("malformed winning settings: %s (%q)", r.Status, r.Decision.Error)
	}
}

func TestPamSettingsOfADevice(t *testing.T) {
	f := newFixture(t)
	on, r, err := f.svc.PamSettings(f.device)
	if err != nil || on || r.Source != policy.SourceDefault {
		t.Fatalf("nothing set: %v %+v %v", on, r, err)
	}
	// The organisation's own flag is the fallback.
	yes := true
	if err := f.st.Update(func(tx *store.Tx) error {
		return tx.PutOrg(&store.Org{ID: f.org, Name: "acme", ActuatorEnabled: true, UacInterceptionEnabled: &yes})
	}); err != nil {
		t.Fatal(err)
	}
	if on, _, err := f.svc.PamSettings(f.device); err != nil || !on {
		t.Fatalf("org flag on: %v %v", on, err)
	}
	// A site policy turning capture off wins over the org's flag; a device
	// condition that does not hold is passed over, as the explanation says.
	f.putPolicy(t, policy.Policy{OrgID: f.org, Name: "site off", Active: true,
		Features:    map[string]json.RawMessage{policy.FeaturePAM: json.RawMessage(`{"uacInterceptionEnabled":false}`)},
		Assignments: []policy.Assignment{{ID: store.NewID(t0), Level: policy.LevelSite, Target: f.site, CreatedAt: t0}}})
	f.putPolicy(t, policy.Policy{OrgID: f.org, Name: "kiosks on", Active: true,
		Features: map[string]json.RawMessage{policy.FeaturePAM: json.RawMessage(`{"uacInterceptionEnabled":true}`)},
		Assignments: []policy.Assignment{{ID: store.NewID(t0), Level: policy.LevelDevice, Target: f.device, CreatedAt: t0.Add(time.Second),
			Condition: `has(device.role) && device.role == "kiosk"`}}})
	on, r, err = f.svc.PamSettings(f.device)
	if err != nil || on || r.Winner == nil || r.Winner.PolicyName != "site off" {
		t.Fatalf("site policy: %v %+v %v", on, r, err)
	}
	ex, err := f.svc.ResolvePolicy(f.device, policy.FeaturePAM, true)
	if err != nil || len(ex.Skipped) != 1 || ex.Skipped[0].PolicyName != "kiosks on" || ex.Skipped[0].Reason != policy.ReasonConditionFalse {
		t.Fatalf("explain: %+v %v", ex, err)
	}
	// The device becomes a kiosk: the cache sees the change.
	if err := f.st.Update(func(tx *store.Tx) error {
		return tx.PutDevice(&store.Device{ID: f.device, OrgID: f.org, SiteID: f.site, Hostname: "WIN-ACCT-04",
			Attributes: map[string]any{"role": "kiosk"}})
	}); err != nil {
		t.Fatal(err)
	}
	if on, r, err := f.svc.PamSettings(f.device); err != nil || !on || r.Winner.PolicyName != "kiosks on" {
		t.Fatalf("kiosk: %v %+v %v", on, r, err)
	}
	if _, _, err := f.svc.PamSettings(store.NewID(t0)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	if _, err := f.svc.ResolvePolicy(f.device, "remote_access", false); err == nil {
		t.Fatal("an unknown feature resolved")
	}
}

// Rule-file policies resolve beside stored ones, their targets by name;
// a reload of the files is seen at once, and the files' own uac setting is
// the fallback when the organisation has none.
func TestRuleFilePolicies(t *testing.T) {
	f := newFixture(t)
	on := true
	filePol := func(org, name string, uac bool, as ...policy.Assignment) policy.Policy {
		return policy.Policy{ID: store.NewID(t0), FromFiles: true, FileOrg: org, Name: name, Active: true,
			Features:    map[string]json.RawMessage{policy.FeaturePAM: json.RawMessage(`{"uacInterceptionEnabled":` + map[bool]string{true: "true", false: "false"}[uac] + `}`)},
			Assignments: as}
	}
	f.svc.SetFileRules([]FileOrg{{Org: "acme", UACInterception: &on}})
	if got, r, err := f.svc.PamSettings(f.device); err != nil || !got || r.Source != policy.SourceDefault {
		t.Fatalf("the files' fallback: %v %+v %v", got, r, err)
	}
	f.svc.SetFileRules([]FileOrg{{Org: "acme", UACInterception: &on, Policies: []policy.Policy{
		filePol("ACME", "hq off", false, policy.Assignment{Level: policy.LevelSite, Target: "hq"}),
	}}})
	got, r, err := f.svc.PamSettings(f.device)
	if err != nil || got || r.Winner == nil || r.Winner.PolicyName != "hq off" {
		t.Fatalf("site by name: %v %+v %v", got, r, err)
	}
	// A stored device-level policy is closer than the file's site.
	f.putPolicy(t, policy.Policy{OrgID: f.org, Name: "this one on", Active: true,
		Features:    map[string]json.RawMessage{policy.FeaturePAM: json.RawMessage(`{"uacInterceptionEnabled":true}`)},
		Assignments: []policy.Assignment{{ID: store.NewID(t0), Level: policy.LevelDevice, Target: f.device, CreatedAt: t0}}})
	if got, r, _ := f.svc.PamSettings(f.device); !got || r.Winner.PolicyName != "this one on" {
		t.Fatalf("stored device policy: %v %+v", got, r)
	}
	// Files for another organisation reach nothing here.
	f.svc.SetFileRules([]FileOrg{{Org: "globex", Policies: []policy.Policy{
		filePol("globex", "theirs", false, policy.Assignment{Level: policy.LevelDevice, Target: "WIN-ACCT-04"}),
	}}})
	if ex, err := f.svc.ResolvePolicy(f.device, policy.FeaturePAM, true); err != nil || ex.Winner.PolicyName != "this one on" || len(ex.Skipped) != 0 {
		t.Fatalf("another org's files: %+v %v", ex, err)
	}
}

// A software policy written while a request is being decided makes the
// decision stale: it is decided again, under the new policy.
func TestIngestRedecidesWhenPoliciesChange(t *testing.T) {
	f := newFixture(t, rule("approve-signed", 10, engine.VerdictAutoApprove, signer("Bad Vendor")))
	path := `C:\x\bad.exe`
	written := false
	f.svc.bridge = func(d *store.Device) (*engine.Bridge, error) {
		b, err := f.svc.softwareBridge(d) // the policies as they are now
		if !written {
			written = true
			f.putPolicy(t, policy.Policy{OrgID: f.org, Name: "Blocked tools", Active: true,
				Features: map[string]json.RawMessage{policy.FeatureSoftwarePolicy: json.RawMessage(
					`{"mode":"blocklist","executable":[{"name":"bad","pathGlob":"C:\\x\\bad.exe"}]}`)},
				Assignments: []policy.Assignment{{ID: store.NewID(t0), Level: policy.LevelOrganization, Target: f.org, CreatedAt: t0}}})
		}
		return b, err
	}
	if r := f.uac(t, path, "Bad Vendor").Request; r.Status != store.StatusDenied || r.MatchedPolicyName != "Blocked tools" || !written {
		t.Fatalf("decided under the old policies: %s by %s", r.Status, r.DecisionSource())
	}
}

// A software policy whose assignment cannot be decided fails the request
// safe (pending), not over to a farther, laxer policy.
func TestIngestFailsSafeOnUndecidableSoftwarePolicy(t *testing.T) {
	f := newFixture(t)
	path := `C:\x\tool.exe`
	f.putPolicy(t, policy.Policy{OrgID: f.org, Name: "org allows", Active: true,
		Features: map[string]json.RawMessage{policy.FeatureSoftwarePolicy: json.RawMessage(
			`{"mode":"allowlist","executable":[{"name":"tool","pathGlob":"C:\\x\\tool.exe"}]}`)},
		Assignments: []policy.Assignment{{ID: store.NewID(t0), Level: policy.LevelOrganization, Target: f.org, CreatedAt: t0}}})
	if r := f.uac(t, path, "").Request; r.Status != store.StatusAutoApproved {
		t.Fatalf("the org's allowlist: %s", r.Status)
	}
	f.putPolicy(t, policy.Policy{OrgID: f.org, Name: "kiosks block", Active: true,
		Features: map[string]json.RawMessage{policy.FeatureSoftwarePolicy: json.RawMessage(
			`{"mode":"blocklist","executable":[{"name":"tool","pathGlob":"C:\\x\\tool.exe"}]}`)},
		Assignments: []policy.Assignment{{ID: store.NewID(t0), Level: policy.LevelSite, Target: f.site, CreatedAt: t0,
			Condition: `"kiosk" in device.tags`}}}) // the device has no tags: undecidable
	r := f.uac(t, path, "").Request
	if r.Status != store.StatusPending || !strings.Contains(r.Decision.Error, "kiosks block") && !strings.Contains(r.Decision.Error, "tags") {
		t.Fatalf("undecidable closer policy: %s (%q)", r.Status, r.Decision.Error)
	}
}
