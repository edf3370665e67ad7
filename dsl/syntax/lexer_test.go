package syntax

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tok is the part of a token the lexer tables check.
type tok struct {
	Kind  Kind
	Text  string
	Value string
}

func lex(src string) ([]Token, ErrorList) {
	var errs ErrorList
	toks := tokenize(src, &errs)
	errs.Sort()
	return toks, errs
}

// lexShort lexes src and drops positions and the final EOF.
func lexShort(src string) ([]tok, ErrorList) {
	toks, errs := lex(src)
	var out []tok
	for _, t := range toks {
		if t.Kind == EOF {
			break
		}
		out = append(out, tok{t.Kind, t.Text, t.Value})
	}
	return out, errs
}

func TestLexTokens(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []tok
	}{
		{"empty", "", nil},
		{"white space only", " \t\r\n\n  ", nil},
		{"punctuation", "{}()[],= == != ~ !~ -", []tok{
			{LBrace, "{", ""}, {RBrace, "}", ""}, {LParen, "(", ""}, {RParen, ")", ""},
			{LBrack, "[", ""}, {RBrack, "]", ""}, {Comma, ",", ""}, {EqSign, "=", ""},
			{Eq, "==", ""}, {Neq, "!=", ""}, {Match, "~", ""}, {NMatch, "!~", ""}, {Minus, "-", ""},
		}},
		{"operators without spaces", "a==b!=c~d!~e=f", []tok{
			{Ident, "a", ""}, {Eq, "==", ""}, {Ident, "b", ""}, {Neq, "!=", ""}, {Ident, "c", ""},
			{Match, "~", ""}, {Ident, "d", ""}, {NMatch, "!~", ""}, {Ident, "e", ""}, {EqSign, "=", ""}, {Ident, "f", ""},
		}},
		{"identifiers", "rule auto_approve _x x1 Signer", []tok{
			{Ident, "rule", ""}, {Ident, "auto_approve", ""}, {Ident, "_x", ""}, {Ident, "x1", ""}, {Ident, "Signer", ""},
		}},
		{"int", "0 50 007", []tok{{Int, "0", ""}, {Int, "50", ""}, {Int, "007", ""}}},
		{"durations", "30m 2h 1h30m 0m", []tok{{Duration, "30m", ""}, {Duration, "2h", ""}, {Duration, "1h30m", ""}, {Duration, "0m", ""}}},
		{"malformed duration is still one token", "2d 1h30", []tok{{Duration, "2d", ""}, {Duration, "1h30", ""}}},
		{"clocks", "8:00 08:00 23:59", []tok{{Clock, "8:00", ""}, {Clock, "08:00", ""}, {Clock, "23:59", ""}}},
		{"clock range", "08:00-18:00", []tok{{Clock, "08:00", ""}, {Minus, "-", ""}, {Clock, "18:00", ""}}},
		{"day range", "mon-fri,sat", []tok{{Ident, "mon", ""}, {Minus, "-", ""}, {Ident, "fri", ""}, {Comma, ",", ""}, {Ident, "sat", ""}}},
		{"timestamps", "2026-06-15T10:00:00+01:00 2026-06-15T10:00:00Z 2026-06-15T10:00:00.5-07:00", []tok{
			{Timestamp, "2026-06-15T10:00:00+01:00", ""}, {Timestamp, "2026-06-15T10:00:00Z", ""},
			{Timestamp, "2026-06-15T10:00:00.5-07:00", ""},
		}},
		{"comment", "# hello  \t\nx", []tok{{LineComment, "# hello  \t", " hello"}, {Ident, "x", ""}}},
		{"comment at end of file", "x # tail", []tok{{Ident, "x", ""}, {LineComment, "# tail", " tail"}}},
		{"empty comment", "#", []tok{{LineComment, "#", ""}}},
		{"comment with CRLF", "# a\r\nx", []tok{{LineComment, "# a\r", " a"}, {Ident, "x", ""}}},
		{"hash inside strings is not a comment", "\"a#b\" `c#d`", []tok{{String, "\"a#b\"", "a#b"}, {RawString, "`c#d`", "c#d"}}},
		{"quoted string", `"Mozilla Corporation"`, []tok{{String, `"Mozilla Corporation"`, "Mozilla Corporation"}}},
		{"empty strings", "\"\" ``", []tok{{String, `""`, ""}, {RawString, "``", ""}}},
		{"escapes", `"a\"b\\c\nd\te\rf\u00e9\u0041"`, []tok{{String, `"a\"b\\c\nd\te\rf\u00e9\u0041"`, "a\"b\\c\nd\te\rf\u00e9A"}}},
		{"upper-case hex escape", `"\u00C9"`, []tok{{String, `"\u00C9"`, "\u00c9"}}},
		{"raw string keeps backslashes", "`C:\\Users\\*\\Downloads\\*.exe`", []tok{{RawString, "`C:\\Users\\*\\Downloads\\*.exe`", `C:\Users\*\Downloads\*.exe`}}},
		{"raw string keeps quotes and escapes", "`say \"hi\\n\"`", []tok{{RawString, "`say \"hi\\n\"`", `say "hi\n"`}}},
		{"multi-line raw string", "`line1\nline2` x", []tok{{RawString, "`line1\nline2`", "line1\nline2"}, {Ident, "x", ""}}},
		{"utf-8 in strings and comments", "\"é→\" `ü` # ñ", []tok{{String, "\"é→\"", "é→"}, {RawString, "`ü`", "ü"}, {LineComment, "# ñ", " ñ"}}},
		{"byte order mark", "\uFEFFrule", []tok{{Ident, "rule", ""}}},
		{"rule line", "when signer == \"x\" and path ~ `C:\\*`", []tok{
			{Ident, "when", ""}, {Ident, "signer", ""}, {Eq, "==", ""}, {String, `"x"`, "x"},
			{Ident, "and", ""}, {Ident, "path", ""}, {Match, "~", ""}, {RawString, "`C:\\*`", `C:\*`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := lexShort(tt.src)
			if len(errs) > 0 {
				t.Errorf("unexpected errors: %v", errs)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tokens of %q (-want +got):\n%s", tt.src, diff)
			}
		})
	}
}

func TestLexErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		want   []tok // nil: do not check the tokens
		errors []string
	}{
		{
			name:   "backslash in a quoted path",
			src:    `"C:\Users"`,
			want:   []tok{{String, `"C:\Users"`, `C:\Users`}},
			errors: []string{"1:4: unknown escape sequence \\U in string (write paths and other text with backslashes as a raw string: `C:\\Users\\…`)"},
		},
		{
			name:   "only the first bad escape is reported",
			src:    `x "C:\Program Files\App"`,
			errors: []string{"1:6: unknown escape sequence \\P in string (write paths and other text with backslashes as a raw string: `C:\\Users\\…`)"},
		},
		{
			name:   "bad \\u escape",
			src:    `"\u12" "\uZZZZ" "\uD800"`,
			errors: []string{`1:2: invalid \u escape (write \u followed by four hex digits)`, `1:9: invalid \u escape (write \u followed by four hex digits)`, `1:18: invalid \u escape (write \u followed by four hex digits)`},
		},
		{
			name:   "unterminated string at end of line",
			src:    "\"abc\nx",
			want:   []tok{{String, `"abc`, "abc"}, {Ident, "x", ""}},
			errors: []string{`1:1: string not terminated (close the string with " on the same line)`},
		},
		{
			name:   "unterminated string at end of file",
			src:    `  "abc`,
			errors: []string{`1:3: string not terminated (close the string with " on the same line)`},
		},
		{
			name:   "string ending in a backslash",
			src:    `"abc\`,
			errors: []string{`1:1: string not terminated (close the string with " on the same line)`},
		},
		{
			name:   "unterminated raw string",
			src:    "x `abc\ndef",
			want:   []tok{{Ident, "x", ""}, {RawString, "`abc\ndef", "abc\ndef"}},
			errors: []string{"1:3: raw string not terminated (close the raw string with `)"},
		},
		{
			name:   "invalid UTF-8",
			src:    "x \xff y",
			want:   []tok{{Ident, "x", ""}, {Illegal, "\xff", ""}, {Ident, "y", ""}},
			errors: []string{"1:3: invalid UTF-8 encoding"},
		},
		{
			name:   "invalid UTF-8 in a string",
			src:    "\"a\xffb\"",
			errors: []string{"1:1: invalid UTF-8 encoding in string"},
		},
		{
			name:   "invalid UTF-8 in a raw string",
			src:    "`a\xc3`",
			errors: []string{"1:1: invalid UTF-8 encoding in string"},
		},
		{
			name:   "ampersand",
			src:    "a & b",
			want:   []tok{{Ident, "a", ""}, {Illegal, "&", ""}, {Ident, "b", ""}},
			errors: []string{"1:3: unexpected character '&' (write `and`)"},
		},
		{
			name:   "double ampersand",
			src:    "a && b",
			errors: []string{"1:3: unexpected character '&' (write `and`)", "1:4: unexpected character '&' (write `and`)"},
		},
		{
			name:   "pipe",
			src:    "a || b",
			errors: []string{"1:3: unexpected character '|' (write `or`)", "1:4: unexpected character '|' (write `or`)"},
		},
		{
			name:   "single quote",
			src:    "'x'",
			errors: []string{"1:1: unexpected character '\\'' (strings use double quotes \"…\" or backquotes `…`)", "1:3: unexpected character '\\'' (strings use double quotes \"…\" or backquotes `…`)"},
		},
		{
			name:   "bang",
			src:    "!x",
			errors: []string{"1:1: unexpected character '!' (write `not`, `!=` or `!~`)"},
		},
		{
			name:   "slash comment",
			src:    "// x",
			errors: []string{"1:1: unexpected character '/' (comments start with #)", "1:2: unexpected character '/' (comments start with #)"},
		},
		{
			name:   "number then colon",
			src:    "8:",
			want:   []tok{{Int, "8", ""}, {Illegal, ":", ""}},
			errors: []string{"1:2: unexpected character ':'"},
		},
		{
			name:   "non-ASCII character",
			src:    "a → b",
			want:   []tok{{Ident, "a", ""}, {Illegal, "→", ""}, {Ident, "b", ""}},
			errors: []string{"1:3: unexpected character '→'"},
		},
		{
			name:   "byte order mark after the start",
			src:    "x\uFEFF",
			errors: []string{"1:2: unexpected character '\\ufeff'"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := lexShort(tt.src)
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("tokens of %q (-want +got):\n%s", tt.src, diff)
				}
			}
			if diff := cmp.Diff(tt.errors, errorStrings(errs)); diff != "" {
				t.Errorf("errors of %q (-want +got):\n%s", tt.src, diff)
			}
		})
	}
}

