package dsl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/dsl/syntax"
	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
)

// lowerer turns one org's declarations into engine and policy values,
// reporting every problem with its position. Each value is checked by the
// same validator the API uses.
type lowerer struct {
	repo  *Repository
	org   *Org
	file  string
	names map[string]map[string]Origin // kind → name → first declaration
	group map[string]string            // signer group name (and id) → id

	parseErrs Diagnostics // the parser's, to tell a dropped field from a missing one
}

func (l *lowerer) errorf(pos syntax.Pos, hint, format string, args ...any) {
	l.repo.Diags.add(SevError, l.file, pos, hint, format, args...)
}

// missing reports a required field that block d lacks, at its closing
// brace — unless the field is written but the parser dropped it, having
// reported why. Fix: `when signr == "x"` gave "unknown criterion `signr`"
// and then "rule … has no `when` condition", which is false and sends the
// reader looking for a missing line.
func (l *lowerer) missing(d *syntax.Block, key, hint, format string, args ...any) {
	if !l.dropped(d, key) {
		l.errorf(d.Close, hint, format, args...)
	}
}

// dropped reports whether a line of block d starts with the field key and
// a syntax error lies inside d.
func (l *lowerer) dropped(d *syntax.Block, key string) bool {
	var src string
	for _, f := range l.repo.Files {
		if f.Path == l.file {
			src = f.Src
		}
	}
	if d.Close.Offset > len(src) || d.KwPos.Offset > d.Close.Offset {
		return false
	}
	written := false
	for _, line := range strings.Split(src[d.KwPos.Offset:d.Close.Offset], "\n") {
		rest, found := strings.CutPrefix(strings.TrimLeft(line, " \t"), key)
		written = written || found && (rest == "" || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r')
	}
	for _, e := range l.parseErrs {
		if written && e.File == l.file && d.KwPos.Offset <= e.Pos.Offset && e.Pos.Offset <= d.Close.Offset {
			return true
		}
	}
	return false
}

func (l *lowerer) here(pos syntax.Pos) Origin { return Origin{File: l.file, Pos: pos} }

// unique records a declaration name and reports a duplicate.
func (l *lowerer) unique(kind string, lab *syntax.Lit) bool {
	if l.names[kind] == nil {
		l.names[kind] = map[string]Origin{}
	}
	if prev, dup := l.names[kind][lab.Value]; dup {
		l.errorf(lab.Pos, "rename one of them", "duplicate %s name %q (first declared at %s)", kind, lab.Value, prev)
		return false
	}
	l.names[kind][lab.Value] = l.here(lab.Pos)
	return true
}

func (l *lowerer) lower(files []*SourceFile) {
	l.names = map[string]map[string]Origin{}
	l.group = map[string]string{}
	for _, f := range files {
		l.file = f.Path
		for _, d := range f.AST.Decls {
			if d.Kind == syntax.KindSigners {
				l.signers(d)
			}
		}
	}
	for _, f := range files {
		l.file = f.Path
		for _, d := range f.AST.Decls {
			switch d.Kind {
			case syntax.KindRule:
				l.rule(d)
			case syntax.KindPolicy:
				l.policy(d)
			case syntax.KindSettings:
				l.settings(d)
			case syntax.KindTest:
				l.test(d)
			}
		}
	}
	l.resolveSoftware()
}

func str(f *syntax.Field) *string {
	if f == nil {
		return nil
	}
	v := f.Value.(*syntax.Lit).Value
	return &v
}

func (l *lowerer) intOf(lit *syntax.Lit) (int, bool) {
	n, err := strconv.Atoi(lit.Text)
	if err != nil {
		l.errorf(lit.Pos, "", "%s is not a whole number in range", lit.Text)
		return 0, false
	}
	return n, true
}

func (l *lowerer) minutes(lit *syntax.Lit) (int, bool) {
	m, ok := syntax.ParseDuration(lit.Text)
	if !ok {
		l.errorf(lit.Pos, "write minutes and hours like 30m, 2h or 1h30m", "invalid duration %q", lit.Text)
	}
	return m, ok
}

func (l *lowerer) timestamp(lit *syntax.Lit) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, lit.Text)
	if err != nil {
		l.errorf(lit.Pos, "write an RFC 3339 instant with a zone, like 2026-06-15T10:00:00+01:00 or …Z", "invalid timestamp %q", lit.Text)
		return time.Time{}, false
	}
	return t, true
}

