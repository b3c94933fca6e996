package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/poll"
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

// TestExternalEtcdServers: servers of one cluster on an external etcd
// share its files through the etcd. The first publishes them; a second
// refuses to start without the server token (or with the node token), and
// with it takes the first one's CA, keys and tokens: the first's admin
// kubeconfig works against it, a Secret sealed through one opens through
// the other, a ServiceAccount token issued by one is accepted by the
// other. A data dir of another cluster is refused.
func TestExternalEtcdServers(t *testing.T) {
	store := startServer(t) // its embedded etcd is the external etcd here
	caFile, certFile, keyFile := store.etcdTLS()
	external := []string{"--etcd-endpoints", fmt.Sprintf("https://127.0.0.1:%d", store.etcdPort), "--etcd-cafile", caFile, "--etcd-certfile", certFile, "--etcd-keyfile", keyFile}
	first := startServer(t, external...)
	if !strings.Contains(first.logs.String(), "published the cluster's CAs, keys and tokens in etcd") {
		t.Fatalf("the first server did not publish its files:\n%s", first.logs.String())
	}
	serverToken := strings.TrimSpace(fileText(t, filepath.Join(first.dataDir, "server-token")))
	nodeToken := strings.TrimSpace(fileText(t, filepath.Join(first.dataDir, "node-token")))
	refused := func(dir string, extra ...string) string {
		t.Helper()
		args := append([]string{"server", "--data-dir", dir, "--bind-address", "127.0.0.1", "--secure-port", "0", "--advertise-address", "127.0.0.1", "--disable-agent"}, external...)
		cmd := exec.Command(skiffBin, append(args, extra...)...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("a server that should be refused started: %s", out)
		}
		if err == nil {
			t.Fatalf("started: %s", out)
		}
		if _, err := os.Stat(filepath.Join(dir, "pki", "ca.key")); err == nil {
			t.Errorf("a refused server wrote a CA key into %s", dir)
		}
		return string(out)
	}
	if out := refused(t.TempDir()); !strings.Contains(out, "already holds a cluster") || !strings.Contains(out, "--token") {
		t.Errorf("without a token: %s", out)
	}
	if out := refused(t.TempDir(), "--token", nodeToken); !strings.Contains(out, "use the server token") {
		t.Errorf("with the node token: %s", out)
	}
	other := t.TempDir()
	if err := os.MkdirAll(filepath.Join(other, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "pki", "ca.crt"), []byte(fileText(t, filepath.Join(store.dataDir, "pki", "ca.crt"))), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := refused(other); !strings.Contains(out, "belongs to another cluster") {
		t.Errorf("a data dir of another cluster: %s", out)
	}

	second := startServer(t, append(external, "--token", serverToken)...)
	for _, f := range []string{"pki/ca.crt", "pki/sa.key", "pki/encryption-config.yaml", "server-token"} {
		if fileText(t, filepath.Join(first.dataDir, f)) != fileText(t, filepath.Join(second.dataDir, f)) {
			t.Errorf("%s differs between the servers", f)
		}
	}
	ctx := context.Background()
	// The first server's admin kubeconfig against the second.
	cfg := first.restConfig()
	cfg.Host = fmt.Sprintf("https://127.0.0.1:%d", second.port)
	viaSecond := kubernetes.NewForConfigOrDie(cfg)
	if _, err := viaSecond.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sealed-by-second"}, StringData: map[string]string{"v": "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the first server's admin against the second: %v", err)
	}
	got, err := first.client().CoreV1().Secrets("default").Get(ctx, "sealed-by-second", metav1.GetOptions{})
	if err != nil || string(got.Data["v"]) != "x" {
		t.Errorf("a Secret the second sealed, through the first: %v %v", got, err)
	}
	if _, err := first.client().CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := first.client().CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, func() error {
		who, err := second.tokenClient(tr.Status.Token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil || who.Status.UserInfo.Username != "system:serviceaccount:default:robot" {
			return fmt.Errorf("the first server's ServiceAccount token at the second: %v %+v", err, who)
		}
		return nil
	})
	// The etcd also holds the store's record of its Secrets' keys, sealed
	// with another cluster's token: these servers say they cannot use it
	// and refuse to rotate, sealing on with their own keys.
	st, err := first.secretsEncrypt("status")
	if err != nil || !strings.Contains(st, "Shared keys: not used here") || !strings.Contains(st, "does not open with this server's token") {
		t.Errorf("status beside another cluster's keys: %v\n%s", err, st)
	}
	if out, err := first.secretsEncrypt("rotate"); err == nil || !strings.Contains(out, "does not open with this server's token") {
		t.Errorf("rotate beside another cluster's keys: %v\n%s", err, out)
	}
	// Restarted, the second starts from its data dir without the token.
	second.stop()
	second.extraArgs = external
	second.start()
}

// fileText is a file the server wrote; a missing one ends the test.
func fileText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
