package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/ring"
)

// This file tests the membership and move commands (join, drain, dead,
// alive, start, finish) through StateMachine.Apply, one command at a time.
// plan_test.go tests the planner and runs whole rebalances.

// testVNodes is the vnode count of the clusters these tests build; every
// expectation computed with ring.Place uses the state's own Config.
const testVNodes = 128

// nodeIDs returns "n1" to "n<n>".
func nodeIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%d", i+1)
	}
	return ids
}

// addrOf is the address every test gives node id.
func addrOf(id string) string { return id + ".test:7000" }

// joinCmd is JoinCommand at the node's usual test address.
func joinCmd(id string) []byte { return JoinCommand(id, addrOf(id)) }

// placedState returns an uninitialized-epoch State of nodes n1..n<nodes>,
// all active, whose shards are placed by ring.Place as a new cluster's are.
func placedState(t *testing.T, nodes int, shards uint32, replicas int) State {
	t.Helper()
	ids := nodeIDs(nodes)
	p, err := ring.Place(ring.Placement{}, ids, int(shards), ring.Config{Replicas: replicas, VirtualNodes: testVNodes})
	if err != nil {
		t.Fatalf("ring.Place(%d nodes, %d shards, R=%d) = %v", nodes, shards, replicas, err)
	}
	st := State{ShardCount: shards, Replicas: replicas, VirtualNodes: testVNodes, Shards: p.Shards}
	for _, id := range ids {
		st.Members = append(st.Members, Member{ID: id, Addr: addrOf(id), State: MemberActive})
	}
	return st
}

// newCluster returns a state machine initialized with placedState.
func newCluster(t *testing.T, nodes int, shards uint32, replicas int) *StateMachine {
	t.Helper()
	sm := NewStateMachine()
	mustInit(t, sm, placedState(t, nodes, shards, replicas))
	return sm
}

// jsonOf encodes st; two states with equal encodings are the same metadata.
func jsonOf(t *testing.T, st *State) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("encoding state: %v", err)
	}
	return string(b)
}

// mustApply applies cmd, which must succeed and change the state: the epoch
// grows by one, Changed is closed, and the state published before is left
// as it was (published states are immutable).
func mustApply(t *testing.T, sm *StateMachine, cmd []byte) *State {
	t.Helper()
	before := sm.Current()
	enc := jsonOf(t, before)
	changed := sm.Changed()
	if err := applyErr(t, sm, before.Epoch+1, cmd); err != nil {
		t.Fatalf("Apply(%s) = %v; want nil", cmd, err)
	}
	after := sm.Current()
	if after == before || after.Epoch != before.Epoch+1 {
		t.Fatalf("Apply(%s): epoch %d -> %d; want a new state at epoch %d", cmd, before.Epoch, after.Epoch, before.Epoch+1)
	}
	if !isClosed(changed) {
		t.Errorf("Apply(%s) changed the state but did not close the Changed() channel", cmd)
	}
	if got := jsonOf(t, before); got != enc {
		t.Fatalf("Apply(%s) modified the previously published state:\n got %s\nwant %s", cmd, got, enc)
	}
	if err := after.Validate(); err != nil {
		t.Fatalf("after Apply(%s): Validate() = %v", cmd, err)
	}
	return after
}

// mustNoop applies cmd, which must succeed without changing anything.
func mustNoop(t *testing.T, sm *StateMachine, cmd []byte) {
	t.Helper()
	before := sm.Current()
	enc := jsonOf(t, before)
	changed := sm.Changed()
	if err := applyErr(t, sm, before.Epoch+1, cmd); err != nil {
		t.Fatalf("Apply(%s) = %v; want nil (a no-op)", cmd, err)
	}
	if after := sm.Current(); after != before || jsonOf(t, after) != enc {
		t.Fatalf("no-op Apply(%s) changed the state: epoch %d -> %d", cmd, before.Epoch, after.Epoch)
	}
	if isClosed(changed) {
		t.Errorf("no-op Apply(%s) closed the Changed() channel", cmd)
	}
}

// mustRefuse applies cmd, which must fail with want (errors.Is), with a
// message containing every string of msg, and change nothing.
func mustRefuse(t *testing.T, sm *StateMachine, cmd []byte, want error, msg ...string) error {
	t.Helper()
	before := sm.Current()
	enc := jsonOf(t, before)
	changed := sm.Changed()
	err := applyErr(t, sm, before.Epoch+1, cmd)
	if !errors.Is(err, want) {
		t.Fatalf("Apply(%s) = %v; want %v", cmd, err, want)
	}
	for _, s := range msg {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Apply(%s) = %q; want the message to contain %q", cmd, err, s)
		}
	}
	if after := sm.Current(); after != before || jsonOf(t, after) != enc {
		t.Errorf("refused Apply(%s) changed the state: epoch %d -> %d", cmd, before.Epoch, after.Epoch)
	}
	if isClosed(changed) {
		t.Errorf("refused Apply(%s) closed the Changed() channel", cmd)
	}
	return err
}

