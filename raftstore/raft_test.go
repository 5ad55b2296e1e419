package raftstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// An integration test: real hashicorp/raft groups whose servers keep every
// group's log and stable state in one Store per server.

const (
	itServers = 3
	itGroups  = 8
	// itWait bounds every wait for the cluster; reaching it fails the test.
	itWait = 60 * time.Second
)

// setFSM is a trivial state machine: the set of commands applied. Applying
// a command twice is harmless, so a client may retry after an error whose
// outcome is unknown.
type setFSM struct {
	mu      sync.Mutex
	cmds    map[string]bool
	changed chan struct{} // closed and replaced on every Apply
}

func newSetFSM() *setFSM {
	return &setFSM{cmds: map[string]bool{}, changed: make(chan struct{})}
}

func (f *setFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds[string(l.Data)] = true
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

// missing returns the first of cmds not applied yet, and a channel closed
// on the next Apply.
func (f *setFSM) missing(cmds []string) (string, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cmds {
		if !f.cmds[c] {
			return c, f.changed
		}
	}
	return "", nil
}

func (f *setFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b bytes.Buffer
	for c := range f.cmds {
		fmt.Fprintln(&b, c)
	}
	return setSnapshot(b.Bytes()), nil
}

func (f *setFSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	cmds := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		cmds[sc.Text()] = true
	}
	if err := sc.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = cmds
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

// testLogWriter sends raft's log lines to the test's log, shown when the
// test fails. Every replica is shut down, and so stops logging, before the
// test ends.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

type setSnapshot []byte

func (s setSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (setSnapshot) Release() {}

// cluster is itServers servers, each hosting a replica of every one of
// itGroups groups, all of a server's replicas sharing its Store.
type cluster struct {
	t      *testing.T
	impl   storeImpl
	dir    string
	stores [itServers]testStore
	rafts  [itServers][itGroups]*raft.Raft
	trans  [itServers][itGroups]*raft.InmemTransport
	fsms   [itServers][itGroups]*setFSM
	// leaderObs[g] receives leader changes seen by any replica of group g.
	leaderObs [itGroups]chan raft.Observation
}

func itAddr(s, g int) raft.ServerAddress { return raft.ServerAddress(fmt.Sprintf("s%d-g%d", s, g)) }
func itID(s int) raft.ServerID           { return raft.ServerID(fmt.Sprintf("s%d", s)) }

func newCluster(t *testing.T, impl storeImpl) *cluster {
	c := &cluster{t: t, impl: impl, dir: t.TempDir()}
	for g := range itGroups {
		c.leaderObs[g] = make(chan raft.Observation, 64)
	}
	t.Cleanup(func() {
		for s := range itServers {
			c.stopServer(s)
		}
	})
	for s := range itServers {
		c.startServer(s)
	}
	// Bootstrap every replica before connecting any: a replica that hears
	// from an elected peer first has state and refuses to bootstrap.
	for g := range itGroups {
		conf := raft.Configuration{}
		for s := range itServers {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: itID(s), Address: itAddr(s, g)})
		}
		for s := range itServers {
			if err := c.rafts[s][g].BootstrapCluster(conf).Error(); err != nil {
				t.Fatalf("server %d group %d: bootstrap: %v", s, g, err)
			}
		}
	}
	for s := range itServers {
		c.connect(s)
	}
	return c
}

// startServer opens server s's Store (as it left it, if it ran before)
// and starts its replicas, with fresh state machines and transports not
// yet connected to anyone.
func (c *cluster) startServer(s int) {
	t := c.t
	st, err := c.impl.open(filepath.Join(c.dir, fmt.Sprintf("s%d", s)), knobs{})
	if err != nil {
		t.Fatalf("server %d: %v", s, err)
	}
	c.stores[s] = st
	out := testLogWriter{t}
	for g := range itGroups {
		gs, err := st.Group(uint64(g))
		if err != nil {
			t.Fatal(err)
		}
		conf := raft.DefaultConfig()
		conf.LocalID = itID(s)
		conf.HeartbeatTimeout = 100 * time.Millisecond
		conf.ElectionTimeout = 100 * time.Millisecond
		conf.LeaderLeaseTimeout = 100 * time.Millisecond
		conf.CommitTimeout = 10 * time.Millisecond
		// No snapshots: a restarted replica must rebuild from its log.
		conf.SnapshotThreshold = 1 << 40
		conf.SnapshotInterval = time.Hour
		conf.Logger = hclog.New(&hclog.LoggerOptions{Name: fmt.Sprintf("s%d-g%d", s, g), Level: hclog.Warn, Output: out})
		_, trans := raft.NewInmemTransport(itAddr(s, g))
		fsm := newSetFSM()
		r, err := raft.NewRaft(conf, fsm, gs, gs, raft.NewInmemSnapshotStore(), trans)
		if err != nil {
			t.Fatalf("server %d group %d: NewRaft: %v", s, g, err)
		}
		r.RegisterObserver(raft.NewObserver(c.leaderObs[g], false, func(o *raft.Observation) bool {
			_, ok := o.Data.(raft.LeaderObservation)
			return ok
		}))
		c.rafts[s][g], c.trans[s][g], c.fsms[s][g] = r, trans, fsm
	}
}

