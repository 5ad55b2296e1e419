package backup

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// testFile writes a file of shards shards, shard i holding i*perShard keys
// (so shard 0 is empty), one of them with a TTL and, with big, one with a
// value larger than a records frame.
func testFile(t *testing.T, shards, perShard int, big bool) ([]byte, map[string]Record) {
	t.Helper()
	var buf bytes.Buffer
	created := time.Unix(1_700_000_000, 0)
	w, err := NewWriter(&buf, Header{ShardCount: uint32(shards), Created: created})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Record{}
	for s := range shards {
		if err := w.BeginShard(ShardBegin{ID: uint32(s), Index: uint64(100 + s), TakenAt: created}); err != nil {
			t.Fatal(err)
		}
		for k := range s * perShard {
			r := Record{Key: fmt.Appendf(nil, "s%02d/k%05d", s, k), Value: fmt.Appendf(nil, "v%d", k)}
			if k == 1 {
				r.TTL = 90 * time.Second
			}
			if k == 2 && big {
				r.Value = bytes.Repeat([]byte("x"), recordsTarget+10)
			}
			if err := w.Add(r); err != nil {
				t.Fatal(err)
			}
			want[string(r.Key)] = r
		}
		if err := w.EndShard(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != int64(buf.Len()) {
		t.Fatalf("Written() = %d; wrote %d bytes", w.Written(), buf.Len())
	}
	// The writer's summary is the one a reader finds.
	got, err := Verify(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("Verify of a written file: %v", err)
	}
	ws := w.Summary()
	if ws.SHA256 != got.SHA256 || ws.FileBytes != got.FileBytes || ws.Records != got.Records ||
		len(ws.Shards) != len(got.Shards) || (len(ws.Shards) > 0 && ws.Shards[len(ws.Shards)-1] != got.Shards[len(got.Shards)-1]) {
		t.Fatalf("writer's summary %+v; reader's %+v", ws, got)
	}
	return buf.Bytes(), want
}

func TestRoundTrip(t *testing.T) {
	file, want := testFile(t, 4, 50, true)
	got := map[string]Record{}
	sum, err := Read(bytes.NewReader(file), func(b ShardBegin, recs []Record) error {
		for _, r := range recs {
			got[string(r.Key)] = Record{Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value), TTL: r.TTL}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records; want %d", len(got), len(want))
	}
	for k, w := range want {
		g := got[k]
		if !bytes.Equal(g.Value, w.Value) || g.TTL != w.TTL {
			t.Fatalf("record %q = %d bytes, TTL %v; want %d bytes, TTL %v", k, len(g.Value), g.TTL, len(w.Value), w.TTL)
		}
	}
	if sum.ShardCount != 4 || len(sum.Shards) != 4 || sum.Records != uint64(len(want)) || sum.FileBytes != int64(len(file)) {
		t.Fatalf("summary = %d shards (%d listed), %d records, %d bytes; want 4, 4, %d, %d",
			sum.ShardCount, len(sum.Shards), sum.Records, sum.FileBytes, len(want), len(file))
	}
	if sum.Shards[0].Records != 0 || sum.Shards[3].Records != 150 || sum.Shards[2].Index != 102 {
		t.Fatalf("shards = %+v", sum.Shards)
	}
	if !sum.Created.Equal(time.Unix(1_700_000_000, 0)) {
		t.Fatalf("created = %v", sum.Created)
	}
}

// Every truncation of a file is refused as ErrCorrupt (or ErrNotBackup when
// not even the magic is left).
func TestTruncatedFileRefused(t *testing.T) {
	file, _ := testFile(t, 3, 20, false)
	for n := range len(file) {
		if n > 300 && n < len(file)-300 && n%1009 != 0 {
			continue // the middle is large: sample it
		}
		_, err := Verify(bytes.NewReader(file[:n]))
		if n < len(Magic) {
			if !errors.Is(err, ErrNotBackup) {
				t.Fatalf("first %d bytes: %v; want ErrNotBackup", n, err)
			}
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("first %d of %d bytes: %v; want ErrCorrupt", n, len(file), err)
		}
	}
	_, err := Verify(bytes.NewReader(file[:len(file)-1]))
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("a file missing its last byte: %v; want it called truncated", err)
	}
}

// Any flipped byte is refused, never read as a different valid file.
func TestFlippedByteRefused(t *testing.T) {
	file, _ := testFile(t, 3, 20, false)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		i := rng.IntN(len(file))
		bad := bytes.Clone(file)
		bad[i] ^= byte(1 + rng.IntN(255))
		_, err := Verify(bytes.NewReader(bad))
		if err == nil {
			t.Fatalf("byte %d flipped: Verify succeeded", i)
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotBackup) && !errors.Is(err, ErrVersion) {
			t.Fatalf("byte %d flipped: %v; want ErrCorrupt, ErrNotBackup or ErrVersion", i, err)
		}
	}
}

func TestForeignAndFutureFilesRefused(t *testing.T) {
	if _, err := Verify(strings.NewReader("RKVSHARD\x02 this is a shard snapshot")); !errors.Is(err, ErrNotBackup) {
		t.Fatalf("foreign file: %v; want ErrNotBackup", err)
	}
	if _, err := Verify(strings.NewReader("")); !errors.Is(err, ErrNotBackup) {
		t.Fatalf("empty file: %v; want ErrNotBackup", err)
	}
	file, _ := testFile(t, 1, 1, false)
	future := bytes.Clone(file)
	future[len(Magic)] = Version + 1
	_, err := Verify(bytes.NewReader(future))
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "2; this build reads version 1") {
		t.Fatalf("version 2 file: %v; want ErrVersion naming both versions", err)
	}
	if _, err := Verify(bytes.NewReader(append(bytes.Clone(file), 0))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a byte after the trailer: %v; want ErrCorrupt", err)
	}
}

