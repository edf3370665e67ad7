package transfer

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/engine"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/store"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// At is the time of the audit records; zero = now.
	At time.Time
	// DryRun validates the input and counts what would be written, without
	// writing anything.
	DryRun bool
}

// LineError is one wrong line of an import.
type LineError struct {
	Line int // 1-based
	Msg  string
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ImportError refuses an import: it lists every wrong line, in order, and
// nothing was written.
type ImportError struct {
	Errors []LineError
}

// maxShownErrors bounds the lines ImportError.Error spells out.
const maxShownErrors = 20

func (e *ImportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "transfer: %d invalid line(s), nothing imported", len(e.Errors))
	for i, le := range e.Errors {
		if i == maxShownErrors {
			fmt.Fprintf(&b, "\n… and %d more", len(e.Errors)-maxShownErrors)
			break
		}
		b.WriteString("\n")
		b.WriteString(le.Error())
	}
	return b.String()
}

// Write chunking: at most this many rows, and about this many input bytes,
// per durable commit.
const (
	chunkRows  = 500
	chunkBytes = 2 << 20
)

// item is one parsed line.
type item struct {
	line  int
	size  int
	kind  string // kindRequest for requests
	label string // the line's id as written, for messages
	v     any    // *store.Partner, *store.Org, …, *store.Request
	id    store.ID
	org   store.ID // the organisation the row belongs to (NilID: none)
	hasID bool     // id (and org, where the kind has one) parsed
	probs []string
	skip  bool // stored with identical content
}

func (it *item) bad(format string, a ...any) { it.probs = append(it.probs, fmt.Sprintf(format, a...)) }

func (it *item) msg() string {
	p := strings.Join(it.probs, "; ")
	switch {
	case it.kind == "" || strings.HasPrefix(p, it.kind+" "):
		return p
	case it.label != "":
		return fmt.Sprintf("%s %s: %s", it.kind, it.label, p)
	}
	return it.kind + ": " + p
}

