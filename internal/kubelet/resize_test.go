package kubelet

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/plan"
)

func reqs(cpu, mem string) v1.ResourceRequirements {
	r := v1.ResourceRequirements{Requests: v1.ResourceList{}, Limits: v1.ResourceList{}}
	if cpu != "" {
		r.Requests[v1.ResourceCPU], r.Limits[v1.ResourceCPU] = resource.MustParse(cpu), resource.MustParse(cpu)
	}
	if mem != "" {
		r.Requests[v1.ResourceMemory], r.Limits[v1.ResourceMemory] = resource.MustParse(mem), resource.MustParse(mem)
	}
	return r
}

func TestPlanResize(t *testing.T) {
	restartOnMemory := []v1.ContainerResizePolicy{{ResourceName: v1.ResourceMemory, RestartPolicy: v1.RestartContainer}}
	for _, tc := range []struct {
		name    string
		spec    v1.ResourceRequirements
		policy  []v1.ContainerResizePolicy
		applied v1.ResourceRequirements
		want    resizeStep
	}{
		{"unchanged", reqs("1", "64Mi"), nil, reqs("1", "64Mi"), resizeNone},
		{"equivalent quantities", reqs("1", "64Mi"), nil, reqs("1000m", "67108864"), resizeNone},
		{"cpu up in place", reqs("2", "64Mi"), nil, reqs("1", "64Mi"), resizeUpdate},
		{"memory up, policy NotRequired", reqs("1", "128Mi"), nil, reqs("1", "64Mi"), resizeUpdate},
		{"memory up, policy RestartContainer", reqs("1", "128Mi"), restartOnMemory, reqs("1", "64Mi"), resizeRestart},
		{"cpu up, memory policy RestartContainer", reqs("2", "64Mi"), restartOnMemory, reqs("1", "64Mi"), resizeUpdate},
		{"limits added", reqs("1", "64Mi"), nil, v1.ResourceRequirements{Requests: reqs("1", "64Mi").Requests}, resizeUpdate},
	} {
		c := &v1.Container{Name: "c", Resources: tc.spec, ResizePolicy: tc.policy}
		if got := planResize(c, cpuMemory(tc.applied)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The container hash ignores what a resize changes, so a resized
// container is not replaced.
func TestContainerHashIgnoresResources(t *testing.T) {
	a := &v1.Container{Name: "c", Image: "i", Resources: reqs("1", "64Mi")}
	b := a.DeepCopy()
	b.Resources = reqs("2", "128Mi")
	b.ResizePolicy = []v1.ContainerResizePolicy{{ResourceName: v1.ResourceCPU, RestartPolicy: v1.NotRequired}}
	if plan.ContainerHash(a) != plan.ContainerHash(b) {
		t.Error("resources changed the hash")
	}
	b.Image = "j"
	if plan.ContainerHash(a) == plan.ContainerHash(b) {
		t.Error("a new image kept the hash")
	}
}

func TestOOMScoreAdj(t *testing.T) {
	const capacity = 8 << 30
	pod := func(qos v1.PodQOSClass, mem string) (*v1.Pod, *v1.Container) {
		c := v1.Container{Name: "c"}
		if mem != "" {
			c.Resources.Requests = v1.ResourceList{v1.ResourceMemory: resource.MustParse(mem)}
		}
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1.PodSpec{Containers: []v1.Container{c}}, Status: v1.PodStatus{QOSClass: qos}}
		return p, &p.Spec.Containers[0]
	}
	for _, tc := range []struct {
		name string
		qos  v1.PodQOSClass
		mem  string
		want int
	}{
		{"guaranteed", v1.PodQOSGuaranteed, "1Gi", -997},
		{"best effort", v1.PodQOSBestEffort, "", 1000},
		{"burstable, an eighth of the node", v1.PodQOSBurstable, "1Gi", 875},
		{"burstable, nearly all of it", v1.PodQOSBurstable, "8Gi", 3},
		{"burstable, nothing", v1.PodQOSBurstable, "", 999},
	} {
		p, c := pod(tc.qos, tc.mem)
		if got := oomScoreAdj(p, c, capacity); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
