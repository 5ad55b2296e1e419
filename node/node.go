package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ringkv/ringkv/cluster"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/ring"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/rpc"
	"github.com/ringkv/ringkv/shard"
)

// maxAppendEntries bounds the log entries in one AppendEntries. With values
// up to 1 MiB one message can carry 64 MiB; the gRPC server's message limit
// is sized from it.
const maxAppendEntries = 64

// MetaGroup is the Raft group ID of the cluster metadata. Shard groups use
// their shard ID, which is below 2^32.
const MetaGroup uint64 = 1 << 32

// Node is a running ringkv daemon.
type Node struct {
	cfg    Config
	logger *slog.Logger

	lis        net.Listener
	server     *grpc.Server
	health     *health.Server
	mux        *replication.Mux
	router     *router.Router
	confirmer  *rpc.Confirmer
	metaClient *rpc.MetaClient
	authGate   *authGate // see node/auth.go

	meta    *replication.Group
	joining bool // a new node asking to join (set by openMeta)
	metaSM  *cluster.StateMachine
	// logStore holds the Raft logs of every shard replica on this node, so
	// that one fsync commits the entries of many groups (Config.RaftLog).
	logStore raftLog
	logPath  string // the file or directory logStore keeps its data in
	// raftObs feeds the Raft latency histograms of every group.
	raftObs *raftObserver
	// moveMetrics count the moves this node's shard leaders finished.
	moveMetrics *moveMetrics
	serveErr    chan error
	// overload bounds the requests in flight, per node and per shard.
	overload *overload
	// http serves /metrics, /healthz and /readyz (Config.HTTPAddr).
	http     *http.Server
	httpAddr string

	mu struct {
		sync.Mutex
		shards map[shard.ID]*shardReplica
		// tombstones: the epoch at which each dropped replica was dropped.
		tombstones map[shard.ID]uint64
		closed     bool
	}

	stop chan struct{}
	// life ends when the node stops (endLife is called with close(stop)):
	// the context of the background loops' blocking calls.
	life     context.Context
	endLife  context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// identity is written to the data directory on first start so a node can
// never be started on another node's data by mistake.
type identity struct {
	NodeID string `json:"node_id"`
}

// Start validates cfg, opens the data directory and starts serving. It
// returns once the node listens; the cluster metadata and the shard groups
// come up in the background (see Ready).
func Start(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	if err := checkIdentity(cfg.DataDir, cfg.ID); err != nil {
		return nil, err
	}
	tombstones, err := readTombstones(filepath.Join(cfg.DataDir, "shards"))
	if err != nil {
		return nil, err
	}
	var serverTLS, peerTLS *tls.Config
	if cfg.TLS.Enabled() {
		if serverTLS, err = cfg.TLS.ServerConfig(); err != nil {
			return nil, err
		}
		// Nodes dial each other with their own certificate.
		if peerTLS, err = cfg.TLS.ClientConfig(); err != nil {
			return nil, err
		}
	}
	logStore, raftLogKind, err := openRaftLog(cfg.DataDir, cfg.RaftLog)
	if err != nil {
		return nil, fmt.Errorf("opening the shared raft log: %w", err)
	}
	lis := cfg.Listener
	if lis == nil {
		if lis, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			logStore.Close()
			return nil, fmt.Errorf("listen: %w", err)
		}
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = lis.Addr().String()
	}
	n := &Node{
		cfg:      cfg,
		logger:   cfg.Logger.With("node", cfg.ID),
		lis:      lis,
		logStore: logStore,
		logPath:  raftLogPath(cfg.DataDir, raftLogKind),
		stop:     make(chan struct{}),
		serveErr: make(chan error, 1),
		authGate: newAuthGate(cfg.DataDir),
	}
	n.life, n.endLife = context.WithCancel(context.Background())
	n.mu.shards = map[shard.ID]*shardReplica{}
	n.mu.tombstones = tombstones
	dialOpts := []grpc.DialOption{
		// Forwarded reads bring back values up to the limit.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.Limits.MaxMessageSize())),
	}
	serverOpts := append(replication.ServerOptions(),
		grpc.MaxRecvMsgSize(maxAppendEntries*cfg.Limits.MaxMessageSize()))
	// The registry is built before the node's parts exist; its collector
	// reads them only when scraped, after Start returned.
	reg := n.newRegistry()
	// First: every call (but Raft's) gets its trace ID and request log, the
	// ones the interceptors below refuse included.
	traceUnary, traceStream := rpc.TraceInterceptors(n.logger)
	serverOpts = append(serverOpts, grpc.ChainUnaryInterceptor(traceUnary), grpc.ChainStreamInterceptor(traceStream))
	metricsUnary, metricsStream := rpc.NewServerMetrics(reg).Interceptors()
	serverOpts = append(serverOpts, grpc.ChainUnaryInterceptor(metricsUnary), grpc.ChainStreamInterceptor(metricsStream))
	// Bulkheads: a bound on the KV calls the node serves, and one per shard
	// replica (see overload.go).
	n.overload = newOverload(cfg, reg)
	serverOpts = append(serverOpts, grpc.ChainUnaryInterceptor(rpc.NodeBulkheadInterceptor(n.overload.node, n.overload.rejectedNode)))
	if cfg.TLS.Enabled() {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(credentials.NewTLS(peerTLS)))
		unary, stream := rpc.NodeOnlyInterceptors()
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(serverTLS)),
			grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	}
	// Auth (users, roles) is checked after the node-only check, on every
	// node; it lets everything through while auth is disabled.
	authUnary, authStream := rpc.NewGuard(n, rpc.GuardConfig{}).Interceptors()
	serverOpts = append(serverOpts, grpc.ChainUnaryInterceptor(authUnary), grpc.ChainStreamInterceptor(authStream))
	n.mux = replication.NewMux(replication.MuxConfig{
		LocalAddr:    cfg.AdvertiseAddr,
		SnapshotRate: cfg.SnapshotRate,
		DialOptions:  append(dialOpts, cfg.DialOptions...),
		Logger:       n.logger,
	})
	n.metaSM = cluster.NewStateMachine()
	n.confirmer = rpc.NewConfirmer(n.mux)
	n.metaClient = rpc.NewMetaClient(n.mux)
	n.router = router.New(router.Config{
		NodeID:           cfg.ID,
		UnsafeLocalReads: cfg.UnsafeLocalReads,
	}, n.metaSM, n, rpc.NewForwarder(n.mux))

	// One server carries both the public API and Raft: its message limit
	// must fit an AppendEntries of MaxAppendEntries entries of the largest
	// value. Oversized client requests are still refused, by validation,
	// with InvalidArgument.
	n.server = grpc.NewServer(serverOpts...)
	n.health = health.NewServer()
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(n.server, n.health)
	ringkvv1.RegisterRaftTransportServer(n.server, n.mux)
	ringkvv1.RegisterKVServer(n.server, rpc.NewKVServer(n.router, cfg.Limits))
	ringkvv1.RegisterShardKVServer(n.server, rpc.NewShardKVServer(n.router, cfg.Limits))
	ringkvv1.RegisterClusterServer(n.server, rpc.NewClusterServer(n))
	ringkvv1.RegisterReadConfirmServer(n.server, rpc.NewReadConfirmServer(n))
	ringkvv1.RegisterMetaServer(n.server, rpc.NewMetaServer(n))
	ringkvv1.RegisterAuthServer(n.server, rpc.NewAuthServer(n))
	ringkvv1.RegisterBackupServer(n.server, rpc.NewBackupServer(n.router))
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.serveErr <- n.server.Serve(lis)
	}()

	if err := n.openMeta(); err != nil {
		n.Stop(context.Background())
		return nil, err
	}
	n.wg.Add(6)
	go n.authMarkerLoop()
	go n.initializeCluster()
	go n.reconcileLoop()
	go n.controlLoop()
	go n.moveLoop()
	go n.expireLoop()
	if n.joining {
		n.wg.Add(1)
		go n.joinCluster()
	}
	if cfg.LeaderBalanceInterval > 0 {
		n.wg.Add(1)
		go n.balanceLeadership()
	}
	if cfg.HTTPAddr != "" {
		if err := n.startHTTP(reg); err != nil {
			n.Stop(context.Background())
			return nil, err
		}
	}
	n.logger.Info("node started", "listen", lis.Addr().String(), "advertise", cfg.AdvertiseAddr, "data_dir", cfg.DataDir, "raft_log", raftLogKind)
	return n, nil
}

