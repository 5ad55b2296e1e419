package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// WALOptions configures a WAL. The zero value is a valid configuration.
type WALOptions struct {
	// LockTimeout is how long OpenWAL waits for another process to release
	// its lock on the directory. Zero means one second.
	LockTimeout time.Duration

	// NoSync makes commits skip fdatasync. Unsafe: for benchmarks only.
	NoSync bool

	// SegmentSize is the size at which the active segment file is closed
	// and a new one started. Zero means 64 MiB.
	SegmentSize int64

	// CommitDelay is how long the committer may wait for more writes
	// before a commit while the WAL is busy: when the previous commit
	// carried several writes and the next write came within CommitDelay of
	// its end, the committer waits until as many writes as the previous
	// commit carried are queued, or CommitDelay has passed. A lone writer
	// (a write after a quiet spell, or after a commit of one write) never
	// waits. On a machine where an fdatasync costs CPU (about 145 us of
	// system time here, see docs/performance.md), fewer, larger commits
	// leave more CPU to everything else. Zero means
	// DefaultWALCommitDelay; negative means no wait.
	CommitDelay time.Duration
}

// DefaultWALCommitDelay is WALOptions.CommitDelay's default.
const DefaultWALCommitDelay = 500 * time.Microsecond

// Validate reports whether o can be used.
func (o WALOptions) Validate() error {
	switch {
	case o.LockTimeout < 0:
		return fmt.Errorf("raftstore: WALOptions.LockTimeout %v is negative", o.LockTimeout)
	case o.SegmentSize < 0:
		return fmt.Errorf("raftstore: WALOptions.SegmentSize %d is negative", o.SegmentSize)
	}
	return nil
}

const defaultSegmentSize = 64 << 20

// WAL is the log and stable store of every Raft group of a node, as an
// append-only log of segment files in one directory: the alternative to
// Store described in the package doc, section "The WAL". Its API is
// Store's: OpenWAL, Group, DeleteGroup, Groups, Stats, Close; WAL.Group
// returns a *WALGroup, which implements raft.LogStore and raft.StableStore.
// Its methods are safe for concurrent use.
type WAL struct {
	dir   string
	opts  WALOptions
	lock  *os.File
	kick  chan struct{}
	knobs knobs

	mu struct {
		sync.Mutex
		pending []*walRequest
		closed  bool
	}

	// st is the index: what the log holds, where. The committer changes it
	// under st.Lock after a batch is durable; readers hold st.RLock while
	// they read a segment, so that no segment is closed under them.
	st struct {
		sync.RWMutex
		groups map[uint64]*walGroupState
		segs   []*segment // ascending seq; the last is the active one
		closed bool
	}

	// Committer only.
	active  *segment
	broken  error      // once a write or sync failed, every later write fails
	emptied []*segment // segments whose live count reached 0
	buf     []byte

	commits   atomic.Uint64
	writes    atomic.Uint64
	rewritten atomic.Uint64 // segments whose live entries were copied

	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// segment is one file of the log.
type segment struct {
	seq       uint64
	f         *os.File
	size      int64 // bytes durable or being written; committer only after open
	live      int   // live entries in this segment; under st.Lock
	liveBytes int64 // the size of their values; under st.Lock
}

func segmentName(seq uint64) string { return fmt.Sprintf("%020d.wal", seq) }

// walGroupState is one group's part of the index.
type walGroupState struct {
	entries []entryLoc        // ascending index
	stable  map[string][]byte // raft's keys
}

// entryLoc is where the value of one live entry is.
type entryLoc struct {
	index uint64
	seg   *segment
	off   int64
	n     uint32
}

// walRequest is one write, encoded by the writer as one record.
type walRequest struct {
	data []byte    // the record
	rec  walRecord // decoded form of data, for the index
	at   int64     // where data was written in the active segment
	done chan error
}

// OpenWAL opens the WAL in directory dir, creating it if needed, replays
// it, and starts its committer. A torn write at the end of the last
// segment (a crash during a commit that was never acknowledged) is cut
// off. The directory stays locked until Close.
func OpenWAL(dir string, opts WALOptions) (*WAL, error) {
	return openWAL(dir, opts, knobs{})
}

func openWAL(dir string, opts WALOptions, k knobs) (*WAL, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = defaultSegmentSize
	}
	if opts.CommitDelay == 0 {
		opts.CommitDelay = DefaultWALCommitDelay
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftstore: open wal %s: %w", dir, err)
	}
	lock, err := lockDir(filepath.Join(dir, "LOCK"), opts.LockTimeout)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open wal %s: %w", dir, err)
	}
	w := &WAL{dir: dir, opts: opts, lock: lock, kick: make(chan struct{}, 1), knobs: k}
	w.st.groups = map[uint64]*walGroupState{}
	if err := w.recover(); err != nil {
		w.closeFiles()
		return nil, fmt.Errorf("raftstore: open wal %s: %w", dir, err)
	}
	w.wg.Add(1)
	go w.run()
	return w, nil
}

