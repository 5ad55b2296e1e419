// This file serves the Heartbeats stream: the coalesced heartbeats of every
// group of one peer node (transport_heartbeat.go sends them). Each
// heartbeat of a batch is handed to its group's Raft on its own goroutine,
// through the heartbeat fast path as on any other path, so that a group
// whose Raft is slow to answer holds up nobody else's heartbeats for long:
// the batch is answered in one message when all of it is done, or, after
// heartbeatPatience, without its stragglers, which are answered one by one
// as they complete. Batches are served one after another, but a batch
// holds up the next one for heartbeatPatience at most.

package replication

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// heartbeatPatience is how long the answer to a heartbeat batch waits for
// its slowest heartbeat. Raft answers a heartbeat in microseconds unless it
// has to persist a new term.
const heartbeatPatience = 5 * time.Millisecond

// Heartbeats implements ringkvv1.RaftTransportServer: it serves a peer's
// coalesced heartbeats. A heartbeat for a group that has no open transport
// here is answered with InvalidArgument, and one Raft does not take or
// answer within half of RPCTimeout (so that the answer arrives before a
// sender with the same RPCTimeout gives up on the stream) with
// DeadlineExceeded; the rest of its batch is unaffected.
//
// The stream ends when this node has no open group left, so that a
// node shutting down can stop its server gracefully while its peers still
// send heartbeats; the sender opens a new stream for its next batch. The
// handler returns once every heartbeat it took has been answered.
func (m *Mux) Heartbeats(stream grpc.BidiStreamingServer[ringkvv1.HeartbeatBatch, ringkvv1.HeartbeatBatchResponse]) error {
	ctx := stream.Context()
	noGroups := *m.noGroups.Load()
	h := &heartbeatServer{m: m, stream: stream}
	defer h.answering.Wait()

	// Batches are read on a goroutine of their own so that the handler also
	// watches noGroups. The goroutine ends when the handler returns: gRPC
	// then cancels the stream, which interrupts its Recv.
	batches := make(chan *ringkvv1.HeartbeatBatch)
	recvErr := make(chan error, 1)
	go func() {
		for {
			in, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case batches <- in:
			case <-ctx.Done():
				return
			}
		}
	}()

	for {
		select {
		case in := <-batches:
			if err := h.serve(ctx, in); err != nil {
				return err
			}
		case err := <-recvErr:
			if err == io.EOF {
				return nil
			}
			return err
		case <-noGroups:
			return rpcStatus(fmt.Errorf("no raft group open on this node: %w", raft.ErrTransportShutdown))
		}
	}
}

// heartbeatServer is the state of one Heartbeats stream being served.
type heartbeatServer struct {
	m      *Mux
	stream grpc.BidiStreamingServer[ringkvv1.HeartbeatBatch, ringkvv1.HeartbeatBatchResponse]
	// sendMu serializes sends: the handler's and the stragglers'.
	sendMu sync.Mutex
	// answering counts the heartbeats being served; the handler waits for
	// them before it returns.
	answering sync.WaitGroup
}

func (h *heartbeatServer) send(out *ringkvv1.HeartbeatBatchResponse) error {
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	return h.stream.Send(out)
}

// servedBatch collects the answers to one batch until it is answered.
type servedBatch struct {
	id uint64
	mu sync.Mutex
	// results are the answers not yet sent.
	results []*ringkvv1.HeartbeatResult
	// left counts the heartbeats not yet answered; done is closed when it
	// reaches 0 before the batch was answered.
	left int
	done chan struct{}
	// answered is set when the batch's answer was sent; later answers are
	// sent on their own.
	answered bool
}

// serve hands every heartbeat of in to its group and answers the batch
// when all are answered, or after heartbeatPatience with those that are.
func (h *heartbeatServer) serve(ctx context.Context, in *ringkvv1.HeartbeatBatch) error {
	n := len(in.Requests)
	if n == 0 {
		return nil
	}
	b := &servedBatch{id: in.Id, results: make([]*ringkvv1.HeartbeatResult, 0, n), left: n, done: make(chan struct{})}
	h.answering.Add(n)
	for i, req := range in.Requests {
		go func() {
			defer h.answering.Done()
			h.answer(b, h.m.serveHeartbeat(ctx, uint32(i), req))
		}()
	}
	patience := time.NewTimer(heartbeatPatience)
	select {
	case <-b.done:
	case <-patience.C:
	case <-ctx.Done():
	}
	patience.Stop()
	b.mu.Lock()
	results := b.results
	b.results, b.answered = nil, true
	b.mu.Unlock()
	if len(results) == 0 {
		return nil
	}
	return h.send(&ringkvv1.HeartbeatBatchResponse{Batch: b.id, Results: results})
}

// answer records r as an answer of b, or sends it if b's answer has been
// sent already.
func (h *heartbeatServer) answer(b *servedBatch, r *ringkvv1.HeartbeatResult) {
	b.mu.Lock()
	if !b.answered {
		b.results = append(b.results, r)
		if b.left--; b.left == 0 {
			close(b.done)
		}
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	// An error means the stream is over; the handler learns it from Recv.
	h.send(&ringkvv1.HeartbeatBatchResponse{Batch: b.id, Results: []*ringkvv1.HeartbeatResult{r}})
}

// serveHeartbeat hands the heartbeat in, at index in its batch, to its
// group's Raft and returns the answer.
func (m *Mux) serveHeartbeat(ctx context.Context, index uint32, in *ringkvv1.AppendEntriesRequest) *ringkvv1.HeartbeatResult {
	r := &ringkvv1.HeartbeatResult{Index: index}
	t, err := m.group(in.Group)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, m.cfg.RPCTimeout/2)
		r.Response, err = t.serveAppendEntries(ctx, in)
		cancel()
	}
	if err != nil {
		s := status.Convert(rpcStatus(err))
		r.Response, r.Code, r.Message = nil, uint32(s.Code()), s.Message()
	}
	return r
}
