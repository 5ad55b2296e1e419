package replication

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// These tests drive the transport between two Muxes with a stand-in for
// Raft on the receiving side, to reach the cases a healthy Raft cluster does
// not: errors, timeouts, closing, unknown groups, large snapshots.

const transportTestWait = 5 * time.Second

func transportTestHeartbeat(from *transportTestNode) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("a"), Addr: []byte(from.addr)},
		Term:      5,
	}
}

// TestTransportRPCs sends each unary RPC through the transport and checks
// that the receiving side sees exactly the request sent and the sender
// exactly the response given.
func TestTransportRPCs(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 3)
	tb := b.transport(t, 3)
	target := raft.ServerAddress(b.addr)

	var mu sync.Mutex
	var got any // the last command b's Raft received
	answers := map[reflect.Type]any{
		reflect.TypeFor[*raft.AppendEntriesRequest](): &raft.AppendEntriesResponse{
			RPCHeader: transportTestHeader(2), Term: 9, LastLog: 13, Success: true, NoRetryBackoff: true},
		reflect.TypeFor[*raft.RequestVoteRequest](): &raft.RequestVoteResponse{
			RPCHeader: transportTestHeader(2), Term: 9, Peers: []byte("p"), Granted: true},
		reflect.TypeFor[*raft.RequestPreVoteRequest](): &raft.RequestPreVoteResponse{
			RPCHeader: transportTestHeader(2), Term: 9, Granted: true},
		reflect.TypeFor[*raft.TimeoutNowRequest](): &raft.TimeoutNowResponse{RPCHeader: transportTestHeader(2)},
	}
	transportServeRPCs(t, tb, func(rpc raft.RPC) {
		mu.Lock()
		got = rpc.Command
		mu.Unlock()
		rpc.Respond(answers[reflect.TypeOf(rpc.Command)], nil)
	})
	check := func(name string, sent, resp any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !reflect.DeepEqual(got, sent) {
			t.Errorf("%s: receiver got\n%#v\nwant\n%#v", name, got, sent)
		}
		if want := answers[reflect.TypeOf(sent)]; !reflect.DeepEqual(resp, want) {
			t.Errorf("%s: sender got response\n%#v\nwant\n%#v", name, resp, want)
		}
	}

	ae := &raft.AppendEntriesRequest{RPCHeader: transportTestHeader(1), Term: 9, Leader: []byte("l"),
		PrevLogEntry: 10, PrevLogTerm: 3, Entries: transportTestLogs(), LeaderCommitIndex: 9}
	aeResp := new(raft.AppendEntriesResponse)
	check("AppendEntries", ae, aeResp, ta.AppendEntries("b", target, ae, aeResp))

	rv := &raft.RequestVoteRequest{RPCHeader: transportTestHeader(1), Term: 9, Candidate: []byte("c"),
		LastLogIndex: 4, LastLogTerm: 2, LeadershipTransfer: true}
	rvResp := new(raft.RequestVoteResponse)
	check("RequestVote", rv, rvResp, ta.RequestVote("b", target, rv, rvResp))

	pv := &raft.RequestPreVoteRequest{RPCHeader: transportTestHeader(1), Term: 9, LastLogIndex: 4, LastLogTerm: 2}
	pvResp := new(raft.RequestPreVoteResponse)
	check("RequestPreVote", pv, pvResp, ta.RequestPreVote("b", target, pv, pvResp))

	tn := &raft.TimeoutNowRequest{RPCHeader: transportTestHeader(1)}
	tnResp := new(raft.TimeoutNowResponse)
	check("TimeoutNow", tn, tnResp, ta.TimeoutNow("b", target, tn, tnResp))

	if got, want := ta.LocalAddr(), raft.ServerAddress(a.addr); got != want {
		t.Errorf("LocalAddr() = %q; want %q", got, want)
	}
	if got := ta.DecodePeer(ta.EncodePeer("b", target)); got != target {
		t.Errorf("DecodePeer(EncodePeer(%q)) = %q", target, got)
	}
}

