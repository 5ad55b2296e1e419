package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Timing holds a group's Raft timers. Every group costs heartbeats (one per
// follower every HeartbeatTimeout/10 while idle) and commit-index updates
// (one per follower every CommitTimeout), so a node hosting many groups
// wants these relaxed; see docs/architecture.md for the measured idle cost.
type Timing struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
}

// DefaultTiming returns the timers ringkv uses for every group unless told
// otherwise: a failed leader is replaced in about 2-5 s (on 3 nodes with
// 64 shards, every shard of a killed node has a new leader 7-10 s after
// it died), and an idle group costs a heartbeat per follower about every
// 500 ms (Raft asks for one every 200-400 ms; the Mux paces and coalesces
// them, see transport_heartbeat.go) and an empty AppendEntries per
// follower every 1-2 s, which the pipeline answers itself once the
// follower has acknowledged an identical one (transport_quiet.go).
//
// CommitTimeout is also how late a follower may learn the commit index
// after the last write, which every step of a replica move that waits for
// a follower to apply waits for: measured on 3 nodes with 16 shards, a
// fourth node joins and takes its 12 replicas in 6-7 s with 500 ms, 9-13 s
// with 1 s, 18-22 s with 2 s; an idle node with 64 replicas spends about
// 0.8 times the CPU with 1 s as with 500 ms, 0.65 times with 2 s.
//
// The leader lease is a whole HeartbeatTimeout, as long as Raft allows,
// because heartbeats are paced out to about 3 * HeartbeatTimeout/10 and
// the lease must outlast a few of them. ringkv's reads do not rely on it
// (see Config.Confirmer); it bounds how long a leader cut off from its
// followers goes on believing it leads.
func DefaultTiming() Timing {
	return Timing{
		HeartbeatTimeout:   2 * time.Second,
		ElectionTimeout:    2 * time.Second,
		LeaderLeaseTimeout: 2 * time.Second,
		CommitTimeout:      time.Second,
	}
}

// Config configures one Raft group. Zero fields take the documented
// defaults.
type Config struct {
	// Group identifies the group on the wire; unique per node.
	Group uint64
	// NodeID is this node's Raft server ID.
	NodeID string
	// Dir holds the group's snapshots, and its log and stable store unless
	// Store is set. Required.
	Dir string
	// Store, when set, holds the group's log and stable store (for
	// example a view of a store shared by all groups of a node, which
	// commits many groups' entries with one fsync); the caller owns it.
	// When nil, the group keeps them in a raft-boltdb file in Dir.
	Store LogStore
	// Transport carries the group's Raft messages. Required.
	Transport raft.Transport
	// StateMachine receives the committed commands. Required.
	StateMachine StateMachine
	// NoopCommand is a command that the state machine applies as a no-op. A
	// new leader commits one before it serves reads, which fixes the commit
	// index of its term (see ReadBarrier). Required.
	NoopCommand []byte
	// Timing: DefaultTiming() when zero.
	Timing Timing
	// SnapshotThreshold is how many log entries since the last snapshot
	// make raft take a new one. Default 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks the threshold. Default 30s.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot, so
	// a briefly lagging follower catches up from the log. Default 4096.
	TrailingLogs uint64
	// MaxAppendEntries bounds the entries in one AppendEntries. Default 256.
	MaxAppendEntries int
	// LogCacheSize is how many recent entries stay in memory. Default 512.
	LogCacheSize int
	// Logger receives the group's events. Default slog.Default().
	Logger *slog.Logger
	// RaftLogOutput receives hashicorp/raft's own log lines (warnings and
	// errors only). Default os.Stderr.
	RaftLogOutput io.Writer
	// Confirmer lets the read barrier confirm leadership with messages sent
	// after a read arrived (see confirmTerm). When nil, ReadBarrier falls
	// back to raft.VerifyLeader, which a reply delayed from before the read
	// can satisfy: production nodes always set it.
	Confirmer TermConfirmer
	// Observer, when set, is told how long proposals and state machine
	// applies take, for metrics. Its methods must be cheap and must not
	// block: they run on Raft's apply path.
	Observer Observer
}

// Observer receives the group's latencies. One Observer may serve every
// group of a node, so its methods must be safe for concurrent use.
type Observer interface {
	// ObserveProposal reports how long a successful Propose took, from
	// the call to the state machine's result on this (leader) replica.
	ObserveProposal(d time.Duration)
	// ObserveApply reports how long the state machine took to apply one
	// batch of n committed entries.
	ObserveApply(n int, d time.Duration)
}

