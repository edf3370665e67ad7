// Package store keeps Elevate's durable state in an embedded badger
// database: inventory, rules and signer groups, configuration policies,
// elevation requests with their secondary indexes, device commands and a
// hash-chained audit log per organisation. It is the only package that
// knows badger.
//
// # Durability
//
// Every write goes through one writer goroutine that gathers the operations
// queued while the previous commit was syncing into one badger transaction
// and commits it with SyncWrites (group commit). Update returns only after
// that synced commit, so nothing is acknowledged before it is on disk, and
// a burst of concurrent callers shares one fsync instead of paying one each
// (benchmarks/RESULTS.md, "Durable state"). Because operations run one at a
// time inside the writer, a compare-and-swap in an operation cannot race
// with another operation of this process; badger's conflict detection stays
// on, and a conflicting commit is retried from the start.
//
// # Reads
//
// Reads run in badger read transactions (snapshots) beside the writer and
// never block it.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// SchemaVersion is the layout this build reads and writes.
//
//	1  first layout
//	2  per-organisation request counters ('k'), so unfiltered lists need
//	   not count every row
const SchemaVersion = 2

// migrations[v] upgrades a store from schema v to v+1. A migration must be
// safe to run again: the schema version moves only after it has finished,
// so one interrupted runs again at the next open.
var migrations = map[uint64]func(*badger.DB) error{
	1: countRequests,
}

// countRequests writes the request counters of every organisation from
// the status index, in write batches so that any number of organisations
// fits.
func countRequests(db *badger.DB) error {
	counts := map[[17]byte]int64{} // org + status (0: all)
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pIndex}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < 19 || k[17] != ixStatus {
				continue
			}
			var c [17]byte
			copy(c[:16], k[1:17])
			counts[c]++ // all statuses
			c[16] = k[18]
			counts[c]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for c, n := range counts {
		if err := wb.Set(key(pCount, c[:]), u64(uint64(n))); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// Options tune Open.
type Options struct {
	// NoSync commits without fsync: for building benchmark fixtures and
	// bulk loads whose source can be replayed. Never for serving.
	NoSync bool
	// InMemory keeps everything in memory (tests of code above the store).
	InMemory bool
	// CommitWindow is how long the writer holds a commit open for more
	// operations while writes are arriving concurrently (the previous
	// commit carried more than one): each synced commit then answers more
	// callers. Zero means DefaultCommitWindow; negative, or NoSync or
	// InMemory, means no wait.
	CommitWindow time.Duration
}

// DefaultCommitWindow suits a disk whose fsync takes a few hundred
// microseconds (benchmarks/RESULTS.md "HTTP API").
const DefaultCommitWindow = 150 * time.Microsecond

// Store is an open data directory. It is safe for concurrent use.
type Store struct {
	db  *badger.DB
	dir string

	mu     sync.RWMutex // guards closed and sends on ops
	closed bool
	// reads is held (shared) by every read transaction, so Close cannot
	// close the database under a running iterator.
	reads sync.RWMutex
	ops   chan *op
	done  chan struct{}

	heads  map[ID]chainHead // audit chain heads; writer goroutine only
	window time.Duration    // Options.CommitWindow in effect

	// failed holds the commit error after which no write is accepted.
	failed atomic.Pointer[error]

	statsMu sync.Mutex
	stats   Stats

	watchMu  sync.Mutex
	watchers []func([]*Request)
	watched  atomic.Bool
}

// Stats counts writer activity.
type Stats struct {
	Commits   int // synced transactions
	Ops       int // operations committed
	Conflicts int // commits retried after a conflict
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(!o.NoSync).
		WithLogger(quietLogger{}).
		WithNumVersionsToKeep(1).
		WithMetricsEnabled(false).
		// Every table block is checked against its checksum when read, so
		// a damaged block is an error, never a misread row.
		WithChecksumVerificationMode(options.OnBlockRead).
		// Rows are already compact; decompressing every block on every
		// scan cost more than the disk it saves (benchmarks/RESULTS.md).
		WithCompression(options.None).
		// Without compression table blocks are read in place from the
		// memory-mapped tables; a block cache would only copy them.
		WithBlockCacheSize(0)
	if o.InMemory {
		bo = bo.WithInMemory(true).WithDir("").WithValueDir("")
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := badger.Open(bo)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("store: %w: %s (stop the other elevate process, or use another --data directory)", ErrLocked, absPath(dir))
		}
		return nil, fmt.Errorf("store: open %s: %w", absPath(dir), err)
	}
	if err := checkSchema(db, dir); err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, dir: dir, ops: make(chan *op, 1024), done: make(chan struct{}), heads: map[ID]chainHead{}}
	switch {
	case o.NoSync || o.InMemory || o.CommitWindow < 0:
	case o.CommitWindow == 0:
		s.window = DefaultCommitWindow
	default:
		s.window = o.CommitWindow
	}
	go s.writer()
	return s, nil
}