// TestTransportRaftErrors checks that an error Raft answers with reaches the
// sender, wrapped with the group, call and target.
func TestTransportRaftErrors(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 3)
	tb := b.transport(t, 3)
	target := raft.ServerAddress(b.addr)
	transportServeRPCs(t, tb, func(rpc raft.RPC) {
		switch rpc.Command.(type) {
		case *raft.AppendEntriesRequest:
			// As Raft does for a failed append: an error and a response.
			rpc.Respond(&raft.AppendEntriesResponse{Term: 4, LastLog: 2}, errors.New("disk on fire"))
		default:
			// As Raft's header check does: an error and no response.
			rpc.Respond(nil, raft.ErrUnsupportedProtocol)
		}
	})

	resp := new(raft.AppendEntriesResponse)
	err := ta.AppendEntries("b", target, &raft.AppendEntriesRequest{Term: 4, PrevLogEntry: 1}, resp)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "raft group 3") {
		t.Errorf("AppendEntries = %v; want the remote error, naming the group", err)
	}
	if resp.Term != 4 || resp.LastLog != 2 {
		t.Errorf("AppendEntries response = %+v; want the one sent with the error", resp)
	}

	err = ta.RequestVote("b", target, &raft.RequestVoteRequest{Term: 4}, new(raft.RequestVoteResponse))
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), raft.ErrUnsupportedProtocol.Error()) ||
		!strings.Contains(err.Error(), string(target)) {
		t.Errorf("RequestVote = %v; want code Unknown with the remote error, naming the target", err)
	}
}

// TestTransportHeartbeatFastPath checks that heartbeats go to the heartbeat
// handler, when one is set, and everything else to Consumer.
func TestTransportHeartbeatFastPath(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 1)
	tb := b.transport(t, 1)
	target := raft.ServerAddress(b.addr)

	var mu sync.Mutex
	var viaHandler, viaConsumer int
	ok := &raft.AppendEntriesResponse{Term: 5, Success: true}
	transportServeRPCs(t, tb, func(rpc raft.RPC) {
		mu.Lock()
		viaConsumer++
		mu.Unlock()
		rpc.Respond(ok, nil)
	})
	heartbeat := transportTestHeartbeat(a)
	entries := &raft.AppendEntriesRequest{RPCHeader: heartbeat.RPCHeader, Term: 5, PrevLogEntry: 1, PrevLogTerm: 1}

	// No handler yet: the heartbeat goes to Consumer.
	if err := ta.AppendEntries("b", target, heartbeat, new(raft.AppendEntriesResponse)); err != nil {
		t.Fatalf("heartbeat without handler: %v", err)
	}
	tb.SetHeartbeatHandler(func(rpc raft.RPC) {
		if _, ok := rpc.Command.(*raft.AppendEntriesRequest); !ok {
			t.Errorf("heartbeat handler got %T", rpc.Command)
		}
		mu.Lock()
		viaHandler++
		mu.Unlock()
		rpc.Respond(ok, nil)
	})
	for range 3 {
		resp := new(raft.AppendEntriesResponse)
		if err := ta.AppendEntries("b", target, heartbeat, resp); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if !resp.Success {
			t.Errorf("heartbeat response %+v; want success", resp)
		}
	}
	if err := ta.AppendEntries("b", target, entries, new(raft.AppendEntriesResponse)); err != nil {
		t.Fatalf("AppendEntries: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if viaHandler != 3 || viaConsumer != 2 {
		t.Errorf("%d RPCs via the heartbeat handler, %d via Consumer; want 3 and 2", viaHandler, viaConsumer)
	}
	if got := b.heartbeatStreams.Load(); got != 1 {
		t.Errorf("4 heartbeats opened %d heartbeat streams; want 1", got)
	}
	if got := b.pipelineStreams.Load(); got != 0 {
		t.Errorf("heartbeats opened %d pipeline streams; want 0", got)
	}
}

