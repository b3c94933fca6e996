package registry

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	crdschema "github.com/skiff-sh/skiff/internal/crd/schema"
	"github.com/skiff-sh/skiff/internal/storage"
)

// customState is the registry's view of the custom resources: an
// immutable set, swapped whole under mu when a definition changes, so the
// request path reads it without a lock.
type customState struct {
	mu  sync.Mutex
	set atomic.Pointer[customSet]
	// generation counts changes, for the API server's discovery and
	// OpenAPI documents to know when to rebuild.
	generation atomic.Uint64
	// ctx runs the custom resources' watch caches (set by RunCustom).
	ctx context.Context
}

type customSet struct {
	list    []*Resource
	byGVR   map[schema.GroupVersionResource]*Resource
	entries map[string]*customEntry // by definition name
}

// customEntry is one definition's storage: one store and one watch cache
// for all its versions, kept while the definition is served.
type customEntry struct {
	store       *storage.Store
	cache       *storage.Cache
	stop        context.CancelFunc
	resources   []*Resource
	terminating atomic.Bool
	// storageRes is the storage version's resource, whose selectable
	// fields the cache indexes.
	storageRes atomic.Pointer[Resource]
}

// RunCustom lets custom resources be served; their caches run until ctx
// ends.
func (g *Registry) RunCustom(ctx context.Context) {
	g.custom.mu.Lock()
	defer g.custom.mu.Unlock()
	g.custom.ctx = ctx
}

// CustomGeneration changes whenever the set of custom resources does.
func (g *Registry) CustomGeneration() uint64 { return g.custom.generation.Load() }

// CustomCacheReady reports whether the definition's objects are loaded.
func (g *Registry) CustomCacheReady(name string) bool {
	set := g.custom.set.Load()
	if set == nil {
		return false
	}
	e, ok := set.entries[name]
	return ok && e.cache.Ready()
}

// ServeCustom serves (or serves anew, after a change) the resources of an
// established definition; terminating marks it as being deleted (no
// creates).
func (g *Registry) ServeCustom(c *apiextensionsv1.CustomResourceDefinition, terminating bool) error {
	return g.serveCustom(c, terminating, apivalidation.NameIsDNSSubdomain)
}

// Builtin is what a kind skiff defines by a definition of its own
// (APIService) has besides its schema.
type Builtin struct {
	// NameFn checks object names.
	NameFn func(string, bool) []string
	// Validate checks an object beyond its schema (on create and update).
	Validate func(obj runtime.Object) field.ErrorList
	// PatchStruct carries the kind's strategic merge patch directives.
	PatchStruct any
	// Proto is the kind's protobuf form.
	Proto ProtoCodec
}

// ServeBuiltin serves a kind skiff defines by a definition of its own
// (APIService).
func (g *Registry) ServeBuiltin(c *apiextensionsv1.CustomResourceDefinition, b Builtin) error {
	return g.serveCustom(c, false, b.NameFn, func(r *Resource) {
		r.Custom.PatchStruct, r.Custom.Proto = b.PatchStruct, b.Proto
		if b.Validate == nil {
			return
		}
		validate, validateUpdate := r.Validate, r.ValidateUpdateWarning
		r.Validate = func(obj runtime.Object) field.ErrorList { return append(validate(obj), b.Validate(obj)...) }
		r.ValidateUpdateWarning = func(obj, old runtime.Object, warn func(string)) field.ErrorList {
			return append(validateUpdate(obj, old, warn), b.Validate(obj)...)
		}
	})
}

