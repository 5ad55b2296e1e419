// This file sends a group's heartbeats. Raft sends one to every follower
// every HeartbeatTimeout/10, in every group, so on an idle node they are
// nearly all the transport does. A unary gRPC call opens and closes an
// HTTP/2 stream each time; instead each group keeps one
// AppendEntriesPipeline stream per peer open for its heartbeats and
// exchanges one request and one response on it per heartbeat, which halves
// the cost (see BenchmarkAppendEntriesRoundTrip). The serving side is the
// pipeline's, whose heartbeat test hands them to Raft's fast path.
//
// Coalescing the heartbeats of all groups to a peer into one message would
// slot in here: heartbeat would hand the request to a per-peer batcher on
// the Mux instead of a per-group stream. It needs an RPC that carries many
// groups, which RaftTransport does not have yet.

package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// heartbeatStream is a group's heartbeat stream to one peer.
type heartbeatStream struct {
	// mu serializes heartbeats (Raft sends them one at a time per peer
	// anyway) and guards the fields below.
	mu sync.Mutex
	// stream is nil until opened, and again after it failed.
	stream grpc.BidiStreamingClient[ringkvv1.AppendEntriesRequest, ringkvv1.AppendEntriesResponse]
	// cancel aborts stream; cause says why it was aborted, if it was.
	cancel context.CancelCauseFunc
	cause  func() error
	// timer aborts stream when an exchange outlives RPCTimeout.
	timer *time.Timer
	// resp is reused for every response; unmarshalling resets it.
	resp ringkvv1.AppendEntriesResponse
}

// heartbeat sends one heartbeat to target and waits for its answer, within
// RPCTimeout.
func (t *GroupTransport) heartbeat(target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	const op = "AppendEntries"
	hs, err := t.heartbeatStream(target)
	if err != nil {
		return t.callError(op, target, err)
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	timeout := t.mux.cfg.RPCTimeout
	if hs.stream == nil {
		p, err := t.peer(op, target)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancelCause(t.life)
		timer := time.AfterFunc(timeout, func() {
			cancel(fmt.Errorf("heartbeat not answered within %v: %w", timeout, context.DeadlineExceeded))
		})
		stream, err := p.client.AppendEntriesPipeline(ctx)
		if err != nil {
			timer.Stop()
			err = withCause(ctx, err)
			cancel(nil)
			return t.callError(op, target, err)
		}
		hs.stream, hs.cancel, hs.timer = stream, cancel, timer
		hs.cause = func() error { return context.Cause(ctx) }
	} else {
		hs.timer.Reset(timeout)
	}

	err = hs.stream.Send(appendEntriesRequestToProto(t.group, args))
	if err == nil || errors.Is(err, io.EOF) { // after io.EOF, RecvMsg has the status
		err = hs.stream.RecvMsg(&hs.resp)
	}
	hs.timer.Stop()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the server ended the stream
		}
		if cause := hs.cause(); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		hs.cancel(nil)
		hs.stream, hs.cancel, hs.cause, hs.timer = nil, nil, nil, nil
		return t.callError(op, target, err)
	}
	appendEntriesResponseFromProto(&hs.resp, resp)
	if hs.resp.Error != "" {
		return t.callError(op, target, remoteError(hs.resp.Error))
	}
	return nil
}

// heartbeatStream returns the heartbeat stream to target, creating it (not
// yet opened) on first use.
func (t *GroupTransport) heartbeatStream(target raft.ServerAddress) (*heartbeatStream, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return nil, raft.ErrTransportShutdown
	}
	hs, ok := t.mu.heartbeats[target]
	if !ok {
		if t.mu.heartbeats == nil {
			t.mu.heartbeats = map[raft.ServerAddress]*heartbeatStream{}
		}
		hs = new(heartbeatStream)
		t.mu.heartbeats[target] = hs
	}
	return hs, nil
}

// withCause adds to err the reason ctx was cancelled, if it was and err does
// not already say so.
func withCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w (%w)", err, cause)
	}
	return err
}
