package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

// callTimeout bounds every RPC of these tests.
const callTimeout = 5 * time.Second

// startKV serves a KVServer backed by store on 127.0.0.1:0 and returns a
// client connection to it. Cleanup closes the connection, stops the server
// and waits for its Serve goroutine.
func startKV(t *testing.T, store Store, limits Limits) (*grpc.ClientConn, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ringkvv1.RegisterKVServer(srv, NewKVServer(store, limits))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		<-served
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		srv.Stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve = %v", err)
			}
		case <-time.After(callTimeout):
			t.Error("Serve did not return after Stop")
		}
	})
	return cc, lis.Addr().String()
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// The ringkv-leader header reaches a real gRPC client on success and on a
// NotLeader failure.
func TestLeaderHeaderOverGRPC(t *testing.T) {
	store := &fakeStore{writeRes: router.WriteResult{Version: 3, Succeeded: true, Leader: "n1"}}
	cc, _ := startKV(t, store, Limits{})
	kv := ringkvv1.NewKVClient(cc)

	var hdr metadata.MD
	resp, err := kv.Put(callCtx(t), &ringkvv1.PutRequest{Key: []byte("k"), Value: []byte("v")}, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("Put = %v", err)
	}
	if resp.GetVersion() != 3 {
		t.Errorf("Put version = %d; want 3", resp.GetVersion())
	}
	if got := hdr.Get(ringkvv1.MetadataLeader); len(got) != 1 || got[0] != "n1" {
		t.Errorf("Put header %s = %q; want [n1]", ringkvv1.MetadataLeader, got)
	}

	store.mu.Lock()
	store.err = fmt.Errorf("shard 0: %w", &replication.NotLeaderError{LeaderID: "n3"})
	store.mu.Unlock()
	hdr = nil
	_, err = kv.Get(callCtx(t), &ringkvv1.GetRequest{Key: []byte("k")}, grpc.Header(&hdr))
	if c := status.Code(err); c != codes.Unavailable {
		t.Errorf("Get from a follower: code %v (%v); want Unavailable", c, err)
	}
	if got := hdr.Get(ringkvv1.MetadataLeader); len(got) != 1 || got[0] != "n3" {
		t.Errorf("Get from a follower: header %s = %q; want [n3]", ringkvv1.MetadataLeader, got)
	}

	// Validation happens in the handler too when called over the wire.
	store.takeCalls()
	_, err = kv.Get(callCtx(t), &ringkvv1.GetRequest{})
	if c := status.Code(err); c != codes.InvalidArgument {
		t.Errorf("Get(empty key) over gRPC: code %v; want InvalidArgument", c)
	}
	if c := store.takeCalls(); len(c) != 0 {
		t.Errorf("invalid request reached the store: %+v", c)
	}
}

// fakeConns hands out one connection per address, or an error.
type fakeConns map[string]*grpc.ClientConn

func (c fakeConns) Conn(addr string) (*grpc.ClientConn, error) {
	cc, ok := c[addr]
	if !ok {
		return nil, fmt.Errorf("no route to %s", addr)
	}
	return cc, nil
}

func TestForwarderGet(t *testing.T) {
	store := &fakeStore{getRes: router.GetResult{
		Value:  shard.Value{Data: []byte("hello"), Version: 21, CreateVersion: 20},
		Leader: "n2",
	}}
	cc, addr := startKV(t, store, Limits{})
	f := NewForwarder(fakeConns{addr: cc})

	v, leader, err := f.Get(callCtx(t), addr, []byte("k1"))
	if err != nil {
		t.Fatalf("Get = %v", err)
	}
	if string(v.Data) != "hello" || v.Version != 21 || v.CreateVersion != 20 {
		t.Errorf("Get = {%q %d %d}; want {%q 21 20}", v.Data, v.Version, v.CreateVersion, "hello")
	}
	if leader != "n2" {
		t.Errorf("Get leader = %q; want %q", leader, "n2")
	}
	calls := store.takeCalls()
	if len(calls) != 1 || calls[0].op != "get" || string(calls[0].key) != "k1" || !calls[0].forwarded {
		t.Errorf("the peer's store saw %+v; want one forwarded get of %q", calls, "k1")
	}
}

