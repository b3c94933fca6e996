package replicaset

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func pod(name, node string, phase corev1.PodPhase, readySince *time.Time, created time.Time) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created), Labels: map[string]string{"app": "web"}}}
	p.Spec.NodeName = node
	p.Status.Phase = phase
	if readySince != nil {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(*readySince)}}
	}
	return p
}

func names(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

func TestPodsToDeleteRanking(t *testing.T) {
	long, recent := t0.Add(-time.Hour), t0.Add(-time.Minute)
	pods := []*corev1.Pod{
		pod("ready-long", "n1", corev1.PodRunning, &long, t0.Add(-2*time.Hour)),
		pod("ready-recent", "n1", corev1.PodRunning, &recent, t0.Add(-2*time.Hour)),
		pod("running-not-ready", "n1", corev1.PodRunning, nil, t0.Add(-2*time.Hour)),
		pod("pending-scheduled", "n1", corev1.PodPending, nil, t0.Add(-2*time.Hour)),
		pod("unscheduled", "", corev1.PodPending, nil, t0.Add(-2*time.Hour)),
	}
	want := []string{"unscheduled", "pending-scheduled", "running-not-ready", "ready-recent", "ready-long"}
	for n := 1; n <= len(want); n++ {
		got := names(podsToDelete(pods, n))
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("delete %d: got %v, want %v", n, got, want[:n])
			}
		}
	}
	newer := pod("newer", "", corev1.PodPending, nil, t0)
	older := pod("older", "", corev1.PodPending, nil, t0.Add(-time.Hour))
	if got := podsToDelete([]*corev1.Pod{older, newer}, 1); got[0].Name != "newer" {
		t.Errorf("between equals the newer goes first, got %s", got[0].Name)
	}
}

func TestStatus(t *testing.T) {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Generation: 4},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), MinReadySeconds: 30,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "front"}}}},
	}
	long, recent := t0.Add(-time.Hour), t0.Add(-10*time.Second)
	full := pod("full", "n", corev1.PodRunning, &long, t0)
	full.Labels["tier"] = "front"
	pods := []*corev1.Pod{full, pod("recent", "n", corev1.PodRunning, &recent, t0), pod("starting", "n", corev1.PodPending, nil, t0)}
	st := status(rs, pods, nil, t0)
	if st.Replicas != 3 || st.FullyLabeledReplicas != 1 || st.ReadyReplicas != 2 || st.AvailableReplicas != 1 || st.ObservedGeneration != 4 {
		t.Errorf("status %+v", st)
	}
	if d, ok := nextAvailableCheck(rs, pods, t0); !ok || d != 21*time.Second {
		t.Errorf("next availability check in %v (%v), want 21s", d, ok)
	}
	failed := status(rs, pods, errors.New("exceeded quota"), t0)
	if len(failed.Conditions) != 1 || failed.Conditions[0].Type != appsv1.ReplicaSetReplicaFailure || failed.Conditions[0].Message != "exceeded quota" {
		t.Fatalf("failure condition %+v", failed.Conditions)
	}
	rs.Status = failed
	if cleared := status(rs, pods, nil, t0); len(cleared.Conditions) != 0 {
		t.Errorf("condition kept after success: %+v", cleared.Conditions)
	}
}

func TestSlowStartStopsAtFirstFailingBatch(t *testing.T) {
	var calls atomic.Int32
	done, err := slowStart(100, func() error {
		if calls.Add(1) > 4 {
			return errors.New("quota")
		}
		return nil
	})
	// Batches of 1, 2, 4: the third batch has 1 success and 3 failures.
	if err == nil || done != 4 || calls.Load() != 7 {
		t.Errorf("done %d, calls %d, err %v; want 4 done in 7 calls", done, calls.Load(), err)
	}
	done, err = slowStart(10, func() error { return nil })
	if err != nil || done != 10 {
		t.Errorf("all succeed: %d %v", done, err)
	}
}

// TestDecide is the ReplicaSet's contract for one sync.
func TestDecide(t *testing.T) {
	ready := t0.Add(-time.Hour)
	running := func(n int) []*corev1.Pod {
		var out []*corev1.Pod
		for i := range n {
			out = append(out, pod(fmt.Sprintf("p%d", i), "n1", corev1.PodRunning, &ready, t0.Add(-time.Duration(i)*time.Minute)))
		}
		return out
	}
	rs := func(replicas *int32, deleting bool) *appsv1.ReplicaSet {
		r := &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Replicas: replicas}}
		if deleting {
			r.DeletionTimestamp = &metav1.Time{Time: t0}
		}
		return r
	}
	pendingPod := pod("pending", "", corev1.PodPending, nil, t0)
	cases := []struct {
		name    string
		rs      *appsv1.ReplicaSet
		active  []*corev1.Pod
		pending time.Duration
		want    plan
		deleted []string
	}{
		{name: "fewer pods than replicas: create the difference", rs: rs(ptr.To[int32](3), false), active: running(1), want: plan{create: 2}},
		{name: "replicas unset means one", rs: rs(nil, false), want: plan{create: 1}},
		{name: "a big gap is created in bursts", rs: rs(ptr.To[int32](2000), false), want: plan{create: burstReplicas}},
		{name: "as many as asked: nothing to do", rs: rs(ptr.To[int32](2), false), active: running(2), want: plan{}},
		{name: "more pods than replicas: the unscheduled one goes first", rs: rs(ptr.To[int32](2), false), active: append(running(2), pendingPod), deleted: []string{"pending"}},
		{name: "scale to zero deletes all, the newest first", rs: rs(ptr.To[int32](0), false), active: running(2), deleted: []string{"p0", "p1"}},
		{name: "earlier writes not yet seen: wait for them", rs: rs(ptr.To[int32](3), false), pending: 4 * time.Second, want: plan{wait: 4 * time.Second}},
		{name: "being deleted: no creates", rs: rs(ptr.To[int32](3), true), want: plan{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := decide(tc.rs, tc.active, tc.pending)
			if got.create != tc.want.create || got.wait != tc.want.wait {
				t.Errorf("create %d wait %s, want create %d wait %s", got.create, got.wait, tc.want.create, tc.want.wait)
			}
			if !slices.Equal(names(got.delete), tc.deleted) {
				t.Errorf("delete %v, want %v", names(got.delete), tc.deleted)
			}
		})
	}
}
