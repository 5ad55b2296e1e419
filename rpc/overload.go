package rpc

import (
	"context"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/bulkhead"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// boundedServices are the services whose unary calls count toward a
// node's bound on requests in flight: the public KV API and the per-shard
// reads that multi-shard calls fan out to. Watches (streams) are long-lived
// and do not count; Raft, metadata and admin traffic must never be refused
// for load.
var boundedServices = []string{
	"/" + ringkvv1.KV_ServiceDesc.ServiceName + "/",
	"/" + ringkvv1.ShardKV_ServiceDesc.ServiceName + "/",
}

func bounded(method string) bool {
	for _, p := range boundedServices {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}

// Admitter admits a request or refuses it with an error wrapping
// bulkhead.ErrFull; *bulkhead.Limiter implements it.
type Admitter interface {
	Acquire() (release func(), err error)
}

// NodeBulkheadInterceptor returns a unary server interceptor that admits a
// KV or ShardKV call only when lim does, and fails it at once with
// ResourceExhausted otherwise (calling rejected, for metrics). Calls
// forwarded by other nodes count like client calls: they are work this node
// serves.
func NodeBulkheadInterceptor(lim Admitter, rejected func()) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !bounded(info.FullMethod) {
			return handler(ctx, req)
		}
		release, err := lim.Acquire()
		if err != nil {
			if rejected != nil {
				rejected()
			}
			return nil, toStatus(err)
		}
		defer release()
		return handler(ctx, req)
	}
}

// overloadStatus is the status of a request refused for load:
// ResourceExhausted with a RetryInfo detail, which tells the client library
// that the request did not take effect and may be retried after a backoff
// (a plain ResourceExhausted, such as a message over gRPC's size limit, is
// not retried).
func overloadStatus(msg string) error {
	st := status.New(codes.ResourceExhausted, msg)
	if d, err := st.WithDetails(&errdetails.RetryInfo{}); err == nil {
		st = d
	}
	return st.Err()
}

// isOverloadStatus reports whether st is overloadStatus's.
func isOverloadStatus(st *status.Status) bool {
	if st.Code() != codes.ResourceExhausted {
		return false
	}
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RetryInfo); ok {
			return true
		}
	}
	return false
}

// remoteOverload is a peer's refusal for load, passed through by the
// forwarding node with the peer's message. It is bulkhead.ErrFull, so the
// router returns it at once and toStatus gives the client the same status.
type remoteOverload struct{ msg string }

func (e *remoteOverload) Error() string { return e.msg }

// Is reports whether target is bulkhead.ErrFull.
func (e *remoteOverload) Is(target error) bool { return target == bulkhead.ErrFull }