// memberState returns id's state, or "" if it is not a member.
func memberState(st *State, id string) MemberState {
	m, ok := st.Member(id)
	if !ok {
		return ""
	}
	return m.State
}

// placeTarget is what retarget must compute: ring.Place from the previous
// target over the placeable members, with the state's Config.
func placeTarget(t *testing.T, prev *State, members []string) [][]string {
	t.Helper()
	p, err := ring.Place(ring.Placement{Shards: prev.Target}, members, int(prev.ShardCount),
		ring.Config{Replicas: prev.Replicas, VirtualNodes: prev.VirtualNodes})
	if err != nil {
		t.Fatalf("ring.Place(%q) = %v", members, err)
	}
	return p.Shards
}

// without returns ids without x.
func without(ids []string, x string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == x })
}

// holders returns the nodes that hold a replica in sets, sorted.
func holders(sets [][]string) []string {
	var out []string
	for _, set := range sets {
		for _, id := range set {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// countOn counts the replicas node holds in sets.
func countOn(sets [][]string, node string) int {
	n := 0
	for _, set := range sets {
		if slices.Contains(set, node) {
			n++
		}
	}
	return n
}

// checkUntouched reports an error for each part of the placement a
// membership command must leave alone: it changes only members and Target.
func checkUntouched(t *testing.T, before, after *State) {
	t.Helper()
	if !reflect.DeepEqual(after.Shards, before.Shards) {
		t.Errorf("Shards changed from %q to %q; a membership command changes only the target", before.Shards, after.Shards)
	}
	if !slices.Equal(after.Changes, before.Changes) {
		t.Errorf("Changes changed from %v to %v", before.Changes, after.Changes)
	}
	if !slices.Equal(after.Moves, before.Moves) {
		t.Errorf("Moves changed from %v to %v", before.Moves, after.Moves)
	}
}

func TestCommandsNeedInitializedCluster(t *testing.T) {
	tests := []struct {
		name string
		cmd  []byte
	}{
		{"join", joinCmd("n1")},
		{"drain", DrainCommand("n1")},
		{"dead", DeadCommand("n1")},
		{"alive", AliveCommand("n1")},
		{"start", StartCommand([]Move{{Shard: 0, To: "n1"}})},
		{"finish", FinishCommand(Move{Shard: 0, To: "n1", Outcome: MoveDone})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustRefuse(t, NewStateMachine(), tt.cmd, ErrNotInitialized)
		})
	}
}

func TestJoin(t *testing.T) {
	tests := []struct {
		name     string
		nodes    int
		shards   uint32
		replicas int
		join     string
	}{
		{"3 nodes R=3 join n4", 3, 64, 3, "n4"},
		{"4 nodes R=3 join n5", 4, 64, 3, "n5"},
		{"9 nodes R=3 join n10", 9, 64, 3, "n10"},
		{"5 nodes R=2 join n6", 5, 128, 2, "n6"},
		{"3 nodes R=1 join n4", 3, 16, 1, "n4"},
		{"1 node R=3 join n2", 1, 64, 3, "n2"},
		{"2 nodes R=3 join n3", 2, 64, 3, "n3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := newCluster(t, tt.nodes, tt.shards, tt.replicas)
			before := sm.Current()
			after := mustApply(t, sm, joinCmd(tt.join))

			m, ok := after.Member(tt.join)
			if !ok || m.Addr != addrOf(tt.join) || m.State != MemberJoining {
				t.Errorf("after join: Member(%q) = %+v, %v; want {%s %s joining}", tt.join, m, ok, tt.join, addrOf(tt.join))
			}
			if got, want := after.Members[:len(before.Members)], before.Members; !slices.Equal(got, want) {
				t.Errorf("join changed the other members: %+v; want %+v", got, want)
			}
			members := append(nodeIDs(tt.nodes), tt.join)
			slices.Sort(members)
			if got := after.Placeable(); !slices.Equal(got, members) {
				t.Errorf("Placeable() = %q; want %q", got, members)
			}
			checkUntouched(t, before, after)
			if want := placeTarget(t, before, members); !reflect.DeepEqual(after.Target, want) {
				t.Errorf("Target = %q\nwant ring.Place(previous target, %q) = %q", after.Target, members, want)
			}

			// Only the shards that must change do: the new node gains its
			// share, floor or ceil of shards·R'/N, and nothing else moves.
			rp := min(tt.replicas, len(members))
			grew := rp > min(tt.replicas, tt.nodes)
			moves := ring.Diff(ring.Placement{Shards: before.Target}, ring.Placement{Shards: after.Target})
			perShard := map[uint32]int{}
			for _, mv := range moves {
				perShard[mv.Shard]++
				if mv.To != tt.join {
					t.Errorf("target move %v does not go to the new node %s", mv, tt.join)
				}
				if grew != (mv.From == "") {
					t.Errorf("target move %v: want a source iff the replica count stays (%d -> %d)", mv, min(tt.replicas, tt.nodes), rp)
				}
			}
			for s, n := range perShard {
				if n > 1 {
					t.Errorf("shard %d changes %d replicas; a join changes at most one per shard", s, n)
				}
			}
			total := int(tt.shards) * rp
			lo, hi := total/len(members), (total+len(members)-1)/len(members)
			if got := countOn(after.Target, tt.join); got < lo || got > hi || got != len(moves) {
				t.Errorf("new node's target share = %d with %d target moves; want %d moves, in [%d, %d]", got, len(moves), got, lo, hi)
			}
			if after.FinishedSinceChange != 0 || after.BytesSinceChange != 0 {
				t.Errorf("after join: FinishedSinceChange, BytesSinceChange = %d, %d; want 0, 0", after.FinishedSinceChange, after.BytesSinceChange)
			}
			if after.Settled() {
				t.Error("after join: Settled() = true; want false (the new node has replicas to receive)")
			}
		})
	}
}

// removedCluster returns four active nodes n1..n4 (R=3, 64 shards) plus n5,
// which joined and was drained before it held anything, so it is removed.
func removedCluster(t *testing.T) *StateMachine {
	t.Helper()
	sm := newCluster(t, 4, 64, 3)
	mustApply(t, sm, joinCmd("n5"))
	st := mustApply(t, sm, DrainCommand("n5"))
	if !slices.Equal(st.Removed, []string{"n5"}) {
		t.Fatalf("after join n5, drain n5: Removed = %q; want [n5]", st.Removed)
	}
	return sm
}

func TestJoinRefusals(t *testing.T) {
	tests := []struct {
		name     string
		id, addr string
		want     error
		msg      []string
	}{
		{"member ID at another address", "n2", "elsewhere:7000", ErrExists, []string{"n2", addrOf("n2"), "elsewhere:7000"}},
		{"new ID at a member's address", "n9", addrOf("n3"), ErrExists, []string{addrOf("n3"), "n3"}},
		{"removed ID", "n5", addrOf("n5"), ErrRemoved, []string{"n5"}},
		{"removed ID at a new address", "n5", "fresh:7000", ErrRemoved, []string{"n5"}},
		{"empty ID", "", addrOf("n9"), ErrBadCommand, nil},
		{"empty address", "n9", "", ErrBadCommand, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := removedCluster(t)
			mustRefuse(t, sm, JoinCommand(tt.id, tt.addr), tt.want, tt.msg...)
		})
	}
}

