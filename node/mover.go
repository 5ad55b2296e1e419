package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ringkv/ringkv/cluster"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/shard"
)

// catchUpPoll is how often a move asks its destination how far it has
// applied the shard's log.
const catchUpPoll = 100 * time.Millisecond

// catchUpTimeout bounds one wait for a destination to catch up; the move
// is then re-examined (its destination may have died) and the wait
// resumed.
const catchUpTimeout = 30 * time.Second

// errHandedOff: this node gave up the shard's leadership so that the move
// can remove it; the new leader drives the rest of the move.
var errHandedOff = errors.New("leadership handed off")

// moveLoop drives the moves in progress of the shards this node leads. A
// move is a sequence of Raft membership changes of the shard's group, each
// made only after checking the group's current configuration, so a new
// leader resumes a move wherever the previous one stopped:
//
//  1. add the destination as a non-voter (it gets a snapshot and the log);
//  2. wait until it has applied the leader's log as of the wait's start
//     (AddVoter does not wait: hashicorp/raft#404);
//  3. promote it to voter: the group has R+1 voters;
//  4. if this node is the source, hand leadership to the destination and
//     stop: the new leader continues;
//  5. remove the source: the group is back to R voters;
//  6. commit the move's end to the metadata; the source's node then drops
//     its replica and tombstones it.
//
// A move whose destination dies, drains or leaves the target before it
// votes is undone instead: the destination is removed and the move ends
// as aborted; the planner then picks another destination.
func (n *Node) moveLoop() {
	defer n.wg.Done()
	ctx := n.life
	tick := time.NewTicker(n.cfg.ControllerInterval)
	defer tick.Stop()
	running := map[uint32]chan struct{}{}
	for {
		changed := n.metaSM.Changed()
		for id, done := range running {
			select {
			case <-done:
				delete(running, id)
			default:
			}
		}
		st := n.metaSM.Current()
		for _, m := range st.Moves {
			if _, ok := running[m.Shard]; ok {
				continue
			}
			g, ok := n.ShardGroup(shard.ID(m.Shard))
			if !ok || !g.Leader().Self {
				continue
			}
			done := make(chan struct{})
			running[m.Shard] = done
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer close(done)
				n.driveMove(ctx, m)
			}()
		}
		select {
		case <-n.stop:
			return
		case <-tick.C:
		case <-changed:
		}
	}
}

