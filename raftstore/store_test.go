package raftstore

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

func TestGroupsAreIsolated(t *testing.T) { forEachImpl(t, testGroupsAreIsolated) }

func testGroupsAreIsolated(t *testing.T, impl storeImpl) {
	s, _ := openImpl(t, impl, knobs{})
	// Neighbouring IDs and the extremes: a layout that shares key space
	// between groups gets these wrong first.
	ids := []uint64{0, 1, 2, math.MaxUint64}
	gs := map[uint64]testGroup{}
	for _, id := range ids {
		g := groupOf(t, s, id)
		gs[id] = g
		tag := fmt.Sprintf("g%d", id)
		// Same indexes in every group, different bounds per group.
		var logs []*raft.Log
		for idx := id%3 + 1; idx <= 10+id%5; idx++ {
			logs = append(logs, testLog(idx, tag))
		}
		storeLogs(t, g, logs...)
		if err := g.Set([]byte("k"), []byte(tag)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		g, tag := gs[id], fmt.Sprintf("g%d", id)
		checkBounds(t, g, id%3+1, 10+id%5)
		checkLog(t, g, testLog(5, tag))
		checkGet(t, g, "k", tag)
	}

	never := groupOf(t, s, 3)
	checkBounds(t, never, 0, 0)
	checkMissing(t, never, 5)
	checkNotFound(t, never, "k")
	if err := never.DeleteRange(0, math.MaxUint64); err != nil {
		t.Fatalf("DeleteRange on a group with no data: %v", err)
	}

	// A range delete in one group leaves the others' entries.
	if err := gs[1].DeleteRange(0, 8); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, gs[1], 9, 11)
	checkBounds(t, gs[2], 3, 12)
	checkLog(t, gs[2], testLog(5, "g2"))
	checkLog(t, gs[0], testLog(5, "g0"))

	// Dropping a replica removes exactly its group.
	if err := s.DeleteGroup(1); err != nil {
		t.Fatalf("DeleteGroup(1): %v", err)
	}
	checkBounds(t, gs[1], 0, 0)
	checkMissing(t, gs[1], 10)
	checkNotFound(t, gs[1], "k")
	for _, id := range []uint64{0, 2, math.MaxUint64} {
		tag := fmt.Sprintf("g%d", id)
		checkBounds(t, gs[id], id%3+1, 10+id%5)
		checkLog(t, gs[id], testLog(id%3+1, tag))
		checkGet(t, gs[id], "k", tag)
	}
	if got, err := s.Groups(); err != nil || !slices.Equal(got, []uint64{0, 2, math.MaxUint64}) {
		t.Fatalf("Groups() = %v, %v; want [0 2 %d]", got, err, uint64(math.MaxUint64))
	}
	if err := s.DeleteGroup(1); err != nil {
		t.Fatalf("DeleteGroup(1) again: %v", err)
	}

	// The dropped group can come back, empty but for its new writes.
	storeLogs(t, gs[1], testLog(40, "again"))
	checkBounds(t, gs[1], 40, 40)
	checkNotFound(t, gs[1], "k")
}

func TestPersistsAcrossReopen(t *testing.T) { forEachImpl(t, testPersistsAcrossReopen) }

