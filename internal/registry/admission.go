package registry

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/admission"
	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/storage"
)

// admitCreate takes a new object, defaulted, through admission as upstream
// orders it: the mutating plugins, the resource's own validation and
// checks, then the validating plugins (ResourceQuota last, charging what
// will be stored).
func (g *Registry) admitCreate(ctx context.Context, r *Resource, obj runtime.Object, o WriteOptions) error {
	acc, _ := meta.Accessor(obj)
	attrs := g.attributes(ctx, r, admission.Create, obj, nil, o)
	if err := g.Admission.Admit(ctx, attrs); err != nil {
		return err
	}
	g.redefault(r, obj, attrs)
	if errs := g.validate(ctx, r, obj, nil); len(errs) > 0 {
		return apierrors.NewInvalid(r.GVK().GroupKind(), acc.GetName(), errs)
	}
	if r.OnCreate != nil {
		if err := r.OnCreate(ctx, obj, o.DryRun); err != nil {
			return err
		}
	}
	if r.Guard != nil {
		if err := r.Guard(ctx, g, obj, nil); err != nil {
			g.noteRefusal(ctx, r, err)
			return err
		}
	}
	return g.Admission.Validate(ctx, attrs)
}

// redefault applies the resource's defaults (and, for a custom resource,
// its pruning) again to an object a webhook changed, as upstream decodes a
// patched object with defaulting.
func (g *Registry) redefault(r *Resource, obj runtime.Object, attrs *admission.Attributes) {
	if attrs.Mutated && r.Default != nil {
		r.Default(obj)
	}
}

// noteRefusal logs a guard's refusal of one of skiff's own components, as
// the API server logs an authorization refusal (see authz.Component).
func (g *Registry) noteRefusal(ctx context.Context, r *Resource, err error) {
	if u, ok := auth.UserFrom(ctx); ok && apierrors.IsForbidden(err) && authz.Component(u) && g.Log != nil {
		g.Log.Warn(authz.ComponentRefused, "user", u.Name, "resource", r.GVR.Resource, "err", err)
	}
}

func (g *Registry) attributes(ctx context.Context, r *Resource, op admission.Operation, obj, old runtime.Object, o WriteOptions) *admission.Attributes {
	acc, _ := meta.Accessor(obj)
	u, _ := auth.UserFrom(ctx)
	return &admission.Attributes{Operation: op, Resource: r.GVR, Kind: r.GVK(), Subresource: o.Subresource,
		Namespace: acc.GetNamespace(), Name: acc.GetName(), Object: obj, OldObject: old, DryRun: o.DryRun, User: u, ApplyMerge: r.applyMerge}
}

// AdmissionObjects is what admission plugins read and write through: the
// registry's caches, and etcd where the cache has not caught up.
func (g *Registry) AdmissionObjects() admission.Objects { return admissionObjects{g} }

type admissionObjects struct{ g *Registry }

func (a admissionObjects) resource(gvr schema.GroupVersionResource) (*Resource, error) {
	r := a.g.Lookup(gvr)
	if r == nil {
		return nil, fmt.Errorf("admission: no resource %s", gvr)
	}
	return r, nil
}

func (a admissionObjects) Get(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) (runtime.Object, error) {
	r, err := a.resource(gvr)
	if err != nil {
		return nil, err
	}
	if o := a.g.Cache(r).Get(r.Key(ns, name)); o != nil {
		return o.Obj, nil
	}
	// The cache may lag an object created a moment ago.
	return a.g.Get(ctx, r, ns, name)
}

func (a admissionObjects) Read(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) (runtime.Object, error) {
	r, err := a.resource(gvr)
	if err != nil {
		return nil, err
	}
	return a.g.Get(ctx, r, ns, name)
}

func (a admissionObjects) List(gvr schema.GroupVersionResource, ns string) []runtime.Object {
	r := a.g.Lookup(gvr)
	if r == nil {
		return nil
	}
	f := storage.Filter{}
	if ns != "" {
		f.KeyPrefix = ns + "/"
	}
	objs, _ := a.g.Cache(r).Snapshot(f)
	out := make([]runtime.Object, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.Obj)
	}
	return out
}

func (a admissionObjects) Update(ctx context.Context, gvr schema.GroupVersionResource, ns, name, subresource string, fn func(runtime.Object) (runtime.Object, error)) error {
	r, err := a.resource(gvr)
	if err != nil {
		return err
	}
	_, _, err = a.g.Update(ctx, r, ns, name, fn, WriteOptions{Subresource: subresource}, false)
	return err
}

func (a admissionObjects) ResourceFor(gvk schema.GroupVersionKind) (schema.GroupVersionResource, bool, bool) {
	for _, r := range a.g.Resources() {
		if r.GVK() == gvk && !r.Virtual {
			return r.GVR, r.Namespaced, true
		}
	}
	return schema.GroupVersionResource{}, false, false
}

// AdmitConnect runs the validating plugins over a CONNECT request to a
// pod's subresource (exec, attach), the options object as the object.
func (g *Registry) AdmitConnect(ctx context.Context, r *Resource, pod metav1.Object, sub string, opts runtime.Object) error {
	u, _ := auth.UserFrom(ctx)
	attrs := &admission.Attributes{Operation: admission.Connect, Resource: r.GVR, Subresource: sub, Kind: opts.GetObjectKind().GroupVersionKind(),
		Namespace: pod.GetNamespace(), Name: pod.GetName(), Object: opts, User: u}
	return g.Admission.Validate(ctx, attrs)
}
