package odata

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

var testSchema = Schema{
	"id":                   GUID,
	"status":               String,
	"targetExecutablePath": String,
	"requestedAt":          DateTime,
	"approved":             Bool,
	"priority":             Number,
	"user":                 String,
}

// testRows are the rows the match table is evaluated on, by name.
var testRows = map[string]map[string]any{
	"full": {
		"id":                   "0F8FAD5B-D9CB-469F-A165-70867728950E",
		"status":               "pending",
		"targetExecutablePath": `C:\Temp\setup.exe`,
		"requestedAt":          "2026-01-02T03:04:05Z",
		"approved":             true,
		"priority":             3.0,
		"user":                 "O'Brien",
	},
	"other": {
		"id":                   "11111111-2222-3333-4444-555555555555",
		"status":               "approved",
		"targetExecutablePath": "/usr/bin/Setup",
		"requestedAt":          "2025-12-31T23:00:00-02:00", // 2026-01-01T01:00:00Z
		"approved":             false,
		"priority":             -1.5,
		"user":                 "bob",
	},
	"empty": {},
	"nulls": {
		"id": nil, "status": nil, "targetExecutablePath": nil, "requestedAt": nil,
		"approved": nil, "priority": nil, "user": nil,
	},
	"wrong": {
		"id":                   "not-a-guid",
		"status":               5.0,
		"targetExecutablePath": true,
		"requestedAt":          "yesterday",
		"approved":             "yes",
		"priority":             "3",
		"user":                 []any{"x"},
	},
}

var rowNames = []string{"full", "other", "empty", "nulls", "wrong"}

const notFull = "other,empty,nulls,wrong"

