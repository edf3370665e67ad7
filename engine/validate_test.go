package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	valHex64 = strings.Repeat("0123456789abcdef", 4)
	valUUID  = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
)

func valIntP(n int) *int { return &n }

// valBase is a valid rule: a user criterion and auto_approve.
func valBase() Rule {
	return Rule{Name: "r", Enabled: true, Priority: DefaultRulePriority, Verdict: VerdictAutoApprove, MatchUser: sp("alice")}
}

// valFields lists the Field of every FieldError in err, in order; nil for
// a nil error.
func valFields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var fes FieldErrors
	if !errors.As(err, &fes) {
		t.Fatalf("error %v (%T) is not FieldErrors", err, err)
	}
	out := make([]string, len(fes))
	for i, fe := range fes {
		out[i] = fe.Field
		if fe.Reason == "" {
			t.Errorf("FieldError %q has no reason", fe.Field)
		}
	}
	return out
}

type valRuleCase struct {
	name string
	mod  func(r *Rule)
	want []string // field names, in order; nil = valid
}

func valRunRules(t *testing.T, cases []valRuleCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := valBase()
			c.mod(&r)
			got := valFields(t, ValidateRule(&r))
			if !slices.Equal(got, c.want) {
				t.Errorf("ValidateRule fields = %q, want %q (err: %v)", got, c.want, ValidateRule(&r))
			}
		})
	}
}

func TestValidateRuleScalars(t *testing.T) {
	valRunRules(t, []valRuleCase{
		{"base is valid", func(r *Rule) {}, nil},
		{"name empty", func(r *Rule) { r.Name = "" }, []string{"name"}},
		{"name blank is not trimmed", func(r *Rule) { r.Name = " " }, nil},
		{"name 255", func(r *Rule) { r.Name = strings.Repeat("n", 255) }, nil},
		{"name 256", func(r *Rule) { r.Name = strings.Repeat("n", 256) }, []string{"name"}},
		{"name 255 characters, more bytes", func(r *Rule) { r.Name = strings.Repeat("é", 255) }, nil},
		{"name 256 characters", func(r *Rule) { r.Name = strings.Repeat("é", 256) }, []string{"name"}},
		{"description nil", func(r *Rule) { r.Description = nil }, nil},
		{"description empty", func(r *Rule) { r.Description = sp("") }, nil},
		{"description 2000", func(r *Rule) { r.Description = sp(strings.Repeat("d", 2000)) }, nil},
		{"description 2001", func(r *Rule) { r.Description = sp(strings.Repeat("d", 2001)) }, []string{"description"}},
		{"priority -1", func(r *Rule) { r.Priority = -1 }, []string{"priority"}},
		{"priority 0", func(r *Rule) { r.Priority = 0 }, nil},
		{"priority 100000", func(r *Rule) { r.Priority = 100000 }, nil},
		{"priority 100001", func(r *Rule) { r.Priority = 100001 }, []string{"priority"}},
		{"siteId nil is org-wide", func(r *Rule) { r.SiteID = nil }, nil},
		{"siteId UUID", func(r *Rule) { r.SiteID = sp(valUUID) }, nil},
		{"siteId uppercase UUID", func(r *Rule) { r.SiteID = sp(strings.ToUpper(valUUID)) }, nil},
		{"siteId not a UUID", func(r *Rule) { r.SiteID = sp("site-1") }, []string{"siteId"}},
		{"siteId empty", func(r *Rule) { r.SiteID = sp("") }, []string{"siteId"}},
		{"siteId UUID without dashes", func(r *Rule) { r.SiteID = sp(strings.ReplaceAll(valUUID, "-", "")) }, []string{"siteId"}},
		{"verdict missing", func(r *Rule) { r.Verdict = "" }, []string{"verdict"}},
		{"verdict unknown", func(r *Rule) { r.Verdict = "allow" }, []string{"verdict"}},
		{"verdict wrong case", func(r *Rule) { r.Verdict = "AUTO_APPROVE" }, []string{"verdict"}},
		{"verdict auto_deny", func(r *Rule) { r.Verdict = VerdictAutoDeny }, nil},
		{"verdict require_approval", func(r *Rule) { r.Verdict = VerdictRequireApproval }, nil},
		{"verdict ignore on a user rule", func(r *Rule) { r.Verdict = VerdictIgnore }, nil},
		{"duration nil", func(r *Rule) { r.ApprovalDurationMinutes = nil }, nil},
		{"duration 0", func(r *Rule) { r.ApprovalDurationMinutes = valIntP(0) }, []string{"approvalDurationMinutes"}},
		{"duration -5", func(r *Rule) { r.ApprovalDurationMinutes = valIntP(-5) }, []string{"approvalDurationMinutes"}},
		{"duration 1", func(r *Rule) { r.ApprovalDurationMinutes = valIntP(1) }, nil},
		{"duration 1440", func(r *Rule) { r.ApprovalDurationMinutes = valIntP(1440) }, nil},
		{"duration 1441", func(r *Rule) { r.ApprovalDurationMinutes = valIntP(1441) }, []string{"approvalDurationMinutes"}},
		{"several errors in field order", func(r *Rule) {
			r.Name = ""
			r.Priority = -1
			r.MatchHash = sp("xyz")
			r.MatchRiskTier = valIntP(9)
		}, []string{"name", "priority", "matchHash", "matchRiskTier", "criteria"}},
	})
}

