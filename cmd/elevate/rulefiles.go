package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/elevate-pam/elevate/dsl"
	"github.com/elevate-pam/elevate/dsl/syntax"
)

// Exit codes of elevate check (like a compiler's).
const (
	exitCompile = 3
	exitTests   = 4
)

func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

const fmtUsage = `Usage: elevate fmt [-w | -l | -d] PATHS...

Prints .pam files in the canonical layout. With no flag the formatted text
goes to stdout; -w rewrites files that change, -l lists them, -d prints a
diff. Directories are searched for .pam files. Exit status: 0 done (with -l,
whatever it lists), 2 usage, 3 a file does not parse.

Flags:
`

func runFmt(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("fmt", fmtUsage, stderr)
	write := fs.Bool("w", false, "write the result to the file instead of stdout")
	list := fs.Bool("l", false, "list files whose formatting differs")
	diff := fs.Bool("d", false, "print diffs instead of rewriting")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "elevate fmt: name at least one file or directory")
		return exitUsage
	}
	files, err := dsl.FindFiles(fs.Args()...)
	if err != nil {
		fmt.Fprintf(stderr, "elevate fmt: %v\n", err)
		return exitUsage
	}
	status := exitOK
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "elevate fmt: %v\n", err)
			status = exitInternal
			continue
		}
		f, errs := syntax.ParseFile(path, string(src))
		if len(errs) > 0 {
			var ds dsl.Diagnostics
			for _, e := range errs {
				ds = append(ds, dsl.Diagnostic{Severity: dsl.SevError, File: path, Pos: e.Pos, Line: e.Pos.Line, Col: e.Pos.Col, Msg: e.Msg, Hint: e.Hint})
			}
			dsl.Render(stderr, ds, map[string]string{path: string(src)})
			status = exitCompile
			continue
		}
		out := syntax.Format(f)
		changed := !bytes.Equal(out, src)
		switch {
		case *list:
			if changed {
				fmt.Fprintln(stdout, path)
			}
		case *diff:
			if changed {
				fmt.Fprint(stdout, unifiedDiff(path, string(src), string(out)))
			}
		case *write:
			if changed {
				if err := writeFileAtomic(path, out); err != nil {
					fmt.Fprintf(stderr, "elevate fmt: %v\n", err)
					status = exitInternal
				}
			}
		default:
			stdout.Write(out)
		}
	}
	return status
}

// writeFileAtomic replaces a file through a temporary file in its
// directory, so an interrupted fmt never leaves half a rule file.
func writeFileAtomic(path string, data []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".elevate-fmt-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), st.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// unifiedDiff is a small line diff (longest common subsequence), enough to
// show what fmt would change.
func unifiedDiff(name, a, b string) string {
	al, bl := strings.SplitAfter(a, "\n"), strings.SplitAfter(b, "\n")
	n, m := len(al), len(bl)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s (formatted)\n", name, name)
	line := func(prefix, s string) {
		out.WriteString(prefix + strings.TrimSuffix(s, "\n") + "\n")
	}
	for i, j := 0, 0; i < n || j < m; {
		switch {
		case i < n && j < m && al[i] == bl[j]:
			i, j = i+1, j+1
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			line("+", bl[j])
			j++
		default:
			line("-", al[i])
			i++
		}
	}
	return out.String()
}

const checkUsage = `Usage: elevate check [--format text|json] [--run PATTERN] [--strict] DIR

Parses and compiles a policy repository, lints it and runs its test cases
(test blocks, usually in *_test.pam files). Exit status: 0 clean, 1 internal
error, 2 usage, 3 compile errors (or lint warnings with --strict), 4 test
failures.

Flags:
`

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", checkUsage, stderr)
	format := fs.String("format", "text", "output format: text or json")
	run := fs.String("run", "", "run only tests whose name matches this regular expression")
	strict := fs.Bool("strict", false, "treat lint warnings as errors")
	verbose := fs.Bool("v", false, "list every test, not only failures")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 || (*format != "text" && *format != "json") {
		fs.Usage()
		return exitUsage
	}
	filter, err := dsl.Filter(*run)
	if err != nil {
		fmt.Fprintf(stderr, "elevate check: %v\n", err)
		return exitUsage
	}
	dir := fs.Arg(0)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "elevate check: %s is not a directory\n", dir)
		return exitUsage
	}
	repo, err := dsl.LoadDir(dir)
	if err != nil {
		fmt.Fprintf(stderr, "elevate check: %v\n", err)
		return exitInternal
	}
	rep := dsl.Check(repo, dsl.CheckOptions{Strict: *strict, Run: filter})
	code := exitOK
	switch {
	case rep.Diags.Errors() > 0:
		code = exitCompile
	case rep.Failed() > 0:
		code = exitTests
	}
	if *format == "json" {
		out := struct {
			Diagnostics dsl.Diagnostics  `json:"diagnostics"`
			Tests       []dsl.TestResult `json:"tests"`
			Passed      int              `json:"passed"`
			Failed      int              `json:"failed"`
			ExitCode    int              `json:"exitCode"`
		}{rep.Diags, rep.Tests, len(rep.Tests) - rep.Failed(), rep.Failed(), code}
		if out.Diagnostics == nil {
			out.Diagnostics = dsl.Diagnostics{}
		}
		if out.Tests == nil {
			out.Tests = []dsl.TestResult{}
		}
		if err := printJSON(stdout, out); err != nil {
			return exitInternal
		}
		return code
	}
	dsl.Render(stdout, rep.Diags, repo.Sources())
	for _, t := range rep.Tests {
		switch {
		case !t.Passed:
			fmt.Fprintf(stdout, "FAIL %s:%d: test %q\n", t.File, t.Line, t.Name)
			for _, f := range t.Failures {
				fmt.Fprintf(stdout, "    %s\n", f)
			}
			fmt.Fprintf(stdout, "    got: %s\n    trace:\n%s", t.Decision, indent(dsl.FormatTrace(t.Trace), "    "))
		case *verbose:
			fmt.Fprintf(stdout, "ok   %s:%d: test %q\n", t.File, t.Line, t.Name)
		}
	}
	rules := 0
	for _, o := range repo.Orgs {
		rules += len(o.Rules)
	}
	fmt.Fprintf(stdout, "%d files, %d rules, %d errors, %d warnings; tests: %d passed, %d failed\n",
		len(repo.Files), rules, rep.Diags.Errors(), len(rep.Diags)-rep.Diags.Errors(), len(rep.Tests)-rep.Failed(), rep.Failed())
	return code
}

