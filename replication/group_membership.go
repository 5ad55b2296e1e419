// This file holds a group's membership: reading its configuration and
// changing it one server at a time, the steps of an online replica move
// (add a nonvoter, let it catch up, promote it, remove the replica it
// replaces). How Configuration finds the configuration's log index is in
// group_confindex.go.

package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Configuration is a group's membership as one replica knows it.
type Configuration struct {
	// Index is the log index of the configuration's entry; 0 while the
	// replica has no configuration (a new replica that no leader has
	// reached yet).
	Index uint64
	// Servers are the members, in the order raft keeps them.
	Servers []ConfigServer
}

// ConfigServer is one member of a group's configuration.
type ConfigServer struct {
	ID, Addr string
	// Voter is true for a voting member; a nonvoter receives the log but
	// takes no part in elections or commitment.
	Voter bool
}

// Server returns the member id, and whether there is one.
func (c Configuration) Server(id string) (ConfigServer, bool) {
	for _, m := range c.Servers {
		if m.ID == id {
			return m, true
		}
	}
	return ConfigServer{}, false
}

// Configuration returns the group's latest configuration as this replica
// knows it: the last configuration in its log, which raft uses from the
// moment it is appended, before it commits. Any replica can answer; a
// follower's may lag the leader's.
//
// hashicorp/raft 1.7 does not report the configuration's index, so
// Configuration finds it in the log: the first call may read the log back
// from its end to the latest configuration entry or the newest snapshot
// (at most a log's worth of entries), later calls only the entries appended
// since.
func (g *Group) Configuration(ctx context.Context) (Configuration, error) {
	index, conf, err := g.latestConfiguration(ctx)
	if err != nil {
		return Configuration{}, fmt.Errorf("group %d: configuration: %w", g.cfg.Group, err)
	}
	out := Configuration{Index: index, Servers: make([]ConfigServer, 0, len(conf.Servers))}
	for _, s := range conf.Servers {
		out.Servers = append(out.Servers, ConfigServer{
			ID:    string(s.ID),
			Addr:  string(s.Address),
			Voter: s.Suffrage == raft.Voter,
		})
	}
	return out, nil
}

// AddNonvoter adds id at addr as a nonvoter, which receives the log but
// does not vote. A member id keeps its vote: AddNonvoter returns at once
// if addr is already its address, and otherwise only changes its address.
//
// AddNonvoter, AddVoter, RemoveServer and DemoteVoter change the group's
// membership. They run only on the leader, one change at a time: raft
// starts a change only once the previous one has committed, so a call may
// wait for another. Each returns when its change has committed (not when
// every member has applied it) and is idempotent: when the configuration
// already is as asked, it makes no change, but still waits until that
// configuration has committed.
//
// The raft call's timeout is the time left before ctx's deadline (10 s for
// a ctx without one); the end of ctx abandons the wait. Errors:
//   - *NotLeaderError (errors.Is ErrNotLeader) when this replica does not
//     lead;
//   - ErrOutcomeUnknown when the change may or may not commit: the leader
//     lost its leadership meanwhile (then the error is also a
//     *NotLeaderError naming the new leader, if known), or ctx ended.
//     Repeat the call, on the leader, to settle the outcome;
//   - context.DeadlineExceeded when raft did not take the change in time,
//     which was then not made;
//   - ErrShutdown.
func (g *Group) AddNonvoter(ctx context.Context, id, addr string) error {
	op := "add nonvoter " + id
	if id == "" || addr == "" {
		return g.invalidServer(op)
	}
	return g.changeMembership(ctx, op,
		func(c raft.Configuration) bool {
			s, ok := findServer(c, id)
			return ok && string(s.Address) == addr
		},
		func(timeout time.Duration) raft.Future {
			return g.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
		})
}

// AddVoter makes id at addr a voter: it promotes a nonvoter (updating its
// address), or adds a new server. It is a membership change, with the
// contract and the errors of AddNonvoter.
//
// AddVoter does not wait for the server to catch up (hashicorp/raft#404):
// a voter that lags counts towards the quorum all the same, so adding a
// new or lagging server as a voter can stall commits, or lose the quorum,
// until it has caught up. That is the caller's to prevent: add the server
// with AddNonvoter first, and promote it once its applied index
// (Group.AppliedIndex on its replica) has reached the leader's.
func (g *Group) AddVoter(ctx context.Context, id, addr string) error {
	op := "add voter " + id
	if id == "" || addr == "" {
		return g.invalidServer(op)
	}
	return g.changeMembership(ctx, op,
		func(c raft.Configuration) bool {
			s, ok := findServer(c, id)
			return ok && s.Suffrage == raft.Voter && string(s.Address) == addr
		},
		func(timeout time.Duration) raft.Future {
			return g.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
		})
}

