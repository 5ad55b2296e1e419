package cluster

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// testHash is a valid bcrypt hash made at the lowest cost, so that the
// state machine tests do not spend bcrypt's default cost.
func testHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// authSM returns an initialized state machine.
func authSM(t *testing.T) *StateMachine {
	t.Helper()
	sm := NewStateMachine()
	mustInit(t, sm, testState())
	return sm
}

// mustCmd returns a function that unwraps a command constructor's result,
// failing t on an error.
func mustCmd(t *testing.T) func([]byte, error) []byte {
	return func(cmd []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	}
}

// step applies cmd and checks the result against want (nil: success).
func step(t *testing.T, sm *StateMachine, what string, cmd []byte, want error) {
	t.Helper()
	before := sm.Current()
	err := applyErr(t, sm, 0, cmd)
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: %v; want success", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: %v; want %v", what, err, want)
	case want != nil && sm.Current() != before:
		t.Fatalf("%s: refused but the state changed", what)
	}
}

// The state machine keeps users and roles, enforces etcd's root rule for
// auth enable, and refuses malformed or dangling changes without changing
// anything.
func TestAuthCommands(t *testing.T) {
	sm, must := authSM(t), mustCmd(t)
	rootHash := testHash(t, "rootpw")
	step(t, sm, "enable without root", AuthEnableCommand(), ErrAuthRefused)
	step(t, sm, "add root", must(UserAddCommand("root", rootHash, "")), nil)
	step(t, sm, "add root again", must(UserAddCommand("root", rootHash, "")), ErrAuthExists)
	step(t, sm, "enable without root role", AuthEnableCommand(), ErrAuthRefused)
	step(t, sm, "grant unknown role", must(UserGrantRoleCommand("root", "root")), ErrAuthNotFound)
	step(t, sm, "add role root", must(RoleAddCommand("root")), nil)
	step(t, sm, "grant root", must(UserGrantRoleCommand("root", "root")), nil)
	step(t, sm, "enable", AuthEnableCommand(), nil)
	if !sm.Current().Auth.Enabled {
		t.Fatal("auth not enabled after enable")
	}
	step(t, sm, "delete root user while enabled", must(UserDeleteCommand("root")), ErrAuthRefused)
	step(t, sm, "delete root role while enabled", must(RoleDeleteCommand("root")), ErrAuthRefused)
	step(t, sm, "revoke root's root role while enabled", must(UserRevokeRoleCommand("root", "root")), ErrAuthRefused)

	tok := "0123456789abcdef-token"
	step(t, sm, "add alice", must(UserAddCommand("alice", testHash(t, "alicepw"), "")), nil)
	step(t, sm, "add ci", must(UserAddCommand("ci", "", HashToken(tok))), nil)
	step(t, sm, "add dup token", must(UserAddCommand("ci2", "", HashToken(tok))), ErrAuthExists)
	step(t, sm, "grant on unknown role", must(RoleGrantCommand("reader", []byte("app/"), AccessRead)), ErrAuthNotFound)
	step(t, sm, "add reader", must(RoleAddCommand("reader")), nil)
	step(t, sm, "grant reader", must(RoleGrantCommand("reader", []byte("app/"), AccessRead)), nil)
	step(t, sm, "alice gets unknown role", must(UserGrantRoleCommand("alice", "nope")), ErrAuthNotFound)
	step(t, sm, "unknown user gets role", must(UserGrantRoleCommand("bob", "reader")), ErrAuthNotFound)
	step(t, sm, "alice gets reader", must(UserGrantRoleCommand("alice", "reader")), nil)
	step(t, sm, "ci gets reader", must(UserGrantRoleCommand("ci", "reader")), nil)
	step(t, sm, "revoke a perm never granted", must(RoleRevokeCommand("reader", []byte("other/"))), ErrAuthNotFound)
	step(t, sm, "revoke a role alice lacks", must(UserRevokeRoleCommand("alice", "root")), ErrAuthNotFound)

	a := sm.Current().Auth
	if u, ok := a.UserByToken(tok); !ok || u.Name != "ci" {
		t.Errorf("UserByToken = %q, %v; want ci", u.Name, ok)
	}
	if _, ok := a.UserByToken("0123456789abcdef-other"); ok {
		t.Error("UserByToken found a user for a wrong token")
	}
	if u, _ := a.User("alice"); !CheckPassword(u.PasswordHash, "alicepw") || CheckPassword(u.PasswordHash, "wrong") {
		t.Error("CheckPassword does not tell alice's password from a wrong one")
	}
	if strings.Contains(string(must(UserAddCommand("x", "", HashToken(tok)))), tok) {
		t.Error("the token is in the command in plain text")
	}

	// Deleting a role takes it from its users; the epoch grows with each
	// change.
	epoch := sm.Current().Epoch
	step(t, sm, "delete reader", must(RoleDeleteCommand("reader")), nil)
	if u, _ := sm.Current().Auth.User("alice"); len(u.Roles) != 0 {
		t.Errorf("alice's roles after deleting reader = %v; want none", u.Roles)
	}
	if got := sm.Current().Epoch; got != epoch+1 {
		t.Errorf("epoch %d after a change from %d", got, epoch)
	}
	step(t, sm, "delete alice", must(UserDeleteCommand("alice")), nil)
	step(t, sm, "delete alice again", must(UserDeleteCommand("alice")), ErrAuthNotFound)
	step(t, sm, "disable", AuthDisableCommand(), nil)
	step(t, sm, "delete root user when disabled", must(UserDeleteCommand("root")), nil)
}

