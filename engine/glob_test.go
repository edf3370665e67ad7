package engine

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

// glCase is one glob/path pair of the dialect of pam-semantics §2.1.
type glCase struct {
	glob, path string
	want       bool
}

// glCheck asserts that both implementations — the reference DP and the
// compiled matcher used by the indexed path — give want.
func glCheck(t *testing.T, glob, path string, want bool) {
	t.Helper()
	if got := globMatchDP(glob, path); got != want {
		t.Errorf("globMatchDP(%q, %q) = %v, want %v", glob, path, got, want)
	}
	g, err := compileGlob(glob)
	if err != nil {
		t.Fatalf("compileGlob(%q): %v", glob, err)
	}
	if got := g.match(normPath(path)); got != want {
		t.Errorf("compileGlob(%q).match(normPath(%q)) = %v, want %v", glob, path, got, want)
	}
}

func glRun(t *testing.T, cases []glCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q~%q", c.glob, c.path), func(t *testing.T) {
			glCheck(t, c.glob, c.path, c.want)
		})
	}
}

func TestGlobSingleStar(t *testing.T) {
	glRun(t, []glCase{
		// §2.1 consequence: C:\* does not cross a separator.
		{`C:\*`, `C:\a\b.exe`, false},
		{`C:\*`, `C:\a.exe`, true},
		{`C:\*`, `C:\`, true}, // star matches zero characters
		{`C:\*`, `C:`, false},
		{`*`, ``, true},
		{`*`, `abc`, true},
		{`*`, `a/b`, false},
		{`*`, `a\b`, false},
		{`*`, `/`, false},
		{`a*b`, `ab`, true},
		{`a*b`, `axxb`, true},
		{`a*b`, `a/b`, false},
		{`*a*`, `a`, true},
		{`*.exe`, `setup.exe`, true},
		{`*.exe`, `dir\setup.exe`, false},
		{`*.exe`, `setup.exe.bak`, false},
		{`*\*`, `a\b`, true},
		{`*\*`, `\`, true},
		{`*\*`, `a`, false},
		{`*\*`, `a\b\c`, false},
		{`C:\Users\*\Downloads\*.exe`, `C:\Users\sarah\Downloads\FirefoxSetup.exe`, true},
		{`C:\Users\*\Downloads\*.exe`, `C:\Users\a\b\Downloads\x.exe`, false},
		{`C:\Users\*\Downloads\*.exe`, `C:\Users\\Downloads\.exe`, true},
	})
}

func TestGlobDoubleStar(t *testing.T) {
	glRun(t, []glCase{
		// §2.1: C:\Program Files\** matches below, not the directory itself.
		{`C:\Program Files\**`, `C:\Program Files\x\y.exe`, true},
		{`C:\Program Files\**`, `C:\Program Files\app.exe`, true},
		{`C:\Program Files\**`, `C:\Program Files\`, true},
		{`C:\Program Files\**`, `C:\Program Files`, false},
		{`C:\Program Files\**`, `C:\Program Files (x86)\app.exe`, false},
		// **\x.exe needs at least one separator before x.exe.
		{`**\x.exe`, `x.exe`, false},
		{`**\x.exe`, `\x.exe`, true},
		{`**\x.exe`, `a\x.exe`, true},
		{`**\x.exe`, `C:\a\b\x.exe`, true},
		{`**\x.exe`, `C:\a\bx.exe`, false},
		// dir\**\*.exe needs a deeper level.
		{`dir\**\*.exe`, `dir\x.exe`, false},
		{`dir\**\*.exe`, `dir\a\x.exe`, true},
		{`dir\**\*.exe`, `dir\a\b\c\x.exe`, true},
		{`dir\**\*.exe`, `dir\\x.exe`, true},
		{`dir\**\*.exe`, `dir\a\b\x.exe\y`, false},
		// ** matches everything, the empty path included.
		{`**`, ``, true},
		{`**`, `C:\a\b\c.exe`, true},
		{`**`, `\\\`, true},
		// *** and longer runs are the same as **.
		{`***`, ``, true},
		{`***`, `a\b\c`, true},
		{`C:\***`, `C:\a\b`, true},
		{`C:\***`, `C:`, false},
		{`a***b`, `a\x\b`, true},
		{`a*****b`, `ab`, true},
		{`a**b`, `ab`, true},
		{`a**b`, `a\b`, true},
		{`a**b`, `a\b\c`, false},
		{`C:\**\*.exe`, `C:\x.exe`, false},
		{`C:\**\*.exe`, `C:\a\x.exe`, true},
		{`**\Temp\**`, `C:\Users\u\AppData\Local\Temp\x\y.exe`, true},
		{`**\Temp\**`, `C:\Temp`, false},
	})
}

func TestGlobLiterals(t *testing.T) {
	glRun(t, []glCase{
		// ? is a literal question mark, never a single-character wildcard.
		{`a?.exe`, `ab.exe`, false},
		{`a?.exe`, `a?.exe`, true},
		{`?`, `a`, false},
		{`?`, `?`, true},
		{`?`, ``, false},
		// . is literal (not "any character").
		{`*.exe`, `setupXexe`, false},
		{`a.b`, `a.b`, true},
		{`a.b`, `acb`, false},
		// [ ] are literal, not a character class.
		{`[abc].exe`, `a.exe`, false},
		{`[abc].exe`, `[abc].exe`, true},
		{`[!a].exe`, `b.exe`, false},
		{`[!a].exe`, `[!a].exe`, true},
		{`x]`, `x]`, true},
		{`[a-z]*`, `[a-z]setup.exe`, true},
		{`[a-z]*`, `q`, false},
		// ( and + are literal (no regex groups or repetition).
		{`setup(1).exe`, `setup(1).exe`, true},
		{`setup(1).exe`, `setup1.exe`, false},
		{`(a|b).exe`, `a.exe`, false},
		{`(a|b).exe`, `(a|b).exe`, true},
		{`a+.exe`, `aa.exe`, false},
		{`a+.exe`, `a+.exe`, true},
		{`^a$`, `^a$`, true},
		{`^a$`, `a`, false},
		// { } and , are literal (no alternatives).
		{`{a,b}.exe`, `a.exe`, false},
		{`{a,b}.exe`, `{a,b}.exe`, true},
		{`*{a,b}*`, `x{a,b}y`, true},
		{`*{a,b}*`, `xay`, false},
		// space is literal and significant.
		{`C:\Program Files\*`, `C:\ProgramFiles\x`, false},
		{`C:\Program Files\*`, `C:\Program  Files\x`, false},
		{`C:\Program Files\*`, `C:\Program Files\x`, true},
		{` a`, `a`, false},
		{`a `, `a `, true},
		// Other characters some glob dialects treat specially.
		{`!a`, `!a`, true},
		{`~user`, `~user`, true},
		{`a|b`, `a`, false},
		{`100%`, `100%`, true},
		{`a-b`, `a-b`, true},
		{`a,b`, `a,b`, true},
	})
}

func TestGlobSeparatorsAndCase(t *testing.T) {
	glRun(t, []glCase{
		// Backslash and slash are the same separator on both sides.
		{`C:\Windows\notepad.exe`, `C:/Windows/notepad.exe`, true},
		{`C:/Windows/notepad.exe`, `C:\Windows\notepad.exe`, true},
		{`C:/Windows/*`, `C:\Windows\x.exe`, true},
		{`C:\Windows/*\x`, `C:/Windows\sub/x`, true},
		// Backslash is never an escape character.
		{`a\*`, `a\b`, true},
		{`a\*`, `a*`, false},
		{`a\*`, `a\*`, true},
		{`a\?`, `a/?`, true},
		{`a\?`, `a?`, false},
		// Doubled separators are two separators.
		{`a\\b`, `a\b`, false},
		{`a\\b`, `a//b`, true},
		{`C:\Temp\`, `C:/temp/`, true},
		{`C:\Temp\`, `C:/temp`, false},
		// Case-insensitive on both sides.
		{`C:\WINDOWS\*.EXE`, `c:\windows\cmd.exe`, true},
		{`c:\windows\*.exe`, `C:\WINDOWS\CMD.EXE`, true},
		{`C:\Users\JÖRG\*`, `c:\users\jörg\a.exe`, true},
		{`c:\users\jörg\**`, `C:\USERS\JÖRG\x\y`, true},
		{`c:\users\jörg\*`, `C:\USERS\JORG\x`, false},
		{`C:\Ünïcödé\*.exe`, `c:\ünïcödé\ä.exe`, true},
	})
}

func TestGlobAnchoringAndEmpty(t *testing.T) {
	glRun(t, []glCase{
		// '' matches only ''.
		{``, ``, true},
		{``, `a`, false},
		{``, `\`, false},
		{`a`, ``, false},
		{`\`, ``, false},
		{`*a`, ``, false},
		// Anchored at both ends.
		{`a`, `ba`, false},
		{`a`, `ab`, false},
		{`a`, `A`, true},
		{`b*`, `ab`, false},
		{`*b`, `ba`, false},
		{`C:\Windows\`, `C:\Windows\x`, false},
		{`Windows\*.exe`, `C:\Windows\x.exe`, false},
		// Literal prefix and suffix must not overlap.
		{`ab*ba`, `aba`, false},
		{`ab*ba`, `abba`, true},
		{`a*a`, `a`, false},
		{`a*a`, `aa`, true},
		{`a**a`, `a`, false},
		{`**a**`, `a`, true},
		{`**a**`, ``, false},
		{`*a*a*`, `a`, false},
		{`*a*a*`, `aa`, true},
	})
}

// TestGlobPathological runs crafted globs that make a backtracking matcher
// blow up. It asserts results only (no wall clock): a blow-up shows as a
// test timeout.
func TestGlobPathological(t *testing.T) {
	long := strings.Repeat("a", 4000)
	var b strings.Builder
	for range 40 {
		b.WriteString("a*")
	}
	many := b.String()
	segs := strings.Repeat(`a\`, 1500) + "a"
	longMid := strings.Repeat("ab/", 30) // more literal bytes than the bit-parallel matcher holds
	cases := []struct {
		glCase
		blowup bool // a backtracking matcher (gobwas) does not finish
	}{
		{glCase{"x*" + longMid + "*y", "x" + longMid + "y", true}, false},
		{glCase{"x*" + longMid + "*y", "xq/" + longMid + "y", false}, false},
		{glCase{"x**" + longMid + "*y", "xq/" + longMid + "zy", true}, false},
		{glCase{many + "b", long, false}, false},
		{glCase{many + "b", long + "b", true}, false},
		{glCase{many + "c*b", long + "b", false}, true},
		{glCase{many + "c*b", long + "cb", true}, false},
		{glCase{many + "c", long, false}, false},
		{glCase{many + "c*", long, false}, true},
		{glCase{"*" + many + "b", long, false}, false},
		{glCase{`C:\Users\` + strings.Repeat("*a", 40) + `*c*.exe`, `C:\Users\` + long + ".exe", false}, true},
		{glCase{strings.ReplaceAll(many, "*", "**") + "b", long, false}, false},
		{glCase{strings.ReplaceAll(many, "*", "**") + "c**b", long + "b", false}, false},
		{glCase{strings.ReplaceAll(many, "*", "**") + "c**b", strings.Repeat(`a\`, 2000) + "cb", true}, false},
		{glCase{strings.Repeat(`*a`, 40) + `*\b`, segs, false}, false},
		{glCase{strings.Repeat(`*a`, 40) + `*\b`, long + `\c\b`, false}, true},
		{glCase{strings.Repeat(`**a`, 40) + `**\b`, segs, false}, false},
		{glCase{strings.Repeat(`**a`, 40) + `**\b`, segs + `\b`, true}, false},
		{glCase{strings.Repeat(`*\`, 30) + "b", segs, false}, false},
		{glCase{strings.Repeat(`**\`, 30) + "x", segs, false}, false},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("case%d/dp", i), func(t *testing.T) {
			if got := globMatchDP(c.glob, c.path); got != c.want {
				t.Errorf("globMatchDP = %v, want %v", got, c.want)
			}
		})
		t.Run(fmt.Sprintf("case%d/compiled", i), func(t *testing.T) {
			g, err := compileGlob(c.glob)
			if err != nil {
				t.Fatal(err)
			}
			if got := g.match(normPath(c.path)); got != c.want {
				t.Errorf("compiled match = %v, want %v", got, c.want)
			}
		})
	}
}

// TestGlobPathologicalDecision feeds a crafted glob through the whole
// decision chain: as a rule criterion and as a software-policy entry.
func TestGlobPathologicalDecision(t *testing.T) {
	glob := `C:\Users\` + strings.Repeat("*a", 40) + `*c*.exe`
	path := `C:\Users\` + strings.Repeat("a", 4000) + ".exe"
	rs, err := Compile([]Rule{{ID: "g", Name: "g", Enabled: true, Priority: 1, Verdict: VerdictAutoApprove, MatchPathGlob: &glob}}, nil, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	br, err := NewBridge(SoftwarePolicy{ID: "p", Mode: ModeBlocklist, IsActive: true, Executable: []SoftwarePolicyEntry{{Name: "x", PathGlob: &glob}}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	in := &Input{Flow: FlowUAC, At: at, Observation: Observation{SubjectUsername: "alice", TargetExecutablePath: path}}
	t.Run("DecideReference", func(t *testing.T) {
		if d := rs.DecideReference(in); d.Outcome != OutcomePending || d.DecidedBy != DecidedByOrgDefault || d.Error != "" {
			t.Errorf("got %v, want pending by org default", d)
		}
	})
	t.Run("Decide", func(t *testing.T) {
		if d := rs.Decide(in); d.Outcome != OutcomePending || d.DecidedBy != DecidedByOrgDefault || d.Error != "" {
			t.Errorf("got %v, want pending by org default", d)
		}
	})
	t.Run("bridge", func(t *testing.T) {
		in := *in
		in.Bridge = br
		if d := rs.DecideReference(&in); d.Outcome != OutcomePending || d.DecidedBy != DecidedByOrgDefault {
			t.Errorf("got %v, want pending by org default", d)
		}
	})
}

// glRegexp is an independent oracle for the dialect: normalise, then
// translate '*' runs to regular-expression classes (Go's regexp is
// linear-time, so it cannot blow up either).
func glRegexp(glob string) *regexp.Regexp {
	norm := normPath(glob)
	var b strings.Builder
	b.WriteString(`\A(?s:`)
	for i := 0; i < len(norm); {
		if norm[i] == '*' {
			j := i
			for j < len(norm) && norm[j] == '*' {
				j++
			}
			if j-i >= 2 {
				b.WriteString(`.*`)
			} else {
				b.WriteString(`[^/]*`)
			}
			i = j
			continue
		}
		j := i
		for j < len(norm) && norm[j] != '*' {
			j++
		}
		b.WriteString(regexp.QuoteMeta(norm[i:j]))
		i = j
	}
	b.WriteString(`)\z`)
	return regexp.MustCompile(b.String())
}

// TestGlobDifferential compares both implementations with the regexp oracle
// on many small random globs and paths over an alphabet rich in separators,
// stars and would-be metacharacters.
func TestGlobDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	globAlpha := []string{"a", "B", "*", "*", "**", `\`, "/", "?", ".", "[", "]", "{", ",", "}", " "}
	pathAlpha := []string{"a", "A", "b", `\`, "/", "?", ".", "[", "]", "{", ",", "}", " "}
	gen := func(alpha []string, n int) string {
		var sb strings.Builder
		for range r.IntN(n + 1) {
			sb.WriteString(alpha[r.IntN(len(alpha))])
		}
		return sb.String()
	}
	matches := 0
	for i := range 20000 {
		glob, path := gen(globAlpha, 7), gen(pathAlpha, 8)
		if i%3 == 0 { // bias towards matches: derive the path from the glob
			path = strings.NewReplacer("**", "x/y", "*", "z").Replace(glob)
		}
		want := glRegexp(glob).MatchString(normPath(path))
		if want {
			matches++
		}
		if got := globMatchDP(glob, path); got != want {
			t.Fatalf("globMatchDP(%q, %q) = %v, oracle %v", glob, path, got, want)
		}
		g, err := compileGlob(glob)
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", glob, err)
		}
		if got := g.match(normPath(path)); got != want {
			t.Fatalf("compileGlob(%q).match(%q) = %v, oracle %v", glob, path, got, want)
		}
	}
	if matches < 1000 {
		t.Fatalf("only %d of 20000 random pairs matched; the generator does not exercise matches", matches)
	}
}

func TestGlobNormPath(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, ``},
		{`C:\Windows\System32`, `c:/windows/system32`},
		{`C:/MiXeD\Path`, `c:/mixed/path`},
		{`\\server\share\X.EXE`, `//server/share/x.exe`},
		{`C:\Users\JÖRG`, `c:/users/jörg`},
	} {
		if got := normPath(c.in); got != c.want {
			t.Errorf("normPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