// LogStore is a Raft log store and stable store in one.
type LogStore interface {
	raft.LogStore
	raft.StableStore
}

// TermConfirmer asks the replica of a group at addr whether it is still in
// term. It answers current=true only if its term equals term, and reports
// its term either way.
type TermConfirmer interface {
	ConfirmTerm(ctx context.Context, addr string, group, term uint64) (current bool, replicaTerm uint64, err error)
}

func (c *Config) setDefaults() {
	if c.Timing == (Timing{}) {
		c.Timing = DefaultTiming()
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 30 * time.Second
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 4096
	}
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = 256
	}
	if c.LogCacheSize == 0 {
		c.LogCacheSize = 512
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RaftLogOutput == nil {
		c.RaftLogOutput = os.Stderr
	}
}

func (c *Config) validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("replication: Config.NodeID is required")
	case c.Dir == "":
		return errors.New("replication: Config.Dir is required")
	case c.Transport == nil:
		return errors.New("replication: Config.Transport is required")
	case c.StateMachine == nil:
		return errors.New("replication: Config.StateMachine is required")
	case len(c.NoopCommand) == 0:
		return errors.New("replication: Config.NoopCommand is required")
	}
	return nil
}

// Server is a voting member of a group.
type Server struct {
	ID   string
	Addr string
}

// Group is one running Raft group. Its methods are safe for concurrent use.
type Group struct {
	cfg    Config
	raft   *raft.Raft
	fsm    *fsm
	store  LogStore      // the group's log and stable store
	close  func() error  // closes store when the group owns it
	logs   raft.LogStore // the cache in front of store that raft uses
	snaps  *trackingSnapshotStore
	logger *slog.Logger

	// readyTerm is the term in which this replica, as leader, has committed
	// and applied its no-op; reads are served only while it equals the
	// current term.
	readyTerm atomic.Uint64

	mu struct {
		sync.Mutex
		readyCh chan struct{} // closed and replaced when readyTerm changes
		// nextRound collects reads waiting for a leadership confirmation
		// that has not started yet.
		nextRound *verifyRound
	}
	verifyKick chan struct{}

	// confScan caches how far Configuration has searched the log for the
	// latest configuration entry (group_confindex.go).
	confScan struct {
		sync.Mutex
		configScan
	}

	stop     chan struct{}
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
}

type verifyRound struct {
	done chan struct{}
	err  error
}

// Open starts a group from its directory: a new, empty one, or the state it
// left there. A new group takes part in no elections until Bootstrap or a
// leader of an existing group adds it.
func Open(cfg Config) (*Group, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("group %d: %w", cfg.Group, err)
	}
	hlog := hclog.New(&hclog.LoggerOptions{
		Name:   fmt.Sprintf("raft group=%d", cfg.Group),
		Level:  hclog.Warn,
		Output: cfg.RaftLogOutput,
	})
	store, closeStore, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	logs, err := raft.NewLogCache(cfg.LogCacheSize, store)
	if err != nil {
		closeStore()
		return nil, fmt.Errorf("group %d: %w", cfg.Group, err)
	}
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		closeStore()
		return nil, fmt.Errorf("group %d: opening snapshot store: %w", cfg.Group, err)
	}
	snaps, err := newTrackingSnapshotStore(fileSnaps)
	if err != nil {
		closeStore()
		return nil, fmt.Errorf("group %d: opening snapshot store: %w", cfg.Group, err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.Timing.HeartbeatTimeout
	rc.ElectionTimeout = cfg.Timing.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.Timing.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.Timing.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.Logger = hlog
	if err := raft.ValidateConfig(rc); err != nil {
		closeStore()
		return nil, fmt.Errorf("group %d: %w", cfg.Group, err)
	}

	g := &Group{
		cfg:        cfg,
		fsm:        newFSM(cfg.StateMachine, cfg.Observer),
		store:      store,
		close:      closeStore,
		logs:       logs,
		snaps:      snaps,
		logger:     cfg.Logger.With("group", cfg.Group),
		verifyKick: make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	g.mu.readyCh = make(chan struct{})
	r, err := raft.NewRaft(rc, g.fsm, logs, store, snaps, cfg.Transport)
	if err != nil {
		closeStore()
		return nil, fmt.Errorf("group %d: starting raft: %w", cfg.Group, err)
	}
	g.raft = r
	g.wg.Add(2)
	go g.watchLeadership()
	go g.verifyLoop()
	return g, nil
}

// openStore returns the group's log and stable store: cfg.Store when set,
// else a raft-boltdb file of its own in cfg.Dir, and the function that
// closes what the group owns.
func openStore(cfg Config) (LogStore, func() error, error) {
	if cfg.Store != nil {
		return cfg.Store, func() error { return nil }, nil
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, nil, fmt.Errorf("group %d: opening raft log: %w", cfg.Group, err)
	}
	return bolt, bolt.Close, nil
}

// HasState reports whether the group has any Raft state: a term, a log
// entry or a snapshot. A new replica, bootstrapped or not, has none until
// it bootstraps or hears from a leader.
func (g *Group) HasState() (bool, error) {
	ok, err := raft.HasExistingState(g.logs, g.store, g.snaps)
	if err != nil {
		return false, fmt.Errorf("group %d: %w", g.cfg.Group, err)
	}
	return ok, nil
}

// Bootstrap makes a new group's first configuration: the given voters. Every
// initial member may call it with the same servers. A group that already
// has state ignores it.
func (g *Group) Bootstrap(servers []Server) error {
	cfg := raft.Configuration{}
	for _, s := range servers {
		cfg.Servers = append(cfg.Servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(s.ID),
			Address:  raft.ServerAddress(s.Addr),
		})
	}
	err := g.raft.BootstrapCluster(cfg).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("group %d: bootstrap: %w", g.cfg.Group, err)
	}
	return nil
}

