package proxy

import (
	"net"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func testConfig() Config {
	_, cidr, _ := net.ParseCIDR("10.42.0.0/16")
	return Config{NodeName: "node-a", ClusterCIDR: cidr}
}

func service(name string, mut ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeClusterIP, ClusterIP: "10.43.0.20", ClusterIPs: []string{"10.43.0.20"},
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80}},
		},
	}
	for _, m := range mut {
		m(s)
	}
	return s
}

type ep struct {
	ip, node                    string
	ready, serving, terminating bool
}

func slice(svc string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: svc + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(port)}},
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{e.ip}, NodeName: ptr.To(e.node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready), Serving: ptr.To(e.serving), Terminating: ptr.To(e.terminating)},
		})
	}
	return s
}

var (
	readyA = ep{ip: "10.42.0.5", node: "node-a", ready: true, serving: true}
	readyB = ep{ip: "10.42.1.7", node: "node-b", ready: true, serving: true}
)

// chainsOf returns the chain bodies whose names start with prefix.
func chainsOf(rs *Ruleset, prefix string) []string {
	var out []string
	for n, c := range rs.Chains {
		if strings.HasPrefix(n, prefix+"-") {
			out = append(out, c.String())
		}
	}
	return out
}

func TestBuildClusterIP(t *testing.T) {
	rs := Build(testConfig(), []*v1.Service{service("web")}, []*discoveryv1.EndpointSlice{slice("web", 8080, readyA, readyB)})
	v, ok := rs.ServiceIPs[Key{IP: "10.43.0.20", Protocol: v1.ProtocolTCP, Port: 80}]
	if !ok || v.Goto == "" {
		t.Fatalf("ClusterIP not dispatched:\n%s", rs)
	}
	svc := rs.Chains[v.Goto].String()
	if !strings.HasPrefix(svc, "ip saddr != @cluster-cidr meta mark set meta mark | 0x4000\nnumgen random mod 2 vmap { 0 : goto ep-") {
		t.Errorf("service chain:\n%s", svc)
	}
	eps := chainsOf(rs, "ep")
	if len(eps) != 2 {
		t.Fatalf("endpoint chains %v", eps)
	}
	joined := strings.Join(eps, "")
	for _, want := range []string{"ip saddr 10.42.0.5 meta mark set meta mark | 0x4000\ndnat to 10.42.0.5:8080\n", "ip saddr 10.42.1.7 meta mark set meta mark | 0x4000\ndnat to 10.42.1.7:8080\n"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no endpoint chain %q in\n%s", want, joined)
		}
	}
	if len(rs.NoEndpoints) != 0 || len(rs.NodePorts) != 0 {
		t.Errorf("unexpected maps:\n%s", rs)
	}
}

func TestBuildEndpointSelection(t *testing.T) {
	terminating := ep{ip: "10.42.0.9", node: "node-a", ready: false, serving: true, terminating: true}
	unready := ep{ip: "10.42.0.10", node: "node-a"}
	cases := []struct {
		name string
		svc  *v1.Service
		eps  []ep
		// want: the DNAT targets reachable through the ClusterIP, or the
		// verdict of the no-endpoints map.
		want   []string
		noEps  string
		reject bool
	}{
		{name: "ready only", svc: service("s"), eps: []ep{readyA, unready, terminating}, want: []string{"10.42.0.5"}},
		{name: "serving terminating when none ready", svc: service("s"), eps: []ep{unready, terminating}, want: []string{"10.42.0.9"}},
		{name: "no endpoints rejects", svc: service("s"), eps: []ep{unready}, noEps: "goto reject-chain"},
		{name: "internal Local keeps this node's", svc: service("s", func(s *v1.Service) {
			s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
		}), eps: []ep{readyA, readyB}, want: []string{"10.42.0.5"}},
		{name: "internal Local with none here drops", svc: service("s", func(s *v1.Service) {
			s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
		}), eps: []ep{readyB}, noEps: "drop"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := Build(testConfig(), []*v1.Service{c.svc}, []*discoveryv1.EndpointSlice{slice("s", 8080, c.eps...)})
			k := Key{IP: "10.43.0.20", Protocol: v1.ProtocolTCP, Port: 80}
			if c.noEps != "" {
				if v, ok := rs.NoEndpoints[k]; !ok || v.String() != c.noEps {
					t.Errorf("no-endpoints verdict %v, want %s:\n%s", v, c.noEps, rs)
				}
				if _, ok := rs.ServiceIPs[k]; ok {
					t.Errorf("dispatched although nothing serves:\n%s", rs)
				}
				return
			}
			got := reachable(rs, rs.ServiceIPs[k].Goto)
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("reachable %v, want %v:\n%s", got, c.want, rs)
			}
		})
	}
}

