package raftstore

import (
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestWALCommitDelay: while the WAL is busy (the previous commit carried
// several writes and the next write follows at once), a lone write waits
// for company, up to CommitDelay; after a quiet spell it does not. With
// the delay off, it is committed alone (the negative control).
func TestWALCommitDelay(t *testing.T) {
	const delay = 500 * time.Millisecond
	run := func(t *testing.T, commitDelay time.Duration) (sizes []int, loneTook time.Duration) {
		batches := make(chan int, 100)
		release := make(chan struct{})
		first := true
		w, err := openWAL(t.TempDir(), WALOptions{CommitDelay: commitDelay}, knobs{beforeCommit: func(n int) {
			batches <- n
			if first {
				first = false
				<-release
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		store := func(group uint64, index uint64) <-chan error {
			done := make(chan error, 1)
			g := walGroup(t, w, group)
			go func() { done <- g.StoreLog(&raft.Log{Index: index, Term: 1, Data: []byte("x")}) }()
			return done
		}
		wait := func(done <-chan error) {
			t.Helper()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("write not committed in 10s")
			}
		}
		// A commit of one write held until two more are queued: they go
		// together next, so the WAL is busy. (sizes below start with
		// that second commit.)
		a := store(1, 1)
		<-batches
		b, c := store(2, 1), store(3, 1)
		waitPending(t, w, 2)
		close(release)
		wait(a)
		wait(b)
		wait(c)
		// At once, a lone write, and another 50 ms later.
		start := time.Now()
		d := store(4, 1)
		time.Sleep(50 * time.Millisecond) // the second write comes later on purpose
		e := store(5, 1)
		wait(d)
		wait(e)
		dTook := time.Since(start)
		// After a quiet spell longer than the delay, a lone write goes at once.
		time.Sleep(delay + 100*time.Millisecond)
		start = time.Now()
		wait(store(6, 1))
		loneTook = time.Since(start)
		close(batches)
		for n := range batches {
			sizes = append(sizes, n)
		}
		t.Logf("commit sizes %v; the write that waited took %v, the lone one %v", sizes, dTook, loneTook)
		return sizes, loneTook
	}

	t.Run("on", func(t *testing.T) {
		sizes, lone := run(t, delay)
		if want := []int{2, 2, 1}; !slices.Equal(sizes, want) {
			t.Errorf("commit sizes %v; want %v (the two writes 50 ms apart in one commit)", sizes, want)
		}
		if lone > delay/2 {
			t.Errorf("a write after a quiet spell took %v; want no wait", lone)
		}
	})
	t.Run("off", func(t *testing.T) {
		sizes, _ := run(t, -1)
		if want := []int{2, 1, 1, 1}; !slices.Equal(sizes, want) {
			t.Errorf("commit sizes %v; want %v (no waiting)", sizes, want)
		}
	})
}

// waitPending waits until n writes are queued for the committer.
func waitPending(t *testing.T, w *WAL, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		got := len(w.mu.pending)
		w.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued after 10s; want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}
