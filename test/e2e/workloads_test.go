package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// A Deployment's pods run for real: Running, Ready, each with its own
// address from the node's pod CIDR, the node Ready with its capacity.
func TestDeploymentRunsReady(t *testing.T) {
	ns := namespace(t)
	cl.kubectl(t, "-n", ns, "create", "deployment", "web", "--image="+busyboxImage, "--replicas=3", "--", "sh", "-c", "while true; do sleep 1; done")
	out := cl.kubectl(t, "-n", ns, "rollout", "status", "deployment/web", "--timeout=90s")
	if !strings.Contains(out, "successfully rolled out") {
		t.Fatalf("rollout status: %s", out)
	}
	pods, err := cl.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	_, podNet, _ := net.ParseCIDR("10.42.0.0/24")
	ips := map[string]bool{}
	for _, p := range pods.Items {
		if p.Status.Phase != v1.PodRunning || !podReady(&p) {
			t.Errorf("pod %s: phase %s ready %v", p.Name, p.Status.Phase, podReady(&p))
		}
		ip := net.ParseIP(p.Status.PodIP)
		if ip == nil || !podNet.Contains(ip) || ips[p.Status.PodIP] {
			t.Errorf("pod %s: podIP %q not a distinct address of 10.42.0.0/24", p.Name, p.Status.PodIP)
		}
		ips[p.Status.PodIP] = true
		if p.Status.HostIP != cl.nodeIP {
			t.Errorf("pod %s: hostIP %q, want %s", p.Name, p.Status.HostIP, cl.nodeIP)
		}
		cs := p.Status.ContainerStatuses
		if len(cs) != 1 || cs[0].State.Running == nil || !strings.HasPrefix(cs[0].ContainerID, "containerd://") || cs[0].ImageID == "" {
			t.Errorf("pod %s: container status %+v", p.Name, cs)
		}
	}
	if len(pods.Items) != 3 {
		t.Fatalf("%d pods, want 3", len(pods.Items))
	}
	nodes := cl.kubectl(t, "get", "nodes", "-o", "wide")
	for _, want := range []string{"Ready", "containerd://", cl.nodeIP} {
		if !strings.Contains(nodes, want) {
			t.Errorf("kubectl get nodes -o wide lacks %q:\n%s", want, nodes)
		}
	}
	node, err := cl.client.CoreV1().Nodes().Get(context.Background(), "node-"+strings.ReplaceAll(cl.nodeIP, ".", "-"), getOpts)
	if err != nil {
		t.Fatal(err)
	}
	if q := node.Status.Allocatable[v1.ResourcePods]; q.Value() != 110 {
		t.Errorf("allocatable pods = %s, want 110", q.String())
	}
	for _, l := range []string{v1.LabelHostname, v1.LabelOSStable, v1.LabelArchStable} {
		if node.Labels[l] == "" {
			t.Errorf("node lacks label %s", l)
		}
	}
	lease, err := cl.client.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(context.Background(), node.Name, getOpts)
	if err != nil || lease.Spec.RenewTime == nil || time.Since(lease.Spec.RenewTime.Time) > 30*time.Second {
		t.Errorf("node lease not renewed: %+v %v", lease, err)
	}
}

// kubectl logs, exec (with stdin and exit codes), attach and port-forward
// work through the API server and the kubelet, as against upstream.
func TestLogsExecAttachPortForward(t *testing.T) {
	ns := namespace(t)
	p := busyboxPod(ns, "talk", `echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done`)
	createPod(t, p)
	waitRunningReady(t, ns, "talk")

	poll.Eventually(t, 10*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "logs", "talk", "--tail=2")
		if err != nil || strings.Count(out, "tick") != 2 {
			return fmt.Errorf("logs --tail=2: %v %q", err, out)
		}
		return nil
	})
	if out := cl.kubectl(t, "-n", ns, "logs", "talk", "--timestamps", "--limit-bytes=200"); !strings.Contains(out, "Z started") {
		t.Errorf("logs --timestamps: %q", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	out, _ := cl.skiffCtx(ctx, nil, "kubectl", "-n", ns, "logs", "-f", "talk", "--tail=1")
	cancel()
	if strings.Count(out, "tick") < 3 {
		t.Errorf("logs -f delivered %d lines in 2s, want a stream: %q", strings.Count(out, "tick"), out)
	}

	out, err := cl.skiffCtx(context.Background(), []byte("hello-stdin\n"), "kubectl", "-n", ns, "exec", "-i", "talk", "--", "sh", "-c", "read x; echo got:$x; echo to-stderr >&2; exit 3")
	if err == nil || !strings.Contains(out, "got:hello-stdin") || !strings.Contains(out, "to-stderr") || !strings.Contains(out, "exit code 3") {
		t.Errorf("exec -i: err %v, output %q", err, out)
	}
	if out := cl.kubectl(t, "-n", ns, "exec", "talk", "--", "cat", "/etc/hostname"); strings.TrimSpace(out) != "talk" {
		t.Errorf("exec hostname: %q", out)
	}

	// attach: a container reading its stdin echoes what we send.
	att := busyboxPod(ns, "echoer", `while read line; do echo "echo:$line"; done`)
	att.Spec.Containers[0].Stdin = true
	createPod(t, att)
	waitRunningReady(t, ns, "echoer")
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	_, _ = cl.skiffCtx(ctx, []byte("ping-attach\n"), "kubectl", "-n", ns, "attach", "-i", "echoer")
	cancel()
	poll.Eventually(t, 10*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "logs", "echoer")
		if err != nil || !strings.Contains(out, "echo:ping-attach") {
			return fmt.Errorf("attach did not reach the container: %v %q", err, out)
		}
		return nil
	})

	// port-forward to a web server in a pod.
	web := busyboxPod(ns, "web", `mkdir -p /www && echo served-by-pod > /www/index.html && exec httpd -f -p 8080 -h /www`)
	createPod(t, web)
	waitRunningReady(t, ns, "web")
	pfCtx, stopPF := context.WithCancel(context.Background())
	defer stopPF()
	go func() { _, _ = cl.skiffCtx(pfCtx, nil, "kubectl", "-n", ns, "port-forward", "pod/web", "18080:8080") }()
	poll.Eventually(t, 20*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "exec", "talk", "--", "true") // keep kubectl warm; the fetch below is what counts
		_ = out
		if err != nil {
			return err
		}
		body, err := fetchInNetns("http://127.0.0.1:18080/")
		if err != nil || !strings.Contains(body, "served-by-pod") {
			return fmt.Errorf("port-forward: %v %q", err, body)
		}
		return nil
	})
}

