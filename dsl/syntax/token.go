package syntax

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Pos is a position in a source text: a byte offset and the 1-based line
// and column (column counted in bytes, as go/token does). The zero Pos is
// "no position".
type Pos struct {
	Offset int
	Line   int
	Col    int
}

// IsValid reports whether p is a real position.
func (p Pos) IsValid() bool { return p.Line > 0 }

func (p Pos) String() string {
	if !p.IsValid() {
		return "-"
	}
	return fmt.Sprintf("%d:%d", p.Line, p.Col)
}

// Kind is the lexical class of a token.
type Kind uint8

const (
	EOF Kind = iota
	Ident
	String    // "…" with escapes
	RawString // `…`, no escapes: Windows paths need no doubled backslashes
	Int
	Duration  // 30m, 2h, 1h30m
	Clock     // 08:00, 8:00
	Timestamp // 2026-06-15T10:00:00+01:00
	LBrace
	RBrace
	LParen
	RParen
	LBrack
	RBrack
	Comma
	EqSign // =
	Eq     // ==
	Neq    // !=
	Match  // ~
	NMatch // !~
	Minus  // - (day and clock ranges)
	LineComment
	Illegal
)

var kindNames = [...]string{
	EOF: "end of file", Ident: "identifier", String: "string", RawString: "raw string", Int: "number",
	Duration: "duration", Clock: "time of day", Timestamp: "timestamp",
	LBrace: "`{`", RBrace: "`}`", LParen: "`(`", RParen: "`)`", LBrack: "`[`", RBrack: "`]`",
	Comma: "`,`", EqSign: "`=`", Eq: "`==`", Neq: "`!=`", Match: "`~`", NMatch: "`!~`", Minus: "`-`",
	LineComment: "comment", Illegal: "illegal character",
}

func (k Kind) String() string { return kindNames[k] }

// Token is one lexeme. Text is the source text of the token; Value is the
// decoded value of a string literal.
type Token struct {
	Kind  Kind
	Pos   Pos
	End   Pos // position just after the token
	Text  string
	Value string
	First bool // first token on its line
}

// describe renders a token for "expected X, found Y" messages.
func (t Token) describe() string {
	switch t.Kind {
	case EOF:
		return "end of file"
	case Ident:
		return "`" + t.Text + "`"
	case String, RawString:
		// Only the first line of a multi-line raw string: a message is
		// one line (editors and `file:line:col: msg` output rely on it).
		text, more := t.Text, false
		if i := strings.IndexAny(text, "\r\n"); i >= 0 {
			text, more = text[:i], true
		}
		s := abbrev(text, 40)
		if more && !strings.HasSuffix(s, "…") {
			s += "…"
		}
		return "string " + s
	case Int, Duration, Clock, Timestamp:
		return t.Kind.String() + " `" + t.Text + "`"
	case Illegal:
		if r, size := utf8.DecodeRuneInString(t.Text); !unicode.IsPrint(r) || r == utf8.RuneError && size == 1 {
			return strconv.QuoteRune(r) // no raw control characters in a message
		}
		return "`" + t.Text + "`"
	}
	return t.Kind.String()
}

func abbrev(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
