package raftstore

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// These tests hold a GroupStore to hashicorp/raft's LogStore and
// StableStore contracts, case by case as raft-boltdb's own tests do.

func TestGroupStoreImplementsRaftStores(t *testing.T) {
	var g any = &GroupStore{}
	if _, ok := g.(raft.LogStore); !ok {
		t.Fatal("GroupStore does not implement raft.LogStore")
	}
	if _, ok := g.(raft.StableStore); !ok {
		t.Fatal("GroupStore does not implement raft.StableStore")
	}
}

func TestGroupStoreLog(t *testing.T) { forEachImpl(t, testGroupStoreLog) }

func testGroupStoreLog(t *testing.T, impl storeImpl) {
	tests := []struct {
		name        string
		batches     [][]uint64 // StoreLogs calls, in order; batch i tags its entries "b<i>"
		deletes     [][2]uint64
		first, last uint64
		missing     []uint64
	}{
		{name: "empty", first: 0, last: 0, missing: []uint64{0, 1, 2}},
		{name: "store one", batches: [][]uint64{{1}}, first: 1, last: 1, missing: []uint64{0, 2}},
		{name: "store many", batches: [][]uint64{{1, 2, 3}}, first: 1, last: 3, missing: []uint64{4}},
		{name: "store in batches", batches: [][]uint64{{1, 2}, {3}, {4, 5}}, first: 1, last: 5},
		{name: "not starting at 1", batches: [][]uint64{{100, 101}}, first: 100, last: 101, missing: []uint64{1, 99, 102}},
		{name: "with a gap", batches: [][]uint64{{1, 2}, {10, 11}}, first: 1, last: 11, missing: []uint64{3, 9}},
		// 255 < 256 < 65536 only in big-endian byte order.
		{name: "numeric order", batches: [][]uint64{{256}, {1}, {65536}, {255}}, first: 1, last: 65536},
		{name: "huge indexes", batches: [][]uint64{{1 << 63, math.MaxUint64}}, first: 1 << 63, last: math.MaxUint64, missing: []uint64{math.MaxUint64 - 1}},
		{name: "overwrite", batches: [][]uint64{{1, 2, 3}, {2, 3}}, first: 1, last: 3},
		{name: "delete prefix", batches: [][]uint64{{1, 2, 3, 4, 5}}, deletes: [][2]uint64{{1, 2}}, first: 3, last: 5, missing: []uint64{1, 2}},
		{name: "delete suffix", batches: [][]uint64{{1, 2, 3, 4, 5}}, deletes: [][2]uint64{{4, 5}}, first: 1, last: 3, missing: []uint64{4, 5}},
		{name: "delete middle", batches: [][]uint64{{1, 2, 3, 4, 5}}, deletes: [][2]uint64{{2, 3}}, first: 1, last: 5, missing: []uint64{2, 3}},
		{name: "delete one", batches: [][]uint64{{1, 2, 3}}, deletes: [][2]uint64{{2, 2}}, first: 1, last: 3, missing: []uint64{2}},
		{name: "delete all", batches: [][]uint64{{1, 2, 3, 4, 5}}, deletes: [][2]uint64{{1, 5}}, missing: []uint64{1, 5}},
		{name: "delete beyond both ends", batches: [][]uint64{{3, 4}}, deletes: [][2]uint64{{0, math.MaxUint64}}, missing: []uint64{3, 4}},
		{name: "delete range with no entries", batches: [][]uint64{{1, 2}}, deletes: [][2]uint64{{5, 9}}, first: 1, last: 2},
		{name: "delete min > max", batches: [][]uint64{{1, 2, 3}}, deletes: [][2]uint64{{3, 1}}, first: 1, last: 3},
		{name: "delete from empty", deletes: [][2]uint64{{1, 10}}},
		{name: "delete then append", batches: [][]uint64{{1, 2, 3}, {4, 5}}, deletes: [][2]uint64{{1, 3}}, first: 4, last: 5, missing: []uint64{3}},
		{name: "truncate suffix and rewrite", batches: [][]uint64{{1, 2, 3, 4}, {3, 4}}, deletes: [][2]uint64{{3, 4}}, first: 1, last: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openImpl(t, impl, knobs{})
			g := groupOf(t, s, 7)
			want := map[uint64]*raft.Log{}
			// Deletes run after the first batch, before the rest, so that
			// "delete then append" and "truncate and rewrite" mean what they say.
			for i, b := range tt.batches {
				var logs []*raft.Log
				for _, idx := range b {
					l := testLog(idx, fmt.Sprintf("b%d", i))
					logs = append(logs, l)
					want[idx] = l
				}
				storeLogs(t, g, logs...)
				if i == 0 {
					runDeletes(t, g, tt.deletes, want)
				}
			}
			if len(tt.batches) == 0 {
				runDeletes(t, g, tt.deletes, want)
			}
			checkBounds(t, g, tt.first, tt.last)
			for _, l := range want {
				checkLog(t, g, l)
			}
			for _, idx := range tt.missing {
				if want[idx] != nil {
					t.Fatalf("bad test: %d both wanted and missing", idx)
				}
				checkMissing(t, g, idx)
			}
		})
	}
}

