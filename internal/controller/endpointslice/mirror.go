package endpointslice

import (
	"context"
	"log/slog"
	"net"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
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
)

const (
	// mirrorManagedBy marks the slices the mirroring controller owns.
	mirrorManagedBy = "endpointslicemirroring-controller.k8s.io"
	// skipMirrorLabel opts an Endpoints object out (the apiserver's own
	// kubernetes Endpoints carries it).
	skipMirrorLabel = "endpointslice.kubernetes.io/skip-mirror"
)

// Mirror copies hand-written Endpoints of selector-less Services into
// EndpointSlices, so slice consumers (proxy, DNS) see them too.
type Mirror struct {
	client    kubernetes.Interface
	services  corelisters.ServiceLister
	endpoints corelisters.EndpointsLister
	slices    discoverylisters.EndpointSliceLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	log       *slog.Logger
}

// NewMirror registers the mirroring controller's informer handlers.
func NewMirror(cc *controller.Context) (controller.Controller, error) {
	svc, ep, es := cc.Informers.Core().V1().Services(), cc.Informers.Core().V1().Endpoints(), cc.Informers.Discovery().V1().EndpointSlices()
	m := &Mirror{
		client: cc.Client, services: svc.Lister(), endpoints: ep.Lister(), slices: es.Lister(),
		synced: []cache.InformerSynced{svc.Informer().HasSynced, ep.Informer().HasSynced, es.Informer().HasSynced},
		queue:  work.NewQueue[string]("endpoint_slice_mirroring"),
		log:    cc.Log.With("controller", "endpointslicemirroring"),
	}
	enqueue := work.Enqueue(m.queue)
	handlers := work.OnChange(enqueue)
	if _, err := svc.Informer().AddEventHandler(handlers); err != nil {
		return nil, err
	}
	if _, err := ep.Informer().AddEventHandler(handlers); err != nil {
		return nil, err
	}
	return m, nil
}

// Run implements controller.Controller.
func (m *Mirror) Run(ctx context.Context, workers int) {
	work.Serve(ctx, m.log, m.queue, workers, m.sync, m.synced...)
}

func (m *Mirror) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	existing, err := m.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: mirrorManagedBy}))
	if err != nil {
		return err
	}
	var want []*discoveryv1.EndpointSlice
	svc, serr := m.services.Services(ns).Get(name)
	ep, eerr := m.endpoints.Endpoints(ns).Get(name)
	switch {
	case serr != nil && !apierrors.IsNotFound(serr):
		return serr
	case eerr != nil && !apierrors.IsNotFound(eerr):
		return eerr
	case serr == nil && eerr == nil && len(svc.Spec.Selector) == 0 && ep.Labels[skipMirrorLabel] != "true":
		want = Mirrored(ep)
	}
	return apply(ctx, m.client, ns, name, existing, want)
}

// Mirrored builds slices from an Endpoints object: one per subset and
// address family, ready addresses ready, not-ready ones not.
func Mirrored(ep *corev1.Endpoints) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for _, sub := range ep.Subsets {
		byFamily := map[discoveryv1.AddressType][]discoveryv1.Endpoint{}
		addrs := func(list []corev1.EndpointAddress, ready bool) {
			for _, a := range list {
				family := discoveryv1.AddressTypeIPv4
				if ip := net.ParseIP(a.IP); ip != nil && ip.To4() == nil {
					family = discoveryv1.AddressTypeIPv6
				}
				e := discoveryv1.Endpoint{Addresses: []string{a.IP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}, TargetRef: a.TargetRef, NodeName: a.NodeName}
				if a.Hostname != "" {
					e.Hostname = ptr.To(a.Hostname)
				}
				byFamily[family] = append(byFamily[family], e)
			}
		}
		addrs(sub.Addresses, true)
		addrs(sub.NotReadyAddresses, false)
		for _, family := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
			eps := byFamily[family]
			for lo := 0; lo < len(eps); lo += maxEndpoints {
				s := &discoveryv1.EndpointSlice{
					ObjectMeta: metav1.ObjectMeta{
						GenerateName: ep.Name + "-", Namespace: ep.Namespace,
						Labels:          map[string]string{discoveryv1.LabelServiceName: ep.Name, discoveryv1.LabelManagedBy: mirrorManagedBy},
						OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ep, corev1.SchemeGroupVersion.WithKind("Endpoints"))},
					},
					AddressType: family,
					Endpoints:   eps[lo:min(lo+maxEndpoints, len(eps))],
					Ports:       []discoveryv1.EndpointPort{},
				}
				for _, p := range sub.Ports {
					s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr.To(p.Name), Port: ptr.To(p.Port), Protocol: ptr.To(p.Protocol), AppProtocol: p.AppProtocol})
				}
				out = append(out, s)
			}
		}
	}
	return out
}
