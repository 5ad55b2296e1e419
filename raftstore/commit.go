package raftstore

import (
	"bytes"
	"errors"
	"runtime"

	"go.etcd.io/bbolt"
)

// The committer: the only goroutine that writes the file. Writers queue a
// request and wait for its answer; the committer takes every request
// pending when it wakes, applies them in one read-write transaction in
// arrival order, commits (one fsync) and answers them all. Requests that
// arrive during a commit wait for it and form the next batch, so a lone
// writer is committed at once and a busy store commits ever larger batches
// at about the same rate of fsyncs.
//
// After a batch of more than one request the committer yields the
// processor once (runtime.Gosched) before it takes the next batch. The
// writers it has just answered usually write again at once; without the
// yield they would queue just after the committer took the requests that
// arrived during the commit, and a busy store would settle into two
// cohorts of writers committing in turn, each batch half the size it could
// be (measured: 8 writes per commit with 16 writers, 14 with the yield).
// A lone writer never meets the yield.

type opKind uint8

const (
	opStoreLogs opKind = iota + 1
	opDeleteRange
	opSet
	opDeleteGroup
)

// request is one write. The committer reads it only while its writer waits
// in write, so kvs may point into the writer's memory.
type request struct {
	op       opKind
	group    uint64
	bucket   []byte // the group's bucket written: log or stable; unused by opDeleteGroup
	kvs      []kv   // opStoreLogs: index -> entry; opSet: one key -> value
	min, max uint64 // opDeleteRange, inclusive
	done     chan error
}

type kv struct{ k, v []byte }

// write queues r, wakes the committer and waits for r's outcome.
func (s *Store) write(r *request) error {
	r.done = make(chan error, 1)
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.mu.pending = append(s.mu.pending, r)
	n := len(s.mu.pending)
	s.mu.Unlock()
	s.wakeCommitter()
	if s.knobs.afterEnqueue != nil {
		s.knobs.afterEnqueue(n)
	}
	// The committer answers every request it takes, and takes every request
	// queued before Close, so this cannot wait forever.
	return <-r.done
}

func (s *Store) wakeCommitter() {
	select {
	case s.kick <- struct{}{}:
	default: // a wake-up is already pending; it will see our request
	}
}

// run is the committer. It exits, failing what is still queued, once Close
// has marked the store closed.
func (s *Store) run() {
	defer s.wg.Done()
	var spare []*request
	for range s.kick {
		s.mu.Lock()
		batch, closed := s.mu.pending, s.mu.closed
		s.mu.pending = spare[:0]
		s.mu.Unlock()
		if closed {
			answer(batch, ErrClosed)
			return
		}
		if len(batch) > 0 {
			s.commit(batch)
		}
		if len(batch) > 1 {
			runtime.Gosched()
		}
		clear(batch)
		spare = batch
	}
}

// commit applies batch in one transaction. If one request cannot be applied
// (bolt refuses it), the transaction is rolled back and every request is
// committed on its own, so only that one fails. If the commit itself fails
// (an I/O error), every request fails with it and none is retried: after a
// failed fsync the state of the file is unknown.
func (s *Store) commit(batch []*request) {
	if s.knobs.beforeCommit != nil {
		s.knobs.beforeCommit(len(batch))
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, r := range batch {
			if err := apply(tx, r); err != nil {
				return &applyError{err}
			}
		}
		return nil
	})
	var ae *applyError
	if err == nil || len(batch) == 1 || !errors.As(err, &ae) {
		s.counted(len(batch), err)
		answer(batch, unwrapApply(err))
		return
	}
	for _, r := range batch {
		err := s.db.Update(func(tx *bbolt.Tx) error { return apply(tx, r) })
		s.counted(1, err)
		r.done <- err
	}
}

func (s *Store) counted(writes int, err error) {
	if err == nil {
		s.commits.Add(1)
		s.writes.Add(uint64(writes))
	}
}

func answer(batch []*request, err error) {
	for _, r := range batch {
		r.done <- err
	}
}

// applyError marks an error of apply, as opposed to one of bolt's commit.
type applyError struct{ err error }

func (e *applyError) Error() string { return e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

func unwrapApply(err error) error {
	if ae, ok := err.(*applyError); ok {
		return ae.err
	}
	return err
}

// apply performs r in tx. bolt caches the buckets a transaction opens, so
// looking a group's bucket up again for each request costs little.
func apply(tx *bbolt.Tx, r *request) error {
	switch r.op {
	case opStoreLogs, opSet:
		b := tx.Bucket(r.bucket)
		if b == nil {
			var err error
			if b, err = tx.CreateBucket(r.bucket); err != nil {
				return err
			}
		}
		for _, e := range r.kvs {
			if err := b.Put(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	case opDeleteRange:
		b := tx.Bucket(r.bucket)
		if b == nil {
			return nil
		}
		return deleteRange(b, r.min, r.max)
	case opDeleteGroup:
		for _, p := range []byte{prefixLog, prefixStable} {
			err := tx.DeleteBucket(bucketName(p, r.group))
			if err != nil && !errors.Is(err, bbolt.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	}
	return errors.New("raftstore: unknown write")
}

// deleteRange deletes the keys of b in [min, max]. It collects them first:
// in bbolt 1.3, Cursor.Delete followed by Next can skip a key.
func deleteRange(b *bbolt.Bucket, min, max uint64) error {
	var keys [][]byte
	hi := putUint64(max)
	c := b.Cursor()
	for k, _ := c.Seek(putUint64(min)); k != nil && bytes.Compare(k, hi) <= 0; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
