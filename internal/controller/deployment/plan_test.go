package deployment

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func rolling(replicas int32, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(replicas),
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}},
	}}
}

func rs(name string, age int, size, available int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Unix(int64(age), 0))},
		Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To(size)},
		Status:     appsv1.ReplicaSetStatus{Replicas: size, AvailableReplicas: available},
	}
}

func TestSurgeAndUnavailable(t *testing.T) {
	cases := []struct {
		d           *appsv1.Deployment
		surge, unav int32
	}{
		{rolling(10, intstr.FromString("25%"), intstr.FromString("25%")), 3, 2},
		{rolling(4, intstr.FromInt32(0), intstr.FromInt32(0)), 0, 1},
		{rolling(3, intstr.FromInt32(1), intstr.FromInt32(5)), 1, 3},
		{&appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}, 0, 0},
	}
	for i, c := range cases {
		s, u := surgeAndUnavailable(c.d)
		if s != c.surge || u != c.unav {
			t.Errorf("case %d: surge %d unavailable %d, want %d %d", i, s, u, c.surge, c.unav)
		}
	}
}

func TestRollingStepsStayWithinBounds(t *testing.T) {
	// 10 replicas, maxSurge 3, maxUnavailable 2: the new ReplicaSet may grow
	// to 3 at once; old ones may shrink by at most 2 below 10 available.
	d := rolling(10, intstr.FromInt32(3), intstr.FromInt32(2))
	old := rs("old", 1, 10, 10)
	newRS := rs("new", 2, 0, 0)
	all := []*appsv1.ReplicaSet{old, newRS}
	if n := newRSReplicas(d, all, newRS); n != 3 {
		t.Fatalf("first scale-up to %d, want 3", n)
	}
	newRS.Spec.Replicas = ptr.To[int32](3)
	// New pods not available yet: old may only shrink by maxUnavailable.
	if got := oldScaleDowns(d, all, []*appsv1.ReplicaSet{old}, newRS); got["old"] != 8 {
		t.Fatalf("old scaled to %v, want 8", got)
	}
	// New pods available: old shrinks as far as availability allows.
	newRS.Status.AvailableReplicas = 3
	if got := oldScaleDowns(d, all, []*appsv1.ReplicaSet{old}, newRS); got["old"] != 5 {
		t.Fatalf("old scaled to %v, want 5", got)
	}
	// Unavailable old pods go first, within the budget (13 pods - 8 minimum
	// available - 3 unavailable new ones = 2), and no available one goes.
	old.Status.AvailableReplicas = 7
	newRS.Status.AvailableReplicas = 0
	if got := oldScaleDowns(d, all, []*appsv1.ReplicaSet{old}, newRS); got["old"] != 8 {
		t.Fatalf("old with 3 unavailable scaled to %v, want 8", got)
	}
	// With the new pods available: all 3 unavailable old pods, then 2
	// available ones (10 available - 8 minimum).
	newRS.Status.AvailableReplicas = 3
	if got := oldScaleDowns(d, all, []*appsv1.ReplicaSet{old}, newRS); got["old"] != 5 {
		t.Fatalf("old scaled to %v, want 5", got)
	}
}

func TestProportionalSizes(t *testing.T) {
	a, b := rs("a", 1, 6, 6), rs("b", 2, 4, 4)
	got := proportionalSizes([]*appsv1.ReplicaSet{a, b}, 15)
	if got["a"]+got["b"] != 15 || got["a"] != 9 || got["b"] != 6 {
		t.Errorf("scale 10 → 15: %v", got)
	}
	got = proportionalSizes([]*appsv1.ReplicaSet{a, b}, 5)
	if got["a"]+got["b"] != 5 || got["a"] != 3 || got["b"] != 2 {
		t.Errorf("scale 10 → 5: %v", got)
	}
}

func TestTemplateHashAndEquality(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	h := templateHash(&tmpl, nil)
	if h != templateHash(tmpl.DeepCopy(), nil) || h == templateHash(&tmpl, ptr.To[int32](1)) {
		t.Errorf("hash not stable per template and collision count")
	}
	labelled := tmpl.DeepCopy()
	labelled.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = h
	if !equalIgnoreHash(&tmpl, labelled) {
		t.Error("the pod-template-hash label makes templates differ")
	}
	changed := tmpl.DeepCopy()
	changed.Spec.Containers[0].Image = "busybox:2"
	if equalIgnoreHash(&tmpl, changed) {
		t.Error("an image change goes unnoticed")
	}
}

func TestProgressConditionKeepsTimes(t *testing.T) {
	t1, t2 := time.Unix(100, 0), time.Unix(200, 0)
	var st appsv1.DeploymentStatus
	setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated", "m", t1))
	setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated", "m", t2))
	c := condition(&st, appsv1.DeploymentProgressing)
	if !c.LastUpdateTime.Time.Equal(t1) || !c.LastTransitionTime.Time.Equal(t1) {
		t.Errorf("an unchanged condition moved its times: %+v", c)
	}
	setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, "NewReplicaSetAvailable", "done", t2))
	if !c.LastUpdateTime.Time.Equal(t2) || !c.LastTransitionTime.Time.Equal(t1) {
		t.Errorf("a new reason must update lastUpdateTime only: %+v", c)
	}
}

