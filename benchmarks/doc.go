// Package benchmarks holds Elevate's decision-latency and rule-compilation
// benchmarks.
//
// It has no exported API: everything lives in test files. A deterministic
// synthetic rule generator (fixed PCG seed) builds rule sets of 10 to 10,000
// realistic PAM rules, and BenchmarkDecide measures the indexed evaluator
// (engine.RuleSet.Decide) against the linear CEL reference loop
// (engine.RuleSet.DecideReference) on a late-matching and a non-matching
// uac_intercept observation. BenchmarkGlobAdversarial decides an
// observation whose 4,000-character path meets a path glob crafted against
// backtracking matchers. BenchmarkDSLLoadCompile, BenchmarkDSLStages and
// BenchmarkDSLRecompileChanged measure turning a generated .pam repository
// into a rule set (parse, lower and validate, compile), against
// BenchmarkJSONCompile on the same rules as API JSON. TestBenchmarkFixtures,
// TestGlobAdversarialFixture and TestDSLBenchmarkFixtures keep the fixtures
// honest in a plain `go test` run. See RESULTS.md for the
// measured numbers and the commands that reproduce them.
package benchmarks