// driveMove runs m's steps while this node leads the shard and m is in
// progress, retrying failed steps with backoff.
func (n *Node) driveMove(ctx context.Context, m cluster.Move) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		st := n.metaSM.Current()
		cur, ok := st.ActiveMove(m.Shard)
		if !ok || cur.From != m.From || cur.To != m.To || cur.Started != m.Started {
			return
		}
		g, ok := n.ShardGroup(shard.ID(m.Shard))
		if !ok || !g.Leader().Self {
			return
		}
		err := n.stepMove(ctx, st, g, m)
		switch {
		case err == nil:
			// The end is committed; the metadata shows it soon.
			backoff = 100 * time.Millisecond
		case errors.Is(err, errHandedOff), errors.Is(err, replication.ErrNotLeader):
			n.logger.Info("replica move continues on the shard's new leader", "move", m.String())
			return
		default:
			n.logger.Warn("replica move step failed; retrying", "move", m.String(), "err", err)
		}
		select {
		case <-ctx.Done():
		case <-n.metaSM.Changed():
		case <-time.After(backoff):
		}
		if err != nil {
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// stepMove takes m as far as it can go. It returns nil once the move's end
// is committed.
func (n *Node) stepMove(ctx context.Context, st *cluster.State, g *replication.Group, m cluster.Move) error {
	conf, err := g.Configuration(ctx)
	if err != nil {
		return err
	}
	toVotes := false
	if s, ok := conf.Server(m.To); ok {
		toVotes = s.Voter
	}
	_, fromIn := conf.Server(m.From)
	if m.To != "" && !toVotes {
		if reason := abortReason(st, m); reason != "" {
			if _, in := conf.Server(m.To); in {
				if err := g.RemoveServer(ctx, m.To); err != nil {
					return fmt.Errorf("undoing %s: %w", m, err)
				}
			}
			return n.finishMove(ctx, m, cluster.MoveAborted, reason, 0)
		}
	}
	if m.To != "" && !toVotes {
		to, ok := st.Member(m.To)
		if !ok {
			return fmt.Errorf("%s: destination is not a member", m)
		}
		if _, in := conf.Server(m.To); !in {
			if err := g.AddNonvoter(ctx, to.ID, to.Addr); err != nil {
				return fmt.Errorf("%s: adding non-voter: %w", m, err)
			}
			n.logger.Info("replica move: destination added as non-voter", "move", m.String())
		}
		if err := n.awaitCatchUp(ctx, g, m, to.Addr); err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		if err := g.AddVoter(ctx, to.ID, to.Addr); err != nil {
			return fmt.Errorf("%s: promoting: %w", m, err)
		}
		n.logger.Info("replica move: destination promoted to voter", "move", m.String())
	}
	if m.From != "" && fromIn {
		if m.From == n.cfg.ID {
			return n.handOff(ctx, st, g, m)
		}
		if err := g.RemoveServer(ctx, m.From); err != nil {
			return fmt.Errorf("%s: removing source: %w", m, err)
		}
		n.logger.Info("replica move: source removed", "move", m.String())
	}
	var bytes uint64
	if to, ok := st.Member(m.To); ok {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, _, bytes, _ = n.metaClient.ReplicaProgress(pctx, to.Addr, m.Shard)
		cancel()
	}
	return n.finishMove(ctx, m, cluster.MoveDone, "", bytes)
}

// abortReason says why m should be undone rather than finished ("" when it
// should go on).
func abortReason(st *cluster.State, m cluster.Move) string {
	to, ok := st.Member(m.To)
	switch {
	case !ok:
		return fmt.Sprintf("destination %s left the cluster", m.To)
	case !to.State.Placeable():
		return fmt.Sprintf("destination %s is %s", m.To, to.State)
	case int(m.Shard) < len(st.Target) && !slices.Contains(st.Target[m.Shard], m.To):
		return fmt.Sprintf("destination %s is no longer in the shard's target", m.To)
	}
	return ""
}

// awaitCatchUp waits until the replica at addr has applied the shard's log
// up to this leader's applied index at the start of the wait. It gives up
// early when the move should be undone (its destination died, say).
func (n *Node) awaitCatchUp(ctx context.Context, g *replication.Group, m cluster.Move, addr string) error {
	id := m.Shard
	target := g.AppliedIndex()
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	tick := time.NewTicker(catchUpPoll)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		open, applied, _, err := n.metaClient.ReplicaProgress(pctx, addr, id)
		pcancel()
		if err == nil && open && applied >= target {
			return nil
		}
		if reason := abortReason(n.metaSM.Current(), m); reason != "" {
			return fmt.Errorf("stopped waiting for catch-up: %s", reason)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("destination did not catch up to index %d (applied %d): %w", target, applied, ctx.Err())
		case <-tick.C:
		}
	}
}

// handOff transfers the shard's leadership away from this node, which the
// move removes: to the destination when there is one (it is caught up),
// else to another voter.
func (n *Node) handOff(ctx context.Context, st *cluster.State, g *replication.Group, m cluster.Move) error {
	target := m.To
	if target == "" {
		for _, id := range st.ReplicasOf(m.Shard) {
			if id != n.cfg.ID {
				target = id
				break
			}
		}
	}
	to, ok := st.Member(target)
	if !ok {
		return fmt.Errorf("%s: no node to hand leadership to", m)
	}
	if err := g.TransferLeadershipTo(to.ID, to.Addr); err != nil {
		return fmt.Errorf("%s: handing leadership to %s: %w", m, to.ID, err)
	}
	n.logger.Info("replica move: leadership handed to the destination", "move", m.String(), "to", to.ID)
	return errHandedOff
}

// finishMove commits the end of m to the metadata.
func (n *Node) finishMove(ctx context.Context, m cluster.Move, outcome, reason string, bytes uint64) error {
	m.Outcome, m.Reason, m.Bytes, m.Finished = outcome, reason, bytes, time.Now().UnixMilli()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	epoch, err := n.proposeMeta(ctx, cluster.FinishCommand(m))
	if errors.Is(err, cluster.ErrMoveConflict) {
		return nil // someone else (a previous leader) ended it
	}
	if err != nil {
		return fmt.Errorf("%s: committing its end: %w", m, err)
	}
	n.moveMetrics.finished.WithLabelValues(outcome).Inc()
	n.moveMetrics.bytes.Add(float64(bytes))
	n.logger.Info("replica move finished", "move", m.String(), "outcome", outcome, "reason", reason, "bytes", bytes, "epoch", epoch)
	return nil
}