// --- signer groups ---------------------------------------------------------

func (l *lowerer) signers(d *syntax.Block) {
	if !l.unique("signer group", d.Label) {
		return
	}
	g := engine.SignerGroup{Name: d.Label.Value, OrgID: l.org.Name, Description: str(d.FieldOf("description"))}
	if id := str(d.FieldOf("id")); id != nil {
		g.ID = *id
	} else {
		g.ID = DerivedID("signers", l.org.Name, g.Name)
	}
	var at []syntax.Pos
	for _, f := range d.Fields {
		e, ok := f.Value.(*syntax.Entry)
		if !ok {
			continue
		}
		switch {
		case e.CN != nil && e.Thumb == nil:
			g.Signers = append(g.Signers, engine.CNEntry(e.CN.Value))
		default:
			var se engine.SignerEntry
			if e.CN != nil {
				v := e.CN.Value
				se.SubjectCN = &v
			}
			v := e.Thumb.Value
			se.Thumbprint = &v
			g.Signers = append(g.Signers, se)
		}
		at = append(at, e.Position())
	}
	if err := engine.ValidateSignerGroup(&g); err != nil {
		l.fieldErrors(err, func(field string) syntax.Pos {
			var i int
			if _, err := fmt.Sscanf(field, "signers[%d]", &i); err == nil && i < len(at) {
				return at[i]
			}
			if f := d.FieldOf(field); f != nil {
				return f.KeyPos
			}
			return d.Label.Pos
		})
		return
	}
	if !engine.IsUUID(g.ID) {
		l.errorf(d.FieldOf("id").Value.Position(), "", "signer group id must be a UUID")
		return
	}
	g = engine.NormalizeSignerGroup(g)
	l.group[g.Name] = g.ID
	l.group[strings.ToLower(g.ID)] = g.ID
	l.org.Groups = append(l.org.Groups, g)
	l.org.GroupAt = append(l.org.GroupAt, l.here(d.Label.Pos))
	l.org.groupDecl = append(l.org.groupDecl, d)
}

// fieldErrors reports engine.FieldErrors at the positions where returns.
func (l *lowerer) fieldErrors(err error, where func(field string) syntax.Pos) {
	var fes engine.FieldErrors
	if !errors.As(err, &fes) {
		l.errorf(where(""), "", "%v", err)
		return
	}
	for _, fe := range fes {
		l.errorf(where(fe.Field), "", "%s", fe.Error())
	}
}

// --- rules -----------------------------------------------------------------

