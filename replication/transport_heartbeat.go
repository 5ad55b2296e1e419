// This file sends heartbeats. Raft sends one to every follower every
// HeartbeatTimeout/10 in every group, so on an idle node they are nearly all
// the transport does, and sent one by one they cost a syscall and a few
// goroutine wake-ups each on both nodes. So the Mux coalesces them: a
// group's heartbeat goes to the batcher of its target peer, which sends
// what has queued for that peer as one HeartbeatBatch on one long-lived
// Heartbeats stream per peer, and completes every caller with its own
// answer.
//
// A heartbeat waits for company until its group's next heartbeat to that
// peer is due, and at most MuxConfig.CoalesceWindow. It is due 9/4 of the
// group's heartbeat interval after the previous heartbeat's answer, the
// interval being the time Raft waits between one heartbeat's answer and the
// next heartbeat (a random HeartbeatTimeout/10 to /5, about 1.35 *
// HeartbeatTimeout/10 on average as heartbeatPace measures it in the
// leader's term). A new leader's first heartbeat goes at once, and so does
// one that comes after it is due (after a backoff, say). A batch goes when
// its most impatient heartbeat must go, taking every heartbeat queued.
//
// Why due then: the heartbeats of one batch are answered together, and
// every one of them is due at the same moment, later than Raft's longest
// wait (HeartbeatTimeout/5): so they all queue up again, whatever Raft's
// random waits, and travel together again, one batch per peer per round
// (64 groups, 3 nodes: 21 heartbeats a batch instead of 4, a round every
// 500 ms or so). Heartbeats whose answers came apart fall into step the
// same way: a batch takes whatever is queued when it goes. It also makes
// the round a little longer than Raft's own average (about
// 2.6 * HeartbeatTimeout/10 measured, 3 at most with a typical interval
// estimate, instead of 1.5): fewer heartbeats. A follower still hears from
// its leader well within its HeartbeatTimeout (3-4 rounds), and within the
// leader lease, which the leader's heartbeat answers must beat: ringkv's
// LeaderLeaseTimeout is a whole HeartbeatTimeout for that reason (the
// transport cannot know the lease, and Raft does not ask for a heartbeat
// any sooner when the lease is short). A group with fast timers (tests use
// a HeartbeatTimeout of 100 ms) is delayed in proportion; the window only
// caps timers more relaxed than ringkv's defaults.
//
// A heartbeat that a leadership confirmation waits for must not wait for the
// window: raft.VerifyLeader, which a Group's read barrier calls when it has
// no Config.Confirmer, makes Raft send a heartbeat to every follower and
// waits for a quorum of answers, or for the answers to heartbeats already
// under way. The Group says when it calls VerifyLeader (urgentHeartbeats);
// the group's heartbeats, those queued and those sent meanwhile, then flush
// their peer's batch at once.
//
// The serving side is in transport_heartbeat_server.go.

package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// heartbeatUrgency is what a Group needs from a raft.Transport that delays
// heartbeats, as GroupTransport does (see urgentHeartbeats).
type heartbeatUrgency interface {
	urgentHeartbeats() (end func())
}

// urgentHeartbeats tells tr, if it delays heartbeats, that a leadership
// confirmation is about to wait for them, and returns the function that
// says it no longer does. Call end exactly once.
func urgentHeartbeats(tr raft.Transport) (end func()) {
	if u, ok := tr.(heartbeatUrgency); ok {
		return u.urgentHeartbeats()
	}
	return func() {}
}

// urgentHeartbeats makes the group's heartbeats urgent until end is called,
// or for RPCTimeout at most: each is sent at once, with whatever else is
// queued for its peer, and so is every heartbeat of the group queued now.
func (t *GroupTransport) urgentHeartbeats() (end func()) {
	m := t.mux
	if m.cfg.ignoreUrgency {
		return func() {}
	}
	t.urgency.until.Store(int64(m.now() + m.cfg.RPCTimeout))
	// Before the flush: a heartbeat the flush does not find queued is
	// queued after it and sees the group urgent (both hold the batcher's
	// lock).
	t.urgency.waiters.Add(1)
	m.flushHeartbeats(t.group)
	return func() { t.urgency.waiters.Add(-1) }
}

// heartbeatsUrgent reports whether the group's heartbeats are urgent.
func (t *GroupTransport) heartbeatsUrgent() bool {
	return t.urgency.waiters.Load() > 0 && int64(t.mux.now()) < t.urgency.until.Load()
}

