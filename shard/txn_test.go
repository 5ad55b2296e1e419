package shard

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// txn encodes a Txn without a client session.
func txn(at int64, cmps []Compare, then, els []TxnOp) []byte {
	return Command{Op: OpTxn, ProposedAt: at, Compares: cmps, Then: then, Else: els}.Encode()
}

func ctxn(id string, seq, ack uint64, at int64, cmps []Compare, then, els []TxnOp) []byte {
	return Command{Op: OpTxn, ProposedAt: at, Request: RequestID{ClientID: []byte(id), Seq: seq, AckedBelow: ack},
		Compares: cmps, Then: then, Else: els}.Encode()
}

func vcmp(key string, op CompareOp, version uint64) Compare {
	return Compare{Key: []byte(key), Target: TargetVersion, Op: op, Version: version}
}

func opPut(key, value string) TxnOp {
	return TxnOp{Kind: TxnPut, Key: []byte(key), Value: []byte(value)}
}
func opDel(key string) TxnOp { return TxnOp{Kind: TxnDelete, Key: []byte(key)} }
func opGet(key string) TxnOp { return TxnOp{Kind: TxnGet, Key: []byte(key)} }

func mustApply(t *testing.T, sm *StateMachine, index uint64, cmd []byte) Result {
	t.Helper()
	r := sm.Apply(index, cmd)
	if r.Err != nil {
		t.Fatalf("Apply(%d, %s): %v", index, describe(cmd), r.Err)
	}
	return r
}

