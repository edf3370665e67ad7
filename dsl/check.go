package dsl

import (
	"errors"

	"github.com/elevate-pam/elevate/engine"
)

// CheckOptions tune Check.
type CheckOptions struct {
	Strict bool              // lint warnings count as errors
	Run    func(string) bool // which tests to run (nil: all)
	NoLint bool
}

// Report is the result of checking a repository.
type Report struct {
	Diags   Diagnostics
	Tests   []TestResult
	RuleSet map[string]*engine.RuleSet // per org, when it compiled
}

// Failed counts failing tests.
func (r *Report) Failed() int {
	n := 0
	for _, t := range r.Tests {
		if !t.Passed {
			n++
		}
	}
	return n
}

// Check compiles every org of the repository, lints it and runs its test
// cases. Tests run only for orgs that compiled without errors.
func Check(repo *Repository, opts CheckOptions) *Report {
	rep := &Report{Diags: append(Diagnostics(nil), repo.Diags...), RuleSet: map[string]*engine.RuleSet{}}
	for _, org := range repo.Orgs {
		rs, err := Compile(org)
		if err != nil {
			rep.Diags = append(rep.Diags, compileDiags(org, err, SevError)...)
			continue
		}
		for _, issue := range rs.Issues() {
			rep.Diags = append(rep.Diags, compileDiags(org, issue, SevWarning)...)
		}
		rep.RuleSet[org.Name] = rs
		if !opts.NoLint {
			for _, d := range Lint(org, rs) {
				if opts.Strict {
					d.Severity = SevError
				}
				rep.Diags = append(rep.Diags, d)
			}
		}
	}
	rep.Diags.Sort()
	if rep.Diags.Errors() > 0 {
		return rep
	}
	for _, org := range repo.Orgs {
		rs := rep.RuleSet[org.Name]
		for _, tc := range org.Tests {
			if opts.Run != nil && !opts.Run(tc.Name) {
				continue
			}
			rep.Tests = append(rep.Tests, tc.Run(rs, org))
		}
	}
	return rep
}

// Compile compiles an org's rules and signer groups strictly.
func Compile(org *Org) (*engine.RuleSet, error) {
	return engine.Compile(org.Rules, org.Groups, engine.CompileOptions{})
}

// compileDiags places engine compile errors at the rules they name.
func compileDiags(org *Org, err error, sev Severity) Diagnostics {
	var ds Diagnostics
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var re *engine.RuleError
		at := Origin{}
		if errors.As(e, &re) && re.Index < len(org.RuleAt) {
			at = org.RuleAt[re.Index]
			e = re.Err
		}
		ds.add(sev, at.File, at.Pos, "", "%v", e)
	}
	return ds
}
