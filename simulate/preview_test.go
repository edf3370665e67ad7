package simulate

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

var now = time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)

func sp(s string) *string { return &s }
func ip(i int) *int       { return &i }

// world is a store on disk with one org (two sites, a device at each and
// one without a site) and a second org.
type world struct {
	st *store.Store
	// proj watched the store from before its first request.
	proj                  *Projection
	org, other            string
	siteA, siteB          string
	devA, devB, devNoSite string
	devOther              string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &world{st: st}
	if w.proj, err = LoadProjection(st); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*string{&w.org, &w.other, &w.siteA, &w.siteB, &w.devA, &w.devB, &w.devNoSite, &w.devOther} {
		*p = store.NewID(now)
	}
	err = st.Update(func(tx *store.Tx) error {
		for _, o := range []*store.Org{{ID: w.org, Name: "acme"}, {ID: w.other, Name: "globex"}} {
			if err := tx.PutOrg(o); err != nil {
				return err
			}
		}
		for _, s := range []string{w.siteA, w.siteB} {
			if err := tx.PutSite(&store.Site{ID: s, OrgID: w.org, Name: "S"}); err != nil {
				return err
			}
		}
		for _, d := range []*store.Device{{ID: w.devA, OrgID: w.org, SiteID: w.siteA, Hostname: "A"},
			{ID: w.devB, OrgID: w.org, SiteID: w.siteB, Hostname: "B"},
			{ID: w.devNoSite, OrgID: w.org, Hostname: "N"},
			{ID: w.devOther, OrgID: w.other, Hostname: "O"}} {
			if err := tx.PutDevice(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// row describes one stored request; zero fields take defaults.
type row struct {
	org, device, site string
	flow              engine.FlowType
	status            store.Status
	ago               time.Duration
	user, path, hash  string
	signer, parent    string
	cmdline, tool     string
	risk              *int
	adGroups          []string
}

func (w *world) put(t *testing.T, rows ...row) []string {
	t.Helper()
	ids := make([]string, len(rows))
	err := w.st.Update(func(tx *store.Tx) error {
		for i, r := range rows {
			req := &store.Request{ID: store.NewID(now), OrgID: w.org, DeviceID: w.devA, SiteID: w.siteA, Flow: engine.FlowUAC,
				Status: store.StatusPending, SubjectUsername: `acme\sarah`, TargetExecutablePath: `C:\x\setup.exe`,
				RequestedAt: now.Add(-r.ago), CreatedAt: now.Add(-r.ago)}
			if r.org != "" {
				req.OrgID = r.org
			}
			if r.device != "" {
				req.DeviceID = r.device
				req.SiteID = r.site
			}
			if r.flow != "" {
				req.Flow = r.flow
				if r.flow != engine.FlowUAC {
					req.TargetExecutablePath = ""
				}
			}
			if r.status != "" {
				req.Status = r.status
			}
			if req.Status.Active() {
				req.ApprovedAt, req.ExpiresAt = req.RequestedAt, req.RequestedAt.Add(15*time.Minute)
			}
			if r.user != "" {
				req.SubjectUsername = r.user
			}
			if r.path != "" {
				req.TargetExecutablePath = r.path
			}
			req.TargetExecutableHash, req.TargetExecutableSigner, req.ParentImage, req.CommandLine = r.hash, r.signer, r.parent, r.cmdline
			req.ToolName, req.RiskTier, req.AdGroups = r.tool, r.risk, r.adGroups
			if err := tx.PutRequest(req); err != nil {
				return err
			}
			ids[i] = req.ID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func preview(t *testing.T, w *world, in PreviewInput) *PreviewResult {
	t.Helper()
	if in.OrgID == "" {
		in.OrgID = w.org
	}
	if in.Now.IsZero() {
		in.Now = now
	}
	res, err := Preview(w.st, in)
	if err != nil {
		t.Fatal(err)
	}
	// The projection kept current by the watch, and one loaded now, give
	// the store's answer.
	loaded, err := LoadProjection(w.st)
	if err != nil {
		t.Fatal(err)
	}
	background := WatchStore(w.st)
	readers := map[string]Reader{"watched": w.proj, "loaded": loaded, "store history, loading": background}
	for name, h := range readers {
		got, err := PreviewFrom(h, in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, res) {
			t.Fatalf("%s projection: preview = %+v, the store's = %+v", name, got, res)
		}
	}
	if p, err := background.Wait(); err != nil || p == nil {
		t.Fatalf("background load: %v", err)
	}
	if got, err := PreviewFrom(background, in); err != nil || !reflect.DeepEqual(got, res) {
		t.Fatalf("store history, loaded: preview = %+v (%v), the store's = %+v", got, err, res)
	}
	return res
}

func userDraft(u string) engine.Rule {
	return engine.Rule{Name: "d", Verdict: engine.VerdictAutoApprove, MatchUser: sp(u)}
}

func TestPreviewWindow(t *testing.T) {
	w := newWorld(t)
	w.put(t,
		row{ago: time.Hour},
		row{ago: 29 * 24 * time.Hour},
		row{ago: 30 * 24 * time.Hour}, // exactly on the boundary: inside (inclusive)
		row{ago: 30*24*time.Hour + time.Second},
		row{ago: 89 * 24 * time.Hour},
		row{ago: 91 * 24 * time.Hour},
		row{org: w.other, device: w.devOther, ago: time.Hour}, // another org: never seen
	)
	d := userDraft(`acme\sarah`)
	res := preview(t, w, PreviewInput{Draft: d})
	if res.WindowDays != DefaultWindowDays || res.TotalScanned != 3 || res.TotalMatched != 3 || res.Truncated {
		t.Fatalf("default window: %+v", res)
	}
	res = preview(t, w, PreviewInput{Draft: d, WindowDays: 90})
	if res.WindowDays != 90 || res.TotalScanned != 5 || res.TotalMatched != 5 {
		t.Fatalf("90 days: %+v", res)
	}
	res = preview(t, w, PreviewInput{Draft: d, WindowDays: 1})
	if res.TotalScanned != 1 {
		t.Fatalf("1 day: %+v", res)
	}
}

func TestPreviewFilters(t *testing.T) {
	w := newWorld(t)
	w.put(t,
		row{ago: 1 * time.Hour},
		row{device: w.devB, site: w.siteB, ago: 2 * time.Hour},
		row{device: w.devNoSite, ago: 3 * time.Hour},
		row{flow: engine.FlowJITAdmin, ago: 4 * time.Hour},
		row{flow: engine.FlowToolAct, user: "helper", tool: "file_read", risk: ip(2), ago: 5 * time.Hour},
	)
	d := engine.Rule{Name: "d", Verdict: engine.VerdictAutoApprove, MatchUser: sp(`ACME\Sarah`)}
	for name, c := range map[string]struct {
		in               PreviewInput
		scanned, matched int
	}{
		"all":                   {PreviewInput{Draft: d}, 5, 4},
		"flow uac":              {PreviewInput{Draft: d, Flow: engine.FlowUAC}, 3, 3},
		"flow jit":              {PreviewInput{Draft: d, Flow: engine.FlowJITAdmin}, 1, 1},
		"flow tool":             {PreviewInput{Draft: d, Flow: engine.FlowToolAct}, 1, 0},
		"site B":                {PreviewInput{Draft: d, SiteID: w.siteB}, 1, 1},
		"site B upper-case":     {PreviewInput{Draft: d, SiteID: strings.ToUpper(w.siteB)}, 1, 1},
		"restricted to A":       {PreviewInput{Draft: d, Sites: []string{w.siteA}}, 3, 2},
		"restricted to A and B": {PreviewInput{Draft: d, Sites: []string{strings.ToUpper(w.siteA), w.siteB}}, 4, 3},
		"restricted to none":    {PreviewInput{Draft: d, Sites: []string{}}, 0, 0},
		"site and flow":         {PreviewInput{Draft: d, SiteID: w.siteA, Flow: engine.FlowJITAdmin}, 1, 1},
	} {
		res := preview(t, w, c.in)
		if res.TotalScanned != c.scanned || res.TotalMatched != c.matched {
			t.Errorf("%s: scanned %d matched %d, want %d %d", name, res.TotalScanned, res.TotalMatched, c.scanned, c.matched)
		}
	}
}

func TestPreviewCriteria(t *testing.T) {
	w := newWorld(t)
	hash := strings.Repeat("ab", 32)
	w.put(t,
		row{ago: 1 * time.Hour, path: `C:\Users\sarah\Downloads\FirefoxSetup.exe`, signer: "Mozilla Corporation", hash: hash,
			parent: `C:\Windows\explorer.exe`, cmdline: `"FirefoxSetup.exe" /S`, adGroups: []string{"Domain Admins"}},
		row{ago: 2 * time.Hour, path: `C:\Tools\putty.exe`, signer: "Simon Tatham", user: `acme\bob`},
		row{ago: 3 * time.Hour, flow: engine.FlowToolAct, user: "helper", tool: "file_read", risk: ip(2)},
		row{ago: 4 * time.Hour, flow: engine.FlowToolAct, user: "helper", tool: "run_command", risk: ip(3)},
		// Midnight UTC: outside an office-hours window.
		row{ago: 10 * time.Hour, path: `C:\night.exe`},
	)
	groupCN := engine.SignerGroup{ID: store.NewID(now), OrgID: w.org, Name: "vendors", Signers: []engine.SignerEntry{engine.CNEntry("mozilla corporation")}}
	groupTP := engine.SignerGroup{ID: store.NewID(now), OrgID: w.org, Name: "pinned",
		Signers: []engine.SignerEntry{{SubjectCN: sp("Mozilla Corporation"), Thumbprint: sp(strings.Repeat("cd", 32))}}}
	groups := []engine.SignerGroup{groupCN, groupTP}
	base := engine.Rule{Name: "d", Verdict: engine.VerdictAutoApprove}
	with := func(f func(*engine.Rule)) engine.Rule { r := base.Clone(); f(&r); return r }
	for name, c := range map[string]struct {
		draft   engine.Rule
		matched int
	}{
		"signer":             {with(func(r *engine.Rule) { r.MatchSigner = sp("MOZILLA CORPORATION") }), 1},
		"hash":               {with(func(r *engine.Rule) { r.MatchHash = sp(hash) }), 1},
		"path glob":          {with(func(r *engine.Rule) { r.MatchPathGlob = sp(`C:\Users\*\Downloads\*.exe`) }), 1},
		"parent image":       {with(func(r *engine.Rule) { r.MatchParentImage = sp(`C:\Windows\*.exe`) }), 1},
		"command line":       {with(func(r *engine.Rule) { r.MatchCommandLine = sp("/s") }), 1},
		"user":               {with(func(r *engine.Rule) { r.MatchUser = sp(`acme\bob`) }), 1},
		"negated user":       {with(func(r *engine.Rule) { r.MatchUser = sp(`acme\bob`); r.MatchNegate = []engine.NegateKey{engine.NegUser} }), 4},
		"tool":               {with(func(r *engine.Rule) { r.MatchToolName = sp("FILE_READ") }), 1},
		"risk tier is exact": {with(func(r *engine.Rule) { r.MatchRiskTier = ip(3) }), 1},
		"signer group by CN": {with(func(r *engine.Rule) { r.MatchSignerGroupID = sp(groupCN.ID) }), 1},
		"time window": {with(func(r *engine.Rule) {
			r.MatchPathGlob = sp("**")
			r.TimeWindow = &engine.TimeWindow{Start: "08:00", End: "18:00"}
		}), 2},
		"disabled, site, ignore": {with(func(r *engine.Rule) {
			r.MatchUser = sp(`acme\bob`)
			r.Enabled = false
			r.SiteID = sp(w.siteB)
			r.Verdict = engine.VerdictIgnore
		}), 1},
		"AD group": {with(func(r *engine.Rule) { r.MatchAdGroup = sp("Domain Admins") }), 0},
		"negated AD group": {with(func(r *engine.Rule) {
			r.MatchAdGroup = sp("Nobody")
			r.MatchNegate = []engine.NegateKey{engine.NegAdGroup}
		}), 0},
		"thumbprint": {with(func(r *engine.Rule) { r.MatchSignerThumbprint = sp(strings.Repeat("cd", 32)) }), 0},
		"negated thumbprint": {with(func(r *engine.Rule) {
			r.MatchSignerThumbprint = sp(strings.Repeat("cd", 32))
			r.MatchNegate = []engine.NegateKey{engine.NegSignerThumbprint}
		}), 0},
		"signer group, pinned":    {with(func(r *engine.Rule) { r.MatchSignerGroupID = sp(groupTP.ID) }), 0},
		"signer group, missing":   {with(func(r *engine.Rule) { r.MatchSignerGroupID = sp(store.NewID(now)) }), 0},
		"user and AD group":       {with(func(r *engine.Rule) { r.MatchUser = sp(`acme\sarah`); r.MatchAdGroup = sp("Domain Admins") }), 0},
		"tool rule on uac fields": {with(func(r *engine.Rule) { r.MatchToolName = sp("setup.exe") }), 0},
		"condition on the instant": {with(func(r *engine.Rule) {
			r.Condition = sp("path ~ `**` and cel `at.getHours(\"UTC\") < 9`")
		}), 2},
		"condition and time window": {with(func(r *engine.Rule) {
			r.Condition = sp("user == `acme\\sarah` or user == `acme\\bob`")
			r.TimeWindow = &engine.TimeWindow{Start: "08:00", End: "18:00"}
		}), 2},
		"time window on tools": {with(func(r *engine.Rule) {
			r.MatchToolName = sp("run_command")
			r.TimeWindow = &engine.TimeWindow{Start: "05:00", End: "06:30"}
		}), 1},
	} {
		res := preview(t, w, PreviewInput{OrgID: w.org, Draft: c.draft, Groups: groups, Now: now})
		if res.TotalMatched != c.matched || res.TotalScanned != 5 {
			t.Errorf("%s: matched %d of %d, want %d of 5", name, res.TotalMatched, res.TotalScanned, c.matched)
		}
	}
}

// A signer group of another organisation is not resolved: the draft fails
// closed.
func TestPreviewOtherOrgGroup(t *testing.T) {
	w := newWorld(t)
	w.put(t, row{ago: time.Hour, signer: "Mozilla Corporation"})
	g := engine.SignerGroup{ID: store.NewID(now), OrgID: w.other, Name: "theirs", Signers: []engine.SignerEntry{engine.CNEntry("Mozilla Corporation")}}
	res, err := Preview(w.st, PreviewInput{OrgID: w.org, Now: now, Groups: []engine.SignerGroup{g},
		Draft: engine.Rule{Name: "d", Verdict: engine.VerdictAutoApprove, MatchSignerGroupID: sp(g.ID)}})
	if err != nil || res.TotalMatched != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestPreviewBreakdownAndSample(t *testing.T) {
	w := newWorld(t)
	statuses := []store.Status{store.StatusPending, store.StatusApproved, store.StatusAutoApproved, store.StatusDenied,
		store.StatusExpired, store.StatusRevoked, store.StatusActuating}
	var rows []row
	for i := range 14 {
		rows = append(rows, row{ago: time.Duration(i+1) * time.Minute, status: statuses[i%len(statuses)],
			user: fmt.Sprintf(`acme\user%02d`, i), path: fmt.Sprintf(`C:\apps\tool-%02d.exe`, i)})
	}
	// Not matched: counts in no status.
	rows = append(rows, row{ago: 30 * time.Second, path: `C:\other\x.exe`, status: store.StatusDenied})
	w.put(t, rows...)
	res := preview(t, w, PreviewInput{Draft: engine.Rule{Name: "d", Verdict: engine.VerdictAutoDeny, MatchPathGlob: sp(`C:\apps\*.exe`)}})
	if res.TotalScanned != 15 || res.TotalMatched != 14 || res.Truncated {
		t.Fatalf("%+v", res)
	}
	if len(res.StatusBreakdown) != 7 {
		t.Fatalf("breakdown keys: %v", res.StatusBreakdown)
	}
	for _, s := range statuses {
		if res.StatusBreakdown[string(s)] != 2 {
			t.Errorf("breakdown %s: %d", s, res.StatusBreakdown[string(s)])
		}
	}
	if len(res.Sample) != SampleSize {
		t.Fatalf("sample of %d", len(res.Sample))
	}
	for i, s := range res.Sample {
		// Newest first: row i was made i+1 minutes ago. (The sample's
		// strings are checked in TestPreviewSampleSurvivesLaterRows.)
		if !s.RequestedAt.Equal(now.Add(-time.Duration(i+1)*time.Minute)) || s.FlowType != engine.FlowUAC ||
			s.Status != statuses[i%len(statuses)] || s.ToolName != nil || s.SubjectUsername == nil || s.TargetExecutablePath == nil {
			t.Errorf("sample %d: %+v", i, s)
		}
	}

	// No match at all: every status is still present, with zero.
	res = preview(t, w, PreviewInput{Draft: userDraft("nobody")})
	if res.TotalMatched != 0 || len(res.StatusBreakdown) != 7 || res.Sample == nil || len(res.Sample) != 0 {
		t.Fatalf("%+v", res)
	}
	for k, v := range res.StatusBreakdown {
		if v != 0 {
			t.Fatalf("%s: %d", k, v)
		}
	}
}

// The sample outlives the scan: its strings must not share the scan's
// buffers, which later rows overwrite.
func TestPreviewSampleSurvivesLaterRows(t *testing.T) {
	w := newWorld(t)
	var rows []row
	for i := range 200 {
		rows = append(rows, row{ago: time.Duration(i+1) * time.Second, user: fmt.Sprintf(`acme\u%03d`, i),
			path: fmt.Sprintf(`C:\p\%03d.exe`, i)})
	}
	ids := w.put(t, rows...)
	res := preview(t, w, PreviewInput{Draft: engine.Rule{Name: "d", Verdict: engine.VerdictAutoApprove, MatchPathGlob: sp(`C:\p\*`)}})
	if res.TotalMatched != 200 || len(res.Sample) != SampleSize {
		t.Fatalf("%+v", res)
	}
	for i, s := range res.Sample {
		if s.ID != ids[i] || deref(s.SubjectUsername) != fmt.Sprintf(`acme\u%03d`, i) || deref(s.TargetExecutablePath) != fmt.Sprintf(`C:\p\%03d.exe`, i) {
			t.Errorf("sample %d: id %s user %q path %q, want %s %q %q", i, s.ID, deref(s.SubjectUsername), deref(s.TargetExecutablePath),
				ids[i], fmt.Sprintf(`acme\u%03d`, i), fmt.Sprintf(`C:\p\%03d.exe`, i))
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestPreviewTruncation(t *testing.T) {
	w := newWorld(t)
	w.put(t, row{ago: 1 * time.Minute}, row{ago: 2 * time.Minute})
	d := userDraft(`acme\sarah`)
	// Below the cap: not truncated.
	if res := preview(t, w, PreviewInput{Draft: d, MaxScan: 3}); res.Truncated || res.TotalScanned != 2 {
		t.Fatalf("2 of cap 3: %+v", res)
	}
	// Exactly at the cap: truncated (the cap was reached).
	w.put(t, row{ago: 3 * time.Minute})
	if res := preview(t, w, PreviewInput{Draft: d, MaxScan: 3}); !res.Truncated || res.TotalScanned != 3 || res.TotalMatched != 3 {
		t.Fatalf("3 of cap 3: %+v", res)
	}
	// Above the cap: the newest rows are scanned.
	w.put(t, row{ago: 30 * time.Second}, row{ago: 4 * time.Minute})
	res := preview(t, w, PreviewInput{Draft: d, MaxScan: 3})
	if !res.Truncated || res.TotalScanned != 3 || res.TotalMatched != 3 || len(res.Sample) != 3 ||
		!res.Sample[0].RequestedAt.Equal(now.Add(-30*time.Second)) || !res.Sample[2].RequestedAt.Equal(now.Add(-2*time.Minute)) {
		t.Fatalf("5 of cap 3: %+v", res)
	}
	// The cap counts rows the filters keep.
	w.put(t, row{ago: 10 * time.Second, flow: engine.FlowJITAdmin}, row{ago: 20 * time.Second, flow: engine.FlowJITAdmin})
	if res := preview(t, w, PreviewInput{Draft: d, MaxScan: 3, Flow: engine.FlowJITAdmin}); res.Truncated || res.TotalScanned != 2 {
		t.Fatalf("filtered: %+v", res)
	}
	// 0 means the default cap.
	if res := preview(t, w, PreviewInput{Draft: d}); res.Truncated || res.TotalScanned != 7 {
		t.Fatalf("default cap: %+v", res)
	}
}

// An empty store and an empty window answer zeros, not errors.
func TestPreviewEmpty(t *testing.T) {
	w := newWorld(t)
	res := preview(t, w, PreviewInput{Draft: userDraft("x")})
	if res.TotalScanned != 0 || res.TotalMatched != 0 || res.Truncated || len(res.StatusBreakdown) != 7 || res.Sample == nil {
		t.Fatalf("%+v", res)
	}
}
