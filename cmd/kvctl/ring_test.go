package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// fields splits out into lines, and each line into its fields.
func fields(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		rows = append(rows, strings.Fields(line))
	}
	return rows
}

func TestRingTable(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 3)
	fc.join("n4") // n4 is to hold 3 replicas, one of shards 1, 2, 3 each
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "ring")
	if r.code != 0 {
		t.Fatalf("kvctl ring: %v", r)
	}
	t.Logf("kvctl ring:\n%s", r.stdout)
	want := [][]string{
		{"Epoch:", "8"},
		{"Shards:", "4", "(3", "moving)"},
		{"Replication", "factor:", "3"},
		{},
		{"NODE", "STATE", "REPLICAS", "LEADS", "TARGET"},
		{"n1", "active", "4", "2", "3"},
		{"n2", "active", "4", "0", "3"},
		{"n3", "active", "4", "1", "3"},
		{"n4", "joining", "0", "0", "3"},
		{},
		{"SPREAD", "NODES", "MEAN", "MIN", "MAX", "MAX/MEAN"},
		{"replicas", "4", "3.00", "0", "4", "1.33"},
		{"target", "4", "3.00", "3", "3", "1.00"},
		{},
		{"Moving", "shards:"},
		{"SHARD", "REPLICAS", "TARGET"},
		{"1", "n2,n3,n1", "n2,n3,n4"},
		{"2", "n3,n1,n2", "n3,n4,n1"},
		{"3", "n1,n2,n3", "n4,n1,n2"},
		{},
	}
	if got := fields(r.stdout); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("kvctl ring =\n%s\nwant these fields per line:\n%v", r.stdout, want)
	}

	// Once the moves are done, the spread is even and nothing moves.
	if r := kvctl(t, "", "--endpoints", fc.endpoints(), "rebalance", "status", "--watch", "--interval", "1ms"); r.code != 0 {
		t.Fatalf("kvctl rebalance status --watch: %v", r)
	}
	r = kvctl(t, "", "--endpoints", fc.endpoints(), "ring")
	got := fields(r.stdout)
	if len(got) < 13 || fmt.Sprint(got[1]) != "[Shards: 4 (none moving)]" || fmt.Sprint(got[8]) != "[n4 active 3 0 3]" ||
		fmt.Sprint(got[11]) != "[replicas 4 3.00 3 3 1.00]" || strings.Contains(r.stdout, "Moving shards") {
		t.Errorf("kvctl ring after the rebalance =\n%s\nwant none moving, n4 active with 3 replicas, an even spread", r.stdout)
	}
}

func TestRingJSON(t *testing.T) {
	fc := newFakeCluster(t)
	fc.setState("n3", "dead")
	fc.mu.Lock()
	fc.placement[0] = []string{"n1", "n2", "n9"} // a replica on a node that is not a member
	fc.mu.Unlock()
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "-o", "json", "ring")
	if r.code != 0 {
		t.Fatalf("kvctl -o json ring: %v", r)
	}
	var got ringJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("kvctl -o json ring printed %q: %v", r.stdout, err)
	}
	if got.Epoch != fakeEpoch || got.ShardCount != fakeShards || got.ReplicationFactor != fakeRF {
		t.Errorf("ring %+v; want epoch %d, %d shards, RF %d", got, fakeEpoch, fakeShards, fakeRF)
	}
	wantNodes := []ringNodeJSON{
		{ID: "n1", State: "active", Replicas: 4, Leads: 2, Target: 4},
		{ID: "n2", State: "active", Replicas: 4, Leads: 0, Target: 4},
		{ID: "n3", State: "dead", Replicas: 3, Leads: 1, Target: 4},
		{ID: "n9", State: "unknown", Replicas: 1, Leads: 0, Target: 0},
	}
	if fmt.Sprint(got.Nodes) != fmt.Sprint(wantNodes) {
		t.Errorf("nodes = %+v; want %+v", got.Nodes, wantNodes)
	}
	// The spread is over the nodes meant to hold replicas: n1 and n2.
	if want := (evennessJSON{Nodes: 2, Mean: 4, Min: 4, Max: 4, MaxOverMean: 1}); got.Replicas != want || got.Target != want {
		t.Errorf("spread now %+v, at the target %+v; want both %+v", got.Replicas, got.Target, want)
	}
	if len(got.Moving) != 1 || got.Moving[0].Shard != 0 || strings.Join(got.Moving[0].Replicas, ",") != "n1,n2,n9" ||
		strings.Join(got.Moving[0].Target, ",") != "n1,n2,n3" {
		t.Errorf("moving = %+v; want shard 0 from n1,n2,n9 to n1,n2,n3", got.Moving)
	}
}

