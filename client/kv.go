package client

import (
	"context"

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
	return Value{Data: resp.GetValue(), Version: resp.GetVersion(), CreateVersion: resp.GetCreateVersion()}, nil
}

// Put sets the value of key and returns the key's new version.
//
// Put is exactly-once: its retries carry the same request ID, so the write
// is applied at most once however many attempts it takes. When Put returns
// an error other than an ErrInvalidArgument one, the write may or may not
// have been applied; a Get tells.
func (c *Client) Put(ctx context.Context, key, value []byte) (version uint64, err error) {
	id := c.seq.begin()
	defer c.seq.end(id.GetSeq())
	var resp *ringkvv1.PutResponse
	err = c.invoke(ctx, request{op: "put", keyed: true, key: key,
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewKVClient(cc).Put(ctx, &ringkvv1.PutRequest{Key: key, Value: value, RequestId: id}, opts...)
			return err
		}})
	if err != nil {
		return 0, err
	}
	return resp.GetVersion(), nil
}

// Delete removes key. deleted is false when the key did not exist; version
// is the Raft index of the delete. Delete is exactly-once like Put.
func (c *Client) Delete(ctx context.Context, key []byte) (deleted bool, version uint64, err error) {
	id := c.seq.begin()
	defer c.seq.end(id.GetSeq())
	var resp *ringkvv1.DeleteResponse
	err = c.invoke(ctx, request{op: "delete", keyed: true, key: key,
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewKVClient(cc).Delete(ctx, &ringkvv1.DeleteRequest{Key: key, RequestId: id}, opts...)
			return err
		}})
	if err != nil {
		return false, 0, err
	}
	return resp.GetDeleted(), resp.GetVersion(), nil
}
