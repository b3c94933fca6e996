// Package admission is the API server's admission chain: plugins that see
// every create and update after authorization and before storage, in
// upstream's shape. Mutating plugins (Admit) run first, in order, then the
// object's own validation, then validating plugins (Validate), in order; a
// plugin says which operations it handles. The plugins are upstream's, by
// upstream's names, enabled by default as upstream enables them.
package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/admission/webhook"
	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
)

// Operation is what a request does to an object.
type Operation string

// Operations, as upstream names them.
const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
	Delete Operation = "DELETE"
	// Connect is exec, attach and port-forward; only validating webhooks
	// and policies see it.
	Connect Operation = "CONNECT"
)

// Attributes describe one request to admit.
type Attributes struct {
	Operation   Operation
	Resource    schema.GroupVersionResource
	Subresource string
	Namespace   string
	Name        string
	// Kind is the object's kind in the request's version.
	Kind schema.GroupVersionKind
	// Object is the object to store; mutating plugins change it in place.
	// OldObject is the stored one, on update.
	Object, OldObject runtime.Object
	DryRun            bool
	User              auth.User
	// Mutated is set by a mutating webhook or policy that changed Object:
	// the registry defaults it again.
	Mutated bool
	// ApplyMerge merges an apply configuration into the object's JSON form
	// by its kind's schema (nil: maps merged, everything else replaced).
	ApplyMerge func(obj, cfg map[string]any) (map[string]any, error)
}

// Is says whether the request is to resource gvr itself (no subresource).
func (a *Attributes) Is(gvr schema.GroupVersionResource) bool {
	return a.Resource == gvr && a.Subresource == ""
}

// forbidden is upstream's admission refusal: 403 naming the object.
func (a *Attributes) forbidden(err error) error {
	return apierrors.NewForbidden(a.Resource.GroupResource(), a.Name, err)
}

// Plugin is one admission step.
type Plugin interface {
	// Handles says whether the plugin looks at op at all.
	Handles(op Operation) bool
}

// Mutator changes objects before they are validated.
type Mutator interface {
	Plugin
	Admit(ctx context.Context, a *Attributes) error
}

// Validator accepts or refuses objects after they are validated.
type Validator interface {
	Plugin
	Validate(ctx context.Context, a *Attributes) error
}

// Chain is the enabled plugins in the order they run.
type Chain struct {
	names   []string
	plugins []Plugin
}

// Names lists the enabled plugins in order.
func (c *Chain) Names() []string { return slices.Clone(c.names) }

