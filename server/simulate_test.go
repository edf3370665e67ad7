package server

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/dsl"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/simulate"
	"github.com/elevate-pam/elevate/store"
)

// simAnswer is a 200 of POST /pam/rules/simulate.
type simAnswer struct {
	Success      bool   `json:"success"`
	Mode         string `json:"mode"`
	WindowDays   int    `json:"windowDays"`
	TotalScanned int    `json:"totalScanned"`
	Truncated    bool   `json:"truncated"`
	Drafts       []struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Replaces bool   `json:"replaces"`
	} `json:"drafts"`
	simulate.DiffReport
}

func (e *rulesEnv) simulate(t *testing.T, tok, body string) (reply, *simAnswer) {
	t.Helper()
	r := e.call(t, "POST", "/api/v1/pam/rules/simulate", tok, body)
	if r.status != 200 {
		return r, nil
	}
	var a simAnswer
	if err := json.Unmarshal([]byte(r.raw), &a); err != nil {
		t.Fatalf("%v: %s", err, r.raw)
	}
	if !a.Success || a.Total != a.TotalScanned || a.Base == nil || a.Candidate == nil {
		t.Fatalf("answer: %s", r.raw)
	}
	return r, &a
}

// mustSimulate is simulate for a body that must succeed.
func (e *rulesEnv) mustSimulate(t *testing.T, tok, body string) *simAnswer {
	t.Helper()
	r, a := e.simulate(t, tok, body)
	if a == nil {
		t.Fatalf("%s: %d %s", body, r.status, r.raw)
	}
	return a
}

func tr(from, to engine.Outcome, n int) simulate.Transition {
	return simulate.Transition{From: from, To: to, Count: n}
}

const (
	aa      = engine.OutcomeAutoApproved
	pending = engine.OutcomePending
	denied  = engine.OutcomeDenied
)

func checkMatrix(t *testing.T, a *simAnswer, want ...simulate.Transition) {
	t.Helper()
	if !reflect.DeepEqual(a.Matrix, want) {
		t.Errorf("matrix %+v, want %+v", a.Matrix, want)
	}
}

// ruleStat finds a rule's line in a report by name.
func ruleStat(rep *simulate.Report, name string) *simulate.RuleStats {
	for i := range rep.Rules {
		if rep.Rules[i].Name == name {
			return &rep.Rules[i]
		}
	}
	return nil
}

// simHistory is the known history of the simulate tests, ingested through
// the agent API a minute apart under one live rule (deny-temp): Firefox
// and Thunderbird (Mozilla-signed, pending), a Mozilla-signed binary in
// C:\Temp (denied) and an unsigned tool (pending). It returns deny-temp's
// id and the request ids, oldest first.
func simHistory(t *testing.T, e *rulesEnv) (string, []string) {
	t.Helper()
	deny := e.createRule(t, e.admin(t), `{"name":"deny-temp","priority":10,"verdict":"auto_deny","matchPathGlob":"C:\\Temp\\**"}`)
	var ids []string
	for _, c := range []struct{ body, status string }{
		{`{"subject_username":"acme\\sarah","target_executable_path":"C:\\Users\\sarah\\Downloads\\FirefoxSetup.exe","target_executable_signer":"Mozilla Corporation"}`, "pending"},
		{`{"subject_username":"acme\\bob","target_executable_path":"C:\\Users\\bob\\Downloads\\Thunderbird.exe","target_executable_signer":"Mozilla Corporation"}`, "pending"},
		{`{"subject_username":"acme\\sarah","target_executable_path":"C:\\Temp\\evil.exe","target_executable_signer":"Mozilla Corporation"}`, "denied"},
		{`{"subject_username":"acme\\sarah","target_executable_path":"C:\\tools\\x.exe"}`, "pending"},
	} {
		e.clock.Advance(time.Minute)
		r := e.ingest(t, c.body)
		if r.status != 201 || r.body["status"] != c.status {
			t.Fatalf("ingest %s: %d %s", c.body, r.status, r.raw)
		}
		ids = append(ids, r.body["id"].(string))
	}
	return deny["id"].(string), ids
}

const mozillaOK = `{"name":"mozilla-ok","priority":50,"verdict":"auto_approve","matchSigner":"Mozilla Corporation"}`

const mozillaOKPam = `rule "mozilla-ok" {
  priority 50
  when     signer == "Mozilla Corporation"
  then     auto_approve
}
`

