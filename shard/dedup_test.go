package shard

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("shard.seed", 1, "first seed of the randomized state machine tests")

// cput and cdel build commands of client id with sequence number seq,
// acknowledging below ack, proposed at time at.
func cput(id string, seq, ack uint64, at int64, key, value string) []byte {
	return EncodePut([]byte(key), []byte(value), RequestID{ClientID: []byte(id), Seq: seq, AckedBelow: ack}, at)
}

func cdel(id string, seq, ack uint64, at int64, key string) []byte {
	return EncodeDelete([]byte(key), RequestID{ClientID: []byte(id), Seq: seq, AckedBelow: ack}, at)
}

func TestDedup(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		steps []step
		want  map[string]*Value
	}{
		{"retry returns the first result and is not applied again",
			Config{},
			[]step{
				{cmd: cput("c", 1, 0, 0, "k", "first"), want: Result{Index: 1, Version: 1}},
				{cmd: cput("c", 1, 0, 0, "k", "retry differs"), want: Result{Index: 1, Version: 1, Duplicate: true}},
			},
			map[string]*Value{"k": val("first", 1, 1)}},
		{"retry does not undo a later write",
			Config{},
			[]step{
				{cmd: cput("c", 1, 0, 0, "k", "a"), want: Result{Index: 1, Version: 1}},
				{cmd: put("k", "b"), want: Result{Index: 2, Version: 2, Existed: true}},
				{cmd: cput("c", 1, 0, 0, "k", "a"), want: Result{Index: 1, Version: 1, Duplicate: true}},
			},
			map[string]*Value{"k": val("b", 2, 1)}},
		{"retried delete does not delete a recreated key",
			Config{},
			[]step{
				{cmd: put("k", "a"), want: Result{Index: 1, Version: 1}},
				{cmd: cdel("c", 1, 0, 0, "k"), want: Result{Index: 2, Version: 1, Existed: true, Deleted: true}},
				{cmd: put("k", "b"), want: Result{Index: 3, Version: 3}},
				{cmd: cdel("c", 1, 0, 0, "k"), want: Result{Index: 2, Version: 1, Existed: true, Deleted: true, Duplicate: true}},
			},
			map[string]*Value{"k": val("b", 3, 3)}},
		{"seq below the acknowledged mark is stale",
			Config{},
			[]step{
				{cmd: cput("c", 1, 0, 0, "k", "a"), want: Result{Index: 1, Version: 1}},
				{cmd: cput("c", 2, 2, 0, "j", "b"), want: Result{Index: 2, Version: 2}},
				{cmd: cput("c", 1, 0, 0, "k", "retry"), want: Result{Index: 3}, wantErr: ErrStaleRequest},
				{cmd: cput("c", 2, 0, 0, "j", "retry"), want: Result{Index: 2, Version: 2, Duplicate: true}},
			},
			map[string]*Value{"k": val("a", 1, 1), "j": val("b", 2, 2)}},
		{"the mark never passes the request's own seq",
			Config{},
			[]step{
				{cmd: cput("c", 5, 100, 0, "k", "a"), want: Result{Index: 1, Version: 1}},
				{cmd: cput("c", 5, 100, 0, "k", "a"), want: Result{Index: 1, Version: 1, Duplicate: true}},
				{cmd: cput("c", 4, 0, 0, "k", "old"), want: Result{Index: 3}, wantErr: ErrStaleRequest},
			},
			map[string]*Value{"k": val("a", 1, 1)}},
		{"the mark never goes down",
			Config{},
			[]step{
				{cmd: cput("c", 3, 3, 0, "k", "a"), want: Result{Index: 1, Version: 1}},
				{cmd: cput("c", 4, 0, 0, "k", "b"), want: Result{Index: 2, Version: 2, Existed: true}},
				{cmd: cput("c", 2, 0, 0, "k", "old"), want: Result{Index: 3}, wantErr: ErrStaleRequest},
			},
			map[string]*Value{"k": val("b", 2, 1)}},
		{"out-of-order seqs are each applied once",
			Config{},
			[]step{
				{cmd: cput("c", 3, 0, 0, "a", "3"), want: Result{Index: 1, Version: 1}},
				{cmd: cput("c", 1, 0, 0, "b", "1"), want: Result{Index: 2, Version: 2}},
				{cmd: cput("c", 2, 0, 0, "c", "2"), want: Result{Index: 3, Version: 3}},
				{cmd: cput("c", 1, 0, 0, "b", "x"), want: Result{Index: 2, Version: 2, Duplicate: true}},
				{cmd: cput("c", 3, 0, 0, "a", "x"), want: Result{Index: 1, Version: 1, Duplicate: true}},
				{cmd: cput("c", 2, 0, 0, "c", "x"), want: Result{Index: 3, Version: 3, Duplicate: true}},
			},
			map[string]*Value{"a": val("3", 1, 1), "b": val("1", 2, 2), "c": val("2", 3, 3)}},
		{"clients have separate sequences",
			Config{},
			[]step{
				{cmd: cput("a", 1, 0, 0, "k", "from a"), want: Result{Index: 1, Version: 1}},
				{cmd: cput("b", 1, 0, 0, "k", "from b"), want: Result{Index: 2, Version: 2, Existed: true}},
			},
			map[string]*Value{"k": val("from b", 2, 1)}},
		{"empty client ID is never deduplicated",
			Config{},
			[]step{
				{cmd: cput("", 1, 0, 0, "k", "a"), want: Result{Index: 1, Version: 1}},
				{cmd: cput("", 1, 0, 0, "k", "a"), want: Result{Index: 2, Version: 2, Existed: true}},
			},
			map[string]*Value{"k": val("a", 2, 1)}},
		{"session expires after the TTL of proposer time",
			Config{SessionTTL: time.Minute},
			[]step{
				{cmd: cput("c", 1, 0, 0, "k", "a"), want: Result{Index: 1, Version: 1}},
				{cmd: cput("d", 1, 0, int64(30*time.Second), "j", "a"), want: Result{Index: 2, Version: 2}},
				// Exactly the TTL later: still there.
				{cmd: EncodeNoop(int64(time.Minute)), want: Result{Index: 3}},
				{cmd: cput("c", 1, 0, int64(time.Minute), "k", "b"), want: Result{Index: 1, Version: 1, Duplicate: true}},
				// c was touched at 1m; d, last seen at 30s, expires past 1m30s.
				{cmd: EncodeNoop(int64(90*time.Second) + 1), want: Result{Index: 5}},
				{cmd: cput("d", 1, 0, int64(91*time.Second), "j", "b"), want: Result{Index: 6, Version: 6, Existed: true}},
				{cmd: cput("c", 1, 0, int64(91*time.Second), "k", "b"), want: Result{Index: 1, Version: 1, Duplicate: true}},
			},
			map[string]*Value{"k": val("a", 1, 1), "j": val("b", 6, 2)}},
		{"session clock does not run backwards",
			Config{SessionTTL: time.Minute},
			[]step{
				{cmd: EncodeNoop(int64(10 * time.Minute)), want: Result{Index: 1}},
				// A leader with a slow clock: the session is stamped 10m, not 0.
				{cmd: cput("c", 1, 0, 0, "k", "a"), want: Result{Index: 2, Version: 2}},
				{cmd: cput("c", 1, 0, int64(11*time.Minute), "k", "b"), want: Result{Index: 2, Version: 2, Duplicate: true}},
			},
			map[string]*Value{"k": val("a", 2, 2)}},
		{"past MaxSessionResults the lowest seq turns stale",
			Config{MaxSessionResults: 2},
			[]step{
				{cmd: cput("c", 1, 0, 0, "a", "1"), want: Result{Index: 1, Version: 1}},
				{cmd: cput("c", 2, 0, 0, "b", "2"), want: Result{Index: 2, Version: 2}},
				{cmd: cput("c", 3, 0, 0, "c", "3"), want: Result{Index: 3, Version: 3}},
				{cmd: cput("c", 1, 0, 0, "a", "x"), want: Result{Index: 4}, wantErr: ErrStaleRequest},
				{cmd: cput("c", 2, 0, 0, "b", "x"), want: Result{Index: 2, Version: 2, Duplicate: true}},
				{cmd: cput("c", 3, 0, 0, "c", "x"), want: Result{Index: 3, Version: 3, Duplicate: true}},
			},
			map[string]*Value{"a": val("1", 1, 1), "b": val("2", 2, 2), "c": val("3", 3, 3)}},
		{"past MaxSessions the least recently seen session goes",
			Config{MaxSessions: 2},
			[]step{
				{cmd: cput("a", 1, 0, 0, "ka", "1"), want: Result{Index: 1, Version: 1}},
				{cmd: cput("b", 1, 0, 0, "kb", "1"), want: Result{Index: 2, Version: 2}},
				{cmd: cput("a", 1, 0, 0, "ka", "x"), want: Result{Index: 1, Version: 1, Duplicate: true}}, // a is now newer than b
				{cmd: cput("c", 1, 0, 0, "kc", "1"), want: Result{Index: 4, Version: 4}},                  // evicts b
				{cmd: cput("a", 1, 0, 0, "ka", "x"), want: Result{Index: 1, Version: 1, Duplicate: true}},
				// b's session is gone: its retry is applied again, as Config documents.
				{cmd: cput("b", 1, 0, 0, "kb", "again"), want: Result{Index: 6, Version: 6, Existed: true}},
			},
			map[string]*Value{"ka": val("1", 1, 1), "kb": val("again", 6, 2), "kc": val("1", 4, 4)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := NewStateMachine(tc.cfg)
			run(t, sm, tc.steps)
			for k, v := range tc.want {
				checkGet(t, sm, k, v)
			}
		})
	}
}

