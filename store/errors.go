package store

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotFound: no such entity (in this organisation).
	ErrNotFound = errors.New("not found")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store is closed")
	// ErrLocked: another process has the data directory open.
	ErrLocked = errors.New("data directory is in use by another process")
	// ErrSchemaTooNew: the data was written by a newer Elevate.
	ErrSchemaTooNew = errors.New("data directory was written by a newer version of elevate")
	// ErrFailed: a commit failed; the store accepts no writes until reopened.
	ErrFailed = errors.New("store failed and must be reopened")
	// ErrTooBig: one operation writes more than a transaction can hold.
	ErrTooBig = errors.New("operation too large for one transaction")
)

// CorruptError reports a stored value that cannot be decoded. It names the
// key: a damaged record is reported, never skipped.
type CorruptError struct {
	Key string
	Err error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("store: corrupt value at key %s: %v", e.Key, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

func corrupt(k []byte, err error) error { return &CorruptError{Key: keyString(k), Err: err} }

// InvalidError reports a value the store refuses to write.
type InvalidError struct {
	What     string
	Problems []string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.What, strings.Join(e.Problems, "; "))
}

// ConflictError reports a write that contradicts stored state (a duplicate
// id or name).
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }
