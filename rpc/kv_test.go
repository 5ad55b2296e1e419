package rpc

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

// storeCall is one call a KVServer made to its Store.
type storeCall struct {
	op        string
	key       []byte
	value     []byte
	req       shard.RequestID
	forwarded bool
}

// fakeStore records calls and answers with scripted results.
type fakeStore struct {
	mu       sync.Mutex
	calls    []storeCall
	getRes   router.GetResult
	writeRes router.WriteResult
	err      error
}

func (s *fakeStore) record(c storeCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *fakeStore) takeCalls() []storeCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func (s *fakeStore) Get(_ context.Context, key []byte, forwarded bool) (router.GetResult, error) {
	s.record(storeCall{op: "get", key: key, forwarded: forwarded})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getRes, s.err
}

func (s *fakeStore) PutWith(_ context.Context, key, value []byte, _ router.WriteOptions, req shard.RequestID, forwarded bool) (router.WriteResult, error) {
	s.record(storeCall{op: "put", key: key, value: value, req: req, forwarded: forwarded})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeRes, s.err
}

func (s *fakeStore) DeleteWith(_ context.Context, key []byte, _ router.WriteOptions, req shard.RequestID, forwarded bool) (router.WriteResult, error) {
	s.record(storeCall{op: "delete", key: key, req: req, forwarded: forwarded})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeRes, s.err
}

// The multi-key calls are tested against real clusters (node tests); here
// they only record that the server reached the store.

func (s *fakeStore) Txn(_ context.Context, t router.Txn, req shard.RequestID, forwarded bool) (router.TxnResult, error) {
	s.record(storeCall{op: "txn", req: req, forwarded: forwarded})
	return router.TxnResult{}, s.err
}

func (s *fakeStore) MultiGet(_ context.Context, keys [][]byte, forwarded bool) ([]router.GetItem, error) {
	s.record(storeCall{op: "multiget", forwarded: forwarded})
	return make([]router.GetItem, len(keys)), s.err
}

func (s *fakeStore) MultiPut(_ context.Context, puts []shard.TxnOp, req shard.RequestID, forwarded bool) ([]uint64, error) {
	s.record(storeCall{op: "multiput", req: req, forwarded: forwarded})
	return make([]uint64, len(puts)), s.err
}

func (s *fakeStore) Scan(_ context.Context, q router.ScanQuery) (router.ScanPage, error) {
	s.record(storeCall{op: "scan", key: q.After})
	return router.ScanPage{}, s.err
}

func (s *fakeStore) Watch(ctx context.Context, q router.WatchQuery, start map[shard.ID]uint64, send func(router.WatchBatch) error) error {
	s.record(storeCall{op: "watch", key: q.Key})
	return s.err
}

func (s *fakeStore) WatchShard(ctx context.Context, sid shard.ID, q router.WatchQuery, after uint64, fromNow bool, send func(router.WatchBatch) error) error {
	s.record(storeCall{op: "watchshard", key: q.Key})
	return s.err
}

func (s *fakeStore) ScanShard(_ context.Context, sid shard.ID, q router.ScanQuery, forwarded bool) (router.ScanPage, error) {
	s.record(storeCall{op: "scanshard", key: q.After, forwarded: forwarded})
	return router.ScanPage{}, s.err
}

// fakeStream is a grpc.ServerTransportStream that keeps the headers a
// handler sets, so handlers can be called directly.
type fakeStream struct {
	mu     sync.Mutex
	header metadata.MD
}

func (s *fakeStream) Method() string { return "/ringkv.v1.KV/Test" }

func (s *fakeStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *fakeStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *fakeStream) SetTrailer(metadata.MD) error { return nil }

func (s *fakeStream) leader() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header.Get(ringkvv1.MetadataLeader)
}

// handlerCtx returns a context for calling a handler directly, and the
// stream that collects its headers.
func handlerCtx() (context.Context, *fakeStream) {
	st := &fakeStream{}
	return grpc.NewContextWithServerTransportStream(context.Background(), st), st
}

// call invokes op ("get", "put" or "delete") on s with the given input.
func call(ctx context.Context, s *KVServer, op string, key, value []byte, rid *ringkvv1.RequestID) error {
	var err error
	switch op {
	case "get":
		_, err = s.Get(ctx, &ringkvv1.GetRequest{Key: key})
	case "put":
		_, err = s.Put(ctx, &ringkvv1.PutRequest{Key: key, Value: value, RequestId: rid})
	case "delete":
		_, err = s.Delete(ctx, &ringkvv1.DeleteRequest{Key: key, RequestId: rid})
	default:
		panic(op)
	}
	return err
}

