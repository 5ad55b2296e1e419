package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/cluster"
)

// startMember starts an in-process node that creates a one-node cluster
// (join empty) or joins one.
func startMember(t *testing.T, dir, id string, join []string, mod func(*Config)) *Node {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logOut := io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	cfg := Config{
		ID:                    id,
		Listener:              l,
		DataDir:               filepath.Join(dir, id),
		Join:                  join,
		Shards:                8,
		Timing:                testTiming,
		ControllerInterval:    100 * time.Millisecond,
		MaxMovesPerNode:       4,
		LeaderBalanceInterval: -1,
		Logger:                slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo})),
		RaftLogOutput:         logOut,
		RaftLog:               defaultTestRaftLog(),
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Stop(ctx)
	})
	return n
}

// settledWith waits until n's metadata is settled with exactly the given
// active members and every shard holds want replicas.
func settledWith(t *testing.T, n *Node, want int, active ...string) *cluster.State {
	t.Helper()
	var st *cluster.State
	waitFor(t, 90*time.Second, fmt.Sprintf("settled on %v", active), func() bool {
		st = n.Metadata()
		if !st.Initialized() || !st.Settled() {
			return false
		}
		var got []string
		for _, m := range st.Members {
			if m.State == cluster.MemberActive {
				got = append(got, m.ID)
			}
		}
		if strings.Join(got, ",") != strings.Join(active, ",") {
			return false
		}
		for _, reps := range st.Shards {
			if len(reps) != want {
				return false
			}
		}
		return true
	})
	return st
}

func writeKeys(t *testing.T, c *client.Client, n int, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		if _, err := c.Put(ctx, fmt.Appendf(nil, "k%03d", i), []byte(val)); err != nil {
			t.Fatalf("put k%03d: %v", i, err)
		}
	}
}

func readKeys(t *testing.T, c *client.Client, n int, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		v, err := c.Get(ctx, fmt.Appendf(nil, "k%03d", i))
		if err != nil || string(v.Data) != val {
			t.Errorf("get k%03d = %q, %v; want %q", i, v.Data, err, val)
		}
	}
}

// TestGrowFromOneNode: a node started with neither an initial cluster nor
// addresses to join creates a one-node cluster; two nodes join it and every
// shard is up-replicated to three replicas through Raft membership changes,
// with the data.
func TestGrowFromOneNode(t *testing.T) {
	forEachRaftLog(t, testGrowFromOneNode)
}

func testGrowFromOneNode(t *testing.T, raftLog string) {
	dir := t.TempDir()
	kind := func(c *Config) { c.RaftLog = raftLog }
	n1 := startMember(t, dir, "n1", nil, kind)
	waitFor(t, 30*time.Second, "one-node cluster", func() bool { return n1.Ready() })
	st := settledWith(t, n1, 1, "n1")
	if st.Replicas != 3 {
		t.Fatalf("replication factor %d; want 3", st.Replicas)
	}
	c, err := client.New(context.Background(), []string{n1.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeKeys(t, c, 50, "v1")

	n2 := startMember(t, dir, "n2", []string{n1.Addr()}, kind)
	settledWith(t, n1, 2, "n1", "n2")
	startMember(t, dir, "n3", []string{n2.Addr()}, kind)
	st = settledWith(t, n1, 3, "n1", "n2", "n3")
	for id, ch := range st.Changes {
		if ch != 2 {
			t.Errorf("shard %d: %d changes; want 2 (one replica added per join)", id, ch)
		}
	}
	readKeys(t, c, 50, "v1")
	writeKeys(t, c, 50, "v2")
	readKeys(t, c, 50, "v2")
}

// TestLongDestinationDiesMidMove: the destination of moves stops in the middle
// of them; once it is marked dead its unfinished moves are undone (aborted
// with the reason) or completed, and the cluster settles without it, with
// every key readable.
func TestLongDestinationDiesMidMove(t *testing.T) {
	if testing.Short() {
		t.Skip("long: waits for a node to be declared dead and the moves to settle")
	}
	dir := t.TempDir()
	fast := func(c *Config) { c.DeadAfter = time.Second; c.MaxMovesPerNode = 1 }
	n1 := startMember(t, dir, "n1", nil, fast)
	waitFor(t, 30*time.Second, "one-node cluster", func() bool { return n1.Ready() })
	c, err := client.New(context.Background(), []string{n1.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n2 := startMember(t, dir, "n2", []string{n1.Addr()}, fast)
	n3 := startMember(t, dir, "n3", []string{n1.Addr()}, fast)
	settledWith(t, n1, 3, "n1", "n2", "n3")
	writeKeys(t, c, 50, "v1")
	_, _ = n2, n3

	n4 := startMember(t, dir, "n4", []string{n1.Addr()}, fast)
	waitFor(t, 30*time.Second, "a move onto n4 in progress", func() bool {
		for _, m := range n1.Metadata().Moves {
			if m.To == "n4" {
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	n4.Stop(ctx)
	cancel()
	t.Log("n4 stopped in the middle of a move")

	waitFor(t, 90*time.Second, "n4 dead and the cluster settled", func() bool {
		st := n1.Metadata()
		m, ok := st.Member("n4")
		return ok && m.State == cluster.MemberDead && st.Settled()
	})
	st := n1.Metadata()
	aborted := 0
	for _, m := range st.Finished {
		if m.To == "n4" && m.Outcome == cluster.MoveAborted {
			aborted++
			if !strings.Contains(m.Reason, "n4 is dead") {
				t.Errorf("move %v aborted for %q; want the destination's death", m, m.Reason)
			}
		}
	}
	t.Logf("%d moves onto n4 aborted", aborted)
	for id, reps := range st.Shards {
		if len(reps) != 3 {
			t.Errorf("shard %d on %v; want 3 replicas", id, reps)
		}
		for _, r := range reps {
			if r == "n4" {
				t.Errorf("shard %d still on dead n4: %v", id, reps)
			}
		}
	}
	readKeys(t, c, 50, "v1")
}
