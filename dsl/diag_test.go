package dsl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRender(t *testing.T) {
	srcs := map[string]string{
		"a.pam": "rule \"r\" {\n\twhen signr == \"x\"\n  then auto_deny\n}\n",
		"b.pam": "rule \"é\" {\n  when user == \"ü\" and hash == \"zz\"\r\n  then auto_deny\n}\n",
	}
	repo := Load(srcs)
	var b strings.Builder
	Render(&b, repo.Diags, repo.Sources())
	want := "a.pam:2:7: error: unknown criterion `signr`\n" +
		"     when signr == \"x\"\n" + // the tab prints as one space
		"          ^\n" +
		"    hint: did you mean `signer`?\n" +
		"b.pam:2:33: error: hash must be 64 hexadecimal characters (a SHA-256 digest)\n" +
		"      when user == \"ü\" and hash == \"zz\"\n" + // \r dropped; ü is one column
		"    " + strings.Repeat(" ", 31) + "^\n"
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("Render (-want +got):\n%s", d)
	}

	// Without the source, or at no position, only the message and hint.
	b.Reset()
	ds := Diagnostics{{Severity: SevWarning, Code: LintShadowed, File: "gone.pam", Msg: "m", Hint: "h"}}
	Render(&b, ds, nil)
	if got := b.String(); got != "gone.pam:0:0: warning: m [shadowed]\n    hint: h\n" {
		t.Errorf("Render = %q", got)
	}
}

func TestCaretCol(t *testing.T) {
	for _, c := range []struct {
		line string
		col  int
		want int
	}{
		{"abc", 1, 0}, {"abc", 3, 2}, {"aéb", 4, 2}, {"aéb", 99, 3}, {"", 1, 0}, {"x", 0, 0},
	} {
		if got := caretCol(c.line, c.col); got != c.want {
			t.Errorf("caretCol(%q, %d) = %d, want %d", c.line, c.col, got, c.want)
		}
	}
}

func TestDiagnosticsSortAndCount(t *testing.T) {
	ds := Diagnostics{
		{File: "b.pam", Severity: SevWarning, Pos: pos(1, 1)},
		{File: "a.pam", Severity: SevError, Pos: pos(2, 1)},
		{File: "a.pam", Severity: SevError, Pos: pos(1, 5)},
	}
	ds[1].Pos.Offset, ds[2].Pos.Offset = 20, 4
	ds.Sort()
	if ds[0].Pos.Line != 1 || ds[0].File != "a.pam" || ds[1].Pos.Line != 2 || ds[2].File != "b.pam" {
		t.Errorf("sorted: %v", ds)
	}
	if ds.Errors() != 2 {
		t.Errorf("Errors() = %d", ds.Errors())
	}
}

func TestFindFilesAndLoadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, src string) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("org.pam", "org \"acme\"\n")
	write("b.pam", "rule \"b\" {\n  when user == \"b\"\n  then auto_deny\n}\n")
	write("sub/a.pam", "rule \"a\" {\n  when user == \"a\"\n  then auto_deny\n}\n")
	write("sub/a_test.pam", "test \"t\" {\n  at 2026-06-15T10:00:00Z\n  observe { user = \"a\"  path = \"x\" }\n  expect denied by \"a\"\n}\n")
	write("notes.txt", "not a rule file")
	write(".hidden/x.pam", "garbage")
	write("sub/.h.pam", "garbage")

	files, err := FindFiles(dir, filepath.Join(dir, "b.pam"))
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, f := range files {
		r, _ := filepath.Rel(dir, f)
		rel = append(rel, filepath.ToSlash(r))
	}
	if d := cmp.Diff([]string{"b.pam", "org.pam", "sub/a.pam", "sub/a_test.pam"}, rel); d != "" {
		t.Errorf("FindFiles (-want +got):\n%s", d)
	}
	if _, err := FindFiles(filepath.Join(dir, "missing")); err == nil {
		t.Errorf("FindFiles of a missing path: no error")
	}

	repo, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.Diags) != 0 {
		t.Fatalf("diagnostics: %v", repo.Diags)
	}
	o := mustOrg(t, repo, "acme")
	if d := cmp.Diff([]string{"b", "a"}, ruleNames(o)); d != "" || len(o.Tests) != 1 {
		t.Errorf("rules (-want +got):\n%s; tests: %d", d, len(o.Tests))
	}
	rep := Check(repo, CheckOptions{})
	if len(rep.Tests) != 1 || !rep.Tests[0].Passed || rep.Tests[0].File != filepath.Join(dir, "sub", "a_test.pam") {
		t.Errorf("tests = %+v", rep.Tests)
	}
}