// reachable follows a chain to the addresses its DNAT rules name.
func reachable(rs *Ruleset, chain string) []string {
	var out []string
	for _, r := range rs.Chains[chain].Rules {
		if r.DNAT != nil {
			out = append(out, r.DNAT.IP)
		}
		if r.Verdict != nil && r.Verdict.Goto != "" {
			out = append(out, reachable(rs, r.Verdict.Goto)...)
		}
		for _, c := range r.Random {
			out = append(out, reachable(rs, c)...)
		}
	}
	return out
}

func TestBuildNodePortAndLoadBalancer(t *testing.T) {
	lb := service("lb", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.Ports[0].NodePort = 30080
		s.Spec.ExternalIPs = []string{"192.0.2.9"}
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "10.77.0.1"}}
	})
	rs := Build(testConfig(), []*v1.Service{lb}, []*discoveryv1.EndpointSlice{slice("lb", 8080, readyA, readyB)})
	np, ok := rs.NodePorts[Key{Protocol: v1.ProtocolTCP, Port: 30080}]
	if !ok {
		t.Fatalf("no node port:\n%s", rs)
	}
	ext := rs.Chains[np.Goto]
	if len(ext.Rules) != 1 || !ext.Rules[0].Masquerade || !strings.HasPrefix(ext.Rules[0].Verdict.Goto, "svc-") {
		t.Errorf("external chain (Cluster policy) should mark and reuse the service chain:\n%s", ext)
	}
	for _, ip := range []string{"192.0.2.9", "10.77.0.1"} {
		if v := rs.ServiceIPs[Key{IP: ip, Protocol: v1.ProtocolTCP, Port: 80}]; v != np {
			t.Errorf("%s dispatched to %v, want %v", ip, v, np)
		}
	}

	local := lb.DeepCopy()
	local.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	rs = Build(testConfig(), []*v1.Service{local}, []*discoveryv1.EndpointSlice{slice("lb", 8080, readyA, readyB)})
	np = rs.NodePorts[Key{Protocol: v1.ProtocolTCP, Port: 30080}]
	if got := reachable(rs, np.Goto); strings.Join(got, ",") != "10.42.0.5" {
		t.Errorf("Local policy reaches %v, want this node's endpoint only", got)
	}
	for _, r := range rs.Chains[np.Goto].Rules {
		if r.Masquerade {
			t.Errorf("Local policy must keep the client address:\n%s", rs.Chains[np.Goto])
		}
	}
	// The ClusterIP still reaches both.
	if got := reachable(rs, rs.ServiceIPs[Key{IP: "10.43.0.20", Protocol: v1.ProtocolTCP, Port: 80}].Goto); len(got) != 2 {
		t.Errorf("ClusterIP under external Local reaches %v", got)
	}

	rs = Build(testConfig(), []*v1.Service{local}, []*discoveryv1.EndpointSlice{slice("lb", 8080, readyB)})
	if v := rs.NoEndpointNodePorts[Key{Protocol: v1.ProtocolTCP, Port: 30080}]; !v.Drop {
		t.Errorf("Local policy with no local endpoint: %v, want drop", v)
	}
}

