package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
	"github.com/ringkv/ringkv/test/jepsen-lite/kvnode"
	"github.com/ringkv/ringkv/test/jepsen-lite/netns"
)

// cluster is the nodes of a run on their hosts: what the nemesis acts on
// (it implements nemesis.Cluster) and what the workloads talk to.
type cluster struct {
	net    *netns.Network
	ids    []string
	procs  map[string]*kvnode.Process
	conns  map[string]*grpc.ClientConn // one per node, shared: a ClientConn multiplexes calls
	shards uint32
}

func newCluster(net *netns.Network, procs []*kvnode.Process, shards int) (*cluster, error) {
	c := &cluster{net: net, procs: map[string]*kvnode.Process{}, conns: map[string]*grpc.ClientConn{}, shards: uint32(shards)}
	for _, p := range procs {
		c.ids = append(c.ids, p.ID())
		c.procs[p.ID()] = p
		cc, err := grpc.NewClient(p.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.closeConns()
			return nil, fmt.Errorf("runner: connection to %s: %w", p.ID(), err)
		}
		c.conns[p.ID()] = cc
	}
	return c, nil
}

func (c *cluster) closeConns() {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

// addrs returns the nodes' addresses, in node order.
func (c *cluster) addrs() []string {
	out := make([]string, len(c.ids))
	for i, id := range c.ids {
		out[i] = c.procs[id].Addr()
	}
	return out
}

// Nodes implements nemesis.Cluster.
func (c *cluster) Nodes() []string { return append([]string(nil), c.ids...) }

// Partition implements nemesis.Cluster.
func (c *cluster) Partition(ctx context.Context, groups [][]string) error {
	return c.net.Partition(ctx, groups)
}

// HealNetwork implements nemesis.Cluster.
func (c *cluster) HealNetwork(ctx context.Context) error { return c.net.Heal(ctx) }

func (c *cluster) proc(id string) (*kvnode.Process, error) {
	p, ok := c.procs[id]
	if !ok {
		return nil, fmt.Errorf("runner: no node %q", id)
	}
	return p, nil
}

// Kill implements nemesis.Cluster.
func (c *cluster) Kill(ctx context.Context, id string) error {
	p, err := c.proc(id)
	if err != nil {
		return err
	}
	return p.Kill(ctx)
}

// Restart implements nemesis.Cluster.
func (c *cluster) Restart(_ context.Context, id string) error {
	p, err := c.proc(id)
	if err != nil {
		return err
	}
	return p.Start()
}

// Pause implements nemesis.Cluster.
func (c *cluster) Pause(_ context.Context, id string) error {
	p, err := c.proc(id)
	if err != nil {
		return err
	}
	return p.Pause()
}

// Resume implements nemesis.Cluster.
func (c *cluster) Resume(_ context.Context, id string) error {
	p, err := c.proc(id)
	if err != nil {
		return err
	}
	return p.Resume()
}

// healAll undoes every fault: lifts the partitions, continues paused
// nodes, starts dead ones.
func (c *cluster) healAll(ctx context.Context) error {
	errs := []error{c.net.Heal(ctx)}
	for _, id := range c.ids {
		p := c.procs[id]
		switch {
		case p.Paused():
			errs = append(errs, p.Resume())
		case !p.Running():
			errs = append(errs, p.Start())
		}
	}
	return errors.Join(errs...)
}

// statuses asks every node for its cluster status, at once, each bounded
// by a second. Nodes that do not answer are left out.
func (c *cluster) statuses(ctx context.Context) map[string]*ringkvv1.StatusResponse {
	var mu sync.Mutex
	out := map[string]*ringkvv1.StatusResponse{}
	var wg sync.WaitGroup
	for _, id := range c.ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			resp, err := ringkvv1.NewClusterClient(c.conns[id]).Status(sctx, &ringkvv1.StatusRequest{})
			if err == nil {
				mu.Lock()
				out[id] = resp
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// leaders returns each shard's leader as the nodes report it: the one of
// the highest term any node knows. A shard nobody knows a leader of is
// missing.
func leaders(sts map[string]*ringkvv1.StatusResponse) map[uint32]string {
	type lead struct {
		node string
		term uint64
	}
	best := map[uint32]lead{}
	for _, st := range sts {
		for _, sh := range st.GetShards() {
			if sh.GetLeader() == "" {
				continue
			}
			if b, ok := best[sh.GetId()]; !ok || sh.GetLeaderTerm() > b.term {
				best[sh.GetId()] = lead{sh.GetLeader(), sh.GetLeaderTerm()}
			}
		}
	}
	out := make(map[uint32]string, len(best))
	for id, b := range best {
		out[id] = b.node
	}
	return out
}

// LeaderOf implements nemesis.Cluster: it asks every node and trusts the
// leader of the highest term, retrying for up to 3 s while no node knows
// one.
func (c *cluster) LeaderOf(ctx context.Context, key string) (string, uint32, error) {
	sh := uint32(shard.Of([]byte(key), c.shards))
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for {
		if l, ok := leaders(c.statuses(ctx))[sh]; ok {
			return l, sh, nil
		}
		select {
		case <-ctx.Done():
			return "", sh, fmt.Errorf("no node knows a leader of shard %d: %w", sh, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitReady waits until every node answers and some node knows a leader of
// every shard, or ctx ends.
func (c *cluster) waitReady(ctx context.Context) error {
	for {
		sts := c.statuses(ctx)
		n := len(leaders(sts))
		if len(sts) == len(c.ids) && n == int(c.shards) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready: %d of %d nodes answer, %d of %d shards have a leader: %w",
				len(sts), len(c.ids), n, c.shards, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
