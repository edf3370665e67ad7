package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Key layout. Every key starts with a one-byte table prefix; keys of
// per-organisation tables continue with the 16-byte org id, so one org's
// data is one contiguous range and no query crosses tenants by accident.
// Timestamps in keys are big-endian Unix nanoseconds with the sign bit
// flipped, so byte order is time order.
//
//	0x00 "schema"                        schema version (uvarint)
//	'P' partner                          partner (JSON)
//	'O' org                              organisation and its PAM settings (JSON)
//	's' org site                         site (JSON)
//	'g' org group                        device group (JSON)
//	'd' org device                       device (JSON)
//	'D' device                           org of a device (16 bytes)
//	'T' sha256(agent token)              org + device (32 bytes)
//	'R' org rule                         rule (engine.Rule JSON)
//	'G' org group                        signer group (engine.SignerGroup JSON)
//	'V' org                              rule-set version (8 bytes)
//	'C' policy                           configuration policy (JSON)
//	'q' org requestedAt id               elevation request (binary row)
//	'n' org id                           requestedAt of a request (8 bytes)
//	'i' org kind value requestedAt id    secondary index; value = row facet
//	'e' expiresAt org id                 active grants by expiry (sweep)
//	'p' requestedAt org id               pending requests by age (sweep)
//	'a' org seq                          audit record (JSON)
//	'h' org                              audit chain head: seq(8) hash(32)
//	'x' org command                      device command (JSON)
//	'k' org status                       number of requests (8 bytes; status 0 = all)
const (
	pSchema      = 0x00
	pPartner     = 'P'
	pOrg         = 'O'
	pSite        = 's'
	pGroup       = 'g'
	pDevice      = 'd'
	pDeviceOrg   = 'D'
	pToken       = 'T'
	pRule        = 'R'
	pSignerGroup = 'G'
	pVersion     = 'V'
	pPolicy      = 'C'
	pRequest     = 'q'
	pRequestID   = 'n'
	pIndex       = 'i'
	pExpiry      = 'e'
	pPending     = 'p'
	pAudit       = 'a'
	pAuditHead   = 'h'
	pCommand     = 'x'
	pCount       = 'k'
	pAPIKey      = 'K' // 'K' id: API key (JSON; the key itself is never stored)
	pAPIKeyHash  = 'H' // 'H' sha256(API key): id of the key (16 bytes); only while not revoked
)

// Secondary index kinds (after 'i' org).
const (
	ixStatus = 's' // + status code (1)
	ixFlow   = 'f' // + flow code (1)
	ixDevice = 'd' // + device id (16)
	ixSite   = 'S' // + site id (16); requests without a site are not indexed
)

var schemaKey = []byte{pSchema, 's', 'c', 'h', 'e', 'm', 'a'}

func key(prefix byte, parts ...[]byte) []byte {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 1, n)
	k[0] = prefix
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

// The instants a key or row can hold: int64 Unix nanoseconds.
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// representable reports whether t survives the int64-nanosecond encoding.
func representable(t time.Time) bool { return t.IsZero() || !t.Before(minTime) && !t.After(maxTime) }

// clampTime brings a query bound into the representable range.
func clampTime(t time.Time) time.Time {
	switch {
	case t.Before(minTime):
		return minTime
	case t.After(maxTime):
		return maxTime
	}
	return t
}

// upperSeek is the seek key for a reverse walk of prefix+time keys with an
// inclusive upper bound to: just past every key at to. Without a bound, or
// at the largest instant, it is the end of the prefix (nil: none).
func upperSeek(prefix []byte, to time.Time) []byte {
	if to.IsZero() || !clampTime(to).Before(maxTime) {
		return prefixEnd(prefix)
	}
	return append(slices.Clone(prefix), ts(clampTime(to).Add(1))...)
}

func ts(t time.Time) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano())^(1<<63))
	return b[:]
}

func tsOf(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func requestKey(org ID, at time.Time, id ID) []byte { return key(pRequest, org[:], ts(at), id[:]) }

func indexKey(org ID, kind byte, val []byte, at time.Time, id ID) []byte {
	return key(pIndex, org[:], []byte{kind}, val, ts(at), id[:])
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	e := append([]byte(nil), p...)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] != 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil // no upper bound
}

// keyString renders a key for error messages: the table prefix, then ids
// and times where the layout has them, else hex.
func keyString(k []byte) string {
	if len(k) == 0 {
		return "<empty>"
	}
	idAt := func(b []byte) string { var id ID; copy(id[:], b); return id.String() }
	switch k[0] {
	case pRequest:
		if len(k) == 1+16+8+16 {
			return fmt.Sprintf("request/%s/%s/%s", idAt(k[1:17]), tsOf(k[17:25]).Format(time.RFC3339Nano), idAt(k[25:]))
		}
	case pAudit:
		if len(k) == 1+16+8 {
			return fmt.Sprintf("audit/%s/%d", idAt(k[1:17]), binary.BigEndian.Uint64(k[17:]))
		}
	case pRule, pSignerGroup, pSite, pGroup, pDevice, pCommand:
		if len(k) == 33 {
			names := map[byte]string{pRule: "rule", pSignerGroup: "signer-group", pSite: "site", pGroup: "device-group", pDevice: "device", pCommand: "command"}
			return fmt.Sprintf("%s/%s/%s", names[k[0]], idAt(k[1:17]), idAt(k[17:]))
		}
	case pCount:
		if len(k) == 18 {
			st, _ := statusOf(k[17])
			if st == "" {
				st = "all"
			}
			return fmt.Sprintf("request-count/%s/%s", idAt(k[1:17]), st)
		}
	case pOrg, pPartner, pPolicy, pAuditHead, pVersion, pDeviceOrg:
		if len(k) == 17 {
			names := map[byte]string{pOrg: "org", pPartner: "partner", pPolicy: "policy", pAuditHead: "audit-head", pVersion: "rule-version", pDeviceOrg: "device-org"}
			return fmt.Sprintf("%s/%s", names[k[0]], idAt(k[1:]))
		}
	}
	return fmt.Sprintf("%x", k)
}
