package shard

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
)

// Defaults for the zero fields of a Config.
const (
	DefaultSessionTTL        = 10 * time.Minute
	DefaultMaxSessions       = 100_000
	DefaultMaxSessionResults = 10_000
)

// Config tunes a StateMachine. The zero value is valid: every zero field
// takes its default.
//
// The fields decide which requests are deduplicated, so they are part of the
// replicated semantics: every replica of a shard must run with the same
// Config, or replicas diverge when sessions expire or are evicted.
type Config struct {
	// SessionTTL is how long a client session outlives the client's last
	// request, measured by the proposers' timestamps (Command.ProposedAt),
	// not by a local clock. Default DefaultSessionTTL.
	//
	// A request from a client whose session expired starts a new session,
	// so a retry of a request applied before the expiry is applied again.
	// Clients must stop retrying a request well within SessionTTL of first
	// sending it.
	SessionTTL time.Duration

	// MaxSessions bounds the number of client sessions. Creating one more
	// evicts the least recently seen session, with the same consequence as
	// expiry for that client. Size it well above the number of clients
	// active within SessionTTL. Default DefaultMaxSessions.
	MaxSessions int

	// MaxSessionResults bounds the unacknowledged results a session keeps.
	// Storing one more forgets the lowest sequence number's result and
	// raises the session's acknowledged mark past it, so a retry of that
	// request gets ErrStaleRequest: the client learns the outcome is
	// unknown, and the request is never applied twice. A well-behaved
	// client keeps its unacknowledged requests far below this. Default
	// DefaultMaxSessionResults.
	//
	// Memory for sessions is bounded by about
	// MaxSessions * (200 + MaxSessionResults*40) bytes.
	MaxSessionResults int

	// EventHistory and EventHistoryBytes bound the recent changes a
	// replica keeps for watchers (see Events), by count and by the bytes of
	// their keys and values. They are local, not replicated semantics. A
	// watcher further behind than this is cut off with ErrCompacted.
	// Defaults DefaultEventHistory, DefaultEventHistoryBytes.
	EventHistory      int
	EventHistoryBytes int64
}

// DefaultConfig returns a Config with every field set to its default.
func DefaultConfig() Config {
	return Config{
		SessionTTL:        DefaultSessionTTL,
		MaxSessions:       DefaultMaxSessions,
		MaxSessionResults: DefaultMaxSessionResults,
		EventHistory:      DefaultEventHistory,
		EventHistoryBytes: DefaultEventHistoryBytes,
	}
}

