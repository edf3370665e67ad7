package server

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/elevate-pam/elevate/engine"
)

// The two bodies every agent and test harness sends at volume (the agent's
// elevation request and POST /pam/decide) are read by a small strict reader
// first. It accepts only plain, well-formed bodies: exact field names, each
// at most once, no nulls, strings without lone surrogates or invalid UTF-8,
// nothing after the object. Whatever it does not accept goes to
// encoding/json, whose answer (value or error) stands; whatever it accepts,
// encoding/json accepts with the same value (FuzzDecideBody and
// FuzzAgentBody check both).

// jsonReader reads one JSON text from b; every method reports false when
// the input is not on the fast path.
type jsonReader struct {
	b []byte
	i int
}

func (r *jsonReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// next skips white space and consumes c.
func (r *jsonReader) next(c byte) bool {
	r.ws()
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (r *jsonReader) end() bool {
	r.ws()
	return r.i == len(r.b)
}

// object reads an object, calling field for each member with the reader
// at the member's value; field must consume the value.
func (r *jsonReader) object(field func(key string) bool) bool {
	if !r.next('{') {
		return false
	}
	if r.next('}') {
		return true
	}
	for {
		r.ws()
		key, ok := r.str()
		if !ok || !r.next(':') {
			return false
		}
		r.ws()
		if !field(key) {
			return false
		}
		if r.next('}') {
			return true
		}
		if !r.next(',') {
			return false
		}
	}
}

// rawStr returns the string token at the reader, quotes included.
func (r *jsonReader) rawStr() ([]byte, bool) {
	start := r.i
	if _, ok := r.str(); !ok {
		return nil, false
	}
	return r.b[start:r.i], true
}

// str reads a string.
func (r *jsonReader) str() (string, bool) {
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		return "", false
	}
	r.i++
	start, plain := r.i, true
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			if plain {
				return string(s), true
			}
			return unescape(s)
		case c == '\\':
			plain = false
			r.i += 2
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ru, n := utf8.DecodeRune(r.b[r.i:])
			if ru == utf8.RuneError && n == 1 {
				return "", false
			}
			r.i += n
		default:
			r.i++
		}
	}
	return "", false
}

// unescape decodes the escapes of a string's content (valid UTF-8, no
// control characters, checked by str).
func unescape(s []byte) (string, bool) {
	var sb strings.Builder
	sb.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			sb.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		i++
		switch s[i] {
		case '"', '\\', '/':
			sb.WriteByte(s[i])
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			if i+4 >= len(s) {
				return "", false
			}
			v, err := strconv.ParseUint(string(s[i+1:i+5]), 16, 32)
			if err != nil || v >= 0xD800 && v < 0xE000 { // surrogates: the slow path
				return "", false
			}
			sb.WriteRune(rune(v))
			i += 4
		default:
			return "", false
		}
	}
	return sb.String(), true
}

// number reads a number token and returns its text.
func (r *jsonReader) number() (string, bool) {
	b, start := r.b, r.i
	i := r.i
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return "", false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return "", false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", false
		}
	}
	r.i = i
	return string(b[start:i]), true
}

