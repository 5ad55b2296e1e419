// Command kvnode runs one ringkv node.
//
//	kvnode --id n1 --listen 127.0.0.1:7001 --data-dir /var/lib/ringkv/n1 \
//	    --initial-cluster n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003
//
// Every member of a new cluster is started with the same --initial-cluster.
// A node started with --join ADDR[,ADDR] joins a running cluster through
// any of its members; one started with neither creates a one-node cluster
// that others can join. Restarted with the same --data-dir, a node rejoins
// with its data (the flags are then ignored). SIGINT or SIGTERM shuts it
// down cleanly.
//
// Every flag can also be set in a YAML or TOML file named by --config (keys
// are flag names: data-dir) or by an environment variable (RINGKV_DATA_DIR);
// the command line wins over the environment, which wins over the file.
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
	"strings"
	"syscall"
	"time"

	"github.com/ringkv/ringkv/node"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/rpc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "kvnode:", err)
		}
		os.Exit(2)
	}
}

// run parses args, then environ's RINGKV_ variables and the config file
// (see applyConfig), and runs a node until ctx ends.
func run(ctx context.Context, args, environ []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kvnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg            node.Config
		initialCluster string
		join           string
		logLevel       string
		debugAddr      string
		timing         = replication.DefaultTiming()
		maxInflight    int
		maxPerShard    int
	)
	fs.StringVar(&cfg.ID, "id", "", "this node's unique ID (required)")
	fs.StringVar(&cfg.ListenAddr, "listen", "127.0.0.1:7001", "host:port to serve gRPC on (clients and peers)")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise", "", "address peers and clients reach this node at (default: --listen)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory for Raft logs and snapshots (required)")
	fs.StringVar(&cfg.RaftLog, "raft-log", node.RaftLogAuto, "store of the shard groups' Raft logs: wal (segment files, DATA/raft-wal), bolt (one bbolt file, DATA/raft.db), or auto (the kind the data dir holds, wal for a new one); named explicitly, a node refuses a data dir holding the other kind")
	fs.StringVar(&cfg.HTTPAddr, "http", "", "serve Prometheus /metrics, /healthz and /readyz on `host:port` (default: off)")
	fs.StringVar(&cfg.TLS.CA, "cacert", "", "cluster CA certificate `FILE`: turns TLS on for clients and peers; peers must present certificates it signed (with --cert, --key)")
	fs.StringVar(&cfg.TLS.Cert, "cert", "", "this node's certificate `FILE` (a node certificate: kvctl certs create)")
	fs.StringVar(&cfg.TLS.Key, "key", "", "the private key `FILE` of --cert")
	fs.StringVar(&initialCluster, "initial-cluster", "", "members of a new cluster: id=host:port,... (the same on every initial member)")
	fs.StringVar(&join, "join", "", "join a running cluster through any of its members: host:port[,host:port...]")
	fs.DurationVar(&cfg.DeadAfter, "dead-after", time.Minute, "mark a member dead, and re-create its replicas elsewhere, after it is unreachable this long")
	fs.IntVar(&cfg.MaxMovesPerNode, "max-moves-per-node", 2, "replica moves in progress at once per node (as source or destination)")
	fs.Int64Var(&cfg.SnapshotRate, "snapshot-rate", 32<<20, "bytes per second of snapshot data this node sends to catching-up replicas (negative: unlimited)")
	fs.IntVar(&cfg.Shards, "shards", 64, "shard count of a new cluster")
	fs.IntVar(&cfg.Replicas, "replicas", 3, "replication factor of a new cluster")
	fs.IntVar(&cfg.Limits.MaxKeySize, "max-key-size", rpc.DefaultMaxKeySize, "largest accepted key in bytes")
	fs.IntVar(&cfg.Limits.MaxValueSize, "max-value-size", rpc.DefaultMaxValueSize, "largest accepted value in bytes")
	fs.DurationVar(&timing.HeartbeatTimeout, "heartbeat-timeout", timing.HeartbeatTimeout, "Raft heartbeat timeout of every group")
	fs.DurationVar(&timing.ElectionTimeout, "election-timeout", timing.ElectionTimeout, "Raft election timeout of every group")
	fs.DurationVar(&timing.LeaderLeaseTimeout, "leader-lease-timeout", timing.LeaderLeaseTimeout, "Raft leader lease timeout of every group")
	fs.DurationVar(&timing.CommitTimeout, "commit-timeout", timing.CommitTimeout, "Raft commit timeout of every group")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&cfg.UnsafeLocalReads, "unsafe-local-reads", false, "TESTING ONLY: serve reads from the local replica without confirming leadership (not linearizable; the negative control of jepsen-lite)")
	fs.StringVar(&debugAddr, "debug-addr", "", "host:port for Go's pprof profiles under /debug/pprof/ (off when empty)")
	fs.IntVar(&maxInflight, "max-inflight", node.DefaultMaxInflight, "KV calls this node serves at once (client and forwarded; not watches); over it, calls fail at once with ResourceExhausted (0: unlimited)")
	fs.IntVar(&maxPerShard, "max-inflight-per-shard", node.DefaultMaxInflightPerShard, "requests waiting on one shard replica of this node at once; over it, ResourceExhausted at once (0: unlimited)")
	fs.String(configFlag, "", "read flags from a YAML (.yaml, .yml) or TOML (.toml) `FILE` whose keys are flag names; every flag can also be set as RINGKV_<FLAG> (RINGKV_DATA_DIR for --data-dir); the command line wins over the environment, which wins over the file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ignored, err := applyConfig(fs, environ)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	for _, w := range ignored {
		cfg.Logger.Warn("ignoring " + w)
	}
	cfg.Timing = timing
	cfg.MaxInflight, cfg.MaxInflightPerShard = unlimitedIfZero(maxInflight), unlimitedIfZero(maxPerShard)
	peers, err := node.ParseInitialCluster(initialCluster)
	if err != nil {
		return fmt.Errorf("--initial-cluster: %w", err)
	}
	cfg.InitialCluster = peers
	for _, a := range strings.Split(join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Join = append(cfg.Join, a)
		}
	}

	if debugAddr != "" {
		stopDebug, err := serveDebug(debugAddr, cfg.Logger)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	if cfg.UnsafeLocalReads {
		cfg.Logger.Warn("--unsafe-local-reads is on: reads are NOT linearizable")
	}
	n, err := node.Start(cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.Stop(stopCtx)
}

// unlimitedIfZero maps a flag's "0 or less: unlimited" to node.Config's
// "negative: unlimited" (0 there means the default).
func unlimitedIfZero(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}
