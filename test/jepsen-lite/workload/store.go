// Package workload drives a ringkv cluster the way Jepsen's clients do and
// records every operation in a history: a register workload (concurrent
// reads and writes of a few keys on several shards, for a linearizability
// check) and a set workload (each key written once, then everything read
// back after the faults heal, for lost and phantom writes).
package workload

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/client"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

// Reader reads a key. found is false, with a nil error, when the key has no
// value.
type Reader interface {
	Get(ctx context.Context, key string) (value string, found bool, err error)
}

// Writer writes a key.
type Writer interface {
	Put(ctx context.Context, key, value string) error
}

// ReadWriter reads and writes.
type ReadWriter interface {
	Reader
	Writer
}

// Swapper compare-and-swaps a key: it writes value only if the key's
// current value is old. A comparison that fails returns an error for which
// errors.Is(err, client.ErrConditionFailed) holds.
type Swapper interface {
	CompareAndSwap(ctx context.Context, key, old, value string) error
}

// Library is a ReadWriter over the client library: it routes each call to
// the shard's leader and retries within the call's deadline (writes with
// their request ID, so at most once).
type Library struct {
	C *client.Client
}

// Get implements Reader.
func (l Library) Get(ctx context.Context, key string) (string, bool, error) {
	v, err := l.C.Get(ctx, []byte(key))
	if errors.Is(err, client.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(v.Data), true, nil
}

// Put implements Writer.
func (l Library) Put(ctx context.Context, key, value string) error {
	_, err := l.C.Put(ctx, []byte(key), []byte(value))
	return err
}

// CompareAndSwap implements Swapper.
func (l Library) CompareAndSwap(ctx context.Context, key, old, value string) error {
	_, err := l.C.CompareAndSwap(ctx, []byte(key), []byte(old), []byte(value))
	return err
}

// Direct is a Reader that sends each read, once, to one node over raw
// gRPC, bypassing the client library's routing. Any node must answer any
// read linearizably (a node that does not lead the shard forwards it), so
// reads through Direct are as legitimate as any; they are also how the
// negative control gets reads onto a replica that no longer leads.
type Direct struct {
	KV ringkvv1.KVClient
}

// Get implements Reader.
func (d Direct) Get(ctx context.Context, key string) (string, bool, error) {
	resp, err := d.KV.Get(ctx, &ringkvv1.GetRequest{Key: []byte(key)})
	if status.Code(err) == codes.NotFound {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(resp.GetValue()), true, nil
}

// outcome classifies a call's error: nil is OK; a rejection of the request
// itself (InvalidArgument) or a failed comparison (ErrConditionFailed)
// definitely did not happen; anything else (a deadline, Unavailable, a lost
// connection) may or may not have.
func outcome(err error) history.Outcome {
	switch {
	case err == nil:
		return history.OK
	case errors.Is(err, client.ErrInvalidArgument), status.Code(err) == codes.InvalidArgument,
		errors.Is(err, client.ErrConditionFailed):
		return history.Fail
	}
	return history.Unknown
}

// conditionFailed reports a failed comparison: the write did not happen
// because the key's value was not the expected one, which is an
// observation of the key, unlike a rejected request. A rejection of the
// request itself takes precedence (it was never evaluated).
func conditionFailed(err error) bool {
	return errors.Is(err, client.ErrConditionFailed) &&
		!errors.Is(err, client.ErrInvalidArgument) && status.Code(err) != codes.InvalidArgument
}
