package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"github.com/elevate-pam/elevate/engine"
)

// A request row is stored in a compact binary form, because the preview and
// simulation scans decode millions of them (JSON decodes some seventy times
// slower). The layout is
//
//	header: format(1) status(1) flow(1) device(16) site(16)
//	fields: (tag(1) value)* in any order, absent fields omitted
//
// The fixed header doubles as the value of every secondary-index entry, so
// filters on status, flow, device and site are answered from the index
// without decoding the row. Strings and string lists are uvarint-length
// prefixed; times are varint Unix nanoseconds (UTC); integers are varints.
// An unknown tag is an error (a newer schema), never skipped.

const (
	rowFormat = 1
	facetLen  = 1 + 1 + 1 + 16 + 16
)

type fieldKind byte

const (
	kString fieldKind = iota
	kTime
	kInt
	kStrings
)

// Field tags. Never renumber: they are on disk.
const (
	tID byte = iota + 1
	tOrg
	tSubjectUsername
	tSubjectUserID
	tPath
	tHash
	tSigner
	tParentImage
	tCommandLine
	tPID
	tAdGroups
	tToolName
	tRiskTier
	tActionDigest
	tExecutionID
	tReason
	tRequestedAt
	tCreatedAt
	tDecOutcome
	tDecVerdict
	tDecDecidedBy
	tDecRuleID
	tDecRuleName
	tDecPolicyID
	tDecError
	tDecVersion
	tMatchedPolicyName
	tDuration
	tApprovedAt
	tApprovedBy
	tApprovedByName
	tApprovalReason
	tExpiresAt
	tDeniedAt
	tDeniedBy
	tDeniedByName
	tDenialReason
	tRevokedAt
	tRevokedBy
	tRevokedByName
	tRevokedReason
	tExpiredAt
	tExpiredCause
	tActuatedAt
	tActuatedBy
	tActuationCommandID
	tMax
)

// facet is the fixed header of a row: what index filters look at.
type facet struct {
	status Status
	flow   engine.FlowType
	device ID
	site   ID
}

func (r *Request) facet() (facet, error) {
	dev, err := ParseID(r.DeviceID)
	if err != nil {
		return facet{}, err
	}
	site, err := optID(r.SiteID)
	if err != nil {
		return facet{}, err
	}
	return facet{r.Status, r.Flow, dev, site}, nil
}

func (f facet) append(b []byte) []byte {
	b = append(b, rowFormat, statusCode(f.status), flowCode(f.flow))
	b = append(b, f.device[:]...)
	return append(b, f.site[:]...)
}

func decodeFacet(b []byte) (facet, error) {
	if len(b) < facetLen || b[0] != rowFormat {
		return facet{}, errors.New("bad row header")
	}
	st, ok1 := statusOf(b[1])
	fl, ok2 := flowOf(b[2])
	if !ok1 || !ok2 {
		return facet{}, errors.New("bad status or flow code")
	}
	var f facet
	f.status, f.flow = st, fl
	copy(f.device[:], b[3:19])
	copy(f.site[:], b[19:35])
	if f.device == NilID {
		return facet{}, errors.New("row names no device")
	}
	return f, nil
}

