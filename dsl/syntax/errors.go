package syntax

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one syntax problem: where, what (expected … found …) and, when
// the parser can tell, how to fix it.
type Error struct {
	Pos  Pos
	Msg  string
	Hint string
}

func (e *Error) Error() string {
	s := e.Pos.String() + ": " + e.Msg
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// ErrorList collects every error of one parse, in position order.
type ErrorList []*Error

// Add records an error.
func (l *ErrorList) Add(p Pos, hint, format string, args ...any) {
	*l = append(*l, &Error{Pos: p, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// Sort orders the errors by position and keeps one error per position: the
// first one reported there. The lexer runs before the parser, so for an
// illegal character such as `&` the lexer's error (with its "write `and`"
// hint) is kept and the parser's follow-on "unexpected `&`" is dropped.
func (l *ErrorList) Sort() {
	sort.SliceStable(*l, func(i, j int) bool { return (*l)[i].Pos.Offset < (*l)[j].Pos.Offset })
	out := (*l)[:0]
	for i, e := range *l {
		if i > 0 && e.Pos == out[len(out)-1].Pos {
			continue
		}
		out = append(out, e)
	}
	*l = out
}

func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Err returns nil for an empty list and the list otherwise.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Suggest returns the candidate closest to word (ignoring case) when it is
// close enough to be a plausible typo, else "".
func Suggest(word string, candidates []string) string { return suggest(word, candidates) }

// DidYouMean renders the suggestion for word, or lists the choices.
func DidYouMean(word string, candidates []string) string { return didYouMean(word, candidates) }

func suggest(word string, candidates []string) string {
	// Short words allow one edit, others two, long ones a third of their
	// length (default_unmatched_verdict → default_unmatched).
	limit := min(8, max(2, len(word)/3))
	if len(word) <= 3 {
		limit = 1
	}
	best, bestD := "", 0
	lower := strings.ToLower(word)
	for _, c := range candidates {
		// The distance is at least the difference in length: skip
		// hopeless candidates, so a huge word costs nothing instead of a
		// len(word)×len(c) table.
		if len(lower) > len(c)+limit || len(c) > len(lower)+limit {
			continue
		}
		d := editDistance(lower, strings.ToLower(c))
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > limit {
		return ""
	}
	return best
}

// didYouMean renders the suggestion for word, or a list of the choices.
func didYouMean(word string, candidates []string) string {
	if s := suggest(word, candidates); s != "" {
		return "did you mean `" + s + "`?"
	}
	return "expected one of: " + strings.Join(candidates, ", ")
}

// editDistance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and adjacent transpositions ("signre") each
// cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
