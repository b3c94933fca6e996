package controlplane

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/flowcontrol"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// Authorization modes (--authorization-mode), as upstream's names.
const (
	ModeNode        = "Node"
	ModeRBAC        = "RBAC"
	ModeAlwaysAllow = "AlwaysAllow"
)

// authorizer builds the union of the modes, in order.
func authorizer(modes []string, rbac *authz.RBAC, node *authz.Node) (authz.Authorizer, error) {
	var u authz.Union
	for _, m := range modes {
		switch m {
		case ModeNode:
			u = append(u, node)
		case ModeRBAC:
			u = append(u, rbac)
		case ModeAlwaysAllow:
			u = append(u, authz.AlwaysAllow)
		default:
			return nil, fmt.Errorf("--authorization-mode: unknown mode %q (want Node, RBAC or AlwaysAllow)", m)
		}
	}
	if len(u) == 0 {
		return nil, fmt.Errorf("--authorization-mode: at least one mode is required")
	}
	return u, nil
}

// policyFeed keeps the authorizers' view current from the registry's
// caches: RBAC objects for RBAC; pods and claims for the Node authorizer's
// graph. Each resource is followed from its cache's watch, resuming from
// the last revision seen (a full reload if that is too old).
type policyFeed struct {
	rbac *authz.RBAC
	node *authz.Node
	// flow is API Priority and Fairness, which follows the flow schemas
	// and priority levels the same way.
	flow *flowcontrol.Controller
	// flowChanged is signalled (without blocking) after a flow schema or
	// priority level event, for the schemas' status writer.
	flowChanged chan struct{}

	mu   sync.Mutex
	seen map[string]int64 // resource → last revision applied
}

// follows applies one resource's events: set on add or update, del on
// delete.
func follows[T metav1.Object](set func(T), del func(namespace, name string)) func(watch.EventType, any) {
	return func(t watch.EventType, o any) {
		obj := o.(T)
		if t == watch.Deleted {
			del(obj.GetNamespace(), obj.GetName())
			return
		}
		set(obj)
	}
}

// notifying is apply, then a signal on flowChanged (when there is one).
func (f *policyFeed) notifying(apply func(watch.EventType, any)) func(watch.EventType, any) {
	return func(t watch.EventType, o any) {
		apply(t, o)
		select {
		case f.flowChanged <- struct{}{}:
		default:
		}
	}
}

// feeds are the resources the authorizers follow and how each event applies.
func (f *policyFeed) feeds() map[schema.GroupVersionResource]func(ev watch.EventType, obj any) {
	rbacGV, core := rbacv1.SchemeGroupVersion, corev1.SchemeGroupVersion
	return map[schema.GroupVersionResource]func(watch.EventType, any){
		rbacGV.WithResource("roles"):                                                 follows(f.rbac.SetRole, f.rbac.DeleteRole),
		rbacGV.WithResource("clusterroles"):                                          follows(f.rbac.SetClusterRole, func(_, name string) { f.rbac.DeleteClusterRole(name) }),
		rbacGV.WithResource("rolebindings"):                                          follows(f.rbac.SetRoleBinding, f.rbac.DeleteRoleBinding),
		rbacGV.WithResource("clusterrolebindings"):                                   follows(f.rbac.SetClusterRoleBinding, func(_, name string) { f.rbac.DeleteClusterRoleBinding(name) }),
		core.WithResource("pods"):                                                    follows(f.node.SetPod, f.node.DeletePod),
		core.WithResource("persistentvolumeclaims"):                                  follows(f.node.SetClaim, f.node.DeleteClaim),
		flowcontrolv1.SchemeGroupVersion.WithResource("flowschemas"):                 f.notifying(follows(f.flow.SetFlowSchema, f.flow.DeleteFlowSchema)),
		flowcontrolv1.SchemeGroupVersion.WithResource("prioritylevelconfigurations"): f.notifying(follows(f.flow.SetPriorityLevel, f.flow.DeletePriorityLevel)),
	}
}

// start loads every followed resource once its cache is ready, then
// follows each in the background until ctx ends. It returns when the
// initial state is loaded, so the API never serves a request against an
// empty policy.
func (f *policyFeed) start(ctx, followCtx context.Context, reg *registry.Registry) error {
	f.seen = map[string]int64{}
	for gvr, apply := range f.feeds() {
		res := reg.Lookup(gvr)
		if res == nil {
			return fmt.Errorf("authorization: no resource %s", gvr)
		}
		cache := reg.Cache(res)
		for !cache.Ready() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		w, backlog, rv, err := cache.Watch(storage.Filter{}, 0, true)
		if err != nil {
			return fmt.Errorf("authorization: watch %s: %w", gvr.Resource, err)
		}
		for _, ev := range backlog {
			apply(ev.Type, ev.Obj.Obj)
		}
		f.mark(gvr.Resource, rv)
		go f.follow(followCtx, cache, gvr.Resource, w, rv, apply)
	}
	return nil
}

