package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/cluster"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/router"
)

type fakeAdmin struct {
	status    *ringkvv1.StatusResponse
	statusErr error
	joinErr   error
	removeErr error
	joined    []string
	removed   []string
}

func (f *fakeAdmin) Status(context.Context) (*ringkvv1.StatusResponse, error) {
	return f.status, f.statusErr
}
func (f *fakeAdmin) Join(_ context.Context, id, addr string) (uint64, error) {
	f.joined = append(f.joined, id+"="+addr)
	return 7, f.joinErr
}
func (f *fakeAdmin) RemoveNode(_ context.Context, id string) (uint64, error) {
	f.removed = append(f.removed, id)
	return 8, f.removeErr
}
func (f *fakeAdmin) RebalanceStatus(context.Context) (*ringkvv1.RebalanceStatusResponse, error) {
	return &ringkvv1.RebalanceStatusResponse{Epoch: 9}, nil
}

func TestClusterServerStatus(t *testing.T) {
	want := &ringkvv1.StatusResponse{Epoch: 3, ShardCount: 64, NodeId: "n1"}
	s := NewClusterServer(&fakeAdmin{status: want})
	got, err := s.Status(context.Background(), &ringkvv1.StatusRequest{})
	if err != nil || got != want {
		t.Errorf("Status() = %v, %v; want %v, nil", got, err, want)
	}

	s = NewClusterServer(&fakeAdmin{statusErr: fmt.Errorf("status: %w", router.ErrNotReady)})
	_, err = s.Status(context.Background(), &ringkvv1.StatusRequest{})
	if c := status.Code(err); c != codes.Unavailable {
		t.Errorf("Status() before metadata loaded: code %v (%v); want Unavailable", c, err)
	}
}

func TestClusterServerJoinValidates(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		id, addr string
		want     string
	}{
		{"", "127.0.0.1:1", "node id"},
		{"n/4", "127.0.0.1:1", "node id"},
		{strings.Repeat("n", 65), "127.0.0.1:1", "1-64"},
		{"n4", "nohost", "host:port"},
	}
	for _, tt := range tests {
		f := &fakeAdmin{}
		_, err := NewClusterServer(f).Join(ctx, &ringkvv1.JoinRequest{NodeId: tt.id, Address: tt.addr})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Join(%q, %q) = %v; want InvalidArgument mentioning %q", tt.id, tt.addr, err, tt.want)
		}
		if len(f.joined) != 0 {
			t.Errorf("Join(%q, %q) reached the node", tt.id, tt.addr)
		}
	}
	f := &fakeAdmin{}
	resp, err := NewClusterServer(f).Join(ctx, &ringkvv1.JoinRequest{NodeId: "n4", Address: "10.0.0.4:7001"})
	if err != nil || resp.GetEpoch() != 7 || len(f.joined) != 1 {
		t.Errorf("Join(n4) = %v, %v (calls %v); want epoch 7", resp, err, f.joined)
	}
}

func TestClusterServerMapsRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("%w: removing n3 would leave 2 nodes for replication factor 3", cluster.ErrTooFewNodes), codes.FailedPrecondition},
		{fmt.Errorf("%w: node %q", cluster.ErrNotMember, "n9"), codes.NotFound},
		{fmt.Errorf("%w: %q is a member at a, not b", cluster.ErrExists, "n2"), codes.AlreadyExists},
		{fmt.Errorf("%w: %q left", cluster.ErrRemoved, "n2"), codes.FailedPrecondition},
		{fmt.Errorf("meta: %w", replication.ErrNotLeader), codes.Unavailable},
	}
	for _, tt := range tests {
		_, err := NewClusterServer(&fakeAdmin{removeErr: tt.err}).RemoveNode(ctx, &ringkvv1.RemoveNodeRequest{NodeId: "n3"})
		if status.Code(err) != tt.want || !strings.Contains(status.Convert(err).Message(), tt.err.Error()) {
			t.Errorf("RemoveNode with %v = %v; want %v carrying the message", tt.err, err, tt.want)
		}
	}
	_, err := NewClusterServer(&fakeAdmin{}).RemoveNode(ctx, &ringkvv1.RemoveNodeRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("RemoveNode(\"\") = %v; want InvalidArgument", err)
	}
}

type fakeMetaLeader struct{ err error }

func (f fakeMetaLeader) ProposeMetaLocal(context.Context, []byte) (uint64, error) { return 5, f.err }
func (f fakeMetaLeader) ReplicaProgress(shard uint32) (bool, uint64, uint64) {
	return shard == 3, 42, 1000
}

type dialer struct{ cc *grpc.ClientConn }

func (d dialer) Conn(string) (*grpc.ClientConn, error) { return d.cc, nil }

// TestMetaProposeRoundTrip checks that a refusal crosses the wire as the
// same cluster error, and failing to commit as a retryable one.
func TestMetaProposeRoundTrip(t *testing.T) {
	tests := []struct {
		err     error
		is      error
		wantMsg string
	}{
		{nil, nil, ""},
		{fmt.Errorf("%w: removing n3 would leave 2 nodes", cluster.ErrTooFewNodes), cluster.ErrTooFewNodes, "would leave 2 nodes"},
		{fmt.Errorf("%w: no move", cluster.ErrMoveConflict), cluster.ErrMoveConflict, "no move"},
		{fmt.Errorf("meta: %w", replication.ErrNotLeader), replication.ErrNotLeader, ""},
	}
	for _, tt := range tests {
		addr := serveMeta(t, fakeMetaLeader{err: tt.err})
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		c := NewMetaClient(dialer{cc})
		epoch, err := c.Propose(context.Background(), addr, []byte(`{}`))
		switch {
		case tt.err == nil && (err != nil || epoch != 5):
			t.Errorf("Propose = %d, %v; want 5, nil", epoch, err)
		case tt.err != nil && !errors.Is(err, tt.is):
			t.Errorf("Propose with %v = %v; want errors.Is %v", tt.err, err, tt.is)
		case tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg):
			t.Errorf("Propose with %v = %v; want the message kept", tt.err, err)
		}
		open, applied, bytes, err := c.ReplicaProgress(context.Background(), addr, 3)
		if err != nil || !open || applied != 42 || bytes != 1000 {
			t.Errorf("ReplicaProgress(3) = %v %d %d %v; want true 42 1000 nil", open, applied, bytes, err)
		}
		cc.Close()
	}
}

func serveMeta(t *testing.T, l MetaLeader) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	ringkvv1.RegisterMetaServer(s, NewMetaServer(l))
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(lis) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return lis.Addr().String()
}
