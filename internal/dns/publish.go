package dns

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The cluster DNS Service, created by the control plane: its ClusterIP is
// what pods' resolv.conf names; each node's agent publishes its own server
// as an endpoint and the Service's internalTrafficPolicy Local keeps
// queries on the node.
const (
	ServiceNamespace = "kube-system"
	ServiceName      = "kube-dns"
	managedBy        = "skiff-dns"
)

// Service is the kube-dns Service for clusterIP.
func Service(clusterIP string) *v1.Service {
	local := v1.ServiceInternalTrafficPolicyLocal
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: ServiceNamespace, Labels: map[string]string{
			"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "skiff-dns",
		}},
		Spec: v1.ServiceSpec{
			ClusterIP: clusterIP, InternalTrafficPolicy: &local,
			Ports: []v1.ServicePort{
				{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP},
				{Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP},
			},
		},
	}
}

// endpointSlice is node's DNS server as an endpoint of kube-dns, owned by
// the Node so it goes when the node does.
func endpointSlice(node *v1.Node, ip net.IP, port int32) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: ServiceName + "-" + node.Name, Namespace: ServiceNamespace,
			Labels:          map[string]string{discoveryv1.LabelServiceName: ServiceName, discoveryv1.LabelManagedBy: managedBy},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses: []string{ip.String()}, NodeName: ptr.To(node.Name),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("dns"), Port: ptr.To(port), Protocol: ptr.To(v1.ProtocolUDP)},
			{Name: ptr.To("dns-tcp"), Port: ptr.To(port), Protocol: ptr.To(v1.ProtocolTCP)},
		},
	}
}

// Publish makes the node's DNS server an endpoint of kube-dns, waiting
// for the Node to be registered, and retrying until ctx ends.
func Publish(ctx context.Context, client kubernetes.Interface, nodeName, addr string) error {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(p)
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return fmt.Errorf("cluster DNS address %s is not IPv4", addr)
	}
	for {
		err := publishOnce(ctx, client, nodeName, ip, int32(port))
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func publishOnce(ctx context.Context, client kubernetes.Interface, nodeName string, ip net.IP, port int32) error {
	node, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	want := endpointSlice(node, ip, port)
	slices := client.DiscoveryV1().EndpointSlices(ServiceNamespace)
	have, err := slices.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = slices.Create(ctx, want, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	want.ResourceVersion = have.ResourceVersion
	_, err = slices.Update(ctx, want, metav1.UpdateOptions{})
	return err
}
