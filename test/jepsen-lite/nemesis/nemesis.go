// Package nemesis injects faults into a running cluster on a schedule, the
// way Jepsen's nemesis does: network partitions of several shapes, kill -9
// and restart, SIGSTOP and SIGCONT. Each fault is healed before the next
// one starts, and before Run returns.
//
// A Nemesis only decides what to break and how to undo it; it acts through
// the Cluster it is given. The membership-churn nemesis (Churn: nodes
// joining and members being removed) needs a wider interface, Membership,
// a Cluster that can also Join and Remove nodes, and asserts to it in
// Inject. Its changes are not undone: the cluster keeps its new shape.
package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
)

// Cluster is what a nemesis acts on. Node IDs name the nodes.
type Cluster interface {
	// Nodes returns the IDs of the cluster's nodes.
	Nodes() []string
	// Partition cuts the network into groups: two nodes talk only if
	// some group holds both. Groups may overlap. It replaces the
	// previous partition.
	Partition(ctx context.Context, groups [][]string) error
	// HealNetwork lifts every partition.
	HealNetwork(ctx context.Context) error
	// Kill kills a node's process with SIGKILL.
	Kill(ctx context.Context, node string) error
	// Restart starts a killed node again, with its data.
	Restart(ctx context.Context, node string) error
	// Pause stops a node's process with SIGSTOP.
	Pause(ctx context.Context, node string) error
	// Resume continues a paused node with SIGCONT.
	Resume(ctx context.Context, node string) error
	// LeaderOf returns the node that leads the shard of key, and the
	// shard's ID.
	LeaderOf(ctx context.Context, key string) (node string, shard uint32, err error)
}

// Fault is an injected fault, in place until Heal.
type Fault struct {
	// Kind is "partition", "kill", "pause", or for Churn "join" or
	// "remove".
	Kind string
	// Desc says what was done, e.g. "isolate n2 (leader of shard 5)".
	Desc string
	// Nodes are the nodes acted on (isolated, killed, paused, the bridge
	// node, the node that joined or the member removed).
	Nodes []string

	heal func(ctx context.Context) error
}

// Heal undoes the fault.
func (f *Fault) Heal(ctx context.Context) error { return f.heal(ctx) }

// A Nemesis injects one kind of fault.
type Nemesis interface {
	// Name is the nemesis's name, as given to ByName.
	Name() string
	// Inject starts a fault, choosing its targets with rng, and returns
	// it. On error nothing is left broken.
	Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error)
}

// Names returns the names ByName knows, "mix" last.
func Names() []string {
	return []string{"partition-halves", "isolate-node", "isolate-leader", "bridge", "kill-minority", "pause-minority", "pause-leader", "churn", "mix"}
}

// Options configure the nemeses ByName makes.
type Options struct {
	// Keys are the keys whose shards' leaders the leader nemeses target
	// (one chosen at random at each fault).
	Keys []string
	// MinLive and MaxHosts bound the churn nemesis (see Churn); MaxHosts
	// is required by "churn" and "mix".
	MinLive  int
	MaxHosts int
}

// ByName returns the nemesis called name.
func ByName(name string, opts Options) (Nemesis, error) {
	keys := opts.Keys
	switch name {
	case "partition-halves":
		return Halves{}, nil
	case "isolate-node":
		return IsolateNode{}, nil
	case "isolate-leader":
		return IsolateLeader{Keys: keys}, nil
	case "bridge":
		return Bridge{}, nil
	case "kill-minority":
		return KillMinority{}, nil
	case "pause-minority":
		return PauseMinority{}, nil
	case "pause-leader":
		return PauseLeader{Keys: keys}, nil
	case "churn":
		churn, err := churnOf(opts)
		if err != nil {
			return nil, err
		}
		return churn, nil
	case "mix":
		churn, err := churnOf(opts)
		if err != nil {
			return nil, err
		}
		return Mix{Choices: []Nemesis{Halves{}, IsolateNode{}, IsolateLeader{Keys: keys}, Bridge{},
			KillMinority{}, PauseMinority{}, PauseLeader{Keys: keys}, churn}}, nil
	}
	return nil, fmt.Errorf("nemesis: unknown nemesis %q (known: %s)", name, strings.Join(Names(), ", "))
}

