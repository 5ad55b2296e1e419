package rpc

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// ServerMetrics counts and times the gRPC calls a node serves, by method
// and status code.
type ServerMetrics struct {
	handled *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

// NewServerMetrics registers the request metrics with reg:
// ringkv_grpc_server_handled_total and
// ringkv_grpc_server_handling_seconds, labelled method and code.
func NewServerMetrics(reg prometheus.Registerer) *ServerMetrics {
	m := &ServerMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringkv_grpc_server_handled_total",
			Help: "gRPC calls completed by the node, by method and status code.",
		}, []string{"method", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ringkv_grpc_server_handling_seconds",
			Help:    "Time to serve a unary gRPC call, or the life of a stream, by method and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms to about 16 s
		}, []string{"method", "code"}),
	}
	reg.MustRegister(m.handled, m.seconds)
	return m
}

func (m *ServerMetrics) observe(method string, start time.Time, err error) {
	code := status.Code(err).String()
	m.handled.WithLabelValues(method, code).Inc()
	m.seconds.WithLabelValues(method, code).Observe(time.Since(start).Seconds())
}

// Interceptors return the server interceptors that record the metrics.
func (m *ServerMetrics) Interceptors() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.observe(info.FullMethod, start, err)
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.observe(info.FullMethod, start, err)
		return err
	}
	return unary, stream
}
