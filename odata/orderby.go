package odata

import (
	"cmp"
	"strings"
	"time"
)

// OrderKey is one key of an $orderby.
type OrderKey struct {
	// Field is the property, as spelled in the schema and the rows.
	Field string
	// Desc is set for a descending key.
	Desc bool
	// Kind is the property's kind, which decides how values compare. A
	// zero Kind compares values by their JSON type alone (see Compare).
	Kind Kind
}

// ParseOrderBy parses an $orderby value, a comma-separated list of
// properties each optionally followed by asc (the default) or desc:
// "requestedAt desc, status". An empty or all-blank value is no ordering
// (nil, nil). A mistake, including an unknown or repeated property, is an
// *Error; an invalid schema is another error.
func ParseOrderBy(src string, schema Schema) ([]OrderKey, error) {
	if err := schema.check(); err != nil {
		return nil, err
	}
	runes, lerr := checkLength(src)
	if lerr != nil {
		return nil, lerr
	}
	lx := lexer{src: runes}
	tok, err := lx.next()
	if err != nil {
		return nil, err
	}
	if tok.kind == tEOF {
		return nil, nil
	}
	var keys []OrderKey
	seen := map[string]int{}
	for {
		if tok.kind != tWord {
			if tok.kind == tEOF {
				return nil, errorf(tok.pos, "missing property name at end of $orderby")
			}
			return nil, errorf(tok.pos, "expected a property name, found %s", describe(tok))
		}
		kind, ok := schema[tok.text]
		if !ok {
			return nil, unknownProperty(tok.pos, tok.text, schema)
		}
		if at, dup := seen[tok.text]; dup {
			return nil, errorf(tok.pos, "property %q is already ordered on at character %d", tok.text, at)
		}
		seen[tok.text] = tok.pos
		key := OrderKey{Field: tok.text, Kind: kind}
		if tok, err = lx.next(); err != nil {
			return nil, err
		}
		if tok.kind == tWord {
			switch tok.text {
			case "asc":
			case "desc":
				key.Desc = true
			default:
				if lower := strings.ToLower(tok.text); lower == "asc" || lower == "desc" {
					return nil, errorf(tok.pos, "unknown direction %q (directions are lower-case: use %q)", tok.text, lower)
				}
				return nil, errorf(tok.pos, "expected asc, desc, \",\" or end of $orderby after %q, found %s", key.Field, describe(tok))
			}
			if tok, err = lx.next(); err != nil {
				return nil, err
			}
		}
		keys = append(keys, key)
		switch tok.kind {
		case tEOF:
			return keys, nil
		case tComma:
			if tok, err = lx.next(); err != nil {
				return nil, err
			}
		default:
			return nil, errorf(tok.pos, "expected \",\" or end of $orderby, found %s", describe(tok))
		}
	}
}

// Compare orders rows a and b by keys, returning a negative number when a
// sorts first, a positive one when b does and zero when every key ties, so
// it suits slices.SortFunc and slices.SortStableFunc (add a unique key
// such as an id for a deterministic order of otherwise equal rows).
//
// For an ascending key, missing and null values sort first, then values of
// the key's kind in their natural order, then values of any other type;
// a descending key reverses all of it, so nulls sort last. Strings compare
// by code point, date-times as instants (then by their text, so different
// spellings of one instant do not tie), GUIDs case-insensitively (then by
// their text), false before true. Values of the wrong type, and all values
// of a key with a zero Kind, order booleans, then numbers, then strings,
// then objects and lists, which tie with each other.
func Compare(a, b map[string]any, keys []OrderKey) int {
	for _, k := range keys {
		c := compareValues(a[k.Field], b[k.Field], k.Kind)
		if k.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// Ranks of a value in an ordering.
const (
	rankNull  = iota // missing or null
	rankValid        // a value of the key's kind
	rankOther        // any other value
)

// Type ranks of values compared by JSON type.
const (
	typBool = iota
	typNumber
	typString
	typComposite
)

// sortVal is a row value prepared for comparison.
type sortVal struct {
	rank int
	typ  int       // rankOther: the JSON type
	s    string    // String, rankOther strings: the value; GUID: lower case
	raw  string    // DateTime, GUID: the text as given
	f    float64   // Number, rankOther numbers
	b    bool      // Bool, rankOther booleans
	t    time.Time // DateTime
}

// toSortVal prepares a value of a key of kind k for comparison.
func toSortVal(v any, k Kind) sortVal {
	if v == nil {
		return sortVal{rank: rankNull}
	}
	switch k {
	case String:
		if s, ok := v.(string); ok {
			return sortVal{rank: rankValid, s: s}
		}
	case Number:
		if f, ok := number(v); ok {
			return sortVal{rank: rankValid, f: f}
		}
	case Bool:
		if b, ok := v.(bool); ok {
			return sortVal{rank: rankValid, b: b}
		}
	case DateTime:
		switch x := v.(type) {
		case string:
			if t, ok := parseDateTime(x); ok {
				return sortVal{rank: rankValid, t: t, raw: x}
			}
		case time.Time:
			return sortVal{rank: rankValid, t: x, raw: x.Format(time.RFC3339Nano)}
		}
	case GUID:
		if s, ok := v.(string); ok {
			if g, ok := parseGUID(s); ok {
				return sortVal{rank: rankValid, s: g, raw: s}
			}
		}
	}
	sv := sortVal{rank: rankOther, typ: typComposite}
	switch x := v.(type) {
	case bool:
		sv.typ, sv.b = typBool, x
	case string:
		sv.typ, sv.s = typString, x
	default:
		if f, ok := number(v); ok {
			sv.typ, sv.f = typNumber, f
		}
	}
	return sv
}

// compareBool orders false before true.
func compareBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case !x:
		return -1
	}
	return 1
}

// compareValues compares two values of a key of kind k, ascending.
func compareValues(x, y any, k Kind) int {
	a, b := toSortVal(x, k), toSortVal(y, k)
	if c := cmp.Compare(a.rank, b.rank); c != 0 {
		return c
	}
	switch a.rank {
	case rankNull:
		return 0
	case rankValid:
		switch k {
		case String:
			return strings.Compare(a.s, b.s)
		case Number:
			return cmp.Compare(a.f, b.f)
		case Bool:
			return compareBool(a.b, b.b)
		case DateTime:
			if c := a.t.Compare(b.t); c != 0 {
				return c
			}
			return strings.Compare(a.raw, b.raw)
		case GUID:
			if c := strings.Compare(a.s, b.s); c != 0 {
				return c
			}
			return strings.Compare(a.raw, b.raw)
		}
		return 0 // unreachable: only valid kinds give rankValid
	}
	if c := cmp.Compare(a.typ, b.typ); c != 0 {
		return c
	}
	switch a.typ {
	case typBool:
		return compareBool(a.b, b.b)
	case typNumber:
		return cmp.Compare(a.f, b.f)
	case typString:
		return strings.Compare(a.s, b.s)
	}
	return 0
}
