package integration

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/test/poll"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestDaemonSet follows nodes: one pod per eligible node (nodeSelector,
// taints), a new node gets its pod, an untolerated NoExecute taint removes
// one, and a template change rolls out through `kubectl rollout status`.
func TestDaemonSet(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go fakeNode(ctx, cs, "default")
	// Ready nodes: a new node is tainted not-ready (TaintNodesByCondition)
	// until the node lifecycle controller sees it Ready.
	node := func(name, role string, taints ...corev1.Taint) {
		t.Helper()
		addNode(t, cs, name, map[string]string{"role": role}, taints...)
	}
	node("n1", "worker")
	node("n2", "worker")
	node("n3", "other")
	node("n4", "worker", corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule})
	manifest := `{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"agent"},"spec":{"selector":{"matchLabels":{"app":"agent"}},
"template":{"metadata":{"labels":{"app":"agent"}},"spec":{"nodeSelector":{"role":"worker"},"containers":[{"name":"c","image":"busybox:1"}]}}}}`
	if _, errOut, err := s.kubectlStdin(manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v %s", err, errOut)
	}
	placed := func() string {
		l, _ := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
		var nodes []string
		for _, p := range l.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
			nodes = append(nodes, terms[0].MatchFields[0].Values[0])
		}
		sort.Strings(nodes)
		return strings.Join(nodes, ",")
	}
	want := func(what, nodes string) {
		t.Helper()
		poll.Eventually(t, settle, poll.State(what, func() (bool, string) { got := placed(); return got == nodes, got }))
	}
	want("a pod per eligible node", "n1,n2")
	s.mustKubectl("rollout", "status", "ds/agent", "--timeout=60s")

	node("n5", "worker")
	want("a pod for a new node", "n1,n2,n5")
	patch := []byte(`{"spec":{"taints":[{"key":"evict","value":"now","effect":"NoExecute"}]}}`)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, "n1", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	want("an untolerated NoExecute taint removes the pod", "n2,n5")

	s.mustKubectl("set", "image", "ds/agent", "c=busybox:2")
	s.mustKubectl("rollout", "status", "ds/agent", "--timeout=60s")
	l, _ := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image != "busybox:2" {
			t.Errorf("pod %s runs %s after the rollout", p.Name, p.Spec.Containers[0].Image)
		}
	}
	st := s.mustKubectl("get", "ds", "agent", "-o", "jsonpath={.status.desiredNumberScheduled}/{.status.updatedNumberScheduled}/{.status.numberReady}")
	if st != "2/2/2" {
		t.Errorf("status %s, want 2/2/2", st)
	}
	if hist := s.mustKubectl("rollout", "history", "ds/agent"); !strings.Contains(hist, "2 ") {
		t.Errorf("history:\n%s", hist)
	}
}