func TestJoinAgainIsNoop(t *testing.T) {
	sm := newCluster(t, 4, 64, 3)
	mustApply(t, sm, joinCmd("n5"))
	mustApply(t, sm, DeadCommand("n2"))
	mustApply(t, sm, DrainCommand("n3"))
	for _, id := range []string{"n1", "n2", "n3", "n5"} { // active, dead, draining, joining
		t.Run(id, func(t *testing.T) {
			mustNoop(t, sm, joinCmd(id))
		})
	}
	// A removed node's address is free again, under a new ID.
	sm = removedCluster(t)
	st := mustApply(t, sm, JoinCommand("n6", addrOf("n5")))
	if got := memberState(st, "n6"); got != MemberJoining {
		t.Errorf("n6 at a removed node's address: state %q; want joining", got)
	}
}

func TestDrain(t *testing.T) {
	sm := newCluster(t, 4, 64, 3)
	before := sm.Current()
	after := mustApply(t, sm, DrainCommand("n2"))
	if got := memberState(after, "n2"); got != MemberDraining {
		t.Errorf("after drain n2: state %q; want draining", got)
	}
	checkUntouched(t, before, after)
	staying := []string{"n1", "n3", "n4"}
	if got := after.Placeable(); !slices.Equal(got, staying) {
		t.Errorf("Placeable() = %q; want %q", got, staying)
	}
	if want := placeTarget(t, before, staying); !reflect.DeepEqual(after.Target, want) {
		t.Errorf("Target = %q\nwant ring.Place(previous target, %q) = %q", after.Target, staying, want)
	}
	if n := countOn(after.Target, "n2"); n != 0 {
		t.Errorf("target still puts %d replicas on draining n2", n)
	}
	if n, want := countOn(after.Shards, "n2"), countOn(before.Shards, "n2"); n != want || n == 0 {
		t.Errorf("draining n2 holds %d replicas; want the %d it held (they leave by moves)", n, want)
	}
	mustNoop(t, sm, DrainCommand("n2"))
}

