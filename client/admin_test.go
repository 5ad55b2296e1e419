package client

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

func adminCalls(fc *fakeCluster) int {
	total := 0
	for _, n := range fc.nodes {
		total += n.adminCount()
	}
	return total
}

func TestRemoveNode(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)

	epoch, err := c.RemoveNode(testCtx(t), "n3")
	if err != nil || epoch != 2 {
		t.Fatalf("RemoveNode(n3) = %d, %v; want epoch 2", epoch, err)
	}
	fc.mu.Lock()
	removed := slices.Clone(fc.removed)
	fc.mu.Unlock()
	if !slices.Equal(removed, []string{"n3"}) {
		t.Errorf("the cluster got RemoveNode for %q; want [n3]", removed)
	}
}

func TestRemoveNodeRefused(t *testing.T) {
	const msg = "removing n3 would leave 2 nodes for replication factor 3"
	for _, tc := range []struct {
		name     string
		err      error
		wantCode codes.Code
		wantIs   error
		wantText string // the whole of err.Error()
	}{
		{"failed precondition", status.Error(codes.FailedPrecondition, msg), codes.FailedPrecondition,
			ErrFailedPrecondition, "ringkv: remove node: failed precondition: " + msg},
		{"not found", status.Error(codes.NotFound, "no node n3"), codes.NotFound,
			ErrNotFound, "ringkv: remove node: not found: no node n3"},
		{"permission denied", status.Error(codes.PermissionDenied, ""), codes.PermissionDenied,
			nil, "ringkv: remove node: permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeCluster(t)
			c := newTestClient(t, fc)
			fc.mu.Lock()
			fc.removeErr = tc.err
			fc.mu.Unlock()

			_, err := c.RemoveNode(testCtx(t), "n3")
			if err == nil {
				t.Fatalf("RemoveNode(n3) = nil error; want %v", tc.err)
			}
			if got := err.Error(); got != tc.wantText {
				t.Errorf("RemoveNode(n3) error = %q; want %q", got, tc.wantText)
			}
			if got := status.Code(err); got != tc.wantCode {
				t.Errorf("status.Code(err) = %v; want %v", got, tc.wantCode)
			}
			for _, sentinel := range []error{ErrFailedPrecondition, ErrNotFound, ErrInvalidArgument} {
				if want := sentinel == tc.wantIs; errors.Is(err, sentinel) != want {
					t.Errorf("errors.Is(%v, %v) = %v; want %v", err, sentinel, !want, want)
				}
			}
			var se *ServerError
			if !errors.As(err, &se) || se.Op != "remove node" || se.Code != tc.wantCode {
				t.Errorf("RemoveNode(n3) error %#v; want a *ServerError of op \"remove node\", code %v", err, tc.wantCode)
			}
			if n := adminCalls(fc); n != 1 {
				t.Errorf("admin calls = %d; want 1 (a refusal is not retried)", n)
			}
		})
	}
}

func TestRemoveNodeRetriedElsewhere(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)
	// Admin calls go to n1 first (any node will do, the map's order).
	fc.node("n1").set(func(n *fakeNode) { n.fail = codes.Unavailable })

	epoch, err := c.RemoveNode(testCtx(t), "n2")
	if err != nil || epoch != 2 {
		t.Fatalf("RemoveNode(n2) with n1 unavailable = %d, %v; want epoch 2 from another node", epoch, err)
	}
	if n := fc.node("n1").adminCount(); n != 1 {
		t.Errorf("RemoveNode calls on n1 = %d; want 1 (the failed attempt)", n)
	}
	if n := adminCalls(fc); n != 2 {
		t.Errorf("admin calls = %d; want 2 (n1 failing, then another)", n)
	}
}

func TestRemoveNodeDeadline(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)
	for _, n := range fc.nodes {
		n.set(func(n *fakeNode) { n.fail = codes.Unavailable })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.RemoveNode(ctx, "n3")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "remove node") {
		t.Errorf("RemoveNode(n3) with every node unavailable = %v; want a remove node error wrapping DeadlineExceeded", err)
	}
}

