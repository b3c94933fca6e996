// Package replicaset keeps the number of pods a ReplicaSet asks for: it
// adopts matching orphans, releases pods that no longer match, creates and
// deletes pods, and reports status.
package replicaset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-sh/skiff/internal/controller"
)

// controllerUIDIndex indexes pods by their controller's UID; orphans are
// indexed under "orphan/<namespace>".
const controllerUIDIndex = "controllerUID"

// Controller is the ReplicaSet controller.
type Controller struct {
	client   kubernetes.Interface
	kind     Kind
	pods     cache.Indexer
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	expect   *work.Expectations
	recorder record.EventRecorder
	clock    clock.Clock
	log      *slog.Logger
}

// New builds the ReplicaSet controller.
func New(cc *controller.Context) (controller.Controller, error) { return newFor(cc, replicaSets(cc)) }

// NewReplicationController builds the same controller for
// ReplicationControllers, which it handles as ReplicaSets.
func NewReplicationController(cc *controller.Context) (controller.Controller, error) {
	return newFor(cc, replicationControllers(cc))
}

func newFor(cc *controller.Context, kind Kind) (controller.Controller, error) {
	rsInf := kind.Informer
	podInf := cc.Informers.Core().V1().Pods()
	// The ReplicaSet and ReplicationController controllers share the index.
	if _, ok := podInf.Informer().GetIndexer().GetIndexers()[controllerUIDIndex]; !ok {
		if err := podInf.Informer().AddIndexers(cache.Indexers{controllerUIDIndex: indexByController}); err != nil {
			return nil, err
		}
	}
	c := &Controller{
		client:   cc.Client,
		kind:     kind,
		pods:     podInf.Informer().GetIndexer(),
		synced:   []cache.InformerSynced{rsInf.HasSynced, podInf.Informer().HasSynced},
		queue:    work.NewQueue[string](kind.Name),
		expect:   work.NewExpectations(cc.Clock.Now),
		recorder: cc.Recorder(kind.Component),
		clock:    cc.Clock,
		log:      cc.Log.With("controller", kind.Name),
	}
	if _, err := rsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj any) { c.enqueue(obj) },
		DeleteFunc: func(obj any) {
			if key, ok := work.KeyOf(obj); ok {
				c.expect.Forget(key)
				c.queue.Add(key)
			}
		},
	}); err != nil {
		return nil, err
	}
	_, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.podAdded,
		UpdateFunc: c.podUpdated,
		DeleteFunc: c.podDeleted,
	})
	return c, err
}

func indexByController(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	if ref := metav1.GetControllerOf(p); ref != nil {
		return []string{string(ref.UID)}, nil
	}
	return []string{"orphan/" + p.Namespace}, nil
}

func (c *Controller) enqueue(obj any) {
	if key, ok := work.KeyOf(obj); ok {
		c.queue.Add(key)
	}
}

// ownerKey is the key of the object of this kind controlling p, if any.
func (c *Controller) ownerKey(p *corev1.Pod) (string, bool) {
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != c.kind.GVK.Kind || ref.APIVersion != c.kind.GVK.GroupVersion().String() {
		return "", false
	}
	return p.Namespace + "/" + ref.Name, true
}

// enqueueMatching queues every ReplicaSet whose selector matches an orphan.
func (c *Controller) enqueueMatching(p *corev1.Pod) {
	sets, _ := c.kind.List(p.Namespace)
	for _, rs := range sets {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.queue.Add(rs.Namespace + "/" + rs.Name)
		}
	}
}

func (c *Controller) podAdded(obj any) {
	p := obj.(*corev1.Pod)
	if key, ok := c.ownerKey(p); ok {
		c.expect.Added(key)
		c.queue.Add(key)
		return
	}
	if metav1.GetControllerOf(p) == nil {
		c.enqueueMatching(p)
	}
}

func (c *Controller) podUpdated(oldObj, obj any) {
	old, p := oldObj.(*corev1.Pod), obj.(*corev1.Pod)
	if old.ResourceVersion == p.ResourceVersion {
		return
	}
	key, owned := c.ownerKey(p)
	if owned && p.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		c.expect.Deleted(key, p.Namespace+"/"+p.Name)
	}
	if oldKey, ok := c.ownerKey(old); ok && oldKey != key {
		c.queue.Add(oldKey)
	}
	if owned {
		c.queue.Add(key)
	} else if metav1.GetControllerOf(p) == nil {
		c.enqueueMatching(p)
	}
}

