package client

import (
	"cmp"
	"context"
	"slices"

	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// ClusterStatus is the cluster's membership and shard map as one node sees
// it.
type ClusterStatus struct {
	// NodeID is the ID of the node that answered.
	NodeID string
	// Epoch increases with every change of membership or placement.
	Epoch uint64
	// ShardCount is the number of shards, fixed for the cluster's life.
	ShardCount uint32
	// ReplicationFactor is the number of replicas of each shard.
	ReplicationFactor uint32
	// Members are the cluster's nodes.
	Members []Member
	// Shards are the shards, ordered by ID.
	Shards []ShardStatus
}

// Member is a node of the cluster.
type Member struct {
	ID      string
	Address string
	// State is one of StateJoining, StateActive, StateDraining and
	// StateDead; StateActive for every member of a static cluster. A newer
	// node may report a state this package does not name.
	State string
}

// The states of a Member.
const (
	// StateJoining is a node that replicas are being moved onto.
	StateJoining = "joining"
	// StateActive is a node that holds its share of the replicas.
	StateActive = "active"
	// StateDraining is a node being removed: its replicas are being moved
	// off it, and it leaves the cluster once it holds none.
	StateDraining = "draining"
	// StateDead is a node unreachable for longer than the cluster's
	// dead-after timeout: its replicas are being re-created elsewhere.
	StateDead = "dead"
)

// ShardStatus is a shard's placement and leadership.
type ShardStatus struct {
	ID uint32
	// Replicas are the IDs of the nodes that hold the shard, in placement
	// order.
	Replicas []string
	// Leader is the ID of the shard's leader, "" when unknown.
	Leader string
	// LeaderTerm is the Raft term of that leadership, 0 when unknown.
	LeaderTerm uint64
	// Target is the replica set the ring wants for the shard. It differs
	// from Replicas while the shard waits for or undergoes a move. A node
	// that reports no target (one older than the rebalancer) yields a
	// Target equal to Replicas.
	Target []string
}

// Moving reports whether the shard's replica set differs from its target,
// ignoring order: the shard waits for or undergoes a move.
func (s ShardStatus) Moving() bool {
	if len(s.Replicas) != len(s.Target) {
		return true
	}
	for _, id := range s.Target {
		if !slices.Contains(s.Replicas, id) {
			return true
		}
	}
	return false
}

// Status returns the cluster's status as any node sees it, and refreshes the
// client's shard map from it.
func (c *Client) Status(ctx context.Context) (*ClusterStatus, error) {
	var resp *ringkvv1.StatusResponse
	err := c.invoke(ctx, request{op: "status",
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewClusterClient(cc).Status(ctx, &ringkvv1.StatusRequest{}, opts...)
			return err
		}})
	if err != nil {
		return nil, err
	}
	if err := c.install(resp); err != nil {
		c.log.Warn("ringkv: status", "err", err)
	}
	return statusFromProto(resp), nil
}

func statusFromProto(resp *ringkvv1.StatusResponse) *ClusterStatus {
	s := &ClusterStatus{
		NodeID:            resp.GetNodeId(),
		Epoch:             resp.GetEpoch(),
		ShardCount:        resp.GetShardCount(),
		ReplicationFactor: resp.GetReplicationFactor(),
	}
	for _, m := range resp.GetMembers() {
		s.Members = append(s.Members, Member{ID: m.GetId(), Address: m.GetAddress(), State: m.GetState()})
	}
	for _, sh := range resp.GetShards() {
		target := sh.GetTarget()
		if len(target) == 0 {
			target = sh.GetReplicas()
		}
		s.Shards = append(s.Shards, ShardStatus{
			ID:         sh.GetId(),
			Replicas:   slices.Clone(sh.GetReplicas()),
			Leader:     sh.GetLeader(),
			LeaderTerm: sh.GetLeaderTerm(),
			Target:     slices.Clone(target),
		})
	}
	slices.SortFunc(s.Shards, func(a, b ShardStatus) int { return cmp.Compare(a.ID, b.ID) })
	return s
}
