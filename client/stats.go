package client

import (
	"errors"
	"sync/atomic"

	"google.golang.org/grpc/codes"
)

// Stats counts what a Client has done since New: how often its calls had
// to be retried, which a caller that exports metrics can publish (for
// example as Prometheus counters read by a CounterFunc), so that the
// retries a cluster's leader changes, moves or overload cost its clients
// are visible. Watches are not counted.
type Stats struct {
	// Calls counts the calls made (Get, Put, Txn, Scan pages, ...), each
	// once however many attempts it took.
	Calls uint64 `json:"calls"`
	// Retries counts the attempts after a call's first: after a node was
	// unreachable, had no leader for the shard, or timed out an attempt.
	Retries uint64 `json:"retries"`
	// OverloadRetries counts those of the Retries that followed a node's
	// refusal for load (ResourceExhausted with retry info, see
	// kvnode --max-inflight).
	OverloadRetries uint64 `json:"overload_retries"`
	// Failed counts the calls that returned an error other than a
	// refusal of the request itself (NotFound, InvalidArgument, a failed
	// condition): they ran out of time or met an error not retried.
	Failed uint64 `json:"failed"`
	// MapRefreshes counts the shard map fetches after the first.
	MapRefreshes uint64 `json:"map_refreshes"`
}

// clientStats are the counters behind Stats.
type clientStats struct {
	calls, retries, overloadRetries, failed, mapRefreshes atomic.Uint64
}

// Stats returns the Client's counters. It is safe to call concurrently
// with calls.
func (c *Client) Stats() Stats {
	return Stats{
		Calls:           c.stats.calls.Load(),
		Retries:         c.stats.retries.Load(),
		OverloadRetries: c.stats.overloadRetries.Load(),
		Failed:          c.stats.failed.Load(),
		MapRefreshes:    c.stats.mapRefreshes.Load(),
	}
}

// refusal reports whether err, returned by invokeTraced, is the cluster's
// answer to the request itself rather than a failure to get one.
func refusal(err error) bool {
	if errors.Is(err, ErrNotFound) {
		return true
	}
	var se *ServerError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists,
		codes.OutOfRange, codes.PermissionDenied, codes.Unauthenticated, codes.Aborted:
		return true
	}
	return false
}
