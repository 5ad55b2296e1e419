package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// lines splits out into lines, without the empty one after the last newline.
func lines(out string) []string {
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

func TestNodeRemoveWaits(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 4)
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "node", "remove", "n4", "--interval", "1ms")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("kvctl node remove n4: %v; want success", r)
	}
	// The fake rebalancer moves 2 replicas at a time, one step per look:
	// shards 1, 2 and 3 leave n4 for n1, n2 and n3.
	want := []string{
		"n4 is draining (epoch 8)",
		"n4 draining: 3 replicas left, 3 moves left (0 active, 3 pending)",
		"n4 draining: 3 replicas left, 3 moves left (2 active, 1 pending)",
		"n4 draining: 1 replica left, 1 move left (1 active, 0 pending)",
		"n4 removed from the cluster (epoch 9).",
	}
	if got := lines(r.stdout); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("kvctl node remove n4 printed\n%s\nwant\n%s", r.stdout, strings.Join(want, "\n"))
	}

	// The cluster agrees: n4 is gone, and every shard is on n1..n3.
	r = kvctl(t, "", "--endpoints", fc.endpoints(), "-o", "json", "cluster", "status")
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("kvctl cluster status after the removal: %v: %v", r, err)
	}
	if len(st.Members) != 3 || st.Moving != 0 || st.Epoch != 9 {
		t.Errorf("status after removing n4 = %+v; want 3 members, nothing moving, epoch 9", st)
	}
	for _, m := range st.Members {
		if m.ID == "n4" || m.Replicas != 4 {
			t.Errorf("member %+v after removing n4; want n1..n3 holding 4 replicas each", m)
		}
	}
}

func TestNodeRemoveJSON(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 4)
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "-o", "json", "node", "remove", "n2", "--interval", "1ms")
	if r.code != 0 {
		t.Fatalf("kvctl -o json node remove n2: %v", r)
	}
	var got removeJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("kvctl -o json node remove printed %q: %v", r.stdout, err)
	}
	if want := (removeJSON{Node: "n2", Epoch: 8, Removed: true, RemovedEpoch: 9}); got != want {
		t.Errorf("kvctl -o json node remove n2 = %+v; want %+v", got, want)
	}
	// The progress goes to stderr, so that stdout is only the JSON.
	if !strings.HasPrefix(r.stderr, "n2 is draining (epoch 8)\nn2 draining: 3 replicas left") {
		t.Errorf("stderr %q; want the progress lines", r.stderr)
	}
}

func TestNodeRemoveNoWait(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 4)
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "node", "remove", "n1", "--wait=false")
	if r.code != 0 {
		t.Fatalf("kvctl node remove n1 --wait=false: %v", r)
	}
	got := lines(r.stdout)
	if len(got) != 2 || got[0] != "n1 is draining (epoch 8)" || !strings.HasPrefix(got[1], "Not waiting: n1 leaves the cluster") {
		t.Errorf("kvctl node remove n1 --wait=false printed %q; want the drain's epoch and that it does not wait", r.stdout)
	}
	fc.mu.Lock()
	calls, state := fc.rebalanceCalls, fc.memberLocked("n1").state
	fc.mu.Unlock()
	if calls != 0 || state != "draining" {
		t.Errorf("after --wait=false: %d RebalanceStatus calls, n1 %q; want none, draining", calls, state)
	}

	r = kvctl(t, "", "--endpoints", fc.endpoints(), "-o", "json", "node", "remove", "n1", "--wait=false")
	var j removeJSON
	if err := json.Unmarshal([]byte(r.stdout), &j); r.code != 0 || err != nil {
		t.Fatalf("kvctl -o json node remove n1 --wait=false (again): %v (%v)", r, err)
	}
	if want := (removeJSON{Node: "n1", Epoch: 8}); j != want {
		t.Errorf("removing a draining node again = %+v; want %+v (a no-op)", j, want)
	}
}

func TestNodeRemoveRefused(t *testing.T) {
	fc := newFakeCluster(t) // 3 nodes for replication factor 3
	for _, tc := range []struct {
		id         string
		wantStderr string // all of it
	}{
		{"n3", "Error: removing n3 would leave 2 nodes for replication factor 3\n"},
		{"n9", "Error: n9 is not a member\n"},
	} {
		r := kvctl(t, "", "--endpoints", fc.endpoints(), "node", "remove", tc.id, "--interval", "1ms")
		if r.code != 1 || r.stdout != "" || r.stderr != tc.wantStderr {
			t.Errorf("kvctl node remove %s: %v; want exit 1, no stdout, stderr %q", tc.id, r, tc.wantStderr)
		}
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for _, m := range fc.members {
		if m.state != "active" {
			t.Errorf("member %s is %s after refused removals; want active", m.id, m.state)
		}
	}
}

func TestNodeRemoveTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"flag after the command", []string{"node", "remove", "n4", "--interval", "1ms", "--timeout", "200ms"}},
		{"flag before the command", []string{"--timeout", "200ms", "node", "remove", "n4", "--interval", "1ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeClusterOf(t, 4, 4)
			fc.mu.Lock()
			fc.frozen = true // no move ever ends
			fc.mu.Unlock()
			r := kvctl(t, "", append([]string{"--endpoints", fc.endpoints()}, tc.args...)...)
			want := "Error: n4 still a member after 200ms (3 replicas left, 3 moves left); the drain goes on in the cluster"
			if r.code != 1 || !strings.HasPrefix(r.stderr, want) {
				t.Errorf("kvctl %s (a drain that never ends): %v; want exit 1, stderr %q...", strings.Join(tc.args, " "), r, want)
			}
			// Progress is printed when it changes, not on every look.
			if got := lines(r.stdout); len(got) != 2 || got[1] != "n4 draining: 3 replicas left, 3 moves left (0 active, 3 pending)" {
				t.Errorf("stdout %q; want the drain's start and one progress line", r.stdout)
			}
		})
	}
}

func TestNodeRemoveBadFlags(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 4)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "remove"}, "accepts 1 arg(s), received 0"},
		{[]string{"node", "remove", "n4", "--interval", "0s"}, "--interval 0s: must be > 0"},
		{[]string{"node", "remove", "n4", "--timeout", "-1s"}, "--timeout -1s: must be > 0"},
	} {
		r := kvctl(t, "", append([]string{"--endpoints", fc.endpoints()}, tc.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("kvctl %s: %v; want exit 1 and %q", strings.Join(tc.args, " "), r, tc.want)
		}
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if m := fc.memberLocked("n4"); m.state != "active" {
		t.Errorf("n4 is %s after rejected command lines; want active (never asked)", m.state)
	}
}
