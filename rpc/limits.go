package rpc

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/shard"
)

// Limits bounds the size of client input.
type Limits struct {
	// MaxKeySize is the largest key in bytes. Default 4096.
	MaxKeySize int
	// MaxValueSize is the largest value in bytes. Default 1 MiB.
	MaxValueSize int
}

// Default limits.
const (
	DefaultMaxKeySize   = 4 << 10
	DefaultMaxValueSize = 1 << 20
	// MaxValueSizeLimit bounds the configurable value limit: 64 entries of
	// the largest value must fit one gRPC message (see node).
	MaxValueSizeLimit = 16 << 20
	// maxClientIDSize bounds RequestID.client_id.
	maxClientIDSize = 64
)

// Validate reports limits the state machine cannot honour.
func (l Limits) Validate() error {
	l = l.WithDefaults()
	if l.MaxKeySize < 1 || l.MaxKeySize > shard.MaxKeySize {
		return fmt.Errorf("max key size %d: want 1..%d bytes", l.MaxKeySize, shard.MaxKeySize)
	}
	if l.MaxValueSize < 0 || l.MaxValueSize > MaxValueSizeLimit {
		return fmt.Errorf("max value size %d: want 0..%d bytes", l.MaxValueSize, MaxValueSizeLimit)
	}
	return nil
}

// WithDefaults returns l with zero fields set to their defaults and the key
// limit capped at what the shard state machine accepts.
func (l Limits) WithDefaults() Limits {
	if l.MaxKeySize == 0 {
		l.MaxKeySize = DefaultMaxKeySize
	}
	if l.MaxValueSize == 0 {
		l.MaxValueSize = DefaultMaxValueSize
	}
	l.MaxKeySize = min(l.MaxKeySize, shard.MaxKeySize)
	return l
}

func (l Limits) checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return status.Error(codes.InvalidArgument, "key is empty")
	case len(key) > l.MaxKeySize:
		return status.Errorf(codes.InvalidArgument, "key is %d bytes; the limit is %d bytes", len(key), l.MaxKeySize)
	}
	return nil
}

func (l Limits) checkValue(v []byte) error {
	if len(v) > l.MaxValueSize {
		return status.Errorf(codes.InvalidArgument, "value is %d bytes; the limit is %d bytes", len(v), l.MaxValueSize)
	}
	return nil
}

func checkClientID(id []byte) error {
	if len(id) > maxClientIDSize {
		return status.Errorf(codes.InvalidArgument, "request_id.client_id is %d bytes; the limit is %d bytes", len(id), maxClientIDSize)
	}
	return nil
}

// MaxMessageSize returns the gRPC message size a server with these limits
// must accept: the largest key and value plus room for the envelope.
func (l Limits) MaxMessageSize() int {
	return l.MaxKeySize + l.MaxValueSize + 64<<10
}
