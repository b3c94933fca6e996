package servicelb

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, ready bool, addrs ...corev1.NodeAddress) *corev1.Node {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}},
		Status: corev1.NodeStatus{
			Addresses:  addrs,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}},
		},
	}
}

func internal(ip string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
}

func TestIngress(t *testing.T) {
	excluded := node("x", true, internal("10.77.0.5"))
	excluded.Labels[excludeLabel] = ""
	cases := []struct {
		name  string
		nodes []*corev1.Node
		want  string
	}{
		{"ready nodes in address order", []*corev1.Node{node("b", true, internal("10.77.0.10")), node("a", true, internal("10.77.0.9"))}, "[10.77.0.9 10.77.0.10]"},
		{"not ready nodes are left out", []*corev1.Node{node("a", true, internal("10.77.0.1")), node("b", false, internal("10.77.0.2"))}, "[10.77.0.1]"},
		{"external address preferred", []*corev1.Node{node("a", true, internal("10.77.0.1"), corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "198.51.100.7"})}, "[198.51.100.7]"},
		{"exclusion label", []*corev1.Node{excluded, node("a", true, internal("10.77.0.1"))}, "[10.77.0.1]"},
		{"no nodes", nil, "[]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, in := range Ingress(c.nodes) {
				if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
					t.Errorf("%s: ipMode %v", in.IP, in.IPMode)
				}
				got = append(got, in.IP)
			}
			if fmt.Sprint(got) != c.want {
				t.Errorf("Ingress = %v, want %s", got, c.want)
			}
		})
	}
}
