// This file implements raft.AppendPipeline over the AppendEntriesPipeline
// bidi stream (one stream per group and peer), and the stream's serving
// side. The semantics mirror raft.NetworkTransport's netPipeline: a request
// is sent, then queued for its response; at most MaxInFlight requests await
// responses, which complete in order; the first stream error fails every
// later request so that Raft falls back to plain AppendEntries.

package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// AppendEntriesPipeline implements raft.Transport. It returns
// raft.ErrPipelineReplicationNotSupported when MuxConfig.MaxInFlight is 1.
func (t *GroupTransport) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	const op = "AppendEntriesPipeline"
	maxInFlight := t.mux.cfg.MaxInFlight
	if maxInFlight < 2 {
		return nil, raft.ErrPipelineReplicationNotSupported
	}
	p, err := t.peer(op, target)
	if err != nil {
		return nil, err
	}
	pace, err := t.heartbeatPace(target)
	if err != nil {
		return nil, t.callError(op, target, err)
	}

	// The stream lives until Close, so its context has no deadline; opening
	// it (which waits for a connection) is bounded by a timer instead.
	ctx, cancel := context.WithCancel(t.life)
	openTimer := time.AfterFunc(t.mux.cfg.RPCTimeout, cancel)
	stream, err := p.client.AppendEntriesPipeline(ctx)
	if !openTimer.Stop() {
		err = fmt.Errorf("opening stream: %w", context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, t.callError(op, target, err)
	}

	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		cancel()
		return nil, t.callError(op, target, raft.ErrTransportShutdown)
	}
	t.pipelines.Add(2) // receive and read
	t.mu.Unlock()

	pl := &pipeline{
		t:      t,
		target: target,
		pace:   pace,
		stream: stream,
		cancel: cancel,
		// As in netPipeline: besides the buffered ones, the receive loop
		// holds one request awaiting its response and AppendEntries one sent
		// request waiting for room, so buffers of maxInFlight-2 allow
		// maxInFlight requests in flight.
		inflight: make(chan *pipelineFuture, maxInFlight-2),
		doneCh:   make(chan raft.AppendFuture, maxInFlight-2),
		closeCh:  make(chan struct{}),
		recvDone: make(chan struct{}),
		answers:  make(chan pipelineAnswer, 1),
		readDone: make(chan struct{}),
	}
	timeout := t.mux.cfg.RPCTimeout
	pl.sendTimer = time.AfterFunc(time.Hour, func() {
		pl.fail(fmt.Errorf("send blocked for %v: %w", timeout, context.DeadlineExceeded))
	})
	pl.sendTimer.Stop()
	pl.recvTimer = time.AfterFunc(time.Hour, func() {
		pl.fail(fmt.Errorf("no response within %v: %w", timeout, context.DeadlineExceeded))
	})
	pl.recvTimer.Stop()
	go pl.read()
	go pl.receive()
	return pl, nil
}

// pipeline is a raft.AppendPipeline on one AppendEntriesPipeline stream.
type pipeline struct {
	t      *GroupTransport
	target raft.ServerAddress
	// pace is the group's heartbeat rhythm to target, whose
	// acknowledgements tell whether an empty request may be skipped.
	pace *heartbeatPace
	// quiet lets an idle pipeline skip empty requests (transport_quiet.go).
	quiet  quietAppends
	stream grpc.BidiStreamingClient[ringkvv1.AppendEntriesRequest, ringkvv1.AppendEntriesResponse]
	// cancel aborts the stream: on Close, on the transport's Close, and on
	// failure (fail), including a send or an awaited response that outlives
	// RPCTimeout (the timers).
	cancel    context.CancelFunc
	sendTimer *time.Timer
	recvTimer *time.Timer

	// sendMu serializes AppendEntries: a stream allows one sender.
	sendMu sync.Mutex
	// inflight carries sent requests, in order, to the receive loop.
	inflight chan *pipelineFuture
	// doneCh carries completed requests, in order, to Raft.
	doneCh chan raft.AppendFuture

	closeOnce sync.Once
	closeCh   chan struct{}
	// recvDone is closed when the receive loop has exited.
	recvDone chan struct{}
	// answers carries what the stream delivers, in order, from the read
	// loop to the receive loop: the read loop always has a RecvMsg
	// pending, so that the stream's end is noticed also while nothing is
	// in flight, as when every request is skipped (transport_quiet.go).
	answers  chan pipelineAnswer
	readDone chan struct{}

	errMu sync.Mutex
	// err is the first failure of the stream; every later request fails
	// with it. Guarded by errMu.
	err error
}

