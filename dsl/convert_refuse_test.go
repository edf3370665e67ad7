package dsl

import (
	"strings"
	"testing"

	"github.com/elevate-pam/elevate/engine"
)

// FromBundle refuses signer groups and org settings the API would refuse,
// instead of writing files that then fail to load.
func TestFromBundleRefusesInvalidGroupsAndSettings(t *testing.T) {
	bad := "not-hex"
	b := &Bundle{
		SignerGroups: []engine.SignerGroup{
			{ID: "3f2504e0-4f89-41d3-9a0c-0305e82c3301", Name: "bad", Signers: []engine.SignerEntry{{Thumbprint: &bad}}},
			{ID: "3f2504e0-4f89-41d3-9a0c-0305e82c3302", Name: "good", Signers: []engine.SignerEntry{engine.CNEntry("Vendor")}},
		},
		OrgConfigs: []OrgConfig{{DefaultUnmatchedVerdict: engine.VerdictAutoApprove}, {DefaultUnmatchedVerdict: engine.VerdictAutoDeny}, {DefaultUnmatchedVerdict: engine.VerdictAutoDeny}},
	}
	files, errs := FromBundle(b)
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{`signerGroups[0] "bad"`, `orgConfigs[0]`, `orgConfigs[2]: a second configuration`} {
		if !strings.Contains(all, want) {
			t.Errorf("errors lack %q:\n%s", want, all)
		}
	}
	if len(errs) != 3 {
		t.Errorf("%d errors, want 3:\n%s", len(errs), all)
	}
	var kinds []string
	for _, d := range files[""].Decls {
		kinds = append(kinds, d.Kind)
	}
	if strings.Join(kinds, ",") != "settings,signers" {
		t.Errorf("declarations written: %v", kinds)
	}
}
