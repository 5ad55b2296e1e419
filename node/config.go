package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/ringkv/ringkv/pki"

	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/ring"
	"github.com/ringkv/ringkv/rpc"
	"github.com/ringkv/ringkv/shard"
)

// Peer is a node ID and its gRPC address.
type Peer struct {
	ID   string
	Addr string
}

// Config configures a node. The zero value of every optional field takes
// the default documented on it.
type Config struct {
	// ID is this node's unique, stable name (letters, digits, '.', '_',
	// '-'; at most 64 bytes). Required.
	ID string
	// ListenAddr is the host:port the gRPC server listens on. Required.
	ListenAddr string
	// AdvertiseAddr is the address other nodes and clients reach this node
	// at. Default: ListenAddr (after resolving port 0).
	AdvertiseAddr string
	// DataDir holds the node's Raft logs, snapshots and identity. Required.
	DataDir string
	// RaftLog is the kind of store that keeps the Raft logs of all the
	// node's shard replicas: RaftLogWAL (segment files in DataDir/raft-wal)
	// or RaftLogBolt (one bbolt file, DataDir/raft.db). Default
	// RaftLogAuto: the kind the DataDir already holds, and RaftLogWAL for a
	// new one. Named explicitly, a node refuses to start on a DataDir that
	// holds the other kind's log. The metadata group keeps its own store
	// either way.
	RaftLog string
	// InitialCluster lists every member of a new cluster, this node
	// included. Every initial member must be given the same list. Ignored
	// when DataDir already holds a cluster. With neither InitialCluster
	// nor Join, a node with an empty DataDir creates a one-node cluster.
	InitialCluster []Peer
	// Join lists addresses of members of a running cluster to join (any
	// of them will do). Ignored when DataDir already holds a cluster.
	Join []string
	// DeadAfter is how long a member may be unreachable from the metadata
	// leader before it is marked dead and its replicas are re-created on
	// the other nodes. Default 1 minute.
	DeadAfter time.Duration
	// MaxMovesPerNode bounds the replica moves in progress that involve
	// any one node (as source or destination). Default 2.
	MaxMovesPerNode int
	// SnapshotRate bounds the bytes per second of snapshot data this node
	// sends to catching-up replicas (all shards together). Default
	// 32 MiB/s; negative means no limit.
	SnapshotRate int64
	// ControllerInterval is how often the metadata leader checks members'
	// liveness, the metadata group's membership and the moves to start,
	// and how often every node checks the moves it drives. Default 500ms.
	ControllerInterval time.Duration
	// Shards is the shard count of a new cluster. Default 64.
	Shards int
	// Replicas is the replication factor of a new cluster. Default 3.
	Replicas int
	// VirtualNodes is the number of ring positions per node. Default 128.
	VirtualNodes int
	// Limits bounds client input (key and value sizes).
	Limits rpc.Limits
	// Timing sets the Raft timers of every group. Default
	// replication.DefaultTiming().
	Timing replication.Timing
	// SnapshotThreshold: see replication.Config. Default 8192.
	SnapshotThreshold uint64
	// LeaderBalanceInterval is how often the node hands the leadership of
	// shards it leads to their preferred leaders (ring.PreferredLeaders), so
	// that every node leads about as many shards as the others. Default
	// 5s; negative disables it.
	LeaderBalanceInterval time.Duration
	// Logger receives the node's logs. Default slog.Default().
	Logger *slog.Logger
	// RaftLogOutput receives hashicorp/raft's warnings and errors. Default
	// os.Stderr.
	RaftLogOutput io.Writer

	// Listener, when set, is used instead of listening on ListenAddr (tests
	// pick free ports this way before they know every address).
	Listener net.Listener
	// DialOptions are added to every connection to a peer node.
	DialOptions []grpc.DialOption
	// HTTPAddr, when set, serves Prometheus /metrics, /healthz (the process
	// is up) and /readyz (ready: cluster metadata loaded, every hosted
	// replica open, every hosted shard with a leader) on this host:port.
	HTTPAddr string
	// TLS, when set, makes every connection TLS, client and peer alike:
	// the node presents TLS.Cert (a node certificate, see package pki),
	// dials peers with it, and accepts only peers whose certificate the CA
	// TLS.CA signed; only callers with node certificates may use the
	// internal services. Clients need the CA to verify the node and may
	// connect without a certificate. Unset: plaintext.
	TLS pki.Files
	// UnsafeLocalReads serves reads from the local replica without
	// confirming leadership: NOT linearizable. It exists only as the
	// negative control of the read-path tests and jepsen-lite, which must
	// catch the stale reads it allows. Never set it in production.
	UnsafeLocalReads bool
	// MaxInflight bounds the KV calls (client calls and calls forwarded by
	// other nodes; not watches, Raft or admin traffic) this node serves at
	// once. A call over the bound fails at once with ResourceExhausted,
	// which the client library retries after a backoff. Default
	// DefaultMaxInflight; negative: unlimited.
	MaxInflight int
	// MaxInflightPerShard bounds the requests waiting on one shard replica
	// of this node (its proposals and read barriers, which wait on the
	// leader), so that a stuck shard cannot take the node's whole capacity;
	// over it, ResourceExhausted at once. Default
	// DefaultMaxInflightPerShard; negative: unlimited.
	MaxInflightPerShard int
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (c *Config) setDefaults() {
	if c.Shards == 0 {
		c.Shards = shard.DefaultCount
	}
	if c.Replicas == 0 {
		c.Replicas = ring.DefaultReplicas
	}
	if c.VirtualNodes == 0 {
		c.VirtualNodes = ring.DefaultVirtualNodes
	}
	if c.Timing == (replication.Timing{}) {
		c.Timing = replication.DefaultTiming()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = time.Minute
	}
	if c.MaxMovesPerNode == 0 {
		c.MaxMovesPerNode = 2
	}
	if c.ControllerInterval == 0 {
		c.ControllerInterval = 500 * time.Millisecond
	}
	if c.LeaderBalanceInterval == 0 {
		c.LeaderBalanceInterval = 5 * time.Second
	}
	c.Limits = c.Limits.WithDefaults()
	if c.RaftLog == "" {
		c.RaftLog = RaftLogAuto
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxInflightPerShard == 0 {
		c.MaxInflightPerShard = DefaultMaxInflightPerShard
	}
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if !idPattern.MatchString(c.ID) {
		return fmt.Errorf("node id %q: want 1-64 letters, digits, '.', '_' or '-'", c.ID)
	}
	if c.Listener == nil {
		if c.ListenAddr == "" {
			return errors.New("listen address is required")
		}
		if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
			return fmt.Errorf("listen address %q: %w", c.ListenAddr, err)
		}
	}
	if c.DataDir == "" {
		return errors.New("data directory is required")
	}
	if c.RaftLog != RaftLogAuto && c.RaftLog != RaftLogBolt && c.RaftLog != RaftLogWAL {
		return fmt.Errorf("raft log %q: want %q, %q or %q", c.RaftLog, RaftLogAuto, RaftLogWAL, RaftLogBolt)
	}
	if c.Shards < 1 || c.Shards > shard.MaxCount {
		return fmt.Errorf("shard count %d: want 1..%d", c.Shards, shard.MaxCount)
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	if c.Replicas < 1 || c.Replicas > 7 {
		return fmt.Errorf("replication factor %d: want 1..7", c.Replicas)
	}
	seen := map[string]bool{}
	self := false
	for _, p := range c.InitialCluster {
		if !idPattern.MatchString(p.ID) {
			return fmt.Errorf("initial cluster: node id %q: want 1-64 letters, digits, '.', '_' or '-'", p.ID)
		}
		if _, _, err := net.SplitHostPort(p.Addr); err != nil {
			return fmt.Errorf("initial cluster: %s=%s: %w", p.ID, p.Addr, err)
		}
		if seen[p.ID] {
			return fmt.Errorf("initial cluster: node %q listed twice", p.ID)
		}
		seen[p.ID] = true
		self = self || p.ID == c.ID
	}
	if len(c.InitialCluster) > 0 && !self {
		return fmt.Errorf("initial cluster does not list this node (%s)", c.ID)
	}
	if len(c.InitialCluster) > 0 && len(c.Join) > 0 {
		return errors.New("give either an initial cluster (to create one) or addresses to join (to join one), not both")
	}
	for _, a := range c.Join {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("join address %q: %w", a, err)
		}
	}
	if c.DeadAfter < 0 {
		return fmt.Errorf("dead-after %v: want a positive duration", c.DeadAfter)
	}
	if c.MaxMovesPerNode < 0 {
		return fmt.Errorf("max moves per node %d: want at least 1", c.MaxMovesPerNode)
	}
	return nil
}

// ParseInitialCluster parses "n1=host:port,n2=host:port,...".
func ParseInitialCluster(s string) ([]Peer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Peer
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("initial cluster entry %q: want ID=HOST:PORT", part)
		}
		out = append(out, Peer{ID: id, Addr: addr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
