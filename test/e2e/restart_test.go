package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Containers outlive their agent and their containerd: a pod keeps its
// container (same ID, no restart) across a restart of the agent, and
// across containerd being killed, which the agent notices and restarts;
// the node then still starts new pods.
func TestPodsSurviveAgentAndRuntimeRestarts(t *testing.T) {
	const ip = "10.77.0.4"
	netns, dir := secondHost(t, "n4", ip)
	args := []string{"--node-name", "node-4", "--node-ip", ip, "--pod-cidr", "10.42.3.0/24"}
	// Registered first so it runs last, once the agent is gone (a running
	// agent registers its deleted Node again).
	t.Cleanup(func() { _ = cl.client.CoreV1().Nodes().Delete(context.Background(), "node-4", metav1.DeleteOptions{}) })
	_, stop := startAgent(t, netns, dir, args...)
	waitNodeReady(t, "node-4")
	if out, err := cl.skiff("images", "import", "--data-dir", dir, filepath.Join(filepath.Dir(cl.dataDir), "busybox.tar")); err != nil {
		t.Fatalf("import into node-4: %v %s", err, out)
	}
	ns := namespace(t)
	pinned := func(name string) *v1.Pod {
		p := busyboxPod(ns, name, `while true; do sleep 1; done`)
		p.Spec.NodeName = "node-4"
		return p
	}
	createPod(t, pinned("steady"))
	before := waitRunningReady(t, ns, "steady").Status.ContainerStatuses[0]
	// A Service whose only pod is here, reached on this node's NodePort
	// from the first node: the agent's rules must come back after it does.
	web := webPod(ns, "web", "node-4")
	web.Spec.NodeSelector, web.Spec.NodeName = nil, "node-4"
	createPod(t, web)
	waitRunningReady(t, ns, "web")
	np, err := cl.client.CoreV1().Services(ns).Create(context.Background(), &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeNodePort, Selector: web.Labels,
			Ports: []v1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodePort := ip + ":" + strconv.Itoa(int(np.Spec.Ports[0].NodePort))
	reachable := func(when string) {
		t.Helper()
		poll.Eventually(t, 30*time.Second, func() error {
			if out, err := httpGet(cl.netns, nodePort); err != nil || out != "web" {
				return fmt.Errorf("%s: NodePort %s: %q %v", when, nodePort, out, err)
			}
			return nil
		})
	}
	reachable("before any restart")

	same := func(when string) {
		t.Helper()
		// Give the agent time to look at the pod again and report.
		time.Sleep(3 * time.Second)
		got := waitRunningReady(t, ns, "steady").Status.ContainerStatuses[0]
		if got.ContainerID != before.ContainerID || got.RestartCount != 0 || got.State.Running == nil || !got.State.Running.StartedAt.Equal(&before.State.Running.StartedAt) {
			t.Errorf("%s: container %s restarts %d state %+v, want %s still running", when, got.ContainerID, got.RestartCount, got.State, before.ContainerID)
		}
	}

	stop()
	_, stop = startAgent(t, netns, dir, args...)
	waitNodeReady(t, "node-4")
	same("after an agent restart")
	reachable("after an agent restart")

	pidFile := filepath.Join(dir, "agent", "containerd", "containerd.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("containerd pid file: %v", err)
	}
	old, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if old <= 0 || syscall.Kill(old, syscall.SIGKILL) != nil {
		t.Fatalf("kill containerd %q", b)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid == old || pid <= 0 || syscall.Kill(pid, 0) != nil {
			return fmt.Errorf("containerd not restarted (pid file %q)", b)
		}
		return nil
	})
	same("after containerd was killed")
	createPod(t, pinned("after"))
	waitRunningReady(t, ns, "after")

	// The agent tears its pods down before it goes, so nothing outlives the test.
	for _, name := range []string{"steady", "after", "web"} {
		if err := cl.client.CoreV1().Pods(ns).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Eventually(t, 60*time.Second, func() error {
		entries, _ := os.ReadDir(filepath.Join(dir, "agent", "pods"))
		if len(entries) > 0 {
			return fmt.Errorf("node-4 still holds %d pod directories", len(entries))
		}
		return nil
	})
	stop()
}

func waitNodeReady(t *testing.T, name string) {
	t.Helper()
	poll.Eventually(t, 60*time.Second, func() error {
		n, err := cl.client.CoreV1().Nodes().Get(t.Context(), name, getOpts)
		if err != nil || !nodeReady(n) {
			return fmt.Errorf("%s not Ready: %v", name, err)
		}
		return nil
	})
}
