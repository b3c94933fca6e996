// Package resourcequota keeps ResourceQuota status: hard limits as
// specified and current usage in the namespace. (Enforcing quota at
// admission is the API server's part and comes later.)
package resourcequota

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/quota"
)

// resync recounts objects no informer here follows (configmaps, secrets,
// count/<anything>) this often.
const resync = 15 * time.Second

// Controller is the ResourceQuota controller.
type Controller struct {
	client   kubernetes.Interface
	metadata metadata.Interface
	// mapper finds the served version of a counted resource (custom
	// resources are seldom v1), refreshed when one is not found.
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	quotas   corelisters.ResourceQuotaLister
	pods     corelisters.PodLister
	services corelisters.ServiceLister
	claims   corelisters.PersistentVolumeClaimLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	clock    clock.WithTicker
	log      *slog.Logger
}

// New registers the controller's informer handlers.
func New(cc *controller.Context) (controller.Controller, error) {
	f := cc.Informers.Core().V1()
	q, p, s, pvc := f.ResourceQuotas(), f.Pods(), f.Services(), f.PersistentVolumeClaims()
	c := &Controller{
		client: cc.Client, metadata: cc.Metadata, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cc.Client.Discovery())), quotas: q.Lister(), pods: p.Lister(), services: s.Lister(), claims: pvc.Lister(),
		synced: []cache.InformerSynced{q.Informer().HasSynced, p.Informer().HasSynced, s.Informer().HasSynced, pvc.Informer().HasSynced},
		queue:  work.NewQueue[string]("resourcequota"),
		clock:  cc.Clock, log: cc.Log.With("controller", "resourcequota"),
	}
	// Admission charges every create to status.used at once; the
	// controller recounts only where usage can drop or the limits change
	// (upstream's replenishment), plus the periodic resync. Recounting on
	// every create or every charge would race admission with lagging
	// listers and write usage back down, letting a burst of creates
	// overrun the quota.
	if _, err := q.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueueNS,
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.ResourceQuota), cur.(*corev1.ResourceQuota)
			if !apiequality.Semantic.DeepEqual(o.Spec, n.Spec) || !apiequality.Semantic.DeepEqual(n.Spec.Hard, n.Status.Hard) {
				c.enqueueNS(cur)
			}
		},
	}); err != nil {
		return nil, err
	}
	replenish := map[cache.SharedIndexInformer]func(old, cur any) bool{
		p.Informer():   podReleases,
		s.Informer():   serviceReleases,
		pvc.Informer(): claimReleases,
	}
	for inf, releases := range replenish {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(old, cur any) {
				if releases(old, cur) {
					c.enqueueNS(cur)
				}
			},
			DeleteFunc: c.enqueueNS,
		}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// podReleases: a pod that finishes stops counting against compute quotas.
func podReleases(old, cur any) bool {
	o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
	terminal := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}
	return terminal(n) != terminal(o) || !apiequality.Semantic.DeepEqual(o.Spec.Containers, n.Spec.Containers)
}

// serviceReleases: a type change moves node ports and load balancers.
func serviceReleases(old, cur any) bool {
	return old.(*corev1.Service).Spec.Type != cur.(*corev1.Service).Spec.Type
}

// claimReleases: a claim's requested storage can change.
func claimReleases(old, cur any) bool {
	o, n := old.(*corev1.PersistentVolumeClaim), cur.(*corev1.PersistentVolumeClaim)
	return !apiequality.Semantic.DeepEqual(o.Spec.Resources, n.Spec.Resources)
}

// enqueueNS queues the namespace of a changed object (its quotas are
// recomputed together).
func (c *Controller) enqueueNS(o any) {
	if tomb, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = tomb.Obj
	}
	if m, ok := o.(metav1.Object); ok {
		if qs, _ := c.quotas.ResourceQuotas(m.GetNamespace()).List(labels.Everything()); len(qs) > 0 {
			c.queue.Add(m.GetNamespace())
		}
	}
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	if !work.WaitForSync(ctx, c.synced...) {
		return
	}
	go work.Every(ctx, c.clock, resync, func() {
		qs, _ := c.quotas.List(labels.Everything())
		for _, q := range qs {
			c.queue.Add(q.Namespace)
		}
	})
	work.Work(ctx, c.log, c.queue, workers, c.sync)
}

func (c *Controller) sync(ctx context.Context, ns string) error {
	quotas, err := c.quotas.ResourceQuotas(ns).List(labels.Everything())
	if err != nil || len(quotas) == 0 {
		return err
	}
	pods, _ := c.pods.Pods(ns).List(labels.Everything())
	services, _ := c.services.Services(ns).List(labels.Everything())
	claims, _ := c.claims.PersistentVolumeClaims(ns).List(labels.Everything())
	counts, err := c.count(ctx, ns, quotas)
	if err != nil {
		return err
	}
	for _, q := range quotas {
		used := quota.Usage(q.Spec.Hard, pods, services, claims, counts)
		if quota.Scoped(q.Spec) {
			used = quota.Usage(q.Spec.Hard, quota.InScope(q.Spec, pods), nil, nil, nil)
		}
		st := corev1.ResourceQuotaStatus{Hard: q.Spec.Hard.DeepCopy(), Used: used}
		if apiequality.Semantic.DeepEqual(st, q.Status) {
			continue
		}
		upd := q.DeepCopy()
		upd.Status = st
		if _, err := c.client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// count lists (metadata only) the object kinds the quotas count that no
// informer here follows; keys are "configmaps", "deployments.apps", ...
func (c *Controller) count(ctx context.Context, ns string, quotas []*corev1.ResourceQuota) (map[string]int64, error) {
	out := map[string]int64{}
	for _, q := range quotas {
		for name := range q.Spec.Hard {
			key := strings.TrimPrefix(string(name), "count/")
			if _, done := out[key]; done || !strings.HasPrefix(string(name), "count/") && key != "configmaps" && key != "secrets" && key != "replicationcontrollers" && key != "resourcequotas" {
				continue
			}
			resourceName, group, _ := strings.Cut(key, ".")
			gvr, ok := c.servedVersion(schema.GroupResource{Group: group, Resource: resourceName})
			if !ok {
				continue
			}
			l, err := c.metadata.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, err
			}
			out[key] = int64(len(l.Items))
		}
	}
	return out, nil
}

// servedVersion is gr at its preferred served version, asking discovery
// again once when gr is not known (it may be a new custom resource).
func (c *Controller) servedVersion(gr schema.GroupResource) (schema.GroupVersionResource, bool) {
	gvr, err := c.mapper.ResourceFor(gr.WithVersion(""))
	if err != nil {
		c.mapper.Reset()
		if gvr, err = c.mapper.ResourceFor(gr.WithVersion("")); err != nil {
			return schema.GroupVersionResource{}, false
		}
	}
	return gvr, true
}
