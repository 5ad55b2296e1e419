package workload

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/shard"
	"github.com/ringkv/ringkv/test/jepsen-lite/checker"
	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

// memStore is a linearizable in-memory store. With stale set, reads return
// the value before the last write of the key: a broken read path.
type memStore struct {
	stale bool

	mu   sync.Mutex
	vals map[string]string
	prev map[string]string
}

func newMem(stale bool) *memStore {
	return &memStore{stale: stale, vals: map[string]string{}, prev: map[string]string{}}
}

func (m *memStore) Get(_ context.Context, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vals := m.vals
	if m.stale {
		vals = m.prev
	}
	v, ok := vals[key]
	return v, ok, nil
}

func (m *memStore) Put(_ context.Context, key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.vals[key]; ok {
		m.prev[key] = v
	}
	m.vals[key] = value
	return nil
}

// CompareAndSwap implements Swapper, linearizably (the stale store's
// reads are broken, its swaps are not).
func (m *memStore) CompareAndSwap(_ context.Context, key, old, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.vals[key]; !ok || v != old {
		return &client.ConditionError{Op: "put", Key: []byte(key)}
	}
	m.prev[key] = m.vals[key]
	m.vals[key] = value
	return nil
}

// badCAS is a memStore whose swaps are broken: blind swaps write without
// comparing, spurious ones fail every other comparison that holds.
type badCAS struct {
	*memStore
	blind bool
	n     int
}

func (b *badCAS) CompareAndSwap(ctx context.Context, key, old, value string) error {
	b.mu.Lock()
	cur, found := b.vals[key]
	b.n++
	spurious := !b.blind && b.n%2 == 0 && found && cur == old
	b.mu.Unlock()
	switch {
	case b.blind:
		return b.Put(ctx, key, value)
	case spurious:
		return &client.ConditionError{Op: "put", Key: []byte(key)}
	}
	return b.memStore.CompareAndSwap(ctx, key, old, value)
}

