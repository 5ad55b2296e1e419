package client

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// Value is a key's value with its versions.
type Value struct {
	// Data is the value's bytes.
	Data []byte
	// Version is the Raft index of the write that set the value; it grows
	// with every write of the key.
	Version uint64
	// CreateVersion is the Raft index of the write that created the key.
	CreateVersion uint64
	// TTL is the time the key had left to live when it was read, rounded
	// up to a millisecond; 0 when it has no TTL.
	TTL time.Duration
}

// Get returns the value of key. It returns an error that wraps ErrNotFound
// when the key has no value. Reads are linearizable.
func (c *Client) Get(ctx context.Context, key []byte) (Value, error) {
	var resp *ringkvv1.GetResponse
	err := c.invoke(ctx, request{op: "get", keyed: true, key: key,
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewKVClient(cc).Get(ctx, &ringkvv1.GetRequest{Key: key}, opts...)
			return err
		}})
	if err != nil {
		return Value{}, err
	}
	return Value{Data: resp.GetValue(), Version: resp.GetVersion(), CreateVersion: resp.GetCreateVersion(),
		TTL: time.Duration(resp.GetTtlMs()) * time.Millisecond}, nil
}

// Put sets the value of key and returns the key's new version. Options make
// it conditional (IfAbsent, IfVersion, IfValue) or give the key a TTL
// (WithTTL). A condition that does not hold writes nothing and returns a
// *ConditionError (errors.Is(err, ErrConditionFailed)) with the key's
// current version.
//
// Put is exactly-once: its retries carry the same request ID, so the write
// is applied at most once however many attempts it takes. When Put returns
// an error other than an ErrInvalidArgument or ErrConditionFailed one, the
// write may or may not have been applied; a Get tells.
func (c *Client) Put(ctx context.Context, key, value []byte, options ...WriteOption) (version uint64, err error) {
	w := writeOptions(options)
	id := c.seq.begin()
	defer c.seq.end(id.GetSeq())
	var resp *ringkvv1.PutResponse
	err = c.invoke(ctx, request{op: "put", keyed: true, key: key,
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewKVClient(cc).Put(ctx, &ringkvv1.PutRequest{Key: key, Value: value, RequestId: id,
				Condition: w.cond, TtlMs: w.ttlMs}, opts...)
			return err
		}})
	if err != nil {
		return 0, err
	}
	if w.cond != nil && !resp.GetSucceeded() {
		return 0, &ConditionError{Op: "put", Key: key, Version: resp.GetVersion()}
	}
	return resp.GetVersion(), nil
}

// Delete removes key. deleted is false when the key did not exist; version
// is the Raft index of the delete. IfVersion, IfValue or IfAbsent(false)
// make it conditional, as for Put. Delete is exactly-once like Put.
func (c *Client) Delete(ctx context.Context, key []byte, options ...WriteOption) (deleted bool, version uint64, err error) {
	w := writeOptions(options)
	if w.ttlMs != 0 {
		return false, 0, fmt.Errorf("ringkv: delete: %w: a delete takes no TTL", ErrInvalidArgument)
	}
	id := c.seq.begin()
	defer c.seq.end(id.GetSeq())
	var resp *ringkvv1.DeleteResponse
	err = c.invoke(ctx, request{op: "delete", keyed: true, key: key,
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewKVClient(cc).Delete(ctx, &ringkvv1.DeleteRequest{Key: key, RequestId: id, Condition: w.cond}, opts...)
			return err
		}})
	if err != nil {
		return false, 0, err
	}
	if w.cond != nil && !resp.GetSucceeded() {
		return false, 0, &ConditionError{Op: "delete", Key: key, Version: resp.GetVersion()}
	}
	return resp.GetDeleted(), resp.GetVersion(), nil
}

// CompareAndSwap sets key to value only if its current value is old, and
// returns the new version. When the value differs (or the key is missing)
// it writes nothing and returns a *ConditionError with the current version.
func (c *Client) CompareAndSwap(ctx context.Context, key, old, value []byte, options ...WriteOption) (version uint64, err error) {
	return c.Put(ctx, key, value, append(options, IfValue(old))...)
}