func TestEvenness(t *testing.T) {
	for _, tc := range []struct {
		counts []int
		want   evennessJSON
	}{
		{nil, evennessJSON{}},
		{[]int{0, 0}, evennessJSON{Nodes: 2}},
		{[]int{3, 3, 3}, evennessJSON{Nodes: 3, Mean: 3, Min: 3, Max: 3, MaxOverMean: 1}},
		{[]int{4, 4, 4, 0}, evennessJSON{Nodes: 4, Mean: 3, Min: 0, Max: 4, MaxOverMean: 4.0 / 3}},
		{[]int{1, 5}, evennessJSON{Nodes: 2, Mean: 3, Min: 1, Max: 5, MaxOverMean: 5.0 / 3}},
	} {
		if got := evenness(tc.counts); got != tc.want {
			t.Errorf("evenness(%v) = %+v; want %+v", tc.counts, got, tc.want)
		}
	}
}

func TestClusterStatusStates(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 3)
	fc.join("n4")
	fc.setState("n2", "draining")
	fc.setState("n3", "dead")
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "cluster", "status")
	if r.code != 0 {
		t.Fatalf("kvctl cluster status: %v", r)
	}
	t.Logf("kvctl cluster status:\n%s", r.stdout)
	want := [][]string{
		{"Epoch:", "8"},
		{"Shards:", "4"},
		{"Replication", "factor:", "3"},
		{"Shards", "without", "a", "leader:", "1"},
		{"Shards", "moving:", "3"},
		{"Answered", "by:", "n1"},
		{},
		{"MEMBER", "ADDRESS", "STATE", "LEADS", "REPLICAS"},
		{"n1", fc.nodes[0].addr, "active", "2", "4"},
		{"n2", fc.nodes[1].addr, "draining", "0", "4"},
		{"n3", fc.nodes[2].addr, "dead", "1", "4"},
		{"n4", fc.nodes[3].addr, "joining", "0", "0"},
		{},
		{"SHARD", "REPLICAS", "LEADER", "TARGET"},
		{"0", "n1,n2,n3", "n1", "n1,n2,n3"},
		{"1", "n2,n3,n1", "-", "n2,n3,n4"},
		{"2", "n3,n1,n2", "n3", "n3,n4,n1"},
		{"3", "n1,n2,n3", "n1", "n4,n1,n2"},
		{},
	}
	if got := fields(r.stdout); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("kvctl cluster status =\n%s\nwant these fields per line:\n%v", r.stdout, want)
	}

	r = kvctl(t, "", "--endpoints", fc.endpoints(), "-o", "json", "cluster", "status")
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil {
		t.Fatalf("kvctl -o json cluster status: %v (%v)", r, err)
	}
	var states []string
	for _, m := range st.Members {
		states = append(states, m.ID+"="+m.State)
	}
	if st.Epoch != 8 || st.Moving != 3 || strings.Join(states, " ") != "n1=active n2=draining n3=dead n4=joining" {
		t.Errorf("status = %+v; want epoch 8, 3 moving, n1..n4 active, draining, dead, joining", st)
	}
	if sh := st.Shards[3]; strings.Join(sh.Target, ",") != "n4,n1,n2" || strings.Join(sh.Replicas, ",") != "n1,n2,n3" {
		t.Errorf("shards[3] = %+v; want replicas n1,n2,n3, target n4,n1,n2", sh)
	}
}
