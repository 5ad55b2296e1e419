package raftstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// logEncodingV1 is the first byte of every encoded log entry; see the
// package doc for the layout.
const logEncodingV1 = 0x01

// encodedLogLen returns an upper bound of the length appendLog adds.
func encodedLogLen(l *raft.Log) int {
	return 1 + 1 + binary.MaxVarintLen64 + // version, type, term
		1 + 2*binary.MaxVarintLen64 + // appendedAt
		binary.MaxVarintLen64 + len(l.Data) +
		binary.MaxVarintLen64 + len(l.Extensions)
}

// appendLog appends the encoding of l, without its index, to b.
func appendLog(b []byte, l *raft.Log) []byte {
	b = append(b, logEncodingV1, byte(l.Type))
	b = binary.AppendUvarint(b, l.Term)
	if l.AppendedAt.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendVarint(b, l.AppendedAt.Unix())
		b = binary.AppendUvarint(b, uint64(l.AppendedAt.Nanosecond()))
	}
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	b = append(b, l.Extensions...)
	return b
}

// decodeLog fills every field of l from its index and encoding. Data and
// Extensions are copied out of b (one allocation for both), so b may be
// memory that bolt owns.
func decodeLog(index uint64, b []byte, l *raft.Log) error {
	return decodeLogCopy(index, b, l, true)
}

// decodeLogOwned is decodeLog for a b the caller gives away: Data and
// Extensions point into it.
func decodeLogOwned(index uint64, b []byte, l *raft.Log) error {
	return decodeLogCopy(index, b, l, false)
}

func decodeLogCopy(index uint64, b []byte, l *raft.Log, copyOut bool) error {
	d := decoder{b: b}
	if v := d.byte(); v != logEncodingV1 {
		return fmt.Errorf("%w: index %d: unknown encoding %#x", ErrCorrupt, index, v)
	}
	typ := raft.LogType(d.byte())
	term := d.uvarint()
	var at time.Time
	switch d.byte() {
	case 0:
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.fail()
		}
		at = time.Unix(sec, int64(nsec)).UTC()
	default:
		d.fail()
	}
	data := d.bytes()
	ext := d.bytes()
	if d.err || len(d.b) != 0 {
		return fmt.Errorf("%w: index %d: malformed entry (%d bytes)", ErrCorrupt, index, len(b))
	}
	*l = raft.Log{Index: index, Term: term, Type: typ, AppendedAt: at}
	if !copyOut {
		if len(data) > 0 {
			l.Data = data[:len(data):len(data)]
		}
		if len(ext) > 0 {
			l.Extensions = ext[:len(ext):len(ext)]
		}
		return nil
	}
	if n := len(data) + len(ext); n > 0 {
		buf := make([]byte, n)
		copy(buf, data)
		copy(buf[len(data):], ext)
		if len(data) > 0 {
			l.Data = buf[:len(data):len(data)]
		}
		if len(ext) > 0 {
			l.Extensions = buf[len(data):]
		}
	}
	return nil
}

// decoder reads the fields of an encoded entry; after the first short or
// malformed field err is set and every read returns zero.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) fail() { d.err, d.b = true, nil }

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// putUint64 returns v as 8 bytes big-endian: the form of log keys, group
// bucket names and SetUint64 values.
func putUint64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}