func checkIdentity(dir, id string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, "node.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b, _ = json.Marshal(identity{NodeID: id})
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	var got identity
	if err := json.Unmarshal(b, &got); err != nil {
		return fmt.Errorf("data directory: %s: %w", path, err)
	}
	if got.NodeID != id {
		return fmt.Errorf("data directory %s belongs to node %q, not %q", dir, got.NodeID, id)
	}
	return nil
}

// Addr returns the address the node serves on.
func (n *Node) Addr() string { return n.cfg.AdvertiseAddr }

// ID returns the node's ID.
func (n *Node) ID() string { return n.cfg.ID }

func (n *Node) groupConfig(id uint64, dir string, sm replication.StateMachine, noop []byte) (replication.Config, error) {
	t, err := n.mux.Transport(id)
	if err != nil {
		return replication.Config{}, err
	}
	return replication.Config{
		Group:             id,
		NodeID:            n.cfg.ID,
		Dir:               dir,
		Transport:         t,
		StateMachine:      sm,
		NoopCommand:       noop,
		Timing:            n.cfg.Timing,
		SnapshotThreshold: n.cfg.SnapshotThreshold,
		MaxAppendEntries:  maxAppendEntries,
		Confirmer:         n.confirmer,
		Observer:          n.raftObs,
		Logger:            n.logger,
		RaftLogOutput:     n.cfg.RaftLogOutput,
	}, nil
}