// connect links server s's transports with those of every running server.
func (c *cluster) connect(s int) {
	for o := range itServers {
		if o == s || c.stores[o] == nil {
			continue
		}
		for g := range itGroups {
			c.trans[s][g].Connect(itAddr(o, g), c.trans[o][g])
			c.trans[o][g].Connect(itAddr(s, g), c.trans[s][g])
		}
	}
}

// stopServer shuts server s's replicas down and closes its Store.
func (c *cluster) stopServer(s int) {
	if c.stores[s] == nil {
		return
	}
	for g := range itGroups {
		for o := range itServers {
			if o != s && c.stores[o] != nil {
				c.trans[o][g].Disconnect(itAddr(s, g))
			}
		}
		if err := c.rafts[s][g].Shutdown().Error(); err != nil {
			c.t.Errorf("server %d group %d: shutdown: %v", s, g, err)
		}
	}
	if err := c.stores[s].Close(); err != nil {
		c.t.Errorf("server %d: Close: %v", s, err)
	}
	c.stores[s] = nil
}

// leader waits until a running replica of group g leads and returns its
// server.
func (c *cluster) leader(g int, deadline <-chan time.Time) int {
	for {
		for s := range itServers {
			if c.stores[s] != nil && c.rafts[s][g].State() == raft.Leader {
				return s
			}
		}
		select {
		case <-c.leaderObs[g]:
		case <-deadline:
			c.t.Fatalf("group %d: no leader within %v", g, itWait)
		}
	}
}

// apply commits cmd in group g, retrying while leadership moves.
func (c *cluster) apply(g int, cmd string) {
	deadline := time.After(itWait)
	for {
		s := c.leader(g, deadline)
		err := c.rafts[s][g].Apply([]byte(cmd), itWait).Error()
		switch {
		case err == nil:
			return
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			continue // outcome unknown or not taken: retrying is safe, commands are idempotent
		default:
			c.t.Fatalf("group %d: Apply(%q) on server %d: %v", g, cmd, s, err)
		}
	}
}

// waitApplied waits until server s's replica of group g has applied cmds.
func (c *cluster) waitApplied(s, g int, cmds []string) {
	deadline := time.After(itWait)
	for {
		miss, changed := c.fsms[s][g].missing(cmds)
		if miss == "" {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			c.t.Fatalf("server %d group %d: %q not applied within %v", s, g, miss, itWait)
		}
	}
}

func TestRaftGroupsShareAStorePerServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 24 Raft replicas")
	}
	forEachImpl(t, testRaftGroupsShareAStorePerServer)
}

func testRaftGroupsShareAStorePerServer(t *testing.T, impl storeImpl) {
	c := newCluster(t, impl)
	cmds := [itGroups][]string{}
	applyRound := func(round string, n int) {
		var wg sync.WaitGroup
		for g := range itGroups {
			for i := range n {
				cmds[g] = append(cmds[g], fmt.Sprintf("g%d %s %d", g, round, i))
			}
			wg.Add(1)
			go func(g int, batch []string) {
				defer wg.Done()
				for _, cmd := range batch {
					c.apply(g, cmd)
				}
			}(g, cmds[g][len(cmds[g])-n:])
		}
		wg.Wait()
	}

	applyRound("first", 20)
	for s := range itServers {
		for g := range itGroups {
			c.waitApplied(s, g, cmds[g])
		}
	}

	// Restart server 2 from its Store. Its log must come back as it was,
	// before any other server talks to it.
	const victim = 2
	var lastIndex [itGroups]uint64
	c.stopServer(victim)
	for g := range itGroups {
		lastIndex[g] = c.rafts[victim][g].LastIndex()
		if lastIndex[g] < 20 {
			t.Fatalf("group %d: server %d's last index was %d; want at least the 20 commands", g, victim, lastIndex[g])
		}
	}
	applyRound("while down", 10) // the other two are a majority
	c.startServer(victim)
	for g := range itGroups {
		r := c.rafts[victim][g]
		if got := r.LastIndex(); got != lastIndex[g] {
			t.Fatalf("group %d: restarted server %d has last index %d; want %d, as it left it", g, victim, got, lastIndex[g])
		}
		if r.State() == raft.Shutdown {
			t.Fatalf("group %d: restarted replica is shut down", g)
		}
		if f := r.GetConfiguration(); f.Error() != nil || len(f.Configuration().Servers) != itServers {
			conf, err := f.Configuration(), f.Error()
			t.Fatalf("group %d: restarted replica's configuration %+v, %v; want %d voters from its log", g, conf, err, itServers)
		}
	}
	c.connect(victim)
	applyRound("after restart", 10)
	for s := range itServers {
		for g := range itGroups {
			c.waitApplied(s, g, cmds[g])
		}
	}
	for s := range itServers {
		st := c.stores[s].Stats()
		t.Logf("server %d since its last start: %d writes in %d commits", s, st.Writes, st.Commits)
	}
}
