package kubelet

import (
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/pki"
)

// testCAPEM is a new CA's certificate, made by the project's own pki.
func testCAPEM(t *testing.T, cn string) string {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), cn)
	if err != nil {
		t.Fatal(err)
	}
	return string(ca.CertPEM)
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
