package shard

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func eventString(evs []Event) string {
	var s []string
	for _, e := range evs {
		t := "put"
		if e.Type == EventDelete {
			t = "del"
		}
		s = append(s, fmt.Sprintf("%d:%s:%s=%s", e.Version, t, e.Key, e.Data))
	}
	return strings.Join(s, " ")
}

func all([]byte) bool { return true }

func TestEvents(t *testing.T) {
	sm := NewStateMachine(Config{})
	const sec = int64(time.Second)
	mustApply(t, sm, 1, put("a", "1"))
	mustApply(t, sm, 2, put("b", "2"))
	mustApply(t, sm, 3, del("a"))
	mustApply(t, sm, 4, del("missing")) // no event: nothing changed
	mustApply(t, sm, 5, txn(10*sec, nil, []TxnOp{opPut("x", "X"), {Kind: TxnPut, Key: []byte("t"), Value: []byte("T"), TTL: time.Second}, opDel("b"), opGet("x")}, nil))
	mustApply(t, sm, 6, EncodeNoop(11*sec)) // expires t

	evs, through, err := sm.Events(0, all, 100)
	want := "1:put:a=1 2:put:b=2 3:del:a= 5:put:x=X 5:put:t=T 5:del:b= 6:del:t="
	if err != nil || eventString(evs) != want || through != 6 {
		t.Fatalf("Events(0) = %s, %d, %v; want %s, 6", eventString(evs), through, err, want)
	}
	if evs[2].CreateVersion != 1 || evs[3].CreateVersion != 5 {
		t.Errorf("create versions %d, %d; want 1, 5", evs[2].CreateVersion, evs[3].CreateVersion)
	}
	// After a position; matching keys only.
	evs, through, _ = sm.Events(3, func(k []byte) bool { return bytes.HasPrefix(k, []byte("t")) }, 100)
	if eventString(evs) != "5:put:t=T 6:del:t=" || through != 6 {
		t.Fatalf("Events(3, t*) = %s, %d", eventString(evs), through)
	}
	// A limit never splits the events of one index.
	evs, through, _ = sm.Events(3, all, 1)
	if eventString(evs) != "5:put:x=X 5:put:t=T 5:del:b=" || through != 5 {
		t.Fatalf("Events(3, limit 1) = %s, through %d; want all of index 5, through 5", eventString(evs), through)
	}
	// Nothing new: complete through the applied index.
	if evs, through, err := sm.Events(6, all, 10); len(evs) != 0 || through != 6 || err != nil {
		t.Fatalf("Events(6) = %s, %d, %v; want none through 6", eventString(evs), through, err)
	}
}

func TestEventsCompact(t *testing.T) {
	sm := NewStateMachine(Config{EventHistory: 4})
	for i := uint64(1); i <= 10; i++ {
		mustApply(t, sm, i, put(fmt.Sprint("k", i), "v"))
	}
	if _, _, err := sm.Events(5, all, 10); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Events(5) with 4 events kept = %v; want ErrCompacted", err)
	}
	evs, through, err := sm.Events(6, all, 10)
	if err != nil || len(evs) != 4 || through != 10 {
		t.Fatalf("Events(6) = %s, %d, %v; want 4 events through 10", eventString(evs), through, err)
	}

	// A restored replica has events only after its snapshot.
	sm2 := NewStateMachine(Config{})
	if err := sm2.Restore(bytes.NewReader(snapshotBytes(t, sm))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sm2.Events(9, all, 10); !errors.Is(err, ErrCompacted) {
		t.Fatalf("restored Events(9) = %v; want ErrCompacted", err)
	}
	mustApply(t, sm2, 11, put("new", "v"))
	if evs, _, err := sm2.Events(10, all, 10); err != nil || eventString(evs) != "11:put:new=v" {
		t.Fatalf("restored Events(10) = %s, %v", eventString(evs), err)
	}
}

func TestEventsBoundedByBytes(t *testing.T) {
	sm := NewStateMachine(Config{EventHistoryBytes: 10_000})
	big := strings.Repeat("x", 1000)
	for i := uint64(1); i <= 100; i++ {
		mustApply(t, sm, i, put("k", big))
	}
	if b := sm.mu.events.bytes; b > 10_000 {
		t.Fatalf("event history holds %d bytes; limit 10000", b)
	}
	if _, _, err := sm.Events(50, all, 10); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Events(50) = %v; want ErrCompacted", err)
	}
}