func TestSimulateAddKnownAnswer(t *testing.T) {
	e := newRulesEnv(t, nil)
	denyID, ids := simHistory(t, e)
	writer := e.tok(t, Claims{Permissions: []string{PermWrite}})
	audited := len(e.auditActions(t, e.org))

	a := e.mustSimulate(t, writer, `{"rules":[`+mozillaOK+`]}`)
	if a.Mode != "add" || a.WindowDays != 30 || a.TotalScanned != 4 || a.Truncated || a.Changed != 2 || a.Widened != 2 {
		t.Fatalf("%+v", a)
	}
	checkMatrix(t, a, tr(pending, aa, 2), tr(pending, pending, 1), tr(denied, denied, 1))
	if len(a.Drafts) != 1 || a.Drafts[0].Name != "mozilla-ok" || !engine.IsUUID(a.Drafts[0].ID) || a.Drafts[0].Replaces {
		t.Fatalf("drafts %+v", a.Drafts)
	}
	draftID := a.Drafts[0].ID
	if len(a.Flips) != 1 {
		t.Fatalf("flips %+v", a.Flips)
	}
	g := a.Flips[0]
	if g.From != pending || g.To != aa || !g.Widens || g.Count != 2 || g.Base.By != "org_default" ||
		g.Candidate != (simulate.Decider{By: "rule", RuleID: draftID, RuleName: "mozilla-ok"}) {
		t.Fatalf("flip %+v", g)
	}
	// Newest first: Thunderbird, then Firefox.
	if len(g.Examples) != 2 || g.Examples[0].ID != ids[1] || g.Examples[1].ID != ids[0] ||
		g.Examples[0].TargetExecutablePath != `C:\Users\bob\Downloads\Thunderbird.exe` || g.Examples[0].SubjectUsername != `acme\bob` ||
		g.Examples[0].Flow != engine.FlowUAC || g.Examples[0].OrgID != e.org {
		t.Fatalf("examples %+v", g.Examples)
	}
	// Each side's rules.
	if len(a.Base.Rules) != 1 || !reflect.DeepEqual(a.Base.Rules[0], simulate.RuleStats{ID: denyID, Name: "deny-temp", Priority: 10, Enabled: true, Decided: 1}) {
		t.Fatalf("base rules %+v", a.Base.Rules)
	}
	if a.Base.Outcomes[pending] != 3 || a.Base.Outcomes[denied] != 1 || a.Base.Outcomes[aa] != 0 || a.Base.ByDecider["org_default"] != 3 {
		t.Fatalf("base %+v", a.Base)
	}
	moz := ruleStat(a.Candidate, "mozilla-ok")
	if len(a.Candidate.Rules) != 2 || a.Candidate.Rules[0].Name != "deny-temp" || moz == nil || moz.Decided != 2 || moz.Shadowed != 1 ||
		len(moz.ShadowedBy) != 1 || moz.ShadowedBy[0] != (simulate.Shadower{RuleID: denyID, RuleName: "deny-temp", Count: 1}) {
		t.Fatalf("candidate rules %+v", a.Candidate.Rules)
	}
	if a.Candidate.Outcomes[aa] != 2 || len(a.Candidate.NeverFired) != 0 || len(a.Candidate.AlwaysShadowed) != 0 {
		t.Fatalf("candidate %+v", a.Candidate)
	}

	// A draft that never fires, and one only ever behind deny-temp.
	a = e.mustSimulate(t, writer, `{"rules":[{"name":"never","verdict":"auto_deny","matchUser":"nobody"},`+
		`{"name":"behind","priority":20,"verdict":"auto_approve","matchPathGlob":"C:\\Temp\\*.exe"}]}`)
	if a.Changed != 0 || len(a.Flips) != 0 || len(a.Candidate.NeverFired) != 1 || a.Candidate.NeverFired[0].Name != "never" ||
		len(a.Candidate.AlwaysShadowed) != 1 || a.Candidate.AlwaysShadowed[0].Name != "behind" {
		t.Fatalf("%+v %+v", a.Candidate.NeverFired, a.Candidate.AlwaysShadowed)
	}
	// Equal priority: a new rule comes after the live one, as it would
	// once created.
	a = e.mustSimulate(t, writer, `{"rules":[{"name":"same-prio","priority":10,"verdict":"auto_approve","matchPathGlob":"C:\\Temp\\**"}]}`)
	if a.Changed != 0 || a.Candidate.Rules[0].Name != "deny-temp" {
		t.Fatalf("%+v", a.Candidate.Rules)
	}

	// The window and the flow narrow the history.
	e.clock.Advance(25 * time.Hour)
	if a := e.mustSimulate(t, writer, `{"rules":[`+mozillaOK+`],"windowDays":1}`); a.TotalScanned != 0 || a.Total != 0 || len(a.Matrix) != 0 {
		t.Fatalf("one day later: %+v", a)
	}
	if a := e.mustSimulate(t, writer, `{"rules":[`+mozillaOK+`],"windowDays":2}`); a.TotalScanned != 4 || a.WindowDays != 2 {
		t.Fatalf("two days: %+v", a)
	}
	if a := e.mustSimulate(t, writer, `{"rules":[`+mozillaOK+`],"flowType":"ai_tool_action"}`); a.TotalScanned != 0 {
		t.Fatalf("flow: %+v", a)
	}
	// Nothing is stored or audited by a simulation.
	if n := len(e.storedRules(t, e.org)); n != 1 {
		t.Fatalf("%d stored rules", n)
	}
	if got := e.auditActions(t, e.org); len(got) != audited {
		t.Fatalf("audit: %v", got)
	}
}

