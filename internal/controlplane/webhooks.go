package controlplane

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// serviceEndpoint resolves a Service port for the API server's own calls
// (admission and conversion webhooks, aggregated APIs) to one of its ready
// endpoints, as upstream's --enable-aggregator-routing does: the API server
// reaches pods directly and needs no service proxy on its machine. A
// Service without selector-made endpoints (an ExternalName or a headless
// one with none ready) falls back to its cluster IP.
func serviceEndpoint(reg *registry.Registry) func(ctx context.Context, namespace, name string, port int32) (string, error) {
	return func(ctx context.Context, namespace, name string, port int32) (string, error) {
		svcRes := reg.Lookup(corev1.SchemeGroupVersion.WithResource("services"))
		o := reg.Cache(svcRes).Get(svcRes.Key(namespace, name))
		if o == nil {
			return "", fmt.Errorf("service %q not found", namespace+"/"+name)
		}
		svc := o.Obj.(*corev1.Service)
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			return net.JoinHostPort(svc.Spec.ExternalName, strconv.Itoa(int(port))), nil
		}
		var sp *corev1.ServicePort
		for i := range svc.Spec.Ports {
			if svc.Spec.Ports[i].Port == port {
				sp = &svc.Spec.Ports[i]
			}
		}
		if sp == nil {
			return "", fmt.Errorf("service %q has no port %d", namespace+"/"+name, port)
		}
		sliceRes := reg.Lookup(discoveryv1.SchemeGroupVersion.WithResource("endpointslices"))
		slices, _ := reg.Cache(sliceRes).Snapshot(storage.Filter{KeyPrefix: namespace + "/",
			Labels: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})})
		var ready []string
		for _, so := range slices {
			sl := so.Obj.(*discoveryv1.EndpointSlice)
			var target int32
			for _, p := range sl.Ports {
				if p.Port != nil && (p.Name == nil && sp.Name == "" || p.Name != nil && *p.Name == sp.Name) {
					target = *p.Port
				}
			}
			if target == 0 {
				continue
			}
			for _, ep := range sl.Endpoints {
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					continue
				}
				for _, addr := range ep.Addresses {
					ready = append(ready, net.JoinHostPort(addr, strconv.Itoa(int(target))))
				}
			}
		}
		if len(ready) > 0 {
			return ready[rand.IntN(len(ready))], nil
		}
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			return "", fmt.Errorf("service %q has no ready endpoints", namespace+"/"+name)
		}
		return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(port))), nil
	}
}
