package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"testing"
	"time"
)

// snapshotBytes returns the snapshot stream of sm's current state.
func snapshotBytes(t testing.TB, sm *StateMachine) []byte {
	t.Helper()
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d; wrote %d bytes", n, buf.Len())
	}
	return buf.Bytes()
}

// sampleState returns a state machine with keys over several frames, a
// deleted key, and sessions holding unacknowledged results.
func sampleState(t testing.TB, keys int) *StateMachine {
	t.Helper()
	sm := NewStateMachine(Config{SessionTTL: time.Minute})
	index := uint64(0)
	apply := func(cmd []byte) {
		index++
		if r := sm.Apply(index, cmd); r.Err != nil {
			t.Fatalf("Apply(%d, %s): %v", index, describe(cmd), r.Err)
		}
	}
	for i := range keys {
		apply(put(fmt.Sprintf("key-%05d", i), fmt.Sprintf("value-%d-%s", i, bytes.Repeat([]byte("x"), i%200))))
	}
	apply(put("key-00001", "overwritten"))
	apply(del("key-00002"))
	apply(cput("alice", 1, 0, 1000, "a", "1"))
	apply(cput("alice", 2, 0, 2000, "a", "2"))
	apply(cdel("alice", 3, 2, 3000, "key-00003"))
	apply(cput("bob", 7, 7, 4000, "b", "7"))
	apply(put("key-00000", ""))
	return sm
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, keys := range []int{0, 10, 2000} {
		t.Run(fmt.Sprintf("keys=%d", keys), func(t *testing.T) {
			src := sampleState(t, keys)
			data := snapshotBytes(t, src)
			dst := NewStateMachine(Config{SessionTTL: time.Minute})
			dst.Apply(1, put("stale-key", "gone after restore"))
			if err := dst.Restore(bytes.NewReader(data)); err != nil {
				t.Fatalf("Restore of a %d-byte snapshot: %v", len(data), err)
			}

			if got, want := dst.AppliedIndex(), src.AppliedIndex(); got != want {
				t.Errorf("AppliedIndex() after Restore = %d; want %d", got, want)
			}
			if got, want := dst.Len(), src.Len(); got != want {
				t.Errorf("Len() after Restore = %d; want %d", got, want)
			}
			if got, want := dst.SizeBytes(), src.SizeBytes(); got != want {
				t.Errorf("SizeBytes() after Restore = %d; want %d", got, want)
			}
			src.mu.data.Ascend(func(e entry) bool {
				checkGet(t, dst, string(e.key), &e.val)
				return true
			})
			checkGet(t, dst, "stale-key", nil)
			checkGet(t, dst, "key-00002", nil)
			if again := snapshotBytes(t, dst); !bytes.Equal(again, data) {
				t.Errorf("snapshot of the restored state differs from the one restored (%d vs %d bytes)", len(again), len(data))
			}

			// Both replicas continue identically, sessions included.
			next := src.AppliedIndex()
			for i, tc := range []struct {
				cmd     []byte
				dup     bool
				wantErr error
			}{
				{cmd: cput("alice", 2, 0, 5000, "a", "retry"), dup: true},
				{cmd: cdel("alice", 3, 0, 5000, "key-00003"), dup: true},
				{cmd: cput("alice", 1, 0, 5000, "a", "retry"), wantErr: ErrStaleRequest},
				{cmd: cput("bob", 7, 0, 5000, "b", "retry"), dup: true},
				{cmd: cput("bob", 8, 8, 5000, "b", "8")},
				{cmd: cput("carol", 1, 0, 5000, "c", "1")},
				// Sessions expire by the restored clock and TTL: alice was
				// last seen at 5000.
				{cmd: cput("alice", 2, 0, int64(time.Minute)+5000, "a", "retry"), dup: true},
				{cmd: cput("alice", 2, 0, 2*int64(time.Minute)+5001, "a", "expired")},
			} {
				next++
				rs, rd := src.Apply(next, tc.cmd), dst.Apply(next, tc.cmd)
				what := fmt.Sprintf("step %d, Apply(%d, %s)", i, next, describe(tc.cmd))
				if !sameResult(rs, rd) {
					t.Errorf("%s: original %+v, restored %+v", what, rs, rd)
				}
				if rd.Duplicate != tc.dup || !errors.Is(rd.Err, tc.wantErr) {
					t.Errorf("%s on the restored replica = %+v; want Duplicate %v, error %v", what, rd, tc.dup, tc.wantErr)
				}
			}
			if a, b := snapshotBytes(t, src), snapshotBytes(t, dst); !bytes.Equal(a, b) {
				t.Errorf("after the same entries, original and restored snapshots differ (%d vs %d bytes)", len(a), len(b))
			}
		})
	}
}

