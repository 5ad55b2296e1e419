package raftstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/hashicorp/raft"
)

// The WAL's on-disk format; see the package doc, section "The WAL".
//
// A segment file is a header followed by frames, one per commit (batch):
//
//	header   "RKVWAL" 0x00 0x01 (8 bytes), segment sequence (8 bytes BE)
//	frame    crc (4 bytes LE) | len (4 bytes LE) | records (len bytes)
//	record   len (4 bytes LE) | body (len bytes)
//
// crc is the CRC-32C (Castagnoli) of len and records together. A body is a
// type byte, then fields (integers uvarint unless said):
//
//	walEntries      group, count, then count times:
//	                  index, n (4 bytes LE), value (n bytes, see appendLog)
//	walDeleteRange  group, min, max
//	walSet          group, len(key), key, len(val), val
//	walDeleteGroup  group
//	walCheckpoint   count of groups, then for each group:
//	                  group, count of ranges, (first, last) per range,
//	                  count of keys, (len(key), key, len(val), val) per key
//
// One write request (one StoreLogs call, for one) is one record; a frame
// is all or nothing.

var walMagic = [8]byte{'R', 'K', 'V', 'W', 'A', 'L', 0x00, 0x01}

const (
	walHeaderLen = 16
	walFrameHdr  = 8
	walRecordHdr = 4
	// walMaxFrame bounds a frame's records; len is 4 bytes.
	walMaxFrame = math.MaxUint32
)

// walMaxRecord bounds a record, header included, so that it fits in a
// frame. A variable for tests.
var walMaxRecord = walMaxFrame

const (
	walEntries byte = iota + 1
	walDeleteRange
	walSet
	walDeleteGroup
	walCheckpoint
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walRecord is a decoded record. Slices point into the frame they were
// decoded from.
type walRecord struct {
	typ      byte
	group    uint64
	entries  []walEntryRef // walEntries
	min, max uint64        // walDeleteRange
	key, val []byte        // walSet
	groups   []walCheckpointGroup
}

// walEntryRef locates one entry's value within its record.
type walEntryRef struct {
	index uint64
	off   uint32 // from the start of the record (its header)
	n     uint32
}

type walCheckpointGroup struct {
	group  uint64
	ranges [][2]uint64
	keys   []kv
}

func appendSegmentHeader(b []byte, seq uint64) []byte {
	b = append(b, walMagic[:]...)
	return binary.BigEndian.AppendUint64(b, seq)
}

// recordStart appends the placeholder header of a record and its type;
// recordEnd fills the header in once the body is complete.
func recordStart(b []byte, typ byte) []byte {
	return append(b, 0, 0, 0, 0, typ)
}

func recordEnd(b []byte, start int) error {
	if len(b)-start > walMaxRecord {
		return fmt.Errorf("raftstore: wal record of %d bytes is too large", len(b)-start)
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-walRecordHdr))
	return nil
}

// sealFrame fills in the header of the frame that starts at b[start],
// whose records follow the walFrameHdr bytes reserved for it.
func sealFrame(b []byte, start int) {
	binary.LittleEndian.PutUint32(b[start+4:], uint32(len(b)-start-walFrameHdr))
	binary.LittleEndian.PutUint32(b[start:], crc32.Checksum(b[start+4:], castagnoli))
}

// appendEntriesRecord appends the record of logs in group, and fills refs
// with where each value is, relative to the record's start.
func appendEntriesRecord(b []byte, group uint64, logs []*raft.Log, refs []walEntryRef) ([]byte, error) {
	start := len(b)
	b = recordStart(b, walEntries)
	b = binary.AppendUvarint(b, group)
	b = binary.AppendUvarint(b, uint64(len(logs)))
	for i, l := range logs {
		b = binary.AppendUvarint(b, l.Index)
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		b = appendLog(b, l)
		n := len(b) - at - 4
		binary.LittleEndian.PutUint32(b[at:], uint32(n))
		if len(b)-start > walMaxRecord {
			return nil, fmt.Errorf("raftstore: wal record of more than %d bytes is too large", walMaxRecord)
		}
		refs[i] = walEntryRef{index: l.Index, off: uint32(at + 4 - start), n: uint32(n)}
	}
	return b, recordEnd(b, start)
}

