package node

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/pki"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// authCluster is a 3-node in-process TLS cluster started from an initial
// member list, whose nodes can be restarted on their addresses.
type authCluster struct {
	t     *testing.T
	certs string
	dir   string
	peers []Peer
	nodes []*Node
	conns []*grpc.ClientConn // TLS (CA only), one per node
}

func startAuthCluster(t *testing.T) *authCluster {
	t.Helper()
	c := &authCluster{t: t, certs: t.TempDir(), dir: t.TempDir()}
	if err := pki.Create(c.certs, pki.Spec{Nodes: []string{"n1", "n2", "n3"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	var lis []net.Listener
	for i := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis = append(lis, l)
		c.peers = append(c.peers, Peer{ID: fmt.Sprintf("n%d", i+1), Addr: l.Addr().String()})
	}
	c.nodes = make([]*Node, 3)
	t.Cleanup(func() {
		for _, cc := range c.conns {
			cc.Close()
		}
		for i := range c.nodes {
			c.stop(i)
		}
	})
	for i, l := range lis {
		c.start(i, l)
	}
	caOnly := c.tlsConfig()
	for _, p := range c.peers {
		cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(credentials.NewTLS(caOnly)))
		if err != nil {
			t.Fatal(err)
		}
		c.conns = append(c.conns, cc)
	}
	waitFor(t, 60*time.Second, "auth cluster ready", func() bool {
		for _, n := range c.nodes {
			if !n.Ready() {
				return false
			}
		}
		return true
	})
	return c
}

func (c *authCluster) start(i int, l net.Listener) {
	c.t.Helper()
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", c.peers[i].Addr); err != nil {
			c.t.Fatalf("relisten on %s: %v", c.peers[i].Addr, err)
		}
	}
	logOut := io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	id := c.peers[i].ID
	n, err := Start(Config{
		ID:                    id,
		Listener:              l,
		DataDir:               filepath.Join(c.dir, id),
		InitialCluster:        c.peers,
		Shards:                4,
		Timing:                testTiming,
		LeaderBalanceInterval: -1,
		Logger:                slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn})),
		RaftLogOutput:         logOut,
		RaftLog:               defaultTestRaftLog(),
		TLS: pki.Files{CA: filepath.Join(c.certs, "ca.crt"),
			Cert: filepath.Join(c.certs, id+".crt"), Key: filepath.Join(c.certs, id+".key")},
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	c.nodes[i] = n
}

func (c *authCluster) stop(i int) {
	if c.nodes[i] == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[i].Stop(ctx); err != nil {
		c.t.Errorf("stop %s: %v", c.peers[i].ID, err)
	}
	c.nodes[i] = nil
}

func (c *authCluster) tlsConfig() *tls.Config {
	c.t.Helper()
	cfg, err := pki.Files{CA: filepath.Join(c.certs, "ca.crt")}.ClientConfig()
	if err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// client connects a client library Client with opts (TLS added).
func (c *authCluster) client(ctx context.Context, opts ...client.Option) (*client.Client, error) {
	var addrs []string
	for _, p := range c.peers {
		addrs = append(addrs, p.Addr)
	}
	return client.New(ctx, addrs, append([]client.Option{client.WithTLS(c.tlsConfig())}, opts...)...)
}

// waitApplied waits until every running node has applied epoch.
func (c *authCluster) waitApplied(epoch uint64) {
	c.t.Helper()
	waitFor(c.t, 30*time.Second, fmt.Sprintf("metadata epoch %d everywhere", epoch), func() bool {
		for _, n := range c.nodes {
			if n != nil && n.Metadata().Epoch < epoch {
				return false
			}
		}
		return true
	})
}

// basic returns ctx carrying user and password.
func basic(ctx context.Context, user, password string) context.Context {
	v := ringkvv1.AuthSchemeBasic + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	return metadata.AppendToOutgoingContext(ctx, ringkvv1.MetadataAuthorization, v)
}

func bearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, ringkvv1.MetadataAuthorization, ringkvv1.AuthSchemeBearer+token)
}

// retryUnavailable runs call until it fails with another code than
// Unavailable (a shard between leaders), for at most 20 seconds. Calls made
// on raw connections have no client library to retry them.
func retryUnavailable(call func() error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := call()
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: %v (code %v); want %v", what, err, got, want)
	}
}

