package registry

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// admitRuntimeClass is upstream's RuntimeClass admission for new pods: the
// class must exist; its pod overhead is copied into the pod (a different
// one the pod brings is refused); its scheduling node selector and
// tolerations are merged into the pod's (a conflicting selector is refused).
func (g *Registry) admitRuntimeClass(ctx context.Context, r *Resource, obj runtime.Object) error {
	pod, ok := obj.(*corev1.Pod)
	if !ok || r.GVR != corev1.SchemeGroupVersion.WithResource("pods") || pod.Spec.RuntimeClassName == nil || *pod.Spec.RuntimeClassName == "" {
		return nil
	}
	res := g.Lookup(nodev1.SchemeGroupVersion.WithResource("runtimeclasses"))
	name := *pod.Spec.RuntimeClassName
	var rc *nodev1.RuntimeClass
	if o := g.Cache(res).Get(name); o != nil {
		rc = o.Obj.(*nodev1.RuntimeClass)
	} else {
		got, err := g.Store(res).Get(ctx, name)
		if apierrors.IsNotFound(err) {
			return apierrors.NewForbidden(r.GroupResource(), pod.Name, fmt.Errorf("pod rejected: RuntimeClass %q not found", name))
		}
		if err != nil {
			return err
		}
		rc = got.(*nodev1.RuntimeClass)
	}
	if err := applyRuntimeClass(pod, rc); err != nil {
		return apierrors.NewForbidden(r.GroupResource(), pod.Name, err)
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

func runtimeClassTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Handler", "string", 0, ""), ageCol}, func(o runtime.Object, _ bool) []any {
		rc := o.(*nodev1.RuntimeClass)
		return []any{rc.Name, rc.Handler, age(rc.CreationTimestamp)}
	}
}
