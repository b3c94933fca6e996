package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/admission"
	"github.com/skiff-sh/skiff/internal/storage"
)

// WriteOptions are the query options shared by create, update and patch.
type WriteOptions struct {
	DryRun       bool
	FieldManager string
	// Subresource is "" or "status" (scale, binding and finalize are
	// translated by their handlers).
	Subresource string
	// Applied marks a server-side apply, whose managed fields the field
	// manager has already computed.
	Applied bool
	// KeepManagedFields leaves field ownership as it was: pods/binding
	// writes the pod directly, as upstream's binding storage does, so the
	// scheduler owns no fields of the pods it binds.
	KeepManagedFields bool
}

// Finalizers the registry itself adds for the garbage collector.
const (
	FinalizerForeground = metav1.FinalizerDeleteDependents
	FinalizerOrphan     = metav1.FinalizerOrphanDependents
)

func (g *Registry) attrFunc(r *Resource) storage.AttrFunc {
	return func(obj runtime.Object) (labels.Set, fields.Set) {
		acc, err := meta.Accessor(obj)
		if err != nil {
			return nil, nil
		}
		f := fields.Set{"metadata.name": acc.GetName()}
		if r.Namespaced {
			f["metadata.namespace"] = acc.GetNamespace()
		}
		if r.Fields != nil {
			for k, v := range r.Fields(obj) {
				f[k] = v
			}
		}
		return labels.Set(acc.GetLabels()), f
	}
}

// randomSuffix is generateName's suffix: five characters from the alphabet
// upstream uses (no vowels, no confusable digits).
func randomSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}

// Create stores a new object in namespace ns.
func (g *Registry) Create(ctx context.Context, r *Resource, ns string, obj runtime.Object, o WriteOptions) (runtime.Object, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := g.setNamespace(r, acc, ns); err != nil {
		return nil, err
	}
	if acc.GetName() == "" && acc.GetGenerateName() != "" {
		acc.SetName(acc.GetGenerateName() + randomSuffix())
	}
	acc.SetUID(types.UID(uuid.NewString()))
	acc.SetCreationTimestamp(metav1.NewTime(g.Now().Truncate(1e9)))
	acc.SetDeletionTimestamp(nil)
	acc.SetDeletionGracePeriodSeconds(nil)
	acc.SetResourceVersion("")
	acc.SetSelfLink("")
	acc.SetGeneration(0)
	if r.Status && !r.StatusOnCreate {
		resetStatus(obj)
	}
	if hasSpec(obj) {
		acc.SetGeneration(1)
	}
	if r.Default != nil {
		r.Default(obj)
	}
	if err := g.admitCreate(ctx, r, obj, o); err != nil {
		return nil, err
	}
	fm := g.FieldManager(r, "")
	empty := r.New()
	if obj, err = fm.Update(empty, obj, managerName(o.FieldManager)); err != nil {
		g.release(r, obj)
		return nil, apierrors.NewInternalError(fmt.Errorf("managed fields: %w", err))
	}
	if o.DryRun {
		return obj, nil
	}
	stored, err := g.toStorage(r, obj)
	if err != nil {
		return nil, err
	}
	out, err := g.Store(r).Create(ctx, r.Key(acc.GetNamespace(), acc.GetName()), stored)
	if err != nil {
		g.release(r, obj)
		if apierrors.IsAlreadyExists(err) {
			return nil, apierrors.NewAlreadyExists(r.GroupResource(), acc.GetName())
		}
		return nil, err
	}
	return g.fromStorage(r, out)
}

func (g *Registry) release(r *Resource, obj runtime.Object) {
	if r.OnDeleted != nil && obj != nil {
		r.OnDeleted(obj)
	}
}

func managerName(m string) string {
	if m == "" {
		return "unknown"
	}
	return m
}

