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

// A rule pointing at another org's signer group never matches in the
// engine; exported by name it would land on the own org's group of that
// name and could match. Such a rule is refused, not rewritten.
func TestFromBundleRefusesForeignSignerGroup(t *testing.T) {
	other, own := "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "3f2504e0-4f89-41d3-9a0c-0305e82c3302"
	b := &Bundle{
		SignerGroups: []engine.SignerGroup{
			{ID: other, OrgID: "other", Name: "trusted", Signers: []engine.SignerEntry{engine.CNEntry("Good Corp")}},
			{ID: own, OrgID: "acme", Name: "trusted", Signers: []engine.SignerEntry{engine.CNEntry("Evil Corp")}},
		},
		Rules: []engine.Rule{
			{Name: "foreign", OrgID: "acme", Enabled: true, Priority: 1, Verdict: engine.VerdictAutoApprove, MatchSignerGroupID: &other},
			{Name: "own", OrgID: "acme", Enabled: true, Priority: 2, Verdict: engine.VerdictAutoApprove, MatchSignerGroupID: &own},
		},
	}
	files, errs := FromBundle(b)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `rules[0] "foreign"`) {
		t.Fatalf("errors: %v", errs)
	}
	var rules []string
	for _, d := range files["acme"].Decls {
		if d.Kind == "rule" {
			rules = append(rules, d.Label.Value)
		}
	}
	if strings.Join(rules, ",") != "own" {
		t.Fatalf("rules written: %v", rules)
	}
}

// A misspelt key in a signer entry must not quietly turn a
// thumbprint-pinned entry into a CN-only one.
func TestParseBundleRefusesMisspeltSignerEntryKey(t *testing.T) {
	doc := `{"rules": [], "signerGroups": [{"id": "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "name": "g",
	  "signers": ["Plain CN", {"subjectCn": "Contoso", "thumbprnt": "` + strings.Repeat("ab", 32) + `"}]}]}`
	if _, err := ParseBundle([]byte(doc)); err == nil || !strings.Contains(err.Error(), "signers[1]") || !strings.Contains(err.Error(), "thumbprnt") {
		t.Fatalf("err = %v", err)
	}
}
