package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/loadgen"
)

// system is one store under test: a name and a pool of connections, of
// which a run with n connections uses the first n.
type system struct {
	name   string
	stores []loadgen.Store
	close  func()
}

// errNotFound is a read of a key that does not exist: the reads of the
// comparison only read prepopulated keys, so it is an error like any other.
var errNotFound = errors.New("key not found")

// ringkvStore drives ringkv through its Go client.
type ringkvStore struct{ c *client.Client }

func (s ringkvStore) Get(ctx context.Context, key []byte) error {
	_, err := s.c.Get(ctx, key)
	return err
}

func (s ringkvStore) Put(ctx context.Context, key, value []byte) error {
	_, err := s.c.Put(ctx, key, value)
	return err
}

// etcdStore drives etcd through clientv3. Its Get is etcd's default read,
// which is linearizable (clientv3.WithSerializable is not used).
type etcdStore struct{ c *clientv3.Client }

func (s etcdStore) Get(ctx context.Context, key []byte) error {
	resp, err := s.c.Get(ctx, string(key))
	if err != nil {
		return err
	}
	if resp.Count == 0 {
		return fmt.Errorf("get %q: %w", key, errNotFound)
	}
	return nil
}

func (s etcdStore) Put(ctx context.Context, key, value []byte) error {
	_, err := s.c.Put(ctx, string(key), string(value))
	return err
}

// openRingkv opens n ringkv clients.
func openRingkv(ctx context.Context, endpoints []string, n int) (*system, error) {
	sys := &system{name: "ringkv"}
	var clients []*client.Client
	sys.close = func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}
	for range n {
		c, err := newRingkvClient(ctx, endpoints)
		if err != nil {
			sys.close()
			return nil, err
		}
		clients = append(clients, c)
		sys.stores = append(sys.stores, ringkvStore{c})
	}
	return sys, nil
}

// newRingkvClient connects to ringkv, retrying while the cluster is still
// starting (no node has loaded its metadata yet) until ctx ends.
func newRingkvClient(ctx context.Context, endpoints []string) (*client.Client, error) {
	for {
		c, err := client.New(ctx, endpoints)
		if err == nil || ctx.Err() != nil {
			return c, err
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// openEtcd opens n etcd clients, each with its own gRPC connection, which
// balances requests over every endpoint as etcd's own benchmark tool does.
func openEtcd(ctx context.Context, endpoints []string, n int) (*system, error) {
	sys := &system{name: "etcd"}
	var clients []*clientv3.Client
	sys.close = func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}
	for range n {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   endpoints,
			DialTimeout: 10 * time.Second,
			Context:     context.WithoutCancel(ctx),
			Logger:      zap.NewNop(),
		})
		if err != nil {
			sys.close()
			return nil, err
		}
		clients = append(clients, c)
		sys.stores = append(sys.stores, etcdStore{c})
	}
	return sys, nil
}

// waitWritable retries a write to s until one succeeds or ctx ends.
func waitWritable(ctx context.Context, s loadgen.Store) error {
	var last error
	for {
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = s.Put(octx, []byte("bench-ready"), []byte("1"))
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitBalanced waits until every shard of the ringkv cluster has a leader
// and leaderships are spread evenly (no node leads more than two shards
// more than another), as kvnode's leadership balancing brings about a few
// seconds after start. It gives up quietly when ctx ends.
func waitBalanced(ctx context.Context, endpoints []string, logf func(string, ...any)) {
	c, err := newRingkvClient(ctx, endpoints)
	if err != nil {
		logf("ringkv: cannot check leadership balance: %v", err)
		return
	}
	defer c.Close()
	last := ""
	for {
		st, err := c.Status(ctx)
		if err == nil {
			leads := map[string]int{}
			leaderless := 0
			for _, m := range st.Members {
				leads[m.ID] = 0
			}
			for _, sh := range st.Shards {
				if sh.Leader == "" {
					leaderless++
				} else {
					leads[sh.Leader]++
				}
			}
			lo, hi := len(st.Shards), 0
			for _, n := range leads {
				lo, hi = min(lo, n), max(hi, n)
			}
			last = fmt.Sprintf("leaders per node %v, %d shards without a leader", leads, leaderless)
			if leaderless == 0 && hi-lo <= 2 {
				logf("ringkv: %s", last)
				return
			}
		}
		select {
		case <-ctx.Done():
			logf("ringkv: leadership not balanced yet, going on: %s", last)
			return
		case <-time.After(time.Second):
		}
	}
}