func TestDedupPrunesAcknowledgedResults(t *testing.T) {
	sm := NewStateMachine(Config{})
	for seq := uint64(1); seq <= 100; seq++ {
		sm.Apply(seq, cput("c", seq, seq-10, 0, "k", "v"))
	}
	st := sm.mu.sessions
	s, _ := st.byID.Get(&session{id: []byte("c")})
	// The last request acknowledged below 90: 90..100 remain.
	if len(s.results) != 11 || s.results[0].seq != 90 || s.ackedBelow != 90 {
		t.Errorf("after seq 1..100 acking seq-10: %d results from seq %d, acked below %d; want 11 from 90, 90",
			len(s.results), s.results[0].seq, s.ackedBelow)
	}
	if st.results != 11 {
		t.Errorf("table result count = %d; want 11", st.results)
	}
}

func TestSessionExpiryIsAmortized(t *testing.T) {
	sm := NewStateMachine(Config{SessionTTL: time.Second})
	const n = 1000
	for i := range n {
		sm.Apply(uint64(i+1), cput(fmt.Sprint(i), 1, 0, int64(i)*int64(time.Millisecond), "k", "v"))
	}
	st := sm.mu.sessions
	if got := st.byID.Len(); got != n {
		t.Fatalf("%d sessions within the TTL: table has %d", n, got)
	}
	// Half a second later, the sessions seen more than a second ago go.
	sm.Apply(n+1, EncodeNoop(int64(1500*time.Millisecond)))
	if got, want := st.byID.Len(), 500; got != want {
		t.Errorf("at 1.5s, sessions seen at 0..999ms with a 1s TTL: %d left; want %d", got, want)
	}
	if st.byLRU.Len() != st.byID.Len() {
		t.Errorf("LRU index holds %d sessions, ID index %d; want equal", st.byLRU.Len(), st.byID.Len())
	}
	sm.Apply(n+2, EncodeNoop(int64(time.Hour)))
	if got := st.byID.Len(); got != 0 || st.results != 0 || st.byLRU.Len() != 0 {
		t.Errorf("an hour later: %d sessions, %d results, %d in LRU; want none", got, st.results, st.byLRU.Len())
	}
}

