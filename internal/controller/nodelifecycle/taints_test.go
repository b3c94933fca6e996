package nodelifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func TestEvictAt(t *testing.T) {
	taints := []corev1.Taint{unreachableNoSched, {Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &metav1.Time{Time: now.Add(-10 * time.Second)}}}
	pod := func(tols ...corev1.Toleration) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tols}}
	}
	unreachable := func(secs *int64) corev1.Toleration {
		return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: secs}
	}
	cases := []struct {
		name string
		pod  *corev1.Pod
		at   time.Time
		ok   bool
	}{
		{"no toleration: now", pod(), now, true},
		{"300 s from when the taint was added", pod(unreachable(ptr.To[int64](300))), now.Add(290 * time.Second), true},
		{"tolerates forever", pod(unreachable(nil)), time.Time{}, false},
		{"the longest toleration wins", pod(unreachable(ptr.To[int64](5)), unreachable(ptr.To[int64](60))), now.Add(50 * time.Second), true},
		{"another taint's toleration does not help", pod(corev1.Toleration{Key: "other", Operator: corev1.TolerationOpExists}), now, true},
	}
	for _, c := range cases {
		at, ok := evictAt(c.pod, taints, now)
		if ok != c.ok || !at.Equal(c.at) {
			t.Errorf("%s: %v %v, want %v %v", c.name, at, ok, c.at, c.ok)
		}
	}
}

func TestTaintsFollowReady(t *testing.T) {
	node := func(s corev1.ConditionStatus) *corev1.Node {
		return &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: s}}}}
	}
	custom := corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}
	got, changed := reconcileTaints([]corev1.Taint{custom}, wantTaints(node(corev1.ConditionUnknown)), now)
	if !changed || len(got) != 3 || got[0] != custom || got[2].TimeAdded == nil || !got[2].TimeAdded.Time.Equal(now) {
		t.Fatalf("unknown node taints %+v", got)
	}
	again, changed := reconcileTaints(got, wantTaints(node(corev1.ConditionUnknown)), now.Add(time.Minute))
	if changed || !again[2].TimeAdded.Time.Equal(now) {
		t.Errorf("an unchanged state rewrote the taints: %+v", again)
	}
	notReady, _ := reconcileTaints(got, wantTaints(node(corev1.ConditionFalse)), now)
	if len(notReady) != 3 || notReady[1].Key != corev1.TaintNodeNotReady {
		t.Errorf("not-ready taints %+v", notReady)
	}
	ready, changed := reconcileTaints(got, wantTaints(node(corev1.ConditionTrue)), now)
	if !changed || len(ready) != 1 || ready[0] != custom {
		t.Errorf("a ready node keeps %+v", ready)
	}
}

func TestMarkUnknown(t *testing.T) {
	n := &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	if !markUnknown(n, now) || len(n.Status.Conditions) != 4 {
		t.Fatalf("conditions %+v", n.Status.Conditions)
	}
	if c := readyCondition(n); c.Status != corev1.ConditionUnknown || c.Reason != "NodeStatusUnknown" {
		t.Errorf("ready %+v", c)
	}
	if markUnknown(n, now) {
		t.Error("marking twice changes something")
	}
}

func TestConditionTaints(t *testing.T) {
	cond := func(typ corev1.NodeConditionType, s corev1.ConditionStatus) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: s}
	}
	ready := cond(corev1.NodeReady, corev1.ConditionTrue)
	cases := []struct {
		name  string
		node  corev1.Node
		taint []string
	}{
		{"healthy", corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{ready, cond(corev1.NodeMemoryPressure, corev1.ConditionFalse)}}}, nil},
		{"memory pressure", corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{ready, cond(corev1.NodeMemoryPressure, corev1.ConditionTrue)}}}, []string{corev1.TaintNodeMemoryPressure}},
		{"disk and pid pressure", corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{ready, cond(corev1.NodeDiskPressure, corev1.ConditionTrue), cond(corev1.NodePIDPressure, corev1.ConditionTrue)}}}, []string{corev1.TaintNodeDiskPressure, corev1.TaintNodePIDPressure}},
		{"cordoned", corev1.Node{Spec: corev1.NodeSpec{Unschedulable: true}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{ready}}}, []string{corev1.TaintNodeUnschedulable}},
		{"unknown pressure is no pressure", corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{ready, cond(corev1.NodeMemoryPressure, corev1.ConditionUnknown)}}}, nil},
	}
	for _, c := range cases {
		got := wantTaints(&c.node)
		var keys []string
		for _, tn := range got {
			if tn.Effect != corev1.TaintEffectNoSchedule || !managed(tn) {
				t.Errorf("%s: taint %+v is not a managed NoSchedule taint", c.name, tn)
			}
			keys = append(keys, tn.Key)
		}
		if len(keys) != len(c.taint) {
			t.Errorf("%s: taints %v, want %v", c.name, keys, c.taint)
			continue
		}
		for i := range keys {
			if keys[i] != c.taint[i] {
				t.Errorf("%s: taints %v, want %v", c.name, keys, c.taint)
			}
		}
	}
	// Pressure going away removes its taint and leaves a user's taint.
	user := corev1.Taint{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoExecute}
	have := []corev1.Taint{{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule}, user}
	got, changed := reconcileTaints(have, nil, now)
	if !changed || len(got) != 1 || got[0] != user {
		t.Errorf("after pressure: %+v (changed %v)", got, changed)
	}
}