func (l *lowerer) rule(d *syntax.Block) {
	if !l.unique("rule", d.Label) {
		return
	}
	r := engine.Rule{Name: d.Label.Value, OrgID: l.org.Name, Enabled: true, Priority: engine.DefaultRulePriority}
	ok := true
	var when *syntax.Field
	var window *syntax.Window
	var then *syntax.Then
	for _, f := range d.Fields {
		switch f.Key {
		case "id":
			r.ID = *str(f)
		case "description":
			r.Description = str(f)
		case "enabled":
			r.Enabled = f.Value.(*syntax.Lit).Text == "true"
		case "priority":
			n, good := l.intOf(f.Value.(*syntax.Lit))
			r.Priority, ok = n, ok && good
		case "site":
			r.SiteID = str(f)
		case "when":
			when = f
		case "during":
			window = f.Value.(*syntax.Window)
			tw, good := l.window(window)
			r.TimeWindow, ok = tw, ok && good
		case "then":
			then = f.Value.(*syntax.Then)
			r.Verdict = engine.Verdict(then.Verdict.Text)
			if then.For != nil {
				m, good := l.minutes(then.For)
				r.ApprovalDurationMinutes, ok = &m, ok && good
			}
		case "created_by":
			r.CreatedByUserID = *str(f)
		case "created", "updated":
			t, good := l.timestamp(f.Value.(*syntax.Lit))
			ok = ok && good
			if f.Key == "created" {
				r.CreatedAt = t
			} else {
				r.UpdatedAt = t
			}
		}
	}
	if then == nil {
		l.missing(d, "then", "add e.g. `then require_approval`", "rule %q has no `then` verdict", r.Name)
		ok = false
	}
	if when == nil {
		l.missing(d, "when", "add a `when` condition", "rule %q has no `when` condition: a rule needs at least one criterion", r.Name)
		ok = false
	} else {
		x := when.Value.(*syntax.Cond).X
		for _, e := range engine.CheckCondition(x) {
			l.errorf(e.Pos, "", "%s", e.Msg)
			ok = false
		}
		resolved, good := l.resolveGroups(x)
		ok = ok && good
		text := syntax.FormatExpr(resolved)
		r.Condition = &text
	}
	if !ok {
		return
	}
	// Fix: validate the stored (normalised) form, the one ToBundle exports
	// and the API checks on import. Validating the whole `when` as one
	// condition and then skipping every "condition" error — value errors
	// are reported above, with file positions, and stop before this point —
	// also skipped the only one left, the length limit: a rule whose
	// remaining condition exceeded it loaded here, and its export was then
	// refused by FromBundle and the API.
	r = engine.NormalizeRule(r)
	if err := engine.ValidateRule(&r); err != nil {
		var fes engine.FieldErrors
		errors.As(err, &fes)
		for _, fe := range fes {
			l.errorf(l.rulePos(d, fe.Field, when, window, then), "", "%s", ruleMessage(fe))
			ok = false
		}
		if len(fes) == 0 {
			l.errorf(d.Label.Pos, "", "%v", err)
			ok = false
		}
	}
	if !ok {
		return
	}
	l.org.Rules = append(l.org.Rules, r)
	l.org.RuleAt = append(l.org.RuleAt, l.here(d.Label.Pos))
	l.org.ruleDecl = append(l.org.ruleDecl, d)
}

// ruleMessage words an API field error in the language's terms.
func ruleMessage(fe *engine.FieldError) string {
	switch {
	case errors.Is(fe, engine.ErrNoCriterion):
		return "the condition has no criterion"
	case errors.Is(fe, engine.ErrMixedShape):
		return "executable criteria (signer, thumbprint, hash, path, parent, cmdline, signer groups) and tool-action criteria (tool, risk) cannot be mixed in one rule: no observation carries both"
	case errors.Is(fe, engine.ErrIgnoreOnToolRule):
		return "`ignore` is not allowed on a tool-action rule: a tool action must be decided"
	}
	field := map[string]string{"name": "rule name", "siteId": "site", "approvalDurationMinutes": "duration",
		"timeWindow.start": "start time", "timeWindow.end": "end time", "timeWindow.timezone": "time zone", "timeWindow.days": "days", "condition": "condition"}[fe.Field]
	if field == "" {
		return fe.Error()
	}
	return field + " " + fe.Reason
}

func (l *lowerer) rulePos(d *syntax.Block, field string, when *syntax.Field, w *syntax.Window, then *syntax.Then) syntax.Pos {
	valuePos := func(key string) syntax.Pos {
		if f := d.FieldOf(key); f != nil {
			return f.Value.Position()
		}
		return d.Label.Pos
	}
	switch {
	case field == "description":
		return valuePos("description")
	case field == "priority":
		return valuePos("priority")
	case field == "siteId":
		return valuePos("site")
	case field == "verdict" && then != nil:
		return then.Verdict.Pos
	case field == "approvalDurationMinutes" && then != nil && then.For != nil:
		return then.For.Pos
	case field == "timeWindow.timezone" && w != nil && w.Zone != nil:
		return w.Zone.Pos
	case field == "timeWindow.start" && w != nil:
		return w.Start.Pos
	case field == "timeWindow.end" && w != nil:
		return w.End.Pos
	case strings.HasPrefix(field, "timeWindow") && w != nil:
		return w.Pos
	case (field == "criteria" || field == "condition") && when != nil:
		return when.Value.Position()
	}
	return d.Label.Pos
}