func TestSimulateModes(t *testing.T) {
	e := newRulesEnv(t, nil)
	denyID, _ := simHistory(t, e)
	writer := e.tok(t, Claims{Permissions: []string{PermWrite}})

	// Replace: the draft is the whole rule set, deny-temp is gone.
	a := e.mustSimulate(t, writer, `{"mode":"replace","rules":[`+mozillaOK+`]}`)
	if a.Mode != "replace" || a.Changed != 3 || a.Widened != 3 || len(a.Flips) != 2 {
		t.Fatalf("%+v", a)
	}
	checkMatrix(t, a, tr(pending, aa, 2), tr(pending, pending, 1), tr(denied, aa, 1))
	f0, f1 := a.Flips[0], a.Flips[1]
	if f0.From != pending || f0.Count != 2 || f1.From != denied || f1.Count != 1 || !f1.Widens ||
		f1.Base != (simulate.Decider{By: "rule", RuleID: denyID, RuleName: "deny-temp"}) || f1.Candidate.RuleName != "mozilla-ok" {
		t.Fatalf("flips %+v", a.Flips)
	}
	if len(a.Candidate.Rules) != 1 || a.Candidate.Rules[0].Decided != 3 || len(a.Base.Rules) != 1 {
		t.Fatalf("%+v / %+v", a.Base.Rules, a.Candidate.Rules)
	}
	// Replace with nothing: every request goes to the org default.
	a = e.mustSimulate(t, writer, `{"mode":"replace","rules":[]}`)
	checkMatrix(t, a, tr(pending, pending, 3), tr(denied, pending, 1))
	if len(a.Candidate.Rules) != 0 || a.Widened != 0 {
		t.Fatalf("%+v", a)
	}

	// Add with a live rule's id (in any case): the draft stands in for it.
	a = e.mustSimulate(t, writer, `{"rules":[{"id":"`+strings.ToUpper(denyID)+`","name":"deny-temp v2","priority":10,"verdict":"require_approval","matchPathGlob":"C:\\Temp\\**"}]}`)
	checkMatrix(t, a, tr(pending, pending, 3), tr(denied, pending, 1))
	if len(a.Drafts) != 1 || a.Drafts[0].ID != denyID || !a.Drafts[0].Replaces || len(a.Candidate.Rules) != 1 ||
		a.Candidate.Rules[0].Name != "deny-temp v2" || len(a.Flips) != 1 || a.Flips[0].Widens ||
		a.Flips[0].Candidate != (simulate.Decider{By: "rule", RuleID: denyID, RuleName: "deny-temp v2"}) {
		t.Fatalf("%+v", a)
	}
	// The same draft without the id is added beside deny-temp.
	a = e.mustSimulate(t, writer, `{"rules":[{"name":"deny-temp v2","priority":10,"verdict":"require_approval","matchPathGlob":"C:\\Temp\\**"}]}`)
	if a.Changed != 0 || len(a.Candidate.Rules) != 2 || a.Drafts[0].Replaces || a.Drafts[0].ID == denyID {
		t.Fatalf("%+v", a)
	}
	// Ids the server gives are stable.
	if b := e.mustSimulate(t, writer, `{"rules":[{"name":"deny-temp v2","priority":10,"verdict":"require_approval","matchPathGlob":"C:\\Temp\\**"}]}`); b.Drafts[0].ID != a.Drafts[0].ID {
		t.Fatalf("%s != %s", b.Drafts[0].ID, a.Drafts[0].ID)
	}
}