// pipelineFuture is the raft.AppendFuture of one pipelined request.
type pipelineFuture struct {
	start time.Time
	args  *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	err   error
	// skipped: the request was not sent; resp holds the follower's answer
	// to an identical one (transport_quiet.go).
	skipped bool
	// done is closed when err and resp are final.
	done chan struct{}
}

func (f *pipelineFuture) Error() error {
	<-f.done
	return f.err
}

func (f *pipelineFuture) Start() time.Time                      { return f.start }
func (f *pipelineFuture) Request() *raft.AppendEntriesRequest   { return f.args }
func (f *pipelineFuture) Response() *raft.AppendEntriesResponse { return f.resp }

// AppendEntries implements raft.AppendPipeline. It blocks while MaxInFlight
// requests await responses.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	select {
	case <-p.closeCh:
		return nil, raft.ErrPipelineShutdown
	default:
	}
	if err := p.failure(); err != nil {
		return nil, err
	}

	f := &pipelineFuture{start: time.Now(), args: args, resp: resp, done: make(chan struct{})}
	if answer, ok := p.quietAnswer(args); ok {
		// Completed in order by the receive loop, after the requests
		// sent before it.
		*resp, f.skipped = answer, true
		p.t.mux.stats.quietAppends.Add(1)
	} else {
		p.sendTimer.Reset(p.t.mux.cfg.RPCTimeout)
		err := p.stream.Send(appendEntriesRequestToProto(p.t.group, args))
		p.sendTimer.Stop()
		if errors.Is(err, io.EOF) {
			// The server ended the stream; the receive loop learns why from
			// RecvMsg and records that as the failure.
			return nil, fmt.Errorf("%w: %w", raft.ErrPipelineShutdown,
				p.t.callError("AppendEntriesPipeline", p.target, io.ErrUnexpectedEOF))
		}
		if err != nil {
			return nil, p.fail(err)
		}
		p.t.mux.stats.pipelineRequests.Add(1)
		p.t.mux.stats.pipelineEntries.Add(uint64(len(args.Entries)))
	}

	select {
	case p.inflight <- f:
		return f, nil
	default:
	}
	// No room: the receive loop holds a completed request that Raft has not
	// taken. Raft's pipeline decoder stops taking them when it sees a newer
	// term, and Raft's send loop only notices after this call returns; with
	// no bound here both would wait on each other forever (and the group's
	// Shutdown with them). So a pipeline that makes no room within
	// RPCTimeout fails, and Raft falls back to plain AppendEntries.
	stall := time.NewTimer(p.t.mux.cfg.RPCTimeout)
	defer stall.Stop()
	select {
	case p.inflight <- f:
		return f, nil
	case <-p.closeCh:
		return nil, raft.ErrPipelineShutdown
	case <-p.recvDone:
		return nil, p.fail(raft.ErrPipelineShutdown)
	case <-stall.C:
		return nil, p.fail(fmt.Errorf("no room for a request in flight for %v: Raft took no responses: %w",
			p.t.mux.cfg.RPCTimeout, context.DeadlineExceeded))
	}
}

// Consumer implements raft.AppendPipeline: completed requests in the order
// they were sent.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.doneCh }

// Close implements raft.AppendPipeline: it aborts the stream and the
// requests in flight, and waits for the receive and read loops. It is
// idempotent.
func (p *pipeline) Close() error {
	p.closeOnce.Do(func() {
		close(p.closeCh)
		p.cancel()
	})
	<-p.recvDone
	<-p.readDone
	return nil
}

// pipelineAnswer is one message of the stream, or its end.
type pipelineAnswer struct {
	resp *ringkvv1.AppendEntriesResponse
	err  error
}