// heartbeat sends one heartbeat to target through the peer's batcher and
// waits for its answer, within RPCTimeout of the call.
func (t *GroupTransport) heartbeat(target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	const op = "AppendEntries"
	m := t.mux
	p, err := t.peer(op, target)
	if err != nil {
		return err
	}
	b, err := m.heartbeatBatcher(p)
	if err != nil {
		return t.callError(op, target, err)
	}
	pace, err := t.heartbeatPace(target)
	if err != nil {
		return t.callError(op, target, err)
	}
	now := m.now()
	defer func() { pace.returned(m.now()) }()
	patience := pace.patience(m.cfg.CoalesceWindow, now, args.Term)
	// Raft reuses args and resp for its next heartbeat, also after a failed
	// one: args is converted here, and resp written here, never by the
	// batcher.
	c := &heartbeatCall{
		req:      appendEntriesRequestToProto(t.group, args),
		flushBy:  now + patience,
		deadline: now + m.cfg.RPCTimeout,
		done:     make(chan struct{}),
	}
	if err := b.enqueue(c, t); err != nil {
		return t.callError(op, target, err)
	}
	select {
	case <-c.done:
	case <-t.life.Done():
		return t.callError(op, target, raft.ErrTransportShutdown)
	}
	if c.err != nil {
		return t.callError(op, target, c.err)
	}
	appendEntriesResponseFromProto(c.resp, resp)
	if c.resp.Error != "" {
		return t.callError(op, target, remoteError(c.resp.Error))
	}
	if resp.Success && resp.Term == args.Term {
		pace.acknowledged(m.now(), c.stream, args.Term)
	}
	return nil
}

// heartbeatPace tracks the rhythm of a group's heartbeats to one peer in
// one term (one leadership), to bound how long one may wait for company.
type heartbeatPace struct {
	mu sync.Mutex
	// term is the term of the heartbeats paced; a new term starts afresh.
	term uint64
	// last is when the term's last heartbeat returned, on the Mux clock; 0
	// before the first.
	last time.Duration
	// interval estimates how long Raft waits between a heartbeat's answer
	// and the next heartbeat (HeartbeatTimeout/10 to /5): the first such gap
	// of the term, then moved towards each new gap by an eighth of the way
	// up or a sixteenth of itself down at most. So the longer gaps after
	// failed heartbeats (Raft backs off) raise it little, and the
	// heartbeats a VerifyLeader triggers at once, rare unless urgent, do
	// not pull it down at once.
	interval time.Duration
	// ack is the last heartbeat the follower acknowledged (Success, in
	// the heartbeat's term): what lets a pipeline skip an empty
	// AppendEntries (see transport_quiet.go).
	ack heartbeatAck
}

// heartbeatAck is a heartbeat acknowledged by a follower.
type heartbeatAck struct {
	// at is when it returned, on the Mux clock (0: none yet).
	at time.Duration
	// stream identifies the Heartbeats stream that carried it: a stream
	// reaches one process, so while a group's heartbeats are acknowledged
	// on the same stream, the follower has not restarted.
	stream uint64
	term   uint64
}

// patience returns how long a heartbeat of term sent at now may wait for
// company: until it is due, 9/4 of the group's heartbeat interval after
// the previous heartbeat's answer (see the top of this file for why), but
// window at most. The first heartbeat of a term, whose interval is
// unknown, goes at once. Negative means at once.
func (p *heartbeatPace) patience(window, now time.Duration, term uint64) time.Duration {
	if window <= 0 {
		return -1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if term != p.term {
		p.term, p.last, p.interval = term, 0, 0
	}
	if p.last == 0 {
		return -1
	}
	gap := now - p.last
	switch {
	case p.interval == 0:
		p.interval = gap
	case gap > p.interval:
		p.interval += (gap - p.interval) / 8
	default:
		p.interval -= min(p.interval-gap, p.interval/16)
	}
	return min(window, p.interval*9/4-gap)
}

// acknowledged records that a heartbeat of term returned at now with
// Success, answered on the Heartbeats stream numbered stream.
func (p *heartbeatPace) acknowledged(now time.Duration, stream, term uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ack = heartbeatAck{at: now, stream: stream, term: term}
}

// lastAck returns the last acknowledged heartbeat and the heartbeat
// interval estimate.
func (p *heartbeatPace) lastAck() (heartbeatAck, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ack, p.interval
}

// returned records that a heartbeat returned at now.
func (p *heartbeatPace) returned(now time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = now
}

// heartbeatPace returns the pace of the group's heartbeats to target.
func (t *GroupTransport) heartbeatPace(target raft.ServerAddress) (*heartbeatPace, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return nil, raft.ErrTransportShutdown
	}
	pace, ok := t.mu.heartbeats[target]
	if !ok {
		if t.mu.heartbeats == nil {
			t.mu.heartbeats = map[raft.ServerAddress]*heartbeatPace{}
		}
		pace = new(heartbeatPace)
		t.mu.heartbeats[target] = pace
	}
	return pace, nil
}

