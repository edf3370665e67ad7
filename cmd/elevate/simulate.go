package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/server"
	"github.com/elevate-pam/elevate/simulate"
	"github.com/schollz/progressbar/v3"
)

// exitWidens: --fail-on widen found requests the candidate newly approves.
const exitWidens = 5

const simulateUsage = `Usage: elevate simulate [--rules DIR] [--base DIR|REV] (--data DIR | --history FILE)
         [--org ORG] [--from T] [--to T] [--format text|json] [--fail-on widen] [--workers N]

Replays history through the full decision chain of a candidate rule set.

Without --base it reports the outcome distribution, what each rule
decided, the rules that never fired and those always shadowed by another.

With --base it compares the base rule set with the candidate on the same
history: the outcome transition matrix and the requests whose outcome
flips, grouped by the rules responsible, new auto-approvals first.
--base is a directory, or a git revision of the repository holding the
rule directory (its files at that revision: git show REV:path).

The candidate is the rule directory (--rules, default ./rules when it
exists). With --data the organisations' API-managed rules, settings and
software policies take part as they do live; with --history FILE (a JSON
Lines export, "-" for stdin) only the rule files and the settings the file
carries do.

Exit codes: 0 done, 2 usage, 3 rule files do not compile, 5 --fail-on widen
and some request would newly be auto-approved.

Flags:
`

func runSimulate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("simulate", simulateUsage, stderr)
	rulesDir := fs.String("rules", "", "candidate rule directory (default ./rules when it exists)")
	baseRef := fs.String("base", "", "base rule set: a directory or a git revision")
	dataDir := fs.String("data", "", "history and live state from this data directory")
	histFile := fs.String("history", "", "history from this JSON Lines export (- for stdin)")
	orgArg := fs.String("org", "", "only this organisation (id, or name with --data)")
	fromArg := fs.String("from", "", "only requests from this time on (RFC 3339 or date)")
	toArg := fs.String("to", "", "only requests up to this time")
	format := fs.String("format", "text", "text or json")
	failOn := fs.String("fail-on", "", `"widen": exit 5 when a request would newly be auto-approved`)
	workers := fs.Int("workers", 0, "parallel deciders (default: one per CPU)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "elevate simulate: "+format+"\n", a...)
		return code
	}
	if fs.NArg() != 0 || (*dataDir == "") == (*histFile == "") {
		fs.Usage()
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		return fail(exitUsage, "--format must be text or json")
	}
	if *failOn != "" && *failOn != "widen" {
		return fail(exitUsage, "--fail-on takes only widen")
	}
	if *failOn != "" && *baseRef == "" {
		return fail(exitUsage, "--fail-on needs --base")
	}
	from, err := parseTime("from", *fromArg, false)
	var to time.Time
	if err == nil {
		to, err = parseTime("to", *toArg, true)
	}
	if err != nil {
		return fail(exitUsage, "%v", err)
	}

	dir := *rulesDir
	if dir == "" {
		if fi, err := os.Stat("rules"); err == nil && fi.IsDir() {
			dir = "rules"
		}
	}
	var candFiles []lifecycle.FileOrg
	if dir != "" {
		if candFiles, err = server.CompileRuleDir(dir); err != nil {
			return fail(exitCompile, "candidate %s: %v", dir, err)
		}
	}
	var baseFiles []lifecycle.FileOrg
	if *baseRef != "" {
		if baseFiles, err = loadBase(*baseRef, dir); err != nil {
			if errors.Is(err, errBaseCompile) {
				return fail(exitCompile, "base %s: %v", *baseRef, err)
			}
			return fail(exitUsage, "--base %s: %v", *baseRef, err)
		}
	}

	var src simulate.Source
	var base, cand simulate.Chain
	total := -1 // requests to replay; -1: not known before the scan
	if *dataDir != "" {
		st, code := openData("simulate", *dataDir, true, stderr)
		if st == nil {
			return code
		}
		defer st.Close()
		org := ""
		if *orgArg != "" {
			if org, err = resolveOrg(st, *orgArg); err != nil {
				return fail(exitUsage, "--org: %v", err)
			}
		}
		src = simulate.StoreSource(st, org, from, to)
		live := func(files []lifecycle.FileOrg) simulate.Chain {
			lc := lifecycle.New(lifecycle.Config{Store: st})
			lc.SetFileRules(files)
			return simulate.LiveChain(lc)
		}
		cand, base = live(candFiles), live(baseFiles)
	} else {
		r := stdin
		if *histFile != "-" {
			f, err := os.Open(*histFile)
			if err != nil {
				return fail(exitUsage, "%v", err)
			}
			defer f.Close()
			r = f
		}
		h, err := simulate.ReadHistory(r, *orgArg, from, to)
		if err != nil {
			return fail(exitUsage, "%s: %v", *histFile, err)
		}
		src = h.Source()
		total = h.Len()
		for _, c := range []struct {
			ch    *simulate.Chain
			files []lifecycle.FileOrg
		}{{&cand, candFiles}, {&base, baseFiles}} {
			var done func() error
			if *c.ch, done, err = h.FileChain(c.files); err != nil {
				return fail(exitInternal, "%v", err)
			}
			defer done()
		}
	}

	opt := simulate.Options{Workers: *workers}
	finish := func() {}
	if isTerminal(stderr) && total != 0 {
		opt.Progress, finish = progressBar(stderr, total, 100*time.Millisecond)
	}
	if *baseRef == "" {
		rep, err := simulate.Replay(src, cand, opt)
		finish()
		if err != nil {
			return fail(exitInternal, "%v", err)
		}
		if *format == "json" {
			if err := printJSON(stdout, rep); err != nil {
				return fail(exitInternal, "%v", err)
			}
			return exitOK
		}
		printReplay(stdout, rep, isTerminal(stdout))
		return exitOK
	}
	d, err := simulate.Diff(src, base, cand, opt)
	finish()
	if err != nil {
		return fail(exitInternal, "%v", err)
	}
	if *format == "json" {
		if err := printJSON(stdout, d); err != nil {
			return fail(exitInternal, "%v", err)
		}
	} else {
		printDiff(stdout, d, isTerminal(stdout))
	}
	if *failOn == "widen" && d.Widened > 0 {
		fmt.Fprintf(stderr, "elevate simulate: %d request(s) would newly be auto-approved\n", d.Widened)
		return exitWidens
	}
	return exitOK
}