// TestSnapshotIsCopyOnWrite writes a snapshot while, and after, the state
// machine changes every key and session; the snapshot must not change.
func TestSnapshotIsCopyOnWrite(t *testing.T) {
	sm := sampleState(t, 2000)
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var before bytes.Buffer
	if _, err := snap.WriteTo(&before); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}

	var wg sync.WaitGroup
	var during bytes.Buffer
	wg.Go(func() {
		if _, err := snap.WriteTo(&during); err != nil {
			t.Errorf("WriteTo during Apply: %v", err)
		}
	})
	index := sm.AppliedIndex()
	for i := range 2000 {
		index++
		sm.Apply(index, put(fmt.Sprintf("key-%05d", i), "changed"))
		if i%3 == 0 {
			index++
			sm.Apply(index, del(fmt.Sprintf("key-%05d", i)))
		}
		index++
		sm.Apply(index, cput("alice", uint64(10+i), uint64(i), int64(10_000+i), "a", "changed"))
	}
	index++
	sm.Apply(index, cput("bob", 8, 8, 20_000, "b", "changed")) // copies bob's session
	index++
	sm.Apply(index, EncodeNoop(int64(time.Hour))) // expires every session
	wg.Wait()

	var after bytes.Buffer
	if _, err := snap.WriteTo(&after); err != nil {
		t.Fatalf("WriteTo after changes: %v", err)
	}
	if !bytes.Equal(before.Bytes(), during.Bytes()) || !bytes.Equal(before.Bytes(), after.Bytes()) {
		t.Fatalf("snapshot stream changed with the state: %d bytes before, %d during, %d after",
			before.Len(), during.Len(), after.Len())
	}
	restored := NewStateMachine(Config{})
	if err := restored.Restore(&after); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	checkGet(t, restored, "key-00001", val("overwritten", 2001, 2))
	if n := restored.mu.sessions.byID.Len(); n != 2 {
		t.Errorf("restored snapshot has %d sessions; want 2 (alice, bob)", n)
	}
}

func TestSnapshotRelease(t *testing.T) {
	sm := sampleState(t, 3)
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if snap.Index() != sm.AppliedIndex() {
		t.Errorf("Index() = %d; want AppliedIndex() %d", snap.Index(), sm.AppliedIndex())
	}
	snap.Release()
	snap.Release()
	if _, err := snap.WriteTo(io.Discard); !errors.Is(err, ErrSnapshotReleased) {
		t.Errorf("WriteTo after Release = %v; want ErrSnapshotReleased", err)
	}
}

type failingWriter struct{ left int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errDiskFull
	}
	w.left -= len(p)
	return len(p), nil
}

func TestSnapshotWriteError(t *testing.T) {
	sm := sampleState(t, 3000)
	snap, _ := sm.Snapshot()
	defer snap.Release()
	n, err := snap.WriteTo(&failingWriter{left: 100_000})
	if !errors.Is(err, errDiskFull) || n != 100_000 {
		t.Errorf("WriteTo(writer failing after 100000 bytes) = %d, %v; want 100000, %v", n, err, errDiskFull)
	}
}

