// Package gc is the garbage collector: it keeps an ownerReference graph over
// every resource and deletes objects whose owners are gone (background),
// deletes dependents before their owner (foreground, blockOwnerDeletion),
// and strips owner references from dependents of an orphaning owner.
package gc

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

// ignored are resources the collector does not track, as upstream: events
// are never owned in a way that matters and are too many to follow.
var ignored = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:              true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

// foregroundRecheck is how soon an owner waiting for its dependents is
// looked at again even without an event.
const foregroundRecheck = 5 * time.Second

// typedShared are resources other controllers already follow through the
// shared typed informers: the collector reads their metadata from those
// instead of opening a second, metadata-only watch on each.
var typedShared = map[schema.GroupResource]bool{
	{Group: "", Resource: "pods"}:                           true,
	{Group: "", Resource: "services"}:                       true,
	{Group: "", Resource: "endpoints"}:                      true,
	{Group: "", Resource: "namespaces"}:                     true,
	{Group: "", Resource: "nodes"}:                          true,
	{Group: "", Resource: "serviceaccounts"}:                true,
	{Group: "", Resource: "persistentvolumeclaims"}:         true,
	{Group: "", Resource: "replicationcontrollers"}:         true,
	{Group: "apps", Resource: "replicasets"}:                true,
	{Group: "apps", Resource: "deployments"}:                true,
	{Group: "apps", Resource: "statefulsets"}:               true,
	{Group: "apps", Resource: "daemonsets"}:                 true,
	{Group: "apps", Resource: "controllerrevisions"}:        true,
	{Group: "batch", Resource: "jobs"}:                      true,
	{Group: "batch", Resource: "cronjobs"}:                  true,
	{Group: "discovery.k8s.io", Resource: "endpointslices"}: true,
	{Group: "policy", Resource: "poddisruptionbudgets"}:     true,
	{Group: "coordination.k8s.io", Resource: "leases"}:      true,
}

// resource is how the collector reaches one kind.
type resource struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

// change is one informer event for the graph.
type change struct {
	gvr     schema.GroupVersionResource
	obj     *metav1.PartialObjectMetadata
	deleted bool
}

// Collector is the garbage collector.
type Collector struct {
	metadata  metadata.Interface
	discovery discovery.DiscoveryInterface
	informers metadatainformer.SharedInformerFactory
	cc        *controller.Context
	// mu guards kinds and monitors, which grow as custom resources appear.
	mu       sync.RWMutex
	kinds    map[schema.GroupKind]resource
	monitors map[schema.GroupVersionResource]context.CancelFunc
	started  bool
	graph    *graph
	changes  workqueue.TypedInterface[*change]
	toDelete workqueue.TypedRateLimitingInterface[objectRef]
	toOrphan workqueue.TypedRateLimitingInterface[objectRef]
	synced   []cache.InformerSynced
	log      *slog.Logger
}

// New discovers the resources to follow and registers metadata informers
// for them.
func New(cc *controller.Context) (controller.Controller, error) {
	c := &Collector{
		metadata:  cc.Metadata,
		discovery: cc.Client.Discovery(),
		informers: cc.MetadataInformers,
		cc:        cc,
		kinds:     map[schema.GroupKind]resource{},
		monitors:  map[schema.GroupVersionResource]context.CancelFunc{},
		graph:     newGraph(),
		changes:   workqueue.NewTyped[*change](),
		toDelete:  work.NewQueue[objectRef]("garbage_collector_attempt_to_delete"),
		toOrphan:  work.NewQueue[objectRef]("garbage_collector_attempt_to_orphan"),
		log:       cc.Log.With("controller", "garbagecollector"),
	}
	if err := c.syncMonitors(context.Background()); err != nil {
		return nil, err
	}
	return c, nil
}

// monitorResync is how often the collector looks for resources that came
// or went (custom resources), as upstream's periodic resync does.
const monitorResync = 30 * time.Second

