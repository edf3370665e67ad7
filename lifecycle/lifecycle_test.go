package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

func rule(name string, prio int, v engine.Verdict, mod func(*engine.Rule)) engine.Rule {
	r := engine.Rule{Name: name, Enabled: true, Priority: prio, Verdict: v}
	mod(&r)
	return r
}

func signer(s string) func(*engine.Rule) { return func(r *engine.Rule) { r.MatchSigner = &s } }

func audits(t *testing.T, st *store.Store, org, subject string) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	if err := st.AuditLog(org, 1, func(r *store.AuditRecord) bool {
		if subject == "" || r.Subject == subject {
			out = append(out, *r)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func actions(rs []store.AuditRecord) string {
	var a []string
	for _, r := range rs {
		a = append(a, r.Action)
	}
	return strings.Join(a, ",")
}

func wantState(t *testing.T, err error, want string, current store.Status) {
	t.Helper()
	var se *StateError
	if !errors.As(err, &se) || se.Want != want || se.Current != current {
		t.Fatalf("got %v, want StateError{not %s, current %s}", err, want, current)
	}
	if !strings.Contains(err.Error(), "current status: "+string(current)) {
		t.Fatalf("message %q", err)
	}
}

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var fe engine.FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want field error on %s", err, field)
	}
	for _, e := range fe {
		if e.Field == field {
			return
		}
	}
	t.Fatalf("got %v, want field error on %s", err, field)
}

func TestIngestUACOutcomes(t *testing.T) {
	f := newFixture(t,
		rule("allow-mozilla", 10, engine.VerdictAutoApprove, func(r *engine.Rule) {
			signer("Mozilla Corporation")(r)
			r.ApprovalDurationMinutes = ip(30)
		}),
		rule("block-evil", 20, engine.VerdictAutoDeny, signer("Evil Corp")),
		rule("ask-contoso", 30, engine.VerdictRequireApproval, signer("Contoso")),
		rule("quiet-updater", 40, engine.VerdictIgnore, signer("Updater Inc")),
	)
	// The agent reports an observation made five minutes ago: requestedAt
	// is the observed time, approval times are the server's.
	observed := t0.Add(-5 * time.Minute)
	ingest := func(sig string) *IngestResult {
		t.Helper()
		res, err := f.svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: f.device, PID: func() *int64 { p := int64(4242); return &p }(),
			Observation: engine.Observation{SubjectUsername: `acme\sarah`, TargetExecutablePath: `C:\x\setup.exe`,
				TargetExecutableSigner: sig, TargetExecutableHash: strings.Repeat("AB", 32), ObservedAt: &observed}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	a := ingest("Mozilla Corporation").Request
	if a.Status != store.StatusAutoApproved || !a.RequestedAt.Equal(observed) || !a.ApprovedAt.Equal(t0) ||
		!a.ExpiresAt.Equal(t0.Add(30*time.Minute)) || a.DurationMinutes != 30 {
		t.Fatalf("auto-approved row: %+v", a)
	}
	if id, name := a.PamRule(); id == "" || name != "allow-mozilla" || a.DecisionSource() != "pam_rule" {
		t.Fatalf("rule trace %q %q %q", id, name, a.DecisionSource())
	}
	if a.TargetExecutableHash != strings.Repeat("ab", 32) || a.SiteID != f.site || *a.PID != 4242 ||
		a.Reason != `UAC consent UI observed for C:\x\setup.exe` {
		t.Fatalf("stored fields: %+v", a)
	}
	recs := audits(t, f.st, f.org, a.ID)
	if actions(recs) != "requested,auto_approved" || !recs[0].At.Equal(observed) || recs[0].ActorKind != store.ActorEndUser ||
		recs[1].ActorKind != store.ActorPolicy || recs[1].To != "auto_approved" {
		t.Fatalf("audit %+v", recs)
	}

	d := ingest("Evil Corp").Request
	if d.Status != store.StatusDenied || d.DenialReason != `Blocked by PAM rule "block-evil"` || d.DecisionSource() != "pam_rule" {
		t.Fatalf("denied row: %+v", d)
	}

	p := ingest("Contoso").Request
	if p.Status != store.StatusPending || p.Decision.RuleName != "ask-contoso" {
		t.Fatalf("pending row: %+v", p)
	}
	if id, name := p.PamRule(); id != "" || name != "" || p.DecisionSource() != "" {
		t.Fatal("a require_approval match on uac leaves no rule trace in the list fields")
	}

	before := len(audits(t, f.st, f.org, ""))
	ig := ingest("Updater Inc")
	if ig.Request != nil || ig.Decision.Outcome != engine.OutcomeIgnored {
		t.Fatalf("ignored: %+v", ig)
	}
	all := audits(t, f.st, f.org, "")
	if len(all) != before+1 || all[len(all)-1].Action != "ignored" {
		t.Fatalf("ignore leaves exactly one audit record: %s", actions(all[before:]))
	}
	_, total, err := f.st.ListRequests(store.Filter{OrgID: f.org})
	if err != nil || total != 3 {
		t.Fatalf("stored rows %d %v (ignored requests are not stored)", total, err)
	}
	mustVerify(t, f.st)
}

func TestIngestOrgDefaultDeny(t *testing.T) {
	f := newFixture(t)
	if err := f.st.Update(func(tx *store.Tx) error {
		return tx.PutOrg(&store.Org{ID: f.org, Name: "acme", DefaultUnmatchedVerdict: engine.VerdictAutoDeny})
	}); err != nil {
		t.Fatal(err)
	}
	r := f.uac(t, `C:\x.exe`, "").Request
	if r.Status != store.StatusDenied || r.DenialReason != "Blocked by org default (no matching policy or rule)" || r.DecisionSource() != "" {
		t.Fatalf("%+v", r)
	}
}

func TestIngestSoftwarePolicyBridge(t *testing.T) {
	f := newFixture(t, rule("allow-all-signed", 10, engine.VerdictAutoApprove, signer("Bad Vendor")))
	path := `C:\x\bad.exe`
	f.svc.bridge = func(d *store.Device) (*engine.Bridge, error) {
		if d.ID != f.device {
			t.Errorf("bridge asked for device %s", d.ID)
		}
		return engine.NewBridge(engine.SoftwarePolicy{ID: "sp-1", Name: "Blocked tools", Mode: engine.ModeBlocklist, IsActive: true,
			Executable: []engine.SoftwarePolicyEntry{{Name: "bad", PathGlob: &path}}})
	}
	r := f.uac(t, path, "Bad Vendor").Request
	if r.Status != store.StatusDenied || r.DenialReason != "Blocked by software policy" || r.MatchedPolicyName != "Blocked tools" ||
		r.DecisionSource() != "software_policy" {
		t.Fatalf("%+v", r)
	}
	// A bridge that cannot be resolved fails safe: pending, with the reason.
	f.svc.bridge = func(*store.Device) (*engine.Bridge, error) { return nil, errors.New("policy store down") }
	r = f.uac(t, path, "Bad Vendor").Request
	if r.Status != store.StatusPending || !strings.Contains(r.Decision.Error, "policy store down") {
		t.Fatalf("%+v", r)
	}
}

func TestIngestFailsClosedOnBadStoredRule(t *testing.T) {
	// A stored rule the engine cannot honour (an unknown verdict that got
	// into the store) is poisoned: reaching it yields pending, never the
	// lower-priority approval behind it.
	f := newFixture(t,
		rule("broken", 10, engine.Verdict("auto_approve_forever"), signer("Mozilla Corporation")),
		rule("allow", 20, engine.VerdictAutoApprove, signer("Mozilla Corporation")))
	r := f.uac(t, `C:\x.exe`, "Mozilla Corporation").Request
	if r.Status != store.StatusPending || r.Decision.Error == "" {
		t.Fatalf("%+v", r)
	}
}

func TestIngestSeesRuleChanges(t *testing.T) {
	f := newFixture(t)
	if r := f.uac(t, `C:\x.exe`, "Mozilla Corporation").Request; r.Status != store.StatusPending {
		t.Fatal(r.Status)
	}
	var ver uint64
	if err := f.st.Update(func(tx *store.Tx) error {
		var err error
		ver, err = tx.PutRule(&engine.Rule{ID: store.NewID(t0), OrgID: f.org, Name: "allow", Enabled: true, Priority: 1,
			Verdict: engine.VerdictAutoApprove, MatchSigner: sp("Mozilla Corporation")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r := f.uac(t, `C:\x.exe`, "Mozilla Corporation").Request
	if r.Status != store.StatusAutoApproved || r.Decision.RuleSetVersion != ver {
		t.Fatalf("%+v (version %d)", r, ver)
	}
}

func TestIngestValidation(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: f.device, Observation: engine.Observation{SubjectUsername: "u"}})
	wantField(t, err, "observation.targetExecutablePath")
	_, err = f.svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: f.device, Observation: engine.Observation{
		SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`, TargetExecutableHash: "abc"}})
	wantField(t, err, "observation.targetExecutableHash")
	_, err = f.svc.Ingest(IngestInput{Flow: engine.FlowJITAdmin, DeviceID: f.device, Observation: engine.Observation{SubjectUsername: "u"}})
	wantField(t, err, "reason")
	_, err = f.svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: store.NewID(t0), Observation: engine.Observation{
		SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`}})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	var active *store.Device // the device as a caller read it before it was decommissioned
	if err := f.st.View(func(sn *store.Snapshot) error { var err error; active, err = sn.Device(f.device); return err }); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Update(func(tx *store.Tx) error {
		return tx.PutDevice(&store.Device{ID: f.device, OrgID: f.org, SiteID: f.site, Hostname: "h", Status: store.DeviceDecommissioned})
	}); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: f.device, Observation: engine.Observation{
		SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`}})
	if !errors.Is(err, ErrDeviceInactive) {
		t.Fatalf("decommissioned device: %v", err)
	}
	// A caller's earlier read of the device does not outvote the store.
	_, err = f.svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: f.device, Device: active, Observation: engine.Observation{
		SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`}})
	if !errors.Is(err, ErrDeviceInactive) {
		t.Fatalf("decommissioned device read earlier as active: %v", err)
	}
	_, err = f.svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: store.NewID(t0), Device: active, Observation: engine.Observation{
		SubjectUsername: "u", TargetExecutablePath: `C:\x.exe`}})
	if err == nil {
		t.Fatal("a device given for another device id was used")
	}
	_, total, _ := f.st.ListRequests(store.Filter{OrgID: f.org})
	if total != 0 {
		t.Fatalf("refused input stored %d rows", total)
	}
}

