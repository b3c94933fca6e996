package disruption

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestStatus(t *testing.T) {
	ready := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	pending := &corev1.Pod{}
	pods := []*corev1.Pod{ready, ready, ready, pending}
	v := func(x intstr.IntOrString) *intstr.IntOrString { return &x }
	cases := []struct {
		name             string
		spec             policyv1.PodDisruptionBudgetSpec
		desired, allowed int32
		condition        string
	}{
		{"minAvailable 2", policyv1.PodDisruptionBudgetSpec{MinAvailable: v(intstr.FromInt32(2))}, 2, 1, policyv1.SufficientPodsReason},
		{"minAvailable 50% rounds up", policyv1.PodDisruptionBudgetSpec{MinAvailable: v(intstr.FromString("50%"))}, 2, 1, policyv1.SufficientPodsReason},
		{"maxUnavailable 1", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: v(intstr.FromInt32(1))}, 3, 0, policyv1.InsufficientPodsReason},
		{"maxUnavailable 100%", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: v(intstr.FromString("100%"))}, 0, 3, policyv1.SufficientPodsReason},
	}
	for _, c := range cases {
		st := Status(&policyv1.PodDisruptionBudget{Spec: c.spec}, pods, 4, time.Unix(0, 0))
		if st.ExpectedPods != 4 || st.CurrentHealthy != 3 || st.DesiredHealthy != c.desired || st.DisruptionsAllowed != c.allowed || st.Conditions[0].Reason != c.condition {
			t.Errorf("%s: %+v", c.name, st)
		}
	}
}

func TestStatusCountsDisruptedPods(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	}
	min2 := intstr.FromInt32(2)
	pdb := &policyv1.PodDisruptionBudget{Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &min2},
		Status: policyv1.PodDisruptionBudgetStatus{DisruptedPods: map[string]metav1.Time{
			"a":    metav1.NewTime(now.Add(-30 * time.Second)), // evicted, not deleted yet
			"b":    metav1.NewTime(now.Add(-3 * time.Minute)),  // too long ago: healthy again
			"gone": metav1.NewTime(now.Add(-10 * time.Second)), // deleted: dropped
		}}}
	st := Status(pdb, []*corev1.Pod{pod("a"), pod("b"), pod("c")}, 3, now)
	if st.CurrentHealthy != 2 || st.DisruptionsAllowed != 0 || len(st.DisruptedPods) != 1 || st.DisruptedPods["a"].Time.IsZero() {
		t.Errorf("status %+v", st)
	}
}
