package jepsenlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/test/jepsen-lite/checker"
	"github.com/ringkv/ringkv/test/jepsen-lite/history"
	"github.com/ringkv/ringkv/test/jepsen-lite/nemesis"
	"github.com/ringkv/ringkv/test/jepsen-lite/netns"
	"github.com/ringkv/ringkv/test/jepsen-lite/report"
	"github.com/ringkv/ringkv/test/jepsen-lite/runner"
	"github.com/ringkv/ringkv/test/jepsen-lite/workload"
)

// buildKVNode builds kvnode into a temporary directory, or returns
// $JEPSEN_KVNODE when set.
func buildKVNode(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("JEPSEN_KVNODE"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "kvnode")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The go command puts its own GOROOT/bin first on the PATH of tests.
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/ringkv/ringkv/cmd/kvnode").CombinedOutput()
	if err != nil {
		t.Fatalf("go build kvnode: %v\n%s", err, out)
	}
	return bin
}

// scenario is the negative control's run: three nodes; first the leader of
// a register key's shard is cut off from the others for several seconds,
// then the leader of a register key's shard is paused. Every read goes
// straight to one node (worker i to node i mod 3), so readers keep reading
// from the cut-off leader while the writers, through the client library,
// move to the new leader on the majority side. A node that serves reads
// without confirming its leadership then returns values that acknowledged
// writes have overwritten: the checker must say so.
func scenario(t *testing.T, kvnode string, unsafe bool) *report.Summary {
	t.Helper()
	cfg := runner.DefaultConfig()
	cfg.KVNode = kvnode
	cfg.Seed = 7
	cfg.Nodes = 3
	cfg.RegisterKeys = 3
	cfg.RegisterWorkers = 6
	cfg.DirectReads = 1
	cfg.Duration = 20 * time.Second
	cfg.Schedule = nemesis.Schedule{
		Quiet: nemesis.Span{Min: 2 * time.Second, Max: 3 * time.Second},
		Hold:  nemesis.Span{Min: 6 * time.Second, Max: 7 * time.Second},
	}
	cfg.UnsafeLocalReads = unsafe
	keys := workload.RegisterKeys(cfg.RegisterKeys, uint32(cfg.Shards))
	cfg.Nemesis = &nemesis.Sequence{Steps: []nemesis.Nemesis{nemesis.IsolateLeader{Keys: keys}, nemesis.PauseLeader{Keys: keys}}}
	runs, err := os.MkdirTemp("", "jepsen-lite-test-")
	if err != nil {
		t.Fatal(err)
	}
	cfg.RunsDir = runs
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sum, err := runner.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run failed (folder kept: %s): %v", runs, err)
	}
	t.Log(sum.Line())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("run folder kept: %s", sum.Dir)
			return
		}
		_ = os.RemoveAll(runs)
	})
	// The schedule fits both faults; a starved machine may fail to find a
	// leader in time for one (the timeline says so), which is no reason
	// to fail, but a run without any fault proves nothing.
	if sum.Faults < 1 {
		t.Errorf("no fault injected (%d inject errors): the scenario did not happen", sum.FaultErrors)
	}
	return sum
}

func requireHosts(t *testing.T) {
	t.Helper()
	if err := netns.Check(); err != nil {
		t.Skipf("skipping jepsen-lite scenario: %v", err)
	}
}

// TestNegativeControl runs the scenario against nodes that serve reads
// from their local replica without confirming leadership, and requires the
// checker to find the stale reads.
func TestNegativeControl(t *testing.T) {
	requireHosts(t)
	sum := scenario(t, buildKVNode(t), true)
	if sum.Register.Verdict != checker.Invalid {
		t.Errorf("register verdict with --unsafe-local-reads = %s; want %s: the checker missed the stale reads", sum.Register.Verdict, checker.Invalid)
	}
}

// TestLinearizable runs the same scenario against normal nodes: the
// register must be linearizable and the set must lose nothing.
func TestLinearizable(t *testing.T) {
	requireHosts(t)
	sum := scenario(t, buildKVNode(t), false)
	if sum.Verdict != checker.Valid {
		t.Errorf("verdict = %s; want %s", sum.Verdict, checker.Valid)
	}
	for _, k := range sum.Register.Keys {
		if k.Verdict != checker.Valid {
			t.Errorf("register %s: %s", k.Key, k.Verdict)
		}
	}
	if len(sum.Set.Lost)+len(sum.Set.Phantom)+len(sum.Set.Corrupt) > 0 {
		t.Errorf("set: lost %q, phantom %q, corrupt %q", sum.Set.Lost, sum.Set.Phantom, sum.Set.Corrupt)
	}
	if sum.Set.Acknowledged == 0 || sum.Ops.Register.OK == 0 {
		t.Errorf("nothing acknowledged (register ok %d, set acked %d): the scenario did not exercise the cluster", sum.Ops.Register.OK, sum.Set.Acknowledged)
	}
}

// TestChurn runs the churn nemesis alone against 4 nodes for 20 s, a
// change every 2-4 s: nodes join on new hosts and members are removed and
// stopped, while the workloads run. The run must be valid, settle, have
// completed a join and a removal, and direct reads must have reached a node
// that joined (the test process reaches the new hosts).
func TestChurn(t *testing.T) {
	requireHosts(t)
	cfg := runner.DefaultConfig()
	cfg.KVNode = buildKVNode(t)
	cfg.Seed = 7
	cfg.Nodes = 4
	cfg.RegisterKeys = 4
	cfg.RegisterWorkers = 6
	cfg.Duration = 20 * time.Second
	cfg.Schedule = nemesis.Schedule{
		Quiet: nemesis.Span{Min: time.Second, Max: 2 * time.Second},
		Hold:  nemesis.Span{Min: time.Second, Max: 2 * time.Second},
	}
	cfg.Nemesis = nemesis.Churn{MaxHosts: cfg.Nodes + 2}
	runs, err := os.MkdirTemp("", "jepsen-lite-test-")
	if err != nil {
		t.Fatal(err)
	}
	cfg.RunsDir = runs
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sum, err := runner.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run failed (folder kept: %s): %v", runs, err)
	}
	t.Log(sum.Line())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("run folder kept: %s", sum.Dir)
			return
		}
		_ = os.RemoveAll(runs)
	})
	if sum.Verdict != checker.Valid {
		t.Errorf("verdict = %s; want %s", sum.Verdict, checker.Valid)
	}
	if sum.SettleError != "" {
		t.Errorf("the cluster did not settle: %s", sum.SettleError)
	}
	m := sum.Membership
	if m.Joined < 1 || m.Left < 1 || m.Stopped != m.Left {
		t.Errorf("membership %+v: want a join listed, a removal completed, and every node that left stopped", m)
	}
	f, err := os.Open(filepath.Join(sum.Dir, report.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	joinedReads := 0
	for dec := json.NewDecoder(f); ; {
		var op history.Op
		if err := dec.Decode(&op); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", report.HistoryFile, err)
		}
		if n, _ := strconv.Atoi(strings.TrimPrefix(op.Node, "n")); n > cfg.Nodes && op.Outcome == history.OK {
			joinedReads++
		}
	}
	if joinedReads == 0 {
		t.Error("no direct read was answered by a node that joined")
	}
}

// testWriter sends a run's log to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
