package join

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLoadPairStates: a node's certificate is used, renewed with its own
// credentials when fewer than 90 days remain, or asked anew with the join
// token when missing or expired.
func TestLoadPairStates(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, left time.Duration) string {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "system:node:n1"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(left)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(key)
		base := filepath.Join(dir, name)
		os.WriteFile(base+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
		os.WriteFile(base+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
		return base
	}
	for _, c := range []struct {
		base string
		want pairState
	}{
		{write("fresh", 200*24*time.Hour), pairFresh},
		{write("expiring", 30*24*time.Hour), pairExpiring},
		{write("expired", -time.Hour), pairMissing},
		{filepath.Join(dir, "absent"), pairMissing},
	} {
		if _, _, got := loadPair(c.base); got != c.want {
			t.Errorf("%s: %v, want %v", filepath.Base(c.base), got, c.want)
		}
	}
}
