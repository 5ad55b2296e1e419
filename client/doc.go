// Package client is the Go client library of ringkv.
//
// A Client talks to any node of a ringkv cluster over gRPC. It caches the
// cluster's shard map and sends each request straight to the leader of the
// key's shard, so the common case costs a single hop; any node accepts any
// request and forwards it when it does not lead the shard, so a stale cache
// costs at most one extra hop, never a wrong answer.
//
// # Routing and retries
//
// A key's shard is shard.Of(key, shardCount), a pure function of the key;
// only the shard's leader moves. The client learns a new leader from the
// "ringkv-leader" response header that every successful call carries, and
// refreshes the whole map from any node when a call fails in a way that may
// mean the map is stale.
//
// A call is retried, until its context ends, when its outcome says nothing
// about the request itself: codes.Unavailable (no leader right now, node
// shutting down, forward failed), an attempt that ran past its attempt
// timeout, or a connection error. Each retry backs off with jitter and
// prefers a node the call has not tried yet. A node over one of its bounds
// on requests in flight answers codes.ResourceExhausted with a RetryInfo
// detail: that too is retried with backoff, without a map refresh, and does
// not count against the node's circuit breaker (it is busy, not dead).
// codes.InvalidArgument, codes.NotFound and every other code, a
// ResourceExhausted without RetryInfo included, return at once.
//
// Every call carries a request ID in the "x-request-id" header, the same for
// each of its attempts, under which every node it reaches logs it: the
// caller's (WithTraceID) or one the client makes. TraceIDOf returns it from
// the call's error.
//
// Writes are exactly-once: each Put and Delete carries a RequestID (a random
// client ID fixed for the life of the Client and a sequence number), and a
// retry of a write resends the same RequestID, so the shard applies it at
// most once even when a response was lost.
//
// # Administration
//
// Status, RemoveNode and RebalanceStatus go to any node. RemoveNode starts
// draining a node and returns once the drain is committed; the node leaves
// Status's members when its last replica has moved off it, and
// RebalanceStatus shows the moves on the way there. A node's refusal comes
// back as a *ServerError with the node's code and message, so errors.Is with
// the package's sentinels (ErrFailedPrecondition, ...) and status.Code both
// work on it.
//
// # Node health
//
// Each node address has a circuit breaker: after a number of consecutive
// failures the node is skipped for a cooldown that doubles on each reopening,
// unless every candidate for a call is skipped, in which case the client
// tries anyway. A success closes the breaker.
//
// # Concurrency
//
// A Client is safe for concurrent use by many goroutines. Close releases its
// connections and stops its background work.
package client
