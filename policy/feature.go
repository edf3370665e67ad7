package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/elevate-pam/elevate/engine"
)

// Kind is the JSON shape of a setting's value.
type Kind int

const (
	KindBool       Kind = iota + 1 // true or false
	KindInt                        // an integer in [Min, Max]
	KindString                     // a string of Min..Max characters
	KindEnum                       // one of Enum
	KindObjectList                 // a list of objects, each with Fields
)

func (k Kind) String() string {
	switch k {
	case KindBool:
		return "bool"
	case KindInt:
		return "int"
	case KindString:
		return "string"
	case KindEnum:
		return "enum"
	case KindObjectList:
		return "list of objects"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Setting declares one key of a feature's settings (or one field of the
// objects in a KindObjectList setting). The declaration is the single
// description of the key: JSON validation, rule-file validation and
// generated documentation all read it.
type Setting struct {
	JSONKey string // spelling in the API's JSON, e.g. "uacInterceptionEnabled"
	DSLKey  string // spelling in rule files, e.g. "uac_interception"
	Kind    Kind
	Enum    []string // KindEnum: the allowed values
	// Min and Max bound a KindInt value (both 0: unbounded), the length in
	// characters of a KindString value (Max 0: no upper bound) and the
	// number of entries of a KindObjectList (Max 0: no upper bound).
	Min, Max int
	Required bool
	Default  any       // value used when absent (nil: none); bool, int or string after the Kind
	Fields   []Setting // KindObjectList: the fields of each object
	Doc      string    // one line for docs and diagnostics
}

// Field looks up a field of a KindObjectList setting by its JSON or
// rule-file key.
func (s *Setting) Field(key string) (*Setting, bool) { return lookupSetting(s.Fields, key) }

// Feature is a kind of configuration a policy can carry, e.g. whether the
// agent captures UAC prompts. A policy holds at most one settings object per
// feature, and resolution picks a winner per feature, never per key.
type Feature struct {
	Name     string // JSON/API feature type name, e.g. "software_policy"
	DSLName  string // name in rule files, e.g. "software"
	Settings []Setting
	Doc      string
	// check adds the feature's own checks to the declarative ones. It sees
	// the decoded settings (values may still have the wrong type: it must
	// skip those) and reports paths relative to the settings object; a
	// problem at a path the declarative checks already reported is dropped.
	check func(settings map[string]any) engine.FieldErrors
}

// Feature names as the API spells them.
const (
	FeaturePAM            = "pam"
	FeatureSoftwarePolicy = "software_policy"
)

// registry is every feature, in the order Features returns them.
var registry = []*Feature{pamFeature, softwareFeature}

// Features returns the registry in a stable order. The features are shared:
// callers must not modify them.
func Features() []*Feature { return slices.Clone(registry) }

// LookupFeature finds a feature by its API name or its rule-file name.
func LookupFeature(name string) (*Feature, bool) {
	for _, f := range registry {
		if f.Name == name || f.DSLName == name {
			return f, true
		}
	}
	return nil, false
}

// featureByName finds a feature by its API name only: a policy's JSON must
// use the canonical spelling so one policy cannot hold a feature twice.
func featureByName(name string) (*Feature, bool) {
	for _, f := range registry {
		if f.Name == name {
			return f, true
		}
	}
	return nil, false
}

func featureNames() string {
	names := make([]string, len(registry))
	for i, f := range registry {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// Setting looks up a top-level setting by its JSON or rule-file key.
func (f *Feature) Setting(key string) (*Setting, bool) { return lookupSetting(f.Settings, key) }

func lookupSetting(fields []Setting, key string) (*Setting, bool) {
	for i := range fields {
		if fields[i].JSONKey == key || fields[i].DSLKey == key {
			return &fields[i], true
		}
	}
	return nil, false
}

// Validate checks a settings object in its JSON form. The result is nil or
// an engine.FieldErrors whose paths are relative to the settings object
// ("mode", "executable[2].sha256"); a problem with the object as a whole has
// an empty path. Unknown keys, duplicate keys, wrong types, values out of
// range or outside an enum and missing required keys are all reported.
// A null value counts as absent.
func (f *Feature) Validate(settings json.RawMessage) error {
	_, es := f.decode(settings)
	return orNil(es)
}

// Decode validates a settings object and returns its effective values, with
// defaults filled in for absent keys: bool for KindBool, int for KindInt,
// string for KindString and KindEnum, []map[string]any for KindObjectList.
// Keys that are absent and have no default are left out.
func (f *Feature) Decode(settings json.RawMessage) (map[string]any, error) {
	m, es := f.decode(settings)
	if len(es) > 0 {
		return nil, es
	}
	return effective(f.Settings, m), nil
}

func (f *Feature) decode(raw json.RawMessage) (map[string]any, engine.FieldErrors) {
	v, dups, err := parseJSON(raw)
	if err != nil {
		return nil, engine.FieldErrors{{Reason: "settings are not valid JSON: " + err.Error()}}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, engine.FieldErrors{{Reason: "settings must be a JSON object, got " + jsonKind(v)}}
	}
	var es engine.FieldErrors
	for _, p := range dups {
		es = append(es, &engine.FieldError{Field: p, Reason: "duplicate key"})
	}
	checkObject(&es, f.Settings, m, "", "setting")
	if f.check != nil {
		for _, e := range f.check(m) {
			if !covered(es, e.Field) {
				es = append(es, e)
			}
		}
	}
	slices.SortStableFunc(es, func(a, b *engine.FieldError) int {
		return slices.Compare(orderKey(f.Settings, a.Field), orderKey(f.Settings, b.Field))
	})
	return m, es
}

// covered reports whether es already has a problem at field or at an
// object or list containing it.
func covered(es engine.FieldErrors, field string) bool {
	for _, e := range es {
		if e.Field == "" || e.Field == field ||
			strings.HasPrefix(field, e.Field+".") || strings.HasPrefix(field, e.Field+"[") {
			return true
		}
	}
	return false
}

// orderKey turns a path into a sort key that follows the declaration order
// of the settings (unknown keys after known ones) and list indexes, so the
// problems of one settings object read top to bottom.
func orderKey(fields []Setting, path string) []int {
	var key []int
	for path != "" {
		name, rest := path, ""
		if i := strings.IndexAny(path, ".["); i >= 0 {
			name, rest = path[:i], path[i:]
		}
		idx, next := len(fields), []Setting(nil)
		for j := range fields {
			if fields[j].JSONKey == name {
				idx, next = j, fields[j].Fields
				break
			}
		}
		key, fields, path = append(key, idx), next, rest
		for strings.HasPrefix(path, "[") {
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return key
			}
			n, _ := strconv.Atoi(path[1:end])
			key, path = append(key, n), path[end+1:]
		}
		path = strings.TrimPrefix(path, ".")
	}
	return key
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func checkObject(es *engine.FieldErrors, fields []Setting, m map[string]any, prefix, noun string) {
	for i := range fields {
		s := &fields[i]
		p := joinPath(prefix, s.JSONKey)
		v, ok := m[s.JSONKey]
		if !ok || v == nil {
			if s.Required {
				reason := "is required"
				if s.Kind == KindEnum {
					reason += "; must be one of " + strings.Join(s.Enum, ", ")
				}
				*es = append(*es, &engine.FieldError{Field: p, Reason: reason})
			}
			continue
		}
		checkValue(es, s, v, p)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, known := lookupJSON(fields, k); !known {
			*es = append(*es, &engine.FieldError{Field: joinPath(prefix, k), Reason: unknownKey(noun, k, fields)})
		}
	}
}

func lookupJSON(fields []Setting, key string) (*Setting, bool) {
	for i := range fields {
		if fields[i].JSONKey == key {
			return &fields[i], true
		}
	}
	return nil, false
}

// unknownKey lists the known keys and, when the key is another spelling of
// a known one (the rule-file key, or a different case), names it.
func unknownKey(noun, key string, fields []Setting) string {
	known := make([]string, len(fields))
	hint := ""
	for i, s := range fields {
		known[i] = s.JSONKey
		if hint == "" && (s.DSLKey == key || strings.EqualFold(s.JSONKey, key)) {
			hint = fmt.Sprintf("; did you mean %q?", s.JSONKey)
		}
	}
	return fmt.Sprintf("unknown %s %q; known: %s%s", noun, key, strings.Join(known, ", "), hint)
}

func checkValue(es *engine.FieldErrors, s *Setting, v any, path string) {
	add := func(format string, args ...any) {
		*es = append(*es, &engine.FieldError{Field: path, Reason: fmt.Sprintf(format, args...)})
	}
	switch s.Kind {
	case KindBool:
		if _, ok := v.(bool); !ok {
			add("must be a boolean (true or false), got %s", jsonKind(v))
		}
	case KindInt:
		n, ok := v.(json.Number)
		if !ok {
			add("must be an integer, got %s", jsonKind(v))
			return
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		switch {
		case err != nil:
			add("must be an integer, got %s", n)
		case (s.Min != 0 || s.Max != 0) && (i < int64(s.Min) || i > int64(s.Max)):
			add("must be between %d and %d", s.Min, s.Max)
		}
	case KindString:
		str, ok := v.(string)
		if !ok {
			add("must be a string, got %s", jsonKind(v))
			return
		}
		switch n := utf8.RuneCountInString(str); {
		case n < s.Min && s.Min == 1:
			add("must not be empty")
		case n < s.Min:
			add("must be at least %d characters", s.Min)
		case s.Max > 0 && n > s.Max:
			add("must be at most %d characters", s.Max)
		}
	case KindEnum:
		str, ok := v.(string)
		switch {
		case !ok:
			add("must be one of %s, got %s", strings.Join(s.Enum, ", "), jsonKind(v))
		case !slices.Contains(s.Enum, str):
			add("%q: must be one of %s", str, strings.Join(s.Enum, ", "))
		}
	case KindObjectList:
		list, ok := v.([]any)
		if !ok {
			add("must be a list of objects, got %s", jsonKind(v))
			return
		}
		if s.Max > 0 && len(list) > s.Max {
			add("must have at most %d entries", s.Max)
		}
		for i, item := range list {
			p := fmt.Sprintf("%s[%d]", path, i)
			obj, ok := item.(map[string]any)
			if !ok {
				*es = append(*es, &engine.FieldError{Field: p, Reason: "must be an object, got " + jsonKind(item)})
				continue
			}
			checkObject(es, s.Fields, obj, p, "field")
		}
	default:
		add("has no declared kind") // a registry bug, caught by the registry test
	}
}

// effective converts validated settings to plain Go values and fills in
// defaults.
func effective(fields []Setting, m map[string]any) map[string]any {
	out := make(map[string]any, len(fields))
	for i := range fields {
		s := &fields[i]
		v, ok := m[s.JSONKey]
		if !ok || v == nil {
			if s.Default != nil {
				out[s.JSONKey] = s.Default
			}
			continue
		}
		switch s.Kind {
		case KindInt:
			n, _ := v.(json.Number).Int64()
			out[s.JSONKey] = int(n)
		case KindObjectList:
			list := v.([]any)
			objs := make([]map[string]any, len(list))
			for j, item := range list {
				objs[j] = effective(s.Fields, item.(map[string]any))
			}
			out[s.JSONKey] = objs
		default:
			out[s.JSONKey] = v
		}
	}
	return out
}

// maxJSONDepth bounds the nesting of a settings object; real settings nest
// three levels deep.
const maxJSONDepth = 32

// parseJSON decodes one JSON value into map[string]any, []any, string,
// json.Number, bool or nil, and lists the paths of duplicate object keys
// (encoding/json silently keeps the last one, which would let a reviewer
// read one value while the system uses another).
func parseJSON(raw []byte) (any, []string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil, errors.New("empty document")
	}
	r := &jsonReader{dec: json.NewDecoder(bytes.NewReader(raw))}
	r.dec.UseNumber()
	v, err := r.value("", 0)
	if err != nil {
		return nil, nil, err
	}
	if _, err := r.dec.Token(); err != io.EOF {
		return nil, nil, errors.New("unexpected data after the value")
	}
	return v, r.dups, nil
}

type jsonReader struct {
	dec  *json.Decoder
	dups []string
}

func (r *jsonReader) value(path string, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("nested more than %d levels deep", maxJSONDepth)
	}
	tok, err := r.dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		m := map[string]any{}
		for r.dec.More() {
			kt, err := r.dec.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string) // the decoder only yields string keys inside an object
			p := joinPath(path, k)
			v, err := r.value(p, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := m[k]; dup {
				r.dups = append(r.dups, p)
			}
			m[k] = v
		}
		_, err := r.dec.Token()
		return m, err
	case '[':
		l := []any{}
		for r.dec.More() {
			v, err := r.value(fmt.Sprintf("%s[%d]", path, len(l)), depth+1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		_, err := r.dec.Token()
		return l, err
	}
	return nil, fmt.Errorf("unexpected %v", d)
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func orNil(es engine.FieldErrors) error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// prefixed returns copies of es with prefix prepended to every path.
func prefixed(prefix string, es engine.FieldErrors) engine.FieldErrors {
	out := make(engine.FieldErrors, len(es))
	for i, e := range es {
		f := prefix
		switch {
		case e.Field == "":
		case strings.HasPrefix(e.Field, "["):
			f += e.Field
		default:
			f += "." + e.Field
		}
		out[i] = &engine.FieldError{Field: f, Reason: e.Reason, Err: e.Err}
	}
	return out
}

// asFieldErrors extracts the FieldErrors of err (every error this package
// returns from validation is one).
func asFieldErrors(err error) engine.FieldErrors {
	var es engine.FieldErrors
	if errors.As(err, &es) {
		return es
	}
	return engine.FieldErrors{{Reason: err.Error(), Err: err}}
}
