package engine

import (
	"strings"

	"github.com/gobwas/glob"
)

// Path globs (pam-semantics §2.1). After normPath, a run of one '*' matches
// any characters except '/', a run of two or more matches any characters
// including '/', and every other character — '?', '.', '[', ']' included —
// is a literal. Matches are anchored and stars may match nothing.
//
// Two implementations live here on purpose. globMatchDP is the reference: an
// O(|glob|·|path|) dynamic programme used by the CEL functions. compileGlob
// builds a gobwas/glob matcher (with '/' as the separator and every literal
// quoted) for the indexed hot path. The differential tests hold them equal.

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
// are normalised here). It never recurses and never backtracks.
func globMatchDP(globText, path string) bool {
	g, p := normPath(globText), normPath(path)
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
	m       *glob.Pattern
}

func compileGlob(raw string) (*pathGlob, error) {
	norm := normPath(raw)
	g := &pathGlob{norm: norm}
	toks := tokenizeGlob(norm)
	var b strings.Builder
	for _, t := range toks {
		switch t.star {
		case 0:
			b.WriteString(glob.QuoteMeta(t.lit))
			g.minLen += len(t.lit)
		case 1:
			b.WriteString("*")
		default:
			b.WriteString("**")
		}
	}
	if len(toks) == 0 || (len(toks) == 1 && toks[0].star == 0) {
		g.literal = true
		return g, nil
	}
	if toks[0].star == 0 {
		g.prefix = toks[0].lit
	}
	if last := toks[len(toks)-1]; last.star == 0 {
		g.suffix = last.lit
	}
	m, err := glob.Compile(b.String(), '/')
	if err != nil {
		return nil, err
	}
	g.m = m
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
	return g.m.Match(path)
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
