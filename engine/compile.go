package engine

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
)

// critKind enumerates the criteria in the order a rule checks them (cheap
// and selective first); explain reports the first that fails in this order.
type critKind uint8

const (
	cHash critKind = iota
	cThumbprint
	cSigner
	cSignerGroup
	cToolName
	cRiskTier
	cUser
	cAdGroup
	cPathGlob
	cParentImage
	cCommandLine
	cTimeWindow
)

var critNames = [...]string{
	cHash: "hash", cThumbprint: "signerThumbprint", cSigner: "signer", cSignerGroup: "signerGroup",
	cToolName: "toolName", cRiskTier: "riskTier", cUser: "user", cAdGroup: "adGroup",
	cPathGlob: "pathGlob", cParentImage: "parentImage", cCommandLine: "commandLine", cTimeWindow: "timeWindow",
}

func (k critKind) String() string { return critNames[k] }

// criterion is one compiled criterion of a rule: the native matcher used by
// the hot path and explain, and the CEL fragment it corresponds to.
type criterion struct {
	kind   critKind
	negate bool
	value  string // rule value (signer, hash, user, tool, AD group, command line)
	lower  string // lowercased value where the comparison lowercases (command line, thumbprint)
	valid  bool   // thumbprint: rule value is 64 hex
	group  string // signer group id as referenced
	found  bool   // signer group resolved to at least one usable entry
	ents   []matchEntry
	glob   *pathGlob
	risk   int
	win    window
	expr   string // CEL fragment
}

// compiledRule is a rule ready to evaluate.
type compiledRule struct {
	rule    Rule // normalised copy, as given
	ord     int32
	scoped  bool   // siteId set: only devices in that site
	site    string // foldKey of the site id
	grant   int    // approvalDurationMinutes, 0 when absent
	hasTool bool
	crits   []criterion
	cond    *condNode // the rule's condition, ANDed with crits; nil when none
	never   bool      // no criterion: never matches (engine guard)
	poison  string    // non-empty: the rule cannot be evaluated safely; reaching it fails safe
	celSrc  string
	prog    *lazyProgram
}

// CompileOptions tune Compile.
type CompileOptions struct {
	// Lenient loads rules that fail validation the way a store might still
	// hold them: malformed criteria keep their defined never-matching
	// semantics, and a rule whose verdict or duration cannot be honoured is
	// kept as a poisoned rule that fails safe (pending) whenever evaluation
	// reaches it. Problems are reported by RuleSet.Issues.
	Lenient bool
}

// conditionInvalid reports a validation error in a rule's condition. A
// condition's comparisons have no "absent" reading the way an empty match*
// field does (`not user == ""` would hold for everyone), so a stored rule
// with an invalid condition is poisoned: reaching it fails safe.
func conditionInvalid(err error) bool {
	var fes FieldErrors
	if errors.As(err, &fes) {
		for _, fe := range fes {
			if fe.Field == "condition" {
				return true
			}
		}
	}
	return false
}

// RuleError names a rule that failed validation or compilation.
type RuleError struct {
	Index  int    // position in the input
	RuleID string // may be empty
	Name   string
	Err    error
}

