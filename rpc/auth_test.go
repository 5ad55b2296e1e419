package rpc

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/cluster"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// Every method maps to the rule it needs; a method not listed (a service
// added later) needs root.
func TestAuthRules(t *testing.T) {
	for method, want := range map[string]ruleKind{
		ringkvv1.KV_Get_FullMethodName:                   ruleKeys,
		ringkvv1.KV_Put_FullMethodName:                   ruleKeys,
		ringkvv1.KV_Watch_FullMethodName:                 ruleKeys,
		ringkvv1.KV_Txn_FullMethodName:                   ruleKeys,
		ringkvv1.Cluster_Status_FullMethodName:           ruleAnyUser,
		ringkvv1.Cluster_RebalanceStatus_FullMethodName:  ruleAnyUser,
		ringkvv1.Auth_Status_FullMethodName:              ruleAnyUser,
		ringkvv1.Cluster_Join_FullMethodName:             ruleRoot,
		ringkvv1.Cluster_RemoveNode_FullMethodName:       ruleRoot,
		ringkvv1.Auth_Enable_FullMethodName:              ruleRoot,
		ringkvv1.Auth_Disable_FullMethodName:             ruleRoot,
		ringkvv1.Auth_UserAdd_FullMethodName:             ruleRoot,
		ringkvv1.Auth_UserList_FullMethodName:            ruleRoot,
		ringkvv1.Auth_RoleGrant_FullMethodName:           ruleRoot,
		ringkvv1.Backup_SnapshotShard_FullMethodName:     ruleRoot,
		"/grpc.health.v1.Health/Check":                   ruleOpen,
		"/ringkv.v1.SomethingNew/DoIt":                   ruleRoot,
		ringkvv1.KV_ServiceDesc.ServiceName + "/Get":     ruleRoot, // malformed: no leading '/'
		"/" + ringkvv1.KV_ServiceDesc.ServiceName + "x/": ruleRoot,
	} {
		if got := rule(method); got != want {
			t.Errorf("rule(%s) = %v; want %v", method, got, want)
		}
	}
}

// Each KV request maps to the keys it touches and the access it needs.
func TestKeyAccesses(t *testing.T) {
	k := func(s string) []byte { return []byte(s) }
	r := cluster.AccessRead
	w := cluster.AccessReadWrite
	put := func(key string) *ringkvv1.RequestOp {
		return &ringkvv1.RequestOp{Op: &ringkvv1.RequestOp_Put{Put: &ringkvv1.PutOp{Key: k(key)}}}
	}
	del := func(key string) *ringkvv1.RequestOp {
		return &ringkvv1.RequestOp{Op: &ringkvv1.RequestOp_Delete{Delete: &ringkvv1.DeleteOp{Key: k(key)}}}
	}
	get := func(key string) *ringkvv1.RequestOp {
		return &ringkvv1.RequestOp{Op: &ringkvv1.RequestOp_Get{Get: &ringkvv1.GetOp{Key: k(key)}}}
	}
	for _, tc := range []struct {
		name string
		req  any
		want []keyAccess
	}{
		{"get", &ringkvv1.GetRequest{Key: k("a")}, []keyAccess{{k("a"), false, r}}},
		{"put", &ringkvv1.PutRequest{Key: k("a")}, []keyAccess{{k("a"), false, w}}},
		{"delete", &ringkvv1.DeleteRequest{Key: k("a")}, []keyAccess{{k("a"), false, w}}},
		{"multiget", &ringkvv1.MultiGetRequest{Keys: [][]byte{k("a"), k("b")}}, []keyAccess{{k("a"), false, r}, {k("b"), false, r}}},
		{"multiput", &ringkvv1.MultiPutRequest{Puts: []*ringkvv1.PutOp{{Key: k("a")}, {Key: k("b")}}}, []keyAccess{{k("a"), false, w}, {k("b"), false, w}}},
		{"scan prefix", &ringkvv1.ScanRequest{Prefix: k("p/"), StartAfter: k("p/x")}, []keyAccess{{k("p/"), true, r}}},
		{"scan all", &ringkvv1.ScanRequest{}, []keyAccess{{nil, true, r}}},
		{"watch key", &ringkvv1.WatchRequest{Key: k("a")}, []keyAccess{{k("a"), false, r}}},
		{"watch prefix", &ringkvv1.WatchRequest{Key: k("p/"), Prefix: true}, []keyAccess{{k("p/"), true, r}}},
		{"read-only txn", &ringkvv1.TxnRequest{
			Compare: []*ringkvv1.Compare{{Key: k("c")}},
			Success: []*ringkvv1.RequestOp{get("g")},
		}, []keyAccess{{k("c"), false, r}, {k("g"), false, r}}},
		{"txn with writes in both branches", &ringkvv1.TxnRequest{
			Compare: []*ringkvv1.Compare{{Key: k("c")}},
			Success: []*ringkvv1.RequestOp{put("p")},
			Failure: []*ringkvv1.RequestOp{del("d"), get("g")},
		}, []keyAccess{{k("c"), false, r}, {k("p"), false, w}, {k("d"), false, w}, {k("g"), false, r}}},
	} {
		got, err := keyAccesses(tc.req)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.EqualFunc(got, tc.want, func(a, b keyAccess) bool {
			return string(a.key) == string(b.key) && a.prefix == b.prefix && a.access == b.access
		}) {
			t.Errorf("%s: accesses %+v; want %+v", tc.name, got, tc.want)
		}
	}
	if _, err := keyAccesses(&ringkvv1.StatusRequest{}); err == nil {
		t.Error("keyAccesses of a non-KV request: no error")
	}
}

