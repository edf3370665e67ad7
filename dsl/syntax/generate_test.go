package syntax

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// gen writes random valid .pam files in random layouts: any spacing, line
// breaks and comments wherever the grammar allows them, so the formatter's
// promises (idempotent, tree-preserving, no comment lost) are tested on
// far more shapes than the hand-written corpus has. Byte-level fuzzing
// rarely produces a file that parses cleanly and still has comments in
// odd places; this does so every time.
type gen struct {
	r *rand.Rand
	b strings.Builder
	n int // comments written, to make each one unique
}

func (g *gen) chance(n int) bool { return g.r.IntN(n) == 0 }

// comment writes a comment; the caller ends the line.
func (g *gen) comment() {
	g.n++
	fmt.Fprintf(&g.b, "#c%d", g.n)
	if g.chance(3) {
		g.b.WriteString(" text  ")
	}
}

// sp separates two tokens on one line.
func (g *gen) sp() {
	if g.chance(4) {
		g.b.WriteString("\t ")
	} else {
		g.b.WriteString(" ")
	}
}

// br separates two tokens where a line break is allowed: a space, or line
// breaks with blank lines, comments at their ends and comment lines.
func (g *gen) br() {
	if !g.chance(3) {
		g.sp()
		return
	}
	if g.chance(2) {
		g.sp()
		g.comment()
	}
	g.b.WriteString("\n")
	for g.chance(2) {
		if g.chance(2) {
			g.b.WriteString("\n")
		} else {
			g.b.WriteString("  ")
			g.comment()
			g.b.WriteString("\n")
		}
	}
	g.b.WriteString("    ")
}

// eol ends a field or declaration line, with blank lines and comments.
func (g *gen) eol() {
	if g.chance(3) {
		g.sp()
		g.comment()
	}
	g.b.WriteString("\n")
	for g.chance(2) {
		switch g.r.IntN(3) {
		case 0:
			g.b.WriteString("\n")
		case 1:
			g.b.WriteString("\n\n\n")
		default:
			g.b.WriteString("  ")
			g.comment()
			g.b.WriteString("\n")
		}
	}
}

var genStrings = []string{
	"", "plain", "Mozilla Corporation", `C:\Users\*\Downloads\*.exe`, `acme\bob`, `say "hi"`,
	"back`quote", "line\nbreak", "tab\there", "é → ü", `obs.x == "y"`, "#hash", "\\", "\"", "a\u2028b",
}

func (g *gen) str() {
	v := genStrings[g.r.IntN(len(genStrings))]
	g.b.WriteString(g.spell(v))
}