func (g *Registry) serveCustom(c *apiextensionsv1.CustomResourceDefinition, terminating bool, nameFn func(string, bool) []string, adjust ...func(*Resource)) error {
	rs, err := customResources(c, nameFn)
	if err != nil {
		return err
	}
	for _, r := range rs {
		for _, f := range adjust {
			f(r)
		}
	}
	g.withConversionWebhook(c, rs)
	for _, r := range rs {
		if r.Custom.fields, err = g.customFieldManagers(r); err != nil {
			return err
		}
	}
	g.custom.mu.Lock()
	defer g.custom.mu.Unlock()
	if g.custom.ctx == nil {
		return fmt.Errorf("custom resources are not running")
	}
	old := g.custom.set.Load()
	next := &customSet{byGVR: map[schema.GroupVersionResource]*Resource{}, entries: map[string]*customEntry{}}
	if old != nil {
		maps.Copy(next.entries, old.entries)
	}
	e, ok := next.entries[c.Name]
	if !ok {
		e = &customEntry{}
		e.store = storage.NewStore(g.client, customCodec{}, "/registry/"+c.Spec.Group+"/"+c.Status.AcceptedNames.Plural+"/", schema.GroupResource{Group: c.Spec.Group, Resource: c.Status.AcceptedNames.Plural})
		e.cache = storage.NewCache(e.store, g.customAttrs(e), g.Log)
		e.cache.OwnStream() // custom resources come and go: see OwnStream
		ctx, cancel := context.WithCancel(g.custom.ctx)
		e.stop = cancel
		go e.cache.Run(ctx)
		next.entries[c.Name] = e
	}
	e.terminating.Store(terminating)
	for _, r := range rs {
		r.Custom.entry = e
		if r.Custom.StorageVersion == r.GVR.Version {
			e.storageRes.Store(r)
		}
	}
	e.resources = rs
	next.rebuild()
	g.custom.set.Store(next)
	g.custom.generation.Add(1)
	return nil
}

// StopCustom stops serving a definition's resources and ends their watches.
func (g *Registry) StopCustom(name string) {
	g.custom.mu.Lock()
	defer g.custom.mu.Unlock()
	old := g.custom.set.Load()
	if old == nil {
		return
	}
	e, ok := old.entries[name]
	if !ok {
		return
	}
	e.stop()
	next := &customSet{byGVR: map[schema.GroupVersionResource]*Resource{}, entries: maps.Clone(old.entries)}
	delete(next.entries, name)
	next.rebuild()
	g.custom.set.Store(next)
	g.custom.generation.Add(1)
}

// CustomNames lists the definitions being served.
func (g *Registry) CustomNames() []string {
	set := g.custom.set.Load()
	if set == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(set.entries))
}

func (s *customSet) rebuild() {
	s.list = nil
	for _, e := range s.entries {
		for _, r := range e.resources {
			s.list = append(s.list, r)
			s.byGVR[r.GVR] = r
		}
	}
	slices.SortFunc(s.list, func(a, b *Resource) int {
		return strings.Compare(a.GVR.Group+"/"+a.GVR.Version+"/"+a.GVR.Resource, b.GVR.Group+"/"+b.GVR.Version+"/"+b.GVR.Resource)
	})
}

// customAttrs indexes a custom object's labels and fields by the storage
// version's selectable fields, read at each event (they may change).
func (g *Registry) customAttrs(e *customEntry) storage.AttrFunc {
	return func(obj runtime.Object) (labels.Set, fields.Set) {
		r := e.storageRes.Load()
		if r == nil {
			return nil, nil
		}
		return g.attrFunc(r)(obj)
	}
}

// customFieldManagers tracks managed fields of a custom resource by its
// schema (list and map markers included), for the resource and its status.
func (g *Registry) customFieldManagers(r *Resource) (map[string]Fields, error) {
	tc, err := customTypeConverter(r)
	if err != nil {
		return nil, fmt.Errorf("field manager for %s: %w", r.GVK(), err)
	}
	r.applyMerge = applyMerger(tc, r.GVK())
	out := map[string]Fields{}
	for _, sub := range []string{"", "status"} {
		if sub == "status" && !r.Status {
			continue
		}
		fm, err := managedfields.NewDefaultCRDFieldManager(plainTypes{tc}, plainConverter{customConverter{}}, customDefaulter{r}, customCreater{}, r.GVK(), r.GVK().GroupVersion(), sub, customResetFields(r, sub))
		if err != nil {
			return nil, fmt.Errorf("field manager for %s: %w", r.GVK(), err)
		}
		out[sub] = Fields{fm: fm, pool: g.warm}
	}
	return out, nil
}

func customResetFields(r *Resource, sub string) map[fieldpath.APIVersion]fieldpath.Filter {
	return resetFields(r, sub)
}

