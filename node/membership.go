package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ringkv/ringkv/cluster"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

// metaRetry is how long proposeMeta waits before asking again when the
// metadata group has no reachable leader.
const metaRetry = 100 * time.Millisecond

// ProposeMetaLocal implements rpc.MetaLeader: it commits a metadata command
// if this node leads the metadata group.
func (n *Node) ProposeMetaLocal(ctx context.Context, cmd []byte) (uint64, error) {
	out, _, err := n.meta.Propose(ctx, cmd)
	if err != nil {
		return 0, fmt.Errorf("metadata: %w", err)
	}
	epoch := n.metaSM.Current().Epoch
	if e, ok := out.(error); ok && e != nil {
		return epoch, e
	}
	return epoch, nil
}

// proposeMeta commits a metadata command through whichever node leads the
// metadata group, retrying until ctx ends while there is no leader. A
// refusal by the state machine (cluster.ErrTooFewNodes, ...) is returned
// at once.
func (n *Node) proposeMeta(ctx context.Context, cmd []byte) (uint64, error) {
	for {
		var epoch uint64
		var err error
		l := n.meta.Leader()
		switch {
		case l.Self:
			epoch, err = n.ProposeMetaLocal(ctx, cmd)
		case l.Addr != "":
			epoch, err = n.metaClient.Propose(ctx, l.Addr, cmd)
		default:
			err = fmt.Errorf("metadata: %w", router.ErrNoLeader)
		}
		if !retryableMeta(err) {
			return epoch, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("metadata: %w (last: %w)", ctx.Err(), err)
		case <-time.After(metaRetry):
		}
	}
}

// retryableMeta reports whether a metadata proposal failed for want of a
// reachable leader (try again) rather than by a refusal or a dead context.
func retryableMeta(err error) bool {
	return errors.Is(err, replication.ErrNotLeader) ||
		errors.Is(err, router.ErrNoLeader) ||
		errors.Is(err, router.ErrUnreachable)
}

// ReplicaProgress implements rpc.MetaLeader.
func (n *Node) ReplicaProgress(id uint32) (open bool, applied, snapshotBytes uint64) {
	g, ok := n.ShardGroup(shard.ID(id))
	if !ok {
		return false, 0, 0
	}
	return true, g.AppliedIndex(), n.mux.SnapshotBytesReceived(uint64(id))
}

// Join implements rpc.ClusterAdmin.
func (n *Node) Join(ctx context.Context, id, addr string) (uint64, error) {
	epoch, err := n.proposeMeta(ctx, cluster.JoinCommand(id, addr))
	if err != nil {
		return 0, fmt.Errorf("join %s: %w", id, err)
	}
	n.logger.Info("node joined the cluster", "joiner", id, "addr", addr, "epoch", epoch)
	return epoch, nil
}

// RemoveNode implements rpc.ClusterAdmin.
func (n *Node) RemoveNode(ctx context.Context, id string) (uint64, error) {
	epoch, err := n.proposeMeta(ctx, cluster.DrainCommand(id))
	if err != nil {
		return 0, fmt.Errorf("remove %s: %w", id, err)
	}
	n.logger.Info("node draining", "drained", id, "epoch", epoch)
	return epoch, nil
}

// RebalanceStatus implements rpc.ClusterAdmin from this node's copy of the
// metadata.
func (n *Node) RebalanceStatus(context.Context) (*ringkvv1.RebalanceStatusResponse, error) {
	st := n.metaSM.Current()
	if !st.Initialized() {
		return nil, router.ErrNotReady
	}
	resp := &ringkvv1.RebalanceStatusResponse{
		Epoch:               st.Epoch,
		FinishedSinceChange: st.FinishedSinceChange,
		BytesSinceChange:    st.BytesSinceChange,
		MaxMovesPerNode:     uint32(n.cfg.MaxMovesPerNode),
	}
	for _, m := range st.Pending() {
		resp.Pending = append(resp.Pending, moveProto(m, "pending"))
	}
	for _, m := range st.Moves {
		resp.Active = append(resp.Active, moveProto(m, "active"))
	}
	for _, m := range st.Finished {
		resp.Finished = append(resp.Finished, moveProto(m, m.Outcome))
	}
	return resp, nil
}

func moveProto(m cluster.Move, phase string) *ringkvv1.Move {
	return &ringkvv1.Move{
		Shard: m.Shard, FromNode: m.From, ToNode: m.To, Phase: phase,
		StartedUnixMs: m.Started, FinishedUnixMs: m.Finished, Bytes: m.Bytes, Reason: m.Reason,
	}
}

// joinCluster asks the --join addresses, in turn, to add this node, until
// one commits the join. The metadata then arrives through the metadata
// group, to which the controller adds this node.
func (n *Node) joinCluster() {
	defer n.wg.Done()
	ctx := n.life
	backoff := 100 * time.Millisecond
	for {
		for _, addr := range n.cfg.Join {
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			epoch, err := n.metaClient.Join(cctx, addr, n.cfg.ID, n.cfg.AdvertiseAddr)
			ccancel()
			if err == nil {
				n.logger.Info("joined the cluster", "through", addr, "epoch", epoch)
				return
			}
			if ctx.Err() != nil {
				return
			}
			if !retryableMeta(err) && !errors.Is(err, context.DeadlineExceeded) {
				// A refusal (the ID is taken, or was removed) will not
				// change by asking again: say so loudly and keep the
				// node up so the operator sees it.
				n.logger.Error("cannot join the cluster", "through", addr, "err", err)
				return
			}
			n.logger.Warn("join attempt failed; retrying", "through", addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