func (w *WAL) closeFiles() {
	for _, s := range w.st.segs {
		s.f.Close()
	}
	w.st.segs = nil
	unlockDir(w.lock)
}

// Close stops the committer and closes the files, as Store.Close does.
func (w *WAL) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.mu.closed = true
		w.mu.Unlock()
		if w.knobs.closing != nil {
			w.knobs.closing()
		}
		w.wakeCommitter()
		w.wg.Wait()
		w.st.Lock()
		w.st.closed = true
		var errs []error
		for _, s := range w.st.segs {
			errs = append(errs, s.f.Close())
		}
		w.st.segs = nil
		w.st.groups = nil
		w.st.Unlock()
		errs = append(errs, unlockDir(w.lock))
		w.closeErr = errors.Join(errs...)
	})
	return w.closeErr
}

// Stats returns the WAL's counters: Commits counts batches made durable
// (one fdatasync each).
func (w *WAL) Stats() Stats {
	return Stats{Commits: w.commits.Load(), Writes: w.writes.Load()}
}

// Segments returns the number of segment files: how much of the log the
// live entries of all groups keep.
func (w *WAL) Segments() int {
	w.st.RLock()
	defer w.st.RUnlock()
	return len(w.st.segs)
}

// Group returns the log and stable store of group id. It does no I/O.
func (w *WAL) Group(id uint64) (*WALGroup, error) {
	w.mu.Lock()
	closed := w.mu.closed
	w.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return &WALGroup{w: w, id: id}, nil
}

// DeleteGroup removes every log entry and stable key of group id, durably,
// as Store.DeleteGroup does.
func (w *WAL) DeleteGroup(id uint64) error {
	r := &walRequest{data: appendDeleteGroupRecord(nil, id), rec: walRecord{typ: walDeleteGroup, group: id}}
	if err := w.write(r); err != nil {
		return fmt.Errorf("raftstore: delete group %d: %w", id, err)
	}
	return nil
}

// Groups returns, in ascending order, the IDs of the groups that have
// data: written to and not deleted since.
func (w *WAL) Groups() ([]uint64, error) {
	w.st.RLock()
	defer w.st.RUnlock()
	if w.st.closed {
		return nil, ErrClosed
	}
	ids := make([]uint64, 0, len(w.st.groups))
	for id := range w.st.groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// write queues r, wakes the committer and waits for r's outcome.
func (w *WAL) write(r *walRequest) error {
	r.done = make(chan error, 1)
	w.mu.Lock()
	if w.mu.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.mu.pending = append(w.mu.pending, r)
	n := len(w.mu.pending)
	w.mu.Unlock()
	w.wakeCommitter()
	if w.knobs.afterEnqueue != nil {
		w.knobs.afterEnqueue(n)
	}
	return <-r.done
}

func (w *WAL) wakeCommitter() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run is the committer, as Store.run (see commit.go).
func (w *WAL) run() {
	defer w.wg.Done()
	var spare []*walRequest
	var lastBatch int     // writes in the previous commit
	var lastEnd time.Time // when it ended
	for range w.kick {
		if d := w.opts.CommitDelay; d > 0 && lastBatch > 1 && time.Since(lastEnd) < d {
			w.linger(d, lastBatch)
		}
		w.mu.Lock()
		batch, closed := w.mu.pending, w.mu.closed
		w.mu.pending = spare[:0]
		w.mu.Unlock()
		if closed {
			for _, r := range batch {
				r.done <- ErrClosed
			}
			return
		}
		if len(batch) > 0 {
			w.commit(batch)
		}
		lastBatch, lastEnd = len(batch), time.Now()
		if len(batch) > 1 {
			runtime.Gosched()
		}
		clear(batch)
		spare = batch
	}
}

// linger waits until want writes are queued, the WAL closes, or d has
// passed (see WALOptions.CommitDelay). Every write kicks the committer, so
// it wakes for each one that arrives meanwhile.
func (w *WAL) linger(d time.Duration, want int) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		w.mu.Lock()
		n, closed := len(w.mu.pending), w.mu.closed
		w.mu.Unlock()
		if n >= want || closed {
			return
		}
		select {
		case <-w.kick:
		case <-timer.C:
			return
		}
	}
}