// The acceptance tests of auth, on a real 3-node TLS cluster: etcd's root
// rule for auth enable; with auth on, a user with read on app/ reads app/x
// on every node (forwarding included) and is denied writes and other keys,
// and a denied write changes nothing; bad credentials are Unauthenticated;
// only root administers; auth survives a restart; disabled, all is open.
func TestAuthCluster(t *testing.T) {
	c := startAuthCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// Auth disabled: everything is open, as before.
	anon, err := c.client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Put(ctx, []byte("app/x"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Put(ctx, []byte("other/y"), []byte("o1")); err != nil {
		t.Fatal(err)
	}

	// etcd's rule: no auth without a root user holding the root role.
	if _, err := anon.AuthEnable(ctx); !errors.Is(err, client.ErrFailedPrecondition) {
		t.Fatalf("auth enable without root = %v; want failed precondition", err)
	}
	if _, err := anon.UserAdd(ctx, "root", "rootpw", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.AuthEnable(ctx); !errors.Is(err, client.ErrFailedPrecondition) || !strings.Contains(err.Error(), "role") {
		t.Fatalf("auth enable without the root role = %v; want failed precondition naming the role", err)
	}
	mustEpoch := func(e uint64, err error) uint64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	mustEpoch(anon.RoleAdd(ctx, "root"))
	mustEpoch(anon.UserGrantRole(ctx, "root", "root"))
	c.waitApplied(mustEpoch(anon.AuthEnable(ctx)))

	// Now a client without credentials gets nowhere, not even the map.
	if cl, err := c.client(ctx); status.Code(err) != codes.Unauthenticated {
		if cl != nil {
			cl.Close()
		}
		t.Fatalf("client.New without credentials = %v; want Unauthenticated", err)
	}
	if _, err := anon.Get(ctx, []byte("app/x")); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("get without credentials = %v; want Unauthenticated", err)
	}

	root, err := c.client(ctx, client.WithCredentials("root", "rootpw"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	const token = "ci-token-0123456789abcdef"
	mustEpoch(root.RoleAdd(ctx, "reader"))
	mustEpoch(root.RoleGrant(ctx, "reader", []byte("app/"), client.AccessRead))
	mustEpoch(root.UserAdd(ctx, "alice", "alicepw", ""))
	mustEpoch(root.UserAdd(ctx, "ci", "", token))
	mustEpoch(root.UserGrantRole(ctx, "alice", "reader"))
	c.waitApplied(mustEpoch(root.UserGrantRole(ctx, "ci", "reader")))
	if _, err := root.RoleGrant(ctx, "nosuch", []byte("a/"), client.AccessRead); status.Code(err) != codes.NotFound {
		t.Errorf("grant on an unknown role = %v; want NotFound", err)
	}
	if _, err := root.UserAdd(ctx, "bad name", "pw", ""); status.Code(err) != codes.InvalidArgument {
		t.Errorf("user add with a space = %v; want InvalidArgument", err)
	}
	if _, err := root.UserDelete(ctx, "root"); !errors.Is(err, client.ErrFailedPrecondition) {
		t.Errorf("deleting root while auth is on = %v; want failed precondition", err)
	}

	// Every node enforces, whether it leads app/x's shard or forwards.
	for i, cc := range c.conns {
		kv := ringkvv1.NewKVClient(cc)
		for _, who := range []struct {
			name string
			ctx  context.Context
		}{{"alice", basic(ctx, "alice", "alicepw")}, {"ci", bearer(ctx, token)}} {
			at := fmt.Sprintf("n%d as %s", i+1, who.name)
			var resp *ringkvv1.GetResponse
			err := retryUnavailable(func() (err error) {
				resp, err = kv.Get(who.ctx, &ringkvv1.GetRequest{Key: []byte("app/x")})
				return err
			})
			if err != nil || string(resp.GetValue()) != "v1" {
				t.Errorf("%s: get app/x = %q, %v; want v1", at, resp.GetValue(), err)
			}
			_, err = kv.Put(who.ctx, &ringkvv1.PutRequest{Key: []byte("app/x"), Value: []byte("evil")})
			wantCode(t, at+": put app/x", err, codes.PermissionDenied)
			_, err = kv.Get(who.ctx, &ringkvv1.GetRequest{Key: []byte("other/y")})
			wantCode(t, at+": get other/y", err, codes.PermissionDenied)
			_, err = kv.Delete(who.ctx, &ringkvv1.DeleteRequest{Key: []byte("app/x")})
			wantCode(t, at+": delete app/x", err, codes.PermissionDenied)
			_, err = kv.MultiPut(who.ctx, &ringkvv1.MultiPutRequest{Puts: []*ringkvv1.PutOp{{Key: []byte("app/x"), Value: []byte("evil")}}})
			wantCode(t, at+": multiput app/x", err, codes.PermissionDenied)
			_, err = kv.Txn(who.ctx, &ringkvv1.TxnRequest{Success: []*ringkvv1.RequestOp{{Op: &ringkvv1.RequestOp_Put{Put: &ringkvv1.PutOp{Key: []byte("app/x"), Value: []byte("evil")}}}}})
			wantCode(t, at+": txn put app/x", err, codes.PermissionDenied)
			err = retryUnavailable(func() error {
				_, err := kv.Txn(who.ctx, &ringkvv1.TxnRequest{Success: []*ringkvv1.RequestOp{{Op: &ringkvv1.RequestOp_Get{Get: &ringkvv1.GetOp{Key: []byte("app/x")}}}}})
				return err
			})
			wantCode(t, at+": read-only txn on app/x", err, codes.OK)
			err = retryUnavailable(func() error {
				_, err := kv.Scan(who.ctx, &ringkvv1.ScanRequest{Prefix: []byte("app/")})
				return err
			})
			wantCode(t, at+": scan app/", err, codes.OK)
			_, err = kv.Scan(who.ctx, &ringkvv1.ScanRequest{})
			wantCode(t, at+": scan everything", err, codes.PermissionDenied)
			// Posing as a forwarding node changes nothing.
			fctx := metadata.AppendToOutgoingContext(who.ctx, ringkvv1.MetadataForwarded, "1")
			_, err = kv.Put(fctx, &ringkvv1.PutRequest{Key: []byte("app/x"), Value: []byte("evil")})
			wantCode(t, at+": put app/x marked forwarded", err, codes.PermissionDenied)
			// Nor can a client call the internal services.
			_, err = ringkvv1.NewShardKVClient(cc).ScanShard(who.ctx, &ringkvv1.ScanShardRequest{Shard: 0})
			wantCode(t, at+": ShardKV.ScanShard", err, codes.PermissionDenied)
		}
		// Bad credentials are Unauthenticated.
		for what, bad := range map[string]context.Context{
			"wrong password": basic(ctx, "alice", "wrong"),
			"unknown user":   basic(ctx, "mallory", "alicepw"),
			"bad token":      bearer(ctx, "not-the-token-0123456789"),
			"no credentials": ctx,
		} {
			_, err := kv.Get(bad, &ringkvv1.GetRequest{Key: []byte("app/x")})
			wantCode(t, fmt.Sprintf("n%d: get with %s", i+1, what), err, codes.Unauthenticated)
		}
	}
	// Watch: app/ yes, other/ no.
	for _, tc := range []struct {
		prefix string
		want   codes.Code
	}{{"app/", codes.OK}, {"other/", codes.PermissionDenied}} {
		wctx, wcancel := context.WithTimeout(basic(ctx, "alice", "alicepw"), 10*time.Second)
		err := retryUnavailable(func() error {
			ws, err := ringkvv1.NewKVClient(c.conns[0]).Watch(wctx, &ringkvv1.WatchRequest{Key: []byte(tc.prefix), Prefix: true})
			if err == nil {
				_, err = ws.Recv()
			}
			return err
		})
		wantCode(t, "watch "+tc.prefix, err, tc.want)
		wcancel()
	}

	// The denied writes changed nothing: root reads the old values.
	if v, err := root.Get(ctx, []byte("app/x")); err != nil || string(v.Data) != "v1" {
		t.Fatalf("app/x after denied writes = %q, %v; want v1", v.Data, err)
	}

	// Cluster and auth administration are root's.
	alice, err := c.client(ctx, client.WithCredentials("alice", "alicepw"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if _, err := alice.Status(ctx); err != nil {
		t.Errorf("status as alice: %v; want success", err)
	}
	if st, err := alice.AuthStatus(ctx); err != nil || !st.Enabled || st.User != "alice" {
		t.Errorf("auth status as alice = %+v, %v; want enabled, alice", st, err)
	}
	_, err = alice.RemoveNode(ctx, "n3")
	wantCode(t, "remove node as alice", err, codes.PermissionDenied)
	_, err = alice.UserAdd(ctx, "eve", "pw", "")
	wantCode(t, "user add as alice", err, codes.PermissionDenied)
	_, err = alice.RoleGrant(ctx, "reader", nil, client.AccessReadWrite)
	wantCode(t, "role grant as alice", err, codes.PermissionDenied)
	_, err = alice.AuthDisable(ctx)
	wantCode(t, "auth disable as alice", err, codes.PermissionDenied)
	_, err = alice.UserList(ctx)
	wantCode(t, "user list as alice", err, codes.PermissionDenied)
	_, err = ringkvv1.NewClusterClient(c.conns[0]).Join(basic(ctx, "alice", "alicepw"), &ringkvv1.JoinRequest{NodeId: "n9", Address: "127.0.0.1:1"})
	wantCode(t, "join as alice", err, codes.PermissionDenied)
	if users, err := root.UserList(ctx); err != nil || len(users) != 3 {
		t.Errorf("user list as root = %+v, %v; want alice, ci, root", users, err)
	}
	// Root passes the guard; the cluster itself refuses to shrink below
	// the replication factor.
	_, err = root.RemoveNode(ctx, "n3")
	wantCode(t, "remove node as root", err, codes.FailedPrecondition)
	if _, err := root.Put(ctx, []byte("other/y"), []byte("o2")); err != nil {
		t.Errorf("put other/y as root: %v", err)
	}

	// Auth survives a restart: n2 comes back from its data and enforces.
	// Until it has caught up with the metadata log it refuses client calls
	// (Unavailable) rather than enforce an older auth state; at no point
	// does an anonymous call succeed.
	if _, err := os.Stat(filepath.Join(c.dir, "n2", authMarker)); err != nil {
		t.Fatalf("n2 has no auth marker while auth is on: %v", err)
	}
	c.stop(1)
	c.start(1, nil)
	kv2 := ringkvv1.NewKVClient(c.conns[1])
	waitFor(t, 60*time.Second, "n2 refuses anonymous calls as Unauthenticated after restart", func() bool {
		_, err := kv2.Get(ctx, &ringkvv1.GetRequest{Key: []byte("app/x")})
		switch status.Code(err) {
		case codes.Unauthenticated:
			return true
		case codes.Unavailable:
			return false
		}
		t.Fatalf("n2 after restart: anonymous get = %v; want Unavailable, then Unauthenticated", err)
		return false
	})
	waitFor(t, 60*time.Second, "n2 ready after restart", c.nodes[1].Ready)
	if !c.nodes[1].Metadata().Auth.Enabled {
		t.Fatal("auth is off on n2 after its restart")
	}
	waitFor(t, 30*time.Second, "alice reads app/x through restarted n2", func() bool {
		resp, err := kv2.Get(basic(ctx, "alice", "alicepw"), &ringkvv1.GetRequest{Key: []byte("app/x")})
		return err == nil && string(resp.GetValue()) == "v1"
	})
	_, err = kv2.Put(basic(ctx, "alice", "alicepw"), &ringkvv1.PutRequest{Key: []byte("app/x"), Value: []byte("evil")})
	wantCode(t, "n2 after restart: put app/x as alice", err, codes.PermissionDenied)

	// Disabled again, everything is open.
	c.waitApplied(mustEpoch(root.AuthDisable(ctx)))
	if _, err := anon.Put(ctx, []byte("app/x"), []byte("v2")); err != nil {
		t.Errorf("anonymous put after auth disable: %v", err)
	}
	waitFor(t, 30*time.Second, "auth markers removed", func() bool {
		for _, p := range c.peers {
			if _, err := os.Stat(filepath.Join(c.dir, p.ID, authMarker)); err == nil {
				return false
			}
		}
		return true
	})
}

// Without TLS a node cannot keep clients out of the internal services, so
// auth enable is refused, with the reason.
func TestAuthEnableNeedsTLS(t *testing.T) {
	n := startMember(t, t.TempDir(), "n1", nil, nil)
	waitFor(t, 30*time.Second, "n1 ready", n.Ready)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, []string{n.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, step := range []func() (uint64, error){
		func() (uint64, error) { return c.UserAdd(ctx, "root", "pw", "") },
		func() (uint64, error) { return c.RoleAdd(ctx, "root") },
		func() (uint64, error) { return c.UserGrantRole(ctx, "root", "root") },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.AuthEnable(ctx)
	if !errors.Is(err, client.ErrFailedPrecondition) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("auth enable without TLS = %v; want failed precondition naming TLS", err)
	}
	if n.Metadata().Auth.Enabled {
		t.Fatal("auth got enabled")
	}
	// Credentials are never sent in the clear: the client refuses.
	if c2, err := client.New(ctx, []string{n.Addr()}, client.WithCredentials("root", "pw")); err == nil {
		c2.Close()
		t.Fatal("a client sent credentials over plaintext")
	}
}
