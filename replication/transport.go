// This file holds the Mux: the one per-node half of the multiplexed Raft
// transport. It owns the node's pooled client connections and the table of
// registered groups; GroupTransport (transport_group.go) is the per-group
// raft.Transport built on top of it, and transport_server.go answers the
// RaftTransport gRPC service for every group.

package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// Defaults for the zero fields of MuxConfig.
const (
	// DefaultRPCTimeout bounds every AppendEntries, RequestVote,
	// RequestPreVote and TimeoutNow call, and every send and every awaited
	// response on an AppendEntries pipeline.
	DefaultRPCTimeout = 10 * time.Second

	// DefaultSnapshotTimeoutScale is the number of snapshot bytes that earn
	// InstallSnapshot one more RPCTimeout of deadline, as in
	// raft.NetworkTransport.
	DefaultSnapshotTimeoutScale = raft.DefaultTimeoutScale

	// DefaultSnapshotChunkSize is the size of the data chunks InstallSnapshot
	// streams.
	DefaultSnapshotChunkSize = 256 << 10

	// DefaultSnapshotRate is the pace, in bytes per second, of all the
	// snapshot data a node streams to its peers together: enough to move a
	// GiB-sized replica in about half a minute, while leaving most of a
	// gigabit link to replication and client traffic.
	DefaultSnapshotRate = 32 << 20

	// DefaultMaxInFlight is the number of pipelined AppendEntries requests
	// that may await their responses at once, as in raft.NetworkTransport.
	DefaultMaxInFlight = raft.DefaultMaxRPCsInFlight

	// DefaultCoalesceWindow is the longest a heartbeat may wait for others
	// to the same peer before they are sent together. With ringkv's
	// default timers a heartbeat's own bound, until it is due (9/4 of its
	// group's heartbeat interval after the previous answer), is the
	// shorter: it waits 200-400 ms at most; the window caps slower timers
	// at a quarter of the default leader lease.
	DefaultCoalesceWindow = 500 * time.Millisecond

	// maxSnapshotChunkSize keeps a chunk, with its framing, under gRPC's
	// default 4 MiB limit on received messages.
	maxSnapshotChunkSize = 3 << 20

	// peerStreamWindow and peerConnWindow are the fixed HTTP/2 flow-control
	// windows of a peer connection's receiving side: what gRPC's dynamic
	// windows (BDP estimation) would grow to under load. Fixed windows turn
	// BDP estimation off, which otherwise answers nearly every message that
	// arrives on an idle connection with a window update and a ping, and
	// the peer with a ping ack: extra writes and wake-ups on both nodes.
	peerStreamWindow = 4 << 20
	peerConnWindow   = 16 << 20
)

