// Package pki creates and loads the certificates that secure a ringkv
// cluster: a cluster CA, a certificate per node and certificates for
// clients.
//
// Every gRPC connection, client or peer, is TLS once a node is given a
// certificate. The CA decides who belongs: a node accepts a connection only
// from a peer whose certificate the CA signed, when the peer offers one. A
// node certificate carries the URI SAN ringkv://node/ID and a client
// certificate ringkv://client/NAME; the RPC edge lets only node
// certificates call the internal node-to-node services (Raft, metadata,
// read confirmation), so a client, even with a certificate of the cluster's
// CA, cannot pose as a node.
//
// Create makes a test CA and certificates for local use (kvctl certs);
// production clusters bring their own from their PKI, with the same SANs.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// URI SAN prefixes that name a certificate's role.
const (
	NodeURIPrefix   = "ringkv://node/"
	ClientURIPrefix = "ringkv://client/"
)

// ErrNoCert reports a file set that is incomplete: a key without its
// certificate, or a certificate without the CA to check peers against.
var ErrNoCert = errors.New("pki: incomplete TLS configuration")

// Files names the PEM files of one party's TLS setup.
type Files struct {
	// CA is the cluster CA certificate: peers must present certificates it
	// signed, and servers must too.
	CA string
	// Cert and Key are this party's certificate and private key.
	Cert string
	Key  string
}

// Enabled reports whether any file is set.
func (f Files) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// ServerConfig returns the TLS configuration of a node: it presents
// f.Cert, and verifies the certificate a client or peer presents against
// f.CA (a client without a certificate may connect; the RPC edge decides
// what it may call). All three files are required.
func (f Files) ServerConfig() (*tls.Config, error) {
	if f.CA == "" || f.Cert == "" || f.Key == "" {
		return nil, fmt.Errorf("%w: a node needs --cacert, --cert and --key together", ErrNoCert)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: load %s and %s: %w", f.Cert, f.Key, err)
	}
	pool, err := loadPool(f.CA)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}, nil
}

// ClientConfig returns the TLS configuration of a party that dials a node:
// it verifies the node against f.CA and, when f.Cert and f.Key are set,
// presents them (nodes dialing peers always do).
func (f Files) ClientConfig() (*tls.Config, error) {
	if f.CA == "" {
		return nil, fmt.Errorf("%w: --cacert is required to verify the nodes", ErrNoCert)
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, fmt.Errorf("%w: --cert and --key go together", ErrNoCert)
	}
	pool, err := loadPool(f.CA)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("pki: load %s and %s: %w", f.Cert, f.Key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("pki: CA %s holds no PEM certificate", path)
	}
	return pool, nil
}

// NodeID returns the node ID a verified certificate names (its
// ringkv://node/ID URI SAN), and whether it names one.
func NodeID(cert *x509.Certificate) (string, bool) {
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, NodeURIPrefix) && len(s) > len(NodeURIPrefix) {
			return strings.TrimPrefix(s, NodeURIPrefix), true
		}
	}
	return "", false
}

// Spec says what Create makes.
type Spec struct {
	// Nodes are the node IDs to make certificates for.
	Nodes []string
	// Hosts are the DNS names and IP addresses every node certificate is
	// valid for, besides the node's ID (default: localhost, 127.0.0.1).
	Hosts []string
	// Clients are the client names to make certificates for.
	Clients []string
	// Validity is how long the certificates last (default a year).
	Validity time.Duration
}

// Create writes a new CA (ca.crt, ca.key) and, signed by it, a certificate
// and key per node (ID.crt, ID.key) and per client (NAME.crt, NAME.key) into
// dir, which it creates. It refuses to overwrite an existing ca.key.
func Create(dir string, spec Spec) error {
	if spec.Validity <= 0 {
		spec.Validity = 365 * 24 * time.Hour
	}
	if len(spec.Hosts) == 0 {
		spec.Hosts = []string{"localhost", "127.0.0.1"}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.key")); err == nil {
		return fmt.Errorf("pki: %s already holds a CA (ca.key); use another directory", dir)
	}
	seen := map[string]bool{"ca": true}
	for _, n := range append(append([]string{}, spec.Nodes...), spec.Clients...) {
		if n == "" || strings.ContainsAny(n, "/\\") || seen[n] {
			return fmt.Errorf("pki: name %q: names must be non-empty, unique, not \"ca\", without slashes", n)
		}
		seen[n] = true
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "ringkv test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(spec.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writePair(dir, "ca", caDER, caKey); err != nil {
		return err
	}
	issue := func(name string, uri string, hosts []string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		u, _ := url.Parse(uri)
		t := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(spec.Validity),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			URIs:         []*url.URL{u},
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				t.IPAddresses = append(t.IPAddresses, ip)
			} else {
				t.DNSNames = append(t.DNSNames, h)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, t, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		return writePair(dir, name, der, key)
	}
	for _, n := range spec.Nodes {
		if err := issue(n, NodeURIPrefix+n, append([]string{n}, spec.Hosts...)); err != nil {
			return err
		}
	}
	for _, c := range spec.Clients {
		if err := issue(c, ClientURIPrefix+c, nil); err != nil {
			return err
		}
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func writePair(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}
