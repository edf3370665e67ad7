package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Audit actor kinds.
const (
	ActorEndUser = "end_user" // the person at the device
	ActorPolicy  = "policy"   // a rule, software policy or org default
	ActorUser    = "user"     // an administrator over the API
	ActorSystem  = "system"   // sweeps, imports
	ActorAgent   = "agent"    // a device agent
)

// AuditRecord is one entry of an organisation's append-only audit log.
// Each record carries the hash of the one before it, so changing, removing
// or reordering any record breaks the chain at that point.
type AuditRecord struct {
	OrgID     string          `json:"orgId"`
	Seq       uint64          `json:"seq"`
	At        time.Time       `json:"at"`
	Action    string          `json:"action"`
	ActorKind string          `json:"actorKind"`
	ActorID   string          `json:"actorId,omitempty"`
	ActorName string          `json:"actorName,omitempty"`
	Subject   string          `json:"subject,omitempty"` // what it is about: a request, rule, … id
	From      string          `json:"fromStatus,omitempty"`
	To        string          `json:"toStatus,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Details   json.RawMessage `json:"details,omitempty"`
	PrevHash  string          `json:"prevHash"`
	Hash      string          `json:"hash"`
}

type chainHead struct {
	seq  uint64
	hash [32]byte
}

func (h chainHead) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, h.seq)
	return append(b, h.hash[:]...)
}

func decodeHead(b []byte) (chainHead, error) {
	if len(b) != 40 {
		return chainHead{}, errors.New("bad audit head")
	}
	var h chainHead
	h.seq = binary.BigEndian.Uint64(b)
	copy(h.hash[:], b[8:])
	return h, nil
}

// recordHash is SHA-256 over the record's JSON with Hash empty; PrevHash is
// part of what is hashed.
func recordHash(r AuditRecord) ([32]byte, []byte, error) {
	r.Hash = ""
	body, err := json.Marshal(r)
	if err != nil {
		return [32]byte{}, nil, err
	}
	return sha256.Sum256(body), body, nil
}

// Audit appends a record to rec.OrgID's chain when the operation commits.
// Seq, PrevHash and Hash are assigned then.
func (tx *Tx) Audit(rec AuditRecord) {
	r := rec
	r.At = r.At.UTC()
	// The record must read back exactly as hashed: text as valid UTF-8.
	for _, p := range []*string{&r.Action, &r.ActorKind, &r.ActorID, &r.ActorName, &r.Subject, &r.From, &r.To, &r.Reason} {
		*p = strings.ToValidUTF8(*p, "\uFFFD")
	}
	tx.audits = append(tx.audits, &r)
}

func (tx *Tx) head(org ID) (chainHead, error) {
	if h, ok := tx.next[org]; ok {
		return h, nil
	}
	if h, ok := tx.heads[org]; ok {
		return h, nil
	}
	if h, ok := tx.s.heads[org]; ok {
		return h, nil
	}
	k := key(pAuditHead, org[:])
	v, ok, err := txnGet(tx.txn, k)
	if err != nil || !ok {
		return chainHead{}, err
	}
	h, err := decodeHead(v)
	if err != nil {
		return chainHead{}, corrupt(k, err)
	}
	return h, nil
}

// prepareAudit chains the operation's audit records and buffers their
// writes.
func (tx *Tx) prepareAudit() error {
	for _, r := range tx.audits {
		org, err := ParseID(r.OrgID)
		if err != nil {
			return fmt.Errorf("audit record: orgId: %w", err)
		}
		h, err := tx.head(org)
		if err != nil {
			return err
		}
		r.OrgID = org.String() // the chain is keyed by the parsed id
		r.Seq = h.seq + 1
		r.PrevHash = hex.EncodeToString(h.hash[:])
		if h.seq == 0 {
			r.PrevHash = ""
		}
		sum, _, err := recordHash(*r)
		if err != nil {
			return err
		}
		r.Hash = hex.EncodeToString(sum[:])
		body, err := json.Marshal(r)
		if err != nil {
			return err
		}
		nh := chainHead{seq: r.Seq, hash: sum}
		tx.set(key(pAudit, org[:], u64(r.Seq)), body)
		tx.set(key(pAuditHead, org[:]), nh.encode())
		if tx.next == nil {
			tx.next = map[ID]chainHead{}
		}
		tx.next[org] = nh
	}
	return nil
}

func (tx *Tx) commitHeads() {
	for k, v := range tx.next {
		tx.heads[k] = v
	}
}

// AuditLog calls fn for org's records with seq ≥ from, in order, until fn
// returns false.
func (s *Store) AuditLog(org string, from uint64, fn func(*AuditRecord) bool) error {
	oid, err := ParseID(org)
	if err != nil {
		return err
	}
	return s.view(func(r view) error {
		it := r.iter(badger.IteratorOptions{Prefix: key(pAudit, oid[:])})
		defer it.Close()
		for it.Seek(key(pAudit, oid[:], u64(from))); it.Valid(); it.Next() {
			var rec AuditRecord
			k := it.Item().KeyCopy(nil)
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &rec) }); err != nil {
				return corrupt(k, err)
			}
			if !fn(&rec) {
				return nil
			}
		}
		return nil
	})
}

// ChainBreak describes the first broken link of an audit chain.
type ChainBreak struct {
	OrgID  string
	Seq    uint64 // the first record that does not verify (0: the head)
	Key    string
	Reason string
}

func (b *ChainBreak) Error() string {
	return fmt.Sprintf("audit chain of org %s broken at record %d (%s): %s", b.OrgID, b.Seq, b.Key, b.Reason)
}

// VerifyReport is the result of checking every organisation's chain.
type VerifyReport struct {
	Orgs    int
	Records uint64
	Breaks  []*ChainBreak // at most one per organisation: its first break
}

// VerifyAudit walks every organisation's audit chain and reports, per
// organisation, the first record whose sequence, link or hash is wrong, and
// a head that does not name the last record.
func (s *Store) VerifyAudit() (*VerifyReport, error) {
	rep := &VerifyReport{}
	err := s.view(func(r view) error {
		it := r.iter(badger.IteratorOptions{Prefix: []byte{pAudit}})
		defer it.Close()
		var org ID
		var prev [32]byte
		var seq uint64
		broken := false
		started := false
		finish := func() error {
			if !started {
				return nil
			}
			rep.Orgs++
			if broken {
				return nil
			}
			hk := key(pAuditHead, org[:])
			v, ok, err := r.get(hk)
			if err != nil {
				return err
			}
			h, herr := decodeHead(v)
			switch {
			case !ok:
				rep.Breaks = append(rep.Breaks, &ChainBreak{org.String(), 0, keyString(hk), "no chain head"})
			case herr != nil:
				rep.Breaks = append(rep.Breaks, &ChainBreak{org.String(), 0, keyString(hk), herr.Error()})
			case h.seq != seq || h.hash != prev:
				rep.Breaks = append(rep.Breaks, &ChainBreak{org.String(), h.seq, keyString(hk),
					fmt.Sprintf("head names record %d but the chain ends at record %d (records removed from the end?)", h.seq, seq)})
			}
			return nil
		}
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if len(k) != 1+16+8 {
				return corrupt(k, errors.New("malformed audit key"))
			}
			var o ID
			copy(o[:], k[1:17])
			if !started || o != org {
				if err := finish(); err != nil {
					return err
				}
				org, prev, seq, broken, started = o, [32]byte{}, 0, false, true
			}
			if broken {
				continue
			}
			rep.Records++
			kseq := binary.BigEndian.Uint64(k[17:])
			fail := func(why string) {
				rep.Breaks = append(rep.Breaks, &ChainBreak{org.String(), kseq, keyString(k), why})
				broken = true
			}
			raw, err := it.Item().ValueCopy(nil)
			if err != nil {
				return corrupt(k, err)
			}
			var rec AuditRecord
			if err := json.Unmarshal(raw, &rec); err != nil {
				fail("undecodable record: " + err.Error())
				continue
			}
			want := ""
			if seq > 0 {
				want = hex.EncodeToString(prev[:])
			}
			sum, _, err := recordHash(rec)
			canon, merr := json.Marshal(rec)
			if merr != nil {
				return fmt.Errorf("store: re-encoding audit record %s: %w", keyString(k), merr)
			}
			switch {
			case kseq != seq+1:
				fail(fmt.Sprintf("expected record %d next (records removed?)", seq+1))
			case rec.Seq != kseq || rec.OrgID != org.String():
				fail("record's own seq or org does not match its key")
			case rec.PrevHash != want:
				fail("prevHash does not match the previous record's hash")
			case !bytes.Equal(canon, raw):
				fail("stored bytes are not the record's canonical encoding (record altered)")
			case err != nil || hex.EncodeToString(sum[:]) != rec.Hash:
				fail("hash does not match the record's content (record altered)")
			default:
				prev, seq = sum, kseq
			}
		}
		return finish()
	})
	if err != nil {
		return nil, err
	}
	// Heads without any record: the log was emptied.
	err = s.view(func(r view) error {
		it := r.iter(badger.IteratorOptions{Prefix: []byte{pAuditHead}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			org := k[1:]
			first := key(pAudit, org, u64(1))
			if _, ok, err := r.get(first); err != nil {
				return err
			} else if !ok {
				has := false
				for _, b := range rep.Breaks {
					if b.OrgID == idString(org) {
						has = true
					}
				}
				if !has {
					it2 := r.iter(badger.IteratorOptions{Prefix: key(pAudit, org)})
					it2.Rewind()
					empty := !it2.Valid()
					it2.Close()
					if empty {
						rep.Orgs++
						rep.Breaks = append(rep.Breaks, &ChainBreak{idString(org), 1, keyString(first), "head present but the log is empty (records removed)"})
					}
				}
			}
		}
		return nil
	})
	return rep, err
}

func idString(b []byte) string {
	var id ID
	copy(id[:], b)
	return id.String()
}

// AuditHead is the last record of an organisation's audit chain. Kept
// outside the data directory (printed by `elevate audit head`), it anchors
// the chain: a chain can be cut back or rewritten consistently by someone
// with write access to the directory, but not so that an anchored record
// keeps its hash.
type AuditHead struct {
	OrgID string `json:"orgId"`
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"`
}

