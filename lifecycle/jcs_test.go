package lifecycle

import (
	"math"
	"testing"
)

func TestCanonicalJSON(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// Members sort by UTF-16 code units: U+1F600 (a surrogate pair
		// starting 0xD83D) sorts before U+FB33.
		{`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Dalet","1":"One","\ud83d\ude00":"Emoji","\u0080":"Control","\u00f6":"o"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"o\",\"€\":\"Euro Sign\",\"😀\":\"Emoji\",\"\ufb33\":\"Dalet\"}"},
		{` { "b" : [ 1 , 2.50 , -0 , 1E3 , true , null ] , "a" : { "y" : "\u0041\n<>&" } } `,
			`{"a":{"y":"A\n<>&"},"b":[1,2.5,0,1000,true,null]}`},
		{`"\u001f\u007f"`, "\"\\u001f\u007f\""},
	} {
		got, err := Canonical([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("Canonical(%s)\n got %s (%v)\nwant %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`{"a":1} x`, `{"a":}`, `1e400`,
		// Not I-JSON: inputs a tool could read differently from what
		// was approved must not share a digest.
		`{"cmd":"rm -rf C:\\","cmd":"dir"}`, `[{"a":1,"a":1}]`, `9007199254740993`, `-9007199254740993`,
		"\"a\xffb\"", `"\ud800"`, `"\udc00\ud800"`, `"\ud83d x"`} {
		if _, err := Canonical([]byte(bad)); err == nil {
			t.Errorf("Canonical(%s) accepted", bad)
		}
	}
}

func TestECMAScriptNumbers(t *testing.T) {
	// Expected strings are what Number.prototype.toString prints
	// (RFC 8785 appendix B).
	for _, c := range []struct {
		f    float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {-1, "-1"}, {4.5, "4.5"}, {0.002, "0.002"},
		{1e-6, "0.000001"}, {1e-7, "1e-7"}, {123e-20, "1.23e-18"},
		{1e20, "100000000000000000000"}, {1e21, "1e+21"}, {1e23, "1e+23"},
		{333333333.33333329, "333333333.3333333"}, {9007199254740992, "9007199254740992"},
		{295147905179352830000, "295147905179352830000"}, {5e-324, "5e-324"},
		{1.7976931348623157e308, "1.7976931348623157e+308"}, {-1.5e-9, "-1.5e-9"},
	} {
		if got := esNumber(c.f); got != c.want {
			t.Errorf("esNumber(%v) = %s, want %s", c.f, got, c.want)
		}
	}
}

func TestActionDigestIgnoresSpelling(t *testing.T) {
	a, err1 := ActionDigest([]byte(`{"path":"C:\\x","n":10}`))
	b, err2 := ActionDigest([]byte(`{"n":1e1, "path":"C:\u005cx"}`))
	c, _ := ActionDigest([]byte(`{"n":11,"path":"C:\\x"}`))
	d, err3 := ActionDigest([]byte(`["\ud83d\ude00", "\\ud800", 9007199254740992]`))
	if err1 != nil || err2 != nil || err3 != nil || d == "" || a != b || a == c || len(a) != 64 {
		t.Fatalf("%s %s %s %v %v", a, b, c, err1, err2)
	}
}
