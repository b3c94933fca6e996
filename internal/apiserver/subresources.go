package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// scaleOf builds the autoscaling/v1 Scale of a workload. Every scalable
// built-in type has Spec.Replicas (*int32), Status.Replicas (int32) and a
// selector, so this reads them by field name.
func scaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	v := reflect.ValueOf(obj).Elem()
	spec, status := v.FieldByName("Spec"), v.FieldByName("Status")
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{Name: acc.GetName(), Namespace: acc.GetNamespace(), UID: acc.GetUID(),
			ResourceVersion: acc.GetResourceVersion(), CreationTimestamp: acc.GetCreationTimestamp()},
	}
	if p, ok := spec.FieldByName("Replicas").Interface().(*int32); ok && p != nil {
		sc.Spec.Replicas = *p
	}
	sc.Status.Replicas = int32(status.FieldByName("Replicas").Int())
	switch sel := spec.FieldByName("Selector").Interface().(type) {
	case *metav1.LabelSelector:
		if s, err := metav1.LabelSelectorAsSelector(sel); err == nil {
			sc.Status.Selector = s.String()
		}
	case map[string]string:
		sc.Status.Selector = labels.SelectorFromSet(sel).String()
	}
	return sc, nil
}

func setReplicas(obj runtime.Object, n int32) {
	f := reflect.ValueOf(obj).Elem().FieldByName("Spec").FieldByName("Replicas")
	f.Set(reflect.ValueOf(&n))
}

// updateScale changes a workload's replicas through its scale subresource.
func (s *Server) updateScale(w http.ResponseWriter, r *http.Request, res *registry.Resource, ns, name string, next func(*autoscalingv1.Scale) (*autoscalingv1.Scale, error)) {
	o, err := writeOptions(r, "")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	mutate := func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(res.GroupResource(), name)
		}
		sc, err := scaleOf(cur)
		if err != nil {
			return nil, err
		}
		want, err := next(sc)
		if err != nil {
			return nil, err
		}
		if want.Name != "" && want.Name != name {
			return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", want.Name, name)
		}
		if want.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), name, field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")})
		}
		obj := cur.DeepCopyObject()
		acc, _ := meta.Accessor(obj)
		if want.ResourceVersion != "" {
			acc.SetResourceVersion(want.ResourceVersion)
		}
		setReplicas(obj, want.Spec.Replicas)
		return obj, nil
	}
	out, _, err := s.reg.Update(r.Context(), res, ns, name, mutate, o, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sc, err := scaleOf(out)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.respond(w, r, nil, http.StatusOK, sc)
}

// handleBinding assigns a pod to a node (pods/binding and bindings), as the
// scheduler does.
func (s *Server) handleBinding(w http.ResponseWriter, r *http.Request, ns, podName string, body []byte) {
	podsRes := s.reg.Lookup(corev1.SchemeGroupVersion.WithResource("pods"))
	obj, err := s.decodeBody(w, r, body, corev1.SchemeGroupVersion.WithKind("Binding"), &corev1.Binding{})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b := obj.(*corev1.Binding)
	if podName == "" {
		podName = b.Name
	}
	if b.Name != podName {
		s.writeError(w, r, badRequest("the name of the binding (%s) does not match the pod on the URL (%s)", b.Name, podName))
		return
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		s.writeError(w, r, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), b.Name, field.ErrorList{field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node"})}))
		return
	}
	if b.Target.Name == "" {
		s.writeError(w, r, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), b.Name, field.ErrorList{field.Required(field.NewPath("target", "name"), "")}))
		return
	}
	o, err := writeOptions(r, "")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	mutate := func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(podsRes.GroupResource(), podName)
		}
		pod := cur.DeepCopyObject().(*corev1.Pod)
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(podsRes.GroupResource(), podName, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", podName))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(podsRes.GroupResource(), podName, fmt.Errorf("pod %s is already assigned to node %q", podName, pod.Spec.NodeName))
		}
		if b.UID != "" && b.UID != pod.UID {
			return nil, apierrors.NewConflict(podsRes.GroupResource(), podName, errors.New("the UID in the binding does not match the pod"))
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		setCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now(), ObservedGeneration: pod.Generation})
		// A bound pod no longer needs its nomination (upstream clears it
		// at binding since 1.35).
		pod.Status.NominatedNodeName = ""
		return pod, nil
	}
	// Binding writes spec and status together, as upstream's binding
	// registry does, so it goes through the main resource with status kept.
	o.Subresource = "binding"
	o.KeepManagedFields = true
	if _, _, err := s.reg.Update(r.Context(), podsRes, ns, podName, mutate, o, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.respond(w, r, nil, http.StatusCreated, statusObject(&metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}))
}

func setCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}