// Validate reports a negative field, with an error wrapping ErrBadConfig.
func (c Config) Validate() error {
	switch {
	case c.SessionTTL < 0:
		return fmt.Errorf("%w: SessionTTL %v is negative", ErrBadConfig, c.SessionTTL)
	case c.MaxSessions < 0:
		return fmt.Errorf("%w: MaxSessions %d is negative", ErrBadConfig, c.MaxSessions)
	case c.MaxSessionResults < 0:
		return fmt.Errorf("%w: MaxSessionResults %d is negative", ErrBadConfig, c.MaxSessionResults)
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.SessionTTL <= 0 {
		c.SessionTTL = d.SessionTTL
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = d.MaxSessions
	}
	if c.MaxSessionResults <= 0 {
		c.MaxSessionResults = d.MaxSessionResults
	}
	if c.EventHistory <= 0 {
		c.EventHistory = DefaultEventHistory
	}
	if c.EventHistoryBytes <= 0 {
		c.EventHistoryBytes = DefaultEventHistoryBytes
	}
	return c
}

// Value is a key's stored value and its versions.
type Value struct {
	// Data is the value. It is shared with the state machine and with
	// snapshots: callers must not modify it.
	Data []byte
	// Version is the log index of the write that last set the key.
	Version uint64
	// CreateVersion is the log index of the write that created the key: the
	// first Put after it was absent.
	CreateVersion uint64
	// ExpiresAt is when the key's TTL runs out, unix nanoseconds on the
	// shard clock (see StateMachine); 0 if it has none. The state machine
	// deletes the key when a command at or past ExpiresAt is applied; a
	// reader that sees a value past its ExpiresAt by its own clock must
	// treat it as gone (and make the log catch up, see Clock).
	ExpiresAt int64
}

// Expired reports whether v has a TTL that ran out at or before now (unix
// nanoseconds).
func (v Value) Expired(now int64) bool { return v.ExpiresAt != 0 && v.ExpiresAt <= now }

// Result is the outcome of applying one log entry.
type Result struct {
	// Index is the log index of the entry whose effect this reports: the
	// index passed to Apply, or for a Duplicate the index the request was
	// first applied at.
	Index uint64
	// Version is, for a Put, the key's new version (Index); for a Delete,
	// the version of the value it removed, 0 if there was none; else 0.
	Version uint64
	// Existed reports whether a Put or Delete found the key present.
	Existed bool
	// Deleted reports whether a Delete removed the key.
	Deleted bool
	// Duplicate reports a retried request: nothing was applied now, and the
	// other fields are those of the first application, except that a
	// duplicate Txn carries no Ops.
	Duplicate bool
	// Txn marks the result of a Txn. Succeeded reports whether its compares
	// held (Then ran) or not (Else ran); Ops holds one result per operation
	// of the branch that ran.
	Txn       bool
	Succeeded bool
	Ops       []OpResult
	// Err is set when the entry was not applied: ErrBadCommand,
	// ErrStaleRequest or ErrIndexApplied, wrapped with context.
	Err error
}

// entry is one key in the data tree. Entries are replaced, never modified,
// because snapshots share them.
type entry struct {
	key []byte
	val Value
}

func lessEntry(a, b entry) bool { return bytes.Compare(a.key, b.key) < 0 }

const (
	dataDegree = 32
	// Approximate memory beyond the bytes themselves, for SizeBytes.
	entryOverhead   = 96
	sessionOverhead = 200
	resultOverhead  = 40
)

// StateMachine is the replicated state of one shard: an ordered key-value
// map, the client sessions that make writes exactly-once, and the index of
// the last log entry applied. It is a pure function of the log and its
// Config: the same sequence of (index, command) gives the same state on
// every replica. It reads no clock and draws no random numbers.
//
// # Exactly-once writes
//
// A Put or Delete with a non-empty RequestID.ClientID is applied within that
// client's session, created by its first request:
//
//   - Seq below the session's acknowledged mark: not applied; the Result
//     carries ErrStaleRequest.
//   - Seq whose result the session holds: not applied again, whatever the
//     retry carries; the Result is the stored one, marked Duplicate.
//   - Otherwise: applied, and its Result stored under Seq.
//
// Then the mark rises to min(AckedBelow, Seq) if that is higher, and stored
// results below it are dropped. (Stopping at Seq keeps a request's own
// result for its retries.) Sessions expire after Config.SessionTTL without a
// request and are bounded by Config.MaxSessions and Config.MaxSessionResults;
// each field documents what a client sees past it. A request with an empty
// ClientID is applied every time it is committed.
//
// Time comes only from commands: the session clock is the largest
// Command.ProposedAt applied so far, never below 0, so it does not run
// backwards when leadership moves to a node with a slower clock. Every Apply
// (a Noop too) advances it and expires idle sessions, in amortized O(log n)
// per session expired.
//
// # Concurrency
//
// Apply, Snapshot and Restore serialize with one another (Raft calls them
// from one goroutine anyway). Get, Len, SizeBytes, AppliedIndex and
// WaitApplied are safe concurrently with everything, and cheap: they share a
// read lock that writers hold only for the in-memory update of one entry,
// never for I/O. Snapshot.WriteTo runs concurrently with Apply.
type StateMachine struct {
	cfg Config

	// applied is the index of the last applied entry. It is written only
	// with mu held for writing, after the state it covers, so a reader that
	// observes applied >= i then sees the state at i or later.
	applied atomic.Uint64
	waits   waitList

	mu struct {
		sync.RWMutex
		// data holds every key, ordered; entries are immutable and shared
		// copy-on-write with snapshots.
		data      *btree.BTreeG[entry]
		dataBytes int64 // approximate memory of data, for SizeBytes
		sessions  *sessionTable
		// expiry orders the keys that have a TTL by deadline.
		expiry *btree.BTreeG[expiryKey]
		// events are the recent changes, for watchers.
		events *eventLog
	}
}

// expiryKey is a key with a TTL in the expiry index.
type expiryKey struct {
	at  int64
	key []byte
}

func lessExpiry(a, b expiryKey) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return bytes.Compare(a.key, b.key) < 0
}

