// Package engine is Elevate's decision core: the rule model, its validation,
// compilation of every rule to a type-checked CEL program plus native matchers,
// the indexed evaluator that decides an observation, and the explain trace.
//
// The flow is Compile → RuleSet → Decide. A RuleSet is immutable and safe for
// concurrent use; a changed rule set is compiled beside the old one and
// swapped by the caller. Each rule's CEL program is the reference semantics
// (RuleSet.DecideReference walks the rules through CEL alone); the hot path
// (RuleSet.Decide) looks rules up through an index of their plain-equality
// criteria and path-glob literals and evaluates native matchers. The two paths
// are proved to agree by a differential test and a fuzz target.
//
// The engine never approves by accident: any error on the decision path —
// a CEL evaluation error, a rule that could not be compiled, a panic — yields
// the outcome "pending" (a human decides), never an approval or a denial.
//
// This package imports neither the store nor the server; both depend on it.
package engine
