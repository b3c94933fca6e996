package apiserver

import (
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
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

// handleEviction serves pods/eviction: the pod is deleted unless that would
// break its PodDisruptionBudget, whose allowance the eviction takes.
func (s *Server) handleEviction(w http.ResponseWriter, r *http.Request, ns, podName string, body []byte) {
	podsRes := s.reg.Lookup(corev1.SchemeGroupVersion.WithResource("pods"))
	pdbRes := s.reg.Lookup(policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets"))
	obj, err := s.decodeBody(w, r, body, policyv1.SchemeGroupVersion.WithKind("Eviction"), &policyv1.Eviction{})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ev := obj.(*policyv1.Eviction)
	if ev.Name != podName {
		s.writeError(w, r, badRequest("name in URL does not match name in Eviction object"))
		return
	}
	o, err := writeOptions(r, "")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	opts := metav1.DeleteOptions{}
	if ev.DeleteOptions != nil {
		opts = *ev.DeleteOptions
	}
	dryRun := o.DryRun || len(opts.DryRun) > 0
	for attempt := 0; ; attempt++ {
		cur, err := s.reg.Get(r.Context(), podsRes, ns, podName)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		pod := cur.(*corev1.Pod)
		if opts.Preconditions != nil && opts.Preconditions.UID != nil && *opts.Preconditions.UID != pod.UID {
			s.writeError(w, r, apierrors.NewConflict(podsRes.GroupResource(), podName, fmt.Errorf("the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", *opts.Preconditions.UID, pod.UID)))
			return
		}
		next, err := evictionVerdict(pod, s.budgets(pdbRes, ns), time.Now())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if next == nil || dryRun {
			break
		}
		err = s.takeDisruption(r, pdbRes, next)
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) || attempt == evictionRetries {
			if apierrors.IsConflict(err) {
				err = budgetError(fmt.Sprintf("The disruption budget %s changed while the eviction was checked; retry", next.Name))
			}
			s.writeError(w, r, err)
			return
		}
	}
	if !dryRun {
		// As upstream, a pod still running learns why it goes: the
		// DisruptionTarget condition (which Job pod failure policies match)
		// is written before the deletion.
		if err := s.markDisruption(r, podsRes, ns, podName); err != nil && !apierrors.IsNotFound(err) {
			s.writeError(w, r, err)
			return
		}
		if _, _, err := s.reg.Delete(r.Context(), podsRes, ns, podName, opts); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	s.respond(w, r, nil, http.StatusCreated, statusObject(&metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}))
}

// markDisruption sets DisruptionTarget=True (EvictionByEvictionAPI) on a
// pod that has not finished.
func (s *Server) markDisruption(r *http.Request, podsRes *registry.Resource, ns, name string) error {
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
		setCondition(&upd.Status, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI",
			Message: "Eviction API: evicting", LastTransitionTime: metav1.Now(), ObservedGeneration: pod.Generation})
		return upd, nil
	}
	_, _, err := s.reg.Update(r.Context(), podsRes, ns, name, mutate, registry.WriteOptions{Subresource: "status"}, false)
	return err
}

// budgets are the namespace's PodDisruptionBudgets, from the watch cache.
func (s *Server) budgets(pdbRes *registry.Resource, ns string) []*policyv1.PodDisruptionBudget {
	objs, _ := s.reg.Cache(pdbRes).Snapshot(storage.Filter{KeyPrefix: ns + "/"})
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
func (s *Server) takeDisruption(r *http.Request, pdbRes *registry.Resource, next *policyv1.PodDisruptionBudget) error {
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
	_, _, err := s.reg.Update(r.Context(), pdbRes, next.Namespace, next.Name, mutate, registry.WriteOptions{Subresource: "status"}, false)
	return err
}
