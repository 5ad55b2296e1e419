package rpc

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
)

// Terms finds the current Raft term of a group hosted on this node.
type Terms interface {
	Term(group uint64) (term uint64, ok bool)
}

// ReadConfirmServer answers other nodes' leadership confirmations (see
// replication.Group's read barrier).
type ReadConfirmServer struct {
	ringkvv1.UnimplementedReadConfirmServer
	terms Terms
}

// NewReadConfirmServer returns a ReadConfirm service over terms.
func NewReadConfirmServer(terms Terms) *ReadConfirmServer {
	return &ReadConfirmServer{terms: terms}
}

// ConfirmTerm implements ringkvv1.ReadConfirmServer. Nodes of this version
// send ConfirmTerms; ConfirmTerm serves older ones.
func (s *ReadConfirmServer) ConfirmTerm(_ context.Context, req *ringkvv1.ConfirmTermRequest) (*ringkvv1.ConfirmTermResponse, error) {
	term, ok := s.terms.Term(req.GetGroup())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "unknown raft group %d", req.GetGroup())
	}
	return &ringkvv1.ConfirmTermResponse{Current: term == req.GetTerm(), Term: term}, nil
}

// ConfirmTerms implements ringkvv1.ReadConfirmServer: one answer per group,
// in the request's order; a group this node does not host is answered
// unknown_group without failing the others.
func (s *ReadConfirmServer) ConfirmTerms(_ context.Context, req *ringkvv1.ConfirmTermsRequest) (*ringkvv1.ConfirmTermsResponse, error) {
	groups := req.GetGroups()
	answers := make([]ringkvv1.GroupTermAnswer, len(groups))
	resp := &ringkvv1.ConfirmTermsResponse{Answers: make([]*ringkvv1.GroupTermAnswer, len(groups))}
	for i, g := range groups {
		a := &answers[i]
		term, ok := s.terms.Term(g.GetGroup())
		if ok {
			a.Current, a.Term = term == g.GetTerm(), term
		} else {
			a.UnknownGroup = true
		}
		resp.Answers[i] = a
	}
	return resp, nil
}

// ErrUnknownGroup means the peer asked hosts no replica of the group.
var ErrUnknownGroup = errors.New("unknown raft group")

// maxConfirmBatch bounds the groups of one ConfirmTerms request; calls
// beyond it wait for the next request.
const maxConfirmBatch = 1024

// Confirmer implements replication.TermConfirmer over the peers'
// ReadConfirm services, with one request to a peer at a time for all the
// groups of this node that confirm their term with it.
//
// The read barrier needs every request that answers a ConfirmTerm call to be
// sent after the call began (see replication.Group's confirmTerm). So a call
// that finds no request to its peer in flight starts one at once, for itself
// alone; a call that finds one in flight never shares it but queues for the
// next request, which goes out, with every call queued meanwhile (up to
// maxConfirmBatch), as soon as the one in flight returns.
//
// Each request runs in a sender goroutine, one per peer at most, started by
// the call that found the peer idle. It sends the queued batches one after
// another and ends when none is queued; the calls it serves own it: a call
// returns when its ctx ends, and a request whose calls have all returned is
// cancelled, so the sender never outlives its callers by more than a
// cancelled RPC. (The caller cannot send the request itself: it must return
// when its ctx ends while the others in its batch still wait for the answer.)
type Confirmer struct {
	conns Conns

	mu sync.Mutex
	// peers has an entry for each peer with a request in flight; it holds
	// the calls waiting for the next request.
	peers map[string]*confirmQueue

	senders sync.WaitGroup // the sender goroutines, for tests
}

var _ replication.TermConfirmer = (*Confirmer)(nil)

// NewConfirmer returns a Confirmer that reaches peers through conns.
func NewConfirmer(conns Conns) *Confirmer {
	return &Confirmer{conns: conns, peers: map[string]*confirmQueue{}}
}

// confirmQueue is a peer with a request in flight.
type confirmQueue struct {
	waiting []*confirmCall // arrived after the request in flight was sent
}

type callState int

const (
	callQueued    callState = iota // waiting for the next request
	callSent                       // in the request in flight
	callAnswered                   // done is closed; the results are set
	callAbandoned                  // the caller returned (its ctx ended)
)

// confirmCall is one ConfirmTerm call. Its fields after done are guarded by
// Confirmer.mu until state is callAnswered, then read-only.
type confirmCall struct {
	group, term uint64
	done        chan struct{}

	state       callState
	batch       *confirmBatch // while callSent
	current     bool
	replicaTerm uint64
	err         error
	legacy      bool // the peer has no ConfirmTerms: ask with ConfirmTerm
}

// confirmBatch is one ConfirmTerms request.
type confirmBatch struct {
	calls  []*confirmCall
	live   int // calls not abandoned; the request is cancelled at 0
	ctx    context.Context
	cancel context.CancelFunc
}

func newConfirmBatch(calls []*confirmCall) *confirmBatch {
	ctx, cancel := context.WithCancel(context.Background())
	b := &confirmBatch{calls: calls, live: len(calls), ctx: ctx, cancel: cancel}
	for _, c := range calls {
		c.state, c.batch = callSent, b
	}
	return b
}

