package syntax

import "testing"

// PosOf maps positions inside a literal's value back to the source: exact
// for raw strings (also past a newline and after multi-byte characters),
// the value's start when escapes make the mapping ambiguous.
func TestLitPosOf(t *testing.T) {
	src := "x = `ab\né€cd`\ny = \"a\\\"b\"\n"
	toks := tokenize(src, &ErrorList{})
	raw := &Lit{Kind: toks[2].Kind, Pos: toks[2].Pos, Text: toks[2].Text, Value: toks[2].Value}
	esc := &Lit{Kind: toks[5].Kind, Pos: toks[5].Pos, Text: toks[5].Text, Value: toks[5].Value}
	for _, c := range []struct {
		lit       *Lit
		line, col int
		want      string // the source from the mapped offset
		wl, wc    int
	}{
		{raw, 1, 1, "ab\n", 1, 6},
		{raw, 1, 2, "b\n", 1, 7},
		{raw, 2, 1, "é€cd", 2, 1},
		{raw, 2, 3, "cd", 2, 6}, // é and € are 2 and 3 bytes
		{esc, 1, 3, `a\"b"`, 3, 6},
	} {
		p := c.lit.PosOf(c.line, c.col)
		if p.Line != c.wl || p.Col != c.wc || src[p.Offset:p.Offset+len(c.want)] != c.want {
			t.Errorf("PosOf(%d, %d) = %v offset %d (%q), want %d:%d at %q", c.line, c.col, p, p.Offset, src[p.Offset:], c.wl, c.wc, c.want)
		}
	}
}
