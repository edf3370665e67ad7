package policy

import (
	"encoding/json"
	"time"
)

// Level is where an assignment attaches in the hierarchy
// partner → organization → site → device group → device.
type Level string

const (
	LevelPartner      Level = "partner"
	LevelOrganization Level = "organization"
	LevelSite         Level = "site"
	LevelDeviceGroup  Level = "device_group"
	LevelDevice       Level = "device"
)

// levels lists every level from the farthest to the closest to a device.
var levels = []Level{LevelPartner, LevelOrganization, LevelSite, LevelDeviceGroup, LevelDevice}

// Levels returns every level, farthest from the device first.
func Levels() []Level { return append([]Level(nil), levels...) }

// Valid reports whether l is one of the five canonical levels. The rule-file
// spellings "org" and "group" are not levels; ParseLevel turns them into one.
func (l Level) Valid() bool { return l.Rank() != 0 }

// Rank orders levels by closeness to the device: device 5, device_group 4,
// site 3, organization 2, partner 1; 0 for anything else. A closer level
// always beats a farther one, whatever the assignment priorities
// (pam-semantics §10.2, §10.3).
func (l Level) Rank() int {
	switch l {
	case LevelPartner:
		return 1
	case LevelOrganization:
		return 2
	case LevelSite:
		return 3
	case LevelDeviceGroup:
		return 4
	case LevelDevice:
		return 5
	}
	return 0
}

// DSLName is the level's spelling in rule files.
func (l Level) DSLName() string {
	switch l {
	case LevelOrganization:
		return "org"
	case LevelDeviceGroup:
		return "group"
	}
	return string(l)
}

// ParseLevel accepts the canonical names and the rule-file spellings "org"
// and "group". It is exact: case and surrounding spaces matter.
func ParseLevel(s string) (Level, bool) {
	switch s {
	case "org":
		return LevelOrganization, true
	case "group":
		return LevelDeviceGroup, true
	}
	if l := Level(s); l.Valid() {
		return l, true
	}
	return "", false
}

// MaxAssignmentPriority bounds Assignment.Priority (the same bound as rule
// priorities).
const MaxAssignmentPriority = 100000

// Assignment attaches a policy to one node of the hierarchy. Within a level
// the lower priority wins; equal priorities fall to the earlier CreatedAt.
type Assignment struct {
	ID       string `json:"id,omitempty"`
	Level    Level  `json:"level"`
	Target   string `json:"targetId"` // id (or, in rule files, a name) of the partner/org/site/group/device
	Priority int    `json:"priority"` // lower wins within a level; 0..MaxAssignmentPriority
	// Condition is an optional CEL expression over `device` that must hold
	// for the assignment to apply; see CompileCondition.
	Condition string    `json:"condition,omitempty"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
}

// Policy is a configuration policy: feature settings plus where they apply.
//
// Active defaults to true when decoded from JSON, but a Policy built in Go
// starts inactive (the zero value): whoever builds one must say so.
type Policy struct {
	ID          string  `json:"id,omitempty"`
	OrgID       string  `json:"orgId,omitempty"`     // owner org; empty with PartnerID set = partner-wide
	PartnerID   string  `json:"partnerId,omitempty"` // owner partner of a partner-wide policy
	Name        string  `json:"name"`                // 1..255 characters
	Description *string `json:"description,omitempty"`
	Active      bool    `json:"active"` // inactive policies never resolve
	// Features maps a feature's Name (e.g. "pam", "software_policy") to its
	// inline settings, a JSON object checked by that feature's Validate.
	Features    map[string]json.RawMessage `json:"features"`
	Assignments []Assignment               `json:"assignments"`
	CreatedAt   time.Time                  `json:"createdAt,omitzero"`
	UpdatedAt   time.Time                  `json:"updatedAt,omitzero"`
	// FromFiles marks a policy of the rule files: it belongs to FileOrg
	// (an organisation's id, or a name as the files spell it), or to every
	// organisation when FileOrg is empty, and its targets may be names.
	// Neither is ever read from or written to JSON, so only rule files can
	// make such a policy.
	FromFiles bool   `json:"-"`
	FileOrg   string `json:"-"`
}

// UnmarshalJSON applies the create default (active true) when the document
// leaves it out.
func (p *Policy) UnmarshalJSON(data []byte) error {
	type plain Policy
	q := plain{Active: true}
	if err := json.Unmarshal(data, &q); err != nil {
		return err
	}
	*p = Policy(q)
	return nil
}
