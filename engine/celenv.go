package engine

import (
	"crypto/subtle"
	"fmt"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
)

// The CEL environment every rule compiles in. Two variables:
//
//	obs  map(string, dyn)  the observation, keyed by its JSON field names;
//	                       a field the observation lacks is absent from the
//	                       map, so has(obs.x) is the presence test
//	at   timestamp         the evaluation instant
//
// and the functions of the matching semantics (pam-semantics §2, §3):
//
//	eqFold(a, b)                     case-insensitive equality (strings.EqualFold)
//	containsFold(s, sub)             case-insensitive substring
//	pathGlob(path, glob)             the path-glob dialect of §2.1
//	thumbprintEq(a, b)               both 64 hex, constant-time equal
//	signerEntry(obs, cn, thumbprint) one signer-group entry against the observation
//	inWindow(at, start, end, days, zone)
//	                                 minutes since midnight, day bit mask (-1 = every day)

// Observation keys in obs; also used by explain.
const (
	keyUser       = "subjectUsername"
	keyPath       = "targetExecutablePath"
	keyHash       = "targetExecutableHash"
	keySigner     = "targetExecutableSigner"
	keyThumbprint = "targetExecutableSignerThumbprint"
	keyParent     = "parentImage"
	keyCmdline    = "commandLine"
	keyGroups     = "adGroups"
	keyTool       = "toolName"
	keyRisk       = "riskTier"
)

// celCostLimit bounds every program's cost. Compile checks each program's
// worst-case estimate against it (the largest legal rule — a full signer
// group of maximal entries plus maximal path, parent and command-line
// criteria — estimates at about 2.2 million), and evaluation runs under it
// as well; exceeding it at run time is an evaluation error, which fails safe
// to pending.
const celCostLimit = 10_000_000

// celMaxSourceSize bounds a rule program's source (code points): the
// largest legal rule, a full signer group of maximal entries, needs ~170k.
const celMaxSourceSize = 1_000_000

var (
	celEnvOnce sync.Once
	celEnvVal  *cel.Env
	celEnvErr  error
)

func celEnv() (*cel.Env, error) {
	celEnvOnce.Do(func() { celEnvVal, celEnvErr = newCELEnv() })
	return celEnvVal, celEnvErr
}

func boolFn2(f func(a, b string) bool) cel.OverloadOpt {
	return cel.BinaryBinding(func(a, b ref.Val) ref.Val {
		x, ok1 := a.(types.String)
		y, ok2 := b.(types.String)
		if !ok1 || !ok2 {
			return types.NewErr("expected two strings, got %s and %s", a.Type(), b.Type())
		}
		return types.Bool(f(string(x), string(y)))
	})
}

