package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

var priorityClassesGVR = schedulingv1.SchemeGroupVersion.WithResource("priorityclasses")

// priority is upstream's Priority admission: a new pod's priority and
// preemption policy come from its PriorityClass (or the global default
// class); a class that does not exist, or a spec value that disagrees
// with the class, is refused.
type priority struct{ objects Objects }

func (*priority) Handles(op Operation) bool { return op == Create }

func (p *priority) Admit(ctx context.Context, a *Attributes) error {
	pod, ok := a.Object.(*corev1.Pod)
	if !ok || !a.Is(podsGVR) {
		return nil
	}
	pc, err := p.class(ctx, pod.Spec.PriorityClassName)
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
		return a.forbidden(fmt.Errorf("no PriorityClass with name %s was found", pod.Spec.PriorityClassName))
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != value {
		return a.forbidden(fmt.Errorf("the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name", *pod.Spec.Priority, value))
	}
	pod.Spec.Priority = &value
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy != policy && pc != nil {
		return a.forbidden(fmt.Errorf("the string value of PreemptionPolicy (%s) must not be provided in pod spec; priority admission controller computed %s from the given PriorityClass name", *pod.Spec.PreemptionPolicy, policy))
	}
	if pod.Spec.PreemptionPolicy == nil {
		pod.Spec.PreemptionPolicy = &policy
	}
	return nil
}

// class finds a class by name, or the global default class when name is
// empty; nil when there is none.
func (p *priority) class(ctx context.Context, name string) (*schedulingv1.PriorityClass, error) {
	if name != "" {
		o, err := p.objects.Get(ctx, priorityClassesGVR, "", name)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return o.(*schedulingv1.PriorityClass), nil
	}
	var def *schedulingv1.PriorityClass
	for _, o := range p.objects.List(priorityClassesGVR, "") {
		pc := o.(*schedulingv1.PriorityClass)
		// Among several defaults upstream takes the lowest value.
		if pc.GlobalDefault && (def == nil || pc.Value < def.Value) {
			def = pc
		}
	}
	return def, nil
}
