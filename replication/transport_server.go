// This file is the incoming side of the multiplexed transport: the Mux's
// unary RaftTransport handlers, the hand-over of an RPC to a group's Raft
// (as raft.NetworkTransport does it) and the one mapping from transport
// errors to gRPC status codes.

package replication

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

var (
	// errUnknownGroup is the cause of an incoming RPC naming a group that has
	// no open transport on this node.
	errUnknownGroup = errors.New("unknown raft group")
	// errMalformedStream is the cause of a stream that breaks the protocol.
	errMalformedStream = errors.New("malformed raft transport stream")
)

// rpcStatus is the one mapping from an error met while serving an RPC to the
// gRPC status the caller sees.
func rpcStatus(err error) error {
	var code codes.Code
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errUnknownGroup), errors.Is(err, errMalformedStream):
		code = codes.InvalidArgument
	case errors.Is(err, raft.ErrTransportShutdown):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		if _, ok := status.FromError(err); ok {
			return err // already a status, e.g. from the stream itself
		}
		code = codes.Unknown // Raft's own error
	}
	return status.Error(code, err.Error())
}

// enqueue hands rpc to the group's Raft: a heartbeat to the heartbeat handler
// if one is set, anything else to Consumer. It gives up when ctx ends or the
// transport closes.
func (t *GroupTransport) enqueue(ctx context.Context, rpc raft.RPC, heartbeat bool) error {
	if t.isClosed() { // the select below would pick at random
		return t.closedError()
	}
	if heartbeat {
		if fn := t.heartbeatFn.Load(); fn != nil {
			t.heartbeats.RLock()
			defer t.heartbeats.RUnlock()
			if t.isClosed() { // Close began: Raft may be gone
				return t.closedError()
			}
			(*fn)(rpc)
			return nil
		}
	}
	select {
	case t.consumeCh <- rpc:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.life.Done():
		return t.closedError()
	}
}

// await waits for Raft's answer on respCh, which must have room for it so
// that Raft never blocks on an answer nobody waits for any more.
func (t *GroupTransport) await(ctx context.Context, respCh <-chan raft.RPCResponse) (raft.RPCResponse, error) {
	select {
	case resp := <-respCh:
		return resp, nil
	case <-ctx.Done():
		return raft.RPCResponse{}, ctx.Err()
	case <-t.life.Done():
		return raft.RPCResponse{}, t.closedError()
	}
}

// deliver hands cmd to the group's Raft and returns its answer. The error is
// the transport's; Raft's own error is in the answer.
func (t *GroupTransport) deliver(ctx context.Context, cmd any, heartbeat bool) (raft.RPCResponse, error) {
	respCh := make(chan raft.RPCResponse, 1)
	if err := t.enqueue(ctx, raft.RPC{Command: cmd, RespChan: respCh}, heartbeat); err != nil {
		return raft.RPCResponse{}, err
	}
	return t.await(ctx, respCh)
}

func (t *GroupTransport) closedError() error {
	return fmt.Errorf("raft group %d: %w", t.group, raft.ErrTransportShutdown)
}

// AppendEntries implements ringkvv1.RaftTransportServer. Raft's own error is
// returned in the response's error field, as on a pipeline.
func (m *Mux) AppendEntries(ctx context.Context, in *ringkvv1.AppendEntriesRequest) (*ringkvv1.AppendEntriesResponse, error) {
	t, err := m.group(in.Group)
	if err != nil {
		return nil, rpcStatus(err)
	}
	out, err := t.serveAppendEntries(ctx, in)
	return out, rpcStatus(err)
}

// serveAppendEntries hands one AppendEntries to Raft and converts its answer.
func (t *GroupTransport) serveAppendEntries(ctx context.Context, in *ringkvv1.AppendEntriesRequest) (*ringkvv1.AppendEntriesResponse, error) {
	req := new(raft.AppendEntriesRequest)
	appendEntriesRequestFromProto(in, req)
	r, err := t.deliver(ctx, req, isHeartbeat(req))
	if err != nil {
		return nil, err
	}
	resp, _ := r.Response.(*raft.AppendEntriesResponse)
	if resp == nil {
		resp = new(raft.AppendEntriesResponse)
	}
	out := appendEntriesResponseToProto(resp)
	if r.Error != nil {
		out.Error = r.Error.Error()
	}
	return out, nil
}

// RequestVote implements ringkvv1.RaftTransportServer.
func (m *Mux) RequestVote(ctx context.Context, in *ringkvv1.RequestVoteRequest) (*ringkvv1.RequestVoteResponse, error) {
	t, err := m.group(in.Group)
	if err != nil {
		return nil, rpcStatus(err)
	}
	req := new(raft.RequestVoteRequest)
	requestVoteRequestFromProto(in, req)
	resp, err := serveUnary[raft.RequestVoteResponse](ctx, t, req)
	if err != nil {
		return nil, rpcStatus(err)
	}
	return requestVoteResponseToProto(resp), nil
}

// RequestPreVote implements ringkvv1.RaftTransportServer.
func (m *Mux) RequestPreVote(ctx context.Context, in *ringkvv1.RequestPreVoteRequest) (*ringkvv1.RequestPreVoteResponse, error) {
	t, err := m.group(in.Group)
	if err != nil {
		return nil, rpcStatus(err)
	}
	req := new(raft.RequestPreVoteRequest)
	requestPreVoteRequestFromProto(in, req)
	resp, err := serveUnary[raft.RequestPreVoteResponse](ctx, t, req)
	if err != nil {
		return nil, rpcStatus(err)
	}
	return requestPreVoteResponseToProto(resp), nil
}

// TimeoutNow implements ringkvv1.RaftTransportServer.
func (m *Mux) TimeoutNow(ctx context.Context, in *ringkvv1.TimeoutNowRequest) (*ringkvv1.TimeoutNowResponse, error) {
	t, err := m.group(in.Group)
	if err != nil {
		return nil, rpcStatus(err)
	}
	req := new(raft.TimeoutNowRequest)
	timeoutNowRequestFromProto(in, req)
	resp, err := serveUnary[raft.TimeoutNowResponse](ctx, t, req)
	if err != nil {
		return nil, rpcStatus(err)
	}
	return timeoutNowResponseToProto(resp), nil
}

// serveUnary hands req to the group's Raft and returns its answer of type
// *R, or Raft's error.
func serveUnary[R any](ctx context.Context, t *GroupTransport, req any) (*R, error) {
	r, err := t.deliver(ctx, req, false)
	if err != nil {
		return nil, err
	}
	if r.Error != nil {
		return nil, r.Error
	}
	resp, ok := r.Response.(*R)
	if !ok || resp == nil {
		return nil, fmt.Errorf("raft group %d answered %T with %T", t.group, req, r.Response)
	}
	return resp, nil
}
