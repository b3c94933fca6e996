// Package nodelifecycle watches node heartbeats (Leases and the Ready
// condition): a node silent for longer than the grace period is marked
// Unknown and tainted unreachable (not-ready when its agent reports
// Ready=False), at a bounded rate; pods on nodes with NoExecute taints are
// evicted once their tolerationSeconds run out.
package nodelifecycle

import (
	"context"
	"log/slog"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Defaults, as upstream's kube-controller-manager.
const (
	DefaultGracePeriod  = 40 * time.Second
	DefaultEvictionRate = 0.1 // nodes per second newly given NoExecute taints
	maxMonitorPeriod    = 5 * time.Second
	byNodeIndex         = "spec.nodeName"
)

// Controller is the node lifecycle controller.
type Controller struct {
	client   kubernetes.Interface
	nodes    corelisters.NodeLister
	leases   coordinationlisters.LeaseLister
	pods     cache.Indexer
	synced   []cache.InformerSynced
	recorder record.EventRecorder
	clock    clock.WithTicker
	log      *slog.Logger
	grace    time.Duration
	limiter  flowcontrol.RateLimiter
}

// New builds the controller from Settings.NodeGracePeriod and
// Settings.NodeEvictionRate (defaults above).
func New(cc *controller.Context) (controller.Controller, error) {
	n, l, p := cc.Informers.Core().V1().Nodes(), cc.Informers.Coordination().V1().Leases(), cc.Informers.Core().V1().Pods()
	if err := p.Informer().AddIndexers(cache.Indexers{byNodeIndex: func(o any) ([]string, error) {
		if pod, ok := o.(*corev1.Pod); ok && pod.Spec.NodeName != "" {
			return []string{pod.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, err
	}
	grace, rate := cc.Settings.NodeGracePeriod, cc.Settings.NodeEvictionRate
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	if rate <= 0 {
		rate = DefaultEvictionRate
	}
	return &Controller{
		client: cc.Client, nodes: n.Lister(), leases: l.Lister(), pods: p.Informer().GetIndexer(),
		synced:   []cache.InformerSynced{n.Informer().HasSynced, l.Informer().HasSynced, p.Informer().HasSynced},
		recorder: cc.Recorder("node-controller"),
		clock:    cc.Clock, log: cc.Log.With("controller", "node-lifecycle"),
		grace: grace, limiter: flowcontrol.NewTokenBucketRateLimiter(float32(rate), 1),
	}, nil
}

// Run implements controller.Controller: the monitor runs periodically.
func (c *Controller) Run(ctx context.Context, _ int) {
	if !work.WaitForSync(ctx, c.synced...) {
		return
	}
	period := min(maxMonitorPeriod, c.grace/4)
	work.Every(ctx, c.clock, period, func() { c.monitor(ctx) })
}

func (c *Controller) monitor(ctx context.Context) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return
	}
	now := c.clock.Now()
	for _, n := range nodes {
		if err := c.checkNode(ctx, n, now); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			c.log.Warn("node check", "node", n.Name, "err", err)
		}
	}
}

func (c *Controller) checkNode(ctx context.Context, n *corev1.Node, now time.Time) error {
	lease, _ := c.leases.Leases(corev1.NamespaceNodeLease).Get(n.Name)
	if now.Sub(heartbeat(n, lease)) > c.grace {
		upd := n.DeepCopy()
		if markUnknown(upd, now) {
			c.recorder.Eventf(n, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", n.Name)
			out, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, upd, metav1.UpdateOptions{})
			if err != nil {
				return err
			}
			n = out
		}
	}
	want := wantTaints(n)
	taints, changed := reconcileTaints(n.Spec.Taints, want, now)
	if changed && addsNoExecute(n.Spec.Taints, taints) && !c.limiter.TryAccept() {
		// Over the eviction rate: taint only NoSchedule now, NoExecute later.
		taints, changed = reconcileTaints(n.Spec.Taints, noSchedule(want), now)
	}
	if changed {
		upd := n.DeepCopy()
		upd.Spec.Taints = taints
		out, err := c.client.CoreV1().Nodes().Update(ctx, upd, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		n = out
	}
	return c.evict(ctx, n, now)
}

func addsNoExecute(before, after []corev1.Taint) bool {
	has := map[string]bool{}
	for _, t := range before {
		if t.Effect == corev1.TaintEffectNoExecute {
			has[t.Key] = true
		}
	}
	for _, t := range after {
		if t.Effect == corev1.TaintEffectNoExecute && !has[t.Key] {
			return true
		}
	}
	return false
}

func noSchedule(ts []corev1.Taint) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range ts {
		if t.Effect == corev1.TaintEffectNoSchedule {
			out = append(out, t)
		}
	}
	return out
}

// evict deletes the node's pods whose toleration of its NoExecute taints
// has run out.
func (c *Controller) evict(ctx context.Context, n *corev1.Node, now time.Time) error {
	if len(n.Spec.Taints) == 0 {
		return nil
	}
	objs, err := c.pods.ByIndex(byNodeIndex, n.Name)
	if err != nil {
		return err
	}
	for _, o := range objs {
		p := o.(*corev1.Pod)
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		at, ok := evictAt(p, n.Spec.Taints, now)
		if !ok || now.Before(at) {
			continue
		}
		c.recorder.Eventf(p, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s", p.Namespace, p.Name)
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	return nil
}
