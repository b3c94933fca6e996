package registry

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// bindingAction assigns a pod to a node (pods/binding, and the create-only
// bindings resource), as the scheduler does.
var bindingAction = &Action{
	Kind:  corev1.SchemeGroupVersion.WithKind("Binding"),
	Verbs: []string{"create"},
	New:   func() runtime.Object { return &corev1.Binding{} },
	Act:   bind,
}

func bind(ctx context.Context, g *Registry, ns, podName string, body func(runtime.Object) (runtime.Object, error), o WriteOptions) (runtime.Object, error) {
	pods := g.Lookup(corev1.SchemeGroupVersion.WithResource("pods"))
	in, err := body(nil)
	if err != nil {
		return nil, err
	}
	b := in.(*corev1.Binding)
	if podName == "" {
		podName = b.Name
	}
	if b.Name != podName {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the binding (%s) does not match the pod on the URL (%s)", b.Name, podName))
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		return nil, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), b.Name, field.ErrorList{field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node"})})
	}
	if b.Target.Name == "" {
		return nil, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), b.Name, field.ErrorList{field.Required(field.NewPath("target", "name"), "")})
	}
	mutate := func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(pods.GroupResource(), podName)
		}
		pod := cur.DeepCopyObject().(*corev1.Pod)
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(pods.GroupResource(), podName, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", podName))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(pods.GroupResource(), podName, fmt.Errorf("pod %s is already assigned to node %q", podName, pod.Spec.NodeName))
		}
		if b.UID != "" && b.UID != pod.UID {
			return nil, apierrors.NewConflict(pods.GroupResource(), podName, errors.New("the UID in the binding does not match the pod"))
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		setPodCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(g.Now()), ObservedGeneration: pod.Generation})
		// A bound pod no longer needs its nomination (upstream clears it
		// at binding since 1.35).
		pod.Status.NominatedNodeName = ""
		return pod, nil
	}
	// Binding writes spec and status together, as upstream's binding
	// registry does, so it goes through the main resource with status kept.
	o.Subresource = "binding"
	o.KeepManagedFields = true
	if _, _, err := g.Update(ctx, pods, ns, podName, mutate, o, false); err != nil {
		return nil, err
	}
	return created(), nil
}

// setPodCondition replaces the condition of c's type, or adds it.
func setPodCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}
