package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// memberTestGroup is the group every membership test runs.
const memberTestGroup = 7

// memberCluster runs group memberTestGroup on up to len(nodes) nodes, each
// with its own Mux and gRPC server on loopback. Member i is "n<i+1>" on
// nodes[i]; groups[i] is nil until open(i).
type memberCluster struct {
	t      *testing.T
	nodes  []*transportTestNode
	groups []*Group
	sms    []*kvSM
	dir    string
	config func(*Config)
}

// newMemberCluster starts n nodes, node i configured by muxCfg(i) (nil for
// the zero MuxConfig), whose groups config adjusts (nil for none).
func newMemberCluster(t *testing.T, n int, muxCfg func(i int) MuxConfig, config func(*Config)) *memberCluster {
	t.Helper()
	c := &memberCluster{t: t, groups: make([]*Group, n), sms: make([]*kvSM, n), dir: t.TempDir(), config: config}
	for i := range n {
		var mc MuxConfig
		if muxCfg != nil {
			mc = muxCfg(i)
		}
		c.nodes = append(c.nodes, newTransportTestNode(t, mc))
	}
	return c
}

func memberID(i int) string { return fmt.Sprintf("n%d", i+1) }

// open starts member i, empty; it shuts down when the test ends.
func (c *memberCluster) open(i int) *Group {
	c.t.Helper()
	tr, err := c.nodes[i].mux.Transport(memberTestGroup)
	if err != nil {
		c.t.Fatal(err)
	}
	sm := newKVSM()
	cfg := Config{
		Group:         memberTestGroup,
		NodeID:        memberID(i),
		Dir:           filepath.Join(c.dir, memberID(i)),
		Transport:     tr,
		StateMachine:  sm,
		NoopCommand:   []byte("noop"),
		Timing:        groupTiming,
		RaftLogOutput: io.Discard,
	}
	if c.config != nil {
		c.config(&cfg)
	}
	g, err := Open(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		if err := g.Shutdown(); err != nil {
			c.t.Errorf("%s: Shutdown: %v", memberID(i), err)
		}
	})
	c.groups[i], c.sms[i] = g, sm
	return g
}

// bootstrap opens the given members and bootstraps them as the group's
// voters.
func (c *memberCluster) bootstrap(members ...int) {
	c.t.Helper()
	var servers []Server
	for _, i := range members {
		servers = append(servers, Server{ID: memberID(i), Addr: c.nodes[i].addr})
	}
	for _, i := range members {
		if err := c.open(i).Bootstrap(servers); err != nil {
			c.t.Fatal(err)
		}
	}
}

// leader waits for one of members to lead and pass a read barrier, and
// returns it.
func (c *memberCluster) leader(members ...int) int {
	c.t.Helper()
	found := -1
	transportEventually(c.t, 10*time.Second, "a leader ready for reads", func() error {
		for _, i := range members {
			if !c.groups[i].Leader().Self {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := c.groups[i].ReadBarrier(ctx)
			cancel()
			if err == nil {
				found = i
				return nil
			}
		}
		return errors.New("no ready leader")
	})
	return found
}

// write proposes every "k=v" command on member l and returns the last
// one's index.
func (c *memberCluster) write(ctx context.Context, l int, cmds ...string) uint64 {
	c.t.Helper()
	var index uint64
	for _, cmd := range cmds {
		var err error
		if _, index, err = c.groups[l].Propose(ctx, []byte(cmd)); err != nil {
			c.t.Fatalf("%s: Propose(%q): %v", memberID(l), cmd, err)
		}
	}
	return index
}

// configuration returns member i's configuration.
func (c *memberCluster) configuration(ctx context.Context, i int) Configuration {
	c.t.Helper()
	conf, err := c.groups[i].Configuration(ctx)
	if err != nil {
		c.t.Fatalf("%s: Configuration: %v", memberID(i), err)
	}
	return conf
}

// wantServers fails the test unless conf's servers are want, given as
// "id:voter" or "id:nonvoter", in any order.
func (c *memberCluster) wantServers(who string, conf Configuration, want ...string) {
	c.t.Helper()
	var got []string
	for _, s := range conf.Servers {
		kind := "nonvoter"
		if s.Voter {
			kind = "voter"
		}
		got = append(got, s.ID+":"+kind)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		c.t.Fatalf("%s: configuration at index %d has servers %v; want %v", who, conf.Index, got, want)
	}
}

// awaitApplied waits until member i has applied index.
func (c *memberCluster) awaitApplied(i int, index uint64) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.groups[i].WaitApplied(ctx, index); err != nil {
		c.t.Fatalf("%s: WaitApplied(%d): %v", memberID(i), index, err)
	}
}

