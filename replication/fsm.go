package replication

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// StateMachine is what a Group replicates into. The caller (a shard, the
// cluster metadata) implements it; the group calls it from one goroutine at
// a time, in log order.
type StateMachine interface {
	// Apply applies the command committed at index and returns its result,
	// which is handed back to the proposer. It must be deterministic.
	Apply(index uint64, cmd []byte) any
	// Snapshot captures the current state. It must return quickly (copy on
	// write); the returned Snapshot is written out later, concurrently with
	// further Apply calls.
	Snapshot() (Snapshot, error)
	// Restore replaces the whole state with a snapshot's contents.
	Restore(r io.Reader) error
}

// Snapshot is a point-in-time copy of a StateMachine.
type Snapshot interface {
	WriteTo(w io.Writer) (int64, error)
	Release()
}

// fsm adapts a StateMachine to raft.BatchingFSM and tracks the index the
// state machine has finished applying. raft's own AppliedIndex is advanced
// before the FSM goroutine has applied the entries, so waiting on it would
// let a read run ahead of the state it must observe.
type fsm struct {
	sm  StateMachine
	obs Observer // may be nil

	applied atomic.Uint64

	mu struct {
		sync.Mutex
		// advanced is closed and replaced every time applied grows.
		advanced chan struct{}
	}
}

func newFSM(sm StateMachine, obs Observer) *fsm {
	f := &fsm{sm: sm, obs: obs}
	f.mu.advanced = make(chan struct{})
	return f
}

func (f *fsm) setApplied(index uint64) {
	if index <= f.applied.Load() {
		return
	}
	f.applied.Store(index)
	f.mu.Lock()
	close(f.mu.advanced)
	f.mu.advanced = make(chan struct{})
	f.mu.Unlock()
}

// waitApplied blocks until the state machine has applied index.
func (f *fsm) waitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		ch := f.mu.advanced
		f.mu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for index %d (applied %d): %w", index, f.applied.Load(), ctx.Err())
		}
	}
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	var resp any
	if l.Type == raft.LogCommand {
		resp = f.sm.Apply(l.Index, l.Data)
	}
	f.setApplied(l.Index)
	return resp
}

// ApplyBatch implements raft.BatchingFSM. raft hands it commands and
// configuration entries; only commands reach the state machine, but both
// advance the applied index.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	if f.obs != nil {
		start := time.Now()
		defer func() { f.obs.ObserveApply(len(logs), time.Since(start)) }()
	}
	out := make([]any, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = f.sm.Apply(l.Index, l.Data)
		}
	}
	if n := len(logs); n > 0 {
		f.setApplied(logs[n-1].Index)
	}
	return out
}

// StoreConfiguration implements raft.ConfigurationStore, used when raft
// applies a configuration entry outside a batch.
func (f *fsm) StoreConfiguration(index uint64, _ raft.Configuration) {
	f.setApplied(index)
}

// Snapshot implements raft.FSM. raft calls it on the FSM goroutine, between
// applies, so the applied index read here is exactly the snapshot's.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.sm.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("state machine snapshot: %w", err)
	}
	return &fsmSnapshot{index: f.applied.Load(), snap: s}, nil
}

// Restore implements raft.FSM. The snapshot starts with the applied index
// it was taken at, written by fsmSnapshot.Persist.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(rc, hdr[:]); err != nil {
		return fmt.Errorf("reading snapshot header: %w", err)
	}
	if err := f.sm.Restore(rc); err != nil {
		return fmt.Errorf("state machine restore: %w", err)
	}
	index := binary.BigEndian.Uint64(hdr[:])
	f.applied.Store(index)
	f.mu.Lock()
	close(f.mu.advanced)
	f.mu.advanced = make(chan struct{})
	f.mu.Unlock()
	return nil
}

type fsmSnapshot struct {
	index uint64
	snap  Snapshot
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], s.index)
	if _, err := sink.Write(hdr[:]); err != nil {
		sink.Cancel()
		return fmt.Errorf("writing snapshot header: %w", err)
	}
	if _, err := s.snap.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("writing snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.snap.Release() }
