package rpc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/cluster"
	"github.com/ringkv/ringkv/pki"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// AuthState gives the guard the cluster's auth metadata.
type AuthState interface {
	// Metadata returns the node's current copy of the cluster metadata.
	Metadata() *cluster.State
	// MetadataCurrent reports whether that copy may be enforced: false
	// while a node that saw auth enabled before a restart has not caught
	// up with the metadata log, during which it refuses client calls
	// (codes.Unavailable, so that clients try another node).
	MetadataCurrent() bool
}

// DefaultAuthCacheSize is GuardConfig.CacheSize's default.
const DefaultAuthCacheSize = 1024

// GuardConfig configures a Guard. The zero value is valid.
type GuardConfig struct {
	// CacheSize bounds the verified (user, password) pairs a node
	// remembers, so that it runs bcrypt once per pair rather than on every
	// call. 0 means DefaultAuthCacheSize.
	CacheSize int
}

// Guard authenticates and authorizes the calls of clients against the
// auth metadata (cluster.Auth). While auth is disabled it lets everything
// through. While it is enabled:
//
//   - a call with a node certificate of the cluster's CA (another node:
//     a forwarded request, a join) is let through;
//   - any other call must carry valid credentials, else it fails with
//     codes.Unauthenticated;
//   - the caller's roles must allow the call (see rule), else it fails
//     with codes.PermissionDenied, before it reaches the service: a denied
//     call changes nothing.
//
// The internal node-to-node services are not its concern: without a node
// certificate they are refused anyway (NodeOnlyInterceptors), which is why
// auth can be enabled only on a cluster that runs TLS.
type Guard struct {
	state AuthState
	cache *passwordCache
}

// NewGuard returns a Guard that reads the auth metadata from state.
func NewGuard(state AuthState, cfg GuardConfig) *Guard {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultAuthCacheSize
	}
	return &Guard{state: state, cache: newPasswordCache(cfg.CacheSize)}
}

// ruleKind says what a method needs of its caller.
type ruleKind int

const (
	// ruleRoot: the root role (the default for any method not listed).
	ruleRoot ruleKind = iota
	// ruleOpen: nothing; the health service.
	ruleOpen
	// ruleAnyUser: valid credentials of any user.
	ruleAnyUser
	// ruleKeys: read or readwrite access to the keys of the request.
	ruleKeys
)

// rule returns what method needs. Methods not listed need root, so a
// service added later is closed until it is listed here.
func rule(method string) ruleKind {
	kv := "/" + ringkvv1.KV_ServiceDesc.ServiceName + "/"
	switch {
	case strings.HasPrefix(method, "/grpc.health.v1.Health/"):
		return ruleOpen
	case strings.HasPrefix(method, kv):
		return ruleKeys
	}
	switch method {
	case ringkvv1.Cluster_Status_FullMethodName,
		ringkvv1.Cluster_RebalanceStatus_FullMethodName,
		ringkvv1.Auth_Status_FullMethodName:
		return ruleAnyUser
	}
	return ruleRoot
}

// keyAccess is one access a request makes: to a key, or with prefix set to
// every key that starts with it.
type keyAccess struct {
	key    []byte
	prefix bool
	access cluster.Access
}

