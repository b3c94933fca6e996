// Package registry describes every built-in resource: its types, storage
// prefix, defaulting, validation, spec/status split, selectable fields and
// table columns, and the generic object lifecycle (create, update, delete)
// that the API server drives.
package registry

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is one REST resource in one group-version.
type Resource struct {
	GVR          schema.GroupVersionResource
	Kind         string
	SingularName string
	Namespaced   bool
	ShortNames   []string
	Categories   []string
	// StoragePrefix is the etcd key prefix under /registry/ (upstream's
	// names: "minions" for nodes, "services/specs" for services).
	StoragePrefix string
	// Subresources this resource serves.
	Status bool
	// Actions are subresources whose body is a kind of its own (action.go),
	// by name; "" is the resource itself (the create-only bindings).
	Actions map[string]*Action
	// StatusOnCreate keeps the status a create sends (upstream does so for
	// Nodes: a kubelet registers with its capacity and conditions).
	StatusOnCreate bool

	New     func() runtime.Object
	NewList func() runtime.Object

	// Strategy hooks; any may be nil.
	Default        func(obj runtime.Object)
	Validate       func(obj runtime.Object) field.ErrorList
	ValidateUpdate func(obj, old runtime.Object) field.ErrorList
	// ValidateUpdateWarning, when set, replaces ValidateUpdate for a kind
	// whose update validation also warns the client (custom resources:
	// ratcheted CEL rules).
	ValidateUpdateWarning func(obj, old runtime.Object, warn func(string)) field.ErrorList

	// FromStorageBatch, when set, converts many stored objects at once (a
	// conversion webhook's one call per list); see Registry.FromStorageBatch.
	FromStorageBatch func(objs []runtime.Object) ([]runtime.Object, error)

	// applyMerge merges an apply configuration into an object of the kind
	// (set with its field managers; see applyMerger).
	applyMerge func(obj, cfg map[string]any) (map[string]any, error)
	// NameFn validates metadata.name ("" means DNS subdomain).
	NameFn func(name string, prefix bool) []string
	// Fields are the selectable fields beyond metadata.name/namespace.
	Fields func(obj runtime.Object) fields.Set
	// Columns and Row build the Table form.
	Columns []metav1.TableColumnDefinition
	Row     func(obj runtime.Object, wide bool) []any
	// OnCreate runs after defaulting and before validation, e.g. to
	// allocate a Service's ClusterIP. It may return an API error.
	OnCreate func(ctx context.Context, obj runtime.Object, dryRun bool) error
	// OnDelete runs after the object is removed from storage.
	OnDeleted func(obj runtime.Object)
	// OnUpdate runs after defaulting on an update (e.g. allocations of a
	// Service whose type changed).
	OnUpdate func(obj, old runtime.Object, dryRun bool) error
	// GracefulDelete decides a pod's grace period: (seconds, graceful).
	GracefulDelete func(obj runtime.Object, requested *int64) (int64, bool)
	// Storage conversion for a resource that shares another version's
	// storage (autoscaling/v1 on v2, events.k8s.io/v1 on core/v1).
	ToStorage   func(obj runtime.Object) (runtime.Object, error)
	FromStorage func(obj runtime.Object) (runtime.Object, error)
	// StorageGVK is the kind stored when ToStorage is set.
	StorageGVK schema.GroupVersionKind
	// FieldLabels maps this version's selectable fields to the stored
	// version's, for a resource on another version's storage.
	FieldLabels map[string]string
	// Parts are subresources that each write one part of the object
	// (pods/ephemeralcontainers, pods/resize, namespaces/finalize,
	// certificatesigningrequests/approval), by name.
	Parts map[string]Part
	// Guard refuses a create (old nil) or update by who asks, after
	// validation: RBAC's escalation prevention.
	Guard func(ctx context.Context, g *Registry, obj, old runtime.Object) error
	// DeleteFinalizers are added when an object's deletion begins, holding
	// it until their owners are done (a CRD's objects are removed first).
	DeleteFinalizers []string
	// Verbs overrides the default verb list (for create-only resources).
	Verbs []string
	// Virtual resources are computed, never stored (the review APIs):
	// they have no etcd prefix and no cache.
	Virtual bool
	// Custom is set for a resource a CustomResourceDefinition defines
	// (served as JSON only, stored as JSON, added and removed at run time).
	Custom *Custom
}

// GVK is the resource's kind in its group-version.
func (r *Resource) GVK() schema.GroupVersionKind { return r.GVR.GroupVersion().WithKind(r.Kind) }

// GroupResource identifies the resource in errors.
func (r *Resource) GroupResource() schema.GroupResource { return r.GVR.GroupResource() }

// VerbList is what discovery advertises.
func (r *Resource) VerbList() []string {
	if r.Verbs != nil {
		return r.Verbs
	}
	return []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
}

// Key is the storage key of a name in a namespace, relative to the prefix.
func (r *Resource) Key(namespace, name string) string {
	if r.Namespaced {
		return namespace + "/" + name
	}
	return name
}

// Resource is the plural resource name.
func (r *Resource) Resource() string { return r.GVR.Resource }
