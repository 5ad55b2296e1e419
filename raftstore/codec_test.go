package raftstore

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestLogEncodingRoundTrip(t *testing.T) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		log  raft.Log
	}{
		{"zero", raft.Log{}},
		{"command", raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("set x=1")}},
		{"noop no data", raft.Log{Index: 2, Term: 3, Type: raft.LogNoop}},
		{"configuration", raft.Log{Index: 3, Term: 3, Type: raft.LogConfiguration, Data: []byte{0x80, 0x00, 0xff}}},
		{"extensions only", raft.Log{Index: 4, Term: 4, Type: raft.LogBarrier, Extensions: []byte("ext")}},
		{"appended at", raft.Log{Index: 5, Term: 5, Data: []byte("d"), AppendedAt: time.Date(2025, 3, 1, 12, 0, 0, 999_999_999, time.UTC)}},
		{"appended at local with monotonic", raft.Log{Index: 6, Term: 6, AppendedAt: time.Now()}},
		{"appended before 1970", raft.Log{Index: 7, Term: 7, AppendedAt: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"appended far future", raft.Log{Index: 8, Term: 8, AppendedAt: time.Date(9999, 12, 31, 23, 59, 59, 5, time.UTC)}},
		{"max values", raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: raft.LogType(255)}},
		{"large data", raft.Log{Index: 9, Term: 9, Data: big, Extensions: big[:300]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := appendLog(nil, &tt.log)
			if max := encodedLogLen(&tt.log); len(enc) > max {
				t.Fatalf("encoding is %d bytes; encodedLogLen promised at most %d", len(enc), max)
			}
			// Decode into a used Log: every field must be overwritten.
			got := raft.Log{Index: 99, Term: 99, Type: raft.LogNoop, Data: []byte("old"), Extensions: []byte("old"), AppendedAt: time.Now()}
			if err := decodeLog(tt.log.Index, enc, &got); err != nil {
				t.Fatalf("decodeLog: %v", err)
			}
			if d := diffLog(&got, &tt.log); d != "" {
				t.Fatalf("round trip: %s", d)
			}
			if got.AppendedAt.IsZero() != tt.log.AppendedAt.IsZero() {
				t.Fatalf("AppendedAt.IsZero() = %v; want %v", got.AppendedAt.IsZero(), tt.log.AppendedAt.IsZero())
			}
			// The decoded slices must not alias the encoding, which bolt
			// owns in a real read.
			for i := range enc {
				enc[i] = 0xAA
			}
			if d := diffLog(&got, &tt.log); d != "" {
				t.Fatalf("after overwriting the encoding: %s", d)
			}
		})
	}
}

func TestLogEncodingCompact(t *testing.T) {
	l := raft.Log{Index: 1 << 40, Term: 7, Type: raft.LogCommand, Data: make([]byte, 256), AppendedAt: time.Unix(1_700_000_000, 123)}
	// version, type, term, time flag + 5-byte seconds + 1-byte nanos,
	// 2-byte length + 256, 1-byte length.
	if got, want := len(appendLog(nil, &l)), 1+1+1+1+5+1+2+256+1; got != want {
		t.Fatalf("a 256-byte command encodes to %d bytes; want %d", got, want)
	}
}

func TestLogDecodingRejectsDamage(t *testing.T) {
	full := appendLog(nil, &raft.Log{Index: 1, Term: 2, Data: []byte("data"), Extensions: []byte("ext"), AppendedAt: time.Unix(5, 6)})
	// Every strict prefix is malformed.
	for n := 0; n < len(full); n++ {
		if err := decodeLog(1, full[:n], new(raft.Log)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeLog(first %d of %d bytes) = %v; want ErrCorrupt", n, len(full), err)
		}
	}
	damaged := map[string][]byte{
		"trailing byte":   append(append([]byte(nil), full...), 0),
		"unknown version": append([]byte{0x02}, full[1:]...),
		"bad time flag":   {logEncodingV1, 0, 1, 2, 0, 0},
		"nanos too large": {logEncodingV1, 0, 1, 1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0, 0}, // 1e9
		"data too long":   {logEncodingV1, 0, 1, 0, 5, 'a', 0},
	}
	// The control: the "nanos too large" entry with 999999999 decodes.
	if err := decodeLog(1, []byte{logEncodingV1, 0, 1, 1, 0, 0xff, 0x93, 0xeb, 0xdc, 0x03, 0, 0}, new(raft.Log)); err != nil {
		t.Fatalf("decodeLog(valid control) = %v", err)
	}
	for name, b := range damaged {
		if err := decodeLog(1, b, new(raft.Log)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decodeLog = %v; want ErrCorrupt", name, err)
		}
	}
}
