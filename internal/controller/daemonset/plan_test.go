package daemonset

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
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

func TestSurgeUpdate(t *testing.T) {
	pod := func(name, rev string, isReady bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: rev}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		if isReady {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		return p
	}
	names := func(ps []*corev1.Pod) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return strings.Join(out, ",")
	}
	cases := []struct {
		name             string
		nodes            []nodePods
		surge            int
		creates, deletes string
	}{
		{"one surge at a time", []nodePods{{"a", []*corev1.Pod{pod("a-old", "r0", true)}}, {"b", []*corev1.Pod{pod("b-old", "r0", true)}}}, 1, "a", ""},
		{"two at a time", []nodePods{{"a", []*corev1.Pod{pod("a-old", "r0", true)}}, {"b", []*corev1.Pod{pod("b-old", "r0", true)}}}, 2, "a,b", ""},
		{"a surge in progress uses the budget", []nodePods{{"a", []*corev1.Pod{pod("a-old", "r0", true), pod("a-new", "r1", false)}}, {"b", []*corev1.Pod{pod("b-old", "r0", true)}}}, 1, "", ""},
		{"the new pod is ready: the old one goes", []nodePods{{"a", []*corev1.Pod{pod("a-old", "r0", true), pod("a-new", "r1", true)}}, {"b", []*corev1.Pod{pod("b-old", "r0", true)}}}, 1, "b", "a-old"},
		{"an unready old pod is replaced without budget", []nodePods{{"a", []*corev1.Pod{pod("a-old", "r0", false)}}, {"b", []*corev1.Pod{pod("b-old", "r0", true)}}}, 1, "a,b", ""},
		{"extra new pods go", []nodePods{{"a", []*corev1.Pod{pod("a-new1", "r1", true), pod("a-new2", "r1", true)}}}, 1, "", "a-new2"},
		{"up to date: nothing", []nodePods{{"a", []*corev1.Pod{pod("a-new", "r1", true)}}}, 1, "", ""},
	}
	for _, c := range cases {
		creates, deletes := surgeUpdate(c.nodes, "r1", c.surge)
		if strings.Join(creates, ",") != c.creates || names(deletes) != c.deletes {
			t.Errorf("%s: creates %v deletes %s, want %s / %s", c.name, creates, names(deletes), c.creates, c.deletes)
		}
	}
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxSurge: ptr.To(intstr.FromString("25%"))}}}}
	if got := maxSurge(ds, 10); got != 3 {
		t.Errorf("25%% of 10 nodes: %d, want 3 (rounded up)", got)
	}
	ds.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
	if got := maxSurge(ds, 10); got != 0 {
		t.Errorf("OnDelete surges %d", got)
	}
}

// TestDecide is the DaemonSet's contract for one sync: which nodes get a
// pod, which pods go, and the status counts.
func TestDecide(t *testing.T) {
	node := func(name string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	pod := func(name, node, rev string, phase corev1.PodPhase, isReady bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: rev}},
			Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
		if isReady {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		return p
	}
	ds := func(strategy appsv1.DaemonSetUpdateStrategyType, maxUnavailable int) *appsv1.DaemonSet {
		d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Generation: 2}, Spec: appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: strategy}}}
		if strategy == appsv1.RollingUpdateDaemonSetStrategyType {
			d.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromInt32(int32(maxUnavailable))), MaxSurge: ptr.To(intstr.FromInt32(0))}
		}
		return d
	}
	byNode := func(pods ...*corev1.Pod) map[string][]*corev1.Pod {
		m := map[string][]*corev1.Pod{}
		for _, p := range pods {
			m[p.Spec.NodeName] = append(m[p.Spec.NodeName], p)
		}
		return m
	}
	noExec := corev1.Taint{Key: "evict", Effect: corev1.TaintEffectNoExecute}
	rolling := appsv1.RollingUpdateDaemonSetStrategyType
	cases := []struct {
		name     string
		ds       *appsv1.DaemonSet
		nodes    []*corev1.Node
		pods     map[string][]*corev1.Pod
		creates  string
		deletes  string
		desired  int32
		ready    int32
		updated  int32
		misplace int32
	}{
		{name: "every node without a pod gets one", ds: ds(rolling, 1), nodes: []*corev1.Node{node("n1"), node("n2")},
			pods: byNode(pod("a", "n1", "new", corev1.PodRunning, true)), creates: "n2", desired: 2, ready: 1, updated: 1},
		{name: "a pod on a node that evicts it goes", ds: ds(rolling, 1), nodes: []*corev1.Node{node("n1", noExec)},
			pods: byNode(pod("a", "n1", "new", corev1.PodRunning, true)), deletes: "a", misplace: 1},
		{name: "a pod whose node is gone goes", ds: ds(rolling, 1), nodes: []*corev1.Node{node("n1")},
			pods: byNode(pod("a", "n1", "new", corev1.PodRunning, true), pod("b", "gone", "new", corev1.PodRunning, true)), deletes: "b", desired: 1, ready: 1, updated: 1},
		{name: "a failed pod is replaced", ds: ds(rolling, 1), nodes: []*corev1.Node{node("n1")},
			pods: byNode(pod("a", "n1", "new", corev1.PodFailed, false)), deletes: "a", desired: 1, updated: 1},
		{name: "rolling update: old pods go within maxUnavailable", ds: ds(rolling, 1), nodes: []*corev1.Node{node("n1"), node("n2")},
			pods: byNode(pod("a", "n1", "old", corev1.PodRunning, true), pod("b", "n2", "old", corev1.PodRunning, true)), deletes: "a", desired: 2, ready: 2},
		{name: "rolling update: an unready old pod goes regardless", ds: ds(rolling, 1), nodes: []*corev1.Node{node("n1"), node("n2")},
			pods: byNode(pod("a", "n1", "old", corev1.PodRunning, true), pod("b", "n2", "old", corev1.PodRunning, false)), deletes: "b", desired: 2, ready: 1},
		{name: "OnDelete: old pods stay", ds: ds(appsv1.OnDeleteDaemonSetStrategyType, 0), nodes: []*corev1.Node{node("n1")},
			pods: byNode(pod("a", "n1", "old", corev1.PodRunning, true)), desired: 1, ready: 1},
		{name: "no updates while pods are still being created", ds: ds(rolling, 1), nodes: []*corev1.Node{node("n1"), node("n2")},
			pods: byNode(pod("a", "n1", "old", corev1.PodRunning, true)), creates: "n2", desired: 2, ready: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := decide(tc.ds, tc.nodes, tc.pods, "new")
			var deleted []string
			for _, d := range p.deletes {
				deleted = append(deleted, d.Name)
			}
			if got := strings.Join(p.creates, ","); got != tc.creates {
				t.Errorf("creates %q, want %q", got, tc.creates)
			}
			if got := strings.Join(deleted, ","); got != tc.deletes {
				t.Errorf("deletes %q, want %q", got, tc.deletes)
			}
			st := p.status
			if st.DesiredNumberScheduled != tc.desired || st.NumberReady != tc.ready || st.UpdatedNumberScheduled != tc.updated || st.NumberMisscheduled != tc.misplace {
				t.Errorf("status desired %d ready %d updated %d misscheduled %d, want %d %d %d %d", st.DesiredNumberScheduled, st.NumberReady, st.UpdatedNumberScheduled, st.NumberMisscheduled, tc.desired, tc.ready, tc.updated, tc.misplace)
			}
			if st.ObservedGeneration != 2 {
				t.Errorf("observedGeneration %d, want 2", st.ObservedGeneration)
			}
		})
	}
}