func TestDrainRefusals(t *testing.T) {
	tests := []struct {
		name     string
		nodes    int
		replicas int
		setup    [][]byte
		drain    string
		want     error
		msg      []string
	}{
		{"3 nodes R=3", 3, 3, nil, "n3", ErrTooFewNodes, []string{"n3", "2 nodes", "replication factor 3"}},
		{"1 node R=3", 1, 3, nil, "n1", ErrTooFewNodes, []string{"n1", "0 nodes", "replication factor 3"}},
		{"2 nodes R=3 cannot shrink", 2, 3, nil, "n1", ErrTooFewNodes, []string{"n1", "1 nodes", "replication factor 3"}},
		{"4 nodes R=3 one dead", 4, 3, [][]byte{DeadCommand("n4")}, "n1", ErrTooFewNodes, []string{"n1", "2 nodes", "replication factor 3"}},
		{"4 nodes R=3 one draining", 4, 3, [][]byte{DrainCommand("n4")}, "n2", ErrTooFewNodes, []string{"n2", "2 nodes", "replication factor 3"}},
		{"4 nodes R=2, two dead", 4, 2, [][]byte{DeadCommand("n1"), DeadCommand("n2")}, "n3", ErrTooFewNodes, []string{"n3", "1 nodes", "replication factor 2"}},
		{"unknown node", 4, 3, nil, "n9", ErrNotMember, []string{"n9"}},
		{"empty ID", 4, 3, nil, "", ErrNotMember, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := newCluster(t, tt.nodes, 64, tt.replicas)
			for _, cmd := range tt.setup {
				mustApply(t, sm, cmd)
			}
			mustRefuse(t, sm, DrainCommand(tt.drain), tt.want, tt.msg...)
		})
	}
}

// A node that holds nothing and takes part in no move leaves at once.
func TestDrainEmptyNodeLeavesAtOnce(t *testing.T) {
	sm := newCluster(t, 4, 64, 3)
	mustApply(t, sm, joinCmd("n5"))
	st := mustApply(t, sm, DrainCommand("n5"))
	if _, ok := st.Member("n5"); ok || !slices.Equal(st.Removed, []string{"n5"}) {
		t.Errorf("after drain of empty n5: member %v, Removed %q; want n5 removed", ok, st.Removed)
	}
	if n := countOn(st.Target, "n5"); n != 0 {
		t.Errorf("target puts %d replicas on removed n5", n)
	}
	// Draining it again is done already; other commands no longer know it.
	mustNoop(t, sm, DrainCommand("n5"))
	mustRefuse(t, sm, DeadCommand("n5"), ErrNotMember, "n5")
	mustRefuse(t, sm, AliveCommand("n5"), ErrNotMember, "n5")
}

// A draining node stays a member while a move involves it, even when it
// holds nothing, and leaves when that move ends.
func TestDrainWaitsForMoveInProgress(t *testing.T) {
	sm := newCluster(t, 4, 64, 3)
	mustApply(t, sm, joinCmd("n5"))
	mv := sm.Current().Plan(1, 10)
	if len(mv) != 1 || mv[0].To != "n5" {
		t.Fatalf("Plan(1) after join n5 = %v; want one move to n5", mv)
	}
	mustApply(t, sm, StartCommand(mv))
	st := mustApply(t, sm, DrainCommand("n5"))
	if got := memberState(st, "n5"); got != MemberDraining {
		t.Fatalf("drained n5 with a move to it in progress: state %q; want draining", got)
	}
	abort := mv[0]
	abort.Outcome, abort.Reason = MoveAborted, "destination draining"
	st = mustApply(t, sm, FinishCommand(abort))
	if _, ok := st.Member("n5"); ok || !slices.Contains(st.Removed, "n5") {
		t.Errorf("after its only move was aborted: n5 member %v, Removed %q; want n5 removed", ok, st.Removed)
	}
}

func TestDeadAndAlive(t *testing.T) {
	sm := newCluster(t, 5, 64, 3)
	before := sm.Current()
	after := mustApply(t, sm, DeadCommand("n3"))
	if got := memberState(after, "n3"); got != MemberDead {
		t.Errorf("after dead n3: state %q; want dead", got)
	}
	checkUntouched(t, before, after)
	live := []string{"n1", "n2", "n4", "n5"}
	if want := placeTarget(t, before, live); !reflect.DeepEqual(after.Target, want) {
		t.Errorf("Target = %q\nwant ring.Place(previous target, %q) = %q", after.Target, live, want)
	}
	if n := countOn(after.Target, "n3"); n != 0 {
		t.Errorf("target still puts %d replicas on dead n3", n)
	}
	mustNoop(t, sm, DeadCommand("n3"))
	mustNoop(t, sm, AliveCommand("n1")) // active: nothing to do
	mustRefuse(t, sm, DeadCommand("n9"), ErrNotMember, "n9")
	mustRefuse(t, sm, AliveCommand("n9"), ErrNotMember, "n9")

	// Four live nodes remain for R=3: one more may die, not two.
	mustApply(t, sm, DeadCommand("n4"))
	mustRefuse(t, sm, DeadCommand("n5"), ErrTooFewNodes, "n5", "2 nodes", "replication factor 3")

	before = sm.Current()
	after = mustApply(t, sm, AliveCommand("n3"))
	if got := memberState(after, "n3"); got != MemberJoining {
		t.Errorf("after alive n3: state %q; want joining", got)
	}
	checkUntouched(t, before, after)
	live = []string{"n1", "n2", "n3", "n5"}
	if want := placeTarget(t, before, live); !reflect.DeepEqual(after.Target, want) {
		t.Errorf("Target = %q\nwant ring.Place(previous target, %q) = %q", after.Target, live, want)
	}
	mustNoop(t, sm, AliveCommand("n3")) // joining: nothing to do
	if n := countOn(after.Target, "n3"); n == 0 {
		t.Error("target gives n3 nothing after it came back")
	}
}