// shuffled returns the nodes in a random order.
func shuffled(c Cluster, rng *rand.Rand) []string {
	nodes := slices.Clone(c.Nodes())
	rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	return nodes
}

// minority returns a random non-empty minority of the nodes: 1 to
// (n-1)/2 of them, at least 1.
func minority(c Cluster, rng *rand.Rand) []string {
	nodes := shuffled(c, rng)
	most := max(1, (len(nodes)-1)/2)
	picked := nodes[:1+rng.IntN(most)]
	sort.Strings(picked)
	return picked
}

// without returns nodes minus drop.
func without(nodes []string, drop ...string) []string {
	var out []string
	for _, n := range nodes {
		if !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// partition injects groups as a partition fault.
func partition(ctx context.Context, c Cluster, groups [][]string, desc string, nodes []string) (*Fault, error) {
	if err := c.Partition(ctx, groups); err != nil {
		return nil, joinHeal(ctx, err, c.HealNetwork)
	}
	return &Fault{Kind: "partition", Desc: desc, Nodes: nodes, heal: c.HealNetwork}, nil
}

// joinHeal undoes a half-made fault after err.
func joinHeal(ctx context.Context, err error, heal func(context.Context) error) error {
	if herr := heal(context.WithoutCancel(ctx)); herr != nil {
		return fmt.Errorf("%w (and healing: %v)", err, herr)
	}
	return err
}

// Halves cuts the cluster into two random halves, the smaller one a
// minority.
type Halves struct{}

// Name implements Nemesis.
func (Halves) Name() string { return "partition-halves" }

// Inject implements Nemesis.
func (Halves) Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error) {
	nodes := shuffled(c, rng)
	small, big := sorted(nodes[:len(nodes)/2]), sorted(nodes[len(nodes)/2:])
	return partition(ctx, c, [][]string{small, big}, fmt.Sprintf("halves %v | %v", small, big), small)
}

// IsolateNode cuts one random node off from all the others.
type IsolateNode struct{}

// Name implements Nemesis.
func (IsolateNode) Name() string { return "isolate-node" }

// Inject implements Nemesis.
func (IsolateNode) Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error) {
	n := shuffled(c, rng)[0]
	return partition(ctx, c, [][]string{{n}, without(c.Nodes(), n)}, "isolate "+n, []string{n})
}

// IsolateLeader cuts off the leader of the shard of one of Keys.
type IsolateLeader struct {
	Keys []string
}

// Name implements Nemesis.
func (IsolateLeader) Name() string { return "isolate-leader" }

// Inject implements Nemesis.
func (n IsolateLeader) Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error) {
	leader, desc, err := leaderOf(ctx, c, n.Keys, rng)
	if err != nil {
		return nil, err
	}
	return partition(ctx, c, [][]string{{leader}, without(c.Nodes(), leader)}, "isolate "+desc, []string{leader})
}

// leaderOf picks one of keys and returns the leader of its shard, and a
// description of it.
func leaderOf(ctx context.Context, c Cluster, keys []string, rng *rand.Rand) (string, string, error) {
	if len(keys) == 0 {
		return "", "", fmt.Errorf("nemesis: no keys to find a leader of")
	}
	key := keys[rng.IntN(len(keys))]
	leader, sh, err := c.LeaderOf(ctx, key)
	if err != nil {
		return "", "", fmt.Errorf("nemesis: leader of key %q: %w", key, err)
	}
	return leader, fmt.Sprintf("%s (leader of shard %d, key %s)", leader, sh, key), nil
}

// Bridge cuts the cluster into two halves that share one node: the bridge
// talks to everyone, the two sides only to it and themselves.
type Bridge struct{}

// Name implements Nemesis.
func (Bridge) Name() string { return "bridge" }

