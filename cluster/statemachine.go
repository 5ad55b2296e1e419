package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Errors returned in an Apply result.
var (
	// ErrAlreadyInitialized: an Init command reached a cluster that has one.
	ErrAlreadyInitialized = errors.New("cluster already initialized")
	// ErrBadCommand: the command could not be decoded.
	ErrBadCommand = errors.New("bad metadata command")
)

// command is the metadata log's entry. The metadata group sees a handful of
// entries in a cluster's life, so JSON's readability beats compactness.
type command struct {
	Op    string `json:"op"`
	State *State `json:"state,omitempty"`
}

const (
	opNoop = "noop"
	opInit = "init"
)

// NoopCommand returns the command a new metadata leader commits to fix its
// term's commit index; it changes nothing.
func NoopCommand() []byte {
	b, _ := json.Marshal(command{Op: opNoop})
	return b
}

// InitCommand returns the command that creates the cluster with st (whose
// Epoch is set to 1 when applied).
func InitCommand(st State) ([]byte, error) {
	st.Epoch = 1
	if err := st.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(command{Op: opInit, State: &st})
}

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

// Apply applies one metadata command. It returns nil or an error.
func (sm *StateMachine) Apply(_ uint64, cmd []byte) any {
	var c command
	if err := json.Unmarshal(cmd, &c); err != nil {
		return fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	switch c.Op {
	case opNoop:
		return nil
	case opInit:
		if sm.Current().Initialized() {
			return ErrAlreadyInitialized
		}
		if c.State == nil {
			return fmt.Errorf("%w: init without state", ErrBadCommand)
		}
		st := *c.State
		st.Epoch = 1
		if err := st.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadCommand, err)
		}
		sm.publish(&st)
		return nil
	default:
		return fmt.Errorf("%w: unknown op %q", ErrBadCommand, c.Op)
	}
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
