package netpol

import (
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/proxy"
)

func pod(ns, name, node, ip string, lbl map[string]string, ports ...v1.ContainerPort) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl},
		Spec:       v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c", Ports: ports}}},
		Status:     v1.PodStatus{Phase: v1.PodRunning, PodIP: ip},
	}
}

func policy(ns, name string, sel map[string]string, mut func(*networkingv1.NetworkPolicySpec)) *networkingv1.NetworkPolicy {
	p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: sel}}}
	if mut != nil {
		mut(&p.Spec)
	}
	return p
}

var (
	web    = pod("shop", "web", "node-a", "10.42.0.5", map[string]string{"app": "web"}, v1.ContainerPort{Name: "http", ContainerPort: 8080, Protocol: v1.ProtocolTCP})
	api    = pod("shop", "api", "node-b", "10.42.1.6", map[string]string{"app": "api"}, v1.ContainerPort{Name: "http", ContainerPort: 9090, Protocol: v1.ProtocolTCP})
	other  = pod("shop", "other", "node-b", "10.42.1.7", map[string]string{"app": "other"})
	remote = pod("ops", "probe", "node-b", "10.42.1.8", map[string]string{"app": "probe"})
	nss    = []*v1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, {ObjectMeta: metav1.ObjectMeta{Name: "ops", Labels: map[string]string{"team": "ops"}}}}
)

func build(pols ...*networkingv1.NetworkPolicy) *proxy.Ruleset {
	rs := proxy.NewRuleset()
	Build(Input{Node: "node-a", Pods: []*v1.Pod{web, api, other, remote}, Namespaces: nss, Policies: pols}, rs)
	return rs
}

// rules renders the chain a dispatch map sends ip to, with set names
// replaced by their contents.
func rules(rs *proxy.Ruleset, m map[string]proxy.Verdict, ip string) string {
	v, ok := m[ip]
	if !ok {
		return "<not isolated>"
	}
	text := rs.Chains[v.Jump].String()
	for name, set := range rs.AddrSets {
		text = strings.ReplaceAll(text, "@"+name, "{"+set.String()+"}")
	}
	return strings.TrimSpace(text)
}

func TestIngress(t *testing.T) {
	cases := []struct {
		name string
		pol  *networkingv1.NetworkPolicy
		want string
	}{
		{"default deny", policy("shop", "deny", nil, func(s *networkingv1.NetworkPolicySpec) {
			s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		}), "drop"},
		{"allow one pod on a named port", policy("shop", "allow", map[string]string{"app": "web"}, func(s *networkingv1.NetworkPolicySpec) {
			s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("http"))}},
			}}
		}), "tcp dport 8080 ip saddr {10.42.1.6} return\ndrop"},
		{"namespace selector, port range, UDP", policy("shop", "ops", nil, func(s *networkingv1.NetworkPolicySpec) {
			s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "ops"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(v1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(5000)), EndPort: ptr.To[int32](5010)}},
			}}
		}), "udp dport 5000-5010 ip saddr {10.42.1.8} return\ndrop"},
		{"namespace by its name label", policy("shop", "byname", nil, func(s *networkingv1.NetworkPolicySpec) {
			s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{v1.LabelMetadataName: "shop"}}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}}},
			}}
		}), "ip saddr {10.42.1.7} return\ndrop"},
		{"ipBlock with except", policy("shop", "block", nil, func(s *networkingv1.NetworkPolicySpec) {
			s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25", "192.0.2.0/32"}}}},
			}}
		}), "ip saddr {192.0.2.1-192.0.2.127} return\ndrop"},
		{"empty rule allows all", policy("shop", "all", nil, func(s *networkingv1.NetworkPolicySpec) {
			s.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
		}), "return\ndrop"},
		{"egress only does not isolate ingress", policy("shop", "egress", nil, func(s *networkingv1.NetworkPolicySpec) {
			s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		}), "<not isolated>"},
		{"another namespace's policy", policy("ops", "deny", nil, nil), "<not isolated>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := build(c.pol)
			if got := rules(rs, rs.PolicyIngress, "10.42.0.5"); got != c.want {
				t.Errorf("ingress chain:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

func TestOnlyLocalPodsAreEnforced(t *testing.T) {
	rs := build(policy("shop", "deny", nil, nil))
	if len(rs.PolicyIngress) != 1 {
		t.Errorf("isolated here: %v; want only node-a's web pod", rs.PolicyIngress)
	}
}

func TestEgressNamedPortResolvesOnDestinations(t *testing.T) {
	rs := build(policy("shop", "out", map[string]string{"app": "web"}, func(s *networkingv1.NetworkPolicySpec) {
		s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		s.Egress = []networkingv1.NetworkPolicyEgressRule{{
			To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
			Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("http"))}, {Protocol: ptr.To(v1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))}},
		}}
	}))
	got := rules(rs, rs.PolicyEgress, "10.42.0.5")
	want := "ip daddr {10.42.0.5, 10.42.1.6-10.42.1.7} udp dport 53 return\nip daddr {10.42.0.5} tcp dport 8080 return\nip daddr {10.42.1.6} tcp dport 9090 return\ndrop"
	if got != want {
		t.Errorf("egress chain:\n%s\nwant:\n%s", got, want)
	}
	if _, ok := rs.PolicyIngress["10.42.0.5"]; ok {
		t.Error("an Egress-only policy isolated ingress")
	}
}

func TestRanges(t *testing.T) {
	r := func(a, b uint32) proxy.Range { return proxy.Range{First: a, Last: b} }
	cases := []struct {
		name string
		got  []proxy.Range
		want string
	}{
		{"subtract middle", Subtract([]proxy.Range{r(10, 20)}, r(12, 15)), "[{10 11} {16 20}]"},
		{"subtract edge", Subtract([]proxy.Range{r(10, 20)}, r(5, 10)), "[{11 20}]"},
		{"subtract all", Subtract([]proxy.Range{r(10, 20)}, r(0, 30)), "[]"},
		{"subtract disjoint", Subtract([]proxy.Range{r(10, 20)}, r(30, 40)), "[{10 20}]"},
		{"merge adjacent and overlapping", Merge([]proxy.Range{r(5, 6), r(1, 2), r(3, 4), r(6, 9), r(20, 20)}), "[{1 9} {20 20}]"},
		{"merge at the top", Merge([]proxy.Range{r(^uint32(0)-1, ^uint32(0)), r(^uint32(0), ^uint32(0))}), fmt.Sprintf("[{%d %d}]", ^uint32(0)-1, ^uint32(0))},
	}
	for _, c := range cases {
		if s := fmt.Sprint(c.got); s != c.want {
			t.Errorf("%s: %s, want %s", c.name, s, c.want)
		}
	}
}