func (c *Controller) podDeleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if key, ok := c.ownerKey(p); ok {
		c.expect.Deleted(key, p.Namespace+"/"+p.Name)
		c.queue.Add(key)
	}
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	rs, err := c.kind.Get(ns, name)
	if apierrors.IsNotFound(err) {
		c.expect.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil // the API refuses such selectors; nothing sane to do
	}
	pods, err := c.claimPods(ctx, rs, sel)
	if err != nil {
		return err
	}
	var active []*corev1.Pod
	for _, p := range pods {
		if isActive(p) {
			active = append(active, p)
		}
	}
	var pending time.Duration
	if !c.expect.Satisfied(key) {
		pending = c.expect.Expiry(key)
	}
	p := decide(rs, active, pending)
	if p.wait > 0 {
		c.queue.AddAfter(key, p.wait)
	}
	manageErr := c.apply(ctx, key, rs, p)
	st := status(rs, active, createError(manageErr), c.clock.Now())
	if err := c.updateStatus(ctx, rs, st); err != nil {
		return err
	}
	if manageErr != nil {
		return manageErr
	}
	if d, ok := nextAvailableCheck(rs, active, c.clock.Now()); ok {
		c.queue.AddAfter(key, d)
	}
	return nil
}

// createFailure marks errors from creating pods, for ReplicaFailure.
type createFailure struct{ error }

func (e createFailure) Unwrap() error { return e.error }

func createError(err error) error {
	var cf createFailure
	if errors.As(err, &cf) {
		return cf.error
	}
	return nil
}

// apply carries out a plan: creates in slow-start batches, deletes in
// parallel, each expected before it is made so the informer's view of it
// is waited for.
func (c *Controller) apply(ctx context.Context, key string, rs *appsv1.ReplicaSet, p plan) error {
	switch {
	case p.create > 0:
		n := p.create
		c.expect.Expect(key, n, nil)
		created, err := slowStart(n, func() error {
			pod, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, newPod(rs, c.kind.GVK), metav1.CreateOptions{})
			if err != nil {
				c.expect.Added(key)
				c.recorder.Eventf(c.kind.EventObject(rs), corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				return err
			}
			c.recorder.Eventf(c.kind.EventObject(rs), corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", pod.Name)
			return nil
		})
		for range n - created {
			c.expect.Added(key) // batches never started will not be observed
		}
		if err != nil {
			if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) || apierrors.IsNotFound(err) && ctx.Err() == nil {
				return err
			}
			return createFailure{err}
		}
	case len(p.delete) > 0:
		victims := p.delete
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = p.Namespace + "/" + p.Name
		}
		c.expect.Expect(key, 0, keys)
		var wg sync.WaitGroup
		errs := make(chan error, len(victims))
		for _, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
				if err != nil && !apierrors.IsNotFound(err) {
					c.expect.Deleted(key, p.Namespace+"/"+p.Name)
					c.recorder.Eventf(c.kind.EventObject(rs), corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
					errs <- err
					return
				}
				c.recorder.Eventf(c.kind.EventObject(rs), corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return fmt.Errorf("delete pods: %w", err)
		}
	}
	return nil
}

// claimPods returns the pods rs controls after adopting matching orphans and
// releasing owned pods whose labels no longer match.
func (c *Controller) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, sel labels.Selector) ([]*corev1.Pod, error) {
	owned, err := c.pods.ByIndex(controllerUIDIndex, string(rs.UID))
	if err != nil {
		return nil, err
	}
	orphans, err := c.pods.ByIndex(controllerUIDIndex, "orphan/"+rs.Namespace)
	if err != nil {
		return nil, err
	}
	var mine, free []*corev1.Pod
	for _, o := range owned {
		if p := o.(*corev1.Pod); p.Namespace == rs.Namespace {
			mine = append(mine, p)
		}
	}
	for _, o := range orphans {
		free = append(free, o.(*corev1.Pod))
	}
	claim := work.PodClaim{Client: c.client, Owner: rs, OwnerGVK: c.kind.GVK, Selector: sel,
		Alive: func(ctx context.Context) bool {
			fresh, err := c.kind.Fresh(ctx, rs.Namespace, rs.Name)
			return err == nil && fresh.UID == rs.UID && fresh.DeletionTimestamp == nil
		}}
	return claim.Claim(ctx, mine, free)
}

// updateStatus writes status when it changed.
func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) error {
	if apiequality.Semantic.DeepEqual(rs.Status, st) {
		return nil
	}
	err := c.kind.UpdateStatus(ctx, rs, st)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