// ID returns the group's ID.
func (g *Group) ID() uint64 { return g.cfg.Group }

// Propose replicates cmd and returns what the state machine's Apply
// returned for it, with the log index it was committed at.
//
// Errors: *NotLeaderError when this replica does not lead; ErrOutcomeUnknown
// when the command may or may not have committed; ErrShutdown.
func (g *Group) Propose(ctx context.Context, cmd []byte) (any, uint64, error) {
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, 0, fmt.Errorf("group %d: propose: %w", g.cfg.Group, context.DeadlineExceeded)
		}
	}
	start := time.Now()
	f := g.raft.Apply(cmd, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, 0, g.mapRaftErr("propose", err)
		}
		if g.cfg.Observer != nil {
			g.cfg.Observer.ObserveProposal(time.Since(start))
		}
		return f.Response(), f.Index(), nil
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("group %d: propose: %w: %w", g.cfg.Group, ErrOutcomeUnknown, ctx.Err())
	}
}

func (g *Group) mapRaftErr(op string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%s: %w", op, g.notLeader())
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("group %d: %s: %w: %w", g.cfg.Group, op, ErrOutcomeUnknown, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		// Not enqueued, so not applied: the caller may retry freely.
		return fmt.Errorf("group %d: %s: %w", g.cfg.Group, op, context.DeadlineExceeded)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("group %d: %s: %w", g.cfg.Group, op, ErrShutdown)
	}
	return fmt.Errorf("group %d: %s: %w", g.cfg.Group, op, err)
}

func (g *Group) notLeader() *NotLeaderError {
	addr, id := g.raft.LeaderWithID()
	return &NotLeaderError{Group: g.cfg.Group, LeaderID: string(id), LeaderAddr: string(addr)}
}

// ReadBarrier returns nil once the local state machine reflects every write
// that committed before ReadBarrier was called, so a read of local state
// that follows it is linearizable. Only the leader can pass it.
//
// The steps, since hashicorp/raft has no ReadIndex:
//  1. This replica must lead in the current term T and must have applied the
//     no-op it committed on becoming leader in T. Until a leader commits an
//     entry of its own term its commit index may lag entries that an
//     earlier leader committed.
//  2. Note the commit index C.
//  3. Confirm that a quorum is still in term T, in a round that starts after
//     this call; concurrent reads share one round. With a Config.Confirmer
//     the round is a ConfirmTerm call to every other voter (see
//     confirmTerm for why raft.VerifyLeader is not enough); without one it
//     falls back to VerifyLeader.
//  4. Check the term is still T: if leadership was lost and regained
//     meanwhile, C may predate writes committed by the other leader.
//  5. Wait until the state machine has finished applying C.
func (g *Group) ReadBarrier(ctx context.Context) error {
	if g.raft.State() != raft.Leader {
		return fmt.Errorf("read: %w", g.notLeader())
	}
	term := g.raft.CurrentTerm()
	if err := g.awaitReady(ctx, term); err != nil {
		return err
	}
	commit := g.raft.CommitIndex()
	if err := g.verifyLeader(ctx); err != nil {
		return err
	}
	if g.raft.CurrentTerm() != term {
		return fmt.Errorf("read: term changed: %w", g.notLeader())
	}
	if err := g.fsm.waitApplied(ctx, commit); err != nil {
		return fmt.Errorf("group %d: read: %w", g.cfg.Group, err)
	}
	return nil
}

