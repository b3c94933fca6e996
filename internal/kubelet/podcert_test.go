package kubelet

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A pod certificate key comes with a stub request that proves it, for
// every key type a projection may ask for.
func TestNewPodCertKey(t *testing.T) {
	for _, kt := range []string{"ECDSAP256", "ECDSAP384", "ECDSAP521", "ED25519", "RSA3072"} {
		keyPEM, csrDER, err := newPodCertKey(kt)
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		b, _ := pem.Decode(keyPEM)
		if b == nil || b.Type != "PRIVATE KEY" {
			t.Fatalf("%s: key PEM %q", kt, keyPEM)
		}
		key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		csr, err := x509.ParseCertificateRequest(csrDER)
		if err != nil || csr.CheckSignature() != nil {
			t.Fatalf("%s: stub request does not verify: %v", kt, err)
		}
		pub := key.(crypto.Signer).Public()
		if !csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Fatalf("%s: request's key is not the private key's", kt)
		}
	}
	if _, _, err := newPodCertKey("DSA1024"); err == nil {
		t.Fatal("unknown key type accepted")
	}
}

func TestPCROutcome(t *testing.T) {
	cond := func(typ string) []metav1.Condition {
		return []metav1.Condition{{Type: typ, Status: metav1.ConditionTrue, Reason: "R", Message: "m"}}
	}
	now := metav1.Now()
	for _, tc := range []struct {
		name          string
		status        certificatesv1.PodCertificateRequestStatus
		done, failure bool
	}{
		{"pending", certificatesv1.PodCertificateRequestStatus{}, false, false},
		{"issued", certificatesv1.PodCertificateRequestStatus{Conditions: cond(certificatesv1.PodCertificateRequestConditionTypeIssued), CertificateChain: "x", BeginRefreshAt: &now}, true, false},
		{"issued without chain yet", certificatesv1.PodCertificateRequestStatus{Conditions: cond(certificatesv1.PodCertificateRequestConditionTypeIssued)}, false, false},
		{"denied", certificatesv1.PodCertificateRequestStatus{Conditions: cond(certificatesv1.PodCertificateRequestConditionTypeDenied)}, true, true},
		{"failed", certificatesv1.PodCertificateRequestStatus{Conditions: cond(certificatesv1.PodCertificateRequestConditionTypeFailed)}, true, true},
	} {
		done, failure := pcrOutcome(&certificatesv1.PodCertificateRequest{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Status: tc.status})
		if done != tc.done || (failure != "") != tc.failure {
			t.Errorf("%s: done %v failure %q", tc.name, done, failure)
		}
	}
}
