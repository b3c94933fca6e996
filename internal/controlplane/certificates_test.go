package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/pki"
)

// TestServingCertificateRenewal: a running server's serving certificate
// nearing expiry is issued again by renew and served at once, without a
// restart; the clients' certificates are renewed in their files.
func TestServingCertificateRenewal(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, SecurePort: 6443, ServiceCIDR: "10.43.0.0/16"}
	if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	tlsCfg, loopback, _, certs, err := certificates(cfg, net.ParseIP("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	served := func() *x509.Certificate {
		c, err := tlsCfg.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	first := served()
	// Both certificates now expire in ten days, as a year-old pair would.
	ca, err := pki.LoadOrCreateCA(filepath.Join(dir, "pki"), "skiff-ca")
	if err != nil {
		t.Fatal(err)
	}
	expiring := func(base string, tmpl *x509.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(7), time.Now().Add(-355*24*time.Hour), time.Now().Add(10*24*time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(key)
		if err := os.WriteFile(base+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	expiring(filepath.Join(dir, "pki", "serving"), &x509.Certificate{Subject: first.Subject, DNSNames: first.DNSNames, IPAddresses: first.IPAddresses, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	expiring(filepath.Join(dir, "pki", "controller-manager"), &x509.Certificate{Subject: pkix.Name{CommonName: "system:kube-controller-manager"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err := certs.renew(); err != nil {
		t.Fatal(err)
	}
	if now := served(); time.Until(now.NotAfter) < 300*24*time.Hour || now.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Errorf("served after renew: serial %v, expires %v", now.SerialNumber, now.NotAfter)
	}
	b, err := os.ReadFile(loopback.TLSClientConfig.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	cm, _ := x509.ParseCertificate(block.Bytes)
	if time.Until(cm.NotAfter) < 300*24*time.Hour {
		t.Errorf("the controller manager's certificate file was not renewed: expires %v", cm.NotAfter)
	}

	// The in-process node's certificates: its serving one is swapped in
	// place, its client one renewed in the file client-go reads.
	cfg.NodeName = "n1"
	node, creds, err := nodeCredentials(cfg, loopback)
	if err != nil {
		t.Fatal(err)
	}
	expiring(filepath.Join(dir, "pki", "kubelet-n1"), &x509.Certificate{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}, DNSNames: []string{"n1", "localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	expiring(filepath.Join(dir, "pki", "node-n1"), &x509.Certificate{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err := node.renew(); err != nil {
		t.Fatal(err)
	}
	c, err := creds.ServingTLS.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, _ := x509.ParseCertificate(c.Certificate[0]); time.Until(leaf.NotAfter) < 300*24*time.Hour || leaf.Subject.CommonName != "system:node:n1" {
		t.Errorf("kubelet serving certificate after renew: %s, expires %v", leaf.Subject, leaf.NotAfter)
	}
	b, err = os.ReadFile(creds.Rest.TLSClientConfig.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ = pem.Decode(b)
	if nc, _ := x509.ParseCertificate(block.Bytes); time.Until(nc.NotAfter) < 300*24*time.Hour {
		t.Errorf("the node's client certificate file was not renewed: expires %v", nc.NotAfter)
	}
}