// RemoveServer removes id from the group; it returns nil at once if id is
// not a member. It is a membership change, with the contract and the errors
// of AddNonvoter.
//
// The removed replica is not told: it stops hearing from the leader, the
// other members ignore its vote requests, and shutting it down is the
// caller's job. Removing the leader itself makes it step down once the
// change has committed, leaving the group without a leader for about an
// election timeout: hand leadership over first (TransferLeadershipTo).
func (g *Group) RemoveServer(ctx context.Context, id string) error {
	op := "remove server " + id
	if id == "" {
		return g.invalidServer(op)
	}
	return g.changeMembership(ctx, op,
		func(c raft.Configuration) bool {
			_, ok := findServer(c, id)
			return !ok
		},
		func(timeout time.Duration) raft.Future {
			return g.raft.RemoveServer(raft.ServerID(id), 0, timeout)
		})
}

// DemoteVoter makes the voter id a nonvoter, which keeps receiving the log;
// it returns nil at once if id is not a voter. It is a membership change,
// with the contract and the errors of AddNonvoter. Demoting the leader
// itself makes it step down once the change has committed.
func (g *Group) DemoteVoter(ctx context.Context, id string) error {
	op := "demote voter " + id
	if id == "" {
		return g.invalidServer(op)
	}
	return g.changeMembership(ctx, op,
		func(c raft.Configuration) bool {
			s, ok := findServer(c, id)
			return !ok || s.Suffrage != raft.Voter
		},
		func(timeout time.Duration) raft.Future {
			return g.raft.DemoteVoter(raft.ServerID(id), 0, timeout)
		})
}

func (g *Group) invalidServer(op string) error {
	return fmt.Errorf("group %d: %s: empty server ID or address", g.cfg.Group, op)
}

// changeMembership makes a change unless done says the latest
// configuration needs none, and waits for it to commit.
func (g *Group) changeMembership(ctx context.Context, op string,
	done func(raft.Configuration) bool, change func(timeout time.Duration) raft.Future) error {
	for {
		timeout, err := raftTimeout(ctx)
		if err != nil {
			return fmt.Errorf("group %d: %s: %w", g.cfg.Group, op, err)
		}
		if g.raft.State() != raft.Leader {
			return fmt.Errorf("%s: %w", op, g.notLeader())
		}
		if !done(g.raft.GetConfiguration().Configuration()) {
			return g.awaitChange(ctx, op, func() raft.Future { return change(timeout) })
		}
		// Nothing to change, but the configuration just read may not have
		// committed yet. A barrier commits it, or fails if this replica
		// no longer leads.
		if err := g.awaitChange(ctx, op, func() raft.Future { return g.raft.Barrier(timeout) }); err != nil {
			return err
		}
		if done(g.raft.GetConfiguration().Configuration()) {
			return nil
		}
		// Leadership was lost and won back meanwhile, under another
		// configuration: decide again.
	}
}

// raftTimeout is the timeout to give a raft call made on behalf of ctx.
func raftTimeout(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return 10 * time.Second, nil
	}
	timeout := time.Until(dl)
	if timeout <= 0 {
		return 0, context.DeadlineExceeded
	}
	return timeout, nil
}

// awaitChange calls start, which may block while raft takes the request,
// and waits for the future it returns, or for ctx or the group to end.
func (g *Group) awaitChange(ctx context.Context, op string, start func() raft.Future) error {
	// raft's futures take no context, so the wait runs beside ctx and
	// g.stop. The goroutine ends when raft answers, which it does at the
	// latest on shutdown; the exception is a barrier raft accepts just as
	// it shuts down (see watchLeadership), whose goroutine then stays
	// blocked, but g.stop still ends the wait.
	done := make(chan error, 1)
	go func() { done <- start().Error() }()
	select {
	case err := <-done:
		if err == nil {
			return nil
		}
		if errors.Is(err, raft.ErrLeadershipLost) {
			// The change may still commit under the next leader.
			return fmt.Errorf("%s: %w (%w): %w", op, ErrOutcomeUnknown, err, g.notLeader())
		}
		return g.mapRaftErr(op, err)
	case <-ctx.Done():
		return fmt.Errorf("group %d: %s: %w: %w", g.cfg.Group, op, ErrOutcomeUnknown, ctx.Err())
	case <-g.stop:
		return fmt.Errorf("group %d: %s: %w", g.cfg.Group, op, ErrShutdown)
	}
}

// findServer returns the server id of c.
func findServer(c raft.Configuration, id string) (raft.Server, bool) {
	i := slices.IndexFunc(c.Servers, func(s raft.Server) bool { return s.ID == raft.ServerID(id) })
	if i < 0 {
		return raft.Server{}, false
	}
	return c.Servers[i], true
}