// TestTransportHeartbeatTimeout checks that a heartbeat nobody answers fails
// after RPCTimeout and that the next heartbeat, on a new stream, succeeds.
func TestTransportHeartbeatTimeout(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{RPCTimeout: 100 * time.Millisecond})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 1)
	tb := b.transport(t, 1)
	target := raft.ServerAddress(b.addr)
	var calls atomic.Int64
	tb.SetHeartbeatHandler(func(rpc raft.RPC) {
		if calls.Add(1) == 1 {
			return // lost, as by a Raft shutting down
		}
		rpc.Respond(&raft.AppendEntriesResponse{Term: 5, Success: true}, nil)
	})

	err := transportWithin(t, transportTestWait, "an unanswered heartbeat", func() error {
		return ta.AppendEntries("b", target, transportTestHeartbeat(a), new(raft.AppendEntriesResponse))
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered heartbeat = %v; want context.DeadlineExceeded", err)
	}
	resp := new(raft.AppendEntriesResponse)
	if err := ta.AppendEntries("b", target, transportTestHeartbeat(a), resp); err != nil || !resp.Success {
		t.Errorf("heartbeat after a timeout = %v, %+v; want success", err, resp)
	}
	if got := b.heartbeatStreams.Load(); got != 2 {
		t.Errorf("%d heartbeat streams opened; want 2 (one replaced after the timeout)", got)
	}
}

// TestTransportIdleStreamEndsWithGroup checks that an idle pipeline stream,
// as a leader that stepped down leaves it, ends on the serving side as soon
// as its group closes there; and that the heartbeat stream, which serves
// every group, ends there when the last group closes (so that a node
// shutting down can stop its server gracefully), and the sender opens a new
// one when needed.
func TestTransportIdleStreamEndsWithGroup(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{CoalesceWindow: -1})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 1)
	tb := b.transport(t, 1)
	tb2 := b.transport(t, 2)
	target := raft.ServerAddress(b.addr)
	transportServeRPCs(t, tb, func(rpc raft.RPC) { rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil) })
	ok := func(rpc raft.RPC) { rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil) }
	tb.SetHeartbeatHandler(ok)
	tb2.SetHeartbeatHandler(ok)

	p, err := ta.AppendEntriesPipeline("b", target)
	if err != nil {
		t.Fatalf("AppendEntriesPipeline: %v", err)
	}
	defer p.Close()
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: 1}, new(raft.AppendEntriesResponse)); err != nil {
		t.Fatalf("pipeline AppendEntries: %v", err)
	}
	if f := transportWithin(t, transportTestWait, "pipeline response", func() raft.AppendFuture { return <-p.Consumer() }); f.Error() != nil {
		t.Fatalf("pipeline response: %v", f.Error())
	}
	if err := ta.AppendEntries("b", target, transportTestHeartbeat(a), new(raft.AppendEntriesResponse)); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if np, nh := b.activePipelines.Load(), b.activeHeartbeats.Load(); np != 1 || nh != 1 {
		t.Fatalf("%d pipeline and %d heartbeat handlers running; want 1 and 1", np, nh)
	}

	tb.Close()
	transportEventually(t, transportTestWait, "the idle pipeline's handler to end", func() error {
		if n := b.activePipelines.Load(); n != 0 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	if n := b.activeHeartbeats.Load(); n != 1 {
		t.Errorf("%d heartbeat handlers running while group 2 is open; want 1", n)
	}

	tb2.Close()
	transportEventually(t, transportTestWait, "the heartbeat stream's handler to end", func() error {
		if n := b.activeHeartbeats.Load(); n != 0 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})

	// The sender notices and opens a new stream for its next heartbeat.
	tb3 := b.transport(t, 1)
	tb3.SetHeartbeatHandler(ok)
	transportEventually(t, transportTestWait, "a heartbeat on a new stream", func() error {
		return ta.AppendEntries("b", target, transportTestHeartbeat(a), new(raft.AppendEntriesResponse))
	})
	if got := b.heartbeatStreams.Load(); got != 2 {
		t.Errorf("%d heartbeat streams opened; want 2", got)
	}
}

// TestTransportUnknownGroup checks that every RPC for a group the node does
// not run fails with InvalidArgument naming the group.
func TestTransportUnknownGroup(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{})
	b := newTransportTestNode(t, MuxConfig{})
	b.transport(t, 1) // another group
	ta := a.transport(t, 17)
	target := raft.ServerAddress(b.addr)

	const msg = "unknown raft group 17"
	want := func(name string, err error) {
		t.Helper()
		if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || !strings.Contains(s.Message(), msg) {
			t.Errorf("%s = %v; want code InvalidArgument, message %q", name, err, msg)
		}
	}
	want("AppendEntries", ta.AppendEntries("b", target, transportTestHeartbeat(a), new(raft.AppendEntriesResponse)))
	want("RequestVote", ta.RequestVote("b", target, &raft.RequestVoteRequest{}, new(raft.RequestVoteResponse)))
	want("RequestPreVote", ta.RequestPreVote("b", target, &raft.RequestPreVoteRequest{}, new(raft.RequestPreVoteResponse)))
	want("TimeoutNow", ta.TimeoutNow("b", target, &raft.TimeoutNowRequest{}, new(raft.TimeoutNowResponse)))
	want("InstallSnapshot", ta.InstallSnapshot("b", target, &raft.InstallSnapshotRequest{Size: 3},
		new(raft.InstallSnapshotResponse), strings.NewReader("abc")))

	p, err := ta.AppendEntriesPipeline("b", target)
	if err != nil {
		t.Fatalf("AppendEntriesPipeline: %v", err)
	}
	defer p.Close()
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err != nil {
		t.Fatalf("pipeline AppendEntries: %v", err)
	}
	f := transportWithin(t, transportTestWait, "pipeline response", func() raft.AppendFuture { return <-p.Consumer() })
	want("pipelined AppendEntries", f.Error())
	if !errors.Is(f.Error(), raft.ErrPipelineShutdown) {
		t.Errorf("pipelined AppendEntries = %v; want it to wrap raft.ErrPipelineShutdown", f.Error())
	}

	// The exact status, seen by a plain client.
	conn, err := grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = ringkvv1.NewRaftTransportClient(conn).AppendEntries(context.Background(), &ringkvv1.AppendEntriesRequest{Group: 17})
	if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || s.Message() != msg {
		t.Errorf("AppendEntries(group 17) = %v; want InvalidArgument %q", err, msg)
	}
}