// A manifest in the node's pod-manifests directory runs as a static pod,
// mirrored in the API; a deleted mirror comes back; removing the file
// stops the pod and removes the mirror.
func TestStaticPod(t *testing.T) {
	dir := filepath.Join(cl.dataDir, "agent", "pod-manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "static-web.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata:
  name: static-web
  labels: {role: static}
spec:
  containers:
  - name: web
    image: `+busyboxImage+`
    command: ["sh", "-c", "echo static-ok; while true; do sleep 1; done"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	name := "static-web-node-" + strings.ReplaceAll(cl.nodeIP, ".", "-")
	mirror := waitRunningReady(t, "default", name)
	if mirror.Annotations["kubernetes.io/config.mirror"] == "" || mirror.Annotations["kubernetes.io/config.source"] != "file" {
		t.Errorf("mirror annotations: %v", mirror.Annotations)
	}
	if len(mirror.OwnerReferences) != 1 || mirror.OwnerReferences[0].Kind != "Node" {
		t.Errorf("mirror owner: %+v", mirror.OwnerReferences)
	}
	poll.Eventually(t, 20*time.Second, func() error {
		out, err := cl.skiff("kubectl", "logs", name)
		if err != nil || !strings.Contains(out, "static-ok") {
			return fmt.Errorf("logs of static pod: %v %q", err, out)
		}
		return nil
	})
	firstContainer := mirror.Status.ContainerStatuses[0].ContainerID
	cl.kubectl(t, "delete", "pod", name, "--wait=false")
	poll.Eventually(t, 30*time.Second, func() error {
		m, err := cl.client.CoreV1().Pods("default").Get(context.Background(), name, getOpts)
		if err != nil || m.UID == mirror.UID || m.DeletionTimestamp != nil || !podReady(m) {
			return fmt.Errorf("mirror not recreated: %v", err)
		}
		if m.Status.ContainerStatuses[0].ContainerID != firstContainer {
			return fmt.Errorf("deleting the mirror restarted the static pod: %s -> %s", firstContainer, m.Status.ContainerStatuses[0].ContainerID)
		}
		return nil
	})
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		if _, err := cl.client.CoreV1().Pods("default").Get(context.Background(), name, getOpts); err == nil {
			return fmt.Errorf("mirror still there after the manifest was removed")
		}
		return nil
	})
}

