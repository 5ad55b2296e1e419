// This file streams InstallSnapshot over the client-streaming RPC of the same
// name: the first message carries the request, the following ones the
// snapshot's bytes in chunks. Neither side holds more than a chunk or two of
// the snapshot in memory, whatever its size. The sender paces the chunks of
// all its streams together (MuxConfig.SnapshotRate), and both sides count
// the bytes per group (Mux.SnapshotBytesSent, Mux.SnapshotBytesReceived).

package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// InstallSnapshot implements raft.Transport. It streams data (args.Size
// bytes) to target in MuxConfig.SnapshotChunkSize chunks, at the pace the
// Mux's SnapshotRate leaves it, and returns when target's Raft has installed
// the snapshot, or failed to. The whole call may take RPCTimeout for every
// SnapshotTimeoutScale bytes, and any one chunk's send RPCTimeout.
func (t *GroupTransport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	const op = "InstallSnapshot"
	p, err := t.peer(op, target)
	if err != nil {
		return err
	}
	cfg := &t.mux.cfg
	deadlineCtx, cancelDeadline := context.WithTimeout(t.life, snapshotTimeout(cfg.RPCTimeout, cfg.SnapshotTimeoutScale, args.Size))
	defer cancelDeadline()
	ctx, cancel := context.WithCancelCause(deadlineCtx)
	defer cancel(nil)
	// stall aborts the stream when opening it, or one send, takes longer
	// than RPCTimeout.
	stall := time.AfterFunc(cfg.RPCTimeout, func() {
		cancel(fmt.Errorf("snapshot stream made no progress for %v: %w", cfg.RPCTimeout, context.DeadlineExceeded))
	})
	defer stall.Stop()
	failed := func(err error) error { return t.callError(op, target, withCause(ctx, err)) }

	stream, err := p.client.InstallSnapshot(ctx)
	stall.Stop()
	if err != nil {
		return failed(err)
	}
	t.mux.stats.snapshotsSent.Add(1)
	s := snapshotSender{
		stream:    stream,
		stall:     stall,
		timeout:   cfg.RPCTimeout,
		chunkSize: cfg.SnapshotChunkSize,
		pacer:     t.mux.snapshotPacer,
		sent:      &t.mux.snapshotCounters(t.group).sent,
	}
	if err := s.send(ctx, installSnapshotRequestToProto(t.group, args), data); err != nil {
		return failed(err)
	}
	out, err := stream.CloseAndRecv()
	if err != nil {
		return failed(err)
	}
	installSnapshotResponseFromProto(out, resp)
	return nil
}

// snapshotTimeout is raft.NetworkTransport's deadline for a snapshot of size
// bytes: timeout for every scale bytes, and at least timeout.
func snapshotTimeout(timeout time.Duration, scale, size int64) time.Duration {
	if n := size / scale; n > 1 {
		if n > int64(time.Duration(1<<62)/timeout) {
			return 1 << 62 // effectively no deadline; avoid overflow
		}
		return timeout * time.Duration(n)
	}
	return timeout
}

// snapshotPacer paces outgoing snapshot data; *rate.Limiter is one. WaitN
// returns when n more bytes may be sent, or with an error when ctx ends
// first or would end before then.
type snapshotPacer interface {
	WaitN(ctx context.Context, n int) error
}

// snapshotSender streams one snapshot.
type snapshotSender struct {
	stream grpc.ClientStreamingClient[ringkvv1.InstallSnapshotChunk, ringkvv1.InstallSnapshotResponse]
	// stall is armed with timeout for every send.
	stall     *time.Timer
	timeout   time.Duration
	chunkSize int
	// pacer, if not nil, is waited on for every chunk before it is sent.
	pacer snapshotPacer
	// sent counts the data bytes sent.
	sent *atomic.Uint64
}

// send sends req, then data in chunks of chunkSize bytes. A send that fails
// because the server ended the stream returns nil: the server's status is
// then CloseAndRecv's error.
func (s *snapshotSender) send(ctx context.Context, req *ringkvv1.InstallSnapshotRequest, data io.Reader) error {
	if err := s.sendChunk(&ringkvv1.InstallSnapshotChunk{Request: req}); err != nil {
		return ignoreEOF(err)
	}
	for {
		// A fresh buffer per chunk: gRPC may use a sent message lazily, so
		// it must not be overwritten.
		buf := make([]byte, s.chunkSize)
		n, rerr := io.ReadFull(data, buf)
		if n > 0 {
			if err := s.pace(ctx, n); err != nil {
				return err
			}
			if err := s.sendChunk(&ringkvv1.InstallSnapshotChunk{Data: buf[:n]}); err != nil {
				return ignoreEOF(err)
			}
			s.sent.Add(uint64(n))
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return nil
		case rerr != nil:
			return fmt.Errorf("reading snapshot: %w", rerr)
		}
	}
}

