package shard

import (
	"errors"
	"fmt"
)

// Defaults of the event history each replica keeps for watchers.
const (
	DefaultEventHistory      = 16_384
	DefaultEventHistoryBytes = 16 << 20
)

// ErrCompacted reports a watch position older than the replica's event
// history: some events after it are no longer kept, so a watcher resuming
// there would miss them.
var ErrCompacted = errors.New("shard: events no longer retained")

// EventType says what an event did to its key.
type EventType uint8

// The event types. An expired TTL is a Delete.
const (
	EventPut    EventType = 1
	EventDelete EventType = 2
)

// Event is one change of one key, as a watcher sees it.
type Event struct {
	Type EventType
	Key  []byte
	// Value is the key's value after a Put, with Version the log index of
	// the change (for a Delete too) and CreateVersion the key's creation.
	// Data is shared with the state machine: callers must not modify it.
	Value
}

// eventLog is a replica's recent events, in log order: a ring bounded by
// count and by the bytes of keys and values it references. It is local to
// the replica, not replicated state: a replica starts it empty at the index
// it starts from (its snapshot) and fills it as it applies entries, so
// every replica holds the same events for the indexes it holds at all.
type eventLog struct {
	maxEvents int
	maxBytes  int64

	events []Event // ring buffer
	head   int     // index in events of the oldest event
	n      int     // events held
	bytes  int64
	// compacted is the highest log index whose events may be missing:
	// events are complete for every index above it.
	compacted uint64
}

func newEventLog(maxEvents int, maxBytes int64) *eventLog {
	return &eventLog{maxEvents: maxEvents, maxBytes: maxBytes}
}

func eventSize(e Event) int64 { return int64(len(e.Key)+len(e.Data)) + 64 }

// add appends e, dropping the oldest events to stay within bounds.
func (l *eventLog) add(e Event) {
	for l.n > 0 && (l.n >= l.maxEvents || l.bytes+eventSize(e) > l.maxBytes) {
		l.dropOldest()
	}
	if l.n == len(l.events) {
		// Grow the ring (its length is its capacity), unrolled.
		grown := make([]Event, min(l.maxEvents, max(2*l.n, 64)))
		for i := range l.n {
			grown[i] = l.events[(l.head+i)%len(l.events)]
		}
		l.events, l.head = grown, 0
	}
	l.events[(l.head+l.n)%len(l.events)] = e
	l.n++
	l.bytes += eventSize(e)
}

func (l *eventLog) dropOldest() {
	old := l.events[l.head]
	l.events[l.head] = Event{}
	l.head = (l.head + 1) % len(l.events)
	l.n--
	l.bytes -= eventSize(old)
	// Events of one index are dropped together or the index counts as
	// compacted: a watcher resumes after whole indexes only.
	l.compacted = max(l.compacted, old.Version)
}

// reset forgets every event; events are complete only above index.
func (l *eventLog) reset(index uint64) {
	l.events, l.head, l.n, l.bytes = nil, 0, 0, 0
	l.compacted = index
}

// since returns the events after index after whose keys match, at most max
// of them but never part of an index, and the index through which the
// answer is complete (applied if every event was returned).
func (l *eventLog) since(after, applied uint64, match func([]byte) bool, limit int) ([]Event, uint64, error) {
	if after < l.compacted {
		return nil, 0, fmt.Errorf("%w: events after index %d requested, complete only after %d", ErrCompacted, after, l.compacted)
	}
	// Binary search for the first event above after.
	lo, hi := 0, l.n
	for lo < hi {
		mid := (lo + hi) / 2
		if l.events[(l.head+mid)%len(l.events)].Version <= after {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	var out []Event
	for i := lo; i < l.n; i++ {
		e := l.events[(l.head+i)%len(l.events)]
		if len(out) >= limit && e.Version != out[len(out)-1].Version {
			return out, out[len(out)-1].Version, nil
		}
		if match(e.Key) {
			out = append(out, e)
		}
	}
	return out, applied, nil
}

// Events returns the changes of keys that match, committed after index
// after, in log order: at most about limit of them (the events of one log
// index are never split), and the index through which the answer is
// complete, to pass as after next time. It returns ErrCompacted when events
// after after are no longer kept (a watcher that fell too far behind, or a
// position from before this replica's snapshot). WaitApplied(through+1)
// waits for more.
func (sm *StateMachine) Events(after uint64, match func(key []byte) bool, limit int) ([]Event, uint64, error) {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	return sm.mu.events.since(after, sm.applied.Load(), match, max(limit, 1))
}
