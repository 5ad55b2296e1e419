package node

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// faultNet lets a test cut links between in-process nodes. Every node dials
// its peers through dialer(from); a cut link refuses new connections and
// closes the ones it carried, in both directions, so Raft traffic and
// forwarded requests between the two nodes stop, as in a network partition.
type faultNet struct {
	mu    sync.Mutex
	cut   map[[2]string]bool       // link between two addresses (sorted)
	conns map[[2]string][]net.Conn // open connections per link
}

func newFaultNet() *faultNet {
	return &faultNet{cut: map[[2]string]bool{}, conns: map[[2]string][]net.Conn{}}
}

func link(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// dialer returns a gRPC context dialer for the node at address from.
func (f *faultNet) dialer(from string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		l := link(from, addr)
		f.mu.Lock()
		cut := f.cut[l]
		f.mu.Unlock()
		if cut {
			return nil, fmt.Errorf("faultnet: link %s-%s is cut", from, addr)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.cut[l] {
			c.Close()
			return nil, fmt.Errorf("faultnet: link %s-%s is cut", from, addr)
		}
		f.conns[l] = append(f.conns[l], c)
		return c, nil
	}
}

// isolate cuts every link between addr and others.
func (f *faultNet) isolate(addr string, others ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range others {
		l := link(addr, o)
		f.cut[l] = true
		for _, c := range f.conns[l] {
			c.Close()
		}
		f.conns[l] = nil
	}
}

// heal restores every link.
func (f *faultNet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = map[[2]string]bool{}
}