// resolveGroups checks every signers("…") reference and returns a copy of
// the condition that refers to groups by id, as the API stores it.
func (l *lowerer) resolveGroups(x syntax.Expr) (syntax.Expr, bool) {
	ok := true
	out := mapRefs(x, func(ref *syntax.Lit) string {
		if id, found := l.group[ref.Value]; found {
			return id
		}
		if id, found := l.group[strings.ToLower(ref.Value)]; found {
			return id
		}
		var known []string
		for _, g := range l.org.Groups {
			known = append(known, g.Name)
		}
		hint := "declare it with signers \"" + ref.Value + "\" { … }"
		if s := syntax.Suggest(ref.Value, known); s != "" {
			hint = "did you mean `" + s + "`?"
		}
		org := ""
		if l.org.Name != "" {
			org = " in org " + strconv.Quote(l.org.Name)
		}
		l.errorf(ref.Pos, hint, "unknown signer group %q%s", ref.Value, org)
		ok = false
		return ref.Value
	})
	return out, ok
}

// mapRefs copies a condition, replacing each signer-group reference.
func mapRefs(x syntax.Expr, f func(*syntax.Lit) string) syntax.Expr {
	switch v := x.(type) {
	case *syntax.Binary:
		return &syntax.Binary{Op: v.Op, OpPos: v.OpPos, X: mapRefs(v.X, f), Y: mapRefs(v.Y, f)}
	case *syntax.Not:
		return &syntax.Not{NotPos: v.NotPos, X: mapRefs(v.X, f)}
	case *syntax.Paren:
		return &syntax.Paren{Lparen: v.Lparen, X: mapRefs(v.X, f)}
	case *syntax.Compare:
		if ref, ok := v.Value.(*syntax.SignersRef); ok {
			name := *ref.Name
			name.Value = f(ref.Name)
			c := *v
			c.Value = &syntax.SignersRef{Pos: ref.Pos, Name: &name}
			return &c
		}
	}
	return x
}

// window lowers `during`.
func (l *lowerer) window(w *syntax.Window) (*engine.TimeWindow, bool) {
	tw := &engine.TimeWindow{Start: w.Start.Text, End: w.End.Text}
	for _, dr := range w.Days {
		from := dayIndex(dr.From.Text)
		if dr.To == nil {
			tw.Days = append(tw.Days, from)
			continue
		}
		to := dayIndex(dr.To.Text)
		for d := from; ; d = (d + 1) % 7 {
			tw.Days = append(tw.Days, d)
			if d == to {
				break
			}
		}
	}
	if len(tw.Days) > 7 {
		l.errorf(w.Pos, "list each day once", "the days name %d days; a week has 7", len(tw.Days))
		return nil, false
	}
	if w.Zone != nil {
		z := w.Zone.Value
		tw.Timezone = &z
	}
	return tw, true
}

func dayIndex(s string) int {
	for i, d := range syntax.Days {
		if d == s {
			return i
		}
	}
	return -1
}

// --- configuration policies -------------------------------------------------

