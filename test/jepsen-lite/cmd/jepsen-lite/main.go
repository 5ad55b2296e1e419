// Command jepsen-lite runs ringkv's Jepsen-style tests: a cluster of kvnode
// processes, each on a network namespace of its own, under a nemesis, with
// a linearizability check of a register workload and a lost/phantom-write
// check of a set workload. It needs root, ip and nft.
//
//	jepsen-lite --kvnode bin/kvnode --nemesis mix --duration 60s
//	jepsen-lite --kvnode bin/kvnode --nemesis all            # every nemesis in turn
//	jepsen-lite --kvnode bin/kvnode --nemesis bridge --seed 42  # replay a run's choices
//	jepsen-lite --kvnode bin/kvnode --kvnode-arg=--raft-log=wal  # more kvnode flags
//
// Each run writes a folder under --runs-dir and prints a one-line verdict.
// The exit status is 0 when every run is valid, 1 when a run found an
// anomaly or could not decide, 2 when a run could not be made, 130 when
// interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ringkv/ringkv/test/jepsen-lite/nemesis"
	"github.com/ringkv/ringkv/test/jepsen-lite/netns"
	"github.com/ringkv/ringkv/test/jepsen-lite/report"
	"github.com/ringkv/ringkv/test/jepsen-lite/runner"
	"github.com/ringkv/ringkv/test/jepsen-lite/workload"
)