func testPersistsAcrossReopen(t *testing.T, impl storeImpl) {
	s, path := openImpl(t, impl, knobs{})
	for id := uint64(1); id <= 3; id++ {
		g := groupOf(t, s, id)
		for idx := uint64(1); idx <= 20; idx++ {
			storeLogs(t, g, testLog(idx, fmt.Sprint(id)))
		}
		if err := g.DeleteRange(1, 4); err != nil {
			t.Fatal(err)
		}
		if err := g.SetUint64([]byte("CurrentTerm"), 10+id); err != nil {
			t.Fatal(err)
		}
		if err := g.Set([]byte("LastVoteCand"), []byte(fmt.Sprint("node", id))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteGroup(2); err != nil {
		t.Fatal(err)
	}

	s = reopenImpl(t, impl, s, path)
	for _, id := range []uint64{1, 3} {
		g := groupOf(t, s, id)
		checkBounds(t, g, 5, 20)
		checkMissing(t, g, 4)
		for idx := uint64(5); idx <= 20; idx++ {
			checkLog(t, g, testLog(idx, fmt.Sprint(id)))
		}
		if got, err := g.GetUint64([]byte("CurrentTerm")); err != nil || got != 10+id {
			t.Fatalf("group %d: GetUint64(CurrentTerm) = %d, %v; want %d", id, got, err, 10+id)
		}
		checkGet(t, g, "LastVoteCand", fmt.Sprint("node", id))
	}
	g2 := groupOf(t, s, 2)
	checkBounds(t, g2, 0, 0)
	checkNotFound(t, g2, "CurrentTerm")
	if got, err := s.Groups(); err != nil || !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("Groups() = %v, %v; want [1 3]", got, err)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("Stats() of a reopened store = %+v; want zero", st)
	}
}

// TestConcurrentWritersAreDurableAndBatched runs many writers in many
// groups at once, then checks every write after a reopen and that the
// committer shared commits between them.
func TestConcurrentWritersAreDurableAndBatched(t *testing.T) {
	forEachImpl(t, testConcurrentWritersAreDurableAndBatched)
}

func testConcurrentWritersAreDurableAndBatched(t *testing.T, impl storeImpl) {
	const (
		groups     = 16
		writers    = 48 // three per group, on disjoint indexes
		perWriter  = 40
		writesEach = 2 // a StoreLog and a Set per step
	)
	s, path := openImpl(t, impl, knobs{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := s.Group(uint64(w % groups))
			if err != nil {
				errs <- err
				return
			}
			for i := range perWriter {
				idx := uint64(w/groups*1000 + i + 1)
				if err := g.StoreLog(testLog(idx, fmt.Sprint("w", w))); err != nil {
					errs <- err
					return
				}
				if err := g.SetUint64([]byte(fmt.Sprint("w", w)), idx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	st := s.Stats()
	if st.Writes != writers*perWriter*writesEach {
		t.Fatalf("Stats().Writes = %d; want %d", st.Writes, writers*perWriter*writesEach)
	}
	if st.Commits == 0 || st.Commits >= st.Writes {
		t.Fatalf("Stats() = %+v; want 0 < Commits < Writes with %d concurrent writers", st, writers)
	}
	t.Logf("%d writes in %d commits (%.1f writes per commit)", st.Writes, st.Commits, float64(st.Writes)/float64(st.Commits))

	s = reopenImpl(t, impl, s, path)
	for w := range writers {
		g := groupOf(t, s, uint64(w%groups))
		for i := range perWriter {
			checkLog(t, g, testLog(uint64(w/groups*1000+i+1), fmt.Sprint("w", w)))
		}
		key := []byte(fmt.Sprint("w", w))
		if got, err := g.GetUint64(key); err != nil || got != uint64(w/groups*1000+perWriter) {
			t.Fatalf("group %d: GetUint64(%s) = %d, %v; want %d", g.ID(), key, got, err, w/groups*1000+perWriter)
		}
	}
	for id := range uint64(groups) {
		checkBounds(t, groupOf(t, s, id), 1, 2*1000+perWriter)
	}
}

// held makes the committer stop before its first commit until released,
// and reports every enqueue, so that a test knows exactly what is queued.
type held struct {
	inCommit chan int      // the first batch's size, once the committer holds
	release  chan struct{} // closed to let the first commit proceed
	enqueued chan int      // pending count after each enqueue
	closing  chan struct{} // closed when Close has stopped taking writes
	commits  int           // committer only
}

func newHeld() *held {
	return &held{inCommit: make(chan int, 1), release: make(chan struct{}), enqueued: make(chan int, 1000), closing: make(chan struct{})}
}

func (h *held) knobs() knobs {
	return knobs{
		afterEnqueue: func(n int) { h.enqueued <- n },
		beforeCommit: func(n int) {
			h.commits++
			if h.commits == 1 {
				h.inCommit <- n
				<-h.release
			}
		},
		closing: func() { close(h.closing) },
	}
}

// holdFirst issues a write in group 0 and returns once the committer holds
// it; the write's outcome arrives on the returned channel.
func (h *held) holdFirst(t *testing.T, s testStore) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	g := groupOf(t, s, 0)
	go func() { done <- g.StoreLog(testLog(1, "first")) }()
	<-h.enqueued
	if n := <-h.inCommit; n != 1 {
		t.Fatalf("first batch has %d writes; want 1", n)
	}
	return done
}

// TestWritesQueuedDuringACommitShareTheNext checks group commit exactly: a
// lone write is committed alone, and the writes that queue while it
// commits go into one next commit.
func TestWritesQueuedDuringACommitShareTheNext(t *testing.T) {
	forEachImpl(t, testWritesQueuedDuringACommitShareTheNext)
}

func testWritesQueuedDuringACommitShareTheNext(t *testing.T, impl storeImpl) {
	h := newHeld()
	s, _ := openImpl(t, impl, h.knobs())
	first := h.holdFirst(t, s)

	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		g := groupOf(t, s, uint64(i+1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				errs[i] = g.StoreLogs([]*raft.Log{testLog(1, "a"), testLog(2, "a")})
			} else {
				errs[i] = g.Set([]byte("k"), []byte("v"))
			}
		}()
	}
	for range n {
		<-h.enqueued
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("Stats() while the first commit is held = %+v; want zero", st)
	}
	close(h.release)
	if err := <-first; err != nil {
		t.Fatalf("first write: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("queued write %d: %v", i, err)
		}
	}
	if got, want := s.Stats(), (Stats{Commits: 2, Writes: n + 1}); got != want {
		t.Fatalf("Stats() = %+v; want %+v: one commit for the lone write, one for all %d queued", got, want, n)
	}
	for i := range n {
		g := groupOf(t, s, uint64(i+1))
		if i%2 == 0 {
			checkLog(t, g, testLog(2, "a"))
		} else {
			checkGet(t, g, "k", "v")
		}
	}
}

// TestBadWriteFailsAlone checks that a write bolt refuses fails on its own
// rather than taking the writes batched with it down.
func TestBadWriteFailsAlone(t *testing.T) {
	h := newHeld()
	s, _ := openTest(t, h.knobs())
	first := h.holdFirst(t, boltTestStore{s})

	results := make(chan string, 3)
	g1, g3 := group(t, s, 1), group(t, s, 3)
	go func() {
		err := g1.Set([]byte("k"), []byte("v"))
		results <- fmt.Sprint("good set: ", err)
	}()
	<-h.enqueued
	go func() {
		// Set refuses an empty key itself; bypass it to reach bolt.
		err := s.write(&request{op: opSet, group: 2, bucket: bucketName(prefixStable, 2), kvs: []kv{{nil, []byte("v")}}})
		results <- fmt.Sprint("bad set: ", errors.Is(err, bbolt.ErrKeyRequired))
	}()
	<-h.enqueued
	go func() {
		err := g3.StoreLog(testLog(9, "good"))
		results <- fmt.Sprint("good log: ", err)
	}()
	<-h.enqueued
	close(h.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		got = append(got, <-results)
	}
	slices.Sort(got)
	if want := []string{"bad set: true", "good log: <nil>", "good set: <nil>"}; !slices.Equal(got, want) {
		t.Fatalf("outcomes %q; want %q", got, want)
	}
	checkGet(t, group(t, s, 1), "k", "v")
	checkLog(t, group(t, s, 3), testLog(9, "good"))
	checkBounds(t, group(t, s, 2), 0, 0)
	if st := s.Stats(); st.Writes != 3 {
		t.Fatalf("Stats().Writes = %d; want 3 (the failed write is not counted)", st.Writes)
	}
}

// TestCloseFailsQueuedWrites checks that Close neither hangs on nor loses
// track of waiting writers: the write being committed completes, queued
// ones fail with ErrClosed and are not written.
func TestCloseFailsQueuedWrites(t *testing.T) { forEachImpl(t, testCloseFailsQueuedWrites) }

func testCloseFailsQueuedWrites(t *testing.T, impl storeImpl) {
	h := newHeld()
	s, path := openImpl(t, impl, h.knobs())
	first := h.holdFirst(t, s)

	const n = 10
	queued := make(chan error, n)
	for i := range n {
		g := groupOf(t, s, uint64(i+1))
		go func() { queued <- g.StoreLog(testLog(1, "queued")) }()
	}
	for range n {
		<-h.enqueued
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	<-h.closing
	close(h.release)

	if err := <-first; err != nil {
		t.Fatalf("the write being committed during Close: %v; want nil", err)
	}
	for range n {
		if err := <-queued; !errors.Is(err, ErrClosed) {
			t.Fatalf("a write queued during Close: %v; want ErrClosed", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Everything after Close fails with ErrClosed; Close is idempotent.
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Group(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Group after Close: %v; want ErrClosed", err)
	}
	g0 := s.rawGroup(0)
	if err := g0.StoreLog(testLog(2, "late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("StoreLog after Close: %v; want ErrClosed", err)
	}
	if err := g0.GetLog(1, new(raft.Log)); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetLog after Close: %v; want ErrClosed", err)
	}
	if _, err := g0.LastIndex(); !errors.Is(err, ErrClosed) {
		t.Fatalf("LastIndex after Close: %v; want ErrClosed", err)
	}
	if _, err := g0.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v; want ErrClosed", err)
	}
	if err := s.DeleteGroup(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("DeleteGroup after Close: %v; want ErrClosed", err)
	}

	s2, err := impl.open(path, knobs{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	checkLog(t, groupOf(t, s2, 0), testLog(1, "first"))
	for i := range n {
		checkBounds(t, groupOf(t, s2, uint64(i+1)), 0, 0)
	}
}

func TestOpenRefusesALockedFile(t *testing.T) {
	_, path := openTest(t, knobs{})
	s, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, bbolt.ErrTimeout) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a file another Store holds: %v; want bbolt.ErrTimeout", err)
	}
}

func TestOpenRefusesAnUnknownFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyFormat, []byte{formatV1 + 1})
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of format %d: %v; want ErrCorrupt", formatV1+1, err)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Fatalf("zero Options: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "x.db"), Options{LockTimeout: -1}); err == nil {
		t.Fatal("Open with a negative LockTimeout succeeded")
	}
}

// TestOpensFilesOfEitherFreelistMode checks that a file whose freelist was
// synced on every commit (as before Open set NoFreelistSync) opens and
// takes writes, and that a build syncing the freelist again opens the
// result: bbolt rebuilds or writes the freelist as needed.
func TestOpensFilesOfEitherFreelistMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	synced := knobs{bolt: func(o *bbolt.Options) { o.NoFreelistSync = false }}
	steps := []struct {
		name string
		k    knobs
	}{{"freelist synced", synced}, {"default", knobs{}}, {"freelist synced again", synced}, {"default again", knobs{}}}
	var kept []uint64
	big := make([]byte, 3000) // a page or so each: pages to allocate and free
	for i, st := range steps {
		s, err := open(path, Options{}, st.k)
		if err != nil {
			t.Fatalf("%s: open: %v", st.name, err)
		}
		g := group(t, s, 1)
		for _, idx := range kept {
			checkLog(t, g, &raft.Log{Index: idx, Term: idx, Data: big})
		}
		base := uint64(100 * (i + 1))
		for idx := base; idx < base+50; idx++ {
			storeLogs(t, g, &raft.Log{Index: idx, Term: idx, Data: big})
		}
		if err := g.DeleteRange(base+1, base+49); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, base)
		err = s.db.View(func(tx *bbolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: bbolt Check: %v", st.name, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
