package shard

// Ascend calls fn with every key of the snapshot in ascending key order
// until fn returns false. Keys whose TTL ran out by the shard clock are
// already gone; keys the clock has not reached yet are included, with their
// ExpiresAt, for the caller to judge against its own clock. Only keys and
// values are exported: client sessions are internal to the state machine.
//
// The key-values are shared with the snapshot and the state machine:
// callers must not modify them. Ascend may run concurrently with Apply and
// with WriteTo; it returns ErrSnapshotReleased after Release.
func (s *Snapshot) Ascend(fn func(KeyValue) bool) error {
	if s.data == nil {
		return ErrSnapshotReleased
	}
	s.data.Ascend(func(e entry) bool {
		return fn(KeyValue{Key: e.key, Value: e.val})
	})
	return nil
}

// Len returns the number of keys in the snapshot.
func (s *Snapshot) Len() int {
	if s.data == nil {
		return 0
	}
	return s.data.Len()
}
