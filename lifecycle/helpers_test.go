package lifecycle

import (
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/store"
)

// fixture is an opened store on disk with one org, site and device.
type fixture struct {
	st     *store.Store
	svc    *Service
	clock  *FakeClock
	org    string
	site   string
	device string
}

var t0 = time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)

func newFixture(t testing.TB, rules ...engine.Rule) *fixture {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, clock: NewFakeClock(t0), org: store.NewID(t0), site: store.NewID(t0), device: store.NewID(t0)}
	f.svc = New(Config{Store: st, Clock: f.clock})
	err = st.Update(func(tx *store.Tx) error {
		if err := tx.PutOrg(&store.Org{ID: f.org, Name: "acme", ActuatorEnabled: true}); err != nil {
			return err
		}
		if err := tx.PutSite(&store.Site{ID: f.site, OrgID: f.org, Name: "HQ"}); err != nil {
			return err
		}
		if err := tx.PutDevice(&store.Device{ID: f.device, OrgID: f.org, SiteID: f.site, Hostname: "WIN-ACCT-04"}); err != nil {
			return err
		}
		for i := range rules {
			r := rules[i]
			r.OrgID = f.org
			if r.ID == "" {
				r.ID = store.NewID(t0)
			}
			if r.CreatedAt.IsZero() {
				r.CreatedAt = t0.Add(time.Duration(i) * time.Second)
			}
			if _, err := tx.PutRule(&r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func sp(s string) *string { return &s }
func ip(i int) *int       { return &i }

// uac ingests a uac observation of path at the clock's now.
func (f *fixture) uac(t testing.TB, path, signer string) *IngestResult {
	t.Helper()
	now := f.clock.Now()
	res, err := f.svc.Ingest(IngestInput{Flow: engine.FlowUAC, DeviceID: f.device, Observation: engine.Observation{
		SubjectUsername: `acme\sarah`, TargetExecutablePath: path, TargetExecutableSigner: signer, ObservedAt: &now}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mustVerify(t testing.TB, st *store.Store) *store.VerifyReport {
	t.Helper()
	rep, err := st.VerifyAudit()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) > 0 {
		t.Fatalf("audit chain broken: %v", rep.Breaks[0])
	}
	return rep
}
