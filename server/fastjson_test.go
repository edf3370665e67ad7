package server

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
)

// Bodies agents and harnesses really send take the fast path.
var fastDecideSeeds = []string{
	`{"flowType":"uac_intercept","observation":{"subjectUsername":"ACME\\alice","targetExecutablePath":"C:\\Program Files\\Tool\\t.exe","targetExecutableSigner":"Acme Corp","observedAt":"2026-11-01T10:00:00Z"},"explain":true}`,
	`{"flowType":"ai_tool_action","observation":{"toolName":"run_script","riskTier":2},"deviceId":"00000000-0000-0000-0000-000000000001","at":"2026-11-01T10:00:00.5+02:00"}`,
	` { "flowType" : "tech_jit_admin" , "observation" : { "subjectUsername" : "bob", "requestedDurationMinutes" : 30, "adGroups" : [ "Admins", "Ops\u00e9" ] } } `,
	`{"observation":{"commandLine":"cmd /c \"echo \/ \b\f\n\r\t\u0041\"","parentImage":"é漢字","siteId":"","targetExecutableHash":"AB","targetExecutableSignerThumbprint":"CD"},"explain":false}`,
	`{"observation":{"adGroups":[]}}`,
	`{}`,
}

var fastAgentSeeds = []string{
	`{"subject_username":"ACME\\alice","target_executable_path":"C:\\Windows\\System32\\mmc.exe","target_executable_hash":"ab","target_executable_signer":"Microsoft Windows","target_executable_signer_thumbprint":"cd","pid":4242,"parent_image":"C:\\Windows\\explorer.exe","command_line":"mmc.exe","observed_at":"2026-11-01T10:00:00Z","ad_groups":["Domain Users"]}`,
	`{"subject_username":"a","target_executable_path":"p","agent_version":"1.2.3","extra":{"nested":[1,2.5e3,-0.1,true,false,"x",{}]},"pid":-1}`,
	`{"subject_username":"a","pid":1.5e300}`,
}

func TestFastJSONTakesPlainBodies(t *testing.T) {
	for _, s := range fastDecideSeeds {
		var d decideBody
		if !fastDecideBody([]byte(s), &d) {
			t.Errorf("decide body left the fast path: %s", s)
		}
		checkDecideBody(t, []byte(s))
	}
	for _, s := range fastAgentSeeds {
		var a agentObservation
		if !fastAgentBody([]byte(s), &a) {
			t.Errorf("agent body left the fast path: %s", s)
		}
		checkAgentBody(t, []byte(s))
	}
}

// Bodies encoding/json reads differently, or refuses, leave the fast path.
func TestFastJSONLeavesUnusualBodies(t *testing.T) {
	for _, s := range []string{
		`{"flowType":null}`,                                  // null keeps the zero value
		`{"flowType":"a","flowType":"b"}`,                    // repeated member
		`{"FlowType":"uac_intercept"}`,                       // case-insensitive match
		`{"observation":{"subjectUsername":"\ud800"}}`,       // lone surrogate
		`{"observation":{"subjectUsername":"\ud83d\ude00"}}`, // surrogate pair
		"{\"observation\":{\"subjectUsername\":\"\xff\"}}",   // invalid UTF-8
		`{"observation":{"riskTier":1e1}}`,                   // not an int for encoding/json
		`{"observation":{"riskTier":99999999999999999999}}`,
		`{"observation":{"observedAt":"yesterday"}}`,
		`{"unknown":1}`,
		`{} {}`,
		`[]`,
		`{"explain":true,}`,
		"{\"observation\":{\"commandLine\":\"a\tb\"}}", // raw control character
	} {
		d := decideBody{DeviceID: "kept"} // a refusal leaves the target alone
		if fastDecideBody([]byte(s), &d) || d.DeviceID != "kept" {
			t.Errorf("decide body took the fast path, or a refusal wrote %+v: %s", d, s)
		}
		checkDecideBody(t, []byte(s))
	}
	for _, s := range []string{
		`{"Subject_Username":"a"}`,  // encoding/json takes it
		`{"subject_username":null}`, // null leaves the pointer nil
		`{"pid":"12"}`,              // a string for json.Number
		`{"pid":01}`,                // not JSON
		`{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, // deeper than the skip limit
		`{"subject_username":"a"} trailing`,                               // encoding/json ignores what follows
	} {
		a := agentObservation{AdGroups: []string{"kept"}}
		if fastAgentBody([]byte(s), &a) || len(a.AdGroups) != 1 || a.SubjectUsername != nil {
			t.Errorf("agent body took the fast path, or a refusal wrote %+v: %s", a, s)
		}
		checkAgentBody(t, []byte(s))
	}
}

// checkDecideBody fails when the fast path accepts b but encoding/json,
// with the server's settings, refuses it or reads another value.
func checkDecideBody(t *testing.T, b []byte) {
	t.Helper()
	var fast decideBody
	if !fastDecideBody(b, &fast) {
		return
	}
	var slow decideBody
	if err := decodeJSON(b, &slow); err != nil {
		t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, b)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("fast path read %+v, encoding/json %+v: %q", fast, slow, b)
	}
}

func checkAgentBody(t *testing.T, b []byte) {
	t.Helper()
	var fast agentObservation
	if !fastAgentBody(b, &fast) {
		return
	}
	var slow agentObservation
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&slow); err != nil {
		t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, b)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("fast path read %+v, encoding/json %+v: %q", fast, slow, b)
	}
}

func FuzzDecideBody(f *testing.F) {
	for _, s := range fastDecideSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"observation":{"riskTier":-0,"requestedDurationMinutes":9223372036854775807}}`))
	f.Fuzz(func(t *testing.T, b []byte) { checkDecideBody(t, b) })
}

func FuzzAgentBody(f *testing.F) {
	for _, s := range fastAgentSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"pid":0,"ad_groups":["a","b"],"zzz":[{"a":{"b":[null]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) { checkAgentBody(t, b) })
}

// Bodies over the cap are 413 on user routes too, whether their length is
// declared or they are chunked; a declared length that the body does not
// reach is a 400.
func TestUserBodyCap(t *testing.T) {
	e := newEnv(t, Config{JWTSecret: secret})
	tok := token(t, orgClaims(e))
	big := `{"flowType":"uac_intercept","observation":{"commandLine":"` + strings.Repeat("a", 40<<10) + `"}}`
	if r := e.do(t, "POST", "/api/v1/pam/decide", tok, "application/json", strings.NewReader(big)); r.status != 413 {
		t.Fatalf("big body: %d %s", r.status, r.raw)
	}
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte(big)); pw.Close() }()
	if r := e.do(t, "POST", "/api/v1/pam/decide", tok, "application/json", pr); r.status != 413 {
		t.Fatalf("chunked big body: %d %s", r.status, r.raw)
	}
	ok := `{"flowType":"uac_intercept","observation":{"subjectUsername":"u","targetExecutablePath":"C:\\x.exe"}}`
	pr, pw = io.Pipe()
	go func() { pw.Write([]byte(ok)); pw.Close() }()
	if r := e.do(t, "POST", "/api/v1/pam/decide", tok, "application/json", pr); r.status != 200 {
		t.Fatalf("chunked body: %d %s", r.status, r.raw)
	}
}