func indent(s, pad string) string {
	if s == "" {
		return s
	}
	return pad + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+pad) + "\n"
}

const exportUsage = `Usage: elevate export --to pam|json [--org NAME] PATH

Converts between the API's JSON and rule files, without loss.
  --to pam   PATH is a JSON file: a bundle {"rules", "signerGroups",
             "policies", "orgConfigs"} or a bare array of rules; prints .pam
             text (one org at a time: choose with --org when it has several)
  --to json  PATH is a .pam file or a policy repository directory; prints
             the bundle

Flags:
`

func runExport(args []string, stdout, stderr io.Writer) int {
	if hasDataFlag(args) {
		return runDataExport(args, stdout, stderr)
	}
	fs := newFlags("export", exportUsage, stderr)
	to := fs.String("to", "", "pam or json")
	orgName := fs.String("org", "", "with --to pam: the org to print")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 || (*to != "pam" && *to != "json") {
		fs.Usage()
		return exitUsage
	}
	path := fs.Arg(0)
	if *to == "json" {
		var repo *dsl.Repository
		st, err := os.Stat(path)
		if err != nil {
			fmt.Fprintf(stderr, "elevate export: %v\n", err)
			return exitUsage
		}
		if st.IsDir() {
			repo, err = dsl.LoadDir(path)
		} else {
			var src []byte
			if src, err = os.ReadFile(path); err == nil {
				repo = dsl.Load(map[string]string{path: string(src)})
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "elevate export: %v\n", err)
			return exitInternal
		}
		if repo.Diags.Errors() > 0 {
			dsl.Render(stderr, repo.Diags, repo.Sources())
			return exitCompile
		}
		if err := printJSON(stdout, dsl.ToBundle(repo)); err != nil {
			return exitInternal
		}
		return exitOK
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "elevate export: %v\n", err)
		return exitUsage
	}
	b, err := dsl.ParseBundle(data)
	if err != nil {
		fmt.Fprintf(stderr, "elevate export: %s: %v\n", path, err)
		return exitCompile
	}
	files, errs := dsl.FromBundle(b)
	for _, e := range errs {
		fmt.Fprintf(stderr, "elevate export: %s: %v\n", path, e)
	}
	orgs := dsl.Orgs(files)
	f, ok := files[*orgName]
	if !ok && *orgName == "" && len(orgs) == 1 {
		f, ok = files[orgs[0]]
	}
	if !ok {
		fmt.Fprintf(stderr, "elevate export: %s holds orgs %q; choose one with --org\n", path, orgs)
		return exitUsage
	}
	stdout.Write(syntax.Format(f))
	if len(errs) > 0 {
		return exitCompile
	}
	return exitOK
}
