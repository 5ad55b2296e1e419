package replication

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// kvSM is a tiny StateMachine for group tests: "k=v" sets k, "noop" does
// nothing. It records every index it is handed.
type kvSM struct {
	mu      sync.Mutex
	data    map[string]string
	indexes []uint64
}

func newKVSM() *kvSM { return &kvSM{data: map[string]string{}} }

func (s *kvSM) Apply(index uint64, cmd []byte) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.indexes = append(s.indexes, index)
	if k, v, ok := strings.Cut(string(cmd), "="); ok {
		s.data[k] = v
		return "set " + k
	}
	return nil
}

func (s *kvSM) get(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[k]
	return v, ok
}

func (s *kvSM) Snapshot() (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b bytes.Buffer
	for k, v := range s.data {
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	return kvSnap(b.Bytes()), nil
}

func (s *kvSM) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			s.data[k] = v
		}
	}
	return nil
}

type kvSnap []byte

func (s kvSnap) WriteTo(w io.Writer) (int64, error) { n, err := w.Write(s); return int64(n), err }
func (kvSnap) Release()                             {}

// groupTiming keeps elections quick but rare on a loaded machine: these
// tests assert that leadership holds while they run.
var groupTiming = Timing{
	HeartbeatTimeout:   time.Second,
	ElectionTimeout:    time.Second,
	LeaderLeaseTimeout: 500 * time.Millisecond,
	CommitTimeout:      10 * time.Millisecond,
}

type groupCluster struct {
	groups []*Group
	sms    []*kvSM
}

// newGroupCluster starts one group on three nodes (each its own Mux and
// gRPC server on loopback) and waits for a leader that is ready for reads.
func newGroupCluster(t *testing.T) *groupCluster {
	t.Helper()
	return newGroupClusterWith(t, nil)
}

// groupConfirmer answers ConfirmTerm from the cluster's groups directly;
// lie, when set, rewrites the answer of every peer.
type groupConfirmer struct {
	mu     sync.Mutex
	byAddr map[string]*Group
	lie    func(current bool, term uint64) (bool, uint64, error)
}

func (c *groupConfirmer) ConfirmTerm(ctx context.Context, addr string, group, term uint64) (bool, uint64, error) {
	c.mu.Lock()
	g, lie := c.byAddr[addr], c.lie
	c.mu.Unlock()
	t := g.Term()
	if lie != nil {
		return lie(t == term, t)
	}
	return t == term, t, nil
}

func (c *groupConfirmer) setLie(f func(bool, uint64) (bool, uint64, error)) {
	c.mu.Lock()
	c.lie = f
	c.mu.Unlock()
}