// TestTransportTimeout checks that a peer whose Raft never answers fails
// the call after RPCTimeout, and the serving side gives up too.
func TestTransportTimeout(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{RPCTimeout: 100 * time.Millisecond})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 1)
	b.transport(t, 1) // nobody reads its Consumer

	start := time.Now()
	err := transportWithin(t, transportTestWait, "RequestVote", func() error {
		return ta.RequestVote("b", raft.ServerAddress(b.addr), &raft.RequestVoteRequest{}, new(raft.RequestVoteResponse))
	})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("RequestVote = %v after %v; want code DeadlineExceeded", err, time.Since(start))
	}
}

// TestTransportClose checks Close on both sides: calls waiting on a closed
// group fail promptly, and a closed transport refuses new calls.
func TestTransportClose(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 1)
	tb := b.transport(t, 1)
	target := raft.ServerAddress(b.addr)

	// b's Raft takes the RPC and never answers; closing b's transport fails
	// the call instead of leaving it to time out.
	taken := make(chan struct{})
	transportServeRPCs(t, tb, func(raft.RPC) { close(taken) })
	errc := make(chan error, 1)
	go func() {
		errc <- ta.RequestVote("b", target, &raft.RequestVoteRequest{}, new(raft.RequestVoteResponse))
	}()
	transportWithin(t, transportTestWait, "b taking the RPC", func() struct{} { <-taken; return struct{}{} })
	tb.Close()
	err := transportWithin(t, transportTestWait, "RequestVote to a closed group", func() error { return <-errc })
	if status.Code(err) != codes.Unavailable {
		t.Errorf("RequestVote to a group closed mid-call = %v; want code Unavailable", err)
	}
	if got := b.mux.Stats().Groups; got != 0 {
		t.Errorf("%d groups registered after Close; want 0", got)
	}

	// A group can register again once its transport is closed, but not twice.
	tb2 := b.transport(t, 1)
	if _, err := b.mux.Transport(1); !errors.Is(err, ErrDuplicateTransport) {
		t.Errorf("second Transport(1) = %v; want ErrDuplicateTransport", err)
	}

	// a's Close aborts a call in flight and refuses new ones.
	taken2 := make(chan struct{})
	transportServeRPCs(t, tb2, func(raft.RPC) { close(taken2) })
	go func() {
		errc <- ta.RequestVote("b", target, &raft.RequestVoteRequest{}, new(raft.RequestVoteResponse))
	}()
	transportWithin(t, transportTestWait, "b taking the RPC", func() struct{} { <-taken2; return struct{}{} })
	ta.Close()
	err = transportWithin(t, transportTestWait, "RequestVote from a closed transport", func() error { return <-errc })
	if !errors.Is(err, raft.ErrTransportShutdown) {
		t.Errorf("RequestVote aborted by Close = %v; want raft.ErrTransportShutdown", err)
	}
	err = ta.AppendEntries("b", target, &raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse))
	if !errors.Is(err, raft.ErrTransportShutdown) {
		t.Errorf("AppendEntries after Close = %v; want raft.ErrTransportShutdown", err)
	}
	if _, err := ta.AppendEntriesPipeline("b", target); !errors.Is(err, raft.ErrTransportShutdown) {
		t.Errorf("AppendEntriesPipeline after Close = %v; want raft.ErrTransportShutdown", err)
	}

	// A closed Mux refuses new groups.
	a.mux.Close()
	if _, err := a.mux.Transport(2); !errors.Is(err, raft.ErrTransportShutdown) {
		t.Errorf("Transport after Mux.Close = %v; want raft.ErrTransportShutdown", err)
	}
}

