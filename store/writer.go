package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Limits of one group commit, well inside badger's transaction limits.
const (
	maxBatchOps     = 512
	maxBatchBytes   = 4 << 20
	maxBatchEntries = 20000
	maxRetries      = 8
)

type op struct {
	fn   func(*Tx) error
	done chan error
}

// Update runs fn inside the writer and returns after its writes are durably
// committed, or with fn's error and nothing written. fn may run more than
// once (after a transaction conflict, or when its batch had to be split):
// only the last run's writes count, so fn must not have effects outside tx
// other than setting its own results. fn runs on the writer goroutine: it
// must not call Update (the writer would wait for itself), and everything
// it does delays every other write.
func (s *Store) Update(fn func(*Tx) error) error {
	o := &op{fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	if err := s.failed.Load(); err != nil {
		s.mu.RUnlock()
		return fmt.Errorf("%w: %v", ErrFailed, *err)
	}
	s.ops <- o
	s.mu.RUnlock()
	return <-o.done
}

func (s *Store) writer() {
	defer close(s.done)
	var carry []*op
	last := 0 // operations in the previous commit
	for {
		batch := carry
		carry = nil
		if len(batch) == 0 {
			o, ok := <-s.ops
			if !ok {
				return
			}
			batch = append(batch, o)
		}
	fill:
		for len(batch) < maxBatchOps {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		if s.window > 0 && last > 1 && len(batch) < maxBatchOps {
			batch = s.linger(batch)
		}
		last = len(batch)
		carry = s.commit(batch)
	}
}

// linger adds to batch the operations that arrive within the commit window.
func (s *Store) linger(batch []*op) []*op {
	t := time.NewTimer(s.window)
	defer t.Stop()
	for len(batch) < maxBatchOps {
		select {
		case o, ok := <-s.ops:
			if !ok {
				return batch
			}
			batch = append(batch, o)
		case <-t.C:
			return batch
		}
	}
	return batch
}

// commit runs a batch in one transaction and answers its callers once the
// commit is synced. It returns the operations that did not fit, to be run
// in the next transaction.
func (s *Store) commit(batch []*op) (rest []*op) {
	if err := s.failed.Load(); err != nil {
		// Operations queued before the failure are refused like later ones.
		for _, o := range batch {
			o.done <- fmt.Errorf("%w: %v", ErrFailed, *err)
		}
		return nil
	}
	var errs []error
	var heads map[ID]chainHead
	var puts [][]byte // rows of the requests written by the operations that succeed
	watched := s.watched.Load()
	n := len(batch)
	for attempt := 0; ; attempt++ {
		txn := s.db.NewTransaction(true)
		heads = map[ID]chainHead{}
		errs = make([]error, len(batch))
		puts = puts[:0]
		n = len(batch)
		size, entries := 0, 0
		for i, o := range batch {
			tx := &Tx{s: s, txn: txn, heads: heads, watched: watched}
			err := run(o.fn, tx)
			if err == nil {
				err = tx.prepareAudit()
			}
			if err != nil {
				errs[i] = err
				continue
			}
			sz, ent := tx.size()
			if i > 0 && (size+sz > maxBatchBytes || entries+ent > maxBatchEntries) {
				n = i
				break
			}
			if err := tx.flush(); err != nil {
				// Part of the operation may be in the transaction: discard
				// it, fail this operation and rerun the others.
				txn.Discard()
				if errors.Is(err, badger.ErrTxnTooBig) {
					err = ErrTooBig
				}
				o.done <- err
				return append(append([]*op(nil), batch[:i]...), batch[i+1:]...)
			}
			size += sz
			entries += ent
			tx.commitHeads()
			puts = append(puts, tx.puts...)
		}
		err := txn.Commit()
		if errors.Is(err, badger.ErrConflict) && attempt < maxRetries {
			s.count(func(st *Stats) { st.Conflicts++ })
			continue
		}
		if err != nil {
			// badger may have applied the batch in memory before the
			// failing sync: what is readable may not be durable. Refuse
			// further writes until the store is reopened.
			s.failed.CompareAndSwap(nil, &err)
			s.heads = map[ID]chainHead{} // reload from disk
			for i := range batch[:n] {
				if errs[i] == nil {
					errs[i] = fmt.Errorf("store: commit: %w", err)
				}
			}
		} else {
			for k, v := range heads {
				s.heads[k] = v
			}
			ok := 0
			for _, e := range errs[:n] {
				if e == nil {
					ok++
				}
			}
			s.count(func(st *Stats) { st.Commits++; st.Ops += ok })
			if watched && len(puts) > 0 {
				s.notify(puts)
			}
		}
		break
	}
	for i, o := range batch[:n] {
		o.done <- errs[i]
	}
	return batch[n:]
}

func (s *Store) count(f func(*Stats)) {
	s.statsMu.Lock()
	f(&s.stats)
	s.statsMu.Unlock()
}

// run calls fn, turning a panic into an error so one bad operation cannot
// take the writer (and every later caller) down.
func run(fn func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: operation panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(tx)
}

// Tx is one operation's view of the write transaction. Its writes are
// buffered and reach the transaction only if the operation succeeds; reads
// see them, the writes of earlier operations in the batch and everything
// committed.
type Tx struct {
	s      *Store
	txn    *badger.Txn
	heads  map[ID]chainHead // batch-local audit chain heads
	writes []write
	local  map[string]int // key → index in writes
	audits []*AuditRecord
	next   map[ID]chainHead // heads after this operation's audits
	// puts are the rows of the requests written, for the store's watchers.
	puts    [][]byte
	watched bool
}

type write struct {
	key, val []byte
	del      bool
}

func (tx *Tx) set(k, v []byte) { tx.buffer(write{key: k, val: v}) }

func (tx *Tx) del(k []byte) { tx.buffer(write{key: k, del: true}) }

// buffer records a write. Writes are only appended (a later one to the
// same key wins when they are applied in order), so a savepoint is just a
// length.
func (tx *Tx) buffer(w write) {
	if tx.local == nil {
		tx.local = map[string]int{}
	}
	tx.local[string(w.key)] = len(tx.writes)
	tx.writes = append(tx.writes, w)
}

// Savepoint marks the operation's writes and audit records so far.
type Savepoint struct{ writes, audits, puts int }

// Savepoint returns a mark that Rollback can return the operation to.
func (tx *Tx) Savepoint() Savepoint { return Savepoint{len(tx.writes), len(tx.audits), len(tx.puts)} }

// Rollback drops every write and audit record made since sp, so one
// operation can try a step and give it up without giving up the others.
func (tx *Tx) Rollback(sp Savepoint) {
	if sp.writes > len(tx.writes) || sp.audits > len(tx.audits) || sp.puts > len(tx.puts) {
		return
	}
	tx.writes = tx.writes[:sp.writes]
	tx.audits = tx.audits[:sp.audits]
	tx.puts = tx.puts[:sp.puts]
	clear(tx.local)
	for i, w := range tx.writes {
		tx.local[string(w.key)] = i
	}
}

// get returns a copy of the value at k, or ok=false.
func (tx *Tx) get(k []byte) (v []byte, ok bool, err error) {
	if i, hit := tx.local[string(k)]; hit {
		w := tx.writes[i]
		if w.del {
			return nil, false, nil
		}
		return w.val, true, nil
	}
	return txnGet(tx.txn, k)
}

func (tx *Tx) size() (bytes, entries int) {
	for _, w := range tx.writes {
		bytes += len(w.key) + len(w.val) + 32
	}
	return bytes, len(tx.writes)
}

func (tx *Tx) flush() error {
	for _, w := range tx.writes {
		var err error
		if w.del {
			err = tx.txn.Delete(w.key)
		} else {
			err = tx.txn.Set(w.key, w.val)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func txnGet(txn *badger.Txn, k []byte) ([]byte, bool, error) {
	it, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: read %s: %w", keyString(k), err)
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return nil, false, fmt.Errorf("store: read %s: %w", keyString(k), err)
	}
	return v, true, nil
}

// reader is what the typed accessors need: a Tx inside the writer (whose
// reads see the operation's own buffered writes) or a read-only snapshot.
type reader interface {
	get(k []byte) ([]byte, bool, error)
	// scan calls fn for every key under prefix in key order, until fn
	// returns false. v is valid only during the call.
	scan(prefix []byte, fn func(k, v []byte) (bool, error)) error
}

// scan merges the operation's buffered writes under prefix into the
// transaction's view of the range.
func (tx *Tx) scan(prefix []byte, fn func(k, v []byte) (bool, error)) error {
	var local []write
	for k, i := range tx.local { // the last write to each key
		if strings.HasPrefix(k, string(prefix)) {
			local = append(local, tx.writes[i])
		}
	}
	slices.SortFunc(local, func(a, b write) int { return bytes.Compare(a.key, b.key) })
	it := tx.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	it.Rewind()
	for {
		stored := it.Valid()
		if !stored && len(local) == 0 {
			return nil
		}
		var k, v []byte
		if len(local) > 0 && (!stored || bytes.Compare(local[0].key, it.Item().Key()) <= 0) {
			w := local[0]
			local = local[1:]
			if stored && bytes.Equal(w.key, it.Item().Key()) {
				it.Next() // the buffered write replaces the stored value
			}
			if w.del {
				continue
			}
			k, v = w.key, w.val
		} else {
			item := it.Item()
			k = item.KeyCopy(nil)
			var err error
			if v, err = item.ValueCopy(nil); err != nil {
				return fmt.Errorf("store: read %s: %w", keyString(k), err)
			}
			it.Next()
		}
		if ok, err := fn(k, v); err != nil || !ok {
			return err
		}
	}
}

type view struct{ txn *badger.Txn }

func (v view) get(k []byte) ([]byte, bool, error)               { return txnGet(v.txn, k) }
func (v view) iter(opt badger.IteratorOptions) *badger.Iterator { return v.txn.NewIterator(opt) }

func (v view) scan(prefix []byte, fn func(k, v []byte) (bool, error)) error {
	it := v.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		var ok bool
		err := item.Value(func(val []byte) error {
			var err error
			ok, err = fn(item.Key(), val)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: read %s: %w", keyString(item.KeyCopy(nil)), err)
		}
		if !ok {
			return nil
		}
	}
	return nil
}

// view runs fn on a consistent snapshot. Views must not nest: a view
// waiting behind Close would wait forever for the outer one.
func (s *Store) view(fn func(r view) error) error {
	s.reads.RLock()
	defer s.reads.RUnlock()
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return s.db.View(func(txn *badger.Txn) error { return fn(view{txn}) })
}

// Snapshot is a consistent read-only view of the store.
type Snapshot struct{ r reader }

// Read is a read view of the operation: it sees the operation's own
// writes, so checks and the writes they guard stay in one transaction.
func (tx *Tx) Read() *Snapshot { return &Snapshot{tx} }

// View runs fn with a consistent snapshot of everything committed.
func (s *Store) View(fn func(*Snapshot) error) error {
	return s.view(func(r view) error { return fn(&Snapshot{r}) })
}

func uvarint(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func parseUvarint(b []byte) (uint64, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) {
		return 0, errors.New("bad varint")
	}
	return v, nil
}
