package lifecycle

import (
	"errors"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

func TestSmokeLifecycle(t *testing.T) {
	f := newFixture(t, engine.Rule{Name: "mozilla", Enabled: true, Priority: 10, Verdict: engine.VerdictAutoApprove,
		MatchSigner: sp("Mozilla Corporation"), ApprovalDurationMinutes: ip(30)})
	a := f.uac(t, `C:\Users\sarah\Downloads\FirefoxSetup.exe`, "Mozilla Corporation")
	if a.Request.Status != store.StatusAutoApproved || !a.Request.ExpiresAt.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("auto: %+v", a.Request)
	}
	f.clock.Advance(time.Second)
	p := f.uac(t, `C:\tools\x.exe`, "")
	if p.Request.Status != store.StatusPending {
		t.Fatalf("pending: %+v", p.Request)
	}
	r, err := f.svc.Respond(RespondInput{OrgID: f.org, ID: p.Request.ID, Decision: Approve, Actor: Actor{ID: "u1", Name: "Ann"}})
	if err != nil || r.Status != store.StatusApproved {
		t.Fatal(r, err)
	}
	_, err = f.svc.Respond(RespondInput{OrgID: f.org, ID: p.Request.ID, Decision: Deny, Actor: Actor{ID: "u2"}})
	var se *StateError
	if !errors.As(err, &se) || se.Current != store.StatusApproved {
		t.Fatalf("second respond: %v", err)
	}
	cmd, err := f.svc.Actuate(ActuateInput{OrgID: f.org, DeviceID: f.device, RequestID: p.Request.ID, Actor: Actor{ID: "u1"}})
	if err != nil || cmd.Type != "actuate_elevation" {
		t.Fatal(cmd, err)
	}
	f.clock.Advance(32 * time.Minute)
	res, err := f.svc.Sweep()
	if err != nil || res.Grants != 2 {
		t.Fatalf("sweep %+v %v", res, err)
	}
	got, err := f.st.Request(f.org, a.Request.ID)
	if err != nil || got.Status != store.StatusExpired || got.ExpiredCause != "window" {
		t.Fatal(got, err)
	}
	list, total, err := f.st.ListRequests(store.Filter{OrgID: f.org, Limit: 10})
	if err != nil || total != 2 || len(list) != 2 {
		t.Fatal(list, total, err)
	}
	list, total, err = f.st.ListRequests(store.Filter{OrgID: f.org, Status: store.StatusExpired, DeviceID: f.device, Limit: 1})
	if err != nil || total != 2 || len(list) != 1 || list[0].ID != p.Request.ID {
		t.Fatal(list, total, err)
	}
	rep := mustVerify(t, f.st)
	if rep.Records != 7 {
		t.Fatalf("records %d", rep.Records)
	}
}