func TestSimulateSource(t *testing.T) {
	e := newRulesEnv(t, nil)
	_, _ = simHistory(t, e)
	writer := e.tok(t, Claims{Permissions: []string{PermWrite}})
	src := func(s string) string {
		b, _ := json.Marshal(map[string]any{"source": s})
		return string(b)
	}
	fromJSON := e.mustSimulate(t, writer, `{"rules":[`+mozillaOK+`]}`)
	for _, text := range []string{mozillaOKPam, "org \"acme\"\n\n" + mozillaOKPam, "org \"ACME\"\n" + mozillaOKPam, "org \"" + e.org + "\"\n" + mozillaOKPam} {
		a := e.mustSimulate(t, writer, src(text))
		if !reflect.DeepEqual(a.Matrix, fromJSON.Matrix) || a.Widened != 2 || len(a.Flips) != 1 || a.Flips[0].Candidate.RuleName != "mozilla-ok" ||
			a.Flips[0].Candidate.RuleID != a.Drafts[0].ID || !engine.IsUUID(a.Drafts[0].ID) {
			t.Fatalf("%q: %+v", text, a)
		}
	}
	// Signer groups the text declares, and its tests, which must pass.
	grouped := `signers "moz" {
  cn "Mozilla Corporation"
}

rule "moz-group" {
  priority 50
  when     signer in signers("moz") and not path ~ ` + "`C:\\Users\\bob\\**`" + `
  then     auto_approve
}

test "firefox" {
  at 2026-06-15T10:00:00Z
  observe {
    user   = "u"
    path   = ` + "`C:\\x.exe`" + `
    signer = "Mozilla Corporation"
  }
  expect auto_approved by "moz-group"
}
`
	a := e.mustSimulate(t, writer, src(grouped))
	checkMatrix(t, a, tr(pending, aa, 1), tr(pending, pending, 2), tr(denied, denied, 1))

	for name, c := range map[string]struct {
		text string
		msg  string // a regexp the message must match
	}{
		"syntax error":     {"rule \"x\" {\n  priority 50\n  when signer === \"Mozilla\"\n  then auto_approve\n}\n", `^draft\.pam:3:\d+: `},
		"unknown group":    {"rule \"x\" {\n  when signer in signers(\"nope\")\n  then auto_approve\n}\n", `^draft\.pam:2:\d+: unknown signer group "nope"`},
		"another org":      {"org \"globex\"\n" + mozillaOKPam, `^draft\.pam:1:5: the draft declares org "globex"`},
		"settings":         {mozillaOKPam + "\nsettings {\n  default_unmatched = auto_deny\n}\n", `^draft\.pam:7:1: .*settings`},
		"failing test":     {mozillaOKPam + "\ntest \"t\" {\n  at 2026-06-15T10:00:00Z\n  observe {\n    user = \"u\"\n    path = `C:\\x.exe`\n  }\n  expect denied\n}\n", `^draft\.pam:7: test "t" failed`},
		"two errors":       {"rule \"x\" {\n  then auto_approve\n}\nrule \"y\" {\n  when user == \"u\"\n  then sometimes\n}\n", `^draft\.pam:\d+:\d+: .*\(and 1 more errors\)$`},
		"mixed criteria":   {"rule \"x\" {\n  when signer == \"S\" and tool == \"t\"\n  then auto_approve\n}\n", `^draft\.pam:\d+:\d+: `},
		"ignore on a tool": {"rule \"x\" {\n  when tool == \"t\"\n  then ignore\n}\n", `^draft\.pam:\d+:\d+: `},
	} {
		r, _ := e.simulate(t, writer, src(c.text))
		msg, _ := rtObj(r.body, "error")["message"].(string)
		if r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != "source" || !regexp.MustCompile(c.msg).MatchString(msg) {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		if name == "syntax error" {
			ds := rtList(rtObj(r.body, "error", "details"), "diagnostics")
			if len(ds) == 0 || rtObj(ds[0])["line"] != 3.0 || rtObj(ds[0])["file"] != "draft.pam" || rtObj(ds[0])["severity"] != "error" {
				t.Errorf("diagnostics: %s", r.raw)
			}
		}
	}
}

func TestSimulateBodyChecks(t *testing.T) {
	e := newRulesEnv(t, nil)
	writer := e.tok(t, Claims{Permissions: []string{PermWrite}})
	bad := func(body, target string) {
		t.Helper()
		r, _ := e.simulate(t, writer, body)
		if r.status != 400 || errCode(r) != "VALIDATION" || errTarget(r) != target {
			t.Errorf("%.200s: %d %s (want target %q)", body, r.status, r.raw, target)
		}
	}
	ok := `{"name":"a","verdict":"auto_deny","matchUser":"u"}`
	bad(`{"rules":[`+ok+`],"bogus":1}`, "bogus")
	bad(`{"rules":[`+ok+`],"dryRun":true,"a":1}`, "a")
	bad(`{"rules":[`+ok+`]`, "")
	bad(`[1]`, "")
	bad(`{}`, "")
	bad(`{"rules":null,"source":null}`, "")
	bad(`{"rules":[],"source":""}`, "")
	bad(`{"rules":{}}`, "rules")
	bad(`{"source":7}`, "source")
	bad(`{"rules":[],"mode":"merge"}`, "mode")
	bad(`{"rules":[],"mode":1}`, "mode")
	bad(`{"rules":[],"windowDays":0}`, "windowDays")
	bad(`{"rules":[],"windowDays":91}`, "windowDays")
	bad(`{"rules":[],"windowDays":"7"}`, "windowDays")
	bad(`{"rules":[],"flowType":"x"}`, "flowType")
	bad(`{"rules":[],"siteId":"hq"}`, "siteId")
	bad(`{"rules":[7]}`, "rules[0]")
	bad(`{"rules":[`+ok+`,{"name":"b","verdict":"auto_deny","matchHash":"xyz"}]}`, "rules[1].matchHash")
	bad(`{"rules":[{"name":"a","verdict":"auto_deny","matchUser":"u","bogus":1}]}`, "rules[0].bogus")
	bad(`{"rules":[{"name":"a","verdict":"auto_deny"}]}`, "rules[0].criteria")
	bad(`{"rules":[{"name":"a","verdict":"ignore","matchToolName":"t"}]}`, "rules[0].verdict")
	bad(`{"rules":[{"name":"a","verdict":"auto_deny","matchUser":"u","id":"r1"}]}`, "rules[0].id")
	bad(`{"rules":[{"name":"a","verdict":"auto_deny","matchUser":"u","orgId":"`+e.other+`"}]}`, "rules[0].orgId")
	id := store.NewID(t0)
	bad(`{"rules":[{"name":"a","verdict":"auto_deny","matchUser":"u","id":"`+id+`"},{"name":"b","verdict":"auto_deny","matchUser":"u","id":"`+strings.ToUpper(id)+`"}]}`, "rules[1].id")
	bad(`{"rules":[`+strings.Repeat(`{},`, MaxDraftRules)+`{}]}`, "rules")

	// Its own orgId, and the shape a create accepts, are fine.
	if r, _ := e.simulate(t, writer, `{"rules":[{"name":"a","verdict":"auto_deny","matchUser":"u","orgId":"`+e.org+`","siteId":null,"timeWindow":null}]}`); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	// A whole rule set is larger than other routes' bodies: a thousand
	// drafts (some 70 KB) are taken, more than MaxDraftBody is 413.
	var many []string
	for i := range 1000 {
		many = append(many, fmt.Sprintf(`{"name":"draft %04d","verdict":"auto_deny","matchUser":"user%04d"}`, i, i))
	}
	big := `{"rules":[` + strings.Join(many, ",") + `]}`
	if len(big) <= DefaultMaxBody {
		t.Fatalf("the large body is only %d bytes", len(big))
	}
	if a := e.mustSimulate(t, writer, big); len(a.Drafts) != 1000 {
		t.Fatalf("%d drafts named, want 1000", len(a.Drafts))
	}
	if r, _ := e.simulate(t, writer, `{"source":"`+strings.Repeat("x", MaxDraftBody)+`"}`); r.status != 413 || errCode(r) != "PAYLOAD_TOO_LARGE" {
		t.Fatalf("a body over %d bytes: %d %.200s", MaxDraftBody, r.status, r.raw)
	}
	// A reader may not simulate; a writer needs no MFA.
	reader := e.tok(t, Claims{Permissions: []string{PermRead}})
	if r, _ := e.simulate(t, reader, `{"rules":[]}`); r.status != 403 || errCode(r) != "FORBIDDEN" {
		t.Fatalf("reader: %d %s", r.status, r.raw)
	}
}

func TestSimulateSites(t *testing.T) {
	e := newRulesEnv(t, nil)
	adm := e.admin(t)
	dev2 := store.NewID(t0)
	if err := e.st.Update(func(tx *store.Tx) error {
		return tx.PutDevice(&store.Device{ID: dev2, OrgID: e.org, SiteID: e.site2, Hostname: "WIN-2"})
	}); err != nil {
		t.Fatal(err)
	}
	hqRule := e.createRule(t, adm, `{"name":"hq-rule","priority":30,"verdict":"auto_deny","siteId":"`+e.site+`","matchUser":"acme\\mallory"}`)["id"].(string)
	s2Rule := e.createRule(t, adm, `{"name":"s2-rule","priority":30,"verdict":"auto_approve","siteId":"`+e.site2+`","matchSigner":"Mozilla Corporation"}`)["id"].(string)
	orgRule := e.createRule(t, adm, `{"name":"org-rule","priority":30,"verdict":"auto_deny","matchSigner":"Nobody Ltd"}`)["id"].(string)
	e.putRows(t,
		store.Request{TargetExecutablePath: `C:\a.exe`, TargetExecutableSigner: "Mozilla Corporation"},
		store.Request{TargetExecutablePath: `C:\b.exe`, TargetExecutableSigner: "Mozilla Corporation"},
		store.Request{OrgID: e.org, DeviceID: dev2, SiteID: e.site2, TargetExecutablePath: `C:\c.exe`, TargetExecutableSigner: "Mozilla Corporation"},
	)
	all := e.tok(t, Claims{Permissions: []string{PermWrite}})
	hq := e.tok(t, Claims{Permissions: []string{PermWrite}, SiteIDs: []string{e.site}})
	draft := func(site string) string {
		s := `null`
		if site != "" {
			s = `"` + site + `"`
		}
		return `{"name":"moz","priority":1,"verdict":"auto_approve","matchSigner":"Mozilla Corporation","siteId":` + s + `}`
	}

	// Everyone's view: S2's request is already approved by s2-rule.
	a := e.mustSimulate(t, all, `{"rules":[`+draft("")+`]}`)
	checkMatrix(t, a, tr(aa, aa, 1), tr(pending, aa, 2))
	if a.TotalScanned != 3 || len(a.Base.Rules) != 3 {
		t.Fatalf("%+v", a)
	}
	if a := e.mustSimulate(t, all, `{"rules":[`+draft("")+`],"siteId":"`+e.site2+`"}`); a.TotalScanned != 1 {
		t.Fatalf("%+v", a)
	}
	// The HQ caller's run reads only HQ's requests, and lists only HQ's
	// rules and its own drafts.
	for _, d := range []string{draft(e.site), draft(strings.ToUpper(e.site)), draft("")} {
		r, a := e.simulate(t, hq, `{"rules":[`+d+`]}`)
		if a == nil {
			t.Fatalf("%s: %d %s", d, r.status, r.raw)
		}
		checkMatrix(t, a, tr(pending, aa, 2))
		if a.TotalScanned != 2 || len(a.Base.Rules) != 1 || a.Base.Rules[0].ID != hqRule || len(a.Candidate.Rules) != 2 ||
			ruleStat(a.Candidate, "moz") == nil || len(a.Candidate.NeverFired) != 1 || a.Candidate.NeverFired[0].ID != hqRule {
			t.Fatalf("%s: %s", d, r.raw)
		}
		for _, id := range []string{s2Rule, orgRule, e.site2} {
			if strings.Contains(strings.ToLower(r.raw), id) {
				t.Fatalf("the answer holds %s: %s", id, r.raw)
			}
		}
	}
	if a := e.mustSimulate(t, hq, `{"rules":[`+draft(e.site)+`],"siteId":"`+e.site+`"}`); a.TotalScanned != 2 {
		t.Fatalf("%+v", a)
	}
	for name, body := range map[string]string{
		"history of S2":        `{"rules":[` + draft(e.site) + `],"siteId":"` + e.site2 + `"}`,
		"a draft at S2":        `{"rules":[` + draft(e.site2) + `]}`,
		"replace":              `{"mode":"replace","rules":[` + draft(e.site) + `]}`,
		"standing in for S2's": `{"rules":[{"id":"` + s2Rule + `","name":"x","verdict":"auto_deny","siteId":"` + e.site + `","matchUser":"u"}]}`,
		"standing in for org":  `{"rules":[{"id":"` + orgRule + `","name":"x","verdict":"auto_deny","siteId":"` + e.site + `","matchUser":"u"}]}`,
		"a text draft at S2":   `{"source":"rule \"x\" {\n  site \"` + e.site2 + `\"\n  when user == \"u\"\n  then auto_deny\n}\n"}`,
	} {
		r, _ := e.simulate(t, hq, body)
		if r.status != 403 || errCode(r) != "SITE_DENIED" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	// Standing in for one of its own rules is fine.
	a = e.mustSimulate(t, hq, `{"rules":[{"id":"`+hqRule+`","name":"hq-rule v2","priority":30,"verdict":"auto_deny","siteId":"`+e.site+`","matchSigner":"Mozilla Corporation"}]}`)
	checkMatrix(t, a, tr(pending, denied, 2))
	if !a.Drafts[0].Replaces {
		t.Fatalf("%+v", a.Drafts)
	}
}

func TestSimulateTruncation(t *testing.T) {
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.PreviewMaxScan = 3 })
	writer := e.tok(t, Claims{Permissions: []string{PermWrite}})
	e.putRows(t,
		store.Request{TargetExecutablePath: `C:\1.exe`},
		store.Request{TargetExecutablePath: `C:\2.exe`},
		store.Request{TargetExecutablePath: `C:\3.exe`},
		store.Request{OrgID: e.org, DeviceID: e.device, SiteID: e.site2, TargetExecutablePath: `C:\4.exe`},
	)
	body := func(extra string) string {
		return `{"rules":[{"name":"all","verdict":"auto_approve","matchPathGlob":"**"}]` + extra + `}`
	}
	// Four requests, a cap of three: the three newest are read.
	a := e.mustSimulate(t, writer, body(""))
	if !a.Truncated || a.TotalScanned != 3 || a.Total != 3 || a.Widened != 3 || len(a.Flips) != 1 {
		t.Fatalf("%+v", a)
	}
	var paths []string
	for _, x := range a.Flips[0].Examples {
		paths = append(paths, x.TargetExecutablePath)
	}
	if strings.Join(paths, " ") != `C:\1.exe C:\2.exe C:\3.exe` {
		t.Fatalf("examples %v", paths)
	}
	// Exactly at the cap: truncated; under it: not.
	if a := e.mustSimulate(t, writer, body(`,"siteId":"`+e.site+`"`)); !a.Truncated || a.TotalScanned != 3 {
		t.Fatalf("at the cap: %+v", a)
	}
	if a := e.mustSimulate(t, writer, body(`,"siteId":"`+e.site2+`"`)); a.Truncated || a.TotalScanned != 1 {
		t.Fatalf("under the cap: %+v", a)
	}
}

