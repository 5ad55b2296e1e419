package shard

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/google/btree"
)

// Constants of the snapshot stream format; see Snapshot.WriteTo.
const (
	snapshotMagic = "RKVSHARD"
	// snapshotVersion is the format WriteTo writes; Restore also reads
	// version 1, which had no key expiry.
	snapshotVersion = 2

	frameHeader   byte = 1
	frameData     byte = 2
	frameSessions byte = 3
	frameEnd      byte = 4

	frameTarget   = 64 << 10
	framePrefix   = 5 // kind + length
	frameChecksum = 4

	flagExisted   byte = 1
	flagDeleted   byte = 2
	flagTxn       byte = 4
	flagSucceeded byte = 8
	flagsKnown         = flagExisted | flagDeleted | flagTxn | flagSucceeded
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot is a point-in-time image of a StateMachine, taken cheaply and
// written out later: the state machine keeps applying meanwhile, sharing
// unchanged data with the snapshot copy-on-write.
//
// WriteTo and Index may be called any number of times, including concurrently
// with one another and with any use of the state machine, but not
// concurrently with Release.
type Snapshot struct {
	index    uint64
	clock    int64
	touches  uint64
	data     *btree.BTreeG[entry]
	sessions *btree.BTreeG[*session]
}

// Snapshot captures the current state. It returns quickly: it clones the
// data and session indexes in O(1) under the state machine's lock and leaves
// all encoding to WriteTo. The returned error is always nil today; it is
// there for implementations that may fail.
func (sm *StateMachine) Snapshot() (*Snapshot, error) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	st := sm.mu.sessions
	return &Snapshot{
		index:    sm.applied.Load(),
		clock:    st.clock,
		touches:  st.touches,
		data:     sm.mu.data.Clone(),
		sessions: st.share(),
	}, nil
}

// Index returns the applied index the snapshot was taken at.
func (s *Snapshot) Index() uint64 { return s.index }

// Release lets go of the snapshot's state; WriteTo fails after it. It is
// idempotent.
func (s *Snapshot) Release() {
	s.data, s.sessions = nil, nil
}

// WriteTo writes the snapshot to w and returns the bytes written; it
// implements io.WriterTo. Errors come from w, wrapped.
//
// The stream format, version 2 (version 1, still read, lacked the expiry):
//
//	8 bytes     magic "RKVSHARD"
//	frames      a header frame, data frames, session frames, an end frame
//
// Every frame is
//
//	1 byte      kind: 1 header, 2 data, 3 sessions, 4 end
//	4 bytes     payload length n, little-endian
//	n bytes     payload
//	4 bytes     CRC-32C (Castagnoli) of kind, length and payload, little-endian
//
// and the payloads, in the varints of the command format, are
//
//	header      uvarint format version (2), uvarint applied index,
//	            varint session clock, uvarint session touch counter,
//	            uvarint key count, uvarint session count
//	data        records in ascending key order, each: uvarint key length,
//	            key, uvarint version, uvarint create version, varint
//	            expiry (unix ns, 0 for none), uvarint value length, value
//	sessions    records in ascending client ID order, each: uvarint ID
//	            length, ID, uvarint acked-below, varint last seen, uvarint
//	            touch, uvarint result count, then per result in ascending
//	            seq order: uvarint seq, uvarint index, uvarint version,
//	            1 byte flags (1 existed, 2 deleted, 4 txn, 8 succeeded)
//	end         empty
//
// A frame holds whole records, about 64 KiB of them (more for one large
// record). The same state always yields the same bytes. Restore checks the
// order: a reordered, duplicated or missing record is rejected.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	if s.data == nil {
		return 0, ErrSnapshotReleased
	}
	fw := frameWriter{w: w}
	fw.write([]byte(snapshotMagic))

	fw.begin(frameHeader)
	fw.buf = binary.AppendUvarint(fw.buf, snapshotVersion)
	fw.buf = binary.AppendUvarint(fw.buf, s.index)
	fw.buf = binary.AppendVarint(fw.buf, s.clock)
	fw.buf = binary.AppendUvarint(fw.buf, s.touches)
	fw.buf = binary.AppendUvarint(fw.buf, uint64(s.data.Len()))
	fw.buf = binary.AppendUvarint(fw.buf, uint64(s.sessions.Len()))
	fw.end()

	fw.begin(frameData)
	s.data.Ascend(func(e entry) bool {
		fw.buf = appendBytes(fw.buf, e.key)
		fw.buf = binary.AppendUvarint(fw.buf, e.val.Version)
		fw.buf = binary.AppendUvarint(fw.buf, e.val.CreateVersion)
		fw.buf = binary.AppendVarint(fw.buf, e.val.ExpiresAt)
		fw.buf = appendBytes(fw.buf, e.val.Data)
		fw.maybeSplit()
		return fw.err == nil
	})
	fw.end()

	fw.begin(frameSessions)
	s.sessions.Ascend(func(ss *session) bool {
		fw.buf = appendBytes(fw.buf, ss.id)
		fw.buf = binary.AppendUvarint(fw.buf, ss.ackedBelow)
		fw.buf = binary.AppendVarint(fw.buf, ss.lastSeen)
		fw.buf = binary.AppendUvarint(fw.buf, ss.touch)
		fw.buf = binary.AppendUvarint(fw.buf, uint64(len(ss.results)))
		for _, r := range ss.results {
			fw.buf = binary.AppendUvarint(fw.buf, r.seq)
			fw.buf = binary.AppendUvarint(fw.buf, r.index)
			fw.buf = binary.AppendUvarint(fw.buf, r.version)
			fw.buf = append(fw.buf, r.flags())
		}
		fw.maybeSplit()
		return fw.err == nil
	})
	fw.end()

	fw.begin(frameEnd)
	fw.end()

	if fw.err != nil {
		return fw.n, fmt.Errorf("shard: write snapshot at index %d, byte %d: %w", s.index, fw.n, fw.err)
	}
	return fw.n, nil
}

