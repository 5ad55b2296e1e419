// This file holds GroupTransport, the raft.Transport of one group on a Mux:
// its outgoing unary calls and its lifecycle. The incoming side is in
// transport_server.go, heartbeats in transport_heartbeat.go, pipelines in
// transport_pipeline.go and snapshots in transport_snapshot.go.

package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// GroupTransport is the raft.Transport of one Raft group on a Mux. It also
// implements raft.WithPreVote and raft.WithClose. Its outgoing calls use the
// Mux's shared peer connections; its incoming RPCs arrive through the Mux's
// gRPC service and are handed to Raft on Consumer.
//
// Every outgoing call carries a deadline (MuxConfig.RPCTimeout, scaled for
// InstallSnapshot) and fails with an error naming the group, the call and
// the target, wrapping the cause. After Close, calls fail with
// raft.ErrTransportShutdown.
type GroupTransport struct {
	mux   *Mux
	group uint64

	// consumeCh is unbuffered, as in raft.NetworkTransport: an incoming RPC
	// is handed over only when Raft takes it.
	consumeCh chan raft.RPC
	// heartbeatFn is the fast path for heartbeats (SetHeartbeatHandler).
	heartbeatFn atomic.Pointer[func(raft.RPC)]
	// heartbeats is held for reading while a heartbeat runs Raft's handler
	// on a transport goroutine, and for writing by Close: once Close
	// returns no handler runs, so the group may close its stores (Raft's
	// handler writes the term to the stable store).
	heartbeats sync.RWMutex

	// life is cancelled by Close. It is the lifetime of the transport, not a
	// request: every outgoing call and pipeline derives its context from it,
	// so that Close aborts them, and every incoming RPC waiting on Raft
	// watches it (raft predates context; this is where its calls get one).
	life   context.Context
	cancel context.CancelFunc

	// urgency makes the group's heartbeats skip the coalescing window while
	// a leadership confirmation waits for them (urgentHeartbeats).
	urgency struct {
		// waiters counts the confirmations under way.
		waiters atomic.Int32
		// until is the Mux clock reading (Mux.now) after which the group's
		// heartbeats are no longer urgent, whatever waiters says.
		until atomic.Int64
	}

	mu struct {
		sync.Mutex
		// closed is set by Close; no pipeline starts after it.
		closed bool
		// heartbeats holds the pace of the heartbeats to each peer called.
		heartbeats map[raft.ServerAddress]*heartbeatPace
	}
	// pipelines counts the running pipeline receive loops; Close waits for
	// them. Add only under mu while not closed.
	pipelines sync.WaitGroup
}

var (
	_ raft.Transport   = (*GroupTransport)(nil)
	_ raft.WithPreVote = (*GroupTransport)(nil)
	_ raft.WithClose   = (*GroupTransport)(nil)
)

func newGroupTransport(m *Mux, group uint64) *GroupTransport {
	t := &GroupTransport{mux: m, group: group, consumeCh: make(chan raft.RPC)}
	t.life, t.cancel = context.WithCancel(context.Background())
	return t
}

// Group returns the ID of the transport's Raft group.
func (t *GroupTransport) Group() uint64 { return t.group }

// Consumer implements raft.Transport: incoming RPCs of this group.
func (t *GroupTransport) Consumer() <-chan raft.RPC { return t.consumeCh }

// LocalAddr implements raft.Transport: the node's gRPC address.
func (t *GroupTransport) LocalAddr() raft.ServerAddress {
	return raft.ServerAddress(t.mux.cfg.LocalAddr)
}

// SetHeartbeatHandler implements raft.Transport. While cb is set, an incoming
// heartbeat (an AppendEntries with a term and a leader address and nothing
// else, the test raft.NetworkTransport uses) is handed to cb on the RPC's own
// goroutine instead of to Consumer, so heartbeats do not queue behind disk
// I/O.
func (t *GroupTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.heartbeatFn.Store(nil)
		return
	}
	t.heartbeatFn.Store(&cb)
}

