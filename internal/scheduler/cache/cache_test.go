package cache

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

func testNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}}}
}

func testPod(name, node string, cpu string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name)}, Spec: corev1.PodSpec{NodeName: node,
		Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}}}
}

func TestAssumeConfirmForget(t *testing.T) {
	c := New()
	c.AddNode(testNode("a"))
	c.AddNode(testNode("b"))
	snap := framework.NewEmptySnapshot()
	c.UpdateSnapshot(snap)
	if snap.NumNodes() != 2 {
		t.Fatalf("nodes %d", snap.NumNodes())
	}
	before := snap.Get("b")

	p := testPod("p", "a", "1")
	if err := c.AssumePod(framework.NewPodInfo(p)); err != nil {
		t.Fatal(err)
	}
	c.UpdateSnapshot(snap)
	if got := snap.Get("a").Requested.MilliCPU; got != 1000 {
		t.Errorf("assumed pod not counted: %d", got)
	}
	if snap.Get("b") != before {
		t.Errorf("an unchanged node was cloned")
	}
	// The informer confirms the pod: still counted once.
	c.AddPod(p)
	c.UpdateSnapshot(snap)
	if got := snap.Get("a").Requested.MilliCPU; got != 1000 || c.IsAssumed(p.UID) {
		t.Errorf("confirmed pod: cpu %d assumed %v", got, c.IsAssumed(p.UID))
	}
	// A failed binding forgets an assumed pod.
	q := testPod("q", "b", "2")
	_ = c.AssumePod(framework.NewPodInfo(q))
	c.ForgetPod(q)
	c.UpdateSnapshot(snap)
	if got := snap.Get("b").Requested.MilliCPU; got != 0 {
		t.Errorf("forgotten pod still counted: %d", got)
	}
	c.RemoveNode("b")
	c.UpdateSnapshot(snap)
	if snap.NumNodes() != 1 || snap.Get("b") != nil {
		t.Errorf("removed node still in snapshot")
	}
}

// TestSnapshotIndexFollowsCache checks that the snapshot's pod index sees
// assumed, confirmed, forgotten and removed pods as the node lists do.
func TestSnapshotIndexFollowsCache(t *testing.T) {
	c := New()
	c.AddNode(testNode("a"))
	c.AddNode(testNode("b"))
	snap := framework.NewEmptySnapshot()
	count := func() map[string]int {
		out := map[string]int{}
		snap.Index.Each("ns", labels.Everything(), func(p *framework.PodInfo, node string) { out[node]++ })
		return out
	}
	p, q := testPod("p", "a", "1"), testPod("q", "b", "1")
	_ = c.AssumePod(framework.NewPodInfo(p))
	_ = c.AssumePod(framework.NewPodInfo(q))
	c.UpdateSnapshot(snap)
	if got := count(); got["a"] != 1 || got["b"] != 1 {
		t.Fatalf("assumed pods indexed %v", got)
	}
	c.AddPod(p)
	c.ForgetPod(q)
	c.UpdateSnapshot(snap)
	if got := count(); got["a"] != 1 || got["b"] != 0 {
		t.Fatalf("after confirm and forget: %v", got)
	}
	c.RemoveNode("a")
	c.UpdateSnapshot(snap)
	if got := count(); len(got) != 0 {
		t.Fatalf("pods of a removed node still indexed: %v", got)
	}
}
