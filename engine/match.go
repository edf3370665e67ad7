package engine

import (
	"crypto/subtle"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/traits"
)

// candidate is an observation prepared once per decision: projected onto
// the fields its flow carries, with the normalised forms the native matchers
// and the index need. All derived strings share one buffer, so preparing a
// candidate costs a single allocation.
type candidate struct {
	raw  Observation // projected: fields foreign to the flow are cleared
	flow FlowType
	at   time.Time
	site string // lowercase

	path, parent string // normPath forms ("" when absent)
	cmdLower     string
	hashKey      string // foldKey forms, for index lookups
	signerKey    string
	userKey      string
	toolKey      string
	thumb        string // lowercase
	thumbValid   bool
	groupKeys    string // foldKey of each AD group, each followed by NUL
	groupsSlow   bool   // a group name holds NUL: groupKeys is not used

	act *celActivation // built on first use by a cel condition
}

// absentKeys lists which of the given observation fields the candidate
// lacks.
func (c *candidate) absentKeys(keys []string) []string {
	var out []string
	obs := c.activation().obs.(traits.Mapper)
	for _, k := range keys {
		if _, found := obs.Find(types.String(k)); !found {
			out = append(out, k)
		}
	}
	return out
}

// activation returns the candidate's CEL view, building it once.
func (c *candidate) activation() *celActivation {
	if c.act == nil {
		c.act = newActivation(c)
	}
	return c.act
}

// project clears the observation fields the flow never carries.
func project(flow FlowType, o Observation) Observation {
	f := flowFields[flow]
	if f&fPath == 0 {
		o.TargetExecutablePath = ""
	}
	if f&fHash == 0 {
		o.TargetExecutableHash = ""
	}
	if f&fSigner == 0 {
		o.TargetExecutableSigner = ""
	}
	if f&fThumbprint == 0 {
		o.TargetExecutableSignerThumbprint = ""
	}
	if f&fParent == 0 {
		o.ParentImage = ""
	}
	if f&fCmdline == 0 {
		o.CommandLine = ""
	}
	if f&fGroups == 0 {
		o.AdGroups = nil
	}
	if f&fTool == 0 {
		o.ToolName = ""
	}
	if f&fRisk == 0 {
		o.RiskTier = nil
	}
	if f&fDuration == 0 {
		o.RequestedDurationMinutes = nil
	}
	return o
}

// needs says which derived forms a rule set's native matchers use, so a
// decision prepares only those.
type needs struct{ parent, cmdline, groups bool }

func prepare(c *candidate, flow FlowType, obs *Observation, at time.Time, nd needs) {
	c.raw = project(flow, *obs)
	c.flow, c.at = flow, at
	o := &c.raw
	n := len(o.SiteID) + len(o.TargetExecutablePath) + len(o.TargetExecutableHash) + len(o.TargetExecutableSigner) +
		len(o.SubjectUsername) + len(o.ToolName) + len(o.TargetExecutableSignerThumbprint) + 8
	if nd.parent {
		n += len(o.ParentImage)
	}
	if nd.cmdline {
		n += len(o.CommandLine)
	}
	if nd.groups {
		for _, g := range o.AdGroups {
			n += len(g) + 1
		}
	}
	// Each derived form is appended to one buffer and its end marked; views
	// are cut once the buffer is complete, and it is never written again.
	buf := make([]byte, 0, n)
	views := [...]*string{&c.site, &c.path, &c.parent, &c.cmdLower, &c.hashKey, &c.signerKey, &c.userKey, &c.toolKey, &c.thumb, &c.groupKeys}
	var ends [len(views)]int
	k := 0
	mark := func() { ends[k] = len(buf); k++ }
	buf = appendFoldKey(buf, o.SiteID)
	mark()
	buf = appendNormPath(buf, o.TargetExecutablePath)
	mark()
	if nd.parent {
		buf = appendNormPath(buf, o.ParentImage)
	}
	mark()
	if nd.cmdline {
		buf = appendLower(buf, o.CommandLine)
	}
	mark()
	for _, s := range []string{o.TargetExecutableHash, o.TargetExecutableSigner, o.SubjectUsername, o.ToolName} {
		buf = appendFoldKey(buf, s)
		mark()
	}
	buf = appendLower(buf, o.TargetExecutableSignerThumbprint)
	mark()
	if nd.groups {
		for _, g := range o.AdGroups {
			c.groupsSlow = c.groupsSlow || strings.IndexByte(g, 0) >= 0
			buf = append(appendFoldKey(buf, g), 0)
		}
	}
	mark()
	all := unsafe.String(unsafe.SliceData(buf), len(buf))
	start := 0
	for i, v := range views {
		*v, start = all[start:ends[i]], ends[i]
	}
	c.thumbValid = IsHex64(c.thumb)
}

// eachGroupKey calls f with the fold key of every observed AD group.
func (c *candidate) eachGroupKey(f func(string)) {
	if c.groupsSlow { // a group name holding NUL: fold one by one
		for _, g := range c.raw.AdGroups {
			f(foldKey(g))
		}
		return
	}
	for ks := c.groupKeys; ks != ""; {
		i := strings.IndexByte(ks, 0)
		f(ks[:i])
		ks = ks[i+1:]
	}
}

