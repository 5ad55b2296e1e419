package client

import (
	"context"
	"encoding/hex"
	"errors"
	"math/rand/v2"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// Trace IDs. Every call of the Client carries an ID in the x-request-id
// header (ringkvv1.MetadataRequestID), the same for every attempt of the
// call: the node that receives it logs its lines about the call with it, as
// does the shard leader the call is forwarded to, so one ID finds a call in
// the logs of the whole cluster. The Client makes one per call (16 random
// hex digits) unless the caller gives one with WithTraceID, and TraceIDOf
// returns it from the call's error. It is not the exactly-once RequestID of
// writes (see sequencer), a different thing.

type traceKey struct{}

// WithTraceID returns a context whose calls carry id as their request ID
// (x-request-id) instead of one the Client makes. id should be up to 64
// letters, digits, '.', '_', ':' or '-'; a node replaces any other with
// one of its own.
func WithTraceID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, traceKey{}, id)
}

// TraceIDFromContext returns the request ID given with WithTraceID, if any.
func TraceIDFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(traceKey{}).(string)
	return id, ok && id != ""
}

// TraceIDOf returns the request ID of the call that returned err, or "" if
// err did not come from a call of a Client.
func TraceIDOf(err error) string {
	var te *tracedError
	if errors.As(err, &te) {
		return te.id
	}
	return ""
}

// NewTraceID returns a new request ID: 16 random hex digits, what the
// Client makes for a call that has none. A program that makes several
// calls for one task can give them one ID with WithTraceID(ctx,
// NewTraceID()).
func NewTraceID() string {
	var b [8]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

// withCallTraceID returns ctx carrying the call's request ID: the caller's,
// or a new one.
func withCallTraceID(ctx context.Context) (context.Context, string) {
	if id, ok := TraceIDFromContext(ctx); ok {
		return ctx, id
	}
	id := NewTraceID()
	return WithTraceID(ctx, id), id
}

// outgoing adds ctx's request ID, or a new one, to an RPC's headers.
func outgoing(ctx context.Context) context.Context {
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(ringkvv1.MetadataRequestID)) > 0 {
		return ctx
	}
	id, ok := TraceIDFromContext(ctx)
	if !ok {
		id = NewTraceID()
	}
	return metadata.AppendToOutgoingContext(ctx, ringkvv1.MetadataRequestID, id)
}

// traceInterceptors send a request ID with every RPC of the Client's
// connections; the calls of the API set theirs on the context (see invoke),
// so that every attempt of a call carries the same.
func traceInterceptors() []grpc.DialOption {
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(outgoing(ctx), method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(outgoing(ctx), desc, cc, method, opts...)
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}
}

// tracedError is the error of a call, with the call's request ID. Its
// message is the call's error's, unchanged.
type tracedError struct {
	id  string
	err error
}

func (e *tracedError) Error() string { return e.err.Error() }
func (e *tracedError) Unwrap() error { return e.err }
