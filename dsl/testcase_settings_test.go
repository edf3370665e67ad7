package dsl

import "testing"

// A test's settings override only the keys they set: the org's
// default_unmatched still applies when a test sets something else.
func TestTestSettingsOverrideOnlyWhatTheySet(t *testing.T) {
	repo := Load(map[string]string{
		"a.pam": "settings {\n  default_unmatched = auto_deny\n}\n\nrule \"r\" {\n  when user == \"nobody\"\n  then auto_approve\n}\n",
		"a_test.pam": "test \"t\" {\n  at 2026-06-15T10:00:00Z\n  settings {\n    uac_interception = true\n  }\n" +
			"  observe {\n    user = \"bob\"\n    path = `C:\\x.exe`\n  }\n  expect denied by default\n}\n",
	})
	rep := Check(repo, CheckOptions{})
	if rep.Diags.Errors() > 0 || len(rep.Tests) != 1 || !rep.Tests[0].Passed {
		t.Fatalf("diags %v tests %+v", rep.Diags, rep.Tests)
	}
}
