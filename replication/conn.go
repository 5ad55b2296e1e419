package replication

import (
	"google.golang.org/grpc"

	"github.com/hashicorp/raft"
)

// Conn returns the Mux's pooled connection to the peer node at addr. The
// node's other node-to-node calls (forwarded requests) use it too, so two
// nodes share exactly one connection whatever the number of groups.
func (m *Mux) Conn(addr string) (*grpc.ClientConn, error) {
	p, err := m.peer(raft.ServerAddress(addr))
	if err != nil {
		return nil, err
	}
	return p.conn, nil
}
