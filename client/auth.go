package client

import (
	"context"
	"encoding/base64"

	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// WithCredentials makes every call carry user name and password, for a
// cluster with auth enabled. The credentials are sent only over TLS (see
// WithTLS): without it every call fails, New included, rather than send a
// password in the clear. A call the cluster refuses fails with a
// *ServerError of code codes.Unauthenticated (bad credentials) or
// codes.PermissionDenied (the user's roles do not allow it); neither is
// retried.
func WithCredentials(user, password string) Option {
	v := ringkvv1.AuthSchemeBasic + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	return WithDialOptions(grpc.WithPerRPCCredentials(authorization(v)))
}

// WithToken makes every call carry a user's static token. Like
// WithCredentials, it needs TLS.
func WithToken(token string) Option {
	return WithDialOptions(grpc.WithPerRPCCredentials(authorization(ringkvv1.AuthSchemeBearer + token)))
}

// authorization is a credentials.PerRPCCredentials that sends one
// authorization header value.
type authorization string

func (a authorization) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{ringkvv1.MetadataAuthorization: string(a)}, nil
}

// RequireTransportSecurity keeps credentials off plaintext connections.
func (a authorization) RequireTransportSecurity() bool { return true }

// Access is what a role's permission allows on the keys with its prefix.
type Access string

// Access levels.
const (
	// AccessRead allows Get, MultiGet, Scan, Watch, and a Txn's compares
	// and gets.
	AccessRead Access = "read"
	// AccessReadWrite allows reads and Put, Delete, MultiPut and a Txn's
	// writes.
	AccessReadWrite Access = "readwrite"
)

// AuthStatus says whether auth is on and who the caller is.
type AuthStatus struct {
	Enabled bool
	// User is the caller's user name, "" when auth is disabled.
	User string
	// Roles are the caller's roles.
	Roles []string
}

// User is a user as UserList reports it; secrets are never sent back.
type User struct {
	Name        string
	Roles       []string
	HasPassword bool
	HasToken    bool
}

// Role is a role and its permissions.
type Role struct {
	Name  string
	Perms []Permission
}

// Permission grants Access on the keys that start with Prefix (every key
// when it is empty).
type Permission struct {
	Prefix []byte
	Access Access
}

// authCall runs one call of the Auth service on any node, as invoke does.
func (c *Client) authCall(ctx context.Context, op string, f func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) error) error {
	return c.invoke(ctx, request{op: op,
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			return f(ctx, ringkvv1.NewAuthClient(cc), opts...)
		}})
}

// authChange runs a change of the Auth service and returns the metadata
// epoch after it. The node that serves it has applied the change when it
// returns; the other nodes apply it within their replication lag.
//
// Like RemoveNode, a change may be retried on another node when the outcome
// of an attempt says nothing about it; a retry of an add may then fail with
// codes.AlreadyExists, and of a delete with codes.NotFound.
func (c *Client) authChange(ctx context.Context, op string, f func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error)) (uint64, error) {
	var resp *ringkvv1.AuthChangeResponse
	err := c.authCall(ctx, op, func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) error {
		var err error
		resp, err = f(ctx, ac, opts...)
		return err
	})
	if err != nil {
		return 0, err
	}
	return resp.GetEpoch(), nil
}

// AuthEnable turns authentication on. The cluster refuses (a *ServerError
// matching ErrFailedPrecondition) unless user "root" exists with role
// "root", and when it runs without TLS.
func (c *Client) AuthEnable(ctx context.Context) (epoch uint64, err error) {
	return c.authChange(ctx, "auth enable", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error) {
		return ac.Enable(ctx, &ringkvv1.AuthEnableRequest{}, opts...)
	})
}

// AuthDisable turns authentication off.
func (c *Client) AuthDisable(ctx context.Context) (epoch uint64, err error) {
	return c.authChange(ctx, "auth disable", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error) {
		return ac.Disable(ctx, &ringkvv1.AuthDisableRequest{}, opts...)
	})
}

// AuthStatus reports whether auth is on and who the client is.
func (c *Client) AuthStatus(ctx context.Context) (*AuthStatus, error) {
	var resp *ringkvv1.AuthStatusResponse
	err := c.authCall(ctx, "auth status", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) error {
		var err error
		resp, err = ac.Status(ctx, &ringkvv1.AuthStatusRequest{}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &AuthStatus{Enabled: resp.GetEnabled(), User: resp.GetUser(), Roles: resp.GetRoles()}, nil
}

// UserAdd adds a user that authenticates with password, or token, or
// either (at least one must be set; the other may be ""). The node hashes
// them; only the hashes are stored.
func (c *Client) UserAdd(ctx context.Context, name, password, token string) (epoch uint64, err error) {
	return c.authChange(ctx, "user add", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error) {
		return ac.UserAdd(ctx, &ringkvv1.UserAddRequest{Name: name, Password: password, Token: token}, opts...)
	})
}

// UserDelete deletes a user.
func (c *Client) UserDelete(ctx context.Context, name string) (epoch uint64, err error) {
	return c.authChange(ctx, "user delete", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error) {
		return ac.UserDelete(ctx, &ringkvv1.UserDeleteRequest{Name: name}, opts...)
	})
}