func (e *RuleError) Error() string {
	id := e.Name
	if e.RuleID != "" {
		id = fmt.Sprintf("%s (%s)", e.Name, e.RuleID)
	}
	return fmt.Sprintf("rule %d %q: %v", e.Index, id, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// RuleSet is a compiled, ordered, indexed rule set for one organisation. It
// is immutable and safe for concurrent use.
type RuleSet struct {
	rules  []compiledRule // in evaluation order
	index  ruleIndex
	needs  needs
	issues []error
}

// Compile validates and compiles rules (with the signer groups they may
// reference) into a RuleSet. Every rule becomes one type-checked CEL program
// and a native matcher; nothing about a rule is left to fail at decision
// time. Without Lenient, any invalid rule is an error listing every problem.
func Compile(rules []Rule, groups []SignerGroup, opts CompileOptions) (*RuleSet, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	gctx := groupCtx{groups: make(map[string]groupInfo, len(groups)), byName: map[string][]string{}}
	for _, g := range groups {
		id := strings.ToLower(g.ID)
		gctx.groups[id] = groupInfo{g.Name, g.OrgID, entriesForMatch(g.Signers)}
		k := foldKey(strings.TrimSpace(g.Name))
		gctx.byName[k] = append(gctx.byName[k], id)
	}

	rs := &RuleSet{}
	var errs []error
	ids := map[string]int{}
	order := make([]int, len(rules))
	for i := range rules {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ra, rb := &rules[a], &rules[b]
		if c := cmp.Compare(ra.Priority, rb.Priority); c != 0 {
			return c
		}
		if c := ra.CreatedAt.Compare(rb.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(ra.ID, rb.ID)
	})
	var inputIndex []int // input position of each compiled rule
	for _, i := range order {
		r := rules[i].Clone() // the set shares nothing with its caller
		fail := func(err error) { errs = append(errs, &RuleError{Index: i, RuleID: r.ID, Name: r.Name, Err: err}) }
		var poison string
		if err := ValidateRule(&r); err != nil {
			if !opts.Lenient {
				fail(err)
				continue
			}
			rs.issues = append(rs.issues, &RuleError{Index: i, RuleID: r.ID, Name: r.Name, Err: err})
			if errors.Is(err, errUnknownVerdict) || errors.Is(err, errDurationRange) ||
				(r.Condition != nil && *r.Condition != "" && conditionInvalid(err)) {
				poison = err.Error()
			}
		}
		if r.ID != "" {
			if j, dup := ids[r.ID]; dup {
				err := fmt.Errorf("duplicate rule id %q (also rule %d)", r.ID, j)
				if !opts.Lenient {
					fail(err)
					continue
				}
				rs.issues = append(rs.issues, &RuleError{Index: i, RuleID: r.ID, Name: r.Name, Err: err})
			}
			ids[r.ID] = i
		}
		cr, warn, err := compileRule(env, NormalizeRule(r), gctx)
		if r.ApprovalDurationMinutes != nil && poison == "" {
			cr.grant = *r.ApprovalDurationMinutes
		}
		if err != nil {
			if !opts.Lenient {
				fail(err)
				continue
			}
			rs.issues = append(rs.issues, &RuleError{Index: i, RuleID: r.ID, Name: r.Name, Err: err})
			poison = err.Error()
		}
		if warn != nil {
			rs.issues = append(rs.issues, &RuleError{Index: i, RuleID: r.ID, Name: r.Name, Err: warn})
		}
		cr.poison = poison
		cr.ord = int32(len(rs.rules))
		rs.rules = append(rs.rules, cr)
		inputIndex = append(inputIndex, i)
	}
	for ord, err := range buildConditionPrograms(env, rs.rules) {
		r := &rs.rules[ord]
		re := &RuleError{Index: inputIndex[ord], RuleID: r.rule.ID, Name: r.rule.Name, Err: err}
		if !opts.Lenient {
			errs = append(errs, re)
			continue
		}
		rs.issues = append(rs.issues, re)
		r.poison = err.Error()
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	rs.index = buildIndex(rs.rules)
	note := func(c *criterion) {
		switch c.kind {
		case cParentImage:
			rs.needs.parent = true
		case cCommandLine:
			rs.needs.cmdline = true
		case cAdGroup:
			rs.needs.groups = true
		}
	}
	for i := range rs.rules {
		for j := range rs.rules[i].crits {
			note(&rs.rules[i].crits[j])
		}
		if n := rs.rules[i].cond; n != nil {
			n.each(note)
		}
	}
	return rs, nil
}

// Issues lists problems Compile tolerated: invalid rules loaded leniently
// and rules referencing signer groups that do not exist.
func (rs *RuleSet) Issues() []error { return slices.Clone(rs.issues) }

// Len is the number of rules in the set.
func (rs *RuleSet) Len() int { return len(rs.rules) }

// Rules returns the rules in evaluation order (priority, createdAt, id).
func (rs *RuleSet) Rules() []Rule {
	out := make([]Rule, len(rs.rules))
	for i := range rs.rules {
		out[i] = rs.rules[i].rule.Clone()
	}
	return out
}

// CEL returns the CEL source of the rule with the given position in
// evaluation order: the reference semantics of that rule.
func (rs *RuleSet) CEL(i int) string { return rs.rules[i].celSrc }

// validUTF8 replaces each invalid byte with U+FFFD, so the CEL literal and the
// native matcher see the same text.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// groupInfo is a signer group as rules see it.
type groupInfo struct {
	name    string
	orgID   string
	entries []matchEntry
}

func compileRule(env *cel.Env, r Rule, gc groupCtx) (compiledRule, error, error) {
	cr := compiledRule{rule: r}
	if r.SiteID != nil {
		cr.scoped, cr.site = true, foldKey(*r.SiteID)
	}
	r = r.withoutEmptyCriteria()
	cr.hasTool, cr.never = r.HasToolCriterion(), !r.HasCriterion()
	var warn error
	gc.orgID = r.OrgID
	for _, f := range matchFields(&r) {
		var v string
		risk := 0
		switch {
		case f.risk != nil && *f.risk != nil:
			risk = **f.risk
		case f.v != nil && *f.v != nil:
			v = **f.v
		default:
			continue
		}
		c, w, err := newCriterion(f.kind, v, risk, r.Negated(f.neg), gc, true)
		if err != nil {
			return cr, warn, err
		}
		if w != nil {
			warn = w
		}
		cr.crits = append(cr.crits, c)
	}
	if r.TimeWindow != nil {
		w := compileWindow(r.TimeWindow)
		c := criterion{kind: cTimeWindow, win: w, expr: "false"}
		if w.valid {
			c.expr = fmt.Sprintf("inWindow(at, %d, %d, %d, %s)", w.start, w.end, w.daysMask(), celQuote(w.loc.String()))
		}
		cr.crits = append(cr.crits, c)
	}

	if r.Condition != nil {
		x, err := ParseCondition(*r.Condition)
		if err != nil {
			return cr, warn, fmt.Errorf("condition: %w", err)
		}
		n, w, err := compileCondition(x, gc)
		if w != nil {
			warn = w
		}
		if err != nil {
			return cr, warn, fmt.Errorf("condition: %w", err)
		}
		cr.cond = &n
	}
	cr.celSrc = celSource(&cr)
	cr.prog = &lazyProgram{src: cr.celSrc}
	return cr, warn, nil
}

// buildConditionPrograms builds, in parallel, the programs of rules whose
// size is not bounded by the field limits: a condition (bounded only by
// its text) or a signer group beyond the API's limits (Compile does not
// refuse one). Their
// cost is estimated now, so an over-expensive rule is a compile error (or
// poisoned, leniently) on both evaluators alike. It returns the rules
// whose program failed, with the error.
// hasOversizedGroup reports a signer-group criterion whose group is beyond
// the API's limits (more entries, or longer names): only such a group can
// take a generated program past the largest legal rule.
func (r *compiledRule) hasOversizedGroup() bool {
	for i := range r.crits {
		c := &r.crits[i]
		if c.kind != cSignerGroup {
			continue
		}
		if len(c.ents) > MaxSignerGroupEntries {
			return true
		}
		for _, e := range c.ents {
			if strLen(e.cn) > maxStringCriterionLength || len(e.thumbprint) > 64 {
				return true
			}
		}
	}
	return false
}

func buildConditionPrograms(env *cel.Env, rules []compiledRule) map[int]error {
	var idx []int
	for i := range rules {
		if rules[i].poison == "" && (rules[i].cond != nil || rules[i].hasOversizedGroup()) {
			idx = append(idx, i)
		}
	}
	errs := make([]error, len(idx))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(idx)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(idx) {
					return
				}
				errs[k] = rules[idx[k]].prog.build(env)
			}
		}()
	}
	wg.Wait()
	failed := map[int]error{}
	for k, err := range errs {
		if err != nil {
			failed[idx[k]] = err
		}
	}
	return failed
}

