package transfer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/store"
)

// Fixed ids of the fixture.
const (
	partnerP = "01900000-0000-7000-8000-00000000000a"
	orgA     = "01900000-0000-7000-8000-0000000000a1"
	orgB     = "01900000-0000-7000-8000-0000000000b1"
	siteA    = "01900000-0000-7000-8000-0000000005a1"
	siteB    = "01900000-0000-7000-8000-0000000005b1"
	groupA   = "01900000-0000-7000-8000-0000000006a1"
	devA1    = "01900000-0000-7000-8000-000000000da1"
	devA2    = "01900000-0000-7000-8000-000000000da2"
	devB1    = "01900000-0000-7000-8000-000000000db1"
	sgA      = "01900000-0000-7000-8000-0000000009a1"
	ruleA1   = "01900000-0000-7000-8000-0000000001a1"
	ruleA2   = "01900000-0000-7000-8000-0000000001a2"
	ruleB1   = "01900000-0000-7000-8000-0000000001b1"
	polA     = "01900000-0000-7000-8000-000000000ca1"
	polP     = "01900000-0000-7000-8000-000000000caa"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)

func sp(s string) *string { return &s }
func ip(i int) *int       { return &i }

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func reqID(i int) string { return fmt.Sprintf("01900000-0000-7000-8000-%012x", 0x100000+i) }

// fixtureRequests returns a request in every status of every flow, spread
// over both organisations, with the optional fields exercised.
func fixtureRequests() []*store.Request {
	var out []*store.Request
	flows := []engine.FlowType{engine.FlowUAC, engine.FlowToolAct, engine.FlowJITAdmin}
	i := 0
	for _, flow := range flows {
		for _, status := range store.Statuses {
			i++
			org, dev, site := orgA, devA1, siteA
			if i%3 == 0 {
				org, dev, site = orgB, devB1, ""
			}
			at := t0.Add(time.Duration(i/2) * time.Minute) // pairs share a requestedAt
			r := &store.Request{
				ID: reqID(i), OrgID: org, DeviceID: dev, SiteID: site, Flow: flow, Status: status,
				SubjectUsername: fmt.Sprintf("user%d", i), RequestedAt: at, CreatedAt: at.Add(time.Millisecond),
				Decision: store.DecisionRecord{Outcome: engine.OutcomePending, DecidedBy: engine.DecidedByOrgDefault, RuleSetVersion: 3},
			}
			switch flow {
			case engine.FlowUAC:
				r.TargetExecutablePath = `C:\Tools\setup.exe`
				r.TargetExecutableHash = strings.Repeat("ab", 32)
				r.TargetExecutableSigner = "Example <Corp> & Co"
				r.ParentImage = `C:\Windows\explorer.exe`
				r.CommandLine = `cmd /c "a && b > out.txt" \u003c literal`
				pid := int64(4000 + i)
				r.PID = &pid
				if i%2 == 0 {
					r.AdGroups = []string{"Admins", "Help Desk"}
				} else {
					r.AdGroups = []string{}
				}
			case engine.FlowToolAct:
				r.ToolName = "shell.exec"
				r.RiskTier = ip(i % 5)
				r.ActionDigest = strings.Repeat("0f", 32)
				r.ExecutionID = fmt.Sprintf("exec-%d", i)
			case engine.FlowJITAdmin:
				r.Reason = "patch night"
				r.SubjectUserID = "tech-7"
			}
			switch status {
			case store.StatusApproved:
				r.ApprovedAt, r.ApprovedBy, r.ApprovedByName, r.ApprovalReason = at.Add(time.Minute), "admin-1", "Ada", "ok"
				r.DurationMinutes, r.ExpiresAt = 30, at.Add(31*time.Minute)
			case store.StatusAutoApproved:
				r.Decision = store.DecisionRecord{Outcome: engine.OutcomeAutoApproved, Verdict: engine.VerdictAutoApprove,
					DecidedBy: engine.DecidedByRule, RuleID: ruleA1, RuleName: "vendors", RuleSetVersion: 3}
				r.ApprovedAt, r.DurationMinutes, r.ExpiresAt = at, 15, at.Add(15*time.Minute)
			case store.StatusDenied:
				r.DeniedAt, r.DeniedBy, r.DeniedByName, r.DenialReason = at.Add(time.Minute), "admin-2", "Bob", "no"
			case store.StatusExpired:
				r.ExpiredAt, r.ExpiredCause = at.Add(time.Hour), "stale"
			case store.StatusRevoked:
				r.ApprovedAt, r.ApprovedBy = at.Add(time.Minute), "admin-1"
				r.RevokedAt, r.RevokedBy, r.RevokedByName, r.RevokedReason = at.Add(2*time.Minute), "admin-3", "Cy", "oops"
			case store.StatusActuating:
				r.ApprovedAt, r.ApprovedBy, r.DurationMinutes, r.ExpiresAt = at.Add(time.Minute), "admin-1", 30, at.Add(31*time.Minute)
				r.ActuatedAt, r.ActuatedBy, r.ActuationCommandID = at.Add(2*time.Minute), "admin-1", reqID(900+i)
			}
			out = append(out, r)
		}
	}
	return out
}