func TestCompareHolds(t *testing.T) {
	present := Value{Data: []byte("b"), Version: 7, CreateVersion: 3}
	for _, tc := range []struct {
		name  string
		cmp   Compare
		v     Value
		found bool
		want  bool
	}{
		{"absent key has version 0", vcmp("k", Equal, 0), Value{}, false, true},
		{"absent key is not version 7", vcmp("k", Equal, 7), Value{}, false, false},
		{"version equal", vcmp("k", Equal, 7), present, true, true},
		{"version not equal", vcmp("k", NotEqual, 7), present, true, false},
		{"version less", vcmp("k", Less, 8), present, true, true},
		{"version not less", vcmp("k", Less, 7), present, true, false},
		{"version greater", vcmp("k", Greater, 6), present, true, true},
		{"present key is not absent", vcmp("k", Equal, 0), present, true, false},
		{"create version", Compare{Key: []byte("k"), Target: TargetCreateVersion, Op: Equal, Version: 3}, present, true, true},
		{"absent create version 0", Compare{Key: []byte("k"), Target: TargetCreateVersion, Op: Equal}, Value{}, false, true},
		{"value equal", Compare{Key: []byte("k"), Target: TargetValue, Op: Equal, Value: []byte("b")}, present, true, true},
		{"value less", Compare{Key: []byte("k"), Target: TargetValue, Op: Less, Value: []byte("c")}, present, true, true},
		{"value greater", Compare{Key: []byte("k"), Target: TargetValue, Op: Greater, Value: []byte("a")}, present, true, true},
		{"value not equal", Compare{Key: []byte("k"), Target: TargetValue, Op: NotEqual, Value: []byte("b")}, present, true, false},
		{"value on an absent key never holds", Compare{Key: []byte("k"), Target: TargetValue, Op: NotEqual, Value: []byte("b")}, Value{}, false, false},
		{"empty value equals empty", Compare{Key: []byte("k"), Target: TargetValue, Op: Equal}, Value{Version: 1, CreateVersion: 1}, true, true},
	} {
		if got := tc.cmp.holds(tc.v, tc.found); got != tc.want {
			t.Errorf("%s: holds = %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestTxnBranches(t *testing.T) {
	sm := NewStateMachine(Config{})
	mustApply(t, sm, 1, put("a", "1"))

	// Compares hold: Then runs in order; the get sees the put before it.
	r := mustApply(t, sm, 2, txn(0, []Compare{vcmp("a", Equal, 1), vcmp("b", Equal, 0)},
		[]TxnOp{opPut("b", "2"), opGet("b"), opDel("a"), opGet("a")},
		[]TxnOp{opPut("else", "x")}))
	want := Result{Index: 2, Version: 2, Txn: true, Succeeded: true, Ops: []OpResult{
		{Found: true, Value: Value{Version: 2, CreateVersion: 2}},
		{Found: true, Value: Value{Data: []byte("2"), Version: 2, CreateVersion: 2}},
		{Found: true, Value: Value{Version: 1, CreateVersion: 1}},
		{Found: false},
	}}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("txn = %+v; want %+v", r, want)
	}
	checkGet(t, sm, "a", nil)
	checkGet(t, sm, "b", val("2", 2, 2))
	checkGet(t, sm, "else", nil)

	// A compare fails: Else runs, Then does not.
	r = mustApply(t, sm, 3, txn(0, []Compare{vcmp("b", Equal, 1)}, []TxnOp{opPut("then", "x")}, []TxnOp{opGet("b")}))
	if r.Succeeded || len(r.Ops) != 1 || !bytes.Equal(r.Ops[0].Value.Data, []byte("2")) {
		t.Fatalf("failed txn = %+v; want the else branch's get of b", r)
	}
	checkGet(t, sm, "then", nil)

	// No compares: always succeeds.
	if r := mustApply(t, sm, 4, txn(0, nil, []TxnOp{opPut("c", "3")}, nil)); !r.Succeeded {
		t.Fatalf("txn without compares did not succeed: %+v", r)
	}
	checkGet(t, sm, "c", val("3", 4, 4))
}

// Compare-and-swap as the client library builds it: the first of two
// conflicting swaps from the same version wins, the second sees the new
// version and fails.
func TestTxnCompareAndSwap(t *testing.T) {
	sm := NewStateMachine(Config{})
	mustApply(t, sm, 1, put("k", "old"))
	cas := func(index uint64, from, to string) bool {
		return mustApply(t, sm, index, txn(0,
			[]Compare{{Key: []byte("k"), Target: TargetValue, Op: Equal, Value: []byte(from)}},
			[]TxnOp{opPut("k", to)}, nil)).Succeeded
	}
	if !cas(2, "old", "a") {
		t.Fatal("first cas failed")
	}
	if cas(3, "old", "b") {
		t.Fatal("second cas from the same old value succeeded")
	}
	checkGet(t, sm, "k", val("a", 2, 1))
}

func TestTxnDeduplicated(t *testing.T) {
	sm := NewStateMachine(Config{})
	cmd := ctxn("c", 1, 0, 10, []Compare{vcmp("k", Equal, 0)}, []TxnOp{opPut("k", "v"), opGet("k")}, nil)
	first := mustApply(t, sm, 1, cmd)
	if !first.Succeeded || first.Duplicate {
		t.Fatalf("first = %+v", first)
	}
	// The retry would fail its compare now; it must report the first
	// outcome instead of running again.
	again := mustApply(t, sm, 2, cmd)
	want := Result{Index: 1, Version: 1, Txn: true, Succeeded: true, Duplicate: true}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("retry = %+v; want %+v", again, want)
	}
	// The outcome survives a snapshot.
	sm2 := NewStateMachine(Config{})
	if err := sm2.Restore(bytes.NewReader(snapshotBytes(t, sm))); err != nil {
		t.Fatal(err)
	}
	if r := mustApply(t, sm2, 3, cmd); !reflect.DeepEqual(r, want) {
		t.Fatalf("retry after restore = %+v; want %+v", r, want)
	}
}

func TestTTL(t *testing.T) {
	sm := NewStateMachine(Config{})
	const sec = int64(time.Second)
	ttlPut := func(key, value string, ttl time.Duration) TxnOp {
		return TxnOp{Kind: TxnPut, Key: []byte(key), Value: []byte(value), TTL: ttl}
	}
	r := mustApply(t, sm, 1, txn(100*sec, nil, []TxnOp{ttlPut("a", "1", 10*time.Second), ttlPut("b", "2", 20*time.Second), ttlPut("c", "3", 5*time.Second)}, nil))
	if got := r.Ops[0].Value.ExpiresAt; got != 110*sec {
		t.Fatalf("a expires at %d; want %d", got, 110*sec)
	}
	if at, ok := sm.NextExpiry(); !ok || at != 105*sec {
		t.Fatalf("NextExpiry = %d, %v; want %d", at, ok, 105*sec)
	}
	// A put without a TTL clears c's.
	mustApply(t, sm, 2, EncodePut([]byte("c"), []byte("3"), RequestID{}, 101*sec))
	if at, _ := sm.NextExpiry(); at != 110*sec {
		t.Fatalf("NextExpiry after c lost its TTL = %d; want %d", at, 110*sec)
	}
	// Nothing expires before its deadline...
	mustApply(t, sm, 3, EncodeNoop(110*sec-1))
	checkGet(t, sm, "a", val("1", 1, 1))
	// ...and a command at the deadline (a Noop will do) removes the key.
	mustApply(t, sm, 4, EncodeNoop(110*sec))
	checkGet(t, sm, "a", nil)
	checkGet(t, sm, "c", val("3", 2, 1))
	if v, _ := sm.Get([]byte("b")); v.ExpiresAt != 120*sec || v.Expired(119*sec) || !v.Expired(120*sec) {
		t.Fatalf("b = %+v; want expiry at %d", v, 120*sec)
	}

	// The expiry survives a snapshot, and the restored state machine
	// expires the key the same way.
	sm2 := NewStateMachine(Config{})
	if err := sm2.Restore(bytes.NewReader(snapshotBytes(t, sm))); err != nil {
		t.Fatal(err)
	}
	if at, ok := sm2.NextExpiry(); !ok || at != 120*sec {
		t.Fatalf("restored NextExpiry = %d, %v; want %d", at, ok, 120*sec)
	}
	for _, s := range []*StateMachine{sm, sm2} {
		// Time goes by the largest ProposedAt: an older clock does not undo it.
		mustApply(t, s, 5, EncodeNoop(130*sec))
		mustApply(t, s, 6, EncodeNoop(1))
		checkGet(t, s, "b", nil)
		if _, ok := s.NextExpiry(); ok {
			t.Fatal("NextExpiry reports a key after every TTL ran out")
		}
	}
	if !bytes.Equal(snapshotBytes(t, sm), snapshotBytes(t, sm2)) {
		t.Fatal("replicas differ after expiring the same keys")
	}
}

func TestTxnValidate(t *testing.T) {
	many := make([]TxnOp, MaxTxnOps+1)
	for i := range many {
		many[i] = opGet("k")
	}
	for _, tc := range []struct {
		name string
		c    Command
		want string
	}{
		{"too many ops", Command{Op: OpTxn, Then: many}, "limit 128"},
		{"empty compare key", Command{Op: OpTxn, Compares: []Compare{{Target: TargetVersion, Op: Equal}}}, "empty key"},
		{"unknown target", Command{Op: OpTxn, Compares: []Compare{{Key: []byte("k"), Target: 9, Op: Equal}}}, "unknown target"},
		{"unknown relation", Command{Op: OpTxn, Compares: []Compare{{Key: []byte("k"), Target: TargetValue, Op: 9}}}, "unknown relation"},
		{"unknown op kind", Command{Op: OpTxn, Else: []TxnOp{{Kind: 7, Key: []byte("k")}}}, "failure operation 0: unknown kind"},
		{"negative ttl", Command{Op: OpTxn, Then: []TxnOp{{Kind: TxnPut, Key: []byte("k"), TTL: -1}}}, "ttl"},
		{"ttl over the limit", Command{Op: OpTxn, Then: []TxnOp{{Kind: TxnPut, Key: []byte("k"), TTL: MaxTTL + 1}}}, "ttl"},
		{"get with a value", Command{Op: OpTxn, Then: []TxnOp{{Kind: TxnGet, Key: []byte("k"), Value: []byte("v")}}}, "get with a value"},
	} {
		err := tc.c.Validate()
		if !errors.Is(err, ErrBadCommand) || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%s: Validate = %v; want ErrBadCommand mentioning %q", tc.name, err, tc.want)
		}
		// What Validate refuses never decodes either (a get's value is not
		// encoded at all).
		if tc.name == "get with a value" {
			continue
		}
		if _, err := DecodeCommand(tc.c.Encode()); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%s: DecodeCommand(Encode) = %v; want ErrBadCommand", tc.name, err)
		}
	}
}

