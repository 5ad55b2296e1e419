package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ringkv/ringkv/client"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
	"github.com/ringkv/ringkv/test/jepsen-lite/history"
	"github.com/ringkv/ringkv/test/jepsen-lite/kvnode"
	"github.com/ringkv/ringkv/test/jepsen-lite/netns"
	"github.com/ringkv/ringkv/test/jepsen-lite/report"
)

// cluster is the nodes of a run on their hosts: what the nemesis acts on
// (it implements nemesis.Membership) and what the workloads talk to. Nodes
// join (Join) and leave (Remove, then observe stops them) while it runs;
// it keeps every node it ever started, so that teardown stops them all.
//
// Its methods are safe for concurrent use: the nemesis, the membership
// watcher and the workloads' direct reads call it at once.
type cluster struct {
	net    network
	shards uint32
	spec   nodeSpec
	tl     *history.Timeline
	log    *slog.Logger

	// netMu serializes the changes to the network: partitions, heals,
	// hosts added and removed (a host must not go while a partition
	// writes its rules).
	netMu sync.Mutex

	mu struct {
		sync.Mutex
		nodes map[string]*node
		order []string // node IDs in the order started
		made  int      // nodes ever made: the next is n<made+1>
		admin *client.Client
		// last is the member list of the highest epoch seen.
		last   *ringkvv1.StatusResponse
		counts report.Membership
	}
}

// network is what the cluster needs of the hosts' network (a
// *netns.Network).
type network interface {
	Partition(ctx context.Context, groups [][]string) error
	Heal(ctx context.Context) error
	AddHost(ctx context.Context, id string) (netns.Host, error)
	RemoveHost(ctx context.Context, id string) error
}

// nodeSpec is how the run starts its nodes.
type nodeSpec struct {
	binary string
	dir    string   // the run folder
	port   int      // every node listens on its host's address and this port
	args   []string // flags every node gets: timers, --dead-after, ...
}

// phase is where a node is, as the harness sees it.
type phase int

const (
	phaseStarting phase = iota // started with --join, not in the member list yet
	phaseMember                // in the member list
	phaseLeaving               // its removal was asked for, or it was seen draining
	phaseLeft                  // it left the member list; being stopped
	phaseGone                  // stopped, its host removed
)

// node is one node of the run. proc, conn, host and joined are set
// before the node is shared and never change; phase and state are guarded
// by cluster.mu.
type node struct {
	proc   *kvnode.Process
	conn   *grpc.ClientConn // shared by the harness's calls and direct reads
	host   netns.Host
	joined bool // started with --join (by the churn nemesis)
	phase  phase
	// state is the member state the cluster last reported ("" before it
	// was listed, stateLeft after it left).
	state string
}

// stateLeft is a node's state once it left the member list.
const stateLeft = "left"

func newCluster(net network, spec nodeSpec, shards int, tl *history.Timeline, log *slog.Logger) *cluster {
	c := &cluster{net: net, shards: uint32(shards), spec: spec, tl: tl, log: log}
	c.mu.nodes = map[string]*node{}
	return c
}

// start starts a node on host h with the flags args (and the spec's). An
// initial node is a member in state active from the start; a joiner is
// starting until the member list holds it.
func (c *cluster) start(h netns.Host, args []string, joiner bool) error {
	addr := fmt.Sprintf("%s:%d", h.IP, c.spec.port)
	p := kvnode.New(kvnode.Spec{
		Binary:  c.spec.binary,
		ID:      h.ID,
		Netns:   h.Netns,
		Addr:    addr,
		DataDir: filepath.Join(c.spec.dir, report.DataDir, h.ID),
		LogPath: filepath.Join(c.spec.dir, report.NodesDir, h.ID+".log"),
		Args:    append(append([]string(nil), args...), c.spec.args...),
	})
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("runner: connection to %s: %w", h.ID, err)
	}
	n := &node{proc: p, conn: cc, host: h, joined: joiner, phase: phaseMember, state: "active"}
	if joiner {
		n.phase, n.state = phaseStarting, ""
	}
	c.mu.Lock()
	c.mu.nodes[h.ID] = n
	c.mu.order = append(c.mu.order, h.ID)
	c.mu.made = max(c.mu.made, len(c.mu.order))
	c.mu.Unlock()
	if err := p.Start(); err != nil {
		return err
	}
	c.log.Info("node started", "id", h.ID, "addr", addr, "netns", h.Netns, "pid", p.PID(), "join", joiner)
	return nil
}

