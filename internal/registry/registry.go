package registry

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	goruntime "runtime"
	"slices"
	"time"

	"github.com/skiff-sh/skiff/internal/warm"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/skiff-sh/skiff/internal/admission"
	"github.com/skiff-sh/skiff/internal/admission/webhook"
	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/encryption"
)

// Registry holds every resource and its storage, and runs the generic
// object lifecycle over them.
type Registry struct {
	Scheme *runtime.Scheme
	Codec  storage.Codec
	client *clientv3.Client
	Now    func() time.Time
	Log    *slog.Logger

	resources []*Resource
	byGVR     map[schema.GroupVersionResource]*Resource
	stores    map[string]*storage.Store
	caches    map[string]*storage.Cache
	managers  map[managerKey]Fields
	warm      *warm.Pool
	types     managedfields.TypeConverter
	// Tokens issues ServiceAccount tokens and reviews tokens; nil refuses
	// both (the API server sets it).
	Tokens *Tokens
	// Authz answers the review APIs and checks RBAC writes for
	// escalation; nil refuses both (the API server sets it).
	Authz Authorization
	// Admission is the admission chain every create and update passes;
	// nil admits everything (the API server sets it).
	Admission *admission.Chain
	// Webhooks calls conversion webhooks (the API server sets it).
	Webhooks *webhook.Client
	// Allocators for Service ClusterIPs and NodePorts.
	IPs   *Allocator
	Ports *Allocator

	serviceCIDR string

	// custom holds the resources CustomResourceDefinitions define,
	// replaced whole on each change (see custom.go).
	custom customState
}

type managerKey struct {
	gvk         schema.GroupVersionKind
	subresource string
}

// New builds the registry over an etcd client. Caches must be started with
// Run before the registry serves reads.
func New(client *clientv3.Client, scheme *runtime.Scheme, codec storage.Codec, alloc AllocatorConfig, log *slog.Logger) (*Registry, error) {
	g := &Registry{
		Scheme: scheme, Codec: codec, Now: time.Now, Log: log, client: client,
		byGVR:    map[schema.GroupVersionResource]*Resource{},
		stores:   map[string]*storage.Store{},
		caches:   map[string]*storage.Cache{},
		managers: map[managerKey]Fields{},
		warm:     warm.New(goruntime.GOMAXPROCS(0)),
		types:    newTypeConverter(scheme),
	}
	for _, r := range Catalog() {
		g.resources = append(g.resources, r)
		g.byGVR[r.GVR] = r
		if _, ok := g.stores[r.StoragePrefix]; ok || r.Virtual {
			continue
		}
		st := storage.NewStore(client, codec, "/registry/"+r.StoragePrefix+"/", r.GroupResource())
		g.stores[r.StoragePrefix] = st
		g.caches[r.StoragePrefix] = storage.NewCache(st, g.attrFunc(r), log)
	}
	for _, r := range g.resources {
		if r.Virtual {
			continue
		}
		r.applyMerge = applyMerger(g.types, r.GVK())
		for _, sub := range []string{"", "status"} {
			if sub == "status" && !r.Status {
				continue
			}
			fm, err := managedfields.NewDefaultFieldManager(plainTypes{g.types}, plainConverter{versionConverter{scheme}}, defaulter{g}, scheme, r.GVK(), r.GVK().GroupVersion(), sub, resetFields(r, sub))
			if err != nil {
				return nil, fmt.Errorf("field manager for %s: %w", r.GVK(), err)
			}
			g.managers[managerKey{r.GVK(), sub}] = Fields{fm: fm, pool: g.warm}
		}
	}
	var err error
	if g.IPs, err = NewIPAllocator(g.Store(g.byGVR[networkingv1.SchemeGroupVersion.WithResource("ipaddresses")]), alloc.ServiceCIDR, func() time.Time { return g.Now() }); err != nil {
		return nil, err
	}
	g.Ports = NewPortAllocator(client, alloc.NodePortMin, alloc.NodePortMax)
	g.serviceCIDR = alloc.ServiceCIDR
	g.wireServiceAllocation(g.byGVR[corev1.SchemeGroupVersion.WithResource("services")])
	return g, nil
}

