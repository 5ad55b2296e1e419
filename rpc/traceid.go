package rpc

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// Trace IDs: every call a node serves has an ID, taken from the caller's
// x-request-id header (ringkvv1.MetadataRequestID) or made here, which
// the node logs with every line about the call, sends on with the call
// when it forwards it to the shard's leader (forwardCtx), and returns in
// the response header. Go names say "trace ID" to keep it apart from the
// exactly-once RequestID of writes.

// maxTraceIDLen bounds a caller's trace ID.
const maxTraceIDLen = 64

type traceKey struct{}

// traceInfo is what a call's context carries.
type traceInfo struct {
	id        string
	method    string
	forwarded bool
	base      *slog.Logger // the node's logger; logger adds the call's fields
}

// logger returns the node's logger with the call's fields. It is built
// when a line is logged, not for every call: slog's With formats the
// fields at once, which costs more than the rest of a fast read.
func (t traceInfo) logger() *slog.Logger {
	l := t.base.With("request_id", t.id, "method", t.method)
	if t.forwarded {
		l = l.With("forwarded", true)
	}
	return l
}

// TraceID returns the trace ID of the call ctx belongs to, or "".
func TraceID(ctx context.Context) string {
	if t, ok := ctx.Value(traceKey{}).(traceInfo); ok {
		return t.id
	}
	return ""
}

// Logger returns the logger of the call ctx belongs to, which adds its
// trace ID and method to every line, or fallback outside a call.
func Logger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if t, ok := ctx.Value(traceKey{}).(traceInfo); ok {
		return t.logger()
	}
	return fallback
}

// newTraceID returns a new trace ID: 16 random hex digits.
func newTraceID() string {
	var b [8]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

// validTraceID reports whether a caller's trace ID may be used as is: it
// ends up in logs, so only a short run of safe characters.
func validTraceID(id string) bool {
	if id == "" || len(id) > maxTraceIDLen {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '.', r == '_', r == ':', r == '-':
		default:
			return false
		}
	}
	return true
}

// incomingTraceID returns the caller's valid trace ID, or a new one.
func incomingTraceID(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(ringkvv1.MetadataRequestID); len(v) > 0 && validTraceID(v[0]) {
			return v[0]
		}
	}
	return newTraceID()
}

// withTraceID sends ctx's trace ID, if any, with an outgoing call.
func withTraceID(ctx context.Context) context.Context {
	if id := TraceID(ctx); id != "" {
		return metadata.AppendToOutgoingContext(ctx, ringkvv1.MetadataRequestID, id)
	}
	return ctx
}

// untraced are the services whose calls get no trace ID or request log:
// the node-to-node Raft and read-confirmation traffic, many calls a second
// that no client made.
var untraced = []string{
	"/" + ringkvv1.RaftTransport_ServiceDesc.ServiceName + "/",
	"/" + ringkvv1.ReadConfirm_ServiceDesc.ServiceName + "/",
	"/grpc.health.v1.Health/",
}

func traced(method string) bool {
	for _, p := range untraced {
		if strings.HasPrefix(method, p) {
			return false
		}
	}
	return true
}

// startTrace gives the call its trace ID and logger.
func startTrace(ctx context.Context, logger *slog.Logger, method string) (context.Context, traceInfo) {
	t := traceInfo{id: incomingTraceID(ctx), method: method, forwarded: isForwarded(ctx), base: logger}
	return context.WithValue(ctx, traceKey{}, t), t
}

// endTrace logs the call's outcome: at debug level always, and at error
// level when it failed for a reason on the node's side.
func endTrace(ctx context.Context, t traceInfo, start time.Time, err error) {
	code := status.Code(err)
	took := time.Since(start)
	switch code {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		t.logger().ErrorContext(ctx, "request failed", "code", code.String(), "took", took, "err", err)
	default:
		if t.base.Enabled(ctx, slog.LevelDebug) {
			t.logger().DebugContext(ctx, "request", "code", code.String(), "took", took)
		}
	}
}

// TraceInterceptors return the server interceptors that give every call
// (but Raft's and read confirmations') its trace ID, log it with the
// call's fields through logger, and return the ID in the response header.
// Install them first, so that the calls other interceptors refuse are
// traced too.
func TraceInterceptors(logger *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !traced(info.FullMethod) {
			return handler(ctx, req)
		}
		start := time.Now()
		ctx, t := startTrace(ctx, logger, info.FullMethod)
		// Sent with the response's headers, with any set by the handler.
		_ = grpc.SetHeader(ctx, metadata.Pairs(ringkvv1.MetadataRequestID, t.id))
		resp, err := handler(ctx, req)
		endTrace(ctx, t, start, err)
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !traced(info.FullMethod) {
			return handler(srv, ss)
		}
		start := time.Now()
		ctx, t := startTrace(ss.Context(), logger, info.FullMethod)
		_ = ss.SetHeader(metadata.Pairs(ringkvv1.MetadataRequestID, t.id))
		err := handler(srv, &tracedStream{ServerStream: ss, ctx: ctx})
		endTrace(ctx, t, start, err)
		return err
	}
	return unary, stream
}

// tracedStream is a ServerStream whose context carries the call's trace.
type tracedStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context with its trace.
func (s *tracedStream) Context() context.Context { return s.ctx }
