package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/node"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/shard"
)

// realCluster is a cluster of three real in-process nodes (package node) on
// loopback, each with its own data directory under t.TempDir(), stopped by
// t.Cleanup.
type realCluster struct {
	nodes []*node.Node
	addrs []string
}

const realShards = 4

// startRealCluster starts the cluster; mods change node i's config.
func startRealCluster(t *testing.T, mods ...func(i int, cfg *node.Config)) *realCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := &realCluster{}
	base := t.TempDir()
	var peers []node.Peer
	var lis []net.Listener
	for i := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis = append(lis, l)
		c.addrs = append(c.addrs, l.Addr().String())
		peers = append(peers, node.Peer{ID: fmt.Sprintf("n%d", i+1), Addr: l.Addr().String()})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := n.Stop(ctx); err != nil {
				t.Errorf("stop %s: %v", n.ID(), err)
			}
			cancel()
		}
	})
	for i, l := range lis {
		cfg := node.Config{
			ID:             peers[i].ID,
			Listener:       l,
			DataDir:        filepath.Join(base, peers[i].ID),
			InitialCluster: peers,
			Shards:         realShards,
			Timing: replication.Timing{
				HeartbeatTimeout:   200 * time.Millisecond,
				ElectionTimeout:    200 * time.Millisecond,
				LeaderLeaseTimeout: 100 * time.Millisecond,
				CommitTimeout:      20 * time.Millisecond,
			},
			LeaderBalanceInterval: -1,
			Logger:                slog.New(slog.NewTextHandler(io.Discard, nil)),
			RaftLogOutput:         io.Discard,
		}
		for _, mod := range mods {
			mod(i, &cfg)
		}
		n, err := node.Start(cfg)
		if err != nil {
			l.Close()
			for _, l := range lis[i+1:] {
				l.Close()
			}
			t.Fatalf("start %s: %v", peers[i].ID, err)
		}
		c.nodes = append(c.nodes, n)
	}
	// Wait, polling, until every node is ready and every shard has a leader.
	deadline := time.Now().Add(60 * time.Second)
	for !c.ready() {
		if time.Now().After(deadline) {
			t.Fatal("the cluster was not ready within 60s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

func (c *realCluster) ready() bool {
	for _, n := range c.nodes {
		if !n.Ready() {
			return false
		}
	}
	for s := range realShards {
		led := false
		for _, n := range c.nodes {
			if l, ok := n.ShardLeader(shard.ID(s)); ok && l.Self {
				led = true
			}
		}
		if !led {
			return false
		}
	}
	return true
}

func (c *realCluster) endpoints() string { return strings.Join(c.addrs, ",") }

// run runs kvctl against the cluster with stdin.
func (c *realCluster) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return kvctl(t, stdin, append([]string{"--endpoints", c.endpoints(), "--timeout", "10s"}, args...)...)
}

// ok runs args and fails the test unless they succeed with stdout want.
func (c *realCluster) ok(t *testing.T, stdin, want string, args ...string) {
	t.Helper()
	if r := c.run(t, stdin, args...); r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Errorf("kvctl %s: %v; want exit 0, stdout %q", strings.Join(args, " "), r, want)
	}
}

// fails runs args and fails the test unless they exit 1 with nothing on
// stdout and stderr "Error: " followed by wantErr.
func (c *realCluster) fails(t *testing.T, stdin, wantErr string, args ...string) {
	t.Helper()
	if r := c.run(t, stdin, args...); r.code != 1 || r.stdout != "" || r.stderr != "Error: "+wantErr+"\n" {
		t.Errorf("kvctl %s: %v; want exit 1, stderr %q", strings.Join(args, " "), r, "Error: "+wantErr+"\n")
	}
}

// version returns key's version, read with kvctl -o json get.
func (c *realCluster) version(t *testing.T, key string) uint64 {
	t.Helper()
	r := c.run(t, "", "-o", "json", "get", key)
	var j getJSON
	if r.code != 0 || jsonUnmarshal(r.stdout, &j) != nil {
		t.Fatalf("kvctl -o json get %s: %v", key, r)
	}
	return j.Version
}
