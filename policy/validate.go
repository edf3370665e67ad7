package policy

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/elevate-pam/elevate/engine"
)

// Limits of the policy model, in characters.
const (
	maxPolicyNameLength  = 255
	maxDescriptionLength = 2000
	maxTargetLength      = 255
)

// ValidatePolicy checks a policy as written through the API or compiled from
// a rule file and returns nil or an engine.FieldErrors with paths into the
// policy's JSON form: "name", "features.pam.uacInterceptionEnabled",
// "assignments[1].condition". Features are checked in name order. A policy
// with no features or no assignments is valid (it does nothing; that is for
// a linter to point out).
func ValidatePolicy(p *Policy) error {
	var es engine.FieldErrors
	add := func(field, format string, args ...any) {
		es = append(es, &engine.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	for _, f := range []struct{ name, v string }{{"id", p.ID}, {"orgId", p.OrgID}, {"partnerId", p.PartnerID}} {
		if f.v != "" && !engine.IsUUID(f.v) {
			add(f.name, "must be a UUID")
		}
	}
	if n := utf8.RuneCountInString(p.Name); strings.TrimSpace(p.Name) == "" {
		add("name", "is required")
	} else if n > maxPolicyNameLength {
		add("name", "must be at most %d characters", maxPolicyNameLength)
	}
	if d := p.Description; d != nil && utf8.RuneCountInString(*d) > maxDescriptionLength {
		add("description", "must be at most %d characters", maxDescriptionLength)
	}

	names := make([]string, 0, len(p.Features))
	for name := range p.Features {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path := "features." + name
		f, ok := featureByName(name)
		if !ok {
			reason := fmt.Sprintf("unknown feature %q; known: %s", name, featureNames())
			if g, ok := LookupFeature(name); ok {
				reason += fmt.Sprintf("; did you mean %q?", g.Name)
			}
			add(path, "%s", reason)
			continue
		}
		if err := f.Validate(p.Features[name]); err != nil {
			es = append(es, prefixed(path, asFieldErrors(err))...)
		}
	}

	seen := map[string]int{}
	for i, a := range p.Assignments {
		path := fmt.Sprintf("assignments[%d]", i)
		if a.ID != "" && !engine.IsUUID(a.ID) {
			add(path+".id", "must be a UUID")
		}
		switch {
		case a.Level == "":
			add(path+".level", "is required; must be one of %s", levelNames())
		case !a.Level.Valid():
			reason := fmt.Sprintf("%q: must be one of %s", a.Level, levelNames())
			if l, ok := ParseLevel(string(a.Level)); ok {
				reason += fmt.Sprintf("; did you mean %q?", l)
			}
			add(path+".level", "%s", reason)
		}
		if n := utf8.RuneCountInString(a.Target); strings.TrimSpace(a.Target) == "" {
			add(path+".targetId", "is required")
		} else if n > maxTargetLength {
			add(path+".targetId", "must be at most %d characters", maxTargetLength)
		}
		if a.Priority < 0 || a.Priority > MaxAssignmentPriority {
			add(path+".priority", "must be between %d and %d", 0, MaxAssignmentPriority)
		}
		if a.Condition != "" {
			if errs := ConditionIssues(a.Condition); errs != nil {
				add(path+".condition", "%s", ConditionErrors(errs).Error())
			}
		}
		if a.Level.Valid() && strings.TrimSpace(a.Target) != "" {
			key := string(a.Level) + "\x00" + targetKey(a.Target)
			if j, dup := seen[key]; dup {
				add(path, "assigns the policy to the same %s as assignments[%d]; a policy attaches to each target once", a.Level, j)
			} else {
				seen[key] = i
			}
		}
	}
	return orNil(es)
}

// targetKey is how two targets are compared for duplicates: UUIDs ignore
// case (they name the same node however they are spelled); names, which
// only rule files use, are compared exactly.
func targetKey(t string) string {
	if engine.IsUUID(t) {
		return strings.ToLower(t)
	}
	return t
}

func levelNames() string {
	s := make([]string, len(levels))
	for i, l := range levels {
		s[i] = string(l)
	}
	return strings.Join(s, ", ")
}
