package policy

import (
	"cmp"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/interpreter"

	"github.com/elevate-pam/elevate/engine"
)

// Device is a device as resolution sees it: where it sits in the hierarchy
// and what its assignments' conditions may read.
type Device struct {
	ID        string
	OrgID     string
	PartnerID string // the organisation's partner; "" when it has none
	SiteID    string // "" when the device has no site
	GroupIDs  []string
	OS        string
	Hostname  string
	// Attributes are further facts conditions read as device.<name>
	// (tags, role, …). The device's own fields (id, org, partner, site,
	// groups, os, hostname) are set from the fields above and win over an
	// attribute of the same name.
	Attributes map[string]any
	// The names of the device's places, for rule-file policies, whose
	// targets may be names. The device's own names are its hostname and
	// Name (set where a device is known by another name, as in a device
	// file of elevate resolve).
	Name, OrgName, PartnerName, SiteName string
	GroupNames                           []string
}

// ConditionInput is what an assignment condition sees as `device`.
func (d *Device) ConditionInput() map[string]any {
	m := make(map[string]any, len(d.Attributes)+7)
	d.fillInput(m)
	return m
}

// fillInput puts the condition input into an empty map.
func (d *Device) fillInput(m map[string]any) {
	for k, v := range d.Attributes {
		switch k {
		case "id", "org", "partner", "site", "os", "hostname", "groups":
			// the device's own fields, below
		default:
			m[k] = v
		}
	}
	for _, f := range [...]struct{ k, v string }{{"id", d.ID}, {"org", d.OrgID}, {"partner", d.PartnerID}, {"site", d.SiteID},
		{"os", d.OS}, {"hostname", d.Hostname}} {
		if f.v != "" { // else absent, so has(device.k) is false
			m[f.k] = f.v
		}
	}
	m["groups"] = d.GroupIDs
}

// inputs makes condition inputs for one device after another without
// allocating each: the map is cleared and refilled for the next device
// (resolutions keep nothing of it), and the activation around it is made
// once.
type inputs struct {
	device map[string]any
	act    interpreter.Activation
}

func newInputs() (*inputs, error) {
	in := &inputs{device: map[string]any{}}
	var err error
	in.act, err = interpreter.NewActivation(map[string]any{"device": in.device})
	return in, err
}

// of is the activation for d.
func (in *inputs) of(d *Device) interpreter.Activation {
	clear(in.device)
	d.fillInput(in.device)
	return in.act
}

// Resolution says which policy supplies one feature to one device.
type Resolution struct {
	Feature string `json:"feature"`
	// Source is where the device's settings come from: "policy" (the
	// winning assignment's policy), "org_fallback" (the winner's settings
	// are empty: the organisation's own setting, or the feature's default,
	// applies — never the next assignment) or "default" (no assignment
	// applies: the same fallback) or "error" (the closest assignment that
	// could apply has a condition that cannot be evaluated: see Error).
	Source string `json:"source"`
	// Winner is the assignment that supplied the feature (also when its
	// settings are empty); nil when none applies.
	Winner *Applied `json:"winner"`
	// Settings are the winner's settings for the feature (nil unless
	// Source is "policy").
	Settings json.RawMessage `json:"settings,omitempty"`
	// Skipped are the assignments considered before the winner, closest
	// first, that did not apply, each with why. Only with explain.
	Skipped []Skipped `json:"skipped,omitempty"`
	// Error, with Source "error", says why the assignment in Winner could
	// not be decided (its condition failed or does not compile).
	Error string `json:"error,omitempty"`
	// Policy is the winner's policy, for callers that read more of it.
	Policy *Policy `json:"-"`
}

// Sources of a resolution.
const (
	SourcePolicy      = "policy"
	SourceOrgFallback = "org_fallback"
	SourceDefault     = "default"
	SourceError       = "error"
)

// Applied names an assignment of a policy.
type Applied struct {
	PolicyID     string    `json:"policyId"`
	PolicyName   string    `json:"policyName"`
	AssignmentID string    `json:"assignmentId,omitempty"`
	Level        Level     `json:"level"`
	TargetID     string    `json:"targetId"`
	Priority     int       `json:"priority"`
	CreatedAt    time.Time `json:"createdAt,omitzero"`
}

// Skipped is an assignment that did not apply, and why.
type Skipped struct {
	Applied
	Reason string `json:"reason"`
}

// Reasons an assignment is skipped.
const (
	ReasonInactive         = "policy inactive"
	ReasonFeatureNotSet    = "feature not set in this policy"
	ReasonConditionFalse   = "condition false"
	ReasonConditionFailed  = "condition could not be evaluated"
	ReasonConditionInvalid = "condition does not compile"
)

