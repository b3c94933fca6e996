package e2e

import (
	"bytes"
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
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	"golang.org/x/net/websocket"
	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// A debugging container is added to a running pod through
// pods/ephemeralcontainers: it runs in the pod, reports its status, serves
// exec and logs, joins its target container's process namespace (kubectl
// debug --target), and bumps the pod's generation.
func TestEphemeralContainer(t *testing.T) {
	ns := namespace(t)
	createPod(t, busyboxPod(ns, "target", "while true; do sleep 1; done"))
	p := waitRunningReady(t, ns, "target")
	p.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{
		Name: "debugger", Image: busyboxImage, Command: []string{"sh", "-c", "echo polo; while true; do sleep 1; done"},
	}, TargetContainerName: "main"}}
	if _, err := cl.client.CoreV1().Pods(ns).UpdateEphemeralContainers(context.Background(), "target", p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		got := getPod(t, ns, "target")
		if len(got.Status.EphemeralContainerStatuses) != 1 || got.Status.EphemeralContainerStatuses[0].State.Running == nil {
			return fmt.Errorf("ephemeral statuses %+v", got.Status.EphemeralContainerStatuses)
		}
		if got.Generation != p.Generation+1 {
			return fmt.Errorf("generation %d, want %d", got.Generation, p.Generation+1)
		}
		return nil
	})
	if out := cl.kubectl(t, "-n", ns, "exec", "target", "-c", "debugger", "--", "echo", "marco"); strings.TrimSpace(out) != "marco" {
		t.Errorf("exec in the ephemeral container: %q", out)
	}
	// In the target's process namespace, process 1 is the target's shell.
	if out := cl.kubectl(t, "-n", ns, "exec", "target", "-c", "debugger", "--", "cat", "/proc/1/cmdline"); !strings.Contains(out, "while true; do sleep 1; done") || strings.Contains(out, "polo") {
		t.Errorf("process 1 as the debugging container sees it: %q, want the target's command", out)
	}
	poll.Eventually(t, 20*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "logs", "target", "-c", "debugger")
		if err != nil || !strings.Contains(out, "polo") {
			return fmt.Errorf("logs %q: %v", out, err)
		}
		return nil
	})
	// Changing or removing it is refused.
	got := getPod(t, ns, "target")
	got.Spec.EphemeralContainers = nil
	if _, err := cl.client.CoreV1().Pods(ns).UpdateEphemeralContainers(context.Background(), "target", got, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "may not be removed") {
		t.Errorf("removing an ephemeral container: %v", err)
	}
}

// pods/resize changes a running container's CPU and memory in place: the
// cgroup follows, the status reports it, and the container is not
// restarted (resizePolicy NotRequired).
func TestInPlaceResize(t *testing.T) {
	ns := namespace(t)
	p := busyboxPod(ns, "resized", "while true; do sleep 1; done")
	p.Spec.Containers[0].Resources = v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("200m"), v1.ResourceMemory: resource.MustParse("64Mi")},
	}
	createPod(t, p)
	cur := waitRunningReady(t, ns, "resized")
	cgroupMemory := func() string {
		out := cl.kubectl(t, "-n", ns, "exec", "resized", "--", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
		return strings.TrimSpace(out)
	}
	if got := cgroupMemory(); got != "67108864" {
		t.Fatalf("memory limit before the resize: %s", got)
	}
	cur.Spec.Containers[0].Resources.Limits[v1.ResourceMemory] = resource.MustParse("128Mi")
	cur.Spec.Containers[0].Resources.Limits[v1.ResourceCPU] = resource.MustParse("300m")
	if _, err := cl.client.CoreV1().Pods(ns).UpdateResize(context.Background(), "resized", cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		got := getPod(t, ns, "resized")
		st := got.Status.ContainerStatuses[0]
		if st.Resources == nil || !st.Resources.Limits.Memory().Equal(resource.MustParse("128Mi")) || !st.Resources.Limits.Cpu().Equal(resource.MustParse("300m")) {
			return fmt.Errorf("status resources %+v", st.Resources)
		}
		if st.RestartCount != 0 {
			return fmt.Errorf("container restarted %d times", st.RestartCount)
		}
		return nil
	})
	if got := cgroupMemory(); got != "134217728" {
		t.Errorf("memory limit after the resize: %s", got)
	}
	// A resize that would change the QoS class is refused.
	cur = getPod(t, ns, "resized")
	cur.Spec.Containers[0].Resources.Requests = cur.Spec.Containers[0].Resources.Limits.DeepCopy()
	if _, err := cl.client.CoreV1().Pods(ns).UpdateResize(context.Background(), "resized", cur, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "QOS Class may not change") {
		t.Errorf("resize to Guaranteed: %v", err)
	}
}

