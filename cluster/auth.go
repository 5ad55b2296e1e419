package cluster

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Auth errors, returned in an Apply result and by the validation functions.
// Callers match them with errors.Is; the message names the user or role.
var (
	// ErrAuthNotFound: a command names a user or a role, or revokes a
	// permission or role, that does not exist.
	ErrAuthNotFound = errors.New("not found")
	// ErrAuthExists: a user or role of that name exists already, or
	// another user has that token.
	ErrAuthExists = errors.New("already exists")
	// ErrAuthRefused: the change would break an auth rule: enabling auth
	// without a root user holding the root role, or taking that away while
	// auth is on.
	ErrAuthRefused = errors.New("auth change refused")
	// ErrAuthInvalid: a name, password, token, prefix or access level is
	// malformed. The message states the limit.
	ErrAuthInvalid = errors.New("invalid auth argument")
)

// Access is the access a permission grants on the keys with its prefix.
type Access string

// Access levels. ReadWrite includes Read.
const (
	AccessRead      Access = "read"
	AccessReadWrite Access = "readwrite"
)

// ParseAccess parses "read" or "readwrite".
func ParseAccess(s string) (Access, error) {
	switch a := Access(s); a {
	case AccessRead, AccessReadWrite:
		return a, nil
	}
	return "", fmt.Errorf("%w: access %q: want %q or %q", ErrAuthInvalid, s, AccessRead, AccessReadWrite)
}

// covers reports whether a grants want.
func (a Access) covers(want Access) bool {
	return a == AccessReadWrite || a == want
}

// Root is the name of the root user and of the root role. A user holding
// the root role may do everything: every key, cluster administration, and
// user and role management. Auth cannot be enabled unless user root exists
// and holds role root (etcd's rule), so an administrator can always get in.
const Root = "root"

// Limits of the auth metadata.
const (
	// MaxAuthName bounds a user or role name, in bytes.
	MaxAuthName = 64
	// MaxPassword is bcrypt's limit: it ignores what follows.
	MaxPassword = 72
	// MinToken and MaxToken bound a static token's length, in bytes. The
	// lower bound keeps tokens unguessable.
	MinToken = 16
	MaxToken = 256
	// MaxPrefix bounds a permission's key prefix, in bytes.
	MaxPrefix = 4096
	// MaxUsers, MaxRoles and MaxPerms bound the auth metadata, which every
	// node holds in memory and every metadata snapshot carries.
	MaxUsers = 1000
	MaxRoles = 1000
	MaxPerms = 100
)

// Auth is the cluster's authentication and authorization metadata. It is
// part of State, so it is replicated and snapshotted with it. Passwords and
// tokens are stored only as hashes.
type Auth struct {
	// Enabled turns authentication on: every client call must then carry
	// valid credentials and is checked against the caller's roles.
	Enabled bool `json:"enabled,omitempty"`
	// Users by ascending name.
	Users []User `json:"users,omitempty"`
	// Roles by ascending name.
	Roles []Role `json:"roles,omitempty"`
}

// User is one user. A user authenticates with a password, a static token,
// or either when it has both.
type User struct {
	Name string `json:"name"`
	// PasswordHash is the bcrypt hash of the password ("" for none).
	PasswordHash string `json:"password_hash,omitempty"`
	// TokenHash is the hex SHA-256 of the static token ("" for none).
	TokenHash string `json:"token_hash,omitempty"`
	// Roles are the names of the user's roles, ascending.
	Roles []string `json:"roles,omitempty"`
}

// Role is a named set of permissions.
type Role struct {
	Name string `json:"name"`
	// Perms by ascending prefix; at most one per prefix.
	Perms []Permission `json:"perms,omitempty"`
}

// Permission grants Access on every key that starts with Prefix (every
// key when Prefix is empty).
type Permission struct {
	Prefix []byte `json:"prefix"`
	Access Access `json:"access"`
}

