package engine

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The engine compares CNs, users, tools, hashes and AD groups with
// strings.EqualFold semantics (pam-semantics §2, decision in §14.1). An index
// needs a key with the same equivalence: foldKey maps every rune to one
// representative of its simple case-folding orbit, so that
// foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b).

// foldRune returns the canonical member of r's folding orbit: the smallest
// rune in the orbit, except that ASCII letters fold to lower case (so the
// common lowercase ASCII string is its own key and costs nothing).
func foldRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < m {
			m = f
		}
	}
	if 'A' <= m && m <= 'Z' {
		m += 'a' - 'A'
	}
	return m
}

// needsFold reports whether s is not already its own fold key.
func needsFold(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return true
		}
	}
	return false
}

// foldKey returns the EqualFold-canonical form of s.
func foldKey(s string) string {
	if !needsFold(s) {
		return s
	}
	return string(appendFoldKey(make([]byte, 0, len(s)), s))
}

// appendFoldKey appends the EqualFold-canonical form of s to dst.
func appendFoldKey(dst []byte, s string) []byte {
	if !needsFold(s) {
		return append(dst, s...)
	}
	for _, r := range s { // invalid bytes arrive as RuneError, as in EqualFold
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			dst = append(dst, byte(r))
			continue
		}
		dst = utf8.AppendRune(dst, foldRune(r))
	}
	return dst
}

// normPath is the path-glob normalisation of pam-semantics §2.1 for a glob
// or a path: every backslash becomes a slash, then the text is lowercased.
func normPath(s string) string {
	return string(appendNormPath(nil, s))
}

// appendNormPath appends normPath(s) to dst.
func appendNormPath(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return append(dst, strings.ToLower(strings.ReplaceAll(s, `\`, "/"))...)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			c = '/'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// containsFold reports whether needle occurs in haystack ignoring case, the
// way the command-line criterion compares (both sides lowercased).
func containsFold(haystack, needle string) bool {
	return strings.Contains(strings.ToLower(haystack), strings.ToLower(needle))
}

// appendLower appends strings.ToLower(s) to dst, without an intermediate
// string for ASCII text.
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return append(dst, strings.ToLower(s)...)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
