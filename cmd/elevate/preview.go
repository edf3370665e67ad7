package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/elevate-pam/elevate/dsl"
	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/simulate"
	"github.com/elevate-pam/elevate/store"
)

const previewUsage = `Usage: elevate preview --data DIR [--org ORG] (--rule FILE.pam | --json FILE)
         [--window-days N] [--flow FLOW] [--site ID] [--now T] [--max-scan N]
         [--format text|json]

Tries one draft rule against the stored history of a data directory, as
POST /api/v1/pam/rules/preview does: how many of the organisation's recent
requests (the last --window-days days, newest first) the draft's criteria
match, their statuses, and the newest matches. The draft is evaluated alone
as an enabled, organisation-wide rule: its verdict, name and priority do
not matter, and nothing else (other rules, software policies, site scope)
takes part.

The draft is a rule file declaring exactly one rule (--rule; it may
declare signer groups too, and may name the organisation's stored signer
groups), or the API's criteria JSON (--json; the body of a preview or
create request: verdict, name and priority are ignored; its windowDays,
flowType and siteId apply unless the flags give them). The organisation's
stored signer groups are available to either.

ORG is an organisation id or name, needed when the data directory holds
more than one. The directory must not be open in a running server: stop it,
or ask the server (POST /api/v1/pam/rules/preview).

Exit codes: 0 done, 1 failure, 2 usage, 3 the draft does not compile.

Flags:
`

// previewFlags are the preview's options besides the draft.
type previewFlags struct {
	windowDays int
	flow       string
	site       string
	set        map[string]bool // flags given on the command line
}

func runPreview(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("preview", previewUsage, stderr)
	dataDir := fs.String("data", "", "the server's data directory (required)")
	orgArg := fs.String("org", "", "the organisation (id or name); needed when there are several")
	ruleFile := fs.String("rule", "", "the draft: a rule file declaring exactly one rule")
	jsonFile := fs.String("json", "", "the draft: the API's criteria JSON")
	var pf previewFlags
	fs.IntVar(&pf.windowDays, "window-days", simulate.DefaultWindowDays, "look back this many days (1 to 90)")
	fs.StringVar(&pf.flow, "flow", "", "only requests of this flow: uac_intercept, tech_jit_admin or ai_tool_action")
	fs.StringVar(&pf.site, "site", "", "only requests of this site (id)")
	nowArg := fs.String("now", "", "the end of the window, RFC 3339 (default: now)")
	maxScan := fs.Int("max-scan", simulate.DefaultMaxScan, "read at most this many requests")
	format := fs.String("format", "text", "text or json")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "elevate preview: "+format+"\n", a...)
		return code
	}
	if fs.NArg() != 0 || *dataDir == "" || (*ruleFile == "") == (*jsonFile == "") {
		fs.Usage()
		return exitUsage
	}
	pf.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { pf.set[f.Name] = true })
	if *format != "text" && *format != "json" {
		return fail(exitUsage, "--format must be text or json")
	}
	if err := pf.check(flagNames); err != nil {
		return fail(exitUsage, "%v", err)
	}
	if *maxScan < 1 {
		return fail(exitUsage, "--max-scan must be at least 1")
	}
	now := time.Now().UTC()
	if *nowArg != "" {
		t, err := time.Parse(time.RFC3339, *nowArg)
		if err != nil {
			return fail(exitUsage, "--now: %q is not an RFC 3339 time (2026-03-01T09:00:00Z)", *nowArg)
		}
		now = t.UTC()
	}
	draftPath := *ruleFile
	if draftPath == "" {
		draftPath = *jsonFile
	}
	src, err := os.ReadFile(draftPath)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}

	if *ruleFile != "" {
		// Syntax first: a broken draft needs no data directory to report.
		if _, errs := syntax.ParseFile(draftPath, string(src)); len(errs) > 0 {
			repo := dsl.Load(map[string]string{draftPath: string(src)})
			dsl.Render(stderr, repo.Diags, repo.Sources())
			return fail(exitCompile, "%s: %d error(s)", draftPath, repo.Diags.Errors())
		}
	}

	st, code := openPreviewData(*dataDir, stderr)
	if st == nil {
		return code
	}
	defer st.Close()

	orgRef := *orgArg
	if orgRef == "" && *ruleFile != "" {
		orgRef = declaredOrg(draftPath, string(src)) // the file's `org "…"`, if any
	}
	org, err := pickOrg(st, orgRef)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	var stored []engine.SignerGroup
	if err := st.View(func(sn *store.Snapshot) error {
		rs, err := sn.RuleSet(org.ID)
		if err == nil {
			stored = rs.SignerGroups
		}
		return err
	}); err != nil {
		return fail(exitInternal, "%v", err)
	}

	var draft engine.Rule
	var groups []engine.SignerGroup
	if *ruleFile != "" {
		var ok bool
		if draft, groups, code, ok = pamDraft(draftPath, string(src), org.ID, stored, stderr); !ok {
			return code
		}
	} else {
		var msgs []string
		if draft, msgs, code = jsonDraft(src, &pf); msgs != nil {
			for _, m := range msgs {
				fmt.Fprintf(stderr, "%s: %s\n", draftPath, m)
			}
			return code
		}
		groups = stored
	}
	site := ""
	if pf.site != "" {
		id, _ := store.ParseID(pf.site)
		site = id.String()
		if err := st.View(func(sn *store.Snapshot) error {
			_, err := sn.Site(org.ID, site)
			return err
		}); errors.Is(err, store.ErrNotFound) {
			return fail(exitUsage, "organisation %q has no site %s", org.Name, pf.site)
		} else if err != nil {
			return fail(exitInternal, "%v", err)
		}
	}

	res, err := simulate.Preview(st, simulate.PreviewInput{OrgID: org.ID, Draft: draft, Groups: groups,
		WindowDays: pf.windowDays, Flow: engine.FlowType(pf.flow), SiteID: site, Now: now, MaxScan: *maxScan})
	if err != nil {
		return fail(exitInternal, "%v", err)
	}
	if *format == "json" {
		if err := printJSON(stdout, res); err != nil {
			return fail(exitInternal, "%v", err)
		}
		return exitOK
	}
	printPreview(stdout, previewHead{draft: draft.Name, org: org, now: now, flow: pf.flow, site: site, maxScan: *maxScan},
		res, isTerminal(stdout))
	return exitOK
}

