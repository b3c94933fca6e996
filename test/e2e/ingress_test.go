package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// selfSignedFor makes a certificate and key (PEM) for host.
func selfSignedFor(t *testing.T, host string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := x509.MarshalECPrivateKey(key)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: k}), pool
}

// hostGet requests url from the cluster's namespace with a Host header;
// pool, when set, is the trust for HTTPS.
func hostGet(url, host string, pool *x509.CertPool) (int, string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       func(ctx context.Context, n, a string) (net.Conn, error) { return dialIn(ctx, cl.netns, n, a) },
		TLSClientConfig:   &tls.Config{ServerName: host, RootCAs: pool},
	}}
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// An Ingress of the default class routes two hosts to two Services over
// HTTP, one of them over HTTPS with its certificate from a Secret; an
// unknown host gets 404; the Ingress shows the node's address.
func TestIngressRoutesTwoHosts(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	node := "node-" + hyphenated(cl.nodeIP)
	for _, app := range []string{"alpha", "beta"} {
		p := webPod(ns, app, node)
		p.Labels = map[string]string{"app": app}
		createPod(t, p)
		if _, err := cl.client.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: app},
			Spec:       v1.ServiceSpec{Selector: p.Labels, Ports: []v1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitRunningReady(t, ns, "alpha")
	waitRunningReady(t, ns, "beta")
	certPEM, keyPEM, pool := selfSignedFor(t, "alpha.example")
	if _, err := cl.client.CoreV1().Secrets(ns).Create(ctx, &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "alpha-tls"}, Type: v1.SecretTypeTLS,
		Data: map[string][]byte{v1.TLSCertKey: certPEM, v1.TLSPrivateKeyKey: keyPEM},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	backend := func(svc string) networkingv1.IngressBackend {
		return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Name: "http"}}}
	}
	rule := func(host, svc string) networkingv1.IngressRule {
		return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix), Backend: backend(svc)}},
		}}}
	}
	created, err := cl.client.NetworkingV1().Ingresses(ns).Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "two-hosts"},
		Spec: networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{rule("alpha.example", "alpha"), rule("beta.example", "beta")},
			TLS:   []networkingv1.IngressTLS{{Hosts: []string{"alpha.example"}, SecretName: "alpha-tls"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := created.Spec.IngressClassName; c == nil || *c != "skiff" {
		t.Errorf("the Ingress got class %v, want the default skiff", c)
	}

	base := "http://" + cl.nodeIP
	for host, want := range map[string]string{"alpha.example": "alpha", "beta.example": "beta"} {
		poll.Eventually(t, 30*time.Second, func() error {
			code, body, err := hostGet(base+"/", host, nil)
			if err != nil || code != 200 || body != want {
				return fmt.Errorf("%s: %d %q %v", host, code, body, err)
			}
			return nil
		})
	}
	if code, _, err := hostGet(base+"/", "gamma.example", nil); err != nil || code != http.StatusNotFound {
		t.Errorf("unknown host: %d %v, want 404", code, err)
	}
	if code, body, err := hostGet("https://"+cl.nodeIP+"/", "alpha.example", pool); err != nil || code != 200 || body != "alpha" {
		t.Errorf("HTTPS with the Secret's certificate: %d %q %v", code, body, err)
	}

	poll.Eventually(t, 20*time.Second, func() error {
		i, err := cl.client.NetworkingV1().Ingresses(ns).Get(ctx, "two-hosts", getOpts)
		if err != nil {
			return err
		}
		if lb := i.Status.LoadBalancer.Ingress; len(lb) != 1 || lb[0].IP != cl.nodeIP {
			return fmt.Errorf("ingress status %+v", lb)
		}
		return nil
	})
	if out := cl.kubectl(t, "get", "ingressclass", "skiff", "-o", "jsonpath={.metadata.annotations}"); !strings.Contains(out, `"ingressclass.kubernetes.io/is-default-class":"true"`) {
		t.Errorf("IngressClass skiff: %s", out)
	}
	if out := cl.kubectl(t, "-n", ns, "get", "ingress", "two-hosts"); !strings.Contains(out, cl.nodeIP) || !strings.Contains(out, "alpha.example,beta.example") {
		t.Errorf("kubectl get ingress:\n%s", out)
	}
}
