package engine

import (
	"fmt"
	"strings"
)

// matchField ties one criterion kind to its rule field and negate key, so
// the API fields and the condition language build criteria through one
// function (newCriterion).
type matchField struct {
	kind critKind
	neg  NegateKey
	json string
	v    **string // string criteria
	risk **int    // the risk tier
}

// matchFields lists a rule's criterion fields in the order compiled rules
// check them.
func matchFields(r *Rule) []matchField {
	return []matchField{
		{kind: cHash, neg: NegHash, json: "matchHash", v: &r.MatchHash},
		{kind: cThumbprint, neg: NegSignerThumbprint, json: "matchSignerThumbprint", v: &r.MatchSignerThumbprint},
		{kind: cSigner, neg: NegSigner, json: "matchSigner", v: &r.MatchSigner},
		{kind: cSignerGroup, neg: NegSignerGroup, json: "matchSignerGroupId", v: &r.MatchSignerGroupID},
		{kind: cToolName, neg: NegToolName, json: "matchToolName", v: &r.MatchToolName},
		{kind: cRiskTier, neg: NegRiskTier, json: "matchRiskTier", risk: &r.MatchRiskTier},
		{kind: cUser, neg: NegUser, json: "matchUser", v: &r.MatchUser},
		{kind: cAdGroup, neg: NegAdGroup, json: "matchAdGroup", v: &r.MatchAdGroup},
		{kind: cPathGlob, neg: NegPathGlob, json: "matchPathGlob", v: &r.MatchPathGlob},
		{kind: cParentImage, neg: NegParentImage, json: "matchParentImage", v: &r.MatchParentImage},
		{kind: cCommandLine, neg: NegCommandLine, json: "matchCommandLine", v: &r.MatchCommandLine},
	}
}

// groupCtx is what a signer-group criterion resolves against.
type groupCtx struct {
	groups map[string]groupInfo // by lowercase id
	byName map[string][]string  // foldKey(name) → lowercase ids
	orgID  string
}

// resolve finds a group by id, or (for conditions) by name, within the
// rule's organisation.
func (g groupCtx) resolve(ref string, byName bool) (groupInfo, bool) {
	sameOrg := func(gi groupInfo) bool {
		return gi.orgID == "" || g.orgID == "" || strings.EqualFold(gi.orgID, g.orgID)
	}
	if gi, ok := g.groups[strings.ToLower(ref)]; ok && sameOrg(gi) {
		return gi, true
	}
	if byName {
		// A name must pick exactly one group of the org; two groups of one
		// name (the API does not forbid it) make the reference ambiguous,
		// and it fails closed like a missing group.
		var found []groupInfo
		for _, id := range g.byName[foldKey(ref)] {
			if gi := g.groups[id]; sameOrg(gi) {
				found = append(found, gi)
			}
		}
		if len(found) == 1 {
			return found[0], true
		}
	}
	return groupInfo{}, false
}

// criterionValueProblem checks one criterion value the way the API checks
// its match* field ("" when fine). Signer-group references are ids in the
// API fields; conditions may name the group instead, so only their length
// is checked here.
func criterionValueProblem(kind critKind, v string, risk int) string {
	n := strLen(v)
	length := func(max int) string {
		switch {
		case n == 0:
			return errMustNotBeEmpty
		case n > max:
			return fmt.Sprintf(errTooLongFmt, max)
		}
		return ""
	}
	switch kind {
	case cHash:
		if !IsHex64(v) {
			return errMustBeHex64 + " (a SHA-256 digest)"
		}
	case cThumbprint:
		if !IsHex64(strings.TrimSpace(v)) {
			return errMustBeHex64
		}
	case cSigner, cUser, cAdGroup, cSignerGroup:
		return length(maxStringCriterionLength)
	case cToolName:
		return length(maxToolNameLength)
	case cPathGlob, cParentImage, cCommandLine:
		return length(maxPathCriterionLength)
	case cRiskTier:
		if risk < 0 || risk > 4 {
			return fmt.Sprintf(errOutOfRangeFmt, 0, 4)
		}
	}
	return ""
}

// newCriterion compiles one criterion. warn reports a signer group that
// does not resolve (the criterion then never holds: fails closed).
func newCriterion(kind critKind, raw string, risk int, negate bool, g groupCtx, groupByID bool) (criterion, error, error) {
	v := validUTF8(raw)
	c := criterion{kind: kind, negate: negate, value: v}
	switch kind {
	case cHash:
		c.expr = fmt.Sprintf("eqFold(obs.%s, %s)", keyHash, celQuote(v))
	case cThumbprint:
		v = strings.ToLower(strings.TrimSpace(v))
		c.value, c.lower, c.valid = v, v, IsHex64(v)
		c.expr = fmt.Sprintf("thumbprintEq(obs.%s, %s)", keyThumbprint, celQuote(v))
	case cSigner:
		c.expr = fmt.Sprintf("eqFold(obs.%s, %s)", keySigner, celQuote(v))
	case cSignerGroup:
		gi, ok := g.resolve(v, !groupByID)
		var warn error
		if !ok {
			warn = fmt.Errorf("signer group %q does not exist in the rule's organisation: the rule's signer-group criterion never holds", v)
		}
		ents := make([]matchEntry, len(gi.entries))
		for i, e := range gi.entries {
			ents[i] = matchEntry{cn: validUTF8(e.cn), thumbprint: e.thumbprint}
		}
		c.group = v
		if gi.name != "" && gi.name != v {
			c.group = gi.name + " (" + v + ")"
		}
		c.ents, c.found = ents, len(ents) > 0
		if c.found {
			parts := make([]string, len(ents))
			for i, e := range ents {
				parts[i] = fmt.Sprintf("[%s, %s]", celQuote(e.cn), celQuote(e.thumbprint))
			}
			c.expr = fmt.Sprintf("[%s].exists(e, signerEntry(obs, e[0], e[1]))", strings.Join(parts, ", "))
		}
		return c, warn, nil
	case cToolName:
		c.expr = fmt.Sprintf("eqFold(obs.%s, %s)", keyTool, celQuote(v))
	case cRiskTier:
		c.risk = risk
		c.expr = fmt.Sprintf("obs.%s == %d", keyRisk, risk)
	case cUser:
		c.expr = fmt.Sprintf("eqFold(obs.%s, %s)", keyUser, celQuote(v))
	case cAdGroup:
		c.expr = fmt.Sprintf("obs.%s.exists(g, eqFold(g, %s))", keyGroups, celQuote(v))
	case cPathGlob, cParentImage:
		gl, err := compileGlob(v)
		if err != nil {
			return c, nil, fmt.Errorf("%s: %w", kind, err)
		}
		key := keyPath
		if kind == cParentImage {
			key = keyParent
		}
		c.glob = gl
		c.expr = fmt.Sprintf("pathGlob(obs.%s, %s)", key, celQuote(v))
	case cCommandLine:
		c.lower = strings.ToLower(v)
		c.expr = fmt.Sprintf("containsFold(obs.%s, %s)", keyCmdline, celQuote(v))
	}
	return c, nil, nil
}
