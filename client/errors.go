package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors the client returns, possibly wrapped: test with errors.Is.
var (
	// ErrNotFound means Get found no value for the key.
	ErrNotFound = errors.New("ringkv: key not found")
	// ErrInvalidArgument means a node rejected the request itself (an
	// empty or too long key, a too large value, ...). Retrying the same
	// request cannot succeed. The error is a *ServerError that holds the
	// node's message, which says what was wrong and the limit.
	ErrInvalidArgument = errors.New("ringkv: invalid argument")
	// ErrFailedPrecondition means a node refused the request because of the
	// cluster's state: RemoveNode of a node whose removal would leave
	// fewer nodes than the replication factor, for one. Retrying the same
	// request fails the same way until that state changes. The error is a
	// *ServerError that holds the node's message, which says why.
	ErrFailedPrecondition = errors.New("ringkv: failed precondition")
	// ErrClosed means the Client was closed.
	ErrClosed = errors.New("ringkv: client closed")
	// ErrNoEndpoints means New was given no endpoints.
	ErrNoEndpoints = errors.New("ringkv: no endpoints")
)

// ServerError is an error a node returned that the client does not retry:
// any gRPC code but OK, Unavailable and DeadlineExceeded. It keeps the node's
// code and message. errors.Is(err, ErrInvalidArgument) holds when Code is
// codes.InvalidArgument, errors.Is(err, ErrNotFound) when Code is
// codes.NotFound, and errors.Is(err, ErrFailedPrecondition) when Code is
// codes.FailedPrecondition.
type ServerError struct {
	// Op is the call that failed: "get", "put", "delete", "status",
	// "remove node" or "rebalance status".
	Op string
	// Code is the gRPC code the node returned.
	Code codes.Code
	// Message is the node's message, as is.
	Message string
}

// Error returns "ringkv: OP: CODE: MESSAGE", CODE in lower-case words
// ("failed precondition").
func (e *ServerError) Error() string {
	code := codeWords(e.Code)
	if e.Message == "" {
		return fmt.Sprintf("ringkv: %s: %s", e.Op, code)
	}
	return fmt.Sprintf("ringkv: %s: %s: %s", e.Op, code, e.Message)
}

// Is reports whether the error belongs to the class of target, one of the
// package's sentinels.
func (e *ServerError) Is(target error) bool {
	switch target {
	case ErrInvalidArgument:
		return e.Code == codes.InvalidArgument
	case ErrNotFound:
		return e.Code == codes.NotFound
	case ErrFailedPrecondition:
		return e.Code == codes.FailedPrecondition
	}
	return false
}

// codeWords returns c's name in lower-case words: "failed precondition" for
// codes.FailedPrecondition, "ok" for codes.OK.
func codeWords(c codes.Code) string {
	name := c.String()
	var b strings.Builder
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) && unicode.IsLower(rune(name[i-1])) {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// GRPCStatus returns the node's status, so that status.FromError and
// status.Code see through the error.
func (e *ServerError) GRPCStatus() *status.Status {
	return status.New(e.Code, e.Message)
}

// retryable reports whether an attempt that failed with err may be retried,
// on this node or another: the request may not have reached the shard's
// leader, or its response was lost. Only errors that say nothing about the
// request itself qualify. An error that is not a gRPC status comes from
// setting up the connection, so it is retryable too.
func retryable(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return true
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// permanent turns an error that is not retried into the error a call returns.
func permanent(op string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("ringkv: %s: %w", op, err)
	}
	if op == "get" && st.Code() == codes.NotFound {
		return fmt.Errorf("ringkv: get: %w", ErrNotFound)
	}
	return &ServerError{Op: op, Code: st.Code(), Message: st.Message()}
}

// gaveUp is the error of a call whose context ended before it succeeded. It
// wraps the context's error and the last attempt's error, so errors.Is(err,
// context.DeadlineExceeded) holds when the deadline ran out.
func gaveUp(ctx context.Context, op string, attempts int, last error) error {
	cause := ctx.Err()
	if cause == nil { // the deadline has passed, the timer not fired yet
		cause = context.DeadlineExceeded
	}
	if last == nil {
		return fmt.Errorf("ringkv: %s: %w", op, cause)
	}
	return fmt.Errorf("ringkv: %s: %w after %d attempts; last error: %w", op, cause, attempts, last)
}

// joinedErrors is errors.Join on one line: the errors separated by "; ".
type joinedErrors []error

func (e joinedErrors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e joinedErrors) Unwrap() []error { return e }
