package admission

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/quota"
)

var resourceQuotasGVR = corev1.SchemeGroupVersion.WithResource("resourcequotas")

// quotaRetries bounds the compare-and-swap of a quota's usage under
// concurrent writes before the client is told to retry.
const quotaRetries = 8

// resourceQuota is upstream's ResourceQuota admission: an object whose
// creation, or an update that grows what it uses, would take a quota of its
// namespace over a hard limit is refused (403); one that fits is charged
// to the quota's status.used at once, so concurrent writes cannot overrun
// it before the controller recounts.
type resourceQuota struct{ objects Objects }

func (*resourceQuota) Handles(op Operation) bool { return op == Create || op == Update }

func (p *resourceQuota) Validate(ctx context.Context, a *Attributes) error {
	if a.Namespace == "" || a.Subresource != "" {
		return nil
	}
	for _, o := range p.objects.List(resourceQuotasGVR, a.Namespace) {
		q, ok := o.(*corev1.ResourceQuota)
		if !ok {
			continue
		}
		if err := p.charge(ctx, a, q); err != nil {
			return err
		}
	}
	return nil
}

// delta is what the request adds to what q limits: the object's use on
// create, what it grows by on update.
func delta(a *Attributes, q *corev1.ResourceQuota) corev1.ResourceList {
	gr := a.Resource.GroupResource()
	add := quota.Delta(q.Spec.Hard, gr, a.Object)
	if a.Operation != Update || a.OldObject == nil {
		return add
	}
	had := quota.Delta(q.Spec.Hard, gr, a.OldObject)
	out := corev1.ResourceList{}
	for name, n := range add {
		d := n.DeepCopy()
		if h, ok := had[name]; ok {
			d.Sub(h)
		}
		if d.Sign() > 0 {
			out[name] = d
		}
	}
	return out
}

// charge checks one quota and adds the request's use to it.
func (p *resourceQuota) charge(ctx context.Context, a *Attributes, q *corev1.ResourceQuota) error {
	forbid := func(msg string) error { return a.forbidden(errors.New(msg)) }
	if quota.Scoped(q.Spec) {
		// A scoped quota counts only the pods its scopes match.
		if pod, ok := a.Object.(*corev1.Pod); !ok || !quota.PodInScope(q.Spec, pod) {
			return nil
		}
	}
	if pod, ok := a.Object.(*corev1.Pod); ok && a.Operation == Create {
		if missing := quota.MissingRequests(q.Spec.Hard, pod); missing != "" {
			return forbid(fmt.Sprintf("failed quota: %s: must specify %s", q.Name, missing))
		}
	}
	d := delta(a, q)
	if len(d) == 0 {
		return nil
	}
	for name := range d {
		if _, counted := q.Status.Hard[name]; !counted {
			// A quota the controller has not counted yet (just created or
			// just raised) cannot vouch for anything: refuse until it has,
			// as upstream does for usage it does not know.
			return forbid(fmt.Sprintf("status unknown for quota: %s, resource: %s", q.Name, name))
		}
	}
	for attempt := 0; ; attempt++ {
		if msg := quota.Check(q.Name, q.Status, d); msg != "" {
			return forbid(msg)
		}
		if a.DryRun {
			return nil
		}
		rv := q.ResourceVersion
		err := p.objects.Update(ctx, resourceQuotasGVR, q.Namespace, q.Name, "status", func(cur runtime.Object) (runtime.Object, error) {
			have, ok := cur.(*corev1.ResourceQuota)
			if !ok || have.ResourceVersion != rv {
				return nil, apierrors.NewConflict(corev1.Resource("resourcequotas"), q.Name, errors.New("the quota changed"))
			}
			upd := have.DeepCopy()
			upd.Status.Used = quota.Add(have.Status.Used, d)
			return upd, nil
		})
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == quotaRetries {
			if apierrors.IsConflict(err) {
				return apierrors.NewConflict(corev1.Resource("resourcequotas"), q.Name, fmt.Errorf("quota usage changed while %s was admitted; retry", a.Name))
			}
			return err
		}
		fresh, err := p.objects.Read(ctx, resourceQuotasGVR, q.Namespace, q.Name)
		if apierrors.IsNotFound(err) {
			return nil // the quota is gone: nothing to charge
		}
		if err != nil {
			return err
		}
		q = fresh.(*corev1.ResourceQuota)
	}
}
