package client

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// waitLimit bounds every wait in these tests: a call that should return
// promptly and has not by then hangs.
const waitLimit = 10 * time.Second

// newTestClient connects to fc with fast backoff; the test's cleanup closes
// it.
func newTestClient(t *testing.T, fc *fakeCluster, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	opts = append([]Option{WithBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)
	c, err := New(ctx, fc.addrs(), opts...)
	if err != nil {
		t.Fatalf("New(%v) = %v", fc.addrs(), err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func kvCounts(fc *fakeCluster) map[string]int {
	out := make(map[string]int)
	for _, n := range fc.nodes {
		kv, _ := n.counts()
		out[n.id] = kv
	}
	return out
}

func statusCalls(fc *fakeCluster) int {
	total := 0
	for _, n := range fc.nodes {
		_, s := n.counts()
		total += s
	}
	return total
}

func mustPut(t *testing.T, c *Client, key, value string) uint64 {
	t.Helper()
	v, err := c.Put(testCtx(t), []byte(key), []byte(value))
	if err != nil {
		t.Fatalf("Put(%q, %q) = %v", key, value, err)
	}
	return v
}

func mustGet(t *testing.T, c *Client, key string) Value {
	t.Helper()
	v, err := c.Get(testCtx(t), []byte(key))
	if err != nil {
		t.Fatalf("Get(%q) = %v", key, err)
	}
	return v
}

func TestPutGetDelete(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)

	v1 := mustPut(t, c, "a", "one")
	v2 := mustPut(t, c, "a", "two")
	if v2 <= v1 {
		t.Errorf("second Put version = %d; want > %d", v2, v1)
	}
	got := mustGet(t, c, "a")
	if want := (Value{Data: []byte("two"), Version: v2, CreateVersion: v1}); !bytes.Equal(got.Data, want.Data) ||
		got.Version != want.Version || got.CreateVersion != want.CreateVersion {
		t.Errorf("Get(%q) = %+v; want %+v", "a", got, want)
	}
	deleted, _, err := c.Delete(testCtx(t), []byte("a"))
	if err != nil || !deleted {
		t.Errorf("Delete(%q) = %v, %v; want true, nil", "a", deleted, err)
	}
	deleted, _, err = c.Delete(testCtx(t), []byte("a"))
	if err != nil || deleted {
		t.Errorf("second Delete(%q) = %v, %v; want false, nil", "a", deleted, err)
	}
	_, err = c.Get(testCtx(t), []byte("a"))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Get(deleted key) = %v; want ErrNotFound, saying \"not found\"", err)
	}
	if n := kvCounts(fc); n["n1"]+n["n2"]+n["n3"] != 6 {
		t.Errorf("KV calls = %v; want 6 in all (no retries)", n)
	}
}

func TestRoutesStraightToLeader(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)

	want := make(map[string]int)
	for i := range 40 {
		key := fmt.Sprintf("key-%d", i)
		mustPut(t, c, key, "v")
		mustGet(t, c, key)
		want[fc.leaderOf([]byte(key))] += 2
	}
	got := kvCounts(fc)
	for _, n := range fc.nodes {
		if got[n.id] != want[n.id] {
			t.Errorf("KV calls to %s = %d; want %d (every call straight to its shard's leader)", n.id, got[n.id], want[n.id])
		}
	}
	if n := statusCalls(fc); n != 1 {
		t.Errorf("Status calls = %d; want 1 (New's, no refresh)", n)
	}
}

func TestLeaderChangeFromHeader(t *testing.T) {
	fc := newFakeCluster(t)
	sh := shard.ID(0) // replicas n1, n2, n3
	// n2 leads, but Status still names n1, so the client starts with n1.
	fc.setLeader(sh, "n2")
	fc.setReportedLeader(sh, "n1")
	c := newTestClient(t, fc)
	key := string(keyOn(t, sh, "hdr"))

	mustPut(t, c, key, "v") // n1 forwards; the header names n2
	if got := c.smap.Load().leader(sh); got != "n2" {
		t.Fatalf("cached leader of shard %d = %q; want %q from the header", sh, got, "n2")
	}
	for range 5 {
		mustGet(t, c, key)
	}
	if got, want := kvCounts(fc), map[string]int{"n1": 1, "n2": 5, "n3": 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("KV calls = %v; want %v", got, want)
	}
	if n := statusCalls(fc); n != 1 {
		t.Errorf("Status calls = %d; want 1 (the header alone moves the leader)", n)
	}
}

