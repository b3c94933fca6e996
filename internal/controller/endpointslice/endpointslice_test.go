package endpointslice

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDesiredSplitsAt100AndKeepsTerminating(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"a": "b"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	var pods []*corev1.Pod
	for i := range 150 {
		pods = append(pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%03d", i), Namespace: "ns"}, Status: corev1.PodStatus{PodIP: fmt.Sprintf("10.0.%d.%d", i/200, i%200+1), Phase: corev1.PodRunning}})
	}
	now := metav1.Now()
	pods[0].DeletionTimestamp = &now
	pods = append(pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "done"}, Status: corev1.PodStatus{PodIP: "10.9.9.9", Phase: corev1.PodSucceeded}})
	slices := Desired(svc, pods)
	if len(slices) != 2 || len(slices[0].Endpoints) != 100 || len(slices[1].Endpoints) != 50 {
		t.Fatalf("%d slices", len(slices))
	}
	first := slices[0].Endpoints[0]
	if first.TargetRef.Name != "p000" || *first.Conditions.Terminating != true || *first.Conditions.Ready != false {
		t.Errorf("terminating endpoint %+v", first.Conditions)
	}
	if empty := Desired(svc, nil); len(empty) != 1 || len(empty[0].Endpoints) != 0 {
		t.Errorf("a Service without pods gets one empty slice, got %d", len(empty))
	}
}

func TestMirrored(t *testing.T) {
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns"}, Subsets: []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}, {IP: "2001:db8::1"}}, Ports: []corev1.EndpointPort{{Port: 1}}},
	}}
	got := Mirrored(ep)
	if len(got) != 2 || got[0].AddressType != "IPv4" || got[1].AddressType != "IPv6" || !metav1.IsControlledBy(got[0], ep) {
		t.Errorf("mirrored %+v", got)
	}
}