type fakeAuthState struct {
	st      *cluster.State
	current bool
}

func (f *fakeAuthState) Metadata() *cluster.State { return f.st }
func (f *fakeAuthState) MetadataCurrent() bool    { return f.current }

func lowCostHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func testAuth(t *testing.T, enabled bool) *cluster.State {
	return &cluster.State{Auth: cluster.Auth{
		Enabled: enabled,
		Users: []cluster.User{
			{Name: "alice", PasswordHash: lowCostHash(t, "alicepw"), Roles: []string{"reader"}},
			{Name: "ci", TokenHash: cluster.HashToken("0123456789abcdef-tok"), Roles: []string{"reader"}},
			{Name: "root", PasswordHash: lowCostHash(t, "rootpw"), Roles: []string{"root"}},
		},
		Roles: []cluster.Role{
			{Name: "reader", Perms: []cluster.Permission{{Prefix: []byte("app/"), Access: cluster.AccessRead}}},
			{Name: "root"},
		},
	}}
}

func withBasic(user, pw string) context.Context {
	v := ringkvv1.AuthSchemeBasic + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(ringkvv1.MetadataAuthorization, v))
}

func withHeader(v string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(ringkvv1.MetadataAuthorization, v))
}

// The unary interceptor: open while disabled; enabled, it authenticates
// (Unauthenticated without or with bad credentials), authorizes
// (PermissionDenied) and only then calls the handler; a node that is not
// current refuses with Unavailable even while its copy says disabled.
func TestGuardUnary(t *testing.T) {
	state := &fakeAuthState{st: testAuth(t, false), current: true}
	unary, _ := NewGuard(state, GuardConfig{}).Interceptors()
	call := func(ctx context.Context, method string, req any) (string, error) {
		var seen string
		called := false
		_, err := unary(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
			called, seen = true, CallerUser(ctx)
			return nil, nil
		})
		if err != nil && called {
			t.Fatalf("%s: the handler ran although the call failed: %v", method, err)
		}
		return seen, err
	}
	get := func(key string) *ringkvv1.GetRequest { return &ringkvv1.GetRequest{Key: []byte(key)} }
	put := &ringkvv1.PutRequest{Key: []byte("app/x")}

	if _, err := call(context.Background(), ringkvv1.KV_Put_FullMethodName, put); err != nil {
		t.Fatalf("disabled: anonymous put = %v; want success", err)
	}
	state.current = false
	if _, err := call(context.Background(), ringkvv1.KV_Get_FullMethodName, get("app/x")); status.Code(err) != codes.Unavailable {
		t.Fatalf("not current: get = %v; want Unavailable", err)
	}
	if _, err := call(context.Background(), "/grpc.health.v1.Health/Check", nil); err != nil {
		t.Fatalf("not current: health = %v; want success", err)
	}
	state.current = true
	state.st = testAuth(t, true)

	for _, tc := range []struct {
		what   string
		ctx    context.Context
		method string
		req    any
		code   codes.Code
		user   string
	}{
		{"anonymous get", context.Background(), ringkvv1.KV_Get_FullMethodName, get("app/x"), codes.Unauthenticated, ""},
		{"wrong password", withBasic("alice", "nope"), ringkvv1.KV_Get_FullMethodName, get("app/x"), codes.Unauthenticated, ""},
		{"unknown user", withBasic("mallory", "alicepw"), ringkvv1.KV_Get_FullMethodName, get("app/x"), codes.Unauthenticated, ""},
		{"bad token", withHeader(ringkvv1.AuthSchemeBearer + "0123456789abcdef-bad"), ringkvv1.KV_Get_FullMethodName, get("app/x"), codes.Unauthenticated, ""},
		{"token user by password", withBasic("ci", "0123456789abcdef-tok"), ringkvv1.KV_Get_FullMethodName, get("app/x"), codes.Unauthenticated, ""},
		{"bad scheme", withHeader("Digest x"), ringkvv1.KV_Get_FullMethodName, get("app/x"), codes.Unauthenticated, ""},
		{"bad base64", withHeader(ringkvv1.AuthSchemeBasic + "%%%"), ringkvv1.KV_Get_FullMethodName, get("app/x"), codes.Unauthenticated, ""},
		{"alice get app/x", withBasic("alice", "alicepw"), ringkvv1.KV_Get_FullMethodName, get("app/x"), codes.OK, "alice"},
		{"ci get app/x", withHeader(ringkvv1.AuthSchemeBearer + "0123456789abcdef-tok"), ringkvv1.KV_Get_FullMethodName, get("app/x"), codes.OK, "ci"},
		{"alice put app/x", withBasic("alice", "alicepw"), ringkvv1.KV_Put_FullMethodName, put, codes.PermissionDenied, ""},
		{"alice get other/y", withBasic("alice", "alicepw"), ringkvv1.KV_Get_FullMethodName, get("other/y"), codes.PermissionDenied, ""},
		{"alice status", withBasic("alice", "alicepw"), ringkvv1.Cluster_Status_FullMethodName, &ringkvv1.StatusRequest{}, codes.OK, "alice"},
		{"alice remove node", withBasic("alice", "alicepw"), ringkvv1.Cluster_RemoveNode_FullMethodName, &ringkvv1.RemoveNodeRequest{}, codes.PermissionDenied, ""},
		{"alice user add", withBasic("alice", "alicepw"), ringkvv1.Auth_UserAdd_FullMethodName, &ringkvv1.UserAddRequest{}, codes.PermissionDenied, ""},
		{"root remove node", withBasic("root", "rootpw"), ringkvv1.Cluster_RemoveNode_FullMethodName, &ringkvv1.RemoveNodeRequest{}, codes.OK, "root"},
		{"root put anything", withBasic("root", "rootpw"), ringkvv1.KV_Put_FullMethodName, &ringkvv1.PutRequest{Key: []byte("zzz")}, codes.OK, "root"},
		{"internal service", context.Background(), ringkvv1.ShardKV_ScanShard_FullMethodName, &ringkvv1.ScanShardRequest{}, codes.OK, ""},
		{"health", context.Background(), "/grpc.health.v1.Health/Check", nil, codes.OK, ""},
	} {
		user, err := call(tc.ctx, tc.method, tc.req)
		if status.Code(err) != tc.code || user != tc.user {
			t.Errorf("%s: user %q, err %v; want user %q, code %v", tc.what, user, err, tc.user, tc.code)
		}
	}
}