// heartbeatCall is one heartbeat handed to a batcher.
type heartbeatCall struct {
	req *ringkvv1.AppendEntriesRequest
	// flushBy (on the Mux clock) is when the heartbeat must be sent.
	flushBy time.Duration
	// deadline (on the Mux clock) is when the caller's RPCTimeout ends.
	deadline time.Duration
	// resp or err is the outcome, final when done is closed.
	resp *ringkvv1.AppendEntriesResponse
	err  error
	// stream numbers the Heartbeats stream that answered (with resp).
	stream uint64
	done   chan struct{}
}

// complete sets the outcome of c. It is called exactly once, by whoever
// holds c: the batcher's queue, then the stream it was sent on.
func (c *heartbeatCall) complete(resp *ringkvv1.AppendEntriesResponse, err error) {
	c.resp, c.err = resp, err
	close(c.done)
}

// heartbeatBatcher coalesces the heartbeats of every group of a Mux to one
// peer and sends them on its Heartbeats stream. Its goroutine, run, is
// started with it and owned by the Mux, whose Close stops it and waits.
type heartbeatBatcher struct {
	m    *Mux
	peer *muxPeer
	// kick wakes run: the first heartbeat was queued, or a flush was asked
	// for.
	kick chan struct{}

	mu struct {
		sync.Mutex
		// queue holds the heartbeats not yet sent, oldest first.
		queue []*heartbeatCall
		// flushBy is the earliest flushBy of the queued heartbeats.
		flushBy time.Duration
		// flush asks for the queue to be sent at once.
		flush bool
		// stopped is set when run exits; nothing is queued after it.
		stopped bool
	}

	// stream is the open stream to the peer, or nil. Only run uses it,
	// and lastID, the ID of the last batch sent on it.
	stream *heartbeatStream
	lastID uint64
}

// heartbeatBatcher returns the batcher of the peer p, starting it on first
// use.
func (m *Mux) heartbeatBatcher(p *muxPeer) (*heartbeatBatcher, error) {
	if b := p.batcher.Load(); b != nil {
		return b, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, raft.ErrTransportShutdown
	}
	if b := p.batcher.Load(); b != nil {
		return b, nil
	}
	b := &heartbeatBatcher{m: m, peer: p, kick: make(chan struct{}, 1)}
	p.batcher.Store(b)
	m.batchers.Add(1)
	go b.run()
	return b, nil
}

// flushHeartbeats makes every batcher holding a queued heartbeat of group
// send its batch at once.
func (m *Mux) flushHeartbeats(group uint64) {
	for _, p := range *m.peers.Load() {
		if b := p.batcher.Load(); b != nil {
			b.flushGroup(group)
		}
	}
}

// enqueue queues c for sending by c.flushBy, or at once if t's heartbeats
// are urgent.
func (b *heartbeatBatcher) enqueue(c *heartbeatCall, t *GroupTransport) error {
	b.mu.Lock()
	if b.mu.stopped {
		b.mu.Unlock()
		return raft.ErrTransportShutdown
	}
	b.mu.queue = append(b.mu.queue, c)
	wake := false
	if len(b.mu.queue) == 1 || c.flushBy < b.mu.flushBy {
		b.mu.flushBy = c.flushBy
		wake = true
	}
	// Under the lock: see urgentHeartbeats.
	if t.heartbeatsUrgent() {
		b.mu.flush = true
		wake = true
	}
	b.mu.Unlock()
	if wake {
		b.wake()
	}
	return nil
}

// flushGroup sends the queue at once if it holds a heartbeat of group.
func (b *heartbeatBatcher) flushGroup(group uint64) {
	b.mu.Lock()
	found := slices.ContainsFunc(b.mu.queue, func(c *heartbeatCall) bool { return c.req.Group == group })
	if found {
		b.mu.flush = true
	}
	b.mu.Unlock()
	if found {
		b.wake()
	}
}

