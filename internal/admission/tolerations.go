package admission

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// DefaultTolerationSeconds is how long a pod stays on a node that is not
// ready or unreachable before it is evicted, unless it says otherwise.
const DefaultTolerationSeconds = 300

// defaultTolerationSeconds is upstream's DefaultTolerationSeconds: every
// pod tolerates the not-ready and unreachable NoExecute taints for five
// minutes unless it tolerates them already. Updates too: a client that
// replaces a pod's tolerations gets the defaults back.
type defaultTolerationSeconds struct{}

func (defaultTolerationSeconds) Handles(op Operation) bool { return op == Create || op == Update }

func (defaultTolerationSeconds) Admit(_ context.Context, a *Attributes) error {
	pod, ok := a.Object.(*corev1.Pod)
	if !ok || !a.Is(podsGVR) {
		return nil
	}
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		found := false
		for _, t := range pod.Spec.Tolerations {
			if (t.Key == key || t.Key == "" && t.Operator == corev1.TolerationOpExists) && (t.Effect == "" || t.Effect == corev1.TaintEffectNoExecute) {
				found = true
			}
		}
		if !found {
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](DefaultTolerationSeconds)})
		}
	}
	return nil
}

// taintNodesByCondition is upstream's TaintNodesByCondition: a new Node is
// tainted not-ready (NoSchedule) until the node lifecycle controller sees
// it Ready, so nothing is scheduled to a node before it can run pods.
type taintNodesByCondition struct{}

var nodesGVR = corev1.SchemeGroupVersion.WithResource("nodes")

func (taintNodesByCondition) Handles(op Operation) bool { return op == Create }

func (taintNodesByCondition) Admit(_ context.Context, a *Attributes) error {
	node, ok := a.Object.(*corev1.Node)
	if !ok || !a.Is(nodesGVR) {
		return nil
	}
	for _, t := range node.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady && t.Effect == corev1.TaintEffectNoSchedule {
			return nil
		}
	}
	node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule})
	return nil
}
