package servicepods

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPortsResolveNamedTargetsPerPod(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "web", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")},
		{Name: "metrics", Port: 9100, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9101)},
		{Name: "same", Port: 53, Protocol: corev1.ProtocolUDP},
	}}}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}}}
	got := Ports(svc, pod)
	if len(got) != 3 || got[0].Port != 8080 || got[1].Port != 9101 || got[2].Port != 53 {
		t.Errorf("ports %+v", got)
	}
	bare := &corev1.Pod{}
	if got := Ports(svc, bare); len(got) != 2 || got[0].Name != "metrics" {
		t.Errorf("a pod without the named port serves only the others: %+v", got)
	}
	if Key(Ports(svc, pod)) == Key(Ports(svc, bare)) {
		t.Error("different port lists share a key")
	}
}

func TestHostnameNeedsMatchingSubdomain(t *testing.T) {
	svc := &corev1.Service{}
	svc.Name, svc.Namespace = "db", "ns"
	pod := &corev1.Pod{Spec: corev1.PodSpec{Hostname: "db-0", Subdomain: "db"}}
	pod.Namespace = "ns"
	if Hostname(pod, svc) != "db-0" {
		t.Error("hostname with matching subdomain")
	}
	pod.Spec.Subdomain = "other"
	if Hostname(pod, svc) != "" {
		t.Error("hostname under another subdomain")
	}
}