// TestGroupMoveReplica moves a replica of a three-voter group to a fourth
// node as the node package does: add the new replica as a nonvoter, wait
// for it to catch up, promote it, and remove the replica it replaces,
// which is a follower or, after a leadership transfer, the leader.
func TestGroupMoveReplica(t *testing.T) {
	for _, removeLeader := range []bool{false, true} {
		t.Run(fmt.Sprintf("removeLeader=%v", removeLeader), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := newMemberCluster(t, 4, nil, nil)
			c.bootstrap(0, 1, 2)
			l := c.leader(0, 1, 2)
			for i := range 10 {
				c.write(ctx, l, fmt.Sprintf("k%d=v%d", i, i))
			}

			const n4 = 3
			c.open(n4)
			if err := c.groups[l].AddNonvoter(ctx, memberID(n4), c.nodes[n4].addr); err != nil {
				t.Fatalf("AddNonvoter: %v", err)
			}
			added := c.configuration(ctx, l)
			c.wantServers("after AddNonvoter", added, "n1:voter", "n2:voter", "n3:voter", "n4:nonvoter")
			// Catch-up is the caller's job (hashicorp/raft#404).
			target := c.groups[l].AppliedIndex()
			transportEventually(t, 10*time.Second, "the nonvoter to catch up", func() error {
				if got := c.groups[n4].AppliedIndex(); got < target {
					return fmt.Errorf("applied %d of %d", got, target)
				}
				return nil
			})
			if v, _ := c.sms[n4].get("k9"); v != "v9" {
				t.Fatalf("caught-up nonvoter has k9 = %q; want v9", v)
			}
			if err := c.groups[l].AddVoter(ctx, memberID(n4), c.nodes[n4].addr); err != nil {
				t.Fatalf("AddVoter: %v", err)
			}
			promoted := c.configuration(ctx, l)
			c.wantServers("after AddVoter", promoted, "n1:voter", "n2:voter", "n3:voter", "n4:voter")
			if promoted.Index <= added.Index {
				t.Fatalf("configuration index %d after promotion; want more than %d", promoted.Index, added.Index)
			}

			removed := (l + 1) % 3
			if removeLeader {
				removed = l
				if err := c.groups[l].TransferLeadershipTo(memberID(n4), c.nodes[n4].addr); err != nil {
					t.Fatalf("TransferLeadershipTo(n4): %v", err)
				}
				if l = c.leader(0, 1, 2, n4); l != n4 {
					t.Fatalf("%s leads after the transfer to n4", memberID(l))
				}
			}
			remaining := slices.DeleteFunc([]int{0, 1, 2, n4}, func(i int) bool { return i == removed })
			becameLeader := observeLeadership(t, c.groups[removed])
			term := c.groups[l].Term()

			if err := c.groups[l].RemoveServer(ctx, memberID(removed)); err != nil {
				t.Fatalf("RemoveServer(%s): %v", memberID(removed), err)
			}
			var want []string
			for _, i := range remaining {
				want = append(want, memberID(i)+":voter")
			}
			c.wantServers("after RemoveServer", c.configuration(ctx, l), want...)

			index := c.write(ctx, l, "after=1")
			for _, i := range remaining {
				c.awaitApplied(i, index)
				if v, _ := c.sms[i].get("after"); v != "1" {
					t.Fatalf("%s: after = %q; want 1", memberID(i), v)
				}
			}
			// The removed replica hears from no leader any more; once it
			// has noticed, it must not disturb the group.
			transportEventually(t, 10*time.Second, "the removed replica to miss its leader", func() error {
				if id := c.groups[removed].Leader().ID; id != "" {
					return fmt.Errorf("%s still follows %s", memberID(removed), id)
				}
				return nil
			})
			index = c.write(ctx, l, "later=2")
			for _, i := range remaining {
				c.awaitApplied(i, index)
			}
			if v, _ := c.sms[removed].get("later"); v != "" {
				t.Fatalf("removed replica applied later = %q", v)
			}
			if got := c.groups[l].Term(); got != term || !c.groups[l].Leader().Self {
				t.Fatalf("%s: term %d, leading %v after the removal; want term %d, leading", memberID(l), got, c.groups[l].Leader().Self, term)
			}
			if becameLeader() || c.groups[removed].Leader().Self {
				t.Fatalf("removed replica %s became leader", memberID(removed))
			}
		})
	}
}

