package client

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// overloadErr is what a node answers when a bound on requests in flight
// refuses a request (rpc.overloadStatus).
func overloadErr(t *testing.T) error {
	st, err := status.New(codes.ResourceExhausted,
		"shard 3: overloaded: shard 3 has 4 requests in flight, the limit of max-inflight-per-shard (4)").
		WithDetails(&errdetails.RetryInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// overloadFirst makes every node refuse the first n KV calls (of all nodes
// together) for load, and returns the count of KV calls made.
func overloadFirst(t *testing.T, fc *fakeCluster, n int64) *atomic.Int64 {
	var calls atomic.Int64
	refusal := overloadErr(t)
	for _, node := range fc.nodes {
		node.set(func(fn *fakeNode) {
			fn.before = func(_ context.Context, method string, _ []byte) error {
				if method == "Status" {
					return nil
				}
				if calls.Add(1) <= n {
					return refusal
				}
				return nil
			}
		})
	}
	return &calls
}

// A call refused for load is retried with backoff and succeeds once the
// node has capacity again; the refusals do not open any circuit breaker.
func TestOverloadedCallBacksOffAndSucceeds(t *testing.T) {
	fc := newFakeCluster(t)
	const base = 20 * time.Millisecond
	// A breaker that opens on the first failure would open at once if a
	// refusal counted as one.
	c := newTestClient(t, fc, WithBackoff(base, time.Second), WithCircuitBreaker(1, time.Minute))
	const refusals = 4
	calls := overloadFirst(t, fc, refusals)
	statusBefore := 0
	for _, n := range fc.nodes {
		_, st := n.counts()
		statusBefore += st
	}

	start := time.Now()
	if _, err := c.Put(testCtx(t), []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put after %d refusals for load = %v; want success once capacity returns", refusals, err)
	}
	took := time.Since(start)
	if got := calls.Load(); got != refusals+1 {
		t.Errorf("KV calls = %d; want %d refusals and 1 success", got, refusals+1)
	}
	// Each pause is at least half its backoff: 10+20+40+80 ms.
	if minPause := (base / 2) * (1 + 2 + 4 + 8); took < minPause {
		t.Errorf("Put took %v; the backoffs alone take at least %v", took, minPause)
	}
	statusAfter := 0
	for _, n := range fc.nodes {
		_, st := n.counts()
		statusAfter += st
	}
	if statusAfter != statusBefore {
		t.Errorf("%d shard map refreshes during the retries; want none (an overloaded node says nothing about the map)", statusAfter-statusBefore)
	}
	for _, n := range fc.nodes {
		if !c.breakers.allow(n.addr) {
			t.Errorf("breaker of %s is open after refusals for load; a busy node is not a dead one", n.id)
		}
	}
	if got, err := c.Get(testCtx(t), []byte("k")); err != nil || string(got.Data) != "v" {
		t.Errorf("Get = %q, %v; want v", got.Data, err)
	}
	if s := c.Stats(); s.Calls != 2 || s.Retries != refusals || s.OverloadRetries != refusals || s.Failed != 0 || s.MapRefreshes != 0 {
		t.Errorf("Stats = %+v; want 2 calls, %d retries all after overload, none failed, no map refresh", s, refusals)
	}
}

// A node that stays overloaded: the call ends at its deadline with the
// deadline error and the node's last refusal.
func TestOverloadedCallGivesUpAtDeadline(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)
	overloadFirst(t, fc, 1<<40)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Put(ctx, []byte("k"), []byte("v"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put against an overloaded cluster = %v; want DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "max-inflight-per-shard (4)") {
		t.Errorf("error %q does not carry the node's refusal", err)
	}
	if took := time.Since(start); took > waitLimit/2 {
		t.Errorf("Put took %v; want it to end at its 300ms deadline", took)
	}
	if s := c.Stats(); s.Calls != 1 || s.Failed != 1 || s.Retries < 1 || s.OverloadRetries != s.Retries {
		t.Errorf("Stats = %+v; want 1 call, failed, retried only for load", s)
	}
}

// Negative control: a ResourceExhausted without RetryInfo (a message over
// gRPC's limit, say) is not a refusal for load and is not retried.
func TestPlainResourceExhaustedIsNotRetried(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)
	var calls atomic.Int64
	for _, node := range fc.nodes {
		node.set(func(fn *fakeNode) {
			fn.before = func(_ context.Context, method string, _ []byte) error {
				if method == "Status" {
					return nil
				}
				calls.Add(1)
				return status.Error(codes.ResourceExhausted, "grpc: received message larger than max")
			}
		})
	}
	_, err := c.Put(testCtx(t), []byte("k"), []byte("v"))
	var se *ServerError
	if !errors.As(err, &se) || se.Code != codes.ResourceExhausted {
		t.Fatalf("Put = %v; want a ServerError with ResourceExhausted", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("KV calls = %d; want 1 (no retry)", got)
	}
}

func TestOverloadedClassifies(t *testing.T) {
	if !overloaded(overloadErr(t)) {
		t.Error("overloaded(ResourceExhausted with RetryInfo) = false")
	}
	for _, err := range []error{
		status.Error(codes.ResourceExhausted, "too big"),
		status.Error(codes.Unavailable, "no leader"),
		errors.New("dial: refused"),
	} {
		if overloaded(err) {
			t.Errorf("overloaded(%v) = true; want false", err)
		}
	}
}
