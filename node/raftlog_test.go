package node

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/shard"
)

// raftLogKinds are the values of Config.RaftLog.
var raftLogKinds = []string{RaftLogBolt, RaftLogWAL}

// forEachRaftLog runs test once per kind of shared Raft log, as subtests.
func forEachRaftLog(t *testing.T, test func(t *testing.T, raftLog string)) {
	for _, kind := range raftLogKinds {
		t.Run(kind, func(t *testing.T) { test(t, kind) })
	}
}

// defaultTestRaftLog is the raft log of the tests that do not choose one:
// RINGKV_TEST_RAFT_LOG when set (RINGKV_TEST_RAFT_LOG=wal go test ./node/
// runs the whole suite on the WAL), else Config's default.
func defaultTestRaftLog() string {
	return os.Getenv("RINGKV_TEST_RAFT_LOG")
}

// TestRaftLogRefusesOtherKind: a node refuses a data directory that holds
// the other kind's log, with an error that names both, and creates nothing;
// started with its own kind it comes back with its data.
func TestRaftLogRefusesOtherKind(t *testing.T) {
	forEachRaftLog(t, func(t *testing.T, kind string) {
		other := RaftLogWAL
		if kind == RaftLogWAL {
			other = RaftLogBolt
		}
		dir := t.TempDir()
		withKind := func(c *Config) { c.RaftLog = kind }
		n := startMember(t, dir, "n1", nil, withKind)
		waitFor(t, 30*time.Second, "one-node cluster", n.Ready)
		c, err := client.New(context.Background(), []string{n.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		writeKeys(t, c, 10, "v1")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Fatal(err)
		}

		dataDir := filepath.Join(dir, "n1")
		before, _ := os.ReadDir(dataDir)
		_, err = Start(Config{ID: "n1", ListenAddr: "127.0.0.1:0", DataDir: dataDir, RaftLog: other})
		if err == nil {
			t.Fatalf("Start with raft log %s on a %s data dir succeeded; want refusal", other, kind)
		}
		for _, want := range []string{kind + " raft log", `raft log "` + other + `"`, "raft.db", "raft-wal", "refusing", "--raft-log " + kind} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("refusal %q does not mention %s", err, want)
			}
		}
		t.Logf("refused: %v", err)
		after, _ := os.ReadDir(dataDir)
		if len(after) != len(before) {
			t.Errorf("the refused start changed the data dir: %v, then %v", before, after)
		}

		// The default, auto, opens the kind the data dir holds.
		n = startMember(t, dir, "n1", nil, func(c *Config) { c.RaftLog = RaftLogAuto })
		waitFor(t, 30*time.Second, "restarted node", n.Ready)
		c2, err := client.New(context.Background(), []string{n.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		readKeys(t, c2, 10, "v1")
	})
}

// A new data directory gets the WAL by default.
func TestRaftLogDefaultIsWALForNewDataDir(t *testing.T) {
	dir := t.TempDir()
	n := startMember(t, dir, "n1", nil, func(c *Config) { c.RaftLog = "" })
	waitFor(t, 30*time.Second, "one-node cluster", n.Ready)
	if _, err := os.Stat(filepath.Join(dir, "n1", walLogName)); err != nil {
		t.Fatalf("a new node with the default raft log: %v; want %s", err, walLogName)
	}
	if _, err := os.Stat(filepath.Join(dir, "n1", boltLogName)); err == nil {
		t.Fatalf("a new node with the default raft log created %s", boltLogName)
	}
}

// TestRaftLogMovesThenRestart: a fourth node joins, so replicas move to it
// and are dropped (their logs deleted from the shared log) on the others;
// after a restart of the three, every key reads back and each node's
// shared log holds exactly the groups of the shards it hosts.
func TestRaftLogMovesThenRestart(t *testing.T) {
	forEachRaftLog(t, func(t *testing.T, kind string) {
		c := startCluster(t, clusterOpts{raftLog: kind})
		cl, err := client.New(context.Background(), c.addrs)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		writeKeys(t, cl, 50, "v1")
		n4 := startMember(t, t.TempDir(), "n4", []string{c.addrs[0]}, func(cfg *Config) {
			cfg.RaftLog = kind
			cfg.Timing = c.opts.timing
		})
		st := settledWith(t, c.nodes[0], 3, "n1", "n2", "n3", "n4")
		moved := 0
		for _, reps := range st.Shards {
			if slices.Contains(reps, "n4") {
				moved++
			}
		}
		if moved == 0 {
			t.Fatalf("no shard moved to n4: %v", st.Shards)
		}
		t.Logf("%d shards moved to n4", moved)
		writeKeys(t, cl, 50, "v2")

		c.stopAll()
		for i := range c.nodes {
			c.start(i, nil)
		}
		waitFor(t, 60*time.Second, "restarted nodes ready", func() bool {
			for _, n := range append(slices.Clone(c.nodes), n4) {
				if !n.Ready() {
					return false
				}
			}
			return true
		})
		readKeys(t, cl, 50, "v2")
		st = c.nodes[0].Metadata()
		for _, n := range append(slices.Clone(c.nodes), n4) {
			var hosted []uint64
			for sid, reps := range st.Shards {
				if slices.Contains(reps, n.ID()) {
					hosted = append(hosted, uint64(sid))
				}
			}
			slices.Sort(hosted)
			waitFor(t, 10*time.Second, n.ID()+"'s shared log holds its shards' groups", func() bool {
				got, err := n.logStore.Groups()
				if err != nil {
					t.Fatal(err)
				}
				return slices.Equal(got, hosted)
			})
			for _, sid := range hosted {
				if _, ok := n.ShardGroup(shard.ID(sid)); !ok {
					t.Errorf("%s does not run shard %d it hosts", n.ID(), sid)
				}
			}
		}
	})
}