func TestDeadRefusals(t *testing.T) {
	tests := []struct {
		name     string
		nodes    int
		replicas int
		setup    [][]byte
		dead     string
		msg      []string
	}{
		{"3 nodes R=3", 3, 3, nil, "n1", []string{"n1", "2 nodes", "replication factor 3"}},
		{"1 node R=3", 1, 3, nil, "n1", []string{"n1", "0 nodes", "replication factor 3"}},
		{"2 nodes R=3 cannot shrink", 2, 3, nil, "n2", []string{"n2", "1 nodes", "replication factor 3"}},
		{"4 nodes R=3 one draining", 4, 3, [][]byte{DrainCommand("n1")}, "n2", []string{"n2", "2 nodes", "replication factor 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := newCluster(t, tt.nodes, 64, tt.replicas)
			for _, cmd := range tt.setup {
				mustApply(t, sm, cmd)
			}
			mustRefuse(t, sm, DeadCommand(tt.dead), ErrTooFewNodes, tt.msg...)
		})
	}
}

// A draining node's replicas are leaving already: alive leaves it
// draining, and dead is accepted without making it placeable. A dead node
// may be drained, to remove it for good. (Which state a dead, draining node
// is in is not pinned here: see TestDrainOfDeadNodeKeepsItDead.)
func TestDeadAndAliveOfDrainingNode(t *testing.T) {
	sm := newCluster(t, 5, 64, 3)
	mustApply(t, sm, DrainCommand("n4"))
	mustNoop(t, sm, AliveCommand("n4"))
	if err := applyErr(t, sm, 0, DeadCommand("n4")); err != nil {
		t.Errorf("dead of draining n4 = %v; want nil", err)
	}
	if st := sm.Current(); memberState(st, "n4").Placeable() || countOn(st.Target, "n4") != 0 {
		t.Errorf("draining n4 is %q with %d target replicas; want not placeable, none", memberState(st, "n4"), countOn(st.Target, "n4"))
	}

	mustApply(t, sm, DeadCommand("n5"))
	st := mustApply(t, sm, DrainCommand("n5"))
	if got := memberState(st, "n5"); got.Placeable() || got == "" {
		t.Errorf("drain of dead n5: state %q; want a member that is not placeable", got)
	}
	runPending(t, sm, func(*State, bool) {})
	if st := sm.Current(); !slices.Contains(st.Removed, "n5") || !slices.Contains(st.Removed, "n4") {
		t.Errorf("after the drains settled: Removed = %q; want n4 and n5", st.Removed)
	}
}

// moveState is a small initialized cluster for move commands: R=2, shard 3
// has a single replica, and there is a member in every state.
func moveState() State {
	return State{
		ShardCount:   4,
		Replicas:     2,
		VirtualNodes: 8,
		Members: []Member{
			{ID: "n1", Addr: addrOf("n1"), State: MemberActive},
			{ID: "n2", Addr: addrOf("n2"), State: MemberActive},
			{ID: "n3", Addr: addrOf("n3"), State: MemberActive},
			{ID: "n4", Addr: addrOf("n4"), State: MemberJoining},
			{ID: "n5", Addr: addrOf("n5"), State: MemberDead},
			{ID: "n6", Addr: addrOf("n6"), State: MemberDraining},
		},
		Shards: [][]string{
			{"n1", "n2"},
			{"n2", "n6"},
			{"n3", "n5"},
			{"n1"},
		},
	}
}

func newMoveCluster(t *testing.T) *StateMachine {
	t.Helper()
	sm := NewStateMachine()
	mustInit(t, sm, moveState())
	return sm
}

