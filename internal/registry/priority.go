package registry

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/storage"
)

// admitPriority is upstream's Priority admission: a pod's priority and
// preemption policy come from its PriorityClass (or the global default
// class); a class that does not exist, or a spec value that disagrees
// with the class, is refused.
func (g *Registry) admitPriority(ctx context.Context, r *Resource, obj runtime.Object) error {
	pod, ok := obj.(*corev1.Pod)
	if !ok || r.GVR != corev1.SchemeGroupVersion.WithResource("pods") {
		return nil
	}
	pc, err := g.priorityClass(ctx, pod.Spec.PriorityClassName)
	if err != nil {
		return err
	}
	var value int32
	policy := corev1.PreemptLowerPriority
	if pc != nil {
		value = pc.Value
		pod.Spec.PriorityClassName = pc.Name
		if pc.PreemptionPolicy != nil {
			policy = *pc.PreemptionPolicy
		}
	} else if pod.Spec.PriorityClassName != "" {
		return apierrors.NewForbidden(r.GroupResource(), pod.Name, fmt.Errorf("no PriorityClass with name %s was found", pod.Spec.PriorityClassName))
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != value {
		return apierrors.NewForbidden(r.GroupResource(), pod.Name, fmt.Errorf("the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name", *pod.Spec.Priority, value))
	}
	pod.Spec.Priority = &value
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy != policy && pc != nil {
		return apierrors.NewForbidden(r.GroupResource(), pod.Name, fmt.Errorf("the string value of PreemptionPolicy (%s) must not be provided in pod spec; priority admission controller computed %s from the given PriorityClass name", *pod.Spec.PreemptionPolicy, policy))
	}
	if pod.Spec.PreemptionPolicy == nil {
		pod.Spec.PreemptionPolicy = &policy
	}
	return nil
}

// priorityClass finds a class by name, or the global default class when
// name is empty; nil when there is none.
func (g *Registry) priorityClass(ctx context.Context, name string) (*schedulingv1.PriorityClass, error) {
	res := g.Lookup(schedulingv1.SchemeGroupVersion.WithResource("priorityclasses"))
	cache := g.Cache(res)
	if name != "" {
		if o := cache.Get(name); o != nil {
			return o.Obj.(*schedulingv1.PriorityClass), nil
		}
		got, err := g.Store(res).Get(ctx, name)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return got.(*schedulingv1.PriorityClass), nil
	}
	objs, _ := cache.Snapshot(storage.Filter{})
	var def *schedulingv1.PriorityClass
	for _, o := range objs {
		pc := o.Obj.(*schedulingv1.PriorityClass)
		// Among several defaults upstream takes the lowest value.
		if pc.GlobalDefault && (def == nil || pc.Value < def.Value) {
			def = pc
		}
	}
	return def, nil
}

func priorityClassStrategy(r *Resource) {
	r.ShortNames = []string{"pc"}
	r.Default = asDefault(func(pc *schedulingv1.PriorityClass) {
		if pc.PreemptionPolicy == nil {
			pc.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
		}
	})
	r.Validate = asValidate(func(pc *schedulingv1.PriorityClass) field.ErrorList {
		if strings.HasPrefix(pc.Name, "system-") && wellKnownPriorities[pc.Name] == 0 {
			return field.ErrorList{field.Forbidden(field.NewPath("metadata", "name"), "priority class names with 'system-' prefix are reserved for system use only")}
		}
		if pc.Value > 1000000000 && wellKnownPriorities[pc.Name] == 0 {
			return field.ErrorList{field.Forbidden(field.NewPath("value"), "maximum allowed value of a user defined priority is 1000000000")}
		}
		return nil
	})
	r.ValidateUpdate = asValidateUpdate(func(o, old *schedulingv1.PriorityClass) field.ErrorList {
		if o.Value != old.Value {
			return field.ErrorList{field.Forbidden(field.NewPath("value"), "may not be changed in an update.")}
		}
		return nil
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Value", "integer", 0, ""), col("Global-Default", "boolean", 0, ""), ageCol, col("PreemptionPolicy", "string", 0, "")}
	r.Row = asRow(func(pc *schedulingv1.PriorityClass, _ bool) []any {
		return []any{pc.Name, int64(pc.Value), pc.GlobalDefault, age(pc.CreationTimestamp), string(ptr.Deref(pc.PreemptionPolicy, ""))}
	})
}
