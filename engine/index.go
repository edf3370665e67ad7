package engine

import (
	"strings"
)

// The index files every enabled rule that can ever match under one key of
// one of its positive (not negated) criteria, so a decision touches only the
// rules whose key the observation has. Buckets hold rule ordinals in
// evaluation order; Decide merges the candidate buckets and tests rules in
// ascending order, so the first match it finds is the first match of the
// whole ordered rule set.
//
// Key choice: an equality criterion if the rule has one (hash, thumbprint,
// signer — a signer group files each entry under its thumbprint, or its CN
// when it has none — tool, user); else the rarest of its path glob's keys
// (the exact path, the literal directory prefix, a literal inner segment, the
// final segment or the extension every match must have); else an AD group;
// else the risk tier. Rules with none of these (only negated criteria, only a
// command line or parent image) and rules that fail safe when reached sit in
// the "always" bucket.
type ruleIndex struct {
	hash, thumb, signer, tool, user map[string][]int32
	adGroup                         map[string][]int32
	pathExact, pathDir, pathSeg     map[string][]int32
	pathBase, pathExt               map[string][]int32
	dirLens, segLens                lengthSet // lengths of the keys in pathDir / pathSeg
	risk                            [5][]int32
	always                          []int32
}

// lengthSet records which key lengths a map holds, so a lookup for a path
// prefix or segment of another length is skipped without hashing.
type lengthSet struct {
	bits [maxPathCriterionLength/64 + 1]uint64
}

func (l *lengthSet) add(n int) {
	if n < len(l.bits)*64 {
		l.bits[n/64] |= 1 << (n % 64)
	}
}

// has is true for every length beyond the set's range: such keys (long
// non-ASCII text) are rare, and looking them up is always correct.
func (l *lengthSet) has(n int) bool { return n >= len(l.bits)*64 || l.bits[n/64]&(1<<(n%64)) != 0 }

func addTo(m map[string][]int32, k string, ord int32) {
	l := m[k]
	if n := len(l); n > 0 && l[n-1] == ord {
		return
	}
	m[k] = append(l, ord)
}

// pathKey is one way a path glob can be looked up.
type pathKey struct {
	kind uint8 // pkExact, pkDir, pkSeg, pkBase, pkExt
	key  string
}

const (
	pkExact = iota
	pkDir
	pkSeg
	pkBase
	pkExt
)

// pathKeys lists every key a glob can be filed under: each is a string
// every matching (normalised) path is certain to contain in that role.
func (g *pathGlob) pathKeys() []pathKey {
	if g.literal {
		return []pathKey{{pkExact, g.norm}}
	}
	var ks []pathKey
	if d := g.dirKey(); d != "" {
		ks = append(ks, pathKey{pkDir, d})
	}
	// A literal segment between two literal '/' appears as a whole inner
	// segment of every matching path.
	for _, lit := range strings.Split(g.norm, "*") {
		parts := strings.Split(lit, "/")
		for i := 1; i+1 < len(parts); i++ {
			if parts[i] != "" {
				ks = append(ks, pathKey{pkSeg, parts[i]})
			}
		}
	}
	if b := g.baseKey(); b != "" {
		ks = append(ks, pathKey{pkBase, b})
	}
	if e := g.extKey(); e != "" {
		ks = append(ks, pathKey{pkExt, e})
	}
	return ks
}

func buildIndex(rules []compiledRule) ruleIndex {
	ix := ruleIndex{
		hash: map[string][]int32{}, thumb: map[string][]int32{}, signer: map[string][]int32{},
		tool: map[string][]int32{}, user: map[string][]int32{}, adGroup: map[string][]int32{},
		pathExact: map[string][]int32{}, pathDir: map[string][]int32{}, pathSeg: map[string][]int32{},
		pathBase: map[string][]int32{}, pathExt: map[string][]int32{},
	}
	// How many globs could use each path key: a rule takes its rarest.
	freq := map[pathKey]int{}
	for i := range rules {
		if g := indexGlob(&rules[i]); g != nil {
			for _, k := range g.pathKeys() {
				freq[k]++
			}
		}
	}
	for i := range rules {
		r := &rules[i]
		if !r.rule.Enabled {
			continue // never participates
		}
		switch {
		case r.poison != "":
			ix.always = append(ix.always, r.ord) // must be reached to fail safe
		case r.never || r.cannotMatch():
			// filed nowhere: it never matches
		case !ix.file(r, freq):
			ix.always = append(ix.always, r.ord)
		}
	}
	return ix
}

// cannotMatch reports a rule no observation can satisfy: a signer-group
// criterion whose group resolves to nothing, a positive thumbprint criterion
// that is not 64 hex, or a malformed time window.
func (r *compiledRule) cannotMatch() bool {
	for i := range r.crits {
		c := &r.crits[i]
		switch {
		case c.kind == cSignerGroup && !c.found,
			c.kind == cThumbprint && !c.negate && !c.valid,
			c.kind == cTimeWindow && !c.win.valid:
			return true
		}
	}
	return false
}

// firstPositive returns the rule's first positive criterion of a kind.
func (r *compiledRule) firstPositive(k critKind) *criterion {
	for i := range r.crits {
		if c := &r.crits[i]; c.kind == k && !c.negate {
			return c
		}
	}
	return nil
}

// equalityKinds are the criteria a rule is filed by before any path key,
// most selective first.
var equalityKinds = [...]critKind{cHash, cThumbprint, cSigner, cSignerGroup, cToolName, cUser}

