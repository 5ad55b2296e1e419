package client

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// overloaded reports whether a node refused an attempt for load: a bound
// on requests in flight (the node's or the key's shard's) was reached, and
// the request did not take effect. Nodes say so with ResourceExhausted and
// a RetryInfo detail; any other ResourceExhausted (a message over gRPC's
// size limit, for one) is not retried.
//
// Such an attempt is retried after the usual jittered backoff, within the
// call's deadline, and counts for the node in its circuit breaker, not
// against it: the node answered, it is busy, not dead.
func overloaded(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return false
	}
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RetryInfo); ok {
			return true
		}
	}
	return false
}

// noWait returns a channel that is already closed: the pause after an
// overloaded attempt waits for no shard map refresh, the map is not at
// fault.
func noWait() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
