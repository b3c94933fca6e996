package apiserver

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseProxyName(t *testing.T) {
	cases := []struct {
		in   string
		want proxyName
		ok   bool
	}{
		{"web", proxyName{name: "web"}, true},
		{"web:8080", proxyName{name: "web", port: "8080"}, true},
		{"web:http", proxyName{name: "web", port: "http"}, true},
		{"https:web:443", proxyName{scheme: "https", name: "web", port: "443"}, true},
		{"https:web:", proxyName{scheme: "https", name: "web"}, true},
		{"ftp:web:21", proxyName{}, false},
		{":8080", proxyName{}, false},
		{"a:b:c:d", proxyName{}, false},
	}
	for _, tc := range cases {
		got, ok := parseProxyName(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%q: got %+v %v, want %+v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestProxyTargets(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, {Name: "b", Ports: []corev1.ContainerPort{{ContainerPort: 9376}, {ContainerPort: 80}}}}},
		Status: corev1.PodStatus{PodIP: "10.42.0.7"}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "web", Port: 80}, {Name: "", Port: 81}}}}
	ep := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{{IP: "10.42.0.8"}, {IP: "10.42.0.9"}}, NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.42.0.10"}},
			Ports: []corev1.EndpointPort{{Name: "web", Port: 8080}, {Name: "", Port: 8081}}},
	}}
	last := func(n int) int { return n - 1 }
	cases := []struct {
		name string
		got  func() (string, error)
		want string // URL, or "" for an error
	}{
		{"pod, first declared port", func() (string, error) { return str(podProxyTarget(pod, proxyName{name: "p"})) }, "http://10.42.0.7:9376"},
		{"pod, explicit port and scheme", func() (string, error) {
			return str(podProxyTarget(pod, proxyName{scheme: "https", name: "p", port: "443"}))
		}, "https://10.42.0.7:443"},
		{"pod without IP", func() (string, error) { return str(podProxyTarget(&corev1.Pod{}, proxyName{name: "p"})) }, ""},
		{"service port by name", func() (string, error) {
			return str(serviceProxyTarget(svc, ep, proxyName{name: "s", port: "web"}, last))
		}, "http://10.42.0.9:8080"},
		{"service port by number", func() (string, error) {
			return str(serviceProxyTarget(svc, ep, proxyName{name: "s", port: "80"}, last))
		}, "http://10.42.0.9:8080"},
		{"service's unnamed port", func() (string, error) { return str(serviceProxyTarget(svc, ep, proxyName{name: "s"}, last)) }, "http://10.42.0.9:8081"},
		{"unknown port number", func() (string, error) {
			return str(serviceProxyTarget(svc, ep, proxyName{name: "s", port: "82"}, last))
		}, ""},
		{"no endpoints", func() (string, error) {
			return str(serviceProxyTarget(svc, nil, proxyName{name: "s", port: "web"}, last))
		}, ""},
	}
	for _, tc := range cases {
		got, err := tc.got()
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: got %s, want an error", tc.name, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %s %v, want %s", tc.name, got, err, tc.want)
		}
	}
}

func TestProxyRest(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/namespaces/n/pods/p:80/proxy":           "/",
		"/api/v1/namespaces/n/pods/p:80/proxy/":          "/",
		"/api/v1/namespaces/n/pods/p:80/proxy/a/b/":      "/a/b/",
		"/api/v1/namespaces/n/services/p:80/proxy/x.txt": "/x.txt",
	} {
		if got := proxyRest(path, "p:80"); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}

func str(u interface{ String() string }, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return u.String(), nil
}