// The window, flow and site options as flags and as preview body fields.
var (
	flagNames = [3]string{"--window-days", "--flow", "--site"}
	bodyNames = [3]string{"windowDays", "flowType", "siteId"}
)

// check validates the window, flow and site options, naming them names.
func (pf *previewFlags) check(names [3]string) error {
	if pf.windowDays < 1 || pf.windowDays > simulate.MaxWindowDays {
		return fmt.Errorf("%s must be 1 to %d", names[0], simulate.MaxWindowDays)
	}
	if pf.flow != "" && !engine.FlowType(pf.flow).Valid() {
		return fmt.Errorf("%s must be uac_intercept, tech_jit_admin or ai_tool_action", names[1])
	}
	if pf.site != "" {
		if _, err := store.ParseID(pf.site); err != nil {
			return fmt.Errorf("%s must be a site id (UUID)", names[2])
		}
	}
	return nil
}

// openPreviewData opens an existing data directory. The store has no
// read-only mode, so it is opened as the other commands open it, and a
// running server holding it is reported as such.
func openPreviewData(dir string, stderr io.Writer) (*store.Store, int) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(stderr, "elevate preview: no data directory at %s\n", dir)
		return nil, exitUsage
	case err == nil && !fi.IsDir():
		fmt.Fprintf(stderr, "elevate preview: %s is not a directory\n", dir)
		return nil, exitUsage
	}
	st, err := store.Open(dir, store.Options{})
	if errors.Is(err, store.ErrLocked) {
		fmt.Fprintf(stderr, "elevate preview: %s is open in another elevate process (a running server?): "+
			"stop it and run the preview again, or ask the server: POST /api/v1/pam/rules/preview\n", dir)
		return nil, exitInternal
	}
	if err != nil {
		fmt.Fprintf(stderr, "elevate preview: %v\n", err)
		return nil, exitInternal
	}
	return st, exitOK
}

// pickOrg resolves --org, or takes the only organisation there is.
func pickOrg(st *store.Store, ref string) (*store.Org, error) {
	var orgs []store.Org
	if err := st.View(func(sn *store.Snapshot) error {
		var err error
		orgs, err = sn.Orgs()
		return err
	}); err != nil {
		return nil, err
	}
	if ref == "" {
		switch len(orgs) {
		case 0:
			return nil, errors.New("the data directory has no organisation")
		case 1:
			return &orgs[0], nil
		}
		names := make([]string, len(orgs))
		for i, o := range orgs {
			names[i] = fmt.Sprintf("%q (%s)", o.Name, o.ID)
		}
		return nil, fmt.Errorf("the data directory has %d organisations: choose one with --org: %s", len(orgs), strings.Join(names, ", "))
	}
	id, err := resolveOrg(st, ref)
	if err != nil {
		return nil, fmt.Errorf("--org: %v", err)
	}
	for i := range orgs {
		if orgs[i].ID == id {
			return &orgs[i], nil
		}
	}
	return nil, fmt.Errorf("--org: no organisation has the id or name %q", ref)
}

