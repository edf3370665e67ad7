package odata

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tEOF      tokKind = iota
	tLParen           // (
	tRParen           // )
	tComma            // ,
	tWord             // an identifier, keyword or operator; text holds it
	tString           // a quoted string; text holds the unquoted value
	tNumber           // a number; num holds it
	tDateTime         // a date-time; tm holds it
	tGUID             // a GUID; text holds it in lower case
	tBool             // true or false, made from a tWord by the parser
	tNull             // null, made from a tWord by the parser
)

// token is one lexical token. pos and end are 1-based character indexes of
// its first character and of the character after it.
type token struct {
	kind     tokKind
	pos, end int
	text     string
	num      float64
	tm       time.Time
	b        bool
}

// lexer splits a filter or ordering into tokens on demand, so the first
// mistake reported is the leftmost one the parser reaches.
type lexer struct {
	src []rune
	i   int // 0-based index of the next unread character
}

func isSpace(c rune) bool      { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c rune) bool      { return c >= '0' && c <= '9' }
func isLetter(c rune) bool     { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentStart(c rune) bool { return isLetter(c) || c == '_' }
func isIdentChar(c rune) bool  { return isIdentStart(c) || isDigit(c) }
func isHex(c rune) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// guidLen is the length of a GUID in its 8-4-4-4-12 form.
const guidLen = 36

// isGUIDRunes reports whether r is a GUID: 32 hexadecimal digits grouped
// 8-4-4-4-12 by hyphens.
func isGUIDRunes(r []rune) bool {
	if len(r) != guidLen {
		return false
	}
	for i, c := range r {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

// parseGUID returns s in canonical (lower-case) form, if it is a GUID.
func parseGUID(s string) (string, bool) {
	if len(s) != guidLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !isHex(c) {
				return "", false
			}
		}
	}
	return strings.ToLower(s), true
}

// parseDateTime parses an RFC 3339 date-time, with Z or a numeric offset
// and optional fractional seconds.
func parseDateTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// datePrefixAt reports whether src[i:] starts with a date, dddd-dd-dd.
func datePrefixAt(src []rune, i int) bool {
	const pattern = "dddd-dd-dd"
	if i+len(pattern) > len(src) {
		return false
	}
	for j := 0; j < len(pattern); j++ {
		c := src[i+j]
		if pattern[j] == 'd' {
			if !isDigit(c) {
				return false
			}
		} else if c != '-' {
			return false
		}
	}
	return true
}

// isDateTimeChar reports whether c can be part of a bare date-time.
func isDateTimeChar(c rune) bool {
	return isDigit(c) || isLetter(c) || c == ':' || c == '.' || c == '+' || c == '-'
}

// clip shortens s for quoting in an error message.
func clip(s string) string {
	const max = 40
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max]) + "…"
}

// next returns the next token.
func (lx *lexer) next() (token, *Error) {
	for lx.i < len(lx.src) && isSpace(lx.src[lx.i]) {
		lx.i++
	}
	start := lx.i
	pos := start + 1
	if start >= len(lx.src) {
		return token{kind: tEOF, pos: pos, end: pos}, nil
	}
	c := lx.src[start]
	simple := func(k tokKind) (token, *Error) {
		lx.i++
		return token{kind: k, pos: pos, end: pos + 1}, nil
	}
	switch {
	case c == '(':
		return simple(tLParen)
	case c == ')':
		return simple(tRParen)
	case c == ',':
		return simple(tComma)
	case c == '\'':
		s, err := lx.quoted()
		if err != nil {
			return token{}, err
		}
		return token{kind: tString, pos: pos, end: lx.i + 1, text: s}, nil
	}
	// A bare GUID may start with a letter, so it is tried before an
	// identifier; it must not run on into identifier characters.
	if isHex(c) && start+guidLen <= len(lx.src) && isGUIDRunes(lx.src[start:start+guidLen]) &&
		(start+guidLen == len(lx.src) || !isIdentChar(lx.src[start+guidLen])) {
		lx.i += guidLen
		return token{kind: tGUID, pos: pos, end: lx.i + 1, text: strings.ToLower(string(lx.src[start:lx.i]))}, nil
	}
	if isDigit(c) && datePrefixAt(lx.src, start) {
		for lx.i < len(lx.src) && isDateTimeChar(lx.src[lx.i]) {
			lx.i++
		}
		s := string(lx.src[start:lx.i])
		t, ok := parseDateTime(s)
		if !ok {
			return token{}, errorf(pos, "malformed date-time %q (expected RFC 3339, like 2026-01-02T03:04:05Z)", clip(s))
		}
		return token{kind: tDateTime, pos: pos, end: lx.i + 1, tm: t}, nil
	}
	if isDigit(c) || c == '-' && start+1 < len(lx.src) && isDigit(lx.src[start+1]) {
		return lx.number()
	}
	if isIdentStart(c) {
		for lx.i < len(lx.src) && isIdentChar(lx.src[lx.i]) {
			lx.i++
		}
		if lx.i < len(lx.src) && lx.src[lx.i] >= utf8.RuneSelf && (unicode.IsLetter(lx.src[lx.i]) || unicode.IsDigit(lx.src[lx.i])) {
			return token{}, errorf(lx.i+1, "unexpected character %q (property names are ASCII letters, digits and underscores)", lx.src[lx.i])
		}
		word := string(lx.src[start:lx.i])
		if lx.i < len(lx.src) && lx.src[lx.i] == '\'' {
			if tok, err, ok := lx.prefixed(word, pos); ok {
				return tok, err
			}
		}
		return token{kind: tWord, pos: pos, end: lx.i + 1, text: word}, nil
	}
	return token{}, unexpectedChar(pos, c)
}