func (b *heartbeatBatcher) wake() {
	select {
	case b.kick <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// run sends the queued heartbeats as one batch when the first of them must
// go (flushBy), or at once when asked to flush. It returns when the Mux
// closes, failing what is queued and what awaits answers.
func (b *heartbeatBatcher) run() {
	defer b.m.batchers.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-b.kick:
		case <-timer.C:
		case <-b.m.life.Done():
			b.stop()
			return
		}
		var calls []*heartbeatCall
		b.mu.Lock()
		if len(b.mu.queue) > 0 {
			if wait := b.mu.flushBy - b.m.now(); b.mu.flush || wait <= 0 {
				calls = b.mu.queue
				b.mu.queue, b.mu.flush = nil, false
			} else {
				timer.Reset(wait)
			}
		}
		b.mu.Unlock()
		if calls != nil {
			timer.Stop() // Go 1.23 timers: no stale tick after Stop
			b.send(calls)
		}
	}
}

// stop fails the queued heartbeats and closes the stream, failing those
// that await answers.
func (b *heartbeatBatcher) stop() {
	b.mu.Lock()
	b.mu.stopped = true
	calls := b.mu.queue
	b.mu.queue = nil
	b.mu.Unlock()
	for _, c := range calls {
		c.complete(nil, raft.ErrTransportShutdown)
	}
	if b.stream != nil {
		b.stream.close(raft.ErrTransportShutdown)
		b.stream = nil
	}
}

// send sends calls as one batch, opening a stream first if there is none
// or the last one failed. A call it cannot send fails at once.
func (b *heartbeatBatcher) send(calls []*heartbeatCall) {
	// The batch must be answered by the earliest deadline of its calls.
	deadline := calls[0].deadline
	for _, c := range calls[1:] {
		deadline = min(deadline, c.deadline)
	}
	if b.stream != nil && b.stream.failure() != nil {
		b.stream.close(nil)
		b.stream = nil
	}
	if b.stream == nil {
		s, err := b.open(deadline)
		if err != nil {
			b.m.cfg.Logger.Debug("raft heartbeat stream failed to open", "target", b.peer.addr, "error", err)
			for _, c := range calls {
				c.complete(nil, err)
			}
			return
		}
		b.stream, b.lastID = s, 0
	}
	b.lastID++
	batch := &ringkvv1.HeartbeatBatch{Id: b.lastID, Requests: make([]*ringkvv1.AppendEntriesRequest, len(calls))}
	for i, c := range calls {
		batch.Requests[i] = c.req
	}
	if err := b.stream.send(batch, calls, deadline-b.m.now()); err != nil {
		for _, c := range calls {
			c.complete(nil, err)
		}
		return
	}
	b.m.stats.heartbeatBatches.Add(1)
	b.m.stats.heartbeats.Add(uint64(len(calls)))
}

// open opens a Heartbeats stream to the peer, waiting for a connection until
// deadline at most, and starts its receive loop.
func (b *heartbeatBatcher) open(deadline time.Duration) (*heartbeatStream, error) {
	// The stream lives until it fails or the Mux closes, so its context has
	// no deadline; opening it is bounded by a timer instead.
	ctx, cancel := context.WithCancelCause(b.m.life)
	wait := deadline - b.m.now()
	timer := time.AfterFunc(wait, func() {
		cancel(fmt.Errorf("no connection within %v: %w", wait, context.DeadlineExceeded))
	})
	stream, err := b.peer.client.Heartbeats(ctx)
	if !timer.Stop() && err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		err = withCause(ctx, err)
		cancel(nil)
		return nil, fmt.Errorf("opening heartbeat stream: %w", err)
	}
	s := &heartbeatStream{m: b.m, target: b.peer.addr, stream: stream, ctx: ctx, cancel: cancel,
		id: b.m.heartbeatStreams.Add(1), recvDone: make(chan struct{})}
	s.mu.pending = map[uint64]*sentHeartbeats{}
	go s.receive() // owned by b: close waits for it
	return s, nil
}

// heartbeatStream is a batcher's Heartbeats stream to its peer: the batcher
// sends on it, its receive loop completes the calls answered. Its first
// failure fails every call awaiting an answer, and every later send.
type heartbeatStream struct {
	m      *Mux
	target raft.ServerAddress
	stream grpc.BidiStreamingClient[ringkvv1.HeartbeatBatch, ringkvv1.HeartbeatBatchResponse]
	ctx    context.Context
	cancel context.CancelCauseFunc
	// id numbers the stream, unique in its Mux.
	id uint64
	// recvDone is closed when the receive loop has exited.
	recvDone chan struct{}

	mu struct {
		sync.Mutex
		// pending holds the batches sent and not wholly answered, by ID.
		pending map[uint64]*sentHeartbeats
		// err is the stream's failure.
		err error
	}
}

