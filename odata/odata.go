// Package odata implements the OData v4 $filter and $orderby query options
// for the API's list endpoints.
//
// A filter is parsed against a Schema, the properties a list endpoint's rows
// expose and their kinds, so mistakes (an unknown property, a number compared
// with a string property, an unterminated string) are reported before any row
// is read, as an *Error carrying the character position of the problem. An
// accepted filter is compiled to one type-checked CEL program and evaluated
// against each row, a JSON object decoded by encoding/json.
//
// # Filter grammar
//
//	filter     = or
//	or         = and { "or" and }
//	and        = unary { "and" unary }
//	unary      = "not" unary | primary
//	primary    = "(" or ")" | function | comparison | boolProperty
//	comparison = operand ( "eq" | "ne" | "gt" | "ge" | "lt" | "le" ) operand
//	function   = ( "contains" | "startswith" | "endswith" ) "(" property "," string ")"
//	operand    = property | literal
//
// Operators, keywords and function names are lower-case, as in OData; an
// upper-case spelling is an error that names the lower-case one. Precedence
// is not > comparison > and > or, so "not" applies to the operand right after
// it: "not approved", "not contains(a, 'x')" and "not (status eq 'x')" are
// filters, while "not status eq 'x'" is refused with a hint to add the
// parentheses. A boolean property on its own is a condition ("approved" means
// "approved eq true").
//
// A comparison has a property on one side and a literal on the other, in
// either order ('x' eq status is status eq 'x'); comparing two properties, or
// two literals, is refused. Literals are
//
//	'text'                      a string; a quote inside is written ''
//	12, -3, 4.5, 1e3            a number
//	true, false                 a boolean
//	null                        the null value (only with eq and ne)
//	2026-01-02T03:04:05Z        an RFC 3339 date-time, with Z or an offset;
//	datetime'2026-…'            the same, prefixed (datetimeoffset'…' too)
//	01234567-89ab-cdef-0123-…   a GUID; guid'…' is the same, prefixed
//
// Property names are identifiers (ASCII letters, digits and underscores, not
// starting with a digit) matched case-sensitively against the Schema; the
// words eq, ne, gt, ge, lt, le, and, or, not, true, false and null cannot
// name a property.
//
// # Typing
//
// Each property's Kind decides what it may be compared with; a mismatch is an
// *Error at parse time:
//
//	String    string literals; all six comparisons (ordered by code point);
//	          contains, startswith and endswith (case-sensitive)
//	Number    number literals; all six comparisons
//	Bool      true and false; eq and ne only
//	DateTime  date-time literals, and string literals that are RFC 3339
//	          date-times; all six comparisons, as instants (an offset is
//	          honoured, so 2026-01-02T04:00:00+01:00 eq 2026-01-02T03:00:00Z)
//	GUID      GUID literals, and string literals that are GUIDs; eq and ne
//	          only; case-insensitive
//
// Any kind may be compared with null using eq or ne.
//
// # Nulls and ill-typed values
//
// In a row, a missing key is the same as a JSON null. "p eq null" holds when
// p is missing or null, and "p ne null" when it is present and not null.
// Every other comparison, and every function, is false on a null value,
// including ne: status ne 'x' does not match a row without a status. The
// logic is two-valued, so "not" of such a comparison is true:
// not (status eq 'x') matches a row without a status.
//
// A row value of the wrong JSON type for its property's kind (a number where
// a string is expected, a string that is not an RFC 3339 date-time for a
// DateTime property, a string that is not a GUID for a GUID property, an
// object, a list) is treated like a null for comparisons and functions: they
// are false. It is not null, though: "p eq null" is false and "p ne null" is
// true for it. Such a value never makes Match return an error.
//
// # Limits
//
// A filter is at most MaxLength characters, nests parentheses and "not" at
// most MaxDepth deep and has at most MaxNodes nodes (see MaxNodes for how they
// are counted). Those bounds keep parsing, compilation and evaluation small;
// evaluation is further bounded by MaxCost.
package odata

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Kind is the type of a property as it appears in a row.
type Kind int

// The property kinds. The zero Kind is not valid.
const (
	// String is a JSON string compared as text.
	String Kind = iota + 1
	// Number is a JSON number.
	Number
	// Bool is a JSON boolean.
	Bool
	// DateTime is a JSON string holding an RFC 3339 date-time, compared as
	// an instant.
	DateTime
	// GUID is a JSON string holding a GUID
	// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal), compared
	// case-insensitively.
	GUID
)

// String returns the lower-case name of the kind, as used in error messages.
func (k Kind) String() string {
	switch k {
	case String:
		return "string"
	case Number:
		return "number"
	case Bool:
		return "boolean"
	case DateTime:
		return "date-time"
	case GUID:
		return "guid"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

func (k Kind) valid() bool { return k >= String && k <= GUID }

// Schema maps each property a filter or ordering may use, spelled exactly
// as in the JSON rows (case-sensitive), to its kind.
type Schema map[string]Kind

// check reports a Schema entry with an invalid Kind. It is a programming
// error, so it is a plain error, not an *Error.
func (s Schema) check() error {
	for name, k := range s {
		if !k.valid() {
			return fmt.Errorf("odata: schema property %q has invalid kind %d", name, int(k))
		}
	}
	return nil
}

// suggest returns the schema property closest to name, or "" when none is
// close enough to be a likely misspelling.
func (s Schema) suggest(name string) string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	lname := strings.ToLower(name)
	best, bestD := "", -1
	for _, n := range names {
		var d int
		if strings.EqualFold(n, name) {
			d = 0
		} else {
			d = editDistance(lname, strings.ToLower(n))
		}
		if bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	if bestD < 0 {
		return ""
	}
	// Allow roughly one edit per four characters, at least one and at most
	// three, so short names only match near-identical spellings.
	allowed := utf8.RuneCountInString(name) / 4
	allowed = max(1, min(3, allowed))
	if bestD > allowed {
		return ""
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// characters each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows of the dynamic-programming table suffice.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// Error is a mistake in a $filter or $orderby value.
type Error struct {
	// Pos is the 1-based index, in characters (code points), of the
	// offending character in the input; one past the last character when
	// the input ends too early.
	Pos int
	// Msg describes the mistake.
	Msg string
}

// Error returns the message prefixed with the position, e.g.
// `at character 12: unknown property "stauts" (did you mean "status"?)`.
func (e *Error) Error() string { return fmt.Sprintf("at character %d: %s", e.Pos, e.Msg) }

func errorf(pos int, format string, args ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// unknownProperty is the error for a name that is not in the schema.
func unknownProperty(pos int, name string, s Schema) *Error {
	if sug := s.suggest(name); sug != "" {
		return errorf(pos, "unknown property %q (did you mean %q?)", name, sug)
	}
	return errorf(pos, "unknown property %q", name)
}