// syncMonitors follows every deletable resource discovery lists: new ones
// get an informer (from the shared factories before the collector runs, of
// their own after), and custom resources no longer served are let go.
func (c *Collector) syncMonitors(ctx context.Context) error {
	lists, err := c.discovery.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return fmt.Errorf("discover resources: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[schema.GroupVersionResource]bool{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			return err
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			c.kinds[gv.WithKind(r.Kind).GroupKind()] = resource{gvr: gvr, namespaced: r.Namespaced}
			if ignored[gvr.GroupResource()] || !hasVerbs(r.Verbs, "list", "watch", "delete") {
				continue
			}
			seen[gvr] = true
			if _, ok := c.monitors[gvr]; ok {
				continue
			}
			if err := c.monitor(ctx, gvr); err != nil {
				return err
			}
		}
	}
	for gvr, stop := range c.monitors {
		if !seen[gvr] && stop != nil {
			stop()
			delete(c.monitors, gvr)
			for gk, r := range c.kinds {
				if r.gvr == gvr {
					delete(c.kinds, gk)
				}
			}
		}
	}
	return nil
}

// monitor starts following gvr; the caller holds mu.
func (c *Collector) monitor(ctx context.Context, gvr schema.GroupVersionResource) error {
	if !c.started {
		var inf cache.SharedIndexInformer
		if typedShared[gvr.GroupResource()] {
			gi, err := c.cc.Informers.ForResource(gvr)
			if err != nil {
				return fmt.Errorf("shared informer for %s: %w", gvr, err)
			}
			inf = gi.Informer()
		} else {
			inf = c.informers.ForResource(gvr).Informer()
		}
		if _, err := inf.AddEventHandler(c.handler(gvr)); err != nil {
			return err
		}
		c.synced = append(c.synced, inf.HasSynced)
		c.monitors[gvr] = nil // lives as long as the factories
		return nil
	}
	inf := metadatainformer.NewFilteredMetadataInformer(c.metadata, gvr, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	if _, err := inf.AddEventHandler(c.handler(gvr)); err != nil {
		return err
	}
	mctx, cancel := context.WithCancel(ctx)
	c.monitors[gvr] = cancel
	go inf.RunWithContext(mctx)
	return nil
}

// kind is how to reach objects of gk, rediscovering once when it is not
// known.
func (c *Collector) kind(ctx context.Context, gk schema.GroupKind) (resource, bool) {
	c.mu.RLock()
	r, ok := c.kinds[gk]
	c.mu.RUnlock()
	if ok {
		return r, true
	}
	if err := c.syncMonitors(ctx); err != nil {
		return resource{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok = c.kinds[gk]
	return r, ok
}

func hasVerbs(have []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (c *Collector) handler(gvr schema.GroupVersionResource) cache.ResourceEventHandler {
	push := func(obj any, deleted bool) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj, deleted = tomb.Obj, true
		}
		if m := asMetadata(obj); m != nil {
			c.changes.Add(&change{gvr: gvr, obj: m, deleted: deleted})
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { push(obj, false) },
		UpdateFunc: func(_, obj any) { push(obj, false) },
		DeleteFunc: func(obj any) { push(obj, true) },
	}
}

// asMetadata views an informer object (metadata-only or typed) as the
// metadata the graph needs.
func asMetadata(obj any) *metav1.PartialObjectMetadata {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		return m
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: acc.GetName(), Namespace: acc.GetNamespace(), UID: acc.GetUID(), ResourceVersion: acc.GetResourceVersion(),
		DeletionTimestamp: acc.GetDeletionTimestamp(), OwnerReferences: acc.GetOwnerReferences(), Finalizers: acc.GetFinalizers(),
	}}
}

// Run implements controller.Controller.
func (c *Collector) Run(ctx context.Context, workers int) {
	defer c.changes.ShutDown()
	go func() {
		for c.applyNextChange() {
		}
	}()
	if !work.WaitForSync(ctx, c.synced...) {
		return
	}
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	go wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := c.syncMonitors(ctx); err != nil {
			c.log.Warn("resync monitors", "err", err)
		}
	}, monitorResync)
	go work.Work(ctx, c.log, c.toOrphan, workers, c.attemptToOrphan)
	work.Work(ctx, c.log, c.toDelete, workers, c.attemptToDelete)
}

