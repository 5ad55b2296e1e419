package client

import (
	"errors"
	"fmt"
	"slices"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// shardMap is the client's view of the cluster: which nodes hold each shard
// and which one leads it. It is immutable once built; a change makes a new
// map that replaces the old one in Client.smap.
type shardMap struct {
	epoch  uint64
	count  uint32            // shard count, > 0
	addrs  map[string]string // node ID -> address
	ids    []string          // node IDs, sorted
	shards []route           // indexed by shard ID; len(shards) == count
	seeds  []string          // the endpoints given to New
}

// route is one shard's placement.
type route struct {
	leader   string   // node ID, "" when unknown
	replicas []string // node IDs, in placement order
}

// newShardMap builds a map from a node's Status response.
func newShardMap(resp *ringkvv1.StatusResponse, seeds []string) (*shardMap, error) {
	if resp.GetShardCount() == 0 {
		return nil, errors.New("status has shard count 0")
	}
	m := &shardMap{
		epoch:  resp.GetEpoch(),
		count:  resp.GetShardCount(),
		addrs:  make(map[string]string, len(resp.GetMembers())),
		shards: make([]route, resp.GetShardCount()),
		seeds:  seeds,
	}
	for _, mem := range resp.GetMembers() {
		if mem.GetId() == "" || mem.GetAddress() == "" {
			continue
		}
		m.addrs[mem.GetId()] = mem.GetAddress()
		m.ids = append(m.ids, mem.GetId())
	}
	slices.Sort(m.ids)
	for _, s := range resp.GetShards() {
		if s.GetId() >= m.count {
			return nil, fmt.Errorf("status names shard %d of %d", s.GetId(), m.count)
		}
		m.shards[s.GetId()] = route{leader: s.GetLeader(), replicas: s.GetReplicas()}
	}
	return m, nil
}

// withLeader returns a copy of m in which id leads sh.
func (m *shardMap) withLeader(sh shard.ID, id string) *shardMap {
	c := *m
	c.shards = slices.Clone(m.shards)
	c.shards[sh].leader = id
	return &c
}

// leader returns the node ID that leads sh, "" when unknown.
func (m *shardMap) leader(sh shard.ID) string {
	if int(sh) >= len(m.shards) {
		return ""
	}
	return m.shards[sh].leader
}

// candidates returns the addresses a request for sh may go to, best first:
// the leader, the other replicas in placement order, every other member, and
// the seed endpoints that are not members.
func (m *shardMap) candidates(sh shard.ID) []string {
	out := make([]string, 0, len(m.ids)+len(m.seeds))
	add := func(addr string) {
		if addr != "" && !slices.Contains(out, addr) {
			out = append(out, addr)
		}
	}
	if int(sh) < len(m.shards) {
		r := m.shards[sh]
		add(m.addrs[r.leader])
		for _, id := range r.replicas {
			add(m.addrs[id])
		}
	}
	for _, id := range m.ids {
		add(m.addrs[id])
	}
	for _, s := range m.seeds {
		add(s)
	}
	return out
}

// all returns every address the client knows: members, then seeds.
func (m *shardMap) all() []string {
	return m.candidates(shard.ID(m.count)) // no such shard: no leader first
}
