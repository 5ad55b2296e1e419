package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
)

// Membership is a Cluster whose membership can change: nodes join on new
// hosts and members are removed. The churn nemesis needs it.
type Membership interface {
	Cluster
	// Members returns the membership as the cluster reports it (the
	// latest epoch any node knows) and as the harness runs it.
	Members(ctx context.Context) (Members, error)
	// Join makes a new host and starts a node on it with an ID never used
	// before, told to join the cluster through its members. It returns
	// the node's ID once its process runs; the cluster adds it in the
	// background.
	Join(ctx context.Context) (string, error)
	// Remove asks the cluster to remove member id. It returns once the
	// cluster has committed the start of id's drain; the node leaves the
	// member list when its replicas have moved, and the harness then stops
	// its process and removes its host.
	Remove(ctx context.Context, id string) error
}

// Members is a cluster's membership.
type Members struct {
	// Replicas is the cluster's replication factor.
	Replicas int
	// Hosts counts the hosts the harness runs: members, joiners not yet
	// listed, and removed nodes not yet stopped.
	Hosts int
	// List is the members, in the cluster's order.
	List []Member
}

// Member is one member of the cluster.
type Member struct {
	ID string
	// State is the cluster's: "joining", "active", "draining" or "dead".
	State string
	// Up is the harness's: the node's process runs, unpaused, and its
	// removal has not been asked for.
	Up bool
}

// Live reports whether m is a live member: one the cluster places
// replicas on (joining or active) whose process is up.
func (m Member) Live() bool { return (m.State == "joining" || m.State == "active") && m.Up }

// Live returns the IDs of the live members, sorted.
func (m Members) Live() []string {
	var out []string
	for _, mem := range m.List {
		if mem.Live() {
			out = append(out, mem.ID)
		}
	}
	return sorted(out)
}

// Churn changes the membership, one change per fault: either a node joins
// on a new host, or a live member is removed. It keeps the cluster within
// bounds:
//
//   - a removal leaves at least max(MinLive, replication factor + 1) live
//     members, so that while the removed node drains, one more node that
//     is killed, paused or cut off for longer than --dead-after can still
//     be marked dead (the cluster refuses to mark one dead when fewer than
//     the replication factor of placeable nodes would remain) and every
//     drained replica still has a live node to go to;
//   - a join happens only while fewer than MaxHosts hosts run (removed
//     nodes count until they are stopped).
//
// When both are possible it picks one at random; when neither is, Inject
// fails and says why. A membership change is not undone: Heal does
// nothing, and the cluster rebalances in the background while the next
// faults happen.
type Churn struct {
	// MinLive is the fewest live members a removal may leave; the
	// replication factor + 1 is used when it is lower.
	MinLive int
	// MaxHosts is the most hosts at once; a join needs fewer running. 0
	// allows no join.
	MaxHosts int
}

// Name implements Nemesis.
func (Churn) Name() string { return "churn" }

// Inject implements Nemesis. c must be a Membership.
func (ch Churn) Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error) {
	mc, ok := c.(Membership)
	if !ok {
		return nil, errors.New("nemesis: churn needs a cluster whose membership can change")
	}
	m, err := mc.Members(ctx)
	if err != nil {
		return nil, fmt.Errorf("nemesis: membership: %w", err)
	}
	step, err := ch.plan(m, rng)
	if err != nil {
		return nil, err
	}
	live := len(m.Live())
	noop := func(context.Context) error { return nil }
	if step.join {
		id, err := mc.Join(ctx)
		if err != nil {
			return nil, fmt.Errorf("nemesis: join: %w", err)
		}
		return &Fault{Kind: "join", Desc: fmt.Sprintf("join %s (%d live members, %d hosts before)", id, live, m.Hosts),
			Nodes: []string{id}, heal: noop}, nil
	}
	if err := mc.Remove(ctx, step.remove); err != nil {
		return nil, fmt.Errorf("nemesis: remove %s: %w", step.remove, err)
	}
	return &Fault{Kind: "remove", Desc: fmt.Sprintf("remove %s (%d live members before, %d after)", step.remove, live, live-1),
		Nodes: []string{step.remove}, heal: noop}, nil
}

// churnStep is one membership change: a join, or the removal of a member.
type churnStep struct {
	join   bool
	remove string
}

// plan picks the next change for membership m within the bounds. It is a
// pure function of m and rng.
func (ch Churn) plan(m Members, rng *rand.Rand) (churnStep, error) {
	floor := max(ch.MinLive, m.Replicas+1)
	live := m.Live()
	canRemove := len(live)-1 >= floor
	canJoin := m.Hosts < ch.MaxHosts
	switch {
	case canJoin && canRemove:
		if rng.IntN(2) == 0 {
			return churnStep{join: true}, nil
		}
	case canJoin:
		return churnStep{join: true}, nil
	case !canRemove:
		return churnStep{}, fmt.Errorf("nemesis: churn: no room: %d live members (a removal must leave %d), %d hosts (a join needs fewer than %d)",
			len(live), floor, m.Hosts, ch.MaxHosts)
	}
	return churnStep{remove: live[rng.IntN(len(live))]}, nil
}

// churnOf returns the churn nemesis of opts.
func churnOf(opts Options) (Churn, error) {
	if opts.MaxHosts < 1 {
		return Churn{}, errors.New("nemesis: churn needs Options.MaxHosts")
	}
	return Churn{MinLive: opts.MinLive, MaxHosts: opts.MaxHosts}, nil
}
