package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A node below a hard eviction threshold reports MemoryPressure, gets the
// memory-pressure taint, turns new BestEffort pods away and evicts the pods
// it runs, each ending Failed with reason Evicted as upstream reports it.
func TestEvictionUnderMemoryPressure(t *testing.T) {
	const ip = "10.77.0.3"
	netns, dir := secondHost(t, "n3", ip)
	// No machine has a pebibyte of memory free: the node is under memory
	// pressure from its first reading.
	ctx := context.Background()
	// Registered first so it runs last, once the agent is gone (a running
	// agent registers its deleted Node again).
	t.Cleanup(func() { _ = cl.client.CoreV1().Nodes().Delete(ctx, "node-3", metav1.DeleteOptions{}) })
	startAgent(t, netns, dir, "--node-name", "node-3", "--node-ip", ip, "--pod-cidr", "10.42.2.0/24", "--eviction-hard", "memory.available<1Pi")
	poll.Eventually(t, 60*time.Second, func() error {
		n, err := cl.client.CoreV1().Nodes().Get(ctx, "node-3", getOpts)
		if err != nil || !nodeReady(n) {
			return fmt.Errorf("node-3 not Ready: %v", err)
		}
		pressure := false
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeMemoryPressure && c.Status == v1.ConditionTrue && c.Reason == "KubeletHasInsufficientMemory" {
				pressure = true
			}
		}
		if !pressure {
			return fmt.Errorf("conditions %+v", n.Status.Conditions)
		}
		for _, tn := range n.Spec.Taints {
			if tn.Key == v1.TaintNodeMemoryPressure && tn.Effect == v1.TaintEffectNoSchedule {
				return nil
			}
		}
		return fmt.Errorf("taints %+v", n.Spec.Taints)
	})
	if out, err := cl.skiff("images", "import", "--data-dir", dir, filepath.Join(filepath.Dir(cl.dataDir), "busybox.tar")); err != nil {
		t.Fatalf("import into node-3: %v %s", err, out)
	}

	ns := namespace(t)
	evicted := func(name, message string) *v1.Pod {
		t.Helper()
		var p *v1.Pod
		poll.Eventually(t, 60*time.Second, func() error {
			p = getPod(t, ns, name)
			if p.Status.Phase != v1.PodFailed || p.Status.Reason != "Evicted" || !strings.HasPrefix(p.Status.Message, message) {
				return fmt.Errorf("pod %s: phase %s reason %q message %q", name, p.Status.Phase, p.Status.Reason, p.Status.Message)
			}
			return nil
		})
		return p
	}

	// Admission: a BestEffort pod never starts.
	be := busyboxPod(ns, "besteffort", "sleep 3600")
	be.Spec.NodeName = "node-3"
	createPod(t, be)
	got := evicted("besteffort", "The node had condition: [MemoryPressure]. ")
	for _, cs := range got.Status.ContainerStatuses {
		if cs.State.Running != nil {
			t.Errorf("an admission-refused pod runs %s", cs.Name)
		}
	}

	// Eviction: a Burstable pod is admitted, then evicted to reclaim memory.
	bu := busyboxPod(ns, "burstable", "sleep 3600")
	bu.Spec.NodeName = "node-3"
	bu.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Mi")}
	createPod(t, bu)
	got = evicted("burstable", "The node was low on resource: memory. Threshold quantity: 1Pi, available: ")
	target := false
	for _, c := range got.Status.Conditions {
		if c.Type == v1.DisruptionTarget && c.Status == v1.ConditionTrue && c.Reason == "TerminationByKubelet" {
			target = true
		}
	}
	if !target {
		t.Errorf("no DisruptionTarget condition: %+v", got.Status.Conditions)
	}
	for _, cs := range got.Status.ContainerStatuses {
		if cs.State.Running != nil {
			t.Errorf("an evicted pod still runs %s", cs.Name)
		}
	}
	if !hasEvent(podEvents(t, ns, "burstable"), "Evicted", "The node was low on resource: memory.") {
		t.Errorf("no Evicted event: %v", reasons(podEvents(t, ns, "burstable")))
	}
}