// equalityKey is the rule's first positive equality criterion, in
// equalityKinds order, or nil.
func (r *compiledRule) equalityKey() *criterion {
	for _, k := range equalityKinds {
		if c := r.firstPositive(k); c != nil {
			return c
		}
	}
	return nil
}

// indexGlob is the positive path glob a rule would be filed under, if it
// has no equality criterion to file it by.
func indexGlob(r *compiledRule) *pathGlob {
	if r.equalityKey() != nil {
		return nil
	}
	if c := r.firstPositive(cPathGlob); c != nil {
		return c.glob
	}
	return nil
}

// file puts the rule under its best key; false when it has no indexable
// criterion.
func (ix *ruleIndex) file(r *compiledRule, freq map[pathKey]int) bool {
	if c := r.equalityKey(); c != nil {
		switch c.kind {
		case cHash:
			addTo(ix.hash, foldKey(c.value), r.ord)
		case cThumbprint:
			addTo(ix.thumb, c.lower, r.ord)
		case cSigner:
			addTo(ix.signer, foldKey(c.value), r.ord)
		case cSignerGroup:
			for _, e := range c.ents {
				if e.thumbprint != "" {
					addTo(ix.thumb, e.thumbprint, r.ord)
				} else {
					addTo(ix.signer, foldKey(e.cn), r.ord)
				}
			}
		case cToolName:
			addTo(ix.tool, foldKey(c.value), r.ord)
		case cUser:
			addTo(ix.user, foldKey(c.value), r.ord)
		}
		return true
	}
	if c := r.firstPositive(cPathGlob); c != nil {
		if ks := c.glob.pathKeys(); len(ks) > 0 {
			best := ks[0]
			for _, k := range ks[1:] {
				if freq[k] < freq[best] {
					best = k
				}
			}
			switch best.kind {
			case pkExact:
				addTo(ix.pathExact, best.key, r.ord)
			case pkDir:
				addTo(ix.pathDir, best.key, r.ord)
				ix.dirLens.add(len(best.key))
			case pkSeg:
				addTo(ix.pathSeg, best.key, r.ord)
				ix.segLens.add(len(best.key))
			case pkBase:
				addTo(ix.pathBase, best.key, r.ord)
			case pkExt:
				addTo(ix.pathExt, best.key, r.ord)
			}
			return true
		}
	}
	if c := r.firstPositive(cAdGroup); c != nil {
		addTo(ix.adGroup, foldKey(c.value), r.ord)
		return true
	}
	if c := r.firstPositive(cRiskTier); c != nil && c.risk >= 0 && c.risk <= 4 {
		ix.risk[c.risk] = append(ix.risk[c.risk], r.ord)
		return true
	}
	return false
}

// maxInlineLists bounds the candidate buckets gathered without allocating.
const maxInlineLists = 32

// cursorSet gathers the candidate buckets of one observation. It lives on
// the caller's stack; only an observation selecting more than
// maxInlineLists buckets spills to the heap.
type cursorSet struct {
	inline [maxInlineLists][]int32
	n      int
	spill  [][]int32
}

func (cs *cursorSet) add(l []int32) {
	if len(l) == 0 {
		return
	}
	if cs.n < maxInlineLists {
		cs.inline[cs.n] = l
		cs.n++
		return
	}
	cs.spill = append(cs.spill, l)
}

func (cs *cursorSet) lookup(m map[string][]int32, k string) {
	if len(m) > 0 && k != "" {
		cs.add(m[k])
	}
}

// gather collects the buckets the candidate's keys select.
func (ix *ruleIndex) gather(cs *cursorSet, c *candidate) {
	cs.add(ix.always)
	cs.lookup(ix.hash, c.hashKey)
	if c.thumbValid {
		cs.lookup(ix.thumb, c.thumb)
	}
	cs.lookup(ix.signer, c.signerKey)
	cs.lookup(ix.tool, c.toolKey)
	cs.lookup(ix.user, c.userKey)
	if r := c.raw.RiskTier; r != nil && *r >= 0 && *r <= 4 {
		cs.add(ix.risk[*r])
	}
	if len(ix.adGroup) > 0 {
		c.eachGroupKey(func(k string) { cs.lookup(ix.adGroup, k) })
	}
	p := c.path
	if p == "" {
		return
	}
	cs.lookup(ix.pathExact, p)
	if len(ix.pathDir) > 0 || len(ix.pathSeg) > 0 {
		prev := -1 // index of the previous '/'
		for i := 0; i < len(p); i++ {
			if p[i] != '/' {
				continue
			}
			if ix.dirLens.has(i + 1) {
				cs.lookup(ix.pathDir, p[:i+1])
			}
			if prev >= 0 && ix.segLens.has(i-prev-1) {
				cs.lookup(ix.pathSeg, p[prev+1:i])
			}
			prev = i
		}
	}
	cs.lookup(ix.pathBase, pathBase(p))
	cs.lookup(ix.pathExt, pathExt(p))
}

// next pops the smallest ordinal across the buckets (and its duplicates);
// -1 when all are exhausted.
func (cs *cursorSet) next() int32 {
	best := int32(-1)
	lists := cs.inline[:cs.n]
	for _, l := range lists {
		if len(l) > 0 && (best < 0 || l[0] < best) {
			best = l[0]
		}
	}
	for _, l := range cs.spill {
		if len(l) > 0 && (best < 0 || l[0] < best) {
			best = l[0]
		}
	}
	if best < 0 {
		return -1
	}
	for i, l := range lists {
		if len(l) > 0 && l[0] == best {
			lists[i] = l[1:]
		}
	}
	for i, l := range cs.spill {
		if len(l) > 0 && l[0] == best {
			cs.spill[i] = l[1:]
		}
	}
	return best
}
