// Package policy holds Elevate's configuration policies: named bundles of
// feature settings (whether the agent captures UAC prompts, which software is
// allowed or blocked) attached to the partner → organization → site →
// device group → device hierarchy by assignments.
//
// The package has three parts. The model (Policy, Assignment, Level) is what
// the API stores and what rule files compile to. The feature registry
// (Features, LookupFeature) declares each feature's settings once, with both
// their JSON and rule-file spellings, so the API and the rule-file compiler
// validate settings through the same code and report the same problems.
// Validation (ValidatePolicy, CompileCondition) checks a whole policy and
// reports every problem as an engine.FieldErrors with a path into the
// policy's JSON form, the way engine.ValidateRule does for rules.
//
// Resolution (Resolver, Cache) decides which policy supplies each feature
// to a device: the closest level with an applicable assignment, then the
// assignment priority, then the earliest assignment (pam-semantics §10 and
// §14.1), with an explanation of every assignment passed over. It uses
// Level.Rank's order, the compiled assignment conditions (EvalCondition)
// and the per-feature decoders (Feature.Decode, PamSettings,
// SoftwarePolicyFrom).
//
// This package depends on engine (for its error types and the software-policy
// model) and on CEL; it knows nothing of the store or the server.
package policy
