package kubelet

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestTargetPIDNamespace: a debugging container with a target joins the
// target's process namespace; with a shared or host namespace it keeps it.
func TestTargetPIDNamespace(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{
		Containers:          []v1.Container{{Name: "app"}},
		EphemeralContainers: []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debugger"}, TargetContainerName: "app"}},
	}}
	if got := debugTarget(pod, "debugger"); got != "app" {
		t.Fatalf("target %q", got)
	}
	if got := debugTarget(pod, "app"); got != "" {
		t.Errorf("an app container has target %q", got)
	}
	for _, c := range []struct {
		name       string
		shareProc  bool
		want       cri.NamespaceMode
		wantTarget string
	}{
		{"own namespace", false, cri.NamespaceMode_TARGET, "c-123"},
		{"pod shares its namespace", true, cri.NamespaceMode_POD, ""},
	} {
		p := pod.DeepCopy()
		p.Spec.ShareProcessNamespace = &c.shareProc
		cfg, err := containerConfig(containerSpec{pod: p, c: &v1.Container{Name: "debugger"}, initIndex: -1})
		if err != nil {
			t.Fatal(err)
		}
		targetPIDNamespace(cfg, "c-123")
		ns := cfg.Linux.SecurityContext.NamespaceOptions
		if ns.Pid != c.want || ns.TargetId != c.wantTarget {
			t.Errorf("%s: pid %v target %q, want %v %q", c.name, ns.Pid, ns.TargetId, c.want, c.wantTarget)
		}
	}
}