// NewStateMachine returns an empty state machine at applied index 0. Fields
// of cfg that are zero or negative take their defaults.
func NewStateMachine(cfg Config) *StateMachine {
	sm := &StateMachine{cfg: cfg.withDefaults()}
	sm.waits.init()
	sm.mu.data = btree.NewG(dataDegree, lessEntry)
	sm.mu.sessions = newSessionTable(sm.cfg)
	sm.mu.expiry = btree.NewG(dataDegree, lessExpiry)
	sm.mu.events = newEventLog(sm.cfg.EventHistory, sm.cfg.EventHistoryBytes)
	return sm
}

// Apply applies the committed log entry cmd at index and returns its
// outcome. It does not retain cmd.
//
// Indexes must increase. An index at or below AppliedIndex is ignored: the
// state does not change and the Result carries ErrIndexApplied. A cmd that
// does not decode changes nothing but the applied index and returns a Result
// with ErrBadCommand. Any other command advances the session clock to its
// ProposedAt and is applied under the session rules in the type's comment.
func (sm *StateMachine) Apply(index uint64, cmd []byte) Result {
	c, decodeErr := DecodeCommand(cmd)

	sm.mu.Lock()
	if applied := sm.applied.Load(); index <= applied {
		sm.mu.Unlock()
		return Result{Index: index, Err: fmt.Errorf("apply index %d, applied %d: %w", index, applied, ErrIndexApplied)}
	}
	var res Result
	if decodeErr != nil {
		res = Result{Index: index, Err: fmt.Errorf("apply index %d: %w", index, decodeErr)}
	} else {
		res = sm.applyLocked(index, c)
	}
	sm.applied.Store(index)
	sm.mu.Unlock()

	sm.waits.notify(index)
	return res
}

func (sm *StateMachine) applyLocked(index uint64, c Command) Result {
	st := sm.mu.sessions
	st.advance(c.ProposedAt)
	sm.expireLocked(index)
	if c.Op == OpNoop {
		return Result{Index: index}
	}
	req := c.Request
	if len(req.ClientID) == 0 {
		return sm.writeLocked(index, c)
	}

	s := st.touch(req.ClientID)
	var res Result
	if req.Seq < s.ackedBelow {
		res = Result{Index: index, Err: fmt.Errorf("apply index %d: client %x seq %d, session acknowledged below %d: %w",
			index, req.ClientID, req.Seq, s.ackedBelow, ErrStaleRequest)}
	} else if i, ok := s.find(req.Seq); ok {
		res = s.results[i].result()
	} else {
		res = sm.writeLocked(index, c)
		st.store(s, req.Seq, res)
	}
	// A client cannot have acknowledged the request it is sending, so the
	// mark stops at Seq: the request's own result stays for its retries.
	st.ack(s, min(req.AckedBelow, req.Seq))
	return res
}

// writeLocked applies a Put, Delete or Txn.
func (sm *StateMachine) writeLocked(index uint64, c Command) Result {
	switch c.Op {
	case OpPut:
		_, existed := sm.putLocked(index, c.Key, c.Value, 0)
		return Result{Index: index, Version: index, Existed: existed}
	case OpDelete:
		old, existed := sm.deleteLocked(index, c.Key)
		if !existed {
			return Result{Index: index}
		}
		return Result{Index: index, Version: old.Version, Existed: true, Deleted: true}
	case OpTxn:
		return sm.txnLocked(index, c)
	}
	// DecodeCommand admits no other op.
	return Result{Index: index, Err: fmt.Errorf("apply index %d: %w: unknown op %v", index, ErrBadCommand, c.Op)}
}

// putLocked sets key to value at index, with a deadline expires (0: none),
// and returns the new value and whether the key existed.
func (sm *StateMachine) putLocked(index uint64, key, value []byte, expires int64) (Value, bool) {
	data := sm.mu.data
	e := entry{val: Value{Version: index, CreateVersion: index, ExpiresAt: expires}}
	old, existed := data.Get(entry{key: key})
	if existed {
		e.key = old.key
		e.val.CreateVersion = old.val.CreateVersion
		e.val.Data = bytes.Clone(value)
		sm.mu.dataBytes += int64(len(e.val.Data) - len(old.val.Data))
		if old.val.ExpiresAt != 0 {
			sm.mu.expiry.Delete(expiryKey{at: old.val.ExpiresAt, key: old.key})
		}
	} else {
		// One allocation for both key and value.
		buf := make([]byte, len(key)+len(value))
		n := copy(buf, key)
		copy(buf[n:], value)
		e.key, e.val.Data = buf[:n:n], buf[n:]
		sm.mu.dataBytes += int64(len(buf)) + entryOverhead
	}
	if expires != 0 {
		sm.mu.expiry.ReplaceOrInsert(expiryKey{at: expires, key: e.key})
	}
	data.ReplaceOrInsert(e)
	sm.mu.events.add(Event{Type: EventPut, Key: e.key, Value: e.val})
	return e.val, existed
}