func (f *policyFeed) follow(ctx context.Context, cache *storage.Cache, resource string, w *storage.Watcher, rv int64, apply func(watch.EventType, any)) {
	for {
		select {
		case <-ctx.Done():
			w.Stop()
			return
		case ev, ok := <-w.Events():
			if ok {
				apply(ev.Type, ev.Obj.Obj)
				rv = ev.RV
				f.mark(resource, rv)
				continue
			}
		}
		// The watch ended (a burst outran it): resume where it left off.
		var backlog []*storage.Event
		var err error
		for {
			if w, backlog, _, err = cache.Watch(storage.Filter{}, rv, false); err == nil {
				break
			}
			// Too old to resume: events were lost; reload everything
			// after forgetting what is known of this resource.
			f.forget(resource)
			if w, backlog, rv, err = cache.Watch(storage.Filter{}, 0, true); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		for _, ev := range backlog {
			apply(ev.Type, ev.Obj.Obj)
			rv = max(rv, ev.RV)
		}
		f.mark(resource, rv)
	}
}

func (f *policyFeed) forget(resource string) {
	switch resource {
	case "pods", "persistentvolumeclaims":
		f.node.Forget(resource)
	default:
		f.rbac.Forget(resource)
	}
}

func (f *policyFeed) mark(resource string, rv int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[resource] = max(f.seen[resource], rv)
}

// waitFor returns once the feed of resource has applied revision rv, so
// what bootstrap just wrote is in force before /readyz says so.
func (f *policyFeed) waitFor(ctx context.Context, resource string, rv int64) error {
	for {
		f.mu.Lock()
		seen := f.seen[resource]
		f.mu.Unlock()
		if seen >= rv {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("authorization policy %s at revision %d: %w", resource, rv, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// reviewAuthz answers the registry's questions: decisions from the whole
// union, rules from RBAC.
type reviewAuthz struct {
	decide authz.Authorizer
	rbac   *authz.RBAC
}

func (r reviewAuthz) Authorize(a authz.Attributes) (authz.Decision, string) {
	return r.decide.Authorize(a)
}

func (r reviewAuthz) RulesFor(u auth.User, namespace string) ([]rbacv1.PolicyRule, []error) {
	return r.rbac.RulesFor(u, namespace)
}

func (r reviewAuthz) RoleRules(kind, namespace, name string) ([]rbacv1.PolicyRule, bool) {
	return r.rbac.RoleRules(kind, namespace, name)
}

// cacheObjects answers ServiceAccount token checks from the registry's
// caches: no etcd read per authenticated request.
type cacheObjects struct{ reg *registry.Registry }

var objectResources = map[string]schema.GroupVersionResource{
	"ServiceAccount": corev1.SchemeGroupVersion.WithResource("serviceaccounts"),
	"Pod":            corev1.SchemeGroupVersion.WithResource("pods"),
	"Secret":         corev1.SchemeGroupVersion.WithResource("secrets"),
	"Node":           corev1.SchemeGroupVersion.WithResource("nodes"),
}

func (c cacheObjects) get(kind, namespace, name string) metav1.Object {
	res := c.reg.Lookup(objectResources[kind])
	if res == nil {
		return nil
	}
	if o := c.reg.Cache(res).Get(res.Key(namespace, name)); o != nil {
		m, _ := o.Obj.(metav1.Object)
		return m
	}
	// A miss may be an object created a moment ago that the cache has not
	// seen yet (a controller's ServiceAccount, then its first token): ask
	// the store. Only a correctly signed token gets here, and its verdict
	// is reused, so this is no read per request.
	ctx, cancel := context.WithTimeout(context.Background(), objectReadTimeout)
	defer cancel()
	obj, err := c.reg.Get(ctx, res, namespace, name)
	if err != nil {
		return nil
	}
	m, _ := obj.(metav1.Object)
	return m
}

// objectReadTimeout bounds the store read behind a cache miss.
const objectReadTimeout = 5 * time.Second

func (c cacheObjects) UID(kind, namespace, name string) (string, bool) {
	m := c.get(kind, namespace, name)
	if m == nil {
		return "", false
	}
	return string(m.GetUID()), true
}

func (c cacheObjects) SecretToken(namespace, name string) ([]byte, bool) {
	s, ok := c.get("Secret", namespace, name).(*corev1.Secret)
	if !ok || s == nil || s.Type != corev1.SecretTypeServiceAccountToken {
		return nil, false
	}
	tok, ok := s.Data[corev1.ServiceAccountTokenKey]
	return tok, ok
}
