package client

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// Client is a connection to a ringkv cluster. It is safe for concurrent use.
// Make one with New and release it with Close.
type Client struct {
	cfg      config
	log      *slog.Logger
	seeds    []string // the endpoints given to New, deduplicated
	seq      *sequencer
	conns    *conns
	breakers *breakers
	smap     atomic.Pointer[shardMap] // never nil once New returns
	stats    clientStats

	// life ends when Close is called; it bounds the background work.
	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup // the background goroutines (map refreshes)

	mu struct {
		sync.Mutex
		closed bool
		// refreshing is closed when the map refresh in flight ends; nil
		// when none is. At most one refresh runs at a time.
		refreshing chan struct{}
	}
}

// New returns a Client of the cluster that the endpoints (node gRPC
// addresses, host:port) belong to. It fetches the shard map from the first
// endpoint that answers, trying each once, within ctx (or DefaultTimeout,
// see WithDefaultTimeout, when ctx has no deadline), and fails when none
// does. Further nodes are learned from the map; the endpoints stay fallbacks.
//
// Connections are opened on first use, one per node, and reused.
func New(ctx context.Context, endpoints []string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var seeds []string
	for _, e := range endpoints {
		if e = strings.TrimSpace(e); e != "" && !slices.Contains(seeds, e) {
			seeds = append(seeds, e)
		}
	}
	if len(seeds) == 0 {
		return nil, ErrNoEndpoints
	}
	clientID := make([]byte, 16)
	if _, err := rand.Read(clientID); err != nil {
		return nil, fmt.Errorf("ringkv: client ID: %w", err)
	}

	c := &Client{
		cfg:      cfg,
		log:      cfg.logger,
		seeds:    seeds,
		seq:      newSequencer(clientID),
		conns:    newConns(append(traceInterceptors(), cfg.dialOptions...)),
		breakers: newBreakers(cfg.breakerFailures, cfg.breakerCooldown),
	}
	c.life, c.stop = context.WithCancel(context.Background())

	ctx, cancel := c.withDefaultTimeout(ctx)
	defer cancel()
	if _, err := c.fetchMap(ctx, seeds); err != nil {
		_ = c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ringkv: fetch shard map from %s: %w: %w", strings.Join(seeds, ","), ctx.Err(), err)
		}
		return nil, fmt.Errorf("ringkv: fetch shard map: no endpoint answered: %w", err)
	}
	return c, nil
}

// Close closes the client's connections and stops its background work,
// waiting for it to end. Calls in flight fail, and later calls return
// ErrClosed. Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.closed = true
	c.mu.Unlock()

	c.stop()
	c.wg.Wait()
	return c.conns.close()
}

// withDefaultTimeout bounds ctx by the default timeout if it has no deadline.
func (c *Client) withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.defaultTimeout)
}

// refresh starts a refresh of the shard map unless one is in flight, and
// returns a channel closed when the refresh in flight ends. The refresh runs
// in a goroutine owned by the Client, so it outlives the call that asked for
// it (other calls may be waiting for it too) but not Close.
func (c *Client) refresh() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		done := make(chan struct{})
		close(done)
		return done
	}
	if c.mu.refreshing != nil {
		return c.mu.refreshing
	}
	done := make(chan struct{})
	c.mu.refreshing = done
	c.stats.mapRefreshes.Add(1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if _, err := c.fetchMap(c.life, c.refreshOrder()); err != nil && c.life.Err() == nil {
			c.log.Warn("ringkv: shard map refresh failed", "err", err)
		}
		c.mu.Lock()
		c.mu.refreshing = nil
		c.mu.Unlock()
		close(done)
	}()
	return done
}

// refreshOrder returns every known address, those whose breaker is closed
// first.
func (c *Client) refreshOrder() []string {
	all := c.smap.Load().all()
	open := make([]string, 0, len(all))
	closed := all[:0:0]
	for _, a := range all {
		if c.breakers.allow(a) {
			closed = append(closed, a)
		} else {
			open = append(open, a)
		}
	}
	return append(closed, open...)
}

// fetchMap asks addrs for the cluster status, one at a time, until one
// answers, and installs its shard map. It returns that node's answer, or
// every node's error.
func (c *Client) fetchMap(ctx context.Context, addrs []string) (*ringkvv1.StatusResponse, error) {
	var errs joinedErrors
	for _, addr := range addrs {
		if ctx.Err() != nil {
			break
		}
		var resp *ringkvv1.StatusResponse
		err := c.attempt(ctx, addr, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewClusterClient(cc).Status(ctx, &ringkvv1.StatusRequest{}, opts...)
			return err
		})
		if err == nil {
			if err = c.install(resp); err == nil {
				return resp, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	if len(errs) == 0 {
		return nil, ctx.Err()
	}
	return nil, errs
}

// install makes the map in resp the client's, unless the client's is of a
// later epoch.
func (c *Client) install(resp *ringkvv1.StatusResponse) error {
	m, err := newShardMap(resp, c.seeds)
	if err != nil {
		return fmt.Errorf("ringkv: node %q sent a bad shard map: %w", resp.GetNodeId(), err)
	}
	for {
		old := c.smap.Load()
		if old != nil && m.epoch < old.epoch {
			return nil
		}
		if c.smap.CompareAndSwap(old, m) {
			if old == nil || old.epoch != m.epoch {
				c.log.Debug("ringkv: shard map", "epoch", m.epoch, "shards", m.count, "from", resp.GetNodeId())
			}
			return nil
		}
	}
}