var errBaseCompile = errors.New("rule files do not compile")

// loadBase compiles the base rule set: a directory, or the rule directory
// dir as it was at git revision ref.
func loadBase(ref, dir string) ([]lifecycle.FileOrg, error) {
	if fi, err := os.Stat(ref); err == nil && fi.IsDir() {
		files, err := server.CompileRuleDir(ref)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBaseCompile, err)
		}
		return files, nil
	}
	if dir == "" {
		return nil, errors.New("not a directory, and there is no rule directory (--rules) to read at a git revision")
	}
	tmp, err := os.MkdirTemp("", "elevate-base-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := gitCheckout(ref, dir, tmp); err != nil {
		return nil, err
	}
	files, err := server.CompileRuleDir(tmp)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBaseCompile, err)
	}
	return files, nil
}

// gitCheckout writes the .pam files under dir at revision ref into out,
// keeping their paths relative to dir.
func gitCheckout(ref, dir, out string) error {
	git := func(args ...string) ([]byte, error) {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		var errb strings.Builder
		cmd.Stderr = &errb
		b, err := cmd.Output()
		if err != nil {
			msg := strings.TrimSpace(errb.String())
			if msg == "" {
				msg = err.Error()
			}
			return nil, errors.New(msg)
		}
		return b, nil
	}
	if strings.HasPrefix(ref, "-") {
		return fmt.Errorf("not a revision")
	}
	if _, err := git("rev-parse", "--verify", "--quiet", ref+"^{commit}"); err != nil {
		return fmt.Errorf("neither a directory nor a git revision of %s", dir)
	}
	prefix, err := git("rev-parse", "--show-prefix")
	if err != nil {
		return err
	}
	list, err := git("ls-tree", "-r", "-z", "--name-only", "--full-tree", ref, "--", ".")
	if err != nil {
		return err
	}
	pre := strings.TrimSpace(string(prefix))
	n := 0
	for _, p := range strings.Split(string(list), "\x00") {
		if !strings.HasSuffix(p, ".pam") || !strings.HasPrefix(p, pre) {
			continue
		}
		b, err := git("show", ref+":"+p)
		if err != nil {
			return err
		}
		dst := filepath.Join(out, filepath.FromSlash(strings.TrimPrefix(p, pre)))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s has no .pam files under %s at %s", "the repository", dir, ref)
	}
	return nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws a progress bar of the requests replayed on w (a
// terminal), redrawn at most once per throttle: a bar with the count out
// of total, or a spinner with the count when total is not known (-1).
// finish erases it; call it before the report prints.
func progressBar(w io.Writer, total int, throttle time.Duration) (progress func(done int), finish func()) {
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("replaying"),
		progressbar.OptionSetItsString("requests"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(throttle),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
	)
	return func(done int) { _ = bar.Set(done) }, func() { _ = bar.Finish() }
}

// ANSI colours, used only on a terminal.
const (
	colRed   = "\033[31m"
	colGreen = "\033[32m"
	colBold  = "\033[1m"
	colReset = "\033[0m"
)

func paint(on bool, col, s string) string {
	if !on {
		return s
	}
	return col + s + colReset
}

func printReplay(w io.Writer, r *simulate.Report, colour bool) {
	fmt.Fprintf(w, "%s\n\n", paint(colour, colBold, fmt.Sprintf("Replayed %d requests", r.Total)))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, o := range simulate.OutcomeOrder {
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", o, r.Outcomes[o], pct(r.Outcomes[o], r.Total))
	}
	tw.Flush()
	deciders := make([]string, 0, len(r.ByDecider))
	for k := range r.ByDecider {
		deciders = append(deciders, k)
	}
	sort.Strings(deciders)
	fmt.Fprintln(w, "\nDecided by:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, k := range deciders {
		fmt.Fprintf(tw, "  %s\t%d\n", k, r.ByDecider[k])
	}
	tw.Flush()
	fmt.Fprintln(w, "\nRules (evaluation order):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PRIORITY\tRULE\tDECIDED\tSHADOWED\tMOSTLY BEHIND")
	for _, s := range r.Rules {
		name := s.Name
		if !s.Enabled {
			name += " (disabled)"
		}
		behind := ""
		if len(s.ShadowedBy) > 0 {
			behind = shadowerName(s.ShadowedBy[0])
		}
		fmt.Fprintf(tw, "  %d\t%s\t%d\t%d\t%s\n", s.Priority, name, s.Decided, s.Shadowed, behind)
	}
	tw.Flush()
	if len(r.NeverFired) > 0 {
		fmt.Fprintf(w, "\n%s\n", paint(colour, colBold, fmt.Sprintf("Never fired (%d):", len(r.NeverFired))))
		for _, s := range r.NeverFired {
			fmt.Fprintf(w, "  %s\n", s.Name)
		}
	}
	if len(r.AlwaysShadowed) > 0 {
		fmt.Fprintf(w, "\n%s\n", paint(colour, colBold, fmt.Sprintf("Always shadowed (%d):", len(r.AlwaysShadowed))))
		for _, s := range r.AlwaysShadowed {
			fmt.Fprintf(w, "  %s: matched %d, all decided by %s\n", s.Name, s.Shadowed, shadowerList(s.ShadowedBy))
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "\nFailed safe (pending):")
		for msg, n := range r.Errors {
			fmt.Fprintf(w, "  %d× %s\n", n, msg)
		}
	}
	fmt.Fprintf(w, "\nNot in the history (criteria on them match no replayed request): %s\n", strings.Join(r.Unrecorded, ", "))
}

func shadowerName(s simulate.Shadower) string {
	if s.PolicyID != "" {
		return "software policy " + s.PolicyID
	}
	return s.RuleName
}

func shadowerList(ss []simulate.Shadower) string {
	parts := make([]string, 0, len(ss))
	for _, s := range ss {
		parts = append(parts, fmt.Sprintf("%s (%d)", shadowerName(s), s.Count))
	}
	return strings.Join(parts, ", ")
}

func pct(n, total int) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(total))
}

