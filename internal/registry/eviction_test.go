package registry

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestEvictionVerdict(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	pod := func(phase corev1.PodPhase, ready bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{"app": "web"}}, Status: corev1.PodStatus{Phase: phase}}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		return p
	}
	budget := func(allowed, current, desired int32) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: 1},
			Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
			Status:     policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, DisruptionsAllowed: allowed, CurrentHealthy: current, DesiredHealthy: desired},
		}
	}
	other := budget(0, 0, 1)
	other.Name, other.Spec.Selector = "other", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
	stale := budget(1, 2, 1)
	stale.Generation = 2
	alwaysAllow := budget(0, 0, 1)
	alwaysAllow.Spec.UnhealthyPodEvictionPolicy = ptr.To(policyv1.AlwaysAllow)
	terminating := pod(corev1.PodRunning, true)
	terminating.DeletionTimestamp = &metav1.Time{Time: now}

	cases := []struct {
		name    string
		pod     *corev1.Pod
		budgets []*policyv1.PodDisruptionBudget
		take    bool // a disruption is taken from the budget
		code    int32
	}{
		{"no budget", pod(corev1.PodRunning, true), nil, false, 0},
		{"another app's budget", pod(corev1.PodRunning, true), []*policyv1.PodDisruptionBudget{other}, false, 0},
		{"allowed: takes one", pod(corev1.PodRunning, true), []*policyv1.PodDisruptionBudget{budget(1, 2, 1)}, true, 0},
		{"none allowed: 429", pod(corev1.PodRunning, true), []*policyv1.PodDisruptionBudget{budget(0, 1, 1)}, false, 429},
		{"budget not yet observed: 429", pod(corev1.PodRunning, true), []*policyv1.PodDisruptionBudget{stale}, false, 429},
		{"two budgets: 500", pod(corev1.PodRunning, true), []*policyv1.PodDisruptionBudget{budget(1, 2, 1), budget(1, 2, 1)}, false, 500},
		{"pending pods go freely", pod(corev1.PodPending, false), []*policyv1.PodDisruptionBudget{budget(0, 1, 1)}, false, 0},
		{"finished pods go freely", pod(corev1.PodSucceeded, false), []*policyv1.PodDisruptionBudget{budget(0, 1, 1)}, false, 0},
		{"terminating pods go freely", terminating, []*policyv1.PodDisruptionBudget{budget(0, 1, 1)}, false, 0},
		{"unready pod while the budget is healthy", pod(corev1.PodRunning, false), []*policyv1.PodDisruptionBudget{budget(0, 1, 1)}, false, 0},
		{"unready pod while the budget is short: 429", pod(corev1.PodRunning, false), []*policyv1.PodDisruptionBudget{budget(0, 0, 1)}, false, 429},
		{"unready pod, AlwaysAllow", pod(corev1.PodRunning, false), []*policyv1.PodDisruptionBudget{alwaysAllow}, false, 0},
	}
	for _, c := range cases {
		next, err := evictionVerdict(c.pod, c.budgets, now)
		var code int32
		if err != nil {
			code = err.(apierrors.APIStatus).Status().Code
		}
		if code != c.code || (next != nil) != c.take {
			t.Errorf("%s: budget %v, err %v; want take %v, code %d", c.name, next != nil, err, c.take, c.code)
			continue
		}
		if next != nil && (next.Status.DisruptionsAllowed != c.budgets[0].Status.DisruptionsAllowed-1 || next.Status.DisruptedPods["web-1"].Time != now) {
			t.Errorf("%s: status %+v", c.name, next.Status)
		}
		if next != nil && c.budgets[0].Status.DisruptedPods != nil {
			t.Errorf("%s: the verdict changed the budget it was given", c.name)
		}
		if code == 429 {
			st := err.(apierrors.APIStatus).Status()
			if st.Reason != metav1.StatusReasonTooManyRequests || len(st.Details.Causes) == 0 || st.Details.Causes[0].Type != policyv1.DisruptionBudgetCause {
				t.Errorf("%s: status %+v", c.name, st)
			}
		}
	}
}
