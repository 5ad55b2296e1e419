package shard

import (
	"errors"
	"fmt"
	"testing"
)

// Ascend yields the keys of the instant the snapshot was taken, in order,
// whatever is applied afterwards, and no session: a client's ID never
// appears among the keys.
func TestSnapshotAscendIsPointInTime(t *testing.T) {
	sm := sampleState(t, 300)
	want := map[string]string{}
	sm.mu.RLock()
	sm.mu.data.Ascend(func(e entry) bool {
		want[string(e.key)] = string(e.val.Data)
		return true
	})
	sm.mu.RUnlock()
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	idx := sm.AppliedIndex()
	for i := range 50 {
		idx++
		sm.Apply(idx, put(fmt.Sprintf("key-%05d", i), "later"))
	}
	idx++
	sm.Apply(idx, del("key-00010"))

	if snap.Len() != len(want) {
		t.Fatalf("Len() = %d; want %d", snap.Len(), len(want))
	}
	var last string
	n := 0
	err = snap.Ascend(func(kv KeyValue) bool {
		k := string(kv.Key)
		if last != "" && k <= last {
			t.Fatalf("key %q after %q", k, last)
		}
		last = k
		if w, ok := want[k]; !ok || string(kv.Data) != w {
			t.Fatalf("key %q = %q (known %v); want %q", k, kv.Data, ok, w)
		}
		n++
		return true
	})
	if err != nil || n != len(want) {
		t.Fatalf("Ascend = %d keys, %v; want %d keys", n, err, len(want))
	}
	// Stopping early stops.
	n = 0
	snap.Ascend(func(KeyValue) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("Ascend after returning false at 3 ran %d times", n)
	}
	snap.Release()
	if err := snap.Ascend(func(KeyValue) bool { return true }); !errors.Is(err, ErrSnapshotReleased) {
		t.Fatalf("Ascend after Release = %v; want ErrSnapshotReleased", err)
	}
}