func TestTransportConfig(t *testing.T) {
	bad := []MuxConfig{
		{},
		{LocalAddr: "x:1", RPCTimeout: -1},
		{LocalAddr: "x:1", SnapshotTimeoutScale: -1},
		{LocalAddr: "x:1", SnapshotChunkSize: 4 << 20},
		{LocalAddr: "x:1", MaxInFlight: -1},
		{LocalAddr: "x:1", RPCTimeout: time.Second, CoalesceWindow: time.Second},
		{LocalAddr: "x:1", CoalesceWindow: DefaultRPCTimeout},
	}
	for _, cfg := range bad {
		if cfg.Validate() == nil {
			t.Errorf("Validate(%+v) = nil; want an error", cfg)
		}
		m := NewMux(cfg)
		if _, err := m.Transport(1); err == nil {
			t.Errorf("Transport on a Mux with config %+v succeeded; want the config error", cfg)
		}
		m.Close()
	}
	if err := (MuxConfig{LocalAddr: "x:1"}).Validate(); err != nil {
		t.Errorf("Validate of the minimal config: %v", err)
	}

	m := NewMux(MuxConfig{LocalAddr: "x:1", MaxInFlight: 1})
	defer m.Close()
	tr, err := m.Transport(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.AppendEntriesPipeline("b", "y:1"); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Errorf("AppendEntriesPipeline with MaxInFlight 1 = %v; want raft.ErrPipelineReplicationNotSupported", err)
	}

	for _, tc := range []struct {
		size int64
		want time.Duration
	}{
		{0, 10 * time.Second},
		{256 << 10, 10 * time.Second},
		{100 << 20, 400 * 10 * time.Second},
		{1 << 62, 1 << 62},
	} {
		if got := snapshotTimeout(10*time.Second, 256<<10, tc.size); got != tc.want {
			t.Errorf("snapshotTimeout(size %d) = %v; want %v", tc.size, got, tc.want)
		}
	}
}

