package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreateAndHandshake(t *testing.T) {
	dir := t.TempDir()
	if err := Create(dir, Spec{Nodes: []string{"n1", "n2"}, Clients: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	if id, ok := NodeID(readCert(t, filepath.Join(dir, "n2.crt"))); !ok || id != "n2" {
		t.Fatalf("NodeID(n2.crt) = %q, %v", id, ok)
	}
	if _, ok := NodeID(readCert(t, filepath.Join(dir, "alice.crt"))); ok {
		t.Fatal("a client certificate names a node")
	}
	if err := Create(dir, Spec{Nodes: []string{"n3"}}); err == nil {
		t.Fatal("Create overwrote an existing CA")
	}

	f := func(name string) Files {
		return Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	}
	srv, err := f("n1").ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	// handshake returns the server's view of the client's certificate.
	handshake := func(cli *tls.Config) ([]*x509.Certificate, error) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		type result struct {
			certs []*x509.Certificate
			err   error
		}
		done := make(chan result, 1)
		go func() {
			conn, err := lis.Accept()
			if err != nil {
				done <- result{err: err}
				return
			}
			defer conn.Close()
			s := tls.Server(conn, srv)
			err = s.Handshake()
			done <- result{s.ConnectionState().PeerCertificates, err}
		}()
		conn, err := tls.Dial("tcp", lis.Addr().String(), cli)
		if err == nil {
			// In TLS 1.3 the server judges the client's certificate after
			// the client's handshake is done: read to learn the verdict.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, rerr := conn.Read(make([]byte, 1))
			var ne net.Error
			if rerr != nil && !(errors.As(rerr, &ne) && ne.Timeout()) && !errors.Is(rerr, io.EOF) {
				err = rerr
			}
			conn.Close()
		}
		r := <-done
		if err != nil {
			return nil, err
		}
		return r.certs, r.err
	}
	peer, err := f("n2").ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	peer.ServerName = "localhost"
	certs, err := handshake(peer)
	if err != nil {
		t.Fatalf("node to node: %v", err)
	}
	if id, ok := NodeID(certs[0]); !ok || id != "n2" {
		t.Fatalf("server saw peer %q, %v; want n2", id, ok)
	}
	// A client with only the CA: accepted, with no certificate.
	anon, _ := Files{CA: filepath.Join(dir, "ca.crt")}.ClientConfig()
	anon.ServerName = "127.0.0.1"
	if certs, err := handshake(anon); err != nil || len(certs) != 0 {
		t.Fatalf("client without certificate: %d certs, %v", len(certs), err)
	}
	// A client without the CA does not trust the node.
	if _, err := handshake(&tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS13}); err == nil {
		t.Fatal("a client without the cluster CA completed a handshake")
	}
	// A peer with a certificate from a foreign CA is refused.
	other := t.TempDir()
	if err := Create(other, Spec{Nodes: []string{"n2"}}); err != nil {
		t.Fatal(err)
	}
	foreign, _ := Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(other, "n2.crt"), Key: filepath.Join(other, "n2.key")}.ClientConfig()
	foreign.ServerName = "localhost"
	if _, err := handshake(foreign); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
}

func TestIncompleteFiles(t *testing.T) {
	for _, f := range []Files{{Cert: "c"}, {CA: "a", Cert: "c"}, {Key: "k"}} {
		if _, err := f.ServerConfig(); !errors.Is(err, ErrNoCert) {
			t.Errorf("%+v.ServerConfig() = %v; want ErrNoCert", f, err)
		}
	}
	for _, f := range []Files{{Cert: "c", Key: "k"}, {CA: "a", Cert: "c"}} {
		if _, err := f.ClientConfig(); !errors.Is(err, ErrNoCert) {
			t.Errorf("%+v.ClientConfig() = %v; want ErrNoCert", f, err)
		}
	}
}
