// Package deps holds a test that keeps ringkv's package dependencies
// pointing one way: from the edges (cmd, rpc, client) to the core (ring,
// shard), never back. See docs/architecture.md for the table it enforces.
package deps

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/ringkv/ringkv/"

// forbidden lists, per package, the imports it must never have: direct
// imports only, matched by prefix.
var forbidden = map[string][]string{
	"ring":        {mod, "google.golang.org/grpc", "github.com/hashicorp/raft"},
	"shard":       {mod, "google.golang.org/grpc", "github.com/hashicorp/raft"},
	"backup":      {mod, "google.golang.org/grpc", "github.com/hashicorp"},
	"cluster":     {mod + "replication", mod + "router", mod + "rpc", mod + "node", "google.golang.org/grpc", "github.com/hashicorp/raft"},
	"replication": {mod + "shard", mod + "cluster", mod + "router", mod + "rpc", mod + "node", mod + "client"},
	"router":      {mod + "rpc", mod + "node", mod + "client", "google.golang.org/grpc", "github.com/hashicorp/raft"},
	"rpc":         {mod + "node", mod + "client", mod + "cmd"},
	"client":      {mod + "replication", mod + "router", mod + "rpc", mod + "node", mod + "cluster", mod + "ring", "github.com/hashicorp", "go.etcd.io/bbolt"},
	"node":        {mod + "cmd", mod + "client"},
	"loadgen":     {mod, "google.golang.org/grpc", "github.com/hashicorp"},
	"raftstore":   {mod, "google.golang.org/grpc"},
	"pki":         {mod, "google.golang.org/grpc", "github.com/hashicorp"},
	"bulkhead":    {mod, "google.golang.org/grpc", "github.com/hashicorp"},
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func TestDependenciesPointInward(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, mod)
		rules, ok := forbidden[name]
		if !ok {
			continue
		}
		seen++
		for _, imp := range p.Imports {
			for _, bad := range rules {
				if strings.HasPrefix(imp, bad) && imp != p.ImportPath {
					t.Errorf("%s imports %s; it must not import %s*", name, imp, bad)
				}
			}
		}
		// The client must not pull server-side code even indirectly.
		if name == "client" {
			for _, d := range p.Deps {
				if strings.HasPrefix(d, "github.com/hashicorp/raft") || strings.HasPrefix(d, "go.etcd.io/bbolt") {
					t.Errorf("client depends on %s (indirectly)", d)
				}
			}
		}
	}
	if seen != len(forbidden) {
		t.Errorf("checked %d packages; want %d (was a package renamed?)", seen, len(forbidden))
	}
}