// TestTransportPipeline sends many requests on a pipeline and checks that
// they arrive, and complete, in order.
func TestTransportPipeline(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{MaxInFlight: 8})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 1)
	tb := b.transport(t, 1)
	target := raft.ServerAddress(b.addr)

	var next uint64 = 1 // the index b expects next
	transportServeRPCs(t, tb, func(rpc raft.RPC) {
		req := rpc.Command.(*raft.AppendEntriesRequest)
		resp := &raft.AppendEntriesResponse{Term: req.Term, LastLog: next - 1, Success: req.PrevLogEntry == next-1}
		if resp.Success {
			next += uint64(len(req.Entries))
			resp.LastLog = next - 1
		}
		rpc.Respond(resp, nil)
	})

	p, err := ta.AppendEntriesPipeline("b", target)
	if err != nil {
		t.Fatalf("AppendEntriesPipeline: %v", err)
	}
	const n = 100
	sent := make(chan *raft.AppendEntriesRequest, n)
	sendErr := make(chan error, 1)
	go func() { // Raft's sending side
		var index uint64
		for i := range n {
			req := &raft.AppendEntriesRequest{Term: 2, PrevLogEntry: index, PrevLogTerm: 2, LeaderCommitIndex: index}
			for range 1 + i%3 {
				index++
				req.Entries = append(req.Entries, &raft.Log{Index: index, Term: 2, Data: []byte("entry")})
			}
			if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
				sendErr <- err
				return
			}
			sent <- req
		}
		sendErr <- nil
	}()
	for i := range n { // Raft's decoding side
		f := transportWithin(t, transportTestWait, "a pipeline response", func() raft.AppendFuture { return <-p.Consumer() })
		if err := f.Error(); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		req := <-sent
		if f.Request() != req {
			t.Fatalf("response %d is for another request", i)
		}
		last := req.Entries[len(req.Entries)-1].Index
		if r := f.Response(); !r.Success || r.LastLog != last || r.Term != 2 {
			t.Fatalf("response %d = %+v; want success up to %d", i, r, last)
		}
		if f.Start().IsZero() {
			t.Errorf("response %d has no start time", i)
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("pipeline AppendEntries: %v", err)
	}
	if st := a.mux.Stats(); st.PipelineRequests != n || st.PipelineEntries != uint64(next-1) {
		t.Errorf("stats %+v; want %d requests of %d entries", st, n, next-1)
	}

	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse)); !errors.Is(err, raft.ErrPipelineShutdown) {
		t.Errorf("AppendEntries on a closed pipeline = %v; want raft.ErrPipelineShutdown", err)
	}
}

// TestTransportPipelineBreaks checks that a pipeline whose peer group goes
// away fails its requests, so that Raft falls back to AppendEntries.
func TestTransportPipelineBreaks(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 1)
	tb := b.transport(t, 1)
	target := raft.ServerAddress(b.addr)
	transportServeRPCs(t, tb, func(rpc raft.RPC) { rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil) })

	p, err := ta.AppendEntriesPipeline("b", target)
	if err != nil {
		t.Fatalf("AppendEntriesPipeline: %v", err)
	}
	defer p.Close()
	send := func() (raft.AppendFuture, error) {
		return p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: 1}, new(raft.AppendEntriesResponse))
	}
	if _, err := send(); err != nil {
		t.Fatalf("AppendEntries: %v", err)
	}
	if f := <-p.Consumer(); f.Error() != nil || !f.Response().Success {
		t.Fatalf("first response: %v, %+v", f.Error(), f.Response())
	}

	tb.Close()
	// The next request fails, either in its future, with an unsuccessful
	// response and the server's status, or (if the stream has already
	// ended) when sent; later ones fail when sent.
	f, err := send()
	if err == nil {
		f = transportWithin(t, transportTestWait, "the failed response", func() raft.AppendFuture { return <-p.Consumer() })
		err = f.Error()
		if f.Response().Success {
			t.Errorf("failed request has a successful response")
		}
		if status.Code(err) != codes.Unavailable {
			t.Errorf("AppendEntries to a closed group = %v; want code Unavailable", err)
		}
	}
	if !errors.Is(err, raft.ErrPipelineShutdown) {
		t.Errorf("AppendEntries to a closed group = %v; want raft.ErrPipelineShutdown", err)
	}
	if _, err := send(); !errors.Is(err, raft.ErrPipelineShutdown) {
		t.Errorf("AppendEntries on a broken pipeline = %v; want raft.ErrPipelineShutdown", err)
	}
}

