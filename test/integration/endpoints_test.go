package integration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/test/poll"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestEndpointsAndSlices checks Endpoints and EndpointSlices for a Service:
// ready and not-ready pods, a named target port resolved per pod, a
// terminating pod, more than 100 pods split over slices, and cleanup. The
// test plays the node by giving pods IPs and readiness.
func TestEndpointsAndSlices(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx := context.Background()
	pods := cs.CoreV1().Pods("default")
	mkPod := func(name, ip string, ready bool, portName string, port int32) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "ep"}},
			Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "busybox", Ports: []corev1.ContainerPort{{Name: portName, ContainerPort: port, Protocol: corev1.ProtocolTCP}}}}}}
		created, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}
		if _, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkPod("a", "10.42.0.10", true, "http", 8080)
	mkPod("b", "10.42.0.11", false, "http", 8080)
	mkPod("c", "10.42.0.12", true, "http", 9090) // same name, other number
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ep", Labels: map[string]string{"tier": "web"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "ep"}, Ports: []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http")}}}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("Endpoints", func() (bool, string) {
		ep, err := cs.CoreV1().Endpoints("default").Get(ctx, "ep", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		got := subsetsString(ep.Subsets)
		return got == "[10.42.0.10 | 10.42.0.11 | web:8080] [10.42.0.12 |  | web:9090]", got
	}))
	if out := s.mustKubectl("get", "endpoints", "ep"); !strings.Contains(out, "10.42.0.10:8080") {
		t.Errorf("kubectl get endpoints:\n%s", out)
	}
	sliceState := func() string {
		l, _ := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=ep"})
		var parts []string
		for _, sl := range l.Items {
			if len(sl.OwnerReferences) != 1 || sl.Labels["tier"] != "web" {
				parts = append(parts, "bad-meta")
			}
			for _, e := range sl.Endpoints {
				parts = append(parts, fmt.Sprintf("%s:%d:r=%v,s=%v,t=%v", e.Addresses[0], *sl.Ports[0].Port, *e.Conditions.Ready, *e.Conditions.Serving, *e.Conditions.Terminating))
			}
		}
		sort.Strings(parts) // slice names are generated: order by content
		return strings.Join(parts, " ")
	}
	poll.Eventually(t, settle, poll.State("EndpointSlices", func() (bool, string) {
		got := sliceState()
		return got == "10.42.0.10:8080:r=true,s=true,t=false 10.42.0.11:8080:r=false,s=false,t=false 10.42.0.12:9090:r=true,s=true,t=false", got
	}))

	// A terminating pod leaves Endpoints and stays in its slice, marked.
	pa, _ := pods.Get(ctx, "a", metav1.GetOptions{})
	pa.Finalizers = []string{"test.skiff.sh/hold"}
	if _, err := pods.Update(ctx, pa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "a", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("terminating pod", func() (bool, string) {
		ep, _ := cs.CoreV1().Endpoints("default").Get(ctx, "ep", metav1.GetOptions{})
		got := sliceState()
		return !strings.Contains(subsetsString(ep.Subsets), "10.42.0.10") && strings.Contains(got, "10.42.0.10:8080:r=false,s=true,t=true"), got
	}))
	pods.Patch(ctx, "a", "application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})

	// Over 100 pods: more than one slice, none over 100.
	for i := range 105 {
		mkPod(fmt.Sprintf("bulk-%03d", i), fmt.Sprintf("10.42.1.%d", i+1), true, "http", 8080)
	}
	poll.Eventually(t, settle, poll.State("slices of at most 100", func() (bool, string) {
		l, _ := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=ep"})
		total, sizes := 0, []int{}
		for _, sl := range l.Items {
			total += len(sl.Endpoints)
			sizes = append(sizes, len(sl.Endpoints))
			if len(sl.Endpoints) > 100 {
				return false, fmt.Sprintf("a slice of %d", len(sl.Endpoints))
			}
		}
		return total == 107, fmt.Sprintf("%d endpoints in slices %v", total, sizes)
	}))

	// Deleting the Service removes its Endpoints and slices.
	if err := cs.CoreV1().Services("default").Delete(ctx, "ep", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("cleanup", func() (bool, string) {
		_, err := cs.CoreV1().Endpoints("default").Get(ctx, "ep", metav1.GetOptions{})
		l, _ := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=ep"})
		return err != nil && len(l.Items) == 0, fmt.Sprintf("endpoints err %v, %d slices", err, len(l.Items))
	}))
}

