package nodelifecycle

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// The taints a node gets while it is not ready or unreachable.
var (
	unreachableNoExecute = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	notReadyNoExecute    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}
	unreachableNoSched   = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}
	notReadyNoSched      = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
)

// heartbeat is the last sign of life from a node's agent: its Lease renewal
// or its Ready condition's heartbeat, whichever is later; a node never heard
// from counts from its creation.
func heartbeat(n *corev1.Node, lease *coordinationv1.Lease) time.Time {
	t := n.CreationTimestamp.Time
	if lease != nil && lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(t) {
		t = lease.Spec.RenewTime.Time
	}
	if c := readyCondition(n); c != nil && c.LastHeartbeatTime.After(t) {
		t = c.LastHeartbeatTime.Time
	}
	return t
}

func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// monitoredConditions are set Unknown when the agent goes silent.
var monitoredConditions = []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure}

// markUnknown sets the monitored conditions Unknown, as upstream does for a
// node whose agent stopped reporting. It reports whether anything changed.
func markUnknown(n *corev1.Node, now time.Time) bool {
	changed := false
	ts := metav1.NewTime(now)
	for _, t := range monitoredConditions {
		i := -1
		for k := range n.Status.Conditions {
			if n.Status.Conditions[k].Type == t {
				i = k
			}
		}
		if i < 0 {
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: t, Status: corev1.ConditionUnknown,
				Reason: "NodeStatusNeverUpdated", Message: "Kubelet never posted node status.", LastHeartbeatTime: n.CreationTimestamp, LastTransitionTime: ts})
			changed = true
			continue
		}
		c := &n.Status.Conditions[i]
		if c.Status == corev1.ConditionUnknown {
			continue
		}
		c.Status, c.Reason, c.Message, c.LastTransitionTime = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status.", ts
		changed = true
	}
	return changed
}

// conditionTaints are the NoSchedule taints a node carries while a
// pressure condition is True or it is cordoned (upstream's
// TaintNodesByCondition), so that only pods tolerating them land there.
var conditionTaints = map[corev1.NodeConditionType]string{
	corev1.NodeMemoryPressure: corev1.TaintNodeMemoryPressure,
	corev1.NodeDiskPressure:   corev1.TaintNodeDiskPressure,
	corev1.NodePIDPressure:    corev1.TaintNodePIDPressure,
}

// wantTaints is the taint set the controller owns that a node should carry:
// not-ready or unreachable for its Ready condition, pressure taints for its
// pressure conditions, unschedulable when cordoned (nil: none).
func wantTaints(n *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	c := readyCondition(n)
	switch {
	case c == nil || c.Status == corev1.ConditionUnknown:
		out = []corev1.Taint{unreachableNoSched, unreachableNoExecute}
	case c.Status == corev1.ConditionFalse:
		out = []corev1.Taint{notReadyNoSched, notReadyNoExecute}
	}
	for _, t := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		for _, cond := range n.Status.Conditions {
			if cond.Type == t && cond.Status == corev1.ConditionTrue {
				out = append(out, corev1.Taint{Key: conditionTaints[t], Effect: corev1.TaintEffectNoSchedule})
			}
		}
	}
	if n.Spec.Unschedulable {
		out = append(out, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	}
	return out
}

func managed(t corev1.Taint) bool {
	switch t.Key {
	case corev1.TaintNodeUnreachable, corev1.TaintNodeNotReady:
		return t.Effect == corev1.TaintEffectNoExecute || t.Effect == corev1.TaintEffectNoSchedule
	case corev1.TaintNodeMemoryPressure, corev1.TaintNodeDiskPressure, corev1.TaintNodePIDPressure, corev1.TaintNodeUnschedulable:
		return t.Effect == corev1.TaintEffectNoSchedule
	}
	return false
}

// reconcileTaints returns the node's taints with the managed ones replaced
// by want (keeping timeAdded of those already there), and whether they
// changed.
func reconcileTaints(have, want []corev1.Taint, now time.Time) ([]corev1.Taint, bool) {
	var out []corev1.Taint
	kept := map[string]bool{}
	for _, t := range have {
		if !managed(t) {
			out = append(out, t)
			continue
		}
		for _, w := range want {
			if w.Key == t.Key && w.Effect == t.Effect {
				out = append(out, t)
				kept[t.Key+string(t.Effect)] = true
			}
		}
	}
	changed := len(kept) != countManaged(have)
	for _, w := range want {
		if kept[w.Key+string(w.Effect)] {
			continue
		}
		if w.Effect == corev1.TaintEffectNoExecute {
			w.TimeAdded = &metav1.Time{Time: now}
		}
		out = append(out, w)
		changed = true
	}
	return out, changed
}

func countManaged(ts []corev1.Taint) int {
	n := 0
	for _, t := range ts {
		if managed(t) {
			n++
		}
	}
	return n
}

// evictAt is when a pod on a node with these NoExecute taints must go:
// at once if it does not tolerate one of them, after the shortest
// tolerationSeconds otherwise; ok is false if it tolerates them all forever.
func evictAt(pod *corev1.Pod, taints []corev1.Taint, now time.Time) (time.Time, bool) {
	var at time.Time
	found := false
	for _, t := range taints {
		if t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		added := now
		if t.TimeAdded != nil {
			added = t.TimeAdded.Time
		}
		tol, ok := toleration(pod, &t)
		if !ok {
			return now, true
		}
		if tol.TolerationSeconds == nil {
			continue
		}
		when := added.Add(time.Duration(max(*tol.TolerationSeconds, 0)) * time.Second)
		if !found || when.Before(at) {
			at, found = when, true
		}
	}
	return at, found
}

func toleration(pod *corev1.Pod, t *corev1.Taint) (corev1.Toleration, bool) {
	var best corev1.Toleration
	found := false
	for _, tol := range pod.Spec.Tolerations {
		if !tol.ToleratesTaint(klog.Background(), t, true) {
			continue
		}
		// The longest toleration wins; one without a limit wins outright.
		if !found || tol.TolerationSeconds == nil || (best.TolerationSeconds != nil && *tol.TolerationSeconds > *best.TolerationSeconds) {
			best, found = tol, true
		}
	}
	return best, found
}
