package shard

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
)

// step is one log entry of a table test and the Result it must produce.
type step struct {
	cmd     []byte
	want    Result // compared without Err
	wantErr error  // compared with errors.Is; nil means no error
}

// run applies steps at indexes 1, 2, ... and checks each Result.
func run(t *testing.T, sm *StateMachine, steps []step) {
	t.Helper()
	for i, s := range steps {
		index := uint64(i + 1)
		got := sm.Apply(index, s.cmd)
		checkResult(t, fmt.Sprintf("step %d: Apply(%d, %s)", i, index, describe(s.cmd)), got, s.want, s.wantErr)
	}
}

func checkResult(t *testing.T, what string, got, want Result, wantErr error) {
	t.Helper()
	if wantErr == nil && got.Err != nil {
		t.Errorf("%s error: %v", what, got.Err)
	}
	if wantErr != nil && !errors.Is(got.Err, wantErr) {
		t.Errorf("%s error = %v; want %v", what, got.Err, wantErr)
	}
	got.Err = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v; want %+v", what, got, want)
	}
}

// describe renders a command for test messages.
func describe(cmd []byte) string {
	c, err := DecodeCommand(cmd)
	if err != nil {
		return fmt.Sprintf("garbage %x", head(cmd))
	}
	switch c.Op {
	case OpPut:
		return fmt.Sprintf("Put(%q=%q, %q#%d ack<%d, t=%d)", c.Key, head(c.Value), c.Request.ClientID, c.Request.Seq, c.Request.AckedBelow, c.ProposedAt)
	case OpDelete:
		return fmt.Sprintf("Delete(%q, %q#%d ack<%d, t=%d)", c.Key, c.Request.ClientID, c.Request.Seq, c.Request.AckedBelow, c.ProposedAt)
	}
	return fmt.Sprintf("Noop(t=%d)", c.ProposedAt)
}

func put(key, value string) []byte { return EncodePut([]byte(key), []byte(value), RequestID{}, 0) }
func del(key string) []byte        { return EncodeDelete([]byte(key), RequestID{}, 0) }

// checkGet checks Get(key) against want; a nil want means absent.
func checkGet(t *testing.T, sm *StateMachine, key string, want *Value) {
	t.Helper()
	got, ok := sm.Get([]byte(key))
	switch {
	case want == nil && ok:
		t.Errorf("Get(%q) = %q v%d c%d; want absent", key, got.Data, got.Version, got.CreateVersion)
	case want != nil && !ok:
		t.Errorf("Get(%q) absent; want %q v%d c%d", key, want.Data, want.Version, want.CreateVersion)
	case want != nil && (!bytes.Equal(got.Data, want.Data) || got.Version != want.Version || got.CreateVersion != want.CreateVersion):
		t.Errorf("Get(%q) = %q v%d c%d; want %q v%d c%d", key,
			got.Data, got.Version, got.CreateVersion, want.Data, want.Version, want.CreateVersion)
	}
}