func deciderName(d simulate.Decider) string {
	switch d.By {
	case "rule":
		return "rule " + d.RuleName
	case "software_policy":
		return "software policy " + d.PolicyID
	case "org_default":
		return "org default"
	case "fail_safe":
		return "fail-safe"
	}
	return "no rule"
}

func printDiff(w io.Writer, d *simulate.DiffReport, colour bool) {
	head := fmt.Sprintf("Replayed %d requests: %d change outcome", d.Total, d.Changed)
	fmt.Fprintf(w, "%s\n", paint(colour, colBold, head))
	if d.Widened > 0 {
		fmt.Fprintf(w, "%s\n", paint(colour, colRed, fmt.Sprintf("%d newly auto-approved (access widens)", d.Widened)))
	}
	fmt.Fprintln(w, "\nOutcome transitions (base → candidate):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "  base \\ candidate\t")
	for _, o := range simulate.OutcomeOrder {
		fmt.Fprintf(tw, "%s\t", o)
	}
	fmt.Fprintln(tw)
	cell := map[[2]engine.Outcome]int{}
	for _, t := range d.Matrix {
		cell[[2]engine.Outcome{t.From, t.To}] = t.Count
	}
	for _, from := range simulate.OutcomeOrder {
		fmt.Fprintf(tw, "  %s\t", from)
		for _, to := range simulate.OutcomeOrder {
			fmt.Fprintf(tw, "%d\t", cell[[2]engine.Outcome{from, to}])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if len(d.Flips) == 0 {
		fmt.Fprintln(w, "\nNo request changes outcome.")
		return
	}
	fmt.Fprintln(w, "\nChanged requests:")
	for _, g := range d.Flips {
		line := fmt.Sprintf("%d× %s → %s: %s, was %s", g.Count, g.From, g.To, deciderName(g.Candidate), deciderName(g.Base))
		switch {
		case g.Widens:
			line = paint(colour, colRed, "WIDENS "+line)
		case simulate.OutcomeRank(g.To) > simulate.OutcomeRank(g.From):
			line = paint(colour, colGreen, line)
		}
		fmt.Fprintf(w, "  %s\n", line)
		for _, e := range g.Examples {
			what := e.TargetExecutablePath
			if what == "" {
				what = e.ToolName
			}
			fmt.Fprintf(w, "      %s  %s  %s  %s  %s\n", e.RequestedAt.UTC().Format(time.RFC3339), e.ID, e.Flow, e.SubjectUsername, what)
		}
	}
	fmt.Fprintf(w, "\nRules: base %d never fired, %d always shadowed; candidate %d never fired, %d always shadowed\n",
		len(d.Base.NeverFired), len(d.Base.AlwaysShadowed), len(d.Candidate.NeverFired), len(d.Candidate.AlwaysShadowed))
}
