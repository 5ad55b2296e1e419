package node

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/pki"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// A cluster with TLS grows from one node to three over TLS and serves
// clients that hold the CA; clients without it, peers with a foreign
// certificate and clients posing as nodes are refused.
func TestTLSCluster(t *testing.T) {
	certs, foreign := t.TempDir(), t.TempDir()
	if err := pki.Create(certs, pki.Spec{Nodes: []string{"n1", "n2", "n3"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	if err := pki.Create(foreign, pki.Spec{Nodes: []string{"n4"}}); err != nil {
		t.Fatal(err)
	}
	files := func(dir, name string) pki.Files {
		return pki.Files{CA: filepath.Join(certs, "ca.crt"), Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	}
	dir := t.TempDir()
	n1 := startMember(t, dir, "n1", nil, func(c *Config) { c.TLS = files(certs, "n1") })
	waitFor(t, 30*time.Second, "n1 ready", n1.Ready)
	for _, id := range []string{"n2", "n3"} {
		startMember(t, dir, id, []string{n1.Addr()}, func(c *Config) { c.TLS = files(certs, id) })
	}
	settledWith(t, n1, 3, "n1", "n2", "n3")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	caOnly, err := pki.Files{CA: filepath.Join(certs, "ca.crt")}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(ctx, []string{n1.Addr()}, client.WithTLS(caOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeKeys(t, c, 20, "tls")
	readKeys(t, c, 20, "tls")

	// Without TLS, or without the cluster's CA, a client gets nowhere.
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if c2, err := client.New(short, []string{n1.Addr()}); err == nil {
		c2.Close()
		t.Fatal("a plaintext client connected to a TLS cluster")
	}
	foreignCA, _ := pki.Files{CA: filepath.Join(foreign, "ca.crt")}.ClientConfig()
	short2, cancelShort2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort2()
	if c3, err := client.New(short2, []string{n1.Addr()}, client.WithTLS(foreignCA)); err == nil {
		c3.Close()
		t.Fatal("a client that trusts another CA connected")
	}

	// Internal services: a client certificate of the right CA is refused
	// (PermissionDenied); a node certificate of another CA does not get
	// through the handshake.
	internalCall := func(f pki.Files) error {
		cfg, err := f.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpc.NewClient(n1.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		_, err = ringkvv1.NewMetaClient(cc).ReplicaProgress(cctx, &ringkvv1.ReplicaProgressRequest{Shard: 0})
		return err
	}
	if err := internalCall(files(certs, "admin")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Meta.ReplicaProgress with a client certificate = %v; want PermissionDenied", err)
	}
	if err := internalCall(files(certs, "n2")); err != nil {
		t.Errorf("Meta.ReplicaProgress with a node certificate = %v; want success", err)
	}
	foreignNode := pki.Files{CA: filepath.Join(certs, "ca.crt"), Cert: filepath.Join(foreign, "n4.crt"), Key: filepath.Join(foreign, "n4.key")}
	if err := internalCall(foreignNode); err == nil || status.Code(err) == codes.PermissionDenied {
		t.Errorf("Meta.ReplicaProgress with a foreign node certificate = %v; want a failed handshake", err)
	}
	// Plaintext to the internal service fails too.
	cc, _ := grpc.NewClient(n1.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer cc.Close()
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	defer pcancel()
	if _, err := ringkvv1.NewMetaClient(cc).ReplicaProgress(pctx, &ringkvv1.ReplicaProgressRequest{}); err == nil {
		t.Error("a plaintext call to an internal service succeeded")
	}

	// A node with a foreign certificate asks to join and never becomes a
	// member (observed for a few seconds: its join attempts fail their
	// handshakes).
	n4 := startMember(t, dir, "n4", []string{n1.Addr()}, func(c *Config) { c.TLS = foreignNode })
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := n1.Metadata().Member("n4"); ok {
			t.Fatal("a node with a foreign certificate joined")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n4.Ready() {
		t.Fatal("the foreign node is ready")
	}
	if _, err := (pki.Files{Cert: "x"}).ServerConfig(); !errors.Is(err, pki.ErrNoCert) {
		t.Fatal(err)
	}
}