func (l *lowerer) policy(d *syntax.Block) {
	if !l.unique("policy", d.Label) {
		return
	}
	p := policy.Policy{Name: d.Label.Value, OrgID: l.org.Name, Active: true, Description: str(d.FieldOf("description")),
		Features: map[string]json.RawMessage{}}
	if id := str(d.FieldOf("id")); id != nil {
		p.ID = *id
	}
	ok := true
	type featAt struct {
		name string
		body *syntax.Body
	}
	var feats []featAt
	var assigns []*syntax.Assign
	for _, f := range d.Fields {
		switch f.Key {
		case "enabled":
			p.Active = f.Value.(*syntax.Lit).Text == "true"
		case "feature":
			b := f.Value.(*syntax.Body)
			feat, found := policy.LookupFeature(b.Label.Text)
			if !found {
				var names []string
				for _, ft := range policy.Features() {
					names = append(names, ft.DSLName)
				}
				l.errorf(b.Label.Pos, syntax.DidYouMean(b.Label.Text, names), "unknown feature `%s`", b.Label.Text)
				ok = false
				continue
			}
			if _, dup := p.Features[feat.Name]; dup {
				l.errorf(b.Label.Pos, "merge the two blocks", "feature `%s` set twice in one policy", b.Label.Text)
				ok = false
				continue
			}
			obj, good := l.featureJSON(feat.Settings, b, "")
			ok = ok && good
			raw, _ := json.Marshal(obj)
			p.Features[feat.Name] = raw
			feats = append(feats, featAt{feat.Name, b})
		case "assign":
			a := f.Value.(*syntax.Assign)
			lv, _ := policy.ParseLevel(a.Level.Text)
			as := policy.Assignment{Level: lv, Target: a.Target.Value}
			if a.Priority != nil {
				n, good := l.intOf(a.Priority)
				as.Priority, ok = n, ok && good
			}
			if a.When != nil {
				as.Condition = a.When.Value
				for _, ce := range policy.ConditionIssues(a.When.Value) {
					l.errorf(a.When.PosOf(ce.Line, ce.Col), "", "assignment condition: %s", ce.Msg)
					ok = false
				}
			}
			p.Assignments = append(p.Assignments, as)
			assigns = append(assigns, a)
		}
	}
	if !ok {
		return
	}
	if err := validatePolicy(p); err != nil {
		l.fieldErrors(err, func(field string) syntax.Pos {
			var i int
			if _, err := fmt.Sscanf(field, "assignments[%d]", &i); err == nil && i < len(assigns) {
				if strings.Contains(field, ".condition") {
					return assigns[i].When.Pos
				}
				return assigns[i].Level.Pos
			}
			for _, fa := range feats {
				if rest, found := strings.CutPrefix(field, "features."+fa.name); found {
					return bodyPos(fa.body, strings.TrimPrefix(rest, "."))
				}
			}
			if f := d.FieldOf(field); f != nil {
				return f.KeyPos
			}
			return d.Label.Pos
		})
		return
	}
	l.org.Policies = append(l.org.Policies, p)
	l.org.PolicyAt = append(l.org.PolicyAt, l.here(d.Label.Pos))
}

// validatePolicy is policy.ValidatePolicy for a policy of a rule-file org.
// Fix: ValidatePolicy wants orgId to be a UUID, but rule files name their
// orgs (`org "acme"`), so every policy of a named org was refused with
// "orgId: must be a UUID" at its name (LANGUAGE.md's own examples among
// them), and FromBundle dropped such policies from an export. The org is
// a name here, like an assignment target in a rule file.
func validatePolicy(p policy.Policy) error {
	if !engine.IsUUID(p.OrgID) {
		p.OrgID = ""
	}
	return policy.ValidatePolicy(&p)
}

// bodyPos finds the attribute a JSON path like "executable[1].sha256"
// points at.
func bodyPos(b *syntax.Body, path string) syntax.Pos {
	if path == "" {
		return b.Position()
	}
	head, rest, _ := strings.Cut(path, ".")
	idx := -1
	if i := strings.IndexByte(head, '['); i >= 0 {
		fmt.Sscanf(head[i:], "[%d]", &idx)
		head = head[:i]
	}
	n := 0
	for _, a := range b.Attrs {
		if a.Key != head && jsonKeyOf(a.Key) != head {
			continue
		}
		if idx >= 0 && n != idx {
			n++
			continue
		}
		if nb, ok := a.Value.(*syntax.Body); ok && rest != "" {
			return bodyPos(nb, rest)
		}
		return a.KeyPos
	}
	return b.Position()
}