func (g *Registry) setNamespace(r *Resource, acc metav1.Object, ns string) error {
	if !r.Namespaced {
		acc.SetNamespace("")
		return nil
	}
	if acc.GetNamespace() == "" {
		acc.SetNamespace(ns)
	} else if acc.GetNamespace() != ns {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return nil
}

func (g *Registry) validate(ctx context.Context, r *Resource, obj, old runtime.Object) field.ErrorList {
	errs := validateMeta(r, obj, old)
	if old == nil {
		if r.Validate != nil {
			errs = append(errs, r.Validate(obj)...)
		}
		return errs
	}
	if r.ValidateUpdateWarning != nil {
		errs = append(errs, r.ValidateUpdateWarning(obj, old, func(msg string) { admission.Warn(ctx, msg) })...)
	} else if r.ValidateUpdate != nil {
		errs = append(errs, r.ValidateUpdate(obj, old)...)
	} else if r.Validate != nil {
		errs = append(errs, r.Validate(obj)...)
	}
	return errs
}

// Mutation computes the new object from the current one (nil when absent).
type Mutation func(cur runtime.Object) (runtime.Object, error)

// Update replaces (or, through mutate, patches) the object ns/name. When
// create is true a missing object is created (server-side apply).
func (g *Registry) Update(ctx context.Context, r *Resource, ns, name string, mutate Mutation, o WriteOptions, allowCreate bool) (runtime.Object, bool, error) {
	created := false
	fn := func(stored runtime.Object) (runtime.Object, error) {
		var cur runtime.Object
		if stored != nil {
			var err error
			if cur, err = g.fromStorage(r, stored); err != nil {
				return nil, err
			}
		}
		// A mutation sees nil only when it may create: callers need not
		// guard against an object deleted under them.
		if cur == nil && !allowCreate {
			return nil, apierrors.NewNotFound(r.GroupResource(), name)
		}
		obj, err := mutate(cur)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			created = true
			return g.prepareCreate(ctx, r, ns, obj, o)
		}
		created = false
		out, err := g.prepareUpdate(ctx, r, ns, name, obj, cur, o)
		if err != nil || out == nil {
			return out, err
		}
		return g.toStorage(r, out)
	}
	out, err := g.mutateStored(ctx, r, r.Key(ns, name), o.DryRun, fn)
	if err != nil {
		return nil, false, err
	}
	if out == nil {
		return nil, false, nil
	}
	res, err := g.fromStorage(r, out)
	return res, created, err
}

// prepareCreate runs the create path for an upsert inside an update.
func (g *Registry) prepareCreate(ctx context.Context, r *Resource, ns string, obj runtime.Object, o WriteOptions) (runtime.Object, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	if err := g.setNamespace(r, acc, ns); err != nil {
		return nil, err
	}
	acc.SetUID(types.UID(uuid.NewString()))
	acc.SetCreationTimestamp(metav1.NewTime(g.Now().Truncate(1e9)))
	acc.SetResourceVersion("")
	acc.SetGeneration(0)
	if o.Subresource == "" && r.Status && !r.StatusOnCreate {
		resetStatus(obj)
	}
	if hasSpec(obj) {
		acc.SetGeneration(1)
	}
	if r.Default != nil {
		r.Default(obj)
	}
	if err := g.admitCreate(ctx, r, obj, o); err != nil {
		return nil, err
	}
	return g.toStorage(r, obj)
}

func (g *Registry) prepareUpdate(ctx context.Context, r *Resource, ns, name string, obj, cur runtime.Object, o WriteOptions) (runtime.Object, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	old, _ := meta.Accessor(cur)
	if rv := acc.GetResourceVersion(); rv != "" && rv != old.GetResourceVersion() {
		return nil, apierrors.NewConflict(r.GroupResource(), name, errors.New(OptimisticLockErrorMsg))
	}
	if uid := acc.GetUID(); uid != "" && uid != old.GetUID() {
		return nil, apierrors.NewConflict(r.GroupResource(), name, fmt.Errorf("Precondition failed: UID in precondition: %s, UID in object meta: %s", uid, old.GetUID()))
	}
	if r.Namespaced {
		acc.SetNamespace(old.GetNamespace())
	}
	acc.SetName(old.GetName())
	acc.SetUID(old.GetUID())
	acc.SetCreationTimestamp(old.GetCreationTimestamp())
	acc.SetDeletionTimestamp(old.GetDeletionTimestamp())
	acc.SetDeletionGracePeriodSeconds(old.GetDeletionGracePeriodSeconds())
	acc.SetGeneration(old.GetGeneration())
	acc.SetResourceVersion(old.GetResourceVersion())
	acc.SetSelfLink("")
	part, isPart := r.Parts[o.Subresource]
	switch {
	case isPart:
		// The part's function validates what it takes; the rest is
		// the stored object's, so it needs no validation again.
		next, errs := part.Take(obj, cur)
		if len(errs) > 0 {
			return nil, apierrors.NewInvalid(r.GVK().GroupKind(), name, errs)
		}
		obj = next
		acc, _ = meta.Accessor(obj)
	case o.Subresource == "status":
		keepSpec(obj, cur)
		acc.SetLabels(old.GetLabels())
		acc.SetFinalizers(old.GetFinalizers())
		acc.SetOwnerReferences(old.GetOwnerReferences())
	case o.Subresource == "binding":
		// The binding sets spec.nodeName and the PodScheduled condition.
	case r.Status:
		keepStatus(obj, cur)
	}
	// A binding only places the pod: as upstream, its generation stays
	// (a new pod is generation 1 until its spec really changes).
	if o.Subresource != "binding" && specChanged(obj, cur) {
		acc.SetGeneration(old.GetGeneration() + 1)
	}
	if r.Default != nil {
		r.Default(obj)
	}
	attrs := g.attributes(ctx, r, admission.Update, obj, cur, o)
	if err := g.Admission.Admit(ctx, attrs); err != nil {
		return nil, err
	}
	g.redefault(r, obj, attrs)
	if old.GetDeletionTimestamp() != nil {
		// No new finalizers may be added to an object being deleted.
		for _, f := range acc.GetFinalizers() {
			if !slices.Contains(old.GetFinalizers(), f) {
				return nil, apierrors.NewInvalid(r.GVK().GroupKind(), name, field.ErrorList{field.Forbidden(field.NewPath("metadata", "finalizers"), fmt.Sprintf("no new finalizers can be added if the object is being deleted, found new finalizers %q", f))})
			}
		}
	}
	if !isPart {
		if errs := g.validate(ctx, r, obj, cur); len(errs) > 0 {
			return nil, apierrors.NewInvalid(r.GVK().GroupKind(), name, errs)
		}
	}
	if r.OnUpdate != nil {
		if err := r.OnUpdate(obj, cur, o.DryRun); err != nil {
			return nil, err
		}
	}
	if r.Guard != nil {
		if err := r.Guard(ctx, g, obj, cur); err != nil {
			g.noteRefusal(ctx, r, err)
			return nil, err
		}
	}
	if err := g.Admission.Validate(ctx, attrs); err != nil {
		return nil, err
	}
	out := obj
	if !o.Applied && !o.KeepManagedFields {
		if out, err = g.FieldManager(r, managerSub(o.Subresource)).Update(cur, obj, managerName(o.FieldManager)); err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("managed fields: %w", err))
		}
	}
	// The last finalizer gone from an object being deleted: it goes now.
	if oa, _ := meta.Accessor(out); oa.GetDeletionTimestamp() != nil && len(oa.GetFinalizers()) == 0 && !pendingSpecFinalizers(out) {
		if oa.GetDeletionGracePeriodSeconds() == nil || *oa.GetDeletionGracePeriodSeconds() == 0 {
			g.release(r, out)
			return nil, nil
		}
	}
	return out, nil
}