func TestLexPositions(t *testing.T) {
	src := "rule \"a\" {\n\tpriority 5 # c\n  when `x\ny` and\r\n\n}"
	toks, errs := lex(src)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	type pt struct {
		Text     string
		Pos, End string
		Offset   int
		First    bool
	}
	var got []pt
	for _, tk := range toks {
		got = append(got, pt{tk.Text, tk.Pos.String(), tk.End.String(), tk.Pos.Offset, tk.First})
	}
	want := []pt{
		{"rule", "1:1", "1:5", 0, true},
		{`"a"`, "1:6", "1:9", 5, false},
		{"{", "1:10", "1:11", 9, false},
		{"priority", "2:2", "2:10", 12, true}, // a tab is one column, as in go/token
		{"5", "2:11", "2:12", 21, false},
		{"# c", "2:13", "2:16", 23, false},
		{"when", "3:3", "3:7", 29, true},
		{"`x\ny`", "3:8", "4:3", 34, false},
		{"and", "4:4", "4:7", 40, false}, // same line as the end of the raw string
		{"}", "6:1", "6:2", 46, true},
		{"", "6:2", "6:2", 47, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
	for _, tk := range toks {
		if tk.Kind != EOF && src[tk.Pos.Offset:tk.End.Offset] != tk.Text {
			t.Errorf("token %q: offsets %d..%d do not cover its text", tk.Text, tk.Pos.Offset, tk.End.Offset)
		}
	}
}

func TestLexBOMPosition(t *testing.T) {
	toks, errs := lex("\uFEFForg \"x\"")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	// Columns count bytes, as go/token does: the BOM takes three.
	if toks[0].Pos.Offset != 3 || toks[0].Pos.Line != 1 || !toks[0].First {
		t.Errorf("first token after a BOM at %+v (first=%v)", toks[0].Pos, toks[0].First)
	}
}

func TestPosString(t *testing.T) {
	if got := (Pos{}).String(); got != "-" {
		t.Errorf("zero Pos prints %q", got)
	}
	if (Pos{}).IsValid() {
		t.Error("zero Pos is valid")
	}
	if got := (Pos{Offset: 9, Line: 3, Col: 4}).String(); got != "3:4" {
		t.Errorf("Pos prints %q", got)
	}
}

func TestKindString(t *testing.T) {
	for k := EOF; k <= Illegal; k++ {
		if k.String() == "" {
			t.Errorf("kind %d has no name", k)
		}
	}
}

func TestDescribe(t *testing.T) {
	long := `"` + strings.Repeat("x", 60) + `"`
	tests := []struct {
		tok  Token
		want string
	}{
		{Token{Kind: EOF}, "end of file"},
		{Token{Kind: Ident, Text: "rul"}, "`rul`"},
		{Token{Kind: String, Text: `"x"`}, `string "x"`},
		{Token{Kind: String, Text: long}, `string "` + strings.Repeat("x", 38) + "…"},
		{Token{Kind: Int, Text: "5"}, "number `5`"},
		{Token{Kind: Duration, Text: "30m"}, "duration `30m`"},
		{Token{Kind: Clock, Text: "8:00"}, "time of day `8:00`"},
		{Token{Kind: Timestamp, Text: "2026-01-01T00:00:00Z"}, "timestamp `2026-01-01T00:00:00Z`"},
		{Token{Kind: LBrace, Text: "{"}, "`{`"},
		{Token{Kind: Illegal, Text: "&"}, "`&`"},
		{Token{Kind: Illegal, Text: "\x00"}, `'\x00'`},
		{Token{Kind: Illegal, Text: "\xff"}, `'�'`},
		{Token{Kind: RawString, Text: "`line 1\nline 2`"}, "string `line 1…"},
		{Token{Kind: String, Text: "\"abc\r"}, "string \"abc…"},
	}
	for _, tt := range tests {
		if got := tt.tok.describe(); got != tt.want {
			t.Errorf("describe(%v %q) = %q, want %q", tt.tok.Kind, tt.tok.Text, got, tt.want)
		}
	}
}

func TestLexEscapeMessages(t *testing.T) {
	tests := []struct{ src, want string }{
		{"\"abc\\\nx", "1:1: string not terminated (close the string with \" on the same line)"},
		{"\"abc\\\r\nx", "1:1: string not terminated (close the string with \" on the same line)"},
		{`"\é"`, "1:2: unknown escape sequence \\é in string (write paths and other text with backslashes as a raw string: `C:\\Users\\…`)"},
		{"\"a\\\rb\"", "1:3: unknown escape sequence (backslash before '\\r') in string (write paths and other text with backslashes as a raw string: `C:\\Users\\…`)"},
		{"\"\\\t\"", "1:2: unknown escape sequence (backslash before '\\t') in string (write paths and other text with backslashes as a raw string: `C:\\Users\\…`)"},
		{"\"\\\xff\"", "1:2: unknown escape sequence (backslash before '�') in string (write paths and other text with backslashes as a raw string: `C:\\Users\\…`)"},
	}
	for _, tt := range tests {
		_, errs := lex(tt.src)
		if !slices.Contains(errorStrings(errs), tt.want) {
			t.Errorf("%q: errors %q, want %q among them", tt.src, errorStrings(errs), tt.want)
		}
		for _, e := range errs {
			if strings.ContainsAny(e.Msg, "\n\r\t") {
				t.Errorf("%q: message %q holds a control character", tt.src, e.Msg)
			}
		}
	}
}
