package ingress

import (
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func path(p string, t networkingv1.PathType, svc string) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: p, PathType: ptr.To(t), Backend: networkingv1.IngressBackend{
		Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}},
	}}
}

func ing(name string, age time.Duration, rules ...networkingv1.IngressRule) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, CreationTimestamp: metav1.NewTime(time.Unix(1e9, 0).Add(-age))},
		Spec:       networkingv1.IngressSpec{Rules: rules},
	}
}

func rule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
}

func TestMatch(t *testing.T) {
	all := func(*networkingv1.Ingress) bool { return true }
	main := ing("main", time.Hour,
		rule("a.example", path("/", networkingv1.PathTypePrefix, "a"), path("/api", networkingv1.PathTypePrefix, "a-api"), path("/api/v1", networkingv1.PathTypeExact, "a-v1")),
		rule("*.wild.example", path("/", networkingv1.PathTypePrefix, "wild")),
		rule("", path("/health", networkingv1.PathTypeExact, "health")),
	)
	main.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "fallback", Port: networkingv1.ServiceBackendPort{Name: "http"}}}
	// A younger Ingress claiming a taken host and path loses it.
	younger := ing("younger", time.Minute, rule("a.example", path("/", networkingv1.PathTypePrefix, "thief")), rule("b.example", path("/", networkingv1.PathTypePrefix, "b")))
	tbl := BuildTable([]*networkingv1.Ingress{younger, main}, all)
	cases := []struct{ host, path, want string }{
		{"a.example", "/", "a"},
		{"A.Example", "/x", "a"},
		{"a.example", "/api", "a-api"},
		{"a.example", "/api/", "a-api"},
		{"a.example", "/apix", "a"},
		{"a.example", "/api/v1", "a-v1"},
		{"a.example", "/api/v1/x", "a-api"},
		{"b.example", "/anything", "b"},
		{"x.wild.example", "/", "wild"},
		{"x.y.wild.example", "/", "fallback"},
		{"other.example", "/health", "health"},
		{"other.example", "/healthz", "fallback"},
	}
	for _, c := range cases {
		b, ok := tbl.Match(c.host, c.path)
		if !ok || b.Service != c.want {
			t.Errorf("%s%s → %q (%v), want %s", c.host, c.path, b.Service, ok, c.want)
		}
	}
	if len(tbl.Served) != 2 {
		t.Errorf("served %d ingresses", len(tbl.Served))
	}

	none := BuildTable([]*networkingv1.Ingress{main}, func(*networkingv1.Ingress) bool { return false })
	if _, ok := none.Match("a.example", "/"); ok || len(none.Served) != 0 {
		t.Error("an Ingress of another class was routed")
	}
}

func TestCertificateLookup(t *testing.T) {
	i := ing("tls", 0, rule("a.example", path("/", networkingv1.PathTypePrefix, "a")))
	i.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"a.example", "*.wild.example"}, SecretName: "a-cert"}}
	tbl := BuildTable([]*networkingv1.Ingress{i}, func(*networkingv1.Ingress) bool { return true })
	for name, want := range map[string]bool{"a.example": true, "x.wild.example": true, "b.example": false} {
		if ref, ok := tbl.cert(name); ok != want || ok && ref.Secret != "a-cert" {
			t.Errorf("cert(%s) = %v %v", name, ref, ok)
		}
	}
}
