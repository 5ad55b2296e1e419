// This file lets an idle group's pipeline skip the empty AppendEntries that
// Raft sends every CommitTimeout to each follower. On an idle node they are
// most of what the transport still sends once heartbeats are coalesced
// (transport_heartbeat.go): one request and one answer per group and
// follower every CommitTimeout, each a stream message, a goroutine wake-up
// on both sides and a pass through the follower's Raft loop. Yet once a
// follower has acknowledged an empty AppendEntries, the next identical one
// (same term, same previous entry, same commit index) tells it nothing: it
// already holds those entries and knows that commit index. So the pipeline
// answers it itself, with the follower's previous answer, when it can tell
// that the follower is the same process and still there:
//
//   - The request is empty, the stream has not failed, and no leadership
//     confirmation is waiting on this group's followers (heartbeatsUrgent):
//     a skipped request must never count as a fresh acknowledgement of
//     leadership (raft.VerifyLeader counts pipeline answers too). The
//     pipeline's read loop always waits for a message, so a stream that
//     the follower ended (its group closed) or lost (its process died) has
//     failed as soon as the leader's gRPC connection knows it.
//   - The follower acknowledged an identical request on this pipeline, at
//     most quietMaxAge ago: after that, one goes for real.
//   - The follower acknowledged a heartbeat of the group in this term, on
//     the same Heartbeats stream as when it answered that request, within
//     quietAckWindow heartbeat intervals (about HeartbeatTimeout/2 with
//     coalescing). A stream reaches one process: a follower that restarted
//     (and forgot the commit index, which Raft does not persist) answers on
//     a new stream, so the next request goes for real. One that stopped
//     answering heartbeats, or answers them in a newer term, gets real
//     requests again within that window, whose failures or newer term
//     Raft then sees as it would have.
//
// What Raft does with a made-up answer: it refreshes the follower's last
// contact, which the leader lease checks, no more than the heartbeat
// acknowledged within the window justifies; it changes no match index
// (the request has no entries); and it notifies leadership verifiers,
// which is why urgent groups never skip. MuxConfig.NoQuietAppends turns
// this off.

package replication

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

const (
	// quietMaxAge bounds how long a pipeline answers empty AppendEntries
	// from one real answer: after it, one goes to the follower.
	quietMaxAge = 30 * time.Second
	// quietAckWindow is how many heartbeat intervals old the follower's
	// last heartbeat acknowledgement may be for a request to be skipped.
	quietAckWindow = 4
)

// quietAppends remembers a pipeline's last acknowledged AppendEntries.
type quietAppends struct {
	mu    sync.Mutex
	valid bool
	key   appendKey
	resp  raft.AppendEntriesResponse
	// at is when the answer came, on the Mux clock.
	at time.Duration
	// stream is the Heartbeats stream of the follower's last heartbeat
	// acknowledgement when the answer came.
	stream uint64
}

// appendKey is what an empty AppendEntries tells a follower.
type appendKey struct {
	term, prevIndex, prevTerm, commit uint64
}

func keyOf(args *raft.AppendEntriesRequest) appendKey {
	return appendKey{term: args.Term, prevIndex: args.PrevLogEntry, prevTerm: args.PrevLogTerm, commit: args.LeaderCommitIndex}
}

// remember records the follower's answer to a request sent for real.
func (p *pipeline) remember(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) {
	q := &p.quiet
	ack, _ := p.pace.lastAck()
	q.mu.Lock()
	defer q.mu.Unlock()
	if !resp.Success || resp.Term != args.Term {
		q.valid = false
		return
	}
	q.valid, q.key, q.resp, q.at, q.stream = true, keyOf(args), *resp, p.t.mux.now(), ack.stream
}

// quietAnswer returns the answer to args if the request can be skipped
// (see the top of this file).
func (p *pipeline) quietAnswer(args *raft.AppendEntriesRequest) (raft.AppendEntriesResponse, bool) {
	if p.t.mux.cfg.NoQuietAppends || len(args.Entries) > 0 || p.t.heartbeatsUrgent() || p.failure() != nil {
		return raft.AppendEntriesResponse{}, false
	}
	ack, interval := p.pace.lastAck()
	now := p.t.mux.now()
	q := &p.quiet
	q.mu.Lock()
	defer q.mu.Unlock()
	ok := q.valid && q.key == keyOf(args) && now-q.at <= quietMaxAge &&
		interval > 0 && ack.stream != 0 && ack.stream == q.stream && ack.term == args.Term &&
		now-ack.at <= quietAckWindow*interval
	if !ok {
		return raft.AppendEntriesResponse{}, false
	}
	return q.resp, true
}