// sentHeartbeats is a batch awaiting its answers.
type sentHeartbeats struct {
	// calls are the batch's calls by index; nil once answered.
	calls []*heartbeatCall
	left  int
	// timer fails the stream when the batch is not wholly answered by the
	// earliest deadline of its calls.
	timer *time.Timer
}

// send registers the calls of batch and sends it. The calls must answer
// within timeout, or the stream fails. After an error, no call of batch was
// registered, and completing them is the caller's job.
func (s *heartbeatStream) send(batch *ringkvv1.HeartbeatBatch, calls []*heartbeatCall, timeout time.Duration) error {
	id := batch.Id
	s.mu.Lock()
	if err := s.mu.err; err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.pending[id] = &sentHeartbeats{
		calls: calls,
		left:  len(calls),
		timer: time.AfterFunc(timeout, func() { s.expire(id, timeout) }),
	}
	s.mu.Unlock()

	// A Send blocked by flow control is bounded by the timer too: failing
	// cancels the stream.
	if err := s.stream.Send(batch); err != nil && !errors.Is(err, io.EOF) {
		s.fail(err)
	}
	// After io.EOF the server has ended the stream; the receive loop gets
	// its status and fails the calls with it.
	return nil
}

// expire fails the stream if the batch id still awaits answers.
func (s *heartbeatStream) expire(id uint64, timeout time.Duration) {
	s.mu.Lock()
	_, waiting := s.mu.pending[id]
	s.mu.Unlock()
	if waiting {
		s.fail(fmt.Errorf("heartbeats not answered within %v: %w", timeout, context.DeadlineExceeded))
	}
}

// receive completes the calls answered, until the stream fails.
func (s *heartbeatStream) receive() {
	defer close(s.recvDone)
	for {
		out := new(ringkvv1.HeartbeatBatchResponse) // handed to the callers
		if err := s.stream.RecvMsg(out); err != nil {
			s.fail(err)
			return
		}
		if err := s.deliver(out); err != nil {
			s.fail(err)
			return
		}
	}
}

// deliver completes the calls out answers.
func (s *heartbeatStream) deliver(out *ringkvv1.HeartbeatBatchResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sent := s.mu.pending[out.Batch]
	if sent == nil {
		return fmt.Errorf("%w: answer to heartbeat batch %d, which awaits none", errMalformedStream, out.Batch)
	}
	for _, r := range out.Results {
		if int64(r.Index) >= int64(len(sent.calls)) || sent.calls[r.Index] == nil {
			return fmt.Errorf("%w: heartbeat batch %d: unexpected answer to heartbeat %d", errMalformedStream, out.Batch, r.Index)
		}
		c := sent.calls[r.Index]
		sent.calls[r.Index] = nil
		sent.left--
		switch {
		case r.Code != uint32(codes.OK):
			c.complete(nil, status.Error(codes.Code(r.Code), r.Message))
		case r.Response == nil:
			// Never make up a response: an unsuccessful one would make
			// Raft step down.
			c.complete(nil, fmt.Errorf("%w: heartbeat answered without a response", errMalformedStream))
		default:
			c.stream = s.id
			c.complete(r.Response, nil)
		}
	}
	if sent.left == 0 {
		sent.timer.Stop()
		delete(s.mu.pending, out.Batch)
	}
	return nil
}

// fail records err as the stream's failure, unless one is recorded, aborts
// the stream and fails every call awaiting an answer.
func (s *heartbeatStream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.err != nil {
		return
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // the server ended the stream
	}
	err = withCause(s.ctx, err)
	s.mu.err = err
	s.cancel(err)
	for _, sent := range s.mu.pending {
		sent.timer.Stop()
		for _, c := range sent.calls {
			if c != nil {
				c.complete(nil, err)
			}
		}
	}
	s.mu.pending = nil
	if !errors.Is(err, raft.ErrTransportShutdown) {
		s.m.cfg.Logger.Debug("raft heartbeat stream failed", "target", s.target, "error", err)
	}
}

// failure returns the stream's failure, if any.
func (s *heartbeatStream) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.err
}

// close fails the stream with err (context.Canceled if nil), unless it has
// failed already, and waits for its receive loop.
func (s *heartbeatStream) close(err error) {
	if err == nil {
		err = context.Canceled
	}
	s.fail(err)
	<-s.recvDone
}

// withCause adds to err the reason ctx was cancelled, if it was and err does
// not already say so.
func withCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w (%w)", err, cause)
	}
	return err
}
