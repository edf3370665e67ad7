package syntax

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// lexer turns source text into tokens. It never panics and never stops
// early: malformed input becomes Illegal tokens plus errors, so the parser
// can go on and report everything wrong with a file in one pass.
type lexer struct {
	src       string
	off       int
	line      int
	lineStart int
	lastLine  int // line of the previous token, for Token.First
	errs      *ErrorList
}

func (l *lexer) pos() Pos { return Pos{Offset: l.off, Line: l.line, Col: l.off - l.lineStart + 1} }

func (l *lexer) posAt(off int) Pos {
	// off is on the current line or a line already passed; recompute from
	// the last line start when possible.
	if off >= l.lineStart {
		return Pos{Offset: off, Line: l.line, Col: off - l.lineStart + 1}
	}
	return positionOf(l.src, off)
}

// positionOf computes the line and column of a byte offset by scanning.
func positionOf(src string, off int) Pos {
	line, start := 1, 0
	for i := 0; i < off && i < len(src); i++ {
		if src[i] == '\n' {
			line++
			start = i + 1
		}
	}
	return Pos{Offset: off, Line: line, Col: off - start + 1}
}

func (l *lexer) errorf(p Pos, hint, format string, args ...any) {
	l.errs.Add(p, hint, format, args...)
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// tokenize returns every token of src, ending with EOF.
func tokenize(src string, errs *ErrorList) []Token {
	l := &lexer{src: src, line: 1, errs: errs}
	var toks []Token
	for {
		t := l.next()
		t.First = t.Pos.Line != l.lastLine
		l.lastLine = t.End.Line
		toks = append(toks, t)
		if t.Kind == EOF {
			return toks
		}
	}
}

func (l *lexer) newline() {
	l.line++
	l.lineStart = l.off
}

func (l *lexer) next() Token {
	// skip white space
	for l.off < len(l.src) {
		c := l.src[l.off]
		if c == '\n' {
			l.off++
			l.newline()
			continue
		}
		if c == ' ' || c == '\t' || c == '\r' {
			l.off++
			continue
		}
		if c == 0xEF && strings.HasPrefix(l.src[l.off:], "\uFEFF") && l.off == 0 {
			l.off += 3 // byte order mark
			continue
		}
		break
	}
	start := l.pos()
	tok := func(k Kind, n int) Token {
		l.off += n
		return Token{Kind: k, Pos: start, End: l.pos(), Text: l.src[start.Offset:l.off]}
	}
	if l.off >= len(l.src) {
		return Token{Kind: EOF, Pos: start, End: start}
	}
	c := l.src[l.off]
	switch {
	case c == '#':
		end := strings.IndexByte(l.src[l.off:], '\n')
		if end < 0 {
			end = len(l.src) - l.off
		}
		t := tok(LineComment, end)
		t.Value = strings.TrimRight(t.Text[1:], " \t\r")
		return t
	case isLetter(c):
		n := 1
		for l.off+n < len(l.src) && (isLetter(l.src[l.off+n]) || isDigit(l.src[l.off+n])) {
			n++
		}
		return tok(Ident, n)
	case isDigit(c):
		return l.number(start)
	case c == '"':
		return l.quoted(start)
	case c == '`':
		return l.raw(start)
	}
	two := ""
	if l.off+1 < len(l.src) {
		two = l.src[l.off : l.off+2]
	}
	switch two {
	case "==":
		return tok(Eq, 2)
	case "!=":
		return tok(Neq, 2)
	case "!~":
		return tok(NMatch, 2)
	}
	switch c {
	case '{':
		return tok(LBrace, 1)
	case '}':
		return tok(RBrace, 1)
	case '(':
		return tok(LParen, 1)
	case ')':
		return tok(RParen, 1)
	case '[':
		return tok(LBrack, 1)
	case ']':
		return tok(RBrack, 1)
	case ',':
		return tok(Comma, 1)
	case '=':
		return tok(EqSign, 1)
	case '~':
		return tok(Match, 1)
	case '-':
		return tok(Minus, 1)
	}
	r, size := utf8.DecodeRuneInString(l.src[l.off:])
	t := tok(Illegal, size)
	hint := ""
	switch r {
	case '&':
		hint = "write `and`"
	case '|':
		hint = "write `or`"
	case '!':
		hint = "write `not`, `!=` or `!~`"
	case '\'':
		hint = "strings use double quotes \"…\" or backquotes `…`"
	case '/':
		hint = "comments start with #"
	}
	if r == utf8.RuneError && size == 1 {
		l.errorf(start, "", "invalid UTF-8 encoding")
	} else {
		l.errorf(start, hint, "unexpected character %s", strconv.QuoteRune(r))
	}
	return t
}

// number scans an integer, a clock (8:00), a duration (1h30m) or a
// timestamp (2026-06-15T10:00:00Z). Their values (30x, 25:99) are checked
// where they are used (package dsl), not here: the front end only shapes them.
func (l *lexer) number(start Pos) Token {
	s := l.src[l.off:]
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	kind := Int
	switch {
	case n < len(s) && s[n] == ':' && n+1 < len(s) && isDigit(s[n+1]):
		kind = Clock
		n++
		for n < len(s) && isDigit(s[n]) {
			n++
		}
	case n == 4 && n < len(s) && s[n] == '-' && n+1 < len(s) && isDigit(s[n+1]):
		kind = Timestamp
		for n < len(s) && (isDigit(s[n]) || isLetter(s[n]) || strings.IndexByte(":+-.", s[n]) >= 0) {
			n++
		}
	case n < len(s) && isLetter(s[n]):
		kind = Duration
		for n < len(s) && (isDigit(s[n]) || isLetter(s[n])) {
			n++
		}
	}
	l.off += n
	return Token{Kind: kind, Pos: start, End: l.pos(), Text: s[:n]}
}

// quoted scans a double-quoted string with the escapes \" \\ \n \t \r and
// \uXXXX. A backslash before anything else is an error whose hint points
// at raw strings, the usual fix for Windows paths.
func (l *lexer) quoted(start Pos) Token {
	var b strings.Builder
	i := l.off + 1
	bad := false
	for {
		if i >= len(l.src) || l.src[i] == '\n' {
			l.off = i
			l.errorf(start, "close the string with \" on the same line", "string not terminated")
			return Token{Kind: String, Pos: start, End: l.pos(), Text: l.src[start.Offset:i], Value: b.String()}
		}
		c := l.src[i]
		if c == '"' {
			i++
			break
		}
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(l.src) {
			i++
			continue
		}
		e := l.src[i+1]
		if e == 'U' && i+10 <= len(l.src) {
			// \UXXXXXXXX reaches beyond the Basic Multilingual Plane; "C:\Users"
			// is not one and falls through to the raw-string hint below.
			if v, err := strconv.ParseUint(l.src[i+2:i+10], 16, 32); err == nil && utf8.ValidRune(rune(v)) {
				b.WriteRune(rune(v))
				i += 10
				continue
			}
		}
		switch e {
		case '"', '\\':
			b.WriteByte(e)
			i += 2
		case 'n':
			b.WriteByte('\n')
			i += 2
		case 't':
			b.WriteByte('\t')
			i += 2
		case 'r':
			b.WriteByte('\r')
			i += 2
		case 'u':
			if i+6 <= len(l.src) {
				if v, err := strconv.ParseUint(l.src[i+2:i+6], 16, 32); err == nil && utf8.ValidRune(rune(v)) {
					b.WriteRune(rune(v))
					i += 6
					continue
				}
			}
			l.errorf(l.posAt(i), "write \\u followed by four hex digits", "invalid \\u escape")
			bad = true
			i += 2
		case '\n':
			// A backslash at the end of the line: the string is not
			// terminated, which the loop reports next. Reporting an
			// "unknown escape" too put a raw line break in the message.
			i++
		default:
			if e == '\r' && strings.HasPrefix(l.src[i+2:], "\n") {
				i++ // the same, with CRLF line endings
				continue
			}
			if !bad {
				// Name the escaped character as a rune: %c of the byte e
				// printed the first byte of a UTF-8 sequence as Latin-1
				// (`\é` came out as `\Ã`), and control characters went
				// into the message raw.
				r, _ := utf8.DecodeRuneInString(l.src[i+1:])
				what := "unknown escape sequence \\" + string(r) + " in string"
				if !unicode.IsPrint(r) || r == utf8.RuneError {
					what = "unknown escape sequence (backslash before " + strconv.QuoteRune(r) + ") in string"
				}
				l.errorf(l.posAt(i), "write paths and other text with backslashes as a raw string: `C:\\Users\\…`", "%s", what)
			}
			bad = true
			b.WriteByte('\\')
			i++
		}
	}
	l.off = i
	if !utf8.ValidString(b.String()) {
		l.errorf(start, "", "invalid UTF-8 encoding in string")
	}
	return Token{Kind: String, Pos: start, End: l.pos(), Text: l.src[start.Offset:i], Value: b.String()}
}

// raw scans a backquoted string: every character up to the closing
// backquote is itself. Newlines are allowed.
func (l *lexer) raw(start Pos) Token {
	end := strings.IndexByte(l.src[l.off+1:], '`')
	if end < 0 {
		l.errorf(start, "close the raw string with `", "raw string not terminated")
		text := l.src[l.off:]
		l.advanceOver(len(text))
		return Token{Kind: RawString, Pos: start, End: l.pos(), Text: text, Value: text[1:]}
	}
	text := l.src[l.off : l.off+end+2]
	if !utf8.ValidString(text) {
		l.errorf(start, "", "invalid UTF-8 encoding in string")
	}
	l.advanceOver(len(text))
	return Token{Kind: RawString, Pos: start, End: l.pos(), Text: text, Value: text[1 : len(text)-1]}
}

// advanceOver moves past n bytes that may contain newlines.
func (l *lexer) advanceOver(n int) {
	for end := l.off + n; l.off < end; {
		c := l.src[l.off]
		l.off++
		if c == '\n' {
			l.newline()
		}
	}
}
