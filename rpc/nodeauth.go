package rpc

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/pki"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// internalServices are the services only nodes may call.
var internalServices = []string{
	"/" + ringkvv1.RaftTransport_ServiceDesc.ServiceName + "/",
	"/" + ringkvv1.Meta_ServiceDesc.ServiceName + "/",
	"/" + ringkvv1.ReadConfirm_ServiceDesc.ServiceName + "/",
	"/" + ringkvv1.ShardKV_ServiceDesc.ServiceName + "/",
}

func internal(method string) bool {
	for _, p := range internalServices {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}

// checkNode lets a call to an internal service through only when the
// caller presented a certificate, verified by the cluster CA, that names a
// node (pki.NodeID).
func checkNode(ctx context.Context, method string) error {
	if !internal(method) {
		return nil
	}
	p, ok := peer.FromContext(ctx)
	if ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			for _, chain := range ti.State.VerifiedChains {
				if len(chain) > 0 {
					if _, isNode := pki.NodeID(chain[0]); isNode {
						return nil
					}
				}
			}
		}
	}
	return status.Errorf(codes.PermissionDenied, "%s is internal to the cluster: it needs a node certificate of the cluster's CA", method)
}

// NodeOnlyInterceptors return the server interceptors that keep the
// internal node-to-node services to callers with node certificates. A node
// installs them when it runs with TLS.
func NodeOnlyInterceptors() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := checkNode(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := checkNode(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
	return unary, stream
}