// read receives the stream's messages until it ends (the server ended
// it, the connection broke, or Close or fail canceled it), and hands them
// to the receive loop.
func (p *pipeline) read() {
	defer p.t.pipelines.Done()
	defer close(p.readDone)
	for {
		out := new(ringkvv1.AppendEntriesResponse)
		err := p.stream.RecvMsg(out)
		a := pipelineAnswer{resp: out, err: err}
		if err != nil {
			a.resp = nil
		}
		select {
		case p.answers <- a:
		case <-p.closeCh:
			return
		case <-p.t.life.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// fail records err as the stream's failure, unless one is already recorded,
// aborts the stream, and returns the recorded failure.
func (p *pipeline) fail(err error) error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the server ended the stream
		}
		p.err = fmt.Errorf("%w: %w", raft.ErrPipelineShutdown, p.t.callError("AppendEntriesPipeline", p.target, err))
		p.cancel()
		select {
		case <-p.closeCh: // closing, not failing
		default:
			p.t.mux.cfg.Logger.Debug("raft append pipeline failed", "group", p.t.group, "target", p.target, "error", err)
		}
	}
	return p.err
}

// failure returns the stream's recorded failure, if any.
func (p *pipeline) failure() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// receive completes the sent requests in order, until Close or the
// transport's Close. After a stream failure every request completes with
// it; its zero response (Success false) makes Raft abandon the pipeline.
func (p *pipeline) receive() {
	defer p.t.pipelines.Done()
	defer close(p.recvDone)
	defer p.recvTimer.Stop()
	// early holds answers that came before their requests were queued
	// (AppendEntries queues a request after sending it), oldest first.
	var early []*ringkvv1.AppendEntriesResponse
	for {
		var f *pipelineFuture
		select {
		case f = <-p.inflight:
		case a := <-p.answers:
			// The stream ended, or this answers a request that
			// AppendEntries is about to queue.
			if a.err != nil {
				p.fail(a.err)
			} else {
				early = append(early, a.resp)
			}
			continue
		case <-p.closeCh:
			return
		case <-p.t.life.Done():
			return
		}

		err := p.failure()
		if err == nil && !f.skipped {
			var out *ringkvv1.AppendEntriesResponse
			if len(early) > 0 {
				out, early = early[0], early[1:]
			} else {
				p.recvTimer.Reset(p.t.mux.cfg.RPCTimeout)
				select {
				case a := <-p.answers:
					out, err = a.resp, a.err
				case <-p.closeCh:
					return
				case <-p.t.life.Done():
					return
				}
				p.recvTimer.Stop()
				if err != nil {
					err = p.fail(err)
				}
			}
			if err == nil {
				appendEntriesResponseFromProto(out, f.resp)
				if out.Error != "" {
					err = p.t.callError("AppendEntries", p.target, remoteError(out.Error))
				} else {
					p.remember(f.args, f.resp)
				}
			}
		}
		f.err = err
		close(f.done)

		select {
		case p.doneCh <- f:
		case <-p.closeCh:
			return
		case <-p.t.life.Done():
			return
		}
	}
}

// AppendEntriesPipeline implements ringkvv1.RaftTransportServer. It serves
// one group's pipeline: each request is handed to Raft (a heartbeat to its
// fast path, though the Mux sends heartbeats on the Heartbeats stream), and
// answered, in order before the next is taken, as raft.NetworkTransport
// serves a connection; requests already sent wait in the stream meanwhile.
//
// After the first request, requests are read on a goroutine of their own so
// that the handler also watches its group: a stream can stay idle for long
// (the pipeline of a leader that stepped down), and must not hold on to a
// closed group, nor delay the server's GracefulStop, until its next
// request. The goroutine ends when the handler returns: gRPC then cancels
// the stream, which interrupts its Recv.
func (m *Mux) AppendEntriesPipeline(stream grpc.BidiStreamingServer[ringkvv1.AppendEntriesRequest, ringkvv1.AppendEntriesResponse]) error {
	ctx := stream.Context()
	in, err := stream.Recv()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	t, err := m.group(in.Group)
	if err != nil {
		return rpcStatus(err)
	}

	requests := make(chan *ringkvv1.AppendEntriesRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			in, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case requests <- in:
			case <-ctx.Done():
				return
			}
		}
	}()

	for {
		if in.Group != t.group {
			return rpcStatus(fmt.Errorf("%w: pipeline of raft group %d carried a request of group %d", errMalformedStream, t.group, in.Group))
		}
		out, err := t.serveAppendEntries(ctx, in)
		if err != nil {
			return rpcStatus(err)
		}
		if err := stream.Send(out); err != nil {
			return err
		}
		select {
		case in = <-requests:
		case err := <-recvErr:
			if err == io.EOF {
				return nil
			}
			return err
		case <-t.life.Done():
			return rpcStatus(t.closedError())
		}
	}
}
