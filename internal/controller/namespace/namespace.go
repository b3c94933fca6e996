// Package namespace empties a namespace that is being deleted, then removes
// its "kubernetes" finalizer so the API server can let it go.
package namespace

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

// recheck is how soon a namespace whose content is still going away (pods
// in their grace period, objects with finalizers) is looked at again.
const recheck = 2 * time.Second

// Controller deletes the content of terminating namespaces.
type Controller struct {
	client    kubernetes.Interface
	metadata  metadata.Interface
	discovery discovery.CachedDiscoveryInterface
	lister    corelisters.NamespaceLister
	synced    cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	log       *slog.Logger
}

// New registers the controller's informer handlers.
func New(cc *controller.Context) (controller.Controller, error) {
	inf := cc.Informers.Core().V1().Namespaces()
	c := &Controller{
		client:    cc.Client,
		metadata:  cc.Metadata,
		discovery: memory.NewMemCacheClient(cc.Client.Discovery()),
		lister:    inf.Lister(),
		synced:    inf.Informer().HasSynced,
		queue:     work.NewQueue[string]("namespace"),
		log:       cc.Log.With("controller", "namespace"),
	}
	enqueue := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			c.queue.Add(ns.Name)
		}
	}
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	return c, err
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced)
}

func (c *Controller) sync(ctx context.Context, name string) error {
	ns, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil {
		return nil
	}
	if !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return c.deleteNamespace(ctx, ns)
	}
	remaining, deleteErrs := c.deleteContent(ctx, name)
	if len(deleteErrs) > 0 || !remaining.empty() {
		if err := c.setConditions(ctx, ns, remaining, deleteErrs); err != nil {
			return err
		}
		if len(deleteErrs) > 0 {
			return fmt.Errorf("delete content of namespace %s: %s", name, strings.Join(deleteErrs, "; "))
		}
		return work.RetryAfter(recheck)
	}
	ns = ns.DeepCopy()
	ns.Spec.Finalizers = slices.DeleteFunc(ns.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
	ns, err = c.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finalize namespace %s: %w", name, err)
	}
	return c.deleteNamespace(ctx, ns)
}

// deleteNamespace deletes a namespace whose content is gone; with no
// finalizers left the API server removes it.
func (c *Controller) deleteNamespace(ctx context.Context, ns *corev1.Namespace) error {
	if len(ns.Spec.Finalizers) > 0 || len(ns.Finalizers) > 0 {
		return nil // another finalizer's owner finishes the job
	}
	err := c.client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &ns.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// leftovers counts what is still in a namespace after a deletion pass.
type leftovers struct {
	instances  map[string]int // resource → remaining objects
	finalizers map[string]int // finalizer → objects carrying it
}

func (l leftovers) empty() bool { return len(l.instances) == 0 }

// deleteContent deletes every namespaced object in ns and reports what is
// left, and which deletions failed.
func (c *Controller) deleteContent(ctx context.Context, ns string) (leftovers, []string) {
	left := leftovers{instances: map[string]int{}, finalizers: map[string]int{}}
	// Custom resources come and go: each pass asks discovery afresh.
	c.discovery.Invalidate()
	resources, err := deletableResources(c.discovery)
	if err != nil {
		c.discovery.Invalidate()
		return left, []string{fmt.Sprintf("discovery: %v", err)}
	}
	// Pods go first, and nothing else until they are gone (upstream's
	// ordered namespace deletion): a terminating pod may still need its
	// ConfigMaps, Secrets, ServiceAccount and network policies.
	slices.SortStableFunc(resources, func(a, b deletable) int { return boolOrder(isPods(b.gvr)) - boolOrder(isPods(a.gvr)) })
	var errs []string
	for _, r := range resources {
		if !isPods(r.gvr) && left.instances["pods"] > 0 {
			break
		}
		client := c.metadata.Resource(r.gvr).Namespace(ns)
		if r.collection {
			err = client.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		}
		list, lerr := client.List(ctx, metav1.ListOptions{})
		if lerr != nil {
			if !apierrors.IsNotFound(lerr) {
				errs = append(errs, fmt.Sprintf("list %s: %v", r.gvr.Resource, lerr))
			}
			continue
		}
		for _, item := range list.Items {
			if !r.collection && item.DeletionTimestamp == nil {
				if derr := client.Delete(ctx, item.Name, metav1.DeleteOptions{}); derr != nil && !apierrors.IsNotFound(derr) {
					err = derr
				}
			}
			for _, f := range item.Finalizers {
				left.finalizers[f]++
			}
		}
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Sprintf("delete %s: %v", r.gvr.Resource, err))
		}
		if n := len(list.Items); n > 0 {
			left.instances[r.gvr.GroupResource().String()] += n
		}
		err = nil
	}
	return left, errs
}

