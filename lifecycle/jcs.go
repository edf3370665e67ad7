package lifecycle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ActionDigest is the SHA-256 (hex) of the RFC 8785 canonical form of a
// tool action's input (pam-semantics §14.1), so the same input hashes the
// same whatever its key order or number spelling.
func ActionDigest(input json.RawMessage) (string, error) {
	c, err := Canonical(input)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(c)
	return hex.EncodeToString(s[:]), nil
}

// Canonical returns the JSON Canonicalization Scheme (RFC 8785) form of a
// JSON document: object members sorted by their UTF-16 code units, no
// insignificant whitespace, numbers in ECMAScript's shortest form and
// strings with only the mandatory escapes. As RFC 8785 requires, the input
// must be I-JSON: valid UTF-8, no lone surrogate escapes, no duplicate
// member names, and integers exactly representable as doubles. Anything
// else is refused, because two different inputs a tool might read
// differently must never share a digest.
func Canonical(doc []byte) ([]byte, error) {
	if !utf8.Valid(doc) {
		return nil, errors.New("not valid UTF-8")
	}
	if err := checkSurrogates(doc); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	v, err := strictValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	var b bytes.Buffer
	if err := canon(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// strictValue decodes one JSON value, refusing duplicate member names and
// integers beyond ±2^53.
func strictValue(dec *json.Decoder) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := t.(type) {
	case json.Delim:
		switch v {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("duplicate member name %q", k)
				}
				if m[k], err = strictValue(dec); err != nil {
					return nil, err
				}
			}
			_, err := dec.Token() // '}'
			return m, err
		case '[':
			a := []any{}
			for dec.More() {
				e, err := strictValue(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, e)
			}
			_, err := dec.Token() // ']'
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", v)
	case json.Number:
		if !strings.ContainsAny(string(v), ".eE") {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n > 1<<53 || n < -(1<<53) {
				return nil, fmt.Errorf("integer %s is not exactly representable as a double", v)
			}
		}
		return v, nil
	}
	return t, nil
}

// checkSurrogates refuses \u escapes of a UTF-16 surrogate that is not
// part of a high-low pair (the decoder would silently replace it).
func checkSurrogates(doc []byte) error {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(doc) || doc[i] != '\\' || doc[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(doc[i+2:i+6]), 16, 32)
		return rune(n), err == nil
	}
	for i := 0; i < len(doc); i++ {
		if doc[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		switch {
		case !ok:
			i++ // an escaped character, \\ included
		case 0xD800 <= r && r < 0xDC00:
			lo, ok := hex4(i + 6)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return fmt.Errorf("lone surrogate escape at byte %d", i)
			}
			i += 11
		case 0xDC00 <= r && r <= 0xDFFF:
			return fmt.Errorf("lone surrogate escape at byte %d", i)
		default:
			i += 5
		}
	}
	return nil
}

func canon(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) {
			return fmt.Errorf("number %s is not an IEEE 754 double", x)
		}
		b.WriteString(esNumber(f))
	case string:
		canonString(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := canon(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int { return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b))) })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			canonString(b, k)
			b.WriteByte(':')
			if err := canon(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("unexpected JSON value %T", v)
	}
	return nil
}

func canonString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// esNumber formats f the way ECMAScript's Number.prototype.toString does:
// the shortest round-tripping digits, fixed notation for 1e-7 ≤ |f| < 1e21,
// else exponent notation like 1e+21.
func esNumber(f float64) string {
	if f == 0 {
		return "0" // also -0
	}
	neg := f < 0
	if neg {
		f = -f
	}
	// Shortest digits and decimal exponent: d.ddd e±x.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	n := x + 1 // position of the decimal point relative to digits
	k := len(digits)
	var s string
	switch {
	case k <= n && n <= 21:
		s = digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		s = digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		s = "0." + strings.Repeat("0", -n) + digits
	default:
		s = digits[:1]
		if k > 1 {
			s += "." + digits[1:]
		}
		if n-1 >= 0 {
			s += "e+" + strconv.Itoa(n-1)
		} else {
			s += "e" + strconv.Itoa(n-1)
		}
	}
	if neg {
		s = "-" + s
	}
	return s
}
