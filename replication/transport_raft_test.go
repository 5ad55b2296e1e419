package replication

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// These tests run real hashicorp/raft groups over Muxes: three nodes in one
// process, each with its own gRPC server on 127.0.0.1.

const transportRaftWait = 10 * time.Second

// transportTestFSM records the commands applied to it, in order.
type transportTestFSM struct {
	mu       sync.Mutex
	applied  []string
	restores int
}

func (f *transportTestFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, string(l.Data))
	return len(f.applied)
}

func (f *transportTestFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return transportTestSnapshot(slices.Clone(f.applied)), nil
}

func (f *transportTestFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var applied []string
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		applied = append(applied, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = applied
	f.restores++
	return nil
}

func (f *transportTestFSM) state() (applied []string, restores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied), f.restores
}

type transportTestSnapshot []string

func (s transportTestSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriter(sink)
	for _, c := range s {
		w.WriteString(c)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (transportTestSnapshot) Release() {}

// transportRaftCluster is a set of nodes, each able to run a Raft member of
// any group.
type transportRaftCluster struct {
	t     *testing.T
	nodes []*transportTestNode
	rafts map[uint64][]*raft.Raft // by group, then node; nil if not running
	fsms  map[uint64][]*transportTestFSM
	// stores are the members' log and stable stores, by group then node.
	stores map[uint64][]*raft.InmemStore
	config func(*raft.Config)
}

func newTransportRaftCluster(t *testing.T, nodes int, muxCfg MuxConfig, config func(*raft.Config)) *transportRaftCluster {
	c := &transportRaftCluster{
		t:      t,
		rafts:  map[uint64][]*raft.Raft{},
		fsms:   map[uint64][]*transportTestFSM{},
		stores: map[uint64][]*raft.InmemStore{},
		config: config,
	}
	for range nodes {
		c.nodes = append(c.nodes, newTransportTestNode(t, muxCfg))
	}
	return c
}

func transportNodeID(i int) raft.ServerID { return raft.ServerID(fmt.Sprintf("n%d", i)) }

// start runs a fresh member of group on node i; it shuts down when the test
// ends.
func (c *transportRaftCluster) start(i int, group uint64) *raft.Raft {
	c.t.Helper()
	return c.startOn(i, group, raft.NewInmemStore())
}

// restart runs the member of group on node i again, on the log and stable
// store of its previous run, with an empty state machine, as a process
// restarted from disk does.
func (c *transportRaftCluster) restart(i int, group uint64) *raft.Raft {
	c.t.Helper()
	return c.startOn(i, group, c.stores[group][i])
}

func (c *transportRaftCluster) startOn(i int, group uint64, store *raft.InmemStore) *raft.Raft {
	c.t.Helper()
	if c.rafts[group] == nil {
		c.rafts[group] = make([]*raft.Raft, len(c.nodes))
		c.fsms[group] = make([]*transportTestFSM, len(c.nodes))
		c.stores[group] = make([]*raft.InmemStore, len(c.nodes))
	}
	conf := raft.DefaultConfig()
	conf.LocalID = transportNodeID(i)
	conf.HeartbeatTimeout = 100 * time.Millisecond
	conf.ElectionTimeout = 100 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.Logger = hclog.NewNullLogger()
	if os.Getenv("RINGKV_TEST_RAFT_LOG") != "" {
		conf.Logger = hclog.New(&hclog.LoggerOptions{
			Name: fmt.Sprintf("g%d/%s", group, conf.LocalID), Level: hclog.Debug, Output: os.Stderr,
		})
	}
	if c.config != nil {
		c.config(conf)
	}
	tr, err := c.nodes[i].mux.Transport(group)
	if err != nil {
		c.t.Fatalf("node %d: Transport(%d): %v", i, group, err)
	}
	c.stores[group][i] = store
	fsm := new(transportTestFSM)
	r, err := raft.NewRaft(conf, fsm, store, store, raft.NewInmemSnapshotStore(), tr)
	if err != nil {
		c.t.Fatalf("node %d: NewRaft(group %d): %v", i, group, err)
	}
	c.t.Cleanup(func() { r.Shutdown().Error() })
	c.rafts[group][i] = r
	c.fsms[group][i] = fsm
	return r
}

// bootstrap bootstraps group on the given running members.
func (c *transportRaftCluster) bootstrap(group uint64, members ...int) {
	c.t.Helper()
	var conf raft.Configuration
	for _, i := range members {
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter, ID: transportNodeID(i), Address: raft.ServerAddress(c.nodes[i].addr),
		})
	}
	for _, i := range members {
		if err := c.rafts[group][i].BootstrapCluster(conf).Error(); err != nil {
			c.t.Fatalf("node %d: BootstrapCluster(group %d): %v", i, group, err)
		}
	}
}

