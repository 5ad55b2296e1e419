package rpc

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/cluster"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// AuthAdmin is what the Auth service needs of the node.
type AuthAdmin interface {
	// Metadata returns the node's current copy of the cluster metadata.
	Metadata() *cluster.State
	// ProposeMeta commits a metadata command through the metadata leader
	// and returns once this node has applied it, with the epoch after it.
	ProposeMeta(ctx context.Context, cmd []byte) (epoch uint64, err error)
	// CanEnforceAuth returns an error wrapping cluster.ErrAuthRefused when
	// this node could not keep clients out of the internal services (it
	// serves without TLS).
	CanEnforceAuth() error
}

// AuthServer implements the Auth service. Passwords and tokens are hashed
// here, on the node that received them, so only their hashes enter the
// metadata log. The Guard decides who may call it.
type AuthServer struct {
	ringkvv1.UnimplementedAuthServer
	admin AuthAdmin
}

// NewAuthServer returns an Auth service over admin.
func NewAuthServer(admin AuthAdmin) *AuthServer { return &AuthServer{admin: admin} }

// propose commits cmd (or fails with its constructor's error).
func (s *AuthServer) propose(ctx context.Context, cmd []byte, err error) (*ringkvv1.AuthChangeResponse, error) {
	if err != nil {
		return nil, toStatus(err)
	}
	epoch, err := s.admin.ProposeMeta(ctx, cmd)
	if err != nil {
		return nil, toStatus(err)
	}
	return &ringkvv1.AuthChangeResponse{Epoch: epoch}, nil
}

// Enable implements ringkvv1.AuthServer.
func (s *AuthServer) Enable(ctx context.Context, _ *ringkvv1.AuthEnableRequest) (*ringkvv1.AuthChangeResponse, error) {
	if err := s.admin.CanEnforceAuth(); err != nil {
		return nil, toStatus(err)
	}
	return s.propose(ctx, cluster.AuthEnableCommand(), nil)
}

// Disable implements ringkvv1.AuthServer.
func (s *AuthServer) Disable(ctx context.Context, _ *ringkvv1.AuthDisableRequest) (*ringkvv1.AuthChangeResponse, error) {
	return s.propose(ctx, cluster.AuthDisableCommand(), nil)
}

// Status implements ringkvv1.AuthServer.
func (s *AuthServer) Status(ctx context.Context, _ *ringkvv1.AuthStatusRequest) (*ringkvv1.AuthStatusResponse, error) {
	a := s.admin.Metadata().Auth
	resp := &ringkvv1.AuthStatusResponse{Enabled: a.Enabled, User: CallerUser(ctx)}
	if u, ok := a.User(resp.User); ok {
		resp.Roles = u.Roles
	}
	return resp, nil
}

