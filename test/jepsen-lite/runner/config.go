// Package runner runs one jepsen-lite test: it makes a host per node,
// starts a kvnode on each, runs the register and set workloads while a
// nemesis injects faults, heals the cluster, makes the final reads, checks
// the history, and writes the run folder.
package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ringkv/ringkv/test/jepsen-lite/nemesis"
)

// Config configures a run. Start from DefaultConfig.
type Config struct {
	// KVNode is the path of the kvnode binary. Required.
	KVNode string
	// RunsDir is where the run folder is made. Required.
	RunsDir string
	// Seed seeds every random choice: the nemesis's targets and timing,
	// the workloads' keys and values. Wall-clock timing still varies.
	Seed int64
	// Nemesis injects the faults; nil runs without any.
	Nemesis nemesis.Nemesis
	// Schedule says when the nemesis acts.
	Schedule nemesis.Schedule
	// Duration is how long the workloads and the nemesis run.
	Duration time.Duration

	// Nodes, Shards and Replicas shape the cluster.
	Nodes    int
	Shards   int
	Replicas int
	// UnsafeLocalReads starts every node with --unsafe-local-reads: the
	// negative control, which must be caught.
	UnsafeLocalReads bool
	// DeadAfter is every node's --dead-after: how long a member may be
	// unreachable before the cluster marks it dead and re-creates its
	// replicas elsewhere. DefaultConfig's 5 s (kvnode's default is a
	// minute) is shorter than the longest faults, so kills, pauses and
	// cuts exercise dead-marking and the return of dead members.
	DeadAfter time.Duration
	// NodeArgs are further kvnode flags; DefaultConfig sets the short
	// Raft timers.
	NodeArgs []string

	// RegisterKeys, RegisterWorkers and SetWorkers size the workloads.
	RegisterKeys    int
	RegisterWorkers int
	SetWorkers      int
	// Reads is the share of register operations that are reads;
	// DirectReads the share of those sent straight to one node (worker i
	// reads from node i mod Nodes) instead of through the client
	// library's routing.
	Reads       float64
	DirectReads float64
	// CAS is the share of the register's other operations that are
	// compare-and-swaps rather than plain writes.
	CAS float64
	// Think is the mean pause between two operations of a worker.
	Think time.Duration
	// OpTimeout bounds each operation, retries included: past it the
	// operation's outcome is unknown. AttemptTimeout bounds each attempt
	// inside the client library, so that an operation stuck on a dead or
	// cut-off node moves on to another within the same operation.
	OpTimeout      time.Duration
	AttemptTimeout time.Duration

	// CheckTimeout bounds porcupine's search per register key; a key
	// that takes longer is inconclusive.
	CheckTimeout time.Duration
	// KeepData keeps the nodes' data directories of a valid run (an
	// invalid or failed run always keeps them).
	KeepData bool

	// NetPrefix and Subnet name the namespaces and pick the /24 (see
	// netns.Config).
	NetPrefix string
	Subnet    string

	// Command is the command line that replays the run, for the summary.
	Command string
	// Logger receives progress; the run folder's run.log gets it too.
	Logger *slog.Logger
}

// DefaultConfig returns a 5-node, 8-shard run of 60 s with the default
// nemesis schedule and short Raft timers. KVNode, RunsDir, Seed and
// Nemesis are left to the caller.
func DefaultConfig() Config {
	return Config{
		Schedule:  nemesis.DefaultSchedule(),
		Duration:  60 * time.Second,
		Nodes:     5,
		Shards:    8,
		Replicas:  3,
		DeadAfter: 5 * time.Second,
		// kvnode's default timers (2 s) are relaxed for idle cost; these
		// make elections, and so runs, short.
		NodeArgs: []string{
			"--heartbeat-timeout", "500ms",
			"--election-timeout", "500ms",
			"--leader-lease-timeout", "250ms",
			"--commit-timeout", "50ms",
		},
		RegisterKeys:    8,
		RegisterWorkers: 10,
		SetWorkers:      2,
		Reads:           0.5,
		DirectReads:     0.3,
		CAS:             0.5,
		Think:           50 * time.Millisecond,
		OpTimeout:       2 * time.Second,
		AttemptTimeout:  500 * time.Millisecond,
		CheckTimeout:    time.Minute,
	}
}

// Validate reports a configuration that cannot run.
func (c *Config) Validate() error {
	switch {
	case c.KVNode == "":
		return errors.New("runner: no kvnode binary")
	case c.RunsDir == "":
		return errors.New("runner: no runs directory")
	case c.Nodes < 1 || c.Nodes > 50:
		return fmt.Errorf("runner: %d nodes: need 1 to 50", c.Nodes)
	case c.Replicas < 1 || c.Replicas > c.Nodes:
		return fmt.Errorf("runner: %d replicas of %d nodes", c.Replicas, c.Nodes)
	case c.Shards < 1:
		return fmt.Errorf("runner: %d shards", c.Shards)
	case c.RegisterKeys < 1 || c.RegisterWorkers < 1 || c.SetWorkers < 0:
		return fmt.Errorf("runner: workload %d keys, %d register workers, %d set workers", c.RegisterKeys, c.RegisterWorkers, c.SetWorkers)
	case c.Reads < 0 || c.Reads > 1 || c.DirectReads < 0 || c.DirectReads > 1 || c.CAS < 0 || c.CAS > 1:
		return fmt.Errorf("runner: shares must be in [0, 1]: reads %g, direct reads %g, cas %g", c.Reads, c.DirectReads, c.CAS)
	case c.Duration <= 0 || c.OpTimeout <= 0 || c.AttemptTimeout <= 0 || c.CheckTimeout <= 0 || c.DeadAfter <= 0:
		return errors.New("runner: durations and timeouts must be > 0")
	case c.Schedule.Quiet.Min <= 0 || c.Schedule.Hold.Min <= 0:
		return errors.New("runner: schedule spans must be > 0")
	}
	return nil
}

// NemesisName is the nemesis's name, "none" without one.
func (c *Config) NemesisName() string {
	if c.Nemesis == nil {
		return "none"
	}
	return c.Nemesis.Name()
}
