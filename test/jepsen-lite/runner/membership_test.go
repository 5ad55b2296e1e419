package runner

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/test/jepsen-lite/history"
	"github.com/ringkv/ringkv/test/jepsen-lite/netns"
	"github.com/ringkv/ringkv/test/jepsen-lite/report"
)

func members(states ...string) []*ringkvv1.Member {
	var out []*ringkvv1.Member
	for _, s := range states {
		id, state, _ := strings.Cut(s, "=")
		out = append(out, &ringkvv1.Member{Id: id, Address: id + ":7000", State: state})
	}
	return out
}

func TestMemberChanges(t *testing.T) {
	known := map[string]string{"n1": "active", "n2": "active", "n3": "draining", "n4": "left", "n6": ""}
	got := memberChanges(known, members("n1=active", "n2=dead", "n6=joining", "n7=joining"))
	want := []memberChange{
		{id: "n2", from: "active", to: "dead"},
		{id: "n6", from: "", to: "joining"},
		{id: "n7", from: "", to: "joining"}, // not one of the harness's: still reported
		{id: "n3", from: "draining", to: stateLeft},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("memberChanges = %+v; want %+v", got, want)
	}
	if got := memberChanges(map[string]string{"n1": "active"}, members("n1=active")); len(got) != 0 {
		t.Errorf("no change: %+v", got)
	}
}

// fakeNet is a network of hosts on 127.0.0.1 that records its calls.
type fakeNet struct {
	mu      sync.Mutex
	calls   []string
	removed []string
}

func (f *fakeNet) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}
func (f *fakeNet) Partition(context.Context, [][]string) error { f.record("partition"); return nil }
func (f *fakeNet) Heal(context.Context) error                  { f.record("heal"); return nil }
func (f *fakeNet) AddHost(_ context.Context, id string) (netns.Host, error) {
	f.record("add " + id)
	return netns.Host{ID: id, IP: "127.0.0.1"}, nil
}
func (f *fakeNet) RemoveHost(_ context.Context, id string) error {
	f.record("remove " + id)
	return nil
}

// fakeAdmin is every node's Cluster service: one member list and one
// rebalance status, set by the test.
type fakeAdmin struct {
	ringkvv1.UnimplementedClusterServer
	mu      sync.Mutex
	status  *ringkvv1.StatusResponse
	moves   *ringkvv1.RebalanceStatusResponse
	removed []string
}

func (f *fakeAdmin) set(epoch uint64, pending int, states ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var shards []*ringkvv1.ShardInfo
	for i := range uint32(2) {
		shards = append(shards, &ringkvv1.ShardInfo{Id: i, Leader: "n1", LeaderTerm: 1, Replicas: []string{"n1"}})
	}
	f.status = &ringkvv1.StatusResponse{Epoch: epoch, ShardCount: 2, ReplicationFactor: 3, Members: members(states...), Shards: shards}
	f.moves = &ringkvv1.RebalanceStatusResponse{Epoch: epoch}
	for range pending {
		f.moves.Pending = append(f.moves.Pending, &ringkvv1.Move{Shard: 1, ToNode: "n6", Phase: "pending"})
	}
}

func (f *fakeAdmin) Status(context.Context, *ringkvv1.StatusRequest) (*ringkvv1.StatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, nil
}

func (f *fakeAdmin) RebalanceStatus(context.Context, *ringkvv1.RebalanceStatusRequest) (*ringkvv1.RebalanceStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.moves, nil
}

func (f *fakeAdmin) RemoveNode(_ context.Context, req *ringkvv1.RemoveNodeRequest) (*ringkvv1.RemoveNodeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, req.GetNodeId())
	return &ringkvv1.RemoveNodeResponse{Epoch: f.status.GetEpoch() + 1}, nil
}