func TestValidateRuleCriteria(t *testing.T) {
	hexUpper := strings.ToUpper(valHex64)
	valRunRules(t, []valRuleCase{
		{"signer empty", func(r *Rule) { r.MatchSigner = sp("") }, []string{"matchSigner"}},
		{"signer padded kept", func(r *Rule) { r.MatchSigner = sp("Vendor Inc. ") }, nil},
		{"signer 255", func(r *Rule) { r.MatchSigner = sp(strings.Repeat("s", 255)) }, nil},
		{"signer 256", func(r *Rule) { r.MatchSigner = sp(strings.Repeat("s", 256)) }, []string{"matchSigner"}},
		{"thumbprint lowercase", func(r *Rule) { r.MatchSignerThumbprint = sp(valHex64) }, nil},
		{"thumbprint uppercase", func(r *Rule) { r.MatchSignerThumbprint = sp(hexUpper) }, nil},
		{"thumbprint trimmed first", func(r *Rule) { r.MatchSignerThumbprint = sp(" \t" + valHex64 + "\n ") }, nil},
		{"thumbprint empty", func(r *Rule) { r.MatchSignerThumbprint = sp("") }, []string{"matchSignerThumbprint"}},
		{"thumbprint blank", func(r *Rule) { r.MatchSignerThumbprint = sp("   ") }, []string{"matchSignerThumbprint"}},
		{"thumbprint 63", func(r *Rule) { r.MatchSignerThumbprint = sp(valHex64[:63]) }, []string{"matchSignerThumbprint"}},
		{"thumbprint 65", func(r *Rule) { r.MatchSignerThumbprint = sp(valHex64 + "a") }, []string{"matchSignerThumbprint"}},
		{"thumbprint non-hex", func(r *Rule) { r.MatchSignerThumbprint = sp("g" + valHex64[1:]) }, []string{"matchSignerThumbprint"}},
		{"thumbprint with colons", func(r *Rule) { r.MatchSignerThumbprint = sp(valHex64[:62] + ":a") }, []string{"matchSignerThumbprint"}},
		{"signer group UUID", func(r *Rule) { r.MatchSignerGroupID = sp(valUUID) }, nil},
		{"signer group not a UUID", func(r *Rule) { r.MatchSignerGroupID = sp("trusted") }, []string{"matchSignerGroupId"}},
		{"signer group empty", func(r *Rule) { r.MatchSignerGroupID = sp("") }, []string{"matchSignerGroupId"}},
		{"hash lowercase", func(r *Rule) { r.MatchHash = sp(valHex64) }, nil},
		{"hash uppercase", func(r *Rule) { r.MatchHash = sp(hexUpper) }, nil},
		{"hash is not trimmed (leading)", func(r *Rule) { r.MatchHash = sp(" " + valHex64) }, []string{"matchHash"}},
		{"hash is not trimmed (trailing newline)", func(r *Rule) { r.MatchHash = sp(valHex64 + "\n") }, []string{"matchHash"}},
		{"hash 63", func(r *Rule) { r.MatchHash = sp(valHex64[:63]) }, []string{"matchHash"}},
		{"hash SHA-1 length", func(r *Rule) { r.MatchHash = sp(valHex64[:40]) }, []string{"matchHash"}},
		{"hash empty", func(r *Rule) { r.MatchHash = sp("") }, []string{"matchHash"}},
		{"hash non-hex", func(r *Rule) { r.MatchHash = sp(strings.Repeat("z", 64)) }, []string{"matchHash"}},
		{"path glob empty", func(r *Rule) { r.MatchPathGlob = sp("") }, []string{"matchPathGlob"}},
		{"path glob 4096", func(r *Rule) { r.MatchPathGlob = sp(strings.Repeat("p", 4096)) }, nil},
		{"path glob 4097", func(r *Rule) { r.MatchPathGlob = sp(strings.Repeat("p", 4097)) }, []string{"matchPathGlob"}},
		{"parent image empty", func(r *Rule) { r.MatchParentImage = sp("") }, []string{"matchParentImage"}},
		{"parent image 4096", func(r *Rule) { r.MatchParentImage = sp(strings.Repeat("p", 4096)) }, nil},
		{"parent image 4097", func(r *Rule) { r.MatchParentImage = sp(strings.Repeat("p", 4097)) }, []string{"matchParentImage"}},
		{"command line empty", func(r *Rule) { r.MatchCommandLine = sp("") }, []string{"matchCommandLine"}},
		{"command line 4096", func(r *Rule) { r.MatchCommandLine = sp(strings.Repeat("c", 4096)) }, nil},
		{"command line 4097", func(r *Rule) { r.MatchCommandLine = sp(strings.Repeat("c", 4097)) }, []string{"matchCommandLine"}},
		{"user empty", func(r *Rule) { r.MatchUser = sp("") }, []string{"matchUser"}},
		{"user 255", func(r *Rule) { r.MatchUser = sp(strings.Repeat("u", 255)) }, nil},
		{"user 256", func(r *Rule) { r.MatchUser = sp(strings.Repeat("u", 256)) }, []string{"matchUser"}},
		{"AD group empty", func(r *Rule) { r.MatchAdGroup = sp("") }, []string{"matchAdGroup"}},
		{"AD group 255", func(r *Rule) { r.MatchAdGroup = sp(strings.Repeat("g", 255)) }, nil},
		{"AD group 256", func(r *Rule) { r.MatchAdGroup = sp(strings.Repeat("g", 256)) }, []string{"matchAdGroup"}},
		{"tool name empty", func(r *Rule) { r.MatchToolName = sp("") }, []string{"matchToolName"}},
		{"tool name 100", func(r *Rule) { r.MatchToolName = sp(strings.Repeat("t", 100)) }, nil},
		{"tool name 101", func(r *Rule) { r.MatchToolName = sp(strings.Repeat("t", 101)) }, []string{"matchToolName"}},
		{"risk tier -1", func(r *Rule) { r.MatchRiskTier = valIntP(-1) }, []string{"matchRiskTier"}},
		{"risk tier 0", func(r *Rule) { r.MatchRiskTier = valIntP(0) }, nil},
		{"risk tier 4", func(r *Rule) { r.MatchRiskTier = valIntP(4) }, nil},
		{"risk tier 5", func(r *Rule) { r.MatchRiskTier = valIntP(5) }, []string{"matchRiskTier"}},
	})
}

