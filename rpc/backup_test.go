package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

// imageStore answers ShardImage with chunks, then err.
type imageStore struct {
	chunks []router.ImageChunk
	err    error
}

func (s *imageStore) ShardImage(_ context.Context, _ shard.ID, _ bool, send func(router.ImageChunk) error) error {
	for _, c := range s.chunks {
		if err := send(c); err != nil {
			return err
		}
	}
	return s.err
}

// startBackup serves a BackupServer over store and returns a Forwarder that
// reaches it at the returned address.
func startBackup(t *testing.T, store ImageStore) (*Forwarder, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ringkvv1.RegisterBackupServer(srv, NewBackupServer(store))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	addr := lis.Addr().String()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		<-served
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		srv.Stop()
		<-served
	})
	return NewForwarder(fakeConns{addr: cc}), addr
}

// An image crosses a forwarding hop whole: info, records with their TTLs,
// the end counts, and the leader's name.
func TestShardImageForwarded(t *testing.T) {
	taken := time.Unix(1_700_000_000, 5)
	store := &imageStore{chunks: []router.ImageChunk{
		{Info: &router.ShardImageInfo{Shard: 3, ShardCount: 8, Index: 42, TakenAt: taken, Leader: "n2"},
			Records: []router.ImageRecord{{Key: []byte("a"), Value: []byte("1"), TTL: 1500*time.Millisecond + 1}}},
		{Records: []router.ImageRecord{{Key: []byte("b"), Value: []byte("22")}}, End: true, Count: 2, Bytes: 5},
	}}
	fwd, addr := startBackup(t, store)
	var got []string
	leader, err := fwd.ShardImage(callCtx(t), addr, 3, func(c router.ImageChunk) error {
		if c.Info != nil {
			got = append(got, fmt.Sprintf("info %d/%d@%d %v %s", c.Info.Shard, c.Info.ShardCount, c.Info.Index, c.Info.TakenAt.Equal(taken), c.Info.Leader))
		}
		for _, r := range c.Records {
			got = append(got, fmt.Sprintf("%s=%s ttl %v", r.Key, r.Value, r.TTL))
		}
		if c.End {
			got = append(got, fmt.Sprintf("end %d %d", c.Count, c.Bytes))
		}
		return nil
	})
	if err != nil || leader != "n2" {
		t.Fatalf("ShardImage = %q, %v; want n2, nil", leader, err)
	}
	want := "[info 3/8@42 true n2 a=1 ttl 1.501s b=22 ttl 0s end 2 5]" // TTL rounded up to a millisecond
	if fmt.Sprint(got) != want {
		t.Fatalf("forwarded image %v; want %s", got, want)
	}
}

// Before the first chunk, a NotLeader comes back as one, with the hint, so
// the router tries the leader; after it, a failure is ErrImageInterrupted,
// which the router never retries.
func TestShardImageErrorsOverGRPC(t *testing.T) {
	notLeader := &replication.NotLeaderError{Group: 1, LeaderID: "n3"}
	fwd, addr := startBackup(t, &imageStore{err: fmt.Errorf("shard 1: %w", notLeader)})
	_, err := fwd.ShardImage(callCtx(t), addr, 1, func(router.ImageChunk) error { return nil })
	var nl *replication.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != "n3" || errors.Is(err, router.ErrImageInterrupted) {
		t.Fatalf("NotLeader before the stream: %v; want a NotLeaderError naming n3", err)
	}

	started := &imageStore{chunks: []router.ImageChunk{{Info: &router.ShardImageInfo{Shard: 1, ShardCount: 2}}},
		err: fmt.Errorf("%w: leader stepped down", router.ErrImageInterrupted)}
	fwd, addr = startBackup(t, started)
	_, err = fwd.ShardImage(callCtx(t), addr, 1, func(router.ImageChunk) error { return nil })
	if !errors.Is(err, router.ErrImageInterrupted) || errors.As(err, &nl) {
		t.Fatalf("failure after the first chunk: %v; want ErrImageInterrupted and no NotLeaderError", err)
	}

	// A stream that ends without its trailer is interrupted too.
	fwd, addr = startBackup(t, &imageStore{chunks: started.chunks})
	_, err = fwd.ShardImage(callCtx(t), addr, 1, func(router.ImageChunk) error { return nil })
	if !errors.Is(err, router.ErrImageInterrupted) {
		t.Fatalf("stream without a trailer: %v; want ErrImageInterrupted", err)
	}
}
