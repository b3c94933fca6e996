package integration

import (
	"strings"
	"testing"
)

// TestResourceQuotaUsage checks that quota status follows what is in the
// namespace, as `kubectl describe quota` shows it.
func TestResourceQuotaUsage(t *testing.T) {
	s := startServer(t)
	s.mustKubectl("create", "quota", "q", "--hard=pods=10,requests.cpu=4,configmaps=20,count/deployments.apps=5")
	s.mustKubectl("run", "p1", "--image=busybox", "--overrides", `{"spec":{"containers":[{"name":"p1","image":"busybox","resources":{"requests":{"cpu":"500m"}}}]}}`)
	s.mustKubectl("create", "cm", "one")
	s.mustKubectl("create", "deploy", "d", "--image=busybox", "--replicas=0")
	eventually(t, "quota usage", func() (bool, string) {
		got := s.mustKubectl("get", "quota", "q", "-o", `jsonpath={.status.used.pods} {.status.used.requests\.cpu} {.status.used.configmaps} {.status.used.count/deployments\.apps}`)
		// configmaps: "one" and the root CA publisher's kube-root-ca.crt.
		return got == "1 500m 2 1", got
	})
	if out := s.mustKubectl("describe", "quota", "q"); !strings.Contains(out, "requests.cpu") || !strings.Contains(out, "500m") {
		t.Errorf("describe quota:\n%s", out)
	}
}