// TestTransportPipelineStallFails: when Raft stops taking responses (its
// pipeline decoder exits on seeing a newer term) while its send loop keeps
// sending, AppendEntries must not block forever once the pipeline is full:
// it fails after RPCTimeout, so that Raft's send loop returns, notices the
// decoder is gone and closes the pipeline. Found by jepsen-lite: the stuck
// send loop also made the group's Shutdown hang.
func TestTransportPipelineStallFails(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{RPCTimeout: 300 * time.Millisecond})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 1)
	tb := b.transport(t, 1)
	transportServeRPCs(t, tb, func(rpc raft.RPC) { rpc.Respond(&raft.AppendEntriesResponse{Term: 3, Success: false}, nil) })

	p, err := ta.AppendEntriesPipeline("b", raft.ServerAddress(b.addr))
	if err != nil {
		t.Fatalf("AppendEntriesPipeline: %v", err)
	}
	// Nobody reads p.Consumer(). With the default MaxInFlight (2) the
	// receive loop holds one response and the second request waits for
	// room; a few more sends must end in an error, not hang.
	errc := make(chan error, 1)
	go func() {
		for range 10 {
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 2}, new(raft.AppendEntriesResponse)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	err = transportWithin(t, transportTestWait, "a stalled pipeline's AppendEntries to return", func() error { return <-errc })
	if !errors.Is(err, raft.ErrPipelineShutdown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AppendEntries on a stalled pipeline = %v; want raft.ErrPipelineShutdown wrapping a deadline", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	if err := transportWithin(t, transportTestWait, "Close of a stalled pipeline", func() error { return <-closed }); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// transportSnapshotData is a deterministic snapshot of size bytes, generated
// as it is read: a random block, rotated differently at every repetition so
// that chunks out of order change the checksum.
func transportSnapshotData(size int64) io.Reader {
	block := make([]byte, 64<<10-7) // not a divisor of the chunk size
	rand.NewChaCha8([32]byte{'r', 'i', 'n', 'g', 'k', 'v'}).Read(block)
	return io.LimitReader(&transportPatternReader{block: block}, size)
}

type transportPatternReader struct {
	block []byte
	rep   int // repetitions of block read so far
	off   int // offset in the current repetition
}

func (r *transportPatternReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		rot := (r.rep * 7919) % len(r.block)
		i := (rot + r.off) % len(r.block)
		m := copy(p[n:], r.block[i:min(len(r.block), i+len(r.block)-r.off)])
		n += m
		r.off += m
		if r.off == len(r.block) {
			r.rep, r.off = r.rep+1, 0
		}
	}
	return n, nil
}

// TestTransportInstallSnapshot streams a snapshot of many chunks and checks
// that the receiving Raft reads exactly its bytes, and reads them as they
// arrive: the sender's data does not go past its first MiB until the
// receiver has read that MiB, so a transport that buffered the snapshot
// would never deliver it.
func TestTransportInstallSnapshot(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 1)
	tb := b.transport(t, 1)
	target := raft.ServerAddress(b.addr)
	const size, gateAt = 8 << 20, 1 << 20 // 32 chunks

	type received struct {
		req *raft.InstallSnapshotRequest
		n   int64
		err error
		sum [sha256.Size]byte
	}
	receivedCh := make(chan received, 1)
	gate := make(chan struct{})
	transportServeRPCs(t, tb, func(rpc raft.RPC) {
		r := received{req: rpc.Command.(*raft.InstallSnapshotRequest)}
		h := sha256.New()
		r.n, r.err = io.CopyN(h, rpc.Reader, gateAt)
		if r.err == nil {
			close(gate)
			var rest int64
			rest, r.err = io.Copy(h, rpc.Reader)
			r.n += rest
		}
		h.Sum(r.sum[:0])
		receivedCh <- r
		rpc.Respond(&raft.InstallSnapshotResponse{Term: r.req.Term, Success: r.err == nil && r.n == size}, nil)
	})

	req := &raft.InstallSnapshotRequest{RPCHeader: transportTestHeader(1), SnapshotVersion: 1, Term: 6,
		Leader: []byte("l"), LastLogIndex: 1000, LastLogTerm: 5, Configuration: []byte("conf"),
		ConfigurationIndex: 900, Size: size}
	resp := new(raft.InstallSnapshotResponse)
	data := &transportGatedReader{r: transportSnapshotData(size), gateAt: gateAt, gate: gate}
	err := transportWithin(t, transportTestWait, "InstallSnapshot", func() error {
		return ta.InstallSnapshot("b", target, req, resp, data)
	})
	if err != nil {
		t.Fatalf("InstallSnapshot: %v", err)
	}
	if !resp.Success || resp.Term != 6 {
		t.Errorf("response %+v; want success in term 6", resp)
	}
	got := <-receivedCh
	if !reflect.DeepEqual(got.req, req) {
		t.Errorf("receiver got request\n%#v\nwant\n%#v", got.req, req)
	}
	h := sha256.New()
	io.Copy(h, transportSnapshotData(size))
	if want := [sha256.Size]byte(h.Sum(nil)); got.err != nil || got.n != size || got.sum != want {
		t.Errorf("receiver read %d bytes (error %v), checksum match %v; want %d bytes, matching",
			got.n, got.err, got.sum == want, size)
	}
	if sa, sb := a.mux.Stats(), b.mux.Stats(); sa.SnapshotsSent != 1 || sb.SnapshotsReceived != 1 {
		t.Errorf("snapshots sent %d, received %d; want 1 and 1", sa.SnapshotsSent, sb.SnapshotsReceived)
	}
	if sent, recv := a.mux.SnapshotBytesSent(1), b.mux.SnapshotBytesReceived(1); sent != size || recv != size {
		t.Errorf("snapshot bytes sent %d, received %d; want %d and %d", sent, recv, size, size)
	}
}

