package podgc

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPlan(t *testing.T) {
	at := func(min int) metav1.Time { return metav1.NewTime(time.Unix(int64(min)*60, 0)) }
	now := metav1.Now()
	pod := func(name, node string, phase corev1.PodPhase, created metav1.Time, deleting bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: created}, Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
		if deleting {
			p.DeletionTimestamp = &now
		}
		return p
	}
	pods := []*corev1.Pod{
		pod("on-gone-node", "gone", corev1.PodRunning, at(1), false),
		pod("on-new-missing-node", "missing", corev1.PodRunning, at(1), false),
		pod("on-live-node", "live", corev1.PodRunning, at(1), false),
		pod("unscheduled-terminating", "", corev1.PodPending, at(1), true),
		pod("unscheduled", "", corev1.PodPending, at(1), false),
		pod("done-old", "live", corev1.PodSucceeded, at(1), false),
		pod("done-mid", "live", corev1.PodFailed, at(2), false),
		pod("done-new", "live", corev1.PodSucceeded, at(3), false),
	}
	var names []string
	for _, p := range Plan(pods, map[string]bool{"gone": true, "missing": false}, 1) {
		names = append(names, p.Name)
	}
	want := []string{"on-gone-node", "unscheduled-terminating", "done-old", "done-mid"}
	if !slices.Equal(names, want) {
		t.Errorf("plan %v, want %v", names, want)
	}
}