// frameWriter assembles frames in buf and writes each whole. After the first
// write error it writes nothing more.
type frameWriter struct {
	w    io.Writer
	n    int64
	err  error
	kind byte
	buf  []byte // the current frame: prefix, then payload
}

func (fw *frameWriter) write(b []byte) {
	if fw.err != nil {
		return
	}
	n, err := fw.w.Write(b)
	fw.n += int64(n)
	fw.err = err
}

func (fw *frameWriter) begin(kind byte) {
	fw.kind = kind
	if fw.buf == nil {
		fw.buf = make([]byte, 0, frameTarget+frameTarget/4)
	}
	fw.buf = append(fw.buf[:0], kind, 0, 0, 0, 0)
}

// end finishes and writes the current frame.
func (fw *frameWriter) end() {
	binary.LittleEndian.PutUint32(fw.buf[1:framePrefix], uint32(len(fw.buf)-framePrefix))
	fw.buf = binary.LittleEndian.AppendUint32(fw.buf, crc32.Checksum(fw.buf, castagnoli))
	fw.write(fw.buf)
}

// maybeSplit ends the current frame once it has reached the target size,
// and begins another of the same kind.
func (fw *frameWriter) maybeSplit() {
	if len(fw.buf)-framePrefix >= frameTarget {
		fw.end()
		fw.begin(fw.kind)
	}
}

// Restore replaces the whole state, applied index and sessions included,
// with the snapshot read from r. It reads up to the end frame and decodes
// and checks everything before it touches the current state: on any error
// (ErrCorruptSnapshot, ErrSnapshotVersion, or r's own, all wrapped) the state
// machine is unchanged.
//
// The applied index becomes the snapshot's, even if lower than the current
// one; WaitApplied callers whose index it reaches are woken.
func (sm *StateMachine) Restore(r io.Reader) error {
	img, err := readSnapshot(r, sm.cfg)
	if err != nil {
		return fmt.Errorf("shard: restore: %w", err)
	}
	sm.mu.Lock()
	sm.mu.data = img.data
	sm.mu.expiry = img.expiry
	sm.mu.dataBytes = img.dataBytes
	sm.mu.sessions = img.sessions
	sm.mu.events.reset(img.index)
	sm.applied.Store(img.index)
	sm.mu.Unlock()
	sm.waits.notify(img.index)
	return nil
}

// image is a decoded, checked snapshot, ready to install.
type image struct {
	version   uint64
	index     uint64
	data      *btree.BTreeG[entry]
	expiry    *btree.BTreeG[expiryKey]
	dataBytes int64
	sessions  *sessionTable
}

// frameReader reads and verifies frames.
type frameReader struct {
	r       *bufio.Reader
	off     int64 // stream offset of the next byte, for error messages
	payload bytes.Buffer
}

