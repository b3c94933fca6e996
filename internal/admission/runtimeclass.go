package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

var runtimeClassesGVR = nodev1.SchemeGroupVersion.WithResource("runtimeclasses")

// runtimeClass is upstream's RuntimeClass admission for new pods: the
// class must exist; its pod overhead is copied into the pod (a different
// one the pod brings is refused); its scheduling node selector and
// tolerations are merged into the pod's (a conflicting selector is refused).
type runtimeClass struct{ objects Objects }

func (*runtimeClass) Handles(op Operation) bool { return op == Create }

func (p *runtimeClass) Admit(ctx context.Context, a *Attributes) error {
	pod, ok := a.Object.(*corev1.Pod)
	if !ok || !a.Is(podsGVR) || pod.Spec.RuntimeClassName == nil || *pod.Spec.RuntimeClassName == "" {
		return nil
	}
	name := *pod.Spec.RuntimeClassName
	o, err := p.objects.Get(ctx, runtimeClassesGVR, "", name)
	if apierrors.IsNotFound(err) {
		return a.forbidden(fmt.Errorf("pod rejected: RuntimeClass %q not found", name))
	}
	if err != nil {
		return err
	}
	if err := applyRuntimeClass(pod, o.(*nodev1.RuntimeClass)); err != nil {
		return a.forbidden(err)
	}
	return nil
}

// applyRuntimeClass merges what a RuntimeClass asks of its pods into pod.
func applyRuntimeClass(pod *corev1.Pod, rc *nodev1.RuntimeClass) error {
	if rc.Overhead != nil && rc.Overhead.PodFixed != nil {
		if pod.Spec.Overhead != nil && !apiequality.Semantic.DeepEqual(pod.Spec.Overhead, rc.Overhead.PodFixed) {
			return fmt.Errorf("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
		}
		pod.Spec.Overhead = rc.Overhead.PodFixed.DeepCopy()
	} else if pod.Spec.Overhead != nil {
		return fmt.Errorf("pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")
	}
	if rc.Scheduling == nil {
		return nil
	}
	for k, v := range rc.Scheduling.NodeSelector {
		if cur, ok := pod.Spec.NodeSelector[k]; ok && cur != v {
			return fmt.Errorf("conflict: runtimeClass.scheduling.nodeSelector[%s] = %s; pod.spec.nodeSelector[%s] = %s", k, v, k, cur)
		}
		if pod.Spec.NodeSelector == nil {
			pod.Spec.NodeSelector = map[string]string{}
		}
		pod.Spec.NodeSelector[k] = v
	}
	for _, t := range rc.Scheduling.Tolerations {
		dup := false
		for _, have := range pod.Spec.Tolerations {
			if apiequality.Semantic.DeepEqual(have, t) {
				dup = true
				break
			}
		}
		if !dup {
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, t)
		}
	}
	return nil
}
