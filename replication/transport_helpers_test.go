package replication

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// transportTestNode is one node of a transport test: a gRPC server on
// 127.0.0.1 with a Mux registered on it.
type transportTestNode struct {
	mux  *Mux
	addr string
	// accepted counts the TCP connections the node's server accepted.
	accepted *atomic.Int64
	// pipelineStreams counts the AppendEntriesPipeline streams opened to
	// the node (pipelines and heartbeat streams).
	pipelineStreams *atomic.Int64
	// activePipelines counts the AppendEntriesPipeline handlers running.
	activePipelines *atomic.Int64
	// heartbeatStreams counts the Heartbeats streams opened to the node, and
	// activeHeartbeats the Heartbeats handlers running.
	heartbeatStreams *atomic.Int64
	activeHeartbeats *atomic.Int64
}

// newTransportTestNode starts a node configured by cfg (LocalAddr is set
// here) and stops it when the test ends.
func newTransportTestNode(t testing.TB, cfg MuxConfig) *transportTestNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	counting := &transportCountingListener{Listener: lis, accepted: new(atomic.Int64)}
	cfg.LocalAddr = lis.Addr().String()
	mux := NewMux(cfg)
	pipelineStreams, activePipelines := new(atomic.Int64), new(atomic.Int64)
	heartbeatStreams, activeHeartbeats := new(atomic.Int64), new(atomic.Int64)
	srv := grpc.NewServer(grpc.WaitForHandlers(true),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			switch info.FullMethod {
			case ringkvv1.RaftTransport_AppendEntriesPipeline_FullMethodName:
				pipelineStreams.Add(1)
				activePipelines.Add(1)
				defer activePipelines.Add(-1)
			case ringkvv1.RaftTransport_Heartbeats_FullMethodName:
				heartbeatStreams.Add(1)
				activeHeartbeats.Add(1)
				defer activeHeartbeats.Add(-1)
			}
			return handler(srv, ss)
		}))
	ringkvv1.RegisterRaftTransportServer(srv, mux)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(counting) }()
	t.Cleanup(func() {
		if err := mux.Close(); err != nil {
			t.Errorf("Mux.Close: %v", err)
		}
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &transportTestNode{mux: mux, addr: cfg.LocalAddr, accepted: counting.accepted,
		pipelineStreams: pipelineStreams, activePipelines: activePipelines,
		heartbeatStreams: heartbeatStreams, activeHeartbeats: activeHeartbeats}
}

// transport registers group on n and closes the transport when the test
// ends.
func (n *transportTestNode) transport(t testing.TB, group uint64) *GroupTransport {
	t.Helper()
	tr, err := n.mux.Transport(group)
	if err != nil {
		t.Fatalf("Transport(%d): %v", group, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

type transportCountingListener struct {
	net.Listener
	accepted *atomic.Int64
}

func (l *transportCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// transportServeRPCs answers every RPC of tr with answer, on one goroutine
// as Raft does, until the test ends.
func transportServeRPCs(t testing.TB, tr *GroupTransport, answer func(raft.RPC)) {
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case rpc := <-tr.Consumer():
				answer(rpc)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-stopped
	})
}

// transportEventually polls cond every few milliseconds until it returns
// nil, and fails the test with cond's last error if that takes longer than
// timeout.
func transportEventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// transportWithin runs f and fails the test if it does not return within
// timeout; it returns f's result.
func transportWithin[T any](t testing.TB, timeout time.Duration, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(timeout):
		t.Fatalf("%s did not return within %v", what, timeout)
		panic("unreachable")
	}
}