func TestStart(t *testing.T) {
	tests := []struct {
		name  string
		moves []Move
		want  []Move // the state's Moves after the start
	}{
		{"replace", []Move{{Shard: 0, From: "n1", To: "n3", Started: 7}},
			[]Move{{Shard: 0, From: "n1", To: "n3", Started: 7}}},
		{"from dead node", []Move{{Shard: 2, From: "n5", To: "n1"}},
			[]Move{{Shard: 2, From: "n5", To: "n1"}}},
		{"from draining node", []Move{{Shard: 1, From: "n6", To: "n3"}},
			[]Move{{Shard: 1, From: "n6", To: "n3"}}},
		{"to joining node", []Move{{Shard: 0, From: "n2", To: "n4"}},
			[]Move{{Shard: 0, From: "n2", To: "n4"}}},
		{"add only", []Move{{Shard: 3, To: "n2"}},
			[]Move{{Shard: 3, To: "n2"}}},
		{"remove only", []Move{{Shard: 0, From: "n1"}},
			[]Move{{Shard: 0, From: "n1"}}},
		{"result fields are cleared", []Move{{Shard: 0, From: "n1", To: "n3", Started: 5, Finished: 9, Bytes: 3, Outcome: MoveDone, Reason: "x"}},
			[]Move{{Shard: 0, From: "n1", To: "n3", Started: 5}}},
		{"several, kept by shard", []Move{{Shard: 3, To: "n2", Started: 1}, {Shard: 0, From: "n1", To: "n3", Started: 2}, {Shard: 2, From: "n5", To: "n4", Started: 3}},
			[]Move{{Shard: 0, From: "n1", To: "n3", Started: 2}, {Shard: 2, From: "n5", To: "n4", Started: 3}, {Shard: 3, To: "n2", Started: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := newMoveCluster(t)
			before := sm.Current()
			after := mustApply(t, sm, StartCommand(tt.moves))
			if !slices.Equal(after.Moves, tt.want) {
				t.Errorf("Moves = %#v; want %#v", after.Moves, tt.want)
			}
			if !reflect.DeepEqual(after.Shards, before.Shards) || !slices.Equal(after.Changes, before.Changes) {
				t.Errorf("start changed Shards or Changes: %q, %v; want %q, %v", after.Shards, after.Changes, before.Shards, before.Changes)
			}
			if !reflect.DeepEqual(after.Members, before.Members) || !reflect.DeepEqual(after.Target, before.Target) {
				t.Errorf("start changed members or target")
			}
			if !before.Settled() || after.Settled() {
				t.Errorf("Settled() = %v before the start, %v after; want true, false (a move is in progress)", before.Settled(), after.Settled())
			}
			for _, m := range tt.want {
				if got, ok := after.ActiveMove(m.Shard); !ok || got != m {
					t.Errorf("ActiveMove(%d) = %#v, %v; want %#v", m.Shard, got, ok, m)
				}
				if m.To != "" && !after.Hosts(m.To, m.Shard) {
					t.Errorf("Hosts(%s, %d) = false during a move to it", m.To, m.Shard)
				}
			}
		})
	}
}

func TestStartRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup []Move // started first
		moves []Move
		want  error
		msg   []string
	}{
		{"second move on a shard", []Move{{Shard: 0, From: "n1", To: "n3"}}, []Move{{Shard: 0, From: "n2", To: "n4"}}, ErrMoveConflict, []string{"shard 0"}},
		{"same shard twice in one command", nil, []Move{{Shard: 0, From: "n1", To: "n3"}, {Shard: 0, From: "n2", To: "n4"}}, ErrMoveConflict, []string{"shard 0"}},
		{"one bad move refuses all", nil, []Move{{Shard: 0, From: "n1", To: "n3"}, {Shard: 1, From: "n9", To: "n3"}}, ErrMoveConflict, []string{"n9"}},
		{"from is not a replica", nil, []Move{{Shard: 0, From: "n3", To: "n4"}}, ErrMoveConflict, []string{"n3"}},
		{"from is not a member", nil, []Move{{Shard: 0, From: "n9", To: "n4"}}, ErrMoveConflict, []string{"n9"}},
		{"to is a replica", nil, []Move{{Shard: 0, From: "n1", To: "n2"}}, ErrMoveConflict, []string{"n2"}},
		{"to is the source", nil, []Move{{Shard: 0, From: "n1", To: "n1"}}, ErrMoveConflict, []string{"n1"}},
		{"to is dead", nil, []Move{{Shard: 0, From: "n1", To: "n5"}}, ErrMoveConflict, []string{"n5"}},
		{"to is draining", nil, []Move{{Shard: 0, From: "n1", To: "n6"}}, ErrMoveConflict, []string{"n6"}},
		{"to is not a member", nil, []Move{{Shard: 0, From: "n1", To: "n9"}}, ErrMoveConflict, []string{"n9"}},
		{"add an existing replica", nil, []Move{{Shard: 3, To: "n1"}}, ErrMoveConflict, []string{"n1"}},
		{"remove the last replica", nil, []Move{{Shard: 3, From: "n1"}}, ErrMoveConflict, []string{"shard 3"}},
		{"shard out of range", nil, []Move{{Shard: 4, From: "n1", To: "n3"}}, ErrBadCommand, []string{"shard 4"}},
		{"neither source nor destination", nil, []Move{{Shard: 0}}, ErrBadCommand, []string{"shard 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := newMoveCluster(t)
			if tt.setup != nil {
				mustApply(t, sm, StartCommand(tt.setup))
			}
			mustRefuse(t, sm, StartCommand(tt.moves), tt.want, tt.msg...)
		})
	}
	t.Run("no moves", func(t *testing.T) {
		sm := newMoveCluster(t)
		mustNoop(t, sm, StartCommand(nil))
		mustNoop(t, sm, StartCommand([]Move{}))
	})
}

