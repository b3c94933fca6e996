package podspec

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func TestQOSClass(t *testing.T) {
	rl := func(cpu, mem string) corev1.ResourceList {
		l := corev1.ResourceList{}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return l
	}
	cases := []struct {
		req, lim corev1.ResourceList
		want     corev1.PodQOSClass
	}{
		{nil, nil, corev1.PodQOSBestEffort},
		{rl("1", "1Gi"), rl("1", "1Gi"), corev1.PodQOSGuaranteed},
		{rl("500m", ""), nil, corev1.PodQOSBurstable},
		{rl("1", "1Gi"), rl("2", "1Gi"), corev1.PodQOSBurstable},
	}
	for i, c := range cases {
		s := &corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: c.req, Limits: c.lim}}}}
		if got := QOSClass(s); got != c.want {
			t.Errorf("case %d: %s, want %s", i, got, c.want)
		}
	}
}

func TestPodCertificateProjection(t *testing.T) {
	proj := func(f func(*corev1.PodCertificateProjection)) *corev1.PodCertificateProjection {
		p := &corev1.PodCertificateProjection{SignerName: "example.com/s", KeyType: "ECDSAP256", CredentialBundlePath: "cred.pem"}
		f(p)
		return p
	}
	for _, tc := range []struct {
		name  string
		p     *corev1.PodCertificateProjection
		field string
		msg   string
	}{
		{"valid", proj(func(*corev1.PodCertificateProjection) {}), "", ""},
		{"under an hour", proj(func(p *corev1.PodCertificateProjection) { p.MaxExpirationSeconds = ptr.To[int32](3599) }), "p.maxExpirationSeconds", "must be >= 3600"},
		{"over 91 days", proj(func(p *corev1.PodCertificateProjection) { p.MaxExpirationSeconds = ptr.To[int32](91*86400 + 1) }), "p.maxExpirationSeconds", "must be <= 7862400"},
		{"kubernetes.io signer over a day", proj(func(p *corev1.PodCertificateProjection) {
			p.SignerName, p.MaxExpirationSeconds = "kubernetes.io/x", ptr.To[int32](86401)
		}), "p.maxExpirationSeconds", "must be <= 86400"},
		{"key type", proj(func(p *corev1.PodCertificateProjection) { p.KeyType = "DSA" }), "p.keyType", ""},
		{"no path", proj(func(p *corev1.PodCertificateProjection) { p.CredentialBundlePath = "" }), "p", ""},
		{"absolute path", proj(func(p *corev1.PodCertificateProjection) { p.KeyPath = "/etc/key" }), "p.keyPath", ""},
		{"signer without path", proj(func(p *corev1.PodCertificateProjection) { p.SignerName = "example.com" }), "p.signerName", ""},
	} {
		errs := validateCertificateProjection(tc.p, field.NewPath("p"), map[string]bool{})
		if got := fieldsOf(errs); got != tc.field || (tc.msg != "" && !strings.Contains(errs.ToAggregate().Error(), tc.msg)) {
			t.Errorf("%s: errors %v, want field %q with %q", tc.name, errs, tc.field, tc.msg)
		}
	}
}

// fieldsOf joins the fields of errs, for comparing against one expected field.
func fieldsOf(errs field.ErrorList) string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Field)
	}
	return strings.Join(out, ",")
}
