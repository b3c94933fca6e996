package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/pki"
)

// clientCert issues a client certificate from a new CA in dir.
func clientCert(t *testing.T, dir, cn string, groups ...string) (*pki.CA, *x509.Certificate) {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(dir, "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.EnsureLeaf(filepath.Join(dir, cn), pki.LeafSpec{CommonName: cn, Organization: groups, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return ca, cert
}

func TestClientCertificates(t *testing.T) {
	ca, alice := clientCert(t, t.TempDir(), "alice", "devs")
	_, mallory := clientCert(t, t.TempDir(), "mallory", "system:masters")
	a, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	a.ClientCAs = x509.NewCertPool()
	a.ClientCAs.AddCert(ca.Cert)
	request := func(c *x509.Certificate) *http.Request {
		return &http.Request{Header: http.Header{}, TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}}
	}
	wantAlice := []string{"devs", "system:authenticated"}
	for i := range 2 { // the second time from the cache
		u, ok, err := a.Authenticate(request(alice))
		if err != nil || !ok || u.Name != "alice" || !slices.Equal(u.Groups, wantAlice) {
			t.Fatalf("round %d: alice = %+v, %v, %v", i, u, ok, err)
		}
		u.Groups[0] = "system:masters" // a caller changing its copy changes nothing cached
	}
	for i := range 2 {
		if _, _, err := a.Authenticate(request(mallory)); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("round %d: a certificate of another CA: %v, want ErrUnauthorized", i, err)
		}
	}
	// A chain verified while valid is refused once it has expired, cached or not.
	if _, _, err := a.verifyClientCert([]*x509.Certificate{alice}, alice.NotAfter.Add(time.Minute)); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("expired certificate: %v, want ErrUnauthorized", err)
	}
	if _, _, err := a.verifyClientCert([]*x509.Certificate{alice}, alice.NotBefore.Add(-time.Minute)); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("certificate not yet valid: %v, want ErrUnauthorized", err)
	}
}

func BenchmarkClientCertificate(b *testing.B) {
	ca, alice := clientCert(&testing.T{}, b.TempDir(), "alice", "devs")
	a, _ := New("")
	a.ClientCAs = x509.NewCertPool()
	a.ClientCAs.AddCert(ca.Cert)
	r := &http.Request{Header: http.Header{}, TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{alice}}}
	for b.Loop() {
		if _, ok, _ := a.Authenticate(r); !ok {
			b.Fatal("not authenticated")
		}
	}
}