// int reads an integer that fits an int (encoding/json's rule for int
// fields: no fraction, no exponent).
func (r *jsonReader) int() (int, bool) {
	s, ok := r.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func (r *jsonReader) boolean() (bool, bool) {
	switch {
	case r.word("true"):
		return true, true
	case r.word("false"):
		return false, true
	}
	return false, false
}

func (r *jsonReader) word(w string) bool {
	if len(r.b)-r.i >= len(w) && string(r.b[r.i:r.i+len(w)]) == w {
		r.i += len(w)
		return true
	}
	return false
}

// strs reads an array of strings.
func (r *jsonReader) strs() ([]string, bool) {
	if !r.next('[') {
		return nil, false
	}
	out := []string{}
	if r.next(']') {
		return out, true
	}
	for {
		r.ws()
		s, ok := r.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if r.next(']') {
			return out, true
		}
		if !r.next(',') {
			return nil, false
		}
	}
}

// skip reads any value but null, nested at most maxSkipDepth deep.
func (r *jsonReader) skip(depth int) bool {
	if depth > maxSkipDepth || r.i >= len(r.b) {
		return false
	}
	switch c := r.b[r.i]; {
	case c == '"':
		_, ok := r.str()
		return ok
	case c == '{':
		return r.object(func(string) bool { return r.skip(depth + 1) })
	case c == '[':
		r.i++
		if r.next(']') {
			return true
		}
		for {
			r.ws()
			if !r.skip(depth + 1) {
				return false
			}
			if r.next(']') {
				return true
			}
			if !r.next(',') {
				return false
			}
		}
	case c == 't' || c == 'f':
		_, ok := r.boolean()
		return ok
	case c == '-' || c >= '0' && c <= '9':
		_, ok := r.number()
		return ok
	}
	return false
}

const maxSkipDepth = 32

// seen tracks which fields an object had: a repeated one leaves the fast
// path (encoding/json's last-one-wins merge is not worth copying).
type seen uint32

func (s *seen) first(bit int) bool {
	if *s&(1<<bit) != 0 {
		return false
	}
	*s |= 1 << bit
	return true
}

// timeValue reads a time as encoding/json does for time.Time.
func (r *jsonReader) timeValue() (*time.Time, bool) {
	raw, ok := r.rawStr()
	if !ok {
		return nil, false
	}
	var t time.Time
	if t.UnmarshalJSON(raw) != nil {
		return nil, false
	}
	return &t, true
}

func (r *jsonReader) intValue() (*int, bool) {
	n, ok := r.int()
	return &n, ok
}

// decideBody is the body of POST /pam/decide.
type decideBody struct {
	FlowType    engine.FlowType    `json:"flowType"`
	Observation engine.Observation `json:"observation"`
	DeviceID    string             `json:"deviceId"`
	At          *time.Time         `json:"at"`
	Explain     bool               `json:"explain"`
}

// fastDecideBody reads b into out when b is on the fast path, and leaves
// out alone otherwise.
func fastDecideBody(b []byte, out *decideBody) bool {
	var d decideBody
	if !readDecideBody(b, &d) {
		return false
	}
	*out = d
	return true
}

func readDecideBody(b []byte, d *decideBody) bool {
	r := &jsonReader{b: b}
	var top seen
	ok := r.object(func(key string) bool {
		var ok bool
		switch key {
		case "flowType":
			var s string
			s, ok = r.str()
			d.FlowType = engine.FlowType(s)
			return ok && top.first(0)
		case "observation":
			return top.first(1) && fastObservation(r, &d.Observation)
		case "deviceId":
			d.DeviceID, ok = r.str()
			return ok && top.first(2)
		case "at":
			d.At, ok = r.timeValue()
			return ok && top.first(3)
		case "explain":
			d.Explain, ok = r.boolean()
			return ok && top.first(4)
		}
		return false
	})
	return ok && r.end()
}

func fastObservation(r *jsonReader, o *engine.Observation) bool {
	var f seen
	return r.object(func(key string) bool {
		var ok bool
		bit := 0
		switch key {
		case "subjectUsername":
			o.SubjectUsername, ok = r.str()
		case "targetExecutablePath":
			o.TargetExecutablePath, ok = r.str()
			bit = 1
		case "targetExecutableHash":
			o.TargetExecutableHash, ok = r.str()
			bit = 2
		case "targetExecutableSigner":
			o.TargetExecutableSigner, ok = r.str()
			bit = 3
		case "targetExecutableSignerThumbprint":
			o.TargetExecutableSignerThumbprint, ok = r.str()
			bit = 4
		case "parentImage":
			o.ParentImage, ok = r.str()
			bit = 5
		case "commandLine":
			o.CommandLine, ok = r.str()
			bit = 6
		case "adGroups":
			o.AdGroups, ok = r.strs()
			bit = 7
		case "toolName":
			o.ToolName, ok = r.str()
			bit = 8
		case "riskTier":
			o.RiskTier, ok = r.intValue()
			bit = 9
		case "requestedDurationMinutes":
			o.RequestedDurationMinutes, ok = r.intValue()
			bit = 10
		case "siteId":
			o.SiteID, ok = r.str()
			bit = 11
		case "observedAt":
			o.ObservedAt, ok = r.timeValue()
			bit = 12
		}
		return ok && f.first(bit)
	})
}

// agentKeys are the agent body's field names, in agentObservation's order.
var agentKeys = []string{"subject_username", "target_executable_path", "target_executable_hash",
	"target_executable_signer", "target_executable_signer_thumbprint", "pid", "parent_image",
	"command_line", "observed_at", "ad_groups"}

// fastAgentBody reads b into out when b is on the fast path, and leaves
// out alone otherwise. Unknown members are skipped, as encoding/json skips
// them, unless a known name matches them case-insensitively (encoding/json
// would take those).
func fastAgentBody(b []byte, out *agentObservation) bool {
	var a agentObservation
	if !readAgentBody(b, &a) {
		return false
	}
	*out = a
	return true
}

func readAgentBody(b []byte, a *agentObservation) bool {
	r := &jsonReader{b: b}
	var f seen
	strField := func(p **string, bit int) bool {
		s, ok := r.str()
		*p = &s
		return ok && f.first(bit)
	}
	ok := r.object(func(key string) bool {
		switch key {
		case "subject_username":
			return strField(&a.SubjectUsername, 0)
		case "target_executable_path":
			return strField(&a.Path, 1)
		case "target_executable_hash":
			return strField(&a.Hash, 2)
		case "target_executable_signer":
			return strField(&a.Signer, 3)
		case "target_executable_signer_thumbprint":
			return strField(&a.Thumbprint, 4)
		case "pid":
			n, ok := r.number()
			num := json.Number(n)
			a.PID = &num
			return ok && f.first(5)
		case "parent_image":
			return strField(&a.ParentImage, 6)
		case "command_line":
			return strField(&a.CommandLine, 7)
		case "observed_at":
			return strField(&a.ObservedAt, 8)
		case "ad_groups":
			var ok bool
			a.AdGroups, ok = r.strs()
			return ok && f.first(9)
		}
		for _, k := range agentKeys {
			if strings.EqualFold(k, key) {
				return false
			}
		}
		return r.skip(0)
	})
	return ok && r.end()
}