func sampleTxn() []byte {
	return ctxn("c", 9, 3, 1<<40,
		[]Compare{vcmp("a", Greater, 300), {Key: []byte("b"), Target: TargetValue, Op: NotEqual, Value: []byte("x")}},
		[]TxnOp{{Kind: TxnPut, Key: []byte("a"), Value: []byte("v"), TTL: time.Minute}, opDel("b")},
		[]TxnOp{opGet("a")})
}

func TestTxnRoundTrip(t *testing.T) {
	enc := sampleTxn()
	c, err := DecodeCommand(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Encode(), enc) || len(c.Compares) != 2 || len(c.Then) != 2 || len(c.Else) != 1 ||
		c.Then[0].TTL != time.Minute || string(c.Compares[1].Value) != "x" || c.Compares[0].Version != 300 {
		t.Fatalf("decoded %+v", c)
	}
	for n := 0; n < len(enc); n++ {
		if c, err := DecodeCommand(enc[:n]); !errors.Is(err, ErrBadCommand) {
			t.Errorf("DecodeCommand of %d of %d bytes = %+v, %v; want ErrBadCommand", n, len(enc), brief(c), err)
		}
	}
}

func TestScan(t *testing.T) {
	sm := NewStateMachine(Config{})
	for i, k := range []string{"a", "app/1", "app/2", "app/3", "apple", "b"} {
		mustApply(t, sm, uint64(i+1), put(k, "v-"+k))
	}
	keys := func(kvs []KeyValue) (s []string) {
		for _, kv := range kvs {
			s = append(s, string(kv.Key))
		}
		return s
	}
	for _, tc := range []struct {
		prefix, after string
		limit         int
		want          []string
		more          bool
	}{
		{"app/", "", 10, []string{"app/1", "app/2", "app/3"}, false},
		{"app/", "", 2, []string{"app/1", "app/2"}, true},
		{"app/", "app/2", 10, []string{"app/3"}, false},
		{"app/", "app/3", 10, nil, false},
		{"app/", "a", 10, []string{"app/1", "app/2", "app/3"}, false}, // after sorts before the prefix
		{"", "", 100, []string{"a", "app/1", "app/2", "app/3", "apple", "b"}, false},
		{"", "apple", 1, []string{"b"}, false},
		{"zzz", "", 10, nil, false},
	} {
		var after []byte
		if tc.after != "" {
			after = []byte(tc.after)
		}
		got, more := sm.Scan([]byte(tc.prefix), after, tc.limit, false)
		if !reflect.DeepEqual(keys(got), tc.want) || more != tc.more {
			t.Errorf("Scan(%q, after %q, %d) = %q, more %v; want %q, more %v", tc.prefix, tc.after, tc.limit, keys(got), more, tc.want, tc.more)
		}
	}
	got, _ := sm.Scan([]byte("app/1"), nil, 1, true)
	if len(got) != 1 || got[0].Data != nil || got[0].Version != 2 {
		t.Errorf("keys-only scan = %+v; want app/1 at version 2 without data", got)
	}
	got, _ = sm.Scan([]byte("app/1"), nil, 1, false)
	if string(got[0].Data) != "v-app/1" {
		t.Errorf("scan value = %q", got[0].Data)
	}
}
