package disruption

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
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