func (s *snapshotSender) sendChunk(c *ringkvv1.InstallSnapshotChunk) error {
	s.stall.Reset(s.timeout)
	err := s.stream.Send(c)
	s.stall.Stop()
	return err
}

// pace waits until n more bytes may be sent.
func (s *snapshotSender) pace(ctx context.Context, n int) error {
	if s.pacer == nil {
		return nil
	}
	err := s.pacer.WaitN(ctx, n)
	if err == nil {
		return nil
	}
	if ctx.Err() == nil {
		// rate.Limiter refuses at once a wait that would outlast ctx's
		// deadline, with an error that does not say so in a way
		// errors.Is understands.
		err = fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
	}
	return fmt.Errorf("waiting for the snapshot rate limit: %w", err)
}

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// InstallSnapshot implements ringkvv1.RaftTransportServer. Raft reads the
// snapshot from a pipe that this handler fills from the stream, chunk by
// chunk, as Raft consumes it; the response is sent when Raft has answered.
func (m *Mux) InstallSnapshot(stream grpc.ClientStreamingServer[ringkvv1.InstallSnapshotChunk, ringkvv1.InstallSnapshotResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err == io.EOF {
		return rpcStatus(fmt.Errorf("%w: InstallSnapshot stream without a request", errMalformedStream))
	}
	if err != nil {
		return err
	}
	if first.Request == nil {
		return rpcStatus(fmt.Errorf("%w: InstallSnapshot stream does not begin with its request", errMalformedStream))
	}
	t, err := m.group(first.Request.Group)
	if err != nil {
		return rpcStatus(err)
	}
	req := new(raft.InstallSnapshotRequest)
	installSnapshotRequestFromProto(first.Request, req)

	pr, pw := io.Pipe()
	respCh := make(chan raft.RPCResponse, 1)
	if err := t.enqueue(ctx, raft.RPC{Command: req, Reader: pr, RespChan: respCh}, false); err != nil {
		return rpcStatus(err)
	}
	m.stats.snapshotsReceived.Add(1)
	received := &m.snapshotCounters(t.group).received

	// The waiter owns Raft's answer. Whatever ends the wait also closes the
	// pipe's read side, which unblocks a pump write nobody will read: Raft
	// answered without reading everything, or the RPC or the transport ended
	// (and then Raft's reads fail and it gives up the snapshot).
	type answer struct {
		resp raft.RPCResponse
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		r, err := t.await(ctx, respCh)
		if err != nil {
			pr.CloseWithError(err)
		} else {
			pr.CloseWithError(errSnapshotAnswered)
		}
		answered <- answer{r, err}
	}()

	pumpSnapshot(stream, first.Data, pw, received)
	a := <-answered
	if a.err != nil {
		return rpcStatus(a.err)
	}
	if a.resp.Error != nil {
		return rpcStatus(a.resp.Error)
	}
	resp, _ := a.resp.Response.(*raft.InstallSnapshotResponse)
	if resp == nil {
		return rpcStatus(fmt.Errorf("raft group %d answered InstallSnapshot with %T", t.group, a.resp.Response))
	}
	return stream.SendAndClose(installSnapshotResponseToProto(resp))
}

// errSnapshotAnswered closes the pipe of a snapshot Raft has answered.
var errSnapshotAnswered = errors.New("raft answered InstallSnapshot")

// pumpSnapshot writes data, then every chunk of stream, to pw until the
// stream ends (closing pw) or fails (closing pw with the error) or the pipe's
// reader is closed. It counts the data bytes received in received.
func pumpSnapshot(stream grpc.ClientStreamingServer[ringkvv1.InstallSnapshotChunk, ringkvv1.InstallSnapshotResponse],
	data []byte, pw *io.PipeWriter, received *atomic.Uint64) {
	for {
		if len(data) > 0 {
			received.Add(uint64(len(data)))
			if _, err := pw.Write(data); err != nil {
				return // the reader is closed
			}
		}
		c, err := stream.Recv()
		if err == io.EOF {
			pw.Close()
			return
		}
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		if c.Request != nil {
			pw.CloseWithError(fmt.Errorf("%w: InstallSnapshot request repeated mid-stream", errMalformedStream))
			return
		}
		data = c.Data
	}
}