// awaitReady waits until this leader has applied its no-op of term.
func (g *Group) awaitReady(ctx context.Context, term uint64) error {
	// A new leader's no-op commits within a round trip or two; don't wait
	// longer than an election timeout for it before telling the caller to
	// retry elsewhere.
	limit := time.NewTimer(g.cfg.Timing.ElectionTimeout)
	defer limit.Stop()
	for {
		g.mu.Lock()
		ch := g.mu.readyCh
		g.mu.Unlock()
		if g.readyTerm.Load() == term {
			return nil
		}
		if g.raft.State() != raft.Leader || g.raft.CurrentTerm() != term {
			return fmt.Errorf("read: %w", g.notLeader())
		}
		select {
		case <-ch:
		case <-limit.C:
			return fmt.Errorf("read: leader of term %d not ready: %w", term, g.notLeader())
		case <-ctx.Done():
			return fmt.Errorf("group %d: read: %w", g.cfg.Group, ctx.Err())
		case <-g.stop:
			return fmt.Errorf("group %d: %w", g.cfg.Group, ErrShutdown)
		}
	}
}

// verifyLeader joins the next leadership confirmation round.
func (g *Group) verifyLeader(ctx context.Context) error {
	g.mu.Lock()
	r := g.mu.nextRound
	if r == nil {
		r = &verifyRound{done: make(chan struct{})}
		g.mu.nextRound = r
	}
	g.mu.Unlock()
	select {
	case g.verifyKick <- struct{}{}:
	default: // a kick is already pending; it will pick this round up
	}
	select {
	case <-r.done:
		if r.err != nil {
			return g.mapRaftErr("verify leader", r.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("group %d: verify leader: %w", g.cfg.Group, ctx.Err())
	case <-g.stop:
		return fmt.Errorf("group %d: %w", g.cfg.Group, ErrShutdown)
	}
}

// verifyLoop runs leadership confirmations one at a time. Each round takes
// every read that arrived before it started, and its messages are sent
// after they arrived.
func (g *Group) verifyLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.stop:
			return
		case <-g.verifyKick:
		}
		g.mu.Lock()
		r := g.mu.nextRound
		g.mu.nextRound = nil
		g.mu.Unlock()
		if r == nil {
			continue
		}
		r.err = g.confirmLeadership()
		close(r.done)
	}
}

// confirmLeadership confirms that this replica still leads its term, with
// a round of messages that all start after the reads it serves arrived.
func (g *Group) confirmLeadership() error {
	if g.cfg.Confirmer == nil {
		end := urgentHeartbeats(g.cfg.Transport) // don't let the transport delay them
		defer end()
		return g.raft.VerifyLeader().Error()
	}
	return g.confirmTerm(g.raft.CurrentTerm())
}

// confirmTerm asks every other voter whether it is still in term and
// returns nil once a quorum, this replica included, is.
//
// Why this and not raft.VerifyLeader: VerifyLeader counts the replies to
// any heartbeat or AppendEntries, including one sent before the read
// arrived, so a reply delayed in a socket (a paused leader, say) can confirm
// a leader that a new leader has already replaced. A ConfirmTerm request is
// sent after the read arrived, and a replica answers "current" only while
// its term is still term; terms never go back, so a quorum of such answers
// proves no leader of a later term had committed anything (its commit
// quorum would share a replica with ours) when the read arrived.
func (g *Group) confirmTerm(term uint64) error {
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	var peers []raft.Server
	voters, self := 0, false
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if s.ID == raft.ServerID(g.cfg.NodeID) {
			self = true
		} else {
			peers = append(peers, s)
		}
	}
	if !self {
		return g.notLeader()
	}
	need := voters/2 + 1 - 1 // this replica is one of the quorum
	if need <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timing.ElectionTimeout)
	type answer struct {
		current bool
		term    uint64
		err     error
	}
	answers := make(chan answer, len(peers))
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			cur, t, err := g.cfg.Confirmer.ConfirmTerm(ctx, addr, g.cfg.Group, term)
			answers <- answer{cur, t, err}
		}(string(p.Address))
	}
	defer func() {
		cancel() // ends the calls still out once the answer is known
		wg.Wait()
	}()
	yes, no := 0, 0
	var lastErr error
	for range peers {
		select {
		case a := <-answers:
			switch {
			case a.err != nil:
				lastErr = a.err
				no++
			case a.current:
				yes++
			case a.term > term:
				return fmt.Errorf("a replica is in term %d, past %d: %w", a.term, term, g.notLeader())
			default:
				no++
			}
		case <-g.stop:
			return ErrShutdown
		}
		if yes >= need {
			return nil
		}
		if no > len(peers)-need {
			break
		}
	}
	return fmt.Errorf("term %d confirmed by %d of %d voters, need %d (last error: %v): %w",
		term, yes+1, voters, need+1, lastErr, g.notLeader())
}

