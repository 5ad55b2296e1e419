package raftstore

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// GroupStore is one group's view of a Store: a raft.LogStore and a
// raft.StableStore whose keys live in the group's own buckets. Writes
// return once committed and fsynced, possibly in one commit with other
// groups' writes; reads see every write that has returned. Its methods are
// safe for concurrent use.
type GroupStore struct {
	s      *Store
	id     uint64
	log    []byte // the names of the group's buckets
	stable []byte
}

func newGroupStore(s *Store, id uint64) *GroupStore {
	return &GroupStore{s: s, id: id, log: bucketName(prefixLog, id), stable: bucketName(prefixStable, id)}
}

var (
	_ raft.LogStore    = (*GroupStore)(nil)
	_ raft.StableStore = (*GroupStore)(nil)
)

// ID returns the group's ID.
func (g *GroupStore) ID() uint64 { return g.id }

// FirstIndex returns the lowest index in the group's log, 0 if it is empty.
func (g *GroupStore) FirstIndex() (uint64, error) {
	idx, err := g.edgeIndex(false)
	if err != nil {
		return 0, fmt.Errorf("raftstore: group %d: first index: %w", g.id, err)
	}
	return idx, nil
}

// LastIndex returns the highest index in the group's log, 0 if it is empty.
func (g *GroupStore) LastIndex() (uint64, error) {
	idx, err := g.edgeIndex(true)
	if err != nil {
		return 0, fmt.Errorf("raftstore: group %d: last index: %w", g.id, err)
	}
	return idx, nil
}

func (g *GroupStore) edgeIndex(last bool) (uint64, error) {
	var idx uint64
	err := g.s.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(g.log)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, _ := c.First()
		if last {
			k, _ = c.Last()
		}
		if k == nil {
			return nil
		}
		if len(k) != 8 {
			return fmt.Errorf("%w: log key %x", ErrCorrupt, k)
		}
		idx = binary.BigEndian.Uint64(k)
		return nil
	})
	return idx, err
}

// GetLog fills l with the entry at index. It returns raft.ErrLogNotFound,
// unwrapped (raft compares it with ==), if the group's log has no such
// entry.
func (g *GroupStore) GetLog(index uint64, l *raft.Log) error {
	found := false
	err := g.s.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(g.log)
		if b == nil {
			return nil
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], index)
		v := b.Get(k[:])
		if v == nil {
			return nil
		}
		found = true
		return decodeLog(index, v, l)
	})
	if err != nil {
		return fmt.Errorf("raftstore: group %d: get log: %w", g.id, err)
	}
	if !found {
		return raft.ErrLogNotFound
	}
	return nil
}

// StoreLog stores l durably, replacing any entry at its index.
func (g *GroupStore) StoreLog(l *raft.Log) error {
	return g.StoreLogs([]*raft.Log{l})
}

// StoreLogs stores logs durably and atomically: all or none. Entries at
// the same indexes are replaced. The logs need not be contiguous.
func (g *GroupStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	// Encode here, in the caller's goroutine, so that the committer only
	// copies bytes into pages. One buffer holds every key and value.
	size := 0
	for _, l := range logs {
		size += 8 + encodedLogLen(l)
	}
	buf := make([]byte, 0, size)
	kvs := make([]kv, len(logs))
	for i, l := range logs {
		start := len(buf)
		buf = binary.BigEndian.AppendUint64(buf, l.Index)
		kvs[i].k = buf[start:len(buf):len(buf)]
		start = len(buf)
		buf = appendLog(buf, l)
		kvs[i].v = buf[start:len(buf):len(buf)]
	}
	if err := g.s.write(&request{op: opStoreLogs, group: g.id, bucket: g.log, kvs: kvs}); err != nil {
		return fmt.Errorf("raftstore: group %d: store logs: %w", g.id, err)
	}
	return nil
}

// DeleteRange deletes the group's entries with indexes in [min, max],
// durably. Indexes with no entry are skipped.
func (g *GroupStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	if err := g.s.write(&request{op: opDeleteRange, group: g.id, bucket: g.log, min: min, max: max}); err != nil {
		return fmt.Errorf("raftstore: group %d: delete range [%d, %d]: %w", g.id, min, max, err)
	}
	return nil
}