// Resolver resolves features for devices from a fixed set of policies. It
// is safe for concurrent use; build a new one when the policies change.
type Resolver struct {
	byTarget map[target]int32 // → index in lists
	lists    [][]*candidate   // each in precedence order, all in one backing array
	named    bool             // some policy is a rule file's: targets may be names
	namesAt  map[Level]bool   // levels where a rule-file target is a name
	policies int
}

type target struct {
	level Level
	id    string // lowercased
}

type candidate struct {
	p       *Policy
	a       *Assignment
	prg     cel.Program // nil: no condition
	condErr error       // the condition does not compile
	// The precedence keys, copied here so sorting touches one struct.
	prio    int
	created int64
	aid     string
	pid     string
}

// NewResolver indexes policies by where they are assigned. Assignment
// conditions are compiled here; one that does not compile never applies
// (and the resolution says so), it does not stop the others.
func NewResolver(policies []Policy) *Resolver {
	ps := make([]Policy, len(policies))
	copy(ps, policies)
	n := 0
	for i := range ps {
		n += len(ps[i].Assignments)
	}
	r := &Resolver{byTarget: make(map[target]int32, n), policies: len(policies), namesAt: map[Level]bool{}}
	// Two passes: number the targets and count their assignments, then
	// lay every list out in one array.
	cands := make([]candidate, 0, n)
	list := make([]int32, 0, n) // cands[i] goes to list list[i]
	var counts []int32
	for i := range ps {
		p := &ps[i]
		r.named = r.named || p.FromFiles
		for j := range p.Assignments {
			a := &p.Assignments[j]
			cands = append(cands, candidate{p: p, a: a, prio: a.Priority, created: a.CreatedAt.UnixNano(), aid: a.ID, pid: p.ID})
			c := &cands[len(cands)-1]
			if strings.TrimSpace(a.Condition) != "" {
				c.prg, c.condErr = compileConditionCached(a.Condition)
			}
			k := target{a.Level, lower(a.Target)}
			switch {
			case !p.FromFiles: // stored: an id, matched by ids only
			case engine.IsUUID(a.Target):
				k.id = fileID + k.id
			default:
				k.id = fileName + k.id
				r.namesAt[a.Level] = true
			}
			li, ok := r.byTarget[k]
			if !ok {
				li = int32(len(counts))
				r.byTarget[k] = li
				counts = append(counts, 0)
			}
			counts[li]++
			list = append(list, li)
		}
	}
	flat := make([]*candidate, len(cands))
	r.lists = make([][]*candidate, len(counts))
	off := int32(0)
	for li, n := range counts {
		r.lists[li] = flat[off : off : off+n]
		off += n
	}
	for i := range cands {
		r.lists[list[i]] = append(r.lists[list[i]], &cands[i])
	}
	for _, cs := range r.lists {
		if len(cs) > 1 {
			slices.SortFunc(cs, precedence)
		}
	}
	return r
}

// lower is the key two strings equal under strings.EqualFold share: each
// rune replaced by the lower case of the smallest rune of its simple
// case-folding orbit (for ASCII, its lower case). Text that is already a key (ids as the store keeps
// them) is returned without a copy.
func lower(s string) string {
	key, ascii := true, true
	for i := 0; i < len(s) && ascii; i++ {
		switch c := s[i]; {
		case c >= 0x80:
			key, ascii = false, false
		case c >= 'A' && c <= 'Z':
			key = false
		}
	}
	switch {
	case key:
		return s
	case ascii:
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(unicode.ToLower(m)) // lower case, as the ASCII keys
	}
	return b.String()
}

// precedence orders assignments of one level: lower priority first, then
// the earlier assignment (createdAt, then assignment id, then policy id).
func precedence(a, b *candidate) int {
	if c := cmp.Compare(a.prio, b.prio); c != 0 {
		return c
	}
	if c := cmp.Compare(a.created, b.created); c != 0 {
		return c
	}
	if c := cmp.Compare(a.aid, b.aid); c != 0 {
		return c
	}
	return cmp.Compare(a.pid, b.pid)
}

// conditions caches compiled conditions by source: many assignments share
// one condition, and compiling costs far more than evaluating.
var conditions sync.Map // string → compiled

type compiled struct {
	prg cel.Program
	err error
}

// conditionsHeld counts the cache's entries; past maxConditionsHeld it
// starts over, so sources written and dropped again cannot pile up.
var conditionsHeld atomic.Int64

const maxConditionsHeld = 20_000

