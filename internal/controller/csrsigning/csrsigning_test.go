package csrsigning

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
)

func request(t *testing.T, cn string, org []string, dns ...string) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: org}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestAutoApprove: which requests a node is entitled to, and which
// permission the requester must hold for it.
func TestAutoApprove(t *testing.T) {
	client := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	serving := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	nodes := []string{"system:nodes"}
	boot := certificatesv1.CertificateSigningRequestSpec{Username: "system:bootstrap:abc123", Groups: []string{"system:bootstrappers", "system:authenticated"}}
	self := certificatesv1.CertificateSigningRequestSpec{Username: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}}
	alice := certificatesv1.CertificateSigningRequestSpec{Username: "alice", Groups: []string{"system:authenticated"}}
	cases := []struct {
		name   string
		by     certificatesv1.CertificateSigningRequestSpec
		signer string
		req    []byte
		usages []certificatesv1.KeyUsage
		want   approval
		ok     bool
	}{
		{"a joining node's client certificate", boot, certificatesv1.KubeAPIServerClientKubeletSignerName, request(t, "system:node:n1", nodes), client, approval{node: "n1", bootstrap: true, subresource: "nodeclient"}, true},
		{"a node renewing its own", self, certificatesv1.KubeAPIServerClientKubeletSignerName, request(t, "system:node:n1", nodes), client, approval{node: "n1", subresource: "selfnodeclient"}, true},
		{"a node asking another's", self, certificatesv1.KubeAPIServerClientKubeletSignerName, request(t, "system:node:n2", nodes), client, approval{}, false},
		{"a user asking a node's", alice, certificatesv1.KubeAPIServerClientKubeletSignerName, request(t, "system:node:n1", nodes), client, approval{}, false},
		{"a client certificate with names", boot, certificatesv1.KubeAPIServerClientKubeletSignerName, request(t, "system:node:n1", nodes, "n1"), client, approval{}, false},
		{"masters in the organization", boot, certificatesv1.KubeAPIServerClientKubeletSignerName, request(t, "system:node:n1", []string{"system:masters"}), client, approval{}, false},
		{"a node's serving certificate", self, certificatesv1.KubeletServingSignerName, request(t, "system:node:n1", nodes, "n1"), serving, approval{node: "n1"}, true},
		{"a serving certificate by a join token", boot, certificatesv1.KubeletServingSignerName, request(t, "system:node:n1", nodes, "n1"), serving, approval{}, false},
	}
	for _, c := range cases {
		spec := c.by
		spec.SignerName, spec.Request, spec.Usages = c.signer, c.req, c.usages
		got, ok := autoApprove(&certificatesv1.CertificateSigningRequest{Spec: spec})
		got.message = ""
		if ok != c.ok || got != c.want {
			t.Errorf("%s: %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
