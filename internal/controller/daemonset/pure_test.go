package daemonset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPlacement(t *testing.T) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}, Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{NodeSelector: map[string]string{"role": "worker"}}}}}
	node := func(role string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"role": role}}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	taint := func(key string, effect corev1.TaintEffect) corev1.Taint {
		return corev1.Taint{Key: key, Effect: effect}
	}
	cases := []struct {
		name               string
		node               *corev1.Node
		shouldRun, mayStay bool
	}{
		{"matching node", node("worker"), true, true},
		{"selector mismatch", node("other"), false, false},
		{"NoSchedule taint: no new pod, the old one stays", node("worker", taint("dedicated", corev1.TaintEffectNoSchedule)), false, true},
		{"untolerated NoExecute taint", node("worker", taint("evict", corev1.TaintEffectNoExecute)), false, false},
		{"unreachable is tolerated by default", node("worker", taint(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)), true, true},
		{"unschedulable is tolerated by default", node("worker", taint(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)), true, true},
	}
	for _, c := range cases {
		run, stay := placement(ds, c.node)
		if run != c.shouldRun || stay != c.mayStay {
			t.Errorf("%s: shouldRun %v mayContinue %v, want %v %v", c.name, run, stay, c.shouldRun, c.mayStay)
		}
	}
	p := newPod(ds, "n7", "h")
	if nodeOf(p) != "n7" || p.Labels[appsv1.ControllerRevisionHashLabelKey] != "h" || len(p.Spec.Tolerations) != 6 {
		t.Errorf("pod for n7: node %q labels %v tolerations %d", nodeOf(p), p.Labels, len(p.Spec.Tolerations))
	}
}
