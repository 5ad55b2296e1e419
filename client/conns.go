package client

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// conns holds one gRPC connection per node address, opened on first use and
// reused by every call. grpc.ClientConn reconnects on its own, so a
// connection is never replaced, only closed with the pool.
type conns struct {
	dialOptions []grpc.DialOption

	mu struct {
		sync.Mutex
		closed bool
		byAddr map[string]*grpc.ClientConn
	}
}

func newConns(opts []grpc.DialOption) *conns {
	p := &conns{
		dialOptions: append([]grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
		}, opts...),
	}
	p.mu.byAddr = make(map[string]*grpc.ClientConn)
	return p
}

// get returns the connection to addr. It does not wait for the connection
// to be established: the first RPC on it does.
func (p *conns) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return nil, ErrClosed
	}
	if cc := p.mu.byAddr[addr]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, p.dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("ringkv: connect to %s: %w", addr, err)
	}
	p.mu.byAddr[addr] = cc
	return cc, nil
}

// close closes every connection; get fails from then on.
func (p *conns) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return nil
	}
	p.mu.closed = true
	var errs []error
	for addr, cc := range p.mu.byAddr {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("ringkv: close connection to %s: %w", addr, err))
		}
	}
	p.mu.byAddr = nil
	return errors.Join(errs...)
}