// Malformed arguments are refused by the constructors, and by the state
// machine when a proposer skips them.
func TestAuthValidation(t *testing.T) {
	long := strings.Repeat("a", MaxAuthName+1)
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"empty user", func() error { _, err := UserAddCommand("", "", HashToken("x")); return err }()},
		{"long user", func() error { _, err := UserAddCommand(long, "", HashToken("x")); return err }()},
		{"user with space", func() error { _, err := UserAddCommand("a b", "", HashToken("x")); return err }()},
		{"user with colon", func() error { _, err := UserAddCommand("a:b", "", HashToken("x")); return err }()},
		{"user without secret", func() error { _, err := UserAddCommand("a", "", ""); return err }()},
		{"bad token hash", func() error { _, err := UserAddCommand("a", "", "xyz"); return err }()},
		{"bad password hash", func() error { _, err := UserAddCommand("a", "plaintext", ""); return err }()},
		{"bad access", func() error { _, err := RoleGrantCommand("r", nil, "write"); return err }()},
		{"long prefix", func() error { _, err := RoleGrantCommand("r", make([]byte, MaxPrefix+1), AccessRead); return err }()},
		{"long password", func() error { _, err := HashPassword(strings.Repeat("p", MaxPassword+1)); return err }()},
		{"empty password", func() error { _, err := HashPassword(""); return err }()},
		{"short token", ValidateToken("short")},
	} {
		if !errors.Is(tc.err, ErrAuthInvalid) {
			t.Errorf("%s: %v; want ErrAuthInvalid", tc.what, tc.err)
		}
	}
	if err := ValidateAuthName("user", long); err == nil || !strings.Contains(err.Error(), "1-64") {
		t.Errorf("long name: %v; want the limit in the message", err)
	}
	// A proposer that skips validation gets the same refusal from Apply.
	sm := authSM(t)
	step(t, sm, "raw bad user", authCommand(opUserAdd, authArgs{User: "a b", TokenHash: HashToken("0123456789abcdef")}), ErrAuthInvalid)
	step(t, sm, "raw plaintext password", authCommand(opUserAdd, authArgs{User: "a", PasswordHash: "secret"}), ErrAuthInvalid)
	step(t, sm, "raw no args", encode(command{Op: opRoleAdd}), ErrBadCommand)
}

