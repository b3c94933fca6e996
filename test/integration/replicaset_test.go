package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/test/poll"
	"k8s.io/client-go/util/retry"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// TestReplicaSetController scales a ReplicaSet up and down, reports ready
// pods (the test plays the node by setting pod status), adopts a matching
// orphan, releases a pod whose labels change, and lets the garbage collector
// delete its pods with it.
func TestReplicaSetController(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx := context.Background()
	pods := cs.CoreV1().Pods("default")
	sets := cs.AppsV1().ReplicaSets("default")
	owned := func() []corev1.Pod {
		l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=rs"})
		if err != nil {
			t.Fatal(err)
		}
		var out []corev1.Pod
		for _, p := range l.Items {
			if ref := metav1.GetControllerOf(&p); ref != nil && ref.Name == "web" && p.DeletionTimestamp == nil {
				out = append(out, p)
			}
		}
		return out
	}
	count := func(n int) func() (bool, string) {
		return func() (bool, string) {
			got := len(owned())
			return got == n, fmt.Sprintf("%d pods", got)
		}
	}

	// An orphan that matches is adopted instead of a new pod being made.
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Labels: map[string]string{"app": "rs"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := pods.Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "rs"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "rs"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	if _, err := sets.Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("3 pods", count(3)))
	names := map[string]bool{}
	for _, p := range owned() {
		names[p.Name] = true
	}
	if !names["orphan"] {
		t.Errorf("the matching orphan was not adopted: %v", names)
	}

	// Ready pods (as a node would report them) show in status.
	// The scheduler writes these pods' status too (no node fits them), so
	// update from a fresh read on conflict, as a kubelet does.
	for _, p := range owned() {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Status.Phase = corev1.PodRunning
			cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
			_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	poll.Eventually(t, settle, poll.State("status", func() (bool, string) {
		got, _ := sets.Get(ctx, "web", metav1.GetOptions{})
		st := got.Status
		return st.Replicas == 3 && st.ReadyReplicas == 3 && st.AvailableReplicas == 3 && st.FullyLabeledReplicas == 3 && st.ObservedGeneration == got.Generation, fmt.Sprintf("%+v", st)
	}))

	// A pod relabelled out of the selector is released and replaced.
	victim := owned()[0].Name
	if _, err := pods.Patch(ctx, victim, types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("released pod replaced", count(3)))
	poll.Eventually(t, settle, poll.State("released pod has no controller", func() (bool, string) {
		p, _ := pods.Get(ctx, victim, metav1.GetOptions{})
		return metav1.GetControllerOf(p) == nil, "still controlled"
	}))

	// Scale down: the not-ready replacement goes before ready pods.
	s.mustKubectl("scale", "rs", "web", "--replicas=2")
	poll.Eventually(t, settle, poll.State("2 pods", count(2)))
	for _, p := range owned() {
		if len(p.Status.Conditions) == 0 {
			t.Errorf("scale-down kept the not-ready pod %s over a ready one", p.Name)
		}
	}
	events := s.mustKubectl("get", "events", "--field-selector", "involvedObject.name=web", "-o", "custom-columns=R:.reason", "--no-headers")
	if !strings.Contains(events, "SuccessfulCreate") || !strings.Contains(events, "SuccessfulDelete") {
		t.Errorf("events: %s", events)
	}

	// Deleting the ReplicaSet deletes its pods through the garbage collector.
	if err := sets.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("pods of a deleted ReplicaSet", func() (bool, string) {
		l, _ := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=rs"})
		return len(l.Items) == 0, fmt.Sprintf("%d pods", len(l.Items))
	}))
}

// TestReplicationController runs the same controller for a
// ReplicationController: pods owned by it, scaling, status.
func TestReplicationController(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx := context.Background()
	s.kubectlStdin(`{"apiVersion":"v1","kind":"ReplicationController","metadata":{"name":"legacy"},"spec":{"replicas":2,"selector":{"app":"legacy"},"template":{"metadata":{"labels":{"app":"legacy"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}`, "create", "-f", "-")
	owned := func() int {
		l, _ := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=legacy"})
		n := 0
		for _, p := range l.Items {
			if ref := metav1.GetControllerOf(&p); ref != nil && ref.Kind == "ReplicationController" && ref.APIVersion == "v1" && p.DeletionTimestamp == nil {
				n++
			}
		}
		return n
	}
	poll.Eventually(t, settle, poll.State("2 pods owned by the ReplicationController", func() (bool, string) {
		rc, _ := cs.CoreV1().ReplicationControllers("default").Get(ctx, "legacy", metav1.GetOptions{})
		return owned() == 2 && rc.Status.Replicas == 2 && rc.Status.ObservedGeneration == rc.Generation, fmt.Sprintf("%d pods, status %+v", owned(), rc.Status)
	}))
	s.mustKubectl("scale", "rc", "legacy", "--replicas=0")
	poll.Eventually(t, settle, poll.State("scaled to 0", func() (bool, string) { return owned() == 0, fmt.Sprintf("%d pods", owned()) }))
	if ev := s.mustKubectl("get", "events", "--field-selector", "involvedObject.kind=ReplicationController", "-o", "custom-columns=R:.reason", "--no-headers"); !strings.Contains(ev, "SuccessfulCreate") {
		t.Errorf("events: %s", ev)
	}
}
