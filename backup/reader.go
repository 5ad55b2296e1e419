package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"time"
)

// Verify reads a whole file from r and checks every checksum, count and
// rule of the format. It returns the file's summary, or an error wrapping
// ErrNotBackup, ErrVersion or ErrCorrupt (or r's own) that says where and
// what.
func Verify(r io.Reader) (*Summary, error) { return Read(r, nil) }

// Read reads a whole file from r like Verify and calls fn, when not nil,
// with the records of each records frame in file order, after the frame's
// checksum held; the records are valid only during the call. An error from
// fn stops Read and is returned.
//
// Read calls fn before it has seen the rest of the file: to act only on a
// whole, valid file, Verify it first.
func Read(r io.Reader, fn func(ShardBegin, []Record) error) (*Summary, error) {
	fr := &frameReader{r: bufio.NewReaderSize(r, 64<<10), sum: sha256.New()}
	sum, err := fr.readFile(fn)
	if err != nil {
		return nil, err
	}
	return sum, nil
}

// frameReader reads and checks frames, hashing every byte it reads.
type frameReader struct {
	r       *bufio.Reader
	sum     hash.Hash
	off     int64 // file offset of the next byte
	payload bytes.Buffer
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

func (fr *frameReader) readFull(b []byte) error {
	n, err := io.ReadFull(fr.r, b)
	fr.sum.Write(b[:n])
	fr.off += int64(n)
	return eofIsTruncated(err, fr.off)
}

// eofIsTruncated turns an early end of the file into ErrCorrupt.
func eofIsTruncated(err error, off int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("truncated: the file ends at byte %d, before its trailer", off)
	}
	return err
}

// next reads one frame. The payload is valid until the following call.
// The SHA-256 state before the frame is returned too, for the trailer.
func (fr *frameReader) next() (kind byte, payload []byte, start int64, before [sha256.Size]byte, err error) {
	start = fr.off
	fr.sum.Sum(before[:0])
	var prefix [framePrefix]byte
	if err := fr.readFull(prefix[:]); err != nil {
		return 0, nil, start, before, err
	}
	n := int64(binary.LittleEndian.Uint32(prefix[1:]))
	fr.payload.Reset()
	// Copy rather than allocate n up front: a damaged length must not
	// allocate more than the file holds.
	got, err := io.CopyN(&fr.payload, fr.r, n)
	fr.sum.Write(fr.payload.Bytes())
	fr.off += got
	if err != nil {
		return 0, nil, start, before, eofIsTruncated(err, fr.off)
	}
	var sum [frameChecksum]byte
	if err := fr.readFull(sum[:]); err != nil {
		return 0, nil, start, before, err
	}
	crc := crc32.Update(crc32.Checksum(prefix[:], castagnoli), castagnoli, fr.payload.Bytes())
	if want := binary.LittleEndian.Uint32(sum[:]); crc != want {
		return 0, nil, start, before, corrupt("frame at byte %d: checksum %08x, want %08x", start, crc, want)
	}
	return prefix[0], fr.payload.Bytes(), start, before, nil
}

