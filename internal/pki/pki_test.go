package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"path/filepath"
	"testing"
	"time"
)

// TestEnsureLeafRenews: a certificate with fewer than RenewBefore left is
// issued again; one with more is kept.
func TestEnsureLeafRenews(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "admin")
	spec := LeafSpec{CommonName: "system:admin", Organization: []string{"system:masters"}, Client: true}
	first, _, err := ca.EnsureLeaf(base, spec)
	if err != nil {
		t.Fatal(err)
	}
	again, _, _ := ca.EnsureLeaf(base, spec)
	if string(again) != string(first) {
		t.Fatal("a fresh certificate was issued again")
	}
	for _, c := range []struct {
		left  time.Duration
		renew bool
	}{{100 * 24 * time.Hour, false}, {80 * 24 * time.Hour, true}, {-time.Hour, true}} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
			NotBefore: time.Now().Add(-300 * 24 * time.Hour), NotAfter: time.Now().Add(c.left), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := writePair(base+".crt", base+".key", der, key); err != nil {
			t.Fatal(err)
		}
		got, _, err := ca.EnsureLeaf(base, spec)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(got)
		cert, _ := x509.ParseCertificate(block.Bytes)
		renewed := time.Until(cert.NotAfter) > 300*24*time.Hour
		if renewed != c.renew {
			t.Errorf("%s left: renewed %v, want %v", c.left, renewed, c.renew)
		}
	}
}

// TestEnsureLeafOrganization: a certificate whose groups (O) differ from
// the spec is issued again (the API server's kubelet client certificate
// left system:masters this way).
func TestEnsureLeafOrganization(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "client")
	old, _, err := ca.EnsureLeaf(base, LeafSpec{CommonName: "c", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	now, _, err := ca.EnsureLeaf(base, LeafSpec{CommonName: "c", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(now)
	cert, _ := x509.ParseCertificate(block.Bytes)
	if string(now) == string(old) || len(cert.Subject.Organization) != 0 {
		t.Errorf("organization kept: %v", cert.Subject.Organization)
	}
}
