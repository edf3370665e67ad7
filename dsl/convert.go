package dsl

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
)

// Bundle is a repository in the API's JSON shapes: what `elevate export
// --to json` prints and `--to pam` reads. Rules and signer groups name
// their org in orgId.
type Bundle struct {
	Rules        []engine.Rule        `json:"rules"`
	SignerGroups []engine.SignerGroup `json:"signerGroups"`
	Policies     []policy.Policy      `json:"policies,omitempty"`
	OrgConfigs   []OrgConfig          `json:"orgConfigs,omitempty"`
}

// OrgConfig is an org's settings in the API's JSON shape.
type OrgConfig struct {
	OrgID                   string         `json:"orgId"`
	DefaultUnmatchedVerdict engine.Verdict `json:"defaultUnmatchedVerdict,omitempty"`
	UACInterceptionEnabled  *bool          `json:"uacInterceptionEnabled,omitempty"`
}

// ToBundle converts a loaded repository to the API's JSON shapes.
func ToBundle(repo *Repository) *Bundle {
	b := &Bundle{Rules: []engine.Rule{}, SignerGroups: []engine.SignerGroup{}}
	for _, o := range repo.Orgs {
		b.Rules = append(b.Rules, o.Rules...)
		b.SignerGroups = append(b.SignerGroups, o.Groups...)
		b.Policies = append(b.Policies, o.Policies...)
		if o.ConfigAt != nil {
			b.OrgConfigs = append(b.OrgConfigs, OrgConfig{OrgID: o.Name, DefaultUnmatchedVerdict: o.Config.DefaultUnmatchedVerdict, UACInterceptionEnabled: o.UACInterception})
		}
	}
	return b
}

