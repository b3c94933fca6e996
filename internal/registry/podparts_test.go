package registry

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

	"github.com/skiff-sh/skiff/internal/podspec"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// fieldsOf lists the paths of errs, for tables that name the field at fault.
func fieldsOf(errs field.ErrorList) string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Field)
	}
	return strings.Join(out, ",")
}

func runningPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		}}}},
	}
}

func TestEphemeralContainersPart(t *testing.T) {
	debugger := corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "busybox"}}
	withPort := debugger
	withPort.Ports = []corev1.ContainerPort{{ContainerPort: 80}}
	clash := debugger
	clash.Name = "app"
	badTarget := debugger
	badTarget.TargetContainerName = "nope"
	for _, tc := range []struct {
		name   string
		stored []corev1.EphemeralContainer
		sent   []corev1.EphemeralContainer
		field  string // "" = accepted
	}{
		{"add one", nil, []corev1.EphemeralContainer{debugger}, ""},
		{"name of an app container", nil, []corev1.EphemeralContainer{clash}, "spec.ephemeralContainers[0].name"},
		{"ports are forbidden", nil, []corev1.EphemeralContainer{withPort}, "spec.ephemeralContainers[0].ports"},
		{"unknown target", nil, []corev1.EphemeralContainer{badTarget}, "spec.ephemeralContainers[0].targetContainerName"},
		{"remove one", []corev1.EphemeralContainer{debugger}, nil, "spec.ephemeralContainers"},
		{"change one", []corev1.EphemeralContainer{debugger}, []corev1.EphemeralContainer{withPort}, "spec.ephemeralContainers[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := runningPod()
			cur.Spec.EphemeralContainers = tc.stored
			podspec.Default(&cur.Spec)
			req := cur.DeepCopy()
			req.Spec.EphemeralContainers = tc.sent
			req.Labels = map[string]string{"ignored": "yes"}
			next, errs := ephemeralContainersPart(req, cur)
			if got := fieldsOf(errs); got != tc.field {
				t.Fatalf("errors on %q, want %q: %v", got, tc.field, errs)
			}
			if tc.field != "" {
				return
			}
			p := next.(*corev1.Pod)
			if len(p.Labels) != 0 {
				t.Error("the subresource changed labels")
			}
			if c := p.Spec.EphemeralContainers[0]; c.TerminationMessagePolicy != corev1.TerminationMessageReadFile || c.ImagePullPolicy == "" {
				t.Errorf("ephemeral container not defaulted: %+v", c)
			}
		})
	}
}

func TestResizePart(t *testing.T) {
	set := func(cpuReq, cpuLim string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpuReq)
			p.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse(cpuLim)
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*corev1.Pod)
		field  string
	}{
		{"cpu up", set("150m", "300m"), ""},
		{"request above limit", set("400m", "300m"), "spec.containers[0].resources.requests[cpu]"},
		{"to guaranteed changes QoS", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = p.Spec.Containers[0].Resources.Limits.DeepCopy()
		}, "spec"},
		{"not cpu or memory", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests["example.com/gpu"] = resource.MustParse("1")
		}, "spec.containers[0].resources"},
		{"a container added", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "two", Image: "x"})
		}, "spec.containers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := runningPod()
			req := cur.DeepCopy()
			tc.change(req)
			req.Spec.Containers[0].Image = "ignored:2"
			next, errs := resizePart(req, cur)
			if got := fieldsOf(errs); got != tc.field {
				t.Fatalf("errors on %q, want %q: %v", got, tc.field, errs)
			}
			if tc.field != "" {
				return
			}
			c := next.(*corev1.Pod).Spec.Containers[0]
			if c.Image != "busybox" {
				t.Error("resize changed the image")
			}
			if !c.Resources.Limits.Cpu().Equal(resource.MustParse("300m")) {
				t.Errorf("limits %v", c.Resources.Limits)
			}
		})
	}
}

// A PodCertificateRequest's stub request must verify; an issued chain must
// hold the requested key.
func TestValidatePodCertificateRequest(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert := func(k *ecdsa.PrivateKey) (string, time.Time, time.Time) {
		nb, na := time.Now().Add(-time.Minute).Truncate(time.Second), time.Now().Add(time.Hour).Truncate(time.Second)
		der, _ := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, NotBefore: nb, NotAfter: na}, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}}, &k.PublicKey, key)
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nb, na
	}
	spec := certificatesv1.PodCertificateRequestSpec{SignerName: "example.com/s", PodName: "p", PodUID: "u1", ServiceAccountName: "default",
		ServiceAccountUID: "u2", NodeName: "n", NodeUID: "u3", MaxExpirationSeconds: ptr.To[int32](86400), StubPKCS10Request: csr}
	if errs := validatePCRSpec(&spec); len(errs) > 0 {
		t.Fatalf("valid spec refused: %v", errs)
	}
	tampered := spec
	tampered.StubPKCS10Request = append([]byte{}, csr...)
	tampered.StubPKCS10Request[len(csr)-3] ^= 0xff
	if errs := validatePCRSpec(&tampered); fieldsOf(errs) != "spec.stubPKCS10Request" {
		t.Errorf("a request whose signature fails: %v", errs)
	}
	for _, tc := range []struct {
		name  string
		key   *ecdsa.PrivateKey
		field string
	}{{"chain for the requested key", key, ""}, {"chain for another key", other, "status.certificateChain"}} {
		chain, nb, na := cert(tc.key)
		pcr := &certificatesv1.PodCertificateRequest{Spec: spec, Status: certificatesv1.PodCertificateRequestStatus{
			CertificateChain: chain, NotBefore: &metav1.Time{Time: nb}, NotAfter: &metav1.Time{Time: na}, BeginRefreshAt: &metav1.Time{Time: nb.Add(time.Minute)},
		}}
		if errs := validatePCRStatus(pcr); fieldsOf(errs) != tc.field {
			t.Errorf("%s: %v", tc.name, errs)
		}
	}
}
