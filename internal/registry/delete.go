package registry

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/admission"
)

// Delete deletes ns/name as opts ask. It returns the object as it was last
// stored and whether it is gone (false: it waits for finalizers or a grace
// period and carries a deletionTimestamp).
func (g *Registry) Delete(ctx context.Context, r *Resource, ns, name string, opts metav1.DeleteOptions) (runtime.Object, bool, error) {
	dryRun := slices.Contains(opts.DryRun, metav1.DryRunAll)
	gone := false
	var last runtime.Object
	fn := func(stored runtime.Object) (runtime.Object, error) {
		if stored == nil {
			return nil, apierrors.NewNotFound(r.GroupResource(), name)
		}
		cur, err := g.fromStorage(r, stored)
		if err != nil {
			return nil, err
		}
		last = cur
		// Validating admission sees the object as it is before the delete
		// (NamespaceLifecycle keeps the cluster's own namespaces).
		attrs := g.attributes(ctx, r, admission.Delete, cur, cur, WriteOptions{DryRun: dryRun})
		attrs.Object = nil
		if err := g.Admission.Validate(ctx, attrs); err != nil {
			return nil, err
		}
		next, err := g.deleteStep(r, name, cur, opts)
		if err != nil {
			return nil, err
		}
		gone = next == nil
		if next == nil {
			return nil, nil
		}
		return g.toStorage(r, next)
	}
	out, err := g.mutateStored(ctx, r, r.Key(ns, name), dryRun, fn)
	if err != nil {
		return nil, false, err
	}
	if gone {
		if !dryRun {
			g.release(r, last)
		}
		if out == nil {
			return last, true, nil
		}
		res, err := g.fromStorage(r, out)
		return res, true, err
	}
	res, err := g.fromStorage(r, out)
	return res, false, err
}

// deleteStep is the pure decision of one delete: nil to remove the object
// now, or the object to store with its deletion marks.
func (g *Registry) deleteStep(r *Resource, name string, cur runtime.Object, opts metav1.DeleteOptions) (runtime.Object, error) {
	acc, _ := meta.Accessor(cur)
	if p := opts.Preconditions; p != nil {
		if p.UID != nil && *p.UID != acc.GetUID() {
			return nil, apierrors.NewConflict(r.GroupResource(), name, fmt.Errorf("Precondition failed: UID in precondition: %s, UID in object meta: %s", *p.UID, acc.GetUID()))
		}
		if p.ResourceVersion != nil && *p.ResourceVersion != acc.GetResourceVersion() {
			return nil, apierrors.NewConflict(r.GroupResource(), name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s", *p.ResourceVersion, acc.GetResourceVersion()))
		}
	}
	if opts.PropagationPolicy != nil && opts.OrphanDependents != nil {
		return nil, apierrors.NewBadRequest("orphanDependents and propagationPolicy cannot both be set")
	}
	obj := cur.DeepCopyObject()
	oa, _ := meta.Accessor(obj)
	finalizers := propagationFinalizers(oa.GetFinalizers(), opts)
	if acc.GetDeletionTimestamp() == nil {
		for _, f := range r.DeleteFinalizers {
			if !slices.Contains(finalizers, f) {
				finalizers = append(finalizers, f)
			}
		}
	}
	changedFinalizers := !slices.Equal(finalizers, oa.GetFinalizers())
	oa.SetFinalizers(finalizers)
	now := metav1.NewTime(g.Now().Truncate(1e9))

	grace, graceful := int64(0), false
	if r.GracefulDelete != nil {
		grace, graceful = r.GracefulDelete(cur, opts.GracePeriodSeconds)
	}
	pending := len(finalizers) > 0 || pendingSpecFinalizers(obj)

	if dt := acc.GetDeletionTimestamp(); dt != nil {
		// Already being deleted: only a shorter grace period or a change of
		// propagation finalizers has any effect.
		if graceful && grace > 0 {
			if cg := acc.GetDeletionGracePeriodSeconds(); cg != nil && grace < *cg {
				t := metav1.NewTime(now.Add(secondsDuration(grace)))
				oa.SetDeletionTimestamp(&t)
				oa.SetDeletionGracePeriodSeconds(&grace)
				bumpGeneration(oa)
				return obj, nil
			}
			return obj, nil
		}
		if !pending && (!graceful || grace == 0) {
			return nil, nil
		}
		if graceful && grace == 0 {
			zero := int64(0)
			oa.SetDeletionGracePeriodSeconds(&zero)
		}
		if changedFinalizers || graceful {
			return obj, nil
		}
		return obj, nil
	}
	if graceful && grace > 0 {
		t := metav1.NewTime(now.Add(secondsDuration(grace)))
		oa.SetDeletionTimestamp(&t)
		oa.SetDeletionGracePeriodSeconds(&grace)
		bumpGeneration(oa)
		markTerminating(obj)
		return obj, nil
	}
	if pending {
		zero := int64(0)
		oa.SetDeletionTimestamp(&now)
		oa.SetDeletionGracePeriodSeconds(&zero)
		bumpGeneration(oa)
		markTerminating(obj)
		return obj, nil
	}
	return nil, nil
}

// propagationFinalizers adds the garbage collector's finalizer for the
// requested propagation policy, as upstream records it.
func propagationFinalizers(fin []string, opts metav1.DeleteOptions) []string {
	out := slices.Clone(fin)
	policy := opts.PropagationPolicy
	if policy == nil && opts.OrphanDependents != nil {
		p := metav1.DeletePropagationBackground
		if *opts.OrphanDependents {
			p = metav1.DeletePropagationOrphan
		}
		policy = &p
	}
	if policy == nil {
		return out
	}
	drop := func(name string) { out = slices.DeleteFunc(out, func(s string) bool { return s == name }) }
	add := func(name string) {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	switch *policy {
	case metav1.DeletePropagationForeground:
		drop(FinalizerOrphan)
		add(FinalizerForeground)
	case metav1.DeletePropagationOrphan:
		drop(FinalizerForeground)
		add(FinalizerOrphan)
	case metav1.DeletePropagationBackground:
		drop(FinalizerOrphan)
		drop(FinalizerForeground)
	}
	return out
}

// pendingSpecFinalizers reports a namespace whose spec.finalizers are not
// yet done.
func pendingSpecFinalizers(obj runtime.Object) bool {
	ns, ok := obj.(*corev1.Namespace)
	return ok && len(ns.Spec.Finalizers) > 0
}

// markTerminating sets a namespace's phase when its deletion begins.
func markTerminating(obj runtime.Object) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		ns.Status.Phase = corev1.NamespaceTerminating
	}
}

// bumpGeneration marks the start (or shortening) of a deletion in the
// generation of an object that has one, as upstream does: a controller
// or kubelet sees a new generation to observe.
func bumpGeneration(acc metav1.Object) {
	if g := acc.GetGeneration(); g > 0 {
		acc.SetGeneration(g + 1)
	}
}
