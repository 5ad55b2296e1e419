package runner

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/test/jepsen-lite/history"
	"github.com/ringkv/ringkv/test/jepsen-lite/nemesis"
	"github.com/ringkv/ringkv/test/jepsen-lite/report"
)

// Bounds of the membership calls.
const (
	removeTimeout = 10 * time.Second // RemoveNode, retries included
	reapTimeout   = 30 * time.Second // stopping a node that left and removing its host
	watchEvery    = 500 * time.Millisecond
)

// Members implements nemesis.Membership from a fresh look at the cluster.
func (c *cluster) Members(ctx context.Context) (nemesis.Members, error) {
	c.observe(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.mu.last
	if st == nil {
		return nemesis.Members{}, errors.New("runner: no node reports the member list")
	}
	m := nemesis.Members{Replicas: int(st.GetReplicationFactor())}
	for _, n := range c.mu.nodes {
		if n.phase < phaseGone {
			m.Hosts++
		}
	}
	for _, mem := range st.GetMembers() {
		n := c.mu.nodes[mem.GetId()]
		up := n != nil && n.phase == phaseMember && n.proc.Running() && !n.proc.Paused()
		m.List = append(m.List, nemesis.Member{ID: mem.GetId(), State: mem.GetState(), Up: up})
	}
	return m, nil
}

// Join implements nemesis.Membership: a new host, and a node on it with the
// next unused ID, started with --join and the addresses of the members the
// harness runs.
func (c *cluster) Join(ctx context.Context) (string, error) {
	c.mu.Lock()
	var via []string
	for _, id := range c.mu.order {
		if n := c.mu.nodes[id]; n.phase == phaseMember && n.proc.Running() && !n.proc.Paused() {
			via = append(via, n.proc.Addr())
		}
	}
	c.mu.made++
	id := fmt.Sprintf("n%d", c.mu.made)
	c.mu.Unlock()
	if len(via) == 0 {
		return "", errors.New("runner: no running member to join through")
	}
	c.netMu.Lock()
	h, err := c.net.AddHost(ctx, id)
	c.netMu.Unlock()
	if err != nil {
		return "", err
	}
	if err := c.start(h, []string{"--join", joinComma(via)}, true); err != nil {
		return "", err
	}
	c.mu.Lock()
	c.mu.counts.JoinsStarted++
	c.mu.Unlock()
	return id, nil
}

// Remove implements nemesis.Membership: RemoveNode through the client
// library. The node is leaving from then on; observe stops it and removes
// its host once it has left the member list. A refusal
// (FailedPrecondition: too few nodes would remain) is returned as is.
func (c *cluster) Remove(ctx context.Context, id string) error {
	c.mu.Lock()
	n, admin := c.mu.nodes[id], c.mu.admin
	c.mu.Unlock()
	switch {
	case n == nil:
		return fmt.Errorf("runner: no node %q", id)
	case admin == nil:
		return errors.New("runner: no admin client")
	}
	ctx, cancel := context.WithTimeout(ctx, removeTimeout)
	defer cancel()
	epoch, err := admin.RemoveNode(ctx, id)
	if err != nil {
		// The drain may have been committed all the same (a lost
		// answer): observe sees it draining then.
		return err
	}
	c.mu.Lock()
	if n.phase == phaseMember {
		n.phase = phaseLeaving
	}
	c.mu.Unlock()
	c.log.Info("node draining", "id", id, "epoch", epoch)
	return nil
}

// memberChange is a change of one member between two member lists.
type memberChange struct {
	id       string
	from, to string // "" when newly listed; stateLeft when no longer
}

// memberChanges compares a member list with the states known before (by
// ID; "" for a node never listed, stateLeft for one gone) and returns the
// changes, newly listed and changed members in list order, then members
// gone from the list in ID order. IDs are never reused, so a member
// missing from a later list has left for good.
func memberChanges(known map[string]string, members []*ringkvv1.Member) []memberChange {
	var out []memberChange
	listed := map[string]bool{}
	for _, m := range members {
		listed[m.GetId()] = true
		if from := known[m.GetId()]; from != m.GetState() {
			out = append(out, memberChange{id: m.GetId(), from: from, to: m.GetState()})
		}
	}
	var gone []string
	for id, st := range known {
		if st != "" && st != stateLeft && !listed[id] {
			gone = append(gone, id)
		}
	}
	sort.Strings(gone)
	for _, id := range gone {
		out = append(out, memberChange{id: id, from: known[id], to: stateLeft})
	}
	return out
}

// deadBetween reports whether a change can only have been a death and a
// return between two looks: an active member turns joining only so.
func (ch memberChange) deadBetween() bool { return ch.from == "active" && ch.to == "joining" }

// describe says what a change is, for the timeline.
func (ch memberChange) describe() string {
	switch {
	case ch.from == "":
		return fmt.Sprintf("%s listed as a member (%s)", ch.id, ch.to)
	case ch.to == stateLeft:
		return fmt.Sprintf("%s left the member list (was %s)", ch.id, ch.from)
	case ch.from == "dead":
		return fmt.Sprintf("%s marked alive again: dead -> %s", ch.id, ch.to)
	case ch.to == "dead":
		return fmt.Sprintf("%s marked dead (was %s): its replicas are re-created elsewhere", ch.id, ch.from)
	case ch.deadBetween():
		return fmt.Sprintf("%s: active -> joining (marked dead and alive again between two looks)", ch.id)
	}
	return fmt.Sprintf("%s: %s -> %s", ch.id, ch.from, ch.to)
}

// observe asks every present node for its status and, when one reports a
// member list of a later epoch than the last seen, records its changes in
// the timeline and counts them; then it stops the nodes that left and
// removes their hosts. It returns the statuses.
func (c *cluster) observe(ctx context.Context) map[string]*ringkvv1.StatusResponse {
	sts := c.statuses(ctx)
	var latest *ringkvv1.StatusResponse
	for _, st := range sts {
		if latest == nil || st.GetEpoch() > latest.GetEpoch() {
			latest = st
		}
	}
	var reap []*node
	c.mu.Lock()
	if latest != nil && (c.mu.last == nil || latest.GetEpoch() > c.mu.last.GetEpoch()) {
		c.mu.last = latest
		known := map[string]string{}
		for id, n := range c.mu.nodes {
			known[id] = n.state
		}
		for _, ch := range memberChanges(known, latest.GetMembers()) {
			if n := c.applyLocked(ch, latest.GetEpoch()); n != nil {
				reap = append(reap, n)
			}
		}
	}
	c.mu.Unlock()
	for _, n := range reap {
		c.reap(ctx, n)
	}
	return sts
}

// applyLocked takes in one change seen at epoch: it records it, counts it
// and moves the node's phase on. It returns the node when it has just left
// the member list, to be stopped.
func (c *cluster) applyLocked(ch memberChange, epoch uint64) *node {
	c.tl.Add(history.Event{Type: history.Member, Kind: ch.to, Desc: ch.describe(), Nodes: []string{ch.id}, Epoch: epoch})
	c.log.Info("membership", "change", ch.describe(), "epoch", epoch)
	counts := &c.mu.counts
	switch {
	case ch.to == "dead":
		counts.MarkedDead++
	case ch.from == "dead":
		counts.MarkedAlive++
	case ch.deadBetween():
		counts.MarkedDead++
		counts.MarkedAlive++
	case ch.to == "draining":
		counts.RemovalsStarted++
	case ch.to == stateLeft:
		counts.Left++
	}
	n := c.mu.nodes[ch.id]
	if n == nil {
		return nil // not one of ours: nothing to do but say so
	}
	n.state = ch.to
	switch {
	case ch.from == "" && n.phase == phaseStarting:
		n.phase = phaseMember
		counts.Joined++
	case ch.to == "draining" && n.phase == phaseMember:
		n.phase = phaseLeaving
	case ch.to == stateLeft && n.phase < phaseLeft:
		n.phase = phaseLeft
		return n
	}
	return nil
}

// reap stops a node that left the member list and removes its host, even
// when ctx has ended, and records it.
func (c *cluster) reap(ctx context.Context, n *node) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reapTimeout)
	defer cancel()
	id := n.proc.ID()
	err := n.proc.Stop(ctx, stopGrace)
	c.netMu.Lock()
	err = errors.Join(err, c.net.RemoveHost(ctx, id))
	c.netMu.Unlock()
	_ = n.conn.Close()
	c.mu.Lock()
	n.phase = phaseGone
	c.mu.counts.Stopped++
	c.mu.Unlock()
	e := history.Event{Type: history.Member, Kind: "stopped", Nodes: []string{id},
		Desc: fmt.Sprintf("%s stopped and its host %s %s removed (it left the member list)", id, n.host.Netns, n.host.IP)}
	if err != nil {
		e.Error = err.Error()
		c.log.Warn("stopping a node that left", "id", id, "err", err)
	}
	c.tl.Add(e)
	c.log.Info("node stopped and host removed", "id", id, "host", hostOf(n.host))
}