// declaredOrg is the name in a rule file's org declaration ("" when it has
// none or does not parse).
func declaredOrg(path, src string) string {
	f, errs := syntax.ParseFile(path, src)
	if len(errs) > 0 || f == nil {
		return ""
	}
	for _, d := range f.Decls {
		if d.Kind == syntax.KindOrg && d.Label != nil {
			return d.Label.Value
		}
	}
	return ""
}

// storedGroupsFile is the name under which the organisation's stored signer
// groups are declared beside the draft, so the draft can name them.
const storedGroupsFile = "(stored signer groups).pam"

// pamDraft compiles a rule file declaring one rule. The organisation's
// stored signer groups are declared beside it (those whose name is unique
// and which the file does not declare itself), so the file may name them;
// the groups returned are the file's and the stored ones, in the
// organisation orgID. Problems are printed as file:line:col.
func pamDraft(path, src, orgID string, stored []engine.SignerGroup, stderr io.Writer) (engine.Rule, []engine.SignerGroup, int, bool) {
	srcs := map[string]string{path: src}
	if f, errs := syntax.ParseFile(path, src); len(errs) == 0 && f != nil {
		if extra := storedGroupDecls(f, stored); extra != "" {
			srcs[filepath.Join(filepath.Dir(path), storedGroupsFile)] = extra
		}
	}
	repo := dsl.Load(srcs)
	rep := dsl.Check(repo, dsl.CheckOptions{NoLint: true, Run: func(string) bool { return false }})
	if len(rep.Diags) > 0 {
		dsl.Render(stderr, rep.Diags, repo.Sources())
	}
	if n := rep.Diags.Errors(); n > 0 {
		fmt.Fprintf(stderr, "elevate preview: %s: %d error(s)\n", path, n)
		return engine.Rule{}, nil, exitCompile, false
	}
	var rules []engine.Rule
	var org *dsl.Org
	for _, o := range repo.Orgs {
		if len(o.Rules) > 0 {
			org = o
		}
		rules = append(rules, o.Rules...)
	}
	if len(rules) != 1 {
		names := make([]string, len(rules))
		for i, r := range rules {
			names[i] = fmt.Sprintf("%q", r.Name)
		}
		what := "no rule"
		if len(rules) > 1 {
			what = fmt.Sprintf("%d rules (%s)", len(rules), strings.Join(names, ", "))
		}
		fmt.Fprintf(stderr, "elevate preview: %s declares %s; a draft is exactly one rule\n", path, what)
		return engine.Rule{}, nil, exitUsage, false
	}
	var groups []engine.SignerGroup
	have := map[string]bool{}
	for _, g := range org.Groups {
		g.OrgID = orgID
		have[strings.ToLower(g.ID)] = true
		groups = append(groups, g)
	}
	for _, g := range stored {
		if !have[strings.ToLower(g.ID)] {
			groups = append(groups, g)
		}
	}
	return rules[0], groups, exitOK, true
}

// storedGroupDecls prints the stored signer groups a draft file may name:
// valid ones whose name is unique among them and not declared in f, in
// f's organisation ("" when there are none).
func storedGroupDecls(f *syntax.File, stored []engine.SignerGroup) string {
	org := ""
	declared := map[string]bool{}
	for _, d := range f.Decls {
		switch {
		case d.Kind == syntax.KindOrg && d.Label != nil && org == "":
			org = d.Label.Value
		case d.Kind == syntax.KindSigners && d.Label != nil:
			declared[d.Label.Value] = true
		}
	}
	count := map[string]int{}
	for _, g := range stored {
		count[g.Name]++
	}
	out := &syntax.File{}
	if org != "" {
		out.Decls = append(out.Decls, &syntax.Block{Kind: syntax.KindOrg, Label: &syntax.Lit{Kind: syntax.String, Value: org, Text: syntax.Quote(org)}})
	}
	n := 0
	for _, g := range stored {
		if declared[g.Name] || count[g.Name] > 1 || engine.ValidateSignerGroup(&g) != nil {
			continue
		}
		g = engine.NormalizeSignerGroup(g)
		g.OrgID = org // keeps the stored id printed (it is not the id derived in org)
		out.Decls = append(out.Decls, dsl.SignerGroupBlock(g))
		n++
	}
	if n == 0 {
		return ""
	}
	return string(syntax.Format(out))
}

