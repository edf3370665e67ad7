package engine

import (
	"fmt"
	"sync"
	"time"
	_ "time/tzdata" // zone names resolve the same on every machine
)

var zoneCache sync.Map // name → *time.Location

// LoadZone resolves a strict IANA zone name (pam-semantics §14.1). The empty
// name and "Local" are refused: a rule must not depend on the machine it runs
// on. Zones are loaded once per process.
func LoadZone(name string) (*time.Location, error) {
	if v, ok := zoneCache.Load(name); ok {
		return v.(*time.Location), nil
	}
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("%q is not an IANA time zone name (like \"Europe/London\" or \"UTC\")", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: use an IANA name like \"America/Chicago\" (names are case-sensitive)", name)
	}
	zoneCache.Store(name, loc)
	return loc, nil
}

// window is a compiled time window. An invalid window (out-of-range HH:MM
// or an unknown zone that reached the engine from old data) is never active.
type window struct {
	valid      bool
	start, end int   // minutes since local midnight
	days       uint8 // bit d set: weekday d allowed
	restricted bool  // days was non-empty
	loc        *time.Location
}

func compileWindow(w *TimeWindow) window {
	var cw window
	var ok1, ok2 bool
	cw.start, ok1 = parseHHMM(w.Start)
	cw.end, ok2 = parseHHMM(w.End)
	zone := "UTC"
	if w.Timezone != nil {
		zone = *w.Timezone
	}
	loc, err := LoadZone(zone)
	if !ok1 || !ok2 || err != nil {
		return window{}
	}
	cw.loc, cw.valid = loc, true
	cw.restricted = len(w.Days) > 0
	for _, d := range w.Days {
		if d >= 0 && d <= 6 {
			cw.days |= 1 << d
		}
	}
	return cw
}

// daysMask encodes the window's day restriction for the CEL function:
// -1 means every day, otherwise bit d allows weekday d.
func (w window) daysMask() int64 {
	if !w.restricted {
		return -1
	}
	return int64(w.days)
}

// active reports whether the instant t falls in the window: the local minute
// (seconds ignored) within [start, end], or for an overnight window
// (start > end) at or after start or at or before end; and the local weekday
// of t itself allowed.
func (w window) active(t time.Time) bool {
	if !w.valid {
		return false
	}
	return windowActive(t.In(w.loc), w.start, w.end, w.daysMask())
}

func windowActive(local time.Time, start, end int, days int64) bool {
	if days >= 0 && days&(1<<int(local.Weekday())) == 0 {
		return false
	}
	m := local.Hour()*60 + local.Minute()
	if start <= end {
		return start <= m && m <= end
	}
	return m >= start || m <= end
}

// ActiveAt reports whether the window is active at t, with the engine's
// semantics (a malformed window is never active).
func (w *TimeWindow) ActiveAt(t time.Time) bool { return compileWindow(w).active(t) }