// next reads one frame and returns its kind and payload, which is valid
// until the following call.
func (fr *frameReader) next() (byte, []byte, error) {
	start := fr.off
	var prefix [framePrefix]byte
	if err := fr.readFull(prefix[:]); err != nil {
		return 0, nil, fmt.Errorf("frame at byte %d: %w", start, err)
	}
	n := int64(binary.LittleEndian.Uint32(prefix[1:]))
	fr.payload.Reset()
	// Copy rather than allocate n up front: a corrupt length must not
	// allocate more than the stream actually holds.
	got, err := io.CopyN(&fr.payload, fr.r, n)
	fr.off += got
	if err != nil {
		return 0, nil, fmt.Errorf("frame at byte %d: payload of %d bytes: %w", start, n, eofIsCorrupt(err))
	}
	var sum [frameChecksum]byte
	if err := fr.readFull(sum[:]); err != nil {
		return 0, nil, fmt.Errorf("frame at byte %d: checksum: %w", start, err)
	}
	crc := crc32.Update(crc32.Checksum(prefix[:], castagnoli), castagnoli, fr.payload.Bytes())
	if want := binary.LittleEndian.Uint32(sum[:]); crc != want {
		return 0, nil, fmt.Errorf("%w: frame at byte %d: checksum %08x, want %08x", ErrCorruptSnapshot, start, crc, want)
	}
	return prefix[0], fr.payload.Bytes(), nil
}

func (fr *frameReader) readFull(b []byte) error {
	n, err := io.ReadFull(fr.r, b)
	fr.off += int64(n)
	return eofIsCorrupt(err)
}

// eofIsCorrupt turns an early end of stream into ErrCorruptSnapshot and
// leaves other read errors as they are.
func eofIsCorrupt(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", ErrCorruptSnapshot)
	}
	return err
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorruptSnapshot}, args...)...)
}

// readSnapshot decodes and checks a whole snapshot stream.
func readSnapshot(r io.Reader, cfg Config) (*image, error) {
	fr := &frameReader{r: bufio.NewReaderSize(r, 64<<10)}
	var magic [len(snapshotMagic)]byte
	if err := fr.readFull(magic[:]); err != nil {
		return nil, fmt.Errorf("magic: %w", err)
	}
	if string(magic[:]) != snapshotMagic {
		return nil, corrupt("not a shard snapshot: magic %q", magic[:])
	}

	kind, p, err := fr.next()
	if err != nil {
		return nil, err
	}
	if kind != frameHeader {
		return nil, corrupt("first frame of kind %d, want header", kind)
	}
	d := decoder{buf: p}
	version := d.uvarint("format version")
	if d.err == nil && (version < 1 || version > snapshotVersion) {
		return nil, fmt.Errorf("%w: %d, this build reads 1..%d", ErrSnapshotVersion, version, snapshotVersion)
	}
	img := &image{
		version:  version,
		index:    d.uvarint("applied index"),
		data:     btree.NewG(dataDegree, lessEntry),
		expiry:   btree.NewG(dataDegree, lessExpiry),
		sessions: newSessionTable(cfg),
	}
	st := img.sessions
	st.clock = d.varint("session clock")
	st.touches = d.uvarint("touch counter")
	wantKeys := d.uvarint("key count")
	wantSessions := d.uvarint("session count")
	if d.err != nil {
		return nil, corrupt("header: %v", d.err)
	}
	if d.off != len(p) {
		return nil, corrupt("header: %d trailing bytes", len(p)-d.off)
	}
	if st.clock < 0 {
		return nil, corrupt("header: negative session clock %d", st.clock)
	}

	var lastKey, lastID []byte
	for stage := frameData; ; {
		kind, p, err := fr.next()
		if err != nil {
			return nil, err
		}
		if kind < stage || kind > frameEnd {
			return nil, corrupt("frame of kind %d after kind %d", kind, stage)
		}
		stage = kind
		d := decoder{buf: p}
		switch kind {
		case frameData:
			for d.off < len(p) && d.err == nil {
				if lastKey, err = img.readEntry(&d, lastKey); err != nil {
					return nil, err
				}
			}
		case frameSessions:
			for d.off < len(p) && d.err == nil {
				if lastID, err = img.readSession(&d, lastID); err != nil {
					return nil, err
				}
			}
		case frameEnd:
			if len(p) != 0 {
				return nil, corrupt("end frame with %d bytes", len(p))
			}
		}
		if d.err != nil {
			return nil, corrupt("frame of kind %d ending at byte %d: %v", kind, fr.off, d.err)
		}
		if kind == frameEnd {
			break
		}
	}

	if n := uint64(img.data.Len()); n != wantKeys {
		return nil, corrupt("%d keys, header says %d", n, wantKeys)
	}
	if n := uint64(st.byID.Len()); n != wantSessions {
		return nil, corrupt("%d sessions, header says %d", n, wantSessions)
	}
	// Expiry takes sessions in touch order and stops at the first one still
	// live, which is right only if lastSeen grows with touch.
	var lastSeen int64
	var lruErr error
	st.byLRU.Ascend(func(k lruKey) bool {
		s, _ := st.byID.Get(&session{id: k.id})
		if s.lastSeen < lastSeen {
			lruErr = corrupt("session %x: last seen %d, before that of an earlier touch (%d)", s.id, s.lastSeen, lastSeen)
			return false
		}
		lastSeen = s.lastSeen
		return true
	})
	if lruErr != nil {
		return nil, lruErr
	}
	return img, nil
}