// encodeRequest appends the binary row of r to b.
func encodeRequest(b []byte, r *Request) ([]byte, error) {
	f, err := r.facet()
	if err != nil {
		return nil, err
	}
	b = f.append(b)
	str := func(tag byte, s string) {
		if s != "" {
			b = append(b, tag)
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	tm := func(tag byte, t time.Time) {
		if !t.IsZero() {
			b = append(b, tag)
			b = binary.AppendVarint(b, t.UnixNano())
		}
	}
	num := func(tag byte, v int64) {
		b = append(b, tag)
		b = binary.AppendVarint(b, v)
	}
	str(tID, r.ID)
	str(tOrg, r.OrgID)
	str(tSubjectUsername, r.SubjectUsername)
	str(tSubjectUserID, r.SubjectUserID)
	str(tPath, r.TargetExecutablePath)
	str(tHash, r.TargetExecutableHash)
	str(tSigner, r.TargetExecutableSigner)
	str(tParentImage, r.ParentImage)
	str(tCommandLine, r.CommandLine)
	if r.PID != nil {
		num(tPID, *r.PID)
	}
	if r.AdGroups != nil {
		b = append(b, tAdGroups)
		b = binary.AppendUvarint(b, uint64(len(r.AdGroups)))
		for _, g := range r.AdGroups {
			b = binary.AppendUvarint(b, uint64(len(g)))
			b = append(b, g...)
		}
	}
	str(tToolName, r.ToolName)
	if r.RiskTier != nil {
		num(tRiskTier, int64(*r.RiskTier))
	}
	str(tActionDigest, r.ActionDigest)
	str(tExecutionID, r.ExecutionID)
	str(tReason, r.Reason)
	tm(tRequestedAt, r.RequestedAt)
	tm(tCreatedAt, r.CreatedAt)
	d := &r.Decision
	str(tDecOutcome, string(d.Outcome))
	str(tDecVerdict, string(d.Verdict))
	str(tDecDecidedBy, string(d.DecidedBy))
	str(tDecRuleID, d.RuleID)
	str(tDecRuleName, d.RuleName)
	str(tDecPolicyID, d.SoftwarePolicyID)
	str(tDecError, d.Error)
	if d.RuleSetVersion != 0 {
		num(tDecVersion, int64(d.RuleSetVersion))
	}
	str(tMatchedPolicyName, r.MatchedPolicyName)
	if r.DurationMinutes != 0 {
		num(tDuration, int64(r.DurationMinutes))
	}
	tm(tApprovedAt, r.ApprovedAt)
	str(tApprovedBy, r.ApprovedBy)
	str(tApprovedByName, r.ApprovedByName)
	str(tApprovalReason, r.ApprovalReason)
	tm(tExpiresAt, r.ExpiresAt)
	tm(tDeniedAt, r.DeniedAt)
	str(tDeniedBy, r.DeniedBy)
	str(tDeniedByName, r.DeniedByName)
	str(tDenialReason, r.DenialReason)
	tm(tRevokedAt, r.RevokedAt)
	str(tRevokedBy, r.RevokedBy)
	str(tRevokedByName, r.RevokedByName)
	str(tRevokedReason, r.RevokedReason)
	tm(tExpiredAt, r.ExpiredAt)
	str(tExpiredCause, r.ExpiredCause)
	tm(tActuatedAt, r.ActuatedAt)
	str(tActuatedBy, r.ActuatedBy)
	str(tActuationCommandID, r.ActuationCommandID)
	return b, nil
}

var kinds = func() [tMax]fieldKind {
	var k [tMax]fieldKind
	for _, t := range []byte{tRequestedAt, tCreatedAt, tApprovedAt, tExpiresAt, tDeniedAt, tRevokedAt, tExpiredAt, tActuatedAt} {
		k[t] = kTime
	}
	for _, t := range []byte{tPID, tRiskTier, tDecVersion, tDuration} {
		k[t] = kInt
	}
	k[tAdGroups] = kStrings
	return k
}()

// decodeRequest decodes a row. The strings of the result share buf, which
// must not be modified afterwards (callers pass a copy they own).
func decodeRequest(buf []byte, r *Request) error { return decodeRow(buf, r, nil) }

// rowScratch lets a scan decode row after row without allocating: the
// pointer and slice fields of the decoded request point into it, and id
// strings repeat (a device's requests share its id).
type rowScratch struct {
	ids    map[ID]string
	pid    int64
	tier   int
	groups []string
}

func (d *rowScratch) idString(id ID) string {
	if id == NilID {
		return ""
	}
	if s, ok := d.ids[id]; ok {
		return s
	}
	s := id.String()
	if len(d.ids) < 1<<16 {
		d.ids[id] = s
	}
	return s
}

// decodeRow decodes a row into r. With d nil every pointer and slice of r
// is newly allocated; with d they live in d and are overwritten by the next
// row decoded with it.
func decodeRow(buf []byte, r *Request, d *rowScratch) error {
	f, err := decodeFacet(buf)
	if err != nil {
		return err
	}
	if d != nil {
		*r = Request{Status: f.status, Flow: f.flow, DeviceID: d.idString(f.device), SiteID: d.idString(f.site)}
	} else {
		*r = Request{Status: f.status, Flow: f.flow, DeviceID: f.device.String(), SiteID: f.site.String()}
	}
	b := buf[facetLen:]
	for len(b) > 0 {
		tag := b[0]
		b = b[1:]
		if tag == 0 || tag >= tMax {
			return fmt.Errorf("unknown field tag %d", tag)
		}
		var s string
		var n int64
		switch kinds[tag] {
		case kString:
			l, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < l {
				return fmt.Errorf("field %d: truncated string", tag)
			}
			s = unsafe.String(unsafe.SliceData(b[k:]), int(l))
			b = b[k+int(l):]
		case kTime, kInt:
			v, k := binary.Varint(b)
			if k <= 0 {
				return fmt.Errorf("field %d: truncated number", tag)
			}
			n = v
			b = b[k:]
		case kStrings:
			cnt, k := binary.Uvarint(b)
			if k <= 0 || cnt > uint64(len(b)) {
				return fmt.Errorf("field %d: truncated list", tag)
			}
			b = b[k:]
			var list []string
			if d != nil && d.groups != nil {
				list = d.groups[:0] // present, even when empty
			} else {
				list = make([]string, 0, cnt)
			}
			for range cnt {
				l, k := binary.Uvarint(b)
				if k <= 0 || uint64(len(b)-k) < l {
					return fmt.Errorf("field %d: truncated list", tag)
				}
				list = append(list, unsafe.String(unsafe.SliceData(b[k:]), int(l)))
				b = b[k+int(l):]
			}
			r.AdGroups = list
			if d != nil {
				d.groups = list
			}
			continue
		}
		t := func() time.Time { return time.Unix(0, n).UTC() }
		switch tag {
		case tID:
			r.ID = s
		case tOrg:
			r.OrgID = s
		case tSubjectUsername:
			r.SubjectUsername = s
		case tSubjectUserID:
			r.SubjectUserID = s
		case tPath:
			r.TargetExecutablePath = s
		case tHash:
			r.TargetExecutableHash = s
		case tSigner:
			r.TargetExecutableSigner = s
		case tParentImage:
			r.ParentImage = s
		case tCommandLine:
			r.CommandLine = s
		case tPID:
			if d != nil {
				d.pid, r.PID = n, &d.pid
			} else {
				pid := n
				r.PID = &pid
			}
		case tToolName:
			r.ToolName = s
		case tRiskTier:
			if d != nil {
				d.tier, r.RiskTier = int(n), &d.tier
			} else {
				v := int(n)
				r.RiskTier = &v
			}
		case tActionDigest:
			r.ActionDigest = s
		case tExecutionID:
			r.ExecutionID = s
		case tReason:
			r.Reason = s
		case tRequestedAt:
			r.RequestedAt = t()
		case tCreatedAt:
			r.CreatedAt = t()
		case tDecOutcome:
			r.Decision.Outcome = engine.Outcome(s)
		case tDecVerdict:
			r.Decision.Verdict = engine.Verdict(s)
		case tDecDecidedBy:
			r.Decision.DecidedBy = engine.DecidedBy(s)
		case tDecRuleID:
			r.Decision.RuleID = s
		case tDecRuleName:
			r.Decision.RuleName = s
		case tDecPolicyID:
			r.Decision.SoftwarePolicyID = s
		case tDecError:
			r.Decision.Error = s
		case tDecVersion:
			r.Decision.RuleSetVersion = uint64(n)
		case tMatchedPolicyName:
			r.MatchedPolicyName = s
		case tDuration:
			r.DurationMinutes = int(n)
		case tApprovedAt:
			r.ApprovedAt = t()
		case tApprovedBy:
			r.ApprovedBy = s
		case tApprovedByName:
			r.ApprovedByName = s
		case tApprovalReason:
			r.ApprovalReason = s
		case tExpiresAt:
			r.ExpiresAt = t()
		case tDeniedAt:
			r.DeniedAt = t()
		case tDeniedBy:
			r.DeniedBy = s
		case tDeniedByName:
			r.DeniedByName = s
		case tDenialReason:
			r.DenialReason = s
		case tRevokedAt:
			r.RevokedAt = t()
		case tRevokedBy:
			r.RevokedBy = s
		case tRevokedByName:
			r.RevokedByName = s
		case tRevokedReason:
			r.RevokedReason = s
		case tExpiredAt:
			r.ExpiredAt = t()
		case tExpiredCause:
			r.ExpiredCause = s
		case tActuatedAt:
			r.ActuatedAt = t()
		case tActuatedBy:
			r.ActuatedBy = s
		case tActuationCommandID:
			r.ActuationCommandID = s
		}
	}
	if r.ID == "" || r.OrgID == "" || r.RequestedAt.IsZero() {
		return errors.New("row lacks id, org or requestedAt")
	}
	if p := r.grantProblem(); p != "" {
		return errors.New(p)
	}
	return nil
}

// MarshalRow returns the binary row form of r, as the store keeps it.
func MarshalRow(r *Request) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	return encodeRequest(nil, r)
}

// UnmarshalRow decodes a binary row. The request's strings share b, which
// the caller must not modify afterwards.
func UnmarshalRow(b []byte, r *Request) error { return decodeRequest(b, r) }

// Clone returns a copy of r that shares no memory with it: what a
// ScanRows callback must keep.
func (r *Request) Clone() *Request {
	c := *r
	cloneStrings(reflect.ValueOf(&c).Elem())
	if r.PID != nil {
		v := *r.PID
		c.PID = &v
	}
	if r.RiskTier != nil {
		v := *r.RiskTier
		c.RiskTier = &v
	}
	if r.AdGroups != nil {
		c.AdGroups = make([]string, len(r.AdGroups))
		for i, g := range r.AdGroups {
			c.AdGroups[i] = strings.Clone(g)
		}
	}
	return &c
}

// cloneStrings replaces every string field of a struct (and of structs in
// it) with a copy.
func cloneStrings(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(strings.Clone(f.String()))
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				cloneStrings(f)
			}
		}
	}
}
