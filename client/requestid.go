package client

import (
	"sync"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// sequencer numbers a client's writes and tracks which are still in flight,
// for the RequestID that makes each write exactly-once.
type sequencer struct {
	clientID []byte // 16 random bytes, fixed for the life of the Client

	mu struct {
		sync.Mutex
		next     uint64              // the seq the next write gets; starts at 1
		low      uint64              // every seq below low has completed
		inflight map[uint64]struct{} // seqs handed out and not yet completed
	}
}

func newSequencer(clientID []byte) *sequencer {
	s := &sequencer{clientID: clientID}
	s.mu.next = 1
	s.mu.low = 1
	s.mu.inflight = make(map[uint64]struct{})
	return s
}

// begin numbers a new write. Every attempt of the write must send the
// RequestID it returns, unchanged, and end must be called once the write has
// completed (or the client gave up on it and will never resend it).
//
// acked_below is the lowest seq still in flight, which is at most this
// write's own seq: it tells the shard that every seq below has completed at
// the client, so their deduplication records may go.
func (s *sequencer) begin() *ringkvv1.RequestID {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.mu.next
	s.mu.next++
	s.mu.inflight[seq] = struct{}{}
	return &ringkvv1.RequestID{ClientId: s.clientID, Seq: seq, AckedBelow: s.mu.low}
}

// end records that the write numbered seq has completed.
func (s *sequencer) end(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mu.inflight, seq)
	for s.mu.low < s.mu.next {
		if _, busy := s.mu.inflight[s.mu.low]; busy {
			break
		}
		s.mu.low++
	}
}