func runDeletes(t *testing.T, g testGroup, deletes [][2]uint64, want map[uint64]*raft.Log) {
	t.Helper()
	for _, d := range deletes {
		if err := g.DeleteRange(d[0], d[1]); err != nil {
			t.Fatalf("DeleteRange(%d, %d): %v", d[0], d[1], err)
		}
		for idx := range want {
			if d[0] <= idx && idx <= d[1] {
				delete(want, idx)
			}
		}
	}
}

func TestGroupStoreStoreLog(t *testing.T) { forEachImpl(t, testGroupStoreStoreLog) }

func testGroupStoreStoreLog(t *testing.T, impl storeImpl) {
	s, _ := openImpl(t, impl, knobs{})
	g := groupOf(t, s, 1)
	l := testLog(1, "single")
	if err := g.StoreLog(l); err != nil {
		t.Fatalf("StoreLog: %v", err)
	}
	checkLog(t, g, l)
	checkBounds(t, g, 1, 1)
	if err := g.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
	if st := s.Stats(); st.Writes != 1 {
		t.Fatalf("Stats().Writes = %d after one StoreLog and an empty StoreLogs; want 1", st.Writes)
	}
}

func TestGroupStoreStable(t *testing.T) { forEachImpl(t, testGroupStoreStable) }