// A projected podCertificate volume: the node makes the key and asks the
// signer through a PodCertificateRequest; once this test's signer issues
// the chain, the pod reads its key and certificate from the volume.
func TestPodCertificateProjection(t *testing.T) {
	ns := namespace(t)
	const signer = "e2e.example.com/signer"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signed, ca := runSigner(ctx, t, ns, signer, func(int) bool { return false })

	p := podCertPod(ns, "certified", signer, "cat /certs/key.pem /certs/chain.pem; while true; do sleep 1; done")
	createPod(t, p)
	waitRunningReady(t, ns, "certified")
	select {
	case <-signed:
	default:
		t.Fatal("the pod runs, yet no request was signed")
	}
	var out string
	var err error
	poll.Eventually(t, 20*time.Second, func() error {
		out, err = cl.skiff("kubectl", "-n", ns, "logs", "certified")
		if err != nil || !strings.Contains(out, "END CERTIFICATE") {
			return fmt.Errorf("logs %q: %v", out, err)
		}
		return nil
	})
	keyBlock, rest := pem.Decode([]byte(out))
	certBlock, _ := pem.Decode(rest)
	if keyBlock == nil || certBlock == nil || keyBlock.Type != "PRIVATE KEY" {
		t.Fatalf("volume content:\n%s", out)
	}
	key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.(*ecdsa.PrivateKey).Public()) {
		t.Error("the projected certificate is not for the projected key")
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		t.Errorf("the chain is not the signer's: %v", err)
	}
	// Bad lifetimes are refused when the pod is created.
	bad := p.DeepCopy()
	bad.Name, bad.ResourceVersion = "too-long", ""
	bad.Spec.Volumes[0].Projected.Sources[0].PodCertificate.MaxExpirationSeconds = ptr.To[int32](91*86400 + 1)
	if _, err := cl.client.CoreV1().Pods(ns).Create(context.Background(), bad, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "maxExpirationSeconds must be <= 7862400") {
		t.Errorf("pod with a 91-day-plus certificate: %v", err)
	}
}

// podCertPod runs script with an ECDSA key and its certificate from signer
// projected at /certs/key.pem and /certs/chain.pem.
func podCertPod(ns, name, signer, script string) *v1.Pod {
	p := busyboxPod(ns, name, script)
	p.Spec.Volumes = []v1.Volume{{Name: "certs", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{{
		PodCertificate: &v1.PodCertificateProjection{SignerName: signer, KeyType: "ECDSAP256", KeyPath: "key.pem", CertificateChainPath: "chain.pem"},
	}}}}}}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "certs", MountPath: "/certs"}}
	return p
}

