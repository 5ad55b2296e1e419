package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// Writer writes a backup file: NewWriter, then for each shard of the source
// cluster in ascending order BeginShard, Add for each key in ascending key
// order, EndShard; then Close. It is not safe for concurrent use. After
// the first error every method returns it again.
type Writer struct {
	w   io.Writer
	sum hash.Hash // SHA-256 of everything written
	n   int64
	err error
	buf []byte // the frame being assembled

	hdr   Header
	shard *ShardBegin // the open shard, nil between shards
	next  uint32      // the shard ID expected next
	last  []byte      // the open shard's last key
	// Counts of the open shard and of the file.
	shardRecords, shardBytes uint64
	shardCRC                 uint32
	records, bytes           uint64
	shards                   []ShardSummary
	sha                      [sha256.Size]byte
}

// NewWriter writes the file's magic, version and header to w.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if h.ShardCount == 0 || h.ShardCount > maxShards {
		return nil, fmt.Errorf("backup: shard count %d: want 1..%d", h.ShardCount, maxShards)
	}
	bw := &Writer{w: w, sum: sha256.New(), hdr: h, buf: make([]byte, 0, recordsTarget+recordsTarget/4)}
	var head [len(Magic) + 2]byte
	copy(head[:], Magic)
	binary.LittleEndian.PutUint16(head[len(Magic):], Version)
	bw.write(head[:])
	bw.begin(frameHeader)
	bw.buf = binary.AppendUvarint(bw.buf, uint64(h.ShardCount))
	bw.buf = binary.AppendVarint(bw.buf, h.Created.UnixNano())
	bw.end()
	return bw, bw.err
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.sum.Write(b[:n])
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("backup: write at byte %d: %w", w.n, err)
	}
}

func (w *Writer) begin(kind byte) {
	w.buf = append(w.buf[:0], kind, 0, 0, 0, 0)
}

func (w *Writer) end() {
	binary.LittleEndian.PutUint32(w.buf[1:framePrefix], uint32(len(w.buf)-framePrefix))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, crc32.Checksum(w.buf, castagnoli))
	w.write(w.buf)
	w.buf = w.buf[:0]
}

func (w *Writer) fail(format string, args ...any) error {
	if w.err == nil {
		w.err = fmt.Errorf("backup: "+format, args...)
	}
	return w.err
}

// BeginShard opens the part of shard b.ID, which must be the next shard:
// 0 first, then each ID after the previous one.
func (w *Writer) BeginShard(b ShardBegin) error {
	switch {
	case w.err != nil:
		return w.err
	case w.shard != nil:
		return w.fail("shard %d begun before shard %d ended", b.ID, w.shard.ID)
	case b.ID != w.next || b.ID >= w.hdr.ShardCount:
		return w.fail("shard %d begun; want shard %d of %d", b.ID, w.next, w.hdr.ShardCount)
	}
	w.shard = &b
	w.last = nil
	w.shardRecords, w.shardBytes, w.shardCRC = 0, 0, 0
	w.begin(frameBegin)
	w.buf = binary.AppendUvarint(w.buf, uint64(b.ID))
	w.buf = binary.AppendUvarint(w.buf, b.Index)
	w.buf = binary.AppendVarint(w.buf, b.TakenAt.UnixNano())
	w.end()
	w.begin(frameRecords)
	return w.err
}

// Add adds a record to the open shard. Keys must be non-empty and ascend.
func (w *Writer) Add(r Record) error {
	switch {
	case w.err != nil:
		return w.err
	case w.shard == nil:
		return w.fail("record %q outside a shard", r.Key)
	case len(r.Key) == 0:
		return w.fail("shard %d: empty key", w.shard.ID)
	case w.last != nil && bytes.Compare(w.last, r.Key) >= 0:
		return w.fail("shard %d: key %q after %q: keys must ascend", w.shard.ID, r.Key, w.last)
	}
	w.last = append(w.last[:0], r.Key...)
	start := len(w.buf)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(r.Key)))
	w.buf = append(w.buf, r.Key...)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(r.Value)))
	w.buf = append(w.buf, r.Value...)
	w.buf = binary.AppendUvarint(w.buf, ttlMillis(r.TTL))
	w.shardCRC = crc32.Update(w.shardCRC, castagnoli, w.buf[start:])
	w.shardRecords++
	w.shardBytes += uint64(len(r.Key) + len(r.Value))
	if len(w.buf)-framePrefix >= recordsTarget {
		w.end()
		w.begin(frameRecords)
	}
	return w.err
}

// EndShard closes the open shard.
func (w *Writer) EndShard() error {
	if w.err != nil {
		return w.err
	}
	if w.shard == nil {
		return w.fail("EndShard with no shard begun")
	}
	if len(w.buf) > framePrefix {
		w.end()
	}
	w.begin(frameEnd)
	w.buf = binary.AppendUvarint(w.buf, uint64(w.shard.ID))
	w.buf = binary.AppendUvarint(w.buf, w.shardRecords)
	w.buf = binary.AppendUvarint(w.buf, w.shardBytes)
	w.buf = binary.LittleEndian.AppendUint32(w.buf, w.shardCRC)
	w.end()
	w.records += w.shardRecords
	w.bytes += w.shardBytes
	w.shards = append(w.shards, ShardSummary{ShardBegin: *w.shard, Records: w.shardRecords, Bytes: w.shardBytes, CRC: w.shardCRC})
	w.next = w.shard.ID + 1
	w.shard = nil
	return w.err
}

// Close writes the trailer, which makes the file complete. Every shard of
// the header's count must have been written. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.shard != nil {
		return w.fail("Close with shard %d open", w.shard.ID)
	}
	if w.next != w.hdr.ShardCount {
		return w.fail("Close after %d of %d shards", w.next, w.hdr.ShardCount)
	}
	w.sum.Sum(w.sha[:0])
	w.begin(frameTrailer)
	w.buf = binary.AppendUvarint(w.buf, uint64(w.next))
	w.buf = binary.AppendUvarint(w.buf, w.records)
	w.buf = binary.AppendUvarint(w.buf, w.bytes)
	w.buf = append(w.buf, w.sha[:]...)
	w.end()
	if w.err == nil {
		w.err = errClosed
		return nil
	}
	return w.err
}

var errClosed = errors.New("backup: writer closed")

// Summary describes what was written so far: after Close, the whole file,
// as Verify would report it.
func (w *Writer) Summary() *Summary {
	return &Summary{Header: w.hdr, Version: Version, Shards: append([]ShardSummary(nil), w.shards...),
		Records: w.records, Bytes: w.bytes, FileBytes: w.n, SHA256: w.sha}
}

// Written returns the bytes written so far.
func (w *Writer) Written() int64 { return w.n }
