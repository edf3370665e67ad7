package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

// fullRequest sets every field of Request to a non-zero value, with times
// in a non-UTC zone.
func fullRequest() *Request {
	berlin := time.FixedZone("CET", 3600)
	at := time.Date(2026, 2, 3, 4, 5, 6, 789, berlin)
	return &Request{
		ID:                     "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
		OrgID:                  "0190a1b2-0000-7000-8000-000000000001",
		DeviceID:               "0190a1b2-0000-7000-8000-0000000000d1",
		SiteID:                 "0190a1b2-0000-7000-8000-000000000051",
		Flow:                   engine.FlowToolAct,
		Status:                 StatusActuating,
		SubjectUsername:        `ACME\alice`,
		SubjectUserID:          "S-1-5-21-1",
		TargetExecutablePath:   `C:\Program Files\Tool\tool.exe`,
		TargetExecutableHash:   strings.Repeat("ab", 32),
		TargetExecutableSigner: "Tool Vendor Ltd",
		ParentImage:            `C:\Windows\explorer.exe`,
		CommandLine:            `tool.exe --flag "x y" é漢字`,
		PID:                    ptr(int64(-4242)),
		AdGroups:               []string{"Domain Admins", "", "Helpdesk"},
		ToolName:               "shell.exec",
		RiskTier:               ptr(3),
		ActionDigest:           strings.Repeat("cd", 32),
		ExecutionID:            "exec-1",
		Reason:                 "patching",
		RequestedAt:            at,
		CreatedAt:              at.Add(time.Millisecond),
		Decision: DecisionRecord{
			Outcome:          engine.OutcomePending,
			Verdict:          engine.VerdictRequireApproval,
			DecidedBy:        engine.DecidedByRule,
			RuleID:           "0190a1b2-0000-7000-8000-0000000000a1",
			RuleName:         "tool needs approval",
			SoftwarePolicyID: "sp-1",
			Error:            "none",
			RuleSetVersion:   1<<63 + 5,
		},
		MatchedPolicyName:  "allowlist",
		DurationMinutes:    45,
		ApprovedAt:         at.Add(time.Minute),
		ApprovedBy:         "0190a1b2-0000-7000-8000-0000000000b1",
		ApprovedByName:     "Bob",
		ApprovalReason:     "ok",
		ExpiresAt:          at.Add(46 * time.Minute),
		DeniedAt:           at.Add(2 * time.Minute),
		DeniedBy:           "d",
		DeniedByName:       "Dee",
		DenialReason:       "no",
		RevokedAt:          at.Add(3 * time.Minute),
		RevokedBy:          "r",
		RevokedByName:      "Rae",
		RevokedReason:      "stop",
		ExpiredAt:          at.Add(4 * time.Minute),
		ExpiredCause:       "window",
		ActuatedAt:         at.Add(5 * time.Minute),
		ActuatedBy:         "agent",
		ActuationCommandID: "0190a1b2-0000-7000-8000-0000000000c1",
	}
}

func minimalRequest() *Request {
	return &Request{
		ID:              "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
		OrgID:           "0190a1b2-0000-7000-8000-000000000001",
		DeviceID:        "0190a1b2-0000-7000-8000-0000000000d1",
		Flow:            engine.FlowUAC,
		Status:          StatusPending,
		SubjectUsername: "alice",
		RequestedAt:     time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC),
	}
}

// TestFullRequestSetsEveryField guards the fixture: a field added to
// Request must be added to fullRequest (and to the codec).
func TestFullRequestSetsEveryField(t *testing.T) {
	var check func(prefix string, v reflect.Value)
	check = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			name := prefix + v.Type().Field(i).Name
			if f.IsZero() {
				t.Errorf("fullRequest leaves %s zero", name)
			}
			if f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Time]() {
				check(name+".", f)
			}
		}
	}
	check("", reflect.ValueOf(*fullRequest()))
}

