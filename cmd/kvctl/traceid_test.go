package main

import (
	"context"
	"net"
	"regexp"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// brokenNode is a one-node cluster whose every Get fails with Internal; it
// records the request IDs it receives.
type brokenNode struct {
	ringkvv1.UnimplementedKVServer
	ringkvv1.UnimplementedClusterServer
	addr string

	mu  sync.Mutex
	ids []string
}

func (n *brokenNode) Status(context.Context, *ringkvv1.StatusRequest) (*ringkvv1.StatusResponse, error) {
	return &ringkvv1.StatusResponse{Epoch: 1, ShardCount: 1, ReplicationFactor: 1, NodeId: "n1",
		Members: []*ringkvv1.Member{{Id: "n1", Address: n.addr, State: "active"}},
		Shards:  []*ringkvv1.ShardInfo{{Id: 0, Replicas: []string{"n1"}, Leader: "n1", LeaderTerm: 1}}}, nil
}

func (n *brokenNode) Get(ctx context.Context, _ *ringkvv1.GetRequest) (*ringkvv1.GetResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	n.mu.Lock()
	n.ids = append(n.ids, md.Get(ringkvv1.MetadataRequestID)...)
	n.mu.Unlock()
	return nil, status.Error(codes.Internal, "disk on fire")
}

// A command that fails for a fault of the cluster prints the request ID it
// sent, which finds the call in the nodes' logs.
func TestErrorShowsRequestID(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &brokenNode{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	ringkvv1.RegisterKVServer(srv, n)
	ringkvv1.RegisterClusterServer(srv, n)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	defer func() {
		srv.Stop()
		<-served
	}()

	r := kvctl(t, "", "--endpoints", n.addr, "get", "k")
	m := regexp.MustCompile(`(?m)^Error: .*disk on fire\nRequest ID: ([0-9a-f]{16})\n$`).FindStringSubmatch(r.stderr)
	if r.code != 1 || m == nil {
		t.Fatalf("kvctl get (an Internal error): %v; want exit 1, the error and its request ID on stderr", r)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.ids) != 1 || n.ids[0] != m[1] {
		t.Errorf("the node received request IDs %v; kvctl printed %s", n.ids, m[1])
	}
}

// Negative control: an answer about the request itself (a missing key) is
// not a fault to trace and shows no request ID.
func TestUserErrorShowsNoRequestID(t *testing.T) {
	fc := newFakeCluster(t)
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "get", "no-such-key")
	if r.code != 1 || r.stderr != "Error: key \"no-such-key\" not found\n" {
		t.Errorf("kvctl get (a missing key): %v; want exit 1 and only the error", r)
	}
}