// thumbEq compares two lowercase thumbprints already known to be 64 hex.
func thumbEq(a, b string) bool {
	return subtle.ConstantTimeCompare(unsafe.Slice(unsafe.StringData(a), len(a)), unsafe.Slice(unsafe.StringData(b), len(b))) == 1
}

// test evaluates the criterion natively: present says whether the
// candidate has the datum at all; ok is the comparison before negation.
func (cr *criterion) test(c *candidate) (present, ok bool) {
	o := &c.raw
	switch cr.kind {
	case cHash:
		return o.TargetExecutableHash != "", strings.EqualFold(o.TargetExecutableHash, cr.value)
	case cThumbprint:
		return c.thumb != "", cr.valid && c.thumbValid && thumbEq(c.thumb, cr.lower)
	case cSigner:
		return o.TargetExecutableSigner != "", strings.EqualFold(o.TargetExecutableSigner, cr.value)
	case cSignerGroup:
		if !cr.found || (o.TargetExecutableSigner == "" && c.thumb == "") {
			return false, false
		}
		for i := range cr.ents {
			if entryMatches(&cr.ents[i], c) {
				return true, true
			}
		}
		return true, false
	case cToolName:
		return o.ToolName != "", strings.EqualFold(o.ToolName, cr.value)
	case cRiskTier:
		return o.RiskTier != nil, o.RiskTier != nil && *o.RiskTier == cr.risk
	case cUser:
		return o.SubjectUsername != "", strings.EqualFold(o.SubjectUsername, cr.value)
	case cAdGroup:
		if o.AdGroups == nil {
			return false, false
		}
		for _, g := range o.AdGroups {
			if strings.EqualFold(g, cr.value) {
				return true, true
			}
		}
		return true, false
	case cPathGlob:
		return c.path != "", cr.glob.match(c.path)
	case cParentImage:
		return c.parent != "", cr.glob.match(c.parent)
	case cCommandLine:
		return o.CommandLine != "", strings.Contains(c.cmdLower, cr.lower)
	case cTimeWindow:
		return true, cr.win.active(c.at)
	}
	return false, false
}

// holds applies presence and negation: absent data never satisfies a
// criterion, negated or not.
func (cr *criterion) holds(c *candidate) bool {
	present, ok := cr.test(c)
	return present && ok != cr.negate
}

func entryMatches(e *matchEntry, c *candidate) bool {
	if e.thumbprint != "" && !(c.thumbValid && thumbEq(c.thumb, e.thumbprint)) {
		return false
	}
	if e.cn != "" && (c.raw.TargetExecutableSigner == "" || !strings.EqualFold(c.raw.TargetExecutableSigner, e.cn)) {
		return false
	}
	return e.thumbprint != "" || e.cn != ""
}

// participates reports whether the rule takes part in deciding the
// candidate: enabled, org-wide or scoped to the candidate's site, and for
// tool actions only rules with a tool criterion (pam-semantics §4).
func (r *compiledRule) participates(c *candidate) bool {
	if !r.rule.Enabled {
		return false
	}
	if r.scoped && (c.site == "" || r.site != c.site) {
		return false
	}
	if c.flow == FlowToolAct && !r.hasTool {
		return false
	}
	return true
}

// matches evaluates a participating rule natively.
func (r *compiledRule) matches(c *candidate) (bool, error) {
	if r.poison != "" {
		return false, errPoisoned(r)
	}
	if r.never {
		return false, nil
	}
	for i := range r.crits {
		if !r.crits[i].holds(c) {
			return false, nil
		}
	}
	if r.cond != nil {
		ok, err := r.cond.eval(c)
		if err != nil {
			return false, fmt.Errorf("rule %s: condition: %w", quoteName(r), err)
		}
		return ok, nil
	}
	return true, nil
}

// matchesCEL evaluates a participating rule through its CEL program.
func (r *compiledRule) matchesCEL(act *celActivation) (bool, error) {
	if r.poison != "" {
		return false, errPoisoned(r)
	}
	prog, err := r.prog.program()
	if err != nil {
		return false, fmt.Errorf("rule %s: %w", quoteName(r), err)
	}
	ok, err := evalBool(prog, act)
	if err != nil {
		return false, fmt.Errorf("rule %s: CEL evaluation: %w", quoteName(r), err)
	}
	return ok, nil
}

type poisonError struct{ r *compiledRule }

func (e poisonError) Error() string {
	return "rule " + quoteName(e.r) + " is invalid and cannot be evaluated safely: " + e.r.poison
}

func errPoisoned(r *compiledRule) error { return poisonError{r} }

func quoteName(r *compiledRule) string {
	if r.rule.ID != "" {
		return `"` + r.rule.Name + `" (` + r.rule.ID + `)`
	}
	return `"` + r.rule.Name + `"`
}