func TestForwarderWrites(t *testing.T) {
	store := &fakeStore{writeRes: router.WriteResult{Version: 40, Existed: true, Succeeded: true, Leader: "n2"}}
	cc, addr := startKV(t, store, Limits{})
	f := NewForwarder(fakeConns{addr: cc})
	rid := shard.RequestID{ClientID: []byte("cid"), Seq: 9, AckedBelow: 7}

	version, leader, err := f.Put(callCtx(t), addr, []byte("k"), []byte("v"), rid)
	if err != nil || version != 40 || leader != "n2" {
		t.Errorf("Put = %d, %q, %v; want 40, %q, nil", version, leader, err, "n2")
	}
	existed, version, leader, err := f.Delete(callCtx(t), addr, []byte("k"), rid)
	if err != nil || !existed || version != 40 || leader != "n2" {
		t.Errorf("Delete = %v, %d, %q, %v; want true, 40, %q, nil", existed, version, leader, err, "n2")
	}
	// Without a client ID the request carries no request ID at all.
	if _, _, err := f.Put(callCtx(t), addr, []byte("k"), []byte("v"), shard.RequestID{Seq: 5}); err != nil {
		t.Fatal(err)
	}

	calls := store.takeCalls()
	if len(calls) != 3 {
		t.Fatalf("the peer's store saw %+v; want 3 calls", calls)
	}
	for i, c := range calls[:2] {
		if !c.forwarded || !bytes.Equal(c.req.ClientID, rid.ClientID) || c.req.Seq != rid.Seq || c.req.AckedBelow != rid.AckedBelow {
			t.Errorf("call %d = %+v; want forwarded with request ID %+v", i, c, rid)
		}
	}
	if c := calls[0]; c.op != "put" || string(c.key) != "k" || string(c.value) != "v" {
		t.Errorf("call 0 = %+v; want put k=v", c)
	}
	if c := calls[1]; c.op != "delete" || string(c.key) != "k" {
		t.Errorf("call 1 = %+v; want delete k", c)
	}
	if c := calls[2]; c.req.ClientID != nil || c.req.Seq != 0 {
		t.Errorf("call 2 request ID = %+v; want zero (no client ID)", c.req)
	}
}

// Errors of the peer come back as the errors the router acts on.
func TestForwarderErrors(t *testing.T) {
	tests := []struct {
		name  string
		err   error // the peer's store error
		key   []byte
		check func(t *testing.T, err error)
	}{
		{"not leader", fmt.Errorf("shard 1: %w", &replication.NotLeaderError{LeaderID: "n3"}), []byte("k"),
			func(t *testing.T, err error) {
				var nl *replication.NotLeaderError
				if !errors.As(err, &nl) || nl.LeaderID != "n3" {
					t.Errorf("err = %#v; want *NotLeaderError naming n3 (from the peer's header)", err)
				}
			}},
		{"no leader", fmt.Errorf("shard 1: %w", router.ErrNoLeader), []byte("k"),
			func(t *testing.T, err error) {
				var nl *replication.NotLeaderError
				if !errors.As(err, &nl) || nl.LeaderID != "" {
					t.Errorf("err = %#v; want *NotLeaderError without a leader", err)
				}
			}},
		{"not found", fmt.Errorf("shard 1: %w", router.ErrNotFound), []byte("k"),
			func(t *testing.T, err error) {
				if !errors.Is(err, router.ErrNotFound) {
					t.Errorf("err = %v; want router.ErrNotFound", err)
				}
			}},
		{"stale request", fmt.Errorf("shard 1: %w", shard.ErrStaleRequest), []byte("k"),
			func(t *testing.T, err error) {
				if c := status.Code(toStatus(err)); c != codes.FailedPrecondition {
					t.Errorf("err = %v maps to %v; want FailedPrecondition", err, c)
				}
			}},
		{"invalid argument", nil, nil, // empty key, refused by the peer's validation
			func(t *testing.T, err error) {
				st := status.Convert(toStatus(fmt.Errorf("shard 1 via n2: %w", err)))
				if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "key is empty") {
					t.Errorf("err = %v maps to %v %q; want InvalidArgument naming the problem", err, st.Code(), st.Message())
				}
			}},
		{"deadline", fmt.Errorf("shard 1: %w", context.DeadlineExceeded), []byte("k"),
			func(t *testing.T, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v; want context.DeadlineExceeded", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeStore{err: tt.err}
			cc, addr := startKV(t, store, Limits{})
			f := NewForwarder(fakeConns{addr: cc})
			_, _, err := f.Get(callCtx(t), addr, tt.key)
			if err == nil {
				t.Fatal("Get = nil error")
			}
			tt.check(t, err)
			_, _, err = f.Put(callCtx(t), addr, tt.key, nil, shard.RequestID{})
			tt.check(t, err)
			_, _, _, err = f.Delete(callCtx(t), addr, tt.key, shard.RequestID{})
			tt.check(t, err)
		})
	}
}

func TestForwarderUnreachable(t *testing.T) {
	f := NewForwarder(fakeConns{})
	ctx := callCtx(t)
	if _, _, err := f.Get(ctx, "10.9.9.9:1", []byte("k")); !errors.Is(err, router.ErrUnreachable) {
		t.Errorf("Get to an unknown peer = %v; want router.ErrUnreachable", err)
	}
	if _, _, err := f.Put(ctx, "10.9.9.9:1", []byte("k"), nil, shard.RequestID{}); !errors.Is(err, router.ErrUnreachable) {
		t.Errorf("Put to an unknown peer = %v; want router.ErrUnreachable", err)
	}
	if _, _, _, err := f.Delete(ctx, "10.9.9.9:1", []byte("k"), shard.RequestID{}); !errors.Is(err, router.ErrUnreachable) {
		t.Errorf("Delete to an unknown peer = %v; want router.ErrUnreachable", err)
	}
}

func TestForwardCtxMarksRequest(t *testing.T) {
	md, ok := metadata.FromOutgoingContext(forwardCtx(context.Background()))
	if !ok || len(md.Get(ringkvv1.MetadataForwarded)) == 0 {
		t.Errorf("forwardCtx metadata = %v; want %s set", md, ringkvv1.MetadataForwarded)
	}
}
