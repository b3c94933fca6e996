package registry

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/quota"
	"github.com/skiff-sh/skiff/internal/storage"
)

// quotaRetries bounds the compare-and-swap of a quota's usage under
// concurrent creates before the client is told to retry.
const quotaRetries = 8

// admitQuota is upstream's ResourceQuota admission for creations: an object
// that would take a quota of its namespace over a hard limit is refused
// (403), and one that fits is charged to the quota's status.used at once,
// so concurrent creates cannot overrun it before the controller recounts.
func (g *Registry) admitQuota(ctx context.Context, r *Resource, obj runtime.Object, dryRun bool) error {
	acc, err := meta.Accessor(obj)
	if err != nil || acc.GetNamespace() == "" {
		return nil
	}
	qres := g.Lookup(corev1.SchemeGroupVersion.WithResource("resourcequotas"))
	if qres == nil {
		return nil
	}
	cached, _ := g.Cache(qres).Snapshot(storage.Filter{KeyPrefix: acc.GetNamespace() + "/"})
	for _, o := range cached {
		q, ok := o.Obj.(*corev1.ResourceQuota)
		if !ok {
			continue
		}
		if err := g.chargeQuota(ctx, r, qres, q, obj, acc.GetName(), dryRun); err != nil {
			return err
		}
	}
	return nil
}

// chargeQuota checks one quota and adds the object's use to it.
func (g *Registry) chargeQuota(ctx context.Context, r, qres *Resource, q *corev1.ResourceQuota, obj runtime.Object, name string, dryRun bool) error {
	forbid := func(msg string) error {
		return apierrors.NewForbidden(r.GroupResource(), name, errors.New(msg))
	}
	if quota.Scoped(q.Spec) {
		// A scoped quota counts only the pods its scopes match.
		if pod, ok := obj.(*corev1.Pod); !ok || !quota.PodInScope(q.Spec, pod) {
			return nil
		}
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		if missing := quota.MissingRequests(q.Spec.Hard, pod); missing != "" {
			return forbid(fmt.Sprintf("failed quota: %s: must specify %s", q.Name, missing))
		}
	}
	delta := quota.Delta(q.Spec.Hard, r.GroupResource(), obj)
	if len(delta) == 0 {
		return nil
	}
	for name := range delta {
		if _, counted := q.Status.Hard[name]; !counted {
			// A quota the controller has not counted yet (just created or
			// just raised) cannot vouch for anything: refuse until it has,
			// as upstream does for usage it does not know.
			return forbid(fmt.Sprintf("status unknown for quota: %s, resource: %s", q.Name, name))
		}
	}
	for attempt := 0; ; attempt++ {
		if msg := quota.Check(q.Name, q.Status, delta); msg != "" {
			return forbid(msg)
		}
		if dryRun {
			return nil
		}
		rv := q.ResourceVersion
		_, _, err := g.Update(ctx, qres, q.Namespace, q.Name, func(cur runtime.Object) (runtime.Object, error) {
			have, ok := cur.(*corev1.ResourceQuota)
			if !ok || have.ResourceVersion != rv {
				return nil, apierrors.NewConflict(qres.GroupResource(), q.Name, errors.New("the quota changed"))
			}
			upd := have.DeepCopy()
			upd.Status.Used = quota.Add(have.Status.Used, delta)
			return upd, nil
		}, WriteOptions{Subresource: "status"}, false)
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == quotaRetries {
			if apierrors.IsConflict(err) {
				return apierrors.NewConflict(qres.GroupResource(), q.Name, fmt.Errorf("quota usage changed while %s was admitted; retry", name))
			}
			return err
		}
		fresh, err := g.Get(ctx, qres, q.Namespace, q.Name)
		if apierrors.IsNotFound(err) {
			return nil // the quota is gone: nothing to charge
		}
		if err != nil {
			return err
		}
		q = fresh.(*corev1.ResourceQuota)
	}
}