func TestRowRoundTripFull(t *testing.T) {
	r := fullRequest()
	b := mustRow(t, r)
	var got Request
	if err := UnmarshalRow(b, &got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(utc(r), &got, reqCmp); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
}

func TestRowRoundTripMinimal(t *testing.T) {
	r := minimalRequest()
	b := mustRow(t, r)
	var got Request
	if err := UnmarshalRow(b, &got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(r, &got, reqCmp); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
	if got.PID != nil || got.RiskTier != nil || got.AdGroups != nil || got.SiteID != "" {
		t.Fatalf("absent optional fields came back present: %+v", got)
	}
	// Decoding into a used Request must reset every field.
	dirty := *fullRequest()
	if err := UnmarshalRow(b, &dirty); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(r, &dirty, reqCmp); d != "" {
		t.Fatalf("decoding over a populated request (-want +got):\n%s", d)
	}
}

// TestRowDistinguishesEmptyFromAbsent: nil vs empty AdGroups, PID/RiskTier
// zero vs nil, epoch vs zero time.
func TestRowDistinguishesEmptyFromAbsent(t *testing.T) {
	r := minimalRequest()
	r.AdGroups = []string{}
	r.PID = ptr(int64(0))
	r.RiskTier = ptr(0)
	r.CreatedAt = time.Unix(0, 0).UTC()
	var got Request
	if err := UnmarshalRow(mustRow(t, r), &got); err != nil {
		t.Fatal(err)
	}
	if got.AdGroups == nil || len(got.AdGroups) != 0 {
		t.Errorf("empty AdGroups came back as %#v", got.AdGroups)
	}
	if got.PID == nil || *got.PID != 0 || got.RiskTier == nil || *got.RiskTier != 0 {
		t.Errorf("zero PID/RiskTier lost: %v %v", got.PID, got.RiskTier)
	}
	if !got.CreatedAt.Equal(time.Unix(0, 0)) || got.CreatedAt.IsZero() {
		t.Errorf("epoch createdAt came back as %v", got.CreatedAt)
	}
}

func TestRowRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		r := randomRequest(rng)
		b := mustRow(t, r)
		var got Request
		if err := UnmarshalRow(b, &got); err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if d := cmp.Diff(utc(r), &got, reqCmp); d != "" {
			t.Fatalf("#%d round trip (-want +got):\n%s", i, d)
		}
		// The row is deterministic and re-encoding the decoded request
		// yields the same bytes.
		b2 := mustRow(t, &got)
		if !bytes.Equal(b, b2) {
			t.Fatalf("#%d: re-encoding differs", i)
		}
		// The header is the facet, as index entries store it.
		f, err := decodeFacet(b)
		if err != nil || f.status != r.Status || f.flow != r.Flow || f.device.String() != r.DeviceID || f.site.String() != r.SiteID {
			t.Fatalf("#%d: facet %+v, %v", i, f, err)
		}
	}
}

func TestMarshalRowValidates(t *testing.T) {
	cases := map[string]func(r *Request){
		"bad id":          func(r *Request) { r.ID = "x" },
		"bad org":         func(r *Request) { r.OrgID = "" },
		"bad device":      func(r *Request) { r.DeviceID = "0190a1b2-0000-7000-8000-0000000000dZ" },
		"bad site":        func(r *Request) { r.SiteID = "nope" },
		"bad flow":        func(r *Request) { r.Flow = "fax" },
		"bad status":      func(r *Request) { r.Status = "limbo" },
		"no requestedAt":  func(r *Request) { r.RequestedAt = time.Time{} },
		"no subject":      func(r *Request) { r.SubjectUsername = "" },
		"approved no at":  func(r *Request) { r.Status = StatusApproved },
		"auto no at":      func(r *Request) { r.Status = StatusAutoApproved },
		"actuating no at": func(r *Request) { r.Status = StatusActuating },
		"nil id":          func(r *Request) { r.ID = nilUUID },
		"nil org":         func(r *Request) { r.OrgID = nilUUID },
		"nil device":      func(r *Request) { r.DeviceID = nilUUID },
		"malformed dash":  func(r *Request) { r.ID = strings.Replace(r.ID, "-", "x", 1) },
		"too long id":     func(r *Request) { r.ID += "0" },
		"non-hex in uuid": func(r *Request) { r.OrgID = "0190a1b2-0000-7000-8000-00000000000g" },
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			r := minimalRequest()
			mut(r)
			_, err := MarshalRow(r)
			var ie *InvalidError
			if !errors.As(err, &ie) || len(ie.Problems) == 0 {
				t.Fatalf("MarshalRow = %v, want *InvalidError", err)
			}
		})
	}
	// Every active status needs both approvedAt and expiresAt; either
	// alone is refused, with the problem named.
	for _, st := range []Status{StatusApproved, StatusAutoApproved, StatusActuating} {
		for name, set := range map[string]func(r *Request){
			"neither":         func(r *Request) {},
			"no expiresAt":    func(r *Request) { r.ApprovedAt = t0 },
			"no approvedAt":   func(r *Request) { r.ExpiresAt = t0.Add(time.Hour) },
			"neither, denied": func(r *Request) { r.DeniedAt = t0 },
		} {
			r := minimalRequest()
			r.Status = st
			set(r)
			_, err := MarshalRow(r)
			var ie *InvalidError
			want := "approvedAt and expiresAt: are required for status " + string(st)
			if !errors.As(err, &ie) || !slices.Contains(ie.Problems, want) {
				t.Errorf("%s, %s: MarshalRow = %v, want *InvalidError with %q", st, name, err, want)
			}
		}
		r := minimalRequest()
		r.Status, r.ApprovedAt, r.ExpiresAt = st, t0, t0.Add(time.Hour)
		if _, err := MarshalRow(r); err != nil {
			t.Errorf("%s with approvedAt and expiresAt: %v", st, err)
		}
	}
	// A request that is not active needs neither.
	for _, st := range []Status{StatusPending, StatusDenied, StatusExpired, StatusRevoked} {
		r := minimalRequest()
		r.Status = st
		if _, err := MarshalRow(r); err != nil {
			t.Errorf("%s without approvedAt and expiresAt: %v", st, err)
		}
	}
}