func TestValidateRuleNegate(t *testing.T) {
	all := slices.Clone(NegateKeys)
	valRunRules(t, []valRuleCase{
		{"nil", func(r *Rule) { r.MatchNegate = nil }, nil},
		{"empty", func(r *Rule) { r.MatchNegate = []NegateKey{} }, nil},
		{"all 11 keys", func(r *Rule) { r.MatchNegate = all }, nil},
		{"signerThumbprint is accepted", func(r *Rule) { r.MatchNegate = []NegateKey{"signerThumbprint"} }, nil},
		{"duplicates allowed", func(r *Rule) { r.MatchNegate = []NegateKey{NegUser, NegUser, NegUser} }, nil},
		{"11 duplicates", func(r *Rule) { r.MatchNegate = slices.Repeat([]NegateKey{NegUser}, 11) }, nil},
		{"12 keys", func(r *Rule) { r.MatchNegate = append(slices.Clone(all), NegUser) }, []string{"matchNegate"}},
		{"unknown key", func(r *Rule) { r.MatchNegate = []NegateKey{NegUser, "publisher"} }, []string{"matchNegate[1]"}},
		{"key is case-sensitive", func(r *Rule) { r.MatchNegate = []NegateKey{"User"} }, []string{"matchNegate[0]"}},
		{"too many and unknown", func(r *Rule) {
			r.MatchNegate = append(slices.Repeat([]NegateKey{NegUser}, 11), "time")
		}, []string{"matchNegate", "matchNegate[11]"}},
	})
	if len(NegateKeys) != 11 {
		t.Errorf("NegateKeys has %d keys, want 11", len(NegateKeys))
	}
}

func TestValidateRuleTimeWindow(t *testing.T) {
	tw := func(start, end string) func(r *Rule) {
		return func(r *Rule) { r.TimeWindow = &TimeWindow{Start: start, End: end} }
	}
	tz := func(z string) func(r *Rule) {
		return func(r *Rule) { r.TimeWindow = &TimeWindow{Start: "09:00", End: "17:00", Timezone: &z} }
	}
	days := func(d ...int) func(r *Rule) {
		return func(r *Rule) { r.TimeWindow = &TimeWindow{Start: "09:00", End: "17:00", Days: d} }
	}
	valRunRules(t, []valRuleCase{
		{"HH:MM", tw("09:00", "17:00"), nil},
		{"H:MM", tw("7:05", "9:30"), nil},
		{"overnight", tw("22:00", "06:00"), nil},
		{"00:00-23:59", tw("00:00", "23:59"), nil},
		{"start==end", tw("12:30", "12:30"), nil},
		{"25:00 rejected (out of range)", tw("25:00", "17:00"), []string{"timeWindow.start"}},
		{"24:00 rejected", tw("09:00", "24:00"), []string{"timeWindow.end"}},
		{"minute 60 rejected", tw("09:60", "17:00"), []string{"timeWindow.start"}},
		{"25:99 rejected", tw("09:00", "25:99"), []string{"timeWindow.end"}},
		{"one-digit minutes", tw("7:5", "17:00"), []string{"timeWindow.start"}},
		{"three-digit hour", tw("009:00", "17:00"), []string{"timeWindow.start"}},
		{"seconds", tw("09:00:00", "17:00"), []string{"timeWindow.start"}},
		{"am/pm", tw("9:00am", "17:00"), []string{"timeWindow.start"}},
		{"padded", tw(" 9:00", "17:00 "), []string{"timeWindow.start", "timeWindow.end"}},
		{"empty", tw("", ""), []string{"timeWindow.start", "timeWindow.end"}},
		{"no colon", tw("0900", "1700"), []string{"timeWindow.start", "timeWindow.end"}},
		{"non-ASCII digits", tw("٠٩:٠٠", "17:00"), []string{"timeWindow.start"}},
		{"days all", days(0, 1, 2, 3, 4, 5, 6), nil},
		{"days empty", days(), nil},
		{"days duplicates", days(1, 1), nil},
		{"day 7", days(7), []string{"timeWindow.days[0]"}},
		{"day -1", days(1, -1), []string{"timeWindow.days[1]"}},
		{"8 days", days(0, 1, 2, 3, 4, 5, 6, 0), []string{"timeWindow.days"}},
		{"zone America/Chicago", tz("America/Chicago"), nil},
		{"zone Europe/London", tz("Europe/London"), nil},
		{"zone UTC", tz("UTC"), nil},
		{"zone lowercase rejected", tz("america/chicago"), []string{"timeWindow.timezone"}},
		{"zone empty rejected", tz(""), []string{"timeWindow.timezone"}},
		{"zone Local rejected", tz("Local"), []string{"timeWindow.timezone"}},
		{"zone unknown", tz("Mars/Olympus_Mons"), []string{"timeWindow.timezone"}},
		{"zone raw offset", tz("+05:00"), []string{"timeWindow.timezone"}},
		{"zone 65 characters", tz(strings.Repeat("A", 65)), []string{"timeWindow.timezone"}},
		{"everything wrong", func(r *Rule) {
			z := "nowhere"
			r.TimeWindow = &TimeWindow{Start: "25:00", End: "x", Days: []int{9}, Timezone: &z}
		}, []string{"timeWindow.start", "timeWindow.end", "timeWindow.days[0]", "timeWindow.timezone"}},
	})
}

