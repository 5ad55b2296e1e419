package ring

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name       string
		prev, next [][]string
		want       []Move
	}{
		{"same", [][]string{{"a", "b"}}, [][]string{{"a", "b"}}, nil},
		{"reordered only", [][]string{{"a", "b", "c"}}, [][]string{{"c", "a", "b"}}, nil},
		{"one move", [][]string{{"a", "b", "c"}, {"a", "b", "c"}}, [][]string{{"a", "b", "c"}, {"a", "b", "d"}},
			[]Move{{Shard: 1, From: "c", To: "d"}}},
		{"two moves paired in order", [][]string{{"a", "b", "c"}}, [][]string{{"d", "a", "e"}},
			[]Move{{Shard: 0, From: "b", To: "d"}, {Shard: 0, From: "c", To: "e"}}},
		{"replicas grow", [][]string{{"a"}}, [][]string{{"a", "b", "c"}},
			[]Move{{Shard: 0, To: "b"}, {Shard: 0, To: "c"}}},
		{"replicas shrink", [][]string{{"a", "b", "c"}}, [][]string{{"b"}},
			[]Move{{Shard: 0, From: "a"}, {Shard: 0, From: "c"}}},
		{"move and shrink", [][]string{{"a", "b", "c"}}, [][]string{{"a", "d"}},
			[]Move{{Shard: 0, From: "b", To: "d"}, {Shard: 0, From: "c"}}},
		{"from nothing", nil, [][]string{{"a"}, {"b"}},
			[]Move{{Shard: 0, To: "a"}, {Shard: 1, To: "b"}}},
		{"shard only in prev", [][]string{{"a"}, {"b"}}, [][]string{{"a"}},
			[]Move{{Shard: 1, From: "b"}}},
	} {
		got := Diff(Placement{Shards: tc.prev}, Placement{Shards: tc.next})
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: Diff(%q, %q) = %v; want %v", tc.name, tc.prev, tc.next, got, tc.want)
		}
	}
}

func TestMoveString(t *testing.T) {
	for _, tc := range []struct {
		m    Move
		want string
	}{
		{Move{Shard: 3, From: "a", To: "b"}, "shard 3: a -> b"},
		{Move{Shard: 3, To: "b"}, "shard 3: + b"},
		{Move{Shard: 3, From: "a"}, "shard 3: - a"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("%#v.String() = %q; want %q", tc.m, got, tc.want)
		}
	}
}

func TestPlacementCloneEqual(t *testing.T) {
	p := Placement{Shards: [][]string{{"a", "b"}, {"b", "c"}}}
	c := p.Clone()
	if !c.Equal(p) {
		t.Fatalf("Clone() = %v; want equal to %v", c, p)
	}
	c.Shards[0][0] = "z"
	if p.Shards[0][0] != "a" {
		t.Errorf("changing the clone changed the original: %v", p)
	}
	if c.Equal(p) {
		t.Errorf("Equal(%v, %v) = true; want false", c, p)
	}
	if q := (Placement{Shards: [][]string{{"b", "a"}, {"b", "c"}}}); q.Equal(p) {
		t.Errorf("Equal(%v, %v) = true; want false: order is part of a placement", q, p)
	}
	if (Placement{}).Clone().Shards != nil {
		t.Errorf("Placement{}.Clone() is not empty")
	}
	if !(Placement{Shards: [][]string{nil}}).Equal(Placement{Shards: [][]string{{}}}) {
		t.Errorf("a nil and an empty replica list compare unequal; want equal")
	}
}

func TestPlacementJSONRoundTrip(t *testing.T) {
	p, err := Place(Placement{}, nodeNames(4), 8, Config{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Placement
	if err := json.Unmarshal(data, &q); err != nil {
		t.Fatalf("Unmarshal(%s): %v", data, err)
	}
	if !q.Equal(p) {
		t.Errorf("JSON round trip: %v -> %s -> %v", p, data, q)
	}
}

func TestLoadsAndBalance(t *testing.T) {
	p := Placement{Shards: [][]string{{"a", "b"}, {"a", "c"}, {"a", "b"}}}
	loads := p.Loads()
	if fmt.Sprint(loads) != "map[a:3 b:2 c:1]" {
		t.Errorf("Loads() = %v; want map[a:3 b:2 c:1]", loads)
	}
	for _, tc := range []struct {
		members []string
		want    Balance
	}{
		{nil, Balance{Nodes: 3, Replicas: 6, Min: 1, Max: 3, Mean: 2, MaxOverMean: 1.5}},
		{[]string{"a", "b", "c", "d"}, Balance{Nodes: 4, Replicas: 6, Min: 0, Max: 3, Mean: 1.5, MaxOverMean: 2}},
		{[]string{"b", "c"}, Balance{Nodes: 2, Replicas: 3, Min: 1, Max: 2, Mean: 1.5, MaxOverMean: 2.0 / 1.5}},
		{[]string{}, Balance{}},
	} {
		if got := p.Balance(tc.members); got != tc.want {
			t.Errorf("Balance(%q) = %+v; want %+v", tc.members, got, tc.want)
		}
	}
	got := Balance{Nodes: 10, Replicas: 192, Min: 19, Max: 20, Mean: 19.2, MaxOverMean: 20 / 19.2}.String()
	if want := "10 nodes, 192 replicas: min 19, max 20, mean 19.20, max/mean 1.042"; got != want {
		t.Errorf("Balance.String() = %q; want %q", got, want)
	}
}