// deleteLocked removes key at index and returns the removed value.
func (sm *StateMachine) deleteLocked(index uint64, key []byte) (Value, bool) {
	old, existed := sm.mu.data.Delete(entry{key: key})
	if !existed {
		return Value{}, false
	}
	sm.mu.dataBytes -= int64(len(old.key)+len(old.val.Data)) + entryOverhead
	if old.val.ExpiresAt != 0 {
		sm.mu.expiry.Delete(expiryKey{at: old.val.ExpiresAt, key: old.key})
	}
	sm.mu.events.add(Event{Type: EventDelete, Key: old.key,
		Value: Value{Version: index, CreateVersion: old.val.CreateVersion}})
	return old.val, true
}

// expireLocked deletes every key whose deadline the shard clock has
// reached, as part of applying the entry at index.
func (sm *StateMachine) expireLocked(index uint64) {
	clock := sm.mu.sessions.clock
	for {
		k, ok := sm.mu.expiry.Min()
		if !ok || k.at > clock {
			return
		}
		sm.deleteLocked(index, k.key)
	}
}

// Clock returns the shard clock: the largest Command.ProposedAt applied, in
// unix nanoseconds. Keys whose ExpiresAt is at or below it are gone.
func (sm *StateMachine) Clock() int64 {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	return sm.mu.sessions.clock
}

// NextExpiry returns the earliest deadline of a key with a TTL, and false if
// no key has one. A leader proposes a Noop once its clock passes it, so that
// expired keys leave every replica through the log.
func (sm *StateMachine) NextExpiry() (int64, bool) {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	k, ok := sm.mu.expiry.Min()
	return k.at, ok
}

// Get returns the value of key and whether it exists, as of AppliedIndex at
// some instant during the call. To read one's own write, WaitApplied for its
// index first.
func (sm *StateMachine) Get(key []byte) (Value, bool) {
	sm.mu.RLock()
	e, ok := sm.mu.data.Get(entry{key: key})
	sm.mu.RUnlock()
	return e.val, ok
}

// AppliedIndex returns the index of the last applied log entry, 0 before the
// first. It only grows, except that Restore sets it to the snapshot's.
func (sm *StateMachine) AppliedIndex() uint64 {
	return sm.applied.Load()
}

// Len returns the number of keys.
func (sm *StateMachine) Len() int {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	return sm.mu.data.Len()
}

// SizeBytes returns the approximate memory the state holds: keys, values,
// sessions and stored results, with a fixed estimate of per-item overhead.
// It is meant for metrics and snapshot heuristics, not accounting.
func (sm *StateMachine) SizeBytes() int64 {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	st := sm.mu.sessions
	return sm.mu.dataBytes +
		int64(st.byID.Len())*(sessionOverhead+MaxClientIDSize) +
		int64(st.results)*resultOverhead
}

// KeyValue is one key and its value, as Scan returns them.
type KeyValue struct {
	Key []byte
	Value
}

// Scan returns, in key order, up to limit keys that start with prefix and
// sort after after (nil: from the first), and whether more such keys
// follow. keysOnly leaves the values' Data out. The keys and values are
// shared with the state machine: callers must not modify them. Keys whose
// TTL ran out by the shard clock are already gone; the caller judges
// ExpiresAt against its own clock.
func (sm *StateMachine) Scan(prefix, after []byte, limit int, keysOnly bool) ([]KeyValue, bool) {
	start := prefix
	if after != nil && bytes.Compare(after, prefix) >= 0 {
		// The first key after "after": after itself plus a zero byte.
		start = append(bytes.Clone(after), 0)
	}
	var out []KeyValue
	more := false
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	sm.mu.data.AscendGreaterOrEqual(entry{key: start}, func(e entry) bool {
		if !bytes.HasPrefix(e.key, prefix) {
			return false
		}
		if len(out) >= limit {
			more = true
			return false
		}
		kv := KeyValue{Key: e.key, Value: e.val}
		if keysOnly {
			kv.Data = nil
		}
		out = append(out, kv)
		return true
	})
	return out, more
}
