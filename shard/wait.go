package shard

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// WaitApplied blocks until AppliedIndex() >= index, and returns nil then, or
// until ctx ends, and returns an error wrapping ctx.Err(). It returns nil at
// once if the index is already applied, even with ctx done.
//
// Waiting costs one small allocation and O(log w) with w waiters; an Apply
// wakes exactly the waiters its index satisfies.
func (sm *StateMachine) WaitApplied(ctx context.Context, index uint64) error {
	if sm.applied.Load() >= index {
		return nil
	}
	w := sm.waits.add(index)
	// add published w before this load, and Apply stores the index before
	// it looks for waiters: one of the two sees the other.
	if sm.applied.Load() >= index {
		sm.waits.remove(w)
		return nil
	}
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		if !sm.waits.remove(w) {
			return nil // notified as ctx ended
		}
		return fmt.Errorf("wait for index %d, applied %d: %w", index, sm.applied.Load(), ctx.Err())
	}
}

// waiter is one blocked WaitApplied.
type waiter struct {
	index uint64
	ready chan struct{} // closed once index is applied
	pos   int           // position in waitList.mu.heap, -1 once out of it
}

// waitList holds the blocked WaitApplied calls in a min-heap by index.
type waitList struct {
	// min is the smallest index waited for, math.MaxUint64 when none. It is
	// written with mu held and read without it by notify, which skips the
	// lock when no waiter can be satisfied.
	min atomic.Uint64

	mu struct {
		sync.Mutex
		heap waitHeap
	}
}

func (l *waitList) init() { l.min.Store(math.MaxUint64) }

func (l *waitList) add(index uint64) *waiter {
	w := &waiter{index: index, ready: make(chan struct{})}
	l.mu.Lock()
	heap.Push(&l.mu.heap, w)
	l.min.Store(l.mu.heap[0].index)
	l.mu.Unlock()
	return w
}

// remove takes w out of the list and reports whether it was still there,
// that is, not yet notified.
func (l *waitList) remove(w *waiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.pos < 0 {
		return false
	}
	heap.Remove(&l.mu.heap, w.pos)
	l.storeMinLocked()
	return true
}

// notify wakes every waiter for an index at or below applied.
func (l *waitList) notify(applied uint64) {
	if applied < l.min.Load() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.mu.heap) > 0 && l.mu.heap[0].index <= applied {
		w := heap.Pop(&l.mu.heap).(*waiter)
		close(w.ready)
	}
	l.storeMinLocked()
}

func (l *waitList) storeMinLocked() {
	if len(l.mu.heap) == 0 {
		l.min.Store(math.MaxUint64)
		return
	}
	l.min.Store(l.mu.heap[0].index)
}

// waitHeap implements heap.Interface over waiters, ordered by index, keeping
// each waiter's pos current.
type waitHeap []*waiter

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}

func (h *waitHeap) Push(x any) {
	w := x.(*waiter)
	w.pos = len(*h)
	*h = append(*h, w)
}

func (h *waitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.pos = -1
	return w
}