// connectAdmin makes the client the cluster's administrative calls go
// through (RemoveNode). Call it once the cluster is ready.
func (c *cluster) connectAdmin(ctx context.Context) error {
	a, err := client.New(ctx, c.addrs(), client.WithAttemptTimeout(time.Second), client.WithDefaultTimeout(10*time.Second))
	if err != nil {
		return fmt.Errorf("runner: admin client: %w", err)
	}
	c.mu.Lock()
	c.mu.admin = a
	c.mu.Unlock()
	return nil
}

// stopAll stops every node ever started, closes the connections and the
// admin client.
func (c *cluster) stopAll(ctx context.Context) {
	c.mu.Lock()
	nodes := make([]*node, 0, len(c.mu.nodes))
	for _, n := range c.mu.nodes {
		nodes = append(nodes, n)
	}
	admin := c.mu.admin
	c.mu.Unlock()
	if admin != nil {
		_ = admin.Close()
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		_ = n.conn.Close()
		wg.Go(func() {
			if err := n.proc.Stop(ctx, stopGrace); err != nil {
				c.log.Warn("stopping node", "id", n.proc.ID(), "err", err)
			}
		})
	}
	wg.Wait()
}

// dumpStacks makes every present node that runs write its goroutines'
// stacks to its log and exit (SIGQUIT): the state of a cluster that got
// stuck, for the run folder.
func (c *cluster) dumpStacks(ctx context.Context) {
	var wg sync.WaitGroup
	for _, n := range c.present() {
		if !n.proc.Running() {
			continue
		}
		wg.Go(func() {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := n.proc.Quit(qctx); err != nil {
				c.log.Warn("dumping a node's stacks", "id", n.proc.ID(), "err", err)
			}
		})
	}
	wg.Wait()
}

// present returns the nodes that run or may run: every one but those that
// left the member list, in the order started.
func (c *cluster) present() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*node
	for _, id := range c.mu.order {
		if n := c.mu.nodes[id]; n.phase < phaseLeft {
			out = append(out, n)
		}
	}
	return out
}

// addrs returns the addresses of the present nodes.
func (c *cluster) addrs() []string {
	var out []string
	for _, n := range c.present() {
		out = append(out, n.proc.Addr())
	}
	return out
}

// Nodes implements nemesis.Cluster: the nodes present, joiners not yet
// listed and draining members included.
func (c *cluster) Nodes() []string {
	var out []string
	for _, n := range c.present() {
		out = append(out, n.proc.ID())
	}
	return out
}

// Partition implements nemesis.Cluster.
func (c *cluster) Partition(ctx context.Context, groups [][]string) error {
	c.netMu.Lock()
	defer c.netMu.Unlock()
	return c.net.Partition(ctx, groups)
}

// HealNetwork implements nemesis.Cluster.
func (c *cluster) HealNetwork(ctx context.Context) error {
	c.netMu.Lock()
	defer c.netMu.Unlock()
	return c.net.Heal(ctx)
}

// errLeft is returned for a fault aimed at a node that has left.
var errLeft = errors.New("runner: the node has left the cluster")

// node returns node id, and whether it has left the member list (a fault
// must not touch it, and a heal has nothing to undo on it).
func (c *cluster) node(id string) (*node, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.mu.nodes[id]
	if !ok {
		return nil, false, fmt.Errorf("runner: no node %q", id)
	}
	return n, n.phase >= phaseLeft, nil
}

// Kill implements nemesis.Cluster.
func (c *cluster) Kill(ctx context.Context, id string) error {
	n, left, err := c.node(id)
	if err != nil {
		return err
	}
	if left {
		return fmt.Errorf("kill %s: %w", id, errLeft)
	}
	return n.proc.Kill(ctx)
}

