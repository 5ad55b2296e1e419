package client

import (
	"context"
	"encoding/base64"
	"testing"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// The credentials options send one authorization header, Basic with the
// base64 of NAME:PASSWORD or Bearer with the token, and only over TLS.
func TestAuthorizationHeader(t *testing.T) {
	for _, tc := range []struct {
		a    authorization
		want string
	}{
		{authorization(ringkvv1.AuthSchemeBasic + base64.StdEncoding.EncodeToString([]byte("alice:pw:with:colons"))), "Basic YWxpY2U6cHc6d2l0aDpjb2xvbnM="},
		{authorization(ringkvv1.AuthSchemeBearer + "tok"), "Bearer tok"},
	} {
		md, err := tc.a.GetRequestMetadata(context.Background())
		if err != nil || len(md) != 1 || md["authorization"] != tc.want {
			t.Errorf("GetRequestMetadata = %v, %v; want authorization: %q", md, err, tc.want)
		}
		if !tc.a.RequireTransportSecurity() {
			t.Error("credentials would be sent without TLS")
		}
	}
	// The options build; New refuses them on a plaintext connection (see
	// node's TestAuthEnableNeedsTLS, which dials a real node).
	var cfg config
	WithCredentials("alice", "pw")(&cfg)
	WithToken("tok")(&cfg)
	if len(cfg.dialOptions) != 2 {
		t.Fatalf("%d dial options; want 2", len(cfg.dialOptions))
	}
}