// keyAccesses returns the accesses a KV request makes. Every key a Txn
// names counts, in both branches: compares and gets read, puts and deletes
// write.
func keyAccesses(req any) ([]keyAccess, error) {
	read := func(k []byte) keyAccess { return keyAccess{key: k, access: cluster.AccessRead} }
	write := func(k []byte) keyAccess { return keyAccess{key: k, access: cluster.AccessReadWrite} }
	switch r := req.(type) {
	case *ringkvv1.GetRequest:
		return []keyAccess{read(r.GetKey())}, nil
	case *ringkvv1.PutRequest:
		return []keyAccess{write(r.GetKey())}, nil
	case *ringkvv1.DeleteRequest:
		return []keyAccess{write(r.GetKey())}, nil
	case *ringkvv1.MultiGetRequest:
		out := make([]keyAccess, len(r.GetKeys()))
		for i, k := range r.GetKeys() {
			out[i] = read(k)
		}
		return out, nil
	case *ringkvv1.MultiPutRequest:
		out := make([]keyAccess, len(r.GetPuts()))
		for i, p := range r.GetPuts() {
			out[i] = write(p.GetKey())
		}
		return out, nil
	case *ringkvv1.ScanRequest:
		return []keyAccess{{key: r.GetPrefix(), prefix: true, access: cluster.AccessRead}}, nil
	case *ringkvv1.WatchRequest:
		return []keyAccess{{key: r.GetKey(), prefix: r.GetPrefix(), access: cluster.AccessRead}}, nil
	case *ringkvv1.TxnRequest:
		var out []keyAccess
		for _, c := range r.GetCompare() {
			out = append(out, read(c.GetKey()))
		}
		for _, op := range append(append([]*ringkvv1.RequestOp{}, r.GetSuccess()...), r.GetFailure()...) {
			switch {
			case op.GetPut() != nil:
				out = append(out, write(op.GetPut().GetKey()))
			case op.GetDelete() != nil:
				out = append(out, write(op.GetDelete().GetKey()))
			case op.GetGet() != nil:
				out = append(out, read(op.GetGet().GetKey()))
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("no key rule for %T", req)
}

// userKey is the context key of the authenticated caller's name.
type userKey struct{}

// CallerUser returns the user a call was authenticated as: "" when auth
// is disabled, or for a node.
func CallerUser(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// authorize decides a call. req is nil for a stream whose request is not
// read yet; then needKeys reports that the keys remain to be checked (by
// authorizeKeys, once the request arrives).
func (g *Guard) authorize(ctx context.Context, method string, req any) (_ context.Context, needKeys bool, _ error) {
	if internal(method) {
		return ctx, false, nil // NodeOnlyInterceptors' concern
	}
	r := rule(method)
	if r == ruleOpen || peerIsNode(ctx) {
		return ctx, false, nil
	}
	if !g.state.MetadataCurrent() {
		return ctx, false, status.Error(codes.Unavailable, "this node is catching up with the cluster metadata after a restart and cannot check credentials yet; try another node")
	}
	a := &g.state.Metadata().Auth
	if !a.Enabled {
		return ctx, false, nil
	}
	user, err := g.authenticate(ctx, a)
	if err != nil {
		return ctx, false, err
	}
	ctx = context.WithValue(ctx, userKey{}, user)
	switch r {
	case ruleAnyUser:
		return ctx, false, nil
	case ruleKeys:
		if req == nil {
			return ctx, true, nil
		}
		return ctx, false, authorizeKeys(a, user, req)
	}
	if !a.IsRoot(user) {
		return ctx, false, status.Errorf(codes.PermissionDenied, "user %q may not call %s: it needs the %s role", user, method, cluster.Root)
	}
	return ctx, false, nil
}

// authorizeKeys checks that user may make every access of a KV request.
func authorizeKeys(a *cluster.Auth, user string, req any) error {
	accs, err := keyAccesses(req)
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "user %q: %v", user, err)
	}
	for _, k := range accs {
		if a.Permits(user, k.access, k.key, k.prefix) {
			continue
		}
		what := "key"
		if k.prefix {
			what = "keys with prefix"
		}
		return status.Errorf(codes.PermissionDenied, "user %q has no %s access to %s %s", user, k.access, what, quoteKey(k.key))
	}
	return nil
}

// quoteKey quotes a key for an error message, cut at 64 bytes.
func quoteKey(k []byte) string {
	if len(k) > 64 {
		return fmt.Sprintf("%q...", k[:64])
	}
	return fmt.Sprintf("%q", k)
}

// authenticate returns the user the call's credentials name, or an
// Unauthenticated status. It does not say whether the user or the password
// was wrong.
func (g *Guard) authenticate(ctx context.Context, a *cluster.Auth) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(ringkvv1.MetadataAuthorization)
	if len(vals) == 0 {
		return "", status.Error(codes.Unauthenticated, "authentication is enabled: the call needs credentials (kvctl --user NAME[:PASSWORD] or --token TOKEN)")
	}
	if len(vals) > 1 {
		return "", status.Error(codes.Unauthenticated, "the call carries more than one set of credentials")
	}
	v := vals[0]
	switch {
	case strings.HasPrefix(v, ringkvv1.AuthSchemeBasic):
		raw, err := base64.StdEncoding.DecodeString(v[len(ringkvv1.AuthSchemeBasic):])
		name, password, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok {
			return "", status.Error(codes.Unauthenticated, "malformed Basic credentials: want base64 of NAME:PASSWORD")
		}
		u, found := a.User(name)
		if !found || !g.cache.check(u, password) {
			return "", status.Error(codes.Unauthenticated, "invalid user name or password")
		}
		return u.Name, nil
	case strings.HasPrefix(v, ringkvv1.AuthSchemeBearer):
		u, found := a.UserByToken(v[len(ringkvv1.AuthSchemeBearer):])
		if !found {
			return "", status.Error(codes.Unauthenticated, "invalid token")
		}
		return u.Name, nil
	}
	return "", status.Error(codes.Unauthenticated, "unknown authorization scheme: want Basic or Bearer")
}

// peerIsNode reports whether the caller presented a certificate, verified
// by the cluster CA, that names a node.
func peerIsNode(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return false
	}
	for _, chain := range ti.State.VerifiedChains {
		if len(chain) > 0 {
			if _, isNode := pki.NodeID(chain[0]); isNode {
				return true
			}
		}
	}
	return false
}

