package policy

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/elevate-pam/elevate/engine"
)

var (
	testHex64 = strings.Repeat("0123456789abcdef", 4)
	testUUID  = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
	testUUID2 = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
)

// problem is one expected FieldError: its exact path and a fragment of its
// reason ("" = any reason).
type problem struct{ field, reason string }

// problems flattens err into (field, reason) pairs; nil for a nil error.
func problems(t *testing.T, err error) []problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var fes engine.FieldErrors
	if !errors.As(err, &fes) {
		t.Fatalf("error %v (%T) is not engine.FieldErrors", err, err)
	}
	out := make([]problem, len(fes))
	for i, fe := range fes {
		if fe.Reason == "" {
			t.Errorf("FieldError %q has no reason", fe.Field)
		}
		out[i] = problem{fe.Field, fe.Reason}
	}
	return out
}

// checkProblems compares paths exactly and in order, and requires each
// expected reason fragment to occur in the actual reason.
func checkProblems(t *testing.T, err error, want []problem) {
	t.Helper()
	got := problems(t, err)
	gotFields := make([]string, len(got))
	for i, p := range got {
		gotFields[i] = p.field
	}
	wantFields := make([]string, len(want))
	for i, p := range want {
		wantFields[i] = p.field
	}
	if diff := cmp.Diff(wantFields, gotFields); diff != "" {
		t.Fatalf("problem paths (-want +got):\n%s\nerror: %v", diff, err)
	}
	for i, w := range want {
		if !strings.Contains(got[i].reason, w.reason) {
			t.Errorf("%s: reason %q does not contain %q", w.field, got[i].reason, w.reason)
		}
	}
}

