package nemesis

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

// fakeCluster records what a nemesis does to it and keeps the state a
// heal must undo. It implements Membership: nodes are its hosts, members
// the cluster's member list (replication factor 3).
type fakeCluster struct {
	nodes   []string
	leader  string
	members []Member
	made    int

	mu     sync.Mutex
	calls  []string
	groups [][]string // nil: healed
	dead   map[string]bool
	paused map[string]bool
}

func newFake(n int) *fakeCluster {
	c := &fakeCluster{leader: "n2", dead: map[string]bool{}, paused: map[string]bool{}}
	for range n {
		c.addNode("active")
	}
	return c
}

func (c *fakeCluster) addNode(state string) string {
	c.made++
	id := fmt.Sprintf("n%d", c.made)
	c.nodes = append(c.nodes, id)
	c.members = append(c.members, Member{ID: id, State: state, Up: true})
	return id
}

func (c *fakeCluster) member(id string) *Member {
	for i := range c.members {
		if c.members[i].ID == id {
			return &c.members[i]
		}
	}
	return nil
}

func (c *fakeCluster) Members(context.Context) (Members, error) {
	return Members{Replicas: 3, Hosts: len(c.nodes), List: slices.Clone(c.members)}, nil
}

func (c *fakeCluster) Join(context.Context) (string, error) {
	id := c.addNode("joining")
	c.record("join " + id)
	return id, nil
}

func (c *fakeCluster) Remove(_ context.Context, id string) error {
	c.record("remove " + id)
	m := c.member(id)
	if m == nil {
		return fmt.Errorf("no member %s", id)
	}
	m.State, m.Up = "draining", false
	return nil
}

func (c *fakeCluster) record(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, s)
}

func (c *fakeCluster) Nodes() []string { return slices.Clone(c.nodes) }
func (c *fakeCluster) Partition(_ context.Context, g [][]string) error {
	c.record(fmt.Sprintf("partition %v", g))
	c.groups = g
	return nil
}
func (c *fakeCluster) HealNetwork(context.Context) error {
	c.record("heal")
	c.groups = nil
	return nil
}
func (c *fakeCluster) Kill(_ context.Context, n string) error {
	c.record("kill " + n)
	c.dead[n] = true
	return nil
}
func (c *fakeCluster) Restart(_ context.Context, n string) error {
	c.record("restart " + n)
	delete(c.dead, n)
	return nil
}
func (c *fakeCluster) Pause(_ context.Context, n string) error {
	c.record("pause " + n)
	c.paused[n] = true
	return nil
}
func (c *fakeCluster) Resume(_ context.Context, n string) error {
	c.record("resume " + n)
	delete(c.paused, n)
	return nil
}
func (c *fakeCluster) LeaderOf(_ context.Context, key string) (string, uint32, error) {
	return c.leader, 5, nil
}

func (c *fakeCluster) healthy() bool {
	return c.groups == nil && len(c.dead) == 0 && len(c.paused) == 0
}

// together reports whether a and b share a group of the partition.
func (c *fakeCluster) together(a, b string) bool {
	for _, g := range c.groups {
		if slices.Contains(g, a) && slices.Contains(g, b) {
			return true
		}
	}
	return false
}

func TestNemeses(t *testing.T) {
	keys := []string{"k"}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(20) {
				c := newFake(5)
				n, err := ByName(name, Options{Keys: keys, MaxHosts: 7})
				if err != nil {
					t.Fatal(err)
				}
				before := len(c.calls)
				f, err := n.Inject(context.Background(), c, rand.New(rand.NewPCG(seed, 0)))
				if err != nil {
					t.Fatalf("seed %d: Inject: %v", seed, err)
				}
				if f.Kind == "join" || f.Kind == "remove" {
					// A membership change is not undone: it must have
					// changed the membership, and Heal must do nothing.
					if len(c.calls) != before+1 || !strings.HasPrefix(c.calls[before], f.Kind+" "+f.Nodes[0]) {
						t.Fatalf("seed %d: %s: calls %v", seed, f.Desc, c.calls[before:])
					}
					if err := f.Heal(context.Background()); err != nil || len(c.calls) != before+1 {
						t.Fatalf("seed %d: %s: Heal = %v, calls %v", seed, f.Desc, err, c.calls[before:])
					}
					continue
				}
				if c.healthy() {
					t.Fatalf("seed %d: %s (%s) broke nothing", seed, name, f.Desc)
				}
				checkFault(t, c, f)
				if err := f.Heal(context.Background()); err != nil {
					t.Fatalf("seed %d: Heal: %v", seed, err)
				}
				if !c.healthy() {
					t.Errorf("seed %d: %s not healed: groups %v, dead %v, paused %v", seed, f.Desc, c.groups, c.dead, c.paused)
				}
			}
		})
	}
	if _, err := ByName("nope", Options{Keys: keys}); err == nil {
		t.Error(`ByName("nope") succeeded`)
	}
	for _, name := range []string{"churn", "mix"} {
		if _, err := ByName(name, Options{Keys: keys}); err == nil {
			t.Errorf("ByName(%q) without MaxHosts succeeded", name)
		}
	}
}

