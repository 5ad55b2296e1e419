package rpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// Terms finds the current Raft term of a group hosted on this node.
type Terms interface {
	Term(group uint64) (term uint64, ok bool)
}

// ReadConfirmServer answers other nodes' leadership confirmations (see
// replication.Group's read barrier).
type ReadConfirmServer struct {
	ringkvv1.UnimplementedReadConfirmServer
	terms Terms
}

// NewReadConfirmServer returns a ReadConfirm service over terms.
func NewReadConfirmServer(terms Terms) *ReadConfirmServer {
	return &ReadConfirmServer{terms: terms}
}

// ConfirmTerm implements ringkvv1.ReadConfirmServer.
func (s *ReadConfirmServer) ConfirmTerm(_ context.Context, req *ringkvv1.ConfirmTermRequest) (*ringkvv1.ConfirmTermResponse, error) {
	term, ok := s.terms.Term(req.GetGroup())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "unknown raft group %d", req.GetGroup())
	}
	return &ringkvv1.ConfirmTermResponse{Current: term == req.GetTerm(), Term: term}, nil
}

// Confirmer implements replication.TermConfirmer over the peers'
// ReadConfirm services.
type Confirmer struct {
	conns Conns
}

// NewConfirmer returns a Confirmer that reaches peers through conns.
func NewConfirmer(conns Conns) *Confirmer { return &Confirmer{conns: conns} }

// ConfirmTerm implements replication.TermConfirmer.
func (c *Confirmer) ConfirmTerm(ctx context.Context, addr string, group, term uint64) (bool, uint64, error) {
	cc, err := c.conns.Conn(addr)
	if err != nil {
		return false, 0, fmt.Errorf("confirm term with %s: %w", addr, err)
	}
	resp, err := ringkvv1.NewReadConfirmClient(cc).ConfirmTerm(ctx, &ringkvv1.ConfirmTermRequest{Group: group, Term: term})
	if err != nil {
		return false, 0, fmt.Errorf("confirm term with %s: %w", addr, err)
	}
	return resp.GetCurrent(), resp.GetTerm(), nil
}
