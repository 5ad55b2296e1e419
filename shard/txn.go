package shard

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// MaxTxnOps bounds the compares plus the operations of both branches of one
// transaction (etcd's default --max-txn-ops is also 128).
const MaxTxnOps = 128

// MaxTTL bounds a key's time to live.
const MaxTTL = 10 * 365 * 24 * time.Hour

// Target is what a Compare looks at.
type Target uint8

// The compare targets. A missing key has Version 0 and CreateVersion 0, and
// no value: a Value compare on it never holds.
const (
	// TargetVersion compares the log index of the key's last write.
	TargetVersion Target = 1
	// TargetCreateVersion compares the log index of the key's creation.
	TargetCreateVersion Target = 2
	// TargetValue compares the value's bytes.
	TargetValue Target = 3
)

// String returns the target's name.
func (t Target) String() string {
	switch t {
	case TargetVersion:
		return "version"
	case TargetCreateVersion:
		return "create_version"
	case TargetValue:
		return "value"
	}
	return fmt.Sprintf("Target(%d)", uint8(t))
}

// CompareOp is the relation a Compare tests.
type CompareOp uint8

// The relations: the key's target on the left, the Compare's operand on the
// right. Values compare as byte strings (bytes.Compare).
const (
	Equal    CompareOp = 1
	NotEqual CompareOp = 2
	Less     CompareOp = 3
	Greater  CompareOp = 4
)

// String returns the relation as an operator.
func (o CompareOp) String() string {
	switch o {
	case Equal:
		return "=="
	case NotEqual:
		return "!="
	case Less:
		return "<"
	case Greater:
		return ">"
	}
	return fmt.Sprintf("CompareOp(%d)", uint8(o))
}

// Compare is one condition of a transaction.
type Compare struct {
	Key    []byte
	Target Target
	Op     CompareOp
	// Version is the operand of TargetVersion and TargetCreateVersion.
	Version uint64
	// Value is the operand of TargetValue.
	Value []byte
}

// holds evaluates the compare against the key's current state.
func (c Compare) holds(v Value, found bool) bool {
	var cmp int
	switch c.Target {
	case TargetVersion, TargetCreateVersion:
		var have uint64
		if found {
			have = v.Version
			if c.Target == TargetCreateVersion {
				have = v.CreateVersion
			}
		}
		switch {
		case have < c.Version:
			cmp = -1
		case have > c.Version:
			cmp = 1
		}
	case TargetValue:
		if !found {
			return false
		}
		cmp = bytes.Compare(v.Data, c.Value)
	default:
		return false
	}
	switch c.Op {
	case Equal:
		return cmp == 0
	case NotEqual:
		return cmp != 0
	case Less:
		return cmp < 0
	case Greater:
		return cmp > 0
	}
	return false
}

// TxnOpKind is what one operation of a transaction does.
type TxnOpKind uint8

// The operation kinds.
const (
	TxnPut    TxnOpKind = 1
	TxnDelete TxnOpKind = 2
	TxnGet    TxnOpKind = 3
)

// String returns the kind's name.
func (k TxnOpKind) String() string {
	switch k {
	case TxnPut:
		return "put"
	case TxnDelete:
		return "delete"
	case TxnGet:
		return "get"
	}
	return fmt.Sprintf("TxnOpKind(%d)", uint8(k))
}

// TxnOp is one operation of a transaction branch. Operations run in order,
// so a Get sees the branch's earlier writes.
type TxnOp struct {
	Kind  TxnOpKind
	Key   []byte
	Value []byte // TxnPut only
	// TTL, for TxnPut, makes the key expire TTL after the proposer's clock
	// (Command.ProposedAt); 0 keeps it forever. A Put without a TTL clears
	// any earlier one.
	TTL time.Duration
}

// OpResult is the outcome of one TxnOp.
type OpResult struct {
	// Found reports, for a Get, whether the key existed; for a Delete,
	// whether it removed a key.
	Found bool
	// Value is, for a Get, the value read; for a Put, the new version in
	// Value.Version (and its expiry); for a Delete, the removed version in
	// Value.Version.
	Value Value
}

// validateTxn checks a transaction's shape; Validate calls it for OpTxn.
func (c Command) validateTxn() error {
	n := len(c.Compares) + len(c.Then) + len(c.Else)
	if n > MaxTxnOps {
		return fmt.Errorf("%w: transaction of %d compares and operations, limit %d", ErrBadCommand, n, MaxTxnOps)
	}
	for i, cmp := range c.Compares {
		if err := checkKey(cmp.Key); err != nil {
			return fmt.Errorf("%w: compare %d: %w", ErrBadCommand, i, err)
		}
		switch cmp.Target {
		case TargetVersion, TargetCreateVersion, TargetValue:
		default:
			return fmt.Errorf("%w: compare %d: unknown target %d", ErrBadCommand, i, uint8(cmp.Target))
		}
		if cmp.Op < Equal || cmp.Op > Greater {
			return fmt.Errorf("%w: compare %d: unknown relation %d", ErrBadCommand, i, uint8(cmp.Op))
		}
	}
	for b, ops := range [][]TxnOp{c.Then, c.Else} {
		for i, op := range ops {
			if err := validateTxnOp(op); err != nil {
				return fmt.Errorf("%w: %s operation %d: %w", ErrBadCommand, branchName(b == 0), i, err)
			}
		}
	}
	return nil
}

func branchName(then bool) string {
	if then {
		return "success"
	}
	return "failure"
}