func val(data string, version, create uint64) *Value {
	return &Value{Data: []byte(data), Version: version, CreateVersion: create}
}

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
		want  map[string]*Value // after the steps; nil value means absent
	}{
		{"put new key",
			[]step{{cmd: put("k", "v"), want: Result{Index: 1, Version: 1}}},
			map[string]*Value{"k": val("v", 1, 1), "other": nil}},
		{"overwrite keeps create version",
			[]step{
				{cmd: put("k", "v1"), want: Result{Index: 1, Version: 1}},
				{cmd: put("k", "v2"), want: Result{Index: 2, Version: 2, Existed: true}},
			},
			map[string]*Value{"k": val("v2", 2, 1)}},
		{"put empty value",
			[]step{{cmd: put("k", ""), want: Result{Index: 1, Version: 1}}},
			map[string]*Value{"k": val("", 1, 1)}},
		{"delete existing reports removed version",
			[]step{
				{cmd: put("k", "v"), want: Result{Index: 1, Version: 1}},
				{cmd: put("j", "v"), want: Result{Index: 2, Version: 2}},
				{cmd: del("k"), want: Result{Index: 3, Version: 1, Existed: true, Deleted: true}},
			},
			map[string]*Value{"k": nil, "j": val("v", 2, 2)}},
		{"delete missing changes nothing",
			[]step{
				{cmd: put("j", "v"), want: Result{Index: 1, Version: 1}},
				{cmd: del("k"), want: Result{Index: 2}},
			},
			map[string]*Value{"k": nil, "j": val("v", 1, 1)}},
		{"recreate after delete has a new create version",
			[]step{
				{cmd: put("k", "a"), want: Result{Index: 1, Version: 1}},
				{cmd: del("k"), want: Result{Index: 2, Version: 1, Existed: true, Deleted: true}},
				{cmd: put("k", "b"), want: Result{Index: 3, Version: 3}},
			},
			map[string]*Value{"k": val("b", 3, 3)}},
		{"noop changes nothing",
			[]step{
				{cmd: put("k", "v"), want: Result{Index: 1, Version: 1}},
				{cmd: EncodeNoop(5), want: Result{Index: 2}},
			},
			map[string]*Value{"k": val("v", 1, 1)}},
		{"bad commands change nothing",
			[]step{
				{cmd: put("k", "v"), want: Result{Index: 1, Version: 1}},
				{cmd: nil, want: Result{Index: 2}, wantErr: ErrBadCommand},
				{cmd: []byte("garbage"), want: Result{Index: 3}, wantErr: ErrBadCommand},
				{cmd: put("", "v"), want: Result{Index: 4}, wantErr: ErrBadCommand},
				{cmd: put("k", "v")[:4], want: Result{Index: 5}, wantErr: ErrBadCommand},
			},
			map[string]*Value{"k": val("v", 1, 1), "": nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := NewStateMachine(Config{})
			run(t, sm, tc.steps)
			for k, v := range tc.want {
				checkGet(t, sm, k, v)
			}
			if got, want := sm.AppliedIndex(), uint64(len(tc.steps)); got != want {
				t.Errorf("AppliedIndex() = %d; want %d", got, want)
			}
		})
	}
}

func TestApplyIgnoresOldIndexes(t *testing.T) {
	sm := NewStateMachine(Config{})
	checkResult(t, "Apply(5, put k=a)", sm.Apply(5, put("k", "a")), Result{Index: 5, Version: 5}, nil)
	for _, index := range []uint64{5, 4, 0} {
		got := sm.Apply(index, put("k", "b"))
		checkResult(t, fmt.Sprintf("Apply(%d, put k=b) after 5", index), got, Result{Index: index}, ErrIndexApplied)
	}
	checkGet(t, sm, "k", val("a", 5, 5))
	if got := sm.AppliedIndex(); got != 5 {
		t.Errorf("AppliedIndex() = %d; want 5", got)
	}
	// Gaps are fine: Raft hands the state machine only command entries.
	checkResult(t, "Apply(9, put k=c)", sm.Apply(9, put("k", "c")), Result{Index: 9, Version: 9, Existed: true}, nil)
	checkGet(t, sm, "k", val("c", 9, 5))
}

func TestApplyDoesNotRetainCommand(t *testing.T) {
	sm := NewStateMachine(Config{})
	cmd := put("key", "value")
	sm.Apply(1, cmd)
	for i := range cmd {
		cmd[i] = 'x'
	}
	checkGet(t, sm, "key", val("value", 1, 1))
}

func TestLenAndSizeBytes(t *testing.T) {
	sm := NewStateMachine(Config{})
	if sm.Len() != 0 || sm.SizeBytes() != 0 {
		t.Fatalf("empty: Len() = %d, SizeBytes() = %d; want 0, 0", sm.Len(), sm.SizeBytes())
	}
	value := string(make([]byte, 1000))
	for i := range 10 {
		sm.Apply(uint64(i+1), put(fmt.Sprintf("key-%d", i), value))
	}
	if got := sm.Len(); got != 10 {
		t.Errorf("Len() after 10 puts = %d; want 10", got)
	}
	full := sm.SizeBytes()
	if full < 10_000 || full > 20_000 {
		t.Errorf("SizeBytes() with 10 values of 1000 bytes = %d; want about 10,000-20,000", full)
	}
	for i := range 10 {
		sm.Apply(uint64(20+i), del(fmt.Sprintf("key-%d", i)))
	}
	if sm.Len() != 0 || sm.SizeBytes() != 0 {
		t.Errorf("after deleting all: Len() = %d, SizeBytes() = %d; want 0, 0", sm.Len(), sm.SizeBytes())
	}
	sm.Apply(40, EncodePut([]byte("k"), nil, RequestID{ClientID: []byte("c"), Seq: 1}, 0))
	if got := sm.SizeBytes(); got < entryOverhead+sessionOverhead+resultOverhead {
		t.Errorf("SizeBytes() with one key and one session = %d; want at least %d", got, entryOverhead+sessionOverhead+resultOverhead)
	}
}