func testGroupStoreStable(t *testing.T, impl storeImpl) {
	type step struct {
		op      string // "set", "setu", "get", "getu", "missing", "corrupt", "bad set"
		key     string
		val     string
		u       uint64
		wantErr error
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"missing keys", []step{{op: "missing", key: "CurrentTerm"}, {op: "missing", key: "LastVoteCand"}, {op: "missing", key: "x"}}},
		{"set get", []step{{op: "set", key: "hello", val: "world"}, {op: "get", key: "hello", val: "world"}, {op: "missing", key: "hell"}, {op: "missing", key: "hello!"}}},
		{"overwrite", []step{{op: "set", key: "k", val: "v1"}, {op: "set", key: "k", val: "v2"}, {op: "get", key: "k", val: "v2"}}},
		{"empty value", []step{{op: "set", key: "k", val: ""}, {op: "get", key: "k", val: ""}}},
		{"binary key and value", []step{{op: "set", key: "\x00\xff", val: "\x00\x01"}, {op: "get", key: "\x00\xff", val: "\x00\x01"}, {op: "missing", key: "\x00"}}},
		{"uint64", []step{{op: "setu", key: "CurrentTerm", u: 123}, {op: "getu", key: "CurrentTerm", u: 123}, {op: "get", key: "CurrentTerm", val: "\x00\x00\x00\x00\x00\x00\x00\x7b"}}},
		{"uint64 zero and max", []step{{op: "setu", key: "a", u: 0}, {op: "setu", key: "b", u: math.MaxUint64}, {op: "getu", key: "a", u: 0}, {op: "getu", key: "b", u: math.MaxUint64}}},
		{"uint64 of a short value", []step{{op: "set", key: "k", val: "1234"}, {op: "corrupt", key: "k"}}},
		{"empty key", []step{{op: "bad set", key: "", wantErr: bbolt.ErrKeyRequired}}},
		{"key too long", []step{{op: "bad set", key: string(make([]byte, bbolt.MaxKeySize+1)), wantErr: bbolt.ErrKeyTooLarge}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openImpl(t, impl, knobs{})
			g := groupOf(t, s, 3)
			for _, st := range tt.steps {
				switch st.op {
				case "set":
					if err := g.Set([]byte(st.key), []byte(st.val)); err != nil {
						t.Fatalf("Set(%q, %q): %v", st.key, st.val, err)
					}
				case "setu":
					if err := g.SetUint64([]byte(st.key), st.u); err != nil {
						t.Fatalf("SetUint64(%q, %d): %v", st.key, st.u, err)
					}
				case "get":
					got, err := g.Get([]byte(st.key))
					if err != nil || string(got) != st.val || got == nil {
						t.Fatalf("Get(%q) = %q (nil: %v), %v; want %q", st.key, got, got == nil, err, st.val)
					}
				case "getu":
					if got, err := g.GetUint64([]byte(st.key)); err != nil || got != st.u {
						t.Fatalf("GetUint64(%q) = %d, %v; want %d", st.key, got, err, st.u)
					}
				case "missing":
					checkNotFound(t, g, st.key)
				case "corrupt":
					if got, err := g.GetUint64([]byte(st.key)); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("GetUint64(%q) = %d, %v; want ErrCorrupt", st.key, got, err)
					}
				case "bad set":
					if err := g.Set([]byte(st.key), []byte("v")); !errors.Is(err, st.wantErr) {
						t.Fatalf("Set(%d-byte key) = %v; want %v", len(st.key), err, st.wantErr)
					}
				}
			}
		})
	}
}

// TestGroupStoreMissingKeyAsRaftExpects checks the contract with raft
// itself rather than with a copy of its rules: raft recognises a missing
// key by its message.
func TestGroupStoreMissingKeyAsRaftExpects(t *testing.T) {
	forEachImpl(t, testGroupStoreMissingKeyAsRaftExpects)
}

func testGroupStoreMissingKeyAsRaftExpects(t *testing.T, impl storeImpl) {
	s, _ := openImpl(t, impl, knobs{})
	g := groupOf(t, s, 1)
	if _, err := g.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("GetUint64 of a missing key: %v; raft needs an error reading exactly %q", err, "not found")
	}
	has, err := raft.HasExistingState(g, g, raft.NewInmemSnapshotStore())
	if err != nil || has {
		t.Fatalf("HasExistingState(fresh group) = %v, %v; want false, nil", has, err)
	}
	if err := g.SetUint64([]byte("CurrentTerm"), 2); err != nil {
		t.Fatal(err)
	}
	has, err = raft.HasExistingState(g, g, raft.NewInmemSnapshotStore())
	if err != nil || !has {
		t.Fatalf("HasExistingState(group with a term) = %v, %v; want true, nil", has, err)
	}
}

func TestGroupStoreGetLogOverwritesEveryField(t *testing.T) {
	forEachImpl(t, testGroupStoreGetLogOverwritesEveryField)
}

func testGroupStoreGetLogOverwritesEveryField(t *testing.T, impl storeImpl) {
	s, _ := openImpl(t, impl, knobs{})
	g := groupOf(t, s, 1)
	bare := &raft.Log{Index: 2, Term: 1}
	storeLogs(t, g, testLog(1, "full"), bare)
	var l raft.Log
	if err := g.GetLog(1, &l); err != nil {
		t.Fatal(err)
	}
	checkLog(t, g, bare) // reading again into a fresh Log is the easy case
	if err := g.GetLog(2, &l); err != nil {
		t.Fatal(err)
	}
	if d := diffLog(&l, bare); d != "" || l.Data != nil || l.Extensions != nil || !l.AppendedAt.IsZero() {
		t.Fatalf("GetLog(2) into a Log that held entry 1: %s, %+v", d, l)
	}
}