func compileConditionCached(src string) (cel.Program, error) {
	if c, ok := conditions.Load(src); ok {
		return c.(compiled).prg, c.(compiled).err
	}
	prg, err := CompileCondition(src)
	if conditionsHeld.Add(1) > maxConditionsHeld {
		conditions.Clear()
		conditionsHeld.Store(1)
	}
	conditions.Store(src, compiled{prg, err})
	return prg, err
}

// owns reports whether the policy may reach the device: it belongs to the
// device's organisation, or it is partner-wide for the device's partner.
// Any other policy is invisible to the device, whatever it is assigned to.
func owns(p *Policy, d *Device) bool {
	if p.FromFiles {
		switch {
		case p.FileOrg == "": // files that name no organisation: every one
			return true
		case engine.IsUUID(p.FileOrg): // an id is only ever an id
			return strings.EqualFold(p.FileOrg, d.OrgID)
		}
		return d.OrgName != "" && strings.EqualFold(p.FileOrg, d.OrgName)
	}
	if p.OrgID != "" {
		return strings.EqualFold(p.OrgID, d.OrgID)
	}
	return p.PartnerID != "" && d.PartnerID != "" && strings.EqualFold(p.PartnerID, d.PartnerID)
}

// Resolve finds the policy that supplies feature to d: among the
// assignments to the device, its groups, its site, its organisation and its
// partner, of active policies it may reach that set the feature and whose
// condition holds, the closest level wins, then the lower priority, then
// the earlier assignment (pam-semantics §10, §14.1). With explain the
// assignments passed over on the way are listed with their reasons.
func (r *Resolver) Resolve(d *Device, feature string, explain bool) Resolution {
	return r.resolve(d, feature, explain, nil)
}

// resolveEach is resolve with reused condition inputs (nil: allocated).
func (r *Resolver) resolveEach(d *Device, feature string, in *inputs) Resolution {
	if in == nil {
		return r.resolve(d, feature, false, nil)
	}
	return r.resolve(d, feature, false, func() interpreter.Activation { return in.of(d) })
}

// resolve is Resolve with a maker of the device's condition input, called
// on first need (nil: the input is allocated).
func (r *Resolver) resolve(d *Device, feature string, explain bool, makeInput func() interpreter.Activation) Resolution {
	var input interpreter.Activation
	res := Resolution{Feature: feature, Source: SourceDefault}
	for _, lv := range []Level{LevelDevice, LevelDeviceGroup, LevelSite, LevelOrganization, LevelPartner} {
		var cs []*candidate
		switch {
		case !r.named && lv != LevelDeviceGroup: // ids only
			cs = r.at(lv, d.place(lv))
		case lv == LevelDevice:
			cs = r.atAny(lv, []string{d.ID}, []string{d.Hostname, d.Name})
		case lv == LevelDeviceGroup:
			cs = r.atAny(lv, d.GroupIDs, d.GroupNames)
		case lv == LevelSite:
			cs = r.atAny(lv, []string{d.SiteID}, []string{d.SiteName})
		case lv == LevelOrganization:
			cs = r.atAny(lv, []string{d.OrgID}, []string{d.OrgName})
		case lv == LevelPartner:
			cs = r.atAny(lv, []string{d.PartnerID}, []string{d.PartnerName})
		}
		for _, c := range cs {
			if !owns(c.p, d) {
				continue
			}
			reason, undecided := "", false
			settings, has := c.p.Features[feature]
			switch {
			case !c.p.Active:
				reason = ReasonInactive
			case !has:
				reason = ReasonFeatureNotSet
			case c.condErr != nil:
				reason, undecided = ReasonConditionInvalid+": "+c.condErr.Error(), true
			case c.prg != nil:
				if input == nil && makeInput != nil {
					input = makeInput()
				}
				if input == nil {
					var err error
					if input, err = interpreter.NewActivation(map[string]any{"device": d.ConditionInput()}); err != nil {
						reason, undecided = ReasonConditionFailed+": "+err.Error(), true
						break
					}
				}
				ok, err := evalCondition(c.prg, input)
				switch {
				case err != nil:
					reason, undecided = ReasonConditionFailed+": "+err.Error(), true
				case !ok:
					reason = ReasonConditionFalse
				}
			}
			if undecided {
				// Whether this assignment applies cannot be told, so neither
				// can what the device gets: failing it would hand the device
				// a farther policy, perhaps a laxer one. The resolution is an
				// error, which decisions turn into their fail-safe.
				w := applied(c)
				res.Source, res.Winner, res.Error = SourceError, &w, reason
				return res
			}
			if reason != "" {
				if explain {
					res.Skipped = append(res.Skipped, Skipped{Applied: applied(c), Reason: reason})
				}
				continue
			}
			w := applied(c)
			res.Winner, res.Policy = &w, c.p
			if isEmpty(settings) {
				res.Source = SourceOrgFallback
			} else {
				res.Source, res.Settings = SourcePolicy, settings
			}
			return res
		}
	}
	return res
}

