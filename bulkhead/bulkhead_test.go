package bulkhead

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLimiterAdmitsUpToLimit(t *testing.T) {
	l := New("shard 3", "max-inflight-per-shard", 3)
	var releases []func()
	for i := range 3 {
		rel, err := l.Acquire()
		if err != nil {
			t.Fatalf("Acquire #%d = %v; want admitted", i+1, err)
		}
		releases = append(releases, rel)
	}
	_, err := l.Acquire()
	var fe *FullError
	if !errors.Is(err, ErrFull) || !errors.As(err, &fe) {
		t.Fatalf("Acquire over the limit = %v; want a *FullError wrapping ErrFull", err)
	}
	if fe.Limit != 3 || fe.Bound != "max-inflight-per-shard" || fe.What != "shard 3" {
		t.Errorf("FullError = %+v; want shard 3, max-inflight-per-shard, 3", fe)
	}
	for _, want := range []string{"shard 3", "max-inflight-per-shard", "(3)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if got := l.InFlight(); got != 3 {
		t.Errorf("InFlight after a refusal = %d; want 3 (a refusal holds no slot)", got)
	}
	releases[0]()
	rel, err := l.Acquire()
	if err != nil {
		t.Fatalf("Acquire after a release = %v; want admitted", err)
	}
	rel()
	for _, r := range releases[1:] {
		r()
	}
	if got := l.InFlight(); got != 0 {
		t.Errorf("InFlight after every release = %d; want 0", got)
	}
}

func TestLimiterDoubleReleaseFreesOneSlot(t *testing.T) {
	l := New("node", "max-inflight", 2)
	a, _ := l.Acquire()
	b, _ := l.Acquire()
	a()
	a() // must not free b's slot
	if got := l.InFlight(); got != 1 {
		t.Fatalf("InFlight after releasing one request twice = %d; want 1", got)
	}
	b()
	if got := l.InFlight(); got != 0 {
		t.Fatalf("InFlight = %d; want 0", got)
	}
}

func TestLimiterUnlimited(t *testing.T) {
	for _, limit := range []int{0, -1} {
		l := New("node", "max-inflight", limit)
		var rels []func()
		for range 10_000 {
			rel, err := l.Acquire()
			if err != nil {
				t.Fatalf("limit %d: Acquire = %v; want no limit", limit, err)
			}
			rels = append(rels, rel)
		}
		if got := l.InFlight(); got != 10_000 {
			t.Errorf("limit %d: InFlight = %d; want 10000 (counted even without a bound)", limit, got)
		}
		for _, r := range rels {
			r()
		}
	}
}

// guarded runs work under l the way a server does: acquire, defer release.
func guarded(l *Limiter, work func() error) error {
	release, err := l.Acquire()
	if err != nil {
		return err
	}
	defer release()
	return work()
}

// TestLimiterReleasesOnEveryPath: a request that returns an error, panics,
// or is cancelled while it waits gives its slot back.
func TestLimiterReleasesOnEveryPath(t *testing.T) {
	l := New("shard 0", "max-inflight-per-shard", 1)
	if err := guarded(l, func() error { return errors.New("boom") }); err == nil || errors.Is(err, ErrFull) {
		t.Fatalf("guarded error path = %v; want the work's error", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("work did not panic")
			}
		}()
		_ = guarded(l, func() error { panic("boom") })
	}()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- guarded(l, func() error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	<-started
	if _, err := l.Acquire(); !errors.Is(err, ErrFull) {
		t.Fatalf("Acquire while the only slot is held = %v; want ErrFull", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled work = %v; want context.Canceled", err)
	}
	if got := l.InFlight(); got != 0 {
		t.Fatalf("InFlight after error, panic and cancel = %d; want 0", got)
	}
	if err := guarded(l, func() error { return nil }); err != nil {
		t.Fatalf("Acquire after every path released = %v; want admitted", err)
	}
}

// TestLimiterConcurrentNeverExceeds hammers a Limiter from many goroutines
// and checks that no more than the limit ever run at once and that nothing
// leaks.
func TestLimiterConcurrentNeverExceeds(t *testing.T) {
	const limit = 8
	l := New("node", "max-inflight", limit)
	var (
		mu       sync.Mutex
		running  int
		maxSeen  int
		refused  int
		admitted int
		wg       sync.WaitGroup
	)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				err := guarded(l, func() error {
					mu.Lock()
					running++
					maxSeen = max(maxSeen, running)
					admitted++
					mu.Unlock()
					if (g+i)%7 == 0 {
						time.Sleep(time.Microsecond)
					}
					mu.Lock()
					running--
					mu.Unlock()
					return nil
				})
				if errors.Is(err, ErrFull) {
					mu.Lock()
					refused++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if maxSeen > limit {
		t.Errorf("%d requests ran at once; the limit is %d", maxSeen, limit)
	}
	if admitted+refused != 32*200 {
		t.Errorf("admitted %d + refused %d != %d requests", admitted, refused, 32*200)
	}
	if got := l.InFlight(); got != 0 {
		t.Errorf("InFlight after all requests ended = %d; want 0", got)
	}
}
