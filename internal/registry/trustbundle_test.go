package registry

import (
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/pki"
)

func TestValidateTrustBundle(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "ctb")
	if err != nil {
		t.Fatal(err)
	}
	good := string(ca.CertPEM)
	cases := []struct {
		name, objName, signer, bundle, field string // field "" = valid
	}{
		{"plain", "plain", "", good, ""},
		{"signer-linked", "example.com:s:1", "example.com/s", good, ""},
		{"colon without signer", "a:b", "", good, "metadata.name"},
		{"name without the signer's prefix", "other", "example.com/s", good, "metadata.name"},
		{"empty bundle", "plain", "", "", "spec.trustBundle"},
		{"not a certificate block", "plain", "", strings.Replace(good, "CERTIFICATE", "PRIVATE KEY", 2), "spec.trustBundle"},
		{"trailing garbage", "plain", "", good + "junk", "spec.trustBundle"},
	}
	for _, tc := range cases {
		b := &certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: tc.objName}, Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: tc.signer, TrustBundle: tc.bundle}}
		errs := validateTrustBundle(b)
		if tc.field == "" {
			if len(errs) > 0 {
				t.Errorf("%s: %v", tc.name, errs)
			}
			continue
		}
		if len(errs) == 0 || errs[0].Field != tc.field {
			t.Errorf("%s: got %v, want an error on %s", tc.name, errs, tc.field)
		}
	}
}