// commit writes batch's records at the end of the active segment as one
// frame, with one write and one fdatasync, then updates the index and
// answers. If the
// write or the sync fails, the WAL is broken: this batch and every later
// write fail, since after a failed fsync the file's state is unknown;
// reopening recovers what is durable.
func (w *WAL) commit(batch []*walRequest) {
	if w.knobs.beforeCommit != nil {
		w.knobs.beforeCommit(len(batch))
	}
	reqs, err := batch, w.broken
	if err == nil {
		reqs, err = w.writeBatch(batch)
		if err != nil {
			w.broken = fmt.Errorf("raftstore: wal unusable after a failed write: %w", err)
		}
	}
	if err != nil {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	w.st.Lock()
	for _, r := range reqs {
		w.apply(&r.rec, w.active, r.at)
	}
	w.st.Unlock()
	w.collect()
	w.commits.Add(1)
	w.writes.Add(uint64(len(batch)))
	for _, r := range batch {
		r.done <- nil
	}
}

// It returns the requests written: batch, after the rewrites of sparse
// segments that a rotation adds in front of it.
func (w *WAL) writeBatch(batch []*walRequest) ([]*walRequest, error) {
	if w.active.size >= w.opts.SegmentSize {
		if err := w.rotate(); err != nil {
			return nil, err
		}
		rw, err := w.rewrites()
		if err != nil {
			return nil, err
		}
		batch = append(rw, batch...)
	}
	reqs := batch
	for len(batch) > 0 {
		// One frame per write and sync: only the frame being written when
		// the machine stops can be torn (see replay). A frame holds up to
		// walMaxFrame bytes of records, so a huge batch takes several.
		s := w.active
		b := append(w.buf[:0], make([]byte, walFrameHdr)...)
		n := 0
		for ; n < len(batch); n++ {
			r := batch[n]
			if n > 0 && len(b)-walFrameHdr+len(r.data) > walMaxFrame {
				break
			}
			r.at = s.size + int64(len(b))
			b = append(b, r.data...)
		}
		sealFrame(b, 0)
		if err := w.writeSync(s, b); err != nil {
			return nil, err
		}
		if cap(b) <= 1<<20 {
			w.buf = b
		}
		batch = batch[n:]
	}
	return reqs, nil
}

// rewrites returns records that copy the live entries of sparse segments
// (live values at most 1/16 of the segment size) into the active one, up
// to 1/8 of the segment size in all, oldest segments first, so that the
// sparse segments die and are deleted. Without it a group that appends
// slowly and so rarely compacts its log would keep alive every segment it
// has an entry in, however little of it is live. The copies change
// nothing a reader sees: each is the live value of its index, written
// again. Committer only, with the new segment active.
func (w *WAL) rewrites() ([]*walRequest, error) {
	budget := min(w.opts.SegmentSize/8, 64<<20)
	picked := map[*segment]bool{}
	for _, s := range w.st.segs {
		if s != w.active && s.live > 0 && s.liveBytes <= w.opts.SegmentSize/16 && s.liveBytes <= budget {
			picked[s] = true
			budget -= s.liveBytes
		}
	}
	if len(picked) == 0 {
		return nil, nil
	}
	ids := make([]uint64, 0, len(w.st.groups))
	for id := range w.st.groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var reqs []*walRequest
	for _, id := range ids {
		var locs []entryLoc
		for _, e := range w.st.groups[id].entries {
			if picked[e.seg] {
				locs = append(locs, e)
			}
		}
		if len(locs) == 0 {
			continue
		}
		r := &walRequest{rec: walRecord{typ: walEntries, group: id, entries: make([]walEntryRef, len(locs))}}
		var err error
		if r.data, err = appendCopiedEntriesRecord(nil, id, locs, r.rec.entries); err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
	}
	w.rewritten.Add(uint64(len(picked)))
	return reqs, nil
}

// writeSync writes b at the end of s and makes it durable.
func (w *WAL) writeSync(s *segment, b []byte) error {
	if _, err := s.f.WriteAt(b, s.size); err != nil {
		return err
	}
	if !w.opts.NoSync {
		if err := fdatasync(s.f); err != nil {
			return err
		}
	}
	s.size += int64(len(b))
	return nil
}

// rotate starts a new segment: a header and a checkpoint of the index,
// durable (file and directory entry) before it returns. From then on the
// old active segment is only read, and deleted once it has no live entry.
func (w *WAL) rotate() error {
	var seq uint64 = 1
	if w.active != nil {
		seq = w.active.seq + 1
	}
	b := appendSegmentHeader(nil, seq)
	b = append(b, make([]byte, walFrameHdr)...)
	b, err := appendCheckpointRecord(b, w.checkpoint())
	if err != nil {
		return err
	}
	sealFrame(b, walHeaderLen)
	path := filepath.Join(w.dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	s := &segment{seq: seq, f: f}
	if err = w.writeSync(s, b); err == nil && !w.opts.NoSync {
		err = syncDir(w.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	old := w.active
	w.st.Lock()
	w.st.segs = append(w.st.segs, s)
	w.active = s
	if old != nil && old.live == 0 {
		w.emptied = append(w.emptied, old)
	}
	w.st.Unlock()
	return nil
}

// checkpoint describes the index for a checkpoint record: every group,
// the ranges of indexes it has live entries at, and its stable keys.
// Committer only (it is the only writer of the index).
func (w *WAL) checkpoint() []walCheckpointGroup {
	ids := make([]uint64, 0, len(w.st.groups))
	for id := range w.st.groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	cp := make([]walCheckpointGroup, 0, len(ids))
	for _, id := range ids {
		g := w.st.groups[id]
		c := walCheckpointGroup{group: id}
		for i, e := range g.entries {
			if i > 0 && e.index == g.entries[i-1].index+1 {
				c.ranges[len(c.ranges)-1][1] = e.index
			} else {
				c.ranges = append(c.ranges, [2]uint64{e.index, e.index})
			}
		}
		keys := make([]string, 0, len(g.stable))
		for k := range g.stable {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			c.keys = append(c.keys, kv{[]byte(k), g.stable[k]})
		}
		cp = append(cp, c)
	}
	return cp
}

// collect deletes the segments that have no live entry, but never the
// active one. A dead segment's tombstones and stable values are no longer
// needed: the checkpoint at the start of every later segment restates the
// index (see the package doc).
func (w *WAL) collect() {
	if len(w.emptied) == 0 {
		return
	}
	var gone []*segment
	w.st.Lock()
	for _, s := range w.emptied {
		if s == w.active || s.live != 0 {
			continue
		}
		if i := slices.Index(w.st.segs, s); i >= 0 {
			w.st.segs = slices.Delete(w.st.segs, i, i+1)
			gone = append(gone, s)
		}
	}
	w.emptied = w.emptied[:0]
	w.st.Unlock()
	for _, s := range gone {
		s.f.Close()
		// A segment that comes back after a crash is replayed harmlessly:
		// the checkpoints after it restate the index.
		os.Remove(filepath.Join(w.dir, segmentName(s.seq)))
	}
}

// apply changes the index for rec, the record of the frame at offset at of
// segment s. Called by the committer under st.Lock, and by recover.
func (w *WAL) apply(rec *walRecord, s *segment, at int64) {
	switch rec.typ {
	case walEntries:
		g := w.groupState(rec.group, true)
		for _, e := range rec.entries {
			w.putEntry(g, entryLoc{index: e.index, seg: s, off: at + int64(e.off), n: e.n})
		}
	case walDeleteRange:
		if g := w.st.groups[rec.group]; g != nil {
			w.deleteRange(g, rec.min, rec.max)
		}
	case walSet:
		g := w.groupState(rec.group, true)
		g.stable[string(rec.key)] = bytes.Clone(rec.val) // rec may point into a whole segment
	case walDeleteGroup:
		if g := w.st.groups[rec.group]; g != nil {
			w.deleteRange(g, 0, ^uint64(0))
			delete(w.st.groups, rec.group)
		}
	case walCheckpoint:
		w.applyCheckpoint(rec.groups)
	}
}

func (w *WAL) groupState(id uint64, create bool) *walGroupState {
	g := w.st.groups[id]
	if g == nil && create {
		g = &walGroupState{stable: map[string][]byte{}}
		w.st.groups[id] = g
	}
	return g
}

func (w *WAL) putEntry(g *walGroupState, e entryLoc) {
	e.seg.live++
	e.seg.liveBytes += int64(e.n)
	n := len(g.entries)
	if n == 0 || g.entries[n-1].index < e.index {
		g.entries = append(g.entries, e)
		return
	}
	i, found := slices.BinarySearchFunc(g.entries, e.index, cmpEntry)
	if found {
		w.unref(g.entries[i])
		g.entries[i] = e
		return
	}
	g.entries = slices.Insert(g.entries, i, e)
}

func cmpEntry(e entryLoc, index uint64) int {
	switch {
	case e.index < index:
		return -1
	case e.index > index:
		return 1
	}
	return 0
}

func (w *WAL) unref(e entryLoc) {
	s := e.seg
	s.live--
	s.liveBytes -= int64(e.n)
	if s.live == 0 {
		w.emptied = append(w.emptied, s)
	}
}

// deleteRange drops g's entries in [min, max].
func (w *WAL) deleteRange(g *walGroupState, min, max uint64) {
	lo, _ := slices.BinarySearchFunc(g.entries, min, cmpEntry)
	hi := lo
	for hi < len(g.entries) && g.entries[hi].index <= max {
		w.unref(g.entries[hi])
		hi++
	}
	if lo == hi {
		return
	}
	switch {
	case lo == 0 && hi == len(g.entries):
		g.entries = nil
	case lo == 0:
		// A prefix (compaction after a snapshot): keep the array unless
		// most of it is dead.
		clear(g.entries[:hi]) // let the dead segments go
		g.entries = g.entries[hi:]
		if len(g.entries) < cap(g.entries)/4 {
			g.entries = slices.Clone(g.entries)
		}
	default:
		g.entries = slices.Delete(g.entries, lo, hi)
	}
}

// applyCheckpoint restricts the index to what the checkpoint says is
// live, and sets the stable keys to its values.
func (w *WAL) applyCheckpoint(groups []walCheckpointGroup) {
	listed := make(map[uint64]bool, len(groups))
	for _, c := range groups {
		listed[c.group] = true
		g := w.groupState(c.group, true)
		kept := g.entries[:0]
		r := 0
		for _, e := range g.entries {
			for r < len(c.ranges) && c.ranges[r][1] < e.index {
				r++
			}
			if r < len(c.ranges) && c.ranges[r][0] <= e.index {
				kept = append(kept, e)
			} else {
				w.unref(e)
			}
		}
		clear(g.entries[len(kept):])
		g.entries = kept
		g.stable = make(map[string][]byte, len(c.keys))
		for _, e := range c.keys {
			g.stable[string(e.k)] = bytes.Clone(e.v)
		}
	}
	for id, g := range w.st.groups {
		if !listed[id] {
			w.deleteRange(g, 0, ^uint64(0))
			delete(w.st.groups, id)
		}
	}
}
