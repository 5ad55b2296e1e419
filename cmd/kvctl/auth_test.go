package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/node"
	"github.com/ringkv/ringkv/pki"
)

// synced waits until every node has applied the newest metadata any of
// them has: an auth change is in force on the node that made it when
// kvctl returns, and on the others a moment later.
func (c *realCluster) synced(t *testing.T) {
	t.Helper()
	var epoch uint64
	for _, n := range c.nodes {
		epoch = max(epoch, n.Metadata().Epoch)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		all := true
		for _, n := range c.nodes {
			all = all && n.Metadata().Epoch >= epoch
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata epoch %d not applied everywhere within 30s", epoch)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kvctl user/role/auth on a real TLS cluster: etcd's root rule, a reader
// that may read app/ and nothing else, a denied put that changes nothing,
// bad credentials, tokens, and root-only administration.
func TestRealAuth(t *testing.T) {
	certs := t.TempDir()
	if err := pki.Create(certs, pki.Spec{Nodes: []string{"n1", "n2", "n3"}}); err != nil {
		t.Fatal(err)
	}
	c := startRealCluster(t, func(i int, cfg *node.Config) {
		id := cfg.ID
		cfg.TLS = pki.Files{CA: filepath.Join(certs, "ca.crt"), Cert: filepath.Join(certs, id+".crt"), Key: filepath.Join(certs, id+".key")}
	})
	ca := filepath.Join(certs, "ca.crt")
	tlsRun := func(stdin string, args ...string) result {
		t.Helper()
		r := c.run(t, stdin, append([]string{"--cacert", ca}, args...)...)
		t.Logf("$ kvctl %s\n%s%s", strings.Join(args, " "), r.stdout, r.stderr)
		return r
	}
	ok := func(stdin, want string, args ...string) {
		t.Helper()
		if r := tlsRun(stdin, args...); r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Fatalf("kvctl %s: %v; want exit 0, stdout %q", strings.Join(args, " "), r, want)
		}
	}
	fails := func(stdin, wantErr string, args ...string) {
		t.Helper()
		if r := tlsRun(stdin, args...); r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, wantErr) {
			t.Fatalf("kvctl %s: %v; want exit 1 with %q on stderr", strings.Join(args, " "), r, wantErr)
		}
	}

	// The password comes from stdin when it is not a terminal.
	ok("rootpw\n", "User root created\n", "user", "add", "root")
	fails("", "needs a user \"root\" with the role \"root\"", "auth", "enable")
	ok("", "Role root created\n", "role", "add", "root")
	ok("", "Role root is granted to user root\n", "user", "grant-role", "root", "root")
	ok("", "Authentication Enabled\n", "auth", "enable")
	c.synced(t)

	fails("", "code = Unauthenticated desc = authentication is enabled: the call needs credentials", "get", "app/x")
	fails("", "code = Unauthenticated desc = invalid user name or password", "--user", "root:wrong", "put", "app/x", "v1")
	fails("", "code = Unauthenticated desc = invalid user name or password", "--user", "nobody:rootpw", "put", "app/x", "v1")
	ok("", "OK\n", "--user", "root:rootpw", "put", "app/x", "v1")
	ok("rootpw\n", "OK\n", "--user", "root", "put", "other/y", "o1") // password on stdin
	root := []string{"--user", "root:rootpw"}
	ok("", "Role reader created\n", append(root, "role", "add", "reader")...)
	ok("", "Role reader updated\n", append(root, "role", "grant", "reader", "read", "app/")...)
	ok("", "User alice created\n", append(root, "user", "add", "alice:alicepw")...)
	ok("", "Role reader is granted to user alice\n", append(root, "user", "grant-role", "alice", "reader")...)
	r := tlsRun("", append(root, "user", "add", "ci", "--new-token")...)
	token, found := strings.CutPrefix(strings.TrimPrefix(r.stdout, "User ci created\n"), "Token: ")
	token = strings.TrimSpace(token)
	if r.code != 0 || !found || len(token) != 48 {
		t.Fatalf("user add --new-token: %v; want the user and a 48-character token", r)
	}
	ok("", "Role reader is granted to user ci\n", append(root, "user", "grant-role", "ci", "reader")...)
	fails("", "role \"nosuch\" not found", append(root, "role", "grant", "nosuch", "read", "x")...)
	fails("", "want 1-64 printable ASCII characters", append(root, "user", "add", "bad name:pw")...)
	c.synced(t)

	alice := []string{"--user", "alice:alicepw"}
	ok("", "v1\n", append(alice, "get", "app/x")...)
	fails("", "permission denied: user \"alice\" has no readwrite access to key \"app/x\"", append(alice, "put", "app/x", "evil")...)
	fails("", "permission denied: user \"alice\" has no read access to key \"other/y\"", append(alice, "get", "other/y")...)
	fails("", "permission denied", append(alice, "scan")...)
	ok("", "app/x v1\n", append(alice, "scan", "--prefix", "app/")...)
	ok("", "v1\n", "--token", token, "get", "app/x")
	fails("", "permission denied", "--token", token, "put", "app/x", "evil")
	fails("", "code = Unauthenticated desc = invalid token", "--token", token+"x", "get", "app/x")
	// The denied puts changed nothing.
	ok("", "v1\n", append(root, "get", "app/x")...)

	// Administration is root's.
	fails("", "permission denied", append(alice, "node", "remove", "n3", "--wait=false")...)
	fails("", "permission denied", append(alice, "user", "list")...)
	fails("", "permission denied", append(alice, "auth", "disable")...)
	ok("", "Authentication Status: true\nUser: alice\nRoles: reader\n", append(alice, "auth", "status")...)
	ok("", "USER   ROLES   AUTH\nalice  reader  password\nci     reader  token\nroot   root    password\n", append(root, "user", "list")...)
	ok("", "ROLE    ACCESS  PREFIX\nreader  read    app/\nroot    all     (everything, and administration)\n", append(root, "role", "list")...)
	fails("", "cannot be deleted while auth is enabled", append(root, "user", "delete", "root")...)
	ok("", `[{"name":"alice","roles":["reader"],"has_password":true,"has_token":false},{"name":"ci","roles":["reader"],"has_password":false,"has_token":true},{"name":"root","roles":["root"],"has_password":true,"has_token":false}]`+"\n",
		append(root, "-o", "json", "user", "list")...)
	ok("", `[{"name":"reader","perms":[{"prefix":"app/","access":"read"}]},{"name":"root","perms":[]}]`+"\n",
		append(root, "-o", "json", "role", "list")...)
	if r := tlsRun("", append(root, "-o", "json", "role", "add", "extra")...); r.code != 0 || !strings.HasPrefix(r.stdout, `{"epoch":`) {
		t.Fatalf("kvctl -o json role add: %v; want {\"epoch\":N}", r)
	}

	// Credentials are never sent without TLS, and --user and --token
	// exclude each other.
	if r := c.run(t, "", "--user", "root:rootpw", "get", "app/x"); r.code != 1 || !strings.Contains(r.stderr, "need TLS") {
		t.Fatalf("--user without --cacert: %v; want a refusal", r)
	}
	fails("", "exclude each other", "--user", "root:rootpw", "--token", token, "get", "app/x")

	ok("", "Role reader is revoked from user alice\n", append(root, "user", "revoke-role", "alice", "reader")...)
	c.synced(t)
	fails("", "permission denied", append(alice, "get", "app/x")...)
	ok("", "Authentication Disabled\n", append(root, "auth", "disable")...)
	c.synced(t)
	ok("", "v1\n", "get", "app/x")
}
