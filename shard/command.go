package shard

import (
	"encoding/binary"
	"fmt"
)

// commandVersion is the format version in the high nibble of a command's
// first byte; see Command for the format.
const commandVersion = 1

// Limits on command fields, checked by Validate and DecodeCommand.
const (
	// MaxKeySize bounds the length of a key in bytes. Keys are never empty.
	MaxKeySize = 64 << 10

	// MaxClientIDSize bounds RequestID.ClientID in bytes.
	MaxClientIDSize = 64
)

// Op is the operation a Command performs.
type Op uint8

// The operations. The zero Op is invalid, so a zero Command does not encode
// to anything DecodeCommand accepts.
const (
	// OpPut sets Key to Value.
	OpPut Op = 1
	// OpDelete removes Key, if present.
	OpDelete Op = 2
	// OpNoop changes nothing but the applied index and the shard clock (so
	// it also expires keys whose TTL ran out); a new Raft leader proposes
	// one to commit an entry of its own term.
	OpNoop Op = 3
	// OpTxn evaluates Compares and applies Then if all hold, else Else.
	OpTxn Op = 4
)

// String returns the operation's name, for logs and test failures.
func (o Op) String() string {
	switch o {
	case OpPut:
		return "Put"
	case OpDelete:
		return "Delete"
	case OpNoop:
		return "Noop"
	case OpTxn:
		return "Txn"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// RequestID names a client request so that a retry of it is applied at most
// once: see StateMachine for the session rules.
type RequestID struct {
	// ClientID identifies the client's session, 0..MaxClientIDSize bytes.
	// Empty turns deduplication off for the request: it is applied every
	// time it is committed.
	ClientID []byte
	// Seq numbers the client's requests; a retry reuses the number.
	Seq uint64
	// AckedBelow tells the state machine that the client has received the
	// result of every request with a sequence number below it, so their
	// results may be forgotten and those numbers refused from now on.
	AckedBelow uint64
}

// Command is one entry of a shard's replicated log, decoded.
//
// Its wire format, version 1, uses encoding/binary varints: "uvarint" for
// unsigned integers, "varint" (zig-zag) for signed ones.
//
//	byte 0       version<<4 | op       (0x11 Put, 0x12 Delete, 0x13 Noop,
//	                                    0x14 Txn)
//	varint       ProposedAt            (unix nanoseconds)
//	                                   Put, Delete and Txn continue with:
//	uvarint n    len(ClientID), n <= MaxClientIDSize
//	n bytes      ClientID
//	uvarint      Seq
//	uvarint      AckedBelow
//	uvarint n    len(Key), 1 <= n <= MaxKeySize
//	n bytes      Key
//	                                   Put continues with:
//	uvarint n    len(Value)
//	n bytes      Value
//	                                   Txn has no Key; it continues with:
//	uvarint n    len(Compares), then n times:
//	  byte         Target
//	  byte         CompareOp
//	  uvarint, n bytes   len(Key), Key
//	  uvarint, n bytes   len(Value), Value   (TargetValue)
//	  or uvarint         Version             (the other targets)
//	uvarint n    len(Then), then n operations, each:
//	  byte         TxnOpKind
//	  uvarint, n bytes   len(Key), Key
//	  uvarint, n bytes   len(Value), Value   (TxnPut only)
//	  uvarint            TTL in nanoseconds  (TxnPut only)
//	uvarint n    len(Else), then n operations as above
//
// A transaction holds at most MaxTxnOps compares and operations in all.
//
// Nothing may follow the last field. A later format takes a new version
// nibble; a decoder rejects versions it does not know rather than guess.
type Command struct {
	Op Op
	// Key is the key Put and Delete act on; unused by Noop and Txn.
	Key []byte
	// Value is what Put stores; unused by Delete and Noop.
	Value []byte
	// Request identifies a Put, Delete or Txn for deduplication; unused by
	// Noop.
	Request RequestID
	// ProposedAt is the proposing leader's clock, unix nanoseconds. The
	// state machine uses it only to expire idle client sessions and keys
	// with a TTL; it never reads a clock of its own.
	ProposedAt int64
	// Compares, Then and Else make up a Txn: see OpTxn.
	Compares []Compare
	Then     []TxnOp
	Else     []TxnOp
}

// Validate reports whether the command would decode after encoding: a known
// Op, a key of 1..MaxKeySize bytes for Put and Delete, and a ClientID within
// MaxClientIDSize. Proposers call it to refuse a request before it reaches
// the log; Apply turns an invalid command into a Result with ErrBadCommand.
func (c Command) Validate() error {
	switch c.Op {
	case OpNoop:
		return nil
	case OpTxn:
		if len(c.Request.ClientID) > MaxClientIDSize {
			return fmt.Errorf("%w: client ID of %d bytes, limit %d", ErrBadCommand, len(c.Request.ClientID), MaxClientIDSize)
		}
		return c.validateTxn()
	case OpPut, OpDelete:
	default:
		return fmt.Errorf("%w: unknown op %d", ErrBadCommand, uint8(c.Op))
	}
	if len(c.Key) == 0 {
		return fmt.Errorf("%w: %v with an empty key", ErrBadCommand, c.Op)
	}
	if len(c.Key) > MaxKeySize {
		return fmt.Errorf("%w: key of %d bytes, limit %d", ErrBadCommand, len(c.Key), MaxKeySize)
	}
	if len(c.Request.ClientID) > MaxClientIDSize {
		return fmt.Errorf("%w: client ID of %d bytes, limit %d", ErrBadCommand, len(c.Request.ClientID), MaxClientIDSize)
	}
	return nil
}

// Encode returns the command in the wire format. It does not validate: an
// invalid command encodes to bytes that DecodeCommand rejects.
func (c Command) Encode() []byte {
	return c.AppendEncode(make([]byte, 0, c.encodedSizeHint()))
}

// AppendEncode appends the encoded command to dst and returns the extended
// buffer, like the strconv Append functions.
func (c Command) AppendEncode(dst []byte) []byte {
	dst = append(dst, commandVersion<<4|byte(c.Op)&0x0f)
	dst = binary.AppendVarint(dst, c.ProposedAt)
	if c.Op != OpPut && c.Op != OpDelete && c.Op != OpTxn {
		return dst
	}
	dst = appendBytes(dst, c.Request.ClientID)
	dst = binary.AppendUvarint(dst, c.Request.Seq)
	dst = binary.AppendUvarint(dst, c.Request.AckedBelow)
	if c.Op == OpTxn {
		return c.appendTxn(dst)
	}
	dst = appendBytes(dst, c.Key)
	if c.Op == OpPut {
		dst = appendBytes(dst, c.Value)
	}
	return dst
}

func (c Command) encodedSizeHint() int {
	n := 1 + 4*binary.MaxVarintLen64 + len(c.Request.ClientID) + len(c.Key) + len(c.Value)
	if c.Op == OpTxn {
		n += c.txnSizeHint()
	}
	return n
}

// EncodePut encodes a Put of value at key. proposedAt is the leader's clock
// in unix nanoseconds.
func EncodePut(key, value []byte, req RequestID, proposedAt int64) []byte {
	return Command{Op: OpPut, Key: key, Value: value, Request: req, ProposedAt: proposedAt}.Encode()
}

// EncodeDelete encodes a Delete of key. proposedAt is the leader's clock in
// unix nanoseconds.
func EncodeDelete(key []byte, req RequestID, proposedAt int64) []byte {
	return Command{Op: OpDelete, Key: key, Request: req, ProposedAt: proposedAt}.Encode()
}

// EncodeNoop encodes a Noop. proposedAt is the leader's clock in unix
// nanoseconds.
func EncodeNoop(proposedAt int64) []byte {
	return Command{Op: OpNoop, ProposedAt: proposedAt}.Encode()
}

// DecodeCommand decodes one command. It accepts exactly what Encode produces
// for a command that passes Validate, and returns an error wrapping
// ErrBadCommand for anything else (empty, truncated, trailing bytes, unknown
// version or op, fields out of limits); it never panics.
//
// The Key, Value and ClientID of the result alias b: the caller must copy
// them before b is reused.
func DecodeCommand(b []byte) (Command, error) {
	if len(b) == 0 {
		return Command{}, fmt.Errorf("%w: empty", ErrBadCommand)
	}
	if v := b[0] >> 4; v != commandVersion {
		return Command{}, fmt.Errorf("%w: unknown format version %d", ErrBadCommand, v)
	}
	c := Command{Op: Op(b[0] & 0x0f)}
	d := decoder{buf: b, off: 1}
	c.ProposedAt = d.varint("proposal time")
	switch c.Op {
	case OpNoop:
	case OpTxn:
		c.Request.ClientID = d.bytes("client ID", MaxClientIDSize)
		c.Request.Seq = d.uvarint("seq")
		c.Request.AckedBelow = d.uvarint("acked-below")
		d.txn(&c)
	case OpPut, OpDelete:
		c.Request.ClientID = d.bytes("client ID", MaxClientIDSize)
		c.Request.Seq = d.uvarint("seq")
		c.Request.AckedBelow = d.uvarint("acked-below")
		c.Key = d.bytes("key", MaxKeySize)
		if c.Op == OpPut {
			c.Value = d.bytes("value", len(b))
		}
	default:
		return Command{}, fmt.Errorf("%w: unknown op %d", ErrBadCommand, uint8(c.Op))
	}
	if d.err != nil {
		return Command{}, fmt.Errorf("%w: %v: %w", ErrBadCommand, c.Op, d.err)
	}
	if d.off != len(b) {
		return Command{}, fmt.Errorf("%w: %v: %d trailing bytes", ErrBadCommand, c.Op, len(b)-d.off)
	}
	if (c.Op == OpPut || c.Op == OpDelete) && len(c.Key) == 0 {
		return Command{}, fmt.Errorf("%w: %v with an empty key", ErrBadCommand, c.Op)
	}
	if c.Op == OpTxn {
		if err := c.validateTxn(); err != nil {
			return Command{}, err
		}
	}
	return c, nil
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decoder reads the varint-based encodings shared by commands and snapshot
// records from buf. The first failure sticks in err, after which every read
// returns a zero value, so a caller checks err once after a run of reads.
type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("at byte %d: "+format, append([]any{d.off}, args...)...)
	}
}

func (d *decoder) uvarint(field string) uint64 {
	v, ok := d.rawUvarint()
	if !ok {
		d.fail("bad or truncated %s", field)
	}
	return v
}

// rawUvarint reads a uvarint and reports whether it could; it leaves err to
// the caller.
func (d *decoder) rawUvarint() (uint64, bool) {
	if d.err != nil {
		return 0, true
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		return 0, false
	}
	d.off += n
	return v, true
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf[d.off:])
	if n <= 0 {
		d.fail("bad or truncated %s", field)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.buf) {
		d.fail("truncated %s", field)
		return 0
	}
	d.off++
	return d.buf[d.off-1]
}

// bytes reads a uvarint length, at most limit, and that many bytes, which
// alias buf.
func (d *decoder) bytes(field string, limit int) []byte {
	n, ok := d.rawUvarint()
	if !ok {
		d.fail("bad or truncated %s length", field)
	}
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) {
		d.fail("%s of %d bytes, limit %d", field, n, limit)
		return nil
	}
	if n > uint64(len(d.buf)-d.off) {
		d.fail("truncated %s: %d bytes, %d left", field, n, len(d.buf)-d.off)
		return nil
	}
	b := d.buf[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b
}
