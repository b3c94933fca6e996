package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
)

// grants allows exactly the "verb group/resource name" it lists.
type grants map[string]bool

func (g grants) Authorize(a authz.Attributes) (authz.Decision, string) {
	if g[a.Verb+" "+a.APIGroup+"/"+a.Resource+" "+a.Name] {
		return authz.Allow, ""
	}
	return authz.NoOpinion, ""
}
func (grants) RulesFor(auth.User, string) ([]rbacv1.PolicyRule, []error) { return nil, nil }
func (grants) RoleRules(string, string, string) ([]rbacv1.PolicyRule, bool) {
	return nil, false
}

// TestGuardCSR: upstream's certificate admission.
func TestGuardCSR(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	req := func(org ...string) []byte {
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x", Organization: org}}, key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	csr := func(signer string, r []byte) *certificatesv1.CertificateSigningRequest {
		return &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{SignerName: signer, Request: r}}
	}
	approved := func(c *certificatesv1.CertificateSigningRequest) *certificatesv1.CertificateSigningRequest {
		n := c.DeepCopy()
		n.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
		return n
	}
	g := &Registry{Authz: grants{"approve certificates.k8s.io/signers example.com/*": true, "sign certificates.k8s.io/signers example.com/signer": true}}
	carol := auth.WithUser(context.Background(), auth.User{Name: "carol", Groups: []string{"system:authenticated"}})
	admin := auth.WithUser(context.Background(), auth.User{Name: "admin", Groups: []string{"system:masters"}})
	ours, theirs := csr("example.com/signer", req()), csr("kubernetes.io/kube-apiserver-client", req())
	signed := approved(ours)
	signed.Status.Certificate = []byte("CERT")
	cases := []struct {
		name     string
		ctx      context.Context
		obj, old *certificatesv1.CertificateSigningRequest
		ok       bool
	}{
		{"a masters client certificate requested", admin, csr("kubernetes.io/kube-apiserver-client", req("system:masters")), nil, false},
		{"another group requested", carol, csr("kubernetes.io/kube-apiserver-client", req("dev")), nil, true},
		{"approve with a domain wildcard grant", carol, approved(ours), ours, true},
		{"approve another signer", carol, approved(theirs), theirs, false},
		{"sign with a grant", carol, signed, approved(ours), true},
		{"admin approves anything", admin, approved(theirs), theirs, true},
	}
	for _, c := range cases {
		var old *certificatesv1.CertificateSigningRequest
		err := func() error {
			if c.old == nil {
				return guardCSR(c.ctx, g, c.obj, nil)
			}
			old = c.old
			return guardCSR(c.ctx, g, c.obj, old)
		}()
		if (err == nil) != c.ok || (err != nil && !apierrors.IsForbidden(err)) {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