// The kubelet's own endpoints answer through the API server's node proxy:
// /healthz, /stats/summary with the pod's containers, and /metrics with
// upstream's kubelet metric names.
func TestNodeProxyEndpoints(t *testing.T) {
	ns := namespace(t)
	createPod(t, busyboxPod(ns, "measured", `while true; do sleep 1; done`))
	p := waitRunningReady(t, ns, "measured")
	base := "/api/v1/nodes/" + p.Spec.NodeName + "/proxy"
	if out := cl.kubectl(t, "get", "--raw", base+"/healthz"); strings.TrimSpace(out) != "ok" {
		t.Errorf("healthz: %q", out)
	}
	var summary struct {
		Node struct {
			NodeName string `json:"nodeName"`
		} `json:"node"`
		Pods []struct {
			PodRef struct {
				Name, Namespace string
			} `json:"podRef"`
			Containers []struct {
				Name string `json:"name"`
			} `json:"containers"`
		} `json:"pods"`
	}
	if err := json.Unmarshal([]byte(cl.kubectl(t, "get", "--raw", base+"/stats/summary")), &summary); err != nil {
		t.Fatalf("stats/summary: %v", err)
	}
	found := false
	for _, ps := range summary.Pods {
		if ps.PodRef.Name == "measured" && ps.PodRef.Namespace == ns && len(ps.Containers) == 1 && ps.Containers[0].Name == "main" {
			found = true
		}
	}
	if summary.Node.NodeName != p.Spec.NodeName || !found {
		t.Errorf("stats/summary: %+v", summary)
	}
	metrics := cl.kubectl(t, "get", "--raw", base+"/metrics")
	for _, want := range []string{"kubelet_running_pods ", "kubelet_running_containers{container_state=\"running\"} ", "kubelet_pod_start_duration_seconds_count ", "kubelet_pod_worker_duration_seconds_count{operation_type=\"sync\"} ", "kubelet_node_name{node=\"" + p.Spec.NodeName + "\"} 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "kubelet_running_pods "); ok && (v == "0" || v == "") {
			t.Errorf("running pods metric %q with a pod running", v)
		}
	}
}

// `kubectl drain` evicts through pods/eviction and honours a
// PodDisruptionBudget: with two replicas and minAvailable 1 on a cordoned
// node, one pod is evicted and the other refused with upstream's message.
func TestDrainHonoursDisruptionBudget(t *testing.T) {
	ns := namespace(t)
	node := "node-" + strings.ReplaceAll(cl.nodeIP, ".", "-")
	t.Cleanup(func() { _, _ = cl.skiff("kubectl", "uncordon", node) })
	cl.kubectl(t, "-n", ns, "create", "deployment", "guarded", "--image="+busyboxImage, "--replicas=2", "--", "sh", "-c", "while true; do sleep 1; done")
	cl.kubectl(t, "-n", ns, "create", "poddisruptionbudget", "guarded", "--selector=app=guarded", "--min-available=1")
	cl.kubectl(t, "-n", ns, "rollout", "status", "deployment/guarded", "--timeout=60s")
	poll.Eventually(t, 30*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "get", "pdb", "guarded", "-o", "jsonpath={.status.disruptionsAllowed}")
		if err != nil || strings.TrimSpace(out) != "1" {
			return fmt.Errorf("disruptionsAllowed %q %v", out, err)
		}
		return nil
	})
	out, err := cl.skiff("kubectl", "drain", node, "--pod-selector=app=guarded", "--ignore-daemonsets", "--grace-period=1", "--timeout=15s")
	if err == nil {
		t.Fatalf("drain past the budget succeeded:\n%s", out)
	}
	if !strings.Contains(out, "node/"+node+" cordoned") || strings.Count(out, " evicted") != 1 ||
		!strings.Contains(out, "Cannot evict pod as it would violate the pod's disruption budget") {
		t.Errorf("drain output:\n%s", out)
	}
	n, err := cl.client.CoreV1().Nodes().Get(context.Background(), node, getOpts)
	if err != nil || !n.Spec.Unschedulable {
		t.Errorf("node not cordoned: %v", err)
	}
	cl.kubectl(t, "uncordon", node)
	cl.kubectl(t, "-n", ns, "rollout", "status", "deployment/guarded", "--timeout=60s")
}

// A DaemonSet rolling update with maxSurge starts the new pod beside the old
// one and removes the old one only once the new one is ready.
func TestDaemonSetSurge(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	labels := map[string]string{"app": "surge"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "surge", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType, RollingUpdate: &appsv1.RollingUpdateDaemonSet{
				MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](0), Containers: []v1.Container{{Name: "main", Image: busyboxImage,
					Command: []string{"sh", "-c", "while true; do sleep 1; done"}, Env: []v1.EnvVar{{Name: "REV", Value: "1"}}}}},
			},
		},
	}
	if _, err := cl.client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cl.kubectl(t, "-n", ns, "rollout", "status", "daemonset/surge", "--timeout=60s")
	pods, err := cl.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=surge"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods before the update: %v %v", pods, err)
	}
	oldPod := pods.Items[0].Name
	w, err := cl.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=surge", ResourceVersion: pods.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cl.kubectl(t, "-n", ns, "set", "env", "daemonset/surge", "REV=2")
	// The old pod must not start terminating before a new pod is Ready.
	newReady := false
	deadline := time.After(60 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*v1.Pod)
			if !ok {
				continue
			}
			switch {
			case p.Name != oldPod && podReady(p):
				newReady = true
			case p.Name == oldPod && (p.DeletionTimestamp != nil || ev.Type == "DELETED"):
				if !newReady {
					t.Fatalf("the old pod went before a new one was ready")
				}
				done = true
			}
		case <-deadline:
			t.Fatalf("no surge rollout within 60s (new pod ready: %v)", newReady)
		}
	}
	cl.kubectl(t, "-n", ns, "rollout", "status", "daemonset/surge", "--timeout=60s")
}