// UserGrantRole gives user role.
func (c *Client) UserGrantRole(ctx context.Context, user, role string) (epoch uint64, err error) {
	return c.authChange(ctx, "user grant-role", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error) {
		return ac.UserGrantRole(ctx, &ringkvv1.UserRoleRequest{User: user, Role: role}, opts...)
	})
}

// UserRevokeRole takes role from user.
func (c *Client) UserRevokeRole(ctx context.Context, user, role string) (epoch uint64, err error) {
	return c.authChange(ctx, "user revoke-role", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error) {
		return ac.UserRevokeRole(ctx, &ringkvv1.UserRoleRequest{User: user, Role: role}, opts...)
	})
}

// UserList returns the users by ascending name.
func (c *Client) UserList(ctx context.Context) ([]User, error) {
	var resp *ringkvv1.UserListResponse
	err := c.authCall(ctx, "user list", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) error {
		var err error
		resp, err = ac.UserList(ctx, &ringkvv1.UserListRequest{}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(resp.GetUsers()))
	for _, u := range resp.GetUsers() {
		out = append(out, User{Name: u.GetName(), Roles: u.GetRoles(), HasPassword: u.GetHasPassword(), HasToken: u.GetHasToken()})
	}
	return out, nil
}

// RoleAdd adds a role without permissions.
func (c *Client) RoleAdd(ctx context.Context, name string) (epoch uint64, err error) {
	return c.authChange(ctx, "role add", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error) {
		return ac.RoleAdd(ctx, &ringkvv1.RoleAddRequest{Name: name}, opts...)
	})
}

// RoleDelete deletes a role and takes it from every user.
func (c *Client) RoleDelete(ctx context.Context, name string) (epoch uint64, err error) {
	return c.authChange(ctx, "role delete", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error) {
		return ac.RoleDelete(ctx, &ringkvv1.RoleDeleteRequest{Name: name}, opts...)
	})
}

// RoleGrant grants role access on the keys with prefix (nil or empty:
// every key), replacing its access on that same prefix.
func (c *Client) RoleGrant(ctx context.Context, role string, prefix []byte, access Access) (epoch uint64, err error) {
	a := ringkvv1.Access_ACCESS_UNSPECIFIED // the node refuses it
	switch access {
	case AccessRead:
		a = ringkvv1.Access_ACCESS_READ
	case AccessReadWrite:
		a = ringkvv1.Access_ACCESS_READWRITE
	}
	return c.authChange(ctx, "role grant", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error) {
		return ac.RoleGrant(ctx, &ringkvv1.RoleGrantRequest{Role: role, Prefix: prefix, Access: a}, opts...)
	})
}

// RoleRevoke removes role's permission on exactly prefix.
func (c *Client) RoleRevoke(ctx context.Context, role string, prefix []byte) (epoch uint64, err error) {
	return c.authChange(ctx, "role revoke", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) (*ringkvv1.AuthChangeResponse, error) {
		return ac.RoleRevoke(ctx, &ringkvv1.RoleRevokeRequest{Role: role, Prefix: prefix}, opts...)
	})
}

// RoleList returns the roles by ascending name.
func (c *Client) RoleList(ctx context.Context) ([]Role, error) {
	var resp *ringkvv1.RoleListResponse
	err := c.authCall(ctx, "role list", func(ctx context.Context, ac ringkvv1.AuthClient, opts ...grpc.CallOption) error {
		var err error
		resp, err = ac.RoleList(ctx, &ringkvv1.RoleListRequest{}, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Role, 0, len(resp.GetRoles()))
	for _, r := range resp.GetRoles() {
		role := Role{Name: r.GetName()}
		for _, p := range r.GetPerms() {
			a := Access("")
			switch p.GetAccess() {
			case ringkvv1.Access_ACCESS_READ:
				a = AccessRead
			case ringkvv1.Access_ACCESS_READWRITE:
				a = AccessReadWrite
			}
			role.Perms = append(role.Perms, Permission{Prefix: p.GetPrefix(), Access: a})
		}
		out = append(out, role)
	}
	return out, nil
}