func TestLimitsWithDefaults(t *testing.T) {
	tests := []struct {
		in, want Limits
	}{
		{Limits{}, Limits{MaxKeySize: DefaultMaxKeySize, MaxValueSize: DefaultMaxValueSize}},
		{Limits{MaxKeySize: 10}, Limits{MaxKeySize: 10, MaxValueSize: DefaultMaxValueSize}},
		{Limits{MaxValueSize: 20}, Limits{MaxKeySize: DefaultMaxKeySize, MaxValueSize: 20}},
		{Limits{MaxKeySize: 10, MaxValueSize: 20}, Limits{MaxKeySize: 10, MaxValueSize: 20}},
	}
	for _, tt := range tests {
		if got := tt.in.WithDefaults(); got != tt.want {
			t.Errorf("%+v.WithDefaults() = %+v; want %+v", tt.in, got, tt.want)
		}
	}
	if DefaultMaxKeySize != 4096 || DefaultMaxValueSize != 1<<20 {
		t.Errorf("defaults = %d, %d; want 4096 and 1 MiB as documented", DefaultMaxKeySize, DefaultMaxValueSize)
	}
	if DefaultMaxKeySize > shard.MaxKeySize {
		t.Errorf("DefaultMaxKeySize %d exceeds shard.MaxKeySize %d", DefaultMaxKeySize, shard.MaxKeySize)
	}
	if maxClientIDSize != shard.MaxClientIDSize {
		t.Errorf("maxClientIDSize = %d; want shard.MaxClientIDSize %d", maxClientIDSize, shard.MaxClientIDSize)
	}
}

func TestLimitsMaxMessageSize(t *testing.T) {
	l := Limits{MaxKeySize: 100, MaxValueSize: 1000}
	if got, want := l.MaxMessageSize(), 100+1000+64<<10; got != want {
		t.Errorf("MaxMessageSize() = %d; want %d", got, want)
	}
	d := Limits{}.WithDefaults()
	if got := d.MaxMessageSize(); got <= d.MaxKeySize+d.MaxValueSize {
		t.Errorf("default MaxMessageSize() = %d; want more than key + value = %d", got, d.MaxKeySize+d.MaxValueSize)
	}
}