// TestMembershipLifecycle drives the cluster's membership bookkeeping
// through a join, a removal, a death and a return, against fake nodes
// (one Cluster service answers for all) and a fake network: the timeline
// records each change, the node that left is stopped and its host
// removed, faults leave it alone, and the cluster settles at the end.
func TestMembershipLifecycle(t *testing.T) {
	admin := &fakeAdmin{}
	admin.set(5, 0, "n1=active", "n2=active", "n3=active", "n4=active", "n5=active")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ringkvv1.RegisterClusterServer(srv, admin)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	port := lis.Addr().(*net.TCPAddr).Port

	// Every "node" is a process that sleeps, whatever its flags.
	dir := t.TempDir()
	bin := filepath.Join(dir, "kvnode")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	fnet := &fakeNet{}
	tl := history.NewTimeline(history.NewClock(), nil)
	c := newCluster(fnet, nodeSpec{binary: bin, dir: dir, port: port}, 2, tl, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer c.stopAll(ctx)
	for i := 1; i <= 5; i++ {
		if err := c.start(netns.Host{ID: "n" + strconv.Itoa(i), IP: "127.0.0.1"}, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.connectAdmin(ctx); err != nil {
		t.Fatal(err)
	}
	c.observe(ctx)
	if evs := tl.Events(); len(evs) != 0 {
		t.Fatalf("the initial members made events: %+v", evs)
	}
	m, err := c.Members(ctx)
	if err != nil || m.Replicas != 3 || m.Hosts != 5 || len(m.Live()) != 5 {
		t.Fatalf("Members = %+v, %v; want 5 live members on 5 hosts, replication factor 3", m, err)
	}

	// n6 joins; n3 is removed.
	id, err := c.Join(ctx)
	if err != nil || id != "n6" {
		t.Fatalf("Join = %q, %v; want n6", id, err)
	}
	if err := c.Remove(ctx, "n3"); err != nil {
		t.Fatalf("Remove(n3): %v", err)
	}
	if !slices.Equal(admin.removed, []string{"n3"}) {
		t.Errorf("RemoveNode calls %v; want [n3]", admin.removed)
	}
	m, _ = c.Members(ctx)
	if live := m.Live(); !slices.Equal(live, []string{"n1", "n2", "n4", "n5"}) || m.Hosts != 6 {
		t.Errorf("after join and remove: live %v on %d hosts; want n1 n2 n4 n5 on 6 (n6 not listed yet, n3 leaving)", live, m.Hosts)
	}
	if why := c.unsettled(ctx, c.observe(ctx)); !strings.Contains(why, "n6 not listed yet") || !strings.Contains(why, "n3 still leaving") {
		t.Errorf("unsettled = %q; want n6 not listed and n3 leaving", why)
	}
	admin.set(6, 2, "n1=active", "n2=active", "n3=draining", "n4=active", "n5=active", "n6=joining")
	c.observe(ctx)
	if why := c.unsettled(ctx, c.observe(ctx)); !strings.Contains(why, "2 moves pending") || !strings.Contains(why, "n6 joining") {
		t.Errorf("unsettled = %q; want the pending moves and n6 joining", why)
	}
	if node, _ := c.directTarget(2); node != "n3" {
		t.Errorf("worker 2 reads from %s; want n3 (draining members still serve direct reads)", node)
	}

	// n3 leaves: it is stopped and its host removed; faults leave it be.
	admin.set(8, 0, "n1=active", "n2=active", "n4=active", "n5=active", "n6=active")
	c.observe(ctx)
	if got := c.Nodes(); !slices.Equal(got, []string{"n1", "n2", "n4", "n5", "n6"}) {
		t.Errorf("Nodes after n3 left = %v", got)
	}
	if !slices.Contains(fnet.calls, "remove n3") {
		t.Errorf("n3's host not removed: network calls %v", fnet.calls)
	}
	if n, _, _ := c.node("n3"); n.proc.Running() {
		t.Error("n3 still runs after it left")
	}
	if err := c.Kill(ctx, "n3"); !errors.Is(err, errLeft) {
		t.Errorf("Kill(n3) after it left = %v; want errLeft", err)
	}
	if err := c.Pause(ctx, "n3"); !errors.Is(err, errLeft) {
		t.Errorf("Pause(n3) after it left = %v; want errLeft", err)
	}
	if err := errors.Join(c.Restart(ctx, "n3"), c.Resume(ctx, "n3")); err != nil {
		t.Errorf("healing n3 after it left: %v; want nothing to do", err)
	}
	if n, _, _ := c.node("n3"); n.proc.Running() {
		t.Error("Restart started n3 after it left")
	}

	// n2 dies and comes back; then everything settles.
	admin.set(9, 1, "n1=active", "n2=dead", "n4=active", "n5=active", "n6=active")
	c.observe(ctx)
	admin.set(10, 1, "n1=active", "n2=joining", "n4=active", "n5=active", "n6=active")
	c.observe(ctx)
	admin.set(11, 0, "n1=active", "n2=active", "n4=active", "n5=active", "n6=active")
	c.observe(ctx)
	// n4 dies and comes back between two looks.
	admin.set(13, 0, "n1=active", "n2=active", "n4=joining", "n5=active", "n6=active")
	c.observe(ctx)
	admin.set(14, 0, "n1=active", "n2=active", "n4=active", "n5=active", "n6=active")
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	if err := c.waitSettled(sctx); err != nil {
		t.Errorf("waitSettled: %v", err)
	}

	var kinds []string
	for _, e := range tl.Events() {
		if e.Type != history.Member || len(e.Nodes) != 1 || e.Desc == "" {
			t.Errorf("event %+v: want a member event naming its node", e)
		}
		kinds = append(kinds, e.Nodes[0]+" "+e.Kind)
	}
	want := []string{"n3 draining", "n6 joining", "n6 active", "n3 left", "n3 stopped", "n2 dead", "n2 joining", "n2 active", "n4 joining", "n4 active"}
	if !slices.Equal(kinds, want) {
		t.Errorf("timeline = %v; want %v", kinds, want)
	}
	got := c.membership()
	wantCounts := report.Membership{JoinsStarted: 1, Joined: 1, RemovalsStarted: 1, Left: 1, Stopped: 1, MarkedDead: 2, MarkedAlive: 2,
		Final: []string{"n1=active", "n2=active", "n4=active", "n5=active", "n6=active"}, FinalEpoch: 14}
	if !reflect.DeepEqual(got, wantCounts) {
		t.Errorf("membership = %+v; want %+v", got, wantCounts)
	}
}