func TestToolActionAndJIT(t *testing.T) {
	f := newFixture(t,
		rule("deny-shell", 10, engine.VerdictAutoDeny, func(r *engine.Rule) { r.MatchToolName = sp("run_shell") }),
		rule("ask-files", 20, engine.VerdictRequireApproval, func(r *engine.Rule) { r.MatchToolName = sp("file_write") }),
	)
	tier := 3
	tool := func(name, input string) *store.Request {
		t.Helper()
		res, err := f.svc.Ingest(IngestInput{Flow: engine.FlowToolAct, DeviceID: f.device, ExecutionID: "exec-1",
			ToolInput: json.RawMessage(input), Observation: engine.Observation{ToolName: name, RiskTier: &tier}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Request
	}
	d := tool("run_shell", `{"cmd":"rm -rf /","cwd":"/"}`)
	if d.Status != store.StatusDenied || d.DenialReason != "Denied by PAM rule 'deny-shell'" || d.SubjectUsername != "helper" ||
		d.Reason != "AI helper requested tool 'run_shell' (tier 3)" {
		t.Fatalf("%+v", d)
	}
	same := tool("run_shell", "{ \"cwd\": \"/\",\n \"cmd\": \"rm -rf /\" }")
	if d.ActionDigest == "" || same.ActionDigest != d.ActionDigest {
		t.Fatalf("digest is not canonical: %s vs %s", d.ActionDigest, same.ActionDigest)
	}
	p := tool("file_write", `{}`)
	if id, name := p.PamRule(); p.Status != store.StatusPending || id == "" || name != "ask-files" || p.DecisionSource() != "pam_rule" {
		t.Fatalf("tool action pending on a rule keeps the rule trace: %+v", p)
	}

	// JIT: the requesting technician cannot approve their own request,
	// but may deny it.
	res, err := f.svc.Ingest(IngestInput{Flow: engine.FlowJITAdmin, DeviceID: f.device, SubjectUserID: "tech-1", Reason: "patching",
		Observation: engine.Observation{SubjectUsername: "tech", RequestedDurationMinutes: ip(9999)}})
	if err != nil {
		t.Fatal(err)
	}
	j := res.Request
	if j.Status != store.StatusPending || j.Reason != "patching" {
		t.Fatalf("%+v", j)
	}
	if recs := audits(t, f.st, f.org, j.ID); recs[0].ActorKind != store.ActorUser || recs[0].ActorID != "tech-1" {
		t.Fatalf("%+v", recs)
	}
	_, err = f.svc.Respond(RespondInput{OrgID: f.org, ID: j.ID, Decision: Approve, Actor: Actor{ID: "tech-1"}})
	if !errors.Is(err, ErrSelfApproval) {
		t.Fatalf("self-approval: %v", err)
	}
	r, err := f.svc.Respond(RespondInput{OrgID: f.org, ID: j.ID, Decision: Deny, Actor: Actor{ID: "tech-1"}})
	if err != nil || r.Status != store.StatusDenied || r.DenialReason != "" {
		t.Fatalf("deny without a reason works: %+v %v", r, err)
	}
}

func TestRespond(t *testing.T) {
	f := newFixture(t)
	p := f.uac(t, `C:\x.exe`, "").Request
	long := strings.Repeat("x", MaxReasonLength+1)
	for _, c := range []struct {
		in    RespondInput
		field string
	}{
		{RespondInput{Decision: "maybe"}, "decision"},
		{RespondInput{Decision: Approve, DurationMinutes: ip(0)}, "durationMinutes"},
		{RespondInput{Decision: Approve, DurationMinutes: ip(1441)}, "durationMinutes"},
		{RespondInput{Decision: Deny, Reason: &long}, "reason"},
	} {
		c.in.OrgID, c.in.ID = f.org, p.ID
		_, err := f.svc.Respond(c.in)
		wantField(t, err, c.field)
	}
	if _, err := f.svc.Respond(RespondInput{OrgID: store.NewID(t0), ID: p.ID, Decision: Approve}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another org's request: %v", err)
	}
	if _, err := f.svc.Respond(RespondInput{OrgID: f.org, ID: p.ID, Decision: Approve, Sites: []string{store.NewID(t0)}}); !errors.Is(err, ErrSiteDenied) {
		t.Fatalf("site-restricted caller: %v", err)
	}
	f.clock.Advance(time.Minute)
	r, err := f.svc.Respond(RespondInput{OrgID: f.org, ID: p.ID, Decision: Approve, Reason: sp("CHG-1042"),
		Actor: Actor{ID: "u1", Name: "Ann"}, Sites: []string{strings.ToUpper(f.site)}})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	if r.Status != store.StatusApproved || !r.ApprovedAt.Equal(now) || !r.ExpiresAt.Equal(now.Add(15*time.Minute)) ||
		r.ApprovedBy != "u1" || r.ApprovedByName != "Ann" || r.ApprovalReason != "CHG-1042" || r.DecisionSource() != "human" {
		t.Fatalf("%+v", r)
	}
	_, err = f.svc.Respond(RespondInput{OrgID: f.org, ID: p.ID, Decision: Deny})
	wantState(t, err, "pending", store.StatusApproved)
	stored, _ := f.st.Request(f.org, p.ID)
	if stored.Status != store.StatusApproved || stored.DeniedBy != "" {
		t.Fatal("the losing respond changed the row")
	}
	if got := actions(audits(t, f.st, f.org, p.ID)); got != "requested,approved" {
		t.Fatal(got)
	}
}

func TestRespondStaleButUnsweptPending(t *testing.T) {
	// Respond does not look at the request's age: until the sweep has
	// expired it, a pending request can still be decided.
	f := newFixture(t)
	p := f.uac(t, `C:\x.exe`, "").Request
	f.clock.Advance(time.Hour)
	if _, err := f.svc.Respond(RespondInput{OrgID: f.org, ID: p.ID, Decision: Approve}); err != nil {
		t.Fatal(err)
	}
}

func TestRevoke(t *testing.T) {
	f := newFixture(t, rule("allow", 1, engine.VerdictAutoApprove, signer("S")))
	a := f.uac(t, `C:\a.exe`, "S").Request
	_, err := f.svc.Revoke(RevokeInput{OrgID: f.org, ID: a.ID, Reason: "  "})
	wantField(t, err, "reason")
	p := f.uac(t, `C:\b.exe`, "").Request
	_, err = f.svc.Revoke(RevokeInput{OrgID: f.org, ID: p.ID, Reason: "r"})
	wantState(t, err, "active", store.StatusPending)

	// A grant past its expiry but not yet swept is no longer active, yet
	// it can still be revoked.
	f.clock.Advance(16 * time.Minute)
	if active, _ := f.st.ActiveRequests(f.org, f.clock.Now(), nil, 0); len(active) != 0 {
		t.Fatalf("a past-due grant is listed as active: %v", active)
	}
	r, err := f.svc.Revoke(RevokeInput{OrgID: f.org, ID: a.ID, Reason: "maintenance cancelled", Actor: Actor{ID: "u9", Name: "Bo"}})
	if err != nil || r.Status != store.StatusRevoked || r.RevokedReason != "maintenance cancelled" || r.RevokedByName != "Bo" {
		t.Fatalf("%+v %v", r, err)
	}
	if r.DecisionSource() != "pam_rule" {
		t.Fatal("a revoked auto-approval keeps decisionSource pam_rule")
	}
	_, err = f.svc.Revoke(RevokeInput{OrgID: f.org, ID: a.ID, Reason: "again"})
	wantState(t, err, "active", store.StatusRevoked)
}

func TestActuate(t *testing.T) {
	f := newFixture(t, rule("allow", 1, engine.VerdictAutoApprove, signer("S")))
	auto := f.uac(t, `C:\a.exe`, "S").Request
	p := f.uac(t, `C:\b.exe`, "").Request
	act := func(id string) (*store.Command, error) {
		return f.svc.Actuate(ActuateInput{OrgID: f.org, DeviceID: f.device, RequestID: id, Actor: Actor{ID: "u1"}})
	}
	_, err := act(auto.ID)
	wantState(t, err, "approved", store.StatusAutoApproved)
	_, err = act(p.ID)
	wantState(t, err, "approved", store.StatusPending)
	_, err = f.svc.Actuate(ActuateInput{OrgID: f.org, DeviceID: f.device, RequestID: p.ID, TimeoutMs: 999})
	wantField(t, err, "timeoutMs")

	if _, err := f.svc.Respond(RespondInput{OrgID: f.org, ID: p.ID, Decision: Approve, DurationMinutes: ip(5)}); err != nil {
		t.Fatal(err)
	}
	// Another device of the org cannot actuate it.
	other := store.NewID(t0)
	if err := f.st.Update(func(tx *store.Tx) error {
		return tx.PutDevice(&store.Device{ID: other, OrgID: f.org, Hostname: "other"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Actuate(ActuateInput{OrgID: f.org, DeviceID: other, RequestID: p.ID}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("wrong device: %v", err)
	}
	cmd, err := act(p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	json.Unmarshal(cmd.Payload, &payload)
	if cmd.Type != "actuate_elevation" || cmd.Status != "pending" || cmd.DeviceID != f.device || payload["timeoutMs"] != 8000.0 ||
		payload["elevationRequestId"] != p.ID || payload["targetPath"] != `C:\b.exe` {
		t.Fatalf("%+v %v", cmd, payload)
	}
	var stored *store.Command
	f.st.View(func(sn *store.Snapshot) error { stored, err = sn.Command(f.org, cmd.ID); return err })
	if err != nil || stored.ElevationRequestID != p.ID {
		t.Fatalf("command not stored: %v", err)
	}
	_, err = act(p.ID)
	wantState(t, err, "approved", store.StatusActuating)
	// actuating is active: listed, revocable, and expires with its window.
	if active, _ := f.st.ActiveRequests(f.org, f.clock.Now(), nil, 0); len(active) != 2 {
		t.Fatalf("active: %d", len(active))
	}
	f.clock.Advance(6 * time.Minute)
	if res, err := f.svc.Sweep(); err != nil || res.Grants != 1 {
		t.Fatalf("%+v %v", res, err) // the auto-approval (15 min) is still running
	}
	r, _ := f.st.Request(f.org, p.ID)
	if r.Status != store.StatusExpired || r.ExpiredCause != "window" {
		t.Fatalf("%+v", r)
	}
}

func TestActuateRefusedPastExpiryAndWhenDisabled(t *testing.T) {
	f := newFixture(t)
	p := f.uac(t, `C:\b.exe`, "").Request
	if _, err := f.svc.Respond(RespondInput{OrgID: f.org, ID: p.ID, Decision: Approve, DurationMinutes: ip(1)}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute) // now == expiresAt: no longer active
	_, err := f.svc.Actuate(ActuateInput{OrgID: f.org, DeviceID: f.device, RequestID: p.ID})
	wantState(t, err, "approved", store.StatusExpired)

	if err := f.st.Update(func(tx *store.Tx) error { return tx.PutOrg(&store.Org{ID: f.org, Name: "acme"}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Actuate(ActuateInput{OrgID: f.org, DeviceID: f.device, RequestID: p.ID}); !errors.Is(err, ErrActuatorDisabled) {
		t.Fatalf("disabled actuator: %v", err)
	}
}

func TestSweepBoundsAndLateness(t *testing.T) {
	f := newFixture(t, rule("allow", 1, engine.VerdictAutoApprove, signer("S")))
	a := f.uac(t, `C:\a.exe`, "S").Request // expires t0+15m
	// An observation reported 20 minutes late is stale at the next sweep:
	// staleness counts from requestedAt, the agent's observed time.
	late := t0.Add(-20 * time.Minute)
	res, err := f.svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: f.device, Observation: engine.Observation{
		SubjectUsername: "u", TargetExecutablePath: `C:\late.exe`, ObservedAt: &late}})
	if err != nil {
		t.Fatal(err)
	}
	fresh := f.uac(t, `C:\fresh.exe`, "").Request
	n, err := f.svc.Sweep()
	if err != nil || n.Stale != 1 || n.Grants != 0 {
		t.Fatalf("%+v %v", n, err)
	}
	if r, _ := f.st.Request(f.org, res.Request.ID); r.Status != store.StatusExpired || r.ExpiredCause != "stale" {
		t.Fatalf("%+v", r)
	}
	// Strict bounds: at exactly expiresAt and exactly requestedAt+TTL
	// nothing is swept; one nanosecond later both are.
	f.clock.Set(t0.Add(15 * time.Minute))
	if n, _ := f.svc.Sweep(); n != (SweepResult{}) {
		t.Fatalf("swept at the bound: %+v", n)
	}
	f.clock.Set(t0.Add(15*time.Minute + 1))
	if n, _ := f.svc.Sweep(); n.Grants != 1 || n.Stale != 1 {
		t.Fatalf("%+v", n)
	}
	for _, id := range []string{a.ID, fresh.ID} {
		if r, _ := f.st.Request(f.org, id); r.Status != store.StatusExpired {
			t.Fatalf("%s: %s", id, r.Status)
		}
	}
	if got := actions(audits(t, f.st, f.org, a.ID)); got != "requested,auto_approved,expired" {
		t.Fatal(got)
	}
	mustVerify(t, f.st)
}

func TestSweepDrainsBacklogInBatches(t *testing.T) {
	// A sweep that runs late expires the whole backlog, 500 per operation.
	f := newFixture(t)
	const n = 1234
	err := f.st.Update(func(tx *store.Tx) error {
		for i := range n {
			at := t0.Add(time.Duration(i) * time.Millisecond)
			if err := tx.PutRequest(&store.Request{ID: store.NewID(at), OrgID: f.org, DeviceID: f.device, SiteID: f.site,
				Flow: engine.FlowUAC, Status: store.StatusPending, SubjectUsername: "u", RequestedAt: at}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	res, err := f.svc.Sweep()
	if err != nil || res.Stale != n {
		t.Fatalf("%+v %v", res, err)
	}
	_, pending, _ := f.st.ListRequests(store.Filter{OrgID: f.org, Status: store.StatusPending})
	_, expired, _ := f.st.ListRequests(store.Filter{OrgID: f.org, Status: store.StatusExpired})
	if pending != 0 || expired != n {
		t.Fatalf("pending %d expired %d", pending, expired)
	}
	mustVerify(t, f.st)
}

func TestIngestRedecidesWhenRulesChangeMidDecision(t *testing.T) {
	// An administrator deletes the approving rule after the decision was
	// made but before it was recorded: the approval is never recorded.
	f := newFixture(t, rule("allow", 1, engine.VerdictAutoApprove, func(r *engine.Rule) {
		r.ID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
		signer("S")(r)
	}))
	calls := 0
	f.svc.bridge = func(*store.Device) (*engine.Bridge, error) {
		calls++
		if calls == 1 {
			if err := f.st.Update(func(tx *store.Tx) error {
				_, err := tx.DeleteRule(f.org, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
				return err
			}); err != nil {
				t.Error(err)
			}
		}
		return nil, nil
	}
	r := f.uac(t, `C:\a.exe`, "S").Request
	ver, _ := f.st.RuleVersion(f.org)
	if r.Status != store.StatusPending || r.Decision.RuleSetVersion != ver || calls != 2 {
		t.Fatalf("%+v (version %d, decisions %d)", r, ver, calls)
	}

	// A device decommissioned mid-decision records nothing.
	f.svc.bridge = func(*store.Device) (*engine.Bridge, error) {
		return nil, f.st.Update(func(tx *store.Tx) error {
			return tx.PutDevice(&store.Device{ID: f.device, OrgID: f.org, SiteID: f.site, Hostname: "h", Status: store.DeviceDecommissioned})
		})
	}
	now := f.clock.Now()
	_, err := f.svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: f.device, Observation: engine.Observation{
		SubjectUsername: "u", TargetExecutablePath: `C:\b.exe`, ObservedAt: &now}})
	if !errors.Is(err, ErrDeviceInactive) {
		t.Fatalf("got %v", err)
	}
	if _, total, _ := f.st.ListRequests(store.Filter{OrgID: f.org}); total != 1 {
		t.Fatalf("%d rows", total)
	}
}

func TestIngestFailsSafeWhenRulesKeepChanging(t *testing.T) {
	f := newFixture(t, rule("allow", 1, engine.VerdictAutoApprove, signer("S")))
	f.svc.bridge = func(*store.Device) (*engine.Bridge, error) {
		return nil, f.st.Update(func(tx *store.Tx) error {
			_, err := tx.PutRule(&engine.Rule{ID: store.NewID(t0), OrgID: f.org, Name: "churn", Enabled: false, Priority: 5,
				Verdict: engine.VerdictAutoDeny, MatchSigner: sp("nobody")})
			return err
		})
	}
	r := f.uac(t, `C:\a.exe`, "S").Request
	if r.Status != store.StatusPending || !strings.Contains(r.Decision.Error, "kept changing") {
		t.Fatalf("%+v", r)
	}
}

func TestActuateRefusalIsAudited(t *testing.T) {
	f := newFixture(t)
	p := f.uac(t, `C:\b.exe`, "").Request
	_, err := f.svc.Actuate(ActuateInput{OrgID: f.org, DeviceID: f.device, RequestID: p.ID, Actor: Actor{ID: "u1"}})
	wantState(t, err, "approved", store.StatusPending)
	recs := audits(t, f.st, f.org, p.ID)
	if got := actions(recs); got != "requested,actuate_refused" || recs[1].ActorID != "u1" {
		t.Fatalf("%s %+v", got, recs)
	}
	if r, _ := f.st.Request(f.org, p.ID); r.Status != store.StatusPending {
		t.Fatal(r.Status)
	}
}

func TestSweepLargeRows(t *testing.T) {
	// Rows at the API's maximum field lengths, in multi-byte text: the
	// sweep still expires them all, in operations that fit a transaction.
	f := newFixture(t)
	big := strings.Repeat("é", 4000)
	const n = 600
	for c := 0; c < n; c += 50 {
		if err := f.st.Update(func(tx *store.Tx) error {
			for i := c; i < c+50; i++ {
				at := t0.Add(time.Duration(i) * time.Millisecond)
				if err := tx.PutRequest(&store.Request{ID: store.NewID(at), OrgID: f.org, DeviceID: f.device, Flow: engine.FlowUAC,
					Status: store.StatusPending, SubjectUsername: "u", RequestedAt: at, TargetExecutablePath: big,
					ParentImage: big, CommandLine: big + big}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Advance(time.Hour)
	res, err := f.svc.Sweep()
	if err != nil || res.Stale != n {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestRunSweeperExpiresOnItsTicker(t *testing.T) {
	f := newFixture(t, rule("allow", 1, engine.VerdictAutoApprove, signer("S")))
	a := f.uac(t, `C:\a.exe`, "S").Request
	f.clock.Advance(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.RunSweeper(ctx, time.Millisecond, func(err error) { t.Error(err) }); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if r, _ := f.st.Request(f.org, a.ID); r.Status == store.StatusExpired {
			return
		}
	}
	t.Fatal("the sweeper never expired the grant")
}

func TestIngestRedecidesWhenDeviceMovesSite(t *testing.T) {
	// A rule scoped to the device's site approves; the device moves to
	// another site while the decision is made: the request is decided
	// again for the new site, where the rule does not apply.
	f := newFixture(t)
	if err := f.st.Update(func(tx *store.Tx) error {
		_, err := tx.PutRule(&engine.Rule{ID: store.NewID(t0), OrgID: f.org, SiteID: sp(f.site), Name: "hq-only", Enabled: true,
			Priority: 1, Verdict: engine.VerdictAutoApprove, MatchSigner: sp("S")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	other := store.NewID(t0)
	moved := false
	f.svc.bridge = func(*store.Device) (*engine.Bridge, error) {
		if !moved {
			moved = true
			return nil, f.st.Update(func(tx *store.Tx) error {
				if err := tx.PutSite(&store.Site{ID: other, OrgID: f.org, Name: "Branch"}); err != nil {
					return err
				}
				return tx.PutDevice(&store.Device{ID: f.device, OrgID: f.org, SiteID: other, Hostname: "h"})
			})
		}
		return nil, nil
	}
	r := f.uac(t, `C:\a.exe`, "S").Request
	if r.Status != store.StatusPending || r.SiteID != other {
		t.Fatalf("%+v", r)
	}
}
