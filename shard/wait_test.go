package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestWaitAppliedAlreadyApplied(t *testing.T) {
	sm := NewStateMachine(Config{})
	sm.Apply(3, put("k", "v"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, index := range []uint64{0, 1, 3} {
		if err := sm.WaitApplied(ctx, index); err != nil {
			t.Errorf("WaitApplied(done ctx, %d) at applied 3 = %v; want nil", index, err)
		}
	}
}

func TestWaitAppliedContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sm := NewStateMachine(Config{})
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- sm.WaitApplied(ctx, 10) }()
		synctest.Wait()
		if n := waiters(sm); n != 1 {
			t.Fatalf("%d waiters blocked; want 1", n)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("WaitApplied(ctx, 10) after cancel = %v; want context.Canceled", err)
		}

		ctx, cancel = context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := sm.WaitApplied(ctx, 10); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitApplied(ctx with 1s deadline, 10) = %v; want context.DeadlineExceeded", err)
		}
		if n := waiters(sm); n != 0 {
			t.Errorf("%d waiters left after their contexts ended; want 0", n)
		}
	})
}

// TestWaitAppliedWakes blocks many waiters on many indexes and checks that
// each wakes once its index is applied, and then sees the write at it.
func TestWaitAppliedWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sm := NewStateMachine(Config{})
		const n = 200
		var wg sync.WaitGroup
		wait := func(i uint64) {
			if err := sm.WaitApplied(t.Context(), i); err != nil {
				t.Errorf("WaitApplied(%d) = %v; want nil", i, err)
				return
			}
			if got := sm.AppliedIndex(); got < i {
				t.Errorf("WaitApplied(%d) returned at AppliedIndex() %d", i, got)
			}
			key := fmt.Sprintf("k%d", i)
			if _, ok := sm.Get([]byte(key)); !ok {
				t.Errorf("after WaitApplied(%d), Get(%q) absent; want the write at %d", i, key, i)
			}
		}
		// Three blocked waiters per index, then as many racing the writes:
		// both the blocking and the fast path must hold.
		for i := uint64(1); i <= n; i++ {
			for range 3 {
				wg.Go(func() { wait(i) })
			}
		}
		synctest.Wait()
		if got := waiters(sm); got != 3*n {
			t.Fatalf("%d waiters blocked; want %d", got, 3*n)
		}
		for i := uint64(1); i <= n; i++ {
			for range 3 {
				wg.Go(func() { wait(i) })
			}
		}
		for i := uint64(1); i <= n; i++ {
			sm.Apply(i, put(fmt.Sprintf("k%d", i), "v"))
		}
		wg.Wait()
		if got := waiters(sm); got != 0 {
			t.Errorf("%d waiters left after all indexes applied; want 0", got)
		}
	})
}

func TestWaitAppliedWokenByRestore(t *testing.T) {
	src := NewStateMachine(Config{})
	src.Apply(50, put("k", "v"))
	snap := snapshotBytes(t, src)

	synctest.Test(t, func(t *testing.T) {
		sm := NewStateMachine(Config{})
		errc := make(chan error, 1)
		go func() { errc <- sm.WaitApplied(t.Context(), 50) }()
		synctest.Wait()
		if err := sm.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		synctest.Wait()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("WaitApplied(50) woken by Restore to 50 = %v; want nil", err)
			}
		default:
			t.Fatal("WaitApplied(50) still blocked after Restore to index 50")
		}
	})
}

// waiters returns the number of blocked WaitApplied calls.
func waiters(sm *StateMachine) int {
	sm.waits.mu.Lock()
	defer sm.waits.mu.Unlock()
	return len(sm.waits.mu.heap)
}

func BenchmarkWaitApplied(b *testing.B) {
	// A waiter that must block, then is woken by the next Apply.
	sm := NewStateMachine(Config{})
	cmd := put("k", "v")
	ctx := context.Background()
	done := make(chan struct{})
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		go func() {
			sm.WaitApplied(ctx, uint64(i))
			done <- struct{}{}
		}()
		sm.Apply(uint64(i), cmd)
		<-done
	}
}