// Admit runs the mutating plugins that handle a's operation.
func (c *Chain) Admit(ctx context.Context, a *Attributes) error {
	if c == nil {
		return nil
	}
	for _, p := range c.plugins {
		if m, ok := p.(Mutator); ok && p.Handles(a.Operation) {
			if err := m.Admit(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate runs the validating plugins that handle a's operation.
func (c *Chain) Validate(ctx context.Context, a *Attributes) error {
	if c == nil {
		return nil
	}
	for _, p := range c.plugins {
		if v, ok := p.(Validator); ok && p.Handles(a.Operation) {
			if err := v.Validate(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// Objects is how plugins read, and the quota plugin writes, the cluster's
// state (the registry implements it over its caches and etcd).
type Objects interface {
	// Get reads one object: from the cache, or from etcd when the cache
	// has not seen it yet. A missing object is a NotFound error.
	Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (runtime.Object, error)
	// Read reads one object from etcd (a consistent read).
	Read(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (runtime.Object, error)
	// List reads a namespace's objects ("" for all, or cluster-scoped
	// ones) from the cache.
	List(gvr schema.GroupVersionResource, namespace string) []runtime.Object
	// Update changes one object (or its subresource) with fn, as a
	// compare-and-swap against what fn was given.
	Update(ctx context.Context, gvr schema.GroupVersionResource, namespace, name, subresource string, fn func(runtime.Object) (runtime.Object, error)) error
	// ResourceFor finds the resource serving a kind, and whether it is
	// namespaced.
	ResourceFor(gvk schema.GroupVersionKind) (gvr schema.GroupVersionResource, namespaced, ok bool)
}

// entry is one plugin skiff has: its upstream name, whether it is on by
// default, and how it is built.
type entry struct {
	name string
	on   bool
	new  func(Objects, Options) Plugin
}

// Options configure plugins (upstream's AdmissionConfiguration file).
type Options struct {
	PodSecurity PodSecurityConfig
	// Webhooks calls admission webhooks (its resolver finds Services).
	Webhooks *webhook.Client
	// Authorizer answers admission policies' authorizer checks (nil:
	// expressions that use the authorizer fail).
	Authorizer authz.Authorizer
}

func (o Options) webhookClient() *webhook.Client {
	if o.Webhooks == nil {
		return &webhook.Client{}
	}
	return o.Webhooks
}

// catalog is every plugin skiff has, in the order they run. The order is
// upstream's (its AllOrderedPlugins), and for the same reasons: the
// namespace must exist before anything is added to an object in it;
// defaults (limits, the ServiceAccount, priority, tolerations, classes)
// are filled in before the plugins that judge them; ResourceQuota comes
// last, so it charges the object as it will be stored.
var catalog = []entry{
	{"NamespaceLifecycle", true, func(o Objects, _ Options) Plugin { return &namespaceLifecycle{objects: o} }},
	{"LimitRanger", true, func(o Objects, _ Options) Plugin { return &limitRanger{objects: o} }},
	{"ServiceAccount", true, func(o Objects, _ Options) Plugin { return &serviceAccount{objects: o} }},
	{"TaintNodesByCondition", true, func(Objects, Options) Plugin { return taintNodesByCondition{} }},
	{"PodSecurity", true, func(o Objects, opts Options) Plugin { return &podSecurity{objects: o, config: opts.PodSecurity} }},
	{"Priority", true, func(o Objects, _ Options) Plugin { return &priority{objects: o} }},
	{"DefaultTolerationSeconds", true, func(Objects, Options) Plugin { return defaultTolerationSeconds{} }},
	{"DefaultStorageClass", true, func(o Objects, _ Options) Plugin { return &defaultClass{objects: o, kind: storageClassDefault} }},
	{"StorageObjectInUseProtection", true, func(Objects, Options) Plugin { return storageObjectInUseProtection{} }},
	{"RuntimeClass", true, func(o Objects, _ Options) Plugin { return &runtimeClass{objects: o} }},
	{"DefaultIngressClass", true, func(o Objects, _ Options) Plugin { return &defaultClass{objects: o, kind: ingressClassDefault} }},
	{"MutatingAdmissionPolicy", true, func(o Objects, opts Options) Plugin {
		return &mutatingPolicies{objects: o, vap: &validatingPolicies{objects: o, authorizer: opts.Authorizer}}
	}},
	{"MutatingAdmissionWebhook", true, func(o Objects, opts Options) Plugin {
		return &webhooks{objects: o, client: opts.webhookClient(), mutating: true, authorizer: opts.Authorizer}
	}},
	{"ValidatingAdmissionPolicy", true, func(o Objects, opts Options) Plugin {
		return &validatingPolicies{objects: o, authorizer: opts.Authorizer}
	}},
	{"ValidatingAdmissionWebhook", true, func(o Objects, opts Options) Plugin {
		return &webhooks{objects: o, client: opts.webhookClient(), authorizer: opts.Authorizer}
	}},
	{"ResourceQuota", true, func(o Objects, _ Options) Plugin { return &resourceQuota{objects: o} }},
}

// Names lists the plugins skiff has, in order.
func Names() []string {
	var out []string
	for _, e := range catalog {
		out = append(out, e.name)
	}
	return out
}

// Defaults lists the plugins on by default.
func Defaults() []string {
	var out []string
	for _, e := range catalog {
		if e.on {
			out = append(out, e.name)
		}
	}
	return out
}

// New assembles the chain: the default plugins, plus enable, minus disable
// (upstream's --enable-admission-plugins and --disable-admission-plugins;
// the order is always the catalog's, whatever the flags' order).
func New(objects Objects, enable, disable []string, opts Options) (*Chain, error) {
	known := map[string]bool{}
	for _, e := range catalog {
		known[e.name] = true
	}
	for _, n := range slices.Concat(enable, disable) {
		if !known[n] {
			return nil, fmt.Errorf("unknown admission plugin %q (skiff has %s)", n, strings.Join(Names(), ", "))
		}
		if slices.Contains(enable, n) && slices.Contains(disable, n) {
			return nil, fmt.Errorf("admission plugin %q is both enabled and disabled", n)
		}
	}
	c := &Chain{}
	for _, e := range catalog {
		if (e.on || slices.Contains(enable, e.name)) && !slices.Contains(disable, e.name) {
			c.names = append(c.names, e.name)
			c.plugins = append(c.plugins, e.new(objects, opts))
		}
	}
	return c, nil
}
