package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// A second machine — a second network namespace joined to the first by a
// veth pair — joins with the server's token: it checks the CA by the
// token's hash, gets node certificates through approved
// CertificateSigningRequests, registers, and runs a pod whose logs and
// exec work through the API server. A token naming another CA is refused.
func TestSecondNodeJoins(t *testing.T) {
	const ip2 = "10.77.0.2"
	ns2, dir := secondHost(t, "n2", ip2)
	tok := nodeToken(t)
	server := "https://" + cl.nodeIP + ":6443"

	// A token with the right secret but another CA's hash must not join.
	forged := "K10" + strings.Repeat("0", 64) + tok[len("K10")+64:]
	out, err := exec.Command("nsenter", "--net=/var/run/netns/"+ns2, skiffBin, "agent", "--server", server, "--token", forged,
		"--data-dir", filepath.Join(dir, "forged"), "--node-name", "forged", "--node-ip", ip2).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "does not match the join token") {
		t.Fatalf("agent with a forged CA hash: err %v, output %s", err, out)
	}

	t.Cleanup(func() { _ = cl.client.CoreV1().Nodes().Delete(context.Background(), "node-2", metav1.DeleteOptions{}) })
	_, stop := startAgent(t, ns2, dir, "--node-name", "node-2", "--node-ip", ip2, "--pod-cidr", "10.42.1.0/24", "--node-labels", "example.com/second=yes")

	ctx := context.Background()
	poll.Eventually(t, 60*time.Second, func() error {
		n, err := cl.client.CoreV1().Nodes().Get(ctx, "node-2", getOpts)
		if err != nil || !nodeReady(n) {
			return fmt.Errorf("node-2 not Ready: %v", err)
		}
		if n.Labels["example.com/second"] != "yes" {
			return fmt.Errorf("node-2 labels %v", n.Labels)
		}
		return nil
	})
	// Another machine may not take the name of a node that is Ready.
	out, err = exec.Command("nsenter", "--net=/var/run/netns/"+ns2, skiffBin, "agent", "--server", server, "--token", tok,
		"--data-dir", filepath.Join(dir, "impostor"), "--node-name", "node-2", "--node-ip", ip2).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `node "node-2" is registered and Ready`) {
		t.Errorf("an agent taking node-2's name: err %v, output %s", err, out)
	}
	// --pod-cidr is registered as the node's range; the server's own node,
	// started without one, got its range from the node IPAM controller.
	if n, err := cl.client.CoreV1().Nodes().Get(ctx, "node-2", getOpts); err != nil || n.Spec.PodCIDR != "10.42.1.0/24" || len(n.Spec.PodCIDRs) != 1 {
		t.Errorf("node-2 podCIDR %q podCIDRs %v (%v)", n.Spec.PodCIDR, n.Spec.PodCIDRs, err)
	}
	first, err := cl.client.CoreV1().Nodes().Get(ctx, "node-"+strings.ReplaceAll(cl.nodeIP, ".", "-"), getOpts)
	if err != nil || !strings.HasPrefix(first.Spec.PodCIDR, "10.42.") || !strings.HasSuffix(first.Spec.PodCIDR, ".0/24") || first.Spec.PodCIDR == "10.42.1.0/24" {
		t.Errorf("server node podCIDR %q (%v)", first.Spec.PodCIDR, err)
	}
	csrs, err := cl.client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var issued []string
	for _, c := range csrs.Items {
		// Other tests join nodes too: only node-2's requests count.
		block, _ := pem.Decode(c.Spec.Request)
		if block == nil {
			t.Fatalf("CSR %s holds no PEM request", c.Name)
		}
		req, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			t.Fatalf("CSR %s: %v", c.Name, err)
		}
		if len(c.Status.Certificate) > 0 && req.Subject.CommonName == "system:node:node-2" {
			issued = append(issued, c.Spec.SignerName+" for "+c.Spec.Username)
		}
	}
	if len(issued) != 2 || !strings.Contains(strings.Join(issued, ","), "kubernetes.io/kube-apiserver-client-kubelet for system:bootstrap:") || !strings.Contains(strings.Join(issued, ","), "kubernetes.io/kubelet-serving for system:node:node-2") {
		t.Errorf("issued CSRs: %v", issued)
	}
	if out := cl.kubectl(t, "get", "csr"); !strings.Contains(out, "Approved,Issued") {
		t.Errorf("kubectl get csr:\n%s", out)
	}

	// The bootstrap token may not read or write anything else (RBAC gives
	// system:bootstrappers only system:node-bootstrapper).
	if out, err := cl.skiff("kubectl", "--token", tok[len("K10")+66:], "--kubeconfig", "/dev/null", "--server", "https://127.0.0.1:6443", "--insecure-skip-tls-verify", "get", "secrets", "-A"); err == nil || !strings.Contains(out, `secrets is forbidden: User "system:bootstrap:`) {
		t.Errorf("the join token listing secrets: err %v, output %s", err, out)
	}

	if out, err := cl.skiff("images", "import", "--data-dir", dir, filepath.Join(filepath.Dir(cl.dataDir), "busybox.tar")); err != nil {
		t.Fatalf("import into node-2: %v %s", err, out)
	}
	ns := namespace(t)
	for _, name := range []string{"for-second", "only-first"} {
		if _, err := cl.client.CoreV1().Secrets(ns).Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{"k": name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	p := busyboxPod(ns, "on-second", `echo hello-from-node-2; while true; do sleep 1; done`)
	p.Spec.NodeSelector = map[string]string{v1.LabelHostname: "node-2"}
	p.Spec.Containers[0].EnvFrom = []v1.EnvFromSource{{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "for-second"}}}}
	createPod(t, p)
	onFirst := busyboxPod(ns, "on-first", `while true; do sleep 1; done`)
	onFirst.Spec.NodeName = first.Name
	onFirst.Spec.Containers[0].EnvFrom = []v1.EnvFromSource{{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "only-first"}}}}
	createPod(t, onFirst)
	got := waitRunningReady(t, ns, "on-second")

	// node-2's own credentials (the Node authorizer and NodeRestriction):
	// the Secret its pod uses, not one only a pod on the first node uses;
	// its own Node, not the first; no node-restriction.kubernetes.io/ label.
	node2 := nodeClient(t, dir)
	if s, err := node2.CoreV1().Secrets(ns).Get(ctx, "for-second", getOpts); err != nil || s.Data["k"] == nil {
		t.Errorf("node-2 reading its pod's secret: %v", err)
	}
	if _, err := node2.CoreV1().Secrets(ns).Get(ctx, "only-first", getOpts); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "no relationship found between node 'node-2' and this object") {
		t.Errorf("node-2 reading the first node's pod's secret: %v, want Forbidden", err)
	}
	if _, err := node2.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("node-2 listing secrets: %v, want Forbidden", err)
	}
	label := func(node, key string) error {
		_, err := node2.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(`{"metadata":{"labels":{"`+key+`":"yes"}}}`), metav1.PatchOptions{})
		return err
	}
	if err := label(first.Name, "example.com/evil"); !apierrors.IsForbidden(err) {
		t.Errorf("node-2 patching %s: %v, want Forbidden", first.Name, err)
	}
	if err := label("node-2", "node-restriction.kubernetes.io/trusted"); !apierrors.IsForbidden(err) {
		t.Errorf("node-2 setting a node-restriction label on itself: %v, want Forbidden", err)
	}
	if err := label("node-2", "example.com/own"); err != nil {
		t.Errorf("node-2 labelling itself: %v", err)
	}
	if got.Spec.NodeName != "node-2" || got.Status.HostIP != ip2 || !strings.HasPrefix(got.Status.PodIP, "10.42.1.") {
		t.Errorf("pod on %s, hostIP %s, podIP %s", got.Spec.NodeName, got.Status.HostIP, got.Status.PodIP)
	}
	poll.Eventually(t, 20*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "logs", "on-second")
		if err != nil || !strings.Contains(out, "hello-from-node-2") {
			return fmt.Errorf("logs via node-2: %v %q", err, out)
		}
		return nil
	})
	if out := cl.kubectl(t, "-n", ns, "exec", "on-second", "--", "hostname"); strings.TrimSpace(out) != "on-second" {
		t.Errorf("exec via node-2: %q", out)
	}
	if err := cl.client.CoreV1().Pods(ns).Delete(ctx, "on-second", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		if _, err := cl.client.CoreV1().Pods(ns).Get(ctx, "on-second", getOpts); err == nil {
			return fmt.Errorf("pod still there")
		}
		entries, _ := os.ReadDir(filepath.Join(dir, "agent", "pods"))
		if len(entries) > 0 {
			return fmt.Errorf("node-2 still holds %d pod directories", len(entries))
		}
		return nil
	})
	stop()
	_ = cl.client.CoreV1().Nodes().Delete(ctx, "node-2", metav1.DeleteOptions{})
}

// nodeClient is a client with the credentials a joined agent keeps in its
// data dir (system:node:<name>).
func nodeClient(t *testing.T, dir string) kubernetes.Interface {
	t.Helper()
	var base string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && filepath.Base(p) == "kubelet-client.crt" {
			base = strings.TrimSuffix(p, ".crt")
		}
		return nil
	})
	if base == "" {
		t.Fatalf("no kubelet-client.crt under %s", dir)
	}
	cert, err1 := os.ReadFile(base + ".crt")
	key, err2 := os.ReadFile(base + ".key")
	cfg, err3 := clientcmd.BuildConfigFromFlags("", cl.kubeconfig)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	cfg.CertData, cfg.KeyData, cfg.CertFile, cfg.KeyFile = cert, key, "", ""
	cfg.Dial = cl.dialInNetns
	return kubernetes.NewForConfigOrDie(cfg)
}