// OptimisticLockErrorMsg is upstream's message for a stale resourceVersion.
const OptimisticLockErrorMsg = "the object has been modified; please apply your changes to the latest version and try again"

// mutateStored runs fn against the stored object, writing the result unless
// dryRun. A nil result deletes the object.
func (g *Registry) mutateStored(ctx context.Context, r *Resource, key string, dryRun bool, fn func(runtime.Object) (runtime.Object, error)) (runtime.Object, error) {
	st := g.Store(r)
	if !dryRun {
		return st.GuaranteedUpdate(ctx, key, storage.UpdateFunc(fn))
	}
	cur, err := st.Get(ctx, key)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	if apierrors.IsNotFound(err) {
		cur = nil
	}
	out, err := fn(cur)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return cur, nil
	}
	return out, nil
}

// Get reads one object, from storage (a consistent read).
func (g *Registry) Get(ctx context.Context, r *Resource, ns, name string) (runtime.Object, error) {
	obj, err := g.Store(r).Get(ctx, r.Key(ns, name))
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, apierrors.NewNotFound(r.GroupResource(), name)
		}
		return nil, err
	}
	return g.fromStorage(r, obj)
}

func (g *Registry) toStorage(r *Resource, obj runtime.Object) (runtime.Object, error) {
	if r.ToStorage == nil {
		return obj, nil
	}
	return r.ToStorage(obj)
}

func (g *Registry) fromStorage(r *Resource, obj runtime.Object) (runtime.Object, error) {
	if r.FromStorage == nil {
		return obj, nil
	}
	return r.FromStorage(obj)
}

// FromStorage converts a stored object to r's version.
func (g *Registry) FromStorage(r *Resource, obj runtime.Object) (runtime.Object, error) {
	return g.fromStorage(r, obj)
}

// FromStorageBatch converts stored objects to r's version, in one batch
// where r's conversion can (a conversion webhook), else one by one.
func (g *Registry) FromStorageBatch(r *Resource, objs []runtime.Object) ([]runtime.Object, error) {
	if r.FromStorageBatch != nil {
		return r.FromStorageBatch(objs)
	}
	out := make([]runtime.Object, len(objs))
	for i, obj := range objs {
		conv, err := g.fromStorage(r, obj)
		if err != nil {
			return nil, err
		}
		out[i] = conv
	}
	return out, nil
}

// ConvertsInBatches reports whether r's objects convert better many at once.
func (g *Registry) ConvertsInBatches(r *Resource) bool { return r.FromStorageBatch != nil }

// managerSub is the field-manager subresource a write is tracked under.
func managerSub(sub string) string {
	if sub == "status" {
		return "status"
	}
	return ""
}