// TestUnmarshalRowRefusesGrantWithoutExpiry: a row of an active request
// lacking approvedAt or expiresAt (which MarshalRow refuses to write) does
// not decode.
func TestUnmarshalRowRefusesGrantWithoutExpiry(t *testing.T) {
	for _, st := range []Status{StatusApproved, StatusAutoApproved, StatusActuating} {
		for name, clear := range map[string]func(r *Request){
			"expiresAt":  func(r *Request) { r.ExpiresAt = time.Time{} },
			"approvedAt": func(r *Request) { r.ApprovedAt = time.Time{} },
		} {
			r := fullRequest()
			r.Status = st
			mustRow(t, r) // valid as it is
			clear(r)
			if _, err := MarshalRow(r); err == nil {
				t.Errorf("%s without %s: MarshalRow succeeded", st, name)
			}
			b, err := encodeRequest(nil, r) // what a damaged or foreign row may hold
			if err != nil {
				t.Fatal(err)
			}
			var got Request
			err = UnmarshalRow(b, &got)
			if err == nil || !strings.Contains(err.Error(), "approvedAt and expiresAt") {
				t.Errorf("%s without %s: UnmarshalRow = %v", st, name, err)
			}
		}
	}
}

// TestUnmarshalRowTruncated: every strict prefix of a row errors or (for
// prefixes ending on a field boundary after the required fields) decodes
// to a request with id, org and requestedAt; nothing panics.
func TestUnmarshalRowTruncated(t *testing.T) {
	full := mustRow(t, fullRequest())
	for i := range len(full) {
		var r Request
		err := UnmarshalRow(bytes.Clone(full[:i]), &r)
		if i < facetLen && err == nil {
			t.Fatalf("prefix %d (inside the header) decoded", i)
		}
		if err == nil && (r.ID == "" || r.OrgID == "" || r.RequestedAt.IsZero()) {
			t.Fatalf("prefix %d decoded without required fields: %+v", i, r)
		}
	}
	// In a minimal row requestedAt is the last field, so every strict
	// prefix must fail.
	min := mustRow(t, minimalRequest())
	for i := range len(min) {
		var r Request
		if err := UnmarshalRow(bytes.Clone(min[:i]), &r); err == nil {
			t.Fatalf("prefix %d of %d of a minimal row decoded: %+v", i, len(min), r)
		}
	}
}

