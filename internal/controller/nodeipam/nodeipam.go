package nodeipam

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Defaults, as upstream's kube-controller-manager with k3s's cluster CIDR.
const (
	DefaultClusterCIDR = "10.42.0.0/16"
	DefaultMaskSize    = 24
)

// Controller assigns pod CIDRs to Nodes that have none.
type Controller struct {
	client kubernetes.Interface
	nodes  corelisters.NodeLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	events record.EventRecorder
	log    *slog.Logger

	mu    sync.Mutex
	alloc *Allocator
	// owner maps each CIDR taken from the range to the node holding it.
	owner map[string]string
}

// New builds the controller over the cluster CIDR in cc.Settings.
func New(cc *controller.Context) (controller.Controller, error) {
	cidr, mask := cc.Settings.ClusterCIDR, cc.Settings.NodeCIDRMaskSize
	if cidr == "" {
		cidr = DefaultClusterCIDR
	}
	if mask == 0 {
		mask = DefaultMaskSize
	}
	alloc, err := NewAllocator(cidr, mask)
	if err != nil {
		return nil, err
	}
	inf := cc.Informers.Core().V1().Nodes()
	c := &Controller{client: cc.Client, nodes: inf.Lister(), synced: inf.Informer().HasSynced,
		queue: work.NewQueue[string]("nodeipam"), events: cc.Recorder("node-ipam-controller"),
		log: cc.Log.With("controller", "node-ipam"), alloc: alloc, owner: map[string]string{}}
	_, err = inf.Informer().AddEventHandler(work.OnChange(work.Enqueue(c.queue)))
	return c, err
}

// Run takes every CIDR the existing Nodes hold before handing out any.
func (c *Controller) Run(ctx context.Context, workers int) {
	if !work.WaitForSync(ctx, c.synced) {
		return
	}
	nodes, _ := c.nodes.List(labels.Everything())
	c.mu.Lock()
	for _, n := range nodes {
		c.occupyLocked(n)
	}
	c.mu.Unlock()
	work.Work(ctx, c.log, c.queue, 1, c.sync)
}

func (c *Controller) occupyLocked(n *corev1.Node) {
	for _, cidr := range n.Spec.PodCIDRs {
		if holder, ok := c.owner[cidr]; ok && holder != n.Name {
			c.log.Warn("two nodes hold one pod CIDR", "cidr", cidr, "nodes", []string{holder, n.Name})
			continue
		}
		if c.alloc.Occupy(cidr) {
			c.owner[cidr] = n.Name
		}
	}
}

func (c *Controller) sync(ctx context.Context, name string) error {
	n, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.releaseNode(name)
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	if len(n.Spec.PodCIDRs) > 0 || n.Spec.PodCIDR != "" {
		c.occupyLocked(n)
		c.mu.Unlock()
		return nil
	}
	cidr, err := c.alloc.Allocate()
	if err == nil {
		c.owner[cidr] = n.Name
	}
	c.mu.Unlock()
	if err != nil {
		c.events.Eventf(n, corev1.EventTypeNormal, "CIDRNotAvailable", "Node %s status is now: CIDRNotAvailable", n.Name)
		return err
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"podCIDR": cidr, "podCIDRs": []string{cidr}}})
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, n.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		c.mu.Lock()
		c.alloc.Release(cidr)
		delete(c.owner, cidr)
		c.mu.Unlock()
		if apierrors.IsNotFound(err) {
			return nil
		}
		c.events.Eventf(n, corev1.EventTypeWarning, "CIDRAssignmentFailed", "Node %s status is now: CIDRAssignmentFailed", n.Name)
		return fmt.Errorf("assign pod CIDR %s to node %s: %w", cidr, n.Name, err)
	}
	c.log.Info("assigned pod CIDR", "node", n.Name, "cidr", cidr)
	return nil
}

// releaseNode frees what a deleted node held.
func (c *Controller) releaseNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for cidr, holder := range c.owner {
		if holder == name {
			c.alloc.Release(cidr)
			delete(c.owner, cidr)
		}
	}
}