// lazyProgram is a rule's CEL program, built on first use. The indexed
// path never runs it; the reference evaluator does. Programs generated from
// plain match* fields are well-typed by construction and their size and
// worst-case cost are bounded by the field limits (the largest legal rule is
// pinned by a test), so building them later loses no check; rules with a
// condition or an oversized signer group are built at compile time.
type lazyProgram struct {
	src  string
	once sync.Once
	prog cel.Program
	cost uint64 // worst-case estimate, checked against celCostLimit
	err  error
}

func (lp *lazyProgram) build(env *cel.Env) error {
	lp.once.Do(func() {
		ast, iss := env.Compile(lp.src)
		switch {
		case iss != nil && iss.Err() != nil:
			lp.err = fmt.Errorf("CEL compile of %s: %w", abbreviate(lp.src, 200), iss.Err())
			return
		case ast.OutputType() != cel.BoolType:
			lp.err = fmt.Errorf("CEL program %s has type %s, not bool", abbreviate(lp.src, 200), ast.OutputType())
			return
		}
		est, err := env.EstimateCost(ast, celCostModel{})
		if err != nil {
			lp.err = fmt.Errorf("CEL cost estimate: %w", err)
			return
		}
		if est.Max > celCostLimit {
			lp.err = fmt.Errorf("rule is too expensive to evaluate: worst-case CEL cost %d exceeds the limit %d", est.Max, celCostLimit)
			return
		}
		lp.cost = est.Max
		lp.prog, lp.err = env.Program(ast, cel.CostLimit(celCostLimit))
	})
	return lp.err
}