func TestConfig(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("Config{}.Validate() = %v; want nil", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v; want nil", err)
	}
	for _, c := range []Config{{SessionTTL: -1}, {MaxSessions: -1}, {MaxSessionResults: -1}} {
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v.Validate() = %v; want ErrBadConfig", c, err)
		}
	}
	want := DefaultConfig()
	want.MaxSessions = 3
	if got := NewStateMachine(Config{MaxSessions: 3}).cfg; got != want {
		t.Errorf("NewStateMachine(Config{MaxSessions: 3}) config = %+v; want defaults but MaxSessions 3", got)
	}
}

// TestGetDuringApply runs readers against a writer; with -race it checks the
// locking, and it checks that a reader never sees a key go back in time.
func TestGetDuringApply(t *testing.T) {
	sm := NewStateMachine(Config{})
	const writes = 5000
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			var last uint64
			for sm.AppliedIndex() < writes {
				v, ok := sm.Get([]byte("hot"))
				if ok && v.Version < last {
					t.Errorf("reader %d: Get(hot) version %d after %d", r, v.Version, last)
					return
				}
				if ok {
					last = v.Version
					if want := fmt.Sprint(v.Version); string(v.Data) != want {
						t.Errorf("reader %d: Get(hot) = %q at version %d; want %q", r, v.Data, v.Version, want)
						return
					}
				}
				_ = sm.Len()
				_ = sm.SizeBytes()
			}
		})
	}
	for i := uint64(1); i <= writes; i++ {
		sm.Apply(i, put("hot", fmt.Sprint(i)))
	}
	wg.Wait()
}

// randomKeys returns n distinct keys from a seeded generator.
func randomKeys(n int, rng *rand.Rand) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "user:%08x:%d", rng.Uint32(), i)
	}
	return keys
}

// loaded returns a state machine holding n keys with values of valueSize
// bytes, applied at indexes 1..n, and the keys.
func loaded(n, valueSize int) (*StateMachine, [][]byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := randomKeys(n, rng)
	value := make([]byte, valueSize)
	sm := NewStateMachine(Config{})
	for i, k := range keys {
		sm.Apply(uint64(i+1), EncodePut(k, value, RequestID{}, 0))
	}
	return sm, keys
}

func BenchmarkApplyPut(b *testing.B) {
	const n = 100_000
	value := make([]byte, 256)
	b.Run("overwrite", func(b *testing.B) {
		sm, keys := loaded(n, 256)
		cmds := make([][]byte, n)
		for i, k := range keys {
			cmds[i] = EncodePut(k, value, RequestID{}, 0)
		}
		index := sm.AppliedIndex()
		b.SetBytes(int64(len(cmds[0])))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			index++
			if r := sm.Apply(index, cmds[i%n]); r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	})
	b.Run("session", func(b *testing.B) {
		// Includes encoding the command, about a tenth of the time.
		sm, keys := loaded(n, 256)
		index := sm.AppliedIndex()
		buf := make([]byte, 0, 512)
		clients := [][]byte{[]byte("client-a"), []byte("client-b"), []byte("client-c"), []byte("client-d")}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			index++
			seq := uint64(i / len(clients))
			req := RequestID{ClientID: clients[i%len(clients)], Seq: seq, AckedBelow: seq}
			c := Command{Op: OpPut, Key: keys[i%n], Value: value, Request: req, ProposedAt: int64(i)}
			buf = c.AppendEncode(buf[:0])
			if r := sm.Apply(index, buf); r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	})
}

func BenchmarkGet(b *testing.B) {
	sm, keys := loaded(100_000, 256)
	b.Run("serial", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, ok := sm.Get(keys[i%len(keys)]); !ok {
				b.Fatal("missing key")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(keys))
			for pb.Next() {
				i++
				if _, ok := sm.Get(keys[i%len(keys)]); !ok {
					b.Fatal("missing key")
				}
			}
		})
	})
}
