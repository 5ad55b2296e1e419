package client

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/backup"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// backupNode is a one-node "cluster" of two shards whose SnapshotShard
// streams are scripted per call.
type backupNode struct {
	ringkvv1.UnimplementedClusterServer
	ringkvv1.UnimplementedBackupServer
	addr string

	mu    sync.Mutex
	calls int
	// script answers the calls in turn; past its end, calls get good.
	script []func(req *ringkvv1.SnapshotShardRequest, s ringkvv1.Backup_SnapshotShardServer) error
}

func startBackupNode(t *testing.T) *backupNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &backupNode{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	ringkvv1.RegisterClusterServer(srv, n)
	ringkvv1.RegisterBackupServer(srv, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return n
}

func (n *backupNode) Status(context.Context, *ringkvv1.StatusRequest) (*ringkvv1.StatusResponse, error) {
	return &ringkvv1.StatusResponse{Epoch: 1, ShardCount: 2, NodeId: "n1",
		Members: []*ringkvv1.Member{{Id: "n1", Address: n.addr, State: "active"}},
		Shards: []*ringkvv1.ShardInfo{{Id: 0, Replicas: []string{"n1"}, Leader: "n1"},
			{Id: 1, Replicas: []string{"n1"}, Leader: "n1"}}}, nil
}

func (n *backupNode) SnapshotShard(req *ringkvv1.SnapshotShardRequest, s ringkvv1.Backup_SnapshotShardServer) error {
	n.mu.Lock()
	i := n.calls
	n.calls++
	n.mu.Unlock()
	if i < len(n.script) && n.script[i] != nil {
		return n.script[i](req, s)
	}
	return good(req, s)
}

// good streams two keys of the shard: "sN/a" with a TTL and "sN/b".
func good(req *ringkvv1.SnapshotShardRequest, s ringkvv1.Backup_SnapshotShardServer) error {
	p := string(rune('0' + req.GetShard()))
	s.Send(&ringkvv1.SnapshotShardResponse{Header: &ringkvv1.SnapshotHeader{Shard: req.GetShard(), ShardCount: 2, AppliedIndex: 7, Leader: "n1"},
		Records: []*ringkvv1.SnapshotRecord{{Key: []byte("s" + p + "/a"), Value: []byte("1"), TtlMs: 1500}}})
	return s.Send(&ringkvv1.SnapshotShardResponse{Records: []*ringkvv1.SnapshotRecord{{Key: []byte("s" + p + "/b"), Value: []byte("22")}},
		Trailer: &ringkvv1.SnapshotTrailer{Records: 2, Bytes: 11}})
}

func unavailable(*ringkvv1.SnapshotShardRequest, ringkvv1.Backup_SnapshotShardServer) error {
	return status.Error(codes.Unavailable, "no leader yet")
}

func backupClient(t *testing.T, n *backupNode) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := New(ctx, []string{n.addr}, WithBackoff(time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A shard whose stream fails before it starts is retried; the file holds
// every shard's records with their TTLs and verifies.
func TestSaveSnapshotRetriesBeforeStart(t *testing.T) {
	n := startBackupNode(t)
	n.script = append(n.script, unavailable, unavailable)
	c := backupClient(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var buf bytes.Buffer
	var progress []SaveProgress
	sum, err := c.SaveSnapshot(ctx, &buf, func(p SaveProgress) { progress = append(progress, p) })
	if err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	if sum.Records != 4 || len(progress) != 2 || progress[1].Records != 4 || progress[1].Bytes <= 0 {
		t.Fatalf("summary %d records, progress %+v; want 4 records over 2 shards", sum.Records, progress)
	}
	var got []string
	vsum, err := backup.Read(bytes.NewReader(buf.Bytes()), func(_ backup.ShardBegin, recs []backup.Record) error {
		for _, r := range recs {
			got = append(got, string(r.Key)+"="+string(r.Value)+"/"+r.TTL.String())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the saved file does not verify: %v", err)
	}
	if want := "[s0/a=1/1.5s s0/b=22/0s s1/a=1/1.5s s1/b=22/0s]"; fmtList(got) != want {
		t.Fatalf("file holds %v; want %s", got, want)
	}
	if vsum.SHA256 != sum.SHA256 {
		t.Fatalf("SaveSnapshot's summary SHA-256 %x; the file's %x", sum.SHA256, vsum.SHA256)
	}
}

func fmtList(s []string) string { return "[" + strings.Join(s, " ") + "]" }

// A stream that breaks after it started, or whose trailer does not match
// what it carried, fails the save: it is not retried into the same file.
func TestSaveSnapshotFailsOnBrokenStream(t *testing.T) {
	cases := []struct {
		name string
		call func(*ringkvv1.SnapshotShardRequest, ringkvv1.Backup_SnapshotShardServer) error
		want string
	}{
		{"broken midway", func(req *ringkvv1.SnapshotShardRequest, s ringkvv1.Backup_SnapshotShardServer) error {
			s.Send(&ringkvv1.SnapshotShardResponse{Header: &ringkvv1.SnapshotHeader{Shard: req.GetShard(), ShardCount: 2},
				Records: []*ringkvv1.SnapshotRecord{{Key: []byte("k"), Value: []byte("v")}}})
			return status.Error(codes.Unavailable, "leader lost")
		}, "the stream broke after 1 keys"},
		{"trailer mismatch", func(req *ringkvv1.SnapshotShardRequest, s ringkvv1.Backup_SnapshotShardServer) error {
			return s.Send(&ringkvv1.SnapshotShardResponse{Header: &ringkvv1.SnapshotHeader{Shard: req.GetShard(), ShardCount: 2},
				Records: []*ringkvv1.SnapshotRecord{{Key: []byte("k"), Value: []byte("v")}},
				Trailer: &ringkvv1.SnapshotTrailer{Records: 2, Bytes: 2}})
		}, "its trailer says 2 of 2"},
		{"wrong shard", func(req *ringkvv1.SnapshotShardRequest, s ringkvv1.Backup_SnapshotShardServer) error {
			return s.Send(&ringkvv1.SnapshotShardResponse{Header: &ringkvv1.SnapshotHeader{Shard: 1, ShardCount: 2}})
		}, "sent shard 1 of 2; want shard 0 of 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := startBackupNode(t)
			n.script = append(n.script, tc.call)
			c := backupClient(t, n)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var buf bytes.Buffer
			_, err := c.SaveSnapshot(ctx, &buf, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SaveSnapshot = %v; want an error containing %q", err, tc.want)
			}
			n.mu.Lock()
			calls := n.calls
			n.mu.Unlock()
			if calls != 1 {
				t.Fatalf("%d SnapshotShard calls; want 1 (no retry once started)", calls)
			}
		})
	}
}