// Restart implements nemesis.Cluster. A node that has left the member list
// in the meantime stays down: it is being stopped for good.
func (c *cluster) Restart(_ context.Context, id string) error {
	n, left, err := c.node(id)
	if err != nil || left {
		return err
	}
	return n.proc.Start()
}

// Pause implements nemesis.Cluster.
func (c *cluster) Pause(_ context.Context, id string) error {
	n, left, err := c.node(id)
	if err != nil {
		return err
	}
	if left {
		return fmt.Errorf("pause %s: %w", id, errLeft)
	}
	return n.proc.Pause()
}

// Resume implements nemesis.Cluster. A node that has left the member list
// in the meantime is being stopped: nothing to resume.
func (c *cluster) Resume(_ context.Context, id string) error {
	n, left, err := c.node(id)
	if err != nil || left {
		return err
	}
	return n.proc.Resume()
}

// healAll undoes every fault: lifts the partitions, continues paused
// nodes, starts dead ones (not those that left).
func (c *cluster) healAll(ctx context.Context) error {
	errs := []error{c.HealNetwork(ctx)}
	for _, n := range c.present() {
		switch {
		case n.proc.Paused():
			errs = append(errs, n.proc.Resume())
		case !n.proc.Running():
			errs = append(errs, n.proc.Start())
		}
	}
	return errors.Join(errs...)
}

// directTarget returns the node that register worker i reads from directly
// now, and a KV client for it: the i-th (modulo) of the members the
// harness runs, draining ones included, in the order started. "" when
// there is none.
func (c *cluster) directTarget(i int) (string, ringkvv1.KVClient) {
	c.mu.Lock()
	var targets []*node
	for _, id := range c.mu.order {
		if n := c.mu.nodes[id]; n.phase == phaseMember || n.phase == phaseLeaving {
			targets = append(targets, n)
		}
	}
	c.mu.Unlock()
	if len(targets) == 0 {
		return "", nil
	}
	n := targets[i%len(targets)]
	return n.proc.ID(), ringkvv1.NewKVClient(n.conn)
}

// statuses asks every present node for its cluster status, at once, each
// bounded by a second. Nodes that do not answer are left out.
func (c *cluster) statuses(ctx context.Context) map[string]*ringkvv1.StatusResponse {
	var mu sync.Mutex
	out := map[string]*ringkvv1.StatusResponse{}
	var wg sync.WaitGroup
	for _, n := range c.present() {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			resp, err := ringkvv1.NewClusterClient(n.conn).Status(sctx, &ringkvv1.StatusRequest{})
			if err == nil {
				mu.Lock()
				out[n.proc.ID()] = resp
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

// rebalanceStatus asks every present node for its view of the replica
// moves and returns the one of the highest epoch, nil if none answers.
func (c *cluster) rebalanceStatus(ctx context.Context) *ringkvv1.RebalanceStatusResponse {
	var mu sync.Mutex
	var best *ringkvv1.RebalanceStatusResponse
	var wg sync.WaitGroup
	for _, n := range c.present() {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			resp, err := ringkvv1.NewClusterClient(n.conn).RebalanceStatus(sctx, &ringkvv1.RebalanceStatusRequest{})
			if err == nil {
				mu.Lock()
				if best == nil || resp.GetEpoch() > best.GetEpoch() {
					best = resp
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return best
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

// waitReady waits until every present node answers and some node knows a
// leader of every shard, or ctx ends.
func (c *cluster) waitReady(ctx context.Context) error {
	for {
		sts := c.statuses(ctx)
		n, want := len(leaders(sts)), len(c.present())
		if len(sts) == want && n == int(c.shards) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready: %d of %d nodes answer, %d of %d shards have a leader: %w",
				len(sts), want, n, c.shards, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// hostOf describes a node's host for the log: "n6 (rkvj-6 10.77.0.16)".
func hostOf(h netns.Host) string {
	return fmt.Sprintf("%s (%s %s)", h.ID, h.Netns, h.IP)
}

// joinComma joins addresses for --join.
func joinComma(addrs []string) string { return strings.Join(addrs, ",") }
