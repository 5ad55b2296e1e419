package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/client"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
)

func (c *testCluster) client(t *testing.T) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.New(ctx, c.addrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func (c *testCluster) forwarded() uint64 {
	var n uint64
	for _, nd := range c.nodes {
		if nd != nil {
			n += nd.router.Stats().Forwarded
		}
	}
	return n
}

// The client library sends each request straight to its shard's leader: no
// node has to forward anything while leadership is stable.
func TestClientRoutesStraightToLeaders(t *testing.T) {
	// Slow timers: a spurious election on a loaded machine would move a
	// leader and legitimately cost a forward.
	c := startCluster(t, clusterOpts{shards: 16, timing: replication.Timing{
		HeartbeatTimeout:   2 * time.Second,
		ElectionTimeout:    2 * time.Second,
		LeaderLeaseTimeout: time.Second,
		CommitTimeout:      50 * time.Millisecond,
	}})
	cl := c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The node that answered the client's first map request may not have
	// heard from every new leader yet; one pass over all shards lets the
	// client learn them from the ringkv-leader headers.
	pass := func() {
		for k := 0; k < 100; k++ {
			key := []byte(fmt.Sprintf("route-%d", k))
			if _, err := cl.Put(ctx, key, []byte("v")); err != nil {
				t.Fatalf("Put(%s): %v", key, err)
			}
			v, err := cl.Get(ctx, key)
			if err != nil || string(v.Data) != "v" {
				t.Fatalf("Get(%s) = %q, %v; want v", key, v.Data, err)
			}
		}
	}
	pass()
	before := c.forwarded()
	pass()
	if got := c.forwarded() - before; got != 0 {
		t.Errorf("nodes forwarded %d of 200 requests of a client that routes by the shard map; want 0", got)
	}
}

// A client writing and reading while a shard leader dies sees no error:
// the library refreshes its map and retries within the call's deadline.
func TestClientSeesNoErrorWhenLeaderDies(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 4})
	cl := c.client(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 1)
	acked := make(map[string]string)
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			key, val := fmt.Sprintf("w-%d", k%50), fmt.Sprintf("v-%d", k)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			_, err := cl.Put(ctx, []byte(key), []byte(val))
			cancel()
			if err != nil {
				select {
				case errs <- fmt.Errorf("Put(%s): %w", key, err):
				default:
				}
				return
			}
			mu.Lock()
			acked[key] = val
			mu.Unlock()
		}
	}()
	// Let some writes land, then stop the node leading shard 0.
	waitFor(t, 10*time.Second, "writes before the kill", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 20 })
	victim := c.leaderOf(0)
	c.stop(victim)
	waitFor(t, 10*time.Second, "new leader of shard 0", func() bool { return c.leaderOf(0) >= 0 })
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	waitFor(t, 10*time.Second, "writes after the kill", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > n || len(acked) == 50 })
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("writer saw an error after killing n%d: %v", victim+1, err)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for key, val := range acked {
		v, err := cl.Get(ctx, []byte(key))
		if err != nil || string(v.Data) != val {
			t.Fatalf("Get(%s) = %q, %v; want %q", key, v.Data, err, val)
		}
	}
}

// A write retried with the same request ID is applied once, even when the
// retry goes through another node; a new request ID applies again.
func TestWriteRetryWithSameRequestIDAppliesOnce(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := []byte("once")
	id := &ringkvv1.RequestID{ClientId: []byte("client-A"), Seq: 7, AckedBelow: 7}
	var first uint64
	for i := range c.nodes {
		var resp *ringkvv1.PutResponse
		var err error
		for {
			resp, err = c.kv(i).Put(ctx, &ringkvv1.PutRequest{Key: key, Value: []byte(fmt.Sprintf("try-%d", i)), RequestId: id})
			if status.Code(err) != codes.Unavailable {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("Put through n%d: %v", i+1, err)
		}
		if i == 0 {
			first = resp.GetVersion()
		} else if resp.GetVersion() != first {
			t.Fatalf("retry through n%d applied again: version %d; want %d", i+1, resp.GetVersion(), first)
		}
	}
	if got, _ := c.get(1, "once"); got != "try-0" {
		t.Fatalf("value = %q; want the first attempt's try-0", got)
	}
	// The next request ID is a new write.
	id2 := &ringkvv1.RequestID{ClientId: []byte("client-A"), Seq: 8, AckedBelow: 8}
	resp, err := c.kv(0).Put(ctx, &ringkvv1.PutRequest{Key: key, Value: []byte("second"), RequestId: id2})
	if err != nil || resp.GetVersion() <= first {
		t.Fatalf("Put seq 8 = %v, %v; want a new version above %d", resp, err, first)
	}
	// A request below the acknowledged mark is refused, not applied.
	_, err = c.kv(0).Put(ctx, &ringkvv1.PutRequest{Key: key, Value: []byte("stale"), RequestId: &ringkvv1.RequestID{ClientId: []byte("client-A"), Seq: 3}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Put with seq below acked mark: %v; want FailedPrecondition", err)
	}
	if got, _ := c.get(2, "once"); got != "second" {
		t.Fatalf("value = %q; want second", got)
	}
}