func TestLeaderChangeFromRefresh(t *testing.T) {
	fc := newFakeCluster(t)
	sh := shard.ID(0)
	c := newTestClient(t, fc)
	key := string(keyOn(t, sh, "refresh"))
	mustPut(t, c, key, "v")

	// n1 loses the leadership to n2 and cannot forward: Unavailable.
	fc.setLeader(sh, "n2")
	fc.node("n1").set(func(n *fakeNode) { n.failKV = codes.Unavailable })
	statusBefore := statusCalls(fc)

	if got := mustGet(t, c, key); string(got.Data) != "v" {
		t.Errorf("Get(%q) = %q; want %q", key, got.Data, "v")
	}
	if got := c.smap.Load().leader(sh); got != "n2" {
		t.Errorf("cached leader of shard %d = %q; want %q", sh, got, "n2")
	}
	if statusCalls(fc) == statusBefore {
		t.Errorf("no Status call after Unavailable; want a map refresh")
	}
	for range 3 {
		mustGet(t, c, key)
	}
	if got, want := kvCounts(fc), map[string]int{"n1": 2, "n2": 4, "n3": 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("KV calls = %v; want %v (one failure at n1, then n2 only)", got, want)
	}
}

func TestBreakerSkipsFailingNode(t *testing.T) {
	const threshold = 3
	fc := newFakeCluster(t)
	sh := shard.ID(0) // led by n1
	c := newTestClient(t, fc, WithCircuitBreaker(threshold, time.Hour))
	key := string(keyOn(t, sh, "breaker"))
	mustPut(t, c, key, "v")

	n1 := fc.node("n1")
	n1.set(func(n *fakeNode) { n.fail = codes.Unavailable })
	callsTo := func() int { kv, st := n1.counts(); return kv + st }
	before := callsTo()
	for range 10 {
		mustGet(t, c, key)
	}
	if got := callsTo() - before; got != threshold {
		t.Errorf("calls to the failing node = %d; want %d, then none", got, threshold)
	}
	if c.breakers.allow(n1.addr) {
		t.Errorf("breaker of %s is closed; want open", n1.addr)
	}
	settled := callsTo()
	for range 20 {
		mustGet(t, c, key)
	}
	if got := callsTo(); got != settled {
		t.Errorf("calls to the failing node went from %d to %d while its breaker is open", settled, got)
	}
}

func TestNodeDown(t *testing.T) {
	fc := newFakeCluster(t)
	sh := shard.ID(0) // led by n1
	c := newTestClient(t, fc)
	key := string(keyOn(t, sh, "down"))
	mustPut(t, c, key, "v1")

	n1 := fc.node("n1")
	n1.stop() // connection refused from now on
	for i := range 2 * DefaultBreakerFailures {
		val := fmt.Sprintf("v%d", i+2)
		mustPut(t, c, key, val)
		if got := mustGet(t, c, key); string(got.Data) != val {
			t.Fatalf("Get(%q) = %q; want %q", key, got.Data, val)
		}
	}
	if c.breakers.allow(n1.addr) {
		t.Errorf("breaker of the stopped node %s is closed; want open", n1.addr)
	}
}

func TestBreakerCooldown(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBreakers(2, time.Second)
	b.now = func() time.Time { return now }
	const a = "node:1"
	step := func(what string, d time.Duration, wantAllow bool) {
		t.Helper()
		now = now.Add(d)
		if got := b.allow(a); got != wantAllow {
			t.Fatalf("%s: allow = %v; want %v", what, got, wantAllow)
		}
	}
	fail := func(wantOpened bool, wantCooldown time.Duration) {
		t.Helper()
		opened, cd := b.failure(a)
		if opened != wantOpened || cd != wantCooldown {
			t.Fatalf("failure() = %v, %v; want %v, %v", opened, cd, wantOpened, wantCooldown)
		}
	}

	fail(false, 0)
	step("after 1 failure", 0, true)
	fail(true, time.Second)
	step("just opened", 0, false)
	step("cooldown nearly over", 999*time.Millisecond, false)
	step("cooldown over", time.Millisecond, true)
	fail(true, 2*time.Second) // half-open: one failure reopens, doubled
	step("reopened", time.Second, false)
	step("doubled cooldown over", time.Second, true)
	b.success(a)
	fail(false, 0)          // success reset the count...
	fail(true, time.Second) // ...and the cooldown

	for range 10 {
		now = now.Add(time.Hour)
		b.failure(a)
	}
	now = now.Add(time.Hour)
	fail(true, MaxBreakerCooldown)
}

