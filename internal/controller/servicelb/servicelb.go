// Package servicelb is the built-in load balancer for bare metal: a
// LoadBalancer Service gets the addresses of the Ready nodes as
// status.loadBalancer.ingress, and every node's service proxy accepts the
// Service's port on them.
package servicelb

import (
	"context"
	"log/slog"
	"net"
	"reflect"
	"sort"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

// excludeLabel takes a node out of every load balancer, as upstream.
const excludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// Controller keeps LoadBalancer Services' ingress addresses current.
type Controller struct {
	client   kubernetes.Interface
	services corelisters.ServiceLister
	nodes    corelisters.NodeLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	log      *slog.Logger
}

// New builds the controller.
func New(cc *controller.Context) (controller.Controller, error) {
	svcs := cc.Informers.Core().V1().Services()
	nodes := cc.Informers.Core().V1().Nodes()
	c := &Controller{client: cc.Client, services: svcs.Lister(), nodes: nodes.Lister(),
		synced: []cache.InformerSynced{svcs.Informer().HasSynced, nodes.Informer().HasSynced},
		queue:  work.NewQueue[string]("service-lb"), log: cc.Log.With("controller", "service-lb")}
	if _, err := svcs.Informer().AddEventHandler(work.OnChange(work.Enqueue(c.queue))); err != nil {
		return nil, err
	}
	// A node joining, leaving or changing what Ingress reads of it may
	// change every balancer's addresses; its other updates (status
	// heartbeats, pods, images) cannot.
	all := func(any) { c.enqueueAll() }
	_, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: all, DeleteFunc: all,
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.Node), cur.(*corev1.Node)
			if !reflect.DeepEqual(Ingress([]*corev1.Node{o}), Ingress([]*corev1.Node{n})) {
				c.enqueueAll()
			}
		},
	})
	return c, err
}

// Run drains the queue until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) enqueueAll() {
	svcs, _ := c.services.List(labels.Everything())
	for _, s := range svcs {
		if ours(s) {
			c.queue.Add(s.Namespace + "/" + s.Name)
		}
	}
}

// ours: LoadBalancer Services that name no other implementation.
func ours(s *corev1.Service) bool {
	return s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.LoadBalancerClass == nil
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var want []corev1.LoadBalancerIngress
	switch {
	case ours(svc):
		nodes, err := c.nodes.List(labels.Everything())
		if err != nil {
			return err
		}
		want = Ingress(nodes)
	case svc.Spec.LoadBalancerClass == nil && len(svc.Status.LoadBalancer.Ingress) > 0:
		// No longer a LoadBalancer: its addresses go, as upstream.
	default:
		return nil
	}
	if reflect.DeepEqual(svc.Status.LoadBalancer.Ingress, want) || len(want) == 0 && len(svc.Status.LoadBalancer.Ingress) == 0 {
		return nil
	}
	up := svc.DeepCopy()
	up.Status.LoadBalancer.Ingress = want
	if _, err := c.client.CoreV1().Services(ns).UpdateStatus(ctx, up, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	c.log.Debug("load balancer addresses", "service", key, "ingress", len(want))
	return nil
}

// Ingress is the addresses a balancer offers: each Ready node's external
// address, else its internal one, sorted; nodes labelled out are skipped.
func Ingress(nodes []*corev1.Node) []corev1.LoadBalancerIngress {
	seen := map[string]bool{}
	var ips []string
	for _, n := range nodes {
		if _, out := n.Labels[excludeLabel]; out || n.DeletionTimestamp != nil || !ready(n) {
			continue
		}
		if ip := address(n); ip != "" && !seen[ip] {
			seen[ip] = true
			ips = append(ips, ip)
		}
	}
	sort.Slice(ips, func(i, j int) bool {
		a, b := net.ParseIP(ips[i]), net.ParseIP(ips[j])
		if a4, b4 := a.To4(), b.To4(); a4 != nil && b4 != nil {
			return string(a4) < string(b4)
		}
		return ips[i] < ips[j]
	})
	var out []corev1.LoadBalancerIngress
	vip := corev1.LoadBalancerIPModeVIP
	for _, ip := range ips {
		out = append(out, corev1.LoadBalancerIngress{IP: ip, IPMode: &vip})
	}
	return out
}

func address(n *corev1.Node) string {
	for _, t := range []corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
		for _, a := range n.Status.Addresses {
			if a.Type == t && net.ParseIP(a.Address) != nil {
				return a.Address
			}
		}
	}
	return ""
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
