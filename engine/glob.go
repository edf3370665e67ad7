package engine

import "strings"

// Path globs (pam-semantics §2.1). After normPath, a run of one '*' matches
// any characters except '/', a run of two or more matches any characters
// including '/', and every other character — '?', '.', '[', ']' included —
// is a literal. Matches are anchored and stars may match nothing.
//
// Two implementations live here on purpose, and the differential tests and
// FuzzGlob hold them equal. dpMatch is the reference: an O(|glob|·|path|)
// dynamic programme, used by the CEL function pathGlob. compileGlob builds the
// hot-path matcher: the literal prefix and suffix are checked as strings and
// the middle runs as a bit-parallel NFA (one machine word for up to 63
// literal bytes), so a match costs one pass over the path whatever the glob
// — a crafted glob cannot make it backtrack. Longer middles use dpMatch.
//
// gobwas/glob (with '/' as separator and quoted literals) expresses the same
// dialect, but its matcher backtracks: `a*a*a*…*c*b` against a few thousand
// characters runs for seconds or more, and paths come from agents. It serves
// as a third, independent oracle in the tests instead.

type globTok struct {
	star int // 0 = literal, 1 = '*', 2 = '**' (two or more)
	lit  string
}

func tokenizeGlob(norm string) []globTok {
	var toks []globTok
	for i := 0; i < len(norm); {
		if norm[i] == '*' {
			j := i
			for j < len(norm) && norm[j] == '*' {
				j++
			}
			s := 1
			if j-i >= 2 {
				s = 2
			}
			toks = append(toks, globTok{star: s})
			i = j
			continue
		}
		j := strings.IndexByte(norm[i:], '*')
		if j < 0 {
			j = len(norm) - i
		}
		toks = append(toks, globTok{lit: norm[i : i+j]})
		i += j
	}
	return toks
}

// globMatchDP reports whether path matches the glob, both given raw (they
// are normalised here).
func globMatchDP(globText, path string) bool {
	return dpMatch(normPath(globText), normPath(path))
}

// dpMatch matches normalised text. It never recurses and never backtracks.
func dpMatch(g, p string) bool {
	n := len(p)
	prev := make([]bool, n+1)
	cur := make([]bool, n+1)
	prev[0] = true
	for i := 0; i < len(g); i++ {
		c := g[i]
		if c == '*' {
			j := i
			for j+1 < len(g) && g[j+1] == '*' {
				j++
			}
			double := j > i
			i = j
			cur[0] = prev[0]
			for k := 1; k <= n; k++ {
				cur[k] = prev[k] || (cur[k-1] && (double || p[k-1] != '/'))
			}
		} else {
			cur[0] = false
			for k := 1; k <= n; k++ {
				cur[k] = prev[k-1] && p[k-1] == c
			}
		}
		prev, cur = cur, prev
	}
	return prev[n]
}

// pathGlob is a compiled glob for the hot path.
type pathGlob struct {
	norm    string // normalised glob text
	literal bool   // no stars: plain equality with norm
	prefix  string // literal text before the first star
	suffix  string // literal text after the last star
	minLen  int    // total length of the literals
	middle  string // the rest, from the first star to the last
	nfa     *bitNFA
}

func compileGlob(raw string) (*pathGlob, error) {
	norm := normPath(raw)
	g := &pathGlob{norm: norm}
	toks := tokenizeGlob(norm)
	for _, t := range toks {
		g.minLen += len(t.lit)
	}
	if len(toks) == 0 || (len(toks) == 1 && toks[0].star == 0) {
		g.literal = true
		return g, nil
	}
	if toks[0].star == 0 {
		g.prefix = toks[0].lit
		toks = toks[1:]
	}
	if last := toks[len(toks)-1]; last.star == 0 {
		g.suffix = last.lit
		toks = toks[:len(toks)-1]
	}
	g.middle = norm[len(g.prefix) : len(norm)-len(g.suffix)]
	g.nfa = newBitNFA(toks)
	return g, nil
}

// match reports whether a normalised path matches.
func (g *pathGlob) match(path string) bool {
	if g.literal {
		return path == g.norm
	}
	if len(path) < g.minLen || !strings.HasPrefix(path, g.prefix) || !strings.HasSuffix(path, g.suffix) {
		return false
	}
	mid := path[len(g.prefix) : len(path)-len(g.suffix)]
	if g.nfa == nil {
		return dpMatch(g.middle, mid)
	}
	return g.nfa.match(mid)
}

// bitNFA simulates the glob's automaton with one bit per position: bit i
// is set while the first i literal bytes have been matched. Gap i (before
// literal i) may absorb input when a star stands there: any byte for '**',
// any but '/' for '*'.
type bitNFA struct {
	class  [256]uint8 // byte → index into masks (0: appears in no literal)
	masks  []uint64   // masks[class[c]]: bit i set when literal i is c
	star   uint64     // gaps holding a single star
	dstar  uint64     // gaps holding a double star
	accept uint64
}

// newBitNFA compiles a token list; nil when it has more literal bytes than
// fit in one word.
func newBitNFA(toks []globTok) *bitNFA {
	b := &bitNFA{masks: []uint64{0}}
	pos := 0
	for _, t := range toks {
		switch t.star {
		case 1:
			b.star |= 1 << pos
		case 2:
			b.dstar |= 1 << pos
		default:
			for i := 0; i < len(t.lit); i++ {
				if pos >= 63 {
					return nil
				}
				c := t.lit[i]
				if b.class[c] == 0 {
					b.masks = append(b.masks, 0)
					b.class[c] = uint8(len(b.masks) - 1)
				}
				b.masks[b.class[c]] |= 1 << pos
				pos++
			}
		}
	}
	b.accept = 1 << pos
	return b
}

func (b *bitNFA) match(s string) bool {
	d := uint64(1)
	for i := 0; i < len(s); i++ {
		c := s[i]
		stay := b.dstar
		if c != '/' {
			stay |= b.star
		}
		d = d&stay | (d&b.masks[b.class[c]])<<1
		if d == 0 {
			return false
		}
	}
	return d&b.accept != 0
}

// dirKey is the literal directory part of the glob's prefix (up to and
// including its last '/'), or "" when the prefix holds no '/'.
func (g *pathGlob) dirKey() string {
	if i := strings.LastIndexByte(g.prefix, '/'); i >= 0 {
		return g.prefix[:i+1]
	}
	return ""
}

// baseKey is the final path segment every match must have (the suffix after
// its last '/'), or "" when the suffix holds no '/'.
func (g *pathGlob) baseKey() string {
	if i := strings.LastIndexByte(g.suffix, '/'); i >= 0 {
		return g.suffix[i+1:]
	}
	return ""
}

// extKey is the extension every match must end with: the suffix from its
// last '.', when the suffix holds a '.' and no '/'. A path ending in such a
// suffix has exactly that text after its own last '.'.
func (g *pathGlob) extKey() string {
	if strings.IndexByte(g.suffix, '/') >= 0 {
		return ""
	}
	if i := strings.LastIndexByte(g.suffix, '.'); i >= 0 {
		return g.suffix[i:]
	}
	return ""
}

// pathBase and pathExt give a normalised path's keys for the lookups above.
func pathBase(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

func pathExt(p string) string {
	base := pathBase(p)
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		return base[i:]
	}
	return ""
}