func (n *Node) openMeta() error {
	dir := filepath.Join(n.cfg.DataDir, "meta")
	gc, err := n.groupConfig(MetaGroup, dir, metaSM{n.metaSM}, cluster.NoopCommand())
	if err != nil {
		return err
	}
	g, err := replication.Open(gc)
	if err != nil {
		return fmt.Errorf("metadata group: %w", err)
	}
	n.meta = g
	hadState, err := g.HasState()
	if err != nil {
		return fmt.Errorf("metadata group: %w", err)
	}
	switch {
	case hadState:
		// A restart: the node's cluster is in its data; flags that create
		// or join one are ignored.
		return nil
	case len(n.cfg.Join) > 0:
		n.joining = true
		// The metadata reaches this node through the metadata group once
		// the cluster's controller adds it (see joinCluster).
		return nil
	case len(n.cfg.InitialCluster) == 0:
		// Neither joining nor given a cluster: create a one-node cluster.
		// Shards run with one replica and are up-replicated as nodes join.
		n.cfg.InitialCluster = []Peer{{ID: n.cfg.ID, Addr: n.cfg.AdvertiseAddr}}
		n.logger.Info("creating a new one-node cluster (no --join or --initial-cluster given)")
	}
	var voters []replication.Server
	for _, p := range n.cfg.InitialCluster {
		voters = append(voters, replication.Server{ID: p.ID, Addr: p.Addr})
	}
	if err := g.Bootstrap(voters); err != nil {
		return fmt.Errorf("metadata group: %w", err)
	}
	return nil
}

