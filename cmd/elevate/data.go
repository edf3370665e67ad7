package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/store"
	"github.com/elevate-pam/elevate/transfer"
)

// The data commands work on a data directory (--data): export and import
// its state as JSON Lines, and verify its audit chains.

const exportDataUsage = `Usage: elevate export --data DIR [--org ORG] [--from T] [--to T]
         [--all | --rules --signer-groups --inventory --policies] [--no-requests]

Writes the state of a data directory to stdout as JSON Lines. By default
only elevation requests, oldest first: each line is one API row, the form
preview and simulation read. --all adds everything else (inventory, signer
groups, rules, policies) before the requests, in the order import needs;
the other flags add one kind each. ORG is an organisation id or name. T is
an RFC 3339 time (2026-03-01T09:00:00Z) or a date (2026-03-01: --from at
the start of the day, --to at its end, UTC); both ends are inclusive and
bound requests only. Exit status: 0 done, 1 failure, 2 usage.

Flags:
`

const importUsage = `Usage: elevate import --data DIR [--dry-run] [FILE]

Loads JSON Lines (as export writes them) from FILE or stdin into a data
directory, which is created if needed. Every line is validated first; if
any is wrong, each problem is printed as FILE:LINE: message and nothing is
written. Rows already stored with identical content are skipped, so an
import that was interrupted completes when run again. A summary goes to
stderr. Exit status: 0 done, 1 invalid input or failure, 2 usage.

Flags:
`

const auditUsage = `Usage: elevate audit verify --data DIR [--anchor FILE]
       elevate audit head --data DIR > FILE

verify checks every organisation's hash-chained audit log from its first
record and prints each broken link (organisation, record, key, reason).
With --anchor it also checks that every head recorded earlier by
"elevate audit head" is still in its chain with the same hash: the chain
alone cannot show records removed from its end, or a chain rewritten
consistently, by someone who can write the data directory; an anchor kept
elsewhere can. Exit status: 0 every chain verifies, 1 a chain is broken or
the check failed, 2 usage.

head prints each organisation's last record (orgId, seq, hash) as JSON
Lines, to keep outside the data directory.

Flags:
`

// hasDataFlag reports whether args name a data directory (--data), which
// turns export into the export of stored state.
func hasDataFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "data" {
			return true
		}
	}
	return false
}

// openData opens the store in dir. When mustExist, a missing directory is
// a usage error rather than a new, empty store. nil means the caller
// returns code.
func openData(cmd, dir string, mustExist bool, stderr io.Writer) (st *store.Store, code int) {
	if mustExist {
		if fi, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "elevate %s: no data directory at %s\n", cmd, dir)
			return nil, exitUsage
		} else if err == nil && !fi.IsDir() {
			fmt.Fprintf(stderr, "elevate %s: %s is not a directory\n", cmd, dir)
			return nil, exitUsage
		}
	}
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "elevate %s: %v\n", cmd, err)
		return nil, exitInternal
	}
	return st, exitOK
}

// parseTime reads a --from or --to value: RFC 3339, or a date meaning the
// start (or, for end, the last nanosecond) of that day in UTC.
func parseTime(flag, s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			d = d.AddDate(0, 0, 1).Add(-time.Nanosecond)
		}
		return d, nil
	}
	return time.Time{}, fmt.Errorf("--%s: %q is neither an RFC 3339 time nor a date (YYYY-MM-DD)", flag, s)
}

