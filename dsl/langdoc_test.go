package dsl

import (
	"os"
	"strings"
	"testing"

	"github.com/elevate-pam/elevate/dsl/syntax"
)

// Every ```pam example in the language reference parses and is already in
// the canonical layout, so the reference cannot drift from the language.
func TestLanguageReferenceExamples(t *testing.T) {
	doc, err := os.ReadFile("LANGUAGE.md")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(doc), "```pam\n")
	if len(parts) < 11 {
		t.Fatalf("only %d pam examples found", len(parts)-1)
	}
	for i, b := range parts[1:] {
		// An example inside a list item is indented like its fence.
		before := parts[i][strings.LastIndexByte(parts[i], '\n')+1:]
		src := b[:strings.Index(b, "```")]
		if before != "" {
			src = strings.ReplaceAll("\n"+src, "\n"+before, "\n")[1:]
		}
		f, errs := syntax.ParseFile("example", src)
		if len(errs) > 0 {
			t.Errorf("example %d does not parse: %v\n%s", i+1, errs, src)
			continue
		}
		if got := string(syntax.Format(f)); got != src {
			t.Errorf("example %d is not in fmt layout:\n%s\nwant\n%s", i+1, src, got)
		}
	}
}
