package integration

import (
	"context"
	"testing"

	"github.com/skiff-sh/skiff/test/poll"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
)

// TestEvictionAPI: an eviction a budget allows marks the pod with the
// DisruptionTarget condition and deletes it gracefully; one the budget
// forbids is 429 and leaves the pod alone.
func TestEvictionAPI(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cs := s.client()
	pods := cs.CoreV1().Pods("default")
	for _, name := range []string{"a", "b"} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "ev"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Bound to a node no kubelet serves: the deletion stays graceful.
		if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-x"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The scheduler may write the pod meanwhile: update the latest.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := pods.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Status.Phase = corev1.PodRunning
			cur.Status.Conditions = append(cur.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
			_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "ev"}, Spec: policyv1.PodDisruptionBudgetSpec{
		MinAvailable: &intstr.IntOrString{Type: intstr.Int, IntVal: 1}, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "ev"}}}}
	if _, err := cs.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("budget allows one disruption", func() (bool, string) {
		b, err := cs.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "ev", metav1.GetOptions{})
		return err == nil && b.Status.DisruptionsAllowed == 1, ""
	}))
	if err := pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "a"}}); err != nil {
		t.Fatalf("allowed eviction: %v", err)
	}
	a, err := pods.Get(ctx, "a", metav1.GetOptions{})
	if err != nil || a.DeletionTimestamp == nil {
		t.Fatalf("evicted pod not being deleted: %v %v", a, err)
	}
	found := false
	for _, c := range a.Status.Conditions {
		found = found || (c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "EvictionByEvictionAPI")
	}
	if !found {
		t.Errorf("no DisruptionTarget condition on the evicted pod: %+v", a.Status.Conditions)
	}
	err = pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "b"}})
	if !apierrors.IsTooManyRequests(err) {
		t.Errorf("eviction past the budget: want 429, got %v", err)
	}
	b, _ := pods.Get(ctx, "b", metav1.GetOptions{})
	for _, c := range b.Status.Conditions {
		if c.Type == corev1.DisruptionTarget {
			t.Errorf("refused eviction marked the pod: %+v", c)
		}
	}
}