func newCELEnv() (*cel.Env, error) {
	return cel.NewEnv(
		// A 500-entry signer group of 255-character CNs is a legal rule and
		// compiles to a list literal larger than CEL's default 100,000.
		cel.ParserExpressionSizeLimit(celMaxSourceSize),
		cel.Variable("obs", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("at", cel.TimestampType),
		cel.Function("eqFold", cel.Overload("eqFold_string_string",
			[]*cel.Type{cel.StringType, cel.StringType}, cel.BoolType, boolFn2(strings.EqualFold))),
		cel.Function("containsFold", cel.Overload("containsFold_string_string",
			[]*cel.Type{cel.StringType, cel.StringType}, cel.BoolType, boolFn2(containsFold))),
		cel.Function("pathGlob", cel.Overload("pathGlob_string_string",
			[]*cel.Type{cel.StringType, cel.StringType}, cel.BoolType, boolFn2(func(path, glob string) bool { return globMatchDP(glob, path) }))),
		cel.Function("thumbprintEq", cel.Overload("thumbprintEq_string_string",
			[]*cel.Type{cel.StringType, cel.StringType}, cel.BoolType, boolFn2(thumbprintEqual))),
		cel.Function("signerEntry", cel.Overload("signerEntry_map_string_string",
			[]*cel.Type{cel.MapType(cel.StringType, cel.DynType), cel.StringType, cel.StringType}, cel.BoolType,
			cel.FunctionBinding(celSignerEntry))),
		cel.Function("inWindow", cel.Overload("inWindow_timestamp_int_int_int_string",
			[]*cel.Type{cel.TimestampType, cel.IntType, cel.IntType, cel.IntType, cel.StringType}, cel.BoolType,
			cel.FunctionBinding(celInWindow))),
	)
}

// thumbprintEqual lowercases both sides, requires both to be 64 hex and
// compares in constant time.
func thumbprintEqual(a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	if !IsHex64(a) || !IsHex64(b) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func mapString(m traits.Mapper, key string) (string, bool) {
	v, found := m.Find(types.String(key))
	if !found {
		return "", false
	}
	s, ok := v.(types.String)
	return string(s), ok
}

// celSignerEntry: an entry with a thumbprint needs the candidate's
// thumbprint to equal it (no fallback to the CN); an entry with a CN needs
// the candidate's CN to equal it case-insensitively; both fields, both hold.
func celSignerEntry(args ...ref.Val) ref.Val {
	m, ok := args[0].(traits.Mapper)
	cn, ok2 := args[1].(types.String)
	tp, ok3 := args[2].(types.String)
	if !ok || !ok2 || !ok3 {
		return types.NewErr("signerEntry: bad arguments")
	}
	if cn == "" && tp == "" {
		return types.False
	}
	if tp != "" {
		obsTP, has := mapString(m, keyThumbprint)
		if !has || !thumbprintEqual(obsTP, string(tp)) {
			return types.False
		}
	}
	if cn != "" {
		obsCN, has := mapString(m, keySigner)
		if !has || !strings.EqualFold(obsCN, string(cn)) {
			return types.False
		}
	}
	return types.True
}

func celInWindow(args ...ref.Val) ref.Val {
	ts, ok := args[0].(types.Timestamp)
	start, ok2 := args[1].(types.Int)
	end, ok3 := args[2].(types.Int)
	days, ok4 := args[3].(types.Int)
	zone, ok5 := args[4].(types.String)
	if !ok || !ok2 || !ok3 || !ok4 || !ok5 {
		return types.NewErr("inWindow: bad arguments")
	}
	loc, err := LoadZone(string(zone))
	if err != nil {
		return types.False
	}
	return types.Bool(windowActive(ts.Time.In(loc), int(start), int(end), int64(days)))
}

// celActivation hands the two variables to a program without a map per
// evaluation.
type celActivation struct {
	obs ref.Val
	at  ref.Val
}

func (a *celActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "obs":
		return a.obs, true
	case "at":
		return a.at, true
	}
	return nil, false
}

func (a *celActivation) Parent() interpreter.Activation { return nil }

// newActivation builds the CEL view of a candidate. Only the fields its flow
// carries are present.
func newActivation(c *candidate) *celActivation {
	m := make(map[ref.Val]ref.Val, 10)
	put := func(k, v string) {
		if v != "" {
			m[types.String(k)] = types.String(v)
		}
	}
	put(keyUser, c.raw.SubjectUsername)
	put(keyPath, c.raw.TargetExecutablePath)
	put(keyHash, c.raw.TargetExecutableHash)
	put(keySigner, c.raw.TargetExecutableSigner)
	put(keyThumbprint, c.raw.TargetExecutableSignerThumbprint)
	put(keyParent, c.raw.ParentImage)
	put(keyCmdline, c.raw.CommandLine)
	put(keyTool, c.raw.ToolName)
	if c.raw.AdGroups != nil {
		m[types.String(keyGroups)] = types.NewStringList(types.DefaultTypeAdapter, c.raw.AdGroups)
	}
	if c.raw.RiskTier != nil {
		m[types.String(keyRisk)] = types.Int(*c.raw.RiskTier)
	}
	return &celActivation{
		obs: types.NewRefValMap(types.DefaultTypeAdapter, m),
		at:  types.Timestamp{Time: c.at},
	}
}

// celQuote renders s as a CEL string literal.
func celQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == 0xFFFD:
			b.WriteString(`\ufffd`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// evalBool runs a program and insists on a boolean result.
func evalBool(p cel.Program, act *celActivation) (bool, error) {
	out, _, err := p.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("rule program returned %s, not a bool", out.Type())
	}
	return bool(b), nil
}
