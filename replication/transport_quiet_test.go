package replication

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestTransportQuietAnswer checks each condition under which a pipeline
// answers an empty AppendEntries itself: every one that fails makes the
// request go to the follower.
func TestTransportQuietAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change alters the state after an identical request was
		// acknowledged and a heartbeat acknowledged on stream 5.
		change func(p *pipeline, args *raft.AppendEntriesRequest)
		skip   bool
	}{
		{"identical request, heartbeats acknowledged", func(*pipeline, *raft.AppendEntriesRequest) {}, true},
		{"a newer commit index", func(_ *pipeline, a *raft.AppendEntriesRequest) { a.LeaderCommitIndex++ }, false},
		{"another previous entry", func(_ *pipeline, a *raft.AppendEntriesRequest) { a.PrevLogEntry++ }, false},
		{"another previous term", func(_ *pipeline, a *raft.AppendEntriesRequest) { a.PrevLogTerm++ }, false},
		{"a newer term", func(_ *pipeline, a *raft.AppendEntriesRequest) { a.Term++ }, false},
		{"entries", func(_ *pipeline, a *raft.AppendEntriesRequest) {
			a.Entries = []*raft.Log{{Index: 11, Term: 3}}
		}, false},
		{"the follower answers heartbeats on a new stream (it restarted)", func(p *pipeline, _ *raft.AppendEntriesRequest) {
			p.pace.acknowledged(p.t.mux.now(), 6, 3)
		}, false},
		{"the last heartbeat acknowledged is of another term", func(p *pipeline, _ *raft.AppendEntriesRequest) {
			p.pace.acknowledged(p.t.mux.now(), 5, 2)
		}, false},
		{"the last heartbeat acknowledged is old", func(p *pipeline, _ *raft.AppendEntriesRequest) {
			_, interval := p.pace.lastAck()
			p.pace.acknowledged(p.t.mux.now()-quietAckWindow*interval-time.Millisecond, 5, 3)
		}, false},
		{"the remembered answer is old", func(p *pipeline, _ *raft.AppendEntriesRequest) {
			p.quiet.mu.Lock()
			p.quiet.at -= quietMaxAge + time.Millisecond
			p.quiet.mu.Unlock()
		}, false},
		{"a leadership confirmation waits on the group", func(p *pipeline, _ *raft.AppendEntriesRequest) {
			t.Cleanup(p.t.urgentHeartbeats())
		}, false},
		{"the stream failed", func(p *pipeline, _ *raft.AppendEntriesRequest) {
			p.errMu.Lock()
			p.err = fmt.Errorf("broken")
			p.errMu.Unlock()
		}, false},
		{"the last answer was a refusal", func(p *pipeline, a *raft.AppendEntriesRequest) {
			p.remember(a, &raft.AppendEntriesResponse{Term: 3, LastLog: 7, Success: false})
		}, false},
		{"the last answer was of a newer term", func(p *pipeline, a *raft.AppendEntriesRequest) {
			p.remember(a, &raft.AppendEntriesResponse{Term: 4, LastLog: 10, Success: true})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := acknowledgedPipeline(t, MuxConfig{})
			sent := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("n1")}, Term: 3, PrevLogEntry: 10, PrevLogTerm: 3, LeaderCommitIndex: 10}
			answer := &raft.AppendEntriesResponse{Term: 3, LastLog: 10, Success: true}
			p.remember(sent, answer)

			args := *sent
			tc.change(p, &args)
			got, skip := p.quietAnswer(&args)
			if skip != tc.skip {
				t.Fatalf("skipped = %v; want %v", skip, tc.skip)
			}
			if skip && (got.Term != answer.Term || got.LastLog != answer.LastLog || !got.Success) {
				t.Fatalf("made-up answer %+v; want the follower's %+v", got, *answer)
			}
		})
	}

	t.Run("NoQuietAppends", func(t *testing.T) {
		p := acknowledgedPipeline(t, MuxConfig{NoQuietAppends: true})
		args := &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 10, PrevLogTerm: 3, LeaderCommitIndex: 10}
		p.remember(args, &raft.AppendEntriesResponse{Term: 3, LastLog: 10, Success: true})
		if _, skip := p.quietAnswer(args); skip {
			t.Fatal("skipped with NoQuietAppends")
		}
	})
}

// acknowledgedPipeline returns a pipeline of group 1 to a peer whose
// heartbeats come every 50 ms and were last acknowledged on stream 5 in
// term 3.
func acknowledgedPipeline(t *testing.T, cfg MuxConfig) *pipeline {
	t.Helper()
	tr := transportWithoutServer(t, cfg)
	pace, err := tr.heartbeatPace("peer:1")
	if err != nil {
		t.Fatal(err)
	}
	now := tr.mux.now()
	pace.patience(time.Second, now, 3)
	pace.returned(now)
	pace.patience(time.Second, now+50*time.Millisecond, 3)
	pace.acknowledged(tr.mux.now(), 5, 3)
	return &pipeline{t: tr, pace: pace}
}

// transportWithoutServer returns the transport of group 1 on a Mux that
// serves nothing: enough for the pipeline's bookkeeping.
func transportWithoutServer(t *testing.T, cfg MuxConfig) *GroupTransport {
	t.Helper()
	cfg.LocalAddr = "127.0.0.1:1"
	m := NewMux(cfg)
	t.Cleanup(func() { m.Close() })
	tr, err := m.Transport(1)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestTransportQuietIdleGroups runs Raft groups over Muxes: once idle,
// their pipelines skip most empty AppendEntries; new commands still reach
// every follower, and a follower that restarts (and so forgets the commit
// index) learns it again without a new command.
func TestTransportQuietIdleGroups(t *testing.T) {
	c := newTransportRaftCluster(t, 3, MuxConfig{}, nil)
	const group = 1
	for i := range 3 {
		c.start(i, group)
	}
	c.bootstrap(group, 0, 1, 2)
	leader := c.leader(group, -1)
	first := transportCommands(group, 0, 20, 32)
	c.apply(map[uint64][]string{group: first})
	c.converge(group, first)

	mux := c.nodes[leader].mux
	// CommitTimeout is 5 ms here: a busy pipeline would send hundreds of
	// empty requests a second.
	transportEventually(t, 20*time.Second, "idle pipelines to skip empty AppendEntries", func() error {
		before := mux.Stats()
		time.Sleep(200 * time.Millisecond)
		after := mux.Stats()
		sent, skipped := after.PipelineRequests-before.PipelineRequests, after.QuietAppends-before.QuietAppends
		if skipped < 10 || sent > skipped/4 {
			return fmt.Errorf("in 200 ms: %d sent, %d skipped", sent, skipped)
		}
		return nil
	})

	// Commands after a quiet spell are replicated and applied everywhere.
	second := transportCommands(group, 20, 20, 32)
	c.apply(map[uint64][]string{group: second})
	c.converge(group, append(first, second...))

	// A follower restarted on its log: Raft does not persist the commit
	// index, so it applies nothing until the leader tells it, which a
	// skipped request would not.
	follower := (leader + 1) % 3
	c.stop(follower, group)
	c.restart(follower, group)
	c.converge(group, append(first, second...))
}
