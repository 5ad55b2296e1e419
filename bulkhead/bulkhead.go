// Package bulkhead bounds the work in flight in one compartment of a
// server, so that one slow or stuck part (a shard whose group lost its
// quorum, say) cannot take the capacity of the whole.
//
// A Limiter never makes a caller wait: when its bound is reached, Acquire
// fails at once with an error that wraps ErrFull and names the bound, and
// the caller is expected to reject the request and let its client back off.
// The package knows nothing of gRPC or shards; package rpc maps ErrFull to
// ResourceExhausted, and package node decides what each Limiter guards.
package bulkhead

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrFull is wrapped by every error Acquire returns: the Limiter's bound
// was reached and the request was not admitted. Test with errors.Is.
var ErrFull = errors.New("overloaded")

// FullError is the error Acquire returns. It names the bound that refused
// the request.
type FullError struct {
	// What is the compartment: "node", "shard 7".
	What string
	// Bound is the setting that sets the limit, as an operator knows it:
	// "max-inflight", "max-inflight-per-shard".
	Bound string
	// Limit is the bound's value.
	Limit int
}

// Error returns, for example, "overloaded: shard 7 has 256 requests in
// flight, the limit of max-inflight-per-shard (256)".
func (e *FullError) Error() string {
	return fmt.Sprintf("overloaded: %s has %d requests in flight, the limit of %s (%d)", e.What, e.Limit, e.Bound, e.Limit)
}

// Is reports whether target is ErrFull.
func (e *FullError) Is(target error) bool { return target == ErrFull }

// Limiter admits at most Limit requests at a time. It is safe for
// concurrent use; Acquire and the release it returns are a few atomic
// operations.
type Limiter struct {
	what  string
	bound string
	limit int64
	n     atomic.Int64 // requests admitted and not yet released
}

// New returns a Limiter of limit requests at a time for the compartment
// what, whose limit is set by the setting bound (both for the error
// message). A limit of 0 or less admits everything but still counts.
func New(what, bound string, limit int) *Limiter {
	return &Limiter{what: what, bound: bound, limit: int64(limit)}
}

// Acquire admits one request, or refuses it with a *FullError when Limit
// requests are in flight. The caller must call release exactly once when
// the request ends, on every path (defer it); calls after the first do
// nothing, so a double release cannot free another request's slot.
func (l *Limiter) Acquire() (release func(), err error) {
	if n := l.n.Add(1); l.limit > 0 && n > l.limit {
		l.n.Add(-1)
		return nil, &FullError{What: l.what, Bound: l.bound, Limit: int(l.limit)}
	}
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			l.n.Add(-1)
		}
	}, nil
}

// InFlight returns the requests admitted and not yet released.
func (l *Limiter) InFlight() int { return int(l.n.Load()) }

// Limit returns the bound; 0 or less means none.
func (l *Limiter) Limit() int { return int(l.limit) }