func (r *Resolver) at(lv Level, id string) []*candidate {
	if id == "" {
		return nil
	}
	li, ok := r.byTarget[target{lv, lower(id)}]
	if !ok {
		return nil
	}
	return r.lists[li]
}

// Rule-file policies' targets are indexed apart from stored ones (ids,
// matched by ids only), and among them ids apart from names: a target
// written as an id is only matched by that id, a name only by a name, so a
// device cannot take an assignment by naming itself after another
// device's (or site's, group's, organisation's) id.
const (
	fileID   = "\x00i"
	fileName = "\x00n"
)

// place is the device's id at a level (a device group: its first).
func (d *Device) place(lv Level) string {
	switch lv {
	case LevelDevice:
		return d.ID
	case LevelSite:
		return d.SiteID
	case LevelOrganization:
		return d.OrgID
	case LevelPartner:
		return d.PartnerID
	}
	return ""
}

// NamesAt reports whether some rule-file assignment at the level targets a
// name, so that resolving needs the names of the device's places there.
func (r *Resolver) NamesAt(l Level) bool { return r.namesAt[l] }

// atAny is the assignments at a level targeting any of the ids (stored
// and rule-file policies) or, for rule-file policies, the names, in
// precedence order, each once.
func (r *Resolver) atAny(lv Level, ids, names []string) []*candidate {
	var first []*candidate
	var merged []*candidate
	n := 0
	keys := ids
	if r.named {
		keys = make([]string, 0, 2*len(ids)+len(names))
		keys = append(keys, ids...)
		for _, id := range ids {
			if id != "" {
				keys = append(keys, fileID+id)
			}
		}
		for _, name := range names {
			if name != "" {
				keys = append(keys, fileName+name)
			}
		}
	}
	for _, k := range keys {
		cs := r.at(lv, k)
		if len(cs) == 0 {
			continue
		}
		if n++; n == 1 {
			first = cs
			continue
		}
		if n == 2 {
			merged = append(merged, first...)
		}
		merged = append(merged, cs...)
	}
	if n <= 1 {
		return first // the usual case: no copy
	}
	slices.SortFunc(merged, precedence)
	return slices.Compact(merged) // one assignment targeting a node by id and name
}

func applied(c *candidate) Applied {
	return Applied{PolicyID: c.p.ID, PolicyName: c.p.Name, AssignmentID: c.a.ID, Level: c.a.Level, TargetID: c.a.Target,
		Priority: c.a.Priority, CreatedAt: c.a.CreatedAt}
}

// isEmpty reports settings that say nothing: absent or JSON null.
func isEmpty(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// ResolveAll resolves feature for every device on workers goroutines (0:
// one per CPU), the results in the devices' order.
func (r *Resolver) ResolveAll(devs []Device, feature string, workers int) []Resolution {
	return r.resolveAll(devs, feature, workers, nil)
}

// resolveAll is ResolveAll that also calls each(i) for every device, on
// the worker that resolves it.
func (r *Resolver) resolveAll(devs []Device, feature string, workers int, each func(i int)) []Resolution {
	out := make([]Resolution, len(devs))
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	const chunk = 256
	next := make(chan int, workers)
	for range workers {
		wg.Go(func() {
			in, err := newInputs()
			if err != nil {
				in = nil // each device then makes its own
			}
			for lo := range next {
				for i := lo; i < min(lo+chunk, len(devs)); i++ {
					out[i] = r.resolveEach(&devs[i], feature, in)
					if each != nil {
						each(i)
					}
				}
			}
		})
	}
	for lo := 0; lo < len(devs); lo += chunk {
		next <- lo
	}
	close(next)
	wg.Wait()
	return out
}

// PamSettings reads the pam feature a resolution supplies:
// uacInterceptionEnabled from the winning policy, or else the
// organisation's own setting (orgFlag; nil = not set) and, failing that,
// off (pam-semantics §10.2). A malformed winning setting reads as off, not
// as the organisation's setting.
func PamSettings(res Resolution, orgFlag *bool) (uacInterceptionEnabled bool, err error) {
	if res.Source == SourceError {
		return false, fmt.Errorf("policy %s: %s", res.Winner.PolicyID, res.Error)
	}
	if res.Source != SourcePolicy {
		if orgFlag != nil {
			return *orgFlag, nil
		}
		return false, nil
	}
	m, err := pamFeature.Decode(res.Settings)
	if err != nil {
		return false, fmt.Errorf("policy %s: %w", res.Winner.PolicyID, err)
	}
	return m[settingUACInterception].(bool), nil
}

// Cache keeps each device's resolutions until the policies change
// (SetPolicies) or the device does: its placement or attributes (seen by
// comparing a fingerprint of them) or an explicit Forget. It is safe for
// concurrent use.
type Cache struct {
	mu  sync.RWMutex
	r   *Resolver
	gen uint64
	m   map[cacheKey]cacheEntry
}

type cacheKey struct{ device, feature string }

type cacheEntry struct {
	gen uint64
	fp  string
	res Resolution
}

// NewCache starts a cache over policies.
func NewCache(policies []Policy) *Cache {
	return &Cache{r: NewResolver(policies), m: map[cacheKey]cacheEntry{}}
}

// SetPolicies replaces the policies: every cached resolution is dropped.
func (c *Cache) SetPolicies(policies []Policy) {
	r := NewResolver(policies)
	c.mu.Lock()
	c.r, c.gen, c.m = r, c.gen+1, map[cacheKey]cacheEntry{}
	c.mu.Unlock()
}

// Forget drops a device's resolutions (it was changed or removed).
func (c *Cache) Forget(deviceID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.device == deviceID {
			delete(c.m, k)
		}
	}
}