// ParseBundle reads a bundle, or a bare JSON array of rules.
func ParseBundle(data []byte) (*Bundle, error) {
	b := &Bundle{}
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "[") {
		if err := json.Unmarshal(data, &b.Rules); err != nil {
			return nil, err
		}
		var strict []ruleFields
		if err := decodeStrict(trimmed, &strict); err != nil {
			return nil, err
		}
		return b, nil
	}
	dec := json.NewDecoder(strings.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(b); err != nil {
		return nil, err
	}
	var strict struct {
		Rules        []ruleFields         `json:"rules"`
		SignerGroups []engine.SignerGroup `json:"signerGroups"`
		Policies     []policyFields       `json:"policies"`
		OrgConfigs   []OrgConfig          `json:"orgConfigs"`
	}
	if err := decodeStrict(trimmed, &strict); err != nil {
		return nil, err
	}
	var raw struct {
		SignerGroups json.RawMessage `json:"signerGroups"`
	}
	if err := json.Unmarshal(data, &raw); err == nil && raw.SignerGroups != nil {
		if err := engine.StrictSignerGroups(raw.SignerGroups); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Fix: engine.Rule and policy.Policy decode themselves (to apply the API's
// create defaults), and a type's own decoder does not inherit
// DisallowUnknownFields, so an unknown or misspelt key in a rule
// ("matchSginer") was dropped without a word — and the converted rule
// matched more than its author meant. The field sets without the methods
// are decoded once more, strictly, to catch such keys.
type (
	ruleFields   engine.Rule
	policyFields policy.Policy
)

func decodeStrict(doc string, v any) error {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// FromBundle converts API JSON to rule files: one file per org, keyed by
// org ("" for rules without one). Everything is validated first, and rules
// and signer groups normalised, so the output is canonical; for rules and
// signer groups nothing the API stores is dropped. A value the API would
// refuse is reported and left out. Policies keep their settings and
// assignments but not their timestamps, partner or assignment ids, which
// the language does not carry.
func FromBundle(b *Bundle) (map[string]*syntax.File, []error) {
	var errs []error
	files := map[string]*syntax.File{}
	file := func(org string) *syntax.File {
		if files[org] == nil {
			f := &syntax.File{}
			if org != "" {
				f.Decls = append(f.Decls, &syntax.Block{Kind: syntax.KindOrg, Label: strLit(org)})
			}
			files[org] = f
		}
		return files[org]
	}
	// Signer-group references print by name, and the loader resolves names
	// within the rule's org: map only valid groups of each org whose name
	// is unique there, so a reference can never land on another group.
	groupName := map[string]map[string]string{} // org → lowercase id → name
	nameCount := map[string]map[string]int{}    // org → name → groups
	for _, g := range b.SignerGroups {
		if engine.ValidateSignerGroup(&g) != nil {
			continue
		}
		g = engine.NormalizeSignerGroup(g)
		if groupName[g.OrgID] == nil {
			groupName[g.OrgID], nameCount[g.OrgID] = map[string]string{}, map[string]int{}
		}
		groupName[g.OrgID][strings.ToLower(g.ID)] = g.Name
		nameCount[g.OrgID][g.Name]++
	}
	for org, ids := range groupName {
		for id, name := range ids {
			if nameCount[org][name] > 1 {
				delete(ids, id)
			}
		}
	}
	seenConfig := map[string]bool{}
	for i, c := range b.OrgConfigs {
		cfg := engine.OrgConfig{DefaultUnmatchedVerdict: c.DefaultUnmatchedVerdict}
		if err := engine.ValidateOrgConfig(&cfg); err != nil {
			errs = append(errs, fmt.Errorf("orgConfigs[%d] %q: %w", i, c.OrgID, err))
			continue
		}
		if seenConfig[c.OrgID] {
			errs = append(errs, fmt.Errorf("orgConfigs[%d]: a second configuration for org %q", i, c.OrgID))
			continue
		}
		seenConfig[c.OrgID] = true
		f := file(c.OrgID)
		body := &syntax.Body{}
		if c.DefaultUnmatchedVerdict != "" {
			body.Attrs = append(body.Attrs, &syntax.Attr{Key: "default_unmatched", Value: ident(string(c.DefaultUnmatchedVerdict))})
		}
		if c.UACInterceptionEnabled != nil {
			body.Attrs = append(body.Attrs, &syntax.Attr{Key: "uac_interception", Value: ident(strconv.FormatBool(*c.UACInterceptionEnabled))})
		}
		f.Decls = append(f.Decls, &syntax.Block{Kind: syntax.KindSettings, Body: body})
	}
	for i, g := range b.SignerGroups {
		if err := engine.ValidateSignerGroup(&g); err != nil {
			errs = append(errs, fmt.Errorf("signerGroups[%d] %q: %w", i, g.Name, err))
			continue
		}
		f := file(g.OrgID)
		f.Decls = append(f.Decls, SignerGroupBlock(engine.NormalizeSignerGroup(g)))
	}
	for i, r := range b.Rules {
		if err := engine.ValidateRule(&r); err != nil {
			errs = append(errs, fmt.Errorf("rules[%d] %q: %w", i, r.Name, err))
			continue
		}
		nr := engine.NormalizeRule(r)
		if ref, ok := danglingGroup(nr, groupName[r.OrgID]); !ok {
			errs = append(errs, fmt.Errorf("rules[%d] %q: signer group %q is not a valid, uniquely named group of the rule's org: the rule could not be written faithfully", i, r.Name, ref))
			continue
		}
		d := RuleBlock(nr, groupName[r.OrgID])
		// Fix: joined to the match* criteria, a condition whose top level
		// is not a conjunction gets parentheses, one level more than the
		// API counted: a condition nested to the limit came out as a
		// `when` the loader refuses, and nothing said so.
		if w := d.FieldOf("when"); w != nil {
			if _, perrs := syntax.ParseExpr(syntax.FormatExpr(w.Value.(*syntax.Cond).X)); len(perrs) > 0 {
				errs = append(errs, fmt.Errorf("rules[%d] %q: the condition cannot be written in a rule file: %v", i, r.Name, perrs[0].Msg))
				continue
			}
		}
		f := file(r.OrgID)
		f.Decls = append(f.Decls, d)
	}
	for i, p := range b.Policies {
		if err := validatePolicy(p); err != nil { // fix: an org named in a rule file is not a UUID
			errs = append(errs, fmt.Errorf("policies[%d] %q: %w", i, p.Name, err))
			continue
		}
		f := file(p.OrgID)
		f.Decls = append(f.Decls, PolicyBlock(p))
	}
	return files, errs
}

// Orgs lists the keys of a FromBundle result in order.
func Orgs(files map[string]*syntax.File) []string {
	var out []string
	for k := range files {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func strLit(v string) *syntax.Lit {
	return &syntax.Lit{Kind: syntax.String, Value: v, Text: syntax.Quote(v)}
}
func ident(v string) *syntax.Lit { return &syntax.Lit{Kind: syntax.Ident, Value: v, Text: v} }
func intLit(n int) *syntax.Lit {
	return &syntax.Lit{Kind: syntax.Int, Value: strconv.Itoa(n), Text: strconv.Itoa(n)}
}
func durLit(m int) *syntax.Lit {
	s := syntax.FormatDuration(m)
	return &syntax.Lit{Kind: syntax.Duration, Value: s, Text: s}
}
func tsLit(t time.Time) *syntax.Lit {
	s := t.Format(time.RFC3339Nano)
	return &syntax.Lit{Kind: syntax.Timestamp, Value: s, Text: s}
}

func field(key string, v syntax.Value) *syntax.Field { return &syntax.Field{Key: key, Value: v} }

// danglingGroup reports a signer-group reference of r (its match field or
// a signers(…) in its condition) that names no group in ids.
func danglingGroup(r engine.Rule, ids map[string]string) (string, bool) {
	var refs []string
	if g := r.MatchSignerGroupID; g != nil {
		refs = append(refs, *g)
	}
	if r.Condition != nil {
		if x, err := engine.ParseCondition(*r.Condition); err == nil {
			mapRefs(x, func(l *syntax.Lit) string { refs = append(refs, l.Value); return l.Value })
		}
	}
	for _, ref := range refs {
		if _, ok := ids[strings.ToLower(ref)]; ok {
			continue
		}
		byName := false
		for _, n := range ids {
			byName = byName || n == ref
		}
		if !byName {
			return ref, false
		}
	}
	return "", true
}

// RuleBlock prints one API rule as a rule declaration. groupName maps
// lowercase signer-group ids to names, so references read as names.
func RuleBlock(r engine.Rule, groupName map[string]string) *syntax.Block {
	d := &syntax.Block{Kind: syntax.KindRule, Label: strLit(r.Name)}
	add := func(key string, v syntax.Value) { d.Fields = append(d.Fields, field(key, v)) }
	if r.ID != "" {
		add("id", strLit(r.ID))
	}
	if r.Description != nil {
		add("description", strLit(*r.Description))
	}
	if r.SiteID != nil {
		add("site", strLit(*r.SiteID))
	}
	if r.Priority != engine.DefaultRulePriority {
		add("priority", intLit(r.Priority))
	}
	if !r.Enabled {
		add("enabled", ident("false"))
	}
	if x := RuleCondition(r, groupName); x != nil {
		add("when", &syntax.Cond{X: x})
	}
	if w := r.TimeWindow; w != nil {
		add("during", windowOf(w))
	}
	then := &syntax.Then{Verdict: ident(string(r.Verdict))}
	if r.ApprovalDurationMinutes != nil {
		then.For = durLit(*r.ApprovalDurationMinutes)
	}
	add("then", then)
	if r.CreatedByUserID != "" {
		add("created_by", strLit(r.CreatedByUserID))
	}
	if !r.CreatedAt.IsZero() {
		add("created", tsLit(r.CreatedAt))
	}
	if !r.UpdatedAt.IsZero() {
		add("updated", tsLit(r.UpdatedAt))
	}
	return d
}

// RuleCondition is a rule's whole condition as one expression: its match*
// criteria (signer group first, so it is stored back in its own field),
// then the conjuncts of its condition.
func RuleCondition(r engine.Rule, groupName map[string]string) syntax.Expr {
	var parts []syntax.Expr
	// add appends one criterion; negated, it takes negOp, or a `not` in
	// front when the operator has no negated spelling.
	add := func(word string, neg engine.NegateKey, op, negOp string, v syntax.Operand) {
		negated := r.Negated(neg)
		if negated && negOp != "" {
			op = negOp
		}
		var x syntax.Expr = &syntax.Compare{Field: ident(word), Op: op, Value: v}
		if negated && negOp == "" {
			x = &syntax.Not{X: x}
		}
		parts = append(parts, x)
	}
	str := func(word string, neg engine.NegateKey, op, negOp string, v *string) {
		if v != nil {
			add(word, neg, op, negOp, strLit(*v))
		}
	}
	if g := r.MatchSignerGroupID; g != nil {
		ref := *g
		if n, ok := groupName[strings.ToLower(ref)]; ok {
			ref = n
		}
		add("signer", engine.NegSignerGroup, "in", "", &syntax.SignersRef{Name: strLit(ref)})
	}
	str("signer", engine.NegSigner, "==", "!=", r.MatchSigner)
	str("thumbprint", engine.NegSignerThumbprint, "==", "!=", r.MatchSignerThumbprint)
	str("hash", engine.NegHash, "==", "!=", r.MatchHash)
	str("path", engine.NegPathGlob, "~", "!~", r.MatchPathGlob)
	str("parent", engine.NegParentImage, "~", "!~", r.MatchParentImage)
	str("cmdline", engine.NegCommandLine, "contains", "", r.MatchCommandLine)
	str("user", engine.NegUser, "==", "!=", r.MatchUser)
	str("group", engine.NegAdGroup, "==", "!=", r.MatchAdGroup)
	str("tool", engine.NegToolName, "==", "!=", r.MatchToolName)
	if t := r.MatchRiskTier; t != nil {
		add("risk", engine.NegRiskTier, "==", "!=", intLit(*t))
	}
	if r.Condition != nil {
		// A valid rule's condition parses; callers validate first.
		if x, err := engine.ParseCondition(*r.Condition); err == nil {
			x = mapRefs(x, func(l *syntax.Lit) string {
				if n, ok := groupName[strings.ToLower(l.Value)]; ok {
					return n
				}
				return l.Value
			})
			parts = append(parts, syntax.Conjuncts(x)...)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	x := parts[0]
	for _, p := range parts[1:] {
		x = &syntax.Binary{Op: "and", X: x, Y: p}
	}
	return x
}

// windowOf prints days as given (runs of three or more consecutive days,
// wrapping past Saturday, become ranges), so the day list comes back as it
// was.
func windowOf(w *engine.TimeWindow) *syntax.Window {
	sw := &syntax.Window{Start: &syntax.Lit{Kind: syntax.Clock, Text: w.Start, Value: w.Start},
		End: &syntax.Lit{Kind: syntax.Clock, Text: w.End, Value: w.End}}
	for i := 0; i < len(w.Days); {
		j := i
		for j+1 < len(w.Days) && w.Days[j+1] == (w.Days[j]+1)%7 && j-i < 6 {
			j++
		}
		day := func(n int) *syntax.Lit {
			if n < 0 || n > 6 {
				return ident(strconv.Itoa(n)) // invalid; the loader reports it
			}
			return ident(syntax.Days[n])
		}
		if j-i >= 2 {
			sw.Days = append(sw.Days, syntax.DayRange{From: day(w.Days[i]), To: day(w.Days[j])})
			i = j + 1
			continue
		}
		sw.Days = append(sw.Days, syntax.DayRange{From: day(w.Days[i])})
		i++
	}
	if w.Timezone != nil {
		sw.Zone = strLit(*w.Timezone)
	}
	return sw
}

// SignerGroupBlock prints a signer group. A CN-only object entry prints
// like a bare CN (the two match identically).
func SignerGroupBlock(g engine.SignerGroup) *syntax.Block {
	d := &syntax.Block{Kind: syntax.KindSigners, Label: strLit(g.Name)}
	if g.ID != "" && !strings.EqualFold(g.ID, DerivedID("signers", g.OrgID, g.Name)) {
		d.Fields = append(d.Fields, field("id", strLit(g.ID)))
	}
	if g.Description != nil {
		d.Fields = append(d.Fields, field("description", strLit(*g.Description)))
	}
	// Fix: print the entries as the loader reads them back (a CN-only
	// object is a bare CN) and deduplicated as it deduplicates them. A
	// bare "X" beside {"subjectCn": "X"} — two entries to
	// NormalizeSignerGroup — printed `cn "X"` twice, which loads as one, so
	// the text changed on its next trip through JSON.
	printed := g
	printed.Signers = make([]engine.SignerEntry, 0, len(g.Signers))
	for _, e := range g.Signers {
		if e.SubjectCN != nil && e.Thumbprint == nil {
			e = engine.CNEntry(*e.SubjectCN)
		}
		printed.Signers = append(printed.Signers, e)
	}
	for _, e := range engine.NormalizeSignerGroup(printed).Signers {
		switch {
		case e.SubjectCN != nil:
			en := &syntax.Entry{CN: strLit(*e.SubjectCN)}
			if e.Thumbprint != nil {
				en.Thumb = strLit(*e.Thumbprint)
			}
			d.Fields = append(d.Fields, field("cn", en))
		case e.Thumbprint != nil:
			d.Fields = append(d.Fields, field("thumbprint", &syntax.Entry{Thumb: strLit(*e.Thumbprint)}))
		}
	}
	return d
}

// PolicyBlock prints a configuration policy, feature settings by their
// rule-file names.
func PolicyBlock(p policy.Policy) *syntax.Block {
	d := &syntax.Block{Kind: syntax.KindPolicy, Label: strLit(p.Name)}
	if p.ID != "" {
		d.Fields = append(d.Fields, field("id", strLit(p.ID)))
	}
	if p.Description != nil {
		d.Fields = append(d.Fields, field("description", strLit(*p.Description)))
	}
	if !p.Active {
		d.Fields = append(d.Fields, field("enabled", ident("false")))
	}
	names := make([]string, 0, len(p.Features))
	for n := range p.Features {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		feat, ok := policy.LookupFeature(n)
		if !ok {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(p.Features[n], &obj); err != nil {
			continue
		}
		d.Fields = append(d.Fields, field("feature", settingsBody(ident(feat.DSLName), feat.Settings, obj)))
	}
	for _, a := range p.Assignments {
		as := &syntax.Assign{Level: ident(a.Level.DSLName()), Target: strLit(a.Target)}
		if a.Priority != 0 {
			as.Priority = intLit(a.Priority)
		}
		if a.Condition != "" {
			as.When = strLit(a.Condition)
		}
		d.Fields = append(d.Fields, field("assign", as))
	}
	return d
}

func settingsBody(label *syntax.Lit, settings []policy.Setting, obj map[string]any) *syntax.Body {
	b := &syntax.Body{Label: label}
	for _, s := range settings {
		v, ok := obj[s.JSONKey]
		if !ok || (label != nil && label.Kind != syntax.Ident && s.JSONKey == "name") {
			continue
		}
		switch s.Kind {
		case policy.KindObjectList:
			items, _ := v.([]any)
			for _, it := range items {
				m, _ := it.(map[string]any)
				name, _ := m["name"].(string)
				b.Attrs = append(b.Attrs, &syntax.Attr{Key: s.DSLKey, Value: settingsBody(strLit(name), s.Fields, m)})
			}
		case policy.KindBool:
			b.Attrs = append(b.Attrs, &syntax.Attr{Key: s.DSLKey, Value: ident(fmt.Sprint(v))})
		case policy.KindInt:
			n, _ := v.(float64)
			b.Attrs = append(b.Attrs, &syntax.Attr{Key: s.DSLKey, Value: intLit(int(n))})
		case policy.KindEnum:
			str, _ := v.(string)
			b.Attrs = append(b.Attrs, &syntax.Attr{Key: s.DSLKey, Value: ident(str)})
		default:
			str, _ := v.(string)
			b.Attrs = append(b.Attrs, &syntax.Attr{Key: s.DSLKey, Value: strLit(str)})
		}
	}
	return b
}