// watch observes the cluster every watchEvery until ctx ends.
func (c *cluster) watch(ctx context.Context) {
	for {
		c.observe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(watchEvery):
		}
	}
}

// unsettled says what keeps the cluster from being settled, "" when it is:
// every shard has a leader; no move is pending or under way at the latest
// epoch; every member is active; every node started with --join is
// listed; every node whose removal was asked for has left and is stopped.
func (c *cluster) unsettled(ctx context.Context, sts map[string]*ringkvv1.StatusResponse) string {
	var why []string
	if n := len(leaders(sts)); n < int(c.shards) {
		why = append(why, fmt.Sprintf("%d of %d shards have a leader", n, c.shards))
	}
	rs := c.rebalanceStatus(ctx)
	c.mu.Lock()
	last := c.mu.last
	for _, id := range c.mu.order {
		switch n := c.mu.nodes[id]; n.phase {
		case phaseStarting:
			why = append(why, id+" not listed yet")
		case phaseLeaving:
			why = append(why, fmt.Sprintf("%s still leaving (%s)", id, n.state))
		case phaseLeft:
			why = append(why, id+" being stopped")
		}
	}
	c.mu.Unlock()
	switch {
	case last == nil:
		why = append(why, "no member list")
	case rs == nil:
		why = append(why, "no rebalance status")
	case rs.GetEpoch() != last.GetEpoch():
		why = append(why, fmt.Sprintf("rebalance status at epoch %d, member list at %d", rs.GetEpoch(), last.GetEpoch()))
	case len(rs.GetPending())+len(rs.GetActive()) > 0:
		why = append(why, fmt.Sprintf("%d moves pending, %d under way", len(rs.GetPending()), len(rs.GetActive())))
	}
	if last != nil {
		for _, m := range last.GetMembers() {
			if m.GetState() != "active" {
				why = append(why, fmt.Sprintf("%s %s", m.GetId(), m.GetState()))
			}
		}
	}
	return strings.Join(why, "; ")
}

// waitSettled waits until the cluster is settled (see unsettled) at two
// looks in a row, watchEvery apart, or ctx ends; the error then says what
// was still unsettled.
func (c *cluster) waitSettled(ctx context.Context) error {
	settledOnce := false
	for {
		why := c.unsettled(ctx, c.observe(ctx))
		if why == "" && settledOnce {
			return nil
		}
		settledOnce = why == ""
		select {
		case <-ctx.Done():
			if why == "" {
				why = "settled only once"
			}
			return fmt.Errorf("not settled: %s", why)
		case <-time.After(watchEvery):
		}
	}
}

// membership returns the run's membership counts and the last member list.
func (c *cluster) membership() report.Membership {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.mu.counts
	if st := c.mu.last; st != nil {
		m.FinalEpoch = st.GetEpoch()
		for _, mem := range st.GetMembers() {
			m.Final = append(m.Final, mem.GetId()+"="+mem.GetState())
		}
	}
	return m
}
