package policy

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
)

// An assignment condition narrows where an assignment applies beyond its
// level and target: a CEL expression over one variable,
//
//	device  map(string, dyn)  the device's attributes: os, hostname, site,
//	                          groups (list), tags (list), role, …
//
// that must type-check to bool, e.g. `device.os == "windows" && "kiosk" in
// device.tags`. An attribute the device lacks is absent from the map, so
// has(device.x) is the presence test; reading an absent attribute is an
// evaluation error, not false. Conditions apply to every feature
// (pam-semantics §14.1), unlike Breeze's role/OS filters.

// MaxConditionLength bounds a condition's source, in characters. Conditions
// are short device filters; the bound keeps parse and check cost small.
const MaxConditionLength = 4096

// conditionCostLimit bounds one evaluation, so a condition that loops over
// a huge attribute list fails instead of stalling resolution.
const conditionCostLimit = 1_000_000

var (
	condEnvOnce sync.Once
	condEnvVal  *cel.Env
	condEnvErr  error
)

func conditionEnv() (*cel.Env, error) {
	condEnvOnce.Do(func() {
		condEnvVal, condEnvErr = cel.NewEnv(
			cel.Variable("device", cel.MapType(cel.StringType, cel.DynType)),
			cel.ParserExpressionSizeLimit(MaxConditionLength),
		)
	})
	return condEnvVal, condEnvErr
}

// ConditionError is one problem in a condition's source. Line and Col are
// 1-based and count characters (code points) within the condition, so a
// rule-file compiler can add the position where the condition starts.
type ConditionError struct {
	Line, Col int
	Msg       string
}

func (e ConditionError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// ConditionErrors is every problem CEL found in one condition, in source
// order.
type ConditionErrors []ConditionError

func (es ConditionErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// ConditionIssues parses and type-checks a condition and returns its
// problems; nil means it compiles.
func ConditionIssues(src string) []ConditionError {
	_, errs := checkCondition(src)
	return errs
}

func checkCondition(src string) (*cel.Ast, ConditionErrors) {
	if n := utf8.RuneCountInString(src); n > MaxConditionLength {
		return nil, ConditionErrors{{Line: 1, Col: 1, Msg: fmt.Sprintf("condition is %d characters long; the limit is %d", n, MaxConditionLength)}}
	}
	env, err := conditionEnv()
	if err != nil {
		return nil, ConditionErrors{{Line: 1, Col: 1, Msg: err.Error()}}
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		var errs ConditionErrors
		for _, e := range iss.Errors() {
			line, col := position(e.Location.Line(), e.Location.Column())
			errs = append(errs, ConditionError{Line: line, Col: col, Msg: e.Message})
		}
		return nil, errs
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) {
		line, col := exprStart(ast)
		msg := fmt.Sprintf("condition must be a bool expression, not %s", t)
		if t.IsExactType(types.DynType) {
			msg += " (compare the attribute explicitly, e.g. `device.x == true`)"
		}
		return nil, ConditionErrors{{Line: line, Col: col, Msg: msg}}
	}
	// A condition that reads nothing of the device has one outcome for
	// every device; one that always fails would make the resolution of
	// every device it is assigned to an error.
	if !readsDevice(ast) {
		if prg, err := env.Program(ast, cel.CostLimit(conditionCostLimit)); err == nil {
			if _, err := evalCondition(prg, map[string]any{"device": map[string]any{}}); err != nil {
				line, col := exprStart(ast)
				return nil, ConditionErrors{{Line: line, Col: col, Msg: "condition reads nothing of the device and always fails: " + err.Error()}}
			}
		}
	}
	return ast, nil
}

// readsDevice reports whether a checked condition refers to the device.
func readsDevice(ast *cel.Ast) bool {
	for _, ref := range ast.NativeRep().ReferenceMap() {
		if ref.Name == "device" {
			return true
		}
	}
	return false
}

// position converts CEL's 1-based line and 0-based column to 1-based both.
// CEL reports some problems without a position, or before the first
// character (an empty source); those point at the start.
func position(line, col0 int) (int, int) {
	if line < 1 {
		return 1, 1
	}
	return line, max(col0+1, 1)
}

// exprStart is where the whole expression begins: the smallest offset of
// any of its nodes (the root node of "a.b" or "1 + 2" sits at the operator).
func exprStart(ast *cel.Ast) (int, int) {
	info := ast.NativeRep().SourceInfo()
	start := int32(-1)
	for _, r := range info.OffsetRanges() {
		if start < 0 || r.Start < start {
			start = r.Start
		}
	}
	if start < 0 {
		return 1, 1
	}
	loc := info.GetLocationByOffset(start)
	return position(loc.Line(), loc.Column())
}

// CompileCondition parses and type-checks a condition and returns a program
// that is safe for concurrent use. A source problem is a ConditionErrors.
func CompileCondition(src string) (cel.Program, error) {
	ast, errs := checkCondition(src)
	if errs != nil {
		return nil, errs
	}
	env, err := conditionEnv()
	if err != nil {
		return nil, err
	}
	return env.Program(ast, cel.CostLimit(conditionCostLimit))
}

// EvalCondition runs a compiled condition against a device's attributes.
// An error (an absent attribute read, a type mismatch, the cost limit) means
// the condition could not be decided; the caller chooses how that resolves.
func EvalCondition(prg cel.Program, device map[string]any) (bool, error) {
	if device == nil {
		device = map[string]any{}
	}
	return evalCondition(prg, map[string]any{"device": device})
}

// evalCondition runs a condition on a prepared input: the variables as a
// map, or an activation made once for several conditions.
func evalCondition(prg cel.Program, vars any) (bool, error) {
	out, _, err := prg.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition returned %s, not a bool", out.Type())
	}
	return bool(b), nil
}
