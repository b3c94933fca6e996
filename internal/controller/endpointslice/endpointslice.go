// Package endpointslice keeps each selector Service's EndpointSlices: one
// endpoint per pod with ready/serving/terminating conditions, grouped by the
// ports the pods serve and by address family, at most 100 to a slice.
package endpointslice

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/servicepods"
)

const (
	// maxEndpoints per slice, upstream's default.
	maxEndpoints = 100
	// managedBy marks the slices this controller owns.
	managedBy = "endpointslice-controller.k8s.io"
)

// Controller is the EndpointSlice controller.
type Controller struct {
	client   kubernetes.Interface
	services corelisters.ServiceLister
	pods     corelisters.PodLister
	slices   discoverylisters.EndpointSliceLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	log      *slog.Logger
}

// New registers the controller's informer handlers.
func New(cc *controller.Context) (controller.Controller, error) {
	svc := cc.Informers.Core().V1().Services()
	pod := cc.Informers.Core().V1().Pods()
	es := cc.Informers.Discovery().V1().EndpointSlices()
	c := &Controller{
		client: cc.Client, services: svc.Lister(), pods: pod.Lister(), slices: es.Lister(),
		synced: []cache.InformerSynced{svc.Informer().HasSynced, pod.Informer().HasSynced, es.Informer().HasSynced},
		queue:  work.NewQueue[string]("endpoint_slice"),
		log:    cc.Log.With("controller", "endpointslice"),
	}
	if err := servicepods.Watch(svc.Informer(), pod.Informer(), c.services, func(k string) { c.queue.Add(k) }); err != nil {
		return nil, err
	}
	// A slice changed or removed by someone else is put back.
	sliceChanged := func(o any) {
		if tomb, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = tomb.Obj
		}
		if s, ok := o.(*discoveryv1.EndpointSlice); ok && s.Labels[discoveryv1.LabelManagedBy] == managedBy {
			c.queue.Add(s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName])
		}
	}
	_, err := es.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(_, o any) { sliceChanged(o) }, DeleteFunc: sliceChanged})
	return c, err
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	existing, err := c.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: managedBy}))
	if err != nil {
		return err
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // the slices are owned by the Service: the GC removes them
	}
	if err != nil {
		return err
	}
	if !servicepods.Selects(svc) {
		// As upstream: a Service without a selector gets its slices from
		// someone else (the API server's own "kubernetes" slice, an
		// operator's), and this controller leaves whatever is there alone.
		return nil
	}
	pods, err := servicepods.Pods(c.pods, svc)
	if err != nil {
		return err
	}
	want := Desired(svc, pods)
	return apply(ctx, c.client, svc.Namespace, svc.Name, existing, want)
}

// apply turns the existing slices into the wanted ones: slices of the same
// address type and ports are reused in name order, the rest created or
// deleted.
func apply(ctx context.Context, client kubernetes.Interface, ns, service string, existing, want []*discoveryv1.EndpointSlice) error {
	free := map[string][]*discoveryv1.EndpointSlice{}
	sort.Slice(existing, func(i, j int) bool { return existing[i].Name < existing[j].Name })
	for _, s := range existing {
		k := shapeKey(s)
		free[k] = append(free[k], s)
	}
	api := client.DiscoveryV1().EndpointSlices(ns)
	for _, w := range want {
		k := shapeKey(w)
		if len(free[k]) == 0 {
			if _, err := api.Create(ctx, w, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create EndpointSlice for %s/%s: %w", ns, service, err)
			}
			continue
		}
		cur := free[k][0]
		free[k] = free[k][1:]
		if apiequality.Semantic.DeepEqual(cur.Endpoints, w.Endpoints) && apiequality.Semantic.DeepEqual(cur.Labels, w.Labels) && len(cur.OwnerReferences) == 1 {
			continue
		}
		upd := cur.DeepCopy()
		upd.Endpoints, upd.Labels, upd.OwnerReferences = w.Endpoints, w.Labels, w.OwnerReferences
		if _, err := api.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	for _, rest := range free {
		for _, s := range rest {
			if err := api.Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// shapeKey identifies slices that can hold the same endpoints.
func shapeKey(s *discoveryv1.EndpointSlice) string {
	k := string(s.AddressType) + "|"
	for _, p := range s.Ports {
		k += fmt.Sprintf("%s/%s/%d;", ptr.Deref(p.Name, ""), ptr.Deref(p.Protocol, ""), ptr.Deref(p.Port, 0))
	}
	return k
}

// Desired computes the slices a Service should have for its pods.
func Desired(svc *corev1.Service, pods []*corev1.Pod) []*discoveryv1.EndpointSlice {
	type group struct {
		family    discoveryv1.AddressType
		ports     []servicepods.Port
		endpoints []discoveryv1.Endpoint
	}
	groups := map[string]*group{}
	for _, p := range pods {
		// Unlike Endpoints, slices keep terminating pods, marked as such.
		if p.Status.PodIP == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ports := servicepods.Ports(svc, p)
		family := discoveryv1.AddressTypeIPv4
		if ip := net.ParseIP(p.Status.PodIP); ip != nil && ip.To4() == nil {
			family = discoveryv1.AddressTypeIPv6
		}
		k := string(family) + "|" + servicepods.Key(ports)
		g := groups[k]
		if g == nil {
			g = &group{family: family, ports: ports}
			groups[k] = g
		}
		terminating := p.DeletionTimestamp != nil
		ready := servicepods.Ready(p)
		ep := discoveryv1.Endpoint{
			Addresses: []string{p.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{
				Ready:       ptr.To((ready && !terminating) || svc.Spec.PublishNotReadyAddresses),
				Serving:     ptr.To(ready),
				Terminating: ptr.To(terminating),
			},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		}
		if h := servicepods.Hostname(p, svc); h != "" {
			ep.Hostname = &h
		}
		if p.Spec.NodeName != "" {
			ep.NodeName = ptr.To(p.Spec.NodeName)
		}
		g.endpoints = append(g.endpoints, ep)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*discoveryv1.EndpointSlice
	for _, k := range keys {
		g := groups[k]
		sort.Slice(g.endpoints, func(i, j int) bool { return g.endpoints[i].TargetRef.Name < g.endpoints[j].TargetRef.Name })
		for lo := 0; lo < len(g.endpoints); lo += maxEndpoints {
			out = append(out, newSlice(svc, g.family, g.ports, g.endpoints[lo:min(lo+maxEndpoints, len(g.endpoints))]))
		}
	}
	if len(out) == 0 {
		// A Service with no endpoints still gets one empty slice, as upstream.
		out = append(out, newSlice(svc, discoveryv1.AddressTypeIPv4, nil, nil))
	}
	return out
}

func newSlice(svc *corev1.Service, family discoveryv1.AddressType, ports []servicepods.Port, eps []discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	l := map[string]string{}
	for k, v := range svc.Labels {
		l[k] = v
	}
	l[discoveryv1.LabelServiceName], l[discoveryv1.LabelManagedBy] = svc.Name, managedBy
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		l[corev1.IsHeadlessService] = ""
	}
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    svc.Name + "-",
			Namespace:       svc.Namespace,
			Labels:          l,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
		},
		AddressType: family,
		Endpoints:   eps,
	}
	if s.Endpoints == nil {
		s.Endpoints = []discoveryv1.Endpoint{}
	}
	for _, p := range ports {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr.To(p.Name), Port: ptr.To(p.Port), Protocol: ptr.To(p.Protocol), AppProtocol: p.AppProtocol})
	}
	if s.Ports == nil {
		s.Ports = []discoveryv1.EndpointPort{}
	}
	return s
}
