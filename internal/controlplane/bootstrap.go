package controlplane

import (
	"context"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller/localpath"
	"github.com/skiff-sh/skiff/internal/dns"
	"github.com/skiff-sh/skiff/internal/ingress"
	"github.com/skiff-sh/skiff/internal/registry"
)

// bootstrapObjects are the objects every cluster starts with.
// storageDir is where the default StorageClass makes volumes on each node.
// clusterDNS, when set, is the ClusterIP of the kube-dns Service; with
// withIngress the skiff IngressClass is the default.
func bootstrapObjects(serviceIP, serviceCIDR, clusterDNS string, withIngress bool, advertise net.IP, port int32, storageDir string) []runtime.Object {
	objs := []runtime.Object{}
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	// Their default ServiceAccounts (the serviceaccount controller makes
	// those of later namespaces): a pod created as soon as the API is
	// ready finds one, which ServiceAccount admission requires.
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		objs = append(objs, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}})
	}
	objs = append(objs,
		&schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "system-node-critical"}, Value: 2000001000, Description: "Used for system critical pods that must not be moved from their current node."},
		&schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "system-cluster-critical"}, Value: 2000000000, Description: "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."},
		localpath.DefaultClass(storageDir),
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
			Spec:       corev1.ServiceSpec{ClusterIP: serviceIP, Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(port)}}, SessionAffinity: corev1.ServiceAffinityNone},
		},
		&corev1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}},
			Subsets:    []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: advertise.String()}}, Ports: []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}}}},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{advertise.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
		},
	)
	// The default ServiceCIDR, named "kubernetes" as upstream's, records
	// the range Service IPs come from.
	objs = append(objs, &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{serviceCIDR}}})
	if clusterDNS != "" {
		objs = append(objs, dns.Service(clusterDNS))
	}
	if withIngress {
		objs = append(objs, ingress.Class())
	}
	return objs
}

// bootstrap creates the built-in objects that are missing.
func bootstrap(ctx context.Context, reg *registry.Registry, objs []runtime.Object) error {
	fresh := map[*registry.Resource]int64{}
	for _, obj := range objs {
		gvks, _, err := reg.Scheme.ObjectKinds(obj)
		if err != nil {
			return err
		}
		var res *registry.Resource
		for _, r := range reg.Resources() {
			if r.GVK() == gvks[0] {
				res = r
			}
		}
		if res == nil {
			return fmt.Errorf("bootstrap: no resource for %s", gvks[0])
		}
		ns := ""
		if m, ok := obj.(metav1.Object); ok {
			ns = m.GetNamespace()
		}
		created, err := reg.Create(ctx, res, ns, obj, registry.WriteOptions{FieldManager: "skiff-bootstrap"})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("bootstrap %s %s: %w", gvks[0].Kind, obj.(metav1.Object).GetName(), err)
		}
		if err == nil {
			var rv int64
			fmt.Sscan(created.(metav1.Object).GetResourceVersion(), &rv)
			fresh[res] = max(fresh[res], rv)
		}
	}
	// Readiness follows bootstrap, and what is ready must see these
	// objects: admission reads the default StorageClass from the cache on
	// the first claim a client creates.
	for res, rv := range fresh {
		if err := reg.Cache(res).WaitFresh(ctx, rv); err != nil {
			return fmt.Errorf("bootstrap: %s cache: %w", res.GVR.Resource, err)
		}
	}
	return nil
}
