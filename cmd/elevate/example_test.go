package main

import (
	"strings"
	"testing"
)

// The shipped example repository must compile without warnings, pass its
// own tests and be formatted: it is what new users copy, and CI checks it
// through this test.
func TestExampleRepository(t *testing.T) {
	code, out, errOut := runCmd("check", "--strict", "-v", "../../rules")
	if code != exitOK {
		t.Fatalf("elevate check --strict rules/: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, " 0 failed") || strings.Contains(out, "tests: 0 passed") {
		t.Errorf("the example repository should have passing tests:\n%s", out)
	}
	code, out, errOut = runCmd("fmt", "-l", "../../rules")
	if code != exitOK || out != "" {
		t.Errorf("elevate fmt -l rules/: exit %d, files not formatted:\n%s%s", code, out, errOut)
	}
}