func TestWriteRetryReusesRequestID(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(ctx context.Context) error // fails the first response
	}{
		{"response lost", func(ctx context.Context) error {
			<-ctx.Done() // until the attempt times out at the client
			return ctx.Err()
		}},
		{"unavailable after apply", func(context.Context) error {
			return status.Error(codes.Unavailable, "forward failed")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeCluster(t)
			c := newTestClient(t, fc, WithAttemptTimeout(200*time.Millisecond))
			key := keyOn(t, 0, "retry")
			var once sync.Once
			fc.node(fc.leaderOf(key)).set(func(n *fakeNode) {
				n.after = func(ctx context.Context, _ string, _ []byte) error {
					err := error(nil)
					once.Do(func() { err = tc.lose(ctx) })
					return err
				}
			})

			version, err := c.Put(testCtx(t), key, []byte("v"))
			if err != nil {
				t.Fatalf("Put(%q) = %v", key, err)
			}
			ids := fc.writeIDs()
			if len(ids) != 2 {
				t.Fatalf("writes that reached the cluster = %d; want 2 (first and retry)", len(ids))
			}
			if !bytes.Equal(ids[0].GetClientId(), ids[1].GetClientId()) || ids[0].GetSeq() != ids[1].GetSeq() ||
				ids[0].GetAckedBelow() != ids[1].GetAckedBelow() {
				t.Errorf("retry's RequestID = %v; want the first's, %v", ids[1], ids[0])
			}
			if len(ids[0].GetClientId()) != 16 {
				t.Errorf("client ID = %x; want 16 bytes", ids[0].GetClientId())
			}
			if n := fc.applied(); n != 1 {
				t.Errorf("writes applied = %d; want 1", n)
			}
			if s := c.Stats(); s.Calls != 1 || s.Retries != 1 || s.OverloadRetries != 0 || s.Failed != 0 || s.MapRefreshes != 1 {
				t.Errorf("Stats = %+v; want 1 call, 1 retry (not for load), a map refresh, none failed", s)
			}
			if got := mustGet(t, c, string(key)); got.Version != version {
				t.Errorf("Get(%q).Version = %d; want %d, the Put's", key, got.Version, version)
			}
		})
	}
}