func TestBuildSessionAffinity(t *testing.T) {
	svc := service("s", func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
	})
	rs := Build(testConfig(), []*v1.Service{svc}, []*discoveryv1.EndpointSlice{slice("s", 8080, readyA, readyB)})
	if len(rs.Sets) != 2 {
		t.Fatalf("sets %v", rs.Sets)
	}
	for _, s := range rs.Sets {
		if s.Timeout.Seconds() != 60 {
			t.Errorf("set %s timeout %v", s.Name, s.Timeout)
		}
	}
	svcChain := rs.Chains[rs.ServiceIPs[Key{IP: "10.43.0.20", Protocol: v1.ProtocolTCP, Port: 80}].Goto]
	var lookups int
	for _, r := range svcChain.Rules {
		if r.SrcInSet != "" {
			lookups++
			if _, ok := rs.Sets[r.SrcInSet]; !ok {
				t.Errorf("rule names unknown set %s", r.SrcInSet)
			}
			// The remembered endpoint's chain must update the same set.
			epc := rs.Chains[r.Verdict.Goto]
			if !strings.Contains(epc.String(), "update @"+r.SrcInSet+" { ip saddr }") {
				t.Errorf("endpoint chain does not refresh %s:\n%s", r.SrcInSet, epc)
			}
		}
	}
	if lookups != 2 {
		t.Errorf("service chain:\n%s", svcChain)
	}
}

func TestBuildSkipsHeadlessAndExternalName(t *testing.T) {
	headless := service("h", func(s *v1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = v1.ClusterIPNone, []string{v1.ClusterIPNone}
	})
	ext := service("x", func(s *v1.Service) {
		s.Spec.Type, s.Spec.ExternalName, s.Spec.ClusterIP, s.Spec.ClusterIPs = v1.ServiceTypeExternalName, "example.com", "", nil
	})
	rs := Build(testConfig(), []*v1.Service{headless, ext}, []*discoveryv1.EndpointSlice{slice("h", 80, readyA)})
	if len(rs.Chains)+len(rs.ServiceIPs)+len(rs.NoEndpoints) != 0 {
		t.Errorf("rules for headless/ExternalName:\n%s", rs)
	}
}

func TestBuildIsOrderIndependent(t *testing.T) {
	svcs := []*v1.Service{service("a"), service("b", func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.43.0.21", nil })}
	slices := []*discoveryv1.EndpointSlice{slice("a", 80, readyA, readyB), slice("b", 81, readyB)}
	one := Build(testConfig(), svcs, slices).String()
	two := Build(testConfig(), []*v1.Service{svcs[1], svcs[0]}, []*discoveryv1.EndpointSlice{slices[1], slices[0]}).String()
	if one != two {
		t.Errorf("order changes the rules:\n%s\n---\n%s", one, two)
	}
}

// The Builder reuses a Service's rules only while its objects are the
// same, and its output always equals a fresh Build.
func TestBuilderReusesUnchangedServices(t *testing.T) {
	a, bsvc := service("a"), service("b", func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.43.0.21", nil })
	sa, sb := slice("a", 80, readyA), slice("b", 80, readyB)
	bld := NewBuilder(testConfig())
	first := bld.Build([]*v1.Service{a, bsvc}, []*discoveryv1.EndpointSlice{sa, sb})
	fa := bld.cache["ns/a"]
	// b's slice changes (a new object, as informers deliver it).
	sb2 := slice("b", 80, readyA, readyB)
	second := bld.Build([]*v1.Service{a, bsvc}, []*discoveryv1.EndpointSlice{sb2, sa})
	if bld.cache["ns/a"] != fa {
		t.Error("unchanged service a was rebuilt")
	}
	if got, want := second.String(), Build(testConfig(), []*v1.Service{a, bsvc}, []*discoveryv1.EndpointSlice{sa, sb2}).String(); got != want {
		t.Errorf("builder output differs from a fresh build:\n%s\n---\n%s", got, want)
	}
	if first.String() == second.String() {
		t.Error("b's new endpoint did not change the rules")
	}
	// A deleted service leaves the cache and the rules.
	third := bld.Build([]*v1.Service{a}, []*discoveryv1.EndpointSlice{sa})
	if _, ok := bld.cache["ns/b"]; ok || strings.Contains(third.String(), "ns/b/") {
		t.Errorf("deleted service b kept:\n%s", third)
	}
}