// stop shuts down the member of group on node i.
func (c *transportRaftCluster) stop(i int, group uint64) {
	c.t.Helper()
	if err := c.rafts[group][i].Shutdown().Error(); err != nil {
		c.t.Fatalf("node %d: Shutdown(group %d): %v", i, group, err)
	}
	c.rafts[group][i] = nil
}

// leader waits until the running members of group (those with a
// configuration) agree on a leader other than node not (-1 for any) and
// returns its node.
func (c *transportRaftCluster) leader(group uint64, not int) int {
	c.t.Helper()
	found := -1
	transportEventually(c.t, transportRaftWait, fmt.Sprintf("a leader of group %d", group), func() error {
		found = -1
		var addr raft.ServerAddress
		for i, r := range c.rafts[group] {
			if r == nil {
				continue
			}
			a, _ := r.LeaderWithID()
			if a == "" && !transportHasConfiguration(r) {
				continue // not a member yet
			}
			if a == "" || (addr != "" && a != addr) {
				return fmt.Errorf("node %d sees leader %q, another %q", i, a, addr)
			}
			addr = a
			if r.State() == raft.Leader {
				found = i
			}
		}
		if found < 0 || found == not || string(addr) != c.nodes[found].addr {
			return fmt.Errorf("leader %q, leader state on node %d", addr, found)
		}
		return nil
	})
	return found
}

func transportHasConfiguration(r *raft.Raft) bool {
	f := r.GetConfiguration()
	return f.Error() != nil || len(f.Configuration().Servers) > 0
}

// apply applies the commands to their groups, all at once so that they
// pipeline, and retries on the current leader any that a leadership change
// failed.
func (c *transportRaftCluster) apply(cmds map[uint64][]string) {
	c.t.Helper()
	pending := cmds
	deadline := time.Now().Add(transportRaftWait)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			c.t.Fatalf("commands not applied in %v: %d groups left", transportRaftWait, len(pending))
		}
		futures := map[uint64][]raft.ApplyFuture{}
		for g, cs := range pending {
			r := c.rafts[g][c.leader(g, -1)]
			for _, cmd := range cs {
				futures[g] = append(futures[g], r.Apply([]byte(cmd), transportRaftWait))
			}
		}
		retry := map[uint64][]string{}
		for g, fs := range futures {
			for j, f := range fs {
				err := f.Error()
				switch {
				case err == nil:
				case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
					errors.Is(err, raft.ErrLeadershipTransferInProgress):
					retry[g] = append(retry[g], pending[g][j])
				default:
					c.t.Fatalf("group %d: Apply(%q): %v", g, pending[g][j], err)
				}
			}
		}
		pending = retry
	}
}

// converge waits until the running members of group have applied the same
// commands, including every one of want, and returns the FSM restores per
// node.
func (c *transportRaftCluster) converge(group uint64, want []string) []int {
	c.t.Helper()
	restores := make([]int, len(c.nodes))
	transportEventually(c.t, transportRaftWait, fmt.Sprintf("group %d to converge", group), func() error {
		var ref []string
		for i, fsm := range c.fsms[group] {
			if c.rafts[group][i] == nil {
				continue
			}
			applied, n := fsm.state()
			restores[i] = n
			if ref == nil {
				ref = applied
			} else if !slices.Equal(applied, ref) {
				return fmt.Errorf("node %d applied %d commands, a peer %d", i, len(applied), len(ref))
			}
		}
		for _, cmd := range want {
			if !slices.Contains(ref, cmd) {
				return fmt.Errorf("%q not applied", cmd)
			}
		}
		return nil
	})
	return restores
}

func transportCommands(group uint64, from, n, size int) []string {
	cmds := make([]string, n)
	for j := range cmds {
		cmd := fmt.Sprintf("g%d-cmd-%04d-", group, from+j)
		cmds[j] = cmd + strings.Repeat("x", max(0, size-len(cmd)))
	}
	return cmds
}