// Invalid input is InvalidArgument with a message that names the limit,
// and never reaches the store.
func TestKVServerValidation(t *testing.T) {
	k := func(n int) []byte { return bytes.Repeat([]byte("k"), n) }
	v := func(n int) []byte { return bytes.Repeat([]byte("v"), n) }
	id := func(n int) *ringkvv1.RequestID {
		return &ringkvv1.RequestID{ClientId: bytes.Repeat([]byte("c"), n), Seq: 1}
	}
	custom := Limits{MaxKeySize: 8, MaxValueSize: 16}
	keyOnly := Limits{MaxKeySize: 8}

	tests := []struct {
		name    string
		limits  Limits
		ops     []string
		key     []byte
		value   []byte
		rid     *ringkvv1.RequestID
		wantErr string // substring of the InvalidArgument message; "" for OK
	}{
		{"empty key", Limits{}, []string{"get", "put", "delete"}, nil, nil, nil, "key is empty"},
		{"zero-length key", Limits{}, []string{"get", "put", "delete"}, []byte{}, nil, nil, "key is empty"},
		{"one-byte key", Limits{}, []string{"get", "put", "delete"}, k(1), nil, nil, ""},
		{"key at limit", Limits{}, []string{"get", "put", "delete"}, k(DefaultMaxKeySize), nil, nil, ""},
		{"key over limit", Limits{}, []string{"get", "put", "delete"}, k(DefaultMaxKeySize + 1), nil, nil,
			"key is 4097 bytes; the limit is 4096 bytes"},
		{"empty value", Limits{}, []string{"put"}, k(3), nil, nil, ""},
		{"value at limit", Limits{}, []string{"put"}, k(3), v(DefaultMaxValueSize), nil, ""},
		{"value over limit", Limits{}, []string{"put"}, k(3), v(DefaultMaxValueSize + 1), nil,
			"value is 1048577 bytes; the limit is 1048576 bytes"},
		{"no request ID", Limits{}, []string{"put", "delete"}, k(3), nil, nil, ""},
		{"empty client ID", Limits{}, []string{"put", "delete"}, k(3), nil, id(0), ""},
		{"client ID at limit", Limits{}, []string{"put", "delete"}, k(3), nil, id(64), ""},
		{"client ID over limit", Limits{}, []string{"put", "delete"}, k(3), nil, id(65),
			"request_id.client_id is 65 bytes; the limit is 64 bytes"},
		{"custom key at limit", custom, []string{"get", "put", "delete"}, k(8), nil, nil, ""},
		{"custom key over limit", custom, []string{"get", "put", "delete"}, k(9), nil, nil, "the limit is 8 bytes"},
		{"custom key limit below default", custom, []string{"get"}, k(100), nil, nil, "key is 100 bytes; the limit is 8 bytes"},
		{"custom value at limit", custom, []string{"put"}, k(1), v(16), nil, ""},
		{"custom value over limit", custom, []string{"put"}, k(1), v(17), nil, "value is 17 bytes; the limit is 16 bytes"},
		{"custom key, default value", keyOnly, []string{"put"}, k(8), v(DefaultMaxValueSize), nil, ""},
		{"custom key, default value over", keyOnly, []string{"put"}, k(8), v(DefaultMaxValueSize + 1), nil,
			"the limit is " + strconv.Itoa(DefaultMaxValueSize) + " bytes"},
		// The key is checked first.
		{"bad key and value", custom, []string{"put"}, k(9), v(17), nil, "key is 9 bytes"},
	}
	for _, tt := range tests {
		for _, op := range tt.ops {
			store := &fakeStore{writeRes: router.WriteResult{Leader: "n1"}, getRes: router.GetResult{Leader: "n1"}}
			s := NewKVServer(store, tt.limits)
			ctx, _ := handlerCtx()
			err := call(ctx, s, op, tt.key, tt.value, tt.rid)
			calls := store.takeCalls()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("%s: %s = %v; want success", tt.name, op, err)
				}
				if len(calls) != 1 || calls[0].op != op {
					t.Errorf("%s: %s reached the store as %+v; want one %s", tt.name, op, calls, op)
				}
				continue
			}
			if c := status.Code(err); c != codes.InvalidArgument {
				t.Errorf("%s: %s code = %v (%v); want InvalidArgument", tt.name, op, c, err)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.wantErr) {
				t.Errorf("%s: %s message = %q; want it to contain %q", tt.name, op, msg, tt.wantErr)
			}
			if len(calls) != 0 {
				t.Errorf("%s: invalid %s reached the store: %+v", tt.name, op, calls)
			}
		}
	}
}