// program returns the built program (building it if needed).
func (lp *lazyProgram) program() (cel.Program, error) {
	env, err := celEnv()
	if err != nil {
		return nil, err
	}
	if err := lp.build(env); err != nil {
		return nil, err
	}
	return lp.prog, nil
}

// critObsKey is the observation field each criterion reads.
var critObsKey = [...]string{
	cHash: keyHash, cThumbprint: keyThumbprint, cSigner: keySigner, cToolName: keyTool,
	cRiskTier: keyRisk, cUser: keyUser, cAdGroup: keyGroups, cPathGlob: keyPath,
	cParentImage: keyParent, cCommandLine: keyCmdline, cTimeWindow: "",
}

// presence is the CEL presence test for a criterion's datum; a signer
// group needs a CN or a thumbprint.
func (c *criterion) presence() string {
	if c.kind == cSignerGroup {
		return "(has(obs." + keySigner + ") || has(obs." + keyThumbprint + "))"
	}
	return "has(obs." + critObsKey[c.kind] + ")"
}

// celExpr is the full CEL condition of one criterion: present, and the
// comparison holds (or, negated, does not hold). Absent data never
// satisfies a criterion, negated or not.
func (c *criterion) celExpr() string {
	switch {
	case c.kind == cTimeWindow:
		return c.expr
	case c.kind == cSignerGroup && !c.found:
		return "false" // a group that resolves to nothing is never present
	case c.negate:
		return c.presence() + " && !(" + c.expr + ")"
	}
	return c.presence() + " && " + c.expr
}

func celSource(cr *compiledRule) string {
	if cr.never {
		return "false"
	}
	parts := make([]string, len(cr.crits))
	for i := range cr.crits {
		parts[i] = "(" + cr.crits[i].celExpr() + ")"
	}
	if cr.cond != nil {
		parts = append(parts, cr.cond.celSource())
	}
	return strings.Join(parts, " && ")
}

// String renders the criterion for explain output.
func (c *criterion) String() string {
	s := c.kind.String()
	if c.negate {
		s = "not " + s
	}
	switch c.kind {
	case cRiskTier:
		return s + " == " + strconv.Itoa(c.risk)
	case cSignerGroup:
		return s + " " + c.group
	case cTimeWindow:
		return s
	}
	return s + " " + strconv.Quote(c.value)
}

// abbreviate quotes s, shortened to about n bytes for messages.
func abbreviate(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:n]) + fmt.Sprintf("… (%d bytes)", len(s))
}
