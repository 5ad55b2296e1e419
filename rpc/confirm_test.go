package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// fakeTerms is a node's groups and their terms.
type fakeTerms struct {
	mu    sync.Mutex
	terms map[uint64]uint64
}

func (f *fakeTerms) Term(group uint64) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.terms[group]
	return t, ok
}

func (f *fakeTerms) set(group, term uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terms[group] = term
}

// confirmServer is a ReadConfirm service that records each ConfirmTerms
// request and can hold one back: it computes the answers when the request
// arrives, then waits for the request's gate, if it has one, or for the
// request's cancellation.
type confirmServer struct {
	*ReadConfirmServer
	arrived  chan int // the index of each request that arrived
	canceled chan int // the index of each request cancelled while held

	mu       sync.Mutex
	requests [][]uint64            // the groups of each request
	gates    map[int]chan struct{} // request index → closed to let it answer
	fail     map[int]error         // request index → its error
}

func newConfirmServer(terms map[uint64]uint64) (*confirmServer, *fakeTerms) {
	ft := &fakeTerms{terms: terms}
	return &confirmServer{
		ReadConfirmServer: NewReadConfirmServer(ft),
		arrived:           make(chan int, 4096),
		canceled:          make(chan int, 4096),
		gates:             map[int]chan struct{}{},
		fail:              map[int]error{},
	}, ft
}

// hold makes request n wait until the returned function is called.
func (s *confirmServer) hold(n int) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.gates[n] = ch
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func (s *confirmServer) releaseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, ch := range s.gates {
		select {
		case <-ch:
		default:
			close(ch)
		}
		delete(s.gates, n)
	}
}

func (s *confirmServer) ConfirmTerms(ctx context.Context, req *ringkvv1.ConfirmTermsRequest) (*ringkvv1.ConfirmTermsResponse, error) {
	resp, err := s.ReadConfirmServer.ConfirmTerms(ctx, req) // the answer as of arrival
	groups := make([]uint64, len(req.GetGroups()))
	for i, g := range req.GetGroups() {
		groups[i] = g.GetGroup()
	}
	s.mu.Lock()
	n := len(s.requests)
	s.requests = append(s.requests, groups)
	gate := s.gates[n]
	ferr := s.fail[n]
	s.mu.Unlock()
	s.arrived <- n
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			s.canceled <- n
			return nil, ctx.Err()
		}
	}
	if ferr != nil {
		return nil, ferr
	}
	return resp, err
}

func (s *confirmServer) requestGroups() [][]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]uint64(nil), s.requests...)
}

// serveConfirm serves srv on 127.0.0.1:0 and returns a Confirmer that
// reaches it, and its address. Cleanup lets every held request answer,
// checks that the Confirmer's sender goroutines end, and stops the server.
func serveConfirm(t *testing.T, srv ringkvv1.ReadConfirmServer) (*Confirmer, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	ringkvv1.RegisterReadConfirmServer(gs, srv)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	addr := lis.Addr().String()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		gs.Stop()
		<-served
		t.Fatal(err)
	}
	c := NewConfirmer(fakeConns{addr: cc})
	t.Cleanup(func() {
		if cs, ok := srv.(*confirmServer); ok {
			cs.releaseAll()
		}
		waitSenders(t, c)
		cc.Close()
		gs.Stop()
		select {
		case <-served:
		case <-time.After(callTimeout):
			t.Error("Serve did not return after Stop")
		}
	})
	return c, addr
}

// waitSenders fails t unless every sender goroutine of c ends soon.
func waitSenders(t *testing.T, c *Confirmer) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		c.senders.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(callTimeout):
		t.Error("the Confirmer's sender goroutines did not end")
	}
}

// waitQueued waits until n calls to addr wait for the next request.
func waitQueued(t *testing.T, c *Confirmer, addr string, n int) {
	t.Helper()
	deadline := time.Now().Add(callTimeout)
	for {
		queued := queuedCalls(c, addr)
		if queued >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued for %s; want %d", queued, addr, n)
		}
		time.Sleep(time.Millisecond) // polling, bounded by deadline
	}
}

// queuedCalls counts the calls to addr that wait for the next request.
func queuedCalls(c *Confirmer, addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	queued := 0
	if q := c.peers[addr]; q != nil {
		for _, call := range q.waiting {
			if call.state == callQueued {
				queued++
			}
		}
	}
	return queued
}