func validateTxnOp(op TxnOp) error {
	if err := checkKey(op.Key); err != nil {
		return err
	}
	switch op.Kind {
	case TxnPut:
		if op.TTL < 0 || op.TTL > MaxTTL {
			return fmt.Errorf("ttl %v: want 0..%v", op.TTL, MaxTTL)
		}
	case TxnDelete, TxnGet:
		if op.TTL != 0 || op.Value != nil {
			return fmt.Errorf("%v with a value or ttl", op.Kind)
		}
	default:
		return fmt.Errorf("unknown kind %d", uint8(op.Kind))
	}
	return nil
}

func checkKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("empty key")
	}
	if len(key) > MaxKeySize {
		return fmt.Errorf("key of %d bytes, limit %d", len(key), MaxKeySize)
	}
	return nil
}

// appendTxn appends the Txn-specific fields: see Command for the format.
func (c Command) appendTxn(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(c.Compares)))
	for _, cmp := range c.Compares {
		dst = append(dst, byte(cmp.Target), byte(cmp.Op))
		dst = appendBytes(dst, cmp.Key)
		if cmp.Target == TargetValue {
			dst = appendBytes(dst, cmp.Value)
		} else {
			dst = binary.AppendUvarint(dst, cmp.Version)
		}
	}
	for _, ops := range [][]TxnOp{c.Then, c.Else} {
		dst = binary.AppendUvarint(dst, uint64(len(ops)))
		for _, op := range ops {
			dst = append(dst, byte(op.Kind))
			dst = appendBytes(dst, op.Key)
			if op.Kind == TxnPut {
				dst = appendBytes(dst, op.Value)
				dst = binary.AppendUvarint(dst, uint64(op.TTL))
			}
		}
	}
	return dst
}

func (c Command) txnSizeHint() int {
	n := 3 * binary.MaxVarintLen64
	for _, cmp := range c.Compares {
		n += 2 + 2*binary.MaxVarintLen64 + len(cmp.Key) + len(cmp.Value)
	}
	for _, ops := range [][]TxnOp{c.Then, c.Else} {
		for _, op := range ops {
			n += 1 + 3*binary.MaxVarintLen64 + len(op.Key) + len(op.Value)
		}
	}
	return n
}

// decodeTxn reads the Txn-specific fields into c.
func (d *decoder) txn(c *Command) {
	budget := MaxTxnOps
	count := func(what string) int {
		n := d.uvarint(what + " count")
		if d.err != nil {
			return 0
		}
		if n > uint64(budget) {
			d.fail("%d %s, transaction limit %d", n, what, MaxTxnOps)
			return 0
		}
		budget -= int(n)
		return int(n)
	}
	if n := count("compares"); n > 0 {
		c.Compares = make([]Compare, n)
		for i := range c.Compares {
			cmp := &c.Compares[i]
			cmp.Target = Target(d.byte("compare target"))
			cmp.Op = CompareOp(d.byte("compare relation"))
			cmp.Key = d.bytes("compare key", MaxKeySize)
			if cmp.Target == TargetValue {
				cmp.Value = d.bytes("compare value", len(d.buf))
			} else {
				cmp.Version = d.uvarint("compare version")
			}
		}
	}
	for b := range 2 {
		n := count("operations")
		if n == 0 {
			continue
		}
		ops := make([]TxnOp, n)
		for i := range ops {
			op := &ops[i]
			op.Kind = TxnOpKind(d.byte("operation kind"))
			op.Key = d.bytes("operation key", MaxKeySize)
			if op.Kind == TxnPut {
				op.Value = d.bytes("operation value", len(d.buf))
				ttl := d.uvarint("operation ttl")
				if ttl > uint64(MaxTTL) {
					d.fail("ttl %d ns, limit %v", ttl, MaxTTL)
				}
				op.TTL = time.Duration(ttl)
			}
		}
		if b == 0 {
			c.Then = ops
		} else {
			c.Else = ops
		}
	}
}

// txnLocked applies a transaction: the compares, then the chosen branch.
func (sm *StateMachine) txnLocked(index uint64, c Command) Result {
	ok := true
	for _, cmp := range c.Compares {
		e, found := sm.mu.data.Get(entry{key: cmp.Key})
		if !cmp.holds(e.val, found) {
			ok = false
			break
		}
	}
	ops := c.Then
	if !ok {
		ops = c.Else
	}
	res := Result{Index: index, Version: index, Txn: true, Succeeded: ok}
	if len(ops) > 0 {
		res.Ops = make([]OpResult, len(ops))
	}
	for i, op := range ops {
		switch op.Kind {
		case TxnPut:
			var expires int64
			if op.TTL > 0 {
				expires = sm.mu.sessions.clock + int64(op.TTL)
			}
			v, _ := sm.putLocked(index, op.Key, op.Value, expires)
			res.Ops[i] = OpResult{Found: true, Value: Value{Version: v.Version, CreateVersion: v.CreateVersion, ExpiresAt: v.ExpiresAt}}
		case TxnDelete:
			old, existed := sm.deleteLocked(index, op.Key)
			res.Ops[i] = OpResult{Found: existed, Value: Value{Version: old.Version, CreateVersion: old.CreateVersion}}
		case TxnGet:
			e, found := sm.mu.data.Get(entry{key: op.Key})
			res.Ops[i] = OpResult{Found: found, Value: e.val}
		}
	}
	return res
}