// resetFields are the fields an endpoint does not own: the main resource
// does not set status, the status subresource sets nothing but status.
func resetFields(r *Resource, sub string) map[fieldpath.APIVersion]fieldpath.Filter {
	if !r.Status {
		return nil
	}
	v := fieldpath.APIVersion(r.GVK().GroupVersion().String())
	if sub == "status" {
		return map[fieldpath.APIVersion]fieldpath.Filter{v: fieldpath.NewExcludeSetFilter(fieldpath.NewSet(fieldpath.MakePathOrDie("spec"), fieldpath.MakePathOrDie("metadata", "labels")))}
	}
	return map[fieldpath.APIVersion]fieldpath.Filter{v: fieldpath.NewExcludeSetFilter(fieldpath.NewSet(fieldpath.MakePathOrDie("status")))}
}

// defaulter adapts the registry's per-resource defaulting for managedfields.
type defaulter struct{ g *Registry }

// The field manager hands an apply's result over as Unstructured; the
// resource's defaulting works on its Go type, so such an object is
// converted to it, defaulted and converted back in place.
func (d defaulter) Default(obj runtime.Object) {
	gvk := obj.GetObjectKind().GroupVersionKind()
	for _, r := range d.g.resources {
		if r.GVK() != gvk || r.Default == nil {
			continue
		}
		u, ok := obj.(runtime.Unstructured)
		if !ok {
			r.Default(obj)
			return
		}
		typed := r.New()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), typed); err != nil {
			// Left undefaulted: the registry converts the result again
			// and reports the same error to the client there.
			return
		}
		r.Default(typed)
		content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
		if err != nil {
			return
		}
		u.SetUnstructuredContent(content)
		obj.GetObjectKind().SetGroupVersionKind(gvk)
		return
	}
}

// Resources lists every resource: the built-in ones in catalog order, then
// the custom ones by group, version and name.
func (g *Registry) Resources() []*Resource {
	set := g.custom.set.Load()
	if set == nil || len(set.list) == 0 {
		return g.resources
	}
	out := make([]*Resource, 0, len(g.resources)+len(set.list))
	return append(append(out, g.resources...), set.list...)
}

// Lookup finds a resource by group, version and plural name.
func (g *Registry) Lookup(gvr schema.GroupVersionResource) *Resource {
	if r, ok := g.byGVR[gvr]; ok {
		return r
	}
	if set := g.custom.set.Load(); set != nil {
		return set.byGVR[gvr]
	}
	return nil
}

// Cache is the watch cache behind r.
func (g *Registry) Cache(r *Resource) *storage.Cache {
	if r.Custom != nil {
		return r.Custom.entry.cache
	}
	return g.caches[r.StoragePrefix]
}

// Store is the etcd store behind r.
func (g *Registry) Store(r *Resource) *storage.Store {
	if r.Custom != nil {
		return r.Custom.entry.store
	}
	return g.stores[r.StoragePrefix]
}

// Caches lists every cache once.
func (g *Registry) Caches() []*storage.Cache {
	keys := slices.Sorted(maps.Keys(g.caches))
	out := make([]*storage.Cache, 0, len(keys))
	for _, k := range keys {
		out = append(out, g.caches[k])
	}
	return out
}

// FieldManager is the managed-fields tracker of r's endpoint subresource.
func (g *Registry) FieldManager(r *Resource, sub string) Fields {
	if r.Custom != nil {
		return r.Custom.fields[sub]
	}
	return g.managers[managerKey{r.GVK(), sub}]
}

// SetEncryption seals the values of the resources cfg names (nil: none);
// call it before the caches run.
func (g *Registry) SetEncryption(cfg *encryption.Config) error {
	for _, st := range g.stores {
		t, err := cfg.For(st.Resource())
		if err != nil {
			return fmt.Errorf("encryption of %s: %w", st.Resource(), err)
		}
		if t != nil {
			st.SetTransformer(t)
		}
	}
	return nil
}

// Rewrite seals again every object of gr whose value an older key or
// provider wrote (see storage.Store.Rewrite).
func (g *Registry) Rewrite(ctx context.Context, gr schema.GroupResource) (int, error) {
	for _, st := range g.stores {
		if st.Resource() == gr {
			return st.Rewrite(ctx)
		}
	}
	return 0, fmt.Errorf("no resource %s", gr)
}
