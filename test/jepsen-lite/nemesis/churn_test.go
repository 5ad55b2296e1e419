package nemesis

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

func members(replicas, hosts int, list ...Member) Members {
	return Members{Replicas: replicas, Hosts: hosts, List: list}
}

func up(id, state string) Member   { return Member{ID: id, State: state, Up: true} }
func down(id, state string) Member { return Member{ID: id, State: state} }

func TestChurnPlan(t *testing.T) {
	five := []Member{up("n1", "active"), up("n2", "active"), up("n3", "active"), up("n4", "active"), up("n5", "joining")}
	tests := []struct {
		name     string
		churn    Churn
		m        Members
		join     bool     // a join is possible
		removing []string // the members a removal may pick; nil: none
	}{
		{"room both ways", Churn{MaxHosts: 7}, members(3, 5, five...), true, []string{"n1", "n2", "n3", "n4", "n5"}},
		{"at the cap", Churn{MaxHosts: 5}, members(3, 5, five...), false, []string{"n1", "n2", "n3", "n4", "n5"}},
		{"at the floor: replication factor + 1", Churn{MaxHosts: 7}, members(3, 4, five[:4]...), true, nil},
		{"MinLive above the floor", Churn{MinLive: 5, MaxHosts: 7}, members(3, 5, five...), true, nil},
		{"MinLive below the floor counts for nothing", Churn{MinLive: 2, MaxHosts: 4}, members(3, 4, five[:4]...), false, nil},
		{"no joins without MaxHosts", Churn{}, members(3, 5, five...), false, []string{"n1", "n2", "n3", "n4", "n5"}},
		{"only live members count and go", Churn{MaxHosts: 7}, members(3, 6,
			up("n1", "active"), up("n2", "active"), up("n3", "active"), up("n4", "active"),
			up("n5", "dead"), up("n6", "draining")), true, nil},
		{"a member whose process is down is not live", Churn{MaxHosts: 9}, members(3, 8,
			up("n1", "active"), up("n2", "active"), down("n3", "active"), up("n4", "active"),
			up("n5", "active"), up("n6", "draining"), down("n7", "dead"), up("n8", "joining")), true, []string{"n1", "n2", "n4", "n5", "n8"}},
		{"hosts count removed nodes not yet stopped", Churn{MaxHosts: 7}, members(3, 7,
			up("n1", "active"), up("n2", "active"), up("n3", "active"), up("n4", "active")), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sawJoin, sawRemove := false, map[string]bool{}
			for seed := range uint64(64) {
				step, err := tt.churn.plan(tt.m, rand.New(rand.NewPCG(seed, 1)))
				switch {
				case !tt.join && tt.removing == nil:
					if err == nil {
						t.Fatalf("seed %d: plan = %+v; want an error (no room)", seed, step)
					}
					if !strings.Contains(err.Error(), "no room") {
						t.Errorf("error %q does not say there is no room", err)
					}
					return
				case err != nil:
					t.Fatalf("seed %d: plan: %v", seed, err)
				case step.join:
					if !tt.join {
						t.Fatalf("seed %d: joined past the cap (%d hosts, MaxHosts %d)", seed, tt.m.Hosts, tt.churn.MaxHosts)
					}
					sawJoin = true
				default:
					if !slices.Contains(tt.removing, step.remove) {
						t.Fatalf("seed %d: removes %q; want one of %v", seed, step.remove, tt.removing)
					}
					sawRemove[step.remove] = true
				}
			}
			if sawJoin != tt.join {
				t.Errorf("joined: %v; want %v", sawJoin, tt.join)
			}
			if len(sawRemove) != len(tt.removing) {
				t.Errorf("removed %v over 64 seeds; want each of %v", sawRemove, tt.removing)
			}
		})
	}
}

