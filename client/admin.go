package client

import (
	"context"
	"time"

	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// RemoveNode starts removing the node with ID id from the cluster: the node
// drains (every replica it holds moves to another node), then leaves the
// membership. RemoveNode returns once the drain is committed, with the
// metadata epoch in which the node started draining; follow the drain with
// Status (the node leaves Members when it is over) or RebalanceStatus.
//
// Like Status, RemoveNode may go to any node, and is retried on another
// when the outcome says nothing about the request (see the package doc), so
// a retry may reach the cluster after a first attempt whose response was
// lost; the cluster then sees the node already draining. A removal that
// would leave fewer nodes than the replication factor fails with an error
// that wraps ErrFailedPrecondition, a *ServerError whose Message says why.
func (c *Client) RemoveNode(ctx context.Context, id string) (epoch uint64, err error) {
	var resp *ringkvv1.RemoveNodeResponse
	err = c.invoke(ctx, request{op: "remove node",
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewClusterClient(cc).RemoveNode(ctx, &ringkvv1.RemoveNodeRequest{NodeId: id}, opts...)
			return err
		}})
	if err != nil {
		return 0, err
	}
	return resp.GetEpoch(), nil
}

// RebalanceStatus is the state of the cluster's replica moves as one node
// sees it: the moves that wait for a slot, those under way, and the most
// recent finished ones.
type RebalanceStatus struct {
	// Epoch is the metadata epoch the answer reflects.
	Epoch uint64
	// Pending are the moves waiting for a slot, in the order they will
	// start.
	Pending []Move
	// Active are the moves under way.
	Active []Move
	// Finished are the most recent finished moves, done or aborted, newest
	// last. The cluster keeps a bounded number of them.
	Finished []Move
	// FinishedSinceChange counts the moves finished since the placement
	// target last changed (a node joined or started draining, ...).
	FinishedSinceChange uint64
	// BytesSinceChange is the snapshot data those moves sent.
	BytesSinceChange uint64
	// MaxMovesPerNode is the throttle in force: how many moves may involve
	// a node at once.
	MaxMovesPerNode uint32
}

// Done reports whether no move is pending or active: the placement has
// reached its target.
func (s *RebalanceStatus) Done() bool {
	return len(s.Pending) == 0 && len(s.Active) == 0
}

// Progress returns the fraction of the current rebalance that is done, in
// [0, 1]: the moves finished since the target last changed over those plus
// the pending and active ones. It is 1 when there is nothing to do.
func (s *RebalanceStatus) Progress() float64 {
	left := uint64(len(s.Pending) + len(s.Active))
	total := s.FinishedSinceChange + left
	if total == 0 {
		return 1
	}
	return float64(s.FinishedSinceChange) / float64(total)
}

// Move is one replica move of one shard: a replica is added on To, then
// removed from From.
type Move struct {
	// Shard is the shard whose replica moves.
	Shard uint32
	// From is the node that loses a replica, "" when the shard only gains
	// one (a cluster growing to the replication factor).
	From string
	// To is the node that gains a replica, "" when the shard only loses
	// one.
	To string
	// Phase is one of PhasePending, PhaseActive, PhaseDone and
	// PhaseAborted.
	Phase string
	// Started is when the move started; zero while it is pending.
	Started time.Time
	// Finished is when the move finished; zero until then.
	Finished time.Time
	// Bytes is the snapshot data sent to To, 0 when the Raft log sufficed.
	Bytes uint64
	// Reason says why the move was aborted; "" otherwise.
	Reason string
}

// The phases of a Move.
const (
	// PhasePending is a move waiting for a slot under the throttle.
	PhasePending = "pending"
	// PhaseActive is a move under way.
	PhaseActive = "active"
	// PhaseDone is a move that completed.
	PhaseDone = "done"
	// PhaseAborted is a move given up on; Move.Reason says why.
	PhaseAborted = "aborted"
)

// RebalanceStatus returns the cluster's replica moves as any node sees them.
func (c *Client) RebalanceStatus(ctx context.Context) (*RebalanceStatus, error) {
	var resp *ringkvv1.RebalanceStatusResponse
	err := c.invoke(ctx, request{op: "rebalance status",
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewClusterClient(cc).RebalanceStatus(ctx, &ringkvv1.RebalanceStatusRequest{}, opts...)
			return err
		}})
	if err != nil {
		return nil, err
	}
	return rebalanceFromProto(resp), nil
}

func rebalanceFromProto(resp *ringkvv1.RebalanceStatusResponse) *RebalanceStatus {
	return &RebalanceStatus{
		Epoch:               resp.GetEpoch(),
		Pending:             movesFromProto(resp.GetPending()),
		Active:              movesFromProto(resp.GetActive()),
		Finished:            movesFromProto(resp.GetFinished()),
		FinishedSinceChange: resp.GetFinishedSinceChange(),
		BytesSinceChange:    resp.GetBytesSinceChange(),
		MaxMovesPerNode:     resp.GetMaxMovesPerNode(),
	}
}

func movesFromProto(ms []*ringkvv1.Move) []Move {
	out := make([]Move, 0, len(ms))
	for _, m := range ms {
		out = append(out, Move{
			Shard:    m.GetShard(),
			From:     m.GetFromNode(),
			To:       m.GetToNode(),
			Phase:    m.GetPhase(),
			Started:  unixMilli(m.GetStartedUnixMs()),
			Finished: unixMilli(m.GetFinishedUnixMs()),
			Bytes:    m.GetBytes(),
			Reason:   m.GetReason(),
		})
	}
	return out
}

// unixMilli returns the time ms milliseconds after the Unix epoch, the zero
// Time for 0.
func unixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
