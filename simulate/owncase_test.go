package simulate

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestOwnCase: ownCase copies every string of a case (including ones
// added to simulate.Case later) and every pointer and slice.
func TestOwnCase(t *testing.T) {
	var c Case
	buf := strings.Repeat("x", 4096)
	off := 0
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			switch {
			case f.Kind() == reflect.String:
				f.SetString(buf[off : off+3])
				off += 3
			case f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Time{}):
				fill(f)
			}
		}
	}
	fill(reflect.ValueOf(&c).Elem())
	risk, dur, at := 2, 30, now
	c.Observation.AdGroups = []string{buf[off : off+3]}
	c.Observation.RiskTier, c.Observation.RequestedDurationMinutes, c.Observation.ObservedAt = &risk, &dur, &at
	before := c
	ownCase(&c)
	lo, hi := uintptr(unsafe.Pointer(unsafe.StringData(buf))), uintptr(unsafe.Pointer(unsafe.StringData(buf)))+uintptr(len(buf))
	var check func(path string, v reflect.Value)
	check = func(path string, v reflect.Value) {
		for i := range v.NumField() {
			f, name := v.Field(i), path+"."+v.Type().Field(i).Name
			switch {
			case f.Kind() == reflect.String:
				if p := uintptr(unsafe.Pointer(unsafe.StringData(f.String()))); p >= lo && p < hi {
					t.Errorf("%s still points into the lent buffer", name)
				}
			case f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Time{}):
				check(name, f)
			case f.Kind() == reflect.Pointer || f.Kind() == reflect.Slice:
				if !f.IsNil() && f.Pointer() == reflect.ValueOf(before).FieldByIndex(fieldIndex(reflect.TypeOf(before), name)).Pointer() {
					t.Errorf("%s is shared", name)
				}
			}
		}
	}
	check("Case", reflect.ValueOf(c))
	if !reflect.DeepEqual(c, before) {
		t.Fatalf("the copy differs:\n%+v\n%+v", c, before)
	}
	if p := uintptr(unsafe.Pointer(unsafe.StringData(c.Observation.AdGroups[0]))); p >= lo && p < hi {
		t.Errorf("AdGroups[0] still points into the lent buffer")
	}
	// A case whose observedAt is its own requestedAt keeps it so.
	c.Observation.ObservedAt = &c.At
	ownCase(&c)
	if c.Observation.ObservedAt != &c.At {
		t.Errorf("observedAt no longer points at the case's At")
	}
}

// fieldIndex resolves a dotted path (Case.Observation.RiskTier) to a
// field index.
func fieldIndex(typ reflect.Type, path string) []int {
	var idx []int
	for _, name := range strings.Split(path, ".")[1:] {
		f, _ := typ.FieldByName(name)
		idx = append(idx, f.Index...)
		typ = f.Type
	}
	return idx
}