func TestFinish(t *testing.T) {
	tests := []struct {
		name       string
		move       Move // started, then finished with outcome, bytes and reason
		outcome    string
		wantShards []string // the shard's replicas after
	}{
		{"replace keeps the position", Move{Shard: 0, From: "n1", To: "n3"}, MoveDone, []string{"n3", "n2"}},
		{"replace second replica", Move{Shard: 0, From: "n2", To: "n4"}, MoveDone, []string{"n1", "n4"}},
		{"replace a dead replica", Move{Shard: 2, From: "n5", To: "n1"}, MoveDone, []string{"n3", "n1"}},
		{"add", Move{Shard: 3, To: "n2"}, MoveDone, []string{"n1", "n2"}},
		{"remove", Move{Shard: 0, From: "n1"}, MoveDone, []string{"n2"}},
		{"aborted replace", Move{Shard: 0, From: "n1", To: "n3"}, MoveAborted, []string{"n1", "n2"}},
		{"aborted add", Move{Shard: 3, To: "n2"}, MoveAborted, []string{"n1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := newMoveCluster(t)
			start := tt.move
			start.Started = 100
			mustApply(t, sm, StartCommand([]Move{start}))
			before := sm.Current()
			fin := tt.move
			fin.Finished, fin.Bytes, fin.Outcome, fin.Reason = 250, 4096, tt.outcome, "why"
			after := mustApply(t, sm, FinishCommand(fin))

			if got := after.Shards[tt.move.Shard]; !slices.Equal(got, tt.wantShards) {
				t.Errorf("Shards[%d] = %q; want %q", tt.move.Shard, got, tt.wantShards)
			}
			for i := range after.Shards {
				if i != int(tt.move.Shard) && !slices.Equal(after.Shards[i], before.Shards[i]) {
					t.Errorf("Shards[%d] changed from %q to %q", i, before.Shards[i], after.Shards[i])
				}
			}
			wantChanges := slices.Clone(before.Changes)
			if tt.outcome == MoveDone {
				wantChanges[tt.move.Shard]++
			}
			if !slices.Equal(after.Changes, wantChanges) {
				t.Errorf("Changes = %v; want %v", after.Changes, wantChanges)
			}
			if len(after.Moves) != 0 {
				t.Errorf("Moves = %v; want none after the finish", after.Moves)
			}
			want := start
			want.Finished, want.Bytes, want.Outcome, want.Reason = 250, 4096, tt.outcome, "why"
			if !slices.Equal(after.Finished, []Move{want}) {
				t.Errorf("Finished = %#v; want [%#v]", after.Finished, want)
			}
			if !reflect.DeepEqual(after.Target, before.Target) {
				t.Errorf("finish changed the target")
			}
			if tt.outcome == MoveDone && (after.FinishedSinceChange != 1 || after.BytesSinceChange != 4096) {
				t.Errorf("FinishedSinceChange, BytesSinceChange = %d, %d; want 1, 4096", after.FinishedSinceChange, after.BytesSinceChange)
			}
			// A second finish of the same move finds nothing in progress.
			mustRefuse(t, sm, FinishCommand(fin), ErrMoveConflict)
		})
	}
}

func TestFinishRefusals(t *testing.T) {
	active := Move{Shard: 0, From: "n1", To: "n3", Started: 1}
	done := func(m Move) Move { m.Outcome = MoveDone; return m }
	tests := []struct {
		name string
		cmd  []byte
		want error
	}{
		{"wrong from", FinishCommand(done(Move{Shard: 0, From: "n2", To: "n3"})), ErrMoveConflict},
		{"wrong to", FinishCommand(done(Move{Shard: 0, From: "n1", To: "n4"})), ErrMoveConflict},
		{"missing from", FinishCommand(done(Move{Shard: 0, To: "n3"})), ErrMoveConflict},
		{"missing to", FinishCommand(done(Move{Shard: 0, From: "n1"})), ErrMoveConflict},
		{"no move on the shard", FinishCommand(done(Move{Shard: 1, From: "n2", To: "n3"})), ErrMoveConflict},
		{"shard out of range", FinishCommand(done(Move{Shard: 9, From: "n1", To: "n3"})), ErrMoveConflict},
		{"no outcome", FinishCommand(Move{Shard: 0, From: "n1", To: "n3"}), ErrBadCommand},
		{"unknown outcome", FinishCommand(Move{Shard: 0, From: "n1", To: "n3", Outcome: "maybe"}), ErrBadCommand},
		{"no move", []byte(`{"op":"finish"}`), ErrBadCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := newMoveCluster(t)
			mustApply(t, sm, StartCommand([]Move{active}))
			mustRefuse(t, sm, tt.cmd, tt.want)
		})
	}
}

