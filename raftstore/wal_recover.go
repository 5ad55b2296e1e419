package raftstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// recover rebuilds the index by replaying every segment in order, cuts a
// torn tail off the last one, and starts a new segment whose checkpoint
// restates the index. Starting a new segment on every open keeps the rule
// that every segment but the first begins with a checkpoint even when the
// crash tore the checkpoint of the last segment.
func (w *WAL) recover() error {
	names, err := os.ReadDir(w.dir)
	if err != nil {
		return err
	}
	var seqs []uint64
	for _, e := range names {
		name := e.Name()
		if !strings.HasSuffix(name, ".wal") {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".wal"), 10, 64)
		if err != nil || segmentName(seq) != name {
			return fmt.Errorf("%w: unexpected file %s", ErrCorrupt, name)
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for i, seq := range seqs {
		if err := w.replay(seq, i == len(seqs)-1); err != nil {
			return err
		}
	}
	w.emptied = w.emptied[:0]
	if n := len(w.st.segs); n > 0 {
		w.active = w.st.segs[n-1]
	}
	if err := w.rotate(); err != nil {
		return err
	}
	w.emptied = w.emptied[:0]
	for _, s := range w.st.segs {
		if s != w.active && s.live == 0 {
			w.emptied = append(w.emptied, s)
		}
	}
	w.collect()
	return nil
}

// replay applies the records of segment seq to the index. In the last
// segment, a torn frame ends the log: the file is cut there. Anywhere else
// it is corruption, since every other segment was synced whole before the
// next one was started.
func (w *WAL) replay(seq uint64, last bool) error {
	path := filepath.Join(w.dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	s := &segment{seq: seq, f: f}
	w.st.segs = append(w.st.segs, s) // closed by closeFiles on error
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cut := func(at int64) error {
		if !last {
			return fmt.Errorf("%w: segment %s: damaged at offset %d", ErrCorrupt, segmentName(seq), at)
		}
		if err := f.Truncate(at); err != nil {
			return err
		}
		if !w.opts.NoSync {
			if err := f.Sync(); err != nil {
				return err
			}
		}
		s.size = at
		return nil
	}
	switch {
	case len(data) == 0:
		// Cut to nothing by an earlier open, and not yet deleted.
		return nil
	case len(data) < walHeaderLen:
		// Torn while the segment was being created: it holds nothing.
		return cut(0)
	}
	if !bytes.Equal(data[:8], walMagic[:]) || binary.BigEndian.Uint64(data[8:16]) != seq {
		return fmt.Errorf("%w: segment %s: bad header %x", ErrCorrupt, segmentName(seq), data[:walHeaderLen])
	}
	at := walHeaderLen
	for {
		n, records, st := readFrame(data[at:])
		switch st {
		case frameNone:
			s.size = int64(at)
			return nil
		case frameTorn:
			return cut(int64(at))
		case frameBadCRC:
			// Only the last frame can be torn: it was being written when
			// the machine stopped, and the one before it was synced first.
			// A damaged frame with more after it held acknowledged writes.
			if at+n == len(data) {
				return cut(int64(at))
			}
			return fmt.Errorf("%w: segment %s: frame at offset %d fails its CRC", ErrCorrupt, segmentName(seq), at)
		}
		rat := at + walFrameHdr
		for len(records) > 0 {
			b, rest, err := nextRecord(records)
			if err == nil {
				var rec walRecord
				if rec, err = decodeRecord(b); err == nil {
					w.apply(&rec, s, int64(rat))
				}
			}
			if err != nil {
				return fmt.Errorf("segment %s offset %d: %w", segmentName(seq), rat, err)
			}
			rat += len(b)
			records = rest
		}
		at += n
	}
}
