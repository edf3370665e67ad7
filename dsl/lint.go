package dsl

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
)

// Lint codes.
const (
	LintShadowed      = "shadowed"       // an earlier rule always decides first
	LintDuplicate     = "duplicate-rule" // same criteria as an earlier rule
	LintWritableApp   = "writable-path"  // auto-approval keyed on a user-writable path alone
	LintWindowNever   = "window-never"   // time window never active
	LintUnusedSigners = "unused-signers" // signer group no rule uses
	// LintPolicyNeverApplies: a configuration policy no device can ever
	// resolve to — disabled, without assignments, without features, or
	// every assignment's condition is constant and never true.
	LintPolicyNeverApplies = "policy-never-applies"
)

// ruleFacts is what lint needs to know about a rule.
type ruleFacts struct {
	r      *engine.Rule
	at     Origin
	crits  []string // canonical criterion keys: kind|negated|value
	cond   string   // condition text ("" none)
	window string   // canonical window ("" none)
	tool   bool
	paths  []string // positive path globs, normalised
	cmds   []string // positive command-line substrings, lowercase
	ident  bool     // a positive signer, thumbprint, signer group or hash
	groups []string // signer-group ids referenced
}

func normGlob(s string) string { return strings.ToLower(strings.ReplaceAll(s, `\`, "/")) }

func factsOf(r *engine.Rule, at Origin) *ruleFacts {
	f := &ruleFacts{r: r, at: at, tool: r.HasToolCriterion()}
	add := func(kind string, neg engine.NegateKey, v *string, norm func(string) string) {
		if v == nil {
			return
		}
		n := r.Negated(neg)
		f.crits = append(f.crits, kind+"|"+strconv.FormatBool(n)+"|"+norm(*v))
		if n {
			return
		}
		switch kind {
		case "signer", "thumbprint", "group", "hash":
			f.ident = true
		case "path":
			f.paths = append(f.paths, norm(*v))
		case "cmdline":
			f.cmds = append(f.cmds, norm(*v))
		}
	}
	lower := strings.ToLower
	add("signer", engine.NegSigner, r.MatchSigner, lower)
	add("thumbprint", engine.NegSignerThumbprint, r.MatchSignerThumbprint, lower)
	add("group", engine.NegSignerGroup, r.MatchSignerGroupID, lower)
	add("hash", engine.NegHash, r.MatchHash, lower)
	add("path", engine.NegPathGlob, r.MatchPathGlob, normGlob)
	add("parent", engine.NegParentImage, r.MatchParentImage, normGlob)
	add("cmdline", engine.NegCommandLine, r.MatchCommandLine, lower)
	add("user", engine.NegUser, r.MatchUser, lower)
	add("adgroup", engine.NegAdGroup, r.MatchAdGroup, lower)
	add("tool", engine.NegToolName, r.MatchToolName, lower)
	if r.MatchRiskTier != nil {
		f.crits = append(f.crits, "risk|"+strconv.FormatBool(r.Negated(engine.NegRiskTier))+"|"+strconv.Itoa(*r.MatchRiskTier))
	}
	if r.MatchSignerGroupID != nil {
		f.groups = append(f.groups, strings.ToLower(*r.MatchSignerGroupID))
	}
	if r.Condition != nil {
		f.cond = *r.Condition
		if x, err := engine.ParseCondition(*r.Condition); err == nil {
			mapRefs(x, func(ref *syntax.Lit) string {
				f.groups = append(f.groups, strings.ToLower(ref.Value))
				return ref.Value
			})
			for _, c := range syntax.Conjuncts(x) {
				if cmp, ok := c.(*syntax.Compare); ok && cmp.Op != "!=" && cmp.Op != "!~" {
					switch cmp.Field.Text {
					case "signer", "thumbprint", "hash":
						f.ident = true
					case "path":
						if lit, ok := cmp.Value.(*syntax.Lit); ok {
							f.paths = append(f.paths, normGlob(lit.Value))
						}
					}
				}
			}
		}
	}
	if r.TimeWindow != nil {
		b, _ := json.Marshal(r.TimeWindow)
		f.window = string(b)
	}
	slices.Sort(f.crits)
	return f
}

// criterionCovers reports whether criterion a holds whenever b does.
func criterionCovers(a, b string) bool {
	if a == b {
		return true
	}
	ak, av, _ := cutKey(a)
	bk, bv, _ := cutKey(b)
	if ak != bk || strings.Contains(a, "|true|") || strings.Contains(b, "|true|") {
		return false
	}
	switch ak {
	case "path", "parent":
		return globCovers(av, bv)
	case "cmdline":
		return strings.Contains(bv, av)
	}
	return false
}

func cutKey(s string) (kind, value string, neg bool) {
	parts := strings.SplitN(s, "|", 3)
	return parts[0], parts[2], parts[1] == "true"
}

// globCovers reports (conservatively) whether every path glob b matches is
// matched by glob a: a is `**`, or a directory glob `dir/**` and b's literal
// prefix lies inside dir.
func globCovers(a, b string) bool {
	if a == b || strings.Trim(a, "*") == "" && len(a) >= 2 {
		return true
	}
	dir, ok := strings.CutSuffix(a, "/**")
	if !ok || strings.Contains(dir, "*") {
		return false
	}
	prefix := b
	if i := strings.IndexByte(b, '*'); i >= 0 {
		prefix = b[:i]
	}
	return strings.HasPrefix(prefix, dir+"/")
}

// covers reports whether rule a matches every observation rule b matches
// (as far as a syntactic comparison can tell), within b's scope.
func covers(a, b *ruleFacts) bool {
	if !a.r.Enabled || a.cond != "" && a.cond != b.cond || a.window != "" && a.window != b.window {
		return false
	}
	if a.r.SiteID != nil && (b.r.SiteID == nil || !strings.EqualFold(*a.r.SiteID, *b.r.SiteID)) {
		return false
	}
	if b.tool && !a.tool {
		return false // a does not take part in tool actions
	}
	for _, ca := range a.crits {
		if !slices.ContainsFunc(b.crits, func(cb string) bool { return criterionCovers(ca, cb) }) {
			return false
		}
	}
	return len(a.crits) > 0 || a.cond != ""
}

func same(a, b *ruleFacts) bool {
	return slices.Equal(a.crits, b.crits) && a.cond == b.cond && a.window == b.window &&
		(a.r.SiteID == nil) == (b.r.SiteID == nil) && (a.r.SiteID == nil || strings.EqualFold(*a.r.SiteID, *b.r.SiteID))
}

// writableMarkers are path segments of folders ordinary users can write to.
var writableMarkers = []string{"/users/", "/temp/", "/tmp/", "/downloads/", "/appdata/", "/public/"}

// Lint looks for rules that cannot do what their author meant. rs gives
// the evaluation order.
func Lint(org *Org, rs *engine.RuleSet) Diagnostics {
	var ds Diagnostics
	at := map[string]Origin{}
	for i, r := range org.Rules {
		at[r.Name] = org.RuleAt[i]
	}
	ordered := rs.Rules()
	facts := make([]*ruleFacts, len(ordered))
	for i := range ordered {
		facts[i] = factsOf(&ordered[i], at[ordered[i].Name])
	}
	warn := func(code string, o Origin, hint, format string, args ...any) {
		ds.add(SevWarning, o.File, o.Pos, hint, format, args...)
		ds[len(ds)-1].Code = code
	}
	for j, b := range facts {
		if !b.r.Enabled {
			continue
		}
		for _, a := range facts[:j] {
			if !a.r.Enabled {
				continue
			}
			if same(a, b) {
				warn(LintDuplicate, b.at, "delete one, or merge them", "rule %q has the same criteria as rule %q (%s), which comes first: it can never decide", b.r.Name, a.r.Name, a.at)
				break
			}
			if covers(a, b) {
				warn(LintShadowed, b.at, fmt.Sprintf("give it a lower priority number than %d, or narrow rule %q", a.r.Priority, a.r.Name),
					"rule %q can never fire: rule %q (%s) comes first and matches everything it matches", b.r.Name, a.r.Name, a.at)
				break
			}
		}
		if b.r.Verdict == engine.VerdictAutoApprove && !b.ident && len(b.paths) > 0 {
			for _, p := range b.paths {
				if strings.HasPrefix(p, "**") || slices.ContainsFunc(writableMarkers, func(m string) bool { return strings.Contains(p, m) }) {
					warn(LintWritableApp, b.at, "add a signer, thumbprint, signer group or hash criterion",
						"rule %q auto-approves by path alone in a folder users can write to (%s): anyone can drop a binary there", b.r.Name, p)
					break
				}
			}
		}
		if w := b.r.TimeWindow; w != nil && !windowEverActive(w) {
			warn(LintWindowNever, b.at, "check the days, times and zone", "rule %q has a time window that is never active", b.r.Name)
		}
	}
	used := map[string]bool{}
	for _, f := range facts {
		for _, g := range f.groups {
			used[g] = true
		}
	}
	for i, g := range org.Groups {
		if !used[strings.ToLower(g.ID)] {
			warn(LintUnusedSigners, org.GroupAt[i], "reference it with signer in signers(\""+g.Name+"\"), or delete it", "signer group %q is not used by any rule", g.Name)
		}
	}
	for i := range org.Policies {
		if i < len(org.PolicyAt) {
			if msg, hint := policyNeverApplies(org, &org.Policies[i]); msg != "" {
				warn(LintPolicyNeverApplies, org.PolicyAt[i], hint, "%s", msg)
			}
		}
	}
	return ds
}

// policyNeverApplies says why no device can ever resolve to p, or "" when
// one may. Only what holds for every device and every hierarchy is
// reported: a target the repository does not know is not a reason, since
// sites, groups and devices are not declared in rule files.
func policyNeverApplies(org *Org, p *policy.Policy) (msg, hint string) {
	switch {
	case !p.Active:
		return fmt.Sprintf("policy %q is disabled (enabled false): it never applies to any device", p.Name),
			"delete it, or remove `enabled false` to apply it"
	case len(p.Assignments) == 0:
		target := "…"
		if org.Name != "" {
			target = org.Name
		}
		return fmt.Sprintf("policy %q has no assign: it applies to no device", p.Name),
			fmt.Sprintf("attach it with e.g. `assign org %q`, or delete it", target)
	case len(p.Features) == 0:
		var names []string
		for _, f := range policy.Features() {
			names = append(names, "`feature "+f.DSLName+" { … }`")
		}
		return fmt.Sprintf("policy %q sets no feature: it supplies nothing to the devices it is assigned to", p.Name),
			"add " + strings.Join(names, " or ") + ", or delete it"
	}
	var dead []string
	for _, a := range p.Assignments {
		if strings.TrimSpace(a.Condition) == "" {
			return "", ""
		}
		holds, constant, err := constantCondition(a.Condition)
		if !constant || holds && err == nil {
			return "", ""
		}
		what := fmt.Sprintf("assign %s %q when %q is false", a.Level.DSLName(), a.Target, a.Condition)
		if err != nil {
			what = fmt.Sprintf("assign %s %q when %q fails: %v", a.Level.DSLName(), a.Target, a.Condition, err)
		}
		dead = append(dead, what)
	}
	return fmt.Sprintf("policy %q never applies: the condition of every assignment reads no device attribute and is never true (%s)", p.Name, strings.Join(dead, "; ")),
		"a condition filters on the device, e.g. `when \"device.os == 'windows'\"`; drop the condition to assign unconditionally"
}

// constEnv is the condition environment without the device: a condition
// that compiles in it reads no device attribute, so it has one value for
// every device.
var constEnv = sync.OnceValues(func() (*cel.Env, error) { return cel.NewEnv() })

// constantCondition evaluates an assignment condition that reads nothing
// of the device. constant is false when the condition reads the device
// (or cannot be compiled here); err is set when it fails (loading refuses
// such a condition already: it would make every device it is assigned to
// unresolvable).
func constantCondition(src string) (holds, constant bool, err error) {
	env, envErr := constEnv()
	if envErr != nil {
		return false, false, nil
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return false, false, nil
	}
	prg, prgErr := env.Program(ast, cel.CostLimit(1_000_000))
	if prgErr != nil {
		return false, false, nil
	}
	out, _, evalErr := prg.Eval(map[string]any{})
	if evalErr != nil {
		return false, true, evalErr
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, false, nil
	}
	return bool(b), true, nil
}

// windowEverActive samples every minute of a winter and a summer week, so
// zone offsets and daylight-saving gaps are taken into account.
func windowEverActive(w *engine.TimeWindow) bool {
	for _, start := range []time.Time{time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 5, 0, 0, 0, 0, time.UTC)} {
		for m := -24 * 60; m < 8*24*60; m++ {
			if w.ActiveAt(start.Add(time.Duration(m) * time.Minute)) {
				return true
			}
		}
	}
	return false
}
