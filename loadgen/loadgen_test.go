package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeStore answers every call after a fixed delay (on synctest's fake
// clock) and records what it was sent.
type fakeStore struct {
	delay   time.Duration
	failPut func(key []byte) error // nil: puts succeed

	mu     sync.Mutex
	gets   int
	puts   int
	keys   map[string]int // key -> writes
	values map[int]bool   // value lengths seen
}

func newFakeStore(delay time.Duration) *fakeStore {
	return &fakeStore{delay: delay, keys: map[string]int{}, values: map[int]bool{}}
}

func (s *fakeStore) wait(ctx context.Context) error {
	if s.delay == 0 {
		return ctx.Err()
	}
	t := time.NewTimer(s.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *fakeStore) Get(ctx context.Context, key []byte) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if s.keys[string(key)] == 0 {
		return fmt.Errorf("get %q: not found", key)
	}
	return nil
}

func (s *fakeStore) Put(ctx context.Context, key, value []byte) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	if s.failPut != nil {
		if err := s.failPut(key); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	s.keys[string(key)]++
	s.values[len(value)] = true
	return nil
}

func (s *fakeStore) counts() (gets, puts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets, s.puts
}

func TestClosedLoopStopsAtDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(3 * time.Millisecond)
		start := time.Now()
		res, err := Run(t.Context(), Config{Clients: 2, Duration: time.Second, Keys: 100}, []Store{s})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		// Each client sends its last request before 1 s, at 999 ms, and
		// waits for it: Run ends at 1002 ms, not a moment later.
		if got, want := time.Since(start), 1002*time.Millisecond; got != want {
			t.Errorf("Run took %v; want %v", got, want)
		}
		// One request in flight per client: 334 each, at 0, 3, ..., 999 ms.
		put, ok := res.Op(OpPut)
		if !ok {
			t.Fatalf("no put line in %+v", res)
		}
		if put.Count != 668 {
			t.Errorf("puts counted = %d; want 668 (2 clients × 334)", put.Count)
		}
		if _, puts := s.counts(); puts != 668 {
			t.Errorf("store saw %d puts; want 668", puts)
		}
		if put.Latency.P50 != 3*time.Millisecond || put.Latency.Max != 3*time.Millisecond {
			t.Errorf("latency p50 %v max %v; want 3ms each", put.Latency.P50, put.Latency.Max)
		}
		if got, want := res.OpsPerSec, 668.0; got != want {
			t.Errorf("OpsPerSec = %v; want %v", got, want)
		}
		if _, ok := res.Op(OpGet); ok {
			t.Errorf("a get line in a put-only run: %+v", res.Ops)
		}
	})
}

func TestWarmupIsNotMeasured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(10 * time.Millisecond)
		start := time.Now()
		res, err := Run(t.Context(), Config{Clients: 1, Warmup: 500 * time.Millisecond, Duration: time.Second}, []Store{s})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got, want := time.Since(start), 1500*time.Millisecond; got != want {
			t.Errorf("Run took %v; want %v", got, want)
		}
		put, _ := res.Op(OpPut)
		if put.Count != 100 {
			t.Errorf("measured %d puts; want 100 (the 50 of the warmup not counted)", put.Count)
		}
		if _, puts := s.counts(); puts != 150 {
			t.Errorf("store saw %d puts; want 150", puts)
		}
	})
}

func TestRateLimitsTotalRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(time.Millisecond)
		res, err := Run(t.Context(), Config{Clients: 8, Duration: 2 * time.Second, Rate: 250}, []Store{s})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		// Slots every 4 ms from 0 to 1996 ms: 500 requests, whatever the
		// number of clients.
		put, _ := res.Op(OpPut)
		if put.Count != 500 || res.OpsPerSec != 250 {
			t.Errorf("%d puts, %v ops/s; want 500 at 250 ops/s", put.Count, res.OpsPerSec)
		}
	})
}

func TestRateAboveCapacityStaysClosedLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 2 clients at 10 ms each can do 200/s; asked for 1000/s they do
		// 200/s, and the latency stays 10 ms: no queue builds up.
		s := newFakeStore(10 * time.Millisecond)
		res, err := Run(t.Context(), Config{Clients: 2, Duration: time.Second, Rate: 1000}, []Store{s})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		put, _ := res.Op(OpPut)
		if put.Count != 200 || put.Latency.Max != 10*time.Millisecond {
			t.Errorf("%d puts, max latency %v; want 200 at 10ms", put.Count, put.Latency.Max)
		}
	})
}

func TestPacerDoesNotBankIdleTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(100, time.Now()) // a slot every 10 ms
		end := time.Now().Add(time.Hour)
		if !p.wait(t.Context(), end) {
			t.Fatal("first wait refused")
		}
		time.Sleep(time.Second) // idle: 100 slots pass unused
		before := time.Now()
		for range 3 {
			if !p.wait(t.Context(), end) {
				t.Fatal("wait refused")
			}
		}
		// Slots now, +10 ms, +20 ms: no burst of the 100 missed ones.
		if got, want := time.Since(before), 20*time.Millisecond; got != want {
			t.Errorf("3 waits after an idle second took %v; want %v", got, want)
		}
	})
}

func TestMixAndKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(time.Millisecond)
		cfg := Config{Clients: 4, Duration: time.Second, Keys: 50, ValueSize: 33, Mix: ReadMix(90), Seed: 7}
		if err := Prepopulate(t.Context(), cfg, []Store{s}, 8); err != nil {
			t.Fatalf("Prepopulate: %v", err)
		}
		if len(s.keys) != 50 || s.keys[string(KeyOf(DefaultKeyPrefix, 49))] != 1 {
			t.Fatalf("prepopulated %d keys (last written %d times); want 50, once each",
				len(s.keys), s.keys[string(KeyOf(DefaultKeyPrefix, 49))])
		}
		res, err := Run(t.Context(), cfg, []Store{s, s})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		get, _ := res.Op(OpGet)
		put, _ := res.Op(OpPut)
		if get.Errors+put.Errors != 0 {
			t.Fatalf("errors: %+v", res.Ops)
		}
		frac := float64(get.Count) / float64(get.Count+put.Count)
		if frac < 0.87 || frac > 0.93 {
			t.Errorf("reads are %.3f of %d requests; want 0.90 ± 0.03", frac, get.Count+put.Count)
		}
		if len(s.keys) != 50 {
			t.Errorf("requests touched %d keys; want the 50 of the key space", len(s.keys))
		}
		if len(s.values) != 1 || !s.values[33] {
			t.Errorf("value sizes written: %v; want only 33", s.values)
		}
	})
}

func TestSameSeedSameRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var writes []map[string]int
		for range 2 {
			s := newFakeStore(time.Millisecond)
			if _, err := Run(t.Context(), Config{Duration: 100 * time.Millisecond, Keys: 1000, Seed: 42}, []Store{s}); err != nil {
				t.Fatalf("Run: %v", err)
			}
			writes = append(writes, s.keys)
		}
		if fmt.Sprint(writes[0]) != fmt.Sprint(writes[1]) {
			t.Errorf("two runs with seed 42 wrote different keys")
		}
	})
}

func TestErrorsCountedAndSampled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(time.Millisecond)
		var n int
		var mu sync.Mutex
		s.failPut = func([]byte) error {
			mu.Lock()
			defer mu.Unlock()
			n++
			if n%10 == 0 {
				return errors.New("disk on fire")
			}
			return nil
		}
		res, err := Run(t.Context(), Config{Duration: time.Second}, []Store{s})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		put, _ := res.Op(OpPut)
		if put.Count != 900 || put.Errors != 100 || res.Errors != 100 {
			t.Errorf("%d puts, %d errors (total %d); want 900 and 100", put.Count, put.Errors, res.Errors)
		}
		if put.ErrorSamples["disk on fire"] != 100 {
			t.Errorf("error samples %v; want 100 × disk on fire", put.ErrorSamples)
		}
	})
}

func TestProgressOncePerSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(2 * time.Millisecond)
		var got []Progress
		cfg := Config{Warmup: time.Second, Duration: 2 * time.Second, Progress: func(p Progress) { got = append(got, p) }}
		if _, err := Run(t.Context(), cfg, []Store{s}); err != nil {
			t.Fatalf("Run: %v", err)
		}
		// Ticks at 1 s and 2 s; the one at 3 s races the end and may or may
		// not come.
		if len(got) < 2 {
			t.Fatalf("%d progress reports; want at least 2", len(got))
		}
		for i, p := range got[:2] {
			if p.Elapsed != time.Duration(i+1)*time.Second || p.Interval != time.Second {
				t.Errorf("report %d: elapsed %v interval %v; want %ds, 1s", i, p.Elapsed, p.Interval, i+1)
			}
			// An op that completes exactly on the tick may land in either
			// interval: synctest runs goroutines woken at one instant in no
			// fixed order.
			if ops := p.OpsPerSec(); ops < 499 || ops > 501 {
				t.Errorf("report %d: %v ops/s; want 500±1", i, ops)
			}
		}
		if !got[0].Warmup || got[1].Warmup {
			t.Errorf("warmup flags %v, %v; want true for 0-1s (the warmup), false for 1-2s", got[0].Warmup, got[1].Warmup)
		}
	})
}

func TestCancelReturnsPartialResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(5 * time.Millisecond)
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		res, err := Run(ctx, Config{Duration: time.Hour}, []Store{s})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v; want the context's error", err)
		}
		put, _ := res.Op(OpPut)
		if put.Count != 100 || put.Errors != 0 {
			t.Errorf("%d puts, %d errors before the cancel; want 100 and no error (a cancelled call is not the store's failure)", put.Count, put.Errors)
		}
		if res.Duration != 500*time.Millisecond || res.OpsPerSec != 200 {
			t.Errorf("measured %v at %v ops/s; want 500ms at 200 ops/s", res.Duration, res.OpsPerSec)
		}
	})
}

func TestPrepopulateStopsAtFirstError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(time.Millisecond)
		s.failPut = func(key []byte) error {
			if string(key) == string(KeyOf(DefaultKeyPrefix, 10)) {
				return errors.New("refused")
			}
			return nil
		}
		err := Prepopulate(t.Context(), Config{Keys: 1000}, []Store{s}, 4)
		if err == nil || fmt.Sprint(err) != `loadgen: prepopulate "bench/00000010": refused` {
			t.Fatalf("Prepopulate = %v; want the failure of key 10", err)
		}
		if _, puts := s.counts(); puts > 20 {
			t.Errorf("%d puts after the failure; want it to stop", puts)
		}
	})
}

func TestValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v; want valid", err)
	}
	for _, c := range []Config{
		{Clients: -1},
		{Duration: -time.Second},
		{Warmup: -time.Second},
		{Keys: -5},
		{ValueSize: -1},
		{Rate: -3},
		{Mix: Mix{OpGet: -1, OpPut: 2}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid; want an error", c)
		}
	}
	if _, err := Run(context.Background(), Config{}, nil); err == nil {
		t.Error("Run with no store: no error")
	}
}

func TestKeyOfAndOpNames(t *testing.T) {
	if got := string(KeyOf("k/", 42)); got != "k/00000042" {
		t.Errorf(`KeyOf("k/", 42) = %q; want "k/00000042"`, got)
	}
	if OpGet.String() != "get" || OpPut.String() != "put" || Op(9).String() != "op(9)" {
		t.Errorf("op names %q %q %q", OpGet, OpPut, Op(9))
	}
}
