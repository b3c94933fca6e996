package podsecurity

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func pod(mutate func(*corev1.PodSpec, *metav1.ObjectMeta)) (*metav1.ObjectMeta, *corev1.PodSpec) {
	meta := &metav1.ObjectMeta{Name: "p"}
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}
	if mutate != nil {
		mutate(spec, meta)
	}
	return meta, spec
}

// restrictedPod meets every check.
func restrictedPod(s *corev1.PodSpec, _ *metav1.ObjectMeta) {
	s.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	for i := range s.Containers {
		s.Containers[i].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	}
}

func TestEvaluate(t *testing.T) {
	for _, c := range []struct {
		name   string
		level  Level
		mutate func(*corev1.PodSpec, *metav1.ObjectMeta)
		want   string
	}{
		{"a plain pod is baseline", Baseline, nil, ""},
		{"a plain pod is not restricted", Restricted, nil,
			`allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), ` +
				`unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), ` +
				`runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), ` +
				`seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`},
		{"a hardened pod is restricted", Restricted, restrictedPod, ""},
		{"privileged is anything", Privileged, func(s *corev1.PodSpec, _ *metav1.ObjectMeta) { s.HostNetwork = true }, ""},
		{"host namespaces", Baseline, func(s *corev1.PodSpec, _ *metav1.ObjectMeta) { s.HostNetwork, s.HostPID = true, true },
			"host namespaces (hostNetwork=true, hostPID=true)"},
		{"privileged containers", Baseline, func(s *corev1.PodSpec, _ *metav1.ObjectMeta) {
			s.Containers = append(s.Containers, corev1.Container{Name: "d"})
			for i := range s.Containers {
				s.Containers[i].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
			}
		}, `privileged (containers "c", "d" must not set securityContext.privileged=true)`},
		{"capabilities and host ports", Baseline, func(s *corev1.PodSpec, _ *metav1.ObjectMeta) {
			s.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN", "NET_RAW", "CHOWN"}}}
			s.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
		}, `non-default capabilities (container "c" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add), hostPort (container "c" uses hostPort 8080)`},
		{"hostPath, restricted adds its volume type", Restricted, func(s *corev1.PodSpec, m *metav1.ObjectMeta) {
			restrictedPod(s, m)
			s.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		}, `hostPath volumes (volume "root"), restricted volume types (volume "root" uses restricted volume type "hostPath")`},
		{"runAsUser 0 and runAsNonRoot false", Restricted, func(s *corev1.PodSpec, m *metav1.ObjectMeta) {
			restrictedPod(s, m)
			s.SecurityContext.RunAsNonRoot = ptr.To(false)
			s.Containers[0].SecurityContext.RunAsUser = ptr.To[int64](0)
		}, `runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false), runAsUser=0 (container "c" must not set runAsUser=0)`},
		{"unconfined seccomp: the restricted check replaces baseline's", Restricted, func(s *corev1.PodSpec, m *metav1.ObjectMeta) {
			restrictedPod(s, m)
			s.SecurityContext.SeccompProfile.Type = corev1.SeccompProfileTypeUnconfined
		}, `seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")`},
		{"unconfined seccomp at baseline", Baseline, func(s *corev1.PodSpec, _ *metav1.ObjectMeta) {
			s.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
		}, `seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")`},
		{"sysctls and procMount", Baseline, func(s *corev1.PodSpec, _ *metav1.ObjectMeta) {
			s.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.tcp_syncookies", Value: "1"}, {Name: "kernel.msgmax", Value: "1"}}}
			s.Containers[0].SecurityContext = &corev1.SecurityContext{ProcMount: ptr.To(corev1.UnmaskedProcMount)}
		}, `procMount (container "c" must not set securityContext.procMount to "Unmasked"), forbidden sysctls (kernel.msgmax)`},
		{"restricted allows NET_BIND_SERVICE only", Restricted, func(s *corev1.PodSpec, m *metav1.ObjectMeta) {
			restrictedPod(s, m)
			s.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_BIND_SERVICE", "CHOWN"}
		}, `unrestricted capabilities (container "c" must not include "CHOWN" in securityContext.capabilities.add)`},
		{"init containers count", Restricted, func(s *corev1.PodSpec, m *metav1.ObjectMeta) {
			restrictedPod(s, m)
			s.InitContainers = []corev1.Container{{Name: "init", SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}}
		}, `allowPrivilegeEscalation != false (container "init" must set securityContext.allowPrivilegeEscalation=false)`},
	} {
		meta, spec := pod(c.mutate)
		var got []string
		for _, v := range Evaluate(c.level, "latest", meta, spec) {
			got = append(got, v.String())
		}
		if s := strings.Join(got, ", "); s != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, s, c.want)
		}
	}
}

// A namespace pinned to an older release of the standard is judged by the
// checks of that release: newer checks do not apply, and a sysctl allowed
// later is still forbidden.
func TestEvaluateVersions(t *testing.T) {
	reasons := func(level Level, version string, meta *metav1.ObjectMeta, spec *corev1.PodSpec) string {
		var out []string
		for _, v := range Evaluate(level, version, meta, spec) {
			out = append(out, v.Reason)
		}
		return strings.Join(out, ", ")
	}
	rootPlain := func(s *corev1.PodSpec, _ *metav1.ObjectMeta) {
		s.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0)}
	}
	meta, spec := pod(rootPlain)
	for _, c := range []struct{ version, want string }{
		{"latest", "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, runAsUser=0, seccompProfile"},
		{"v1.23", "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, runAsUser=0, seccompProfile"},
		{"v1.22", "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"},
		{"v1.21", "allowPrivilegeEscalation != false, runAsNonRoot != true, seccompProfile"},
		{"v1.18", "allowPrivilegeEscalation != false, runAsNonRoot != true"},
		{"v1.7", "runAsNonRoot != true"},
		{"v1.99", "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, runAsUser=0, seccompProfile"},
	} {
		if got := reasons(Restricted, c.version, meta, spec); got != c.want {
			t.Errorf("restricted:%s: %q, want %q", c.version, got, c.want)
		}
	}

	meta, spec = pod(func(s *corev1.PodSpec, _ *metav1.ObjectMeta) {
		s.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Host: "10.0.0.1"}}}
		s.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.tcp_keepalive_time", Value: "60"}}}
	})
	for _, c := range []struct{ version, want string }{
		{"latest", "probe or lifecycle host"},
		{"v1.34", "probe or lifecycle host"},
		{"v1.33", ""},
		{"v1.29", ""},
		{"v1.28", "forbidden sysctls"},
	} {
		if got := reasons(Baseline, c.version, meta, spec); got != c.want {
			t.Errorf("baseline:%s: %q, want %q", c.version, got, c.want)
		}
	}
	for v, want := range map[string]int{"latest": Latest, "": Latest, "v1.25": 25, "v1.99": Latest, "v2.0": Latest} {
		if got := Minor(v); got != want {
			t.Errorf("Minor(%q) = %d, want %d", v, got, want)
		}
	}
}