// spell writes a string value as a quoted or, when possible, raw literal.
func (g *gen) spell(v string) string {
	if !strings.ContainsAny(v, "`\n\t\r") && g.chance(2) {
		return "`" + v + "`"
	}
	if g.chance(2) {
		return Quote(v)
	}
	// Quoted with every escape the lexer knows, spelled differently.
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && g.chance(4):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (g *gen) pick(words ...string) string { return words[g.r.IntN(len(words))] }

func (g *gen) dur() string {
	return g.pick("30m", "2h", "1h30m", "90m", "120m", "0m", "1h0m", "007m", "45m")
}

func (g *gen) expr(depth int) {
	if depth > 0 {
		switch g.r.IntN(6) {
		case 0:
			g.b.WriteString("not")
			g.br()
			g.expr(depth - 1)
			return
		case 1:
			g.b.WriteString("(")
			if g.chance(2) {
				g.br()
			}
			g.expr(depth - 1)
			if g.chance(2) {
				g.br()
			}
			g.b.WriteString(")")
			return
		case 2, 3:
			g.expr(depth - 1)
			g.br()
			g.b.WriteString(g.pick("and", "or"))
			g.br()
			g.expr(depth - 1)
			return
		}
	}
	if g.chance(8) {
		g.b.WriteString("cel")
		g.br()
		g.str()
		return
	}
	c := Criteria[g.r.IntN(len(Criteria))]
	ops := CriterionOps(c)
	op := ops[g.r.IntN(len(ops))]
	g.b.WriteString(c)
	g.br()
	g.b.WriteString(op)
	g.br()
	elem := g.str
	if c == "risk" {
		elem = func() { g.b.WriteString(strconv.Itoa(g.r.IntN(5))) }
	}
	switch {
	case op == "in" && c == "signer" && g.chance(2):
		g.b.WriteString("signers")
		g.br()
		g.b.WriteString("(")
		g.br()
		g.str()
		g.br()
		g.b.WriteString(")")
	case op == "in":
		g.b.WriteString("[")
		n := 1 + g.r.IntN(3)
		for i := 0; i < n; i++ {
			g.br()
			elem()
			if i < n-1 || g.chance(3) {
				g.b.WriteString(",")
			}
		}
		g.br()
		g.b.WriteString("]")
	default:
		elem()
	}
}

// fields writes a random subset of fields, each at most once unless it
// may repeat, in random order.
func (g *gen) fields(write map[string]func()) {
	keys := make([]string, 0, len(write))
	for k := range write {
		keys = append(keys, k)
	}
	// map order is random but not seeded; sort, then shuffle with g.r
	slicesSort(keys)
	g.r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, k := range keys {
		if g.chance(3) {
			continue
		}
		reps := 1
		if k == "cn" || k == "thumbprint" || k == "assign" || k == "feature" {
			reps = g.r.IntN(3)
		}
		for range reps {
			g.b.WriteString("  " + k)
			g.sp()
			write[k]()
			g.eol()
		}
	}
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func (g *gen) body(depth int) {
	g.b.WriteString("{")
	n := g.r.IntN(4)
	for i := 0; i < n; i++ {
		if g.chance(2) {
			g.eol()
			g.b.WriteString("  ")
		} else {
			g.sp()
		}
		key := g.pick("a", "bb", "default_outcome", "uac_interception", "rule", "ttl", "x_1")
		g.b.WriteString(key)
		if depth > 0 && key != "rule" && g.chance(4) {
			g.sp()
			if g.chance(2) {
				g.str()
				g.sp()
			}
			g.body(depth - 1)
			continue
		}
		g.br()
		g.b.WriteString("=")
		g.br()
		g.scalar(true)
	}
	if g.chance(2) {
		g.eol()
	} else {
		g.sp()
	}
	g.b.WriteString("}")
}

func (g *gen) scalar(list bool) {
	switch g.r.IntN(7) {
	case 0:
		g.str()
	case 1:
		g.b.WriteString(strconv.Itoa(g.r.IntN(300)))
	case 2:
		g.b.WriteString(g.dur())
	case 3:
		g.b.WriteString(g.pick("08:00", "8:00", "23:59"))
	case 4:
		g.b.WriteString(g.pick("2026-06-15T10:00:00Z", "2026-06-15T10:00:00+01:00"))
	case 5:
		g.b.WriteString(g.pick("true", "false", "pending", "denied"))
	default:
		if !list {
			g.str()
			return
		}
		g.b.WriteString("[")
		n := g.r.IntN(3)
		for i := 0; i < n; i++ {
			g.br()
			g.scalar(false)
			if i < n-1 || g.chance(3) {
				g.b.WriteString(",")
			}
		}
		g.br()
		g.b.WriteString("]")
	}
}

func (g *gen) file() string {
	g.b.Reset()
	if g.chance(4) {
		g.eol()
	}
	n := g.r.IntN(5)
	for i := 0; i < n; i++ {
		kind := g.pick(KindOrg, KindSettings, KindRule, KindRule, KindSigners, KindPolicy, KindTest)
		g.b.WriteString(kind)
		if kind != KindSettings {
			g.br()
			g.str()
		}
		switch kind {
		case KindOrg:
		case KindSettings:
			g.br()
			g.body(2)
		default:
			g.br()
			g.b.WriteString("{")
			g.eol()
			g.blockFields(kind)
			g.b.WriteString("}")
		}
		g.eol()
	}
	return g.b.String()
}

func (g *gen) blockFields(kind string) {
	word := func(w ...string) func() { return func() { g.b.WriteString(g.pick(w...)) } }
	stamp := word("2026-06-15T10:00:00Z", "2026-01-02T03:04:05+01:00")
	switch kind {
	case KindRule:
		g.fields(map[string]func(){
			"id": g.str, "description": g.str, "site": g.str, "created_by": g.str,
			"enabled":  word("true", "false"),
			"priority": word("0", "5", "050"),
			"created":  stamp, "updated": stamp,
			"when": func() { g.expr(3) },
			"during": func() {
				if g.chance(3) {
					n := 1 + g.r.IntN(3)
					for i := 0; i < n; i++ {
						if i > 0 {
							g.b.WriteString(",")
							g.br()
						}
						g.b.WriteString(g.pick(Days...))
						if g.chance(2) {
							g.br()
							g.b.WriteString("-")
							g.br()
							g.b.WriteString(g.pick(Days...))
						}
					}
					g.br()
				}
				g.b.WriteString(g.pick("08:00", "8:00", "22:00"))
				g.br()
				g.b.WriteString("-")
				g.br()
				g.b.WriteString(g.pick("18:00", "6:00"))
				if g.chance(2) {
					g.br()
					g.str()
				}
			},
			"then": func() {
				g.b.WriteString(g.pick(Verdicts...))
				if g.chance(2) {
					g.br()
					g.b.WriteString("for")
					g.br()
					g.b.WriteString(g.dur())
				}
			},
		})
	case KindSigners:
		g.fields(map[string]func(){
			"id": g.str, "description": g.str,
			"cn": func() {
				g.str()
				if g.chance(2) {
					g.sp()
					g.b.WriteString("thumbprint")
					g.sp()
					g.str()
				}
			},
			"thumbprint": g.str,
		})
	case KindPolicy:
		g.fields(map[string]func(){
			"id": g.str, "description": g.str, "enabled": word("true", "false"),
			"feature": func() {
				g.b.WriteString(g.pick("pam", "software"))
				g.br()
				g.body(1)
			},
			"assign": func() {
				g.b.WriteString(g.pick("partner", "org", "site", "group", "device"))
				g.sp()
				g.str()
				if g.chance(2) {
					g.sp()
					g.b.WriteString("priority")
					g.sp()
					g.b.WriteString("3")
				}
				if g.chance(2) {
					g.sp()
					g.b.WriteString("when")
					g.sp()
					g.str()
				}
			},
		})
	case KindTest:
		g.fields(map[string]func(){
			"description": g.str, "site": g.str, "at": stamp,
			"flow":     word("uac_intercept", "ai_tool_action"),
			"observe":  func() { g.body(1) },
			"settings": func() { g.body(1) },
			"expect": func() {
				g.b.WriteString(g.pick(Outcomes...))
				if g.chance(2) {
					g.br()
					g.b.WriteString("by")
					g.br()
					if g.chance(2) {
						g.str()
					} else {
						g.b.WriteString(g.pick("default", "software_policy"))
					}
				}
				if g.chance(2) {
					g.br()
					g.b.WriteString("for")
					g.br()
					g.b.WriteString(g.dur())
				}
			},
		})
	}
}

func TestFormatRandomFiles(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	g := &gen{r: rand.New(rand.NewPCG(11, 12))}
	for i := 0; i < n; i++ {
		src := g.file()
		ok := t.Run(strconv.Itoa(i), func(t *testing.T) {
			checkFormat(t, src)
		})
		if !ok {
			t.Fatalf("source:\n%s", numbered(src))
		}
	}
}

// FuzzFormatGenerated drives the generator from fuzzer-chosen seeds.
func FuzzFormatGenerated(f *testing.F) {
	for i := range 8 {
		f.Add(uint64(i), uint64(i*7+1))
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		g := &gen{r: rand.New(rand.NewPCG(a, b))}
		src := g.file()
		if _, errs := ParseFile("gen.pam", src); len(errs) > 0 {
			t.Fatalf("generated file does not parse: %v\n%s", errs, numbered(src))
		}
		checkFormat(t, src)
	})
}