// observeLeadership reports whether g has become leader since the call.
func observeLeadership(t *testing.T, g *Group) func() bool {
	ch := make(chan raft.Observation, 16)
	o := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		s, ok := o.Data.(raft.RaftState)
		return ok && s == raft.Leader
	})
	g.raft.RegisterObserver(o)
	t.Cleanup(func() { g.raft.DeregisterObserver(o) })
	return func() bool { return len(ch) > 0 || g.raft.State() == raft.Leader }
}

// TestGroupMembershipChanges checks what Configuration reports, the
// idempotence of the membership calls, and that only the leader makes them.
func TestGroupMembershipChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newMemberCluster(t, 3, nil, func(cfg *Config) {
		cfg.TrailingLogs = 1 // a snapshot drops the whole log
		cfg.SnapshotThreshold = 1 << 30
	})
	c.bootstrap(0, 1, 2)
	l := c.leader(0, 1, 2)
	f := (l + 1) % 3
	g := c.groups[l]

	conf := c.configuration(ctx, l)
	c.wantServers("bootstrapped", conf, "n1:voter", "n2:voter", "n3:voter")
	wantConfigEntry(t, g, conf)

	// A follower reports the same configuration.
	transportEventually(t, 10*time.Second, "the follower's configuration", func() error {
		if got := c.configuration(ctx, f); !configEqual(got, conf) {
			return fmt.Errorf("follower has %+v; leader %+v", got, conf)
		}
		return nil
	})

	// No change needed: AddNonvoter keeps a voter's vote; AddVoter,
	// RemoveServer and DemoteVoter find nothing to do.
	noops := []struct {
		name string
		call func() error
	}{
		{"AddNonvoter(voter)", func() error { return g.AddNonvoter(ctx, memberID(f), c.nodes[f].addr) }},
		{"AddVoter(voter)", func() error { return g.AddVoter(ctx, memberID(f), c.nodes[f].addr) }},
		{"RemoveServer(absent)", func() error { return g.RemoveServer(ctx, "n9") }},
		{"DemoteVoter(absent)", func() error { return g.DemoteVoter(ctx, "n9") }},
	}
	for _, n := range noops {
		if err := n.call(); err != nil {
			t.Fatalf("%s: %v", n.name, err)
		}
		if got := c.configuration(ctx, l); !configEqual(got, conf) {
			t.Fatalf("after %s configuration is %+v; want it unchanged, %+v", n.name, got, conf)
		}
	}

	// A nonvoter (never reachable: it does not count) and a demoted voter.
	if err := g.AddNonvoter(ctx, "n9", "127.0.0.1:1"); err != nil {
		t.Fatalf("AddNonvoter(n9): %v", err)
	}
	withN9 := c.configuration(ctx, l)
	c.wantServers("after AddNonvoter(n9)", withN9, "n1:voter", "n2:voter", "n3:voter", "n9:nonvoter")
	if s, _ := withN9.Server("n9"); s.Addr != "127.0.0.1:1" || withN9.Index <= conf.Index {
		t.Fatalf("n9 = %+v at index %d; want address 127.0.0.1:1 at an index after %d", s, withN9.Index, conf.Index)
	}
	wantConfigEntry(t, g, withN9)
	if err := g.DemoteVoter(ctx, memberID(f)); err != nil {
		t.Fatalf("DemoteVoter(%s): %v", memberID(f), err)
	}
	want := []string{"n1:voter", "n2:voter", "n3:voter", "n9:nonvoter"}
	want[f] = memberID(f) + ":nonvoter"
	c.wantServers("after DemoteVoter", c.configuration(ctx, l), want...)
	if err := g.DemoteVoter(ctx, memberID(f)); err != nil {
		t.Fatalf("DemoteVoter(%s) again: %v", memberID(f), err)
	}
	if err := g.AddVoter(ctx, memberID(f), c.nodes[f].addr); err != nil {
		t.Fatalf("AddVoter(%s): %v", memberID(f), err)
	}
	if err := g.RemoveServer(ctx, "n9"); err != nil {
		t.Fatalf("RemoveServer(n9): %v", err)
	}
	final := c.configuration(ctx, l)
	c.wantServers("after promotion and removal", final, "n1:voter", "n2:voter", "n3:voter")
	wantConfigEntry(t, g, final)

	// Followers refuse membership changes, naming the leader.
	transportEventually(t, 10*time.Second, "the follower to know the leader", func() error {
		if id := c.groups[f].Leader().ID; id != memberID(l) {
			return fmt.Errorf("follower's leader is %q", id)
		}
		return nil
	})
	fg := c.groups[f]
	for name, call := range map[string]func() error{
		"AddNonvoter":  func() error { return fg.AddNonvoter(ctx, "n9", "127.0.0.1:1") },
		"AddVoter":     func() error { return fg.AddVoter(ctx, "n9", "127.0.0.1:1") },
		"RemoveServer": func() error { return fg.RemoveServer(ctx, memberID(l)) },
		"DemoteVoter":  func() error { return fg.DemoteVoter(ctx, memberID(l)) },
	} {
		var nl *NotLeaderError
		if err := call(); !errors.As(err, &nl) || nl.LeaderID != memberID(l) {
			t.Fatalf("%s on a follower = %v; want a NotLeaderError naming %s", name, err, memberID(l))
		}
	}

	// An ended context is honoured.
	done, stop := context.WithCancel(ctx)
	stop()
	if err := g.AddNonvoter(done, "n8", "127.0.0.1:1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("AddNonvoter with a cancelled context = %v; want context.Canceled", err)
	}

	// Once a snapshot has compacted the configuration's entry away, its
	// index comes from the snapshot.
	c.write(ctx, l, "a=1", "b=2")
	if err := g.Snapshot(); err != nil {
		t.Fatal(err)
	}
	var entry raft.Log
	if err := g.logs.GetLog(final.Index, &entry); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("log entry %d after the snapshot: %v; want it compacted", final.Index, err)
	}
	if got := c.configuration(ctx, l); !configEqual(got, final) {
		t.Fatalf("configuration after compaction %+v; want %+v", got, final)
	}
}