func TestAckedBelowAdvances(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc, WithAttemptTimeout(waitLimit))
	slow := keyOn(t, 0, "slow")

	arrived := make(chan struct{})
	release := make(chan struct{})
	fc.node(fc.leaderOf(slow)).set(func(n *fakeNode) {
		n.before = func(ctx context.Context, method string, key []byte) error {
			if method != "Put" || !bytes.Equal(key, slow) {
				return nil
			}
			close(arrived)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})

	mustPut(t, c, "first", "v") // seq 1
	slowDone := make(chan error, 1)
	go func() { // seq 2, held at the node
		_, err := c.Put(testCtx(t), slow, []byte("v"))
		slowDone <- err
	}()
	select {
	case <-arrived:
	case <-time.After(waitLimit):
		t.Fatal("the slow Put never reached its node")
	}
	mustPut(t, c, "third", "v") // seq 3, while 2 is in flight
	close(release)
	select {
	case err := <-slowDone:
		if err != nil {
			t.Fatalf("slow Put = %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the slow Put did not return")
	}
	mustPut(t, c, "fourth", "v") // seq 4, nothing in flight

	ids := fc.writeIDs()
	slices.SortFunc(ids, func(a, b *ringkvv1.RequestID) int { return cmp.Compare(a.GetSeq(), b.GetSeq()) })
	var got []string
	for _, id := range ids {
		got = append(got, fmt.Sprintf("seq=%d acked_below=%d", id.GetSeq(), id.GetAckedBelow()))
	}
	// Each write's acked_below is the lowest seq still in flight when it
	// began.
	want := []string{"seq=1 acked_below=1", "seq=2 acked_below=2", "seq=3 acked_below=2", "seq=4 acked_below=4"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("writes =\n%v\nwant\n%v", got, want)
	}
}

func TestInvalidArgumentNotRetried(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)
	key := bytes.Repeat([]byte("k"), fakeMaxKey+1)

	_, err := c.Put(testCtx(t), key, []byte("v"))
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Put(long key) = %v; want ErrInvalidArgument", err)
	}
	var se *ServerError
	if !errors.As(err, &se) {
		t.Fatalf("Put(long key) = %T; want a *ServerError", err)
	}
	if want := fmt.Sprintf("key is %d bytes; the limit is %d", fakeMaxKey+1, fakeMaxKey); se.Message != want {
		t.Errorf("ServerError.Message = %q; want the node's %q", se.Message, want)
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("status.Code(err) = %v; want InvalidArgument", status.Code(err))
	}
	if n := kvCounts(fc); n["n1"]+n["n2"]+n["n3"] != 1 {
		t.Errorf("KV calls = %v; want 1 in all", n)
	}
	if s := c.Stats(); s.Calls != 1 || s.Retries != 0 || s.Failed != 0 {
		t.Errorf("Stats = %+v; want 1 call, no retry, not failed (a refusal of the request is an answer)", s)
	}
	if errors.Is(err, ErrNotFound) {
		t.Errorf("errors.Is(%v, ErrNotFound) = true", err)
	}
}

func TestNotFound(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)
	_, err := c.Get(testCtx(t), []byte("missing"))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Get(missing) = %v; want ErrNotFound, saying \"not found\"", err)
	}
	if n := kvCounts(fc); n["n1"]+n["n2"]+n["n3"] != 1 {
		t.Errorf("KV calls = %v; want 1 in all", n)
	}
}

func TestDeadlineHonoured(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    func(n *fakeNode)
		ctx      func() (context.Context, context.CancelFunc)
		opts     []Option
		wantCode codes.Code
	}{
		{
			name:  "every node unavailable",
			fault: func(n *fakeNode) { n.failKV = codes.Unavailable },
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			wantCode: codes.Unavailable,
		},
		{
			name: "every node hangs",
			fault: func(n *fakeNode) {
				n.before = func(ctx context.Context, method string, _ []byte) error {
					if method == "Status" {
						return nil
					}
					<-ctx.Done()
					return ctx.Err()
				}
			},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			opts: []Option{WithAttemptTimeout(time.Hour)},
			// The only attempt ends with the caller's deadline.
			wantCode: codes.DeadlineExceeded,
		},
		{
			name:     "default timeout",
			fault:    func(n *fakeNode) { n.failKV = codes.Unavailable },
			ctx:      func() (context.Context, context.CancelFunc) { return context.Background(), func() {} },
			opts:     []Option{WithDefaultTimeout(300 * time.Millisecond)},
			wantCode: codes.Unavailable,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeCluster(t)
			c := newTestClient(t, fc, tc.opts...)
			for _, n := range fc.nodes {
				n.set(tc.fault)
			}
			ctx, cancel := tc.ctx()
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := c.Get(ctx, []byte("k"))
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Get = %v; want it to wrap context.DeadlineExceeded", err)
				}
				if got := status.Code(err); got != tc.wantCode {
					t.Errorf("status.Code(Get error) = %v; want %v, the last attempt's (error: %v)", got, tc.wantCode, err)
				}
			case <-time.After(waitLimit):
				t.Fatal("Get did not return after its deadline")
			}
		})
	}
}

