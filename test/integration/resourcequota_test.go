package integration

import (
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/test/poll"
)

// TestResourceQuotaUsage checks that quota status follows what is in the
// namespace, as `kubectl describe quota` shows it.
func TestResourceQuotaUsage(t *testing.T) {
	s := startServer(t)
	s.mustKubectl("create", "quota", "q", "--hard=pods=10,requests.cpu=4,configmaps=20,count/deployments.apps=5")
	waitQuotaStatus(t, s, "q")
	s.mustKubectl("run", "p1", "--image=busybox", "--overrides", `{"spec":{"containers":[{"name":"p1","image":"busybox","resources":{"requests":{"cpu":"500m"}}}]}}`)
	s.mustKubectl("create", "cm", "one")
	s.mustKubectl("create", "deploy", "d", "--image=busybox", "--replicas=0")
	poll.Eventually(t, settle, poll.State("quota usage", func() (bool, string) {
		got := s.mustKubectl("get", "quota", "q", "-o", `jsonpath={.status.used.pods} {.status.used.requests\.cpu} {.status.used.configmaps} {.status.used.count/deployments\.apps}`)
		// configmaps: "one" and the root CA publisher's kube-root-ca.crt.
		return got == "1 500m 2 1", got
	}))
	if out := s.mustKubectl("describe", "quota", "q"); !strings.Contains(out, "requests.cpu") || !strings.Contains(out, "500m") {
		t.Errorf("describe quota:\n%s", out)
	}
}

// waitQuotaStatus waits for the controller's first count: until then
// admission refuses what the quota limits ("status unknown"), as upstream.
func waitQuotaStatus(t *testing.T, s *server, name string, extra ...string) {
	t.Helper()
	poll.Eventually(t, settle, poll.State("quota "+name+" counted", func() (bool, string) {
		out, _, err := s.kubectl(append([]string{"get", "quota", name, "-o", "jsonpath={.status.used}"}, extra...)...)
		return err == nil && out != "", out
	}))
}

// ResourceQuota is enforced at admission: a create over a hard limit is
// refused with upstream's message, a pod that does not declare a limited
// compute resource is refused, and a ReplicaSet that runs into the quota
// reports ReplicaFailure.
func TestResourceQuotaAdmission(t *testing.T) {
	s := startServer(t)
	s.mustKubectl("create", "quota", "q", "--hard=pods=2,requests.cpu=1")
	waitQuotaStatus(t, s, "q")
	pod := func(name, cpu string) string {
		res := ""
		if cpu != "" {
			res = `,"resources":{"requests":{"cpu":"` + cpu + `"}}`
		}
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"` + name + `"},"spec":{"containers":[{"name":"c","image":"busybox"` + res + `}]}}`
	}
	for _, name := range []string{"a", "b"} {
		if _, errOut, err := s.kubectlStdin(pod(name, "400m"), "create", "-f", "-"); err != nil {
			t.Fatalf("pod %s within quota: %v %s", name, err, errOut)
		}
	}
	_, errOut, err := s.kubectlStdin(pod("c", "100m"), "create", "-f", "-")
	if err == nil || !strings.Contains(errOut, `pods "c" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`) {
		t.Errorf("third pod: %v %s", err, errOut)
	}
	s.mustKubectl("delete", "pod", "b", "--grace-period=0", "--force")
	poll.Eventually(t, settle, poll.State("usage drops", func() (bool, string) {
		out := s.mustKubectl("get", "quota", "q", "-o", "jsonpath={.status.used.pods}")
		return out == "1", out
	}))
	_, errOut, err = s.kubectlStdin(pod("d", "700m"), "create", "-f", "-")
	if err == nil || !strings.Contains(errOut, "exceeded quota: q, requested: requests.cpu=700m, used: requests.cpu=400m, limited: requests.cpu=1") {
		t.Errorf("pod over the cpu quota: %v %s", err, errOut)
	}
	_, errOut, err = s.kubectlStdin(pod("e", ""), "create", "-f", "-")
	if err == nil || !strings.Contains(errOut, "failed quota: q: must specify requests.cpu") {
		t.Errorf("pod without a cpu request: %v %s", err, errOut)
	}

	rs := `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"many"},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"many"}},
