package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// ID is a UUID in its 16-byte form. Every stored entity is named by one,
// and keys embed it in this form so that prefixes have a fixed width.
type ID [16]byte

// NilID is the all-zero UUID; in a key it means "none" (a request without a
// site, say).
var NilID ID

// ParseID parses the canonical 8-4-4-4-12 hex form, either case.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, fmt.Errorf("%q is not a UUID", s)
	}
	j := 0
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return ID{}, fmt.Errorf("%q is not a UUID", s)
		}
		id[j] = hi<<4 | lo
		j++
		i += 2
	}
	return id, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// optID parses s, with "" meaning NilID.
func optID(s string) (ID, error) {
	if s == "" {
		return NilID, nil
	}
	return ParseID(s)
}

// String is the canonical lowercase form; NilID prints as "".
func (id ID) String() string {
	if id == NilID {
		return ""
	}
	var b [36]byte
	id.format(&b)
	return string(b[:])
}

func (id ID) format(b *[36]byte) {
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
}

// NewID returns a version 7 UUID: 48 bits of Unix milliseconds from t, then
// random bits, so ids made later sort later.
func NewID(t time.Time) string {
	var id ID
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint64(id[0:8], ms<<16)
	if _, err := rand.Read(id[6:]); err != nil {
		panic("store: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	id[6] = 0x70 | id[6]&0x0f
	id[8] = 0x80 | id[8]&0x3f
	return id.String()
}