func TestRebalanceStatus(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)

	// Nothing scripted: an empty answer, done.
	st, err := c.RebalanceStatus(testCtx(t))
	if err != nil {
		t.Fatalf("RebalanceStatus = %v", err)
	}
	if !st.Done() || st.Progress() != 1 || st.Epoch != 1 {
		t.Errorf("RebalanceStatus (nothing to do) = %+v, Done %v, Progress %v; want epoch 1, done, 1", st, st.Done(), st.Progress())
	}

	t0 := time.UnixMilli(1_700_000_000_000)
	fc.mu.Lock()
	fc.rebalance = &ringkvv1.RebalanceStatusResponse{
		Epoch:   9,
		Pending: []*ringkvv1.Move{{Shard: 5, FromNode: "n3", ToNode: "n4", Phase: PhasePending}},
		Active: []*ringkvv1.Move{{Shard: 2, FromNode: "n3", ToNode: "n4", Phase: PhaseActive,
			StartedUnixMs: t0.UnixMilli(), Bytes: 1024}},
		Finished: []*ringkvv1.Move{
			{Shard: 1, FromNode: "n3", ToNode: "n4", Phase: PhaseDone,
				StartedUnixMs: t0.Add(-2 * time.Second).UnixMilli(), FinishedUnixMs: t0.Add(-time.Second).UnixMilli(), Bytes: 4096},
			{Shard: 7, ToNode: "n4", Phase: PhaseAborted, StartedUnixMs: t0.Add(-time.Second).UnixMilli(),
				FinishedUnixMs: t0.UnixMilli(), Reason: "n4 unreachable"},
		},
		FinishedSinceChange: 2,
		BytesSinceChange:    4096,
		MaxMovesPerNode:     2,
	}
	fc.mu.Unlock()

	st, err = c.RebalanceStatus(testCtx(t))
	if err != nil {
		t.Fatalf("RebalanceStatus = %v", err)
	}
	if st.Epoch != 9 || st.FinishedSinceChange != 2 || st.BytesSinceChange != 4096 || st.MaxMovesPerNode != 2 {
		t.Errorf("RebalanceStatus = %+v; want epoch 9, 2 finished since the change, 4096 bytes, 2 moves per node", st)
	}
	wantPending := []Move{{Shard: 5, From: "n3", To: "n4", Phase: PhasePending}}
	if !slices.Equal(st.Pending, wantPending) {
		t.Errorf("Pending = %+v; want %+v (zero times)", st.Pending, wantPending)
	}
	if len(st.Active) != 1 || !st.Active[0].Started.Equal(t0) || !st.Active[0].Finished.IsZero() || st.Active[0].Bytes != 1024 {
		t.Errorf("Active = %+v; want shard 2 started at %v, not finished, 1024 bytes", st.Active, t0)
	}
	if len(st.Finished) != 2 {
		t.Fatalf("Finished = %+v; want 2 moves", st.Finished)
	}
	if ab := st.Finished[1]; ab.Phase != PhaseAborted || ab.Reason != "n4 unreachable" || ab.From != "" || ab.To != "n4" ||
		!ab.Finished.Equal(t0) {
		t.Errorf("Finished[1] = %+v; want shard 7 gaining a replica on n4, aborted at %v because n4 unreachable", ab, t0)
	}
	if st.Done() {
		t.Errorf("Done() = true with a pending and an active move")
	}
	if got := st.Progress(); got != 0.5 {
		t.Errorf("Progress() = %v; want 0.5 (2 finished, 1 pending, 1 active)", got)
	}
}

func TestRebalanceProgress(t *testing.T) {
	moves := func(n int) []Move { return make([]Move, n) }
	for _, tc := range []struct {
		name            string
		pending, active int
		finished        uint64
		wantDone        bool
		wantProgress    float64
	}{
		{"nothing to do", 0, 0, 0, true, 1},
		{"all finished", 0, 0, 27, true, 1},
		{"just started", 20, 7, 0, false, 0},
		{"under way", 10, 5, 12, false, 12.0 / 27},
		{"last one active", 0, 1, 26, false, 26.0 / 27},
		{"pending only", 1, 0, 0, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &RebalanceStatus{Pending: moves(tc.pending), Active: moves(tc.active), FinishedSinceChange: tc.finished}
			if got := s.Done(); got != tc.wantDone {
				t.Errorf("Done() = %v; want %v", got, tc.wantDone)
			}
			if got := s.Progress(); math.Abs(got-tc.wantProgress) > 1e-9 {
				t.Errorf("Progress() = %v; want %v", got, tc.wantProgress)
			}
		})
	}
}