// wantConfigEntry fails the test unless g's log entry at conf.Index holds
// conf.
func wantConfigEntry(t *testing.T, g *Group, conf Configuration) {
	t.Helper()
	var l raft.Log
	if err := g.logs.GetLog(conf.Index, &l); err != nil {
		t.Fatalf("log entry %d: %v", conf.Index, err)
	}
	if l.Type != raft.LogConfiguration {
		t.Fatalf("log entry %d is a %v; want a configuration", conf.Index, l.Type)
	}
	var servers []ConfigServer
	for _, s := range raft.DecodeConfiguration(l.Data).Servers {
		servers = append(servers, ConfigServer{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	if !slices.Equal(servers, conf.Servers) {
		t.Fatalf("log entry %d holds %+v; Configuration reported %+v", conf.Index, servers, conf.Servers)
	}
}

func configEqual(a, b Configuration) bool {
	return a.Index == b.Index && slices.Equal(a.Servers, b.Servers)
}

// recordingPacer lets every wait through at once and records its size.
type recordingPacer struct {
	mu sync.Mutex
	ns []int
}

func (p *recordingPacer) WaitN(ctx context.Context, n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ns = append(p.ns, n)
	return ctx.Err()
}

func (p *recordingPacer) waits() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ns)
}

// TestGroupSnapshotToNewNonvoter brings a nonvoter into a group whose log
// has been compacted, so that it catches up from a snapshot, and checks
// that both ends count the snapshot's bytes and that the sender paced all
// of them, a chunk at a time.
func TestGroupSnapshotToNewNonvoter(t *testing.T) {
	const chunk = 1 << 10
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pacers := make([]*recordingPacer, 4)
	c := newMemberCluster(t, 4, func(i int) MuxConfig {
		pacers[i] = new(recordingPacer)
		return MuxConfig{SnapshotChunkSize: chunk, snapshotPacer: pacers[i]}
	}, func(cfg *Config) {
		cfg.TrailingLogs = 1
		cfg.SnapshotThreshold = 1 << 30 // snapshots only when asked
	})
	c.bootstrap(0, 1, 2)
	l := c.leader(0, 1, 2)
	var cmds []string
	for i := range 100 {
		cmds = append(cmds, fmt.Sprintf("k%03d=%s", i, strings.Repeat("v", 100)))
	}
	index := c.write(ctx, l, cmds...) // a snapshot of ~11 KiB
	// Compact every voter's log, so that whichever leads sends a snapshot.
	for i := range 3 {
		c.awaitApplied(i, index)
		if err := c.groups[i].Snapshot(); err != nil {
			t.Fatalf("%s: Snapshot: %v", memberID(i), err)
		}
	}

	const n4 = 3
	c.open(n4)
	l = c.leader(0, 1, 2)
	if err := c.groups[l].AddNonvoter(ctx, memberID(n4), c.nodes[n4].addr); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	c.awaitApplied(n4, index)
	if v, _ := c.sms[n4].get("k099"); v != cmds[99][len("k099="):] {
		t.Fatalf("new nonvoter has k099 = %q", v)
	}
	metas, err := c.groups[l].snaps.List()
	if err != nil || len(metas) == 0 {
		t.Fatalf("leader's snapshots: %v, %v", metas, err)
	}
	size := uint64(metas[0].Size)
	if size <= 2*chunk {
		t.Fatalf("snapshot of %d bytes; the test wants several chunks", size)
	}

	if got := c.nodes[n4].mux.Stats().SnapshotsReceived; got != 1 {
		t.Fatalf("n4 received %d snapshots; want 1", got)
	}
	if got := c.nodes[n4].mux.SnapshotBytesReceived(memberTestGroup); got != size {
		t.Errorf("n4: SnapshotBytesReceived = %d; want the snapshot's %d", got, size)
	}
	if got := c.nodes[l].mux.SnapshotBytesSent(memberTestGroup); got != size {
		t.Errorf("leader: SnapshotBytesSent = %d; want the snapshot's %d", got, size)
	}
	var paced uint64
	waits := pacers[l].waits()
	for _, n := range waits {
		if n <= 0 || n > chunk {
			t.Errorf("leader waited for %d bytes at once; want 1 to %d (a chunk)", n, chunk)
		}
		paced += uint64(n)
	}
	if paced != size {
		t.Errorf("leader's pacer was asked for %d bytes in %d waits; want the snapshot's %d", paced, len(waits), size)
	}
	for i := range 4 {
		if i == l {
			continue
		}
		if w := pacers[i].waits(); len(w) != 0 {
			t.Errorf("%s sent no snapshot but its pacer was asked for %v", memberID(i), w)
		}
		if got := c.nodes[i].mux.SnapshotBytesSent(memberTestGroup); got != 0 {
			t.Errorf("%s: SnapshotBytesSent = %d; want 0", memberID(i), got)
		}
		if got := c.nodes[i].mux.SnapshotBytesReceived(memberTestGroup); i != n4 && got != 0 {
			t.Errorf("%s: SnapshotBytesReceived = %d; want 0", memberID(i), got)
		}
	}
	if got := c.nodes[n4].mux.SnapshotBytesReceived(memberTestGroup + 1); got != 0 {
		t.Errorf("n4: SnapshotBytesReceived of another group = %d; want 0", got)
	}

	// The new replica reports the configuration it got with the snapshot.
	transportEventually(t, 10*time.Second, "n4's configuration", func() error {
		want := c.configuration(ctx, l)
		if got := c.configuration(ctx, n4); !configEqual(got, want) {
			return fmt.Errorf("n4 has %+v; the leader %+v", got, want)
		}
		return nil
	})
}