// Interceptors return the server interceptors that enforce auth. A node
// installs them always; they let everything through while auth is
// disabled.
func (g *Guard) Interceptors() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, _, err := g.authorize(ctx, info.FullMethod, req)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, needKeys, err := g.authorize(ss.Context(), info.FullMethod, nil)
		if err != nil {
			return err
		}
		gs := &guardedStream{ServerStream: ss, ctx: ctx}
		if needKeys {
			user := CallerUser(ctx)
			gs.check = func(req any) error { return authorizeKeys(&g.state.Metadata().Auth, user, req) }
		}
		return handler(srv, gs)
	}
	return unary, stream
}

// guardedStream carries the authenticated context, and checks the first
// request received (a KV stream's only one) against the caller's
// permissions before the handler sees it.
type guardedStream struct {
	grpc.ServerStream
	ctx   context.Context
	check func(req any) error // nil once done, or when nothing is to check
}

func (s *guardedStream) Context() context.Context { return s.ctx }

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.check != nil {
		check := s.check
		s.check = nil
		return check(m)
	}
	return nil
}

// passwordCache remembers (user, password, stored hash) triples that
// bcrypt verified. Its key hashes the stored bcrypt hash too, so a new
// password or a deleted and re-added user never matches an old entry.
type passwordCache struct {
	size int
	mu   struct {
		sync.Mutex
		ok map[[sha256.Size]byte]struct{} // at most size entries
	}
}

func newPasswordCache(size int) *passwordCache {
	c := &passwordCache{size: size}
	c.mu.ok = make(map[[sha256.Size]byte]struct{})
	return c
}

// check reports whether password is u's, running bcrypt only for a triple
// not verified before. Only successes are remembered.
func (c *passwordCache) check(u cluster.User, password string) bool {
	if u.PasswordHash == "" {
		return false
	}
	h := sha256.New()
	for _, s := range []string{u.Name, password, u.PasswordHash} {
		fmt.Fprintf(h, "%d:%s", len(s), s) // length-prefixed: unambiguous
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	c.mu.Lock()
	_, hit := c.mu.ok[key]
	c.mu.Unlock()
	if hit {
		return true
	}
	if !cluster.CheckPassword(u.PasswordHash, password) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.mu.ok) >= c.size {
		for k := range c.mu.ok { // evict one entry, whichever the map yields
			delete(c.mu.ok, k)
			break
		}
	}
	c.mu.ok[key] = struct{}{}
	return true
}

// len returns the number of remembered entries.
func (c *passwordCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mu.ok)
}
