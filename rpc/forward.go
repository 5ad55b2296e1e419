package rpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

// Conns hands out the shared client connection to a peer node.
type Conns interface {
	Conn(addr string) (*grpc.ClientConn, error)
}

// Forwarder implements router.Forwarder over the peers' KV services.
type Forwarder struct {
	conns Conns
}

// NewForwarder returns a Forwarder that dials peers through conns.
func NewForwarder(conns Conns) *Forwarder { return &Forwarder{conns: conns} }

var _ router.Forwarder = (*Forwarder)(nil)

func (f *Forwarder) client(addr string) (ringkvv1.KVClient, error) {
	cc, err := f.conns.Conn(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", router.ErrUnreachable, addr, err)
	}
	return ringkvv1.NewKVClient(cc), nil
}

// forwardCtx marks a call as forwarded and sends the trace ID of the call
// being served with it, so the leader logs it under the same ID.
func forwardCtx(ctx context.Context) context.Context {
	return withTraceID(metadata.AppendToOutgoingContext(ctx, ringkvv1.MetadataForwarded, "1"))
}

// Get implements router.Forwarder.
func (f *Forwarder) Get(ctx context.Context, addr string, key []byte) (shard.Value, string, error) {
	c, err := f.client(addr)
	if err != nil {
		return shard.Value{}, "", err
	}
	var hdr metadata.MD
	resp, err := c.Get(forwardCtx(ctx), &ringkvv1.GetRequest{Key: key}, grpc.Header(&hdr))
	leader := first(hdr.Get(ringkvv1.MetadataLeader))
	if err != nil {
		// A NotFound is an answer its shard's leader served: keep its name.
		return shard.Value{}, leader, fromRemote(addr, leader, err)
	}
	return shard.Value{Data: resp.GetValue(), Version: resp.GetVersion(), CreateVersion: resp.GetCreateVersion(),
		ExpiresAt: expiresAt(resp.GetTtlMs(), time.Now())}, leader, nil
}

// Put implements router.Forwarder.
func (f *Forwarder) Put(ctx context.Context, addr string, key, value []byte, req shard.RequestID) (uint64, string, error) {
	c, err := f.client(addr)
	if err != nil {
		return 0, "", err
	}
	var hdr metadata.MD
	resp, err := c.Put(forwardCtx(ctx), &ringkvv1.PutRequest{Key: key, Value: value, RequestId: toProtoID(req)}, grpc.Header(&hdr))
	leader := first(hdr.Get(ringkvv1.MetadataLeader))
	if err != nil {
		return 0, "", fromRemote(addr, leader, err)
	}
	return resp.GetVersion(), leader, nil
}

// Delete implements router.Forwarder.
func (f *Forwarder) Delete(ctx context.Context, addr string, key []byte, req shard.RequestID) (bool, uint64, string, error) {
	c, err := f.client(addr)
	if err != nil {
		return false, 0, "", err
	}
	var hdr metadata.MD
	resp, err := c.Delete(forwardCtx(ctx), &ringkvv1.DeleteRequest{Key: key, RequestId: toProtoID(req)}, grpc.Header(&hdr))
	leader := first(hdr.Get(ringkvv1.MetadataLeader))
	if err != nil {
		return false, 0, "", fromRemote(addr, leader, err)
	}
	return resp.GetDeleted(), resp.GetVersion(), leader, nil
}

func toProtoID(r shard.RequestID) *ringkvv1.RequestID {
	if len(r.ClientID) == 0 {
		return nil
	}
	return &ringkvv1.RequestID{ClientId: r.ClientID, Seq: r.Seq, AckedBelow: r.AckedBelow}
}

// fromRemote turns a peer's error status into the errors the router acts
// on. Unavailable from a peer means it did not lead the shard, could not
// reach a leader, or was not reachable at all; in each case the router may
// try the hinted leader or another replica (a write carries its request ID,
// so a retry is never applied twice).
func fromRemote(addr, leader string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: %s: %w", router.ErrUnreachable, addr, err)
	}
	switch st.Code() {
	case codes.NotFound:
		return router.ErrNotFound
	case codes.Unavailable:
		return &replication.NotLeaderError{LeaderID: leader}
	case codes.DeadlineExceeded:
		return fmt.Errorf("forward to %s: %w", addr, context.DeadlineExceeded)
	case codes.Canceled:
		return fmt.Errorf("forward to %s: %w", addr, context.Canceled)
	case codes.ResourceExhausted:
		if isOverloadStatus(st) {
			return &remoteOverload{msg: fmt.Sprintf("%s (from %s)", st.Message(), addr)}
		}
	}
	return &remoteError{code: st.Code(), msg: fmt.Sprintf("%s (from %s)", st.Message(), addr)}
}

// leaderHint extracts the leader named by a NotLeaderError in err's chain.
func leaderHint(err error) string {
	var nl *replication.NotLeaderError
	if errors.As(err, &nl) {
		return nl.LeaderID
	}
	return ""
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
