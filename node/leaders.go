package node

import (
	"time"

	"github.com/ringkv/ringkv/ring"
	"github.com/ringkv/ringkv/shard"
)

// maxTransfersPerRound bounds the leadership transfers one node starts per
// balancing round: each costs its shard a moment of unavailability (writes
// during the hand-over are retried), so they are spread out.
const maxTransfersPerRound = 8

// transferBackoff is how long a shard whose transfer failed is left alone
// (its preferred leader may be down or behind).
const transferBackoff = time.Minute

// balanceLeadership hands shards this node leads to their preferred leaders.
// Raft elects whichever replica times out first, so without this the node
// that starts first ends up leading most shards and doing most of the work.
// Every node computes the same preferred leaders from the placement, so the
// cluster converges without coordination; a shard whose preferred leader is
// down stays where it is.
func (n *Node) balanceLeadership() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.LeaderBalanceInterval)
	defer tick.Stop()
	backoff := map[shard.ID]time.Time{}
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		st := n.metaSM.Current()
		if !st.Initialized() {
			continue
		}
		preferred := ring.PreferredLeaders(ring.Placement{Shards: st.Shards})
		started := 0
		for id, want := range preferred {
			sid := shard.ID(id)
			if want == n.cfg.ID || time.Now().Before(backoff[sid]) {
				continue
			}
			if _, moving := st.ActiveMove(uint32(id)); moving {
				continue // the move hands leadership over itself
			}
			g, ok := n.ShardGroup(sid)
			if !ok || !g.Leader().Self {
				continue
			}
			m, ok := st.Member(want)
			if !ok {
				continue
			}
			if err := g.TransferLeadershipTo(m.ID, m.Addr); err != nil {
				n.logger.Debug("leadership transfer failed", "shard", id, "to", want, "err", err)
				backoff[sid] = time.Now().Add(transferBackoff)
			} else {
				n.logger.Debug("leadership transferred", "shard", id, "to", want)
			}
			if started++; started >= maxTransfersPerRound {
				break
			}
			select {
			case <-n.stop:
				return
			default:
			}
		}
	}
}
