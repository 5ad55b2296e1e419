package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ringkv/ringkv/cluster"
	"github.com/ringkv/ringkv/shard"
)

// nodeCollector reports the node's Raft groups, rebalancing and routing
// state at each scrape, read from the live objects rather than kept in
// counters that could drift.
type nodeCollector struct {
	n *Node

	leader, hasLeader, term, commit, applied, lastContact, keys, bytes *prometheus.Desc
	logEntries, snapIndex, snapBytes                                   *prometheus.Desc
	moves, members, forwarded, ready                                   *prometheus.Desc
	logSyncs, logWrites, logDiskBytes, snapSent, snapReceived          *prometheus.Desc
	appends, heartbeats, heartbeatBatches                              *prometheus.Desc
}

func newNodeCollector(n *Node) *nodeCollector {
	shardDesc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("ringkv_shard_"+name, help, []string{"shard"}, nil)
	}
	return &nodeCollector{
		n:           n,
		leader:      shardDesc("leader", "1 if this node leads the shard's Raft group, else 0."),
		hasLeader:   shardDesc("has_leader", "1 if this node's replica knows a leader of the shard, else 0."),
		term:        shardDesc("term", "Current Raft term of this node's replica."),
		commit:      shardDesc("commit_index", "Raft commit index of this node's replica."),
		applied:     shardDesc("applied_index", "Last Raft index this node's replica applied to its state machine."),
		lastContact: shardDesc("last_contact_seconds", "Seconds since this follower replica last heard from its leader (0 on the leader)."),
		keys:        shardDesc("keys", "Keys held by this node's replica."),
		bytes:       shardDesc("state_bytes", "Approximate memory of the replica's state machine (keys, values, sessions)."),
		logEntries:  shardDesc("log_entries", "Entries in this replica's Raft log: those not yet compacted into a snapshot plus the trailing ones kept for slow followers."),
		snapIndex:   shardDesc("snapshot_index", "Last Raft index covered by this replica's newest snapshot (0 without one)."),
		snapBytes:   shardDesc("snapshot_bytes", "Size of this replica's newest snapshot in bytes (0 without one)."),
		moves: prometheus.NewDesc("ringkv_rebalance_moves", "Replica moves of the cluster by phase (pending, active), as this node knows them.",
			[]string{"phase"}, nil),
		members: prometheus.NewDesc("ringkv_cluster_members", "Cluster members by state, as this node knows them.",
			[]string{"state"}, nil),
		forwarded: prometheus.NewDesc("ringkv_router_forwarded_total", "Requests this node forwarded to another node because it did not lead the key's shard.", nil, nil),
		ready:     prometheus.NewDesc("ringkv_node_ready", "1 when the node has the cluster metadata, every replica it hosts, and every hosted shard has a leader.", nil, nil),
		logSyncs: prometheus.NewDesc("ringkv_raft_log_syncs_total",
			"Durable commits of the node's shared Raft log (one fdatasync each, covering the writes of many groups).", nil, nil),
		logWrites: prometheus.NewDesc("ringkv_raft_log_writes_total",
			"Write requests (log appends, truncations, stable-store updates) committed to the node's shared Raft log; writes/syncs is the batching factor.", nil, nil),
		logDiskBytes: prometheus.NewDesc("ringkv_raft_log_disk_bytes",
			"Bytes on disk of the node's shared Raft log (segment files or bolt file).", nil, nil),
		snapSent: prometheus.NewDesc("ringkv_snapshot_sent_bytes_total",
			"Snapshot bytes this node sent to other replicas: rebalancing moves and followers catching up.", nil, nil),
		snapReceived: prometheus.NewDesc("ringkv_snapshot_received_bytes_total",
			"Snapshot bytes this node received from other replicas.", nil, nil),
		appends: prometheus.NewDesc("ringkv_transport_appends_total",
			"Pipelined Raft AppendEntries of this node's leaders: sent, or skipped (an empty one an idle follower had acknowledged already).",
			[]string{"outcome"}, nil),
		heartbeats: prometheus.NewDesc("ringkv_transport_heartbeats_total",
			"Raft heartbeats this node's leaders sent.", nil, nil),
		heartbeatBatches: prometheus.NewDesc("ringkv_transport_heartbeat_batches_total",
			"Messages that carried those heartbeats (all groups' heartbeats to one peer travel together).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leader, c.hasLeader, c.term, c.commit, c.applied, c.lastContact,
		c.keys, c.bytes, c.logEntries, c.snapIndex, c.snapBytes, c.moves, c.members, c.forwarded, c.ready,
		c.logSyncs, c.logWrites, c.logDiskBytes, c.snapSent, c.snapReceived,
		c.appends, c.heartbeats, c.heartbeatBatches} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	n.mu.Lock()
	reps := make(map[shard.ID]*shardReplica, len(n.mu.shards))
	for id, r := range n.mu.shards {
		reps[id] = r
	}
	n.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	now := time.Now()
	for id, r := range reps {
		s := r.Stats()
		sid := strconv.Itoa(int(id))
		gauge(c.leader, b(s.Leader), sid)
		gauge(c.hasLeader, b(s.HasLeader), sid)
		gauge(c.term, float64(s.Term), sid)
		gauge(c.commit, float64(s.CommitIndex), sid)
		gauge(c.applied, float64(s.AppliedIndex), sid)
		contact := 0.0
		if !s.Leader && !s.LastContact.IsZero() {
			contact = now.Sub(s.LastContact).Seconds()
		}
		gauge(c.lastContact, contact, sid)
		gauge(c.keys, float64(r.sm.Len()), sid)
		gauge(c.bytes, float64(r.sm.SizeBytes()), sid)
		entries := 0.0
		if s.LastLogIndex > 0 {
			entries = float64(s.LastLogIndex - s.FirstLogIndex + 1)
		}
		gauge(c.logEntries, entries, sid)
		gauge(c.snapIndex, float64(s.SnapshotIndex), sid)
		gauge(c.snapBytes, float64(s.SnapshotBytes), sid)
	}
	st := n.metaSM.Current()
	if st.Initialized() {
		pending := len(st.Pending())
		gauge(c.moves, float64(pending), "pending")
		gauge(c.moves, float64(len(st.Moves)), "active")
		byState := map[string]int{}
		for _, m := range st.Members {
			byState[string(m.State)]++
		}
		for state, k := range byState {
			gauge(c.members, float64(k), state)
		}
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	counter(c.forwarded, float64(n.router.Stats().Forwarded))
	ls := n.logStore.Stats()
	counter(c.logSyncs, float64(ls.Commits))
	counter(c.logWrites, float64(ls.Writes))
	if size, err := diskUsage(n.logPath); err == nil {
		gauge(c.logDiskBytes, float64(size))
	}
	ms := n.mux.Stats()
	ch <- prometheus.MustNewConstMetric(c.appends, prometheus.CounterValue, float64(ms.PipelineRequests), "sent")
	ch <- prometheus.MustNewConstMetric(c.appends, prometheus.CounterValue, float64(ms.QuietAppends), "skipped")
	counter(c.heartbeats, float64(ms.Heartbeats))
	counter(c.heartbeatBatches, float64(ms.HeartbeatBatches))
	sent, received := n.mux.SnapshotBytesTotals()
	counter(c.snapSent, float64(sent))
	counter(c.snapReceived, float64(received))
	gauge(c.ready, b(n.ReadyWithLeaders()))
}

// ReadyWithLeaders reports whether the node is Ready and every shard
// replica it hosts knows a leader: what /readyz answers.
func (n *Node) ReadyWithLeaders() bool {
	if !n.Ready() {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.mu.shards {
		if !r.Stats().HasLeader {
			return false
		}
	}
	return true
}

// startHTTP serves /metrics, /healthz and /readyz on cfg.HTTPAddr.
func (n *Node) startHTTP(reg *prometheus.Registry) error {
	lis, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.ReadyWithLeaders() {
			http.Error(w, "not ready: cluster metadata, a hosted replica or a shard leader is missing", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	n.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.httpAddr = lis.Addr().String()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("http server", "err", err)
		}
	}()
	return nil
}

// stopHTTP shuts the HTTP listener down.
func (n *Node) stopHTTP(ctx context.Context) error {
	if n.http == nil {
		return nil
	}
	return n.http.Shutdown(ctx)
}

// HTTPAddr returns the address /metrics, /healthz and /readyz are served
// on, or "" without Config.HTTPAddr.
func (n *Node) HTTPAddr() string { return n.httpAddr }

// newRegistry returns the node's metrics registry: its own collector, the
// Raft latency histograms (n.raftObs), the Go runtime's and the process's.
func (n *Node) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	n.raftObs = newRaftObserver()
	n.moveMetrics = newMoveMetrics()
	reg.MustRegister(newNodeCollector(n), n.raftObs.proposal, n.raftObs.apply,
		n.moveMetrics.finished, n.moveMetrics.bytes, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// raftObserver is the replication.Observer of every group of a node: it
// feeds the latency histograms.
type raftObserver struct {
	proposal prometheus.Histogram
	apply    prometheus.Histogram
}

func newRaftObserver() *raftObserver {
	return &raftObserver{
		proposal: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ringkv_raft_proposal_seconds",
			Help: "Time from proposing a command on a shard or metadata leader to its state machine result: replication, fsync and apply.",
			// 0.5 ms .. ~4 s
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ringkv_raft_apply_seconds",
			Help: "Time a state machine took to apply one batch of committed entries (every replica).",
			// 10 us .. ~80 ms
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 14),
		}),
	}
}

// ObserveProposal implements replication.Observer.
func (o *raftObserver) ObserveProposal(d time.Duration) { o.proposal.Observe(d.Seconds()) }

// ObserveApply implements replication.Observer.
func (o *raftObserver) ObserveApply(_ int, d time.Duration) { o.apply.Observe(d.Seconds()) }

// moveMetrics count the replica moves this node's shard leaders finished.
type moveMetrics struct {
	finished *prometheus.CounterVec
	bytes    prometheus.Counter
}

func newMoveMetrics() *moveMetrics {
	m := &moveMetrics{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringkv_rebalance_moves_finished_total",
			Help: "Replica moves that a shard leader on this node finished, by outcome (done, aborted); sum over the nodes for the cluster's.",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringkv_rebalance_moved_bytes_total",
			Help: "Snapshot bytes sent to the destinations of the moves counted in ringkv_rebalance_moves_finished_total.",
		}),
	}
	// Both outcomes exist from the start, so a rate() sees the first move.
	m.finished.WithLabelValues(cluster.MoveDone)
	m.finished.WithLabelValues(cluster.MoveAborted)
	return m
}

// diskUsage returns the bytes of the regular files at or under path.
func diskUsage(path string) (int64, error) {
	var total int64
	err := filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}