// runSigner issues, until ctx ends, every PodCertificateRequest of signer
// in ns (found by the field selector signers use) with a CA of its own;
// refreshSoon(n) tells whether the n-th issued certificate (from 0) asks
// for an early refresh. Names of issued requests go to the channel; the CA
// is returned too.
func runSigner(ctx context.Context, t *testing.T, ns, signer string, refreshSoon func(n int) bool) (<-chan string, *x509.Certificate) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	signed := make(chan string, 16)
	go func() {
		n := 0
		for ctx.Err() == nil {
			list, err := cl.client.CertificatesV1().PodCertificateRequests(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.signerName=" + signer})
			if err == nil {
				for i := range list.Items {
					if r := &list.Items[i]; r.Status.CertificateChain == "" {
						if err := issue(ctx, r, ca, caKey, refreshSoon(n)); err != nil {
							t.Logf("issue %s: %v", r.Name, err)
							continue
						}
						n++
						select {
						case signed <- r.Name:
						default:
						}
					}
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	return signed, ca
}

// A projected pod certificate past its beginRefreshAt is asked for again
// with a new key, and the volume's chain is replaced while the pod runs.
func TestPodCertificateRenewal(t *testing.T) {
	ns := namespace(t)
	const signer = "e2e.example.com/renewing"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signed, _ := runSigner(ctx, t, ns, signer, func(n int) bool { return n == 0 })
	p := podCertPod(ns, "renewed", signer, "while true; do md5sum /certs/chain.pem /certs/key.pem; sleep 1; done")
	createPod(t, p)
	waitRunningReady(t, ns, "renewed")
	poll.Eventually(t, 60*time.Second, func() error {
		if len(signed) < 2 {
			return fmt.Errorf("no second request issued yet")
		}
		out, err := cl.skiff("kubectl", "-n", ns, "logs", "renewed")
		if err != nil {
			return err
		}
		sums := map[string]map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				if sums[f[1]] == nil {
					sums[f[1]] = map[string]bool{}
				}
				sums[f[1]][f[0]] = true
			}
		}
		if len(sums["/certs/chain.pem"]) < 2 || len(sums["/certs/key.pem"]) < 2 {
			return fmt.Errorf("chain and key not both replaced yet: %v", sums)
		}
		return nil
	})
	list, err := cl.client.CertificatesV1().PodCertificateRequests(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.podName=renewed"})
	if err != nil || len(list.Items) < 2 {
		t.Errorf("requests of the pod: %d, %v; want a second one for the refresh", len(list.Items), err)
	}
}

// issue signs a request's stub key with the CA and writes the status a
// signer writes. refreshSoon sets beginRefreshAt a second
// from now instead of half an hour before expiry, so the node asks again.
func issue(ctx context.Context, r *certificatesv1.PodCertificateRequest, ca *x509.Certificate, caKey *ecdsa.PrivateKey, refreshSoon bool) error {
	csr, err := x509.ParseCertificateRequest(r.Spec.StubPKCS10Request)
	if err != nil {
		return err
	}
	nb := time.Now().Add(-time.Minute).Truncate(time.Second)
	na := nb.Add(time.Duration(*r.Spec.MaxExpirationSeconds) * time.Second)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: r.Spec.PodName},
		NotBefore: nb, NotAfter: na, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, csr.PublicKey, caKey)
	if err != nil {
		return err
	}
	r = r.DeepCopy()
	r.Status.CertificateChain = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	refresh := na.Add(-30 * time.Minute)
	if refreshSoon {
		refresh = time.Now().Add(time.Second).Truncate(time.Second)
	}
	r.Status.NotBefore, r.Status.NotAfter, r.Status.BeginRefreshAt = &metav1.Time{Time: nb}, &metav1.Time{Time: na}, &metav1.Time{Time: refresh}
	r.Status.Conditions = []metav1.Condition{{Type: certificatesv1.PodCertificateRequestConditionTypeIssued, Status: metav1.ConditionTrue, Reason: "Issued", Message: "by the e2e signer", LastTransitionTime: metav1.Now()}}
	_, err = cl.client.CertificatesV1().PodCertificateRequests(r.Namespace).UpdateStatus(ctx, r, metav1.UpdateOptions{})
	return err
}

// The node re-checks what the scheduler checked: a pod bound straight to
// the node (spec.nodeName) whose host port another pod holds is rejected,
// Failed with reason NodePorts, as upstream's kubelet does.
func TestKubeletRejectsHostPortConflict(t *testing.T) {
	ns := namespace(t)
	node := "node-" + hyphenated(cl.nodeIP)
	holder := busyboxPod(ns, "holder", "while true; do sleep 1; done")
	holder.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 21017, HostPort: 21017}}
	createPod(t, holder)
	waitRunningReady(t, ns, "holder")
	late := busyboxPod(ns, "late", "while true; do sleep 1; done")
	late.Spec.NodeName = node
	late.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 21017, HostPort: 21017}}
	createPod(t, late)
	poll.Eventually(t, 30*time.Second, func() error {
		got := getPod(t, ns, "late")
		if got.Status.Phase != v1.PodFailed || got.Status.Reason != "NodePorts" {
			return fmt.Errorf("phase %s reason %q", got.Status.Phase, got.Status.Reason)
		}
		return nil
	})
}

