package engine

import (
	"math"
	"strings"
)

// The index files every enabled rule that can ever match under one key of
// its most selective positive (not negated) criterion, so a decision touches
// only the rules whose key the observation has. Buckets hold rule ordinals in
// evaluation order; Decide merges the candidate buckets and tests rules in
// ascending order, so the first match it finds is the first match of the
// whole ordered rule set.
//
// Key choice, most selective first: hash, thumbprint, signer (a signer group
// files each entry under its thumbprint, or its CN when it has none), tool,
// user, an exact path, a path's literal directory prefix of two or more
// levels, the final path segment a glob requires, the extension a glob
// requires, an AD group, the risk tier, a shorter directory prefix. Rules
// with none of these (only negated criteria, only a command line, a parent
// image) and rules that fail safe when reached sit in the "always" bucket.
type ruleIndex struct {
	hash, thumb, signer, tool, user map[string][]int32
	pathExact, pathDir, pathBase    map[string][]int32
	pathExt, adGroup                map[string][]int32
	risk                            [5][]int32
	always                          []int32
}

func addTo(m map[string][]int32, k string, ord int32) {
	l := m[k]
	if n := len(l); n > 0 && l[n-1] == ord {
		return
	}
	m[k] = append(l, ord)
}

func buildIndex(rules []compiledRule) ruleIndex {
	ix := ruleIndex{
		hash: map[string][]int32{}, thumb: map[string][]int32{}, signer: map[string][]int32{},
		tool: map[string][]int32{}, user: map[string][]int32{}, pathExact: map[string][]int32{},
		pathDir: map[string][]int32{}, pathBase: map[string][]int32{}, pathExt: map[string][]int32{},
		adGroup: map[string][]int32{},
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
		case !ix.file(r):
			ix.always = append(ix.always, r.ord)
		}
	}
	return ix
}

// cannotMatch reports a rule no observation can satisfy: a positive
// signer-group criterion whose group resolves to nothing, or a positive
// thumbprint criterion that is not 64 hex.
func (r *compiledRule) cannotMatch() bool {
	for i := range r.crits {
		c := &r.crits[i]
		if c.kind == cSignerGroup && !c.found {
			return true
		}
		if c.kind == cThumbprint && !c.negate && !c.valid {
			return true
		}
		if c.kind == cTimeWindow && !c.win.valid {
			return true
		}
	}
	return false
}

// file puts the rule under its best key; false when it has no indexable
// criterion.
func (ix *ruleIndex) file(r *compiledRule) bool {
	var best *criterion
	bestRank := math.MaxInt
	for i := range r.crits {
		c := &r.crits[i]
		if c.negate {
			continue
		}
		if rank := indexRank(c); rank < bestRank {
			best, bestRank = c, rank
		}
	}
	if best == nil || bestRank == math.MaxInt {
		return false
	}
	switch best.kind {
	case cHash:
		addTo(ix.hash, foldKey(best.value), r.ord)
	case cThumbprint:
		addTo(ix.thumb, best.lower, r.ord)
	case cSigner:
		addTo(ix.signer, foldKey(best.value), r.ord)
	case cSignerGroup:
		for _, e := range best.ents {
			if e.thumbprint != "" {
				addTo(ix.thumb, e.thumbprint, r.ord)
			} else {
				addTo(ix.signer, foldKey(e.cn), r.ord)
			}
		}
	case cToolName:
		addTo(ix.tool, foldKey(best.value), r.ord)
	case cUser:
		addTo(ix.user, foldKey(best.value), r.ord)
	case cAdGroup:
		addTo(ix.adGroup, foldKey(best.value), r.ord)
	case cRiskTier:
		if best.risk < 0 || best.risk > 4 {
			return true // out of range: never equals an observed tier
		}
		ix.risk[best.risk] = append(ix.risk[best.risk], r.ord)
	case cPathGlob:
		g := best.glob
		switch {
		case g.literal:
			addTo(ix.pathExact, g.norm, r.ord)
		case strings.Count(g.dirKey(), "/") >= 2:
			addTo(ix.pathDir, g.dirKey(), r.ord)
		case g.baseKey() != "":
			addTo(ix.pathBase, g.baseKey(), r.ord)
		case g.extKey() != "":
			addTo(ix.pathExt, g.extKey(), r.ord)
		default:
			addTo(ix.pathDir, g.dirKey(), r.ord)
		}
	default:
		return false
	}
	return true
}

// indexRank orders a positive criterion's usefulness as an index key; MaxInt
// means it cannot serve as one.
func indexRank(c *criterion) int {
	switch c.kind {
	case cHash:
		return 0
	case cThumbprint:
		return 1
	case cSigner:
		return 2
	case cSignerGroup:
		return 3
	case cToolName:
		return 4
	case cUser:
		return 5
	case cPathGlob:
		g := c.glob
		switch {
		case g.literal:
			return 6
		case strings.Count(g.dirKey(), "/") >= 2:
			return 7
		case g.baseKey() != "":
			return 8
		case g.extKey() != "":
			return 9
		case g.dirKey() != "":
			return 12
		}
	case cAdGroup:
		return 10
	case cRiskTier:
		return 11
	}
	return math.MaxInt
}

// maxInlineLists bounds the candidate buckets gathered without allocating.
const maxInlineLists = 48

// cursorSet gathers the candidate buckets of one observation.
type cursorSet struct {
	inline [maxInlineLists][]int32
	lists  [][]int32
}

func (cs *cursorSet) add(l []int32) {
	if len(l) > 0 {
		cs.lists = append(cs.lists, l)
	}
}

func (cs *cursorSet) lookup(m map[string][]int32, k string) {
	if k != "" {
		if l, ok := m[k]; ok {
			cs.lists = append(cs.lists, l)
		}
	}
}

// gather collects the buckets the candidate's keys select.
func (ix *ruleIndex) gather(cs *cursorSet, c *candidate) {
	cs.lists = cs.inline[:0]
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
	for _, g := range c.raw.AdGroups {
		if len(ix.adGroup) == 0 {
			break
		}
		if needsFold(g) {
			g = foldKey(g) // rare: group names arrive as the directory spells them
		}
		cs.lookup(ix.adGroup, g)
	}
	if p := c.path; p != "" {
		cs.lookup(ix.pathExact, p)
		if len(ix.pathDir) > 0 {
			for i := 0; i < len(p); i++ {
				if p[i] == '/' {
					cs.lookup(ix.pathDir, p[:i+1])
				}
			}
		}
		cs.lookup(ix.pathBase, pathBase(p))
		cs.lookup(ix.pathExt, pathExt(p))
	}
}

// next pops the smallest ordinal across the buckets (and its duplicates);
// -1 when all are exhausted.
func (cs *cursorSet) next() int32 {
	best := int32(-1)
	for _, l := range cs.lists {
		if len(l) > 0 && (best < 0 || l[0] < best) {
			best = l[0]
		}
	}
	if best < 0 {
		return -1
	}
	for i, l := range cs.lists {
		if len(l) > 0 && l[0] == best {
			cs.lists[i] = l[1:]
		}
	}
	return best
}