// workload generates a random but seeded log that exercises every rule:
// puts, deletes, noops, garbage, retries, stale requests, out-of-order and
// backwards proposer times, jumps past the TTL, index gaps.
type workload struct {
	rng     *rand.Rand
	index   uint64
	now     int64
	clients []*wclient
	keys    []string
}

type wclient struct {
	id   string
	next uint64 // the next new seq
}

func newWorkload(seed uint64) *workload {
	w := &workload{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for i := range 12 {
		w.clients = append(w.clients, &wclient{id: fmt.Sprintf("client-%d", i)})
	}
	for i := range 40 {
		w.keys = append(w.keys, fmt.Sprintf("key-%02d", i))
	}
	return w
}

// next returns the next log entry.
func (w *workload) next() (uint64, []byte) {
	w.index += 1 + uint64(w.rng.IntN(4)/3) // an occasional gap
	switch r := w.rng.IntN(100); {
	case r < 2:
		w.now += int64(3 * time.Second) // past the test TTL
	case r < 5:
		w.now -= int64(200 * time.Millisecond) // a leader with a slow clock
	default:
		w.now += int64(w.rng.IntN(int(20 * time.Millisecond)))
	}
	key := w.keys[w.rng.IntN(len(w.keys))]
	value := fmt.Sprintf("v%d", w.rng.IntN(1000))
	c := w.clients[w.rng.IntN(len(w.clients))]
	switch r := w.rng.IntN(100); {
	case r < 3:
		return w.index, EncodeNoop(w.now)
	case r < 5:
		garbage := make([]byte, w.rng.IntN(8))
		for i := range garbage {
			garbage[i] = byte(w.rng.IntN(256))
		}
		return w.index, garbage
	case r < 15:
		return w.index, EncodePut([]byte(key), []byte(value), RequestID{}, w.now)
	case r < 35 && c.next > 0: // a retry, possibly stale, with different content
		seq := c.next - 1 - uint64(w.rng.IntN(int(min(c.next, 20))))
		return w.index, cput(c.id, seq, 0, w.now, key, "retry-"+value)
	}
	seq := c.next
	c.next++
	ack := seq - uint64(w.rng.IntN(int(min(seq+1, 12))))
	if w.rng.IntN(10) == 0 {
		ack = 0
	}
	if w.rng.IntN(4) == 0 {
		return w.index, cdel(c.id, seq, ack, w.now, key)
	}
	return w.index, cput(c.id, seq, ack, w.now, key, value)
}

// testConfig makes the bounds small enough for a random log to hit them.
var testConfig = Config{SessionTTL: 2 * time.Second, MaxSessions: 8, MaxSessionResults: 6}

// TestDeterminism feeds replicas the same random log, one of them restored
// from a snapshot midway, and requires identical results and state.
func TestDeterminism(t *testing.T) {
	for seed := *seedFlag; seed < *seedFlag+4; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			const n, restoreAt = 4000, 2500
			w := newWorkload(seed)
			a, b := NewStateMachine(testConfig), NewStateMachine(testConfig)
			var c *StateMachine
			for i := range n {
				index, cmd := w.next()
				if i == restoreAt {
					c = NewStateMachine(testConfig)
					if err := c.Restore(bytes.NewReader(snapshotBytes(t, b))); err != nil {
						t.Fatalf("seed %d: Restore at entry %d: %v", seed, i, err)
					}
				}
				ra, rb := a.Apply(index, cmd), b.Apply(index, cmd)
				if !sameResult(ra, rb) {
					t.Fatalf("seed %d: entry %d, Apply(%d, %s): replica A %+v, B %+v", seed, i, index, describe(cmd), ra, rb)
				}
				if c != nil {
					if rc := c.Apply(index, cmd); !sameResult(ra, rc) {
						t.Fatalf("seed %d: entry %d, Apply(%d, %s): replica A %+v, restored replica %+v", seed, i, index, describe(cmd), ra, rc)
					}
				}
			}
			sa, sb, sc := snapshotBytes(t, a), snapshotBytes(t, b), snapshotBytes(t, c)
			if !bytes.Equal(sa, sb) || !bytes.Equal(sa, sc) {
				t.Fatalf("seed %d: snapshots differ after %d entries: %d, %d and %d bytes", seed, n, len(sa), len(sb), len(sc))
			}
			// The log must have exercised the rules it is meant to.
			st := a.mu.sessions
			if st.byID.Len() == 0 || a.Len() == 0 {
				t.Errorf("seed %d: workload left %d sessions, %d keys; want some of each", seed, st.byID.Len(), a.Len())
			}
		})
	}
}