// readEntry decodes one data record, which must follow prev in key order.
func (img *image) readEntry(d *decoder, prev []byte) ([]byte, error) {
	key := d.bytes("key", MaxKeySize)
	version := d.uvarint("version")
	create := d.uvarint("create version")
	var expires int64
	if img.version >= 2 {
		expires = d.varint("expiry")
	}
	data := d.bytes("value", len(d.buf))
	if d.err != nil {
		return prev, corrupt("data record: %v", d.err)
	}
	switch {
	case len(key) == 0:
		return prev, corrupt("empty key")
	case prev != nil && bytes.Compare(prev, key) >= 0:
		return prev, corrupt("key %q after %q: out of order", key, prev)
	case create == 0 || create > version || version > img.index:
		return prev, corrupt("key %q: create version %d, version %d, applied index %d", key, create, version, img.index)
	case expires < 0 || (expires != 0 && expires <= img.sessions.clock):
		return prev, corrupt("key %q: expiry %d, clock %d", key, expires, img.sessions.clock)
	}
	buf := make([]byte, len(key)+len(data))
	n := copy(buf, key)
	copy(buf[n:], data)
	e := entry{key: buf[:n:n], val: Value{Data: buf[n:], Version: version, CreateVersion: create, ExpiresAt: expires}}
	img.data.ReplaceOrInsert(e)
	if expires != 0 {
		img.expiry.ReplaceOrInsert(expiryKey{at: expires, key: e.key})
	}
	img.dataBytes += int64(len(buf)) + entryOverhead
	return e.key, nil
}

// readSession decodes one session record, which must follow prev in ID
// order.
func (img *image) readSession(d *decoder, prev []byte) ([]byte, error) {
	st := img.sessions
	s := &session{
		id:         bytes.Clone(d.bytes("client ID", MaxClientIDSize)),
		ackedBelow: d.uvarint("acked-below"),
		lastSeen:   d.varint("last seen"),
		touch:      d.uvarint("touch"),
	}
	n := d.uvarint("result count")
	if d.err != nil {
		return prev, corrupt("session record: %v", d.err)
	}
	switch {
	case len(s.id) == 0:
		return prev, corrupt("session with an empty client ID")
	case prev != nil && bytes.Compare(prev, s.id) >= 0:
		return prev, corrupt("session %x after %x: out of order", s.id, prev)
	case s.lastSeen < 0 || s.lastSeen > st.clock:
		return prev, corrupt("session %x: last seen %d, clock %d", s.id, s.lastSeen, st.clock)
	case s.touch == 0 || s.touch > st.touches:
		return prev, corrupt("session %x: touch %d, counter %d", s.id, s.touch, st.touches)
	case n > uint64(len(d.buf)-d.off)/4: // a result takes at least 4 bytes
		return prev, corrupt("session %x: %d results in %d bytes", s.id, n, len(d.buf)-d.off)
	}
	s.results = make([]storedResult, n)
	for i := range s.results {
		r := &s.results[i]
		r.seq = d.uvarint("result seq")
		r.index = d.uvarint("result index")
		r.version = d.uvarint("result version")
		flags := d.byte("result flags")
		r.existed, r.deleted = flags&flagExisted != 0, flags&flagDeleted != 0
		r.txn, r.succeeded = flags&flagTxn != 0, flags&flagSucceeded != 0
		if d.err != nil {
			return prev, corrupt("session %x result %d: %v", s.id, i, d.err)
		}
		switch {
		case flags&^flagsKnown != 0:
			return prev, corrupt("session %x result %d: unknown flags %#x", s.id, i, flags)
		case r.seq < s.ackedBelow || (i > 0 && r.seq <= s.results[i-1].seq):
			return prev, corrupt("session %x result %d: seq %d out of order (acked below %d)", s.id, i, r.seq, s.ackedBelow)
		case r.index == 0 || r.index > img.index || r.version > r.index:
			return prev, corrupt("session %x result %d: index %d, version %d, applied index %d", s.id, i, r.index, r.version, img.index)
		}
	}
	if _, dup := st.byLRU.ReplaceOrInsert(lruKey{touch: s.touch, id: s.id}); dup {
		return prev, corrupt("session %x: touch %d shared with another session", s.id, s.touch)
	}
	st.byID.ReplaceOrInsert(s)
	st.results += len(s.results)
	return s.id, nil
}
