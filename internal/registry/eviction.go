package registry

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/storage"
)

// maxDisruptedPods bounds a budget's status.disruptedPods, as upstream.
const maxDisruptedPods = 2000

// evictionRetries is how often a budget update that lost a race is tried
// again before the client is asked to retry.
const evictionRetries = 5

// canIgnoreBudget: pods that are finished, not yet running or already
// terminating go without consulting any budget (upstream's rule).
func canIgnoreBudget(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded ||
		pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodPending
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// evictionVerdict decides an eviction against the pod's budgets. It returns
// the budget with the disruption taken (to be written before the pod is
// deleted), nil when no budget needs changing, or the error to answer.
func evictionVerdict(pod *corev1.Pod, budgets []*policyv1.PodDisruptionBudget, now time.Time) (*policyv1.PodDisruptionBudget, error) {
	if canIgnoreBudget(pod) {
		return nil, nil
	}
	var matching []*policyv1.PodDisruptionBudget
	for _, b := range budgets {
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		matching = append(matching, b)
	}
	switch len(matching) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, apierrors.NewInternalError(fmt.Errorf("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."))
	}
	b := matching[0]
	if !podReady(pod) {
		policy := policyv1.IfHealthyBudget
		if b.Spec.UnhealthyPodEvictionPolicy != nil {
			policy = *b.Spec.UnhealthyPodEvictionPolicy
		}
		// An unready pod costs the budget nothing when the budget allows
		// it: always, or while enough other pods are healthy.
		if policy == policyv1.AlwaysAllow || b.Status.CurrentHealthy >= b.Status.DesiredHealthy {
			return nil, nil
		}
	}
	if b.Status.ObservedGeneration < b.Generation {
		return nil, budgetError(fmt.Sprintf("The disruption budget %s is still being processed by the server.", b.Name))
	}
	if b.Status.DisruptionsAllowed < 0 {
		return nil, apierrors.NewForbidden(policyv1.Resource("poddisruptionbudget"), b.Name, fmt.Errorf("pdb disruptions allowed is negative"))
	}
	if len(b.Status.DisruptedPods) > maxDisruptedPods {
		return nil, apierrors.NewForbidden(policyv1.Resource("poddisruptionbudget"), b.Name, fmt.Errorf("DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
	}
	if b.Status.DisruptionsAllowed == 0 {
		return nil, budgetError(fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", b.Name, b.Status.DesiredHealthy, b.Status.CurrentHealthy))
	}
	next := b.DeepCopy()
	next.Status.DisruptionsAllowed--
	if next.Status.DisruptionsAllowed == 0 {
		for i := range next.Status.Conditions {
			if next.Status.Conditions[i].Type == policyv1.DisruptionAllowedCondition {
				next.Status.Conditions[i].Status = metav1.ConditionFalse
				next.Status.Conditions[i].Reason = policyv1.InsufficientPodsReason
				next.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now)
			}
		}
	}
	if next.Status.DisruptedPods == nil {
		next.Status.DisruptedPods = map[string]metav1.Time{}
	}
	next.Status.DisruptedPods[pod.Name] = metav1.NewTime(now)
	return next, nil
}

// budgetError is the 429 a client such as `kubectl drain` retries on.
func budgetError(cause string) error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Type: policyv1.DisruptionBudgetCause, Message: cause})
	return err
}

// evictionAction serves pods/eviction: the pod is deleted unless that would
// break its PodDisruptionBudget, whose allowance the eviction takes.
var evictionAction = &Action{
	Kind:  policyv1.SchemeGroupVersion.WithKind("Eviction"),
	Verbs: []string{"create"},
	New:   func() runtime.Object { return &policyv1.Eviction{} },
	Act:   evict,
}