// AuditHeads returns every organisation's chain head.
func (s *Store) AuditHeads() ([]AuditHead, error) {
	var out []AuditHead
	err := s.view(func(r view) error {
		return r.scan([]byte{pAuditHead}, func(k, v []byte) (bool, error) {
			h, err := decodeHead(v)
			if err != nil || len(k) != 17 {
				return false, corrupt(k, errors.New("bad audit head"))
			}
			out = append(out, AuditHead{OrgID: idString(k[1:]), Seq: h.seq, Hash: hex.EncodeToString(h.hash[:])})
			return true, nil
		})
	})
	return out, err
}

// CheckAnchors reports, for each anchor, whether the record it names is
// still in the organisation's chain with the same hash. Together with
// VerifyAudit (every link from the first record on) this detects records
// removed from the end and chains rewritten since the anchor was taken.
func (s *Store) CheckAnchors(anchors []AuditHead) ([]*ChainBreak, error) {
	var out []*ChainBreak
	err := s.view(func(r view) error {
		for _, a := range anchors {
			org, err := ParseID(a.OrgID)
			if err != nil {
				return fmt.Errorf("anchor: orgId %q: %w", a.OrgID, err)
			}
			k := key(pAudit, org[:], u64(a.Seq))
			v, ok, err := r.get(k)
			if err != nil {
				return err
			}
			var rec AuditRecord
			switch {
			case !ok:
				out = append(out, &ChainBreak{org.String(), a.Seq, keyString(k), "the anchored record is gone (records removed from the end?)"})
			case json.Unmarshal(v, &rec) != nil || rec.Hash != strings.ToLower(a.Hash):
				out = append(out, &ChainBreak{org.String(), a.Seq, keyString(k), "the record differs from the anchored one (chain rewritten?)"})
			}
		}
		return nil
	})
	return out, err
}