// MuxConfig configures a Mux. The zero value of every field except LocalAddr
// selects the documented default.
type MuxConfig struct {
	// LocalAddr is this node's gRPC address (host:port) as its peers dial it.
	// It is every group's raft.ServerAddress on this node. Required.
	LocalAddr string

	// DialOptions are applied, in order, after the Mux's own defaults when it
	// dials a peer: insecure transport credentials, a reconnect backoff
	// capped at 2 s (gRPC's own cap is 120 s, too long for Raft), and fixed
	// flow-control windows of 4 MiB per stream and 16 MiB per connection
	// (see peerConnWindow). A grpc.WithTransportCredentials here replaces
	// the insecure default.
	DialOptions []grpc.DialOption

	// Logger receives the transport's diagnostics. Nil discards them.
	Logger *slog.Logger

	// RPCTimeout bounds each AppendEntries, RequestVote, RequestPreVote and
	// TimeoutNow call, and each send and each awaited response on a pipeline,
	// so that an unreachable peer fails the call instead of hanging Raft.
	// Zero means DefaultRPCTimeout.
	RPCTimeout time.Duration

	// SnapshotTimeoutScale scales the deadline of InstallSnapshot: the whole
	// transfer, including the follower's restore, may take RPCTimeout for
	// every SnapshotTimeoutScale bytes of snapshot (and at least
	// RPCTimeout). Independently, the transfer is abandoned when one chunk
	// cannot be sent within RPCTimeout. Zero means
	// DefaultSnapshotTimeoutScale.
	SnapshotTimeoutScale int64

	// SnapshotChunkSize is the number of snapshot bytes per streamed message.
	// It must fit under the receiving gRPC server's maximum message size (at
	// most 3 MiB). Zero means DefaultSnapshotChunkSize.
	SnapshotChunkSize int

	// SnapshotRate bounds, in bytes per second, the snapshot data that all
	// of the node's outgoing InstallSnapshot streams send together, so that
	// moving replicas does not starve replication and client traffic. Data
	// is paced a chunk (SnapshotChunkSize) at a time, so a transfer may run
	// a chunk ahead of the rate. Waiting for the rate counts against the
	// transfer's deadline (SnapshotTimeoutScale) but not against the
	// per-chunk RPCTimeout. Zero means DefaultSnapshotRate; a negative rate
	// means unlimited.
	SnapshotRate int64

	// MaxInFlight is the number of pipelined AppendEntries requests to one
	// peer that may be awaiting responses at once; it is
	// raft.NetworkTransportConfig.MaxRPCsInFlight. 1 disables pipelining.
	// Zero means DefaultMaxInFlight.
	MaxInFlight int

	// CoalesceWindow is the longest a heartbeat waits for the heartbeats of
	// other groups to the same peer node, so that they travel in one
	// message. A heartbeat also waits no longer than until it is due, 9/4
	// of its group's heartbeat interval after the previous heartbeat's
	// answer (Raft waits HeartbeatTimeout/10 to /5 between a heartbeat's
	// answer and the next), so that coalescing delays groups with fast
	// timers in proportion (see transport_heartbeat.go); and a heartbeat
	// that a leadership confirmation waits for (raft.VerifyLeader, which a
	// Group's read barrier calls when it has no Config.Confirmer) is sent
	// at once, with whatever is queued. The wait delays the answer to an
	// ordinary heartbeat, so the window must stay well under Raft's
	// LeaderLeaseTimeout. It must be shorter than RPCTimeout. Zero means
	// DefaultCoalesceWindow, or a quarter of RPCTimeout if that is shorter;
	// a negative window sends every heartbeat at once (batches then hold
	// only the heartbeats that queue up meanwhile).
	CoalesceWindow time.Duration

	// NoQuietAppends makes pipelines send every empty AppendEntries, also
	// those an idle follower has already acknowledged an identical one of
	// (transport_quiet.go).
	NoQuietAppends bool

	// ignoreUrgency, in tests only, makes every heartbeat wait for the
	// coalescing window, even the ones a leadership confirmation waits for.
	ignoreUrgency bool

	// snapshotPacer, in tests only, replaces the limiter that SnapshotRate
	// selects.
	snapshotPacer snapshotPacer
}

// Validate reports whether c can configure a Mux.
func (c MuxConfig) Validate() error {
	switch {
	case c.LocalAddr == "":
		return errors.New("replication: MuxConfig.LocalAddr is required")
	case c.RPCTimeout < 0:
		return fmt.Errorf("replication: MuxConfig.RPCTimeout %v is negative", c.RPCTimeout)
	case c.SnapshotTimeoutScale < 0:
		return fmt.Errorf("replication: MuxConfig.SnapshotTimeoutScale %d is negative", c.SnapshotTimeoutScale)
	case c.SnapshotChunkSize < 0 || c.SnapshotChunkSize > maxSnapshotChunkSize:
		return fmt.Errorf("replication: MuxConfig.SnapshotChunkSize %d is outside [0, %d]", c.SnapshotChunkSize, maxSnapshotChunkSize)
	case c.MaxInFlight < 0:
		return fmt.Errorf("replication: MuxConfig.MaxInFlight %d is negative", c.MaxInFlight)
	}
	if d := c.withDefaults(); d.CoalesceWindow >= d.RPCTimeout {
		return fmt.Errorf("replication: MuxConfig.CoalesceWindow %v is not shorter than RPCTimeout %v", d.CoalesceWindow, d.RPCTimeout)
	}
	return nil
}

