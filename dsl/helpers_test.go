package dsl

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/elevate-pam/elevate/dsl/syntax"
)

// diag is an expected diagnostic. At is the source text the position
// points at (its start), which keeps hand-written line:col numbers honest.
type diag struct {
	File      string
	Line, Col int
	At        string
	Msg       string
	Hint      string
	Warning   bool
	Code      string
}

func (d diag) String() string {
	sev := SevError
	if d.Warning {
		sev = SevWarning
	}
	s := fmt.Sprintf("%s:%d:%d: %s: %s", d.File, d.Line, d.Col, sev, d.Msg)
	if d.Code != "" {
		s += " [" + d.Code + "]"
	}
	if d.Hint != "" {
		s += "\n    hint: " + d.Hint
	}
	return s
}

func gotDiag(d Diagnostic) string {
	w := diag{File: d.File, Line: d.Line, Col: d.Col, Msg: d.Msg, Hint: d.Hint, Warning: d.Severity == SevWarning, Code: d.Code}
	return w.String()
}

// textAt returns the source from line:col (1-based, bytes) to the end of
// that line.
func textAt(src string, line, col int) (string, bool) {
	lines := strings.Split(src, "\n")
	if line < 1 || line > len(lines) || col < 1 || col-1 > len(lines[line-1]) {
		return "", false
	}
	return lines[line-1][col-1:], true
}

// checkDiags compares diagnostics with the expected ones, all of them and
// in order, and checks that each expected position points at its At text
// and that Line/Col agree with Pos.
func checkDiags(t *testing.T, srcs map[string]string, ds Diagnostics, want ...diag) {
	t.Helper()
	var got, exp []string
	for _, d := range ds {
		got = append(got, gotDiag(d))
		if d.Line != d.Pos.Line || d.Col != d.Pos.Col {
			t.Errorf("%s: Line/Col %d:%d differ from Pos %v", d, d.Line, d.Col, d.Pos)
		}
		if src, ok := srcs[d.File]; ok && d.Pos.Line > 0 {
			if d.Pos.Offset < 0 || d.Pos.Offset > len(src) {
				t.Errorf("%s: offset %d outside the file", d, d.Pos.Offset)
			} else if at, _ := textAt(src, d.Line, d.Col); !strings.HasPrefix(src[d.Pos.Offset:], strings.TrimSuffix(at, "\r")) {
				t.Errorf("%s: offset %d is not line %d col %d", d, d.Pos.Offset, d.Line, d.Col)
			}
		}
	}
	for _, w := range want {
		exp = append(exp, w.String())
		if w.At == "" {
			continue
		}
		at, ok := textAt(srcs[w.File], w.Line, w.Col)
		if !ok || !strings.HasPrefix(at, w.At) {
			t.Errorf("test bug: %s:%d:%d is %q, not %q", w.File, w.Line, w.Col, at, w.At)
		}
	}
	if d := cmp.Diff(exp, got); d != "" {
		t.Errorf("diagnostics (-want +got):\n%s", d)
	}
}

func one(src string) map[string]string { return map[string]string{"a.pam": src} }

// loadOK loads a repository that must have no diagnostics.
func loadOK(t *testing.T, srcs map[string]string) *Repository {
	t.Helper()
	repo := Load(srcs)
	for _, d := range repo.Diags {
		t.Errorf("unexpected: %s (hint: %s)", d, d.Hint)
	}
	if t.Failed() {
		t.FailNow()
	}
	return repo
}

func mustOrg(t *testing.T, repo *Repository, name string) *Org {
	t.Helper()
	o, ok := repo.Org(name)
	if !ok {
		var names []string
		for _, o := range repo.Orgs {
			names = append(names, o.Name)
		}
		t.Fatalf("no org %q; orgs: %q", name, names)
	}
	return o
}

func ruleNames(o *Org) []string {
	var out []string
	for _, r := range o.Rules {
		out = append(out, r.Name)
	}
	return out
}

func pos(line, col int) syntax.Pos { return syntax.Pos{Line: line, Col: col} }

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

const (
	hashA = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	hashB = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"
)