// watchLeadership commits a no-op each time this replica becomes leader and
// then marks the term ready for reads.
func (g *Group) watchLeadership() {
	defer g.wg.Done()
	for {
		select {
		case <-g.stop:
			return
		case isLeader := <-g.raft.LeaderCh():
			if !isLeader {
				continue
			}
			term := g.raft.CurrentTerm()
			// raft can accept an Apply just as it shuts down and then never
			// answer it (BatchApplyCh buffers the channel), so wait for the
			// future beside g.stop; Shutdown must not hang on it.
			f := g.raft.Apply(g.cfg.NoopCommand, g.cfg.Timing.ElectionTimeout)
			done := make(chan error, 1)
			go func() { done <- f.Error() }()
			var err error
			select {
			case err = <-done:
			case <-g.stop:
				return
			}
			if err != nil {
				g.logger.Debug("leader no-op failed", "term", term, "err", err)
				continue
			}
			if g.raft.State() == raft.Leader && g.raft.CurrentTerm() == term {
				g.readyTerm.Store(term)
				g.mu.Lock()
				close(g.mu.readyCh)
				g.mu.readyCh = make(chan struct{})
				g.mu.Unlock()
				g.logger.Debug("leader ready", "term", term)
			}
		}
	}
}

// LeaderInfo describes a group's leadership as this replica sees it.
type LeaderInfo struct {
	ID, Addr string
	Term     uint64
	// Self is true when this replica is the leader.
	Self bool
}

// Leader returns the current leader as known locally (ID empty if none).
func (g *Group) Leader() LeaderInfo {
	addr, id := g.raft.LeaderWithID()
	return LeaderInfo{
		ID:   string(id),
		Addr: string(addr),
		Term: g.raft.CurrentTerm(),
		Self: g.raft.State() == raft.Leader,
	}
}

// Term returns the replica's current Raft term.
func (g *Group) Term() uint64 { return g.raft.CurrentTerm() }

// AppliedIndex returns the index the state machine has finished applying.
func (g *Group) AppliedIndex() uint64 { return g.fsm.applied.Load() }

// WaitApplied blocks until the state machine has applied index.
func (g *Group) WaitApplied(ctx context.Context, index uint64) error {
	return g.fsm.waitApplied(ctx, index)
}

// Voters returns the group's current voting members.
func (g *Group) Voters() ([]Server, error) {
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, g.mapRaftErr("configuration", err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, Server{ID: string(s.ID), Addr: string(s.Address)})
		}
	}
	return out, nil
}

// TransferLeadership asks raft to hand leadership to another voter.
func (g *Group) TransferLeadership() error {
	if err := g.raft.LeadershipTransfer().Error(); err != nil {
		return g.mapRaftErr("leadership transfer", err)
	}
	return nil
}

// TransferLeadershipTo asks raft to hand leadership to the voter id at addr.
// It returns once the target has taken over, or with an error when it did
// not within an election timeout.
func (g *Group) TransferLeadershipTo(id, addr string) error {
	if err := g.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)).Error(); err != nil {
		return g.mapRaftErr("leadership transfer", err)
	}
	return nil
}

// Snapshot takes a snapshot now and compacts the log behind it.
func (g *Group) Snapshot() error {
	if err := g.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return g.mapRaftErr("snapshot", err)
	}
	return nil
}

// Shutdown stops the group and closes its storage. It is idempotent.
func (g *Group) Shutdown() error {
	g.shutOnce.Do(func() {
		close(g.stop)
		err := g.raft.Shutdown().Error()
		g.wg.Wait()
		if cerr := g.close(); err == nil {
			err = cerr
		}
		if err != nil {
			g.shutErr = fmt.Errorf("group %d: shutdown: %w", g.cfg.Group, err)
		}
	})
	return g.shutErr
}
