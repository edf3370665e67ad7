// Package transfer moves Elevate's durable state out of a store and into
// one as JSON Lines: one JSON object per line.
//
// # Format
//
// An elevation-request line is exactly the request's API row (the JSON of
// store.Request, in the API's field names) with nothing added, so a file
// of requests is a plain list of API rows that preview and simulation read
// as they are. Every other line names its entity in a "kind" field beside
// the entity's own JSON fields:
//
//	{"kind":"partner", …store.Partner}
//	{"kind":"org", …store.Org}
//	{"kind":"site", …store.Site}
//	{"kind":"deviceGroup", …store.DeviceGroup}
//	{"kind":"device", …store.Device}
//	{"kind":"signerGroup", …engine.SignerGroup}
//	{"kind":"rule", …engine.Rule}
//	{"kind":"policy", …policy.Policy}
//
// Export writes partners, organisations, sites, device groups, devices,
// signer groups, rules, policies and then requests, oldest first (ties by
// organisation id, then request id), so that everything a line refers to
// comes before it and one pass can import the file. Devices carry only the
// SHA-256 of their agent token, never a token.
//
// # Import
//
// Import reads the whole input, then parses and validates every line
// against the store and the lines before it: the checks of the API and of
// the store's Put operations; references (an organisation's partner, the
// organisation of every other row, a device's site and groups, a
// request's device) that must exist in the store or on an earlier line;
// duplicate ids; an agent-token hash held by another device; a signer-group
// name taken in the organisation. Validation is all-or-nothing: when any
// line is wrong, nothing is written and the error (*ImportError) lists every
// wrong line.
//
// The write that follows is chunked (inventory, then rules, signer groups,
// policies and requests, at most 500 rows per durable commit), so it is not
// one transaction: a crash in the middle leaves a prefix of the file in the
// store. Running the same import again completes it, because rows already
// stored with identical content are skipped. Inventory, rules, signer
// groups and policies replace a stored entity with the same id, as their
// Put operations do; elevation requests never change through an import: a
// request whose id is stored with different content is an error. After the
// rows, one audit record (action "imported", actor system) is appended per
// organisation the file touches, with the counts and the SHA-256 of the
// input.
//
// Import holds the parsed file in memory until it is written; a history of
// millions of requests needs memory in proportion.
package transfer

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/store"
)

// Line kinds. Elevation requests have none.
const (
	KindPartner     = "partner"
	KindOrg         = "org"
	KindSite        = "site"
	KindDeviceGroup = "deviceGroup"
	KindDevice      = "device"
	KindSignerGroup = "signerGroup"
	KindRule        = "rule"
	KindPolicy      = "policy"
)

// kindRequest labels request lines in messages; it never appears in a file.
const kindRequest = "request"

// MaxLineBytes is the longest line Import accepts.
const MaxLineBytes = 16 << 20

// Stats counts the rows of an export or an import, by kind. For an import
// they are the rows written; Skipped counts rows already stored with
// identical content.
type Stats struct {
	Partners     int
	Orgs         int
	Sites        int
	DeviceGroups int
	Devices      int
	SignerGroups int
	Rules        int
	Policies     int
	Requests     int
	Skipped      int
}

// Inventory is the number of partner, organisation, site, device-group and
// device rows.
func (s Stats) Inventory() int { return s.Partners + s.Orgs + s.Sites + s.DeviceGroups + s.Devices }

func (s *Stats) add(kind string, n int) {
	switch kind {
	case KindPartner:
		s.Partners += n
	case KindOrg:
		s.Orgs += n
	case KindSite:
		s.Sites += n
	case KindDeviceGroup:
		s.DeviceGroups += n
	case KindDevice:
		s.Devices += n
	case KindSignerGroup:
		s.SignerGroups += n
	case KindRule:
		s.Rules += n
	case KindPolicy:
		s.Policies += n
	case kindRequest:
		s.Requests += n
	}
}

// knownFields lists, per kind, the JSON field names a line may carry
// besides "kind". Entity lines are decoded strictly: a misspelt criterion
// silently dropped would widen a rule.
var knownFields = map[string]map[string]bool{
	KindPartner:     fieldsOf(reflect.TypeFor[store.Partner]()),
	KindOrg:         fieldsOf(reflect.TypeFor[store.Org]()),
	KindSite:        fieldsOf(reflect.TypeFor[store.Site]()),
	KindDeviceGroup: fieldsOf(reflect.TypeFor[store.DeviceGroup]()),
	KindDevice:      fieldsOf(reflect.TypeFor[store.Device]()),
	KindSignerGroup: fieldsOf(reflect.TypeFor[engine.SignerGroup]()),
	KindRule:        fieldsOf(reflect.TypeFor[engine.Rule]()),
	KindPolicy:      fieldsOf(reflect.TypeFor[policy.Policy]()),
}

func fieldsOf(t reflect.Type) map[string]bool {
	m := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		m[name] = true
	}
	return m
}

// appendLine appends body (one JSON object, as an encoder wrote it), with
// a leading "kind" member when kind is not empty, and a newline to dst.
// Escapes of <, > and & that nested marshalers put in strings are undone:
// the file is read by programs, not embedded in HTML.
func appendLine(dst []byte, kind string, body []byte) ([]byte, error) {
	body = bytes.TrimRight(body, "\n")
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return dst, fmt.Errorf("transfer: a %s does not encode as a JSON object", orRequest(kind))
	}
	if kind != "" {
		dst = append(dst, `{"kind":"`...)
		dst = append(dst, kind...)
		dst = append(dst, '"')
		if len(bytes.TrimSpace(body[1:len(body)-1])) > 0 {
			dst = append(dst, ',')
		}
		body = body[1:]
	}
	dst = unescapeHTML(dst, body)
	return append(dst, '\n'), nil
}

func orRequest(kind string) string {
	if kind == "" {
		return kindRequest
	}
	return kind
}

// unescapeHTML appends src to dst with the JSON escapes \u003c, \u003e and
// \u0026 replaced by the characters they stand for. It walks escape
// sequences whole, so an escaped backslash followed by "u003c" is left
// alone.
func unescapeHTML(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '\\' || i+1 >= len(src) {
			dst = append(dst, c)
			continue
		}
		if src[i+1] == 'u' && i+6 <= len(src) && src[i+2] == '0' && src[i+3] == '0' {
			var r byte
			switch string(bytes.ToLower(src[i+4 : i+6])) {
			case "3c":
				r = '<'
			case "3e":
				r = '>'
			case "26":
				r = '&'
			}
			if r != 0 {
				dst = append(dst, r)
				i += 5
				continue
			}
		}
		dst = append(dst, c, src[i+1])
		i++
	}
	return dst
}

// sameID reports whether two id strings name the same entity (UUIDs in
// either case).
func sameID(a, b string) bool {
	x, err1 := store.ParseID(a)
	y, err2 := store.ParseID(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return x == y
}