// UserAdd implements ringkvv1.AuthServer.
func (s *AuthServer) UserAdd(ctx context.Context, req *ringkvv1.UserAddRequest) (*ringkvv1.AuthChangeResponse, error) {
	if err := cluster.ValidateAuthName("user", req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	var pwHash, tokHash string
	if p := req.GetPassword(); p != "" {
		var err error
		if pwHash, err = cluster.HashPassword(p); err != nil {
			return nil, toStatus(err)
		}
	}
	if t := req.GetToken(); t != "" {
		if err := cluster.ValidateToken(t); err != nil {
			return nil, toStatus(err)
		}
		tokHash = cluster.HashToken(t)
	}
	cmd, err := cluster.UserAddCommand(req.GetName(), pwHash, tokHash)
	return s.propose(ctx, cmd, err)
}

// UserDelete implements ringkvv1.AuthServer.
func (s *AuthServer) UserDelete(ctx context.Context, req *ringkvv1.UserDeleteRequest) (*ringkvv1.AuthChangeResponse, error) {
	cmd, err := cluster.UserDeleteCommand(req.GetName())
	return s.propose(ctx, cmd, err)
}

// UserList implements ringkvv1.AuthServer.
func (s *AuthServer) UserList(context.Context, *ringkvv1.UserListRequest) (*ringkvv1.UserListResponse, error) {
	resp := &ringkvv1.UserListResponse{}
	for _, u := range s.admin.Metadata().Auth.Users {
		resp.Users = append(resp.Users, &ringkvv1.UserInfo{
			Name: u.Name, Roles: u.Roles, HasPassword: u.PasswordHash != "", HasToken: u.TokenHash != "",
		})
	}
	return resp, nil
}

// UserGrantRole implements ringkvv1.AuthServer.
func (s *AuthServer) UserGrantRole(ctx context.Context, req *ringkvv1.UserRoleRequest) (*ringkvv1.AuthChangeResponse, error) {
	cmd, err := cluster.UserGrantRoleCommand(req.GetUser(), req.GetRole())
	return s.propose(ctx, cmd, err)
}

// UserRevokeRole implements ringkvv1.AuthServer.
func (s *AuthServer) UserRevokeRole(ctx context.Context, req *ringkvv1.UserRoleRequest) (*ringkvv1.AuthChangeResponse, error) {
	cmd, err := cluster.UserRevokeRoleCommand(req.GetUser(), req.GetRole())
	return s.propose(ctx, cmd, err)
}

// RoleAdd implements ringkvv1.AuthServer.
func (s *AuthServer) RoleAdd(ctx context.Context, req *ringkvv1.RoleAddRequest) (*ringkvv1.AuthChangeResponse, error) {
	cmd, err := cluster.RoleAddCommand(req.GetName())
	return s.propose(ctx, cmd, err)
}

// RoleDelete implements ringkvv1.AuthServer.
func (s *AuthServer) RoleDelete(ctx context.Context, req *ringkvv1.RoleDeleteRequest) (*ringkvv1.AuthChangeResponse, error) {
	cmd, err := cluster.RoleDeleteCommand(req.GetName())
	return s.propose(ctx, cmd, err)
}

// RoleList implements ringkvv1.AuthServer.
func (s *AuthServer) RoleList(context.Context, *ringkvv1.RoleListRequest) (*ringkvv1.RoleListResponse, error) {
	resp := &ringkvv1.RoleListResponse{}
	for _, r := range s.admin.Metadata().Auth.Roles {
		info := &ringkvv1.RoleInfo{Name: r.Name}
		for _, p := range r.Perms {
			info.Perms = append(info.Perms, &ringkvv1.Permission{Prefix: p.Prefix, Access: accessToProto(p.Access)})
		}
		resp.Roles = append(resp.Roles, info)
	}
	return resp, nil
}

// RoleGrant implements ringkvv1.AuthServer.
func (s *AuthServer) RoleGrant(ctx context.Context, req *ringkvv1.RoleGrantRequest) (*ringkvv1.AuthChangeResponse, error) {
	var access cluster.Access
	switch req.GetAccess() {
	case ringkvv1.Access_ACCESS_READ:
		access = cluster.AccessRead
	case ringkvv1.Access_ACCESS_READWRITE:
		access = cluster.AccessReadWrite
	default:
		return nil, status.Errorf(codes.InvalidArgument, "access %v: want ACCESS_READ or ACCESS_READWRITE", req.GetAccess())
	}
	cmd, err := cluster.RoleGrantCommand(req.GetRole(), req.GetPrefix(), access)
	return s.propose(ctx, cmd, err)
}

// RoleRevoke implements ringkvv1.AuthServer.
func (s *AuthServer) RoleRevoke(ctx context.Context, req *ringkvv1.RoleRevokeRequest) (*ringkvv1.AuthChangeResponse, error) {
	cmd, err := cluster.RoleRevokeCommand(req.GetRole(), req.GetPrefix())
	return s.propose(ctx, cmd, err)
}

func accessToProto(a cluster.Access) ringkvv1.Access {
	switch a {
	case cluster.AccessRead:
		return ringkvv1.Access_ACCESS_READ
	case cluster.AccessReadWrite:
		return ringkvv1.Access_ACCESS_READWRITE
	}
	return ringkvv1.Access_ACCESS_UNSPECIFIED
}
