package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/bulkhead"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/router"
)

func TestToStatusOverload(t *testing.T) {
	full := &bulkhead.FullError{What: "shard 3", Bound: "max-inflight-per-shard", Limit: 4}
	for _, err := range []error{full, fmt.Errorf("shard 3: %w", full), &remoteOverload{msg: full.Error() + " (from a:1)"}} {
		got := toStatus(err)
		st, _ := status.FromError(got)
		if st.Code() != codes.ResourceExhausted || !isOverloadStatus(st) {
			t.Errorf("toStatus(%v) = %v, details %v; want ResourceExhausted with RetryInfo", err, got, st.Details())
		}
		if st.Message() != err.Error() {
			t.Errorf("toStatus(%v) message = %q; want %q", err, st.Message(), err.Error())
		}
	}
	// Negative control: a ResourceExhausted that is not about load (a
	// message over gRPC's limit) carries no RetryInfo.
	for _, err := range []error{
		status.Error(codes.ResourceExhausted, "grpc: received message larger than max"),
		&remoteError{code: codes.ResourceExhausted, msg: "too big (from a:1)"},
	} {
		st, _ := status.FromError(toStatus(err))
		if st.Code() != codes.ResourceExhausted || isOverloadStatus(st) {
			t.Errorf("toStatus(%v) = %v, details %v; want a plain ResourceExhausted", err, st, st.Details())
		}
	}
}

// A leader's refusal for load passes through the forwarding node unchanged:
// ErrFull to the router, the same status to the client.
func TestForwarderPassesOverloadThrough(t *testing.T) {
	full := &bulkhead.FullError{What: "shard 3", Bound: "max-inflight-per-shard", Limit: 4}
	store := &fakeStore{err: fmt.Errorf("shard 3: %w", full)}
	cc, addr := startKV(t, store, Limits{})
	f := NewForwarder(fakeConns{addr: cc})
	_, _, err := f.Get(callCtx(t), addr, []byte("k"))
	if !errors.Is(err, bulkhead.ErrFull) {
		t.Fatalf("forwarded Get = %v; want ErrFull", err)
	}
	st, _ := status.FromError(toStatus(fmt.Errorf("shard 3 via n2: %w", err)))
	if st.Code() != codes.ResourceExhausted || !isOverloadStatus(st) || !strings.Contains(st.Message(), "max-inflight-per-shard (4)") {
		t.Errorf("status at the forwarding node = %v %q; want the leader's overload status", st.Code(), st.Message())
	}

	// Negative control: any other ResourceExhausted is not ErrFull.
	store.mu.Lock()
	store.err = status.Error(codes.ResourceExhausted, "quota")
	store.mu.Unlock()
	_, _, err = f.Get(callCtx(t), addr, []byte("k"))
	if errors.Is(err, bulkhead.ErrFull) {
		t.Fatalf("forwarded Get with a plain ResourceExhausted = %v; must not be ErrFull", err)
	}
}

// blockingStore's Get waits until release is closed.
type blockingStore struct {
	fakeStore
	entered chan struct{}
	release chan struct{}
}

func (s *blockingStore) Get(ctx context.Context, key []byte, forwarded bool) (router.GetResult, error) {
	s.entered <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return router.GetResult{}, ctx.Err()
	}
	return router.GetResult{}, nil
}

func TestNodeBulkheadInterceptor(t *testing.T) {
	lim := bulkhead.New("node", "max-inflight", 2)
	var rejected atomic.Int32
	store := &blockingStore{entered: make(chan struct{}, 10), release: make(chan struct{})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(NodeBulkheadInterceptor(lim, func() { rejected.Add(1) })))
	ringkvv1.RegisterKVServer(srv, NewKVServer(store, Limits{}))
	ringkvv1.RegisterClusterServer(srv, NewClusterServer(&fakeAdmin{status: &ringkvv1.StatusResponse{}}))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			close(store.release)
		}
		cc.Close()
		srv.Stop()
		<-served
	})
	kv := ringkvv1.NewKVClient(cc)

	// Fill the bound with two Gets that wait in the store.
	done := make(chan error, 2)
	for range 2 {
		ctx := callCtx(t)
		go func() {
			_, err := kv.Get(ctx, &ringkvv1.GetRequest{Key: []byte("k")})
			done <- err
		}()
		select {
		case <-store.entered:
		case <-time.After(callTimeout):
			t.Fatal("Get did not reach the store")
		}
	}
	start := time.Now()
	_, err = kv.Get(callCtx(t), &ringkvv1.GetRequest{Key: []byte("k")})
	st, _ := status.FromError(err)
	if st.Code() != codes.ResourceExhausted || !isOverloadStatus(st) || !strings.Contains(st.Message(), "max-inflight (2)") {
		t.Fatalf("Get over the bound = %v; want ResourceExhausted naming max-inflight (2) with RetryInfo", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refusal took %v; want it at once", took)
	}
	if got := rejected.Load(); got != 1 {
		t.Errorf("rejected counted %d; want 1", got)
	}
	// Calls outside the KV API are never refused for load.
	if _, err := ringkvv1.NewClusterClient(cc).Status(callCtx(t), &ringkvv1.StatusRequest{}); err != nil {
		t.Errorf("Cluster.Status while full = %v; must not be refused for load", err)
	}

	close(store.release)
	released = true
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("admitted Get = %v", err)
		}
	}
	if got := lim.InFlight(); got != 0 {
		t.Errorf("InFlight after the calls ended = %d; want 0", got)
	}
	if _, err := kv.Get(callCtx(t), &ringkvv1.GetRequest{Key: []byte("k")}); err != nil {
		t.Errorf("Get after capacity returned = %v; want admitted", err)
	}
}
