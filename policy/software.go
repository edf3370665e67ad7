package policy

import (
	"encoding/json"
	"fmt"

	"github.com/elevate-pam/elevate/engine"
)

// The software_policy feature is the list of executables a device allows,
// blocks or audits; the engine's bridge consults it for uac_intercept before
// any PAM rule (pam-semantics §5). The declarations below give the shape and
// limits of each key; what an entry means (a SHA-256 must be 64 hex, a
// criterion must not be empty) is checked by engine.ValidateSoftwarePolicy,
// the same function the bridge runs, so the two cannot disagree.

var softwareFeature = &Feature{
	Name:    FeatureSoftwarePolicy,
	DSLName: "software",
	Doc:     "executables the device allows, blocks or only audits, consulted before PAM rules for UAC prompts",
	Settings: []Setting{
		{
			JSONKey: "mode", DSLKey: "mode", Kind: KindEnum, Required: true,
			Enum: []string{string(engine.ModeAllowlist), string(engine.ModeBlocklist), string(engine.ModeAudit)},
			Doc:  "allowlist approves a hit for 15 minutes, blocklist denies it, audit only records it",
		},
		{
			JSONKey: "priority", DSLKey: "priority", Kind: KindInt, Min: 0, Max: engine.MaxRulePriority, Default: 0,
			Doc: "when several software policies apply, the higher priority wins among hits of equal strength",
		},
		{
			JSONKey: "executable", DSLKey: "executable", Kind: KindObjectList,
			Doc: "the executables the policy names; per entry the first of sha256, signer, publisher, pathGlob that matches counts",
			Fields: []Setting{
				{JSONKey: "name", DSLKey: "name", Kind: KindString, Min: 1, Max: 255, Required: true,
					Doc: "a label for the entry; an entry with only a name never matches"},
				{JSONKey: "sha256", DSLKey: "sha256", Kind: KindString,
					Doc: "SHA-256 of the executable, 64 hexadecimal characters (case-insensitive)"},
				{JSONKey: "signer", DSLKey: "signer", Kind: KindString, Min: 1, Max: 255,
					Doc: "code-signing subject, compared trimmed and case-insensitively"},
				{JSONKey: "publisher", DSLKey: "publisher", Kind: KindString, Min: 1, Max: 255,
					Doc: "publisher name; agents do not report one today, so it never matches in practice"},
				{JSONKey: "pathGlob", DSLKey: "path_glob", Kind: KindString, Min: 1, Max: 4096,
					Doc: "path glob in the rule dialect (case-insensitive, * within a segment, ** across)"},
			},
		},
	},
	check: checkSoftware,
}

// checkSoftware runs the engine's own software-policy checks over whatever
// of the settings has the right shape. Entries keep their indexes (an entry
// that is not an object is checked as an empty one), so the engine's paths
// are already the settings paths.
func checkSoftware(m map[string]any) engine.FieldErrors {
	var sp engine.SoftwarePolicy
	if mode, ok := m["mode"].(string); ok {
		sp.Mode = engine.SoftwarePolicyMode(mode)
	}
	list, _ := m["executable"].([]any)
	for _, item := range list {
		obj, _ := item.(map[string]any)
		str := func(k string) *string {
			if s, ok := obj[k].(string); ok {
				return &s
			}
			return nil
		}
		var e engine.SoftwarePolicyEntry
		if n := str("name"); n != nil {
			e.Name = *n
		}
		e.SHA256, e.Signer, e.Publisher, e.PathGlob = str("sha256"), str("signer"), str("publisher"), str("pathGlob")
		sp.Executable = append(sp.Executable, e)
	}
	if err := engine.ValidateSoftwarePolicy(&sp); err != nil {
		return asFieldErrors(err)
	}
	return nil
}

// SoftwarePolicyFrom turns a policy's software_policy feature into the
// engine's model: ID and name are the policy's, IsActive is the policy's
// Active flag, and mode, priority (default 0) and entries come from the
// settings, verbatim (the engine trims and folds case when it matches).
// present is false when the policy has no software_policy feature. err is an
// engine.FieldErrors with paths under "features.software_policy" when the
// settings are invalid.
func SoftwarePolicyFrom(p *Policy) (*engine.SoftwarePolicy, bool, error) {
	if p == nil {
		return nil, false, nil
	}
	raw, ok := p.Features[FeatureSoftwarePolicy]
	if !ok {
		return nil, false, nil
	}
	if err := softwareFeature.Validate(raw); err != nil {
		return nil, true, prefixed("features."+FeatureSoftwarePolicy, asFieldErrors(err))
	}
	// Validation has ruled out unknown, duplicate and mistyped keys, so the
	// plain decoder reads exactly what was validated.
	var s struct {
		Mode       engine.SoftwarePolicyMode    `json:"mode"`
		Priority   int                          `json:"priority"`
		Executable []engine.SoftwarePolicyEntry `json:"executable"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, true, fmt.Errorf("features.%s: %w", FeatureSoftwarePolicy, err)
	}
	if s.Executable == nil {
		s.Executable = []engine.SoftwarePolicyEntry{}
	}
	return &engine.SoftwarePolicy{
		ID:         p.ID,
		Name:       p.Name,
		Mode:       s.Mode,
		Priority:   s.Priority,
		IsActive:   p.Active,
		Executable: s.Executable,
	}, true, nil
}
