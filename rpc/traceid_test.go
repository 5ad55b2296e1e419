package rpc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/router"
)

func TestValidTraceID(t *testing.T) {
	for id, want := range map[string]bool{
		"0123456789abcdef":      true,
		"order-42:checkout_v1.": true,
		strings.Repeat("a", 64): true,
		"":                      false,
		strings.Repeat("a", 65): false,
		"has space":             false,
		"semi;colon":            false,
		"ünïcode":               false,
	} {
		if got := validTraceID(id); got != want {
			t.Errorf("validTraceID(%q) = %v; want %v", id, got, want)
		}
	}
	for method, want := range map[string]bool{
		"/ringkv.v1.KV/Put":                      true,
		"/ringkv.v1.Cluster/Status":              true,
		"/ringkv.v1.RaftTransport/AppendEntries": false,
		"/grpc.health.v1.Health/Check":           false,
	} {
		if got := traced(method); got != want {
			t.Errorf("traced(%s) = %v; want %v", method, got, want)
		}
	}
	if id := newTraceID(); len(id) != 16 || !validTraceID(id) || id == newTraceID() {
		t.Errorf("newTraceID() = %q; want 16 fresh hex digits", id)
	}
}

// traceStore records the trace ID its Get was called under.
type traceStore struct {
	fakeStore
	mu  sync.Mutex
	ids []string
}

func (s *traceStore) Get(ctx context.Context, key []byte, forwarded bool) (router.GetResult, error) {
	s.mu.Lock()
	s.ids = append(s.ids, TraceID(ctx))
	s.mu.Unlock()
	return router.GetResult{Leader: "n2"}, nil
}

// startTracedKV serves a KVServer with the trace interceptors, logging to
// logs.
func startTracedKV(t *testing.T, store Store, logs *syncLog) (*grpc.ClientConn, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unary, stream := TraceInterceptors(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	ringkvv1.RegisterKVServer(srv, NewKVServer(store, Limits{}))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		srv.Stop()
		<-served
	})
	return cc, lis.Addr().String()
}

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The interceptor takes the caller's ID, logs the call under it and
// returns it; the Forwarder sends the ID of the call being served on to
// the next node.
func TestTraceIDThroughInterceptorAndForwarder(t *testing.T) {
	var leaderLogs syncLog
	store := &traceStore{}
	cc, addr := startTracedKV(t, store, &leaderLogs)

	// A call with an ID: used, returned, logged.
	var hdr metadata.MD
	ctx := metadata.AppendToOutgoingContext(callCtx(t), ringkvv1.MetadataRequestID, "abc-123")
	if _, err := ringkvv1.NewKVClient(cc).Get(ctx, &ringkvv1.GetRequest{Key: []byte("k")}, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(ringkvv1.MetadataRequestID); len(got) != 1 || got[0] != "abc-123" {
		t.Errorf("response header = %v; want [abc-123]", got)
	}
	if !strings.Contains(leaderLogs.String(), "request_id=abc-123 method=/ringkv.v1.KV/Get") {
		t.Errorf("log has no line of the call:\n%s", leaderLogs.String())
	}

	// A node serving call "fwd-7" forwards it: the next node sees fwd-7.
	served := context.WithValue(context.Background(), traceKey{}, traceInfo{id: "fwd-7", base: slog.New(slog.DiscardHandler)})
	f := NewForwarder(fakeConns{addr: cc})
	fctx, cancel := context.WithTimeout(served, callTimeout)
	defer cancel()
	if _, _, err := f.Get(fctx, addr, []byte("k")); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	ids := append([]string(nil), store.ids...)
	store.mu.Unlock()
	if len(ids) != 2 || ids[0] != "abc-123" || ids[1] != "fwd-7" {
		t.Errorf("trace IDs the store saw = %v; want [abc-123 fwd-7]", ids)
	}
	if !strings.Contains(leaderLogs.String(), "request_id=fwd-7 method=/ringkv.v1.KV/Get forwarded=true") {
		t.Errorf("the leader did not log the forwarded call under its ID:\n%s", leaderLogs.String())
	}
}

// A call that fails on the node's side is logged at error level with its
// ID; one that fails for the caller (NotFound) only at debug level.
func TestTraceLogsServerFaultsAsErrors(t *testing.T) {
	var logs syncLog
	store := &fakeStore{err: errors.New("disk on fire")}
	cc, _ := startTracedKV(t, store, &logs)
	ctx := metadata.AppendToOutgoingContext(callCtx(t), ringkvv1.MetadataRequestID, "fault-1")
	if _, err := ringkvv1.NewKVClient(cc).Get(ctx, &ringkvv1.GetRequest{Key: []byte("k")}); status.Code(err) != codes.Internal {
		t.Fatalf("Get = %v; want Internal", err)
	}
	if !strings.Contains(logs.String(), `level=ERROR msg="request failed" request_id=fault-1 method=/ringkv.v1.KV/Get code=Internal`) {
		t.Errorf("no error line for the failed call:\n%s", logs.String())
	}
	store.mu.Lock()
	store.err = router.ErrNotFound
	store.mu.Unlock()
	ctx = metadata.AppendToOutgoingContext(callCtx(t), ringkvv1.MetadataRequestID, "answer-2")
	if _, err := ringkvv1.NewKVClient(cc).Get(ctx, &ringkvv1.GetRequest{Key: []byte("k")}); status.Code(err) != codes.NotFound {
		t.Fatalf("Get = %v; want NotFound", err)
	}
	if !strings.Contains(logs.String(), "level=DEBUG msg=request request_id=answer-2 method=/ringkv.v1.KV/Get code=NotFound") {
		t.Errorf("no debug line for the NotFound call:\n%s", logs.String())
	}
}