func TestFinishedIsBounded(t *testing.T) {
	sm := newMoveCluster(t)
	const total = MaxFinished + 37
	for i := range total {
		// Shard 0 swaps its first replica between n1 and n3.
		m := Move{Shard: 0, From: "n1", To: "n3", Started: int64(i)}
		if i%2 == 1 {
			m.From, m.To = "n3", "n1"
		}
		mustApply(t, sm, StartCommand([]Move{m}))
		m.Finished, m.Bytes, m.Outcome = int64(i), 10, MoveDone
		mustApply(t, sm, FinishCommand(m))
	}
	st := sm.Current()
	if len(st.Finished) != MaxFinished {
		t.Fatalf("len(Finished) = %d after %d moves; want MaxFinished = %d", len(st.Finished), total, MaxFinished)
	}
	for i, m := range st.Finished {
		if want := int64(total - MaxFinished + i); m.Finished != want {
			t.Fatalf("Finished[%d] is the move finished at %d; want %d (the most recent, oldest first)", i, m.Finished, want)
		}
	}
	if st.Changes[0] != total || st.FinishedSinceChange != total || st.BytesSinceChange != 10*total {
		t.Errorf("Changes[0], FinishedSinceChange, BytesSinceChange = %d, %d, %d; want %d, %d, %d",
			st.Changes[0], st.FinishedSinceChange, st.BytesSinceChange, total, total, 10*total)
	}
	if got := st.Shards[0]; !slices.Equal(got, []string{"n3", "n2"}) {
		t.Errorf("Shards[0] = %q; want [n3 n2]", got)
	}
	// The counters restart when the target changes; the history stays.
	st = mustApply(t, sm, joinCmd("n7"))
	if st.FinishedSinceChange != 0 || st.BytesSinceChange != 0 || len(st.Finished) != MaxFinished {
		t.Errorf("after a join: FinishedSinceChange, BytesSinceChange, len(Finished) = %d, %d, %d; want 0, 0, %d",
			st.FinishedSinceChange, st.BytesSinceChange, len(st.Finished), MaxFinished)
	}
}

// runPending applies the pending moves one at a time, calling each after
// every finish, until the state is settled.
func runPending(t *testing.T, sm *StateMachine, each func(st *State, last bool)) {
	t.Helper()
	for i := 0; !sm.Current().Settled(); i++ {
		if i > 10000 {
			t.Fatal("no convergence after 10000 moves")
		}
		st := sm.Current()
		p := st.Pending()
		if len(p) == 0 {
			t.Fatalf("not settled, yet nothing pending; moves in progress: %v", st.Moves)
		}
		m := p[0]
		m.Started = int64(i)
		mustApply(t, sm, StartCommand([]Move{m}))
		m.Outcome = MoveDone
		st = mustApply(t, sm, FinishCommand(m))
		each(st, len(p) == 1)
	}
}

func TestJoiningTurnsActiveWithItsLastReplica(t *testing.T) {
	sm := newCluster(t, 3, 16, 3)
	mustApply(t, sm, joinCmd("n4"))
	n := 0
	runPending(t, sm, func(st *State, last bool) {
		n++
		want := MemberJoining
		if last {
			want = MemberActive
		}
		if got := memberState(st, "n4"); got != want {
			t.Fatalf("after move %d (last: %v): n4 is %q; want %q", n, last, got, want)
		}
	})
	if got, want := countOn(sm.Current().Shards, "n4"), 16*3/4; got != want {
		t.Errorf("n4 holds %d replicas; want %d", got, want)
	}
}

func TestDrainingLeavesWithItsLastReplica(t *testing.T) {
	sm := newCluster(t, 4, 16, 3)
	held := countOn(sm.Current().Shards, "n2")
	mustApply(t, sm, DrainCommand("n2"))
	n := 0
	runPending(t, sm, func(st *State, last bool) {
		n++
		_, member := st.Member("n2")
		if member == last || slices.Contains(st.Removed, "n2") != last {
			t.Fatalf("after move %d (last: %v): n2 member %v, Removed %q", n, last, member, st.Removed)
		}
	})
	if n < held {
		t.Errorf("drain took %d moves; n2 held %d replicas", n, held)
	}
	if got := holders(sm.Current().Shards); slices.Contains(got, "n2") {
		t.Errorf("removed n2 still holds replicas")
	}
}

// A joining node that holds all its target replicas turns active only once
// no move involves it: here it is still the source of one.
func TestJoiningWaitsForItsMoves(t *testing.T) {
	sm := NewStateMachine()
	mustInit(t, sm, State{
		ShardCount:   3,
		Replicas:     3,
		VirtualNodes: 8,
		Members: []Member{
			{ID: "n1", Addr: addrOf("n1"), State: MemberActive},
			{ID: "n2", Addr: addrOf("n2"), State: MemberActive},
			{ID: "n3", Addr: addrOf("n3"), State: MemberActive},
			{ID: "n4", Addr: addrOf("n4"), State: MemberJoining},
		},
		Shards: [][]string{{"n1", "n2", "n4"}, {"n1", "n2", "n3"}, {"n1", "n2"}},
		Target: [][]string{{"n1", "n2", "n3"}, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}},
	})
	leave := Move{Shard: 0, From: "n4", To: "n3"}
	other := Move{Shard: 2, To: "n3"}
	mustApply(t, sm, StartCommand([]Move{leave, other}))
	other.Outcome = MoveDone
	st := mustApply(t, sm, FinishCommand(other))
	if got := memberState(st, "n4"); got != MemberJoining {
		t.Errorf("n4 misses nothing but is the source of %v: state %q; want joining", leave, got)
	}
	leave.Outcome = MoveDone
	st = mustApply(t, sm, FinishCommand(leave))
	if got := memberState(st, "n4"); got != MemberActive {
		t.Errorf("n4 misses nothing and no move involves it: state %q; want active", got)
	}
}