// Frames that are each intact but do not make a whole file are refused:
// a shard left out, or the file cut at a frame boundary.
func TestMissingShardRefused(t *testing.T) {
	file, _ := testFile(t, 3, 2, false)
	// Cut out shard 1 (its begin, records and end frames).
	frames := splitFrames(t, file)
	var cut []byte
	cut = append(cut, file[:len(Magic)+2]...)
	for _, f := range frames {
		if f.kind >= frameBegin && f.kind <= frameEnd && f.shard == 1 {
			continue
		}
		cut = append(cut, f.raw...)
	}
	if _, err := Verify(bytes.NewReader(cut)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "shard 2; want shard 1") {
		t.Fatalf("file without shard 1: %v; want ErrCorrupt naming the missing shard", err)
	}
	// Cut right before the trailer: every frame intact, no trailer.
	last := frames[len(frames)-1]
	if _, err := Verify(bytes.NewReader(file[:len(file)-len(last.raw)])); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("file without its trailer: %v; want ErrCorrupt", err)
	}
}

type rawFrame struct {
	kind  byte
	shard int
	raw   []byte
}

func splitFrames(t *testing.T, file []byte) []rawFrame {
	t.Helper()
	var out []rawFrame
	shard := -1
	for off := len(Magic) + 2; off < len(file); {
		n := int(uint32(file[off+1]) | uint32(file[off+2])<<8 | uint32(file[off+3])<<16 | uint32(file[off+4])<<24)
		end := off + framePrefix + n + frameChecksum
		f := rawFrame{kind: file[off], raw: file[off:end]}
		if f.kind == frameBegin {
			shard++
		}
		f.shard = shard
		out = append(out, f)
		off = end
	}
	return out
}

// The writer refuses what the reader would refuse.
func TestWriterRefusesBadInput(t *testing.T) {
	var buf bytes.Buffer
	if _, err := NewWriter(&buf, Header{}); err == nil {
		t.Fatal("NewWriter with shard count 0 succeeded")
	}
	w, _ := NewWriter(&buf, Header{ShardCount: 2})
	if err := w.BeginShard(ShardBegin{ID: 1}); err == nil {
		t.Fatal("BeginShard(1) first succeeded")
	}
	w, _ = NewWriter(&buf, Header{ShardCount: 2})
	w.BeginShard(ShardBegin{ID: 0})
	w.Add(Record{Key: []byte("b")})
	if err := w.Add(Record{Key: []byte("a")}); err == nil {
		t.Fatal("Add of a key below the last succeeded")
	}
	w, _ = NewWriter(&buf, Header{ShardCount: 2})
	w.BeginShard(ShardBegin{ID: 0})
	w.EndShard()
	if err := w.Close(); err == nil {
		t.Fatal("Close after 1 of 2 shards succeeded")
	}
}
