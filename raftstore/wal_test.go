package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// Tests of the WAL's own machinery: recovery from torn writes, segment
// deletion, checkpoints. Its behaviour as a log and stable store is tested
// with Store's, by the tests that run forEachImpl.

func openWALTest(t testing.TB, dir string, opts WALOptions) *WAL {
	t.Helper()
	w, err := OpenWAL(dir, opts)
	if err != nil {
		t.Fatalf("OpenWAL(%s): %v", dir, err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func walGroup(t testing.TB, w *WAL, id uint64) *WALGroup {
	t.Helper()
	g, err := w.Group(id)
	if err != nil {
		t.Fatalf("Group(%d): %v", id, err)
	}
	return g
}

// segmentFiles returns the names of dir's segments, in order.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestWALOpenRefusesALockedDir(t *testing.T) {
	dir := t.TempDir()
	openWALTest(t, dir, WALOptions{})
	w, err := OpenWAL(dir, WALOptions{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, bbolt.ErrTimeout) {
		if w != nil {
			w.Close()
		}
		t.Fatalf("OpenWAL of a directory another WAL holds: %v; want bbolt.ErrTimeout", err)
	}
	if _, err := OpenWAL(dir, WALOptions{SegmentSize: -1}); err == nil {
		t.Fatal("OpenWAL with a negative SegmentSize succeeded")
	}
}

// TestWALTornTailIsCut cuts the last frame of the log at every byte, as a
// crash during its write may, and checks that the WAL opens with every
// earlier write intact and the cut one absent, then works on.
func TestWALTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	w := openWALTest(t, dir, WALOptions{NoSync: true})
	g := walGroup(t, w, 1)
	for i := uint64(1); i <= 4; i++ {
		storeLogs(t, g, testLog(2*i-1, "early"), testLog(2*i, "early"))
	}
	if err := g.DeleteRange(1, 2); err != nil {
		t.Fatal(err)
	}
	if err := g.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	start := w.active.size // where the last frame begins
	last := []*raft.Log{testLog(9, "last"), testLog(10, "last"), testLog(11, "last")}
	storeLogs(t, g, last...)
	end := w.active.size
	seg := filepath.Base(segmentFiles(t, dir)[len(segmentFiles(t, dir))-1])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, g *WALGroup, withLast bool) {
		t.Helper()
		lastIdx := uint64(8)
		if withLast {
			lastIdx = 11
		}
		checkBounds(t, g, 3, lastIdx)
		for i := uint64(3); i <= 8; i++ {
			checkLog(t, g, testLog(i, "early"))
		}
		if withLast {
			for _, l := range last {
				checkLog(t, g, l)
			}
		} else {
			checkMissing(t, g, 9)
		}
		if v, err := g.GetUint64([]byte("CurrentTerm")); err != nil || v != 3 {
			t.Fatalf("GetUint64(CurrentTerm) = %d, %v; want 3", v, err)
		}
	}

	for cut := start; cut <= end; cut++ {
		d := copyDir(t, dir)
		if err := os.Truncate(filepath.Join(d, seg), cut); err != nil {
			t.Fatal(err)
		}
		w, err := OpenWAL(d, WALOptions{NoSync: true})
		if err != nil {
			t.Fatalf("cut at %d of [%d, %d]: OpenWAL: %v", cut, start, end, err)
		}
		g := walGroup(t, w, 1)
		check(t, g, cut == end)
		// The WAL goes on: a write after recovery survives another reopen.
		if cut == (start+end)/2 || cut == start+1 {
			storeLogs(t, g, testLog(20, "after"))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w = openWALTest(t, d, WALOptions{NoSync: true})
			g = walGroup(t, w, 1)
			checkLog(t, g, testLog(20, "after"))
			checkLog(t, g, testLog(8, "early"))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// A last frame damaged rather than cut short is torn too...
	for _, at := range []int64{start, start + 3, start + 9, end - 1} {
		d := copyDir(t, dir)
		flipByte(t, filepath.Join(d, seg), at)
		w, err := OpenWAL(d, WALOptions{NoSync: true})
		if err != nil {
			t.Fatalf("byte %d of the last frame flipped: OpenWAL: %v", at, err)
		}
		check(t, walGroup(t, w, 1), false)
		w.Close()
	}
	// ... but a damaged frame with another after it held acknowledged
	// writes: that is corruption, not a torn write.
	d := copyDir(t, dir)
	flipByte(t, filepath.Join(d, seg), start-2)
	if w, err := OpenWAL(d, WALOptions{NoSync: true}); !errors.Is(err, ErrCorrupt) {
		if w != nil {
			w.Close()
		}
		t.Fatalf("a frame before the last damaged: OpenWAL = %v; want ErrCorrupt", err)
	}
}

func flipByte(t testing.TB, path string, at int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x5a
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWALDamageBeforeTheLastSegment checks that only the last segment may
// end torn: every other one was synced whole before the next began.
func TestWALDamageBeforeTheLastSegment(t *testing.T) {
	dir := t.TempDir()
	w := openWALTest(t, dir, WALOptions{NoSync: true, SegmentSize: 1})
	g := walGroup(t, w, 1)
	for i := uint64(1); i <= 3; i++ {
		storeLogs(t, g, testLog(i, "x"))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments; want one per commit", len(segs))
	}
	for name, damage := range map[string]func(path string){
		"cut":     func(path string) { os.Truncate(path, fileSize(t, path)-1) },
		"flipped": func(path string) { flipByte(t, path, fileSize(t, path)-1) },
		"header":  func(path string) { flipByte(t, path, 3) },
	} {
		d := copyDir(t, dir)
		damage(filepath.Join(d, filepath.Base(segs[0])))
		if w, err := OpenWAL(d, WALOptions{NoSync: true}); !errors.Is(err, ErrCorrupt) {
			if w != nil {
				w.Close()
			}
			t.Errorf("%s: OpenWAL = %v; want ErrCorrupt", name, err)
		}
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestWALSegmentsAreDeletedOnceDead checks that a segment goes once no
// group has a live entry in it, and only then.
func TestWALSegmentsAreDeletedOnceDead(t *testing.T) {
	dir := t.TempDir()
	w := openWALTest(t, dir, WALOptions{NoSync: true, SegmentSize: 4 << 10})
	g1, g2 := walGroup(t, w, 1), walGroup(t, w, 2)
	big := make([]byte, 1000)
	for i := uint64(1); i <= 100; i++ {
		for _, g := range []*WALGroup{g1, g2} {
			storeLogs(t, g, &raft.Log{Index: i, Term: 1, Data: big})
		}
	}
	if n := w.Segments(); n < 40 {
		t.Fatalf("%d segments after 200 KB of entries in 4 KB segments; want about 50", n)
	}
	// Group 2 keeps its entries: every segment stays.
	if err := g1.DeleteRange(1, 90); err != nil {
		t.Fatal(err)
	}
	if n := w.Segments(); n < 40 {
		t.Fatalf("%d segments after only group 1 compacted; want them all kept", n)
	}
	if err := g2.DeleteRange(1, 90); err != nil {
		t.Fatal(err)
	}
	if n := w.Segments(); n > 8 {
		t.Fatalf("%d segments after both groups kept 10 entries of 1 KB each; want at most 8", n)
	}
	if n := len(segmentFiles(t, dir)); n != w.Segments() {
		t.Fatalf("%d segment files; Segments() = %d", n, w.Segments())
	}
	if err := w.DeleteGroup(1); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteGroup(2); err != nil {
		t.Fatal(err)
	}
	if n := w.Segments(); n != 1 {
		t.Fatalf("%d segments once every group is deleted; want 1, the active one", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openWALTest(t, dir, WALOptions{NoSync: true})
	if ids, err := w.Groups(); err != nil || len(ids) != 0 {
		t.Fatalf("Groups() = %v, %v; want none", ids, err)
	}
}

// TestWALDeletedTombstonesDoNotResurrect deletes the segment that holds a
// DeleteRange while an older segment with the entries it deleted stays:
// the checkpoint of a later segment must keep them deleted.
func TestWALDeletedTombstonesDoNotResurrect(t *testing.T) {
	dir := t.TempDir()
	// SegmentSize 1: every commit starts a new segment.
	w := openWALTest(t, dir, WALOptions{NoSync: true, SegmentSize: 1})
	g1, g2, g3 := walGroup(t, w, 1), walGroup(t, w, 2), walGroup(t, w, 3)
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, testLog(i, "old"))
	}
	storeLogs(t, g2, logs...) // segment A: group 2's 1..10
	if err := g2.DeleteRange(6, 10); err != nil {
		t.Fatal(err) // segment B: only the tombstone
	}
	if err := g2.DeleteRange(4, 5); err != nil {
		t.Fatal(err) // segment C
	}
	storeLogs(t, g2, testLog(4, "new"), testLog(5, "new")) // D: conflict rewrite
	if err := g1.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err) // E: a stable value in a segment that has no entries
	}
	storeLogs(t, g3, testLog(1, "x")) // F
	if err := g3.DeleteRange(1, 1); err != nil {
		t.Fatal(err) // G: F dies
	}
	storeLogs(t, g3, testLog(2, "x")) // H
	// Live: A (2's 1..3), D (2's 4..5), H; B, C, E, F, G hold nothing
	// live. The empty segments are gone.
	if n := w.Segments(); n != 3 {
		t.Fatalf("%d segments; want 3 (A, D and H)", n)
	}
	check := func(w *WAL) {
		t.Helper()
		g2 := walGroup(t, w, 2)
		checkBounds(t, g2, 1, 5)
		checkLog(t, g2, testLog(3, "old"))
		checkLog(t, g2, testLog(4, "new"))
		checkLog(t, g2, testLog(5, "new"))
		for i := uint64(6); i <= 10; i++ {
			checkMissing(t, g2, i)
		}
		checkGet(t, walGroup(t, w, 1), "k", "v")
		checkBounds(t, walGroup(t, w, 3), 2, 2)
		if ids, err := w.Groups(); err != nil || !slices.Equal(ids, []uint64{1, 2, 3}) {
			t.Fatalf("Groups() = %v, %v; want [1 2 3]", ids, err)
		}
	}
	check(w)
	for range 3 { // each open starts a segment and deletes dead ones
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		w = openWALTest(t, dir, WALOptions{NoSync: true, SegmentSize: 1})
		check(w)
	}
}

// TestWALSlowGroupsDoNotKeepSegments has one group append an entry now and
// then and never compact, while another writes a lot and compacts: the
// slow group's entries, copied forward out of sparse segments, must not
// keep every segment alive.
func TestWALSlowGroupsDoNotKeepSegments(t *testing.T) {
	dir := t.TempDir()
	opts := WALOptions{NoSync: true, SegmentSize: 16 << 10}
	w := openWALTest(t, dir, opts)
	slow, busy := walGroup(t, w, 1), walGroup(t, w, 2)
	data := make([]byte, 500)
	for i := uint64(1); i <= 2000; i++ {
		storeLogs(t, busy, &raft.Log{Index: i, Term: 1, Data: data})
		if i%20 == 0 {
			storeLogs(t, slow, testLog(i/20, "slow"))
			if err := busy.DeleteRange(1, i-10); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 1 MB written in 16 KB segments: 60-odd segments, each with a slow
	// entry in it. Live: 100 slow entries and 10 busy ones, a few KB.
	if n := w.Segments(); n > 6 {
		t.Fatalf("%d segments with a few KB live; want at most 6", n)
	}
	if w.rewritten.Load() == 0 {
		t.Fatal("no segment rewritten")
	}
	for range 2 {
		checkBounds(t, slow, 1, 100)
		for i := uint64(1); i <= 100; i++ {
			checkLog(t, slow, testLog(i, "slow"))
		}
		checkBounds(t, busy, 1991, 2000)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		w = openWALTest(t, dir, opts)
		slow, busy = walGroup(t, w, 1), walGroup(t, w, 2)
	}
}

// TestWALBrokenAfterAFailedWrite checks that once a write fails the WAL
// takes no more writes (the file's state is unknown), and that reopening
// recovers what was durable.
func TestWALBrokenAfterAFailedWrite(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWAL(dir, WALOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	g := walGroup(t, w, 1)
	storeLogs(t, g, testLog(1, "ok"))
	w.active.f.Close() // the committer is idle: no write is under way
	if err := g.StoreLog(testLog(2, "lost")); err == nil {
		t.Fatal("StoreLog to a closed file succeeded")
	}
	if err := g.Set([]byte("k"), []byte("v")); err == nil {
		t.Fatal("Set after a failed write succeeded")
	}
	checkBounds(t, g, 1, 1)
	w.Close()
	w = openWALTest(t, dir, WALOptions{NoSync: true})
	g = walGroup(t, w, 1)
	checkBounds(t, g, 1, 1)
	checkLog(t, g, testLog(1, "ok"))
	checkNotFound(t, g, "k")
}

// TestWALMatchesAModel runs random writes in a few groups, with segments
// so small that they turn over all the time, and reopens now and then,
// checking everything against a model kept in maps.
func TestWALMatchesAModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { testWALMatchesAModel(t, seed) })
	}
}

func testWALMatchesAModel(t *testing.T, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	opts := WALOptions{NoSync: true, SegmentSize: int64(1 + rnd.IntN(2000))}
	w := openWALTest(t, dir, opts)
	type model struct {
		logs   map[uint64]*raft.Log
		stable map[string]string
	}
	groups := map[uint64]*model{}
	get := func(id uint64) *model {
		if groups[id] == nil {
			groups[id] = &model{logs: map[uint64]*raft.Log{}, stable: map[string]string{}}
		}
		return groups[id]
	}
	bounds := func(m *model) (first, last uint64) {
		for i := range m.logs {
			if first == 0 || i < first {
				first = i
			}
			last = max(last, i)
		}
		return first, last
	}
	verify := func(step int) {
		t.Helper()
		var ids []uint64
		for id := range groups {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if got, err := w.Groups(); err != nil || !slices.Equal(got, ids) {
			t.Fatalf("step %d: Groups() = %v, %v; want %v", step, got, err, ids)
		}
		for id := range uint64(5) {
			g := walGroup(t, w, id)
			m := groups[id]
			if m == nil {
				m = &model{}
			}
			first, last := bounds(m)
			checkBounds(t, g, first, last)
			for i := first; i <= last+1; i++ {
				if l := m.logs[i]; l != nil {
					checkLog(t, g, l)
				} else if i > 0 {
					checkMissing(t, g, i)
				}
			}
			for _, k := range []string{"a", "b", "c"} {
				if v, ok := m.stable[k]; ok {
					checkGet(t, g, k, v)
				} else {
					checkNotFound(t, g, k)
				}
			}
		}
	}
	for step := range 600 {
		id := uint64(rnd.IntN(5))
		g := walGroup(t, w, id)
		tag := fmt.Sprint("s", step)
		switch op := rnd.IntN(20); {
		case op < 8: // append after the last entry, as raft does
			m := get(id)
			_, last := bounds(m)
			var logs []*raft.Log
			for i := range uint64(1 + rnd.IntN(4)) {
				l := testLog(last+1+i, tag)
				logs = append(logs, l)
				m.logs[l.Index] = l
			}
			storeLogs(t, g, logs...)
		case op < 10: // overwrite or fill anywhere
			m := get(id)
			l := testLog(uint64(1+rnd.IntN(60)), tag)
			m.logs[l.Index] = l
			storeLogs(t, g, l)
		case op < 15: // delete a prefix, a suffix or a middle
			lo, hi := uint64(rnd.IntN(60)), uint64(rnd.IntN(60))
			if rnd.IntN(3) == 0 {
				hi = ^uint64(0)
			}
			if err := g.DeleteRange(lo, hi); err != nil {
				t.Fatal(err)
			}
			if m := groups[id]; m != nil {
				for i := range m.logs {
					if lo <= i && i <= hi {
						delete(m.logs, i)
					}
				}
			}
		case op < 18:
			k := []string{"a", "b", "c"}[rnd.IntN(3)]
			get(id).stable[k] = tag
			if err := g.Set([]byte(k), []byte(tag)); err != nil {
				t.Fatal(err)
			}
		case op < 19:
			delete(groups, id)
			if err := w.DeleteGroup(id); err != nil {
				t.Fatal(err)
			}
		default:
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w = openWALTest(t, dir, opts)
			verify(step)
		}
		if step%50 == 0 {
			verify(step)
		}
	}
	verify(600)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openWALTest(t, dir, opts)
	verify(601)
}

// A record and a whole last segment of arbitrary bytes must decode or be
// refused, never panic; what decodes must encode back the same.

func FuzzWALRecord(f *testing.F) {
	refs := make([]walEntryRef, 2)
	seed, _ := appendEntriesRecord(nil, 7, []*raft.Log{testLog(1, "a"), testLog(2, "b")}, refs)
	f.Add(seed)
	f.Add(appendDeleteRangeRecord(nil, 1, 2, 3))
	seed, _ = appendSetRecord(nil, 1, []byte("k"), []byte("v"))
	f.Add(seed)
	f.Add(appendDeleteGroupRecord(nil, 9))
	seed, _ = appendCheckpointRecord(nil, []walCheckpointGroup{{group: 1, ranges: [][2]uint64{{1, 5}, {7, 9}}, keys: []kv{{[]byte("k"), []byte("v")}}}, {group: 2}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeRecord: %v; want ErrCorrupt", err)
			}
			return
		}
		var again []byte
		switch rec.typ {
		case walEntries:
			// Re-encode the values as they are: they need not decode.
			again = recordStart(nil, walEntries)
			again = appendUvarint(again, rec.group)
			again = appendUvarint(again, uint64(len(rec.entries)))
			for _, e := range rec.entries {
				again = appendUvarint(again, e.index)
				again = appendUint32(again, e.n)
				again = append(again, b[e.off:e.off+e.n]...)
			}
			recordEnd(again, 0)
		case walDeleteRange:
			again = appendDeleteRangeRecord(nil, rec.group, rec.min, rec.max)
		case walSet:
			again, _ = appendSetRecord(nil, rec.group, rec.key, rec.val)
		case walDeleteGroup:
			again = appendDeleteGroupRecord(nil, rec.group)
		case walCheckpoint:
			again, _ = appendCheckpointRecord(nil, rec.groups)
		}
		rec2, err := decodeRecord(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if fmt.Sprint(rec2) != fmt.Sprint(rec) {
			t.Fatalf("round trip: %+v; want %+v", rec2, rec)
		}
	})
}

func FuzzWALOpen(f *testing.F) {
	dir := f.TempDir()
	w, err := OpenWAL(dir, WALOptions{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	g, _ := w.Group(1)
	storeLogs(f, g, testLog(1, "a"), testLog(2, "a"))
	g.Set([]byte("k"), []byte("v"))
	g.DeleteRange(1, 1)
	w.Close()
	segs := segmentFiles(f, dir)
	whole, err := os.ReadFile(segs[len(segs)-1])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(whole[walHeaderLen:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		d := t.TempDir()
		seg := append(appendSegmentHeader(nil, 1), body...)
		if err := os.WriteFile(filepath.Join(d, segmentName(1)), seg, 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := OpenWAL(d, WALOptions{NoSync: true})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenWAL: %v; want ErrCorrupt or success", err)
			}
			return
		}
		defer w.Close()
		ids, _ := w.Groups()
		for _, id := range ids {
			g, _ := w.Group(id)
			first, _ := g.FirstIndex()
			last, _ := g.LastIndex()
			for i := first; i <= last && i-first < 100; i++ {
				g.GetLog(i, new(raft.Log)) // may fail: values are not checked on open
			}
		}
		// The WAL goes on.
		g, _ := w.Group(1)
		if err := g.StoreLog(testLog(1000, "z")); err != nil {
			t.Fatalf("StoreLog after recovery: %v", err)
		}
	})
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendUint32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