// TestWorkloadCoversRules checks that the random log reaches every outcome,
// so TestDeterminism is not comparing trivial runs.
func TestWorkloadCoversRules(t *testing.T) {
	w := newWorkload(*seedFlag)
	sm := NewStateMachine(testConfig)
	counts := map[string]int{}
	for range 4000 {
		index, cmd := w.next()
		r := sm.Apply(index, cmd)
		switch {
		case r.Err != nil:
			counts[fmt.Sprint(errorKind(r.Err))]++
		case r.Duplicate:
			counts["duplicate"]++
		case r.Deleted:
			counts["deleted"]++
		default:
			counts["applied"]++
		}
	}
	for _, k := range []string{"duplicate", "deleted", "applied", "stale", "bad command"} {
		if counts[k] < 10 {
			t.Errorf("seed %d: %d outcomes %q in 4000 entries; want at least 10 (all: %v)", *seedFlag, counts[k], k, counts)
		}
	}
}

func errorKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrStaleRequest):
		return "stale"
	case errors.Is(err, ErrBadCommand):
		return "bad command"
	case errors.Is(err, ErrIndexApplied):
		return "index applied"
	}
	return "other"
}

// sameResult compares results, errors by message: replicas must produce the
// same text too.
func sameResult(a, b Result) bool {
	ea, eb := fmt.Sprint(a.Err), fmt.Sprint(b.Err)
	a.Err, b.Err = nil, nil
	return reflect.DeepEqual(a, b) && ea == eb
}