// withDefaults returns c with every zero field replaced by its default.
func (c MuxConfig) withDefaults() MuxConfig {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RPCTimeout == 0 {
		c.RPCTimeout = DefaultRPCTimeout
	}
	if c.SnapshotTimeoutScale == 0 {
		c.SnapshotTimeoutScale = DefaultSnapshotTimeoutScale
	}
	if c.SnapshotChunkSize == 0 {
		c.SnapshotChunkSize = DefaultSnapshotChunkSize
	}
	if c.SnapshotRate == 0 {
		c.SnapshotRate = DefaultSnapshotRate
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.CoalesceWindow == 0 {
		c.CoalesceWindow = min(DefaultCoalesceWindow, c.RPCTimeout/4)
	}
	return c
}

// ErrDuplicateTransport is returned by Mux.Transport for a group that already
// has an open transport on the Mux.
var ErrDuplicateTransport = errors.New("replication: raft group already has a transport on this node")

// Mux multiplexes the Raft groups of one node over one gRPC service and one
// client connection per peer node. It implements ringkvv1.RaftTransportServer:
// register it on the node's gRPC server with
// ringkvv1.RegisterRaftTransportServer. Each group gets its raft.Transport
// from Transport.
//
// A Mux is safe for concurrent use. Close it after the Raft groups using it
// have shut down; the gRPC server it is registered on is the caller's to
// stop.
//
// Two settings of that server bound the transport. Its MaxRecvMsgSize must
// hold the largest AppendEntries batch (raft.Config.MaxAppendEntries times
// the largest entry, plus framing), or replication of such a batch fails
// with ResourceExhausted; a heartbeat batch needs about 60 bytes per group.
// And each group keeps a pipeline stream open to every peer it replicates
// to, besides one heartbeat stream per peer node for all groups, so a
// MaxConcurrentStreams below the number of groups, plus room for calls,
// would stall Raft.
//
// Heartbeats of all groups to one peer are coalesced (MuxConfig.
// CoalesceWindow) and travel on one Heartbeats stream per peer
// (transport_heartbeat.go); the peer's side of that stream ends when the
// peer has no open group left, so that its server can stop gracefully.
type Mux struct {
	ringkvv1.UnimplementedRaftTransportServer

	cfg MuxConfig
	// cfgErr is cfg.Validate(), returned by Transport.
	cfgErr error
	// dialOpts are the options every peer connection is created with.
	dialOpts []grpc.DialOption

	// groups maps a group ID to its open transport. It is read on every
	// incoming RPC and rebuilt under mu, then swapped, when a group comes or
	// goes.
	groups atomic.Pointer[map[uint64]*GroupTransport]
	// peers maps a peer address to its connection. It is read on every
	// outgoing RPC and rebuilt under mu, then swapped, when a peer is dialed.
	peers atomic.Pointer[map[raft.ServerAddress]*muxPeer]

	// noGroups is closed while the group table is empty, when a Heartbeats
	// stream served here ends. It is replaced under mu by an open channel
	// when the first group registers, and closed under mu when the last one
	// goes.
	noGroups atomic.Pointer[chan struct{}]

	// life is cancelled by Close: the lifetime of the heartbeat batchers and
	// their streams.
	life   context.Context
	cancel context.CancelFunc
	// batchers counts the running heartbeat batchers; Close waits for them.
	// Add only under mu while not closed.
	batchers sync.WaitGroup
	// epoch is the origin of the Mux's clock (now), which is monotonic.
	epoch time.Time
	// snapshotPacer paces the data of every outgoing snapshot stream (see
	// MuxConfig.SnapshotRate); nil when unlimited.
	snapshotPacer snapshotPacer

	mu struct {
		sync.Mutex
		// closed is set by Close; no group, peer or batcher is added after
		// it.
		closed bool
	}

	stats muxCounters
	// heartbeatStreams numbers the Heartbeats streams opened.
	heartbeatStreams atomic.Uint64
}

// muxPeer is the pooled connection to one peer node, shared by every group.
type muxPeer struct {
	addr   raft.ServerAddress
	conn   *grpc.ClientConn
	client ringkvv1.RaftTransportClient
	// batcher coalesces the heartbeats of every group to the peer; nil until
	// the first one. Set under Mux.mu.
	batcher atomic.Pointer[heartbeatBatcher]
}

// muxCounters are the cumulative counters behind MuxStats.
type muxCounters struct {
	pipelineRequests  atomic.Uint64
	pipelineEntries   atomic.Uint64
	snapshotsSent     atomic.Uint64
	snapshotsReceived atomic.Uint64
	heartbeatBatches  atomic.Uint64
	heartbeats        atomic.Uint64
	quietAppends      atomic.Uint64
	// snapshotBytes maps a group ID to its *snapshotByteCounters. Entries
	// are added on a group's first snapshot transfer and never removed, so
	// that the counts outlive the group's transport.
	snapshotBytes sync.Map
}

// snapshotByteCounters count the snapshot data of one group.
type snapshotByteCounters struct {
	sent, received atomic.Uint64
}

// MuxStats is a point-in-time view of a Mux.
type MuxStats struct {
	// Groups is the number of groups with an open transport.
	Groups int
	// PeerConns is the number of pooled peer connections (one per peer
	// address ever called).
	PeerConns int
	// PipelineRequests and PipelineEntries count the AppendEntries requests,
	// and the log entries in them, sent on pipelines.
	PipelineRequests uint64
	PipelineEntries  uint64
	// SnapshotsSent and SnapshotsReceived count InstallSnapshot streams
	// started by this node and handed to a local group.
	SnapshotsSent     uint64
	SnapshotsReceived uint64
	// HeartbeatBatches counts the heartbeat batches sent to peers, and
	// Heartbeats the heartbeats in them: their ratio is the coalescing
	// achieved.
	HeartbeatBatches uint64
	Heartbeats       uint64
	// QuietAppends counts the empty AppendEntries a pipeline answered
	// itself instead of sending (transport_quiet.go).
	QuietAppends uint64
}

// NewMux returns a Mux configured by cfg. A cfg that fails Validate does not
// stop NewMux; the error is returned by every call of Transport.
func NewMux(cfg MuxConfig) *Mux {
	m := &Mux{cfg: cfg.withDefaults(), cfgErr: cfg.Validate(), epoch: time.Now()}
	m.life, m.cancel = context.WithCancel(context.Background())
	switch {
	case cfg.snapshotPacer != nil:
		m.snapshotPacer = cfg.snapshotPacer
	case m.cfg.SnapshotRate > 0:
		m.snapshotPacer = rate.NewLimiter(rate.Limit(m.cfg.SnapshotRate), m.cfg.SnapshotChunkSize)
	}
	m.dialOpts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   2 * time.Second,
			},
			MinConnectTimeout: m.cfg.RPCTimeout,
		}),
		grpc.WithInitialWindowSize(peerStreamWindow),
		grpc.WithInitialConnWindowSize(peerConnWindow),
	}, cfg.DialOptions...)
	groups := map[uint64]*GroupTransport{}
	m.groups.Store(&groups)
	peers := map[raft.ServerAddress]*muxPeer{}
	m.peers.Store(&peers)
	noGroups := make(chan struct{})
	close(noGroups)
	m.noGroups.Store(&noGroups)
	return m
}