func evict(ctx context.Context, g *Registry, ns, podName string, body func(runtime.Object) (runtime.Object, error), o WriteOptions) (runtime.Object, error) {
	podsRes := g.Lookup(corev1.SchemeGroupVersion.WithResource("pods"))
	pdbRes := g.Lookup(policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets"))
	in, err := body(nil)
	if err != nil {
		return nil, err
	}
	ev := in.(*policyv1.Eviction)
	if ev.Name != podName {
		return nil, apierrors.NewBadRequest("name in URL does not match name in Eviction object")
	}
	opts := metav1.DeleteOptions{}
	if ev.DeleteOptions != nil {
		opts = *ev.DeleteOptions
	}
	dryRun := o.DryRun || len(opts.DryRun) > 0
	for attempt := 0; ; attempt++ {
		cur, err := g.Get(ctx, podsRes, ns, podName)
		if err != nil {
			return nil, err
		}
		pod := cur.(*corev1.Pod)
		if opts.Preconditions != nil && opts.Preconditions.UID != nil && *opts.Preconditions.UID != pod.UID {
			return nil, apierrors.NewConflict(podsRes.GroupResource(), podName, fmt.Errorf("the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", *opts.Preconditions.UID, pod.UID))
		}
		next, err := evictionVerdict(pod, g.budgets(pdbRes, ns), g.Now())
		if err != nil {
			return nil, err
		}
		if next == nil || dryRun {
			break
		}
		err = g.takeDisruption(ctx, pdbRes, next)
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) || attempt == evictionRetries {
			if apierrors.IsConflict(err) {
				err = budgetError(fmt.Sprintf("The disruption budget %s changed while the eviction was checked; retry", next.Name))
			}
			return nil, err
		}
	}
	if !dryRun {
		// As upstream, a pod still running learns why it goes: the
		// DisruptionTarget condition (which Job pod failure policies match)
		// is written before the deletion.
		if err := g.markDisruption(ctx, podsRes, ns, podName); err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if _, _, err := g.Delete(ctx, podsRes, ns, podName, opts); err != nil {
			return nil, err
		}
	}
	return created(), nil
}

// markDisruption sets DisruptionTarget=True (EvictionByEvictionAPI) on a
// pod that has not finished.
func (g *Registry) markDisruption(ctx context.Context, podsRes *Resource, ns, name string) error {
	mutate := func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(podsRes.GroupResource(), name)
		}
		pod := cur.(*corev1.Pod)
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return pod, nil
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
				return pod, nil
			}
		}
		upd := pod.DeepCopy()
		setPodCondition(&upd.Status, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI",
			Message: "Eviction API: evicting", LastTransitionTime: metav1.NewTime(g.Now()), ObservedGeneration: pod.Generation})
		return upd, nil
	}
	_, _, err := g.Update(ctx, podsRes, ns, name, mutate, WriteOptions{Subresource: "status"}, false)
	return err
}

// budgets are the namespace's PodDisruptionBudgets, from the watch cache.
func (g *Registry) budgets(pdbRes *Resource, ns string) []*policyv1.PodDisruptionBudget {
	objs, _ := g.Cache(pdbRes).Snapshot(storage.Filter{KeyPrefix: ns + "/"})
	out := make([]*policyv1.PodDisruptionBudget, 0, len(objs))
	for _, o := range objs {
		if b, ok := o.Obj.(*policyv1.PodDisruptionBudget); ok {
			out = append(out, b)
		}
	}
	return out
}

// takeDisruption writes the budget's reduced allowance, only over the
// version the verdict was made on.
func (g *Registry) takeDisruption(ctx context.Context, pdbRes *Resource, next *policyv1.PodDisruptionBudget) error {
	mutate := func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(pdbRes.GroupResource(), next.Name)
		}
		have := cur.(*policyv1.PodDisruptionBudget)
		if have.ResourceVersion != next.ResourceVersion {
			return nil, apierrors.NewConflict(pdbRes.GroupResource(), next.Name, fmt.Errorf("the budget changed"))
		}
		upd := have.DeepCopy()
		upd.Status = next.Status
		return upd, nil
	}
	_, _, err := g.Update(ctx, pdbRes, next.Namespace, next.Name, mutate, WriteOptions{Subresource: "status"}, false)
	return err
}