// TestRestoreRejectsCorruption truncates the stream at every byte and flips
// bits in every byte; each must be rejected, leaving the state unchanged.
func TestRestoreRejectsCorruption(t *testing.T) {
	data := snapshotBytes(t, sampleState(t, 10))
	sm := sampleState(t, 3)
	want := snapshotBytes(t, sm)
	wantIndex, wantLen := sm.AppliedIndex(), sm.Len()
	check := func(what string, in []byte) {
		t.Helper()
		err := sm.Restore(bytes.NewReader(in))
		if !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("Restore(%s) = %v; want ErrCorruptSnapshot", what, err)
		}
		if sm.AppliedIndex() != wantIndex || sm.Len() != wantLen {
			t.Fatalf("after Restore(%s) failed: AppliedIndex() %d, Len() %d; want %d, %d, as before",
				what, sm.AppliedIndex(), sm.Len(), wantIndex, wantLen)
		}
	}
	for n := range len(data) {
		check(fmt.Sprintf("first %d of %d bytes", n, len(data)), data[:n])
	}
	for i := range data {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			in := bytes.Clone(data)
			in[i] ^= mask
			check(fmt.Sprintf("byte %d of %d xor %#x", i, len(data), mask), in)
		}
	}
	if got := snapshotBytes(t, sm); !bytes.Equal(got, want) {
		t.Errorf("state changed by failed Restores")
	}
}

var errReader = errors.New("connection reset")

type erroringReader struct {
	r io.Reader
	n int
}

func (r *erroringReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errReader
	}
	n, err := r.r.Read(p[:min(len(p), r.n)])
	r.n -= n
	return n, err
}

func TestRestoreReadError(t *testing.T) {
	data := snapshotBytes(t, sampleState(t, 1000))
	sm := NewStateMachine(Config{})
	err := sm.Restore(&erroringReader{r: bytes.NewReader(data), n: len(data) / 2})
	if !errors.Is(err, errReader) {
		t.Errorf("Restore from a reader failing halfway = %v; want %v", err, errReader)
	}
}