// TestSimulateLargeHistory replays more requests than one batch, so cases
// are decided on other goroutines while the store scan goes on: each case
// must own its memory (run with -race). Tool actions carry a risk tier
// (a pointer into the store's scratch space when lent) and the uac
// requests AD groups.
func TestSimulateLargeHistory(t *testing.T) {
	e := newRulesEnv(t, nil)
	writer := e.tok(t, Claims{Permissions: []string{PermWrite}})
	const n = 3000
	rows := make([]store.Request, n)
	for i := range rows {
		if i%2 == 0 {
			risk := 2 + i/2%2
			rows[i] = store.Request{Flow: engine.FlowToolAct, ToolName: fmt.Sprintf("file_read_%d", i%7), RiskTier: &risk}
		} else {
			rows[i] = store.Request{TargetExecutablePath: fmt.Sprintf(`C:\apps\%d.exe`, i), AdGroups: []string{"Admins", fmt.Sprintf("G%d", i)}}
		}
	}
	e.putRows(t, rows...)
	a := e.mustSimulate(t, writer, `{"source":"rule \"tools\" {\n  when tool == \"file_read_0\" and risk == 2\n  then auto_approve\n}\n`+
		`rule \"admins\" {\n  when group == \"Admins\"\n  then auto_deny\n}\n"}`)
	// Tool actions: i even; risk 2 when i/2 is even; file_read_0 when i%7 == 0.
	approved := 0
	for i := 0; i < n; i += 2 {
		if i/2%2 == 0 && i%7 == 0 {
			approved++
		}
	}
	checkMatrix(t, a, tr(pending, aa, approved), tr(pending, pending, n/2-approved), tr(pending, denied, n/2))
	if a.TotalScanned != n || a.Truncated {
		t.Fatalf("%d scanned", a.TotalScanned)
	}
	for _, g := range a.Flips {
		for _, x := range g.Examples {
			var i int
			switch {
			case g.To == denied:
				if _, err := fmt.Sscanf(x.TargetExecutablePath, `C:\apps\%d.exe`, &i); err != nil || i%2 != 1 || x.ToolName != "" {
					t.Fatalf("example %+v", x)
				}
			case x.ToolName != "file_read_0" || x.TargetExecutablePath != "":
				t.Fatalf("example %+v", x)
			}
		}
	}
	// The newest five requests that flipped to denied are those of i = 1, 3, 5, 7, 9.
	for _, g := range a.Flips {
		if g.To == denied {
			var got []string
			for _, x := range g.Examples {
				got = append(got, x.TargetExecutablePath)
			}
			if strings.Join(got, " ") != `C:\apps\1.exe C:\apps\3.exe C:\apps\5.exe C:\apps\7.exe C:\apps\9.exe` {
				t.Fatalf("examples %v", got)
			}
		}
	}
}

