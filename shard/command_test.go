package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	req := RequestID{ClientID: []byte("client-1"), Seq: 7, AckedBelow: 5}
	for _, tc := range []struct {
		name string
		enc  []byte
		want Command
	}{
		{"put", EncodePut([]byte("k"), []byte("v"), req, 1_700_000_000_000_000_000),
			Command{Op: OpPut, Key: []byte("k"), Value: []byte("v"), Request: req, ProposedAt: 1_700_000_000_000_000_000}},
		{"put empty value, no client", EncodePut([]byte("k"), nil, RequestID{}, 0),
			Command{Op: OpPut, Key: []byte("k"), Value: []byte{}, Request: RequestID{ClientID: []byte{}}}},
		{"put max sizes", EncodePut(bytes.Repeat([]byte("k"), MaxKeySize), bytes.Repeat([]byte("v"), 100_000),
			RequestID{ClientID: bytes.Repeat([]byte("c"), MaxClientIDSize), Seq: 1<<64 - 1, AckedBelow: 1<<64 - 1}, -1),
			Command{Op: OpPut, Key: bytes.Repeat([]byte("k"), MaxKeySize), Value: bytes.Repeat([]byte("v"), 100_000),
				Request: RequestID{ClientID: bytes.Repeat([]byte("c"), MaxClientIDSize), Seq: 1<<64 - 1, AckedBelow: 1<<64 - 1}, ProposedAt: -1}},
		{"delete", EncodeDelete([]byte("key"), req, 42),
			Command{Op: OpDelete, Key: []byte("key"), Request: req, ProposedAt: 42}},
		{"noop", EncodeNoop(99), Command{Op: OpNoop, ProposedAt: 99}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeCommand(tc.enc)
			if err != nil {
				t.Fatalf("DecodeCommand(%x...) error: %v", head(tc.enc), err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecodeCommand(Encode(c)) = %+v; want %+v", brief(got), brief(tc.want))
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate() of a decoded command = %v; want nil", err)
			}
		})
	}
}

func TestCommandEncodingIsCompact(t *testing.T) {
	// Version/op byte, 1-byte time, 2-byte client ID, seq, acked, 2-byte
	// key, 2-byte value.
	enc := EncodePut([]byte("k"), []byte("v"), RequestID{ClientID: []byte("c"), Seq: 1, AckedBelow: 1}, 1)
	if len(enc) != 10 {
		t.Errorf("EncodePut of 1-byte fields = %d bytes (%x); want 10", len(enc), enc)
	}
	if enc[0] != 0x11 {
		t.Errorf("first byte of a Put = %#x; want 0x11 (version 1, op 1)", enc[0])
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	put := EncodePut([]byte("k"), []byte("v"), RequestID{ClientID: []byte("c"), Seq: 1}, 1)
	for _, tc := range []struct {
		name string
		in   []byte
		msg  string // part of the error text, to check it says why
	}{
		{"empty", nil, "empty"},
		{"version 0", []byte{0x01, 0}, "version 0"},
		{"version 2", []byte{0x21, 0}, "version 2"},
		{"op 0", []byte{0x10, 0}, "unknown op 0"},
		{"op 5", []byte{0x15, 0}, "unknown op 5"},
		{"trailing byte", append(bytes.Clone(put), 0), "trailing"},
		{"trailing after noop", append(EncodeNoop(1), 0), "trailing"},
		{"empty key", EncodePut(nil, []byte("v"), RequestID{}, 0), "empty key"},
		{"long key", EncodeDelete(make([]byte, MaxKeySize+1), RequestID{}, 0), "limit"},
		{"long client ID", EncodeDelete([]byte("k"), RequestID{ClientID: make([]byte, MaxClientIDSize+1)}, 0), "limit"},
		{"overflowing varint", []byte{0x13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "proposal time"},
		{"huge length", append([]byte{0x12, 0}, binary.AppendUvarint(nil, 1<<62)...), "client ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCommand(tc.in)
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("DecodeCommand(%x) = %+v, %v; want ErrBadCommand", tc.in, brief(c), err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("DecodeCommand(%x) error %q; want it to mention %q", tc.in, err, tc.msg)
			}
		})
	}
}

func TestDecodeCommandRejectsEveryTruncation(t *testing.T) {
	for _, enc := range [][]byte{
		EncodePut([]byte("key"), []byte("value"), RequestID{ClientID: []byte("c"), Seq: 300, AckedBelow: 200}, 1<<40),
		EncodeDelete([]byte("key"), RequestID{ClientID: []byte("c"), Seq: 3}, 1<<40),
		EncodeNoop(1 << 40),
	} {
		for n := 0; n < len(enc); n++ {
			if c, err := DecodeCommand(enc[:n]); !errors.Is(err, ErrBadCommand) {
				t.Errorf("DecodeCommand(%x), %d of %d bytes = %+v, %v; want ErrBadCommand", enc[:n], n, len(enc), brief(c), err)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c  Command
		ok bool
	}{
		{Command{Op: OpNoop}, true},
		{Command{Op: OpPut, Key: []byte("k")}, true},
		{Command{Op: OpDelete, Key: []byte("k")}, true},
		{Command{}, false},
		{Command{Op: OpPut}, false},
		{Command{Op: OpDelete, Key: make([]byte, MaxKeySize+1)}, false},
		{Command{Op: OpPut, Key: []byte("k"), Request: RequestID{ClientID: make([]byte, MaxClientIDSize+1)}}, false},
	} {
		err := tc.c.Validate()
		if tc.ok && err != nil {
			t.Errorf("Validate(%+v) = %v; want nil", brief(tc.c), err)
		}
		if !tc.ok && !errors.Is(err, ErrBadCommand) {
			t.Errorf("Validate(%+v) = %v; want ErrBadCommand", brief(tc.c), err)
		}
		// Validate and DecodeCommand agree.
		_, decErr := DecodeCommand(tc.c.Encode())
		if (err == nil) != (decErr == nil) {
			t.Errorf("Validate(%+v) = %v but DecodeCommand(Encode()) = %v; want both nil or both errors", brief(tc.c), err, decErr)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(EncodePut([]byte("k"), []byte("v"), RequestID{ClientID: []byte("c"), Seq: 1, AckedBelow: 1}, 1))
	f.Add(EncodeDelete([]byte("key"), RequestID{}, -5))
	f.Add(EncodeNoop(1 << 62))
	f.Add(sampleTxn())
	f.Add([]byte{})
	f.Add([]byte{0x11, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("DecodeCommand(%x) error %v; want it to wrap ErrBadCommand", b, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("DecodeCommand(%x) accepted %+v, which Validate rejects: %v", b, brief(c), err)
		}
		c2, err := DecodeCommand(c.Encode())
		if err != nil {
			t.Fatalf("DecodeCommand(Encode(%+v)) error: %v", brief(c), err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("DecodeCommand(Encode(c)) = %+v; want %+v", brief(c2), brief(c))
		}
		// The state machine takes anything that decodes.
		sm := NewStateMachine(Config{})
		if r := sm.Apply(1, b); r.Err != nil {
			t.Fatalf("Apply(1, %x) error: %v", b, r.Err)
		}
	})
}

// head returns at most the first 32 bytes of b, for messages.
func head(b []byte) []byte { return b[:min(len(b), 32)] }

// brief returns c with long fields cut, for messages.
func brief(c Command) Command {
	c.Key, c.Value, c.Request.ClientID = head(c.Key), head(c.Value), head(c.Request.ClientID)
	return c
}
