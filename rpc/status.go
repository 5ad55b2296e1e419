package rpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/bulkhead"
	"github.com/ringkv/ringkv/cluster"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

// toStatus maps an error from the layers below to the gRPC status a client
// sees. It is the only place that chooses status codes (besides input
// validation), and it matches with errors.Is/As so wrapping keeps working.
//
// Unavailable means "retry": the request did not take effect, or it carried a
// request ID so a retry cannot apply it twice.
// ResourceExhausted with a RetryInfo detail means "retry after a backoff":
// a bound on requests in flight refused the request before it took effect.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isWrapped(err) {
		return err
	}
	var remote *remoteError
	switch {
	case errors.Is(err, bulkhead.ErrFull):
		return overloadStatus(err.Error())
	case errors.As(err, &remote):
		return status.Error(remote.code, err.Error())
	case errors.Is(err, cluster.ErrExists),
		errors.Is(err, cluster.ErrAuthExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, cluster.ErrAuthNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, cluster.ErrAuthInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, cluster.ErrAuthRefused):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, cluster.ErrNotMember):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, cluster.ErrRemoved),
		errors.Is(err, cluster.ErrTooFewNodes),
		errors.Is(err, cluster.ErrAlreadyInitialized):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, cluster.ErrMoveConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, cluster.ErrBadCommand):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, cluster.ErrNotInitialized):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, router.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, shard.ErrBadCommand),
		errors.Is(err, router.ErrCrossShard),
		errors.Is(err, router.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, router.ErrNotHosted):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, shard.ErrStaleRequest):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, replication.ErrNotLeader),
		errors.Is(err, replication.ErrOutcomeUnknown),
		errors.Is(err, replication.ErrShutdown),
		errors.Is(err, router.ErrNoLeader),
		errors.Is(err, router.ErrNotReady),
		errors.Is(err, router.ErrUnreachable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// isWrapped reports whether err is more than a bare status error, in which
// case its chain is inspected rather than trusting the outer status.
func isWrapped(err error) bool { return errors.Unwrap(err) != nil }

// remoteError is an error status returned by another node that the router
// passes through unchanged (for example InvalidArgument).
type remoteError struct {
	code codes.Code
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