// waitArrived returns the index of the next request that reaches s.
func waitArrived(t *testing.T, s *confirmServer) int {
	t.Helper()
	select {
	case n := <-s.arrived:
		return n
	case <-time.After(callTimeout):
		t.Fatal("no request reached the server")
		return -1
	}
}

type confirmResult struct {
	current bool
	term    uint64
	err     error
}

// goConfirm calls c.ConfirmTerm in a goroutine and returns its result
// channel.
func goConfirm(ctx context.Context, c *Confirmer, addr string, group, term uint64) <-chan confirmResult {
	ch := make(chan confirmResult, 1)
	go func() {
		cur, rt, err := c.ConfirmTerm(ctx, addr, group, term)
		ch <- confirmResult{cur, rt, err}
	}()
	return ch
}

func waitResult(t *testing.T, ch <-chan confirmResult) confirmResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(callTimeout):
		t.Fatal("ConfirmTerm did not return")
		return confirmResult{}
	}
}

func TestReadConfirmServerConfirmTerms(t *testing.T) {
	s := NewReadConfirmServer(&fakeTerms{terms: map[uint64]uint64{1: 5, 2: 7}})
	resp, err := s.ConfirmTerms(context.Background(), &ringkvv1.ConfirmTermsRequest{Groups: []*ringkvv1.GroupTerm{
		{Group: 2, Term: 6}, {Group: 9, Term: 1}, {Group: 1, Term: 5},
	}})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		current bool
		term    uint64
		unknown bool
	}
	want := []answer{{false, 7, false}, {false, 0, true}, {true, 5, false}}
	if len(resp.GetAnswers()) != len(want) {
		t.Fatalf("%d answers; want %d", len(resp.GetAnswers()), len(want))
	}
	for i, a := range resp.GetAnswers() {
		if got := (answer{a.GetCurrent(), a.GetTerm(), a.GetUnknownGroup()}); got != want[i] {
			t.Errorf("answer %d = %+v; want %+v", i, got, want[i])
		}
	}
}

// A call with nothing in flight to its peer is sent at once, alone.
func TestConfirmerLoneCall(t *testing.T) {
	srv, _ := newConfirmServer(map[uint64]uint64{1: 5, 2: 8})
	c, addr := serveConfirm(t, srv)
	cur, term, err := c.ConfirmTerm(callCtx(t), addr, 1, 5)
	if err != nil || !cur || term != 5 {
		t.Errorf("ConfirmTerm(1, 5) = %v, %d, %v; want true, 5, nil", cur, term, err)
	}
	cur, term, err = c.ConfirmTerm(callCtx(t), addr, 2, 7)
	if err != nil || cur || term != 8 {
		t.Errorf("ConfirmTerm(2, 7) = %v, %d, %v; want false, 8, nil", cur, term, err)
	}
	if got := srv.requestGroups(); fmt.Sprint(got) != "[[1] [2]]" {
		t.Errorf("requests = %v; want [[1] [2]]", got)
	}
}

// The calls that arrive while a request is in flight go out together in the
// next one.
func TestConfirmerBatchesCallsDuringFlight(t *testing.T) {
	const n = 300
	terms := map[uint64]uint64{}
	for g := uint64(0); g <= n; g++ {
		terms[g] = 10 + g
	}
	srv, _ := newConfirmServer(terms)
	c, addr := serveConfirm(t, srv)
	release := srv.hold(0)
	first := goConfirm(callCtx(t), c, addr, 0, 10)
	waitArrived(t, srv)
	results := make([]<-chan confirmResult, n+1)
	for g := uint64(1); g <= n; g++ {
		term := 10 + g
		if g%3 == 0 {
			term-- // a stale leader
		}
		results[g] = goConfirm(callCtx(t), c, addr, g, term)
	}
	waitQueued(t, c, addr, n)
	release()
	if r := waitResult(t, first); r.err != nil || !r.current || r.term != 10 {
		t.Errorf("group 0 = %+v; want current in 10", r)
	}
	for g := uint64(1); g <= n; g++ {
		r := waitResult(t, results[g])
		if r.err != nil || r.current != (g%3 != 0) || r.term != 10+g {
			t.Errorf("group %d = %+v; want current=%v in %d", g, r, g%3 != 0, 10+g)
		}
	}
	reqs := srv.requestGroups()
	if len(reqs) != 2 || len(reqs[0]) != 1 || len(reqs[1]) != n {
		sizes := make([]int, len(reqs))
		for i, r := range reqs {
			sizes[i] = len(r)
		}
		t.Errorf("request sizes = %v; want [1 %d]", sizes, n)
	}
}

