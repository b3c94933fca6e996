package kubelet

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func podWith(name string, cpu string, hostPort int32, selector map[string]string) *v1.Pod {
	c := v1.Container{Name: "c", Image: "i"}
	if cpu != "" {
		c.Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}
	}
	if hostPort != 0 {
		c.Ports = []v1.ContainerPort{{ContainerPort: hostPort, HostPort: hostPort}}
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}, Spec: v1.PodSpec{Containers: []v1.Container{c}, NodeSelector: selector}}
}

func TestAdmitPod(t *testing.T) {
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"disk": "ssd"}}}
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourcePods: resource.MustParse("3")}
	for _, tc := range []struct {
		name     string
		pod      *v1.Pod
		admitted []*v1.Pod
		reason   string // "" admits
	}{
		{"fits", podWith("a", "500m", 0, nil), []*v1.Pod{podWith("b", "1", 0, nil)}, ""},
		{"cpu exactly fills the node", podWith("a", "1", 0, nil), []*v1.Pod{podWith("b", "1", 0, nil)}, ""},
		{"cpu over allocatable", podWith("a", "1500m", 0, nil), []*v1.Pod{podWith("b", "1", 0, nil)}, "OutOfcpu"},
		{"host port taken", podWith("a", "", 21017, nil), []*v1.Pod{podWith("b", "", 21017, nil)}, "NodePorts"},
		{"another host port", podWith("a", "", 21018, nil), []*v1.Pod{podWith("b", "", 21017, nil)}, ""},
		{"same port, other host IPs", withHostIP(podWith("a", "", 21017, nil), "10.0.0.2", ""), []*v1.Pod{withHostIP(podWith("b", "", 21017, nil), "10.0.0.1", "")}, ""},
		{"same port, other protocol", withHostIP(podWith("a", "", 21017, nil), "", v1.ProtocolUDP), []*v1.Pod{podWith("b", "", 21017, nil)}, ""},
		{"same port, one on every address", withHostIP(podWith("a", "", 21017, nil), "0.0.0.0", ""), []*v1.Pod{withHostIP(podWith("b", "", 21017, nil), "10.0.0.1", "")}, "NodePorts"},
		{"selector matches", podWith("a", "", 0, map[string]string{"disk": "ssd"}), nil, ""},
		{"selector does not match", podWith("a", "", 0, map[string]string{"disk": "hdd"}), nil, "NodeAffinity"},
		{"pod count full", podWith("a", "", 0, nil), []*v1.Pod{podWith("b", "", 0, nil), podWith("c", "", 0, nil), podWith("d", "", 0, nil)}, "OutOfpods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := admitPod(tc.pod, node, alloc, tc.admitted)
			if tc.reason == "" && !v.ok {
				t.Fatalf("refused: %s: %s", v.reason, v.message)
			}
			if tc.reason != "" && (v.ok || v.reason != tc.reason) {
				t.Fatalf("verdict %+v, want reason %s", v, tc.reason)
			}
		})
	}
}

func withHostIP(p *v1.Pod, ip string, proto v1.Protocol) *v1.Pod {
	p.Spec.Containers[0].Ports[0].HostIP = ip
	if proto != "" {
		p.Spec.Containers[0].Ports[0].Protocol = proto
	}
	return p
}

// Extended resources others advertise on the node count; the agent's own
// figures win for what it reports itself.
func TestNodeAllocatable(t *testing.T) {
	node := &v1.Node{Status: v1.NodeStatus{Allocatable: v1.ResourceList{"example.com/fakecpu": resource.MustParse("1k"), v1.ResourceCPU: resource.MustParse("64")}}}
	got := nodeAllocatable(node, v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")})
	if q := got["example.com/fakecpu"]; q.Value() != 1000 || !got.Cpu().Equal(resource.MustParse("2")) {
		t.Errorf("allocatable %v", got)
	}
	p := podWith("a", "", 0, nil)
	p.Spec.Containers[0].Resources.Requests = v1.ResourceList{"example.com/fakecpu": resource.MustParse("200")}
	if v := admitPod(p, node, got, nil); !v.ok {
		t.Errorf("extended resource on the node refused: %s", v.message)
	}
	if v := admitPod(p, node, v1.ResourceList{}, nil); v.ok || v.reason != "UnexpectedAdmissionError" {
		t.Errorf("extended resource the node lacks: %+v", v)
	}
}