// recvStream is a grpc.ServerStream whose RecvMsg yields one WatchRequest.
type recvStream struct {
	grpc.ServerStream
	ctx context.Context
	req *ringkvv1.WatchRequest
}

func (s *recvStream) Context() context.Context { return s.ctx }
func (s *recvStream) RecvMsg(m any) error {
	*m.(*ringkvv1.WatchRequest) = ringkvv1.WatchRequest{Key: s.req.GetKey(), Prefix: s.req.GetPrefix()}
	return nil
}

// A stream is authenticated at once and its request authorized when the
// handler reads it.
func TestGuardStream(t *testing.T) {
	state := &fakeAuthState{st: testAuth(t, true), current: true}
	_, stream := NewGuard(state, GuardConfig{}).Interceptors()
	info := &grpc.StreamServerInfo{FullMethod: ringkvv1.KV_Watch_FullMethodName, IsServerStream: true}
	watch := func(ctx context.Context, key string, prefix bool) (handled bool, err error) {
		ss := &recvStream{ctx: ctx, req: &ringkvv1.WatchRequest{Key: []byte(key), Prefix: prefix}}
		err = stream(nil, ss, info, func(_ any, s grpc.ServerStream) error {
			var req ringkvv1.WatchRequest
			if err := s.RecvMsg(&req); err != nil {
				return err
			}
			handled = true
			return nil
		})
		return handled, err
	}
	for _, tc := range []struct {
		what    string
		ctx     context.Context
		key     string
		prefix  bool
		code    codes.Code
		handled bool
	}{
		{"anonymous", context.Background(), "app/", true, codes.Unauthenticated, false},
		{"alice app/ prefix", withBasic("alice", "alicepw"), "app/", true, codes.OK, true},
		{"alice app/sub/ prefix", withBasic("alice", "alicepw"), "app/sub/", true, codes.OK, true},
		{"alice a prefix wider than her grant", withBasic("alice", "alicepw"), "ap", true, codes.PermissionDenied, false},
		{"alice every key", withBasic("alice", "alicepw"), "", true, codes.PermissionDenied, false},
		{"alice other/ prefix", withBasic("alice", "alicepw"), "other/", true, codes.PermissionDenied, false},
	} {
		handled, err := watch(tc.ctx, tc.key, tc.prefix)
		if status.Code(err) != tc.code || handled != tc.handled {
			t.Errorf("%s: handled %v, err %v; want handled %v, code %v", tc.what, handled, err, tc.handled, tc.code)
		}
	}
}

