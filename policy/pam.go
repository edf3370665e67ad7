package policy

// The pam feature controls one thing: whether the agent captures UAC prompts
// (pam-semantics §10.1). Capture is opt-in, so an absent flag means off.
// Rules, the approval queue and audit are org/site-scoped and not part of
// the hierarchy.

const settingUACInterception = "uacInterceptionEnabled"

var pamFeature = &Feature{
	Name:    FeaturePAM,
	DSLName: "pam",
	Doc:     "privileged access management on the agent: whether UAC prompts are captured and decided by Elevate",
	Settings: []Setting{{
		JSONKey: settingUACInterception,
		DSLKey:  "uac_interception",
		Kind:    KindBool,
		Default: false,
		Doc:     "capture UAC prompts on the device (opt-in; off when absent)",
	}},
}

// PamSettingsFrom reads a policy's pam feature. present is false when the
// policy has no pam feature (it then supplies nothing for pam, and a closer
// policy without pam never shadows a farther one that has it). An absent
// flag reads as false. err is an engine.FieldErrors with paths under
// "features.pam" when the settings are invalid.
func PamSettingsFrom(p *Policy) (uacInterceptionEnabled bool, present bool, err error) {
	if p == nil {
		return false, false, nil
	}
	raw, ok := p.Features[FeaturePAM]
	if !ok {
		return false, false, nil
	}
	m, err := pamFeature.Decode(raw)
	if err != nil {
		return false, true, prefixed("features."+FeaturePAM, asFieldErrors(err))
	}
	return m[settingUACInterception].(bool), true, nil
}