// applyNextChange folds one informer event into the graph and queues the
// objects the change may affect.
func (c *Collector) applyNextChange() bool {
	ch, quit := c.changes.Get()
	if quit {
		return false
	}
	defer c.changes.Done(ch)
	ref := objectRef{gvr: ch.gvr, namespace: ch.obj.Namespace, name: ch.obj.Name, uid: ch.obj.UID}
	if ch.deleted {
		dependents, owners := c.graph.remove(ref.uid)
		for _, d := range dependents {
			c.toDelete.Add(d)
		}
		for _, o := range owners {
			c.toDelete.Add(o) // an owner deleting its dependents first may be done
		}
		return true
	}
	self, dependents := c.graph.upsert(ref, ch.obj)
	for _, d := range dependents {
		c.toDelete.Add(d)
	}
	switch {
	case self.deletingDependents:
		c.toDelete.Add(ref)
	case self.orphaning:
		c.toOrphan.Add(ref)
	}
	for _, o := range ch.obj.OwnerReferences {
		if exists, waiting := c.graph.observed(o.UID); !exists || waiting {
			c.toDelete.Add(ref)
			break
		}
	}
	return true
}

// attemptToDelete looks at one object: if it is deleting its dependents
// first, it finishes that when no blocking dependent is left; otherwise it
// applies decide to the object's owners.
func (c *Collector) attemptToDelete(ctx context.Context, ref objectRef) error {
	client := c.metadata.Resource(ref.gvr).Namespace(ref.namespace)
	obj, err := client.Get(ctx, ref.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if obj.UID != ref.uid {
		return nil // a new object under the old name
	}
	if obj.DeletionTimestamp != nil && slices.Contains(obj.Finalizers, metav1.FinalizerDeleteDependents) {
		return c.deleteDependentsFirst(ctx, ref, obj)
	}
	states := map[types.UID]ownerState{}
	for _, o := range obj.OwnerReferences {
		st, err := c.ownerState(ctx, o, ref.namespace)
		if err != nil {
			return err
		}
		states[o.UID] = st
	}
	deps, _ := c.graph.dependentsOf(ref.uid)
	act := decide(obj, states, len(deps) > 0)
	if len(act.dropOwners) > 0 {
		return c.patchMeta(ctx, ref, obj.ResourceVersion, map[string]any{"ownerReferences": withoutOwners(obj.OwnerReferences, act.dropOwners)})
	}
	if act.delete == nil {
		return nil
	}
	if *act.delete == metav1.DeletePropagationForeground && c.inCycle(deps) {
		// An owner waits on this object while a dependent of it waits on
		// its own dependents: possibly an ownership cycle, in which each
		// waits for the next forever. As upstream, this object stops
		// blocking its owners, then goes in the foreground.
		if unblocked, changed := unblockOwners(obj.OwnerReferences); changed {
			if err := c.patchMeta(ctx, ref, obj.ResourceVersion, map[string]any{"ownerReferences": unblocked}); err != nil {
				return err
			}
		}
	}
	c.log.Debug("deleting dependent", "resource", ref.gvr.Resource, "namespace", ref.namespace, "name", ref.name, "propagation", *act.delete)
	err = client.Delete(ctx, ref.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &ref.uid}, PropagationPolicy: act.delete})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// inCycle: one of deps is itself deleting its dependents first.
func (c *Collector) inCycle(deps []objectRef) bool {
	for _, d := range deps {
		if _, deleting := c.graph.observed(d.uid); deleting {
			return true
		}
	}
	return false
}