// frame builds one snapshot frame around payload, with a valid checksum.
func frame(kind byte, payload []byte) []byte {
	b := append([]byte{kind}, binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))...)
	b = append(b, payload...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func uvarints(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// header builds a header frame; clock 0.
func header(version, index, touches, keys, sessions uint64) []byte {
	p := uvarints(version, index)
	p = binary.AppendVarint(p, 0)
	return frame(frameHeader, append(p, uvarints(touches, keys, sessions)...))
}

func record(key string, version, create uint64, value string) []byte {
	b := appendBytes(nil, []byte(key))
	b = append(b, uvarints(version, create)...)
	return appendBytes(b, []byte(value))
}

func sessionRecord(id string, ackedBelow uint64, lastSeen int64, touch uint64, results ...[]byte) []byte {
	b := appendBytes(nil, []byte(id))
	b = binary.AppendUvarint(b, ackedBelow)
	b = binary.AppendVarint(b, lastSeen)
	b = append(b, uvarints(touch, uint64(len(results)))...)
	for _, r := range results {
		b = append(b, r...)
	}
	return b
}

func stream(frames ...[]byte) []byte {
	return append([]byte(snapshotMagic), bytes.Join(frames, nil)...)
}

// TestRestoreChecksRecords feeds well-checksummed streams whose content
// breaks the format's rules.
func TestRestoreChecksRecords(t *testing.T) {
	end := frame(frameEnd, nil)
	rec := func(rs ...[]byte) []byte { return bytes.Join(rs, nil) }
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"valid", stream(header(1, 9, 1, 2, 1),
			frame(frameData, rec(record("a", 3, 1, "x"), record("b", 9, 9, ""))),
			frame(frameSessions, sessionRecord("c", 0, 0, 1, []byte{1, 2, 2, flagExisted})), end), nil},
		{"empty state", stream(header(1, 0, 0, 0, 0), end), nil},
		{"no frames", stream(), ErrCorruptSnapshot},
		{"wrong magic", append([]byte("RKVSHARX"), header(1, 0, 0, 0, 0)...), ErrCorruptSnapshot},
		{"newer version", stream(header(3, 0, 0, 0, 0), end), ErrSnapshotVersion},
		{"no end frame", stream(header(1, 9, 0, 1, 0), frame(frameData, record("a", 3, 1, "x"))), ErrCorruptSnapshot},
		{"data before header", stream(frame(frameData, record("a", 3, 1, "x")), header(1, 9, 0, 1, 0), end), ErrCorruptSnapshot},
		{"two headers", stream(header(1, 0, 0, 0, 0), header(1, 0, 0, 0, 0), end), ErrCorruptSnapshot},
		{"data after sessions", stream(header(1, 9, 1, 1, 1), frame(frameSessions, sessionRecord("c", 0, 0, 1)),
			frame(frameData, record("a", 3, 1, "x")), end), ErrCorruptSnapshot},
		{"unknown frame kind", stream(header(1, 0, 0, 0, 0), frame(9, nil), end), ErrCorruptSnapshot},
		{"key count short", stream(header(1, 9, 0, 2, 0), frame(frameData, record("a", 3, 1, "x")), end), ErrCorruptSnapshot},
		{"session count short", stream(header(1, 9, 0, 0, 1), end), ErrCorruptSnapshot},
		{"keys out of order", stream(header(1, 9, 0, 2, 0), frame(frameData, rec(record("b", 3, 1, "x"), record("a", 3, 1, "x"))), end), ErrCorruptSnapshot},
		{"key repeated", stream(header(1, 9, 0, 2, 0), frame(frameData, record("a", 3, 1, "x")), frame(frameData, record("a", 3, 1, "x")), end), ErrCorruptSnapshot},
		{"empty key", stream(header(1, 9, 0, 1, 0), frame(frameData, record("", 3, 1, "x")), end), ErrCorruptSnapshot},
		{"version above applied", stream(header(1, 9, 0, 1, 0), frame(frameData, record("a", 10, 1, "x")), end), ErrCorruptSnapshot},
		{"create above version", stream(header(1, 9, 0, 1, 0), frame(frameData, record("a", 3, 4, "x")), end), ErrCorruptSnapshot},
		{"truncated record", stream(header(1, 9, 0, 1, 0), frame(frameData, record("a", 3, 1, "x")[:4]), end), ErrCorruptSnapshot},
		{"trailing header bytes", stream(frame(frameHeader, append(uvarints(1, 0, 0, 0, 0, 0), 0)), end), ErrCorruptSnapshot},
		{"end frame with bytes", stream(header(1, 0, 0, 0, 0), frame(frameEnd, []byte{0})), ErrCorruptSnapshot},
		{"sessions out of order", stream(header(1, 9, 2, 0, 2),
			frame(frameSessions, rec(sessionRecord("d", 0, 0, 1), sessionRecord("c", 0, 0, 2))), end), ErrCorruptSnapshot},
		{"touch shared", stream(header(1, 9, 2, 0, 2),
			frame(frameSessions, rec(sessionRecord("c", 0, 0, 1), sessionRecord("d", 0, 0, 1))), end), ErrCorruptSnapshot},
		{"touch above counter", stream(header(1, 9, 1, 0, 1), frame(frameSessions, sessionRecord("c", 0, 0, 2)), end), ErrCorruptSnapshot},
		{"last seen above clock", stream(header(1, 9, 1, 0, 1), frame(frameSessions, sessionRecord("c", 0, 5, 1)), end), ErrCorruptSnapshot},
		{"result below acked", stream(header(1, 9, 1, 0, 1),
			frame(frameSessions, sessionRecord("c", 5, 0, 1, []byte{4, 2, 2, 0})), end), ErrCorruptSnapshot},
		{"results out of order", stream(header(1, 9, 1, 0, 1),
			frame(frameSessions, sessionRecord("c", 0, 0, 1, []byte{4, 2, 2, 0}, []byte{3, 3, 3, 0})), end), ErrCorruptSnapshot},
		{"result index above applied", stream(header(1, 9, 1, 0, 1),
			frame(frameSessions, sessionRecord("c", 0, 0, 1, []byte{4, 10, 2, 0})), end), ErrCorruptSnapshot},
		{"unknown result flag", stream(header(1, 9, 1, 0, 1),
			frame(frameSessions, sessionRecord("c", 0, 0, 1, []byte{4, 2, 2, 16})), end), ErrCorruptSnapshot},
		{"huge result count", stream(header(1, 9, 1, 0, 1),
			frame(frameSessions, append(sessionRecord("c", 0, 0, 1)[:5], uvarints(1<<40)...)), end), ErrCorruptSnapshot},
		{"huge frame length", append(stream(), frameHeaderOnly(frameHeader, 1<<31)...), ErrCorruptSnapshot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := NewStateMachine(Config{})
			err := sm.Restore(bytes.NewReader(tc.in))
			if tc.wantErr == nil && err != nil {
				t.Fatalf("Restore(%x) = %v; want nil", head(tc.in), err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Restore(%x) = %v; want %v", head(tc.in), err, tc.wantErr)
			}
			if err != nil && (sm.AppliedIndex() != 0 || sm.Len() != 0) {
				t.Errorf("failed Restore left AppliedIndex() %d, Len() %d; want 0, 0", sm.AppliedIndex(), sm.Len())
			}
		})
	}
}

