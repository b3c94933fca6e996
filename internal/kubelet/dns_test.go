package kubelet

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestPodDNS(t *testing.T) {
	host := resolvConf{servers: []string{"192.0.2.53"}, searches: []string{"corp.example"}, options: []string{"edns0"}}
	pod := func(policy v1.DNSPolicy, hostNet bool, dc *v1.PodDNSConfig) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop"}, Spec: v1.PodSpec{DNSPolicy: policy, HostNetwork: hostNet, DNSConfig: dc}}
	}
	cluster := []string{"10.43.0.10"}
	cases := []struct {
		name       string
		pod        *v1.Pod
		clusterDNS []string
		want       string
	}{
		{"ClusterFirst", pod("", false, nil), cluster,
			"[10.43.0.10] [shop.svc.cluster.local svc.cluster.local cluster.local corp.example] [ndots:5]"},
		{"ClusterFirst on the host network uses the node's", pod(v1.DNSClusterFirst, true, nil), cluster,
			"[192.0.2.53] [corp.example] [edns0]"},
		{"ClusterFirstWithHostNet", pod(v1.DNSClusterFirstWithHostNet, true, nil), cluster,
			"[10.43.0.10] [shop.svc.cluster.local svc.cluster.local cluster.local corp.example] [ndots:5]"},
		{"ClusterFirst without cluster DNS falls back", pod(v1.DNSClusterFirst, false, nil), nil,
			"[192.0.2.53] [corp.example] [edns0]"},
		{"Default", pod(v1.DNSDefault, false, nil), cluster, "[192.0.2.53] [corp.example] [edns0]"},
		{"None with dnsConfig", pod(v1.DNSNone, false, &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.example"}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}}}), cluster,
			"[1.1.1.1] [a.example] [ndots:2]"},
		{"dnsConfig merges: no duplicates, options by name, three servers", pod(v1.DNSClusterFirst, false, &v1.PodDNSConfig{
			Nameservers: []string{"10.43.0.10", "1.1.1.1", "8.8.8.8", "9.9.9.9"}, Searches: []string{"svc.cluster.local", "b.example"},
			Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("1")}, {Name: "single-request"}},
		}), cluster,
			"[10.43.0.10 1.1.1.1 8.8.8.8] [shop.svc.cluster.local svc.cluster.local cluster.local corp.example b.example] [ndots:1 single-request]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := podDNS(c.pod, c.clusterDNS, "cluster.local", host)
			if s := fmt.Sprint(got.Servers, " ", got.Searches, " ", got.Options); s != c.want {
				t.Errorf("got  %s\nwant %s", s, c.want)
			}
		})
	}
}
