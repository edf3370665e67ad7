package dsl

// A generator of random valid API values (rules, signer groups, org
// settings) for the conversion property tests. Everything it makes is kept
// only if the API's own validators accept it.

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/engine"
)

type gen struct {
	r *rand.Rand
}

func newGen(seed uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

func (g *gen) n(k int) int           { return g.r.IntN(k) }
func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](g *gen, xs ...T) T { return xs[g.r.IntN(len(xs))] }

func (g *gen) uuid() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 36)
	for i := 0; i < 32; i++ {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b = append(b, '-')
		}
		b = append(b, hex[g.n(16)])
	}
	s := string(b)
	if g.chance(0.15) {
		s = strings.ToUpper(s)
	}
	return s
}

func (g *gen) hex64() string {
	const hex = "0123456789abcdefABCDEF"
	b := make([]byte, 64)
	for i := range b {
		b[i] = hex[g.n(len(hex))]
	}
	return string(b)
}

// pieces of text that stress quoting, escaping and the lexer.
var textPieces = []string{
	"a", "Z", "0", "7", " ", "  ", "-", "_", ".", "*", "**", `\`, `\\`, `"`, "`", "'", "#", "{", "}", "(", ")",
	"[", "]", ",", "=", "==", "~", "and", "or", "not", "cel", "rule", "signers", "\n", "\t", "\r", "\x01", "\x7f",
	"é", "日本語", "🙂", "\u00a0", "\u2028", "\ufeff", "\ufffd", "C:", `C:\Program Files\`, `\Users\`, "/quiet",
	"Mozilla Corporation", "acme", "Ω", "ß", "İ",
}

// text makes a valid UTF-8 string of 1..max characters from textPieces and
// random runes.
func (g *gen) text(maxChars int) string {
	var b strings.Builder
	want := 1 + g.n(min(maxChars, 24))
	if g.chance(0.005) {
		want = maxChars // now and then as long as allowed
	}
	n := 0
	for n < want {
		var p string
		switch {
		case g.chance(0.1):
			p = string(rune(0x20 + g.n(0x2fff)))
			if r := []rune(p)[0]; r >= 0xd800 && r < 0xe000 {
				p = "x"
			}
		default:
			p = pick(g, textPieces...)
		}
		c := len([]rune(p))
		if n+c > want {
			p = strings.Repeat("x", want-n)
			c = want - n
		}
		b.WriteString(p)
		n += c
	}
	return b.String()
}

func (g *gen) optText(p float64, maxChars int) *string {
	if !g.chance(p) {
		return nil
	}
	s := g.text(maxChars)
	return &s
}

var zones = []string{"UTC", "Europe/London", "America/Chicago", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Kiritimati",
	"America/Argentina/Buenos_Aires", "Etc/GMT+5", "Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns"}

func (g *gen) clock() string {
	h, m := g.n(24), g.n(60)
	if h < 10 && g.chance(0.3) {
		return fmt.Sprintf("%d:%02d", h, m)
	}
	return fmt.Sprintf("%02d:%02d", h, m)
}

func (g *gen) window() *engine.TimeWindow {
	w := &engine.TimeWindow{Start: g.clock(), End: g.clock()}
	if g.chance(0.2) {
		w.End = w.Start
	}
	switch g.n(4) {
	case 0: // none
	case 1: // a run, wrapping past Saturday
		d, k := g.n(7), 1+g.n(7)
		for i := 0; i < k; i++ {
			w.Days = append(w.Days, (d+i)%7)
		}
	default: // anything, duplicates included
		for k := 1 + g.n(7); k > 0; k-- {
			w.Days = append(w.Days, g.n(7))
		}
	}
	if g.chance(0.7) {
		z := pick(g, zones...)
		w.Timezone = &z
	}
	return w
}

func (g *gen) instant() time.Time {
	if g.chance(0.25) {
		return time.Time{}
	}
	sec := int64(g.n(4102444800)) // 1970 … 2100
	nsec := int64(0)
	if g.chance(0.6) {
		nsec = int64(g.n(1e9))
	}
	t := time.Unix(sec, nsec)
	switch g.n(3) {
	case 0:
		return t.UTC()
	case 1:
		off := (g.n(28*60+1) - 14*60) * 60
		return t.In(time.FixedZone("", off))
	}
	loc, err := time.LoadLocation(pick(g, "Asia/Kolkata", "America/New_York", "Australia/Adelaide", "Europe/Berlin"))
	if err != nil {
		panic(err)
	}
	return t.In(loc)
}

// quote writes a condition string literal: raw when possible and chosen,
// otherwise double-quoted with a random choice of escapes.
func (g *gen) quote(s string) string {
	if !strings.Contains(s, "`") && g.chance(0.3) {
		ok := true
		for _, r := range s {
			if r < 0x20 && r != '\t' || r == 0x7f {
				ok = false
			}
		}
		if ok {
			return "`" + s + "`"
		}
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t' && g.chance(0.5):
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || r == 0xfffd || (r < 0x10000 && g.chance(0.05)):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (g *gen) sp() string {
	return pick(g, " ", " ", " ", "  ", "\n  ", " # a comment\n ", "\t")
}

// ruleShape says which criteria a generated rule may use, so most rules
// pass the shape checks.
type ruleShape int

const (
	shapeExec ruleShape = iota
	shapeTool
	shapeNeutral
)

// cond makes condition text: comparisons joined by and/or/not, lists,
// parentheses, signer-group references by id and cel atoms.
func (g *gen) cond(shape ruleShape, groups []engine.SignerGroup, depth int) string {
	if depth > 0 && g.chance(0.55) {
		switch g.n(4) {
		case 0:
			return "not" + g.sp() + g.cond(shape, groups, depth-1)
		case 1:
			return "(" + g.cond(shape, groups, depth-1) + ")"
		default:
			op := pick(g, "and", "and", "or")
			return g.cond(shape, groups, depth-1) + g.sp() + op + g.sp() + g.cond(shape, groups, depth-1)
		}
	}
	return g.atom(shape, groups)
}

var celAtoms = map[ruleShape][]string{
	shapeExec: {
		`has(obs.commandLine)`, `!has(obs.targetExecutableSigner)`, `obs.commandLine.contains("x")`,
		`obs.targetExecutablePath.endsWith(".msi")`, `obs.commandLine.matches("(?i)\\s/(q|qn|quiet)\\b")`,
		`"Admins" in obs.adGroups`, `obs.adGroups.exists(g, g.startsWith("IT"))`,
	},
	shapeTool: {`obs.riskTier >= 2`, `obs.toolName.startsWith("mcp")`, `has(obs.toolName) && obs.riskTier < 4`},
	shapeNeutral: {
		`at.getHours() >= 8`, `obs.subjectUsername.endsWith("-adm")`, `size(obs.adGroups) > 1`,
		`at > timestamp("2026-01-01T00:00:00Z")`,
	},
}

func (g *gen) atom(shape ruleShape, groups []engine.SignerGroup) string {
	var words []string
	switch shape {
	case shapeExec:
		words = []string{"signer", "thumbprint", "hash", "path", "parent", "cmdline", "user", "group", "signers"}
	case shapeTool:
		words = []string{"tool", "risk", "user", "group"}
	default:
		words = []string{"user", "group"}
	}
	w := pick(g, words...)
	if g.chance(0.05) { // cel atoms are rarer: each costs a CEL compile per conversion step
		w = "cel"
	}
	if w == "signers" && len(groups) == 0 {
		w = "signer"
	}
	val := func() string {
		switch w {
		case "hash":
			return g.quote(g.hex64())
		case "thumbprint":
			if g.chance(0.2) {
				return g.quote(" " + g.hex64() + "\t")
			}
			return g.quote(g.hex64())
		case "risk":
			return strconv.Itoa(g.n(5))
		case "tool":
			return g.quote(g.text(100))
		case "path", "parent", "cmdline":
			return g.quote(g.text(300))
		}
		return g.quote(g.text(255))
	}
	switch w {
	case "cel":
		src := pick(g, celAtoms[shape]...)
		if shape != shapeNeutral && g.chance(0.3) {
			src = pick(g, celAtoms[shapeNeutral]...)
		}
		return "cel" + g.sp() + g.quote(src)
	case "signers":
		return "signer in signers(" + g.quote(pick(g, groups...).ID) + ")"
	case "path", "parent":
		return w + g.sp() + pick(g, "~", "!~") + g.sp() + val()
	case "cmdline":
		return w + " contains " + val()
	}
	if g.chance(0.25) {
		k := 1 + g.n(3)
		parts := make([]string, k)
		for i := range parts {
			parts[i] = val()
		}
		trail := ""
		if g.chance(0.3) {
			trail = ","
		}
		return w + " in [" + strings.Join(parts, ", ") + trail + "]"
	}
	return w + g.sp() + pick(g, "==", "!=") + g.sp() + val()
}

func (g *gen) rule(org string, groups []engine.SignerGroup, name string) engine.Rule {
	shape := ruleShape(g.n(3))
	r := engine.Rule{
		OrgID:    org,
		Name:     name,
		Enabled:  g.chance(0.8),
		Priority: engine.DefaultRulePriority,
		Verdict:  pick(g, engine.VerdictAutoApprove, engine.VerdictAutoDeny, engine.VerdictRequireApproval, engine.VerdictIgnore),
	}
	if g.chance(0.8) {
		r.ID = g.uuid()
	}
	if g.chance(0.7) {
		r.Priority = pick(g, 0, 1, 5, 50, 99, 101, engine.MaxRulePriority, g.n(engine.MaxRulePriority+1))
	}
	r.Description = g.optText(0.4, 2000)
	if r.Description != nil && g.chance(0.2) {
		*r.Description = "line one\nline \"two\"\n\tthree `x` \\ end"
	}
	if g.chance(0.3) {
		s := g.uuid()
		r.SiteID = &s
	}
	if g.chance(0.4) {
		d := pick(g, 1, 15, 30, 59, 60, 61, 90, 120, 1439, engine.MaxRuleDurationMinutes, 1+g.n(engine.MaxRuleDurationMinutes))
		r.ApprovalDurationMinutes = &d
	}
	str := func(p float64, max int) *string { return g.optText(p, max) }
	neg := func(k engine.NegateKey) {
		if g.chance(0.3) {
			r.MatchNegate = append(r.MatchNegate, k)
		}
	}
	switch shape {
	case shapeExec:
		if len(groups) > 0 && g.chance(0.3) {
			id := pick(g, groups...).ID
			r.MatchSignerGroupID = &id
			neg(engine.NegSignerGroup)
		} else {
			r.MatchSigner = str(0.3, 255)
			neg(engine.NegSigner)
			if g.chance(0.2) {
				t := g.hex64()
				if g.chance(0.3) {
					t = "  " + t + " "
				}
				r.MatchSignerThumbprint = &t
				neg(engine.NegSignerThumbprint)
			}
		}
		if g.chance(0.2) {
			h := g.hex64()
			r.MatchHash = &h
			neg(engine.NegHash)
		}
		r.MatchPathGlob = str(0.4, 4096)
		neg(engine.NegPathGlob)
		r.MatchParentImage = str(0.2, 4096)
		neg(engine.NegParentImage)
		r.MatchCommandLine = str(0.2, 4096)
		neg(engine.NegCommandLine)
	case shapeTool:
		r.MatchToolName = str(0.5, 100)
		neg(engine.NegToolName)
		if g.chance(0.4) {
			t := g.n(5)
			r.MatchRiskTier = &t
			neg(engine.NegRiskTier)
		}
	}
	r.MatchUser = str(0.3, 255)
	neg(engine.NegUser)
	r.MatchAdGroup = str(0.2, 255)
	neg(engine.NegAdGroup)
	if g.chance(0.1) { // keys for criteria the rule lacks, and repeats
		r.MatchNegate = append(r.MatchNegate, pick(g, engine.NegateKeys...), pick(g, engine.NegateKeys...))
	}
	if g.chance(0.6) || !r.HasCriterion() {
		c := g.cond(shape, groups, g.n(5))
		if g.chance(0.05) {
			c = "  " + c + "  # trailing comment"
		}
		r.Condition = &c
	}
	if g.chance(0.4) {
		r.TimeWindow = g.window()
	}
	if g.chance(0.5) {
		r.CreatedByUserID = pick(g, g.uuid(), g.text(40))
	}
	r.CreatedAt = g.instant()
	r.UpdatedAt = g.instant()
	return r
}

func (g *gen) group(org, name string) engine.SignerGroup {
	grp := engine.SignerGroup{OrgID: org, Name: name, Description: g.optText(0.5, 300)}
	switch {
	case g.chance(0.2):
		grp.ID = DerivedID("signers", org, strings.TrimSpace(name))
	default:
		grp.ID = g.uuid()
	}
	for k := g.n(6); k > 0; k-- {
		cn := g.text(60)
		if strings.TrimSpace(cn) == "" {
			cn = "CN " + cn
		}
		tp := g.hex64()
		if g.chance(0.2) {
			tp = " " + tp + " "
		}
		switch g.n(4) {
		case 0:
			grp.Signers = append(grp.Signers, engine.CNEntry(cn))
		case 1:
			grp.Signers = append(grp.Signers, engine.SignerEntry{SubjectCN: &cn})
		case 2:
			grp.Signers = append(grp.Signers, engine.SignerEntry{Thumbprint: &tp})
		default:
			grp.Signers = append(grp.Signers, engine.SignerEntry{SubjectCN: &cn, Thumbprint: &tp})
		}
	}
	return grp
}

// bundle makes a bundle of normalised, valid rules, signer groups and org
// settings over a few orgs. Names are unique within an org; signer-group
// references point at groups of the rule's own org.
func (g *gen) bundle() *Bundle {
	b := &Bundle{Rules: []engine.Rule{}, SignerGroups: []engine.SignerGroup{}}
	orgs := []string{""}
	for k := g.n(3); k > 0; k-- {
		orgs = append(orgs, pick(g, "acme", "contoso", g.uuid(), `we"ird\org`, "日本", "org with spaces"))
	}
	seenOrg := map[string]bool{}
	for _, org := range orgs {
		if seenOrg[org] {
			continue
		}
		seenOrg[org] = true
		var groups []engine.SignerGroup
		names := map[string]bool{}
		for k := g.n(3); k > 0; k-- {
			name := strings.TrimSpace(g.text(40))
			if name == "" || names[name] {
				continue
			}
			names[name] = true
			grp := g.group(org, pick(g, name, " "+name+" "))
			if engine.ValidateSignerGroup(&grp) != nil {
				continue
			}
			groups = append(groups, engine.NormalizeSignerGroup(grp))
		}
		b.SignerGroups = append(b.SignerGroups, groups...)
		if g.chance(0.3) {
			c := OrgConfig{OrgID: org}
			if g.chance(0.7) {
				c.DefaultUnmatchedVerdict = pick(g, engine.VerdictAutoDeny, engine.VerdictRequireApproval)
			}
			if g.chance(0.5) {
				v := g.chance(0.5)
				c.UACInterceptionEnabled = &v
			}
			b.OrgConfigs = append(b.OrgConfigs, c)
		}
		ruleNames := map[string]bool{}
		for k := g.n(6); k > 0; k-- {
			name := g.text(80)
			if g.chance(0.1) {
				name = `quote " and \ backslash`
			}
			if ruleNames[name] {
				continue
			}
			r := g.rule(org, groups, name)
			if engine.ValidateRule(&r) != nil {
				continue
			}
			ruleNames[name] = true
			b.Rules = append(b.Rules, engine.NormalizeRule(r))
		}
	}
	return b
}
