package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/lifecycle"
	"github.com/elevate-pam/elevate/store"
)

// agentObservation is the agent's body (pam-semantics §6.1), in the
// agent's snake_case. Unknown keys are ignored.
type agentObservation struct {
	SubjectUsername *string      `json:"subject_username"`
	Path            *string      `json:"target_executable_path"`
	Hash            *string      `json:"target_executable_hash"`
	Signer          *string      `json:"target_executable_signer"`
	Thumbprint      *string      `json:"target_executable_signer_thumbprint"`
	PID             *json.Number `json:"pid"`
	ParentImage     *string      `json:"parent_image"`
	CommandLine     *string      `json:"command_line"`
	ObservedAt      *string      `json:"observed_at"`
	AdGroups        []string     `json:"ad_groups"`
}

// agentFields names the observation's fields the way the agent sends them,
// for error targets.
var agentFields = map[string]string{
	"observation.subjectUsername":                  "subject_username",
	"observation.targetExecutablePath":             "target_executable_path",
	"observation.targetExecutableHash":             "target_executable_hash",
	"observation.targetExecutableSigner":           "target_executable_signer",
	"observation.targetExecutableSignerThumbprint": "target_executable_signer_thumbprint",
	"observation.parentImage":                      "parent_image",
	"observation.commandLine":                      "command_line",
	"observation.observedAt":                       "observed_at",
	"observation.adGroups":                         "ad_groups",
}

// agentIngest is POST /api/v1/agents/:id/elevation-requests: the agent of
// device :id reports a UAC prompt. Gates in order: the agent's bearer token
// bound to :id (401; a quarantined or decommissioned device 403), the body
// cap on bytes read (413), the body (400), the device's rate limit (429),
// then decide and record (201 {id, status}; 200 for an ignored prompt,
// which stores nothing).
func (s *Server) agentIngest(w http.ResponseWriter, req *http.Request, ps httprouter.Params) error {
	dev, err := s.agentDevice(req, ps.ByName("id"))
	if err != nil {
		return err
	}
	body, err := s.readBody(w, req)
	if err != nil {
		return err
	}
	in, err := parseAgentObservation(body)
	if err != nil {
		return err
	}
	in.DeviceID, in.Device = dev.ID, dev
	if ok, retry := s.limiter.allow(dev.ID); !ok {
		secs := int(math.Ceil(retry.Seconds()))
		return &apiError{Status: http.StatusTooManyRequests, Code: "RATE_LIMITED",
			Message: "too many elevation requests from this device", Header: http.Header{"Retry-After": {strconv.Itoa(secs)}},
			Details: map[string]any{"resetAt": s.lc.Clock().Now().Add(retry).UTC().Format(time.RFC3339Nano)}}
	}
	res, err := s.lc.Ingest(in)
	if err != nil {
		return lifecycleError(err, agentFields)
	}
	s.recordDecision(string(in.Flow), string(res.Decision.Outcome), 0)
	if res.Request == nil {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "id": nil, "status": "ignored"})
		return nil
	}
	writeJSON(w, http.StatusCreated, map[string]any{"success": true, "id": res.Request.ID, "status": res.Request.Status})
	return nil
}

// agentDevice authenticates the agent: its bearer token must be the agent
// token of device id.
func (s *Server) agentDevice(req *http.Request, id string) (*store.Device, error) {
	unauth := &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: "a valid agent token for this device is required",
		Header: http.Header{"Www-Authenticate": {`Bearer realm="elevate-agent"`}}}
	token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return nil, unauth
	}
	var dev *store.Device
	err := s.lc.Store().View(func(sn *store.Snapshot) error {
		var err error
		dev, err = sn.DeviceByToken(strings.TrimSpace(token))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, unauth
	}
	if err != nil {
		return nil, err
	}
	if want, err := store.ParseID(id); err != nil || want.String() != dev.ID {
		return nil, unauth
	}
	if dev.Status != store.DeviceActive {
		return nil, &apiError{Status: http.StatusForbidden, Code: "DEVICE_" + strings.ToUpper(dev.Status),
			Message: "this device is " + dev.Status}
	}
	return dev, nil
}

func parseAgentObservation(body []byte) (lifecycle.IngestInput, error) {
	var in lifecycle.IngestInput
	var a agentObservation
	if !fastAgentBody(body, &a) {
		if err := decodeAgentJSON(body, &a); err != nil {
			return in, err
		}
	}
	bad := func(field, msg string) error {
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: field, Message: field + ": " + msg}
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	if a.SubjectUsername == nil || *a.SubjectUsername == "" {
		return in, bad("subject_username", "is required")
	}
	if a.Path == nil || *a.Path == "" {
		return in, bad("target_executable_path", "is required")
	}
	o := engine.Observation{SubjectUsername: *a.SubjectUsername, TargetExecutablePath: *a.Path, TargetExecutableHash: str(a.Hash),
		TargetExecutableSigner: str(a.Signer), TargetExecutableSignerThumbprint: str(a.Thumbprint),
		ParentImage: str(a.ParentImage), CommandLine: str(a.CommandLine), AdGroups: a.AdGroups}
	if a.PID != nil {
		pid, err := strconv.ParseInt(a.PID.String(), 10, 64)
		if err != nil || pid < 0 || pid > math.MaxUint32 {
			return in, bad("pid", "must be an integer from 0 to 4294967295")
		}
		in.PID = &pid
	}
	if a.ObservedAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *a.ObservedAt)
		if err != nil {
			return in, bad("observed_at", "must be an RFC 3339 time with Z or an offset")
		}
		o.ObservedAt = &t
	}
	in.Flow, in.Observation = engine.FlowUAC, o
	return in, nil
}

// decodeAgentJSON reads the agent's body with encoding/json: unknown keys
// are ignored, and so is anything after the object.
func decodeAgentJSON(body []byte, a *agentObservation) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(a); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Target: te.Field,
				Message: fmt.Sprintf("%s: must be a %s", te.Field, te.Type)}
		}
		return &apiError{Status: http.StatusBadRequest, Code: "VALIDATION", Message: "request body is not a JSON object of the expected fields"}
	}
	return nil
}
