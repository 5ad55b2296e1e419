package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// openTest opens a store in a new temporary directory and closes it when
// the test ends.
func openTest(t testing.TB, k knobs) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := open(path, Options{}, k)
	if err != nil {
		t.Fatalf("open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func reopen(t testing.TB, s *Store, path string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open(%s) again: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func group(t testing.TB, s *Store, id uint64) *GroupStore {
	t.Helper()
	g, err := s.Group(id)
	if err != nil {
		t.Fatalf("Group(%d): %v", id, err)
	}
	return g
}

// testLog returns an entry whose every field depends on index and tag, so
// that an entry read from the wrong index, group or write shows.
func testLog(index uint64, tag string) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       index/3 + 1,
		Type:       raft.LogType(index % 6),
		Data:       []byte(fmt.Sprintf("%s data %d", tag, index)),
		Extensions: []byte(fmt.Sprintf("%s ext %d", tag, index)),
		AppendedAt: time.Unix(1_700_000_000+int64(index), int64(index)%1e9),
	}
}

func diffLog(got, want *raft.Log) string {
	switch {
	case got.Index != want.Index:
		return fmt.Sprintf("Index %d; want %d", got.Index, want.Index)
	case got.Term != want.Term:
		return fmt.Sprintf("Term %d; want %d", got.Term, want.Term)
	case got.Type != want.Type:
		return fmt.Sprintf("Type %v; want %v", got.Type, want.Type)
	case !bytes.Equal(got.Data, want.Data):
		return fmt.Sprintf("Data %q; want %q", got.Data, want.Data)
	case !bytes.Equal(got.Extensions, want.Extensions):
		return fmt.Sprintf("Extensions %q; want %q", got.Extensions, want.Extensions)
	case !got.AppendedAt.Equal(want.AppendedAt) || got.AppendedAt.IsZero() != want.AppendedAt.IsZero():
		return fmt.Sprintf("AppendedAt %v; want %v", got.AppendedAt, want.AppendedAt)
	}
	return ""
}

// checkLog fails unless g holds want at want.Index.
func checkLog(t testing.TB, g testGroup, want *raft.Log) {
	t.Helper()
	var got raft.Log
	if err := g.GetLog(want.Index, &got); err != nil {
		t.Fatalf("group %d: GetLog(%d): %v", g.ID(), want.Index, err)
	}
	if d := diffLog(&got, want); d != "" {
		t.Fatalf("group %d: GetLog(%d): %s", g.ID(), want.Index, d)
	}
}

// checkMissing fails unless g has no entry at index.
func checkMissing(t testing.TB, g testGroup, index uint64) {
	t.Helper()
	err := g.GetLog(index, new(raft.Log))
	if err != raft.ErrLogNotFound { // raft compares with ==
		t.Fatalf("group %d: GetLog(%d) = %v; want raft.ErrLogNotFound", g.ID(), index, err)
	}
}

func checkBounds(t testing.TB, g testGroup, first, last uint64) {
	t.Helper()
	if got, err := g.FirstIndex(); err != nil || got != first {
		t.Fatalf("group %d: FirstIndex() = %d, %v; want %d", g.ID(), got, err, first)
	}
	if got, err := g.LastIndex(); err != nil || got != last {
		t.Fatalf("group %d: LastIndex() = %d, %v; want %d", g.ID(), got, err, last)
	}
}

func checkGet(t testing.TB, g testGroup, key, want string) {
	t.Helper()
	got, err := g.Get([]byte(key))
	if err != nil || string(got) != want {
		t.Fatalf("group %d: Get(%q) = %q, %v; want %q", g.ID(), key, got, err, want)
	}
}

func checkNotFound(t testing.TB, g testGroup, key string) {
	t.Helper()
	if v, err := g.Get([]byte(key)); err != ErrKeyNotFound {
		t.Fatalf("group %d: Get(%q) = %q, %v; want ErrKeyNotFound", g.ID(), key, v, err)
	}
	if v, err := g.GetUint64([]byte(key)); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("group %d: GetUint64(%q) = %d, %v; want ErrKeyNotFound", g.ID(), key, v, err)
	}
}

func storeLogs(t testing.TB, g testGroup, logs ...*raft.Log) {
	t.Helper()
	if err := g.StoreLogs(logs); err != nil {
		t.Fatalf("group %d: StoreLogs: %v", g.ID(), err)
	}
}

// The tests of behaviour every shared log store must have run against
// each implementation: Store (bbolt) and WAL.

// testGroup is what both GroupStore and WALGroup are.
type testGroup interface {
	raft.LogStore
	raft.StableStore
	ID() uint64
}

// testStore is what both Store and WAL are, with Group returning a
// testGroup.
type testStore interface {
	Group(id uint64) (testGroup, error)
	// rawGroup returns a view of group id without Group's check that the
	// store is open.
	rawGroup(id uint64) testGroup
	DeleteGroup(id uint64) error
	Groups() ([]uint64, error)
	Stats() Stats
	Close() error
}

type boltTestStore struct{ *Store }

func (s boltTestStore) Group(id uint64) (testGroup, error) {
	g, err := s.Store.Group(id)
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (s boltTestStore) rawGroup(id uint64) testGroup { return newGroupStore(s.Store, id) }

type walTestStore struct{ *WAL }

func (s walTestStore) Group(id uint64) (testGroup, error) {
	g, err := s.WAL.Group(id)
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (s walTestStore) rawGroup(id uint64) testGroup { return &WALGroup{w: s.WAL, id: id} }

// storeImpl opens one implementation at path: a file for Store, a
// directory for WAL.
type storeImpl struct {
	name string
	open func(path string, k knobs) (testStore, error)
}

var storeImpls = []storeImpl{
	{"bolt", func(path string, k knobs) (testStore, error) {
		s, err := open(path, Options{}, k)
		if err != nil {
			return nil, err
		}
		return boltTestStore{s}, nil
	}},
	{"wal", func(path string, k knobs) (testStore, error) {
		w, err := openWAL(path, WALOptions{}, k)
		if err != nil {
			return nil, err
		}
		return walTestStore{w}, nil
	}},
	// The WAL with segments so small that nearly every commit starts a
	// new one: rotation, checkpoints and segment deletion all the time.
	{"wal-tiny-segments", func(path string, k knobs) (testStore, error) {
		w, err := openWAL(path, WALOptions{SegmentSize: 256}, k)
		if err != nil {
			return nil, err
		}
		return walTestStore{w}, nil
	}},
}

// forEachImpl runs f as a subtest for each implementation.
func forEachImpl(t *testing.T, f func(t *testing.T, impl storeImpl)) {
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) { f(t, impl) })
	}
}

// openImpl opens impl in a new temporary directory and closes it when the
// test ends.
func openImpl(t testing.TB, impl storeImpl, k knobs) (testStore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "raft")
	s, err := impl.open(path, k)
	if err != nil {
		t.Fatalf("%s: open(%s): %v", impl.name, path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func reopenImpl(t testing.TB, impl storeImpl, s testStore, path string) testStore {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err := impl.open(path, knobs{})
	if err != nil {
		t.Fatalf("%s: open(%s) again: %v", impl.name, path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func groupOf(t testing.TB, s testStore, id uint64) testGroup {
	t.Helper()
	g, err := s.Group(id)
	if err != nil {
		t.Fatalf("Group(%d): %v", id, err)
	}
	return g
}