func newGroupClusterWith(t *testing.T, confirmer *groupConfirmer) *groupCluster {
	t.Helper()
	var nodes []*transportTestNode
	var servers []Server
	for i := 0; i < 3; i++ {
		n := newTransportTestNode(t, MuxConfig{})
		nodes = append(nodes, n)
		servers = append(servers, Server{ID: fmt.Sprintf("n%d", i+1), Addr: n.addr})
	}
	c := &groupCluster{}
	dir := t.TempDir()
	for i, n := range nodes {
		tr, err := n.mux.Transport(7)
		if err != nil {
			t.Fatal(err)
		}
		sm := newKVSM()
		g, err := Open(Config{
			Group:         7,
			NodeID:        servers[i].ID,
			Dir:           filepath.Join(dir, servers[i].ID),
			Transport:     tr,
			StateMachine:  sm,
			NoopCommand:   []byte("noop"),
			Timing:        groupTiming,
			RaftLogOutput: io.Discard,
			Confirmer:     confirmerOrNil(confirmer),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := g.Shutdown(); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
		if err := g.Bootstrap(servers); err != nil {
			t.Fatal(err)
		}
		c.groups = append(c.groups, g)
		c.sms = append(c.sms, sm)
		if confirmer != nil {
			confirmer.mu.Lock()
			confirmer.byAddr[n.addr] = g
			confirmer.mu.Unlock()
		}
	}
	transportEventually(t, 10*time.Second, "a leader ready for reads", func() error {
		if c.leader() < 0 {
			return errors.New("no ready leader")
		}
		return nil
	})
	return c
}

// leader returns the index of the group that leads and has passed a read
// barrier, or -1.
func (c *groupCluster) leader() int {
	for i, g := range c.groups {
		if g.Leader().Self {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := g.ReadBarrier(ctx)
			cancel()
			if err == nil {
				return i
			}
		}
	}
	return -1
}

func TestGroupProposeThenReadBarrier(t *testing.T) {
	c := newGroupCluster(t)
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, index, err := c.groups[l].Propose(ctx, []byte("a=1"))
	if err != nil || resp != "set a" || index == 0 {
		t.Fatalf("Propose(a=1) = %v, %d, %v; want set a at an index > 0", resp, index, err)
	}
	if err := c.groups[l].ReadBarrier(ctx); err != nil {
		t.Fatalf("ReadBarrier on leader: %v", err)
	}
	if got := c.groups[l].AppliedIndex(); got < index {
		t.Fatalf("after ReadBarrier applied index %d < write's index %d", got, index)
	}
	if v, _ := c.sms[l].get("a"); v != "1" {
		t.Fatalf("leader state a = %q; want 1", v)
	}
	// Followers refuse reads and writes, naming the leader.
	f := (l + 1) % 3
	leaderID := fmt.Sprintf("n%d", l+1)
	transportEventually(t, 5*time.Second, "follower knows the leader", func() error {
		if id := c.groups[f].Leader().ID; id != leaderID {
			return fmt.Errorf("follower's leader %q", id)
		}
		return nil
	})
	var nl *NotLeaderError
	if err := c.groups[f].ReadBarrier(ctx); !errors.As(err, &nl) || nl.LeaderID != leaderID {
		t.Fatalf("ReadBarrier on follower = %v; want NotLeaderError naming %s", err, leaderID)
	}
	if _, _, err := c.groups[f].Propose(ctx, []byte("b=2")); !errors.As(err, &nl) || nl.LeaderID != leaderID {
		t.Fatalf("Propose on follower = %v; want NotLeaderError naming %s", err, leaderID)
	}
	// A follower's WaitApplied reaches the write too.
	if err := c.groups[f].WaitApplied(ctx, index); err != nil {
		t.Fatalf("follower WaitApplied(%d): %v", index, err)
	}
}

// Concurrent reads share leadership confirmations, and each sees every
// write acknowledged before it started.
func TestGroupConcurrentReadsSeeAcknowledgedWrites(t *testing.T) {
	c := newGroupCluster(t)
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				key, val := fmt.Sprintf("k%d", w), fmt.Sprint(i)
				if _, _, err := c.groups[l].Propose(ctx, []byte(key+"="+val)); err != nil {
					errs <- err
					return
				}
				if err := c.groups[l].ReadBarrier(ctx); err != nil {
					errs <- err
					return
				}
				if got, _ := c.sms[l].get(key); got != val {
					errs <- fmt.Errorf("read %s = %q after writing %q", key, got, val)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestGroupWaitAppliedHonoursContext(t *testing.T) {
	c := newGroupCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.groups[0].WaitApplied(ctx, 1<<40)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied(far future) = %v; want DeadlineExceeded", err)
	}
}

// The FSM adapter counts configuration entries as applied, carries the
// applied index through a snapshot, and only hands commands to the state
// machine.
func TestFSMAppliedIndex(t *testing.T) {
	sm := newKVSM()
	f := newFSM(sm, nil)
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte("a=1")})
	f.ApplyBatch([]*raft.Log{
		{Index: 2, Type: raft.LogConfiguration},
		{Index: 3, Type: raft.LogCommand, Data: []byte("b=2")},
		{Index: 4, Type: raft.LogConfiguration},
	})
	if got := f.applied.Load(); got != 4 {
		t.Fatalf("applied = %d after a batch ending in a configuration entry; want 4", got)
	}
	if fmt.Sprint(sm.indexes) != "[1 3]" {
		t.Fatalf("state machine got indexes %v; want [1 3] (commands only)", sm.indexes)
	}
	f.StoreConfiguration(5, raft.Configuration{})
	if got := f.applied.Load(); got != 5 {
		t.Fatalf("applied = %d after StoreConfiguration(5); want 5", got)
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint64(sink.Bytes()[:8]); got != 5 {
		t.Fatalf("snapshot header index = %d; want 5", got)
	}
	g := newFSM(newKVSM(), nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := g.applied.Load(); got != 5 {
		t.Fatalf("restored applied index = %d; want 5", got)
	}
	if err := g.waitApplied(context.Background(), 5); err != nil {
		t.Fatalf("waitApplied(5) after restore: %v", err)
	}
	if err := newFSM(newKVSM(), nil).Restore(io.NopCloser(strings.NewReader("abc"))); err == nil {
		t.Fatal("Restore of a 3-byte snapshot succeeded; want an error")
	}
}

type memSink struct {
	bytes.Buffer
	canceled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.canceled = true; return nil }
func (s *memSink) Close() error  { return nil }

// confirmerOrNil keeps a nil *groupConfirmer from becoming a non-nil
// interface.
func confirmerOrNil(c *groupConfirmer) TermConfirmer {
	if c == nil {
		return nil
	}
	return c
}

// The read barrier passes only when a quorum answers that it is still in
// the leader's term.
func TestReadBarrierNeedsQuorumInTerm(t *testing.T) {
	conf := &groupConfirmer{byAddr: map[string]*Group{}}
	c := newGroupClusterWith(t, conf)
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.groups[l].ReadBarrier(ctx); err != nil {
		t.Fatalf("ReadBarrier with honest peers: %v", err)
	}
	// Both peers have moved to a later term: refused, naming no stale leader.
	conf.setLie(func(_ bool, term uint64) (bool, uint64, error) { return false, term + 1, nil })
	if err := c.groups[l].ReadBarrier(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ReadBarrier while peers are in a later term = %v; want ErrNotLeader", err)
	}
	// Peers unreachable: refused.
	conf.setLie(func(bool, uint64) (bool, uint64, error) { return false, 0, errors.New("unreachable") })
	if err := c.groups[l].ReadBarrier(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ReadBarrier with unreachable peers = %v; want ErrNotLeader", err)
	}
	// One of two peers confirming makes a quorum of three.
	var calls sync.Mutex
	n := 0
	conf.setLie(func(cur bool, term uint64) (bool, uint64, error) {
		calls.Lock()
		defer calls.Unlock()
		n++
		if n%2 == 0 {
			return false, 0, errors.New("unreachable")
		}
		return cur, term, nil
	})
	if err := c.groups[l].ReadBarrier(ctx); err != nil {
		t.Fatalf("ReadBarrier with one of two peers confirming: %v", err)
	}
}

// TestGroupHasState: a new replica has no state until it bootstraps, and
// keeps it across a restart (a node decides from it whether to join or
// bootstrap a cluster).
func TestGroupHasState(t *testing.T) {
	n := newTransportTestNode(t, MuxConfig{})
	dir := t.TempDir()
	open := func() *Group {
		tr, err := n.mux.Transport(9)
		if err != nil {
			t.Fatal(err)
		}
		g, err := Open(Config{
			Group: 9, NodeID: "n1", Dir: dir, Transport: tr, StateMachine: newKVSM(),
			NoopCommand: []byte("noop"), Timing: groupTiming, RaftLogOutput: io.Discard,
		})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := open()
	if ok, err := g.HasState(); ok || err != nil {
		t.Errorf("new group: HasState() = %v, %v; want false, nil", ok, err)
	}
	if err := g.Bootstrap([]Server{{ID: "n1", Addr: n.addr}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := g.HasState(); !ok || err != nil {
		t.Errorf("bootstrapped group: HasState() = %v, %v; want true, nil", ok, err)
	}
	if err := g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	g = open()
	defer g.Shutdown()
	if ok, err := g.HasState(); !ok || err != nil {
		t.Errorf("reopened group: HasState() = %v, %v; want true, nil", ok, err)
	}
}