// fixture fills a store with inventory, rules, signer groups, policies
// and requests.
func fixture(t *testing.T, st *store.Store) {
	t.Helper()
	tru := true
	err := st.Update(func(tx *store.Tx) error {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		must(tx.PutPartner(&store.Partner{ID: partnerP, Name: "MSP", CreatedAt: t0}))
		must(tx.PutOrg(&store.Org{ID: orgA, PartnerID: partnerP, Name: "Acme", CreatedAt: t0,
			DefaultUnmatchedVerdict: engine.VerdictAutoDeny, UacInterceptionEnabled: &tru, ActuatorEnabled: true}))
		must(tx.PutOrg(&store.Org{ID: orgB, Name: "Beta"}))
		must(tx.PutSite(&store.Site{ID: siteA, OrgID: orgA, Name: "HQ", CreatedAt: t0}))
		must(tx.PutSite(&store.Site{ID: siteB, OrgID: orgB, Name: "Lab"}))
		must(tx.PutDeviceGroup(&store.DeviceGroup{ID: groupA, OrgID: orgA, Name: "Laptops"}))
		must(tx.PutDevice(&store.Device{ID: devA1, OrgID: orgA, SiteID: siteA, GroupIDs: []string{groupA}, Hostname: "ws-1",
			OS: "windows", TokenHash: store.TokenHash("secret-1"), Attributes: map[string]any{"ram": 16.0, "tag": "<a&b>"}, CreatedAt: t0}))
		must(tx.PutDevice(&store.Device{ID: devA2, OrgID: orgA, Hostname: "ws-2", Status: store.DeviceQuarantined}))
		must(tx.PutDevice(&store.Device{ID: devB1, OrgID: orgB, Hostname: "lab-1", TokenHash: store.TokenHash("secret-2")}))
		_, err := tx.PutSignerGroup(&engine.SignerGroup{ID: sgA, OrgID: orgA, Name: "vendors", Description: sp("trusted"),
			Signers: []engine.SignerEntry{engine.CNEntry("Mozilla Corporation"), {SubjectCN: sp("Google LLC"), Thumbprint: sp(strings.Repeat("c", 64))}}})
		must(err)
		_, err = tx.PutRule(&engine.Rule{ID: ruleA1, OrgID: orgA, Name: "vendors", Enabled: true, Priority: 10,
			Verdict: engine.VerdictAutoApprove, ApprovalDurationMinutes: ip(15), MatchSignerGroupID: sp(sgA),
			MatchPathGlob: sp(`C:\Program Files\**`), CreatedAt: t0})
		must(err)
		_, err = tx.PutRule(&engine.Rule{ID: ruleA2, OrgID: orgA, SiteID: sp(siteA), Name: "risky tools", Enabled: true, Priority: 20,
			Verdict: engine.VerdictAutoDeny, MatchToolName: sp("shell.*"), MatchRiskTier: ip(4),
			TimeWindow: &engine.TimeWindow{Start: "22:00", End: "06:00", Days: []int{1, 2}}})
		must(err)
		_, err = tx.PutRule(&engine.Rule{ID: ruleB1, OrgID: orgB, Name: "admins", Enabled: false, Priority: 100,
			Verdict: engine.VerdictRequireApproval, MatchUser: sp("admin<1>"), MatchNegate: []engine.NegateKey{engine.NegUser}})
		must(err)
		must(tx.PutPolicy(&policy.Policy{ID: polA, OrgID: orgA, Name: "pam on", Active: true,
			Features:    map[string]json.RawMessage{"pam": json.RawMessage(`{"uacInterceptionEnabled":true}`)},
			Assignments: []policy.Assignment{{Level: policy.LevelOrganization, Target: orgA, Priority: 1, Condition: `device.os == "windows"`}}}))
		must(tx.PutPolicy(&policy.Policy{ID: polP, PartnerID: partnerP, Name: "msp default", Active: false,
			Features:    map[string]json.RawMessage{"pam": json.RawMessage(`{"uacInterceptionEnabled":false}`)},
			Assignments: []policy.Assignment{}}))
		for _, r := range fixtureRequests() {
			must(tx.PutRequest(r))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func export(t *testing.T, st *store.Store, o ExportOptions) (string, Stats) {
	t.Helper()
	var b bytes.Buffer
	stats, err := Export(st, &b, o)
	if err != nil {
		t.Fatal(err)
	}
	return b.String(), stats
}

func importString(st *store.Store, s string) (Stats, error) {
	return Import(st, strings.NewReader(s), ImportOptions{At: t0.Add(24 * time.Hour)})
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

func kindOf(t *testing.T, line string) string {
	t.Helper()
	var h struct {
		Kind *string `json:"kind"`
	}
	if err := json.Unmarshal([]byte(line), &h); err != nil {
		t.Fatalf("line does not decode: %v\n%s", err, line)
	}
	if h.Kind == nil {
		return kindRequest
	}
	return *h.Kind
}

func auditCount(t *testing.T, st *store.Store, org string) int {
	t.Helper()
	n := 0
	if err := st.AuditLog(org, 1, func(*store.AuditRecord) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRoundTrip(t *testing.T) {
	src := openStore(t)
	fixture(t, src)
	all := ExportOptions{}.All()
	first, stats := export(t, src, all)

	want := Stats{Partners: 1, Orgs: 2, Sites: 2, DeviceGroups: 1, Devices: 3, SignerGroups: 1, Rules: 3, Policies: 2, Requests: 21}
	if stats != want {
		t.Errorf("export stats = %+v, want %+v", stats, want)
	}

	// Order: kinds in import order, then requests oldest first, ties by
	// org and id.
	order := []string{KindPartner, KindOrg, KindSite, KindDeviceGroup, KindDevice, KindSignerGroup, KindRule, KindPolicy, kindRequest}
	rank := -1
	var prev *store.Request
	for i, l := range lines(first) {
		k := kindOf(t, l)
		r := slices.Index(order, k)
		if r < rank {
			t.Fatalf("line %d: %s after %s", i+1, k, order[rank])
		}
		rank = r
		if k != kindRequest {
			continue
		}
		if strings.Contains(l, `"kind"`) {
			t.Errorf("line %d: a request line carries a kind", i+1)
		}
		var req store.Request
		if err := json.Unmarshal([]byte(l), &req); err != nil {
			t.Fatal(err)
		}
		if prev != nil {
			c := prev.RequestedAt.Compare(req.RequestedAt)
			if c > 0 || c == 0 && (prev.OrgID > req.OrgID || prev.OrgID == req.OrgID && prev.ID >= req.ID) {
				t.Errorf("line %d: request %s (%s, %s) is not after %s (%s, %s)", i+1, req.ID, req.RequestedAt, req.OrgID, prev.ID, prev.RequestedAt, prev.OrgID)
			}
		}
		prev = &req
	}
	// HTML characters are written as they are, while an escaped backslash
	// followed by "u003c" stays what it was.
	if !strings.Contains(first, `"Example <Corp> & Co"`) || !strings.Contains(first, `a && b > out.txt`) {
		t.Errorf("export escapes HTML characters:\n%s", first)
	}
	if !strings.Contains(first, `\\u003c literal`) {
		t.Errorf("export lost the literal backslash-u text:\n%s", first)
	}

	dst := openStore(t)
	got, err := importString(dst, first)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("import stats = %+v, want %+v", got, want)
	}
	second, _ := export(t, dst, all)
	if second != first {
		t.Errorf("export after import differs:\nfirst:\n%s\nsecond:\n%s", first, second)
	}

	// One audit record per organisation, chained.
	for _, c := range []struct {
		org  string
		want orgTally
	}{
		{orgA, orgTally{Requests: 14, Rules: 2, SignerGroups: 1, Policies: 1, Inventory: 5}},
		{orgB, orgTally{Requests: 7, Rules: 1, Inventory: 3}},
	} {
		var recs []store.AuditRecord
		if err := dst.AuditLog(c.org, 1, func(r *store.AuditRecord) bool { recs = append(recs, *r); return true }); err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Action != "imported" || recs[0].ActorKind != store.ActorSystem {
			t.Fatalf("org %s audit = %+v", c.org, recs)
		}
		var d orgTally
		if err := json.Unmarshal(recs[0].Details, &d); err != nil {
			t.Fatal(err)
		}
		if len(d.SHA256) != 64 {
			t.Errorf("sha256 = %q", d.SHA256)
		}
		d.SHA256 = ""
		if d != c.want {
			t.Errorf("org %s audit details = %+v, want %+v", c.org, d, c.want)
		}
	}
	rep, err := dst.VerifyAudit()
	if err != nil || len(rep.Breaks) != 0 || rep.Orgs != 2 || rep.Records != 2 {
		t.Errorf("VerifyAudit = %+v, %v", rep, err)
	}
}

func TestReimportSkipsEverything(t *testing.T) {
	src := openStore(t)
	fixture(t, src)
	file, _ := export(t, src, ExportOptions{}.All())
	dst := openStore(t)
	if _, err := importString(dst, file); err != nil {
		t.Fatal(err)
	}
	before, _ := export(t, dst, ExportOptions{}.All())
	ver, _ := dst.RuleVersion(orgA)

	stats, err := importString(dst, file)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Skipped: len(lines(file))}); stats != want {
		t.Errorf("re-import stats = %+v, want %+v", stats, want)
	}
	after, _ := export(t, dst, ExportOptions{}.All())
	if after != before {
		t.Error("re-import changed the store")
	}
	if v, _ := dst.RuleVersion(orgA); v != ver {
		t.Errorf("rule-set version moved from %d to %d on a re-import", ver, v)
	}
	if n := auditCount(t, dst, orgA); n != 2 {
		t.Errorf("org A has %d audit records, want 2 (one per import)", n)
	}
}

// A crash in the middle of the write leaves a prefix; importing the same
// file again completes it.
func TestResumeAfterPartialWrite(t *testing.T) {
	src := openStore(t)
	fixture(t, src)
	file, _ := export(t, src, ExportOptions{}.All())
	ls := lines(file)
	dst := openStore(t)
	prefix := strings.Join(ls[:20], "\n") + "\n"
	if _, err := importString(dst, prefix); err != nil {
		t.Fatal(err)
	}
	stats, err := importString(dst, file)
	if err != nil {
		t.Fatal(err)
	}
	// 15 lines of inventory, rules and policies, then 5 requests.
	if stats.Skipped != 20 || stats.Requests != 16 {
		t.Errorf("stats = %+v", stats)
	}
	got, _ := export(t, dst, ExportOptions{}.All())
	if got != file {
		t.Error("resumed import does not reproduce the export")
	}
}

func TestBadLinesWriteNothing(t *testing.T) {
	src := openStore(t)
	fixture(t, src)
	file, _ := export(t, src, ExportOptions{}.All())
	ls := lines(file)

	dst := openStore(t)
	// The target already holds org B's inventory.
	seed, _ := export(t, src, ExportOptions{OrgID: orgB, Inventory: true})
	if _, err := importString(dst, seed); err != nil {
		t.Fatal(err)
	}
	before, _ := export(t, dst, ExportOptions{}.All())
	auditsBefore := auditCount(t, dst, orgB)

	reqLine := ls[len(ls)-1]
	var req map[string]any
	json.Unmarshal([]byte(reqLine), &req)
	mod := func(change func(m map[string]any)) string {
		m := map[string]any{}
		for k, v := range req {
			m[k] = v
		}
		change(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	ghostOrg := "01900000-0000-7000-8000-00000000ffff"
	bad := []struct {
		line string
		msg  string
	}{
		{`{"kind":"org","id":`, "invalid JSON"},
		{`{"kind":"widget","id":"x"}`, `unknown kind "widget"`},
		{`[1,2]`, "not a JSON object"},
		{mod(func(m map[string]any) { m["status"] = "approvedish" }), "status"},
		{mod(func(m map[string]any) { m["id"] = reqID(5000); m["deviceId"] = "01900000-0000-7000-8000-00000000dddd" }), "device"},
		{`{"kind":"site","id":"` + reqID(6000) + `","orgId":"` + ghostOrg + `","name":"x"}`, "does not exist"},
		{`{"kind":"rule","id":"` + reqID(6001) + `","orgId":"` + orgA + `","name":"nothing","verdict":"auto_approve"}`, "criterion"},
		{`{"kind":"rule","id":"` + reqID(6002) + `","orgId":"` + orgA + `","name":"typo","verdict":"auto_approve","matchSignr":"x","matchUser":"u"}`, `unknown field(s) "matchSignr"`},
		{`{"kind":"policy","id":"` + reqID(6003) + `","orgId":"` + orgA + `","name":"p","features":{"remote":{}},"assignments":[]}`, "unknown feature"},
		{`{"kind":"signerGroup","id":"` + reqID(6004) + `","orgId":"` + orgA + `","name":"vendors","signers":["X"]}`, "already exists"},
		{mod(func(m map[string]any) { m["id"] = reqID(5001); m["orgId"] = orgA; m["deviceId"] = devB1 }), "another organisation"},
		{reqLine, "duplicate"}, // the same request again, after the original
	}
	// Interleave the bad lines with the good file, remembering their
	// numbers; the duplicate goes last, after its original.
	var in []string
	var wantLines []int
	for i, l := range ls {
		in = append(in, l)
		if i < len(bad)-1 {
			if i == 3 {
				in = append(in, "", "   ") // blank lines count, and are ignored
			}
			in = append(in, bad[i].line)
			wantLines = append(wantLines, len(in))
		}
	}
	in = append(in, bad[len(bad)-1].line)
	wantLines = append(wantLines, len(in))

	_, err := importString(dst, strings.Join(in, "\n"))
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want *ImportError", err)
	}
	var gotLines []int
	for _, le := range ie.Errors {
		gotLines = append(gotLines, le.Line)
	}
	if !slices.Equal(gotLines, wantLines) {
		t.Fatalf("error lines = %v, want %v\n%v", gotLines, wantLines, err)
	}
	for i, le := range ie.Errors {
		if !strings.Contains(le.Msg, bad[i].msg) {
			t.Errorf("line %d: message %q lacks %q", le.Line, le.Msg, bad[i].msg)
		}
	}
	if !strings.HasPrefix(err.Error(), fmt.Sprintf("transfer: %d invalid line(s), nothing imported\nline %d: ", len(bad), wantLines[0])) {
		t.Errorf("Error() = %q", err.Error())
	}
	after, _ := export(t, dst, ExportOptions{}.All())
	if after != before {
		t.Error("a refused import changed the store")
	}
	if n := auditCount(t, dst, orgB); n != auditsBefore {
		t.Errorf("a refused import appended audit records (%d → %d)", auditsBefore, n)
	}
}

func TestImportErrorShowsTwenty(t *testing.T) {
	var b strings.Builder
	for range 25 {
		b.WriteString("nope\n")
	}
	_, err := importString(openStore(t), b.String())
	var ie *ImportError
	if !errors.As(err, &ie) || len(ie.Errors) != 25 {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	if strings.Count(msg, "\nline ") != 20 || !strings.Contains(msg, "line 20: ") || strings.Contains(msg, "line 21: ") ||
		!strings.HasSuffix(msg, "… and 5 more") {
		t.Errorf("Error() =\n%s", msg)
	}
}

func TestConflictingRequest(t *testing.T) {
	src := openStore(t)
	fixture(t, src)
	file, _ := export(t, src, ExportOptions{}.All())
	dst := openStore(t)
	if _, err := importString(dst, file); err != nil {
		t.Fatal(err)
	}
	ls := lines(file)
	n := len(ls) - 3
	ls[n] = strings.Replace(ls[n], `"subjectUsername":"user`, `"subjectUsername":"mallory`, 1)
	_, err := importString(dst, strings.Join(ls, "\n"))
	var ie *ImportError
	if !errors.As(err, &ie) || len(ie.Errors) != 1 || ie.Errors[0].Line != n+1 ||
		!strings.Contains(ie.Errors[0].Msg, "already exists with different content") {
		t.Fatalf("err = %v", err)
	}
}

func TestOrgFilter(t *testing.T) {
	src := openStore(t)
	fixture(t, src)
	out, stats := export(t, src, ExportOptions{OrgID: strings.ToUpper(orgA)}.All())
	want := Stats{Partners: 1, Orgs: 1, Sites: 1, DeviceGroups: 1, Devices: 2, SignerGroups: 1, Rules: 2, Policies: 2, Requests: 14}
	if stats != want {
		t.Errorf("stats = %+v, want %+v", stats, want)
	}
	for _, id := range []string{orgB, devB1, ruleB1, siteB} {
		if strings.Contains(out, id) {
			t.Errorf("org A's export mentions %s", id)
		}
	}
	dst := openStore(t)
	if _, err := importString(dst, out); err != nil {
		t.Fatal(err)
	}
	again, _ := export(t, dst, ExportOptions{}.All())
	if again != out {
		t.Errorf("org A alone does not round-trip:\n%s\n---\n%s", out, again)
	}

	// Requests only: a plain list of API rows.
	rows, stats := export(t, src, ExportOptions{OrgID: orgB, Requests: true})
	if stats != (Stats{Requests: 7}) || strings.Contains(rows, `"kind"`) {
		t.Errorf("requests-only export: %+v\n%s", stats, rows)
	}

	if _, err := Export(src, &bytes.Buffer{}, ExportOptions{OrgID: "01900000-0000-7000-8000-000000000000", Requests: true}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown org: err = %v", err)
	}
}

func TestTimeFilter(t *testing.T) {
	src := openStore(t)
	fixture(t, src)
	from, to := t0.Add(2*time.Minute), t0.Add(4*time.Minute) // requests 4..9
	out, stats := export(t, src, ExportOptions{From: from, To: to, Requests: true})
	if stats.Requests != 6 {
		t.Fatalf("%d requests in range, want 6:\n%s", stats.Requests, out)
	}
	for _, l := range lines(out) {
		var r store.Request
		json.Unmarshal([]byte(l), &r)
		if r.RequestedAt.Before(from) || r.RequestedAt.After(to) {
			t.Errorf("request %s at %s is outside the range", r.ID, r.RequestedAt)
		}
	}
}

// The merge across organisations keeps time order across refills of its
// per-organisation batches, including many rows sharing one requestedAt.
func TestMergeOrder(t *testing.T) {
	st := openStore(t)
	fixture(t, st)
	err := st.Update(func(tx *store.Tx) error {
		for i := range 300 {
			org, dev := orgA, devA1
			if i%3 == 0 {
				org, dev = orgB, devB1
			}
			at := t0.Add(time.Duration(i/40) * time.Hour)
			if err := tx.PutRequest(&store.Request{ID: reqID(10000 + i*7919%300), OrgID: org, DeviceID: dev, Flow: engine.FlowJITAdmin,
				Status: store.StatusPending, SubjectUsername: "u", RequestedAt: at,
				Decision: store.DecisionRecord{Outcome: engine.OutcomePending}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, stats := export(t, st, ExportOptions{Requests: true})
	if stats.Requests != 321 {
		t.Fatalf("%d requests, want 321", stats.Requests)
	}
	var keys []string
	for _, l := range lines(out) {
		var r store.Request
		json.Unmarshal([]byte(l), &r)
		keys = append(keys, r.RequestedAt.Format(time.RFC3339Nano)+" "+r.OrgID+" "+r.ID)
	}
	if !slices.IsSorted(keys) {
		t.Error("requests are not in (requestedAt, org, id) order")
	}
	if len(slices.Compact(slices.Clone(keys))) != len(keys) {
		t.Error("a request was exported twice")
	}
}

func TestChunkedWrite(t *testing.T) {
	src := openStore(t)
	fixture(t, src)
	inv, _ := export(t, src, ExportOptions{OrgID: orgA, Inventory: true})
	var b strings.Builder
	b.WriteString(inv)
	enc := json.NewEncoder(&b)
	for i := range 1203 {
		r := &store.Request{ID: reqID(20000 + i), OrgID: orgA, DeviceID: devA2, Flow: engine.FlowUAC, Status: store.StatusDenied,
			SubjectUsername: "u", RequestedAt: t0.Add(time.Duration(i) * time.Second), DeniedAt: t0,
			Decision: store.DecisionRecord{Outcome: engine.OutcomeDenied, DecidedBy: engine.DecidedByOrgDefault}}
		enc.Encode(r)
	}
	dst := openStore(t)
	commits := dst.Stats().Commits
	stats, err := importString(dst, b.String())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Requests != 1203 {
		t.Errorf("stats = %+v", stats)
	}
	// Inventory and requests in chunks of at most 500, then the audit.
	if n := dst.Stats().Commits - commits; n < 4 {
		t.Errorf("%d commits, want at least 4 (chunks of ≤ 500 rows)", n)
	}
}

func TestDryRun(t *testing.T) {
	src := openStore(t)
	fixture(t, src)
	file, _ := export(t, src, ExportOptions{}.All())
	dst := openStore(t)
	stats, err := Import(dst, strings.NewReader(file), ImportOptions{DryRun: true})
	if err != nil || stats.Requests != 21 || stats.Rules != 3 {
		t.Fatalf("dry run: %+v, %v", stats, err)
	}
	if out, _ := export(t, dst, ExportOptions{}.All()); out != "" {
		t.Errorf("dry run wrote:\n%s", out)
	}
}

func TestLineLimits(t *testing.T) {
	st := openStore(t)
	long := `{"kind":"partner","id":"` + partnerP + `","name":"` + strings.Repeat("n", MaxLineBytes) + `"}`
	in := "\xef\xbb\xbf" + `{"kind":"partner","id":"` + partnerP + `","name":"ok"}` + "\r\n" + long + "\n" +
		`{"kind":"partner","id":"` + reqID(1) + `","name":"last line without newline"}`
	_, err := importString(st, in)
	var ie *ImportError
	if !errors.As(err, &ie) || len(ie.Errors) != 1 || ie.Errors[0].Line != 2 || !strings.Contains(ie.Errors[0].Msg, "longer than") {
		t.Fatalf("err = %v", err)
	}
	// A long line under the limit is fine; CRLF and a BOM are accepted.
	ok := "\xef\xbb\xbf" + `{"kind":"partner","id":"` + partnerP + `","name":"` + strings.Repeat("n", 1<<20) + `"}` + "\r\n" +
		`{"kind":"partner","id":"` + reqID(1) + `","name":"last line without newline"}`
	stats, err := importString(st, ok)
	if err != nil || stats.Partners != 2 {
		t.Fatalf("stats %+v, err %v", stats, err)
	}
}

func TestUnescapeHTML(t *testing.T) {
	for in, want := range map[string]string{
		`"a\u003cb\u003e\u0026c"`: `"a<b>&c"`,
		`"\\u003c"`:               `"\\u003c"`,
		`"\\\u003c"`:              `"\\<"`,
		`"\u2028 \n \" \u00e9"`:   `"\u2028 \n \" \u00e9"`,
		`"\u003C"`:                `"<"`,
		`"end\`:                   `"end\`,
	} {
		if got := string(unescapeHTML(nil, []byte(in))); got != want {
			t.Errorf("unescapeHTML(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestReimportUpperCaseIDsSkips(t *testing.T) {
	// Ids compare in their canonical form: a file whose ids were written
	// in upper case re-imports as "already there", not as a conflict.
	src := openStore(t)
	fixture(t, src)
	file, _ := export(t, src, ExportOptions{Requests: true})
	dst := openStore(t)
	fixture(t, dst)
	upper := regexp.MustCompile(`"(id|orgId|deviceId|siteId)":"[0-9a-f-]{36}"`).
		ReplaceAllStringFunc(file, func(m string) string { k, v, _ := strings.Cut(m, ":"); return k + ":" + strings.ToUpper(v) })
	stats, err := importString(dst, upper)
	if err != nil || stats.Skipped != len(lines(file)) {
		t.Fatalf("stats %+v, err %v", stats, err)
	}
}

func TestStoreRefusalIsALineError(t *testing.T) {
	// A row the line checks pass but the store refuses (the nil UUID as a
	// rule id here) is reported by line before anything is written.
	dst := openStore(t)
	before, _ := export(t, dst, ExportOptions{}.All())
	var b strings.Builder
	b.WriteString(`{"kind":"org","id":"` + orgA + `","name":"Acme"}` + "\n")
	for i := range 600 {
		fmt.Fprintf(&b, `{"kind":"device","id":"%s","orgId":"%s","hostname":"h%d"}`+"\n", reqID(5000+i), orgA, i)
	}
	b.WriteString(`{"kind":"rule","id":"00000000-0000-0000-0000-000000000000","orgId":"` + orgA +
		`","name":"r","verdict":"auto_deny","matchSigner":"x","enabled":true,"priority":1}` + "\n")
	_, err := importString(dst, b.String())
	var ie *ImportError
	if !errors.As(err, &ie) || len(ie.Errors) != 1 || ie.Errors[0].Line != 602 {
		t.Fatalf("err = %v", err)
	}
	if after, _ := export(t, dst, ExportOptions{}.All()); after != before {
		t.Fatal("a refused import wrote rows")
	}
}

func TestAmbiguousLinesRefused(t *testing.T) {
	// Which of two members with one name counts, or whether "STATUS"
	// means "status", is up to the reader: such lines are refused.
	src := openStore(t)
	fixture(t, src)
	file, _ := export(t, src, ExportOptions{Requests: true})
	row := lines(file)[0]
	for name, line := range map[string]string{
		"duplicate":        strings.Replace(row, `{"id"`, `{"status":"approved","id"`, 1),
		"case variant":     strings.Replace(row, `{"id"`, `{"STATUS":"approved","id"`, 1),
		"snake case":       strings.Replace(row, `{"id"`, `{"expires_at":"2030-01-01T00:00:00Z","id"`, 1),
		"nested duplicate": `{"kind":"rule","id":"` + reqID(7000) + `","orgId":"` + orgA + `","name":"r","verdict":"auto_deny","timeWindow":{"start":"01:00","start":"02:00","end":"03:00"}}`,
	} {
		dst := openStore(t)
		_, err := importString(dst, line)
		var ie *ImportError
		if !errors.As(err, &ie) || len(ie.Errors) != 1 || ie.Errors[0].Line != 1 {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if err := duplicateMember([]byte(`{"a":[{"b":1},{"b":2}],"c":{"a":1}}`)); err != nil {
		t.Errorf("equal names in different objects are fine: %v", err)
	}
}
