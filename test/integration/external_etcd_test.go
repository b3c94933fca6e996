package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// TestExternalEtcd runs a second server on the first one's etcd through
// --etcd-endpoints (the external-etcd path, over gRPC) and checks that both
// serve one state: a write through one is seen, and watched, through the
// other, and ClusterIPs allocated through both at once never collide.
func TestExternalEtcd(t *testing.T) {
	a := startServer(t)
	caFile, certFile, keyFile := a.etcdTLS()
	b := startServer(t, "--etcd-endpoints", fmt.Sprintf("https://127.0.0.1:%d", a.etcdPort), "--etcd-cafile", caFile, "--etcd-certfile", certFile, "--etcd-keyfile", keyFile)
	ctx := context.Background()
	ca, cb := a.client(), b.client()

	w, err := ca.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=shared"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := cb.CoreV1().ConfigMaps("default").Create(ctx, cm("shared", map[string]string{"from": "b"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Data["from"] != "b" {
			t.Errorf("watch on a saw %s %+v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write through b never reached a watch on a")
	}
	got, err := ca.CoreV1().ConfigMaps("default").Get(ctx, "shared", metav1.GetOptions{})
	if err != nil || got.Data["from"] != "b" {
		t.Fatalf("get through a: %+v %v", got, err)
	}

	const perServer = 15
	ips := make(chan string, 2*perServer)
	var wg sync.WaitGroup
	for i, cs := range []*kubernetes.Clientset{ca, cb} {
		for j := range perServer {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d-%d", i, j)},
					Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
				}
				out, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
				if err != nil {
					t.Errorf("create %s: %v", svc.Name, err)
					return
				}
				ips <- out.Spec.ClusterIP
			}()
		}
	}
	wg.Wait()
	close(ips)
	seen := map[string]bool{}
	for ip := range ips {
		if seen[ip] {
			t.Errorf("ClusterIP %s allocated twice", ip)
		}
		seen[ip] = true
	}
	if len(seen) != 2*perServer {
		t.Errorf("%d distinct ClusterIPs for %d services", len(seen), 2*perServer)
	}
}

// TestEtcdTLS: the embedded etcd answers only clients holding a
// certificate of its own CA — not plain HTTP, not TLS without a
// certificate, not the cluster CA's admin certificate.
func TestEtcdTLS(t *testing.T) {
	s := startServer(t)
	caFile, certFile, keyFile := s.etcdTLS()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	own, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := tls.LoadX509KeyPair(filepath.Join(s.dataDir, "pki", "admin.crt"), filepath.Join(s.dataDir, "pki", "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(scheme string, certs ...tls.Certificate) error {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
		resp, err := c.Get(fmt.Sprintf("%s://127.0.0.1:%d/version", scheme, s.etcdPort))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get("https", own); err != nil {
		t.Fatalf("with etcd's client certificate: %v", err)
	}
	if err := get("http"); err == nil {
		t.Error("plain HTTP was answered")
	}
	if err := get("https"); err == nil {
		t.Error("TLS without a client certificate was answered")
	}
	if err := get("https", admin); err == nil {
		t.Error("the cluster CA's admin certificate opened etcd")
	}
}