// Exec, attach and logs over WebSocket through the API server, as browsers
// and the conformance suite use them: channel.k8s.io for exec and
// v4.channel.k8s.io for attach (stdout on channel 1), binary.k8s.io for
// logs.
func TestWebSocketExecAndLogs(t *testing.T) {
	ns := namespace(t)
	createPod(t, busyboxPod(ns, "ws", "echo container is alive; while true; do sleep 1; echo tick; done"))
	waitRunningReady(t, ns, "ws")
	cfg, err := clientcmd.BuildConfigFromFlags("", cl.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	exec := "/api/v1/namespaces/" + ns + "/pods/ws/exec?command=echo&command=remote+execution+test&container=main&stdout=1&stderr=1"
	out := readWebSocket(t, cfg, exec, "channel.k8s.io")
	if !bytes.Contains(out, []byte("\x01remote execution test")) {
		t.Errorf("exec over WebSocket: %q", out)
	}
	// Attach: the running container's output arrives on channel 1.
	attach := "/api/v1/namespaces/" + ns + "/pods/ws/attach?container=main&stdout=1"
	if out := readWebSocketUntil(t, cfg, attach, "v4.channel.k8s.io", func(b []byte) bool { return bytes.Contains(b, []byte("tick")) }); !bytes.Contains(out, []byte("\x01tick")) {
		t.Errorf("attach over WebSocket: %q", out)
	}
	poll.Eventually(t, 20*time.Second, func() error {
		logs := readWebSocket(t, cfg, "/api/v1/namespaces/"+ns+"/pods/ws/log?container=main", "binary.k8s.io")
		if !strings.HasPrefix(string(logs), "container is alive\ntick\n") {
			return fmt.Errorf("logs over WebSocket: %q", logs)
		}
		return nil
	})
}

// readWebSocket opens path on the API server with one subprotocol and
// returns every message it sends until it closes.
func readWebSocket(t *testing.T, cfg *rest.Config, path, protocol string) []byte {
	t.Helper()
	return readWebSocketUntil(t, cfg, path, protocol, func([]byte) bool { return false })
}

// readWebSocketUntil is readWebSocket that stops early once done says the
// messages so far are enough (an attached stream never closes by itself).
func readWebSocketUntil(t *testing.T, cfg *rest.Config, path, protocol string, done func([]byte) bool) []byte {
	t.Helper()
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := url.Parse(cfg.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := cl.dialInNetns(ctx, "tcp", host.Host)
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = host.Hostname()
	}
	conn := tls.Client(raw, tlsCfg)
	loc, _ := url.Parse("wss://" + host.Host + path)
	wsCfg := &websocket.Config{Location: loc, Origin: &url.URL{Scheme: "https", Host: host.Host}, Version: websocket.ProtocolVersionHybi13, Protocol: []string{protocol}}
	ws, err := websocket.NewClient(wsCfg, conn)
	if err != nil {
		t.Fatalf("WebSocket to %s: %v", path, err)
	}
	defer ws.Close()
	_ = ws.SetDeadline(time.Now().Add(15 * time.Second))
	var all []byte
	for !done(all) {
		var msg []byte
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			if err != io.EOF {
				t.Logf("WebSocket %s ended: %v", path, err)
			}
			return all
		}
		all = append(all, msg...)
	}
	return all
}

// An image volume: another image's filesystem, read-only, in the pod.
func TestImageVolume(t *testing.T) {
	ns := namespace(t)
	p := busyboxPod(ns, "imgvol", "ls /img/bin/busybox && (touch /img/x 2>&1 || true); while true; do sleep 1; done")
	p.Spec.Volumes = []v1.Volume{{Name: "img", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: busyboxImage}}}}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "img", MountPath: "/img"}}
	createPod(t, p)
	waitRunningReady(t, ns, "imgvol")
	poll.Eventually(t, 20*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "logs", "imgvol")
		if err != nil || !strings.Contains(out, "/img/bin/busybox") || !strings.Contains(out, "Read-only file system") {
			return fmt.Errorf("logs %q: %v", out, err)
		}
		return nil
	})
	if got := getPod(t, ns, "imgvol"); got.Spec.Volumes[0].Image.PullPolicy != v1.PullIfNotPresent {
		t.Errorf("pull policy defaulted to %q", got.Spec.Volumes[0].Image.PullPolicy)
	}
	// Deleting the pod unmounts the image and drops its snapshot.
	if err := cl.client.CoreV1().Pods(ns).Delete(context.Background(), "imgvol", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 30*time.Second, func() error {
		mounts, _ := os.ReadFile("/proc/self/mounts")
		if strings.Contains(string(mounts), "kubernetes.io~image/img") {
			return fmt.Errorf("image volume still mounted")
		}
		return nil
	})
}
