package cluster

import (
	"slices"
	"strings"
	"testing"
)

// testState returns a valid, initialized three-node state with four shards.
// Every call returns a fresh copy that the caller may modify.
func testState() State {
	return State{
		Epoch:        1,
		ShardCount:   4,
		Replicas:     2,
		VirtualNodes: 128,
		Members: []Member{
			{ID: "n1", Addr: "127.0.0.1:7001", State: MemberActive},
			{ID: "n2", Addr: "127.0.0.1:7002", State: MemberActive},
			{ID: "n3", Addr: "127.0.0.1:7003", State: MemberActive},
		},
		Shards: [][]string{
			{"n1", "n2"},
			{"n2", "n3"},
			{"n3", "n1"},
			{"n1", "n3"},
		},
	}
}

func TestInitialized(t *testing.T) {
	tests := []struct {
		name string
		st   *State
		want bool
	}{
		{"nil", nil, false},
		{"zero", &State{}, false},
		{"epoch 1", &State{Epoch: 1}, true},
		{"epoch 7", &State{Epoch: 7}, true},
	}
	for _, tt := range tests {
		if got := tt.st.Initialized(); got != tt.want {
			t.Errorf("%s: Initialized() = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestMember(t *testing.T) {
	st := testState()
	tests := []struct {
		id       string
		wantAddr string
		wantOK   bool
	}{
		{"n1", "127.0.0.1:7001", true},
		{"n3", "127.0.0.1:7003", true},
		{"n4", "", false},
		{"", "", false},
		{"N1", "", false},
	}
	for _, tt := range tests {
		m, ok := st.Member(tt.id)
		if ok != tt.wantOK || m.Addr != tt.wantAddr {
			t.Errorf("Member(%q) = %+v, %v; want addr %q, %v", tt.id, m, ok, tt.wantAddr, tt.wantOK)
		}
		if ok && m.ID != tt.id {
			t.Errorf("Member(%q).ID = %q", tt.id, m.ID)
		}
	}
	var empty State
	if m, ok := empty.Member("n1"); ok {
		t.Errorf("empty State: Member(%q) = %+v, true; want false", "n1", m)
	}
}

func TestReplicasOf(t *testing.T) {
	st := testState()
	tests := []struct {
		id   uint32
		want []string
	}{
		{0, []string{"n1", "n2"}},
		{2, []string{"n3", "n1"}}, // placement order, not sorted
		{3, []string{"n1", "n3"}},
		{4, nil},
		{1 << 31, nil},
	}
	for _, tt := range tests {
		if got := st.ReplicasOf(tt.id); !slices.Equal(got, tt.want) {
			t.Errorf("ReplicasOf(%d) = %q; want %q", tt.id, got, tt.want)
		}
	}
	var empty State
	if got := empty.ReplicasOf(0); got != nil {
		t.Errorf("empty State: ReplicasOf(0) = %q; want nil", got)
	}
}

func TestShardsOf(t *testing.T) {
	st := testState()
	tests := []struct {
		node string
		want []uint32
	}{
		{"n1", []uint32{0, 2, 3}},
		{"n2", []uint32{0, 1}},
		{"n3", []uint32{1, 2, 3}},
		{"n4", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if got := st.ShardsOf(tt.node); !slices.Equal(got, tt.want) {
			t.Errorf("ShardsOf(%q) = %v; want %v", tt.node, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*State)
		wantErr string // substring of the error; "" for a valid state
	}{
		{"valid", func(*State) {}, ""},
		{"member holding no shard", func(s *State) {
			s.Members = append(s.Members, Member{ID: "n4", Addr: "127.0.0.1:7004"})
		}, ""},
		{"zero shard count", func(s *State) { s.ShardCount = 0; s.Shards = nil }, "shard count 0"},
		{"count above entries", func(s *State) { s.ShardCount = 5 }, "shard count 5 but 4 shard entries"},
		{"count below entries", func(s *State) { s.ShardCount = 3 }, "shard count 3 but 4 shard entries"},
		{"zero replicas", func(s *State) { s.Replicas = 0 }, "replication factor 0"},
		{"negative replicas", func(s *State) { s.Replicas = -1 }, "replication factor -1"},
		{"member without ID", func(s *State) { s.Members[1].ID = "" }, "member"},
		{"member without address", func(s *State) { s.Members[1].Addr = "" }, `member "n2"`},
		{"duplicate member", func(s *State) {
			s.Members = append(s.Members, Member{ID: "n2", Addr: "127.0.0.1:9999"})
		}, `duplicate member "n2"`},
		{"shard without replicas", func(s *State) { s.Shards[2] = nil }, "shard 2 has no replicas"},
		{"shard on unknown node", func(s *State) { s.Shards[1] = []string{"n2", "n9"} }, `shard 1 placed on unknown node "n9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := testState()
			tt.modify(&st)
			err := st.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v; want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Validate() = nil; want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Validate() = %q; want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// A shard's replica list names the nodes that each hold one replica; the
// same node twice is not a placement any node can open (every replica of a
// Raft group needs its own server ID).
func TestValidateRejectsDuplicateReplicaInShard(t *testing.T) {
	st := testState()
	st.Shards[0] = []string{"n1", "n1"}
	if err := st.Validate(); err == nil {
		t.Errorf("Validate() with Shards[0] = %q = nil; want an error", st.Shards[0])
	}
}