func subsetsString(subsets []corev1.EndpointSubset) string {
	var out []string
	for _, ss := range subsets {
		var ready, notReady, ports []string
		for _, a := range ss.Addresses {
			ready = append(ready, a.IP)
		}
		for _, a := range ss.NotReadyAddresses {
			notReady = append(notReady, a.IP)
		}
		for _, p := range ss.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d", p.Name, p.Port))
		}
		out = append(out, "["+strings.Join(ready, ",")+" | "+strings.Join(notReady, ",")+" | "+strings.Join(ports, ",")+"]")
	}
	return strings.Join(out, " ")
}

// TestEndpointSliceMirroring mirrors the hand-written Endpoints of a
// selector-less Service into an EndpointSlice, and removes it with them.
func TestEndpointSliceMirroring(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "external"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "db", Port: 5432}}}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "external"}, Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "192.0.2.10"}}, NotReadyAddresses: []corev1.EndpointAddress{{IP: "192.0.2.11"}},
		Ports: []corev1.EndpointPort{{Name: "db", Port: 5432, Protocol: corev1.ProtocolTCP}},
	}}}
	if _, err := cs.CoreV1().Endpoints("default").Create(ctx, ep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mirrored := func() []discoveryv1.EndpointSlice {
		l, _ := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=external"})
		return l.Items
	}
	poll.Eventually(t, settle, poll.State("mirrored slice", func() (bool, string) {
		sl := mirrored()
		if len(sl) != 1 {
			return false, fmt.Sprintf("%d slices", len(sl))
		}
		var got []string
		for _, e := range sl[0].Endpoints {
			got = append(got, fmt.Sprintf("%s:%v", e.Addresses[0], *e.Conditions.Ready))
		}
		sort.Strings(got)
		return strings.Join(got, " ") == "192.0.2.10:true 192.0.2.11:false" && sl[0].Labels[discoveryv1.LabelManagedBy] == "endpointslicemirroring-controller.k8s.io" && *sl[0].Ports[0].Port == 5432, strings.Join(got, " ")
	}))
	if err := cs.CoreV1().Endpoints("default").Delete(ctx, "external", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("mirror removed", func() (bool, string) { return len(mirrored()) == 0, fmt.Sprintf("%d slices", len(mirrored())) }))
	// The apiserver's own Endpoints are not mirrored.
	l, _ := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelManagedBy + "=endpointslicemirroring-controller.k8s.io"})
	if len(l.Items) != 0 {
		t.Errorf("%d mirrored slices left", len(l.Items))
	}
}

// TestSelectorlessServiceSlices checks that the EndpointSlice controller
// leaves the slices of a Service without a selector alone, as upstream's
// does: the API server's own default/kubernetes slice, and one a user
// wrote by hand, even with the controller's managed-by label.
func TestSelectorlessServiceSlices(t *testing.T) {
	s := startServer(t)
	cs := s.client()
	ctx := context.Background()
	manual := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "manual"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, manual, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "manual-1", Labels: map[string]string{discoveryv1.LabelServiceName: "manual", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.1.2.3"}}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A change to each selector-less Service queues it for the controller;
	// a Service with a selector queued after them shows it has run.
	for _, name := range []string{"kubernetes", "manual"} {
		patch := []byte(`{"metadata":{"annotations":{"touched":"yes"}}}`)
		if _, err := cs.CoreV1().Services("default").Patch(ctx, name, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sel := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "selected"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "x"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, sel, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, settle, poll.State("slice of the selecting Service", func() (bool, string) {
		l, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=selected"})
		return err == nil && len(l.Items) == 1, fmt.Sprint(err)
	}))
	for _, name := range []string{"kubernetes", "manual-1"} {
		got, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("EndpointSlice %s: %v", name, err)
			continue
		}
		if len(got.Endpoints) != 1 {
			t.Errorf("EndpointSlice %s endpoints changed: %+v", name, got.Endpoints)
		}
	}
}