// jsonDraft decodes the API's criteria JSON as the preview endpoint does:
// verdict, name, priority and the other non-criteria fields are dropped,
// windowDays, flowType and siteId set the options the flags did not. Any
// problem is a message for the file (and the exit code).
func jsonDraft(data []byte, pf *previewFlags) (engine.Rule, []string, int) {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(data, &body); err != nil {
		return engine.Rule{}, []string{"not a JSON object: " + err.Error()}, exitCompile
	}
	var msgs []string
	for k, v := range body {
		if !slices.Contains(simulate.PreviewOptionKeys, k) {
			continue // the draft's, read below
		}
		if pf.set[strings.TrimPrefix(flagNames[slices.Index(bodyNames[:], k)], "--")] || string(v) == "null" {
			continue
		}
		var err error
		switch k {
		case "windowDays":
			err = json.Unmarshal(v, &pf.windowDays)
		case "flowType":
			err = json.Unmarshal(v, &pf.flow)
		case "siteId":
			err = json.Unmarshal(v, &pf.site)
		}
		if err != nil {
			msgs = append(msgs, k+": has the wrong type")
		}
	}
	if msgs != nil {
		return engine.Rule{}, msgs, exitCompile
	}
	if err := pf.check(bodyNames); err != nil {
		return engine.Rule{}, []string{err.Error()}, exitCompile
	}
	d, err := simulate.DraftFromBody(body)
	if err != nil {
		var fes engine.FieldErrors
		if errors.As(err, &fes) {
			for _, fe := range fes {
				msgs = append(msgs, fe.Error())
			}
		} else {
			msgs = []string{err.Error()}
		}
		return engine.Rule{}, msgs, exitCompile
	}
	return d, nil, exitOK
}

// previewHead is what the text report says about the run.
type previewHead struct {
	draft   string
	org     *store.Org
	now     time.Time
	flow    string
	site    string
	maxScan int
}

func printPreview(w io.Writer, h previewHead, r *simulate.PreviewResult, colour bool) {
	title := "Preview"
	if h.draft != "" && h.draft != "preview" {
		title += fmt.Sprintf(" of %q", h.draft)
	}
	fmt.Fprintf(w, "%s\n", paint(colour, colBold, fmt.Sprintf("%s in %s: the %d days to %s", title, h.org.Name, r.WindowDays, h.now.Format(time.RFC3339))))
	var only []string
	if h.flow != "" {
		only = append(only, "flow "+h.flow)
	}
	if h.site != "" {
		only = append(only, "site "+h.site)
	}
	if only != nil {
		fmt.Fprintf(w, "Only requests of %s\n", strings.Join(only, ", "))
	}
	matched := fmt.Sprintf("Matched %d of %d requests scanned", r.TotalMatched, r.TotalScanned)
	col := colGreen
	if r.TotalMatched == 0 {
		col = colBold
	}
	fmt.Fprintf(w, "\n%s\n", paint(colour, col, matched))
	if r.Truncated {
		fmt.Fprintf(w, "%s\n", paint(colour, colRed, fmt.Sprintf("Truncated: the scan stopped after %d requests (--max-scan); older requests were not read", h.maxScan)))
	}
	fmt.Fprintln(w, "\nBy status:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, s := range store.Statuses {
		n := r.StatusBreakdown[string(s)]
		fmt.Fprintf(tw, "  %s\t%d\t%s\t\n", s, n, pct(n, r.TotalMatched))
	}
	tw.Flush()
	if len(r.Sample) == 0 {
		fmt.Fprintln(w, "\nNo request matches.")
		return
	}
	fmt.Fprintf(w, "\nNewest matches (%d of %d):\n", len(r.Sample), r.TotalMatched)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  REQUESTED\tSTATUS\tFLOW\tUSER\tTARGET\tID")
	deref := func(s *string) string {
		if s == nil {
			return "-"
		}
		return *s
	}
	for _, s := range r.Sample {
		what := deref(s.TargetExecutablePath)
		if s.ToolName != nil {
			what = *s.ToolName
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", s.RequestedAt.UTC().Format(time.RFC3339), s.Status, s.FlowType, deref(s.SubjectUsername), what, s.ID)
	}
	tw.Flush()
}