func absPath(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}

// checkSchema records the schema version in a new store, refuses a newer
// one and migrates an older one.
func checkSchema(db *badger.DB, dir string) error {
	var ver uint64
	var found, empty bool
	err := db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(schemaKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			iter := txn.NewIterator(badger.IteratorOptions{})
			defer iter.Close()
			iter.Rewind()
			empty = !iter.Valid()
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return it.Value(func(v []byte) error {
			var err error
			ver, err = parseUvarint(v)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("store: reading schema version of %s: %w", absPath(dir), err)
	}
	switch {
	case !found && empty:
		return db.Update(func(txn *badger.Txn) error { return txn.Set(schemaKey, uvarint(SchemaVersion)) })
	case !found:
		return fmt.Errorf("store: %s holds data but no schema version: not an elevate data directory", absPath(dir))
	case ver > SchemaVersion:
		return fmt.Errorf("store: %w: %s has schema version %d, this elevate reads up to %d; upgrade elevate", ErrSchemaTooNew, absPath(dir), ver, SchemaVersion)
	}
	for v := ver; v < SchemaVersion; v++ {
		m := migrations[v]
		if m == nil {
			return fmt.Errorf("store: no migration from schema version %d", v)
		}
		if err := m(db); err != nil {
			return fmt.Errorf("store: migrating %s from schema %d: %w", absPath(dir), v, err)
		}
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(schemaKey, uvarint(v+1)) }); err != nil {
			return fmt.Errorf("store: migrating %s from schema %d: %w", absPath(dir), v, err)
		}
	}
	return nil
}

// Close waits for queued writes, stops the writer and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.ops)
	s.mu.Unlock()
	<-s.done
	s.reads.Lock()
	defer s.reads.Unlock()
	return s.db.Close()
}

// Watch registers fn to be told of every request written from now on:
// after each commit, before the writers are answered, fn gets copies of the
// requests the commit wrote (new ones and new states of stored ones), in
// commit order. fn runs on the store's writer, so it must be quick and
// must not write to the store. Keeping an in-memory view of the requests
// current is what it is for: a snapshot read after Watch returns, plus
// what fn is told, misses no commit.
func (s *Store) Watch(fn func([]*Request)) error {
	s.watchMu.Lock()
	s.watchers = append(s.watchers, fn)
	s.watchMu.Unlock()
	s.watched.Store(true)
	// A commit already under way may have started unwatched: an empty
	// operation queued behind it returns only once it has finished.
	return s.Update(func(*Tx) error { return nil })
}

func (s *Store) notify(rows [][]byte) {
	s.watchMu.Lock()
	ws := s.watchers
	s.watchMu.Unlock()
	rs := make([]*Request, 0, len(rows))
	for _, row := range rows {
		r := new(Request)
		if err := decodeRequest(row, r); err != nil {
			continue // not reached: the row was encoded by this process
		}
		rs = append(rs, r)
	}
	for _, fn := range ws {
		tell(fn, rs)
	}
}

// tell calls one watcher; a watcher that panics must not take the writer,
// and every caller waiting on it, down: the commit is already made.
func tell(fn func([]*Request), rs []*Request) {
	defer func() { _ = recover() }()
	fn(rs)
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// Stats returns the writer's counters.
func (s *Store) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

type quietLogger struct{}

func (quietLogger) Errorf(f string, a ...any) { fmt.Fprintf(os.Stderr, "badger: "+f, a...) }
func (quietLogger) Warningf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "badger: "+f, a...)
}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}

// Healthy reports why the store cannot serve (closed, or failed after a
// commit error), or nil.
func (s *Store) Healthy() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if err := s.failed.Load(); err != nil {
		return fmt.Errorf("%w: %v", ErrFailed, *err)
	}
	return nil
}