// Permits: read covers reads, readwrite both; a key needs a granted prefix
// it starts with; a prefix range needs one granted prefix that is a prefix
// of it; root may do everything; unknown users nothing.
func TestAuthPermits(t *testing.T) {
	a := Auth{
		Users: []User{
			{Name: "alice", Roles: []string{"reader"}},
			{Name: "bob", Roles: []string{"reader", "writer"}},
			{Name: "root", Roles: []string{"root"}},
			{Name: "zed", Roles: []string{"gone"}},
		},
		Roles: []Role{
			{Name: "reader", Perms: []Permission{{Prefix: []byte("app/"), Access: AccessRead}}},
			{Name: "root"},
			{Name: "writer", Perms: []Permission{{Prefix: []byte("app/w/"), Access: AccessReadWrite}, {Prefix: []byte("x"), Access: AccessReadWrite}}},
		},
	}
	for _, tc := range []struct {
		user   string
		want   Access
		key    string
		prefix bool
		ok     bool
	}{
		{"alice", AccessRead, "app/x", false, true},
		{"alice", AccessReadWrite, "app/x", false, false},
		{"alice", AccessRead, "other/y", false, false},
		{"alice", AccessRead, "app", false, false},
		{"alice", AccessRead, "app/", true, true},
		{"alice", AccessRead, "app/sub/", true, true},
		{"alice", AccessRead, "ap", true, false},
		{"alice", AccessRead, "", true, false},
		{"bob", AccessReadWrite, "app/w/1", false, true},
		{"bob", AccessReadWrite, "app/x", false, false},
		{"bob", AccessRead, "app/w/1", false, true},
		{"bob", AccessReadWrite, "xyz", true, true},
		{"bob", AccessReadWrite, "app/", true, false},
		{"root", AccessReadWrite, "", true, true},
		{"zed", AccessRead, "app/x", false, false},
		{"nobody", AccessRead, "app/x", false, false},
	} {
		if got := a.Permits(tc.user, tc.want, []byte(tc.key), tc.prefix); got != tc.ok {
			t.Errorf("Permits(%s, %s, %q, prefix=%v) = %v; want %v", tc.user, tc.want, tc.key, tc.prefix, got, tc.ok)
		}
	}
	if !a.IsRoot("root") || a.IsRoot("bob") || a.IsRoot("nobody") {
		t.Error("IsRoot is wrong")
	}
}

// A metadata snapshot carries the auth state, and a change to a clone
// does not reach the state it was cloned from.
func TestAuthSnapshotAndClone(t *testing.T) {
	sm, must := authSM(t), mustCmd(t)
	step(t, sm, "add root", must(UserAddCommand("root", testHash(t, "pw"), HashToken("0123456789abcdef"))), nil)
	step(t, sm, "add role root", must(RoleAddCommand("root")), nil)
	step(t, sm, "add role r", must(RoleAddCommand("r")), nil)
	step(t, sm, "grant r", must(RoleGrantCommand("r", []byte{0xff, 'a'}, AccessReadWrite)), nil)
	step(t, sm, "grant root", must(UserGrantRoleCommand("root", "root")), nil)
	step(t, sm, "enable", AuthEnableCommand(), nil)
	snap, _ := sm.Snapshot()
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	dst := NewStateMachine()
	if err := dst.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if got, want := dst.Current().Auth, sm.Current().Auth; !reflect.DeepEqual(got, want) {
		t.Fatalf("restored auth = %+v; want %+v", got, want)
	}
	if !dst.Current().Auth.Enabled || !dst.Current().Auth.IsRoot("root") {
		t.Fatal("restored auth lost enabled or root")
	}

	before := sm.Current()
	c := before.clone()
	c.Auth.Roles[0].Perms[0].Access = AccessRead
	c.Auth.Users[0].Roles[0] = "x"
	if before.Auth.Roles[0].Perms[0].Access != AccessReadWrite || before.Auth.Users[0].Roles[0] != "root" {
		t.Fatal("changing a clone's auth changed the original")
	}
}