func TestParseLevel(t *testing.T) {
	cases := []struct {
		in   string
		want Level
		ok   bool
	}{
		{"partner", LevelPartner, true},
		{"organization", LevelOrganization, true},
		{"org", LevelOrganization, true},
		{"site", LevelSite, true},
		{"device_group", LevelDeviceGroup, true},
		{"group", LevelDeviceGroup, true},
		{"device", LevelDevice, true},
		{"", "", false},
		{"Org", "", false},
		{" site", "", false},
		{"devicegroup", "", false},
		{"tenant", "", false},
	}
	for _, c := range cases {
		got, ok := ParseLevel(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseLevel(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	for _, l := range Levels() {
		if got, ok := ParseLevel(l.DSLName()); !ok || got != l {
			t.Errorf("ParseLevel(%q.DSLName() = %q) = %q, %v", l, l.DSLName(), got, ok)
		}
	}
	dsl := map[Level]string{LevelPartner: "partner", LevelOrganization: "org", LevelSite: "site", LevelDeviceGroup: "group", LevelDevice: "device"}
	for l, want := range dsl {
		if got := l.DSLName(); got != want {
			t.Errorf("%q.DSLName() = %q, want %q", l, got, want)
		}
	}
}

func TestLevelRank(t *testing.T) {
	want := map[Level]int{LevelDevice: 5, LevelDeviceGroup: 4, LevelSite: 3, LevelOrganization: 2, LevelPartner: 1, "org": 0, "group": 0, "": 0, "fleet": 0}
	for l, r := range want {
		if got := l.Rank(); got != r {
			t.Errorf("%q.Rank() = %d, want %d", l, got, r)
		}
		if got := l.Valid(); got != (r != 0) {
			t.Errorf("%q.Valid() = %v", l, got)
		}
	}
	ls := Levels()
	if len(ls) != 5 {
		t.Fatalf("Levels() = %v", ls)
	}
	for i := 1; i < len(ls); i++ {
		if ls[i-1].Rank() >= ls[i].Rank() {
			t.Errorf("Levels() not farthest-first at %d: %v", i, ls)
		}
	}
	ls[0] = "mutated"
	if Levels()[0] != LevelPartner {
		t.Error("Levels() exposes the package's slice")
	}
}

func TestPolicyJSONDefaults(t *testing.T) {
	cases := []struct {
		name, doc  string
		wantActive bool
	}{
		{"absent defaults to active", `{"name":"p"}`, true},
		{"explicit false kept", `{"name":"p","active":false}`, false},
		{"explicit true kept", `{"name":"p","active":true}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Policy
			if err := json.Unmarshal([]byte(c.doc), &p); err != nil {
				t.Fatal(err)
			}
			if p.Active != c.wantActive {
				t.Errorf("Active = %v, want %v", p.Active, c.wantActive)
			}
		})
	}
	if err := json.Unmarshal([]byte(`{"name":1}`), new(Policy)); err == nil {
		t.Error("a mistyped name decoded without error")
	}

	desc := "kiosks"
	in := Policy{
		ID: testUUID, OrgID: testUUID2, Name: "kiosk", Description: &desc, Active: false,
		Features: map[string]json.RawMessage{"pam": json.RawMessage(`{"uacInterceptionEnabled":false}`)},
		Assignments: []Assignment{{ID: testUUID, Level: LevelSite, Target: testUUID2, Priority: 3,
			Condition: `device.os == "windows"`, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}},
		CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"targetId"`, `"orgId"`, `"active":false`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("encoded policy lacks %s: %s", key, b)
		}
	}
	if strings.Contains(string(b), "updatedAt") {
		t.Errorf("zero updatedAt was encoded: %s", b)
	}
	var out Policy
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
}

func TestRegistry(t *testing.T) {
	var names []string
	for _, f := range Features() {
		names = append(names, f.Name)
	}
	if diff := cmp.Diff([]string{"pam", "software_policy"}, names); diff != "" {
		t.Errorf("Features() (-want +got):\n%s", diff)
	}
	fs := Features()
	fs[0] = nil
	if Features()[0] == nil {
		t.Error("Features() exposes the registry slice")
	}

	lookups := []struct{ name, want string }{
		{"pam", "pam"}, {"software_policy", "software_policy"}, {"software", "software_policy"}, {"remote_access", ""}, {"", ""},
	}
	for _, l := range lookups {
		got := ""
		if f, ok := LookupFeature(l.name); ok {
			got = f.Name
		}
		if got != l.want {
			t.Errorf("LookupFeature(%q) = %q, want %q", l.name, got, l.want)
		}
	}

	sw, _ := LookupFeature("software")
	for _, key := range []string{"mode", "priority", "executable"} {
		if s, ok := sw.Setting(key); !ok || s.JSONKey != key {
			t.Errorf("Setting(%q) = %v, %v", key, s, ok)
		}
	}
	exe, _ := sw.Setting("executable")
	for key, want := range map[string]string{"path_glob": "pathGlob", "pathGlob": "pathGlob", "sha256": "sha256"} {
		if s, ok := exe.Field(key); !ok || s.JSONKey != want {
			t.Errorf("executable.Field(%q) = %v, %v; want %q", key, s, ok, want)
		}
	}
	if _, ok := exe.Field("hash"); ok {
		t.Error(`executable.Field("hash") found a field`)
	}
	pam, _ := LookupFeature("pam")
	for _, key := range []string{"uac_interception", "uacInterceptionEnabled"} {
		if s, ok := pam.Setting(key); !ok || s.JSONKey != "uacInterceptionEnabled" || s.Kind != KindBool || s.Default != false {
			t.Errorf("pam.Setting(%q) = %+v, %v", key, s, ok)
		}
	}
	if _, ok := pam.Setting("uacInterception"); ok {
		t.Error(`pam.Setting("uacInterception") found a setting`)
	}
}

// TestRegistryDeclarations keeps every declaration usable by both the JSON
// validator and the rule-file compiler.
func TestRegistryDeclarations(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	camel := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	var walk func(where string, fields []Setting)
	walk = func(where string, fields []Setting) {
		jsonKeys, dslKeys := map[string]bool{}, map[string]bool{}
		for _, s := range fields {
			at := where + "." + s.JSONKey
			if !camel.MatchString(s.JSONKey) || !snake.MatchString(s.DSLKey) {
				t.Errorf("%s: keys %q / %q are not camelCase / snake_case", at, s.JSONKey, s.DSLKey)
			}
			if jsonKeys[s.JSONKey] || dslKeys[s.DSLKey] {
				t.Errorf("%s: duplicate key", at)
			}
			jsonKeys[s.JSONKey], dslKeys[s.DSLKey] = true, true
			if s.Doc == "" {
				t.Errorf("%s: no doc", at)
			}
			if s.Required && s.Default != nil {
				t.Errorf("%s: required with a default", at)
			}
			ok := true
			switch s.Kind {
			case KindBool:
				_, ok = s.Default.(bool)
			case KindInt:
				var n int
				n, ok = s.Default.(int)
				if ok && (n < s.Min || n > s.Max) {
					t.Errorf("%s: default %d outside [%d, %d]", at, n, s.Min, s.Max)
				}
			case KindString:
				_, ok = s.Default.(string)
			case KindEnum:
				var v string
				v, ok = s.Default.(string)
				if ok && !slices.Contains(s.Enum, v) {
					t.Errorf("%s: default %q not in enum", at, v)
				}
				if len(s.Enum) == 0 {
					t.Errorf("%s: enum without values", at)
				}
			case KindObjectList:
				ok = false
				if len(s.Fields) == 0 {
					t.Errorf("%s: object list without fields", at)
				}
				walk(at, s.Fields)
			default:
				t.Errorf("%s: kind %v", at, s.Kind)
			}
			if s.Default != nil && !ok {
				t.Errorf("%s: default %#v does not fit kind %v", at, s.Default, s.Kind)
			}
		}
	}
	dslNames := map[string]bool{}
	for _, f := range Features() {
		if f.Doc == "" || f.Name == "" || f.DSLName == "" || dslNames[f.DSLName] {
			t.Errorf("feature %+v: missing doc or name, or duplicate DSL name", f)
		}
		dslNames[f.DSLName] = true
		walk(f.Name, f.Settings)
	}
}

func TestFeatureValidate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name, feature, settings string
		want                    []problem
	}{
		{"pam empty object uses the default", "pam", `{}`, nil},
		{"pam true", "pam", `{"uacInterceptionEnabled":true}`, nil},
		{"pam null counts as absent", "pam", `{"uacInterceptionEnabled":null}`, nil},
		{"pam string for bool", "pam", `{"uacInterceptionEnabled":"true"}`,
			[]problem{{"uacInterceptionEnabled", "must be a boolean (true or false), got a string"}}},
		{"pam number for bool", "pam", `{"uacInterceptionEnabled":1}`,
			[]problem{{"uacInterceptionEnabled", "got a number"}}},
		{"unknown setting lists the known keys", "pam", `{"uacInterceptionEnabled":true,"foo":1}`,
			[]problem{{"foo", `unknown setting "foo"; known: uacInterceptionEnabled`}}},
		{"rule-file key in JSON gets a hint", "pam", `{"uac_interception":true}`,
			[]problem{{"uac_interception", `did you mean "uacInterceptionEnabled"?`}}},
		{"wrong case gets a hint", "pam", `{"UACInterceptionEnabled":true}`,
			[]problem{{"UACInterceptionEnabled", `did you mean "uacInterceptionEnabled"?`}}},
		{"duplicate key", "pam", `{"uacInterceptionEnabled":true,"uacInterceptionEnabled":false}`,
			[]problem{{"uacInterceptionEnabled", "duplicate key"}}},
		{"null settings", "pam", `null`, []problem{{"", "must be a JSON object, got null"}}},
		{"list settings", "pam", `[]`, []problem{{"", "must be a JSON object, got a list"}}},
		{"empty settings", "pam", ``, []problem{{"", "not valid JSON"}}},
		{"broken JSON", "pam", `{"uacInterceptionEnabled":`, []problem{{"", "not valid JSON"}}},
		{"trailing data", "pam", `{} {}`, []problem{{"", "unexpected data after the value"}}},
		{"nested too deep", "software_policy", `{"mode":"audit","executable":[{"name":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}]}`,
			[]problem{{"", "nested more than"}}},

		{"software minimal", "software_policy", `{"mode":"audit"}`, nil},
		{"software full", "software_policy", `{"mode":"allowlist","priority":100000,"executable":[
			{"name":"a","sha256":"` + strings.ToUpper(testHex64) + `"},
			{"name":"b","sha256":" ` + testHex64 + ` ","signer":"Mozilla Corporation","publisher":"Mozilla","pathGlob":"C:\\Program Files\\**"},
			{"name":"c","signer":null}]}`, nil},
		{"missing required mode", "software_policy", `{"priority":1}`,
			[]problem{{"mode", "is required; must be one of allowlist, blocklist, audit"}}},
		{"mode not in enum", "software_policy", `{"mode":"deny"}`,
			[]problem{{"mode", `"deny": must be one of allowlist, blocklist, audit`}}},
		{"mode wrong case", "software_policy", `{"mode":"Allowlist"}`, []problem{{"mode", "must be one of"}}},
		{"mode not a string", "software_policy", `{"mode":1}`, []problem{{"mode", "must be one of allowlist, blocklist, audit, got a number"}}},
		{"priority low", "software_policy", `{"mode":"audit","priority":-1}`, []problem{{"priority", "must be between 0 and 100000"}}},
		{"priority high", "software_policy", `{"mode":"audit","priority":100001}`, []problem{{"priority", "must be between 0 and 100000"}}},
		{"priority zero", "software_policy", `{"mode":"audit","priority":0}`, nil},
		{"priority fraction", "software_policy", `{"mode":"audit","priority":1.5}`, []problem{{"priority", "must be an integer, got 1.5"}}},
		{"priority exponent", "software_policy", `{"mode":"audit","priority":1e3}`, []problem{{"priority", "must be an integer"}}},
		{"priority huge", "software_policy", `{"mode":"audit","priority":99999999999999999999}`, []problem{{"priority", "must be an integer"}}},
		{"priority string", "software_policy", `{"mode":"audit","priority":"5"}`, []problem{{"priority", "must be an integer, got a string"}}},
		{"executable not a list", "software_policy", `{"mode":"audit","executable":{"name":"a"}}`,
			[]problem{{"executable", "must be a list of objects, got an object"}}},
		{"entry not an object", "software_policy", `{"mode":"audit","executable":[{"name":"a"},"b"]}`,
			[]problem{{"executable[1]", "must be an object, got a string"}}},
		{"entry without a name", "software_policy", `{"mode":"audit","executable":[{"sha256":"` + testHex64 + `"}]}`,
			[]problem{{"executable[0].name", "is required"}}},
		{"entry with an empty name", "software_policy", `{"mode":"audit","executable":[{"name":""}]}`,
			[]problem{{"executable[0].name", "must not be empty"}}},
		{"entry name too long", "software_policy", `{"mode":"audit","executable":[{"name":"` + long(256) + `"}]}`,
			[]problem{{"executable[0].name", "must be at most 255 characters"}}},
		{"sha256 bad hex", "software_policy", `{"mode":"audit","executable":[{"name":"a"},{"name":"b"},{"name":"c","sha256":"` + testHex64[:63] + `g"}]}`,
			[]problem{{"executable[2].sha256", "must be 64 hexadecimal characters"}}},
		{"sha256 short", "software_policy", `{"mode":"audit","executable":[{"name":"a","sha256":"abc"}]}`,
			[]problem{{"executable[0].sha256", "must be 64 hexadecimal characters"}}},
		{"sha256 not a string", "software_policy", `{"mode":"audit","executable":[{"name":"a","sha256":1}]}`,
			[]problem{{"executable[0].sha256", "must be a string, got a number"}}},
		{"signer empty", "software_policy", `{"mode":"audit","executable":[{"name":"a","signer":""}]}`,
			[]problem{{"executable[0].signer", "must not be empty"}}},
		{"signer too long", "software_policy", `{"mode":"audit","executable":[{"name":"a","signer":"` + long(256) + `"}]}`,
			[]problem{{"executable[0].signer", "at most 255"}}},
		{"publisher too long", "software_policy", `{"mode":"audit","executable":[{"name":"a","publisher":"` + long(256) + `"}]}`,
			[]problem{{"executable[0].publisher", "at most 255"}}},
		{"pathGlob too long", "software_policy", `{"mode":"audit","executable":[{"name":"a","pathGlob":"` + long(4097) + `"}]}`,
			[]problem{{"executable[0].pathGlob", "at most 4096"}}},
		{"length counts characters", "software_policy", `{"mode":"audit","executable":[{"name":"` + strings.Repeat("é", 255) + `"}]}`, nil},
		{"unknown entry field", "software_policy", `{"mode":"audit","executable":[{"name":"a","path_glob":"x"}]}`,
			[]problem{{"executable[0].path_glob", `unknown field "path_glob"; known: name, sha256, signer, publisher, pathGlob; did you mean "pathGlob"?`}}},
		{"problems in declaration order", "software_policy", `{"zzz":1,"executable":[{"name":"a","sha256":"x"},{"signer":""},{"name":"b","sha256":"y"},{},{},{},{},{},{},{},{"name":"c","sha256":"z"}],"mode":"no"}`,
			[]problem{
				{"mode", "must be one of"},
				{"executable[0].sha256", "hexadecimal"},
				{"executable[1].name", "is required"},
				{"executable[1].signer", "must not be empty"},
				{"executable[2].sha256", "hexadecimal"},
				{"executable[3].name", "is required"},
				{"executable[4].name", ""}, {"executable[5].name", ""}, {"executable[6].name", ""},
				{"executable[7].name", ""}, {"executable[8].name", ""}, {"executable[9].name", ""},
				{"executable[10].sha256", "hexadecimal"},
				{"zzz", "unknown setting"},
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, ok := LookupFeature(c.feature)
			if !ok {
				t.Fatalf("no feature %q", c.feature)
			}
			checkProblems(t, f.Validate(json.RawMessage(c.settings)), c.want)
		})
	}
}

// TestSoftwareLimitsAgreeWithEngine pins the declared string limits of a
// software entry to the engine's own check: at each declared bound both
// accept, one past it both reject.
func TestSoftwareLimitsAgreeWithEngine(t *testing.T) {
	exe, _ := softwareFeature.Setting("executable")
	checked := 0
	for _, fd := range exe.Fields {
		if fd.Kind != KindString || fd.Max == 0 || fd.JSONKey == "name" {
			continue // the engine does not check entry names
		}
		for _, n := range []int{fd.Min - 1, fd.Min, fd.Max, fd.Max + 1} {
			if n < 0 {
				continue
			}
			entry := map[string]any{"name": "a", fd.JSONKey: strings.Repeat("x", n)}
			m := map[string]any{"mode": "audit", "executable": []any{entry}}
			var schema engine.FieldErrors
			checkObject(&schema, softwareFeature.Settings, m, "", "setting")
			eng := checkSoftware(m)
			if (len(schema) == 0) != (len(eng) == 0) {
				t.Errorf("%s of %d characters: declaration says %v, engine says %v", fd.JSONKey, n, schema, eng)
			}
			if wantOK := n >= fd.Min && n <= fd.Max; wantOK != (len(eng) == 0) {
				t.Errorf("%s of %d characters: engine says %v", fd.JSONKey, n, eng)
			}
			checked++
		}
	}
	if checked < 9 {
		t.Errorf("checked only %d bounds", checked)
	}
}

func TestFeatureDecode(t *testing.T) {
	cases := []struct {
		feature, settings string
		want              map[string]any
	}{
		{"pam", `{}`, map[string]any{"uacInterceptionEnabled": false}},
		{"pam", `{"uacInterceptionEnabled":null}`, map[string]any{"uacInterceptionEnabled": false}},
		{"pam", `{"uacInterceptionEnabled":true}`, map[string]any{"uacInterceptionEnabled": true}},
		{"software", `{"mode":"audit"}`, map[string]any{"mode": "audit", "priority": 0}},
		{"software", `{"mode":"blocklist","priority":7,"executable":[{"name":"a","pathGlob":"C:\\x\\*"}]}`,
			map[string]any{"mode": "blocklist", "priority": 7,
				"executable": []map[string]any{{"name": "a", "pathGlob": `C:\x\*`}}}},
	}
	for _, c := range cases {
		f, _ := LookupFeature(c.feature)
		got, err := f.Decode(json.RawMessage(c.settings))
		if err != nil {
			t.Errorf("%s %s: %v", c.feature, c.settings, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", c.feature, c.settings, diff)
		}
	}
	if _, err := softwareFeature.Decode(json.RawMessage(`{}`)); err == nil {
		t.Error("Decode accepted settings without the required mode")
	}
}

// validPolicy carries both features and two assignments with a condition.
func validPolicy() Policy {
	return Policy{
		ID: testUUID, OrgID: testUUID2, Name: "kiosks", Active: true,
		Features: map[string]json.RawMessage{
			"pam":             json.RawMessage(`{"uacInterceptionEnabled":false}`),
			"software_policy": json.RawMessage(`{"mode":"blocklist","executable":[{"name":"psexec","sha256":"` + testHex64 + `"}]}`),
		},
		Assignments: []Assignment{
			{Level: LevelSite, Target: "kiosk-floor"},
			{Level: LevelDeviceGroup, Target: testUUID, Priority: 10, Condition: `device.os == "windows" && "kiosk" in device.tags`},
		},
	}
}

func TestValidatePolicy(t *testing.T) {
	s := func(v string) *string { return &v }
	cases := []struct {
		name string
		mod  func(p *Policy)
		want []problem
	}{
		{"valid", func(p *Policy) {}, nil},
		{"no features and no assignments", func(p *Policy) { p.Features, p.Assignments = nil, nil }, nil},
		{"partner-wide", func(p *Policy) { p.OrgID, p.PartnerID = "", testUUID2 }, nil},
		{"empty name", func(p *Policy) { p.Name = "" }, []problem{{"name", "is required"}}},
		{"blank name", func(p *Policy) { p.Name = "  " }, []problem{{"name", "is required"}}},
		{"name 255", func(p *Policy) { p.Name = strings.Repeat("é", 255) }, nil},
		{"name 256", func(p *Policy) { p.Name = strings.Repeat("n", 256) }, []problem{{"name", "at most 255"}}},
		{"description 2000", func(p *Policy) { p.Description = s(strings.Repeat("d", 2000)) }, nil},
		{"description 2001", func(p *Policy) { p.Description = s(strings.Repeat("d", 2001)) }, []problem{{"description", "at most 2000"}}},
		{"ids must be UUIDs", func(p *Policy) { p.ID, p.OrgID, p.PartnerID = "1", "acme", "x"; p.Assignments[0].ID = "a1" },
			[]problem{{"id", "UUID"}, {"orgId", "UUID"}, {"partnerId", "UUID"}, {"assignments[0].id", "UUID"}}},
		{"unknown feature", func(p *Policy) { p.Features["remote_access"] = json.RawMessage(`{}`) },
			[]problem{{"features.remote_access", `unknown feature "remote_access"; known: pam, software_policy`}}},
		{"rule-file feature name in JSON", func(p *Policy) { p.Features["software"] = json.RawMessage(`{"mode":"audit"}`) },
			[]problem{{"features.software", `did you mean "software_policy"?`}}},
		{"wrong setting type", func(p *Policy) { p.Features["pam"] = json.RawMessage(`{"uacInterceptionEnabled":"yes"}`) },
			[]problem{{"features.pam.uacInterceptionEnabled", "must be a boolean"}}},
		{"null settings", func(p *Policy) { p.Features["pam"] = json.RawMessage(`null`) },
			[]problem{{"features.pam", "must be a JSON object"}}},
		{"software entry problem", func(p *Policy) {
			p.Features["software_policy"] = json.RawMessage(`{"mode":"audit","executable":[{"name":"a","sha256":"nothex"}]}`)
		}, []problem{{"features.software_policy.executable[0].sha256", "64 hexadecimal"}}},
		{"features reported in name order", func(p *Policy) {
			p.Features["software_policy"] = json.RawMessage(`{}`)
			p.Features["pam"] = json.RawMessage(`{"x":1}`)
			p.Features["aaa"] = json.RawMessage(`{}`)
		}, []problem{{"features.aaa", "unknown feature"}, {"features.pam.x", "unknown setting"}, {"features.software_policy.mode", "is required"}}},
		{"missing level", func(p *Policy) { p.Assignments[0].Level = "" },
			[]problem{{"assignments[0].level", "is required; must be one of partner, organization, site, device_group, device"}}},
		{"bad level", func(p *Policy) { p.Assignments[1].Level = "region" },
			[]problem{{"assignments[1].level", `"region": must be one of`}}},
		{"rule-file level in JSON", func(p *Policy) { p.Assignments[0].Level = "org" },
			[]problem{{"assignments[0].level", `did you mean "organization"?`}}},
		{"empty target", func(p *Policy) { p.Assignments[0].Target = "" }, []problem{{"assignments[0].targetId", "is required"}}},
		{"blank target", func(p *Policy) { p.Assignments[0].Target = " " }, []problem{{"assignments[0].targetId", "is required"}}},
		{"target 255", func(p *Policy) { p.Assignments[0].Target = strings.Repeat("t", 255) }, nil},
		{"target 256", func(p *Policy) { p.Assignments[0].Target = strings.Repeat("t", 256) }, []problem{{"assignments[0].targetId", "at most 255"}}},
		{"priority bounds", func(p *Policy) { p.Assignments[0].Priority = 100000 }, nil},
		{"priority negative", func(p *Policy) { p.Assignments[0].Priority = -1 }, []problem{{"assignments[0].priority", "between 0 and 100000"}}},
		{"priority too high", func(p *Policy) { p.Assignments[1].Priority = 100001 }, []problem{{"assignments[1].priority", "between 0 and 100000"}}},
		{"condition does not parse", func(p *Policy) { p.Assignments[0].Condition = `device.os ==` },
			[]problem{{"assignments[0].condition", "1:13: Syntax error"}}},
		{"condition undeclared variable", func(p *Policy) { p.Assignments[0].Condition = `os == "windows"` },
			[]problem{{"assignments[0].condition", "1:1: undeclared reference to 'os'"}}},
		{"condition not bool", func(p *Policy) { p.Assignments[0].Condition = `device.hostname` },
			[]problem{{"assignments[0].condition", "must be a bool expression"}}},
		{"duplicate level and target", func(p *Policy) {
			p.Assignments = append(p.Assignments, Assignment{Level: LevelSite, Target: "kiosk-floor", Priority: 5})
		}, []problem{{"assignments[2]", "same site as assignments[0]"}}},
		{"duplicate UUID target in another case", func(p *Policy) {
			p.Assignments = append(p.Assignments, Assignment{Level: LevelDeviceGroup, Target: strings.ToUpper(testUUID)})
		}, []problem{{"assignments[2]", "same device_group as assignments[1]"}}},
		{"duplicate even with a different condition", func(p *Policy) {
			p.Assignments = append(p.Assignments, Assignment{Level: LevelSite, Target: "kiosk-floor", Condition: `device.os == "linux"`})
		}, []problem{{"assignments[2]", "same site"}}},
		{"same target at another level is not a duplicate", func(p *Policy) {
			p.Assignments = append(p.Assignments, Assignment{Level: LevelDevice, Target: "kiosk-floor"})
		}, nil},
		{"names differing in case are different targets", func(p *Policy) {
			p.Assignments = append(p.Assignments, Assignment{Level: LevelSite, Target: "Kiosk-Floor"})
		}, nil},
		{"every problem, in order", func(p *Policy) {
			p.Name = ""
			p.Features["pam"] = json.RawMessage(`{"uacInterceptionEnabled":1}`)
			p.Assignments[0] = Assignment{Level: "x", Target: "", Priority: -5, Condition: "device."}
		}, []problem{
			{"name", ""}, {"features.pam.uacInterceptionEnabled", ""},
			{"assignments[0].level", ""}, {"assignments[0].targetId", ""}, {"assignments[0].priority", ""}, {"assignments[0].condition", ""},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := validPolicy()
			c.mod(&p)
			checkProblems(t, ValidatePolicy(&p), c.want)
		})
	}
}

func TestConditionIssues(t *testing.T) {
	cases := []struct {
		name, src string
		want      []ConditionError // Msg compared as a fragment
	}{
		{"equality", `device.os == "windows"`, nil},
		{"membership", `"kiosk" in device.tags`, nil},
		{"macro over a list", `device.groups.exists(g, g.startsWith("lab-"))`, nil},
		{"presence test", `has(device.role) && device.role == "server"`, nil},
		{"undeclared", `devcie.os == "x"`, []ConditionError{{1, 1, "undeclared reference to 'devcie'"}}},
		{"columns count characters", `"é" == devcie`, []ConditionError{{1, 8, "undeclared reference"}}},
		{"several lines, several problems", "a\n  && b", []ConditionError{{1, 1, "'a'"}, {2, 6, "'b'"}}},
		{"syntax", `device.os ==`, []ConditionError{{1, 13, "Syntax error"}}},
		{"empty", ``, []ConditionError{{1, 1, "Syntax error"}}},
		{"not bool: dyn", `device.os`, []ConditionError{{1, 1, "must be a bool expression, not dyn (compare the attribute explicitly"}}},
		{"not bool: int, points at the expression start", "\n  device.tags.size() + 1", []ConditionError{{2, 3, "not int"}}},
		{"too long", `device.os == "` + strings.Repeat("w", MaxConditionLength) + `"`, []ConditionError{{1, 1, "the limit is 4096"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ConditionIssues(c.src)
			if len(got) != len(c.want) {
				t.Fatalf("ConditionIssues(%q) = %v, want %d issues", c.src, got, len(c.want))
			}
			for i, w := range c.want {
				g := got[i]
				if g.Line != w.Line || g.Col != w.Col || !strings.Contains(g.Msg, w.Msg) {
					t.Errorf("issue %d = %d:%d %q, want %d:%d containing %q", i, g.Line, g.Col, g.Msg, w.Line, w.Col, w.Msg)
				}
			}
			_, err := CompileCondition(c.src)
			if (err == nil) != (c.want == nil) {
				t.Errorf("CompileCondition error = %v, issues %v", err, got)
			}
			var ce ConditionErrors
			if err != nil && (!errors.As(err, &ce) || len(ce) != len(c.want)) {
				t.Errorf("CompileCondition error %v (%T) is not the issues", err, err)
			}
		})
	}
}

func TestEvalCondition(t *testing.T) {
	prg, err := CompileCondition(`device.os == "windows" && "kiosk" in device.tags`)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		device  map[string]any
		want    bool
		wantErr bool
	}{
		{"match", map[string]any{"os": "windows", "tags": []string{"kiosk", "lobby"}}, true, false},
		{"other os", map[string]any{"os": "macos", "tags": []string{"kiosk"}}, false, false},
		{"no tag", map[string]any{"os": "windows", "tags": []string{}}, false, false},
		{"absent attribute is an error", map[string]any{"tags": []string{"kiosk"}}, false, true},
		{"nil device is an error", nil, false, true},
	}
	for _, c := range cases {
		got, err := EvalCondition(prg, c.device)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("%s: = %v, %v; want %v, error %v", c.name, got, err, c.want, c.wantErr)
		}
	}
	guarded, err := CompileCondition(`has(device.site) && device.site == "hq"`)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := EvalCondition(guarded, map[string]any{}); got || err != nil {
		t.Errorf("guarded condition on a device without a site = %v, %v; want false, nil", got, err)
	}
}

func TestSoftwarePolicyFrom(t *testing.T) {
	sig := "Sysinternals"
	glob := `C:\Tools\**`
	cases := []struct {
		name        string
		mod         func(p *Policy)
		want        *engine.SoftwarePolicy
		wantPresent bool
		wantErr     []problem
	}{
		{"no feature", func(p *Policy) { delete(p.Features, "software_policy") }, nil, false, nil},
		{"nil features", func(p *Policy) { p.Features = nil }, nil, false, nil},
		{"converted", func(p *Policy) {
			p.Features["software_policy"] = json.RawMessage(`{"mode":"blocklist","priority":40,"executable":[
				{"name":"psexec","sha256":"` + testHex64 + `"},{"name":"tools","signer":"Sysinternals","pathGlob":"C:\\Tools\\**"}]}`)
		}, &engine.SoftwarePolicy{ID: testUUID, Name: "kiosks", Mode: engine.ModeBlocklist, Priority: 40, IsActive: true,
			Executable: []engine.SoftwarePolicyEntry{{Name: "psexec", SHA256: &testHex64}, {Name: "tools", Signer: &sig, PathGlob: &glob}}}, true, nil},
		{"defaults and inactive", func(p *Policy) {
			p.Active = false
			p.Features["software_policy"] = json.RawMessage(`{"mode":"audit"}`)
		}, &engine.SoftwarePolicy{ID: testUUID, Name: "kiosks", Mode: engine.ModeAudit, Priority: 0, IsActive: false,
			Executable: []engine.SoftwarePolicyEntry{}}, true, nil},
		{"invalid", func(p *Policy) { p.Features["software_policy"] = json.RawMessage(`{"priority":1}`) },
			nil, true, []problem{{"features.software_policy.mode", "is required"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := validPolicy()
			c.mod(&p)
			got, present, err := SoftwarePolicyFrom(&p)
			if present != c.wantPresent {
				t.Errorf("present = %v, want %v", present, c.wantPresent)
			}
			checkProblems(t, err, c.wantErr)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("policy (-want +got):\n%s", diff)
			}
			if got != nil {
				if _, err := engine.NewBridge(*got); err != nil {
					t.Errorf("the engine rejects the converted policy: %v", err)
				}
			}
		})
	}
	if got, present, err := SoftwarePolicyFrom(nil); got != nil || present || err != nil {
		t.Errorf("SoftwarePolicyFrom(nil) = %v, %v, %v", got, present, err)
	}
}

func TestPamSettingsFrom(t *testing.T) {
	cases := []struct {
		name        string
		settings    *string // nil: no pam feature
		want        bool
		wantPresent bool
		wantErr     []problem
	}{
		{"no feature", nil, false, false, nil},
		{"empty settings are off", ptr(`{}`), false, true, nil},
		{"on", ptr(`{"uacInterceptionEnabled":true}`), true, true, nil},
		{"off", ptr(`{"uacInterceptionEnabled":false}`), false, true, nil},
		{"invalid", ptr(`{"uacInterceptionEnabled":"true"}`), false, true,
			[]problem{{"features.pam.uacInterceptionEnabled", "must be a boolean"}}},
		{"not an object", ptr(`true`), false, true, []problem{{"features.pam", "must be a JSON object"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := validPolicy()
			delete(p.Features, "pam")
			if c.settings != nil {
				p.Features["pam"] = json.RawMessage(*c.settings)
			}
			got, present, err := PamSettingsFrom(&p)
			if got != c.want || present != c.wantPresent {
				t.Errorf("= %v, %v; want %v, %v", got, present, c.want, c.wantPresent)
			}
			checkProblems(t, err, c.wantErr)
		})
	}
	if got, present, err := PamSettingsFrom(nil); got || present || err != nil {
		t.Errorf("PamSettingsFrom(nil) = %v, %v, %v", got, present, err)
	}
}

func ptr(s string) *string { return &s }
