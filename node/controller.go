package node

import (
	"context"
	"errors"
	"sync"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ringkv/ringkv/cluster"
	"github.com/ringkv/ringkv/replication"
)

// metaVoters is the number of voters the metadata group keeps when enough
// members are live (every other member follows it as a non-voter, so every
// node has the metadata locally). The replication factor raises it.
const metaVoters = 3

// controlLoop is the cluster's controller. It runs on every node but acts
// only while the node leads the metadata group, so exactly one node acts
// at a time, with state that a new leader rebuilds:
//   - the metadata group's membership follows the member list;
//   - members unreachable for longer than DeadAfter are marked dead, and
//     dead members that answer again are marked alive;
//   - replica moves toward the target placement are started, throttled.
//
// The moves themselves are driven by each shard's leader (see moveLoop).
func (n *Node) controlLoop() {
	defer n.wg.Done()
	ctx := n.life
	tick := time.NewTicker(n.cfg.ControllerInterval)
	defer tick.Stop()
	var live *liveness
	for {
		changed := n.metaSM.Changed()
		select {
		case <-n.stop:
			return
		case <-tick.C:
		case <-changed:
		}
		st := n.metaSM.Current()
		if !st.Initialized() || !n.meta.Leader().Self {
			live = nil
			continue
		}
		if live == nil {
			// A new controller gives every member a full DeadAfter.
			live = newLiveness(time.Now())
		}
		n.reconcileMetaGroup(ctx, st)
		n.checkLiveness(ctx, st, live)
		n.startMoves(ctx, st)
	}
}

// reconcileMetaGroup makes one change, if one is due, to bring the
// metadata group's membership to the member list: every member in the
// group, up to metaVoters live members voting, dead and draining members
// demoted once a live voter replaces them, removed members out.
func (n *Node) reconcileMetaGroup(ctx context.Context, st *cluster.State) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conf, err := n.meta.Configuration(ctx)
	if err != nil {
		n.logger.Debug("metadata group configuration", "err", err)
		return
	}
	change := func(what, id string, err error) {
		if err != nil {
			n.logger.Warn("metadata group change failed", "change", what, "node", id, "err", err)
		} else {
			n.logger.Info("metadata group changed", "change", what, "node", id)
		}
	}
	for _, m := range st.Members {
		if _, ok := conf.Server(m.ID); !ok {
			change("add non-voter", m.ID, n.meta.AddNonvoter(ctx, m.ID, m.Addr))
			return
		}
	}
	for _, s := range conf.Servers {
		if _, ok := st.Member(s.ID); ok {
			continue
		}
		if s.ID == n.cfg.ID {
			change("hand over leadership", s.ID, n.meta.TransferLeadership())
			return
		}
		change("remove", s.ID, n.meta.RemoveServer(ctx, s.ID))
		return
	}
	want := max(metaVoters, st.Replicas)
	var good, liveVoters int
	for _, m := range st.Members {
		if m.State.Placeable() {
			good++
			if s, _ := conf.Server(m.ID); s.Voter {
				liveVoters++
			}
		}
	}
	want = min(want, good)
	if liveVoters < want {
		// Promote a placeable non-voter, active ones first.
		for _, pass := range []cluster.MemberState{cluster.MemberActive, cluster.MemberJoining} {
			for _, m := range st.Members {
				if s, _ := conf.Server(m.ID); m.State == pass && !s.Voter {
					change("promote", m.ID, n.meta.AddVoter(ctx, m.ID, m.Addr))
					return
				}
			}
		}
	}
	if liveVoters < want {
		return
	}
	for _, m := range st.Members {
		if s, _ := conf.Server(m.ID); !s.Voter || m.State.Placeable() {
			continue
		}
		if m.ID == n.cfg.ID {
			change("hand over leadership", m.ID, n.meta.TransferLeadership())
		} else {
			change("demote", m.ID, n.meta.DemoteVoter(ctx, m.ID))
		}
		return
	}
}

// liveness is the controller's record of when each member last answered.
type liveness struct {
	start    time.Time
	lastSeen map[string]time.Time
	warned   map[string]bool
}

func newLiveness(now time.Time) *liveness {
	return &liveness{start: now, lastSeen: map[string]time.Time{}, warned: map[string]bool{}}
}

func (l *liveness) seen(id string) time.Time {
	if t, ok := l.lastSeen[id]; ok {
		return t
	}
	return l.start
}

// checkLiveness pings every other member and marks members dead or alive.
func (n *Node) checkLiveness(ctx context.Context, st *cluster.State, live *liveness) {
	timeout := min(time.Second, n.cfg.DeadAfter/2)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	ok := map[string]bool{n.cfg.ID: true}
	for _, m := range st.Members {
		if m.ID == n.cfg.ID {
			continue
		}
		wg.Go(func() {
			alive := n.ping(pctx, m.Addr)
			mu.Lock()
			ok[m.ID] = alive
			mu.Unlock()
		})
	}
	wg.Wait()
	now := time.Now()
	for _, m := range st.Members {
		if ok[m.ID] {
			live.lastSeen[m.ID] = now
			delete(live.warned, m.ID)
			if m.Unreachable() {
				n.markMember(ctx, cluster.AliveCommand(m.ID), "alive", m.ID)
			}
			continue
		}
		if m.Unreachable() || now.Sub(live.seen(m.ID)) < n.cfg.DeadAfter {
			continue
		}
		err := n.markMember(ctx, cluster.DeadCommand(m.ID), "dead", m.ID)
		if errors.Is(err, cluster.ErrTooFewNodes) && !live.warned[m.ID] {
			live.warned[m.ID] = true
			n.logger.Warn("member unreachable but not marked dead: its replicas have nowhere to go", "member", m.ID, "err", err)
		}
	}
}

func (n *Node) markMember(ctx context.Context, cmd []byte, state, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	epoch, err := n.ProposeMetaLocal(ctx, cmd)
	if err == nil {
		n.logger.Warn("member state changed", "member", id, "state", state, "epoch", epoch)
	}
	return err
}

// ping reports whether the node at addr answers a health check.
func (n *Node) ping(ctx context.Context, addr string) bool {
	cc, err := n.mux.Conn(addr)
	if err != nil {
		return false
	}
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err == nil
}

// startMoves starts the moves the throttle allows.
func (n *Node) startMoves(ctx context.Context, st *cluster.State) {
	moves := st.Plan(n.cfg.MaxMovesPerNode, time.Now().UnixMilli())
	if len(moves) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	epoch, err := n.ProposeMetaLocal(ctx, cluster.StartCommand(moves))
	if err != nil {
		if !errors.Is(err, replication.ErrNotLeader) {
			n.logger.Warn("starting replica moves", "err", err)
		}
		return
	}
	for _, m := range moves {
		n.logger.Info("replica move started", "move", m.String(), "epoch", epoch)
	}
}