func TestKVServerPassesRequestsToStore(t *testing.T) {
	store := &fakeStore{
		getRes:   router.GetResult{Value: shard.Value{Data: []byte("val"), Version: 9, CreateVersion: 4}, Leader: "n1"},
		writeRes: router.WriteResult{Version: 12, Existed: true, Succeeded: true, Leader: "n1"},
	}
	s := NewKVServer(store, Limits{})
	ctx, _ := handlerCtx()
	rid := &ringkvv1.RequestID{ClientId: []byte("client"), Seq: 5, AckedBelow: 3}
	wantReq := shard.RequestID{ClientID: []byte("client"), Seq: 5, AckedBelow: 3}

	g, err := s.Get(ctx, &ringkvv1.GetRequest{Key: []byte("k")})
	if err != nil {
		t.Fatalf("Get = %v", err)
	}
	if string(g.GetValue()) != "val" || g.GetVersion() != 9 || g.GetCreateVersion() != 4 {
		t.Errorf("Get = %v; want value %q, version 9, create_version 4", g, "val")
	}

	p, err := s.Put(ctx, &ringkvv1.PutRequest{Key: []byte("k"), Value: []byte("v"), RequestId: rid})
	if err != nil {
		t.Fatalf("Put = %v", err)
	}
	if p.GetVersion() != 12 {
		t.Errorf("Put version = %d; want 12", p.GetVersion())
	}

	d, err := s.Delete(ctx, &ringkvv1.DeleteRequest{Key: []byte("k"), RequestId: rid})
	if err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if !d.GetDeleted() || d.GetVersion() != 12 {
		t.Errorf("Delete = %v; want deleted, version 12", d)
	}

	calls := store.takeCalls()
	if len(calls) != 3 {
		t.Fatalf("store calls = %+v; want 3", calls)
	}
	for i, want := range []storeCall{
		{op: "get", key: []byte("k")},
		{op: "put", key: []byte("k"), value: []byte("v"), req: wantReq},
		{op: "delete", key: []byte("k"), req: wantReq},
	} {
		c := calls[i]
		if c.op != want.op || !bytes.Equal(c.key, want.key) || !bytes.Equal(c.value, want.value) ||
			!bytes.Equal(c.req.ClientID, want.req.ClientID) || c.req.Seq != want.req.Seq ||
			c.req.AckedBelow != want.req.AckedBelow || c.forwarded {
			t.Errorf("store call %d = %+v; want %+v", i, c, want)
		}
	}

	// Without a request ID the write reaches the store with a zero one.
	if _, err := s.Put(ctx, &ringkvv1.PutRequest{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if c := store.takeCalls(); len(c) != 1 || c[0].req.ClientID != nil || c[0].req.Seq != 0 {
		t.Errorf("Put without request ID reached the store as %+v; want a zero RequestID", c)
	}
}

func TestKVServerDeleteMissingKey(t *testing.T) {
	store := &fakeStore{writeRes: router.WriteResult{Version: 30, Existed: false, Succeeded: true, Leader: "n1"}}
	s := NewKVServer(store, Limits{})
	ctx, _ := handlerCtx()
	d, err := s.Delete(ctx, &ringkvv1.DeleteRequest{Key: []byte("gone")})
	if err != nil {
		t.Fatalf("Delete(missing) = %v; want success", err)
	}
	if d.GetDeleted() || d.GetVersion() != 30 {
		t.Errorf("Delete(missing) = %v; want deleted=false, version 30", d)
	}
}

func TestIsForwarded(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{"no metadata", context.Background(), false},
		{"other metadata", metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-other", "1")), false},
		{"forwarded", metadata.NewIncomingContext(context.Background(), metadata.Pairs(ringkvv1.MetadataForwarded, "1")), true},
		{"forwarded, any value", metadata.NewIncomingContext(context.Background(), metadata.Pairs(ringkvv1.MetadataForwarded, "")), true},
		{"forwarded, mixed case key", metadata.NewIncomingContext(context.Background(), metadata.Pairs("Ringkv-Forwarded", "1")), true},
		{"outgoing only", metadata.NewOutgoingContext(context.Background(), metadata.Pairs(ringkvv1.MetadataForwarded, "1")), false},
		{"set by forwardCtx, not incoming", forwardCtx(context.Background()), false},
	}
	for _, tt := range tests {
		if got := isForwarded(tt.ctx); got != tt.want {
			t.Errorf("%s: isForwarded = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestKVServerPassesForwardedFlag(t *testing.T) {
	store := &fakeStore{}
	s := NewKVServer(store, Limits{})
	in := metadata.NewIncomingContext(context.Background(), metadata.Pairs(ringkvv1.MetadataForwarded, "1"))
	for _, op := range []string{"get", "put", "delete"} {
		for _, fwd := range []bool{false, true} {
			ctx := context.Background()
			if fwd {
				ctx = in
			}
			if err := call(ctx, s, op, []byte("k"), nil, nil); err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			if c := store.takeCalls(); len(c) != 1 || c[0].forwarded != fwd {
				t.Errorf("%s with forwarded metadata %v reached the store as %+v; want forwarded=%v", op, fwd, c, fwd)
			}
		}
	}
}

// Every successful answer names the leader that served it; a NotLeader
// failure names the leader the node knows.
func TestKVServerLeaderHeader(t *testing.T) {
	notLeader := fmt.Errorf("shard 3: %w", &replication.NotLeaderError{Group: 3, LeaderID: "n3", LeaderAddr: "a3"})
	noHint := fmt.Errorf("shard 3: %w", &replication.NotLeaderError{Group: 3})
	tests := []struct {
		name       string
		leader     string // in the store's result
		err        error
		wantCode   codes.Code
		wantHeader []string
	}{
		{"success", "n1", nil, codes.OK, []string{"n1"}},
		{"success, leader unknown", "", nil, codes.OK, nil},
		{"not leader with hint", "", notLeader, codes.Unavailable, []string{"n3"}},
		{"no leader after hints", "", fmt.Errorf("shard 3: %w: %w", router.ErrNoLeader, &replication.NotLeaderError{LeaderID: "n2"}),
			codes.Unavailable, []string{"n2"}},
		{"not leader without hint", "", noHint, codes.Unavailable, nil},
		{"not found", "", fmt.Errorf("shard 3: %w", router.ErrNotFound), codes.NotFound, nil},
		{"stale", "", fmt.Errorf("shard 3: %w", shard.ErrStaleRequest), codes.FailedPrecondition, nil},
	}
	for _, tt := range tests {
		for _, op := range []string{"get", "put", "delete"} {
			store := &fakeStore{
				getRes:   router.GetResult{Leader: tt.leader},
				writeRes: router.WriteResult{Leader: tt.leader},
				err:      tt.err,
			}
			s := NewKVServer(store, Limits{})
			ctx, stream := handlerCtx()
			err := call(ctx, s, op, []byte("k"), []byte("v"), nil)
			if c := status.Code(err); c != tt.wantCode {
				t.Errorf("%s: %s code = %v (%v); want %v", tt.name, op, c, err, tt.wantCode)
			}
			if got := stream.leader(); !slices.Equal(got, tt.wantHeader) {
				t.Errorf("%s: %s %s header = %q; want %q", tt.name, op, ringkvv1.MetadataLeader, got, tt.wantHeader)
			}
		}
	}
}

// The status message keeps the wrapped context, and validation failures
// set no leader header.
func TestKVServerErrorDetails(t *testing.T) {
	store := &fakeStore{err: fmt.Errorf("shard 9 via n2: %w", &remoteError{code: codes.InvalidArgument, msg: "key is empty (from a2)"})}
	s := NewKVServer(store, Limits{})
	err := call(context.Background(), s, "get", []byte("k"), nil, nil)
	if c := status.Code(err); c != codes.InvalidArgument {
		t.Errorf("remote InvalidArgument came back as %v (%v)", c, err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "shard 9 via n2") || !strings.Contains(msg, "key is empty") {
		t.Errorf("message = %q; want the wrapped context and the remote message", msg)
	}
	ctx, stream := handlerCtx()
	if err := call(ctx, s, "put", nil, nil, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Put(empty key) = %v; want InvalidArgument", err)
	}
	if got := stream.leader(); len(got) != 0 {
		t.Errorf("validation failure set header %q", got)
	}
}

// The package doc: "Input is validated here, before anything reaches Raft:
// an empty or oversized key ... is InvalidArgument". A key the shard state
// machine cannot hold is oversized whatever the configured limit.
func TestKVServerKeyLimitCappedByShard(t *testing.T) {
	store := &fakeStore{writeRes: router.WriteResult{Leader: "n1"}}
	s := NewKVServer(store, Limits{MaxKeySize: 100000})
	ctx, _ := handlerCtx()
	key := bytes.Repeat([]byte("k"), shard.MaxKeySize+1)
	err := call(ctx, s, "put", key, []byte("v"), nil)
	if c := status.Code(err); c != codes.InvalidArgument {
		t.Errorf("Put(key of %d bytes) with MaxKeySize 100000: code %v; want InvalidArgument", len(key), c)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, strconv.Itoa(shard.MaxKeySize)) {
		t.Errorf("message %q; want it to name the limit %d", msg, shard.MaxKeySize)
	}
	if c := store.takeCalls(); len(c) != 0 {
		t.Errorf("a key over shard.MaxKeySize reached the store: %d calls", len(c))
	}
}

// Unavailable tells the caller to retry, so it may cover an unknown outcome
// only for a write that carries a request ID (rpc/status.go's toStatus doc:
// "Unavailable means retry: the request did not take effect, or it carried a
// request ID so a retry cannot apply it twice"; docs/architecture.md,
// Routing: "unknown outcome of a write that carries a request ID").
func TestKVServerUnknownOutcomeWithoutRequestIDIsNotUnavailable(t *testing.T) {
	outcome := fmt.Errorf("shard 1: group 1: propose: %w: leadership lost", replication.ErrOutcomeUnknown)
	for _, op := range []string{"put", "delete"} {
		s := NewKVServer(&fakeStore{err: outcome}, Limits{})
		ctx, _ := handlerCtx()
		err := call(ctx, s, op, []byte("k"), []byte("v"), nil)
		if c := status.Code(err); c == codes.Unavailable || c == codes.OK {
			t.Errorf("%s without request ID, outcome unknown: code %v; want a code that does not invite a retry", op, c)
		}
	}
}
