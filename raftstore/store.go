package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// Bucket names and the on-disk format version; see the package doc.
var (
	bucketMeta = []byte("meta")
	keyFormat  = []byte("format")
)

const (
	formatV1 = 0x01

	// The first byte of a group's top-level bucket names; the group ID
	// follows, 8 bytes big-endian.
	prefixLog    = 'l'
	prefixStable = 's'
)

// bucketName returns the name of group id's log or stable bucket.
func bucketName(prefix byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 9), prefix), id)
}

// Options configures a Store. The zero value is a valid configuration.
type Options struct {
	// LockTimeout is how long Open waits for another process to release its
	// lock on the file before it fails. Zero means one second; bolt's own
	// default, waiting forever, would hang a node started twice.
	LockTimeout time.Duration

	// NoSync makes commits skip fsync. Unsafe: a crash of the machine loses
	// or corrupts acknowledged writes. For diagnosis and benchmarks only.
	NoSync bool
}

// Validate reports whether o can be used.
func (o Options) Validate() error {
	if o.LockTimeout < 0 {
		return fmt.Errorf("raftstore: Options.LockTimeout %v is negative", o.LockTimeout)
	}
	return nil
}

// Stats counts a Store's committed writes since Open. Writes/Commits is the
// mean number of write requests that shared one commit (one fsync).
type Stats struct {
	// Commits is the number of read-write transactions committed. Each is
	// one fsync of the file (bbolt issues two fdatasyncs: pages, then meta).
	Commits uint64
	// Writes is the number of write requests (StoreLog, StoreLogs,
	// DeleteRange, Set, SetUint64, DeleteGroup calls) committed.
	Writes uint64
}

// Store is the log and stable store of every Raft group of a node: one
// bbolt file, written by one committer goroutine that commits the writes of
// many groups in one transaction. Its methods are safe for concurrent use.
type Store struct {
	db    *bbolt.DB
	kick  chan struct{} // capacity 1: wakes the committer
	knobs knobs

	mu struct {
		sync.Mutex
		// pending holds the write requests the committer has not taken
		// yet, in arrival order. Once closed is set nothing is appended.
		pending []*request
		closed  bool
	}

	commits atomic.Uint64
	writes  atomic.Uint64

	wg        sync.WaitGroup // the committer
	closeOnce sync.Once
	closeErr  error
}

// knobs lets tests in this package stop the committer at chosen points.
// Every field may be nil.
type knobs struct {
	// afterEnqueue runs in a writer after it queued its request, with the
	// number of requests then pending.
	afterEnqueue func(pending int)
	// beforeCommit runs in the committer before it applies a batch of n
	// requests.
	beforeCommit func(n int)
	// closing runs in Close once the Store refuses new writes, before Close
	// waits for the committer.
	closing func()
	// bolt may change the options Open passes to bbolt.Open.
	bolt func(*bbolt.Options)
}

// Open opens the store in the file at path, creating it if it does not
// exist, and starts its committer. The file stays locked (flock) until
// Close: another Open of it, in this process or another, waits
// Options.LockTimeout and fails with bbolt.ErrTimeout.
func Open(path string, opts Options) (*Store, error) {
	return open(path, opts, knobs{})
}

func open(path string, opts Options, k knobs) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = time.Second
	}
	bo := &bbolt.Options{
		Timeout: timeout,
		// Do not write the freelist on every commit, as etcd does not:
		// one page write fewer per commit (measured: 6.1 to 5.1 for a
		// one-entry commit). Open rebuilds the freelist by walking the
		// tree instead, which takes time in proportion to the file, small
		// for a compacted Raft log. See the package doc for the caveats.
		NoFreelistSync: true,
	}
	if k.bolt != nil {
		k.bolt(bo)
	}
	db, err := bbolt.Open(path, 0o600, bo)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open %s: %w", path, err)
	}
	db.NoSync = opts.NoSync
	if err := db.Update(initialize); err != nil {
		db.Close()
		return nil, fmt.Errorf("raftstore: open %s: %w", path, err)
	}
	s := &Store{db: db, kick: make(chan struct{}, 1), knobs: k}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// initialize creates the top-level buckets of a new file, or checks the
// format version of an existing one.
func initialize(tx *bbolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	switch v := meta.Get(keyFormat); {
	case v == nil:
		if err := meta.Put(keyFormat, []byte{formatV1}); err != nil {
			return err
		}
	case len(v) != 1 || v[0] != formatV1:
		return fmt.Errorf("%w: unsupported format version %x", ErrCorrupt, v)
	}
	return nil
}

// Close stops the committer and closes the file. The batch being committed
// when Close is called completes; writes still queued, and every call
// after Close, fail with ErrClosed. Close waits for the committer and is
// idempotent: later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.mu.closed = true
		s.mu.Unlock()
		if s.knobs.closing != nil {
			s.knobs.closing()
		}
		s.wakeCommitter()
		s.wg.Wait()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Writes: s.writes.Load()}
}

// Group returns the log and stable store of group id. It does no I/O: a
// group with no data reads as empty, and its bucket is created by its first
// write. Any number of GroupStores of one group may be used at once.
func (s *Store) Group(id uint64) (*GroupStore, error) {
	s.mu.Lock()
	closed := s.mu.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return newGroupStore(s, id), nil
}

// DeleteGroup removes every log entry and stable key of group id, durably,
// leaving other groups untouched; deleting a group with no data does
// nothing. Stop the group's Raft instance first: a GroupStore of id stays
// usable, reads the group as empty, and would create it anew on a write.
func (s *Store) DeleteGroup(id uint64) error {
	if err := s.write(&request{op: opDeleteGroup, group: id}); err != nil {
		return fmt.Errorf("raftstore: delete group %d: %w", id, err)
	}
	return nil
}

// Groups returns, in ascending order, the IDs of the groups that have data:
// a node restarting finds its replicas here.
func (s *Store) Groups() ([]uint64, error) {
	seen := map[uint64]bool{}
	err := s.view(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			if len(name) == 9 && (name[0] == prefixLog || name[0] == prefixStable) {
				seen[binary.BigEndian.Uint64(name[1:])] = true
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("raftstore: groups: %w", err)
	}
	ids := make([]uint64, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(*bbolt.Tx) error) error {
	err := s.db.View(fn)
	if errors.Is(err, bbolt.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}