func TestUnmarshalRowGarbage(t *testing.T) {
	good := mustRow(t, minimalRequest())
	hdr := good[:facetLen]
	with := func(tail ...byte) []byte { return append(bytes.Clone(good), tail...) }
	hugeLen := binary.AppendUvarint(nil, 1<<62)
	cases := map[string][]byte{
		"empty":               nil,
		"bad format":          append([]byte{2}, good[1:]...),
		"status 0":            append([]byte{rowFormat, 0}, good[2:]...),
		"status too big":      append([]byte{rowFormat, byte(len(Statuses) + 1)}, good[2:]...),
		"flow 0":              append([]byte{rowFormat, 1, 0}, good[3:]...),
		"flow too big":        append([]byte{rowFormat, 1, byte(len(flows) + 1)}, good[3:]...),
		"header only":         bytes.Clone(hdr),
		"tag 0":               with(0),
		"tag tMax":            with(tMax),
		"tag 255":             with(255, 1, 'x'),
		"string no length":    with(tReason),
		"string too long":     with(tReason, 5, 'a'),
		"string huge len":     with(append([]byte{tReason}, hugeLen...)...),
		"number no value":     with(tPID),
		"number unterminated": with(tPID, 0x80, 0x80),
		"number overflow":     with(tPID, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"time unterminated":   with(tExpiresAt, 0xff),
		"list no count":       with(tAdGroups),
		"list count too big":  with(tAdGroups, 100, 1, 'a'),
		"list huge count":     with(append([]byte{tAdGroups}, hugeLen...)...),
		"list elem truncated": with(tAdGroups, 2, 1, 'a', 3, 'b'),
		"list elem huge":      with(append([]byte{tAdGroups, 1}, hugeLen...)...),
		"no id":               append(bytes.Clone(hdr), 0),
	}
	// A row without requestedAt but otherwise well-formed.
	noAt := bytes.Clone(hdr)
	noAt = append(noAt, tID, 1, 'x', tOrg, 1, 'y')
	cases["no requestedAt"] = noAt
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var r Request
			if err := UnmarshalRow(b, &r); err == nil {
				t.Fatalf("decoded %x without error: %+v", b, r)
			}
		})
	}
	// Random garbage, and random mutations of a valid row, never panic.
	rng := rand.New(rand.NewPCG(3, 4))
	full := mustRow(t, fullRequest())
	for range 20000 {
		var b []byte
		if rng.IntN(2) == 0 {
			b = make([]byte, rng.IntN(80))
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
		} else {
			b = bytes.Clone(full)
			for range 1 + rng.IntN(4) {
				b[rng.IntN(len(b))] = byte(rng.UintN(256))
			}
			b = b[:rng.IntN(len(b)+1)]
		}
		var r Request
		_ = UnmarshalRow(b, &r)
	}
}

func FuzzUnmarshalRow(f *testing.F) {
	f.Add(mustRow(f, fullRequest()))
	f.Add(mustRow(f, minimalRequest()))
	f.Add([]byte{})
	f.Add([]byte{rowFormat})
	f.Add(append(mustRow(f, minimalRequest()), tAdGroups, 0xff, 0xff, 0xff, 0xff, 0x0f))
	f.Add(append(mustRow(f, minimalRequest()), tReason, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f))
	f.Add(append(mustRow(f, minimalRequest()), tPID, 0x80))
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5 {
		f.Add(mustRow(f, randomRequest(rng)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := UnmarshalRow(bytes.Clone(b), &r); err != nil {
			return
		}
		if r.ID == "" || r.OrgID == "" || r.RequestedAt.IsZero() {
			t.Fatalf("decoded without required fields: %+v", r)
		}
		// Whatever decodes must be re-encodable to a row that decodes to
		// the same request (ids are not validated by the decoder, so use
		// encodeRequest directly).
		b2, err := encodeRequest(nil, &r)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var r2 Request
		if err := UnmarshalRow(b2, &r2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if d := cmp.Diff(&r, &r2, reqCmp); d != "" {
			t.Fatalf("re-decode differs:\n%s", d)
		}
	})
}

// --- JSON ---

func TestJSONFieldNames(t *testing.T) {
	b, err := json.Marshal(fullRequest())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"id", "orgId", "deviceId", "siteId", "flowType", "status", "subjectUsername", "subjectUserId",
		"targetExecutablePath", "targetExecutableHash", "targetExecutableSigner", "parentImage", "commandLine", "pid",
		"adGroups", "toolName", "riskTier", "actionDigest", "executionId", "reason", "requestedAt", "createdAt",
		"decision", "matchedPolicyName", "softwarePolicyMatchId", "pamRuleId", "pamRuleName", "decisionSource",
		"durationMinutes", "approvedAt", "approvedBy", "approvedByName", "approvalReason", "expiresAt", "deniedAt",
		"deniedBy", "deniedByName", "denialReason", "revokedAt", "revokedBy", "revokedByName", "revokedReason",
		"expiredAt", "expiredCause", "actuatedAt", "actuatedBy", "actuationCommandId"}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if len(m) != len(want) {
		t.Errorf("JSON has %d fields, want %d: %s", len(m), len(want), b)
	}
	// Times in UTC, RFC 3339 with nanoseconds.
	if got := m["requestedAt"]; got != "2026-02-03T03:05:06.000000789Z" {
		t.Errorf("requestedAt = %v", got)
	}
	if m["flowType"] != "ai_tool_action" || m["status"] != "actuating" || m["softwarePolicyMatchId"] != "sp-1" {
		t.Errorf("flowType/status/softwarePolicyMatchId: %v %v %v", m["flowType"], m["status"], m["softwarePolicyMatchId"])
	}
	dec := m["decision"].(map[string]any)
	if dec["decidedBy"] != "rule" || dec["ruleId"] != "0190a1b2-0000-7000-8000-0000000000a1" {
		t.Errorf("decision = %v", dec)
	}

	// A minimal request: absent values are null, not "" or omitted.
	b, err = json.Marshal(*minimalRequest())
	if err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"siteId", "subjectUserId", "pid", "adGroups", "riskTier", "decision", "pamRuleId",
		"pamRuleName", "decisionSource", "durationMinutes", "approvedAt", "expiresAt", "createdAt", "softwarePolicyMatchId"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", k, v, ok)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	check := func(t *testing.T, r *Request) {
		t.Helper()
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var got Request
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(utc(r), &got, reqCmp); d != "" {
			t.Fatalf("JSON round trip (-want +got):\n%s\n%s", d, b)
		}
	}
	t.Run("full", func(t *testing.T) { check(t, fullRequest()) })
	t.Run("minimal without decision", func(t *testing.T) { check(t, minimalRequest()) })
	t.Run("minimal with decision", func(t *testing.T) {
		r := minimalRequest()
		r.Decision = DecisionRecord{Outcome: engine.OutcomePending, DecidedBy: engine.DecidedByOrgDefault}
		check(t, r)
	})
	t.Run("random", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for range 500 {
			r := randomRequest(rng)
			if rng.IntN(5) == 0 {
				r.Decision = DecisionRecord{}
			}
			check(t, r)
		}
	})
	t.Run("value and pointer marshal alike", func(t *testing.T) {
		r := fullRequest()
		a, _ := json.Marshal(r)
		b, _ := json.Marshal(*r)
		if !bytes.Equal(a, b) {
			t.Fatalf("pointer and value marshal differ")
		}
	})
}