// Transport registers group on the Mux and returns its raft.Transport. It
// fails with ErrDuplicateTransport while another transport of group is open,
// and with raft.ErrTransportShutdown after Close. Closing the returned
// transport (raft.Raft.Shutdown does) unregisters the group.
func (m *Mux) Transport(group uint64) (*GroupTransport, error) {
	if m.cfgErr != nil {
		return nil, m.cfgErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, fmt.Errorf("replication: raft group %d: %w", group, raft.ErrTransportShutdown)
	}
	old := *m.groups.Load()
	if _, ok := old[group]; ok {
		return nil, fmt.Errorf("%w: group %d", ErrDuplicateTransport, group)
	}
	t := newGroupTransport(m, group)
	groups := make(map[uint64]*GroupTransport, len(old)+1)
	for id, g := range old {
		groups[id] = g
	}
	groups[group] = t
	m.groups.Store(&groups)
	if len(old) == 0 {
		some := make(chan struct{})
		m.noGroups.Store(&some)
	}
	return t, nil
}

// unregister removes t from the group table if it is still there.
func (m *Mux) unregister(t *GroupTransport) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.groups.Load()
	if old[t.group] != t {
		return
	}
	groups := make(map[uint64]*GroupTransport, len(old))
	for id, g := range old {
		if id != t.group {
			groups[id] = g
		}
	}
	m.groups.Store(&groups)
	if len(groups) == 0 {
		close(*m.noGroups.Load())
	}
}

// group returns the open transport of the group id.
func (m *Mux) group(id uint64) (*GroupTransport, error) {
	if t, ok := (*m.groups.Load())[id]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%w %d", errUnknownGroup, id)
}