func TestCloseStopsEverything(t *testing.T) {
	fc := newFakeCluster(t)
	// Warm up gRPC's process-wide state before counting goroutines.
	warm := newTestClient(t, fc)
	mustPut(t, warm, "warm", "v")
	if err := warm.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	base := runtime.NumGoroutine()

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := New(ctx, fc.addrs())
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	if _, err := c.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put = %v", err)
	}
	// Every KV call fails and every Status hangs, so the Get below waits
	// for a map refresh that will not end on its own.
	refreshing := make(chan struct{})
	var once sync.Once
	for _, n := range fc.nodes {
		n.set(func(n *fakeNode) {
			n.failKV = codes.Unavailable
			n.before = func(ctx context.Context, method string, _ []byte) error {
				if method == "Status" {
					once.Do(func() { close(refreshing) })
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}
		})
	}
	getDone := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), []byte("k"))
		getDone <- err
	}()
	select {
	case <-refreshing:
	case <-time.After(waitLimit):
		t.Fatal("no map refresh started")
	}

	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close() = %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}
	select {
	case err := <-getDone:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Get in flight at Close = %v; want ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Get in flight at Close did not return")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
	if _, err := c.Get(ctx, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v; want ErrClosed", err)
	}

	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines = %d after Close; want <= %d as before New\n%s", runtime.NumGoroutine(), base, buf)
		}
		time.Sleep(10 * time.Millisecond) // poll
	}
}

func TestNew(t *testing.T) {
	fc := newFakeCluster(t)
	ctx := testCtx(t)

	if _, err := New(ctx, nil); !errors.Is(err, ErrNoEndpoints) {
		t.Errorf("New(no endpoints) = %v; want ErrNoEndpoints", err)
	}
	if _, err := New(ctx, fc.addrs(), WithBackoff(time.Second, time.Millisecond)); err == nil {
		t.Errorf("New(backoff base > max) = nil error")
	}

	down := fc.nodes[0].addr
	fc.nodes[0].stop()
	if _, err := New(ctx, []string{down}); err == nil || !strings.Contains(err.Error(), down) ||
		!strings.Contains(err.Error(), "no endpoint answered") {
		t.Errorf("New(%q, a stopped node) = %v; want an error that names it", down, err)
	}

	// A dead first endpoint is skipped.
	c, err := New(ctx, []string{down, fc.nodes[1].addr})
	if err != nil {
		t.Fatalf("New(dead, live) = %v", err)
	}
	defer c.Close()
	if got := len(c.smap.Load().addrs); got != 3 {
		t.Errorf("members learned = %d; want 3", got)
	}
}

func TestStatus(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)
	fc.setLeader(3, "n3")

	st, err := c.Status(testCtx(t))
	if err != nil {
		t.Fatalf("Status = %v", err)
	}
	if st.Epoch != 1 || st.ShardCount != fakeShards || st.ReplicationFactor != 3 || st.NodeID == "" {
		t.Errorf("Status = %+v; want epoch 1, %d shards, RF 3, a node ID", st, fakeShards)
	}
	if len(st.Members) != 3 || st.Members[0] != (Member{ID: "n1", Address: fc.nodes[0].addr, State: "active"}) {
		t.Errorf("Members = %+v; want n1..n3, n1 first", st.Members)
	}
	if len(st.Shards) != fakeShards || st.Shards[3].Leader != "n3" {
		t.Errorf("Shards = %+v; want %d, shard 3 led by n3", st.Shards, fakeShards)
	}
	if got := c.smap.Load().leader(3); got != "n3" {
		t.Errorf("cached leader of shard 3 after Status = %q; want n3", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)
	ctx := testCtx(t)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte(fmt.Sprintf("g%d", g))
			for i := range 50 {
				val := []byte(fmt.Sprint(i))
				if _, err := c.Put(ctx, key, val); err != nil {
					errs <- fmt.Errorf("Put(%q) = %v", key, err)
					return
				}
				got, err := c.Get(ctx, key)
				if err != nil || !bytes.Equal(got.Data, val) {
					errs <- fmt.Errorf("Get(%q) = %q, %v; want %q", key, got.Data, err, val)
					return
				}
			}
		}()
	}
	// Move leaders around while the calls run.
	for i := range 20 {
		fc.setLeader(shard.ID(i%fakeShards), fc.nodes[i%3].id)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// And every write got its own seq.
	seen := make(map[uint64]bool)
	for _, id := range fc.writeIDs() {
		if seen[id.GetSeq()] {
			t.Errorf("seq %d sent by two writes", id.GetSeq())
		}
		seen[id.GetSeq()] = true
	}
}
