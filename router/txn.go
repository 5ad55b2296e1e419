package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ringkv/ringkv/shard"
)

// ErrCrossShard: a request that must stay within one shard (a Txn, or a
// forwarded part of a multi-key request) names keys of different shards.
var ErrCrossShard = errors.New("keys on different shards")

// ErrInvalid: a request is malformed in a way the router detects (an empty
// transaction, a bad page token).
var ErrInvalid = errors.New("invalid request")

// Txn is a transaction: Compares, then Then if they all hold, else Else.
// Every key must be on one shard.
type Txn struct {
	Compares []shard.Compare
	Then     []shard.TxnOp
	Else     []shard.TxnOp
}

// keys returns every key the transaction names, in order.
func (t Txn) keys() [][]byte {
	var keys [][]byte
	for _, c := range t.Compares {
		keys = append(keys, c.Key)
	}
	for _, ops := range [][]shard.TxnOp{t.Then, t.Else} {
		for _, op := range ops {
			keys = append(keys, op.Key)
		}
	}
	return keys
}

// ReadOnly reports whether neither branch writes: such a Txn is safe to
// retry whatever its outcome.
func (t Txn) ReadOnly() bool {
	for _, ops := range [][]shard.TxnOp{t.Then, t.Else} {
		for _, op := range ops {
			if op.Kind != shard.TxnGet {
				return false
			}
		}
	}
	return true
}

// TxnResult is a transaction's answer.
type TxnResult struct {
	// Succeeded reports whether the compares held (Then ran).
	Succeeded bool
	// Duplicate reports a retry of a Txn applied before; Ops is then empty.
	Duplicate bool
	// Version is the Raft index the Txn committed at.
	Version uint64
	// Ops holds one result per operation of the branch that ran.
	Ops []shard.OpResult
	// Leader is the ID of the shard leader that served it.
	Leader string
}

// sameShard returns the shard of keys, or ErrCrossShard naming two keys of
// different shards.
func sameShard(keys [][]byte, count uint32) (shard.ID, error) {
	sid := shard.Of(keys[0], count)
	for _, k := range keys[1:] {
		if s := shard.Of(k, count); s != sid {
			return 0, fmt.Errorf("%w: %q is on shard %d and %q on shard %d; "+
				"keys that must change together need a common hash tag, e.g. \"{user1}.a\" and \"{user1}.b\" "+
				"(only the part between the first '{' and the next '}' decides the shard)",
				ErrCrossShard, keys[0], sid, k, s)
		}
	}
	return sid, nil
}

// Txn runs a transaction on the leader of its keys' shard. req makes it
// exactly-once.
func (r *Router) Txn(ctx context.Context, t Txn, req shard.RequestID, forwarded bool) (TxnResult, error) {
	keys := t.keys()
	if len(keys) == 0 {
		return TxnResult{}, fmt.Errorf("%w: a transaction needs at least one compare or operation", ErrInvalid)
	}
	if t.ReadOnly() {
		// A Txn that only reads may be applied twice harmlessly, and a
		// duplicate would not repeat its reads: never deduplicate it.
		req = shard.RequestID{}
	}
	cmd := shard.Command{Op: shard.OpTxn, Request: req, Compares: t.Compares, Then: t.Then, Else: t.Else}
	if err := cmd.Validate(); err != nil {
		return TxnResult{}, err
	}
	st := r.meta.Current()
	if !st.Initialized() {
		return TxnResult{}, ErrNotReady
	}
	sid, err := sameShard(keys, st.ShardCount)
	if err != nil {
		return TxnResult{}, err
	}
	var res TxnResult
	leader, err := r.routeShard(ctx, st, sid, forwarded,
		func(rep Replica) error {
			cmd.ProposedAt = r.cfg.Now().UnixNano()
			out, err := propose(ctx, rep, cmd)
			res = TxnResult{Succeeded: out.Succeeded, Duplicate: out.Duplicate, Version: out.Index, Ops: out.Ops}
			return err
		},
		func(addr string) (string, error) {
			var leader string
			var err error
			res, leader, err = r.fwd.Txn(ctx, addr, t, req)
			return leader, err
		})
	res.Leader = leader
	return res, err
}

// CondKind is the kind of a Condition.
type CondKind uint8

// The condition kinds.
const (
	// CondAbsent: the key must not exist.
	CondAbsent CondKind = iota + 1
	// CondExists: the key must exist.
	CondExists
	// CondVersion: the key's version must equal Version (0: absent).
	CondVersion
	// CondValue: the key must exist with value Value.
	CondValue
)

// Condition makes a Put or Delete conditional.
type Condition struct {
	Kind    CondKind
	Version uint64
	Value   []byte
}

// compare returns the Txn compare that tests c on key.
func (c Condition) compare(key []byte) (shard.Compare, error) {
	switch c.Kind {
	case CondAbsent:
		return shard.Compare{Key: key, Target: shard.TargetVersion, Op: shard.Equal, Version: 0}, nil
	case CondExists:
		return shard.Compare{Key: key, Target: shard.TargetVersion, Op: shard.Greater, Version: 0}, nil
	case CondVersion:
		return shard.Compare{Key: key, Target: shard.TargetVersion, Op: shard.Equal, Version: c.Version}, nil
	case CondValue:
		return shard.Compare{Key: key, Target: shard.TargetValue, Op: shard.Equal, Value: c.Value}, nil
	}
	return shard.Compare{}, fmt.Errorf("%w: unknown condition kind %d", ErrInvalid, c.Kind)
}

// WriteOptions are the optional parts of a Put or Delete.
type WriteOptions struct {
	// Cond, when set, makes the write happen only if it holds.
	Cond *Condition
	// TTL, for a Put, makes the key expire after it (0: never).
	TTL time.Duration
}

// conditional runs op on key as a Txn guarded by opts.Cond (if any); when
// the condition fails it reads the key instead, to report its version.
func (r *Router) conditional(ctx context.Context, key []byte, op shard.TxnOp, opts WriteOptions, req shard.RequestID, forwarded bool) (WriteResult, error) {
	t := Txn{Then: []shard.TxnOp{op}}
	if opts.Cond != nil {
		cmp, err := opts.Cond.compare(key)
		if err != nil {
			return WriteResult{}, err
		}
		t.Compares = []shard.Compare{cmp}
		t.Else = []shard.TxnOp{{Kind: shard.TxnGet, Key: key}}
	}
	tr, err := r.Txn(ctx, t, req, forwarded)
	res := WriteResult{Leader: tr.Leader, Succeeded: tr.Succeeded}
	if err != nil {
		return res, err
	}
	switch {
	case tr.Duplicate || len(tr.Ops) != 1:
		// A retry of a Txn applied before: its version is the Txn's when
		// it wrote, unknown when its condition failed.
		if tr.Succeeded {
			res.Version = tr.Version
		}
	case tr.Succeeded && op.Kind == shard.TxnDelete:
		res.Version, res.Existed = tr.Version, tr.Ops[0].Found
	default:
		res.Version = tr.Ops[0].Value.Version
		res.Existed = tr.Ops[0].Found
	}
	return res, nil
}