// resolveOrg turns an organisation id or name into its id. A name must
// match one organisation exactly, or else one ignoring case.
func resolveOrg(st *store.Store, s string) (string, error) {
	var orgs []store.Org
	var byID *store.Org
	err := st.View(func(sn *store.Snapshot) error {
		if _, err := store.ParseID(s); err == nil {
			o, err := sn.Org(s)
			if err == nil {
				byID = o
				return nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		var err error
		orgs, err = sn.Orgs()
		return err
	})
	if err != nil {
		return "", err
	}
	if byID != nil {
		return byID.ID, nil
	}
	var exact, folded []store.Org
	for _, o := range orgs {
		switch {
		case o.Name == s:
			exact = append(exact, o)
		case strings.EqualFold(strings.TrimSpace(o.Name), strings.TrimSpace(s)):
			folded = append(folded, o)
		}
	}
	match := exact
	if len(match) == 0 {
		match = folded
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("no organisation has the id or name %q", s)
	case 1:
		return match[0].ID, nil
	}
	ids := make([]string, len(match))
	for i, o := range match {
		ids[i] = fmt.Sprintf("%s (%q)", o.ID, o.Name)
	}
	return "", fmt.Errorf("%d organisations are named %q: %s; give the id", len(match), s, strings.Join(ids, ", "))
}

func runDataExport(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("export", exportDataUsage, stderr)
	dir := fs.String("data", "", "the data directory")
	orgArg := fs.String("org", "", "export only this organisation (id or name)")
	fromArg := fs.String("from", "", "export requests from this time on (inclusive)")
	toArg := fs.String("to", "", "export requests up to this time (inclusive)")
	rules := fs.Bool("rules", false, "add rules")
	signerGroups := fs.Bool("signer-groups", false, "add signer groups")
	inventory := fs.Bool("inventory", false, "add partners, organisations, sites, device groups and devices")
	policies := fs.Bool("policies", false, "add configuration policies")
	all := fs.Bool("all", false, "add everything")
	noRequests := fs.Bool("no-requests", false, "leave the elevation requests out")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 || *dir == "" {
		fs.Usage()
		return exitUsage
	}
	o := transfer.ExportOptions{
		Requests:     !*noRequests,
		Rules:        *rules || *all,
		SignerGroups: *signerGroups || *all,
		Inventory:    *inventory || *all,
		Policies:     *policies || *all,
	}
	var err error
	if o.From, err = parseTime("from", *fromArg, false); err == nil {
		o.To, err = parseTime("to", *toArg, true)
	}
	if err != nil {
		fmt.Fprintf(stderr, "elevate export: %v\n", err)
		return exitUsage
	}
	if !o.From.IsZero() && !o.To.IsZero() && o.From.After(o.To) {
		fmt.Fprintln(stderr, "elevate export: --from is after --to")
		return exitUsage
	}
	if !o.Requests && !o.Rules && !o.SignerGroups && !o.Inventory && !o.Policies {
		fmt.Fprintln(stderr, "elevate export: nothing to export (--no-requests and no other kind chosen)")
		return exitUsage
	}
	st, code := openData("export", *dir, true, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	if *orgArg != "" {
		if o.OrgID, err = resolveOrg(st, *orgArg); err != nil {
			fmt.Fprintf(stderr, "elevate export: --org: %v\n", err)
			return exitUsage
		}
	}
	stats, err := transfer.Export(st, stdout, o)
	if err != nil {
		fmt.Fprintf(stderr, "elevate export: %v\n", err)
		return exitInternal
	}
	fmt.Fprintf(stderr, "exported %s\n", summary(stats, false))
	return exitOK
}

// summary renders import or export counts.
func summary(s transfer.Stats, skipped bool) string {
	out := fmt.Sprintf("%d requests, %d rules, %d signer groups, %d policies, %d inventory rows",
		s.Requests, s.Rules, s.SignerGroups, s.Policies, s.Inventory())
	if skipped {
		out += fmt.Sprintf("; skipped %d", s.Skipped)
	}
	return out
}

func runImport(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("import", importUsage, stderr)
	dir := fs.String("data", "", "the data directory")
	dryRun := fs.Bool("dry-run", false, "validate and count, write nothing")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 1 || *dir == "" {
		fs.Usage()
		return exitUsage
	}
	name, in := "<stdin>", stdin
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		name = fs.Arg(0)
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "elevate import: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		in = f
	}
	st, code := openData("import", *dir, false, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	stats, err := transfer.Import(st, in, transfer.ImportOptions{DryRun: *dryRun})
	var ie *transfer.ImportError
	switch {
	case errors.As(err, &ie):
		for _, le := range ie.Errors {
			fmt.Fprintf(stderr, "%s:%d: %s\n", name, le.Line, le.Msg)
		}
		fmt.Fprintf(stderr, "elevate import: %d invalid line(s); nothing imported\n", len(ie.Errors))
		return exitInternal
	case err != nil:
		fmt.Fprintf(stderr, "elevate import: %v\n", err)
		if stats != (transfer.Stats{}) {
			fmt.Fprintf(stderr, "elevate import: written before the failure: %s; run the same import again to complete it\n", summary(stats, true))
		}
		return exitInternal
	case *dryRun:
		fmt.Fprintf(stderr, "would import %s\n", summary(stats, true))
	default:
		fmt.Fprintf(stderr, "imported %s\n", summary(stats, true))
	}
	return exitOK
}

func runAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "verify" && args[0] != "head" {
		fmt.Fprint(stderr, auditUsage)
		return exitUsage
	}
	sub := args[0]
	fs := newFlags("audit "+sub, auditUsage, stderr)
	dir := fs.String("data", "", "the data directory")
	anchor := fs.String("anchor", "", "verify: a file of heads printed earlier by `elevate audit head`")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() != 0 || *dir == "" || sub == "head" && *anchor != "" {
		fs.Usage()
		return exitUsage
	}
	var anchors []store.AuditHead
	if *anchor != "" {
		var err error
		if anchors, err = readAnchors(*anchor); err != nil {
			fmt.Fprintf(stderr, "elevate audit verify: %v\n", err)
			return exitUsage
		}
	}
	st, code := openData("audit "+sub, *dir, true, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	if sub == "head" {
		heads, err := st.AuditHeads()
		if err != nil {
			fmt.Fprintf(stderr, "elevate audit head: %v\n", err)
			return exitInternal
		}
		enc := json.NewEncoder(stdout)
		for _, h := range heads {
			if err := enc.Encode(h); err != nil {
				fmt.Fprintf(stderr, "elevate audit head: %v\n", err)
				return exitInternal
			}
		}
		return exitOK
	}
	rep, err := st.VerifyAudit()
	if err != nil {
		fmt.Fprintf(stderr, "elevate audit verify: %v\n", err)
		return exitInternal
	}
	breaks, err := st.CheckAnchors(anchors)
	if err != nil {
		fmt.Fprintf(stderr, "elevate audit verify: %v\n", err)
		return exitInternal
	}
	rep.Breaks = append(rep.Breaks, breaks...)
	return reportAudit(rep, stdout)
}

// readAnchors reads the JSON Lines `elevate audit head` prints.
func readAnchors(path string) ([]store.AuditHead, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []store.AuditHead
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var h store.AuditHead
		if err := json.Unmarshal([]byte(line), &h); err != nil || h.OrgID == "" || h.Seq == 0 || h.Hash == "" {
			return nil, fmt.Errorf("%s:%d: not an audit head (orgId, seq, hash)", path, i+1)
		}
		out = append(out, h)
	}
	return out, nil
}

// reportAudit prints a verification report and returns the exit status.
func reportAudit(rep *store.VerifyReport, stdout io.Writer) int {
	if len(rep.Breaks) == 0 {
		fmt.Fprintf(stdout, "ok: %d records in %d organisations\n", rep.Records, rep.Orgs)
		return exitOK
	}
	for _, b := range rep.Breaks {
		fmt.Fprintf(stdout, "broken: org %s, record %d (%s): %s\n", b.OrgID, b.Seq, b.Key, b.Reason)
	}
	fmt.Fprintf(stdout, "FAILED: %d of %d organisations have a broken audit chain (%d records checked)\n",
		len(rep.Breaks), rep.Orgs, rep.Records)
	return exitInternal
}
