// Package podgc deletes pods nothing else will: finished pods beyond a
// threshold, pods bound to nodes that no longer exist, and unscheduled pods
// that are terminating.
package podgc

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
)

const (
	// checkPeriod and quarantine are upstream's: a pod's node must be
	// missing for quarantine before the pod counts as orphaned, so a node
	// that is being re-registered does not lose its pods.
	checkPeriod = 20 * time.Second
	quarantine  = 40 * time.Second
	// DefaultThreshold is --terminated-pod-gc-threshold's upstream default.
	DefaultThreshold = 12500
)

// Controller is the pod garbage collector.
type Controller struct {
	client    kubernetes.Interface
	pods      corelisters.PodLister
	nodes     corelisters.NodeLister
	synced    []cache.InformerSynced
	clock     clock.WithTicker
	log       *slog.Logger
	threshold int
	missing   map[string]time.Time // node name → first seen missing
}

// New builds the controller; Settings.TerminatedPodThreshold (default
// DefaultThreshold) bounds how many finished pods are kept.
func New(cc *controller.Context) (controller.Controller, error) {
	p, n := cc.Informers.Core().V1().Pods(), cc.Informers.Core().V1().Nodes()
	threshold := cc.Settings.TerminatedPodThreshold
	if threshold <= 0 {
		threshold = DefaultThreshold
	}
	return &Controller{
		client: cc.Client, pods: p.Lister(), nodes: n.Lister(),
		synced: []cache.InformerSynced{p.Informer().HasSynced, n.Informer().HasSynced},
		clock:  cc.Clock, log: cc.Log.With("controller", "pod-garbage-collector"),
		threshold: threshold, missing: map[string]time.Time{},
	}, nil
}

// Run implements controller.Controller; the collector scans periodically.
func (c *Controller) Run(ctx context.Context, _ int) {
	if !work.WaitForSync(ctx, c.synced...) {
		return
	}
	work.Every(ctx, c.clock, checkPeriod, func() { c.collect(ctx) })
}

func (c *Controller) collect(ctx context.Context) {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return
	}
	now := c.clock.Now()
	for _, p := range Plan(pods, c.nodeState(pods, now), c.threshold) {
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			c.log.Warn("delete pod", "pod", p.Namespace+"/"+p.Name, "err", err)
		}
	}
}

// nodeState reports, per node name pods are bound to, whether the node has
// been missing for longer than the quarantine.
func (c *Controller) nodeState(pods []*corev1.Pod, now time.Time) map[string]bool {
	gone := map[string]bool{}
	seen := map[string]bool{}
	for _, p := range pods {
		n := p.Spec.NodeName
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if _, err := c.nodes.Get(n); err == nil {
			delete(c.missing, n)
			continue
		}
		first, ok := c.missing[n]
		if !ok {
			c.missing[n] = now
			continue
		}
		gone[n] = now.Sub(first) >= quarantine
	}
	for n := range c.missing {
		if !seen[n] {
			delete(c.missing, n)
		}
	}
	return gone
}

// Plan picks the pods to delete: pods on nodes gone past quarantine,
// terminating unscheduled pods, and the oldest finished pods beyond
// threshold.
func Plan(pods []*corev1.Pod, nodeGone map[string]bool, threshold int) []*corev1.Pod {
	var out, finished []*corev1.Pod
	for _, p := range pods {
		switch {
		case p.Spec.NodeName != "" && nodeGone[p.Spec.NodeName]:
			out = append(out, p)
		case p.Spec.NodeName == "" && p.DeletionTimestamp != nil:
			out = append(out, p)
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			if p.DeletionTimestamp == nil {
				finished = append(finished, p)
			}
		}
	}
	if extra := len(finished) - threshold; extra > 0 {
		sort.Slice(finished, func(i, j int) bool { return finished[i].CreationTimestamp.Before(&finished[j].CreationTimestamp) })
		out = append(out, finished[:extra]...)
	}
	return out
}