// Inject implements Nemesis.
func (Bridge) Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error) {
	nodes := shuffled(c, rng)
	if len(nodes) < 3 {
		return nil, fmt.Errorf("nemesis: a bridge needs 3 nodes, have %d", len(nodes))
	}
	mid := len(nodes) / 2
	bridge := nodes[mid]
	a, b := sorted(nodes[:mid+1]), sorted(nodes[mid:])
	return partition(ctx, c, [][]string{a, b}, fmt.Sprintf("bridge %s: %v | %v", bridge, a, b), []string{bridge})
}

// KillMinority kills a random minority of the nodes with SIGKILL, and
// restarts them with their data on heal.
type KillMinority struct{}

// Name implements Nemesis.
func (KillMinority) Name() string { return "kill-minority" }

// Inject implements Nemesis.
func (KillMinority) Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error) {
	victims := minority(c, rng)
	heal := func(ctx context.Context) error {
		var errs []error
		for _, v := range victims {
			if err := c.Restart(ctx, v); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for _, v := range victims {
		if err := c.Kill(ctx, v); err != nil {
			return nil, joinHeal(ctx, err, heal)
		}
	}
	return &Fault{Kind: "kill", Desc: fmt.Sprintf("kill -9 %v", victims), Nodes: victims, heal: heal}, nil
}

// PauseMinority stops a random minority of the nodes with SIGSTOP, and
// continues them with SIGCONT on heal.
type PauseMinority struct{}

// Name implements Nemesis.
func (PauseMinority) Name() string { return "pause-minority" }

// Inject implements Nemesis.
func (PauseMinority) Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error) {
	victims := minority(c, rng)
	return pause(ctx, c, victims, fmt.Sprintf("pause %v", victims))
}

// PauseLeader stops the leader of the shard of one of Keys with SIGSTOP.
type PauseLeader struct {
	Keys []string
}

// Name implements Nemesis.
func (PauseLeader) Name() string { return "pause-leader" }

// Inject implements Nemesis.
func (n PauseLeader) Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error) {
	leader, desc, err := leaderOf(ctx, c, n.Keys, rng)
	if err != nil {
		return nil, err
	}
	return pause(ctx, c, []string{leader}, "pause "+desc)
}

func pause(ctx context.Context, c Cluster, victims []string, desc string) (*Fault, error) {
	heal := func(ctx context.Context) error {
		var errs []error
		for _, v := range victims {
			if err := c.Resume(ctx, v); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for _, v := range victims {
		if err := c.Pause(ctx, v); err != nil {
			return nil, joinHeal(ctx, err, heal)
		}
	}
	return &Fault{Kind: "pause", Desc: desc, Nodes: victims, heal: heal}, nil
}

// Mix injects, each time, a fault of one of Choices picked at random.
type Mix struct {
	Choices []Nemesis
}

// Name implements Nemesis.
func (Mix) Name() string { return "mix" }

// Inject implements Nemesis.
func (m Mix) Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error) {
	n := m.Choices[rng.IntN(len(m.Choices))]
	f, err := n.Inject(ctx, c, rng)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name(), err)
	}
	f.Desc = n.Name() + ": " + f.Desc
	return f, nil
}

// Sequence injects the faults of Steps in order, round and round. It makes
// scenarios that must happen in a known order, such as the negative
// control's partition followed by a pause.
type Sequence struct {
	Steps []Nemesis
	next  int
}

// Name implements Nemesis.
func (s *Sequence) Name() string {
	names := make([]string, len(s.Steps))
	for i, n := range s.Steps {
		names[i] = n.Name()
	}
	return strings.Join(names, "+")
}

// Inject implements Nemesis. Not safe for concurrent use (Run calls it
// from one goroutine).
func (s *Sequence) Inject(ctx context.Context, c Cluster, rng *rand.Rand) (*Fault, error) {
	n := s.Steps[s.next%len(s.Steps)]
	s.next++
	f, err := n.Inject(ctx, c, rng)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name(), err)
	}
	f.Desc = n.Name() + ": " + f.Desc
	return f, nil
}