// ConfirmTerm implements replication.TermConfirmer.
func (c *Confirmer) ConfirmTerm(ctx context.Context, addr string, group, term uint64) (bool, uint64, error) {
	if err := ctx.Err(); err != nil {
		return false, 0, fmt.Errorf("confirm term of group %d with %s: %w", group, addr, err)
	}
	call := &confirmCall{group: group, term: term, done: make(chan struct{})}
	c.mu.Lock()
	if q, busy := c.peers[addr]; busy {
		q.waiting = append(q.waiting, call) // for the next request, never the one in flight
	} else {
		q = &confirmQueue{}
		c.peers[addr] = q
		b := newConfirmBatch([]*confirmCall{call})
		c.senders.Add(1)
		go c.send(addr, q, b)
	}
	c.mu.Unlock()

	select {
	case <-call.done:
	case <-ctx.Done():
		c.mu.Lock()
		answered := call.state == callAnswered
		if !answered {
			c.abandonLocked(call)
		}
		c.mu.Unlock()
		if !answered {
			return false, 0, fmt.Errorf("confirm term of group %d with %s: %w", group, addr, ctx.Err())
		}
	}
	if call.legacy {
		return c.confirmOne(ctx, addr, group, term)
	}
	return call.current, call.replicaTerm, call.err
}

// abandonLocked takes call out of its batch: a queued call is skipped when
// the next batch is made; a request whose every call is abandoned is
// cancelled.
func (c *Confirmer) abandonLocked(call *confirmCall) {
	if call.state == callSent {
		b := call.batch
		b.live--
		if b.live == 0 {
			b.cancel()
		}
	}
	call.state, call.batch = callAbandoned, nil
}

// send sends b to addr, then each batch queued meanwhile, until none is.
func (c *Confirmer) send(addr string, q *confirmQueue, b *confirmBatch) {
	defer c.senders.Done()
	for b != nil {
		answers, err := c.confirmTerms(b.ctx, addr, b.calls)
		b.cancel()
		c.mu.Lock()
		deliverLocked(b, addr, answers, err)
		b = q.nextLocked()
		if b == nil {
			delete(c.peers, addr)
		}
		c.mu.Unlock()
	}
}

// confirmTerms sends one ConfirmTerms request for calls.
func (c *Confirmer) confirmTerms(ctx context.Context, addr string, calls []*confirmCall) ([]*ringkvv1.GroupTermAnswer, error) {
	cc, err := c.conns.Conn(addr)
	if err != nil {
		return nil, err
	}
	groups := make([]ringkvv1.GroupTerm, len(calls))
	req := &ringkvv1.ConfirmTermsRequest{Groups: make([]*ringkvv1.GroupTerm, len(calls))}
	for i, call := range calls {
		groups[i].Group, groups[i].Term = call.group, call.term
		req.Groups[i] = &groups[i]
	}
	resp, err := ringkvv1.NewReadConfirmClient(cc).ConfirmTerms(ctx, req)
	if err != nil {
		return nil, err
	}
	if n := len(resp.GetAnswers()); n != len(calls) {
		return nil, fmt.Errorf("%d answers to %d groups", n, len(calls))
	}
	return resp.GetAnswers(), nil
}

// deliverLocked answers the calls of b that still wait.
func deliverLocked(b *confirmBatch, addr string, answers []*ringkvv1.GroupTermAnswer, err error) {
	legacy := status.Code(err) == codes.Unimplemented
	if err != nil {
		err = fmt.Errorf("confirm term with %s: %w", addr, err)
	}
	for i, call := range b.calls {
		if call.state != callSent {
			continue // abandoned
		}
		switch {
		case legacy:
			call.legacy = true
		case err != nil:
			call.err = err
		case answers[i].GetUnknownGroup():
			call.err = fmt.Errorf("confirm term of group %d with %s: %w", call.group, addr, ErrUnknownGroup)
		default:
			call.current, call.replicaTerm = answers[i].GetCurrent(), answers[i].GetTerm()
		}
		call.state, call.batch = callAnswered, nil
		close(call.done)
	}
}

// nextLocked makes the next batch of the queue, or returns nil when no call
// waits.
func (q *confirmQueue) nextLocked() *confirmBatch {
	var calls []*confirmCall
	i := 0
	for ; i < len(q.waiting) && len(calls) < maxConfirmBatch; i++ {
		if call := q.waiting[i]; call.state == callQueued {
			calls = append(calls, call)
		}
	}
	if rest := q.waiting[i:]; len(rest) > 0 {
		q.waiting = append([]*confirmCall(nil), rest...)
	} else {
		q.waiting = nil
	}
	if len(calls) == 0 {
		return nil
	}
	return newConfirmBatch(calls)
}

// confirmOne asks a peer that has no ConfirmTerms (an older node), with a
// request of its own sent after the call.
func (c *Confirmer) confirmOne(ctx context.Context, addr string, group, term uint64) (bool, uint64, error) {
	cc, err := c.conns.Conn(addr)
	if err != nil {
		return false, 0, fmt.Errorf("confirm term with %s: %w", addr, err)
	}
	resp, err := ringkvv1.NewReadConfirmClient(cc).ConfirmTerm(ctx, &ringkvv1.ConfirmTermRequest{Group: group, Term: term})
	if err != nil {
		return false, 0, fmt.Errorf("confirm term with %s: %w", addr, err)
	}
	return resp.GetCurrent(), resp.GetTerm(), nil
}
