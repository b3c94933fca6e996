package quota

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestUsage(t *testing.T) {
	req := func(cpu, mem string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
			Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers:     []corev1.Container{{Resources: req("250m", "64Mi")}, {Resources: req("250m", "64Mi")}},
		InitContainers: []corev1.Container{{Resources: req("1", "16Mi")}},
	}}
	done := &corev1.Pod{Spec: pod.Spec, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}
	hard := corev1.ResourceList{"pods": resource.MustParse("10"), "requests.cpu": resource.MustParse("4"), "requests.memory": resource.MustParse("1Gi"),
		"limits.cpu": resource.MustParse("4"), "services.nodeports": resource.MustParse("2"), "configmaps": resource.MustParse("5"), "count/deployments.apps": resource.MustParse("2")}
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{NodePort: 30001}}}}
	used := Usage(hard, []*corev1.Pod{pod, done}, []*corev1.Service{svc}, nil, map[string]int64{"configmaps": 3, "deployments.apps": 1})
	want := map[corev1.ResourceName]string{"pods": "1", "requests.cpu": "1", "requests.memory": "128Mi", "limits.cpu": "1", "services.nodeports": "1", "configmaps": "3", "count/deployments.apps": "1"}
	for name, w := range want {
		q := used[name]
		if q.Cmp(resource.MustParse(w)) != 0 {
			t.Errorf("%s used %s, want %s", name, q.String(), w)
		}
	}
}
