package raftstore

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// WALGroup is one group's view of a WAL: a raft.LogStore and a
// raft.StableStore, with the same behaviour as GroupStore. Writes return
// once durable; reads see every write that has returned, and are served
// from memory (stable keys, log bounds) or with one pread (GetLog).
type WALGroup struct {
	w  *WAL
	id uint64
}

var (
	_ raft.LogStore    = (*WALGroup)(nil)
	_ raft.StableStore = (*WALGroup)(nil)
)

// ID returns the group's ID.
func (g *WALGroup) ID() uint64 { return g.id }

// FirstIndex returns the lowest index in the group's log, 0 if it is empty.
func (g *WALGroup) FirstIndex() (uint64, error) { return g.edgeIndex(false) }

// LastIndex returns the highest index in the group's log, 0 if it is empty.
func (g *WALGroup) LastIndex() (uint64, error) { return g.edgeIndex(true) }

func (g *WALGroup) edgeIndex(last bool) (uint64, error) {
	w := g.w
	w.st.RLock()
	defer w.st.RUnlock()
	if w.st.closed {
		return 0, fmt.Errorf("raftstore: group %d: %w", g.id, ErrClosed)
	}
	gs := w.st.groups[g.id]
	if gs == nil || len(gs.entries) == 0 {
		return 0, nil
	}
	if last {
		return gs.entries[len(gs.entries)-1].index, nil
	}
	return gs.entries[0].index, nil
}

// GetLog fills l with the entry at index. It returns raft.ErrLogNotFound,
// unwrapped, if the group's log has no such entry.
func (g *WALGroup) GetLog(index uint64, l *raft.Log) error {
	w := g.w
	w.st.RLock()
	defer w.st.RUnlock()
	if w.st.closed {
		return fmt.Errorf("raftstore: group %d: get log: %w", g.id, ErrClosed)
	}
	gs := w.st.groups[g.id]
	if gs == nil {
		return raft.ErrLogNotFound
	}
	var e entryLoc
	if n := len(gs.entries); n > 0 && gs.entries[n-1].index-gs.entries[0].index == uint64(n-1) {
		// Contiguous, as raft's logs are: no search.
		if index < gs.entries[0].index || index > gs.entries[n-1].index {
			return raft.ErrLogNotFound
		}
		e = gs.entries[index-gs.entries[0].index]
	} else {
		i, found := slices.BinarySearchFunc(gs.entries, index, cmpEntry)
		if !found {
			return raft.ErrLogNotFound
		}
		e = gs.entries[i]
	}
	// The segment stays open while st is read-locked.
	buf := make([]byte, e.n)
	if _, err := e.seg.f.ReadAt(buf, e.off); err != nil {
		return fmt.Errorf("raftstore: group %d: get log %d: %w", g.id, index, err)
	}
	if err := decodeLogOwned(index, buf, l); err != nil {
		return fmt.Errorf("raftstore: group %d: get log: %w", g.id, err)
	}
	return nil
}

// StoreLog stores l durably, replacing any entry at its index.
func (g *WALGroup) StoreLog(l *raft.Log) error {
	return g.StoreLogs([]*raft.Log{l})
}

// StoreLogs stores logs durably and atomically (one record): all or none.
// Entries at the same indexes are replaced. The logs need not be
// contiguous.
func (g *WALGroup) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	// Encode in the caller's goroutine: the committer only copies frames.
	size := walRecordHdr + 1 + 2*binary.MaxVarintLen64
	for _, l := range logs {
		size += binary.MaxVarintLen64 + 4 + encodedLogLen(l)
	}
	r := &walRequest{rec: walRecord{typ: walEntries, group: g.id, entries: make([]walEntryRef, len(logs))}}
	var err error
	if r.data, err = appendEntriesRecord(make([]byte, 0, size), g.id, logs, r.rec.entries); err == nil {
		err = g.w.write(r)
	}
	if err != nil {
		return fmt.Errorf("raftstore: group %d: store logs: %w", g.id, err)
	}
	return nil
}

// DeleteRange deletes the group's entries with indexes in [min, max],
// durably. Indexes with no entry are skipped.
func (g *WALGroup) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	r := &walRequest{data: appendDeleteRangeRecord(nil, g.id, min, max), rec: walRecord{typ: walDeleteRange, group: g.id, min: min, max: max}}
	if err := g.w.write(r); err != nil {
		return fmt.Errorf("raftstore: group %d: delete range [%d, %d]: %w", g.id, min, max, err)
	}
	return nil
}

// Set stores key -> val in the group's stable store, durably. key must be
// 1 to bbolt.MaxKeySize bytes long, as for GroupStore.Set.
func (g *WALGroup) Set(key, val []byte) error {
	switch {
	case len(key) == 0:
		return fmt.Errorf("raftstore: group %d: set: %w", g.id, bbolt.ErrKeyRequired)
	case len(key) > bbolt.MaxKeySize:
		return fmt.Errorf("raftstore: group %d: set: %w", g.id, bbolt.ErrKeyTooLarge)
	}
	data, err := appendSetRecord(make([]byte, 0, walRecordHdr+1+3*binary.MaxVarintLen64+len(key)+len(val)), g.id, key, val)
	if err == nil {
		// The index keeps its own copy of val (see WAL.apply).
		err = g.w.write(&walRequest{data: data, rec: walRecord{typ: walSet, group: g.id, key: key, val: val}})
	}
	if err != nil {
		return fmt.Errorf("raftstore: group %d: set %q: %w", g.id, key, err)
	}
	return nil
}

// Get returns a copy of the value of key, or ErrKeyNotFound, unwrapped.
func (g *WALGroup) Get(key []byte) ([]byte, error) {
	w := g.w
	w.st.RLock()
	defer w.st.RUnlock()
	if w.st.closed {
		return nil, fmt.Errorf("raftstore: group %d: get %q: %w", g.id, key, ErrClosed)
	}
	gs := w.st.groups[g.id]
	if gs == nil {
		return nil, ErrKeyNotFound
	}
	v, ok := gs.stable[string(key)]
	if !ok {
		return nil, ErrKeyNotFound
	}
	return append(make([]byte, 0, len(v)), v...), nil
}

// SetUint64 stores key -> val (8 bytes big-endian), durably.
func (g *WALGroup) SetUint64(key []byte, val uint64) error {
	return g.Set(key, putUint64(val))
}

// GetUint64 returns the value SetUint64 stored at key, or ErrKeyNotFound,
// unwrapped.
func (g *WALGroup) GetUint64(key []byte) (uint64, error) {
	v, err := g.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftstore: group %d: get uint64 %q: %w: value of %d bytes", g.id, key, ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
