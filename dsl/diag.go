package dsl

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/elevate-pam/elevate/dsl/syntax"
)

// Severity says whether a diagnostic stops a repository from compiling.
type Severity string

const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Diagnostic is one problem in a policy repository: where it is (file and
// position), what is wrong, and how to fix it where that is known. Lint
// findings carry a Code.
type Diagnostic struct {
	Severity Severity   `json:"severity"`
	Code     string     `json:"code,omitempty"`
	File     string     `json:"file"`
	Pos      syntax.Pos `json:"-"`
	Line     int        `json:"line"`
	Col      int        `json:"col"`
	Msg      string     `json:"message"`
	Hint     string     `json:"hint,omitempty"`
}

func (d Diagnostic) String() string {
	s := fmt.Sprintf("%s:%d:%d: %s: %s", d.File, d.Pos.Line, d.Pos.Col, d.Severity, d.Msg)
	if d.Code != "" {
		s += " [" + d.Code + "]"
	}
	return s
}

// Diagnostics is a list of diagnostics.
type Diagnostics []Diagnostic

// Errors counts the diagnostics of error severity.
func (ds Diagnostics) Errors() int {
	n := 0
	for _, d := range ds {
		if d.Severity == SevError {
			n++
		}
	}
	return n
}

// Sort orders diagnostics by file and position.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		if ds[i].File != ds[j].File {
			return ds[i].File < ds[j].File
		}
		return ds[i].Pos.Offset < ds[j].Pos.Offset
	})
}

func (ds *Diagnostics) add(sev Severity, file string, pos syntax.Pos, hint, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Severity: sev, File: file, Pos: pos, Line: pos.Line, Col: pos.Col, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// Render writes diagnostics the way compilers print them: the location,
// the message, the source line with a caret under the column, and the hint.
func Render(w io.Writer, ds Diagnostics, sources map[string]string) {
	for _, d := range ds {
		fmt.Fprintln(w, d.String())
		if src, ok := sources[d.File]; ok && d.Pos.Line > 0 {
			if line, ok := sourceLine(src, d.Pos.Line); ok {
				fmt.Fprintf(w, "    %s\n", strings.ReplaceAll(line, "\t", " "))
				fmt.Fprintf(w, "    %s^\n", strings.Repeat(" ", caretCol(line, d.Pos.Col)))
			}
		}
		if d.Hint != "" {
			fmt.Fprintf(w, "    hint: %s\n", d.Hint)
		}
	}
}

func sourceLine(src string, n int) (string, bool) {
	for i := 1; i < n; i++ {
		j := strings.IndexByte(src, '\n')
		if j < 0 {
			return "", false
		}
		src = src[j+1:]
	}
	if j := strings.IndexByte(src, '\n'); j >= 0 {
		src = src[:j]
	}
	return strings.TrimRight(src, "\r"), true
}

// caretCol converts a byte column to a display column (characters).
func caretCol(line string, col int) int {
	if col-1 > len(line) {
		return utf8.RuneCountInString(line)
	}
	return utf8.RuneCountInString(line[:max(col-1, 0)])
}