// TestTransportRaftCluster runs two Raft groups on three nodes over one
// connection per pair of nodes: it replicates, transfers leadership and
// fails a leader over.
func TestTransportRaftCluster(t *testing.T) {
	c := newTransportRaftCluster(t, 3, MuxConfig{RPCTimeout: 2 * time.Second}, nil)
	groups := []uint64{1, 2}
	for _, g := range groups {
		for i := range c.nodes {
			c.start(i, g)
		}
		c.bootstrap(g, 0, 1, 2)
	}

	want := map[uint64][]string{}
	for _, g := range groups {
		want[g] = transportCommands(g, 0, 200, 32)
	}
	c.apply(want) // both groups at once
	for _, g := range groups {
		c.converge(g, want[g])
	}

	var pipelined uint64
	for i, n := range c.nodes {
		if got := n.mux.Stats().Groups; got != 2 {
			t.Errorf("node %d: %d groups registered; want 2", i, got)
		}
		pipelined += n.mux.Stats().PipelineEntries
	}
	if pipelined == 0 {
		t.Errorf("no log entries were sent on AppendEntries pipelines")
	}

	// Both groups share one pooled connection, and one TCP connection, per
	// peer. Raft may not have called every peer from every node (a follower
	// that never stood for election calls nobody), so first check that no
	// node has more than one per peer, then make every node call every peer
	// and check that each has exactly one.
	checkConns := func(exact bool) {
		t.Helper()
		for i, n := range c.nodes {
			pooled, accepted := n.mux.Stats().PeerConns, int(n.accepted.Load())
			if pooled > 2 || accepted > 2 || (exact && (pooled != 2 || accepted != 2)) {
				t.Errorf("node %d: %d pooled peer connections, %d accepted; want 2 and 2", i, pooled, accepted)
			}
		}
	}
	checkConns(false)
	for i, n := range c.nodes {
		probe := n.transport(t, uint64(100+i)) // a group no peer runs
		for j, peer := range c.nodes {
			if j == i {
				continue
			}
			err := probe.RequestVote(transportNodeID(j), raft.ServerAddress(peer.addr), &raft.RequestVoteRequest{}, new(raft.RequestVoteResponse))
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("probe from node %d to %d: %v; want code InvalidArgument", i, j, err)
			}
		}
		probe.Close()
	}
	checkConns(true)

	// Leadership transfer (TimeoutNow) in group 2. With these short timeouts
	// a transfer can time out on a busy machine; it is retried.
	old := c.leader(2, -1)
	transportEventually(t, transportRaftWait, "a leadership transfer in group 2", func() error {
		leader := c.leader(2, -1)
		if leader != old {
			return nil
		}
		return c.rafts[2][leader].LeadershipTransfer().Error()
	})

	// Failover in group 1: shut down its leader; the other two elect one.
	old = c.leader(1, -1)
	c.stop(old, 1)
	if got := c.nodes[old].mux.Stats().Groups; got != 1 {
		t.Errorf("node %d: %d groups registered after group 1 shut down; want 1", old, got)
	}
	leader := c.leader(1, old)
	more := transportCommands(1, 200, 20, 32)
	c.apply(map[uint64][]string{1: more})
	c.converge(1, append(want[1], more...))

	// The stopped member's node now answers group 1 with InvalidArgument.
	survivor := c.nodes[leader].mux
	tr := (*survivor.groups.Load())[1]
	err := tr.RequestVote(transportNodeID(old), raft.ServerAddress(c.nodes[old].addr),
		&raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse))
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("RequestVote to the stopped member = %v; want code InvalidArgument", err)
	}

	// Group 2 is unaffected.
	c.leader(2, -1)
	c.apply(map[uint64][]string{2: transportCommands(2, 200, 5, 32)})
}

// TestTransportRaftSnapshotInstall brings a fresh member into a group whose
// log has been compacted, so that it catches up by InstallSnapshot, streamed
// in many chunks.
func TestTransportRaftSnapshotInstall(t *testing.T) {
	const group = 7
	c := newTransportRaftCluster(t, 3, MuxConfig{RPCTimeout: 2 * time.Second, SnapshotChunkSize: 1 << 10},
		func(conf *raft.Config) {
			conf.TrailingLogs = 10
			conf.SnapshotThreshold = 1 << 20 // snapshots only when asked
		})
	c.start(0, group)
	c.start(1, group)
	c.bootstrap(group, 0, 1)

	cmds := transportCommands(group, 0, 200, 100) // a snapshot of ~20 KiB, ~20 chunks
	c.apply(map[uint64][]string{group: cmds})
	c.converge(group, cmds)
	// Snapshot and compact both members, so that whichever leads has lost
	// the log's beginning.
	for i := range 2 {
		if err := c.rafts[group][i].Snapshot().Error(); err != nil {
			t.Fatalf("node %d: Snapshot: %v", i, err)
		}
	}

	c.start(2, group)
	transportEventually(t, transportRaftWait, "AddVoter", func() error {
		r := c.rafts[group][c.leader(group, -1)]
		return r.AddVoter(transportNodeID(2), raft.ServerAddress(c.nodes[2].addr), 0, transportRaftWait).Error()
	})
	restores := c.converge(group, cmds)
	if restores[2] == 0 {
		t.Errorf("the new member caught up without restoring a snapshot")
	}
	if got := c.nodes[2].mux.Stats().SnapshotsReceived; got == 0 {
		t.Errorf("node 2 received %d snapshots; want at least 1", got)
	}

	// Replication goes on after the snapshot.
	more := transportCommands(group, 200, 20, 100)
	c.apply(map[uint64][]string{group: more})
	c.converge(group, append(cmds, more...))
}
