package rpc

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/cluster"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/router"
)

// MetaLeader commits metadata commands on this node, which must lead the
// metadata group, and reports this node's replicas' progress.
type MetaLeader interface {
	// ProposeMetaLocal commits cmd if this node leads the metadata group.
	// It returns the epoch after the command, a cluster error (such as
	// cluster.ErrTooFewNodes) when the state machine refused it, or an
	// error wrapping replication.ErrNotLeader.
	ProposeMetaLocal(ctx context.Context, cmd []byte) (uint64, error)
	// ReplicaProgress reports this node's replica of a shard.
	ReplicaProgress(shard uint32) (open bool, applied, snapshotBytes uint64)
}

// MetaServer implements the internal Meta service.
type MetaServer struct {
	ringkvv1.UnimplementedMetaServer
	leader MetaLeader
}

// NewMetaServer returns a Meta service over l.
func NewMetaServer(l MetaLeader) *MetaServer { return &MetaServer{leader: l} }

// Propose implements ringkvv1.MetaServer. A refusal by the state machine is
// an answer (in the response); only failing to commit is an error status.
func (s *MetaServer) Propose(ctx context.Context, req *ringkvv1.MetaProposeRequest) (*ringkvv1.MetaProposeResponse, error) {
	epoch, err := s.leader.ProposeMetaLocal(ctx, req.GetCommand())
	if code := rejectionCode(err); code != "" {
		return &ringkvv1.MetaProposeResponse{Rejected: err.Error(), RejectedCode: code, Epoch: epoch}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &ringkvv1.MetaProposeResponse{Epoch: epoch}, nil
}

// ReplicaProgress implements ringkvv1.MetaServer.
func (s *MetaServer) ReplicaProgress(_ context.Context, req *ringkvv1.ReplicaProgressRequest) (*ringkvv1.ReplicaProgressResponse, error) {
	open, applied, bytes := s.leader.ReplicaProgress(req.GetShard())
	return &ringkvv1.ReplicaProgressResponse{Open: open, Applied: applied, SnapshotBytes: bytes}, nil
}

// rejections maps the metadata state machine's refusals to the codes the
// Meta service carries them under.
var rejections = []struct {
	code string
	err  error
}{
	{"exists", cluster.ErrExists},
	{"removed", cluster.ErrRemoved},
	{"not_member", cluster.ErrNotMember},
	{"too_few_nodes", cluster.ErrTooFewNodes},
	{"move_conflict", cluster.ErrMoveConflict},
	{"bad_command", cluster.ErrBadCommand},
	{"already_initialized", cluster.ErrAlreadyInitialized},
	{"not_initialized", cluster.ErrNotInitialized},
	{"auth_invalid", cluster.ErrAuthInvalid},
	{"auth_not_found", cluster.ErrAuthNotFound},
	{"auth_exists", cluster.ErrAuthExists},
	{"auth_refused", cluster.ErrAuthRefused},
}

func rejectionCode(err error) string {
	for _, r := range rejections {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return ""
}

// rejection rebuilds a refusal carried by the Meta service, so that
// errors.Is matches the cluster error on this side too.
type rejection struct {
	err error
	msg string
}

func (r *rejection) Error() string { return r.msg }
func (r *rejection) Unwrap() error { return r.err }

// MetaClient calls other nodes' Meta and Cluster services.
type MetaClient struct {
	conns Conns
}

// NewMetaClient returns a MetaClient that dials peers through conns.
func NewMetaClient(conns Conns) *MetaClient { return &MetaClient{conns: conns} }

// Propose asks the node at addr, which should lead the metadata group, to
// commit cmd. A refusal comes back as an error matching the cluster error
// (errors.Is); not reaching a leader as one wrapping router.ErrUnreachable
// or replication.ErrNotLeader.
func (c *MetaClient) Propose(ctx context.Context, addr string, cmd []byte) (uint64, error) {
	cc, err := c.conns.Conn(addr)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", router.ErrUnreachable, addr, err)
	}
	resp, err := ringkvv1.NewMetaClient(cc).Propose(ctx, &ringkvv1.MetaProposeRequest{Command: cmd})
	if err != nil {
		return 0, fromRemote(addr, "", err)
	}
	if code := resp.GetRejectedCode(); code != "" {
		for _, r := range rejections {
			if r.code == code {
				return resp.GetEpoch(), &rejection{err: r.err, msg: resp.GetRejected()}
			}
		}
		return resp.GetEpoch(), fmt.Errorf("%w: %s", cluster.ErrBadCommand, resp.GetRejected())
	}
	return resp.GetEpoch(), nil
}

// ReplicaProgress asks the node at addr how far its replica of a shard has
// applied the shard's log.
func (c *MetaClient) ReplicaProgress(ctx context.Context, addr string, shard uint32) (open bool, applied, snapshotBytes uint64, err error) {
	cc, err := c.conns.Conn(addr)
	if err != nil {
		return false, 0, 0, fmt.Errorf("%w: %s: %w", router.ErrUnreachable, addr, err)
	}
	resp, err := ringkvv1.NewMetaClient(cc).ReplicaProgress(ctx, &ringkvv1.ReplicaProgressRequest{Shard: shard})
	if err != nil {
		return false, 0, 0, fromRemote(addr, "", err)
	}
	return resp.GetOpen(), resp.GetApplied(), resp.GetSnapshotBytes(), nil
}

// Join asks the node at addr to add node id (reachable at self) to its
// cluster.
func (c *MetaClient) Join(ctx context.Context, addr, id, self string) (uint64, error) {
	cc, err := c.conns.Conn(addr)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", router.ErrUnreachable, addr, err)
	}
	resp, err := ringkvv1.NewClusterClient(cc).Join(ctx, &ringkvv1.JoinRequest{NodeId: id, Address: self})
	if err != nil {
		if st, ok := status.FromError(err); ok && st.Code() != codes.Unavailable && st.Code() != codes.DeadlineExceeded {
			return 0, fmt.Errorf("join through %s: %s: %s", addr, st.Code(), st.Message())
		}
		return 0, fromRemote(addr, "", err)
	}
	return resp.GetEpoch(), nil
}