// deleteDependentsFirst drives a foreground deletion: dependents that block
// the owner are deleted; once none is left the owner's foregroundDeletion
// finalizer goes, and the API server removes it.
func (c *Collector) deleteDependentsFirst(ctx context.Context, ref objectRef, obj *metav1.PartialObjectMetadata) error {
	_, blocking := c.graph.dependentsOf(ref.uid)
	if len(blocking) == 0 {
		fin := slices.DeleteFunc(slices.Clone(obj.Finalizers), func(f string) bool { return f == metav1.FinalizerDeleteDependents })
		return c.patchMeta(ctx, ref, obj.ResourceVersion, map[string]any{"finalizers": fin})
	}
	for _, d := range blocking {
		c.toDelete.Add(d)
	}
	return work.RetryAfter(foregroundRecheck)
}

// attemptToOrphan removes the owner's references from its dependents, then
// its orphan finalizer.
func (c *Collector) attemptToOrphan(ctx context.Context, ref objectRef) error {
	deps, _ := c.graph.dependentsOf(ref.uid)
	for _, d := range deps {
		client := c.metadata.Resource(d.gvr).Namespace(d.namespace)
		obj, err := client.Get(ctx, d.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if obj.UID != d.uid || !hasOwner(obj.OwnerReferences, ref.uid) {
			continue
		}
		if err := c.patchMeta(ctx, d, obj.ResourceVersion, map[string]any{"ownerReferences": withoutOwners(obj.OwnerReferences, []types.UID{ref.uid})}); err != nil {
			return err
		}
	}
	owner, err := c.metadata.Resource(ref.gvr).Namespace(ref.namespace).Get(ctx, ref.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if owner.UID != ref.uid || !slices.Contains(owner.Finalizers, metav1.FinalizerOrphanDependents) {
		return nil
	}
	fin := slices.DeleteFunc(slices.Clone(owner.Finalizers), func(f string) bool { return f == metav1.FinalizerOrphanDependents })
	return c.patchMeta(ctx, ref, owner.ResourceVersion, map[string]any{"finalizers": fin})
}

// ownerState finds out whether an owner still exists: from the graph when
// the collector has seen it, else by asking the API server.
func (c *Collector) ownerState(ctx context.Context, o metav1.OwnerReference, namespace string) (ownerState, error) {
	if exists, waiting := c.graph.observed(o.UID); exists {
		if waiting {
			return ownerWaiting, nil
		}
		return ownerSolid, nil
	}
	gv, err := schema.ParseGroupVersion(o.APIVersion)
	if err != nil {
		return ownerDangling, nil // an owner that cannot exist
	}
	r, ok := c.kind(ctx, gv.WithKind(o.Kind).GroupKind())
	if !ok {
		// Not (yet) known: a custom resource may have just appeared, so
		// its dependents are kept and looked at again, as upstream.
		return ownerSolid, fmt.Errorf("owner kind %s is not served", gv.WithKind(o.Kind))
	}
	ns := namespace
	if !r.namespaced {
		ns = ""
	}
	live, err := c.metadata.Resource(r.gvr).Namespace(ns).Get(ctx, o.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return ownerDangling, nil
	case err != nil:
		return ownerSolid, err
	case live.UID != o.UID:
		return ownerDangling, nil
	case live.DeletionTimestamp != nil && slices.Contains(live.Finalizers, metav1.FinalizerDeleteDependents):
		return ownerWaiting, nil
	}
	return ownerSolid, nil
}

// patchMeta merge-patches metadata fields, guarded by resourceVersion so a
// concurrent change makes it retry on fresh state.
func (c *Collector) patchMeta(ctx context.Context, ref objectRef, rv string, fields map[string]any) error {
	meta := map[string]any{"uid": ref.uid, "resourceVersion": rv}
	for k, v := range fields {
		meta[k] = v
	}
	body, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	_, err = c.metadata.Resource(ref.gvr).Namespace(ref.namespace).Patch(ctx, ref.name, types.MergePatchType, body, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
