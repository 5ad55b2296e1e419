package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Errors returned in an Apply result. Callers match them with errors.Is;
// the message says what was wrong.
var (
	// ErrAlreadyInitialized: an Init command reached a cluster that has one.
	ErrAlreadyInitialized = errors.New("cluster already initialized")
	// ErrBadCommand: the command could not be decoded or is malformed.
	ErrBadCommand = errors.New("bad metadata command")
	// ErrNotInitialized: a change reached a cluster that has no metadata.
	ErrNotInitialized = errors.New("cluster not initialized")
	// ErrExists: a join names an ID that is a member at another address.
	ErrExists = errors.New("node already exists")
	// ErrRemoved: a join names an ID that was removed from the cluster.
	ErrRemoved = errors.New("node was removed")
	// ErrNotMember: a command names a node that is not a member.
	ErrNotMember = errors.New("not a member")
	// ErrTooFewNodes: the change would leave fewer placeable nodes than the
	// replication factor.
	ErrTooFewNodes = errors.New("too few nodes")
	// ErrMoveConflict: a move step does not match the shard's state (for
	// example a second move on a shard, or finishing a move that is not in
	// progress). The proposer re-reads the metadata and tries again.
	ErrMoveConflict = errors.New("move conflict")
)

// StateMachine is the metadata group's replicated state. Readers call
// Current and Changed from any goroutine; replication calls Apply, Snapshot
// and Restore.
type StateMachine struct {
	cur atomic.Pointer[State]

	mu struct {
		sync.Mutex
		changed chan struct{} // closed and replaced on every change
	}
}

// NewStateMachine returns an uninitialized metadata state machine.
func NewStateMachine() *StateMachine {
	sm := &StateMachine{}
	sm.cur.Store(&State{})
	sm.mu.changed = make(chan struct{})
	return sm
}

// Current returns the latest applied state; never nil, Epoch 0 until the
// cluster is initialized. Callers must not modify it.
func (sm *StateMachine) Current() *State { return sm.cur.Load() }

// Changed returns a channel that is closed at the next change of state.
func (sm *StateMachine) Changed() <-chan struct{} {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.mu.changed
}

func (sm *StateMachine) publish(st *State) {
	sm.cur.Store(st)
	sm.mu.Lock()
	close(sm.mu.changed)
	sm.mu.changed = make(chan struct{})
	sm.mu.Unlock()
}

// Apply applies one metadata command. It returns nil or an error
// (ErrBadCommand, or a refusal such as ErrTooFewNodes) and changes nothing
// on error. Every applied change increments the epoch.
func (sm *StateMachine) Apply(_ uint64, cmd []byte) any {
	var c command
	if err := json.Unmarshal(cmd, &c); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	cur := sm.Current()
	switch c.Op {
	case opNoop:
		return nil
	case opInit:
		if cur.Initialized() {
			return ErrAlreadyInitialized
		}
		if c.State == nil {
			return fmt.Errorf("%w: init without state", ErrBadCommand)
		}
		st := *c.State
		st.Epoch = 1
		st.normalize()
		if err := st.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadCommand, err)
		}
		sm.publish(&st)
		return nil
	}
	if !knownOps[c.Op] && !authOps[c.Op] {
		return fmt.Errorf("%w: unknown op %q", ErrBadCommand, c.Op)
	}
	if !cur.Initialized() {
		return ErrNotInitialized
	}
	next := cur.clone()
	changed, err := next.apply(c)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	next.Epoch = cur.Epoch + 1
	if err := next.Validate(); err != nil {
		// A bug, not a user error: never publish an inconsistent state.
		return fmt.Errorf("%w: %s would make the metadata inconsistent: %w", ErrBadCommand, c.Op, err)
	}
	sm.publish(next)
	return nil
}

// Snapshot returns the current state, which is immutable.
func (sm *StateMachine) Snapshot() (*Snapshot, error) {
	return &Snapshot{st: sm.Current()}, nil
}

// Restore replaces the state with a snapshot's.
func (sm *StateMachine) Restore(r io.Reader) error {
	var p *State
	if err := json.NewDecoder(r).Decode(&p); err != nil {
		return fmt.Errorf("decoding metadata snapshot: %w", err)
	}
	if p == nil {
		return errors.New("decoding metadata snapshot: empty document")
	}
	st := *p
	if st.Initialized() {
		st.normalize()
		if err := st.Validate(); err != nil {
			return fmt.Errorf("metadata snapshot: %w", err)
		}
	}
	sm.publish(&st)
	return nil
}

// Snapshot is a point-in-time copy of the metadata.
type Snapshot struct{ st *State }

// WriteTo writes the snapshot as JSON.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	b, err := json.Marshal(s.st)
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

// Release does nothing; the state is immutable.
func (s *Snapshot) Release() {}