// frameHeaderOnly returns a frame prefix announcing n bytes, and nothing
// after it.
func frameHeaderOnly(kind byte, n uint32) []byte {
	return append([]byte{kind}, binary.LittleEndian.AppendUint32(nil, n)...)
}

func TestRestoreChecksLRUOrder(t *testing.T) {
	// d was touched after c but seen earlier: expiry would stop at c and
	// keep d forever.
	in := stream(frame(frameHeader, append(append(uvarints(1, 9), binary.AppendVarint(nil, 10)...), uvarints(2, 0, 2)...)),
		frame(frameSessions, bytes.Join([][]byte{sessionRecord("c", 0, 10, 1), sessionRecord("d", 0, 5, 2)}, nil)),
		frame(frameEnd, nil))
	if err := NewStateMachine(Config{}).Restore(bytes.NewReader(in)); !errors.Is(err, ErrCorruptSnapshot) {
		t.Errorf("Restore of sessions whose last-seen order contradicts their touch order = %v; want ErrCorruptSnapshot", err)
	}
}

func FuzzRestore(f *testing.F) {
	f.Add(snapshotBytes(f, sampleState(f, 5)))
	f.Add(snapshotBytes(f, NewStateMachine(Config{})))
	f.Fuzz(func(t *testing.T, b []byte) {
		sm := NewStateMachine(Config{})
		sm.Apply(1, put("k", "v"))
		if err := sm.Restore(bytes.NewReader(b)); err != nil {
			if !errors.Is(err, ErrCorruptSnapshot) && !errors.Is(err, ErrSnapshotVersion) {
				t.Fatalf("Restore error %v; want ErrCorruptSnapshot or ErrSnapshotVersion", err)
			}
			if sm.AppliedIndex() != 1 || sm.Len() != 1 {
				t.Fatalf("failed Restore changed the state: AppliedIndex() %d, Len() %d", sm.AppliedIndex(), sm.Len())
			}
			return
		}
		// Whatever was accepted snapshots and restores to the same bytes.
		again := snapshotBytes(t, sm)
		sm2 := NewStateMachine(Config{})
		if err := sm2.Restore(bytes.NewReader(again)); err != nil {
			t.Fatalf("Restore of a re-taken snapshot: %v", err)
		}
		if !bytes.Equal(snapshotBytes(t, sm2), again) {
			t.Fatalf("re-taken snapshot does not round-trip")
		}
		sm.Apply(sm.AppliedIndex()+1, cput("c", 1, 0, 1, "k", "v"))
	})
}

func BenchmarkSnapshot(b *testing.B) {
	sm, _ := loaded(100_000, 256)
	data := snapshotBytes(b, sm)
	b.Run("take", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			snap, _ := sm.Snapshot()
			snap.Release()
		}
	})
	b.Run("write", func(b *testing.B) {
		snap, _ := sm.Snapshot()
		defer snap.Release()
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			if _, err := snap.WriteTo(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("restore", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			if err := NewStateMachine(Config{}).Restore(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