// peer returns the pooled connection to addr, creating it on first use.
// Creating a connection does not dial; gRPC connects on the first call.
func (m *Mux) peer(addr raft.ServerAddress) (*muxPeer, error) {
	if p, ok := (*m.peers.Load())[addr]; ok {
		return p, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, raft.ErrTransportShutdown
	}
	old := *m.peers.Load()
	if p, ok := old[addr]; ok {
		return p, nil
	}
	// passthrough hands addr to the dialer as is, as raft.NetworkTransport
	// does: no resolver, no balancing, exactly one connection.
	conn, err := grpc.NewClient("passthrough:///"+string(addr), m.dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	p := &muxPeer{addr: addr, conn: conn, client: ringkvv1.NewRaftTransportClient(conn)}
	peers := make(map[raft.ServerAddress]*muxPeer, len(old)+1)
	for a, q := range old {
		peers[a] = q
	}
	peers[addr] = p
	m.peers.Store(&peers)
	return p, nil
}

// Stats returns the Mux's current counters.
func (m *Mux) Stats() MuxStats {
	return MuxStats{
		Groups:            len(*m.groups.Load()),
		PeerConns:         len(*m.peers.Load()),
		PipelineRequests:  m.stats.pipelineRequests.Load(),
		PipelineEntries:   m.stats.pipelineEntries.Load(),
		SnapshotsSent:     m.stats.snapshotsSent.Load(),
		SnapshotsReceived: m.stats.snapshotsReceived.Load(),
		HeartbeatBatches:  m.stats.heartbeatBatches.Load(),
		Heartbeats:        m.stats.heartbeats.Load(),
		QuietAppends:      m.stats.quietAppends.Load(),
	}
}

// SnapshotBytesSent returns how many bytes of snapshot data this node has
// sent to its peers for group since the Mux was created: data handed to
// InstallSnapshot streams, including transfers that failed later.
func (m *Mux) SnapshotBytesSent(group uint64) uint64 {
	if c, ok := m.stats.snapshotBytes.Load(group); ok {
		return c.(*snapshotByteCounters).sent.Load()
	}
	return 0
}

// SnapshotBytesTotals returns how many bytes of snapshot data this node
// has sent to and received from its peers, over all groups, since the Mux
// was created (failed and refused transfers included): the data that
// moving replicas and catching up slow followers cost.
func (m *Mux) SnapshotBytesTotals() (sent, received uint64) {
	m.stats.snapshotBytes.Range(func(_, v any) bool {
		c := v.(*snapshotByteCounters)
		sent += c.sent.Load()
		received += c.received.Load()
		return true
	})
	return sent, received
}

// SnapshotBytesReceived returns how many bytes of snapshot data this node
// has received from its peers for group since the Mux was created,
// including transfers that failed or that Raft refused.
func (m *Mux) SnapshotBytesReceived(group uint64) uint64 {
	if c, ok := m.stats.snapshotBytes.Load(group); ok {
		return c.(*snapshotByteCounters).received.Load()
	}
	return 0
}

// snapshotCounters returns the snapshot byte counters of group, creating
// them on first use.
func (m *Mux) snapshotCounters(group uint64) *snapshotByteCounters {
	if c, ok := m.stats.snapshotBytes.Load(group); ok {
		return c.(*snapshotByteCounters)
	}
	c, _ := m.stats.snapshotBytes.LoadOrStore(group, new(snapshotByteCounters))
	return c.(*snapshotByteCounters)
}

// now reads the Mux's monotonic clock.
func (m *Mux) now() time.Duration { return time.Since(m.epoch) }

// Close closes every open group transport, stops the heartbeat batchers and
// waits for them, and closes every peer connection. Calls made afterwards
// fail with raft.ErrTransportShutdown, and incoming RPCs with
// codes.InvalidArgument (no group is registered); Heartbeats streams served
// here end. Close is idempotent.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return nil
	}
	m.mu.closed = true
	groups := *m.groups.Load()
	peers := *m.peers.Load()
	m.mu.Unlock()

	for _, t := range groups {
		t.Close() // unregisters t, taking mu
	}
	m.cancel()
	m.batchers.Wait()
	var errs []error
	for addr, p := range peers {
		if err := p.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing connection to %s: %w", addr, err))
		}
	}
	empty := map[raft.ServerAddress]*muxPeer{}
	m.peers.Store(&empty)
	return errors.Join(errs...)
}

// ServerOptions are the options a gRPC server that serves a Mux should
// have: the same fixed flow-control windows as the Mux's own connections,
// so that the server side does not run BDP estimation either (pings and
// window updates on every message of an idle connection).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(peerStreamWindow),
		grpc.InitialConnWindowSize(peerConnWindow),
	}
}