func TestMatch(t *testing.T) {
	tests := []struct {
		filter string
		want   string // comma-separated names of the matching rows
	}{
		// Comparison operators on strings.
		{"status eq 'pending'", "full"},
		{"status ne 'pending'", "other"},
		{"status gt 'b'", "full"},
		{"status ge 'pending'", "full"},
		{"status lt 'pending'", "other"},
		{"status le 'approved'", "other"},
		{"status le 'approvec'", ""},
		{"'pending' eq status", "full"},
		{"'b' lt status", "full"},
		{"'b' ge status", "other"},
		{"user eq 'O''Brien'", "full"},
		{"user eq 'O'", ""},
		{"status eq''", ""},
		{"status eq'pending'", "full"},
		{"  status\teq\n'pending'\r\n", "full"},

		// Numbers.
		{"priority eq 3", "full"},
		{"priority eq 3.0", "full"},
		{"priority eq 3e0", "full"},
		{"priority eq 0.3E1", "full"},
		{"priority ne 3", "other"},
		{"priority gt 0", "full"},
		{"priority ge -1.5", "full,other"},
		{"priority lt 0", "other"},
		{"priority le -1.5", "other"},
		{"0 gt priority", "other"},
		{"priority eq -1.5", "other"},

		// Booleans.
		{"approved eq true", "full"},
		{"approved eq false", "other"},
		{"approved ne true", "other"},
		{"true eq approved", "full"},
		{"approved", "full"},
		{"not approved", notFull},
		{"not not approved", "full"},
		{"(approved)", "full"},

		// Functions (case-sensitive).
		{"contains(targetExecutablePath, 'setup')", "full"},
		{"contains(targetExecutablePath, 'Setup')", "other"},
		{"contains(targetExecutablePath,'')", "full,other"},
		{"startswith(targetExecutablePath, '/usr')", "other"},
		{"startswith(targetExecutablePath, 'c:')", ""},
		{"endswith(targetExecutablePath, '.exe')", "full"},
		{"endswith(user, '''Brien')", "full"},
		{"not contains(targetExecutablePath, 'setup')", notFull},
		{"contains (targetExecutablePath , 'setup' )", "full"},

		// Date-times compare as instants.
		{"requestedAt ge 2026-01-01T00:00:00Z", "full,other"},
		{"requestedAt lt 2026-01-01T00:30:00Z", ""},
		{"requestedAt eq 2026-01-01T01:00:00Z", "other"},
		{"requestedAt eq 2026-01-01T01:00:00.000+00:00", "other"},
		{"requestedAt eq datetime'2026-01-02T04:04:05+01:00'", "full"},
		{"requestedAt eq datetimeoffset'2026-01-02T03:04:05Z'", "full"},
		{"requestedAt gt '2026-01-01T00:00:00Z'", "full,other"},
		{"requestedAt ne 2026-01-02T03:04:05Z", "other"},
		{"requestedAt le 2026-01-01T01:00:00Z", "other"},
		{"2026-01-01T12:00:00Z lt requestedAt", "full"},
		{"requestedAt gt 2026-01-01T00:59:59.999999999Z", "full,other"},

		// GUIDs compare case-insensitively.
		{"id eq 0f8fad5b-d9cb-469f-a165-70867728950e", "full"},
		{"id eq 0F8FAD5B-D9CB-469F-A165-70867728950E", "full"},
		{"id eq guid'0f8fad5b-d9cb-469f-a165-70867728950E'", "full"},
		{"id eq '0F8FAD5B-d9cb-469f-a165-70867728950e'", "full"},
		{"id ne 0f8fad5b-d9cb-469f-a165-70867728950e", "other"},
		{"11111111-2222-3333-4444-555555555555 eq id", "other"},
		{"id eq deadbeef-2222-3333-4444-555555555555", ""},

		// Null semantics: missing is null; ill-typed is neither null nor a
		// value.
		{"status eq null", "empty,nulls"},
		{"null eq status", "empty,nulls"},
		{"status ne null", "full,other,wrong"},
		{"not (status eq null)", "full,other,wrong"},
		{"not (status ne null)", "empty,nulls"},
		{"not (status eq 'pending')", notFull},
		{"not (priority gt 0)", notFull},
		{"not (requestedAt gt 2000-01-01T00:00:00Z)", "empty,nulls,wrong"},
		{"not (id eq 0f8fad5b-d9cb-469f-a165-70867728950e)", notFull},
		{"not (contains(user, 'b'))", "full,empty,nulls,wrong"},
		{"approved eq null or approved eq false", "other,empty,nulls"},
		{"priority ne null and not (priority ge 0)", "other,wrong"},

		// Precedence: not > comparison > and > or.
		{"status eq 'pending' or approved and priority lt 0", "full"},
		{"(status eq 'pending' or approved) and priority lt 0", ""},
		{"not approved and priority lt 0", "other"},
		{"not (approved and priority lt 0)", "full,empty,nulls,wrong,other"},
		{"status eq 'x' or status eq 'approved' or status eq 'pending'", "full,other"},
		{"status ne null and status ne 'pending' and priority lt 0", "other"},
		{"(((status eq 'pending')))", "full"},
		{"not (status eq 'pending' or status eq 'approved')", "empty,nulls,wrong"},
		{"(status eq 'pending' or status eq 'approved') and not approved", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			f, err := ParseFilter(tt.filter, testSchema)
			if err != nil {
				t.Fatalf("ParseFilter: %v", err)
			}
			var got []string
			for _, name := range rowNames {
				ok, err := f.Match(testRows[name])
				if err != nil {
					t.Fatalf("Match(%s): %v", name, err)
				}
				if ok {
					got = append(got, name)
				}
			}
			want := []string{}
			if tt.want != "" {
				want = strings.Split(tt.want, ",")
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("matches %v, want %v (CEL %s)", got, want, f.CEL())
			}
		})
	}
}