// initializeCluster commits the cluster's first metadata (members, shard
// count, placement) once this node leads the metadata group of a cluster
// that has none. Every initial member runs it; the first leader wins.
func (n *Node) initializeCluster() {
	defer n.wg.Done()
	if len(n.cfg.InitialCluster) == 0 {
		return
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !n.metaSM.Current().Initialized() {
		select {
		case <-n.stop:
			return
		case <-n.metaSM.Changed():
			continue
		case <-tick.C:
		}
		if !n.meta.Leader().Self {
			continue
		}
		cmd, err := n.initCommand()
		if err != nil {
			n.logger.Error("cannot initialize cluster", "err", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, _, err := n.meta.Propose(ctx, cmd)
		cancel()
		if err == nil {
			if e, ok := out.(error); ok && !errors.Is(e, cluster.ErrAlreadyInitialized) {
				n.logger.Error("cluster initialization rejected", "err", e)
				return
			}
			continue
		}
		n.logger.Debug("cluster initialization not committed yet", "err", err)
	}
	st := n.metaSM.Current()
	if int(st.ShardCount) != n.cfg.Shards || st.Replicas != n.cfg.Replicas {
		n.logger.Warn("cluster was created with other settings than this node's flags; the cluster's win",
			"cluster_shards", st.ShardCount, "cluster_replicas", st.Replicas,
			"flag_shards", n.cfg.Shards, "flag_replicas", n.cfg.Replicas)
	}
}

func (n *Node) initCommand() ([]byte, error) {
	var ids []string
	var members []cluster.Member
	for _, p := range n.cfg.InitialCluster {
		ids = append(ids, p.ID)
		members = append(members, cluster.Member{ID: p.ID, Addr: p.Addr, State: cluster.MemberActive})
	}
	p, err := ring.Place(ring.Placement{}, ids, n.cfg.Shards, ring.Config{Replicas: n.cfg.Replicas, VirtualNodes: n.cfg.VirtualNodes})
	if err != nil {
		return nil, fmt.Errorf("placing shards: %w", err)
	}
	return cluster.InitCommand(cluster.State{
		ShardCount:   uint32(n.cfg.Shards),
		Replicas:     n.cfg.Replicas,
		VirtualNodes: n.cfg.VirtualNodes,
		Members:      members,
		Shards:       p.Shards,
	})
}

// reconcileLoop opens the shard groups the placement gives this node, each
// time the metadata changes.
func (n *Node) reconcileLoop() {
	defer n.wg.Done()
	removedLogged := false
	for {
		changed := n.metaSM.Changed()
		st := n.metaSM.Current()
		var retry <-chan time.Time
		if st.Initialized() {
			if err := n.reconcile(st); err != nil {
				n.logger.Error("opening or dropping shard replicas; retrying", "err", err)
				retry = time.After(time.Second)
			} else if n.Ready() {
				n.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			}
			if !removedLogged && slices.Contains(st.Removed, n.cfg.ID) {
				removedLogged = true
				n.logger.Warn("this node was removed from the cluster: it holds no replicas and may be stopped; its ID cannot join again", "epoch", st.Epoch)
			}
		}
		select {
		case <-n.stop:
			return
		case <-changed:
		case <-retry:
		}
	}
}

// reconcile opens the replicas st gives this node and closes, deletes and
// tombstones the ones it no longer does.
func (n *Node) reconcile(st *cluster.State) error {
	var errs []error
	for i := range st.ShardCount {
		sid := shard.ID(i)
		host := st.Hosts(n.cfg.ID, i)
		n.mu.Lock()
		rep, open := n.mu.shards[sid]
		closed := n.mu.closed
		tomb := n.mu.tombstones[sid]
		n.mu.Unlock()
		if closed {
			return nil
		}
		switch {
		case host && !open && st.Epoch > tomb:
			rep, err := n.openShard(st, sid)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			n.mu.Lock()
			if n.mu.closed {
				n.mu.Unlock()
				return rep.Shutdown()
			}
			n.mu.shards[sid] = rep
			n.mu.Unlock()
		case !host && open:
			if err := n.dropShard(st, sid, rep); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// dropShard shuts down a replica the metadata no longer gives this node,
// deletes its data and leaves a tombstone: the replica is never opened
// again from metadata older than the epoch that dropped it (a restart
// replays old metadata before it catches up), so it cannot come back and
// disturb its group's elections (hashicorp/raft#524).
func (n *Node) dropShard(st *cluster.State, sid shard.ID, rep *shardReplica) error {
	n.mu.Lock()
	delete(n.mu.shards, sid)
	n.mu.tombstones[sid] = st.Epoch
	n.mu.Unlock()
	n.logger.Info("dropping replica the placement moved away", "shard", sid, "epoch", st.Epoch)
	if err := rep.Shutdown(); err != nil {
		n.logger.Warn("shutting down dropped replica", "shard", sid, "err", err)
	}
	if err := writeTombstone(n.shardDir(sid), st.Epoch); err != nil {
		return fmt.Errorf("shard %d: %w", sid, err)
	}
	if err := n.logStore.DeleteGroup(uint64(sid)); err != nil {
		return fmt.Errorf("shard %d: deleting dropped replica's log: %w", sid, err)
	}
	if err := os.RemoveAll(n.shardDir(sid)); err != nil {
		return fmt.Errorf("shard %d: deleting dropped replica: %w", sid, err)
	}
	return nil
}

func (n *Node) shardDir(sid shard.ID) string {
	return filepath.Join(n.cfg.DataDir, "shards", fmt.Sprintf("%05d", sid))
}

func (n *Node) openShard(st *cluster.State, sid shard.ID) (*shardReplica, error) {
	sm := shard.NewStateMachine(shard.DefaultConfig())
	dir := n.shardDir(sid)
	gc, err := n.groupConfig(uint64(sid), dir, shardSM{sm}, shard.EncodeNoop(0))
	if err != nil {
		return nil, err
	}
	// A replica created before the shared log existed keeps its own file.
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); errors.Is(err, os.ErrNotExist) {
		if gc.Store, err = n.logStore.group(uint64(sid)); err != nil {
			return nil, fmt.Errorf("shard %d: %w", sid, err)
		}
	}
	g, err := replication.Open(gc)
	if err != nil {
		return nil, fmt.Errorf("shard %d: %w", sid, err)
	}
	// Only the shard's first replica set bootstraps its group, and only
	// while no move ever changed it: every later replica joins through a
	// Raft membership change and gets the data from the leader.
	_, moving := st.ActiveMove(uint32(sid))
	if st.Changes[sid] == 0 && !moving && slices.Contains(st.ReplicasOf(uint32(sid)), n.cfg.ID) {
		var voters []replication.Server
		for _, id := range st.ReplicasOf(uint32(sid)) {
			m, ok := st.Member(id)
			if !ok {
				g.Shutdown()
				return nil, fmt.Errorf("shard %d: replica on unknown node %q", sid, id)
			}
			voters = append(voters, replication.Server{ID: m.ID, Addr: m.Addr})
		}
		if err := g.Bootstrap(voters); err != nil {
			g.Shutdown()
			return nil, fmt.Errorf("shard %d: %w", sid, err)
		}
	}
	return &shardReplica{Group: g, sm: sm}, nil
}

// Replica implements router.Replicas.
func (n *Node) Replica(id shard.ID) (router.Replica, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.mu.shards[id]
	if !ok {
		return nil, false
	}
	return n.overload.bounded(r, id), true
}

// Term implements rpc.Terms: the current term of a group hosted here.
func (n *Node) Term(group uint64) (uint64, bool) {
	if group == MetaGroup {
		if n.meta == nil {
			return 0, false
		}
		return n.meta.Term(), true
	}
	if group >= MetaGroup {
		return 0, false
	}
	g, ok := n.ShardGroup(shard.ID(group))
	if !ok {
		return 0, false
	}
	return g.Term(), true
}

// Ready reports whether the node has the cluster metadata and has opened
// every shard replica the placement gives it.
func (n *Node) Ready() bool {
	st := n.metaSM.Current()
	if !st.Initialized() {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := range st.ShardCount {
		if _, ok := n.mu.shards[shard.ID(i)]; !ok && st.Hosts(n.cfg.ID, i) {
			return false
		}
	}
	return true
}

// Metadata returns the cluster metadata as this node knows it.
func (n *Node) Metadata() *cluster.State { return n.metaSM.Current() }

// ShardLeader returns the leader of a shard hosted here, as known locally.
func (n *Node) ShardLeader(id shard.ID) (replication.LeaderInfo, bool) {
	n.mu.Lock()
	r, ok := n.mu.shards[id]
	n.mu.Unlock()
	if !ok {
		return replication.LeaderInfo{}, false
	}
	return r.Leader(), true
}

// ShardGroup returns the Raft group of a shard hosted here (for tests and
// tooling).
func (n *Node) ShardGroup(id shard.ID) (*replication.Group, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.mu.shards[id]
	if !ok {
		return nil, false
	}
	return r.Group, true
}

// Status implements rpc.ClusterAdmin: the members and the shard map as
// this node knows them, with the leaders of the shards it hosts.
func (n *Node) Status(ctx context.Context) (*ringkvv1.StatusResponse, error) {
	st := n.metaSM.Current()
	if !st.Initialized() {
		return nil, router.ErrNotReady
	}
	resp := &ringkvv1.StatusResponse{
		Epoch:             st.Epoch,
		ShardCount:        st.ShardCount,
		ReplicationFactor: uint32(st.Replicas),
		NodeId:            n.cfg.ID,
	}
	for _, m := range st.Members {
		resp.Members = append(resp.Members, &ringkvv1.Member{Id: m.ID, Address: m.Addr, State: string(m.State)})
	}
	for id, reps := range st.Shards {
		info := &ringkvv1.ShardInfo{Id: uint32(id), Replicas: reps, Target: st.Target[id]}
		if l, ok := n.ShardLeader(shard.ID(id)); ok {
			info.Leader, info.LeaderTerm = l.ID, l.Term
		} else {
			info.Leader = n.router.KnownLeader(shard.ID(id))
		}
		resp.Shards = append(resp.Shards, info)
	}
	return resp, nil
}

// Stop shuts the node down: it stops taking requests, shuts every Raft
// group down, and closes the server and peer connections. It is idempotent
// and returns when everything it started has stopped, or when ctx ends (the
// server is then stopped hard).
func (n *Node) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() {
		n.health.Shutdown()
		httpErr := n.stopHTTP(ctx)
		close(n.stop)
		n.endLife()
		n.mu.Lock()
		n.mu.closed = true
		shards := n.mu.shards
		n.mu.shards = map[shard.ID]*shardReplica{}
		n.mu.Unlock()
		errs := []error{httpErr}
		for _, r := range shards {
			errs = append(errs, r.Shutdown())
		}
		if n.meta != nil {
			errs = append(errs, n.meta.Shutdown())
		}
		stopped := make(chan struct{})
		go func() {
			n.server.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			n.server.Stop()
			<-stopped
		}
		errs = append(errs, n.mux.Close())
		n.wg.Wait()
		// Last: a replica opened while the node was stopping is shut down
		// by the goroutine that opened it, before wg.Wait returns.
		errs = append(errs, n.logStore.Close())
		if err := <-n.serveErr; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errs = append(errs, err)
		}
		n.stopErr = errors.Join(errs...)
		n.logger.Info("node stopped")
	})
	return n.stopErr
}