// Many concurrent calls across groups, nothing held: far fewer requests
// than calls.
func TestConfirmerBatchesConcurrentCalls(t *testing.T) {
	const n = 256
	terms := map[uint64]uint64{}
	for g := uint64(0); g < n; g++ {
		terms[g] = 3
	}
	srv, _ := newConfirmServer(terms)
	c, addr := serveConfirm(t, srv)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := uint64(0); g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			cur, term, err := c.ConfirmTerm(callCtx(t), addr, g, 3)
			if err == nil && (!cur || term != 3) {
				err = fmt.Errorf("group %d: %v, %d; want current in 3", g, cur, term)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	reqs := srv.requestGroups()
	entries := 0
	for _, r := range reqs {
		entries += len(r)
	}
	t.Logf("%d calls in %d requests", n, len(reqs))
	if entries != n {
		t.Errorf("the requests carried %d groups; want %d", entries, n)
	}
	if len(reqs) > n/4 {
		t.Errorf("%d calls took %d requests; want at most %d", n, len(reqs), n/4)
	}
}

// A request carries at most maxConfirmBatch groups; the others go in the
// next one.
func TestConfirmerBatchLimit(t *testing.T) {
	const n = maxConfirmBatch + 6
	terms := map[uint64]uint64{}
	for g := uint64(0); g <= n; g++ {
		terms[g] = 1
	}
	srv, _ := newConfirmServer(terms)
	c, addr := serveConfirm(t, srv)
	release := srv.hold(0)
	first := goConfirm(callCtx(t), c, addr, 0, 1)
	waitArrived(t, srv)
	results := make([]<-chan confirmResult, 0, n)
	for g := uint64(1); g <= n; g++ {
		results = append(results, goConfirm(callCtx(t), c, addr, g, 1))
	}
	waitQueued(t, c, addr, n)
	release()
	waitResult(t, first)
	for _, ch := range results {
		if r := waitResult(t, ch); r.err != nil || !r.current {
			t.Errorf("result %+v; want current", r)
		}
	}
	reqs := srv.requestGroups()
	sizes := make([]int, len(reqs))
	for i, r := range reqs {
		sizes[i] = len(r)
	}
	if fmt.Sprint(sizes) != fmt.Sprint([]int{1, maxConfirmBatch, 6}) {
		t.Errorf("request sizes = %v; want [1 %d 6]", sizes, maxConfirmBatch)
	}
}

// The read barrier's rule: a call that arrives while a request is in
// flight is answered by a request sent after it, never by the one in
// flight. The server answers the held request as of its arrival; the term
// changes after the second call began, and the second call must see it.
func TestConfirmerSendsAfterCall(t *testing.T) {
	srv, terms := newConfirmServer(map[uint64]uint64{1: 5})
	c, addr := serveConfirm(t, srv)
	release := srv.hold(0)
	first := goConfirm(callCtx(t), c, addr, 1, 5)
	waitArrived(t, srv) // answered as of term 5, held
	terms.set(1, 6)     // a new leader's term reaches the replica
	second := goConfirm(callCtx(t), c, addr, 1, 5)
	// Release the held request once the second call waits for the next
	// one. (A Confirmer that let the second call share the held request
	// would never queue it: then release at the deadline and let the answer
	// below show the fault.)
	var r confirmResult
	answered := false
	for deadline := time.Now().Add(callTimeout); !answered && queuedCalls(c, addr) < 1; {
		select {
		case r = <-second:
			answered = true
		case <-time.After(time.Millisecond): // polling, bounded by deadline
		}
		if time.Now().After(deadline) {
			t.Error("the second call did not queue for the next request")
			break
		}
	}
	release()
	if r := waitResult(t, first); r.err != nil || !r.current || r.term != 5 {
		t.Errorf("first call = %+v; want current in 5 (its request arrived before the change)", r)
	}
	if !answered {
		r = waitResult(t, second)
	}
	if r.err != nil || r.current || r.term != 6 {
		t.Errorf("second call = %+v; want not current, term 6 (answered by a request sent after it)", r)
	}
	if got := srv.requestGroups(); fmt.Sprint(got) != "[[1] [1]]" {
		t.Errorf("requests = %v; want [[1] [1]]", got)
	}
}

func TestConfirmerCancel(t *testing.T) {
	// The only call of the request in flight: it returns, and the request
	// is cancelled (the server sees it) so that the sender ends.
	t.Run("lone call in flight", func(t *testing.T) {
		srv, _ := newConfirmServer(map[uint64]uint64{1: 5})
		c, addr := serveConfirm(t, srv)
		srv.hold(0)
		ctx, cancel := context.WithCancel(callCtx(t))
		res := goConfirm(ctx, c, addr, 1, 5)
		waitArrived(t, srv)
		cancel()
		if r := waitResult(t, res); !errors.Is(r.err, context.Canceled) {
			t.Errorf("result %+v; want context.Canceled", r)
		}
		select {
		case <-srv.canceled:
		case <-time.After(callTimeout):
			t.Error("the request was not cancelled")
		}
		waitSenders(t, c)
	})

	// A queued call returns, and is never sent.
	t.Run("queued call", func(t *testing.T) {
		srv, _ := newConfirmServer(map[uint64]uint64{1: 5, 2: 5})
		c, addr := serveConfirm(t, srv)
		release := srv.hold(0)
		first := goConfirm(callCtx(t), c, addr, 1, 5)
		waitArrived(t, srv)
		ctx, cancel := context.WithCancel(callCtx(t))
		queued := goConfirm(ctx, c, addr, 2, 5)
		waitQueued(t, c, addr, 1)
		cancel()
		if r := waitResult(t, queued); !errors.Is(r.err, context.Canceled) {
			t.Errorf("queued call = %+v; want context.Canceled", r)
		}
		release()
		if r := waitResult(t, first); r.err != nil || !r.current {
			t.Errorf("first call = %+v; want current", r)
		}
		waitSenders(t, c)
		if got := srv.requestGroups(); fmt.Sprint(got) != "[[1]]" {
			t.Errorf("requests = %v; want [[1]] (the cancelled call not sent)", got)
		}
	})

	// One call of a request that others wait for returns at once; the
	// request goes on and answers the others.
	t.Run("one of a batch", func(t *testing.T) {
		srv, _ := newConfirmServer(map[uint64]uint64{1: 5, 2: 5, 3: 5})
		c, addr := serveConfirm(t, srv)
		release0 := srv.hold(0)
		release1 := srv.hold(1)
		first := goConfirm(callCtx(t), c, addr, 1, 5)
		waitArrived(t, srv)
		ctx, cancel := context.WithCancel(callCtx(t))
		leaving := goConfirm(ctx, c, addr, 2, 5)
		waitQueued(t, c, addr, 1)
		staying := goConfirm(callCtx(t), c, addr, 3, 5)
		waitQueued(t, c, addr, 2)
		release0()
		waitResult(t, first)
		if n := waitArrived(t, srv); n != 1 {
			t.Fatalf("request %d arrived; want 1", n)
		}
		cancel()
		if r := waitResult(t, leaving); !errors.Is(r.err, context.Canceled) {
			t.Errorf("cancelled call = %+v; want context.Canceled", r)
		}
		release1()
		if r := waitResult(t, staying); r.err != nil || !r.current || r.term != 5 {
			t.Errorf("the other call = %+v; want current in 5", r)
		}
		if got := srv.requestGroups(); fmt.Sprint(got) != "[[1] [2 3]]" {
			t.Errorf("requests = %v; want [[1] [2 3]]", got)
		}
	})

	t.Run("already cancelled", func(t *testing.T) {
		srv, _ := newConfirmServer(map[uint64]uint64{1: 5})
		c, addr := serveConfirm(t, srv)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := c.ConfirmTerm(ctx, addr, 1, 5); !errors.Is(err, context.Canceled) {
			t.Errorf("ConfirmTerm = %v; want context.Canceled", err)
		}
		if got := srv.requestGroups(); len(got) != 0 {
			t.Errorf("requests = %v; want none", got)
		}
	})
}

// A group the peer does not host fails that group's call only.
func TestConfirmerUnknownGroup(t *testing.T) {
	srv, _ := newConfirmServer(map[uint64]uint64{1: 5, 2: 5})
	c, addr := serveConfirm(t, srv)
	if _, _, err := c.ConfirmTerm(callCtx(t), addr, 99, 5); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("lone call for group 99 = %v; want ErrUnknownGroup", err)
	}
	release := srv.hold(1)
	first := goConfirm(callCtx(t), c, addr, 1, 5)
	waitArrived(t, srv)
	waitArrived(t, srv) // request 1, held
	unknown := goConfirm(callCtx(t), c, addr, 99, 5)
	waitQueued(t, c, addr, 1)
	known := goConfirm(callCtx(t), c, addr, 2, 5)
	waitQueued(t, c, addr, 2)
	release()
	if r := waitResult(t, first); r.err != nil || !r.current {
		t.Errorf("group 1 = %+v; want current", r)
	}
	if r := waitResult(t, unknown); !errors.Is(r.err, ErrUnknownGroup) {
		t.Errorf("group 99 = %+v; want ErrUnknownGroup", r)
	}
	if r := waitResult(t, known); r.err != nil || !r.current || r.term != 5 {
		t.Errorf("group 2 = %+v; want current in 5", r)
	}
	if got := srv.requestGroups(); fmt.Sprint(got) != "[[99] [1] [99 2]]" {
		t.Errorf("requests = %v; want [[99] [1] [99 2]]", got)
	}
}

