// Package dsl is Elevate's rule language as a tool: it loads a policy
// repository (a directory tree of .pam files), lowers rules, signer groups,
// configuration policies, org settings and test cases to the engine's and
// the policy package's types through the same validators the API uses, and
// reports every problem as a Diagnostic with file:line:col. On top of that
// it checks (compile, lint, run tests) and converts between the API's JSON
// and rule files without loss.
//
// The text itself — lexer, parser, tree and the one canonical printer — is
// in dsl/syntax; the language is described in LANGUAGE.md.
package dsl
