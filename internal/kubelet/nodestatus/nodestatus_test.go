package nodestatus

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestKeepExtended: resources others advertise on the Node survive the
// kubelet's status update; native ones stay the kubelet's.
func TestKeepExtended(t *testing.T) {
	cur := v1.NodeStatus{
		Capacity: v1.ResourceList{
			"example.com/fakecpu": resource.MustParse("1000"), "example.com/gpu": resource.MustParse("2"),
			v1.ResourceCPU: resource.MustParse("64"), "kubernetes.io/batch": resource.MustParse("1"),
		},
		Allocatable: v1.ResourceList{"example.com/gpu": resource.MustParse("1")},
	}
	capacity, alloc := KeepExtended(cur, v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")}, v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")})
	for name, want := range map[v1.ResourceName][2]string{
		"example.com/fakecpu": {"1k", "1k"}, // allocatable defaults to capacity
		"example.com/gpu":     {"2", "1"},
		v1.ResourceCPU:        {"2", "2"}, // measured by the kubelet, not taken over
	} {
		c, a := capacity[name], alloc[name]
		if c.String() != want[0] || a.String() != want[1] {
			t.Errorf("%s: capacity %s allocatable %s, want %s and %s", name, c.String(), a.String(), want[0], want[1])
		}
	}
	if _, ok := capacity["kubernetes.io/batch"]; ok {
		t.Error("a kubernetes.io resource was carried over")
	}
}