// checkFault checks the shape of an injected fault.
func checkFault(t *testing.T, c *fakeCluster, f *Fault) {
	t.Helper()
	name := strings.SplitN(f.Desc, ":", 2)[0]
	switch f.Kind {
	case "partition":
		if len(f.Nodes) == 0 {
			t.Errorf("%s: no nodes named", f.Desc)
		}
		// A majority must still be able to talk among themselves, except
		// for a bridge (where each side plus the bridge is a majority).
		switch {
		case strings.HasPrefix(f.Desc, "bridge") || strings.Contains(f.Desc, "bridge "):
			b := f.Nodes[0]
			for _, n := range c.nodes {
				if !c.together(b, n) {
					t.Errorf("%s: bridge %s cut from %s", f.Desc, b, n)
				}
			}
		case strings.Contains(f.Desc, "isolate"):
			iso := f.Nodes[0]
			for _, n := range c.nodes {
				if n != iso && c.together(iso, n) {
					t.Errorf("%s: isolated %s still reaches %s", f.Desc, iso, n)
				}
			}
			if strings.Contains(f.Desc, "leader") && iso != c.leader {
				t.Errorf("%s: isolated %s, not the leader %s", f.Desc, iso, c.leader)
			}
		}
	case "kill", "pause":
		if len(f.Nodes) == 0 || len(f.Nodes) > (len(c.nodes)-1)/2 {
			t.Errorf("%s: %d nodes acted on; want a minority of %d", f.Desc, len(f.Nodes), len(c.nodes))
		}
		if strings.Contains(f.Desc, "leader") && !reflect.DeepEqual(f.Nodes, []string{c.leader}) {
			t.Errorf("%s: paused %v; want the leader %s", f.Desc, f.Nodes, c.leader)
		}
	default:
		t.Errorf("%s: unknown kind %q (%s)", name, f.Kind, f.Desc)
	}
}

func TestSequence(t *testing.T) {
	c := newFake(3)
	s := &Sequence{Steps: []Nemesis{IsolateLeader{Keys: []string{"k"}}, PauseLeader{Keys: []string{"k"}}}}
	if got, want := s.Name(), "isolate-leader+pause-leader"; got != want {
		t.Errorf("Name() = %q; want %q", got, want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var kinds []string
	for range 4 {
		f, err := s.Inject(context.Background(), c, rng)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, f.Kind)
		_ = f.Heal(context.Background())
	}
	if want := []string{"partition", "pause", "partition", "pause"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds = %v; want %v", kinds, want)
	}
}

// TestRunHealsBeforeReturning cuts a run short in the middle of a fault:
// Run must heal it, and record the start and the stop.
func TestRunHealsBeforeReturning(t *testing.T) {
	c := newFake(5)
	tl := history.NewTimeline(history.NewClock(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	s := Schedule{Quiet: Span{10 * time.Millisecond, 20 * time.Millisecond}, Hold: Span{time.Hour, time.Hour}}
	Run(ctx, KillMinority{}, c, s, rand.New(rand.NewPCG(3, 4)), tl, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !c.healthy() {
		t.Errorf("cluster not healed after Run: dead %v", c.dead)
	}
	var types []string
	for _, e := range tl.Events() {
		types = append(types, e.Type)
	}
	if want := []string{history.FaultStart, history.FaultStop}; !slices.Equal(types, want) {
		t.Errorf("timeline = %v; want %v", types, want)
	}
}

func TestMinority(t *testing.T) {
	for n := 1; n <= 7; n++ {
		c := newFake(n)
		for seed := range uint64(50) {
			m := minority(c, rand.New(rand.NewPCG(seed, 0)))
			if len(m) < 1 || len(m) > max(1, (n-1)/2) {
				t.Fatalf("minority of %d nodes = %v", n, m)
			}
		}
	}
}