func TestValidateRuleShape(t *testing.T) {
	sentinels := []error{ErrNoCriterion, ErrMixedShape, ErrGroupWithSigner, ErrIgnoreOnToolRule}
	for _, c := range []struct {
		name  string
		mod   func(r *Rule)
		want  error // nil = valid
		field string
	}{
		{"no criterion", func(r *Rule) { r.MatchUser = nil }, ErrNoCriterion, "criteria"},
		{"time window alone is not a criterion", func(r *Rule) {
			r.MatchUser = nil
			r.TimeWindow = &TimeWindow{Start: "09:00", End: "17:00"}
		}, ErrNoCriterion, "criteria"},
		{"negate alone is not a criterion", func(r *Rule) { r.MatchUser = nil; r.MatchNegate = []NegateKey{NegUser} }, ErrNoCriterion, "criteria"},
		{"risk tier 0 is a criterion", func(r *Rule) { r.MatchUser = nil; r.MatchRiskTier = valIntP(0) }, nil, ""},
		{"AD group alone", func(r *Rule) { r.MatchUser = nil; r.MatchAdGroup = sp("admins") }, nil, ""},
		{"command line alone", func(r *Rule) { r.MatchUser = nil; r.MatchCommandLine = sp("x") }, nil, ""},
		{"hash + tool", func(r *Rule) { r.MatchHash = sp(valHex64); r.MatchToolName = sp("t") }, ErrMixedShape, "criteria"},
		{"signer + risk tier 0", func(r *Rule) { r.MatchSigner = sp("s"); r.MatchRiskTier = valIntP(0) }, ErrMixedShape, "criteria"},
		{"command line + tool", func(r *Rule) { r.MatchCommandLine = sp("x"); r.MatchToolName = sp("t") }, ErrMixedShape, "criteria"},
		{"parent image + risk tier", func(r *Rule) { r.MatchParentImage = sp("x"); r.MatchRiskTier = valIntP(2) }, ErrMixedShape, "criteria"},
		{"signer group + tool", func(r *Rule) { r.MatchSignerGroupID = sp(valUUID); r.MatchToolName = sp("t") }, ErrMixedShape, "criteria"},
		{"user + AD group + tool (neutral with tool)", func(r *Rule) { r.MatchAdGroup = sp("g"); r.MatchToolName = sp("t") }, nil, ""},
		{"user + AD group + hash (neutral with executable)", func(r *Rule) { r.MatchAdGroup = sp("g"); r.MatchHash = sp(valHex64) }, nil, ""},
		{"group + signer", func(r *Rule) { r.MatchSignerGroupID = sp(valUUID); r.MatchSigner = sp("s") }, ErrGroupWithSigner, "matchSignerGroupId"},
		{"group + thumbprint", func(r *Rule) { r.MatchSignerGroupID = sp(valUUID); r.MatchSignerThumbprint = sp(valHex64) }, ErrGroupWithSigner, "matchSignerGroupId"},
		{"signer + thumbprint is fine", func(r *Rule) { r.MatchSigner = sp("s"); r.MatchSignerThumbprint = sp(valHex64) }, nil, ""},
		{"group + hash is fine", func(r *Rule) { r.MatchSignerGroupID = sp(valUUID); r.MatchHash = sp(valHex64) }, nil, ""},
		{"ignore on a tool rule", func(r *Rule) { r.Verdict = VerdictIgnore; r.MatchToolName = sp("t") }, ErrIgnoreOnToolRule, "verdict"},
		{"ignore on a risk-tier-0 rule", func(r *Rule) { r.Verdict = VerdictIgnore; r.MatchUser = nil; r.MatchRiskTier = valIntP(0) }, ErrIgnoreOnToolRule, "verdict"},
		{"ignore on an executable rule is fine", func(r *Rule) { r.Verdict = VerdictIgnore; r.MatchHash = sp(valHex64) }, nil, ""},
		{"first failure wins: none + ignore", func(r *Rule) { r.MatchUser = nil; r.Verdict = VerdictIgnore }, ErrNoCriterion, "criteria"},
		{"first failure wins: mixed + group/signer + ignore/tool", func(r *Rule) {
			r.MatchSignerGroupID = sp(valUUID)
			r.MatchSigner = sp("s")
			r.MatchToolName = sp("t")
			r.Verdict = VerdictIgnore
		}, ErrMixedShape, "criteria"},
		{"first failure wins: group/signer + ignore", func(r *Rule) {
			r.MatchSignerGroupID = sp(valUUID)
			r.MatchSignerThumbprint = sp(valHex64)
			r.Verdict = VerdictIgnore
		}, ErrGroupWithSigner, "matchSignerGroupId"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := valBase()
			c.mod(&r)
			err := ValidateRule(&r)
			shapeErr := CheckRuleShape(&r)
			if c.want == nil {
				if err != nil || shapeErr != nil {
					t.Fatalf("ValidateRule = %v, CheckRuleShape = %v, want valid", err, shapeErr)
				}
				return
			}
			for _, e := range []error{err, shapeErr} {
				for _, s := range sentinels {
					if got := errors.Is(e, s); got != (s == c.want) {
						t.Errorf("errors.Is(%v, %q) = %v", e, s, got)
					}
				}
			}
			var fe *FieldError
			if !errors.As(shapeErr, &fe) || fe.Field != c.field || fe.Err != c.want {
				t.Errorf("CheckRuleShape = %#v, want FieldError{Field: %q, Err: %v}", shapeErr, c.field, c.want)
			}
			if got := valFields(t, err); !slices.Equal(got, []string{c.field}) {
				t.Errorf("ValidateRule fields = %q, want just %q", got, c.field)
			}
		})
	}
}