// TestJSONDerivedFieldsIgnoredOnRead: with a decision object, pamRuleId,
// pamRuleName, decisionSource and softwarePolicyMatchId are derived and
// ignored when reading.
func TestJSONDerivedFieldsIgnoredOnRead(t *testing.T) {
	r := minimalRequest()
	r.Decision = DecisionRecord{Outcome: engine.OutcomePending, DecidedBy: engine.DecidedByOrgDefault}
	b, _ := json.Marshal(r)
	var m map[string]any
	json.Unmarshal(b, &m)
	m["pamRuleId"], m["pamRuleName"], m["decisionSource"], m["softwarePolicyMatchId"] = "x", "y", "pam_rule", "sp"
	b, _ = json.Marshal(m)
	var got Request
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(r, &got, reqCmp); d != "" {
		t.Fatalf("derived fields leaked into the request (-want +got):\n%s", d)
	}
}

func TestJSONLegacyDecision(t *testing.T) {
	base := func(status string, extra string) string {
		return `{"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","orgId":"0190a1b2-0000-7000-8000-000000000001",` +
			`"deviceId":"0190a1b2-0000-7000-8000-0000000000d1","flowType":"uac_intercept","status":"` + status +
			`","subjectUsername":"a","requestedAt":"2026-01-01T00:00:00Z"` + extra + `}`
	}
	cases := []struct {
		name, doc string
		want      DecisionRecord
	}{
		{"pending", base("pending", ""), DecisionRecord{Outcome: engine.OutcomePending}},
		{"auto approved by rule", base("auto_approved", `,"approvedAt":"2026-01-01T00:00:00Z","pamRuleId":"r1","pamRuleName":"n1"`),
			DecisionRecord{Outcome: engine.OutcomeAutoApproved, DecidedBy: engine.DecidedByRule, RuleID: "r1", RuleName: "n1"}},
		{"auto denied", base("denied", `,"pamRuleName":"deny"`),
			DecisionRecord{Outcome: engine.OutcomeDenied, DecidedBy: engine.DecidedByRule, RuleName: "deny"}},
		{"denied by human", base("denied", `,"deniedBy":"u1"`), DecisionRecord{Outcome: engine.OutcomePending}},
		{"revoked auto approval", base("revoked", ``), DecisionRecord{Outcome: engine.OutcomeAutoApproved}},
		{"revoked approval", base("revoked", `,"approvedBy":"u"`), DecisionRecord{Outcome: engine.OutcomePending}},
		{"software policy", base("auto_approved", `,"softwarePolicyMatchId":"sp","pamRuleId":"r"`),
			DecisionRecord{Outcome: engine.OutcomeAutoApproved, DecidedBy: engine.DecidedBySoftwarePolicy, SoftwarePolicyID: "sp"}},
		// "decision": null is a request without a recorded decision, not
		// another system's row.
		{"null decision", base("expired", `,"decision":null,"pamRuleId":"r"`), DecisionRecord{}},
		{"decision object wins", base("auto_approved", `,"decision":{"outcome":"auto_approved","decidedBy":"org_default"},"pamRuleId":"r"`),
			DecisionRecord{Outcome: engine.OutcomeAutoApproved, DecidedBy: engine.DecidedByOrgDefault}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r Request
			if err := json.Unmarshal([]byte(c.doc), &r); err != nil {
				t.Fatal(err)
			}
			if r.Decision != c.want {
				t.Fatalf("decision = %+v, want %+v", r.Decision, c.want)
			}
		})
	}
	for _, bad := range []string{`{"id":1}`, `{"decision":"x"}`, `{"decision":{"outcome":5}}`, `[]`} {
		var r Request
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

// TestPamRuleAndDecisionSource follows pam-semantics: a uac (or JIT)
// require_approval match leaves no rule trace, tool actions report any
// matched rule, and software_policy beats pam_rule beats human.
func TestPamRuleAndDecisionSource(t *testing.T) {
	type tc struct {
		name             string
		flow             engine.FlowType
		dec              DecisionRecord
		approvedBy       string
		deniedBy         string
		revokedBy        string
		wantID, wantName string
		wantSource       string
	}
	rule := func(o engine.Outcome) DecisionRecord {
		return DecisionRecord{Outcome: o, DecidedBy: engine.DecidedByRule, RuleID: "r1", RuleName: "Rule One"}
	}
	cases := []tc{
		{name: "uac require_approval rule, undecided", flow: engine.FlowUAC, dec: rule(engine.OutcomePending)},
		{name: "uac require_approval rule, approved by human", flow: engine.FlowUAC, dec: rule(engine.OutcomePending), approvedBy: "u", wantSource: "human"},
		{name: "uac auto_approve rule", flow: engine.FlowUAC, dec: rule(engine.OutcomeAutoApproved), wantID: "r1", wantName: "Rule One", wantSource: "pam_rule"},
		{name: "uac auto_deny rule", flow: engine.FlowUAC, dec: rule(engine.OutcomeDenied), wantID: "r1", wantName: "Rule One", wantSource: "pam_rule"},
		{name: "uac auto-approved then revoked by human", flow: engine.FlowUAC, dec: rule(engine.OutcomeAutoApproved), revokedBy: "u", wantID: "r1", wantName: "Rule One", wantSource: "pam_rule"},
		{name: "tool require_approval rule reported", flow: engine.FlowToolAct, dec: rule(engine.OutcomePending), wantID: "r1", wantName: "Rule One", wantSource: "pam_rule"},
		{name: "tool rule beats human", flow: engine.FlowToolAct, dec: rule(engine.OutcomePending), approvedBy: "u", wantID: "r1", wantName: "Rule One", wantSource: "pam_rule"},
		{name: "tool auto_approve rule", flow: engine.FlowToolAct, dec: rule(engine.OutcomeAutoApproved), wantID: "r1", wantName: "Rule One", wantSource: "pam_rule"},
		{name: "jit require_approval rule", flow: engine.FlowJITAdmin, dec: rule(engine.OutcomePending), deniedBy: "u", wantSource: "human"},
		{name: "jit auto_approve rule", flow: engine.FlowJITAdmin, dec: rule(engine.OutcomeAutoApproved), wantID: "r1", wantName: "Rule One", wantSource: "pam_rule"},
		{name: "rule name only", flow: engine.FlowToolAct, dec: DecisionRecord{Outcome: engine.OutcomePending, DecidedBy: engine.DecidedByRule, RuleName: "n"}, wantName: "n", wantSource: "pam_rule"},
		{name: "rule decided but no id or name", flow: engine.FlowUAC, dec: DecisionRecord{Outcome: engine.OutcomeDenied, DecidedBy: engine.DecidedByRule}},
		{name: "org default carries no rule", flow: engine.FlowToolAct, dec: DecisionRecord{Outcome: engine.OutcomeDenied, DecidedBy: engine.DecidedByOrgDefault, RuleID: "r1"}},
		{name: "software policy beats pam_rule", flow: engine.FlowToolAct, dec: DecisionRecord{Outcome: engine.OutcomeAutoApproved, DecidedBy: engine.DecidedByRule, RuleID: "r1", RuleName: "Rule One", SoftwarePolicyID: "sp"}, wantID: "r1", wantName: "Rule One", wantSource: "software_policy"},
		{name: "software policy beats human", flow: engine.FlowUAC, dec: DecisionRecord{Outcome: engine.OutcomeAutoApproved, DecidedBy: engine.DecidedBySoftwarePolicy, SoftwarePolicyID: "sp"}, revokedBy: "u", wantSource: "software_policy"},
		{name: "revoked by human only", flow: engine.FlowUAC, dec: DecisionRecord{Outcome: engine.OutcomePending, DecidedBy: engine.DecidedByOrgDefault}, revokedBy: "u", wantSource: "human"},
		{name: "nothing", flow: engine.FlowUAC, dec: DecisionRecord{Outcome: engine.OutcomePending, DecidedBy: engine.DecidedByOrgDefault}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := minimalRequest()
			r.Flow, r.Decision, r.ApprovedBy, r.DeniedBy, r.RevokedBy = c.flow, c.dec, c.approvedBy, c.deniedBy, c.revokedBy
			id, name := r.PamRule()
			if id != c.wantID || name != c.wantName {
				t.Errorf("PamRule = %q, %q; want %q, %q", id, name, c.wantID, c.wantName)
			}
			if s := r.DecisionSource(); s != c.wantSource {
				t.Errorf("DecisionSource = %q, want %q", s, c.wantSource)
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			jsonStr := func(k string) string {
				v, ok := m[k]
				if !ok {
					t.Fatalf("JSON lacks %s", k)
				}
				if v == nil {
					return ""
				}
				s, _ := v.(string)
				if s == "" {
					t.Errorf("%s is an empty string, want null", k)
				}
				return s
			}
			if jsonStr("pamRuleId") != c.wantID || jsonStr("pamRuleName") != c.wantName || jsonStr("decisionSource") != c.wantSource {
				t.Errorf("JSON derived fields: %s", b)
			}
		})
	}
}

func TestStatusPredicates(t *testing.T) {
	active := map[Status]bool{StatusApproved: true, StatusAutoApproved: true, StatusActuating: true}
	terminal := map[Status]bool{StatusDenied: true, StatusExpired: true, StatusRevoked: true}
	for _, s := range Statuses {
		if !s.Valid() || s.Active() != active[s] || s.Terminal() != terminal[s] {
			t.Errorf("%s: valid %v active %v terminal %v", s, s.Valid(), s.Active(), s.Terminal())
		}
		if c := statusCode(s); c == 0 {
			t.Errorf("%s has no code", s)
		} else if back, ok := statusOf(c); !ok || back != s {
			t.Errorf("statusOf(statusCode(%s)) = %s", s, back)
		}
	}
	if Status("x").Valid() || Status("").Valid() {
		t.Error("unknown status valid")
	}
	now := t0
	// A grant without an expiry (which the store refuses to write) is
	// never active.
	for _, st := range []Status{StatusApproved, StatusAutoApproved, StatusActuating} {
		r := &Request{Status: st, ApprovedAt: now.Add(-time.Hour)}
		if r.ActiveAt(now) {
			t.Errorf("%s without expiry active", st)
		}
	}
	r := &Request{Status: StatusApproved}
	r.ExpiresAt = now
	if r.ActiveAt(now) {
		t.Error("active at its expiresAt")
	}
	r.ExpiresAt = now.Add(time.Nanosecond)
	if !r.ActiveAt(now) {
		t.Error("not active before expiresAt")
	}
	r.Status = StatusRevoked
	if r.ActiveAt(now) {
		t.Error("revoked active")
	}
}

func TestIDs(t *testing.T) {
	id, err := ParseID("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B")
	if err != nil {
		t.Fatal(err)
	}
	if id.String() != "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" {
		t.Fatalf("String = %s", id)
	}
	for _, bad := range []string{"", "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5", "0190a1b2-c3d4-7e5f-8a9b_0c1d2e3f4a5b",
		"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g", "-190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b "} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) succeeded", bad)
		}
	}
	if NilID.String() != "" {
		t.Error("NilID prints non-empty")
	}
	// NewID: version 7, variant 10, time-ordered by millisecond.
	prev := ""
	for i := range 50 {
		s := NewID(t0.Add(time.Duration(i) * time.Millisecond))
		id, err := ParseID(s)
		if err != nil || s[14] != '7' || id[8]&0xc0 != 0x80 {
			t.Fatalf("NewID = %s, %v", s, err)
		}
		if s <= prev {
			t.Fatalf("NewID not increasing: %s after %s", s, prev)
		}
		prev = s
	}
}

