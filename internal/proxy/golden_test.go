package proxy

import (
	"path/filepath"
	"testing"

	"github.com/skiff-sh/skiff/internal/golden"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

// TestRulesetGolden renders the whole rule set of a small cluster: a
// ClusterIP Service with local and remote endpoints, one whose only
// endpoint is terminating, one with none, a NodePort with
// externalTrafficPolicy Local, a LoadBalancer with session affinity, and a
// headless and an ExternalName Service that get no rules. A change to the
// rules shows as a diff of testdata/ruleset.golden
// (go test ./internal/proxy -run Golden -update rewrites it).
func TestRulesetGolden(t *testing.T) {
	services := []*v1.Service{
		service("web"),
		service("draining", func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.43.0.21", []string{"10.43.0.21"} }),
		service("empty", func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.43.0.22", []string{"10.43.0.22"} }),
		service("nodeport", func(s *v1.Service) {
			s.Spec.Type, s.Spec.ClusterIP, s.Spec.ClusterIPs = v1.ServiceTypeNodePort, "10.43.0.23", []string{"10.43.0.23"}
			s.Spec.Ports[0].NodePort = 30080
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		}),
		service("lb", func(s *v1.Service) {
			s.Spec.Type, s.Spec.ClusterIP, s.Spec.ClusterIPs = v1.ServiceTypeLoadBalancer, "10.43.0.24", []string{"10.43.0.24"}
			s.Spec.Ports[0].NodePort = 30081
			s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](600)}}
			s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "192.168.1.10"}}
		}),
		service("headless", func(s *v1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = v1.ClusterIPNone, []string{v1.ClusterIPNone}
		}),
		service("external", func(s *v1.Service) {
			s.Spec.Type, s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.ExternalName = v1.ServiceTypeExternalName, "", nil, "example.com"
		}),
	}
	slices := []*discoveryv1.EndpointSlice{
		slice("web", 8080, readyA, readyB),
		slice("draining", 8080, ep{ip: "10.42.0.9", node: "node-a", serving: true, terminating: true}),
		slice("nodeport", 8080, readyA, readyB),
		slice("lb", 8080, readyB),
		slice("headless", 8080, readyA),
	}
	got := Build(testConfig(), services, slices).String()
	golden.Check(t, filepath.Join("testdata", "ruleset.golden"), got)
}