func TestValidateFieldErrorFormat(t *testing.T) {
	fe := &FieldError{Field: "matchHash", Reason: "bad", Err: ErrMixedShape}
	if fe.Error() != "matchHash: bad" {
		t.Errorf("Error() = %q", fe.Error())
	}
	if (&FieldError{Reason: "only"}).Error() != "only" {
		t.Errorf("Error() without field = %q", (&FieldError{Reason: "only"}).Error())
	}
	es := FieldErrors{fe, {Field: "name", Reason: "is required"}}
	if es.Error() != "matchHash: bad; name: is required" {
		t.Errorf("FieldErrors.Error() = %q", es.Error())
	}
	if !errors.Is(es, ErrMixedShape) || errors.Is(es, ErrNoCriterion) {
		t.Error("errors.Is does not see exactly the wrapped sentinel through FieldErrors")
	}
}

func TestNormalizeRule(t *testing.T) {
	in := valBase()
	in.MatchUser = sp(`CORP\Alice`)
	in.MatchSignerThumbprint = sp("  " + strings.ToUpper(valHex64) + "\t")
	in.MatchHash = sp(strings.ToUpper(valHex64))
	in.MatchSigner = sp("Vendor Inc. ")
	in.MatchPathGlob = sp(`C:\Program Files\**`)
	in.MatchToolName = sp("Run_Script")
	in.MatchAdGroup = sp("Domain Admins")
	in.MatchCommandLine = sp("--Silent ")
	in.Name = " Name "
	out := NormalizeRule(in)
	for _, c := range []struct {
		field     string
		got, want string
	}{
		{"matchSignerThumbprint", *out.MatchSignerThumbprint, valHex64},
		{"matchHash", *out.MatchHash, valHex64},
		{"matchSigner", *out.MatchSigner, "Vendor Inc. "},
		{"matchUser", *out.MatchUser, `CORP\Alice`},
		{"matchPathGlob", *out.MatchPathGlob, `C:\Program Files\**`},
		{"matchToolName", *out.MatchToolName, "Run_Script"},
		{"matchAdGroup", *out.MatchAdGroup, "Domain Admins"},
		{"matchCommandLine", *out.MatchCommandLine, "--Silent "},
		{"name", out.Name, " Name "},
	} {
		if c.got != c.want {
			t.Errorf("NormalizeRule %s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if *in.MatchHash != strings.ToUpper(valHex64) || *in.MatchSignerThumbprint != "  "+strings.ToUpper(valHex64)+"\t" {
		t.Error("NormalizeRule modified its input")
	}
	if n := NormalizeRule(valBase()); n.MatchHash != nil || n.MatchSignerThumbprint != nil {
		t.Error("NormalizeRule invented criteria")
	}
}

func TestValidateSignerGroup(t *testing.T) {
	tp := valHex64
	many := func(n int) []SignerEntry {
		out := make([]SignerEntry, n)
		for i := range out {
			out[i] = CNEntry("cn" + strings.Repeat("x", i%7) + string(rune('a'+i%26)))
		}
		return out
	}
	for _, c := range []struct {
		name string
		g    SignerGroup
		want []string
	}{
		{"valid mixed", SignerGroup{Name: "Trusted", Signers: []SignerEntry{CNEntry("Acme"), {Thumbprint: &tp}, {SubjectCN: sp("B"), Thumbprint: sp(strings.ToUpper(tp))}}}, nil},
		{"no entries", SignerGroup{Name: "Trusted"}, nil},
		{"name blank", SignerGroup{Name: "   "}, []string{"name"}},
		{"name trimmed before length", SignerGroup{Name: "  " + strings.Repeat("n", 255) + "  "}, nil},
		{"name 256", SignerGroup{Name: strings.Repeat("n", 256)}, []string{"name"}},
		{"500 entries", SignerGroup{Name: "g", Signers: many(500)}, nil},
		{"501 entries", SignerGroup{Name: "g", Signers: many(501)}, []string{"signers"}},
		{"empty string entry", SignerGroup{Name: "g", Signers: []SignerEntry{CNEntry("")}}, []string{"signers[0]"}},
		{"blank string entry", SignerGroup{Name: "g", Signers: []SignerEntry{CNEntry("ok"), CNEntry("  ")}}, []string{"signers[1]"}},
		{"object with neither field", SignerGroup{Name: "g", Signers: []SignerEntry{{}}}, []string{"signers[0]"}},
		{"object with blank fields", SignerGroup{Name: "g", Signers: []SignerEntry{{SubjectCN: sp(" "), Thumbprint: sp(" ")}}}, []string{"signers[0]"}},
		{"thumbprint malformed", SignerGroup{Name: "g", Signers: []SignerEntry{{SubjectCN: sp("A"), Thumbprint: sp("xyz")}}}, []string{"signers[0].thumbprint"}},
		{"thumbprint padded is fine", SignerGroup{Name: "g", Signers: []SignerEntry{{Thumbprint: sp(" " + tp + " ")}}}, nil},
		{"CN 255", SignerGroup{Name: "g", Signers: []SignerEntry{CNEntry(strings.Repeat("c", 255))}}, nil},
		{"CN 256", SignerGroup{Name: "g", Signers: []SignerEntry{{SubjectCN: sp(strings.Repeat("c", 256))}}}, []string{"signers[0].subjectCn"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := valFields(t, ValidateSignerGroup(&c.g)); !slices.Equal(got, c.want) {
				t.Errorf("ValidateSignerGroup fields = %q, want %q", got, c.want)
			}
		})
	}
}

func TestNormalizeSignerGroup(t *testing.T) {
	tp := valHex64
	doc := `{"id":"` + valUUID + `","name":"  Trusted Vendors  ","signers":[
		" Acme Corp ", "ACME CORP", "acme corp",
		{"subjectCn":" Pinned ","thumbprint":"` + strings.ToUpper(tp) + `"},
		{"subjectCn":"pinned","thumbprint":"` + tp + `"},
		{"subjectCn":"Pinned","thumbprint":"` + strings.Repeat("ab", 32) + `"},
		{"thumbprint":" ` + strings.ToUpper(tp) + ` "},
		{"thumbprint":"` + tp + `"},
		{"subjectCn":"Other"},
		"Other",
		"Zeta"
	]}`
	var g SignerGroup
	if err := json.Unmarshal([]byte(doc), &g); err != nil {
		t.Fatal(err)
	}
	if err := ValidateSignerGroup(&g); err != nil {
		t.Fatalf("ValidateSignerGroup: %v", err)
	}
	n := NormalizeSignerGroup(g)
	if n.Name != "Trusted Vendors" {
		t.Errorf("name = %q, want trimmed", n.Name)
	}
	got, err := json.Marshal(n.Signers)
	if err != nil {
		t.Fatal(err)
	}
	want := `["Acme Corp",` +
		`{"subjectCn":"Pinned","thumbprint":"` + tp + `"},` +
		`{"subjectCn":"Pinned","thumbprint":"` + strings.Repeat("ab", 32) + `"},` +
		`{"thumbprint":"` + tp + `"},` +
		`{"subjectCn":"Other"},` +
		`"Other",` +
		`"Zeta"]`
	if string(got) != want {
		t.Errorf("normalised signers\n got %s\nwant %s", got, want)
	}
	for i, e := range n.Signers {
		wantBare := i == 0 || i >= 5
		if e.Bare() != wantBare {
			t.Errorf("entry %d Bare() = %v, want %v", i, e.Bare(), wantBare)
		}
	}
	// The input is not modified.
	if g.Name != "  Trusted Vendors  " || len(g.Signers) != 11 || *g.Signers[0].SubjectCN != " Acme Corp " {
		t.Error("NormalizeSignerGroup modified its input")
	}
	// Normalising twice changes nothing.
	again, _ := json.Marshal(NormalizeSignerGroup(n).Signers)
	if string(again) != want {
		t.Errorf("normalising twice gives %s", again)
	}
}

func TestSignerEntryJSON(t *testing.T) {
	var es []SignerEntry
	if err := json.Unmarshal([]byte(`["Acme",{"subjectCn":"B"},{"thumbprint":"`+valHex64+`"}]`), &es); err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || !es[0].Bare() || es[1].Bare() || es[2].Bare() || *es[0].SubjectCN != "Acme" || es[2].SubjectCN != nil {
		t.Fatalf("decoded %+v", es)
	}
	out, _ := json.Marshal(es)
	if want := `["Acme",{"subjectCn":"B"},{"thumbprint":"` + valHex64 + `"}]`; string(out) != want {
		t.Errorf("round trip = %s, want %s", out, want)
	}
	if b, _ := json.Marshal(CNEntry("X")); string(b) != `"X"` {
		t.Errorf("CNEntry marshals as %s", b)
	}
}

func TestValidateObservation(t *testing.T) {
	hex := valHex64
	uac := func(f func(o *Observation)) Observation {
		o := Observation{SubjectUsername: `CORP\alice`, TargetExecutablePath: `C:\x.exe`}
		if f != nil {
			f(&o)
		}
		return o
	}
	tool := func(f func(o *Observation)) Observation {
		o := Observation{SubjectUsername: "helper", ToolName: "run_script", RiskTier: valIntP(2)}
		if f != nil {
			f(&o)
		}
		return o
	}
	jit := func(f func(o *Observation)) Observation {
		o := Observation{SubjectUsername: "alice"}
		if f != nil {
			f(&o)
		}
		return o
	}
	for _, c := range []struct {
		name string
		flow FlowType
		o    Observation
		want []string // sorted field names; nil = valid
	}{
		{"uac minimal", FlowUAC, uac(nil), nil},
		{"uac full", FlowUAC, uac(func(o *Observation) {
			o.TargetExecutableHash, o.TargetExecutableSigner, o.TargetExecutableSignerThumbprint = hex, "Vendor", strings.ToUpper(hex)
			o.ParentImage, o.CommandLine, o.AdGroups, o.SiteID = `C:\p.exe`, "x /s", []string{"g"}, valUUID
		}), nil},
		{"uac hash uppercase", FlowUAC, uac(func(o *Observation) { o.TargetExecutableHash = strings.ToUpper(hex) }), nil},
		{"uac hash padded is trimmed", FlowUAC, uac(func(o *Observation) { o.TargetExecutableHash = " " + hex + "\n" }), nil},
		{"uac hash 63", FlowUAC, uac(func(o *Observation) { o.TargetExecutableHash = hex[:63] }), []string{"observation.targetExecutableHash"}},
		{"uac hash SHA-1", FlowUAC, uac(func(o *Observation) { o.TargetExecutableHash = hex[:40] }), []string{"observation.targetExecutableHash"}},
		{"uac thumbprint non-hex", FlowUAC, uac(func(o *Observation) { o.TargetExecutableSignerThumbprint = "z" + hex[1:] }),
			[]string{"observation.targetExecutableSignerThumbprint"}},
		{"uac without user", FlowUAC, uac(func(o *Observation) { o.SubjectUsername = "" }), []string{"observation.subjectUsername"}},
		{"uac without path", FlowUAC, uac(func(o *Observation) { o.TargetExecutablePath = "" }), []string{"observation.targetExecutablePath"}},
		{"uac user 256", FlowUAC, uac(func(o *Observation) { o.SubjectUsername = strings.Repeat("u", 256) }), []string{"observation.subjectUsername"}},
		{"uac path 4097", FlowUAC, uac(func(o *Observation) { o.TargetExecutablePath = strings.Repeat("p", 4097) }), []string{"observation.targetExecutablePath"}},
		{"uac signer 256", FlowUAC, uac(func(o *Observation) { o.TargetExecutableSigner = strings.Repeat("s", 256) }), []string{"observation.targetExecutableSigner"}},
		{"uac parent 4097", FlowUAC, uac(func(o *Observation) { o.ParentImage = strings.Repeat("p", 4097) }), []string{"observation.parentImage"}},
		{"uac command line 8192", FlowUAC, uac(func(o *Observation) { o.CommandLine = strings.Repeat("c", 8192) }), nil},
		{"uac command line 8193", FlowUAC, uac(func(o *Observation) { o.CommandLine = strings.Repeat("c", 8193) }), []string{"observation.commandLine"}},
		{"uac 201 AD groups", FlowUAC, uac(func(o *Observation) { o.AdGroups = valGroups(201) }), []string{"observation.adGroups"}},
		{"uac foreign tool fields", FlowUAC, uac(func(o *Observation) {
			o.ToolName, o.RiskTier, o.RequestedDurationMinutes = "t", valIntP(2), valIntP(30)
		}), []string{"observation.requestedDurationMinutes", "observation.riskTier", "observation.toolName"}},
		{"tool minimal", FlowToolAct, tool(nil), nil},
		{"tool without tier", FlowToolAct, tool(func(o *Observation) { o.RiskTier = nil }), nil},
		{"tool without tool name", FlowToolAct, tool(func(o *Observation) { o.ToolName = "" }), []string{"observation.toolName"}},
		{"tool without user", FlowToolAct, tool(func(o *Observation) { o.SubjectUsername = "" }), []string{"observation.subjectUsername"}},
		{"tool name 101", FlowToolAct, tool(func(o *Observation) { o.ToolName = strings.Repeat("t", 101) }), []string{"observation.toolName"}},
		{"tool tier 5", FlowToolAct, tool(func(o *Observation) { o.RiskTier = valIntP(5) }), []string{"observation.riskTier"}},
		{"tool tier -1", FlowToolAct, tool(func(o *Observation) { o.RiskTier = valIntP(-1) }), []string{"observation.riskTier"}},
		{"tool tier 0", FlowToolAct, tool(func(o *Observation) { o.RiskTier = valIntP(0) }), nil},
		{"tool foreign executable fields", FlowToolAct, tool(func(o *Observation) {
			o.TargetExecutablePath, o.TargetExecutableHash, o.TargetExecutableSigner = `C:\x`, hex, "s"
			o.TargetExecutableSignerThumbprint, o.ParentImage, o.CommandLine = hex, "p", "c"
		}), []string{"observation.commandLine", "observation.parentImage", "observation.targetExecutableHash",
			"observation.targetExecutablePath", "observation.targetExecutableSigner", "observation.targetExecutableSignerThumbprint"}},
		{"tool foreign AD groups (even an empty list)", FlowToolAct, tool(func(o *Observation) { o.AdGroups = []string{} }), []string{"observation.adGroups"}},
		{"tool foreign requested duration", FlowToolAct, tool(func(o *Observation) { o.RequestedDurationMinutes = valIntP(5) }),
			[]string{"observation.requestedDurationMinutes"}},
		{"JIT minimal", FlowJITAdmin, jit(nil), nil},
		{"JIT with groups and duration", FlowJITAdmin, jit(func(o *Observation) { o.AdGroups = []string{}; o.RequestedDurationMinutes = valIntP(1000) }), nil},
		{"JIT duration 0", FlowJITAdmin, jit(func(o *Observation) { o.RequestedDurationMinutes = valIntP(0) }), []string{"observation.requestedDurationMinutes"}},
		{"JIT duration 1", FlowJITAdmin, jit(func(o *Observation) { o.RequestedDurationMinutes = valIntP(1) }), nil},
		{"JIT 200 AD groups", FlowJITAdmin, jit(func(o *Observation) { o.AdGroups = valGroups(200) }), nil},
		{"JIT empty AD group name", FlowJITAdmin, jit(func(o *Observation) { o.AdGroups = []string{"ok", ""} }), []string{"observation.adGroups[1]"}},
		{"JIT 256-character AD group name", FlowJITAdmin, jit(func(o *Observation) { o.AdGroups = []string{strings.Repeat("g", 256)} }), []string{"observation.adGroups[0]"}},
		{"site not a UUID", FlowJITAdmin, jit(func(o *Observation) { o.SiteID = "hq" }), []string{"observation.siteId"}},
		{"JIT 201 AD groups", FlowJITAdmin, jit(func(o *Observation) { o.AdGroups = valGroups(201) }), []string{"observation.adGroups"}},
		{"JIT without user", FlowJITAdmin, jit(func(o *Observation) { o.SubjectUsername = "" }), []string{"observation.subjectUsername"}},
		{"JIT foreign path and tool", FlowJITAdmin, jit(func(o *Observation) { o.TargetExecutablePath = `C:\x`; o.ToolName = "t"; o.RiskTier = valIntP(1) }),
			[]string{"observation.riskTier", "observation.targetExecutablePath", "observation.toolName"}},
		{"unknown flow", "bogus", uac(nil), []string{"flowType"}},
		{"empty flow", "", uac(nil), []string{"flowType"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := valFields(t, ValidateObservation(c.flow, &c.o))
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("ValidateObservation fields = %q, want %q", got, c.want)
			}
		})
	}
}

func TestRuleJSON(t *testing.T) {
	t.Run("defaults when absent", func(t *testing.T) {
		var r Rule
		if err := json.Unmarshal([]byte(`{"name":"n","verdict":"auto_deny","matchUser":"alice"}`), &r); err != nil {
			t.Fatal(err)
		}
		if !r.Enabled || r.Priority != 100 {
			t.Errorf("enabled=%v priority=%d, want true 100", r.Enabled, r.Priority)
		}
		if r.SiteID != nil || r.ApprovalDurationMinutes != nil || r.MatchRiskTier != nil || r.MatchNegate != nil || r.TimeWindow != nil || r.Description != nil {
			t.Errorf("absent fields not nil: %+v", r)
		}
		if err := ValidateRule(&r); err != nil {
			t.Errorf("ValidateRule: %v", err)
		}
	})
	t.Run("explicit false and 0 kept", func(t *testing.T) {
		var r Rule
		if err := json.Unmarshal([]byte(`{"name":"n","verdict":"auto_deny","enabled":false,"priority":0}`), &r); err != nil {
			t.Fatal(err)
		}
		if r.Enabled || r.Priority != 0 {
			t.Errorf("enabled=%v priority=%d, want false 0", r.Enabled, r.Priority)
		}
	})
	t.Run("null criterion is no criterion, 0 tier is one", func(t *testing.T) {
		var r Rule
		if err := json.Unmarshal([]byte(`{"name":"n","verdict":"auto_deny","matchUser":null,"matchRiskTier":0,"matchHash":null}`), &r); err != nil {
			t.Fatal(err)
		}
		if r.MatchUser != nil || r.MatchHash != nil || r.MatchRiskTier == nil || *r.MatchRiskTier != 0 {
			t.Errorf("decoded %+v", r)
		}
		if !r.HasToolCriterion() || r.HasExecutableCriterion() || r.HasNeutralCriterion() {
			t.Error("a tier-0 rule is a tool rule and nothing else")
		}
	})
	t.Run("field names", func(t *testing.T) {
		doc := `{
			"id":"r1","orgId":"` + valUUID + `","siteId":"` + valUUID + `","name":"n","description":"d",
			"enabled":true,"priority":7,"verdict":"require_approval","approvalDurationMinutes":60,
			"matchSigner":"S","matchSignerThumbprint":"` + valHex64 + `","matchSignerGroupId":"` + valUUID + `",
			"matchHash":"` + valHex64 + `","matchPathGlob":"P","matchParentImage":"PI","matchCommandLine":"C",
			"matchUser":"U","matchAdGroup":"G","matchToolName":"T","matchRiskTier":3,
			"matchNegate":["user","user","signerThumbprint"],
			"timeWindow":{"start":"7:05","end":"17:00","days":[1,2],"timezone":"America/Chicago"},
			"createdByUserId":"u1","createdAt":"2026-01-02T03:04:05Z","updatedAt":"2026-01-03T03:04:05Z",
			"unknownProperty":{"dropped":true}
		}`
		var r Rule
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			t.Fatal(err)
		}
		z := "America/Chicago"
		want := Rule{
			ID: "r1", OrgID: valUUID, SiteID: sp(valUUID), Name: "n", Description: sp("d"), Enabled: true, Priority: 7,
			Verdict: VerdictRequireApproval, ApprovalDurationMinutes: valIntP(60), MatchSigner: sp("S"),
			MatchSignerThumbprint: sp(valHex64), MatchSignerGroupID: sp(valUUID), MatchHash: sp(valHex64),
			MatchPathGlob: sp("P"), MatchParentImage: sp("PI"), MatchCommandLine: sp("C"), MatchUser: sp("U"),
			MatchAdGroup: sp("G"), MatchToolName: sp("T"), MatchRiskTier: valIntP(3),
			MatchNegate:     []NegateKey{NegUser, NegUser, NegSignerThumbprint},
			TimeWindow:      &TimeWindow{Start: "7:05", End: "17:00", Days: []int{1, 2}, Timezone: &z},
			CreatedByUserID: "u1",
		}
		want.CreatedAt, _ = valParseTime("2026-01-02T03:04:05Z")
		want.UpdatedAt, _ = valParseTime("2026-01-03T03:04:05Z")
		if !reflect.DeepEqual(r, want) {
			t.Errorf("decoded\n %+v\nwant\n %+v", r, want)
		}
		// Encoding uses the same names.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "orgId", "siteId", "name", "description", "enabled", "priority", "verdict",
			"approvalDurationMinutes", "matchSigner", "matchSignerThumbprint", "matchSignerGroupId", "matchHash",
			"matchPathGlob", "matchParentImage", "matchCommandLine", "matchUser", "matchAdGroup", "matchToolName",
			"matchRiskTier", "matchNegate", "condition", "timeWindow", "createdByUserId", "createdAt", "updatedAt"} {
			if _, ok := m[k]; !ok {
				t.Errorf("encoded rule lacks %q", k)
			}
		}
		if len(m) != 26 {
			t.Errorf("encoded rule has %d keys, want 26: %v", len(m), m)
		}
		var back Rule
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, want) {
			t.Errorf("round trip: %v\n %+v", err, back)
		}
	})
}

func valParseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }

// valGroups returns n distinct, valid AD group names.
func valGroups(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("group-%d", i)
	}
	return out
}