// Recreate: the new ReplicaSet stays at zero while an old one still wants
// or counts a pod, then takes the whole size.
func TestRecreateWaitsForOldPods(t *testing.T) {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}
	newRS := rs("new", 2, 0, 0)
	for _, tc := range []struct {
		name string
		old  *appsv1.ReplicaSet
		want int32
	}{
		{"old still sized", rs("old", 1, 2, 2), 0},
		{"old scaled to zero, pods not gone", func() *appsv1.ReplicaSet { r := rs("old", 1, 0, 0); r.Status.Replicas = 1; return r }(), 0},
		{"old empty", rs("old", 1, 0, 0), 2},
	} {
		if got := newRSReplicas(d, []*appsv1.ReplicaSet{tc.old, newRS}, newRS); got != tc.want {
			t.Errorf("%s: new ReplicaSet to %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestRolloutPlan is one step of each strategy, as the ReplicaSet writes
// it plans.
func TestRolloutPlan(t *testing.T) {
	annotated := func(r *appsv1.ReplicaSet, want, max int) *appsv1.ReplicaSet {
		r.Annotations = map[string]string{desiredReplicasAnnotation: fmt.Sprint(want), maxReplicasAnnotation: fmt.Sprint(max)}
		return r
	}
	recreate := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}
	withHistory := func(d *appsv1.Deployment, limit int32) *appsv1.Deployment {
		d = d.DeepCopy()
		d.Spec.RevisionHistoryLimit = ptr.To(limit)
		return d
	}
	ten := rolling(10, intstr.FromInt32(3), intstr.FromInt32(2))
	cases := []struct {
		name       string
		d          *appsv1.Deployment
		newRS      *appsv1.ReplicaSet
		old        []*appsv1.ReplicaSet
		oldRunning bool
		resize     string
		prune      string
	}{
		{name: "rolling: the new ReplicaSet grows by maxSurge first", d: ten,
			newRS: rs("new", 2, 0, 0), old: []*appsv1.ReplicaSet{rs("old", 1, 10, 10)}, resize: "new=3"},
		{name: "rolling: then old ones shrink within maxUnavailable", d: ten,
			newRS: annotated(rs("new", 2, 3, 0), 10, 13), old: []*appsv1.ReplicaSet{annotated(rs("old", 1, 10, 10), 10, 13)}, resize: "old=8"},
		{name: "rolling: done, nothing to resize, old empty sets beyond the history limit go", d: withHistory(ten, 1),
			newRS: annotated(rs("new", 4, 10, 10), 10, 13), old: []*appsv1.ReplicaSet{rs("v1", 1, 0, 0), rs("v2", 2, 0, 0), rs("v3", 3, 0, 0)}, prune: "v1,v2"},
		{name: "recreate: old ReplicaSets go to zero first", d: recreate,
			newRS: rs("new", 2, 0, 0), old: []*appsv1.ReplicaSet{rs("old", 1, 2, 2)}, resize: "old=0"},
		{name: "recreate: the new one waits while old pods run", d: recreate,
			newRS: rs("new", 2, 0, 0), old: []*appsv1.ReplicaSet{rs("old", 1, 0, 0)}, oldRunning: true},
		{name: "recreate: then takes the whole size", d: recreate,
			newRS: rs("new", 2, 0, 0), old: []*appsv1.ReplicaSet{rs("old", 1, 0, 0)}, resize: "new=2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			all := append(slices.Clone(tc.old), tc.newRS)
			p := rolloutPlan(tc.d, all, tc.newRS, tc.old, tc.oldRunning)
			var resized, pruned []string
			for _, r := range p.resize {
				resized = append(resized, fmt.Sprintf("%s=%d", r.rs.Name, r.size))
			}
			for _, r := range p.prune {
				pruned = append(pruned, r.Name)
			}
			if got := strings.Join(resized, ","); got != tc.resize {
				t.Errorf("resize %q, want %q", got, tc.resize)
			}
			if got := strings.Join(pruned, ","); got != tc.prune {
				t.Errorf("prune %q, want %q", got, tc.prune)
			}
		})
	}
}

// TestScalePlan: a replica change without a rollout resizes the active
// ReplicaSets in proportion.
func TestScalePlan(t *testing.T) {
	d := rolling(20, intstr.FromInt32(0), intstr.FromInt32(1))
	cases := []struct {
		name   string
		newRS  *appsv1.ReplicaSet
		old    []*appsv1.ReplicaSet
		resize string
	}{
		{name: "one active ReplicaSet takes the new size", newRS: rs("new", 2, 10, 10), old: []*appsv1.ReplicaSet{rs("old", 1, 0, 0)}, resize: "new=20"},
		{name: "nothing active: the new one takes it", newRS: rs("new", 2, 0, 0), resize: "new=20"},
		{name: "mid-rollout: both grow in proportion", newRS: rs("new", 2, 5, 5), old: []*appsv1.ReplicaSet{rs("old", 1, 5, 5)}, resize: "old=10,new=10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var resized []string
			for _, r := range scalePlan(d, tc.newRS, tc.old).resize {
				resized = append(resized, fmt.Sprintf("%s=%d", r.rs.Name, r.size))
			}
			if got := strings.Join(resized, ","); got != tc.resize {
				t.Errorf("resize %q, want %q", got, tc.resize)
			}
		})
	}
}
