package runner

import (
	"reflect"
	"testing"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

func status(shards ...*ringkvv1.ShardInfo) *ringkvv1.StatusResponse {
	return &ringkvv1.StatusResponse{Shards: shards}
}

func TestLeadersTrustTheHighestTerm(t *testing.T) {
	sts := map[string]*ringkvv1.StatusResponse{
		// n1 was cut off and still believes it leads shard 0 in term 3.
		"n1": status(&ringkvv1.ShardInfo{Id: 0, Leader: "n1", LeaderTerm: 3}, &ringkvv1.ShardInfo{Id: 1, Leader: ""}),
		"n2": status(&ringkvv1.ShardInfo{Id: 0, Leader: "n2", LeaderTerm: 4}, &ringkvv1.ShardInfo{Id: 1, Leader: ""}),
		"n3": status(&ringkvv1.ShardInfo{Id: 0, Leader: "n2", LeaderTerm: 4}, &ringkvv1.ShardInfo{Id: 2, Leader: "n3", LeaderTerm: 1}),
	}
	want := map[uint32]string{0: "n2", 2: "n3"} // nobody knows shard 1's leader
	if got := leaders(sts); !reflect.DeepEqual(got, want) {
		t.Errorf("leaders = %v; want %v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.KVNode, good.RunsDir = "bin/kvnode", "runs"
	if err := good.Validate(); err != nil {
		t.Fatalf("DefaultConfig with a binary and a runs dir: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"no binary":          func(c *Config) { c.KVNode = "" },
		"more replicas":      func(c *Config) { c.Replicas = c.Nodes + 1 },
		"no keys":            func(c *Config) { c.RegisterKeys = 0 },
		"no duration":        func(c *Config) { c.Duration = 0 },
		"zero quiet spell":   func(c *Config) { c.Schedule.Quiet.Min = 0 },
		"no shards":          func(c *Config) { c.Shards = 0 },
		"no register worker": func(c *Config) { c.RegisterWorkers = 0 },
	} {
		c := good
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil; want an error", name)
		}
	}
}