func runRegister(t *testing.T, store ReadWriter) []history.Op {
	t.Helper()
	rec := history.NewRecorder(nil)
	r := &Register{
		Keys: RegisterKeys(3, 8), Reads: 0.5, DirectReads: 0.5, CAS: 0.5, OpTimeout: time.Second,
		Think: time.Millisecond, Seed: 1, Clock: history.NewClock(), Recorder: rec,
	}
	for range 4 {
		r.Workers = append(r.Workers, RegisterWorker{Client: store, Direct: store, DirectNode: "n1"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r.Run(ctx)
	r.FinalReads(context.Background())
	return rec.Ops()
}

func TestRegisterAgainstMemory(t *testing.T) {
	ops := runRegister(t, newMem(false))
	if len(ops) < 20 {
		t.Fatalf("only %d operations in 200ms", len(ops))
	}
	if res := checker.CheckRegister(ops, 10*time.Second); res.Verdict != checker.Valid {
		t.Errorf("linearizable store: verdict %s; want %s", res.Verdict, checker.Valid)
	}
	if res := checker.CheckRegister(runRegister(t, newMem(true)), 10*time.Second); res.Verdict != checker.Invalid {
		t.Errorf("stale store: verdict %s; want %s", res.Verdict, checker.Invalid)
	}
}

// TestRegisterCASAgainstMemory runs swaps against a linearizable store
// (valid, with swaps that succeed and swaps whose comparison fails) and
// against stores whose swaps are broken (invalid).
func TestRegisterCASAgainstMemory(t *testing.T) {
	ops := runRegister(t, newMem(false))
	counts := map[history.Outcome]int{}
	for _, op := range ops {
		if op.Kind == history.CAS {
			counts[op.Outcome]++
			if op.Outcome == history.Fail && !op.ConditionFailed {
				t.Errorf("swap failed without a failed comparison: %+v", op)
			}
		}
	}
	if counts[history.OK] == 0 || counts[history.Fail] == 0 {
		t.Errorf("swaps by outcome = %v; want some ok and some failed", counts)
	}
	if res := checker.CheckRegister(ops, 10*time.Second); res.Verdict != checker.Valid {
		t.Errorf("linearizable store: verdict %s; want %s", res.Verdict, checker.Valid)
	}
	for _, blind := range []bool{true, false} {
		res := checker.CheckRegister(runRegister(t, &badCAS{memStore: newMem(false), blind: blind}), 10*time.Second)
		if res.Verdict != checker.Invalid {
			t.Errorf("broken swaps (blind %v): verdict %s; want %s", blind, res.Verdict, checker.Invalid)
		}
	}
}

// lossy acknowledges every third write without keeping it.
type lossy struct {
	*memStore
	mu sync.Mutex
	n  int
}

func (l *lossy) Put(ctx context.Context, key, value string) error {
	l.mu.Lock()
	l.n++
	drop := l.n%3 == 0
	l.mu.Unlock()
	if drop {
		return nil
	}
	return l.memStore.Put(ctx, key, value)
}

func runSet(t *testing.T, w Writer, r Reader) checker.SetResult {
	t.Helper()
	rec := history.NewRecorder(nil)
	s := &Set{Workers: []Writer{w, w}, Final: r, OpTimeout: time.Second, Think: time.Millisecond, Seed: 1, Clock: history.NewClock(), Recorder: rec}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s.Run(ctx)
	s.FinalReads(context.Background(), 10)
	return checker.CheckSet(rec.Ops())
}

func TestSetAgainstMemory(t *testing.T) {
	m := newMem(false)
	if res := runSet(t, m, m); res.Verdict != checker.Valid || res.Acknowledged == 0 || res.FinalReads != res.Attempted+10 {
		t.Errorf("memory store: %+v; want valid, writes acknowledged, every key and 10 more read", res)
	}
	l := &lossy{memStore: newMem(false)}
	if res := runSet(t, l, l); res.Verdict != checker.Invalid || len(res.Lost) == 0 {
		t.Errorf("lossy store: verdict %s, %d lost; want %s and lost writes", res.Verdict, len(res.Lost), checker.Invalid)
	}
}

func TestOutcome(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want history.Outcome
	}{
		{nil, history.OK},
		{&client.ServerError{Op: "put", Code: codes.InvalidArgument}, history.Fail},
		{&client.ConditionError{Op: "put", Key: []byte("k")}, history.Fail},
		{context.DeadlineExceeded, history.Unknown},
		{errors.New("connection reset"), history.Unknown},
	} {
		if got := outcome(tt.err); got != tt.want {
			t.Errorf("outcome(%v) = %s; want %s", tt.err, got, tt.want)
		}
	}
}

func TestRegisterKeysSpreadOverShards(t *testing.T) {
	keys := RegisterKeys(8, 8)
	if len(keys) != 8 {
		t.Fatalf("RegisterKeys(8, 8) = %d keys", len(keys))
	}
	shards := map[shard.ID]string{}
	for _, k := range keys {
		sh := shard.Of([]byte(k), 8)
		if other, ok := shards[sh]; ok {
			t.Errorf("keys %q and %q share shard %d", other, k, sh)
		}
		shards[sh] = k
	}
	if more := RegisterKeys(12, 8); len(more) != 12 {
		t.Errorf("RegisterKeys(12, 8) = %d keys; want 12", len(more))
	}
}

// TestDirectPick sends direct reads to the node DirectPick names at each
// read, and through the client when it names none.
func TestDirectPick(t *testing.T) {
	store := newMem(false)
	rec := history.NewRecorder(nil)
	var mu sync.Mutex
	picks := 0
	pick := func() (string, Reader) {
		mu.Lock()
		defer mu.Unlock()
		picks++
		switch picks % 3 {
		case 0:
			return "", nil // no node right now
		case 1:
			return "n1", store
		}
		return "n7", store
	}
	r := &Register{
		Keys: RegisterKeys(2, 8), Reads: 1, DirectReads: 1, OpTimeout: time.Second,
		Think: time.Millisecond, Seed: 1, Clock: history.NewClock(), Recorder: rec,
		Workers: []RegisterWorker{{Client: store, DirectPick: pick}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r.Run(ctx)
	nodes := map[string]int{}
	for _, op := range rec.Ops() {
		nodes[op.Node]++
	}
	if nodes["n1"] == 0 || nodes["n7"] == 0 || nodes[""] == 0 || len(nodes) != 3 {
		t.Errorf("reads by node = %v; want some at n1, at n7 and through the client", nodes)
	}
}