func TestKeyString(t *testing.T) {
	org, _ := ParseID("0190a1b2-0000-7000-8000-000000000001")
	id, _ := ParseID("0190a1b2-0000-7000-8000-000000000002")
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	cases := map[string][]byte{
		"request/0190a1b2-0000-7000-8000-000000000001/2026-01-02T03:04:05.000000006Z/0190a1b2-0000-7000-8000-000000000002": requestKey(org, at, id),
		"audit/0190a1b2-0000-7000-8000-000000000001/7":                                                                     key(pAudit, org[:], u64(7)),
		"rule/0190a1b2-0000-7000-8000-000000000001/0190a1b2-0000-7000-8000-000000000002":                                   key(pRule, org[:], id[:]),
		"device/0190a1b2-0000-7000-8000-000000000001/0190a1b2-0000-7000-8000-000000000002":                                 key(pDevice, org[:], id[:]),
		"org/0190a1b2-0000-7000-8000-000000000001":                                                                         key(pOrg, org[:]),
		"audit-head/0190a1b2-0000-7000-8000-000000000001":                                                                  key(pAuditHead, org[:]),
		"<empty>": nil,
		"7100":    {'q', 0},
	}
	for want, k := range cases {
		if got := keyString(k); got != want {
			t.Errorf("keyString(%x) = %q, want %q", k, got, want)
		}
	}
	// Key timestamps sort in time order, including before 1970.
	times := []time.Time{time.Unix(0, -5), time.Unix(0, -1), time.Unix(0, 0), time.Unix(0, 1), at}
	for i := 1; i < len(times); i++ {
		if bytes.Compare(ts(times[i-1]), ts(times[i])) >= 0 {
			t.Errorf("ts(%v) !< ts(%v)", times[i-1], times[i])
		}
		if !tsOf(ts(times[i])).Equal(times[i]) {
			t.Errorf("tsOf(ts(%v)) = %v", times[i], tsOf(ts(times[i])))
		}
	}
	if prefixEnd([]byte{1, 0xff}) == nil || !bytes.Equal(prefixEnd([]byte{1, 0xff}), []byte{2}) || prefixEnd([]byte{0xff, 0xff}) != nil {
		t.Error("prefixEnd")
	}
}

