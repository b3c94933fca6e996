// Package endpoints keeps each selector Service's core/v1 Endpoints: ready
// and not-ready pod addresses, grouped into subsets by the ports they serve.
package endpoints

import (
	"context"
	"log/slog"
	"sort"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/servicepods"
)

// Controller is the Endpoints controller.
type Controller struct {
	client    kubernetes.Interface
	services  corelisters.ServiceLister
	pods      corelisters.PodLister
	endpoints corelisters.EndpointsLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	log       *slog.Logger
}

// New registers the controller's informer handlers.
func New(cc *controller.Context) (controller.Controller, error) {
	svc := cc.Informers.Core().V1().Services()
	pod := cc.Informers.Core().V1().Pods()
	ep := cc.Informers.Core().V1().Endpoints()
	c := &Controller{
		client: cc.Client, services: svc.Lister(), pods: pod.Lister(), endpoints: ep.Lister(),
		synced: []cache.InformerSynced{svc.Informer().HasSynced, pod.Informer().HasSynced, ep.Informer().HasSynced},
		queue:  work.NewQueue[string]("endpoint"),
		log:    cc.Log.With("controller", "endpoints"),
	}
	err := servicepods.Watch(svc.Informer(), pod.Informer(), c.services, func(k string) { c.queue.Add(k) })
	return c, err
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The Service is gone, and so are its Endpoints, as upstream.
		err = c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if !servicepods.Selects(svc) {
		return nil
	}
	pods, err := servicepods.Pods(c.pods, svc)
	if err != nil {
		return err
	}
	want := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: endpointLabels(svc)},
		Subsets:    Subsets(svc, pods),
	}
	cur, err := c.endpoints.Endpoints(ns).Get(name)
	if apierrors.IsNotFound(err) {
		_, err = c.client.CoreV1().Endpoints(ns).Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return work.RetryAfter(0)
		}
		return err
	}
	if err != nil {
		return err
	}
	if apiequality.Semantic.DeepEqual(cur.Subsets, want.Subsets) && apiequality.Semantic.DeepEqual(cur.Labels, want.Labels) {
		return nil
	}
	upd := cur.DeepCopy()
	upd.Subsets, upd.Labels = want.Subsets, want.Labels
	_, err = c.client.CoreV1().Endpoints(ns).Update(ctx, upd, metav1.UpdateOptions{})
	return err
}

// endpointLabels are the Service's labels plus the headless marker, as
// upstream.
func endpointLabels(svc *corev1.Service) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Labels {
		out[k] = v
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		out[corev1.IsHeadlessService] = ""
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Subsets builds the Endpoints subsets: one per distinct port list, with
// ready and not-ready addresses each sorted by IP.
func Subsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	type group struct {
		ports        []servicepods.Port
		ready, unrdy []corev1.EndpointAddress
	}
	groups := map[string]*group{}
	for _, p := range pods {
		if !servicepods.Include(p, svc) {
			continue
		}
		ports := servicepods.Ports(svc, p)
		if len(ports) == 0 && len(svc.Spec.Ports) > 0 {
			continue
		}
		k := servicepods.Key(ports)
		g := groups[k]
		if g == nil {
			g = &group{ports: ports}
			groups[k] = g
		}
		addr := corev1.EndpointAddress{
			IP:        p.Status.PodIP,
			Hostname:  servicepods.Hostname(p, svc),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		}
		if p.Spec.NodeName != "" {
			addr.NodeName = &p.Spec.NodeName
		}
		if servicepods.Ready(p) || svc.Spec.PublishNotReadyAddresses {
			g.ready = append(g.ready, addr)
		} else {
			g.unrdy = append(g.unrdy, addr)
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []corev1.EndpointSubset
	for _, k := range keys {
		g := groups[k]
		byIP := func(a []corev1.EndpointAddress) {
			sort.Slice(a, func(i, j int) bool { return a[i].IP < a[j].IP })
		}
		byIP(g.ready)
		byIP(g.unrdy)
		sub := corev1.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.unrdy}
		for _, p := range g.ports {
			sub.Ports = append(sub.Ports, corev1.EndpointPort{Name: p.Name, Port: p.Port, Protocol: p.Protocol, AppProtocol: p.AppProtocol})
		}
		out = append(out, sub)
	}
	return out
}