// TestChurnWalk runs the churn nemesis against a fake cluster whose
// members settle, die and come back at random in between: the bounds hold
// at every step, only live members are removed, and both joins and
// removals happen.
func TestChurnWalk(t *testing.T) {
	ch := Churn{MaxHosts: 7}
	const floor = 4 // replication factor 3, + 1
	ctx := context.Background()
	joins, removals, refusals := 0, 0, 0
	for seed := range uint64(40) {
		c := newFake(5)
		rng := rand.New(rand.NewPCG(seed, 2))
		for step := range 60 {
			churnAround(c, rng)
			before, _ := c.Members(ctx)
			f, err := ch.Inject(ctx, c, rng)
			if err != nil {
				// Only when neither change fits.
				if len(before.Live())-1 >= floor || before.Hosts < ch.MaxHosts {
					t.Fatalf("seed %d step %d: %v with %d live, %d hosts", seed, step, err, len(before.Live()), before.Hosts)
				}
				refusals++
				continue
			}
			after, _ := c.Members(ctx)
			switch f.Kind {
			case "join":
				joins++
				if after.Hosts > ch.MaxHosts {
					t.Fatalf("seed %d step %d: %s: %d hosts; cap %d", seed, step, f.Desc, after.Hosts, ch.MaxHosts)
				}
			case "remove":
				removals++
				victim := f.Nodes[0]
				if !slices.Contains(before.Live(), victim) {
					t.Fatalf("seed %d step %d: removed %s, not a live member of %+v", seed, step, victim, before.List)
				}
				if n := len(after.Live()); n < floor {
					t.Fatalf("seed %d step %d: %s left %d live members; floor %d", seed, step, f.Desc, n, floor)
				}
			default:
				t.Fatalf("seed %d step %d: kind %q", seed, step, f.Kind)
			}
		}
	}
	t.Logf("%d joins, %d removals, %d refusals", joins, removals, refusals)
	if joins == 0 || removals == 0 {
		t.Errorf("%d joins, %d removals: the walk did not exercise both", joins, removals)
	}
}

// churnAround changes the fake's membership the way a running cluster
// does between two faults: draining members leave (and the harness stops
// them), joining ones turn active, a member dies, a dead one comes back.
func churnAround(c *fakeCluster, rng *rand.Rand) {
	for i := 0; i < len(c.members); i++ {
		m := &c.members[i]
		switch {
		case m.State == "draining" && rng.IntN(2) == 0:
			c.nodes = slices.DeleteFunc(c.nodes, func(n string) bool { return n == m.ID })
			c.members = slices.Delete(c.members, i, i+1)
			i--
		case m.State == "joining" && rng.IntN(2) == 0:
			m.State = "active"
		case m.State == "active" && rng.IntN(10) == 0:
			m.State, m.Up = "dead", false
		case m.State == "dead" && rng.IntN(3) == 0:
			m.State, m.Up = "joining", true
		}
	}
}

// plainCluster hides fakeCluster's Membership methods.
type plainCluster struct{ Cluster }

func TestChurnNeedsMembership(t *testing.T) {
	_, err := Churn{MaxHosts: 9}.Inject(context.Background(), plainCluster{newFake(5)}, rand.New(rand.NewPCG(1, 1)))
	if err == nil || !strings.Contains(err.Error(), "membership") {
		t.Errorf("Inject on a fixed cluster = %v; want an error about membership", err)
	}
}

// TestChurnTimeline runs the churn nemesis on the schedule: every change
// is in the timeline, as a start and a stop with its kind and node, and
// the fake's membership changed accordingly.
func TestChurnTimeline(t *testing.T) {
	c := newFake(5)
	tl := history.NewTimeline(history.NewClock(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	s := Schedule{Quiet: Span{5 * time.Millisecond, 10 * time.Millisecond}, Hold: Span{time.Millisecond, 2 * time.Millisecond}}
	Run(ctx, Churn{MaxHosts: 7}, c, s, rand.New(rand.NewPCG(5, 6)), tl, slog.New(slog.NewTextHandler(io.Discard, nil)))

	var starts []history.Event
	stops := map[int]bool{}
	for _, e := range tl.Events() {
		switch e.Type {
		case history.FaultStart:
			starts = append(starts, e)
		case history.FaultStop:
			stops[e.Fault] = true
		}
	}
	if len(starts) < 3 {
		t.Fatalf("%d faults in 300 ms; want several", len(starts))
	}
	var calls []string
	for _, e := range starts {
		if e.Nemesis != "churn" || (e.Kind != "join" && e.Kind != "remove") || len(e.Nodes) != 1 || !strings.Contains(e.Desc, e.Nodes[0]) {
			t.Errorf("start event %+v: want nemesis churn, kind join or remove, and the node named", e)
		}
		if !stops[e.Fault] {
			t.Errorf("fault %d (%s) has no stop", e.Fault, e.Desc)
		}
		calls = append(calls, e.Kind+" "+e.Nodes[0])
	}
	if !slices.Equal(calls, c.calls) {
		t.Errorf("timeline says %v; the cluster saw %v", calls, c.calls)
	}
}