// EncodePeer implements raft.Transport: the address as bytes.
func (t *GroupTransport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer implements raft.Transport.
func (t *GroupTransport) DecodePeer(buf []byte) raft.ServerAddress {
	return raft.ServerAddress(buf)
}

// Close implements raft.WithClose: it unregisters the group from the Mux,
// aborts the group's outgoing calls and pipelines and its incoming RPCs that
// wait on Raft, and waits for the pipelines' goroutines. Further calls fail
// with raft.ErrTransportShutdown. Close is idempotent.
func (t *GroupTransport) Close() error {
	t.mu.Lock()
	already := t.mu.closed
	t.mu.closed = true
	t.mu.Unlock()
	if already {
		return nil
	}
	t.mux.unregister(t)
	t.cancel()
	t.heartbeats.Lock() // wait for running heartbeat handlers
	t.heartbeats.Unlock()
	t.pipelines.Wait()
	return nil
}

// isClosed reports whether Close has been called.
func (t *GroupTransport) isClosed() bool { return t.life.Err() != nil }

// AppendEntries implements raft.Transport. Heartbeats are coalesced with
// those of the node's other groups to the same peer and travel on the
// Mux's heartbeat stream to it (transport_heartbeat.go), everything else in
// a call of its own.
func (t *GroupTransport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	const op = "AppendEntries"
	if isHeartbeat(args) {
		return t.heartbeat(target, args, resp)
	}
	p, err := t.peer(op, target)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.life, t.mux.cfg.RPCTimeout)
	defer cancel()
	out, err := p.client.AppendEntries(ctx, appendEntriesRequestToProto(t.group, args))
	if err != nil {
		return t.callError(op, target, err)
	}
	appendEntriesResponseFromProto(out, resp)
	if out.Error != "" {
		return t.callError(op, target, remoteError(out.Error))
	}
	return nil
}

// RequestVote implements raft.Transport.
func (t *GroupTransport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	const op = "RequestVote"
	p, err := t.peer(op, target)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.life, t.mux.cfg.RPCTimeout)
	defer cancel()
	out, err := p.client.RequestVote(ctx, requestVoteRequestToProto(t.group, args))
	if err != nil {
		return t.callError(op, target, err)
	}
	requestVoteResponseFromProto(out, resp)
	return nil
}

// RequestPreVote implements raft.WithPreVote.
func (t *GroupTransport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	const op = "RequestPreVote"
	p, err := t.peer(op, target)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.life, t.mux.cfg.RPCTimeout)
	defer cancel()
	out, err := p.client.RequestPreVote(ctx, requestPreVoteRequestToProto(t.group, args))
	if err != nil {
		return t.callError(op, target, err)
	}
	requestPreVoteResponseFromProto(out, resp)
	return nil
}

// TimeoutNow implements raft.Transport.
func (t *GroupTransport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	const op = "TimeoutNow"
	p, err := t.peer(op, target)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.life, t.mux.cfg.RPCTimeout)
	defer cancel()
	out, err := p.client.TimeoutNow(ctx, timeoutNowRequestToProto(t.group, args))
	if err != nil {
		return t.callError(op, target, err)
	}
	timeoutNowResponseFromProto(out, resp)
	return nil
}

// peer returns the pooled connection to target, or the error the call op
// fails with.
func (t *GroupTransport) peer(op string, target raft.ServerAddress) (*muxPeer, error) {
	if t.isClosed() {
		return nil, t.callError(op, target, raft.ErrTransportShutdown)
	}
	p, err := t.mux.peer(target)
	if err != nil {
		return nil, t.callError(op, target, err)
	}
	return p, nil
}

// callError wraps the failure err of the call op to target. A call that
// failed because the transport was closed under it reports
// raft.ErrTransportShutdown as well as its own cause.
func (t *GroupTransport) callError(op string, target raft.ServerAddress, err error) error {
	if t.isClosed() && !errors.Is(err, raft.ErrTransportShutdown) {
		return fmt.Errorf("replication: raft group %d: %s to %s: %w (%w)", t.group, op, target, raft.ErrTransportShutdown, err)
	}
	return fmt.Errorf("replication: raft group %d: %s to %s: %w", t.group, op, target, err)
}

// remoteError is an error the receiving Raft returned for an RPC it
// processed; the transport carries only its text.
type remoteError string

func (e remoteError) Error() string { return "remote raft: " + string(e) }