// customTypeConverter is structured-merge-diff's view of the schema: the
// root gains the object metadata's schema and its kind.
func customTypeConverter(r *Resource) (managedfields.TypeConverter, error) {
	if r.Custom.Schema == nil {
		return managedfields.NewDeducedTypeConverter(), nil
	}
	root, err := crdschema.ToOpenAPI(r.Custom.Schema)
	if err != nil {
		return nil, err
	}
	if root.Properties == nil {
		root.Properties = map[string]spec.Schema{}
	}
	root.Properties["metadata"] = objectMetaSchema()
	for _, k := range []string{"apiVersion", "kind"} {
		if _, ok := root.Properties[k]; !ok {
			root.Properties[k] = *spec.StringProperty()
		}
	}
	gvk := r.GVK()
	root.AddExtension("x-kubernetes-group-version-kind", []any{map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}})
	preserve := r.Custom.Schema.XPreserveUnknownFields != nil && *r.Custom.Schema.XPreserveUnknownFields
	return managedfields.NewTypeConverter(map[string]*spec.Schema{gvk.Group + "." + gvk.Version + "." + gvk.Kind: root}, preserve)
}

// objectMetaSchema is the part of ObjectMeta's schema that merging needs:
// labels and annotations merge by key, finalizers as a set, owner
// references by uid.
func objectMetaSchema() spec.Schema {
	str := *spec.StringProperty()
	strMap := spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}, AdditionalProperties: &spec.SchemaOrBool{Allows: true, Schema: &str}}}
	owner := spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}, Properties: map[string]spec.Schema{
		"apiVersion": str, "kind": str, "name": str, "uid": str, "controller": *spec.BooleanProperty(), "blockOwnerDeletion": *spec.BooleanProperty(),
	}}}
	owners := *spec.ArrayProperty(&owner)
	owners.AddExtension("x-kubernetes-list-type", "map")
	owners.AddExtension("x-kubernetes-list-map-keys", []any{"uid"})
	finalizers := *spec.ArrayProperty(&str)
	finalizers.AddExtension("x-kubernetes-list-type", "set")
	anyObject := spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}}}
	anyObject.AddExtension("x-kubernetes-preserve-unknown-fields", true)
	return spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}, Properties: map[string]spec.Schema{
		"name": str, "generateName": str, "namespace": str, "selfLink": str, "uid": str, "resourceVersion": str,
		"generation": *spec.Int64Property(), "creationTimestamp": str, "deletionTimestamp": str,
		"deletionGracePeriodSeconds": *spec.Int64Property(), "labels": strMap, "annotations": strMap,
		"ownerReferences": owners, "finalizers": finalizers, "managedFields": *spec.ArrayProperty(&anyObject),
	}}}
}

// customConverter converts custom objects between versions of their kind
// (the None strategy) and to and from their unstructured form.
type customConverter struct{}

func (customConverter) Convert(in, out, _ any) error {
	u, ok := in.(*unstructured.Unstructured)
	o, ok2 := out.(*unstructured.Unstructured)
	if !ok || !ok2 {
		return fmt.Errorf("cannot convert %T to %T", in, out)
	}
	o.Object = runtime.DeepCopyJSON(u.Object)
	return nil
}

func (customConverter) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("cannot convert %T", in)
	}
	target, ok := gv.KindForGroupVersionKinds([]schema.GroupVersionKind{u.GroupVersionKind()})
	if !ok {
		return nil, fmt.Errorf("no version of %s for %v", u.GroupVersionKind(), gv)
	}
	if target == u.GroupVersionKind() {
		// The field manager only reads an object of its own version.
		return u, nil
	}
	return withVersion(u, target), nil
}

func (customConverter) ConvertFieldLabel(_ schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

// customDefaulter applies the schema's defaults to an applied object.
type customDefaulter struct{ r *Resource }

func (d customDefaulter) Default(obj runtime.Object) {
	if d.r.Default != nil {
		d.r.Default(obj)
	}
}

// customCreater makes empty custom objects of a kind.
type customCreater struct{}

func (customCreater) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(gvk)
	return u, nil
}
