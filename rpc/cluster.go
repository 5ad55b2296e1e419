package rpc

import (
	"context"
	"net"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/cluster"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// ClusterAdmin is what the Cluster service needs of the node.
type ClusterAdmin interface {
	// Status builds this node's view of the cluster's status.
	Status(ctx context.Context) (*ringkvv1.StatusResponse, error)
	// Join commits a join of node id at addr.
	Join(ctx context.Context, id, addr string) (epoch uint64, err error)
	// RemoveNode commits the start of node id's drain.
	RemoveNode(ctx context.Context, id string) (epoch uint64, err error)
	// RebalanceStatus reports the replica moves.
	RebalanceStatus(ctx context.Context) (*ringkvv1.RebalanceStatusResponse, error)
}

// ClusterServer implements the Cluster service.
type ClusterServer struct {
	ringkvv1.UnimplementedClusterServer
	admin ClusterAdmin
}

// NewClusterServer returns a Cluster service over admin.
func NewClusterServer(admin ClusterAdmin) *ClusterServer {
	return &ClusterServer{admin: admin}
}

// Status implements ringkvv1.ClusterServer.
func (s *ClusterServer) Status(ctx context.Context, _ *ringkvv1.StatusRequest) (*ringkvv1.StatusResponse, error) {
	resp, err := s.admin.Status(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// Join implements ringkvv1.ClusterServer.
func (s *ClusterServer) Join(ctx context.Context, req *ringkvv1.JoinRequest) (*ringkvv1.JoinResponse, error) {
	if err := cluster.ValidateNodeID(req.GetNodeId()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if _, _, err := net.SplitHostPort(req.GetAddress()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "address %q: want host:port", req.GetAddress())
	}
	epoch, err := s.admin.Join(ctx, req.GetNodeId(), req.GetAddress())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ringkvv1.JoinResponse{Epoch: epoch}, nil
}

// RemoveNode implements ringkvv1.ClusterServer.
func (s *ClusterServer) RemoveNode(ctx context.Context, req *ringkvv1.RemoveNodeRequest) (*ringkvv1.RemoveNodeResponse, error) {
	if err := cluster.ValidateNodeID(req.GetNodeId()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	epoch, err := s.admin.RemoveNode(ctx, req.GetNodeId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ringkvv1.RemoveNodeResponse{Epoch: epoch}, nil
}

// RebalanceStatus implements ringkvv1.ClusterServer.
func (s *ClusterServer) RebalanceStatus(ctx context.Context, _ *ringkvv1.RebalanceStatusRequest) (*ringkvv1.RebalanceStatusResponse, error) {
	resp, err := s.admin.RebalanceStatus(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}