"template":{"metadata":{"labels":{"app":"many"}},"spec":{"containers":[{"name":"c","image":"busybox","resources":{"requests":{"cpu":"100m"}}}]}}}}`
	if _, errOut, err := s.kubectlStdin(rs, "create", "-f", "-"); err != nil {
		t.Fatalf("replicaset: %v %s", err, errOut)
	}
	poll.Eventually(t, settle, poll.State("ReplicaFailure on the quota", func() (bool, string) {
		out := s.mustKubectl("get", "rs", "many", "-o", `jsonpath={.status.conditions[?(@.type=="ReplicaFailure")].reason}:{.status.conditions[?(@.type=="ReplicaFailure")].message}`)
		return strings.HasPrefix(out, "FailedCreate:") && strings.Contains(out, "exceeded quota: q"), out
	}))

	// A burst of creates from an empty namespace stops at the limit: the
	// controller's recounts must not write admission's charges away.
	s.mustKubectl("create", "namespace", "burst")
	s.mustKubectl("-n", "burst", "create", "quota", "pods", "--hard=pods=2")
	waitQuotaStatus(t, s, "pods", "-n", "burst")
	rc := `{"apiVersion":"v1","kind":"ReplicationController","metadata":{"name":"rc","namespace":"burst"},"spec":{"replicas":3,"selector":{"app":"rc"},
"template":{"metadata":{"labels":{"app":"rc"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}`
	if _, errOut, err := s.kubectlStdin(rc, "create", "-f", "-"); err != nil {
		t.Fatalf("replicationcontroller: %v %s", err, errOut)
	}
	poll.Eventually(t, settle, poll.State("ReplicaFailure on the RC", func() (bool, string) {
		out := s.mustKubectl("-n", "burst", "get", "rc", "rc", "-o", `jsonpath={.status.conditions[?(@.type=="ReplicaFailure")].reason}`)
		return out == "FailedCreate", out
	}))
	if out := s.mustKubectl("-n", "burst", "get", "pods", "-o", "name"); strings.Count(out, "pod/") != 2 {
		t.Errorf("pods under a quota of 2:\n%s", out)
	}
	// A Terminating-scoped quota counts only pods with an active deadline.
	s.mustKubectl("create", "namespace", "scoped")
	s.mustKubectl("-n", "scoped", "create", "quota", "t", "--hard=pods=1", "--scopes=Terminating")
	waitQuotaStatus(t, s, "t", "-n", "scoped")
	scopedPod := func(name string, deadline bool) string {
		d := ""
		if deadline {
			d = `"activeDeadlineSeconds":600,`
		}
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"` + name + `","namespace":"scoped"},"spec":{` + d + `"containers":[{"name":"c","image":"busybox"}]}}`
	}
	for _, tc := range []struct {
		name     string
		deadline bool
		allowed  bool
	}{{"plain-1", false, true}, {"plain-2", false, true}, {"deadline-1", true, true}, {"deadline-2", true, false}} {
		_, errOut, err := s.kubectlStdin(scopedPod(tc.name, tc.deadline), "create", "-f", "-")
		if (err == nil) != tc.allowed {
			t.Errorf("pod %s under a Terminating quota of 1: allowed %v, want %v (%s)", tc.name, err == nil, tc.allowed, errOut)
		}
	}

	s.mustKubectl("-n", "burst", "scale", "rc", "rc", "--replicas=2")
	poll.Eventually(t, settle, poll.State("ReplicaFailure cleared", func() (bool, string) {
		out := s.mustKubectl("-n", "burst", "get", "rc", "rc", "-o", `jsonpath={.status.conditions}`)
		return out == "", out
	}))
}
