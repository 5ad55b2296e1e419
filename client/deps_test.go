package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the client free of server-side code: of ringkv's
// own packages it may use only the API, the key-to-shard function and the
// backup file format, and nothing of Raft or storage at all.
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/ringkv/ringkv/client").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	allowed := map[string]bool{
		"github.com/ringkv/ringkv/client":          true,
		"github.com/ringkv/ringkv/backup":          true,
		"github.com/ringkv/ringkv/proto/ringkv/v1": true,
		"github.com/ringkv/ringkv/shard":           true,
	}
	forbidden := []string{"github.com/hashicorp/", "go.etcd.io/", "github.com/boltdb/"}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/ringkv/ringkv/") && !allowed[pkg] {
			t.Errorf("client depends on %s; it may use only %v of ringkv", pkg, allowed)
		}
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("client depends on %s", pkg)
			}
		}
	}
}