func isPods(gvr schema.GroupVersionResource) bool { return gvr.Group == "" && gvr.Resource == "pods" }

func boolOrder(b bool) int {
	if b {
		return 1
	}
	return 0
}

type deletable struct {
	gvr        schema.GroupVersionResource
	collection bool
}

// deletableResources lists the namespaced resources that can be listed and
// deleted, in their preferred versions.
func deletableResources(d discovery.DiscoveryInterface) ([]deletable, error) {
	lists, err := d.ServerPreferredNamespacedResources()
	if err != nil {
		return nil, err
	}
	var out []deletable
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			return nil, err
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			out = append(out, deletable{gvr: gv.WithResource(r.Name), collection: slices.Contains(r.Verbs, "deletecollection")})
		}
	}
	return out, nil
}

// setConditions records why the namespace is still there, as upstream does.
func (c *Controller) setConditions(ctx context.Context, ns *corev1.Namespace, left leftovers, errs []string) error {
	now := metav1.Now()
	conds := []corev1.NamespaceCondition{
		condition(corev1.NamespaceDeletionContentFailure, len(errs) > 0, "ContentDeletionFailed", "ContentDeleted",
			"Failed to delete all resource types, "+strings.Join(errs, ", "), "All content successfully deleted, may be waiting on finalization"),
		condition(corev1.NamespaceContentRemaining, len(left.instances) > 0, "SomeResourcesRemain", "ContentRemoved",
			"Some resources are remaining: "+summary(left.instances, "%s has %d resource instances"), "All content successfully removed"),
		condition(corev1.NamespaceFinalizersRemaining, len(left.finalizers) > 0, "SomeFinalizersRemain", "ContentHasNoFinalizers",
			"Some content in the namespace has finalizers remaining: "+summary(left.finalizers, "%s in %d resource instances"), "All content-preserving finalizers finished"),
	}
	updated := ns.DeepCopy()
	changed := false
	for _, want := range conds {
		i := slices.IndexFunc(updated.Status.Conditions, func(c corev1.NamespaceCondition) bool { return c.Type == want.Type })
		if i < 0 {
			want.LastTransitionTime = now
			updated.Status.Conditions = append(updated.Status.Conditions, want)
			changed = true
			continue
		}
		have := &updated.Status.Conditions[i]
		if have.Status != want.Status || have.Reason != want.Reason || have.Message != want.Message {
			if have.Status != want.Status {
				have.LastTransitionTime = now
			}
			have.Status, have.Reason, have.Message = want.Status, want.Reason, want.Message
			changed = true
		}
	}
	if !changed {
		return nil
	}
	_, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // the next pass sees the new state
	}
	return err
}

func condition(t corev1.NamespaceConditionType, bad bool, badReason, goodReason, badMsg, goodMsg string) corev1.NamespaceCondition {
	if bad {
		return corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: badReason, Message: badMsg}
	}
	return corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, Reason: goodReason, Message: goodMsg}
}

func summary(counts map[string]int, format string) string {
	var parts []string
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf(format, k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