func TestMatchRowValueTypes(t *testing.T) {
	f, err := ParseFilter("priority eq 3", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{3.0, json.Number("3"), 3, int64(3), float32(3), uint(3)} {
		if ok, err := f.Match(map[string]any{"priority": v}); err != nil || !ok {
			t.Errorf("priority %T(%v): got %v, %v; want a match", v, v, ok, err)
		}
	}
	for _, v := range []any{"3", json.Number("x"), true, map[string]any{"a": 3.0}, []any{3.0}} {
		if ok, err := f.Match(map[string]any{"priority": v}); err != nil || ok {
			t.Errorf("priority %T(%v): got %v, %v; want no match", v, v, ok, err)
		}
	}
	if ok, err := f.Match(nil); err != nil || ok {
		t.Errorf("nil row: got %v, %v", ok, err)
	}
}

// TestMatchRowsDecodedFromJSON checks rows exactly as encoding/json produces
// them.
func TestMatchRowsDecodedFromJSON(t *testing.T) {
	const doc = `[
		{"status":"pending","requestedAt":"2026-03-01T10:00:00+02:00","approved":true,"priority":7,"nested":{"a":[1,2]}},
		{"status":"pending","requestedAt":"2026-03-01T09:00:00Z","approved":null},
		{"status":["pending"],"requestedAt":1772355600}
	]`
	var rows []map[string]any
	if err := json.Unmarshal([]byte(doc), &rows); err != nil {
		t.Fatal(err)
	}
	f, err := ParseFilter("status eq 'pending' and requestedAt lt 2026-03-01T08:30:00Z", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, r := range rows {
		ok, err := f.Match(r)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ok)
	}
	if want := []bool{true, false, false}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestParseFilterErrors(t *testing.T) {
	tests := []struct {
		src string
		pos int
		msg string // a substring of the message
	}{
		// Unknown properties, with suggestions.
		{"stauts eq 'pending'", 1, `unknown property "stauts" (did you mean "status"?)`},
		{"Status eq 'pending'", 1, `did you mean "status"?`},
		{"requestedat gt 2026-01-01T00:00:00Z", 1, `did you mean "requestedAt"?`},
		{"status eq 'x' and prioirty gt 1", 19, `unknown property "prioirty" (did you mean "priority"?)`},
		{"zebra eq 1", 1, `unknown property "zebra"`},
		{"status eq 'éé' and stauts eq 'x'", 20, `unknown property "stauts"`},

		// Operators and keywords in the wrong case.
		{"status EQ 'x'", 8, `unknown operator "EQ" (operators are lower-case: use "eq")`},
		{"priority Gt 1", 10, `use "gt"`},
		{"status eq 'x' AND approved", 15, `use "and"`},
		{"status eq 'x' Or approved", 15, `use "or"`},
		{"NOT approved", 1, `use "not"`},
		{"NOT (approved)", 1, `use "not"`},
		{"approved eq TRUE", 13, `use "true"`},
		{"status eq NULL", 11, `use "null"`},
		{"Contains(status, 'x')", 1, `use "contains"`},
		{"startsWith(status, 'x')", 1, `use "startswith"`},
		{"id eq GUID'0f8fad5b-d9cb-469f-a165-70867728950e'", 7, `use "guid"`},
		{"requestedAt eq DateTime'2026-01-01T00:00:00Z'", 16, `use "datetime"`},

		// Types.
		{"status eq 5", 11, `cannot compare string property "status" with number 5 (to compare as text, quote it: '5')`},
		{"status eq true", 11, `cannot compare string property "status" with true`},
		{"status eq 2026-01-01T00:00:00Z", 11, `cannot compare string property "status" with date-time`},
		{"status eq datetime'2026-01-01T00:00:00Z'", 11, `cannot compare string property "status" with date-time`},
		{"status eq 0f8fad5b-d9cb-469f-a165-70867728950e", 11, `quote it`},
		{"priority eq '3'", 13, `cannot compare number property "priority" with string '3'`},
		{"priority eq 2026-01-01T00:00:00Z", 13, `cannot compare number property`},
		{"approved eq 1", 13, `cannot compare boolean property "approved" with number 1`},
		{"approved gt false", 10, `"gt" cannot be used on boolean property "approved" (use eq or ne)`},
		{"id lt 0f8fad5b-d9cb-469f-a165-70867728950e", 4, `"lt" cannot be used on guid property "id"`},
		{"false le approved", 7, `"le" cannot be used on boolean property`},
		{"id eq 'xyz'", 7, `not a guid`},
		{"id eq 5", 7, `cannot compare guid property "id" with number 5`},
		{"requestedAt eq 'yesterday'", 16, `not an RFC 3339 date-time`},
		{"requestedAt eq 5", 16, `cannot compare date-time property`},
		{"requestedAt eq datetime'2026-13-01T00:00:00Z'", 16, `malformed date-time "2026-13-01T00:00:00Z"`},
		{"requestedAt eq datetime'2026-01-01'", 16, `malformed date-time`},
		{"requestedAt eq 2026-01-01", 16, `malformed date-time "2026-01-01"`},
		{"requestedAt eq 2026-01-01T25:00:00Z", 16, `malformed date-time`},
		{"requestedAt eq 2026-01-01T00:00:00", 16, `malformed date-time`},
		{"id eq guid'0f8fad5b'", 7, `malformed guid "0f8fad5b"`},
		{"id eq guid'0f8fad5b-d9cb-469f-a165-70867728950g'", 7, `malformed guid`},
		{"contains(requestedAt, '2026')", 10, `contains needs a string property; "requestedAt" is a date-time property`},
		{"contains(id, 'a')", 10, `"id" is a guid property`},
		{"contains(status, 5)", 18, `the second argument of contains must be a string literal, found number 5`},
		{"contains(status, user)", 18, `must be a string literal`},
		{"contains('x', status)", 10, `the first argument of contains must be a string property, found string 'x'`},
		{"startswith(status)", 18, `expected "," after the first argument of startswith, found ")"`},
		{"endswith(status, 'a', 'b')", 21, `expected ")" after the second argument of endswith, found ","`},
		{"contains(status, 'x'", 21, `expected ")"`},
		{"contains(status, 'x') eq true", 23, `the result of contains cannot be compared`},
		{"contains(, 'x')", 10, `missing the first argument of contains before ","`},
		{"contains eq 'x'", 1, `function "contains" needs its arguments: contains(property, 'text')`},
		{"approved and EndsWith", 14, `function "EndsWith" needs its arguments: endswith(`},
		{"ASC eq 1", 1, `unknown property "ASC"`},
		{"status eq 'x' ASC", 15, `unexpected "ASC" (expected and, or or end of filter)`},
		{"status eq EQ", 11, `missing a value after "eq" before operator "EQ"`},
		{"tolower(status) eq 'x'", 1, `unknown function "tolower" (supported: contains, startswith, endswith)`},
		{"status gt null", 8, `null can only be compared with eq or ne`},
		{"status eq priority", 11, `cannot compare property "status" with property "priority"`},
		{"'a' eq 'b'", 1, `a comparison needs a property on one side`},
		{"null eq null", 1, `a comparison needs a property on one side`},

		// Structure.
		{"", 1, `empty filter`},
		{"   ", 4, `empty filter`},
		{"status", 7, `expected a comparison operator (eq, ne, gt, ge, lt, le) after property "status", found end of input`},
		{"status 'x'", 8, `expected a comparison operator`},
		{"'x'", 4, `expected a comparison operator (eq, ne, gt, ge, lt, le) after string 'x'`},
		{"status eq", 10, `missing a value after "eq" at end of filter`},
		{"status eq and approved", 11, `missing a value after "eq" before "and"`},
		{"status eq )", 11, `missing a value after "eq" before ")"`},
		{"eq 'x'", 1, `missing a condition before "eq"`},
		{"and approved", 1, `missing a condition before "and"`},
		{"approved and", 13, `missing condition at end of filter`},
		{"approved and or approved", 14, `missing a condition before "or"`},
		{"approved or", 12, `missing condition at end of filter`},
		{"not", 4, `missing condition at end of filter`},
		{"()", 2, `empty parentheses`},
		{"approved and ()", 15, `empty parentheses`},
		{"(approved", 10, `unexpected end of input (expected and, or or ")" to close the "(" at character 1)`},
		{"((approved) and (approved)", 27, `to close the "(" at character 1`},
		{"approved)", 9, `unexpected ")" (expected and, or or end of filter)`},
		{"status eq 'x' extra", 15, `unexpected "extra"`},
		{"status eq 'x' 'y'", 15, `unexpected string 'y'`},
		{"status eq 'x' eq 'y'", 15, `a condition cannot be compared`},
		{"approved eq true eq false", 18, `a condition cannot be compared`},
		{"(approved) eq true", 12, `a condition cannot be compared`},
		{",", 1, `missing condition before ","`},
		{"not status eq 'x'", 12, `"not" applies only to the operand right after it`},
		{"not 'x' eq status", 9, `"not" applies only to the operand right after it`},
		{"not 5", 6, `expected a comparison operator`},

		// Lexical mistakes.
		{"status eq 'abc", 11, `unterminated string`},
		{"status eq 'it''s", 11, `unterminated string`},
		{"status eq '", 11, `unterminated string`},
		{"status == 'x'", 8, `unexpected character '=' (compare with eq or ne)`},
		{"status eq 'x' && approved", 15, `(use and)`},
		{"status eq 'x' || approved", 15, `(use or)`},
		{"!approved", 1, `(use ne or not)`},
		{"priority < 1", 10, `(compare with lt, le, gt or ge)`},
		{`status eq "x"`, 11, `single quotes`},
		{"status eq - 1", 11, `a minus sign must be followed by a digit`},
		{"priority eq 1.", 13, `malformed number "1."`},
		{"priority eq 1.5.5", 13, `malformed number "1.5.5"`},
		{"priority eq 12abc", 13, `malformed number "12abc"`},
		{"priority eq 1e", 13, `malformed number "1e"`},
		{"priority eq 1e999", 13, `number 1e999 is out of range`},
		{"status eq 'x' and statüs eq 'y'", 23, `unexpected character 'ü'`},
		{"status eq x'61'", 11, `unknown property "x"`},
		{"status.sub eq 'x'", 7, `unexpected character '.'`},
		{"status eq 'x'\x00", 14, `unexpected character`},
		{"\xff", 1, `unexpected character`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			f, err := ParseFilter(tt.src, testSchema)
			if err == nil {
				t.Fatalf("accepted, CEL %s", f.CEL())
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if e.Pos != tt.pos || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("got %v\nwant at character %d: …%s…", err, tt.pos, tt.msg)
			}
			if want := fmt.Sprintf("at character %d: %s", e.Pos, e.Msg); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestSuggestion(t *testing.T) {
	tests := []struct{ name, want string }{
		{"stauts", "status"},
		{"STATUS", "status"},
		{"statu", "status"},
		{"prio", ""},
		{"requstedAt", "requestedAt"},
		{"targetExecutablePth", "targetExecutablePath"},
		{"usr", "user"},
		{"ud", "id"},
		{"xyz", ""},
		{"completelydifferent", ""},
	}
	for _, tt := range tests {
		if got := testSchema.suggest(tt.name); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := (Schema{}).suggest("x"); got != "" {
		t.Errorf("empty schema suggests %q", got)
	}
}

func TestLimits(t *testing.T) {
	check := func(t *testing.T, src string, pos int, msg string) {
		t.Helper()
		_, err := ParseFilter(src, testSchema)
		if pos == 0 {
			if err != nil {
				t.Fatalf("%d characters: %v", len([]rune(src)), err)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Pos != pos || !strings.Contains(e.Msg, msg) {
			t.Fatalf("got %v, want at character %d: …%s…", err, pos, msg)
		}
	}
	t.Run("length", func(t *testing.T) {
		base := "status eq '"
		ok := base + strings.Repeat("é", MaxLength-len(base)-1) + "'"
		check(t, ok, 0, "")
		check(t, ok+" ", MaxLength+1, "longer than 2000 characters")
		check(t, strings.Repeat(" ", 5*MaxLength), MaxLength+1, "longer than")
	})
	t.Run("depth", func(t *testing.T) {
		nest := func(n int) string {
			return strings.Repeat("(", n) + "approved" + strings.Repeat(")", n)
		}
		check(t, nest(MaxDepth), 0, "")
		check(t, nest(MaxDepth+1), MaxDepth+1, "nests deeper than 32 levels")
		nots := func(n int) string { return strings.Repeat("not ", n) + "approved" }
		check(t, nots(MaxDepth), 0, "")
		check(t, nots(MaxDepth+1), 4*MaxDepth+1, "nests deeper")
		mixed := strings.Repeat("not (", 16) + "approved" + strings.Repeat(")", 16)
		check(t, mixed, 0, "")
		check(t, "not "+mixed, 4+15*5+5, "nests deeper") // the 16th "("
		// Depth is nesting, not the number of groups.
		check(t, strings.Repeat("(approved) and ", 60)+"approved", 0, "")
	})
	t.Run("nodes", func(t *testing.T) {
		cmp := func(n int) string { return strings.TrimSuffix(strings.Repeat("priority eq 1 or ", n), " or ") }
		check(t, cmp(50), 0, "") // 50*3 + 49 = 199 nodes
		check(t, cmp(51), 1+50*len("priority eq 1 or "), "more than 200 nodes")
		bools := func(n int) string { return strings.TrimSuffix(strings.Repeat("approved and ", n), " and ") }
		check(t, bools(100), 0, "") // 199 nodes
		// The 101st "approved" is node 201.
		check(t, bools(101), 1+100*len("approved and "), "more than 200 nodes")
	})
	t.Run("flat chains compile", func(t *testing.T) {
		src := strings.TrimSuffix(strings.Repeat("contains(user, 'a') or ", 50), " or ")
		f, err := ParseFilter(src, testSchema)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := f.Match(map[string]any{"user": "bab"})
		if err != nil || !ok {
			t.Fatalf("got %v, %v", ok, err)
		}
	})
}

// TestLiteralInjection checks that literals are bound as CEL variables:
// text that would be CEL if spliced into the source is only ever compared
// as a value.
func TestLiteralInjection(t *testing.T) {
	rows := []map[string]any{
		testRows["full"], testRows["other"], testRows["empty"], testRows["nulls"], testRows["wrong"],
		{"status": "x"}, {"status": "y"}, {"status": ""}, {"status": "true"},
	}
	attacks := []struct {
		filter  string
		literal string // the literal's value, which matches only itself
	}{
		{"status eq 'x'' || true || ''y'", "x' || true || 'y"},
		{`status eq 'x" || true || "y'`, `x" || true || "y`},
		{"status eq ''' || true || '''", "' || true || '"},
		{`status eq 'x") || true || ("y'`, `x") || true || ("y`},
		{"status eq '\\'' || true || ''\\'", `\' || true || '\`},
		{"status eq 'x\n|| true //'", "x\n|| true //"},
		{"status eq 'lit0'", "lit0"},
		{"status eq 'v_status'", "v_status"},
		{"contains(status, ''') || true || (''')", "') || true || ('"},
	}
	for _, a := range attacks {
		f, err := ParseFilter(a.filter, testSchema)
		if err != nil {
			t.Fatalf("%s: %v", a.filter, err)
		}
		for _, bad := range []string{"true", "||", `"`, "'", `\`, "//", "x"} {
			if strings.Contains(f.CEL(), bad) {
				t.Errorf("%s: CEL %q contains %q", a.filter, f.CEL(), bad)
			}
		}
		for _, r := range rows {
			ok, err := f.Match(r)
			if err != nil {
				t.Fatalf("%s: %v", a.filter, err)
			}
			if ok {
				t.Errorf("%s matched %v (CEL %s)", a.filter, r, f.CEL())
			}
		}
		// The literal is an ordinary value: it matches a row holding it.
		hit := map[string]any{"status": a.literal}
		if strings.HasPrefix(a.filter, "contains") {
			hit["status"] = "before" + a.literal + "after"
		}
		if ok, err := f.Match(hit); err != nil || !ok {
			t.Errorf("%s: row holding the literal: got %v, %v", a.filter, ok, err)
		}
	}
}

// TestCELHasNoLiterals checks CEL() for every literal form.
func TestCELHasNoLiterals(t *testing.T) {
	src := "status eq 'SECRETSTRING' or priority eq 987654 or priority lt -1.25e3 or " +
		"requestedAt eq 2031-05-06T07:08:09Z or requestedAt lt datetime'2032-01-01T00:00:00+05:00' or " +
		"requestedAt gt '2033-01-01T00:00:00Z' or id eq abcdef01-2345-6789-abcd-ef0123456789 or " +
		"id eq guid'FEDCBA98-7654-3210-FEDC-BA9876543210' or approved eq false or contains(user, 'ZZTOP')"
	f, err := ParseFilter(src, testSchema)
	if err != nil {
		t.Fatal(err)
	}
	got := f.CEL()
	for _, lit := range []string{"SECRET", "987654", "1.25", "1250", "2031", "2032", "2033", "abcdef01", "fedcba98", "FEDCBA98", "false", "ZZTOP"} {
		if strings.Contains(got, lit) {
			t.Errorf("CEL %q contains literal %q", got, lit)
		}
	}
	const want = "(ok_status && v_status == lit0) || (ok_priority && v_priority == lit1) || " +
		"(ok_priority && v_priority < lit2) || (ok_requestedAt && v_requestedAt == lit3) || " +
		"(ok_requestedAt && v_requestedAt < lit4) || (ok_requestedAt && v_requestedAt > lit5) || " +
		"(ok_id && v_id == lit6) || (ok_id && v_id == lit7) || (ok_approved && v_approved == lit8) || " +
		"(ok_user && v_user.contains(lit9))"
	if got != want {
		t.Errorf("CEL\n got %s\nwant %s", got, want)
	}
	if f.String() != src {
		t.Errorf("String() = %q", f.String())
	}
}

func TestCELShapes(t *testing.T) {
	tests := []struct{ filter, cel string }{
		{"approved", "ok_approved && v_approved"},
		{"not approved", "!(ok_approved && v_approved)"},
		{"status eq null", "null_status"},
		{"status ne null", "!null_status"},
		{"not (status ne null)", "!(!null_status)"},
		{"'a' lt status", "ok_status && lit0 < v_status"},
		{"startswith(status, 'a') and endswith(status, 'b')",
			"(ok_status && v_status.startsWith(lit0)) && (ok_status && v_status.endsWith(lit1))"},
		{"approved or approved and not approved",
			"(ok_approved && v_approved) || ((ok_approved && v_approved) && !(ok_approved && v_approved))"},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.filter, testSchema)
		if err != nil {
			t.Fatalf("%s: %v", tt.filter, err)
		}
		if f.CEL() != tt.cel {
			t.Errorf("%s: CEL %q, want %q", tt.filter, f.CEL(), tt.cel)
		}
	}
}

func TestPropertyNamedLikeKeyword(t *testing.T) {
	s := Schema{"contains": String, "asc": Number, "eq": String}
	f, err := ParseFilter("contains eq 'x' and contains(contains, 'x') and asc gt 1", s)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.Match(map[string]any{"contains": "x", "asc": 2.0}); err != nil || !ok {
		t.Errorf("got %v, %v", ok, err)
	}
	var e *Error
	if _, err := ParseFilter("eq eq 'x'", s); !errors.As(err, &e) || e.Pos != 1 {
		t.Errorf("reserved word as property: got %v", err)
	}
}

func TestInvalidSchema(t *testing.T) {
	for _, s := range []Schema{{"a": 0}, {"a": GUID + 1}} {
		_, err := ParseFilter("a eq 1", s)
		var e *Error
		if err == nil || errors.As(err, &e) {
			t.Errorf("filter: got %v, want a plain error", err)
		}
		_, err = ParseOrderBy("a", s)
		if err == nil || errors.As(err, &e) {
			t.Errorf("orderby: got %v, want a plain error", err)
		}
	}
}

func TestCostLimit(t *testing.T) {
	lit := strings.Repeat("a", 1900)
	f, err := ParseFilter("contains(user, '"+lit+"') or status eq 'x'", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	// A short string costs little.
	if ok, err := f.Match(map[string]any{"user": "b" + lit}); err != nil || !ok {
		t.Fatalf("short row: got %v, %v", ok, err)
	}
	// contains costs about (len/10)·(len(lit)/10); a huge row value
	// exceeds MaxCost, which is an error, never a match.
	huge := strings.Repeat("b", 8<<20)
	ok, err := f.Match(map[string]any{"user": huge, "status": "x"})
	if err == nil || ok {
		t.Fatalf("huge row: got %v, %v; want an error", ok, err)
	}
	if !strings.Contains(err.Error(), "cost") {
		t.Errorf("error %v does not mention the cost limit", err)
	}
}

func TestMatchConcurrent(t *testing.T) {
	f, err := ParseFilter("status eq 'pending' and contains(targetExecutablePath, 'setup') and requestedAt ge 2026-01-01T00:00:00Z and id ne null", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				name := rowNames[(g+i)%len(rowNames)]
				ok, err := f.Match(testRows[name])
				if err != nil {
					t.Error(err)
					return
				}
				if ok != (name == "full") {
					t.Errorf("%s: got %v", name, ok)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestMatchAllocs(t *testing.T) {
	f, err := ParseFilter("status eq 'pending' and approved and priority gt 1", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	row := testRows["full"]
	f.Match(row) // warm the pool
	allocs := testing.AllocsPerRun(200, func() {
		if ok, _ := f.Match(row); !ok {
			t.Fatal("no match")
		}
	})
	// What CEL itself needs (boxing values, cost tracking), not a copy of
	// the row or a re-parse.
	if allocs > 12 {
		t.Errorf("%v allocations per Match", allocs)
	}
	t.Logf("%v allocations per Match", allocs)
}

func BenchmarkMatch(b *testing.B) {
	f, err := ParseFilter("status eq 'pending' and contains(targetExecutablePath, 'setup') and requestedAt ge 2026-01-01T00:00:00Z", testSchema)
	if err != nil {
		b.Fatal(err)
	}
	rows := []map[string]any{testRows["full"], testRows["other"], testRows["empty"], testRows["wrong"]}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := f.Match(rows[i%len(rows)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatchHit(b *testing.B) {
	f, err := ParseFilter("status eq 'pending' and contains(targetExecutablePath, 'setup') and requestedAt ge 2026-01-01T00:00:00Z", testSchema)
	if err != nil {
		b.Fatal(err)
	}
	row := testRows["full"]
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := f.Match(row); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkParseFilter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFilter("status eq 'pending' and contains(targetExecutablePath, 'setup') and requestedAt ge 2026-01-01T00:00:00Z", testSchema); err != nil {
			b.Fatal(err)
		}
	}
}