func (fr *frameReader) readFile(fn func(ShardBegin, []Record) error) (*Summary, error) {
	var head [len(Magic) + 2]byte
	n, err := io.ReadFull(fr.r, head[:])
	fr.sum.Write(head[:n])
	fr.off += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	if n < len(Magic) || string(head[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: it does not start with %q (first bytes %q)", ErrNotBackup, Magic, head[:min(n, len(Magic))])
	}
	if err != nil {
		return nil, eofIsTruncated(err, fr.off)
	}
	s := &Summary{Version: int(binary.LittleEndian.Uint16(head[len(Magic):]))}
	if s.Version != Version {
		return nil, fmt.Errorf("%w: %d; this build reads version %d", ErrVersion, s.Version, Version)
	}

	kind, p, start, _, err := fr.next()
	if err != nil {
		return nil, err
	}
	if kind != frameHeader {
		return nil, corrupt("frame at byte %d: kind %d, want the header", start, kind)
	}
	d := decoder{buf: p}
	count := d.uvarint("shard count")
	created := d.varint("creation time")
	if err := d.done("header"); err != nil {
		return nil, err
	}
	if count == 0 || count > maxShards {
		return nil, corrupt("header: shard count %d", count)
	}
	s.ShardCount, s.Created = uint32(count), time.Unix(0, created)

	for {
		kind, p, start, before, err := fr.next()
		if err != nil {
			return nil, err
		}
		d := decoder{buf: p}
		switch kind {
		case frameBegin:
			if err := fr.readShard(s, &d, start, fn); err != nil {
				return nil, err
			}
		case frameTrailer:
			shards := d.uvarint("shard count")
			records := d.uvarint("record count")
			data := d.uvarint("data bytes")
			var sum [sha256.Size]byte
			copy(sum[:], d.take("SHA-256", sha256.Size))
			if err := d.done("trailer"); err != nil {
				return nil, err
			}
			switch {
			case shards != uint64(len(s.Shards)) || shards != uint64(s.ShardCount):
				return nil, corrupt("trailer: %d shards; the file holds %d and its header says %d", shards, len(s.Shards), s.ShardCount)
			case records != s.Records || data != s.Bytes:
				return nil, corrupt("trailer: %d records of %d bytes; the shards hold %d of %d", records, data, s.Records, s.Bytes)
			case sum != before:
				return nil, corrupt("trailer: SHA-256 %x, but the file hashes to %x", sum, before)
			}
			s.SHA256 = sum
			var extra [1]byte
			if n, _ := io.ReadFull(fr.r, extra[:]); n > 0 {
				return nil, corrupt("bytes after the trailer at byte %d", fr.off)
			}
			s.FileBytes = fr.off
			return s, nil
		default:
			return nil, corrupt("frame at byte %d: kind %d, want a shard or the trailer", start, kind)
		}
	}
}

// readShard reads one shard's part, from its begin frame (in d) through its
// end frame.
func (fr *frameReader) readShard(s *Summary, d *decoder, start int64, fn func(ShardBegin, []Record) error) error {
	var sh ShardSummary
	id := d.uvarint("shard ID")
	sh.Index = d.uvarint("applied index")
	sh.TakenAt = time.Unix(0, d.varint("image time"))
	if err := d.done("shard begin"); err != nil {
		return err
	}
	if want := uint64(len(s.Shards)); id != want || id >= uint64(s.ShardCount) {
		return corrupt("frame at byte %d: shard %d; want shard %d of %d", start, id, want, s.ShardCount)
	}
	sh.ID = uint32(id)
	var last []byte
	var recs []Record
	for {
		kind, p, start, _, err := fr.next()
		if err != nil {
			return err
		}
		d := decoder{buf: p}
		switch kind {
		case frameRecords:
			sh.CRC = crc32.Update(sh.CRC, castagnoli, p)
			recs = recs[:0]
			for d.off < len(p) && d.err == nil {
				key := d.bytes("key")
				val := d.bytes("value")
				ttl := d.uvarint("TTL")
				if d.err != nil {
					break
				}
				switch {
				case len(key) == 0:
					return corrupt("shard %d, frame at byte %d: empty key", sh.ID, start)
				case last != nil && bytes.Compare(last, key) >= 0:
					return corrupt("shard %d, frame at byte %d: key %q after %q: out of order", sh.ID, start, key, last)
				case ttl > uint64(1<<63-1)/uint64(time.Millisecond):
					return corrupt("shard %d, key %q: TTL %d ms", sh.ID, key, ttl)
				}
				last = append(last[:0], key...)
				recs = append(recs, Record{Key: key, Value: val, TTL: time.Duration(ttl) * time.Millisecond})
				sh.Records++
				sh.Bytes += uint64(len(key) + len(val))
			}
			if d.err != nil {
				return corrupt("shard %d, frame at byte %d: %v", sh.ID, start, d.err)
			}
			if fn != nil && len(recs) > 0 {
				if err := fn(sh.ShardBegin, recs); err != nil {
					return err
				}
			}
		case frameEnd:
			id := d.uvarint("shard ID")
			records := d.uvarint("record count")
			data := d.uvarint("data bytes")
			var crc uint32
			if b := d.take("CRC-32C", 4); b != nil {
				crc = binary.LittleEndian.Uint32(b)
			}
			if err := d.done("shard end"); err != nil {
				return err
			}
			switch {
			case id != uint64(sh.ID):
				return corrupt("frame at byte %d: end of shard %d inside shard %d", start, id, sh.ID)
			case records != sh.Records || data != sh.Bytes:
				return corrupt("shard %d: %d records of %d bytes, its end frame says %d of %d", sh.ID, sh.Records, sh.Bytes, records, data)
			case crc != sh.CRC:
				return corrupt("shard %d: records CRC-32C %08x, its end frame says %08x", sh.ID, sh.CRC, crc)
			}
			s.Shards = append(s.Shards, sh)
			s.Records += sh.Records
			s.Bytes += sh.Bytes
			return nil
		default:
			return corrupt("shard %d, frame at byte %d: kind %d, want records or the shard's end", sh.ID, start, kind)
		}
	}
}

// decoder reads varints and byte strings from a payload; after the first
// error it reads nothing more.
type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		d.err = fmt.Errorf("bad %s at payload byte %d", what, d.off)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf[d.off:])
	if n <= 0 {
		d.err = fmt.Errorf("bad %s at payload byte %d", what, d.off)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) take(what string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.buf)-d.off {
		d.err = fmt.Errorf("%s of %d bytes at payload byte %d overruns the frame", what, n, d.off)
		return nil
	}
	b := d.buf[d.off : d.off+n]
	d.off += n
	return b
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what + " length")
	if n > uint64(len(d.buf)) {
		if d.err == nil {
			d.err = fmt.Errorf("%s of %d bytes overruns the frame", what, n)
		}
		return nil
	}
	return d.take(what, int(n))
}

// done checks that the whole payload was decoded.
func (d *decoder) done(what string) error {
	switch {
	case d.err != nil:
		return corrupt("%s: %v", what, d.err)
	case d.off != len(d.buf):
		return corrupt("%s: %d trailing bytes", what, len(d.buf)-d.off)
	}
	return nil
}