// appendCopiedEntriesRecord appends a walEntries record of group's
// entries at locs, their values read from their segments, and fills refs
// as appendEntriesRecord does.
func appendCopiedEntriesRecord(b []byte, group uint64, locs []entryLoc, refs []walEntryRef) ([]byte, error) {
	start := len(b)
	b = recordStart(b, walEntries)
	b = binary.AppendUvarint(b, group)
	b = binary.AppendUvarint(b, uint64(len(locs)))
	for i, e := range locs {
		b = binary.AppendUvarint(b, e.index)
		b = binary.LittleEndian.AppendUint32(b, e.n)
		at := len(b)
		b = append(b, make([]byte, e.n)...)
		if _, err := e.seg.f.ReadAt(b[at:], e.off); err != nil {
			return nil, fmt.Errorf("raftstore: wal: copying entry %d of group %d: %w", e.index, group, err)
		}
		if len(b)-start > walMaxRecord {
			return nil, fmt.Errorf("raftstore: wal record of more than %d bytes is too large", walMaxRecord)
		}
		refs[i] = walEntryRef{index: e.index, off: uint32(at - start), n: e.n}
	}
	return b, recordEnd(b, start)
}

func appendDeleteRangeRecord(b []byte, group, min, max uint64) []byte {
	start := len(b)
	b = recordStart(b, walDeleteRange)
	b = binary.AppendUvarint(b, group)
	b = binary.AppendUvarint(b, min)
	b = binary.AppendUvarint(b, max)
	recordEnd(b, start) // small: cannot fail
	return b
}

func appendSetRecord(b []byte, group uint64, key, val []byte) ([]byte, error) {
	start := len(b)
	b = recordStart(b, walSet)
	b = binary.AppendUvarint(b, group)
	b = appendBytes(b, key)
	b = appendBytes(b, val)
	return b, recordEnd(b, start)
}

func appendDeleteGroupRecord(b []byte, group uint64) []byte {
	start := len(b)
	b = recordStart(b, walDeleteGroup)
	b = binary.AppendUvarint(b, group)
	recordEnd(b, start)
	return b
}

