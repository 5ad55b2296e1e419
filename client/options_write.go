package client

import (
	"errors"
	"fmt"
	"time"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// ErrConditionFailed means a conditional write's condition did not hold, so
// nothing was written. The error is a *ConditionError.
var ErrConditionFailed = errors.New("ringkv: condition failed")

// ConditionError reports a conditional Put or Delete whose condition did not
// hold.
type ConditionError struct {
	Op  string
	Key []byte
	// Version is the key's version when the condition was evaluated (0: the
	// key was missing). It is 0 too when a retried request found that its
	// first attempt had been evaluated already.
	Version uint64
}

func (e *ConditionError) Error() string {
	return fmt.Sprintf("ringkv: %s %q: condition failed (current version %d)", e.Op, e.Key, e.Version)
}

// Is makes errors.Is(err, ErrConditionFailed) hold.
func (e *ConditionError) Is(target error) bool { return target == ErrConditionFailed }

// WriteOption changes a Put or Delete.
type WriteOption func(*writeOpts)

type writeOpts struct {
	cond  *ringkvv1.Condition
	ttlMs int64
}

func writeOptions(options []WriteOption) writeOpts {
	var w writeOpts
	for _, o := range options {
		o(&w)
	}
	return w
}

// IfAbsent makes the write happen only if the key is missing (absent true)
// or only if it exists (absent false).
func IfAbsent(absent bool) WriteOption {
	return func(w *writeOpts) {
		w.cond = &ringkvv1.Condition{Condition: &ringkvv1.Condition_Absent{Absent: absent}}
	}
}

// IfVersion makes the write happen only if the key's version is version (0:
// the key is missing).
func IfVersion(version uint64) WriteOption {
	return func(w *writeOpts) {
		w.cond = &ringkvv1.Condition{Condition: &ringkvv1.Condition_Version{Version: version}}
	}
}

// IfValue makes the write happen only if the key exists with this value.
func IfValue(value []byte) WriteOption {
	return func(w *writeOpts) {
		if value == nil {
			value = []byte{}
		}
		w.cond = &ringkvv1.Condition{Condition: &ringkvv1.Condition_Value{Value: value}}
	}
}

// WithTTL makes a Put's key expire ttl after the write (rounded up to a
// millisecond). The deadline is taken from the shard leader's clock and
// enforced through the Raft log: every replica deletes the key at the same
// point, and reads after the deadline never return it.
func WithTTL(ttl time.Duration) WriteOption {
	return func(w *writeOpts) {
		w.ttlMs = int64((ttl + time.Millisecond - 1) / time.Millisecond)
	}
}