// Import validates every line of r against st and, when all are valid,
// writes them; see the package documentation. A refused import returns an
// *ImportError and writes nothing. An error during the write (which is
// chunked) returns the counts of the rows already written.
func Import(st *store.Store, r io.Reader, o ImportOptions) (Stats, error) {
	var stats Stats
	var items []*item
	var lineErrs []LineError
	sum, err := readLines(r, func(n int, line []byte, tooLong bool) {
		if tooLong {
			lineErrs = append(lineErrs, LineError{n, fmt.Sprintf("line longer than %d bytes", MaxLineBytes)})
			return
		}
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(bytes.TrimSpace(line)) == 0 {
			return
		}
		items = append(items, parseLine(n, line))
	})
	if err != nil {
		return stats, fmt.Errorf("transfer: reading input: %w", err)
	}

	err = st.View(func(sn *store.Snapshot) error {
		v, err := newValidator(sn)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := v.check(it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return stats, err
	}
	for _, it := range items {
		if it.probs != nil {
			lineErrs = append(lineErrs, LineError{it.line, it.msg()})
		}
	}
	if len(lineErrs) > 0 {
		slices.SortStableFunc(lineErrs, func(a, b LineError) int { return cmp.Compare(a.Line, b.Line) })
		return stats, &ImportError{Errors: lineErrs}
	}

	if err := rehearse(st, items); err != nil {
		return stats, err
	}
	if o.DryRun {
		for _, it := range items {
			if it.skip {
				stats.Skipped++
			} else {
				stats.add(it.kind, 1)
			}
		}
		return stats, nil
	}
	return write(st, items, hex.EncodeToString(sum[:]), o)
}

// readLines calls fn with every line of r (without its line ending) and
// its 1-based number, or with tooLong for a line over MaxLineBytes, and
// returns the SHA-256 of all of r. line is only valid during the call.
func readLines(r io.Reader, fn func(n int, line []byte, tooLong bool)) ([32]byte, error) {
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(r, h), 64<<10)
	var acc []byte
	tooLong := false
	for n := 1; ; n++ {
		var err error
		for {
			var frag []byte
			frag, err = br.ReadSlice('\n')
			if !tooLong {
				if len(acc)+len(frag) > MaxLineBytes+2 { // + "\r\n"
					tooLong, acc = true, acc[:0]
				} else {
					acc = append(acc, frag...)
				}
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return [32]byte{}, err
		}
		if err == nil || len(acc) > 0 || tooLong {
			line := bytes.TrimSuffix(bytes.TrimSuffix(acc, []byte("\n")), []byte("\r"))
			fn(n, line, tooLong)
		}
		if err == io.EOF {
			break
		}
		acc, tooLong = acc[:0], false
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

// requestFields are the names a request line may carry: the API's row
// fields and the joins the list endpoint adds.
var requestFields = func() map[string]bool {
	m := map[string]bool{"deviceHostname": true, "siteName": true}
	for _, f := range store.RequestFields() {
		m[f] = true
	}
	return m
}()

// unknownFields lists, quoted and sorted, the top-level members of an
// object line that known does not name ("kind" aside). Names are matched
// exactly: encoding/json would otherwise fold "STATUS" onto "status".
func unknownFields(line []byte, known map[string]bool) []string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(line, &fields) != nil {
		return nil // reported as a syntax error elsewhere
	}
	var unknown []string
	for k := range fields {
		if k != "kind" && !known[k] {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	slices.Sort(unknown)
	return unknown
}

// duplicateMember reports an object, at any depth, that names a member
// twice: which of the two counts is a matter of the reader, so such a line
// is refused.
func duplicateMember(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	type frame struct {
		obj   bool
		names map[string]bool
		key   bool // the next string token is a member name
	}
	var stack []*frame
	for {
		t, err := dec.Token()
		if err != nil {
			return nil // end of input, or a syntax error reported elsewhere
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := t.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{obj: v == '{', names: map[string]bool{}, key: v == '{'})
				continue
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].key = true
				}
				continue
			}
		case string:
			if top != nil && top.obj && top.key {
				if top.names[v] {
					return fmt.Errorf("member %q appears twice in one object", v)
				}
				top.names[v] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}

// parseLine decodes one line and runs the checks that need nothing but
// the line itself.
func parseLine(n int, line []byte) *item {
	it := &item{line: n, size: len(line)}
	if t := bytes.TrimSpace(line); len(t) == 0 || t[0] != '{' {
		if !json.Valid(line) {
			it.bad("invalid JSON: %v", syntaxError(line))
		} else {
			it.bad("not a JSON object")
		}
		return it
	}
	var head struct {
		Kind json.RawMessage `json:"kind"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		it.bad("invalid JSON: %v", syntaxError(line))
		return it
	}
	if err := duplicateMember(line); err != nil {
		it.bad("%v", err)
		return it
	}
	if head.Kind == nil {
		it.kind = kindRequest
		if unknown := unknownFields(line, requestFields); unknown != nil {
			it.bad("unknown field(s) %s (field names are case-sensitive)", strings.Join(unknown, ", "))
			return it
		}
		parseRequest(it, line)
		return it
	}
	var kind string
	if err := json.Unmarshal(head.Kind, &kind); err != nil || string(head.Kind) == "null" {
		it.bad("kind: must be a string")
		return it
	}
	known, ok := knownFields[kind]
	if !ok {
		it.bad("unknown kind %q", kind)
		return it
	}
	it.kind = kind
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		it.bad("invalid JSON: %v", err)
		return it
	}
	if unknown := unknownFields(line, known); unknown != nil {
		it.bad("unknown field(s) %s", strings.Join(unknown, ", "))
	}
	if raw, ok := fields["id"]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			it.label = s
		}
	}
	var v any
	switch kind {
	case KindPartner:
		v = new(store.Partner)
	case KindOrg:
		v = new(store.Org)
	case KindSite:
		v = new(store.Site)
	case KindDeviceGroup:
		v = new(store.DeviceGroup)
	case KindDevice:
		v = new(store.Device)
	case KindSignerGroup:
		v = new(engine.SignerGroup)
	case KindRule:
		v = new(engine.Rule)
	case KindPolicy:
		v = new(policy.Policy)
	}
	if err := json.Unmarshal(line, v); err != nil {
		it.bad("%v", err)
		return it
	}
	it.v = v
	switch v := v.(type) {
	case *store.Partner:
		it.id, it.hasID = parseIDs(it, "id", v.ID)
		if strings.TrimSpace(v.Name) == "" {
			it.bad("name: is required")
		}
	case *store.Org:
		it.id, it.hasID = parseIDs(it, "id", v.ID)
		it.org = it.id
		if strings.TrimSpace(v.Name) == "" {
			it.bad("name: is required")
		}
		if d := v.DefaultUnmatchedVerdict; d != "" && d != engine.VerdictRequireApproval && d != engine.VerdictAutoDeny {
			it.bad("defaultUnmatchedVerdict: %q must be require_approval or auto_deny", d)
		}
	case *store.Site:
		parseOrgEntity(it, v.OrgID, v.ID)
		if strings.TrimSpace(v.Name) == "" {
			it.bad("name: is required")
		}
	case *store.DeviceGroup:
		parseOrgEntity(it, v.OrgID, v.ID)
		if strings.TrimSpace(v.Name) == "" {
			it.bad("name: is required")
		}
	case *store.Device:
		parseOrgEntity(it, v.OrgID, v.ID)
		if strings.TrimSpace(v.Hostname) == "" {
			it.bad("hostname: is required")
		}
		switch v.Status {
		case "", store.DeviceActive, store.DeviceQuarantined, store.DeviceDecommissioned:
		default:
			it.bad("status: %q must be active, quarantined or decommissioned", v.Status)
		}
		if v.SiteID != "" {
			if _, err := store.ParseID(v.SiteID); err != nil {
				it.bad("siteId: %v", err)
			}
		}
		for i, g := range v.GroupIDs {
			if _, err := store.ParseID(g); err != nil {
				it.bad("groupIds[%d]: %v", i, err)
			}
		}
		if v.TokenHash != "" && !engine.IsHex64(v.TokenHash) {
			it.bad("agentTokenHash: must be 64 hexadecimal characters")
		}
	case *engine.SignerGroup:
		parseOrgEntity(it, v.OrgID, v.ID)
		fieldProblems(it, engine.ValidateSignerGroup(v))
		var raw struct {
			Signers []json.RawMessage `json:"signers"`
		}
		if json.Unmarshal(line, &raw) == nil {
			for i, s := range raw.Signers {
				if _, err := engine.StrictSignerEntry(s); err != nil {
					it.bad("signers[%d]: %v", i, err)
				}
			}
		}
	case *engine.Rule:
		parseOrgEntity(it, v.OrgID, v.ID)
		fieldProblems(it, engine.ValidateRule(v))
	case *policy.Policy:
		if v.ID == "" {
			it.bad("id: is required")
		} else if id, err := store.ParseID(v.ID); err == nil {
			it.id, it.hasID = id, true
		}
		fieldProblems(it, policy.ValidatePolicy(v)) // reports an id that is not a UUID
		if v.OrgID != "" {
			if org, err := store.ParseID(v.OrgID); err == nil {
				it.org = org
			}
		}
	}
	return it
}

// syntaxError re-decodes a line that failed, for the decoder's message.
func syntaxError(line []byte) error {
	var x any
	err := json.Unmarshal(line, &x)
	if err == nil {
		return errors.New("not a JSON object")
	}
	return err
}

// parseIDs parses the id field called name, reporting it when it is not
// a UUID.
func parseIDs(it *item, name, s string) (store.ID, bool) {
	id, err := store.ParseID(s)
	if err != nil || id == store.NilID {
		it.bad("%s: must be a UUID (not the nil UUID)", name)
		return store.ID{}, false
	}
	return id, true
}

func parseOrgEntity(it *item, org, id string) {
	i, ok2 := parseIDs(it, "id", id)
	o, ok1 := parseIDs(it, "orgId", org)
	it.org, it.id, it.hasID = o, i, ok1 && ok2
	if !ok1 {
		it.org = store.NilID
	}
}

// fieldProblems adds a validator's findings to the line.
func fieldProblems(it *item, err error) {
	if err == nil {
		return
	}
	var fes engine.FieldErrors
	if errors.As(err, &fes) {
		for _, fe := range fes {
			it.bad("%s", fe.Error())
		}
		return
	}
	it.bad("%v", err)
}

func parseRequest(it *item, line []byte) {
	var r store.Request
	if err := json.Unmarshal(line, &r); err != nil {
		it.bad("%v", err)
		return
	}
	it.label = r.ID
	// Ids compare with stored rows in their canonical form.
	for _, p := range []*string{&r.ID, &r.OrgID, &r.DeviceID, &r.SiteID} {
		if id, err := store.ParseID(*p); err == nil && id != store.NilID {
			*p = id.String()
		}
	}
	if _, err := store.MarshalRow(&r); err != nil {
		var inv *store.InvalidError
		if errors.As(err, &inv) {
			it.probs = append(it.probs, inv.Problems...)
		} else {
			it.bad("%v", err)
		}
		return
	}
	it.v = &r
	it.id, _ = store.ParseID(r.ID)
	it.org, _ = store.ParseID(r.OrgID)
	it.hasID = true
}

// entityKey names a row for duplicate detection and comparison with the
// store.
type entityKey struct {
	kind    string
	org, id store.ID
}

type sgName struct {
	id   store.ID
	name string
}

// validator holds what the store and the lines so far say exists.
type validator struct {
	sn        *store.Snapshot
	partners  map[store.ID]bool
	orgs      map[store.ID]bool
	sites     map[[2]store.ID]bool
	groups    map[[2]store.ID]bool
	deviceOrg map[store.ID]store.ID
	tokens    map[string]store.ID // lowercase token hash → device
	devToken  map[store.ID]string
	sgNames   map[store.ID][]sgName // per organisation
	stored    map[entityKey][]byte  // canonical JSON of stored entities
	seen      map[entityKey]int     // line of the row in the file
}

func canon(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

func newValidator(sn *store.Snapshot) (*validator, error) {
	v := &validator{
		sn: sn, partners: map[store.ID]bool{}, orgs: map[store.ID]bool{},
		sites: map[[2]store.ID]bool{}, groups: map[[2]store.ID]bool{},
		deviceOrg: map[store.ID]store.ID{}, tokens: map[string]store.ID{}, devToken: map[store.ID]string{},
		sgNames: map[store.ID][]sgName{}, stored: map[entityKey][]byte{}, seen: map[entityKey]int{},
	}
	partners, err := sn.Partners()
	if err != nil {
		return nil, err
	}
	for i := range partners {
		if id, err := store.ParseID(partners[i].ID); err == nil {
			v.partners[id] = true
			v.stored[entityKey{KindPartner, store.NilID, id}] = canon(&partners[i])
		}
	}
	orgs, err := sn.Orgs()
	if err != nil {
		return nil, err
	}
	for i := range orgs {
		org, err := store.ParseID(orgs[i].ID)
		if err != nil {
			continue
		}
		v.orgs[org] = true
		v.stored[entityKey{KindOrg, store.NilID, org}] = canon(&orgs[i])
		sites, err := sn.Sites(orgs[i].ID)
		if err != nil {
			return nil, err
		}
		for j := range sites {
			if id, err := store.ParseID(sites[j].ID); err == nil {
				v.sites[[2]store.ID{org, id}] = true
				v.stored[entityKey{KindSite, org, id}] = canon(&sites[j])
			}
		}
		groups, err := sn.DeviceGroups(orgs[i].ID)
		if err != nil {
			return nil, err
		}
		for j := range groups {
			if id, err := store.ParseID(groups[j].ID); err == nil {
				v.groups[[2]store.ID{org, id}] = true
				v.stored[entityKey{KindDeviceGroup, org, id}] = canon(&groups[j])
			}
		}
		devices, err := sn.Devices(orgs[i].ID)
		if err != nil {
			return nil, err
		}
		for j := range devices {
			d := &devices[j]
			if id, err := store.ParseID(d.ID); err == nil {
				v.deviceOrg[id] = org
				if d.TokenHash != "" {
					th := strings.ToLower(d.TokenHash)
					v.tokens[th], v.devToken[id] = id, th
				}
				v.stored[entityKey{KindDevice, store.NilID, id}] = canon(d)
			}
		}
		rs, err := sn.RuleSet(orgs[i].ID)
		if err != nil {
			return nil, err
		}
		for j := range rs.Rules {
			if id, err := store.ParseID(rs.Rules[j].ID); err == nil {
				v.stored[entityKey{KindRule, org, id}] = canon(&rs.Rules[j])
			}
		}
		for j := range rs.SignerGroups {
			g := &rs.SignerGroups[j]
			if id, err := store.ParseID(g.ID); err == nil {
				v.sgNames[org] = append(v.sgNames[org], sgName{id, strings.TrimSpace(g.Name)})
				v.stored[entityKey{KindSignerGroup, org, id}] = canon(g)
			}
		}
	}
	policies, err := sn.Policies()
	if err != nil {
		return nil, err
	}
	for i := range policies {
		if id, err := store.ParseID(policies[i].ID); err == nil {
			v.stored[entityKey{KindPolicy, store.NilID, id}] = canon(&policies[i])
		}
	}
	return v, nil
}

// check runs the checks that need the store and the earlier lines, then
// records the row as existing for the lines after it. Rows whose ids
// parsed are recorded even when they have other problems, so one bad line
// does not make every line that refers to it wrong too. The error is a
// store failure, not a problem of the line.
func (v *validator) check(it *item) error {
	if !it.hasID {
		return nil
	}
	key := entityKey{kind: it.kind, id: it.id}
	switch it.kind {
	case KindSite, KindDeviceGroup, KindSignerGroup, KindRule, kindRequest:
		key.org = it.org // ids of these are per organisation in the store
	}
	if first, dup := v.seen[key]; dup {
		it.bad("duplicate %s id %s (first on line %d)", it.kind, it.label, first)
		return nil
	}
	v.seen[key] = it.line
	needOrg := func(field string) {
		if !v.orgs[it.org] {
			it.bad("%s: organisation %s does not exist (in the store or on an earlier line)", field, it.org)
		}
	}
	var cmpTo any = it.v
	switch e := it.v.(type) {
	case *store.Partner:
		v.partners[it.id] = true
	case *store.Org:
		if e.PartnerID != "" {
			if p, err := store.ParseID(e.PartnerID); err != nil {
				it.bad("partnerId: must be a UUID")
			} else if !v.partners[p] {
				it.bad("partnerId: partner %s does not exist (in the store or on an earlier line)", e.PartnerID)
			}
		}
		v.orgs[it.id] = true
	case *store.Site:
		needOrg("orgId")
		v.sites[[2]store.ID{it.org, it.id}] = true
	case *store.DeviceGroup:
		needOrg("orgId")
		v.groups[[2]store.ID{it.org, it.id}] = true
	case *store.Device:
		v.checkDevice(it, e)
		d := *e
		if d.Status == "" {
			d.Status = store.DeviceActive // what PutDevice stores
		}
		cmpTo = &d
	case *engine.SignerGroup:
		needOrg("orgId")
		name := strings.TrimSpace(e.Name)
		names := v.sgNames[it.org]
		at := -1
		for i, n := range names {
			switch {
			case n.id == it.id:
				at = i
			case name != "" && strings.EqualFold(n.name, name):
				it.bad("name: a signer group named %q already exists in the organisation", e.Name)
			}
		}
		if at >= 0 {
			names[at].name = name
		} else {
			v.sgNames[it.org] = append(names, sgName{it.id, name})
		}
	case *engine.Rule:
		needOrg("orgId")
	case *policy.Policy:
		// The owner organisation must exist (PutPolicy checks it); a
		// partner-wide policy's partner is not checked, as the store does
		// not check it either.
		if e.OrgID != "" && engine.IsUUID(e.OrgID) {
			needOrg("orgId")
		}
	case *store.Request:
		return v.checkRequest(it, e)
	}
	if it.probs == nil {
		if old, ok := v.stored[key]; ok && bytes.Equal(old, canon(cmpTo)) {
			it.skip = true
		}
	}
	return nil
}

func (v *validator) checkDevice(it *item, d *store.Device) {
	if !v.orgs[it.org] {
		it.bad("orgId: organisation %s does not exist (in the store or on an earlier line)", it.org)
	}
	if prev, ok := v.deviceOrg[it.id]; ok && prev != it.org {
		it.bad("device %s belongs to another organisation (%s)", d.ID, prev)
	}
	if d.SiteID != "" {
		if s, err := store.ParseID(d.SiteID); err == nil && !v.sites[[2]store.ID{it.org, s}] {
			it.bad("siteId: site %s does not exist in the organisation", d.SiteID)
		}
	}
	for i, g := range d.GroupIDs {
		if gid, err := store.ParseID(g); err == nil && !v.groups[[2]store.ID{it.org, gid}] {
			it.bad("groupIds[%d]: device group %s does not exist in the organisation", i, g)
		}
	}
	th := strings.ToLower(d.TokenHash)
	if th != "" {
		if other, ok := v.tokens[th]; ok && other != it.id {
			it.bad("agentTokenHash: already the token of device %s", other)
		}
	}
	if _, ok := v.deviceOrg[it.id]; !ok {
		v.deviceOrg[it.id] = it.org
	}
	if old := v.devToken[it.id]; old != "" && old != th && v.tokens[old] == it.id {
		delete(v.tokens, old)
	}
	if th != "" {
		if _, taken := v.tokens[th]; !taken {
			v.tokens[th] = it.id
		}
		v.devToken[it.id] = th
	}
}

func (v *validator) checkRequest(it *item, r *store.Request) error {
	if !v.orgs[it.org] {
		it.bad("orgId: organisation %s does not exist (in the store or on an earlier line)", r.OrgID)
	}
	dev, _ := store.ParseID(r.DeviceID)
	switch org, ok := v.deviceOrg[dev]; {
	case !ok:
		it.bad("deviceId: device %s does not exist (in the store or on an earlier line)", r.DeviceID)
	case org != it.org:
		it.bad("deviceId: device %s belongs to another organisation (%s)", r.DeviceID, org)
	}
	old, err := v.sn.Request(r.OrgID, r.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	same, err := sameRequest(old, r)
	if err != nil {
		return err
	}
	if same {
		it.skip = true
	} else {
		it.bad("request %s already exists with different content", r.ID)
	}
	return nil
}

// sameRequest reports whether a stored request and one read from a line
// hold the same content. The stored one goes through the same JSON form
// first, so that a field the JSON does not carry as stored (an empty
// decision record, read back as the legacy decision) compares equal to
// its own export.
func sameRequest(stored, r *store.Request) (bool, error) {
	b, err := json.Marshal(stored)
	if err != nil {
		return false, err
	}
	var back store.Request
	if err := json.Unmarshal(b, &back); err != nil {
		return false, err
	}
	x, err := store.MarshalRow(&back)
	if err != nil {
		return false, err
	}
	y, err := store.MarshalRow(r)
	if err != nil {
		return false, err
	}
	return bytes.Equal(x, y), nil
}

// writePhase orders the write: inventory parents before children, then
// rules, signer groups, policies and requests.
var writePhase = map[string]int{
	KindPartner: 0, KindOrg: 1, KindSite: 2, KindDeviceGroup: 3, KindDevice: 4,
	KindRule: 5, KindSignerGroup: 6, KindPolicy: 7, kindRequest: 8,
}

// orgTally is what an import did to one organisation, as its audit record
// says.
type orgTally struct {
	Requests     int    `json:"requests"`
	Rules        int    `json:"rules"`
	SignerGroups int    `json:"signerGroups"`
	Policies     int    `json:"policies"`
	Inventory    int    `json:"inventory"`
	Skipped      int    `json:"skipped"`
	SHA256       string `json:"sha256"`
}

func (t *orgTally) add(kind string) {
	switch kind {
	case kindRequest:
		t.Requests++
	case KindRule:
		t.Rules++
	case KindSignerGroup:
		t.SignerGroups++
	case KindPolicy:
		t.Policies++
	default:
		t.Inventory++
	}
}

func write(st *store.Store, items []*item, sum string, o ImportOptions) (Stats, error) {
	var stats Stats
	tally := map[store.ID]*orgTally{}
	var orgs []store.ID
	count := func(it *item, skipped bool) {
		if skipped {
			stats.Skipped++
		} else {
			stats.add(it.kind, 1)
		}
		if it.org == store.NilID {
			return
		}
		t := tally[it.org]
		if t == nil {
			t = &orgTally{SHA256: sum}
			tally[it.org] = t
			orgs = append(orgs, it.org)
		}
		if skipped {
			t.Skipped++
		} else {
			t.add(it.kind)
		}
	}

	var pending []*item
	for _, it := range items {
		if it.skip {
			count(it, true)
		} else {
			pending = append(pending, it)
		}
	}
	slices.SortStableFunc(pending, func(a, b *item) int { return cmp.Compare(writePhase[a.kind], writePhase[b.kind]) })
	for start := 0; start < len(pending); {
		end, size := start, 0
		for end < len(pending) && end-start < chunkRows && (end == start || size+pending[end].size <= chunkBytes) {
			size += pending[end].size
			end++
		}
		chunk := pending[start:end]
		var skipped []bool
		err := st.Update(func(tx *store.Tx) error {
			sk := make([]bool, len(chunk))
			for i, it := range chunk {
				s, err := put(tx, it)
				if err != nil {
					return fmt.Errorf("transfer: line %d: %w", it.line, err)
				}
				sk[i] = s
			}
			skipped = sk
			return nil
		})
		if err != nil {
			return stats, err
		}
		for i, it := range chunk {
			count(it, skipped[i])
		}
		start = end
	}

	if len(orgs) == 0 {
		return stats, nil
	}
	at := o.At
	if at.IsZero() {
		at = time.Now()
	}
	slices.SortFunc(orgs, func(a, b store.ID) int { return bytes.Compare(a[:], b[:]) })
	recs := make([]store.AuditRecord, len(orgs))
	for i, org := range orgs {
		details, err := json.Marshal(tally[org])
		if err != nil {
			return stats, err
		}
		recs[i] = store.AuditRecord{OrgID: org.String(), At: at, Action: "imported", ActorKind: store.ActorSystem, Details: details}
	}
	err := st.Update(func(tx *store.Tx) error {
		for _, r := range recs {
			tx.Audit(r)
		}
		return nil
	})
	return stats, err
}

// errRehearsal ends the rehearsal operation, so that nothing it wrote is
// kept.
var errRehearsal = errors.New("rehearsal")

// rehearse runs every row except requests through the store's own Put
// calls in one operation that is then abandoned, so that a row the
// store would refuse is reported by line before anything is written,
// whatever the line validation above missed. Requests are left out: the
// line check already runs them through the row validation PutRequest
// uses, and holding every request of a large file in one operation would
// cost memory for nothing.
func rehearse(st *store.Store, items []*item) error {
	var rest []*item
	for _, it := range items {
		if !it.skip && it.kind != kindRequest {
			rest = append(rest, it)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	slices.SortStableFunc(rest, func(a, b *item) int { return cmp.Compare(writePhase[a.kind], writePhase[b.kind]) })
	var lineErrs []LineError
	err := st.Update(func(tx *store.Tx) error {
		lineErrs = nil
		for _, it := range rest {
			if _, err := put(tx, it); err != nil {
				lineErrs = append(lineErrs, LineError{it.line, err.Error()})
			}
		}
		return errRehearsal
	})
	if !errors.Is(err, errRehearsal) {
		return err
	}
	if len(lineErrs) > 0 {
		slices.SortStableFunc(lineErrs, func(a, b LineError) int { return cmp.Compare(a.Line, b.Line) })
		return &ImportError{Errors: lineErrs}
	}
	return nil
}

// put writes one row. A request already stored is skipped when identical
// (another writer got there between validation and write) and refused
// otherwise.
func put(tx *store.Tx, it *item) (skipped bool, err error) {
	switch v := it.v.(type) {
	case *store.Partner:
		return false, tx.PutPartner(v)
	case *store.Org:
		return false, tx.PutOrg(v)
	case *store.Site:
		return false, tx.PutSite(v)
	case *store.DeviceGroup:
		return false, tx.PutDeviceGroup(v)
	case *store.Device:
		return false, tx.PutDevice(v)
	case *engine.Rule:
		_, err := tx.PutRule(v)
		return false, err
	case *engine.SignerGroup:
		_, err := tx.PutSignerGroup(v)
		return false, err
	case *policy.Policy:
		return false, tx.PutPolicy(v)
	case *store.Request:
		old, err := tx.Request(v.OrgID, v.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return false, err
		default:
			same, err := sameRequest(old, v)
			if err != nil {
				return false, err
			}
			if !same {
				return false, fmt.Errorf("request %s already exists with different content", v.ID)
			}
			return true, nil
		}
		return false, tx.PutRequest(v)
	}
	return false, fmt.Errorf("nothing to write for a %s", it.kind)
}