func TestRebalanceStatusError(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)
	for _, n := range fc.nodes {
		n.set(func(n *fakeNode) { n.fail = codes.Unimplemented })
	}
	_, err := c.RebalanceStatus(testCtx(t))
	if status.Code(err) != codes.Unimplemented || !strings.HasPrefix(err.Error(), "ringkv: rebalance status: unimplemented: ") {
		t.Errorf("RebalanceStatus from nodes without it = %v; want code Unimplemented, \"ringkv: rebalance status: unimplemented: ...\"", err)
	}
}

func TestStatusTargetAndStates(t *testing.T) {
	fc := newFakeCluster(t)
	c := newTestClient(t, fc)
	fc.mu.Lock()
	fc.states["n2"] = StateDraining
	fc.states["n3"] = StateJoining
	fc.targets[0] = []string{"n1", "n3", "n4"}
	fc.targets[1] = []string{"n3", "n1", "n2"} // shard 1 is on n2,n3,n1: same set, other order
	fc.mu.Unlock()

	st, err := c.Status(testCtx(t))
	if err != nil {
		t.Fatalf("Status = %v", err)
	}
	var states []string
	for _, m := range st.Members {
		states = append(states, m.ID+"="+m.State)
	}
	if want := []string{"n1=active", "n2=draining", "n3=joining"}; !slices.Equal(states, want) {
		t.Errorf("member states = %v; want %v", states, want)
	}
	for _, tc := range []struct {
		shard      int
		wantTarget []string
		wantMoving bool
	}{
		{0, []string{"n1", "n3", "n4"}, true},
		{1, []string{"n3", "n1", "n2"}, false},
		{2, []string{"n3", "n1", "n2"}, false}, // no target reported: the replicas
	} {
		sh := st.Shards[tc.shard]
		if !slices.Equal(sh.Target, tc.wantTarget) || sh.Moving() != tc.wantMoving {
			t.Errorf("shard %d: replicas %v, Target %v, Moving() %v; want target %v, moving %v",
				tc.shard, sh.Replicas, sh.Target, sh.Moving(), tc.wantTarget, tc.wantMoving)
		}
	}
}

func TestShardMoving(t *testing.T) {
	for _, tc := range []struct {
		replicas, target []string
		want             bool
	}{
		{[]string{"a", "b", "c"}, []string{"a", "b", "c"}, false},
		{[]string{"a", "b", "c"}, []string{"c", "a", "b"}, false},
		{[]string{"a", "b", "c"}, []string{"a", "b", "d"}, true},
		{[]string{"a", "b"}, []string{"a", "b", "c"}, true},
		{[]string{"a", "b", "c"}, []string{"a", "b"}, true},
		{nil, nil, false},
	} {
		s := ShardStatus{Replicas: tc.replicas, Target: tc.target}
		if got := s.Moving(); got != tc.want {
			t.Errorf("ShardStatus{Replicas: %v, Target: %v}.Moving() = %v; want %v", tc.replicas, tc.target, got, tc.want)
		}
	}
}

func TestServerErrorText(t *testing.T) {
	for _, tc := range []struct {
		code codes.Code
		want string
	}{
		{codes.InvalidArgument, "ringkv: put: invalid argument: m"},
		{codes.NotFound, "ringkv: put: not found: m"},
		{codes.FailedPrecondition, "ringkv: put: failed precondition: m"},
		{codes.ResourceExhausted, "ringkv: put: resource exhausted: m"},
		{codes.Internal, "ringkv: put: internal: m"},
	} {
		if got := (&ServerError{Op: "put", Code: tc.code, Message: "m"}).Error(); got != tc.want {
			t.Errorf("ServerError{%v}.Error() = %q; want %q", tc.code, got, tc.want)
		}
	}
}