// Resolve is Resolver.Resolve (without explain), answered from the cache
// when the policies and the device are as they were.
func (c *Cache) Resolve(d *Device, feature string) Resolution {
	fp := fingerprint(d)
	k := cacheKey{d.ID, feature}
	c.mu.RLock()
	e, ok := c.m[k]
	r, gen := c.r, c.gen
	c.mu.RUnlock()
	if ok && e.gen == gen && e.fp == fp {
		return e.res
	}
	res := r.Resolve(d, feature, false)
	c.mu.Lock()
	if c.gen == gen { // not if the policies changed meanwhile
		c.m[k] = cacheEntry{gen: gen, fp: fp, res: res}
	}
	c.mu.Unlock()
	return res
}

// Precompute resolves feature for every device on every core and caches
// the results, for a caller that wants every device's answer ready after
// the policies change (the service fills the cache as devices ask).
func (c *Cache) Precompute(devs []Device, feature string) {
	c.mu.RLock()
	r, gen := c.r, c.gen
	c.mu.RUnlock()
	fps := make([]string, len(devs))
	all := r.resolveAll(devs, feature, 0, func(i int) { fps[i] = fingerprint(&devs[i]) })
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	for i := range devs {
		c.m[cacheKey{devs[i].ID, feature}] = cacheEntry{gen: gen, fp: fps[i], res: all[i]}
	}
}

// Resolver is the resolver the cache answers from.
func (c *Cache) Resolver() *Resolver {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.r
}

// fingerprint is everything of a device resolution reads, as one string:
// equal fingerprints resolve alike under the same policies.
func fingerprint(d *Device) string {
	var b strings.Builder
	for _, s := range []string{d.ID, d.OrgID, d.PartnerID, d.SiteID, d.OS, d.Hostname, d.Name, d.OrgName, d.PartnerName, d.SiteName} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	for _, list := range [][]string{d.GroupIDs, d.GroupNames} {
		for _, g := range list {
			b.WriteString(g)
			b.WriteByte(1)
		}
		b.WriteByte(2)
	}
	if len(d.Attributes) > 0 {
		writeValue(&b, d.Attributes)
	}
	return b.String()
}

// writeValue writes an attribute value unambiguously: JSON's forms for the
// values JSON decoding makes, with map keys in order.
func writeValue(b *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		b.WriteString(strconv.Quote(v))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case float64:
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	case int:
		b.WriteString(strconv.Itoa(v))
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeValue(b, e)
		}
		b.WriteByte(']')
	case []string:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Quote(e))
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Quote(k))
			b.WriteByte(':')
			writeValue(b, v[k])
		}
		b.WriteByte('}')
	default:
		// Any other type (attributes built in Go): its JSON, with its type
		// so it cannot pass for one of the forms above.
		j, err := json.Marshal(v)
		if err != nil {
			j = fmt.Appendf(nil, "%p", &v) // not encodable: never equal to another
		}
		fmt.Fprintf(b, "%T%s", v, j)
	}
}