// TestSimulateFileRules: rule-file rules and signer groups take part on
// both sides (so they cause no flips of their own), a draft may name a
// file's signer group, and a draft may stand in for the file's rule by id.
func TestSimulateFileRules(t *testing.T) {
	dir := t.TempDir()
	rfWrite(t, dir, "acme.pam", `org "acme"

signers "file-moz" {
  cn "Mozilla Corporation"
}

rule "file-deny-temp" {
  id       "`+fileRuleID+`"
  priority 5
  when     signer in signers("file-moz") and path ~ `+"`C:\\Temp\\**`"+`
  then     auto_deny
}
`)
	e := newRulesEnv(t, func(e *rulesEnv, c *Config) { c.RulesDir = dir })
	if err := e.server.LoadRuleFiles(); err != nil {
		t.Fatal(err)
	}
	_, _ = simHistory(t, e)
	writer := e.tok(t, Claims{Permissions: []string{PermWrite}})
	group := dsl.DerivedID("signers", "acme", "file-moz")

	a := e.mustSimulate(t, writer, `{"rules":[{"name":"nothing","verdict":"auto_deny","matchUser":"nobody"}]}`)
	checkMatrix(t, a, tr(pending, pending, 3), tr(denied, denied, 1))
	for _, rep := range []*simulate.Report{a.Base, a.Candidate} {
		if fr, api := ruleStat(rep, "file-deny-temp"), ruleStat(rep, "deny-temp"); fr == nil || fr.Decided != 1 || fr.ID != fileRuleID ||
			api == nil || api.Shadowed != 1 || api.ShadowedBy[0].RuleName != "file-deny-temp" {
			t.Fatalf("file rule: %+v", rep.Rules)
		}
	}
	a = e.mustSimulate(t, writer, `{"rules":[{"name":"file-group","priority":50,"verdict":"auto_approve","matchSignerGroupId":"`+group+`"}]}`)
	checkMatrix(t, a, tr(pending, aa, 2), tr(pending, pending, 1), tr(denied, denied, 1))
	a = e.mustSimulate(t, writer, `{"mode":"replace","rules":[]}`)
	checkMatrix(t, a, tr(pending, pending, 3), tr(denied, pending, 1))
	// A text draft redeclaring the file's group (as the file's org, or as
	// no org): the file's rule still decides with it.
	for _, head := range []string{"org \"acme\"\n", ""} {
		src, _ := json.Marshal(head + "signers \"file-moz\" {\n  cn \"Mozilla Corporation\"\n}\n\n" +
			"rule \"moz-draft\" {\n  priority 50\n  when signer in signers(\"file-moz\")\n  then auto_approve\n}\n")
		a = e.mustSimulate(t, writer, `{"source":`+string(src)+`}`)
		checkMatrix(t, a, tr(pending, aa, 2), tr(pending, pending, 1), tr(denied, denied, 1))
		if fr := ruleStat(a.Candidate, "file-deny-temp"); fr == nil || fr.Decided != 1 || ruleStat(a.Candidate, "moz-draft").Shadowed != 1 {
			t.Fatalf("%q: %+v", head, a.Candidate.Rules)
		}
	}
	// Standing in for the file's rule; the live API rule deny-temp still
	// denies the request in C:\Temp.
	a = e.mustSimulate(t, writer, `{"rules":[{"id":"`+fileRuleID+`","name":"file v2","verdict":"auto_approve","matchUser":"acme\\bob"}]}`)
	checkMatrix(t, a, tr(pending, aa, 1), tr(pending, pending, 2), tr(denied, denied, 1))
	if !a.Drafts[0].Replaces || ruleStat(a.Candidate, "file-deny-temp") != nil {
		t.Fatalf("%+v", a)
	}
}

const fileRuleID = "6f1e2a4c-1b7d-4c3e-9a55-0d2f7e8b9c10"