// jsonKeyOf turns a snake_case key into the camelCase the JSON uses.
func jsonKeyOf(k string) string {
	parts := strings.Split(k, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// featureJSON converts a feature body to the JSON object the API stores,
// using the registry to map keys and types; the registry's validator then
// checks the result.
func (l *lowerer) featureJSON(settings []policy.Setting, b *syntax.Body, labelKey string) (map[string]any, bool) {
	obj := map[string]any{}
	ok := true
	if b.Label != nil && labelKey != "" {
		obj[labelKey] = b.Label.Value
	}
	var known []string
	for _, s := range settings {
		known = append(known, s.DSLKey)
	}
	for _, a := range b.Attrs {
		s := findSetting(settings, a.Key)
		if s == nil {
			l.errorf(a.KeyPos, syntax.DidYouMean(a.Key, known), "unknown setting `%s`", a.Key)
			ok = false
			continue
		}
		if s.Kind == policy.KindObjectList {
			nb, isBody := a.Value.(*syntax.Body)
			if !isBody {
				l.errorf(a.KeyPos, "write "+a.Key+" \"name\" { … }", "`%s` is a list of blocks", a.Key)
				ok = false
				continue
			}
			item, good := l.featureJSON(s.Fields, nb, "name")
			ok = ok && good
			list, _ := obj[s.JSONKey].([]any)
			obj[s.JSONKey] = append(list, item)
			continue
		}
		if _, dup := obj[s.JSONKey]; dup {
			l.errorf(a.KeyPos, "", "`%s` set twice", a.Key)
			ok = false
			continue
		}
		v, good := l.settingValue(s, a)
		ok = ok && good
		obj[s.JSONKey] = v
	}
	return obj, ok
}

func findSetting(settings []policy.Setting, key string) *policy.Setting {
	for i := range settings {
		if settings[i].DSLKey == key {
			return &settings[i]
		}
	}
	return nil
}

func (l *lowerer) settingValue(s *policy.Setting, a *syntax.Attr) (any, bool) {
	lit, isLit := a.Value.(*syntax.Lit)
	if !isLit {
		l.errorf(a.KeyPos, "", "`%s` takes a single value", a.Key)
		return nil, false
	}
	switch s.Kind {
	case policy.KindBool:
		if lit.Kind == syntax.Ident && (lit.Text == "true" || lit.Text == "false") {
			return lit.Text == "true", true
		}
		l.errorf(lit.Pos, "", "`%s` takes true or false, found %s", a.Key, lit.Text)
	case policy.KindInt:
		if lit.Kind == syntax.Int {
			n, err := strconv.Atoi(lit.Text)
			return n, err == nil
		}
		l.errorf(lit.Pos, "", "`%s` takes a whole number, found %s", a.Key, lit.Text)
	case policy.KindEnum:
		if lit.Kind == syntax.Ident || lit.Kind == syntax.String || lit.Kind == syntax.RawString {
			return lit.Value, true
		}
		l.errorf(lit.Pos, "", "`%s` takes one of %s", a.Key, strings.Join(s.Enum, ", "))
	default:
		if lit.Kind == syntax.String || lit.Kind == syntax.RawString {
			return lit.Value, true
		}
		l.errorf(lit.Pos, "put it in quotes", "`%s` takes a string, found %s", a.Key, lit.Text)
	}
	return nil, false
}

// --- org settings ------------------------------------------------------------

// orgSettings reads a settings body (the org's, or a test's override).
func (l *lowerer) orgSettings(b *syntax.Body) (engine.OrgConfig, *bool, bool) {
	var cfg engine.OrgConfig
	var uac *bool
	ok := true
	for _, a := range b.Attrs {
		lit, isLit := a.Value.(*syntax.Lit)
		switch {
		case a.Key == "default_unmatched" && isLit:
			cfg.DefaultUnmatchedVerdict = engine.Verdict(lit.Value)
			if err := engine.ValidateOrgConfig(&cfg); err != nil {
				l.errorf(lit.Pos, "auto_approve is never a default", "default_unmatched must be require_approval or auto_deny, found %s", lit.Text)
				ok = false
			}
		case a.Key == "uac_interception" && isLit && lit.Kind == syntax.Ident && (lit.Text == "true" || lit.Text == "false"):
			v := lit.Text == "true"
			uac = &v
		case a.Key == "default_unmatched" || a.Key == "uac_interception":
			l.errorf(a.KeyPos, "", "bad value for `%s`", a.Key)
			ok = false
		default:
			l.errorf(a.KeyPos, syntax.DidYouMean(a.Key, []string{"default_unmatched", "uac_interception"}), "unknown setting `%s`", a.Key)
			ok = false
		}
	}
	return cfg, uac, ok
}

func (l *lowerer) settings(d *syntax.Block) {
	if l.org.ConfigAt != nil {
		l.errorf(d.KwPos, "merge them", "second settings block for this org (first at %s)", l.org.ConfigAt)
		return
	}
	at := l.here(d.KwPos)
	l.org.ConfigAt = &at
	cfg, uac, ok := l.orgSettings(d.Body)
	if ok {
		l.org.Config, l.org.UACInterception = cfg, uac
	}
}