// The password cache remembers successes only, is bounded, and a new
// password hash (a changed password, a re-created user) never matches an
// old entry.
func TestPasswordCache(t *testing.T) {
	c := newPasswordCache(2)
	u := cluster.User{Name: "alice", PasswordHash: lowCostHash(t, "pw1")}
	if c.check(u, "wrong") || c.len() != 0 {
		t.Fatalf("a wrong password passed or was cached (len %d)", c.len())
	}
	if !c.check(u, "pw1") || c.len() != 1 {
		t.Fatalf("the right password failed or was not cached (len %d)", c.len())
	}
	if !c.check(u, "pw1") || c.len() != 1 {
		t.Fatal("a cached password failed")
	}
	u2 := cluster.User{Name: "alice", PasswordHash: lowCostHash(t, "pw2")}
	if c.check(u2, "pw1") {
		t.Fatal("the old password passed after the hash changed")
	}
	if !c.check(u2, "pw2") {
		t.Fatal("the new password failed")
	}
	bob := cluster.User{Name: "bob", PasswordHash: lowCostHash(t, "b")}
	if !c.check(bob, "b") || c.len() != 2 {
		t.Fatalf("cache holds %d entries; want its bound, 2", c.len())
	}
	if c.check(cluster.User{Name: "tok"}, "") {
		t.Fatal("a user without a password passed")
	}
}

// The auth errors of package cluster map to their codes, wrapped or not,
// and survive the trip through the Meta service's rejection codes.
func TestAuthErrorCodes(t *testing.T) {
	for err, want := range map[error]codes.Code{
		cluster.ErrAuthNotFound: codes.NotFound,
		cluster.ErrAuthExists:   codes.AlreadyExists,
		cluster.ErrAuthInvalid:  codes.InvalidArgument,
		cluster.ErrAuthRefused:  codes.FailedPrecondition,
	} {
		wrapped := fmt.Errorf("role %q: %w", "r", err)
		if got := status.Code(toStatus(wrapped)); got != want {
			t.Errorf("toStatus(%v) = %v; want %v", wrapped, got, want)
		}
		if rejectionCode(wrapped) == "" {
			t.Errorf("%v has no Meta rejection code: a proposal forwarded to the leader would lose it", err)
		}
	}
}
