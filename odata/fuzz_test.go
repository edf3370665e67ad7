package odata

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzRows are evaluated by every filter the fuzzer finds acceptable:
// complete rows, missing keys, nulls and wrong-typed values.
var fuzzRows = []map[string]any{
	testRows["full"], testRows["other"], testRows["empty"], testRows["nulls"], testRows["wrong"],
	nil,
	{"status": "", "user": "''", "targetExecutablePath": "setup", "priority": 0.0, "approved": false,
		"requestedAt": "0000-01-01T00:00:00Z", "id": "00000000-0000-0000-0000-000000000000"},
	{"status": map[string]any{"x": 1.0}, "priority": []any{}, "approved": 1.0, "requestedAt": 12.0,
		"id": true, "user": "\xff"},
	{"requestedAt": "9999-12-31T23:59:59.999999999+23:59", "priority": -1e308, "status": "é"},
}

// checkError verifies an error is an *Error pointing into or just past src.
func checkError(t *testing.T, src string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%q: error %T %v is not an *Error", src, err, err)
	}
	if n := utf8.RuneCountInString(src); e.Pos < 1 || e.Pos > n+1 {
		t.Fatalf("%q: position %d outside 1..%d: %v", src, e.Pos, n+1, err)
	}
	if e.Msg == "" {
		t.Fatalf("%q: empty message", src)
	}
}

var filterSeeds = []string{
	"status eq 'pending' and contains(targetExecutablePath, 'setup') and requestedAt ge 2026-01-01T00:00:00Z",
	"'x' eq status or not approved or priority gt -3.5e2",
	"id eq guid'0F8FAD5B-D9CB-469F-A165-70867728950E' or id eq 0f8fad5b-d9cb-469f-a165-70867728950e",
	"requestedAt lt datetime'2026-01-02T03:04:05.123+01:00' and requestedAt ne null",
	"not (status eq 'x'' || true || ''y') and (approved or startswith(user, 'O''B'))",
	"not not approved and endswith(targetExecutablePath, '.exe')",
	"((((priority le 1))))",
	"status eq null or null ne user",
	"stauts eq 'x'",
	"status EQ 'x'",
	"status eq 5",
	"approved gt true",
	"requestedAt eq 'soon'",
	"contains(priority, 'x')",
	"status eq 'abc",
	"()",
	"(approved",
	"approved)",
	"not status eq 'x'",
	"status eq",
	"priority eq 1e999",
	"id eq guid'zz'",
	"requestedAt eq 2026-01-01",
	"status eq 'x' and statüs eq 'y'",
	"\xff\xfe",
	"",
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		flt, err := ParseFilter(src, testSchema)
		if err != nil {
			checkError(t, src, err)
			return
		}
		if flt.CEL() == "" {
			t.Fatalf("%q: empty CEL", src)
		}
		// Negating an accepted filter (when the nesting limit allows)
		// negates every result: the logic is two-valued.
		neg, nerr := ParseFilter("not ("+src+")", testSchema)
		if nerr != nil {
			checkError(t, "not ("+src+")", nerr)
			neg = nil
		}
		for _, row := range fuzzRows {
			ok, err := flt.Match(row)
			if err != nil {
				t.Fatalf("%q on %v: %v", src, row, err)
			}
			if neg == nil {
				continue
			}
			nok, err := neg.Match(row)
			if err != nil {
				t.Fatalf("not (%q) on %v: %v", src, row, err)
			}
			if nok == ok {
				t.Fatalf("%q and its negation both give %v on %v", src, ok, row)
			}
		}
	})
}

var orderBySeeds = []string{
	"requestedAt desc, status, priority asc, id desc, approved, user, targetExecutablePath",
	"status",
	"",
	"stauts",
	"status DESC",
	"status,",
	"status, status",
	"status desc asc",
	"'x'",
	"status;",
}

func FuzzParseOrderBy(f *testing.F) {
	for _, s := range orderBySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		keys, err := ParseOrderBy(src, testSchema)
		if err != nil {
			checkError(t, src, err)
			return
		}
		if (len(keys) == 0) != (strings.TrimSpace(src) == "") {
			t.Fatalf("%q: %d keys", src, len(keys))
		}
		for _, k := range keys {
			if testSchema[k.Field] != k.Kind {
				t.Fatalf("%q: key %+v does not match the schema", src, k)
			}
		}
		for _, a := range fuzzRows {
			for _, b := range fuzzRows {
				if ab, ba := Compare(a, b, keys), Compare(b, a, keys); sign(ab) != -sign(ba) {
					t.Fatalf("%q: Compare(%v, %v) = %d, reversed %d", src, a, b, ab, ba)
				}
			}
		}
	})
}