// A failed request fails every call it carried, with the cause wrapped.
func TestConfirmerRequestError(t *testing.T) {
	srv, _ := newConfirmServer(map[uint64]uint64{1: 5, 2: 5, 3: 5})
	c, addr := serveConfirm(t, srv)
	srv.mu.Lock()
	srv.fail[1] = status.Error(codes.ResourceExhausted, "too busy")
	srv.mu.Unlock()
	release := srv.hold(0)
	first := goConfirm(callCtx(t), c, addr, 1, 5)
	waitArrived(t, srv)
	a := goConfirm(callCtx(t), c, addr, 2, 5)
	b := goConfirm(callCtx(t), c, addr, 3, 5)
	waitQueued(t, c, addr, 2)
	release()
	if r := waitResult(t, first); r.err != nil {
		t.Errorf("first call = %v", r.err)
	}
	for _, ch := range []<-chan confirmResult{a, b} {
		if r := waitResult(t, ch); status.Code(r.err) != codes.ResourceExhausted {
			t.Errorf("call = %+v; want the request's ResourceExhausted error", r)
		}
	}
}

func TestConfirmerUnreachable(t *testing.T) {
	c := NewConfirmer(fakeConns{})
	_, _, err := c.ConfirmTerm(callCtx(t), "10.9.9.9:1", 1, 5)
	if err == nil || !strings.Contains(err.Error(), "no route to 10.9.9.9:1") {
		t.Errorf("ConfirmTerm to an unknown peer = %v; want the connection's error", err)
	}
	waitSenders(t, c)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.peers) != 0 {
		t.Errorf("%d peers left busy; want 0", len(c.peers))
	}
}

