package raftstore

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// Set stores key -> val in the group's stable store, durably. key must be
// 1 to bbolt.MaxKeySize bytes long. val is not retained after Set returns.
func (g *GroupStore) Set(key, val []byte) error {
	switch {
	case len(key) == 0:
		return fmt.Errorf("raftstore: group %d: set: %w", g.id, bbolt.ErrKeyRequired)
	case len(key) > bbolt.MaxKeySize:
		return fmt.Errorf("raftstore: group %d: set: %w", g.id, bbolt.ErrKeyTooLarge)
	}
	if err := g.s.write(&request{op: opSet, group: g.id, bucket: g.stable, kvs: []kv{{key, val}}}); err != nil {
		return fmt.Errorf("raftstore: group %d: set %q: %w", g.id, key, err)
	}
	return nil
}

// Get returns a copy of the value of key. It returns ErrKeyNotFound,
// unwrapped, if key was never set in this group: raft reads that as "no
// value" (see ErrKeyNotFound).
func (g *GroupStore) Get(key []byte) ([]byte, error) {
	var val []byte
	err := g.s.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(g.stable)
		if b == nil {
			return nil
		}
		if v := b.Get(key); v != nil {
			val = make([]byte, len(v))
			copy(val, v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("raftstore: group %d: get %q: %w", g.id, key, err)
	}
	if val == nil {
		return nil, ErrKeyNotFound
	}
	return val, nil
}

// SetUint64 stores key -> val (8 bytes big-endian), durably.
func (g *GroupStore) SetUint64(key []byte, val uint64) error {
	return g.Set(key, putUint64(val))
}

// GetUint64 returns the value SetUint64 stored at key. It returns
// ErrKeyNotFound, unwrapped, if key was never set: raft then starts from 0,
// as for a fresh group's CurrentTerm.
func (g *GroupStore) GetUint64(key []byte) (uint64, error) {
	v, err := g.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raftstore: group %d: get uint64 %q: %w: value of %d bytes", g.id, key, ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
