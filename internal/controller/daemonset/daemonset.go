// Package daemonset runs one pod of a DaemonSet on every eligible node
// (nodeSelector, required node affinity, taints with the default daemon
// tolerations), follows node changes, and rolls out template changes
// (RollingUpdate with maxUnavailable, or OnDelete) with ControllerRevisions.
package daemonset

import (
	"context"
	"errors"
	"log/slog"

	"github.com/skiff-sh/skiff/internal/work"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/history"
)

var gvk = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Controller is the DaemonSet controller.
type Controller struct {
	client    kubernetes.Interface
	sets      appslisters.DaemonSetLister
	nodes     corelisters.NodeLister
	pods      corelisters.PodLister
	revisions appslisters.ControllerRevisionLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	expect    *work.Expectations
	recorder  record.EventRecorder
	log       *slog.Logger
}

// New registers the controller's informer handlers.
func New(cc *controller.Context) (controller.Controller, error) {
	ds, n, p, cr := cc.Informers.Apps().V1().DaemonSets(), cc.Informers.Core().V1().Nodes(), cc.Informers.Core().V1().Pods(), cc.Informers.Apps().V1().ControllerRevisions()
	c := &Controller{
		client: cc.Client, sets: ds.Lister(), nodes: n.Lister(), pods: p.Lister(), revisions: cr.Lister(),
		synced:   []cache.InformerSynced{ds.Informer().HasSynced, n.Informer().HasSynced, p.Informer().HasSynced, cr.Informer().HasSynced},
		queue:    work.NewQueue[string]("daemonset"),
		expect:   work.NewExpectations(cc.Clock.Now),
		recorder: cc.Recorder("daemonset-controller"),
		log:      cc.Log.With("controller", "daemonset"),
	}
	enqueue := work.Enqueue(c.queue)
	if _, err := ds.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return nil, err
	}
	// Any node change may change where daemons belong.
	all := func(any) {
		sets, _ := c.sets.List(labels.Everything())
		for _, s := range sets {
			enqueue(s)
		}
	}
	if _, err := n.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: all, UpdateFunc: func(old, o any) {
		if on, nn := old.(*corev1.Node), o.(*corev1.Node); !apiequality.Semantic.DeepEqual(on.Labels, nn.Labels) || !apiequality.Semantic.DeepEqual(on.Spec.Taints, nn.Spec.Taints) {
			all(o)
		}
	}, DeleteFunc: all}); err != nil {
		return nil, err
	}
	owner := func(o any) (string, *corev1.Pod, bool) {
		if tomb, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = tomb.Obj
		}
		pod, ok := o.(*corev1.Pod)
		if !ok {
			return "", nil, false
		}
		ref := metav1.GetControllerOf(pod)
		if ref == nil || ref.Kind != "DaemonSet" {
			return "", nil, false
		}
		return pod.Namespace + "/" + ref.Name, pod, true
	}
	_, err := p.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if key, _, ok := owner(o); ok {
				c.expect.Added(key)
				c.queue.Add(key)
			}
		},
		UpdateFunc: func(old, o any) {
			if key, pod, ok := owner(o); ok {
				if pod.DeletionTimestamp != nil && old.(*corev1.Pod).DeletionTimestamp == nil {
					c.expect.Deleted(key, pod.Namespace+"/"+pod.Name)
				}
				c.queue.Add(key)
			}
		},
		DeleteFunc: func(o any) {
			if key, pod, ok := owner(o); ok {
				c.expect.Deleted(key, pod.Namespace+"/"+pod.Name)
				c.queue.Add(key)
			}
		},
	})
	return c, err
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	ds, err := c.sets.DaemonSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Forget(key)
		return nil
	}
	if err != nil || ds.DeletionTimestamp != nil {
		return err
	}
	rev, revs, err := history.Ensure(ctx, c.client, c.revisions, ds, gvk, ds.Spec.Template, ds.Status.CollisionCount)
	if errors.Is(err, history.ErrCollision) {
		upd := ds.DeepCopy()
		upd.Status.CollisionCount = ptr.To(ptr.Deref(ds.Status.CollisionCount, 0) + 1)
		_, err = c.client.AppsV1().DaemonSets(ns).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	hash := rev[len(ds.Name)+1:]
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	byNode := map[string][]*corev1.Pod{}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, p := range all {
		if metav1.IsControlledBy(p, ds) && p.DeletionTimestamp == nil {
			byNode[nodeOf(p)] = append(byNode[nodeOf(p)], p)
		}
	}
	p := decide(ds, nodes, byNode, hash)
	if c.expect.Satisfied(key) {
		if err := c.apply(ctx, key, ds, hash, p.creates, p.deletes); err != nil {
			return err
		}
	} else {
		c.queue.AddAfter(key, c.expect.Expiry(key))
	}
	if apiequality.Semantic.DeepEqual(p.status, ds.Status) {
		return history.Prune(ctx, c.client, revs, int(ptr.Deref(ds.Spec.RevisionHistoryLimit, 10)), rev)
	}
	upd := ds.DeepCopy()
	upd.Status = p.status
	if _, err := c.client.AppsV1().DaemonSets(ns).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return history.Prune(ctx, c.client, revs, int(ptr.Deref(ds.Spec.RevisionHistoryLimit, 10)), rev)
}

// apply creates the planned pods and deletes the planned ones, expecting
// each so the next sync waits until the informer has seen them.
func (c *Controller) apply(ctx context.Context, key string, ds *appsv1.DaemonSet, hash string, creates []string, deletes []*corev1.Pod) error {
	if len(creates) == 0 && len(deletes) == 0 {
		return nil
	}
	var keys []string
	for _, p := range deletes {
		keys = append(keys, p.Namespace+"/"+p.Name)
	}
	c.expect.Expect(key, len(creates), keys)
	var firstErr error
	for _, node := range creates {
		p, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, newPod(ds, node, hash), metav1.CreateOptions{})
		if err != nil {
			c.expect.Added(key)
			c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			firstErr = errors.Join(firstErr, err)
			continue
		}
		c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", p.Name)
	}
	for _, p := range deletes {
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			c.expect.Deleted(key, p.Namespace+"/"+p.Name)
			firstErr = errors.Join(firstErr, err)
			continue
		}
		c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
	}
	return firstErr
}