// legacyConfirmServer is a ReadConfirm service of an older node: no
// ConfirmTerms.
type legacyConfirmServer struct {
	ringkvv1.UnimplementedReadConfirmServer
	s *ReadConfirmServer
}

func (l legacyConfirmServer) ConfirmTerm(ctx context.Context, req *ringkvv1.ConfirmTermRequest) (*ringkvv1.ConfirmTermResponse, error) {
	return l.s.ConfirmTerm(ctx, req)
}

// A peer without ConfirmTerms is asked with ConfirmTerm, one call each.
func TestConfirmerFallsBackToConfirmTerm(t *testing.T) {
	c, addr := serveConfirm(t, legacyConfirmServer{s: NewReadConfirmServer(&fakeTerms{terms: map[uint64]uint64{1: 5}})})
	if cur, term, err := c.ConfirmTerm(callCtx(t), addr, 1, 5); err != nil || !cur || term != 5 {
		t.Errorf("ConfirmTerm(1, 5) = %v, %d, %v; want true, 5, nil", cur, term, err)
	}
	if cur, term, err := c.ConfirmTerm(callCtx(t), addr, 1, 4); err != nil || cur || term != 5 {
		t.Errorf("ConfirmTerm(1, 4) = %v, %d, %v; want false, 5, nil", cur, term, err)
	}
	if _, _, err := c.ConfirmTerm(callCtx(t), addr, 2, 5); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ConfirmTerm(unknown group) = %v; want InvalidArgument", err)
	}
}