// clone returns a deep copy of a.
func (a Auth) clone() Auth {
	c := Auth{Enabled: a.Enabled, Users: slices.Clone(a.Users), Roles: slices.Clone(a.Roles)}
	for i := range c.Users {
		c.Users[i].Roles = slices.Clone(c.Users[i].Roles)
	}
	for i := range c.Roles {
		c.Roles[i].Perms = slices.Clone(c.Roles[i].Perms)
	}
	return c
}

// User returns the user named name.
func (a *Auth) User(name string) (User, bool) {
	i, ok := slices.BinarySearchFunc(a.Users, name, func(u User, n string) int { return strings.Compare(u.Name, n) })
	if !ok {
		return User{}, false
	}
	return a.Users[i], true
}

// Role returns the role named name.
func (a *Auth) Role(name string) (Role, bool) {
	i, ok := slices.BinarySearchFunc(a.Roles, name, func(r Role, n string) int { return strings.Compare(r.Name, n) })
	if !ok {
		return Role{}, false
	}
	return a.Roles[i], true
}

// UserByToken returns the user whose static token is token. Hashes are
// compared in constant time.
func (a *Auth) UserByToken(token string) (User, bool) {
	h := []byte(HashToken(token))
	for _, u := range a.Users {
		if u.TokenHash != "" && subtle.ConstantTimeCompare([]byte(u.TokenHash), h) == 1 {
			return u, true
		}
	}
	return User{}, false
}

// IsRoot reports whether user exists and holds the root role.
func (a *Auth) IsRoot(user string) bool {
	u, ok := a.User(user)
	return ok && slices.Contains(u.Roles, Root)
}

// Permits reports whether user may have want access to a key (prefix
// false) or to every key that starts with key (prefix true). The root role
// permits everything. A key is covered by a permission whose prefix it
// starts with; a prefix range only by one permission whose prefix is a
// prefix of the range's (several narrower permissions that together cover
// the range do not count).
func (a *Auth) Permits(user string, want Access, key []byte, prefix bool) bool {
	u, ok := a.User(user)
	if !ok {
		return false
	}
	for _, rn := range u.Roles {
		if rn == Root {
			return true
		}
		r, ok := a.Role(rn)
		if !ok {
			continue
		}
		for _, p := range r.Perms {
			if p.Access.covers(want) && bytes.HasPrefix(key, p.Prefix) {
				return true
			}
		}
	}
	return false
}