// prefixed lexes a prefixed literal such as datetime'…' or guid'…', whose
// prefix word has been read and is followed by a quote. ok is false when
// the word is not a literal prefix, in which case nothing was consumed past
// the word (it is then an ordinary word followed by a string, as in
// status eq'x').
func (lx *lexer) prefixed(word string, pos int) (tok token, err *Error, ok bool) {
	lower := strings.ToLower(word)
	switch lower {
	case "datetime", "datetimeoffset", "guid":
	default:
		return token{}, nil, false
	}
	if word != lower {
		return token{}, errorf(pos, "literal prefix %q must be lower-case: use %q", word, lower), true
	}
	s, qerr := lx.quoted()
	if qerr != nil {
		return token{}, qerr, true
	}
	end := lx.i + 1
	if lower == "guid" {
		g, valid := parseGUID(s)
		if !valid {
			return token{}, errorf(pos, "malformed guid %q (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal)", clip(s)), true
		}
		return token{kind: tGUID, pos: pos, end: end, text: g}, nil, true
	}
	t, valid := parseDateTime(s)
	if !valid {
		return token{}, errorf(pos, "malformed date-time %q (expected RFC 3339, like 2026-01-02T03:04:05Z)", clip(s)), true
	}
	return token{kind: tDateTime, pos: pos, end: end, tm: t}, nil, true
}

// quoted reads a single-quoted string starting at the current character,
// where two quotes in a row stand for one, and returns its value.
func (lx *lexer) quoted() (string, *Error) {
	open := lx.i
	lx.i++ // opening quote
	var b strings.Builder
	from := lx.i
	for lx.i < len(lx.src) {
		if lx.src[lx.i] != '\'' {
			lx.i++
			continue
		}
		b.WriteString(string(lx.src[from:lx.i]))
		if lx.i+1 < len(lx.src) && lx.src[lx.i+1] == '\'' {
			b.WriteByte('\'')
			lx.i += 2
			from = lx.i
			continue
		}
		lx.i++ // closing quote
		return b.String(), nil
	}
	return "", errorf(open+1, "unterminated string (no closing quote)")
}

// number reads an optionally negative integer or decimal with an optional
// exponent.
func (lx *lexer) number() (token, *Error) {
	start := lx.i
	pos := start + 1
	src := lx.src
	digits := func() int {
		n := 0
		for lx.i < len(src) && isDigit(src[lx.i]) {
			lx.i++
			n++
		}
		return n
	}
	if src[lx.i] == '-' {
		lx.i++
	}
	digits()
	malformed := false
	if lx.i < len(src) && src[lx.i] == '.' {
		lx.i++
		if digits() == 0 {
			malformed = true
		}
	}
	if !malformed && lx.i < len(src) && (src[lx.i] == 'e' || src[lx.i] == 'E') {
		lx.i++
		if lx.i < len(src) && (src[lx.i] == '+' || src[lx.i] == '-') {
			lx.i++
		}
		if digits() == 0 {
			malformed = true
		}
	}
	// A number runs into nothing but a delimiter.
	for lx.i < len(src) && (isIdentChar(src[lx.i]) || src[lx.i] == '.' || src[lx.i] == '-' || src[lx.i] == '+') {
		lx.i++
		malformed = true
	}
	text := string(src[start:lx.i])
	if malformed {
		return token{}, errorf(pos, "malformed number %q", clip(text))
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return token{}, errorf(pos, "number %s is out of range", clip(text))
	}
	return token{kind: tNumber, pos: pos, end: lx.i + 1, num: f, text: text}, nil
}

// unexpectedChar is the error for a character that cannot start a token,
// with a hint for the spellings of other query languages.
func unexpectedChar(pos int, c rune) *Error {
	hint := ""
	switch c {
	case '=':
		hint = " (compare with eq or ne)"
	case '!':
		hint = " (use ne or not)"
	case '<', '>':
		hint = " (compare with lt, le, gt or ge)"
	case '&':
		hint = " (use and)"
	case '|':
		hint = " (use or)"
	case '"':
		hint = " (strings are quoted with single quotes: 'text')"
	case '-':
		hint = " (a minus sign must be followed by a digit)"
	}
	return errorf(pos, "unexpected character %q%s", c, hint)
}
