package statefulset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func set(replicas int32, policy appsv1.PodManagementPolicyType, partition int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns", UID: "u"}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To(replicas), PodManagementPolicy: policy, ServiceName: "db",
		UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType, RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To(partition)}},
	}}
}

func pod(s *appsv1.StatefulSet, o int32, rev string, ready bool) *corev1.Pod {
	p := newPod(s, o, rev, nil)
	if ready {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	return p
}

func describe(steps []step) []string {
	var out []string
	for _, s := range steps {
		if s.create != nil {
			out = append(out, "create "+s.create.Name+"@"+s.create.Labels[revisionLabel])
		} else {
			out = append(out, "delete "+s.delete.Name)
		}
	}
	return out
}

func TestPlan(t *testing.T) {
	ordered := set(3, appsv1.OrderedReadyPodManagement, 0)
	parallel := set(3, appsv1.ParallelPodManagement, 0)
	wide := set(4, appsv1.ParallelPodManagement, 0)
	wide.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(2))
	half := set(4, appsv1.OrderedReadyPodManagement, 1)
	half.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("50%"))
	cases := []struct {
		name string
		s    *appsv1.StatefulSet
		pods []*corev1.Pod
		want []string
	}{
		{"ordered: first pod first", ordered, nil, []string{"create db-0@r1"}}, // partition 0: all get the update revision
		{"ordered: waits for db-0 ready", ordered, []*corev1.Pod{pod(ordered, 0, "r1", false)}, nil},
		{"ordered: next after ready", ordered, []*corev1.Pod{pod(ordered, 0, "r1", true)}, []string{"create db-1@r1"}},
		{"parallel: all at once", parallel, nil, []string{"create db-0@r1", "create db-1@r1", "create db-2@r1"}},
		{"scale down highest first", set(1, appsv1.OrderedReadyPodManagement, 0), []*corev1.Pod{pod(ordered, 0, "r1", true), pod(ordered, 1, "r1", true), pod(ordered, 2, "r1", true)}, []string{"delete db-2"}},
		{"ordered scale down halts while a lower pod is unhealthy", set(0, appsv1.OrderedReadyPodManagement, 0), []*corev1.Pod{pod(ordered, 0, "r1", false), pod(ordered, 1, "r1", false), pod(ordered, 2, "r1", false)}, nil},
		{"ordered scale down: the lowest unhealthy pod may go", set(2, appsv1.OrderedReadyPodManagement, 0), []*corev1.Pod{pod(ordered, 0, "r1", true), pod(ordered, 1, "r1", true), pod(ordered, 2, "r1", false)}, []string{"delete db-2"}},
		{"parallel scale down ignores health", set(0, appsv1.ParallelPodManagement, 0), []*corev1.Pod{pod(parallel, 0, "r1", false), pod(parallel, 1, "r1", false)}, []string{"delete db-1", "delete db-0"}},
		{"update from the highest ordinal", ordered, []*corev1.Pod{pod(ordered, 0, "r0", true), pod(ordered, 1, "r0", true), pod(ordered, 2, "r0", true)}, []string{"delete db-2"}},
		{"update waits for readiness", ordered, []*corev1.Pod{pod(ordered, 0, "r0", true), pod(ordered, 1, "r0", true), pod(ordered, 2, "r1", false)}, nil},
		{"partition stops the update", set(3, appsv1.OrderedReadyPodManagement, 2), []*corev1.Pod{pod(ordered, 0, "r0", true), pod(ordered, 1, "r0", true), pod(ordered, 2, "r1", true)}, nil},
		{"maxUnavailable 2: two outdated pods at once", wide, []*corev1.Pod{pod(wide, 0, "r0", true), pod(wide, 1, "r0", true), pod(wide, 2, "r0", true), pod(wide, 3, "r0", true)}, []string{"delete db-3", "delete db-2"}},
		{"maxUnavailable 2, Parallel, one down: one more", wide, []*corev1.Pod{pod(wide, 0, "r0", true), pod(wide, 1, "r0", true), pod(wide, 2, "r0", true), pod(wide, 3, "r1", false)}, []string{"delete db-2"}},
		{"maxUnavailable 2 with two down: none", wide, []*corev1.Pod{pod(wide, 0, "r0", true), pod(wide, 1, "r0", true), pod(wide, 2, "r1", false), pod(wide, 3, "r1", false)}, nil},
		{"50% of 4 above partition 1", half, []*corev1.Pod{pod(half, 0, "r0", true), pod(half, 1, "r0", true), pod(half, 2, "r1", true), pod(half, 3, "r1", true)}, []string{"delete db-1"}},
		{"below the partition pods come back at the current revision", set(3, appsv1.OrderedReadyPodManagement, 2), []*corev1.Pod{pod(ordered, 1, "r0", true), pod(ordered, 2, "r1", true)}, []string{"create db-0@r0"}},
	}
	for _, c := range cases {
		m := map[int32]*corev1.Pod{}
		for _, p := range c.pods {
			m[ordinalOf(c.s, p)] = p
		}
		got := describe(plan(c.s, m, "r1", "r0", nil))
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

func TestClaimsAndPods(t *testing.T) {
	s := set(1, appsv1.OrderedReadyPodManagement, 0)
	s.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
	s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}
	s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
	c := newClaim(s, s.Spec.VolumeClaimTemplates[0], 4)
	if c.Name != "data-db-4" || c.Labels["app"] != "db" || !metav1.IsControlledBy(c, s) {
		t.Errorf("claim %+v", c.ObjectMeta)
	}
	p := newPod(s, 4, "r", nil)
	if p.Name != "db-4" || p.Spec.Hostname != "db-4" || p.Spec.Subdomain != "db" || p.Labels[podIndexLabel] != "4" || p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-db-4" {
		t.Errorf("pod %+v %+v", p.ObjectMeta, p.Spec)
	}
}

// A pod below the partition that is deleted comes back at the current
// revision, from that revision's template, not the set's new one.
func TestPlanRecreatesBelowPartitionAtCurrentRevision(t *testing.T) {
	s := set(3, appsv1.OrderedReadyPodManagement, 2)
	s.Spec.Template.Spec.Containers = []corev1.Container{{Name: "c", Image: "new:2"}}
	old := s.Spec.Template.DeepCopy()
	old.Spec.Containers[0].Image = "old:1"
	pods := map[int32]*corev1.Pod{1: pod(s, 1, "r0", true), 2: pod(s, 2, "r1", true)}
	steps := plan(s, pods, "r1", "r0", old)
	if len(steps) != 1 || steps[0].create == nil {
		t.Fatalf("steps %v", describe(steps))
	}
	p := steps[0].create
	if p.Name != "db-0" || p.Labels[revisionLabel] != "r0" || p.Spec.Containers[0].Image != "old:1" {
		t.Errorf("recreated %s at %s with image %s", p.Name, p.Labels[revisionLabel], p.Spec.Containers[0].Image)
	}
}
