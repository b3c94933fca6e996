package kubelet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testCAPEM(t *testing.T, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestTrustBundleProjection(t *testing.T) {
	a, b, c := testCAPEM(t, "a"), testCAPEM(t, "b"), testCAPEM(t, "c")
	bundle := func(name, signer string, labels map[string]string, pems ...string) certificatesv1.ClusterTrustBundle {
		return certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: strings.Join(pems, "")}}
	}
	all := []certificatesv1.ClusterTrustBundle{
		bundle("example.com:s:1", "example.com/s", map[string]string{"alive": "true"}, a, b),
		bundle("example.com:s:2", "example.com/s", map[string]string{"alive": "false"}, c),
		bundle("example.com:s:3", "example.com/s", map[string]string{"alive": "true"}, b), // b again
		bundle("other.com:s:1", "other.com/s", map[string]string{"alive": "true"}, c),
	}
	cases := []struct {
		name string
		sel  *metav1.LabelSelector
		want []string
	}{
		{"nil selector matches nothing", nil, nil},
		{"empty selector matches every bundle of the signer", &metav1.LabelSelector{}, []string{a, b, c}},
		{"labels select, duplicates once", &metav1.LabelSelector{MatchLabels: map[string]string{"alive": "true"}}, []string{a, b}},
		{"no match", &metav1.LabelSelector{MatchLabels: map[string]string{"alive": "unknown"}}, nil},
	}
	for _, tc := range cases {
		got, err := signerBundles(all, "example.com/s", tc.sel)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if union := string(pemUnion(got)); union != strings.Join(tc.want, "") {
			t.Errorf("%s: got %d bytes of PEM, want %d", tc.name, len(union), len(strings.Join(tc.want, "")))
		}
	}
}