// TestOutOfRangeTimes: rows store times as int64 Unix nanoseconds, which
// cover only 1678–2262; time.UnixNano is undefined outside. A time outside
// must be refused (or survive exactly), never silently turned into another
// time: an expiresAt of 9999-12-31 (a common "never" value) came back as a
// date in 1816, i.e. long expired.
func TestOutOfRangeTimes(t *testing.T) {
	far := []time.Time{
		time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	fields := map[string]func(r *Request, at time.Time){
		"requestedAt": func(r *Request, at time.Time) { r.RequestedAt = at },
		"expiresAt":   func(r *Request, at time.Time) { r.ExpiresAt = at },
		"approvedAt":  func(r *Request, at time.Time) { r.ApprovedAt = at },
		"createdAt":   func(r *Request, at time.Time) { r.CreatedAt = at },
	}
	for name, set := range fields {
		for _, at := range far {
			r := minimalRequest()
			r.Status, r.ApprovedAt, r.ExpiresAt = StatusApproved, t0, t0.Add(time.Hour)
			set(r, at)
			b, err := MarshalRow(r)
			if err != nil {
				continue // refused: fine
			}
			var got Request
			if err := UnmarshalRow(b, &got); err != nil {
				t.Errorf("%s=%v: row does not decode: %v", name, at, err)
				continue
			}
			if d := cmp.Diff(utc(r), &got, reqCmp); d != "" {
				t.Errorf("BUG: %s=%v accepted but stored as another time (-want +got):\n%s", name, at.Format(time.DateOnly), d)
			}
		}
	}
}