// transportGatedReader reads r, but not past gateAt bytes until gate is
// closed.
type transportGatedReader struct {
	r      io.Reader
	gateAt int64
	gate   <-chan struct{}
	n      int64
}

func (g *transportGatedReader) Read(p []byte) (int, error) {
	if g.n >= g.gateAt {
		select {
		case <-g.gate:
		case <-time.After(transportTestWait):
			return 0, errors.New("the receiver did not read the first bytes while the rest was unsent")
		}
	} else if left := g.gateAt - g.n; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
}

// TestTransportInstallSnapshotFailures checks the ways a snapshot transfer
// ends early: the receiver refuses it unread, or the sender cannot read it.
func TestTransportInstallSnapshotFailures(t *testing.T) {
	a := newTransportTestNode(t, MuxConfig{})
	b := newTransportTestNode(t, MuxConfig{})
	ta := a.transport(t, 1)
	tb := b.transport(t, 1)
	target := raft.ServerAddress(b.addr)
	const size = 64 << 20

	readErrs := make(chan error, 1)
	var refuse atomic.Bool
	refuse.Store(true)
	transportServeRPCs(t, tb, func(rpc raft.RPC) {
		if refuse.Load() { // as Raft's header check does, without reading
			rpc.Respond(nil, raft.ErrUnsupportedProtocol)
			return
		}
		_, err := io.Copy(io.Discard, rpc.Reader)
		readErrs <- err
		rpc.Respond(nil, err)
	})

	err := transportWithin(t, transportTestWait, "a refused InstallSnapshot", func() error {
		return ta.InstallSnapshot("b", target, &raft.InstallSnapshotRequest{Size: size},
			new(raft.InstallSnapshotResponse), transportSnapshotData(size))
	})
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), raft.ErrUnsupportedProtocol.Error()) {
		t.Errorf("refused InstallSnapshot = %v; want code Unknown with the remote error", err)
	}

	refuse.Store(false)
	boom := errors.New("snapshot file truncated")
	data := io.MultiReader(transportSnapshotData(1<<20), transportErrReader{boom})
	err = ta.InstallSnapshot("b", target, &raft.InstallSnapshotRequest{Size: size}, new(raft.InstallSnapshotResponse), data)
	if !errors.Is(err, boom) {
		t.Errorf("InstallSnapshot of an unreadable snapshot = %v; want it to wrap %v", err, boom)
	}
	if err := transportWithin(t, transportTestWait, "the receiver's read", func() error { return <-readErrs }); err == nil {
		t.Errorf("the receiver read an abandoned snapshot to its end without error")
	}
}

type transportErrReader struct{ err error }

func (r transportErrReader) Read([]byte) (int, error) { return 0, r.err }
