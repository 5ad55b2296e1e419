package shard

import (
	"bytes"
	"slices"
	"sort"

	"github.com/google/btree"
)

// Client sessions: the bookkeeping behind exactly-once writes, whose rules
// the StateMachine comment states.
//
// Each touch stamps a session with the session clock and the next value of a
// touch counter. Sessions are indexed by touch order, which is also lastSeen
// order because the clock never runs backwards, so expiry and eviction both
// take from the front of that one index.
//
// Snapshots share sessions copy-on-write: a session belongs to the
// generation that created or copied it, a snapshot starts a new generation,
// and a session of an older generation is copied before its first change.

// storedResult is a Result kept for deduplication, compact: applied writes
// never carry an error.
type storedResult struct {
	seq     uint64
	index   uint64
	version uint64
	existed bool
	deleted bool
	// txn and succeeded keep a Txn's outcome; its operations' results are
	// not kept (a duplicate Txn reports no Ops).
	txn       bool
	succeeded bool
}

func (r storedResult) result() Result {
	return Result{Index: r.index, Version: r.version, Existed: r.existed, Deleted: r.deleted, Duplicate: true,
		Txn: r.txn, Succeeded: r.succeeded}
}

// flags encodes the booleans for a snapshot.
func (r storedResult) flags() byte {
	var f byte
	for i, b := range []bool{r.existed, r.deleted, r.txn, r.succeeded} {
		if b {
			f |= 1 << i
		}
	}
	return f
}

// session is one client's deduplication state. Once a snapshot shares it
// (gen below the table's), it is immutable.
type session struct {
	id         []byte // immutable, owned
	ackedBelow uint64
	lastSeen   int64  // session clock at the last touch
	touch      uint64 // touch counter at the last touch; unique per table
	gen        uint64
	// results holds stored results sorted by seq, all seq >= ackedBelow.
	results []storedResult
}

// find returns the position of seq in results, or where it would go.
func (s *session) find(seq uint64) (int, bool) {
	i := sort.Search(len(s.results), func(i int) bool { return s.results[i].seq >= seq })
	return i, i < len(s.results) && s.results[i].seq == seq
}

// lruKey orders sessions by their last touch.
type lruKey struct {
	touch uint64
	id    []byte
}

func lessSession(a, b *session) bool { return bytes.Compare(a.id, b.id) < 0 }
func lessLRU(a, b lruKey) bool       { return a.touch < b.touch }

const sessionDegree = 16

// sessionTable is every session of a state machine. Not safe for concurrent
// use: the state machine guards it with its lock.
type sessionTable struct {
	byID  *btree.BTreeG[*session] // ordered by id
	byLRU *btree.BTreeG[lruKey]   // ordered by touch; one entry per session

	clock   int64  // session clock: max ProposedAt seen, >= 0
	touches uint64 // the last touch counter handed out
	gen     uint64 // sessions of an older generation are shared, read-only
	results int    // stored results across sessions, for SizeBytes

	ttl        int64 // nanoseconds
	max        int
	maxResults int

	probe session // a reusable lookup key, so lookups do not allocate
}

func newSessionTable(cfg Config) *sessionTable {
	return &sessionTable{
		byID:       btree.NewG(sessionDegree, lessSession),
		byLRU:      btree.NewG(sessionDegree, lessLRU),
		ttl:        int64(cfg.SessionTTL),
		max:        cfg.MaxSessions,
		maxResults: cfg.MaxSessionResults,
	}
}

// advance moves the session clock to proposedAt if that is later, then
// expires every session idle for longer than the TTL.
func (t *sessionTable) advance(proposedAt int64) {
	t.clock = max(t.clock, proposedAt)
	for {
		k, ok := t.byLRU.Min()
		if !ok {
			return
		}
		s, _ := t.get(k.id)
		// clock >= lastSeen >= 0, so the difference cannot overflow.
		if t.clock-s.lastSeen <= t.ttl {
			return
		}
		t.remove(s)
	}
}

// get returns the session of id.
func (t *sessionTable) get(id []byte) (*session, bool) {
	t.probe.id = id
	s, ok := t.byID.Get(&t.probe)
	t.probe.id = nil
	return s, ok
}

func (t *sessionTable) remove(s *session) {
	t.byID.Delete(s)
	t.byLRU.Delete(lruKey{touch: s.touch})
	t.results -= len(s.results)
}

// touch returns the writable session of id, created if absent, stamped with
// the current clock and moved to the back of the LRU order. Creating a
// session beyond the table's bound first evicts the least recently touched.
// id is copied if kept.
func (t *sessionTable) touch(id []byte) *session {
	s, ok := t.get(id)
	if !ok {
		for t.byID.Len() >= t.max {
			k, _ := t.byLRU.Min()
			old, _ := t.get(k.id)
			t.remove(old)
		}
		s = &session{id: bytes.Clone(id), gen: t.gen}
		t.byID.ReplaceOrInsert(s)
	} else {
		t.byLRU.Delete(lruKey{touch: s.touch})
		if s.gen != t.gen {
			s = &session{
				id:         s.id,
				ackedBelow: s.ackedBelow,
				results:    append([]storedResult(nil), s.results...),
				gen:        t.gen,
			}
			t.byID.ReplaceOrInsert(s)
		}
	}
	t.touches++
	s.touch = t.touches
	s.lastSeen = t.clock
	t.byLRU.ReplaceOrInsert(lruKey{touch: s.touch, id: s.id})
	return s
}

// store records the result of applying seq, which has no stored result and
// is not below ackedBelow. Beyond maxResults it drops the lowest stored seq
// and raises ackedBelow past it, so a retry of that seq is refused as stale
// rather than applied twice.
func (t *sessionTable) store(s *session, seq uint64, r Result) {
	i, _ := s.find(seq)
	s.results = slices.Insert(s.results, i, storedResult{
		seq: seq, index: r.Index, version: r.Version, existed: r.Existed, deleted: r.Deleted,
		txn: r.Txn, succeeded: r.Succeeded,
	})
	t.results++
	if over := len(s.results) - t.maxResults; over > 0 {
		s.ackedBelow = s.results[over-1].seq + 1
		s.results = s.results[over:]
		t.results -= over
	}
}

// ack raises the session's ackedBelow to ackedBelow if that is higher and
// drops the stored results below it.
func (t *sessionTable) ack(s *session, ackedBelow uint64) {
	if ackedBelow <= s.ackedBelow {
		return
	}
	s.ackedBelow = ackedBelow
	i, _ := s.find(ackedBelow)
	if i == 0 {
		return
	}
	t.results -= i
	if i == len(s.results) {
		s.results = nil
		return
	}
	s.results = s.results[i:]
}

// share returns a copy-on-write clone of the sessions, by id, for a
// snapshot. Sessions in the table at the call become read-only.
func (t *sessionTable) share() *btree.BTreeG[*session] {
	t.gen++
	return t.byID.Clone()
}
