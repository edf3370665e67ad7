package odata

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseOrderBy(t *testing.T) {
	tests := []struct {
		src  string
		want []OrderKey
	}{
		{"", nil},
		{"  \t", nil},
		{"status", []OrderKey{{Field: "status", Kind: String}}},
		{"status asc", []OrderKey{{Field: "status", Kind: String}}},
		{"requestedAt desc", []OrderKey{{Field: "requestedAt", Desc: true, Kind: DateTime}}},
		{"requestedAt desc, status,priority asc , id desc", []OrderKey{
			{Field: "requestedAt", Desc: true, Kind: DateTime},
			{Field: "status", Kind: String},
			{Field: "priority", Kind: Number},
			{Field: "id", Desc: true, Kind: GUID},
		}},
	}
	for _, tt := range tests {
		got, err := ParseOrderBy(tt.src, testSchema)
		if err != nil {
			t.Errorf("%q: %v", tt.src, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: got %+v, want %+v", tt.src, got, tt.want)
		}
	}
}

func TestParseOrderByErrors(t *testing.T) {
	tests := []struct {
		src string
		pos int
		msg string
	}{
		{"stauts", 1, `unknown property "stauts" (did you mean "status"?)`},
		{"status, requestdAt desc", 9, `did you mean "requestedAt"?`},
		{"status DESC", 8, `unknown direction "DESC" (directions are lower-case: use "desc")`},
		{"status Asc", 8, `use "asc"`},
		{"status descending", 8, `expected asc, desc, "," or end of $orderby after "status", found "descending"`},
		{"status desc asc", 13, `expected "," or end of $orderby, found "asc"`},
		{"status,", 8, `missing property name at end of $orderby`},
		{"status, ", 9, `missing property name at end of $orderby`},
		{",status", 1, `expected a property name, found ","`},
		{"status,,priority", 8, `expected a property name, found ","`},
		{"status priority", 8, `found "priority"`},
		{"status, status desc", 9, `property "status" is already ordered on at character 1`},
		{"'status'", 1, `expected a property name, found string 'status'`},
		{"status desc; drop", 12, `unexpected character ';'`},
		{"status 'x", 8, `unterminated string`},
		{"statüs", 5, `unexpected character 'ü'`},
		{strings.Repeat(" ", MaxLength) + "status", MaxLength + 1, `longer than 2000 characters`},
	}
	for _, tt := range tests {
		_, err := ParseOrderBy(tt.src, testSchema)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: got %v, want an *Error", tt.src, err)
			continue
		}
		if e.Pos != tt.pos || !strings.Contains(e.Msg, tt.msg) {
			t.Errorf("%q: got %v\nwant at character %d: …%s…", tt.src, err, tt.pos, tt.msg)
		}
	}
}

func TestCompare(t *testing.T) {
	rows := []map[string]any{
		{"n": "a", "status": "pending", "priority": 2.0, "requestedAt": "2026-01-02T00:00:00Z", "approved": true, "id": "BBBBBBBB-0000-0000-0000-000000000000"},
		{"n": "b", "status": "approved", "priority": -1.0, "requestedAt": "2026-01-02T00:30:00+01:00", "approved": false, "id": "aaaaaaaa-0000-0000-0000-000000000000"},
		{"n": "c", "status": nil, "priority": nil, "requestedAt": nil, "approved": nil, "id": nil},
		{"n": "d"},
		{"n": "e", "status": 7.0, "priority": "x", "requestedAt": "soon", "approved": "no", "id": "nope"},
		{"n": "f", "status": "Zeta", "priority": 10.0, "requestedAt": "2025-06-01T00:00:00Z", "approved": true, "id": "bbbbbbbb-0000-0000-0000-000000000000"},
	}
	order := func(src string) string {
		keys, err := ParseOrderBy(src, testSchema)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		s := slices.Clone(rows)
		slices.SortStableFunc(s, func(a, b map[string]any) int { return Compare(a, b, keys) })
		var names []string
		for _, r := range s {
			names = append(names, r["n"].(string))
		}
		return strings.Join(names, "")
	}
	tests := []struct{ orderby, want string }{
		// Nulls (c, d tie, so stable order) first, then values, then
		// wrong-typed values.
		{"status", "cdfbae"},
		{"status desc", "eabfcd"},
		{"priority", "cdbafe"},
		{"priority desc", "efabcd"},
		// 2026-01-02T00:30:00+01:00 is 2026-01-01T23:30:00Z.
		{"requestedAt", "cdfbae"},
		{"requestedAt desc", "eabfcd"},
		{"approved", "cdbafe"},
		{"approved desc, priority", "eafbcd"},
		// GUIDs compare case-insensitively, then by their text.
		{"id", "cdbafe"},
		{"id desc", "efabcd"},
		{"approved, status desc", "cdbafe"},
	}
	for _, tt := range tests {
		if got := order(tt.orderby); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.orderby, got, tt.want)
		}
	}
}

// TestCompareTotalOrder checks Compare is a consistent ordering over a mix
// of valid, null, missing and wrong-typed values: antisymmetric and
// transitive, for every kind and direction.
func TestCompareTotalOrder(t *testing.T) {
	values := []any{
		nil, "", "a", "B", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", "2025-12-31T23:00:00-01:00",
		"0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950E",
		0.0, -1.0, 3.5, json.Number("2"), json.Number("bad"), 7, true, false,
		map[string]any{"a": 1.0}, []any{1.0}, "missing",
	}
	rows := make([]map[string]any, len(values))
	for i, v := range values {
		rows[i] = map[string]any{"v": v}
		if v == "missing" {
			rows[i] = map[string]any{}
		}
	}
	for _, kind := range []Kind{0, String, Number, Bool, DateTime, GUID} {
		for _, desc := range []bool{false, true} {
			keys := []OrderKey{{Field: "v", Kind: kind, Desc: desc}}
			for _, a := range rows {
				for _, b := range rows {
					ab, ba := Compare(a, b, keys), Compare(b, a, keys)
					if sign(ab) != -sign(ba) {
						t.Fatalf("kind %v: Compare(%v, %v) = %d but reversed %d", kind, a, b, ab, ba)
					}
					for _, c := range rows {
						bc, ac := Compare(b, c, keys), Compare(a, c, keys)
						if ab <= 0 && bc <= 0 && ac > 0 {
							t.Fatalf("kind %v: %v <= %v <= %v but Compare(a, c) = %d", kind, a, b, c, ac)
						}
					}
				}
			}
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestCompareNoKeys(t *testing.T) {
	if c := Compare(map[string]any{"a": 1.0}, map[string]any{"a": 2.0}, nil); c != 0 {
		t.Errorf("no keys: %d", c)
	}
	if c := Compare(nil, map[string]any{"status": "x"}, []OrderKey{{Field: "status", Kind: String}}); c >= 0 {
		t.Errorf("nil row should sort first: %d", c)
	}
}
