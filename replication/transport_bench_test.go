package replication

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// transportBenchRequest is an AppendEntries of n entries of size bytes, as a
// leader sends them.
func transportBenchRequest(n, size int) *raft.AppendEntriesRequest {
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("node-1"), Addr: []byte("10.0.0.1:7001")},
		Term:      3, Leader: []byte("10.0.0.1:7001"), PrevLogEntry: 1000, PrevLogTerm: 3, LeaderCommitIndex: 999,
	}
	now := time.Now()
	for i := range n {
		req.Entries = append(req.Entries, &raft.Log{
			Index: uint64(1001 + i), Term: 3, Type: raft.LogCommand, Data: bytes.Repeat([]byte{'v'}, size), AppendedAt: now,
		})
	}
	return req
}

// BenchmarkEncodeAppendEntries measures turning a 64 x 256 B AppendEntries
// into bytes: the conversion alone, with protobuf marshalling (what this
// transport does), and raft.NetworkTransport's msgpack for reference.
func BenchmarkEncodeAppendEntries(b *testing.B) {
	req := transportBenchRequest(64, 256)
	b.Run("convert", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			appendEntriesRequestToProto(1, req)
		}
	})
	b.Run("convert+marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(appendEntriesRequestToProto(1, req)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("msgpack-reference", func(b *testing.B) {
		b.ReportAllocs()
		h := &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}
		var buf []byte
		for b.Loop() {
			buf = buf[:0]
			if err := codec.NewEncoderBytes(&buf, h).Encode(req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecodeAppendEntries is the receiving side of
// BenchmarkEncodeAppendEntries.
func BenchmarkDecodeAppendEntries(b *testing.B) {
	req := transportBenchRequest(64, 256)
	msg := appendEntriesRequestToProto(1, req)
	wire, err := proto.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("convert", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			appendEntriesRequestFromProto(msg, new(raft.AppendEntriesRequest))
		}
	})
	b.Run("unmarshal+convert", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			in := new(ringkvv1.AppendEntriesRequest)
			if err := proto.Unmarshal(wire, in); err != nil {
				b.Fatal(err)
			}
			appendEntriesRequestFromProto(in, new(raft.AppendEntriesRequest))
		}
	})
	b.Run("msgpack-reference", func(b *testing.B) {
		b.ReportAllocs()
		h := &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}
		var enc []byte
		if err := codec.NewEncoderBytes(&enc, h).Encode(req); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := codec.NewDecoderBytes(enc, h).Decode(new(raft.AppendEntriesRequest)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendEntriesRoundTrip measures AppendEntries over loopback gRPC
// to a receiver that answers at once: a heartbeat (alone in its batch, as
// coalescing is off), 64 x 256 B entries one call at a time, and the same on
// a pipeline.
func BenchmarkAppendEntriesRoundTrip(b *testing.B) {
	a := newTransportTestNode(b, MuxConfig{CoalesceWindow: -1})
	bn := newTransportTestNode(b, MuxConfig{})
	ta := a.transport(b, 1)
	tb := bn.transport(b, 1)
	target := raft.ServerAddress(bn.addr)
	ok := &raft.AppendEntriesResponse{Term: 3, LastLog: 1064, Success: true}
	transportServeRPCs(b, tb, func(rpc raft.RPC) { rpc.Respond(ok, nil) })
	tb.SetHeartbeatHandler(func(rpc raft.RPC) { rpc.Respond(ok, nil) })

	unary := func(req *raft.AppendEntriesRequest) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := ta.AppendEntries("b", target, req, new(raft.AppendEntriesResponse)); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("heartbeat", unary(transportTestHeartbeat(a))) // on the heartbeat stream, alone
	b.Run("heartbeat-unary", func(b *testing.B) {        // what a heartbeat would cost as a call
		b.ReportAllocs()
		p, err := a.mux.peer(target)
		if err != nil {
			b.Fatal(err)
		}
		hb := transportTestHeartbeat(a)
		for b.Loop() {
			ctx, cancel := context.WithTimeout(context.Background(), DefaultRPCTimeout)
			_, err := p.client.AppendEntries(ctx, appendEntriesRequestToProto(1, hb))
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("64x256B", unary(transportBenchRequest(64, 256)))
	b.Run("pipeline-64x256B", func(b *testing.B) {
		b.ReportAllocs()
		p, err := ta.AppendEntriesPipeline("b", target)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		req := transportBenchRequest(64, 256)
		var received atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() { // Raft's decoding side
			defer wg.Done()
			for {
				select {
				case f := <-p.Consumer():
					if err := f.Error(); err != nil {
						b.Error(err)
						return
					}
					received.Add(1)
				case <-stop:
					return
				}
			}
		}()
		var sent int64
		for b.Loop() {
			if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		for received.Load() < sent && !b.Failed() {
			runtime.Gosched()
		}
		close(stop)
		wg.Wait()
	})
}

// BenchmarkAppendEntriesRoundTripNetworkTransport is
// BenchmarkAppendEntriesRoundTrip over raft.NetworkTransport (msgpack on
// pooled TCP connections), for reference.
func BenchmarkAppendEntriesRoundTripNetworkTransport(b *testing.B) {
	newTCP := func() *raft.NetworkTransport {
		tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tr.Close() })
		return tr
	}
	ta, tb := newTCP(), newTCP()
	ok := &raft.AppendEntriesResponse{Term: 3, LastLog: 1064, Success: true}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case rpc := <-tb.Consumer():
				rpc.Respond(ok, nil)
			case <-stop:
				return
			}
		}
	}()
	b.Cleanup(func() { close(stop); <-stopped })
	tb.SetHeartbeatHandler(func(rpc raft.RPC) { rpc.Respond(ok, nil) })

	unary := func(req *raft.AppendEntriesRequest) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := ta.AppendEntries("b", tb.LocalAddr(), req, new(raft.AppendEntriesResponse)); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	heartbeat := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("a"), Addr: []byte(ta.LocalAddr())},
		Term:      5,
	}
	b.Run("heartbeat", unary(heartbeat))
	b.Run("64x256B", unary(transportBenchRequest(64, 256)))
}

// BenchmarkInstallSnapshot streams 64 MiB snapshots over loopback and
// reports the peak heap in use while it does, which stays far below the
// snapshot's size.
func BenchmarkInstallSnapshot(b *testing.B) {
	const size = 64 << 20
	a := newTransportTestNode(b, MuxConfig{SnapshotRate: -1}) // the transport's speed, not the limit's
	bn := newTransportTestNode(b, MuxConfig{})
	ta := a.transport(b, 1)
	tb := bn.transport(b, 1)
	target := raft.ServerAddress(bn.addr)
	transportServeRPCs(b, tb, func(rpc raft.RPC) {
		n, err := io.Copy(io.Discard, rpc.Reader)
		rpc.Respond(&raft.InstallSnapshotResponse{Term: 1, Success: n == size}, err)
	})

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	b.SetBytes(size)
	for b.Loop() {
		resp := new(raft.InstallSnapshotResponse)
		err := ta.InstallSnapshot("b", target, &raft.InstallSnapshotRequest{Term: 1, Size: size}, resp,
			io.LimitReader(transportZeroReader{}, size))
		if err != nil || !resp.Success {
			b.Fatalf("InstallSnapshot: %v, %+v", err, resp)
		}
	}
	close(stop)
	<-sampled
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
}

type transportZeroReader struct{}

func (transportZeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
