package quota

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func list(pairs ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(pairs); i += 2 {
		out[corev1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return out
}

func TestDeltaAndCheck(t *testing.T) {
	hard := list("pods", "2", "requests.cpu", "1", "count/deployments.apps", "1", "configmaps", "3")
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: list("cpu", "300m")}}}}}
	d := Delta(hard, schema.GroupResource{Resource: "pods"}, pod)
	if q := d["pods"]; q.String() != "1" || len(d) != 2 {
		t.Fatalf("pod delta %v", d)
	}
	if q := d["requests.cpu"]; q.String() != "300m" {
		t.Errorf("cpu delta %s", q.String())
	}
	dep := Delta(hard, schema.GroupResource{Group: "apps", Resource: "deployments"}, nil)
	if q := dep["count/deployments.apps"]; len(dep) != 1 || q.String() != "1" {
		t.Errorf("deployment delta %v", dep)
	}
	if d := Delta(hard, schema.GroupResource{Resource: "secrets"}, nil); len(d) != 0 {
		t.Errorf("an unlimited resource has a delta: %v", d)
	}
	cases := []struct {
		name   string
		status corev1.ResourceQuotaStatus
		want   string
	}{
		{"fits", corev1.ResourceQuotaStatus{Hard: hard, Used: list("pods", "1", "requests.cpu", "700m")}, ""},
		{"pods full", corev1.ResourceQuotaStatus{Hard: hard, Used: list("pods", "2", "requests.cpu", "0")}, "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"},
		{"both over", corev1.ResourceQuotaStatus{Hard: hard, Used: list("pods", "2", "requests.cpu", "800m")},
			"exceeded quota: q, requested: pods=1,requests.cpu=300m, used: pods=2,requests.cpu=800m, limited: pods=2,requests.cpu=1"},
		{"not counted yet", corev1.ResourceQuotaStatus{Hard: hard}, "status unknown for quota: q, resource: pods"},
	}
	for _, c := range cases {
		if got := Check("q", c.status, d); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	got := Add(list("pods", "1"), d)
	if p, c := got["pods"], got["requests.cpu"]; p.String() != "2" || c.String() != "300m" {
		t.Errorf("add %v", got)
	}
}

func TestMissingRequests(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "i"}},
		Containers:     []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: list("cpu", "1"), Limits: list("memory", "1Gi")}}},
	}}
	if got := MissingRequests(list("requests.cpu", "2", "limits.memory", "4Gi"), pod); got != "limits.memory,requests.cpu" {
		t.Errorf("with an init container lacking both: %q", got)
	}
	pod.Spec.InitContainers = nil
	if got := MissingRequests(list("requests.cpu", "2", "limits.memory", "4Gi", "pods", "3"), pod); got != "" {
		t.Errorf("all declared: %q", got)
	}
}