// HashPassword returns the bcrypt hash of password, after checking it.
// bcrypt is slow by design (tens of milliseconds).
func HashPassword(password string) (string, error) {
	if err := ValidatePassword(password); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether password matches the bcrypt hash (false
// for an empty hash).
func CheckPassword(hash, password string) bool {
	return hash != "" && bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// HashToken returns the hex SHA-256 of a static token. Tokens are long and
// random, so a fast hash suffices.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// ValidateAuthName checks a user or role name (what says which): 1-64
// printable ASCII characters other than space and ':' (kvctl's --user
// NAME:PASSWORD splits at the first ':').
func ValidateAuthName(what, name string) error {
	ok := len(name) >= 1 && len(name) <= MaxAuthName
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c > ' ' && c < 0x7f && c != ':'
	}
	if !ok {
		return fmt.Errorf("%w: %s name %q: want 1-%d printable ASCII characters, no space or ':'", ErrAuthInvalid, what, name, MaxAuthName)
	}
	return nil
}

// ValidatePassword checks a password: 1-72 bytes (bcrypt's limit).
func ValidatePassword(p string) error {
	if len(p) < 1 || len(p) > MaxPassword {
		return fmt.Errorf("%w: password of %d bytes: want 1-%d", ErrAuthInvalid, len(p), MaxPassword)
	}
	return nil
}

// ValidateToken checks a static token: 16-256 printable ASCII characters.
func ValidateToken(t string) error {
	ok := len(t) >= MinToken && len(t) <= MaxToken
	for i := 0; ok && i < len(t); i++ {
		ok = t[i] > ' ' && t[i] < 0x7f
	}
	if !ok {
		return fmt.Errorf("%w: token of %d bytes: want %d-%d printable ASCII characters", ErrAuthInvalid, len(t), MinToken, MaxToken)
	}
	return nil
}

// ValidatePrefix checks a permission's key prefix: at most 4096 bytes
// (empty: every key).
func ValidatePrefix(p []byte) error {
	if len(p) > MaxPrefix {
		return fmt.Errorf("%w: prefix of %d bytes: at most %d", ErrAuthInvalid, len(p), MaxPrefix)
	}
	return nil
}

// Auth commands' ops.
const (
	opAuthEnable     = "auth_enable"
	opAuthDisable    = "auth_disable"
	opUserAdd        = "user_add"
	opUserDelete     = "user_delete"
	opUserGrantRole  = "user_grant_role"
	opUserRevokeRole = "user_revoke_role"
	opRoleAdd        = "role_add"
	opRoleDelete     = "role_delete"
	opRoleGrant      = "role_grant"
	opRoleRevoke     = "role_revoke"
)

var authOps = map[string]bool{
	opAuthEnable: true, opAuthDisable: true, opUserAdd: true, opUserDelete: true,
	opUserGrantRole: true, opUserRevokeRole: true, opRoleAdd: true, opRoleDelete: true,
	opRoleGrant: true, opRoleRevoke: true,
}

// authArgs are an auth command's arguments. Only hashes of secrets ever
// enter the log.
type authArgs struct {
	User         string `json:"user,omitempty"`
	Role         string `json:"role,omitempty"`
	PasswordHash string `json:"password_hash,omitempty"`
	TokenHash    string `json:"token_hash,omitempty"`
	Prefix       []byte `json:"prefix,omitempty"`
	Access       Access `json:"access,omitempty"`
}

func authCommand(op string, a authArgs) []byte { return encode(command{Op: op, Auth: &a}) }

// AuthEnableCommand turns authentication on. It is refused unless user
// root exists with role root.
func AuthEnableCommand() []byte { return authCommand(opAuthEnable, authArgs{}) }

// AuthDisableCommand turns authentication off.
func AuthDisableCommand() []byte { return authCommand(opAuthDisable, authArgs{}) }

// UserAddCommand adds user name with the given hashes (HashPassword,
// HashToken); at least one must be set.
func UserAddCommand(name, passwordHash, tokenHash string) ([]byte, error) {
	a := authArgs{User: name, PasswordHash: passwordHash, TokenHash: tokenHash}
	if err := a.checkUserAdd(); err != nil {
		return nil, err
	}
	return authCommand(opUserAdd, a), nil
}

// UserDeleteCommand deletes user name.
func UserDeleteCommand(name string) ([]byte, error) {
	if err := ValidateAuthName("user", name); err != nil {
		return nil, err
	}
	return authCommand(opUserDelete, authArgs{User: name}), nil
}

// UserGrantRoleCommand gives role to user.
func UserGrantRoleCommand(user, role string) ([]byte, error) {
	return userRoleCommand(opUserGrantRole, user, role)
}

// UserRevokeRoleCommand takes role from user.
func UserRevokeRoleCommand(user, role string) ([]byte, error) {
	return userRoleCommand(opUserRevokeRole, user, role)
}

func userRoleCommand(op, user, role string) ([]byte, error) {
	if err := errors.Join(ValidateAuthName("user", user), ValidateAuthName("role", role)); err != nil {
		return nil, err
	}
	return authCommand(op, authArgs{User: user, Role: role}), nil
}

// RoleAddCommand adds an empty role.
func RoleAddCommand(name string) ([]byte, error) {
	if err := ValidateAuthName("role", name); err != nil {
		return nil, err
	}
	return authCommand(opRoleAdd, authArgs{Role: name}), nil
}

// RoleDeleteCommand deletes a role and takes it from every user.
func RoleDeleteCommand(name string) ([]byte, error) {
	if err := ValidateAuthName("role", name); err != nil {
		return nil, err
	}
	return authCommand(opRoleDelete, authArgs{Role: name}), nil
}

// RoleGrantCommand grants access on the keys with prefix to role,
// replacing the access it had on exactly that prefix.
func RoleGrantCommand(role string, prefix []byte, access Access) ([]byte, error) {
	if _, err := ParseAccess(string(access)); err != nil {
		return nil, err
	}
	if err := errors.Join(ValidateAuthName("role", role), ValidatePrefix(prefix)); err != nil {
		return nil, err
	}
	return authCommand(opRoleGrant, authArgs{Role: role, Prefix: prefix, Access: access}), nil
}

// RoleRevokeCommand removes role's permission on exactly prefix.
func RoleRevokeCommand(role string, prefix []byte) ([]byte, error) {
	if err := errors.Join(ValidateAuthName("role", role), ValidatePrefix(prefix)); err != nil {
		return nil, err
	}
	return authCommand(opRoleRevoke, authArgs{Role: role, Prefix: prefix}), nil
}

func (a authArgs) checkUserAdd() error {
	if err := ValidateAuthName("user", a.User); err != nil {
		return err
	}
	if a.PasswordHash == "" && a.TokenHash == "" {
		return fmt.Errorf("%w: user %q needs a password or a token", ErrAuthInvalid, a.User)
	}
	if a.TokenHash != "" {
		if b, err := hex.DecodeString(a.TokenHash); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%w: token hash of user %q is not a hex SHA-256", ErrAuthInvalid, a.User)
		}
	}
	if a.PasswordHash != "" {
		if _, err := bcrypt.Cost([]byte(a.PasswordHash)); err != nil {
			return fmt.Errorf("%w: password hash of user %q is not a bcrypt hash", ErrAuthInvalid, a.User)
		}
	}
	return nil
}

// applyAuth applies an auth command to s.Auth. It reports whether anything
// changed and changes nothing on error.
func (s *State) applyAuth(c command) (bool, error) {
	if c.Auth == nil {
		return false, fmt.Errorf("%w: %s without arguments", ErrBadCommand, c.Op)
	}
	a, x := &s.Auth, *c.Auth
	switch c.Op {
	case opAuthEnable:
		if a.Enabled {
			return false, nil
		}
		if !a.IsRoot(Root) {
			return false, fmt.Errorf("%w: enabling auth needs a user %q with the role %q (kvctl user add root; kvctl role add root; kvctl user grant-role root root)", ErrAuthRefused, Root, Root)
		}
		a.Enabled = true
		return true, nil
	case opAuthDisable:
		if !a.Enabled {
			return false, nil
		}
		a.Enabled = false
		return true, nil
	case opUserAdd:
		if err := x.checkUserAdd(); err != nil {
			return false, err
		}
		i, found := slices.BinarySearchFunc(a.Users, x.User, func(u User, n string) int { return strings.Compare(u.Name, n) })
		if found {
			return false, fmt.Errorf("user %q %w", x.User, ErrAuthExists)
		}
		if len(a.Users) >= MaxUsers {
			return false, fmt.Errorf("%w: %d users: at most %d", ErrAuthInvalid, len(a.Users), MaxUsers)
		}
		if x.TokenHash != "" && slices.ContainsFunc(a.Users, func(u User) bool { return u.TokenHash == x.TokenHash }) {
			return false, fmt.Errorf("user %q: token %w for another user", x.User, ErrAuthExists)
		}
		a.Users = slices.Insert(a.Users, i, User{Name: x.User, PasswordHash: x.PasswordHash, TokenHash: x.TokenHash})
		return true, nil
	case opUserDelete:
		i, err := a.userIndex(x.User)
		if err != nil {
			return false, err
		}
		if a.Enabled && x.User == Root {
			return false, fmt.Errorf("%w: user %q cannot be deleted while auth is enabled", ErrAuthRefused, Root)
		}
		a.Users = slices.Delete(a.Users, i, i+1)
		return true, nil
	case opUserGrantRole:
		i, err := a.userIndex(x.User)
		if err != nil {
			return false, err
		}
		if _, err := a.roleIndex(x.Role); err != nil {
			return false, err
		}
		roles := a.Users[i].Roles
		j, has := slices.BinarySearch(roles, x.Role)
		if has {
			return false, nil
		}
		a.Users[i].Roles = slices.Insert(roles, j, x.Role)
		return true, nil
	case opUserRevokeRole:
		i, err := a.userIndex(x.User)
		if err != nil {
			return false, err
		}
		roles := a.Users[i].Roles
		j, has := slices.BinarySearch(roles, x.Role)
		if !has {
			return false, fmt.Errorf("user %q has no role %q: %w", x.User, x.Role, ErrAuthNotFound)
		}
		if a.Enabled && x.User == Root && x.Role == Root {
			return false, fmt.Errorf("%w: user %q keeps role %q while auth is enabled", ErrAuthRefused, Root, Root)
		}
		a.Users[i].Roles = slices.Delete(roles, j, j+1)
		return true, nil
	case opRoleAdd:
		if err := ValidateAuthName("role", x.Role); err != nil {
			return false, err
		}
		i, found := slices.BinarySearchFunc(a.Roles, x.Role, func(r Role, n string) int { return strings.Compare(r.Name, n) })
		if found {
			return false, fmt.Errorf("role %q %w", x.Role, ErrAuthExists)
		}
		if len(a.Roles) >= MaxRoles {
			return false, fmt.Errorf("%w: %d roles: at most %d", ErrAuthInvalid, len(a.Roles), MaxRoles)
		}
		a.Roles = slices.Insert(a.Roles, i, Role{Name: x.Role})
		return true, nil
	case opRoleDelete:
		i, err := a.roleIndex(x.Role)
		if err != nil {
			return false, err
		}
		if a.Enabled && x.Role == Root {
			return false, fmt.Errorf("%w: role %q cannot be deleted while auth is enabled", ErrAuthRefused, Root)
		}
		a.Roles = slices.Delete(a.Roles, i, i+1)
		for k := range a.Users {
			a.Users[k].Roles = slices.DeleteFunc(a.Users[k].Roles, func(r string) bool { return r == x.Role })
		}
		return true, nil
	case opRoleGrant:
		if _, err := ParseAccess(string(x.Access)); err != nil {
			return false, err
		}
		if err := ValidatePrefix(x.Prefix); err != nil {
			return false, err
		}
		i, err := a.roleIndex(x.Role)
		if err != nil {
			return false, err
		}
		perms := a.Roles[i].Perms
		j, has := slices.BinarySearchFunc(perms, x.Prefix, func(p Permission, pre []byte) int { return bytes.Compare(p.Prefix, pre) })
		if has {
			if perms[j].Access == x.Access {
				return false, nil
			}
			perms[j].Access = x.Access
			return true, nil
		}
		if len(perms) >= MaxPerms {
			return false, fmt.Errorf("%w: role %q has %d permissions: at most %d", ErrAuthInvalid, x.Role, len(perms), MaxPerms)
		}
		a.Roles[i].Perms = slices.Insert(perms, j, Permission{Prefix: bytes.Clone(x.Prefix), Access: x.Access})
		return true, nil
	case opRoleRevoke:
		i, err := a.roleIndex(x.Role)
		if err != nil {
			return false, err
		}
		perms := a.Roles[i].Perms
		j, has := slices.BinarySearchFunc(perms, x.Prefix, func(p Permission, pre []byte) int { return bytes.Compare(p.Prefix, pre) })
		if !has {
			return false, fmt.Errorf("role %q has no permission on prefix %q: %w", x.Role, x.Prefix, ErrAuthNotFound)
		}
		a.Roles[i].Perms = slices.Delete(perms, j, j+1)
		return true, nil
	}
	return false, fmt.Errorf("%w: unknown op %q", ErrBadCommand, c.Op)
}

func (a *Auth) userIndex(name string) (int, error) {
	i, ok := slices.BinarySearchFunc(a.Users, name, func(u User, n string) int { return strings.Compare(u.Name, n) })
	if !ok {
		return 0, fmt.Errorf("user %q %w", name, ErrAuthNotFound)
	}
	return i, nil
}

func (a *Auth) roleIndex(name string) (int, error) {
	i, ok := slices.BinarySearchFunc(a.Roles, name, func(r Role, n string) int { return strings.Compare(r.Name, n) })
	if !ok {
		return 0, fmt.Errorf("role %q %w", name, ErrAuthNotFound)
	}
	return i, nil
}