func appendCheckpointRecord(b []byte, groups []walCheckpointGroup) ([]byte, error) {
	start := len(b)
	b = recordStart(b, walCheckpoint)
	b = binary.AppendUvarint(b, uint64(len(groups)))
	for _, g := range groups {
		b = binary.AppendUvarint(b, g.group)
		b = binary.AppendUvarint(b, uint64(len(g.ranges)))
		for _, r := range g.ranges {
			b = binary.AppendUvarint(b, r[0])
			b = binary.AppendUvarint(b, r[1])
		}
		b = binary.AppendUvarint(b, uint64(len(g.keys)))
		for _, e := range g.keys {
			b = appendBytes(b, e.k)
			b = appendBytes(b, e.v)
		}
	}
	return b, recordEnd(b, start)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// frameStatus says what readFrame found.
type frameStatus int

const (
	frameOK     frameStatus = iota
	frameNone               // no bytes left: a clean end
	frameTorn               // a header cut short, zeroed, or claiming bytes past the end
	frameBadCRC             // a complete frame whose CRC does not match
)

// readFrame reads the frame at the start of b. It returns the frame's
// total length and its records.
func readFrame(b []byte) (n int, records []byte, st frameStatus) {
	if len(b) == 0 {
		return 0, nil, frameNone
	}
	if len(b) < walFrameHdr {
		return 0, nil, frameTorn
	}
	l := binary.LittleEndian.Uint32(b[4:])
	if l == 0 || uint64(l) > uint64(len(b)-walFrameHdr) {
		return 0, nil, frameTorn
	}
	n = walFrameHdr + int(l)
	if crc32.Checksum(b[4:n], castagnoli) != binary.LittleEndian.Uint32(b) {
		return n, nil, frameBadCRC
	}
	return n, b[walFrameHdr:n], frameOK
}

// nextRecord splits the first record off records, the records of a frame
// whose CRC matched. It returns the record (header included) and the rest.
func nextRecord(records []byte) (rec, rest []byte, err error) {
	if len(records) < walRecordHdr {
		return nil, nil, fmt.Errorf("%w: wal record header cut short", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(records)
	if uint64(n) > uint64(len(records)-walRecordHdr) {
		return nil, nil, fmt.Errorf("%w: wal record of %d bytes overruns its frame", ErrCorrupt, n)
	}
	end := walRecordHdr + int(n)
	return records[:end], records[end:], nil
}

// decodeRecord decodes rec, a record (header included) from a frame whose
// CRC matched. An error means the WAL holds something this package did not
// write. Slices of the result point into rec.
func decodeRecord(rec []byte) (walRecord, error) {
	if len(rec) < walRecordHdr || binary.LittleEndian.Uint32(rec) != uint32(len(rec)-walRecordHdr) {
		return walRecord{}, fmt.Errorf("%w: malformed wal record header", ErrCorrupt)
	}
	body := rec[walRecordHdr:]
	d := decoder{b: body}
	r := walRecord{typ: d.byte()}
	switch r.typ {
	case walEntries:
		r.group = d.uvarint()
		count := d.uvarint()
		// Each entry takes at least 5 bytes: bound count before allocating.
		if count > uint64(len(d.b))/5 {
			d.fail()
			break
		}
		r.entries = make([]walEntryRef, count)
		for i := range r.entries {
			idx := d.uvarint()
			if len(d.b) < 4 {
				d.fail()
				break
			}
			n := binary.LittleEndian.Uint32(d.b)
			d.b = d.b[4:]
			if uint64(n) > uint64(len(d.b)) {
				d.fail()
				break
			}
			off := len(rec) - len(d.b)
			d.b = d.b[n:]
			r.entries[i] = walEntryRef{index: idx, off: uint32(off), n: n}
		}
	case walDeleteRange:
		r.group = d.uvarint()
		r.min = d.uvarint()
		r.max = d.uvarint()
	case walSet:
		r.group = d.uvarint()
		r.key = d.bytes()
		r.val = d.bytes()
		if len(r.key) == 0 {
			d.fail()
		}
	case walDeleteGroup:
		r.group = d.uvarint()
	case walCheckpoint:
		count := d.uvarint()
		if count > uint64(len(d.b))/3 {
			d.fail()
			break
		}
		r.groups = make([]walCheckpointGroup, 0, count)
		for range count {
			g := walCheckpointGroup{group: d.uvarint()}
			nr := d.uvarint()
			if nr > uint64(len(d.b))/2 {
				d.fail()
				break
			}
			for range nr {
				g.ranges = append(g.ranges, [2]uint64{d.uvarint(), d.uvarint()})
			}
			nk := d.uvarint()
			if nk > uint64(len(d.b))/2 {
				d.fail()
				break
			}
			for range nk {
				k := d.bytes()
				v := d.bytes()
				if len(k) == 0 {
					d.fail()
				}
				g.keys = append(g.keys, kv{k, v})
			}
			if d.err {
				break
			}
			r.groups = append(r.groups, g)
		}
	default:
		d.fail()
	}
	if d.err || len(d.b) != 0 {
		return walRecord{}, fmt.Errorf("%w: malformed wal record of type %d (%d bytes)", ErrCorrupt, r.typ, len(body))
	}
	return r, nil
}
