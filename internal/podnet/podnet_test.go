package podnet

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name, ip string, cidrs ...string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if len(cidrs) > 0 {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = cidrs[0], cidrs
	}
	if ip != "" {
		n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeHostName, Address: name}, {Type: v1.NodeInternalIP, Address: ip}}
	}
	return n
}

func TestRoutes(t *testing.T) {
	deleting := node("gone", "10.77.0.9", "10.42.9.0/24")
	deleting.DeletionTimestamp = &metav1.Time{}
	cases := []struct {
		name  string
		nodes []*v1.Node
		want  string
	}{
		{"not to itself", []*v1.Node{node("a", "10.77.0.1", "10.42.0.0/24")}, "[]"},
		{"one per other node, sorted", []*v1.Node{
			node("c", "10.77.0.3", "10.42.2.0/24"), node("a", "10.77.0.1", "10.42.0.0/24"), node("b", "10.77.0.2", "10.42.1.0/24"),
		}, "[10.42.1.0/24 via 10.77.0.2 10.42.2.0/24 via 10.77.0.3]"},
		{"no pod CIDR yet", []*v1.Node{node("b", "10.77.0.2")}, "[]"},
		{"no InternalIP", []*v1.Node{node("b", "", "10.42.1.0/24")}, "[]"},
		{"IPv6 ranges are left to another mechanism", []*v1.Node{node("b", "10.77.0.2", "10.42.1.0/24", "fd00:42::/64")}, "[10.42.1.0/24 via 10.77.0.2]"},
		{"a deleted node loses its route", []*v1.Node{deleting}, "[]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fmt.Sprint(Routes("a", c.nodes)); got != c.want {
				t.Errorf("Routes = %s, want %s", got, c.want)
			}
		})
	}
}
