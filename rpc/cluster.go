package rpc

import (
	"context"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// StatusFunc builds this node's view of the cluster's status.
type StatusFunc func(ctx context.Context) (*ringkvv1.StatusResponse, error)

// ClusterServer implements the Cluster service.
type ClusterServer struct {
	ringkvv1.UnimplementedClusterServer
	status StatusFunc
}

// NewClusterServer returns a Cluster service answering from status.
func NewClusterServer(status StatusFunc) *ClusterServer {
	return &ClusterServer{status: status}
}

// Status implements ringkvv1.ClusterServer.
func (s *ClusterServer) Status(ctx context.Context, _ *ringkvv1.StatusRequest) (*ringkvv1.StatusResponse, error) {
	resp, err := s.status(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}
