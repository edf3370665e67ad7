package store

import (
	"encoding/json"
	"time"
)

// Command is an instruction queued for a device's agent (today only
// actuate_elevation).
type Command struct {
	ID                 string          `json:"id"`
	OrgID              string          `json:"orgId"`
	DeviceID           string          `json:"deviceId"`
	Type               string          `json:"type"`
	Status             string          `json:"status"`
	ElevationRequestID string          `json:"elevationRequestId,omitempty"`
	Payload            json.RawMessage `json:"payload"`
	CreatedAt          time.Time       `json:"createdAt"`
}

// PutCommand stores a device command.
func (tx *Tx) PutCommand(c *Command) error {
	v, err := ids(c.OrgID, c.ID)
	if err != nil {
		return invalid("command", "orgId and id must be UUIDs")
	}
	if _, err := ParseID(c.DeviceID); err != nil {
		return invalid("command", "deviceId must be a UUID")
	}
	return putJSON(tx, key(pCommand, v[0][:], v[1][:]), c)
}

// Command reads a device command.
func (s *Snapshot) Command(org, id string) (*Command, error) {
	v, err := ids(org, id)
	if err != nil {
		return nil, ErrNotFound
	}
	var c Command
	return &c, getJSON(s.r, key(pCommand, v[0][:], v[1][:]), &c)
}
