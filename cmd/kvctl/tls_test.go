package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/node"
	"github.com/ringkv/ringkv/pki"
)

// kvctl certs create makes what a TLS cluster needs; kvctl reaches the
// cluster with --cacert and without it says what is missing.
func TestRealTLS(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs")
	r := kvctl(t, "", "certs", "create", "--dir", certs, "--nodes", "n1,n2,n3", "--clients", "admin")
	if r.code != 0 || !strings.Contains(r.stdout, filepath.Join(certs, "n3.crt")) {
		t.Fatalf("kvctl certs create: %v", r)
	}
	if r := kvctl(t, "", "certs", "create", "--dir", certs, "--nodes", "n1"); r.code == 0 || !strings.Contains(r.stderr, "already holds a CA") {
		t.Fatalf("kvctl certs create over an existing CA: %v; want a refusal", r)
	}
	c := startRealCluster(t, func(i int, cfg *node.Config) {
		id := fmt.Sprintf("n%d", i+1)
		cfg.TLS = pki.Files{CA: filepath.Join(certs, "ca.crt"), Cert: filepath.Join(certs, id+".crt"), Key: filepath.Join(certs, id+".key")}
	})
	ca := filepath.Join(certs, "ca.crt")
	c.ok(t, "", "OK\n", "--cacert", ca, "put", "k", "v")
	c.ok(t, "", "v\n", "--cacert", ca, "get", "k")
	c.ok(t, "", "v\n", "--cacert", ca, "--cert", filepath.Join(certs, "admin.crt"), "--key", filepath.Join(certs, "admin.key"), "get", "k")
	r = c.run(t, "", "--timeout", "2s", "get", "k")
	if r.code != 1 || !strings.Contains(r.stderr, "pass --cacert") {
		t.Fatalf("kvctl get without --cacert against a TLS cluster: %v; want a hint about --cacert", r)
	}
	r = c.run(t, "", "--cacert", ca, "--cert", filepath.Join(certs, "admin.crt"), "get", "k")
	if r.code != 1 || !strings.Contains(r.stderr, "--cert and --key go together") {
		t.Fatalf("kvctl --cert without --key: %v", r)
	}
}