// Exit statuses.
const (
	exitValid       = 0
	exitAnomaly     = 1
	exitError       = 2
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once; the next run cleans up
	}()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	prog := args[0]
	if strings.Contains(prog, "go-build") { // go run's temporary binary
		prog = "go run ./test/jepsen-lite/cmd/jepsen-lite"
	}
	fs := flag.NewFlagSet("jepsen-lite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := runner.DefaultConfig()
	var (
		nemesisName string
		verbose     bool
		cleanupOnly bool
		churn       churnBounds
	)
	fs.StringVar(&cfg.KVNode, "kvnode", "bin/kvnode", "path of the kvnode binary")
	fs.StringVar(&cfg.RunsDir, "runs-dir", "test/jepsen-lite/runs", "where run folders are made")
	fs.StringVar(&nemesisName, "nemesis", "mix", "nemesis: "+strings.Join(nemesis.Names(), ", ")+", none, or all (each in turn)")
	fs.Int64Var(&cfg.Seed, "seed", 0, "seed of every random choice (0: pick one from the clock)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the workloads and the nemesis run, per run")
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "number of nodes")
	fs.IntVar(&cfg.Shards, "shards", cfg.Shards, "shard count of the cluster")
	fs.DurationVar(&cfg.DeadAfter, "dead-after", cfg.DeadAfter, "every node's --dead-after: unreachable this long, a member is marked dead and its replicas re-created elsewhere")
	fs.IntVar(&churn.maxNodes, "max-nodes", 0, "churn: most nodes (hosts) at once; a join needs fewer (0: --nodes + 2)")
	fs.IntVar(&churn.minLive, "min-live", 0, "churn: fewest live members a removal may leave (raised to the replication factor + 1)")
	fs.IntVar(&cfg.RegisterKeys, "keys", cfg.RegisterKeys, "register keys (spread over distinct shards)")
	fs.IntVar(&cfg.RegisterWorkers, "workers", cfg.RegisterWorkers, "register workers")
	fs.IntVar(&cfg.SetWorkers, "set-workers", cfg.SetWorkers, "set workers")
	fs.Float64Var(&cfg.DirectReads, "direct-reads", cfg.DirectReads, "share of register reads sent straight to one node")
	fs.Float64Var(&cfg.CAS, "cas", cfg.CAS, "share of register writes that are compare-and-swaps (0: plain writes only)")
	fs.DurationVar(&cfg.OpTimeout, "op-timeout", cfg.OpTimeout, "deadline of each operation; past it the outcome is unknown")
	fs.BoolVar(&cfg.UnsafeLocalReads, "unsafe-local-reads", false, "negative control: start the nodes with --unsafe-local-reads (a violation is expected)")
	fs.Func("kvnode-arg", "a further flag for every kvnode, e.g. --kvnode-arg=--raft-log=wal (repeatable; one argument each)", func(v string) error {
		cfg.NodeArgs = append(cfg.NodeArgs, v)
		return nil
	})
	fs.BoolVar(&cfg.KeepData, "keep-data", false, "keep the nodes' data directories of valid runs")
	fs.BoolVar(&verbose, "v", false, "log debug details")
	fs.BoolVar(&cleanupOnly, "cleanup", false, "only remove what a crashed run left (namespaces, their processes) and exit")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitValid
		}
		return exitError
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := netns.Check(); err != nil {
		fmt.Fprintln(stderr, "jepsen-lite:", err)
		return exitError
	}
	if cleanupOnly {
		if err := netns.Cleanup(ctx, cfg.NetPrefix, cfg.Logger); err != nil {
			fmt.Fprintln(stderr, "jepsen-lite:", err)
			return exitError
		}
		return exitValid
	}
	if _, err := os.Stat(cfg.KVNode); err != nil {
		fmt.Fprintf(stderr, "jepsen-lite: kvnode binary: %v (build it: go build -o bin/ ./cmd/kvnode)\n", err)
		return exitError
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano() % 1_000_000_000
	}
	names := []string{nemesisName}
	if nemesisName == "all" {
		names = nemesis.Names()
	}
	keys := workload.RegisterKeys(cfg.RegisterKeys, uint32(cfg.Shards))
	opts := nemesis.Options{Keys: keys, MinLive: churn.minLive, MaxHosts: churn.maxNodes}
	if opts.MaxHosts == 0 {
		opts.MaxHosts = cfg.Nodes + 2
	}

	var sums []*report.Summary
	status := exitValid
	for _, name := range names {
		c := cfg
		if name != "none" {
			n, err := nemesis.ByName(name, opts)
			if err != nil {
				fmt.Fprintln(stderr, "jepsen-lite:", err)
				return exitError
			}
			c.Nemesis = n
		}
		c.Command = replay(prog, c, name, churn)
		fmt.Fprintf(stdout, "jepsen-lite: %s, seed %d, %s; replay: %s\n", name, c.Seed, c.Duration, c.Command)
		sum, err := runner.Run(ctx, c)
		if sum != nil {
			sums = append(sums, sum)
			fmt.Fprintln(stdout, sum.Line())
		}
		switch {
		case errors.Is(err, runner.ErrInterrupted) || ctx.Err() != nil:
			fmt.Fprintln(stderr, "jepsen-lite: interrupted")
			return exitInterrupted
		case err != nil:
			fmt.Fprintln(stderr, "jepsen-lite:", err)
			status = max(status, exitError)
		case sum.Failed():
			status = max(status, exitAnomaly)
		}
	}
	if len(sums) > 1 {
		fmt.Fprint(stdout, "\n"+report.Table(sums))
	}
	verdict := map[int]string{exitValid: "VALID", exitAnomaly: "ANOMALY (or inconclusive): see the run folders", exitError: "ERROR"}[status]
	fmt.Fprintf(stdout, "jepsen-lite: %d run(s), seed %d: %s\n", len(sums), cfg.Seed, verdict)
	return status
}

// churnBounds are the churn nemesis's flags.
type churnBounds struct {
	maxNodes int
	minLive  int
}

// replay returns the command line that repeats a run's choices.
func replay(prog string, c runner.Config, name string, churn churnBounds) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s --kvnode %s --nemesis %s --seed %d --duration %s --nodes %d --shards %d",
		prog, filepath.Clean(c.KVNode), name, c.Seed, c.Duration, c.Nodes, c.Shards)
	if def := runner.DefaultConfig(); c.DeadAfter != def.DeadAfter {
		fmt.Fprintf(&b, " --dead-after %s", c.DeadAfter)
	}
	if churn.maxNodes != 0 {
		fmt.Fprintf(&b, " --max-nodes %d", churn.maxNodes)
	}
	if churn.minLive != 0 {
		fmt.Fprintf(&b, " --min-live %d", churn.minLive)
	}
	if def := runner.DefaultConfig(); c.CAS != def.CAS {
		fmt.Fprintf(&b, " --cas %g", c.CAS)
	}
	if c.UnsafeLocalReads {
		b.WriteString(" --unsafe-local-reads")
	}
	for _, a := range c.NodeArgs[len(runner.DefaultConfig().NodeArgs):] {
		fmt.Fprintf(&b, " --kvnode-arg=%s", a)
	}
	return b.String()
}
