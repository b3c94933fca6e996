// Package podsecurity holds the Pod Security Standards' checks, as
// upstream's PodSecurity admission evaluates them (1.37, "latest"): the
// baseline level forbids known privilege escalations, restricted adds
// hardening best practices. Each check is a pure function of a pod's
// metadata and spec giving upstream's reason and detail.
package podsecurity

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Level is a Pod Security Standard.
type Level string

// The levels, least strict first.
const (
	Privileged Level = "privileged"
	Baseline   Level = "baseline"
	Restricted Level = "restricted"
)

// Violation is one failed check: upstream's reason and detail.
type Violation struct {
	Reason, Detail string
}

func (v Violation) String() string {
	if v.Detail == "" {
		return v.Reason
	}
	return v.Reason + " (" + v.Detail + ")"
}

// check is one standard's rule; overlap marks a baseline check a
// restricted one replaces; since is the release (1.since) whose standard
// brought it in, so a namespace pinned to an older version is not judged
// by it.
type check struct {
	level   Level
	overlap bool
	since   int
	fn      func(*metav1.ObjectMeta, *corev1.PodSpec) *Violation
	// at, when set, is the check as release 1.minor words it (its allowed
	// values changed between releases).
	at func(minor int) func(*metav1.ObjectMeta, *corev1.PodSpec) *Violation
}

// checks are upstream's, in upstream's order (baseline results come
// first, then restricted, each in this order).
var checks = []check{
	{level: Restricted, since: 8, fn: allowPrivilegeEscalation},
	{level: Baseline, fn: appArmor},
	{level: Baseline, fn: capabilitiesBaseline},
	{level: Restricted, since: 22, fn: capabilitiesRestricted},
	{level: Baseline, fn: hostNamespaces},
	{level: Baseline, fn: hostPathVolumes},
	{level: Baseline, fn: hostPorts},
	{level: Baseline, since: 34, fn: hostProbes},
	{level: Baseline, fn: privileged},
	{level: Baseline, fn: procMount},
	{level: Restricted, fn: restrictedVolumes},
	{level: Restricted, fn: runAsNonRoot},
	{level: Restricted, since: 23, fn: runAsUser},
	{level: Baseline, fn: seLinuxOptions},
	{level: Baseline, overlap: true, fn: seccompBaseline},
	{level: Restricted, since: 19, fn: seccompRestricted},
	{level: Baseline, at: sysctlsAt},
	{level: Baseline, fn: windowsHostProcess},
}

// Latest is the newest release whose standard skiff knows; a version label
// naming a newer one (or "latest") is judged by it.
const Latest = 37

// Minor is the release a pod-security.kubernetes.io/*-version label names:
// "v1.25" is 25; "latest", "" and releases after Latest are Latest.
func Minor(version string) int {
	var minor int
	if n, err := fmt.Sscanf(version, "v1.%d", &minor); err != nil || n != 1 || minor > Latest {
		return Latest
	}
	return minor
}

// Evaluate is what pod breaks at level as release version ("latest" or
// "v1.x") of the standard words it (nothing at privileged).
func Evaluate(level Level, version string, meta *metav1.ObjectMeta, spec *corev1.PodSpec) []Violation {
	if level == Privileged || level == "" {
		return nil
	}
	minor := Minor(version)
	var out []Violation
	for _, pass := range []Level{Baseline, Restricted} {
		for _, c := range checks {
			if c.level != pass || pass == Restricted && level == Baseline || c.overlap && level == Restricted || c.since > minor {
				continue
			}
			fn := c.fn
			if c.at != nil {
				fn = c.at(minor)
			}
			if v := fn(meta, spec); v != nil {
				out = append(out, *v)
			}
		}
	}
	return out
}

// containers visits every container of spec, init and ephemeral ones too.
func containers(spec *corev1.PodSpec, fn func(name string, sc *corev1.SecurityContext, c *corev1.Container)) {
	for i := range spec.InitContainers {
		fn(spec.InitContainers[i].Name, spec.InitContainers[i].SecurityContext, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		fn(spec.Containers[i].Name, spec.Containers[i].SecurityContext, &spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		e := corev1.Container(spec.EphemeralContainers[i].EphemeralContainerCommon)
		fn(e.Name, e.SecurityContext, &e)
	}
}

func pluralize(one, many string, n int) string {
	if n == 1 {
		return one
	}
	return many
}

func joinQuote(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// named is `container "a"` or `containers "a", "b"`.
func named(names []string) string {
	return pluralize("container", "containers", len(names)) + " " + joinQuote(names)
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func allowPrivilegeEscalation(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	if spec.OS != nil && spec.OS.Name == corev1.Windows {
		return nil
	}
	var bad []string
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			bad = append(bad, name)
		}
	})
	if len(bad) == 0 {
		return nil
	}
	return &Violation{"allowPrivilegeEscalation != false", named(bad) + " must set securityContext.allowPrivilegeEscalation=false"}
}

func appArmor(meta *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var bad []string
	if sc := spec.SecurityContext; sc != nil && sc.AppArmorProfile != nil && sc.AppArmorProfile.Type == corev1.AppArmorProfileTypeUnconfined {
		bad = append(bad, `pod must not set securityContext.appArmorProfile.type to "Unconfined"`)
	}
	var containersBad []string
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		if sc != nil && sc.AppArmorProfile != nil && sc.AppArmorProfile.Type == corev1.AppArmorProfileTypeUnconfined {
			containersBad = append(containersBad, name)
		}
	})
	if len(containersBad) > 0 {
		bad = append(bad, named(containersBad)+` must not set securityContext.appArmorProfile.type to "Unconfined"`)
	}
	var keys []string
	for k, v := range meta.Annotations {
		if strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) && v != corev1.DeprecatedAppArmorBetaProfileRuntimeDefault && !strings.HasPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix) {
			keys = append(keys, fmt.Sprintf("%s=%q", k, v))
		}
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		bad = append(bad, pluralize("annotation ", "annotations ", len(keys))+strings.Join(keys, ", "))
	}
	if len(bad) == 0 {
		return nil
	}
	return &Violation{pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad)), strings.Join(bad, "; ")}
}

// baselineCapabilities are those baseline lets a container add.
var baselineCapabilities = []corev1.Capability{"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}

func capabilitiesBaseline(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var bad []string
	caps := map[string]bool{}
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		if sc == nil || sc.Capabilities == nil {
			return
		}
		found := false
		for _, c := range sc.Capabilities.Add {
			if !slices.Contains(baselineCapabilities, c) {
				found = true
				caps[string(c)] = true
			}
		}
		if found {
			bad = append(bad, name)
		}
	})
	if len(bad) == 0 {
		return nil
	}
	return &Violation{"non-default capabilities", fmt.Sprintf("%s must not include %s in securityContext.capabilities.add", named(bad), joinQuote(sortedSet(caps)))}
}

func capabilitiesRestricted(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	if spec.OS != nil && spec.OS.Name == corev1.Windows {
		return nil
	}
	var missingDrop, adding []string
	caps := map[string]bool{}
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		if sc == nil || sc.Capabilities == nil {
			missingDrop = append(missingDrop, name)
			return
		}
		if !slices.Contains(sc.Capabilities.Drop, "ALL") {
			missingDrop = append(missingDrop, name)
		}
		found := false
		for _, c := range sc.Capabilities.Add {
			if c != "NET_BIND_SERVICE" {
				found = true
				caps[string(c)] = true
			}
		}
		if found {
			adding = append(adding, name)
		}
	})
	var details []string
	if len(missingDrop) > 0 {
		details = append(details, named(missingDrop)+` must set securityContext.capabilities.drop=["ALL"]`)
	}
	if len(adding) > 0 {
		details = append(details, fmt.Sprintf("%s must not include %s in securityContext.capabilities.add", named(adding), joinQuote(sortedSet(caps))))
	}
	if len(details) == 0 {
		return nil
	}
	return &Violation{"unrestricted capabilities", strings.Join(details, "; ")}
}

func hostNamespaces(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var set []string
	if spec.HostNetwork {
		set = append(set, "hostNetwork=true")
	}
	if spec.HostPID {
		set = append(set, "hostPID=true")
	}
	if spec.HostIPC {
		set = append(set, "hostIPC=true")
	}
	if len(set) == 0 {
		return nil
	}
	return &Violation{"host namespaces", strings.Join(set, ", ")}
}

func hostPathVolumes(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var bad []string
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			bad = append(bad, v.Name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &Violation{"hostPath volumes", pluralize("volume", "volumes", len(bad)) + " " + joinQuote(bad)}
}

func hostPorts(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var bad, ports []string
	containers(spec, func(name string, _ *corev1.SecurityContext, c *corev1.Container) {
		found := false
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				found = true
				ports = append(ports, fmt.Sprint(p.HostPort))
			}
		}
		if found {
			bad = append(bad, name)
		}
	})
	if len(bad) == 0 {
		return nil
	}
	return &Violation{"hostPort", fmt.Sprintf("%s %s %s %s", named(bad), pluralize("uses", "use", len(bad)), pluralize("hostPort", "hostPorts", len(ports)), strings.Join(ports, ", "))}
}

func hostProbes(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var bad []string
	hosts := map[string]bool{}
	containers(spec, func(name string, _ *corev1.SecurityContext, c *corev1.Container) {
		found := false
		handlers := []*corev1.ProbeHandler{}
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if p != nil {
				handlers = append(handlers, &p.ProbeHandler)
			}
		}
		for _, h := range handlers {
			if h.HTTPGet != nil && h.HTTPGet.Host != "" {
				found, hosts[h.HTTPGet.Host] = true, true
			}
			if h.TCPSocket != nil && h.TCPSocket.Host != "" {
				found, hosts[h.TCPSocket.Host] = true, true
			}
		}
		if l := c.Lifecycle; l != nil {
			for _, h := range []*corev1.LifecycleHandler{l.PostStart, l.PreStop} {
				if h == nil {
					continue
				}
				if h.HTTPGet != nil && h.HTTPGet.Host != "" {
					found, hosts[h.HTTPGet.Host] = true, true
				}
				if h.TCPSocket != nil && h.TCPSocket.Host != "" {
					found, hosts[h.TCPSocket.Host] = true, true
				}
			}
		}
		if found {
			bad = append(bad, name)
		}
	})
	if len(bad) == 0 {
		return nil
	}
	return &Violation{"probe or lifecycle host", fmt.Sprintf("%s %s probe or lifecycle host %s", named(bad), pluralize("uses", "use", len(bad)), joinQuote(sortedSet(hosts)))}
}

func privileged(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var bad []string
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		if sc != nil && sc.Privileged != nil && *sc.Privileged {
			bad = append(bad, name)
		}
	})
	if len(bad) == 0 {
		return nil
	}
	return &Violation{"privileged", named(bad) + " must not set securityContext.privileged=true"}
}

func procMount(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	if spec.HostUsers != nil && !*spec.HostUsers {
		return nil // a user namespace makes an unmasked /proc harmless
	}
	var bad []string
	mounts := map[string]bool{}
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		if sc != nil && sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
			bad = append(bad, name)
			mounts[string(*sc.ProcMount)] = true
		}
	})
	if len(bad) == 0 {
		return nil
	}
	return &Violation{"procMount", fmt.Sprintf("%s must not set securityContext.procMount to %s", named(bad), joinQuote(sortedSet(mounts)))}
}

func restrictedVolumes(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var bad []string
	types := map[string]bool{}
	for _, v := range spec.Volumes {
		s := v.VolumeSource
		if s.ConfigMap != nil || s.CSI != nil || s.DownwardAPI != nil || s.EmptyDir != nil || s.Ephemeral != nil ||
			s.PersistentVolumeClaim != nil || s.Projected != nil || s.Secret != nil || s.Image != nil {
			continue
		}
		bad = append(bad, v.Name)
		types[volumeType(s)] = true
	}
	if len(bad) == 0 {
		return nil
	}
	return &Violation{"restricted volume types", fmt.Sprintf("%s %s %s restricted volume %s %s",
		pluralize("volume", "volumes", len(bad)), joinQuote(bad), pluralize("uses", "use", len(bad)), pluralize("type", "types", len(types)), joinQuote(sortedSet(types)))}
}

// volumeType names the field a volume source sets.
func volumeType(s corev1.VolumeSource) string {
	switch {
	case s.HostPath != nil:
		return "hostPath"
	case s.NFS != nil:
		return "nfs"
	case s.ISCSI != nil:
		return "iscsi"
	case s.GitRepo != nil:
		return "gitRepo"
	case s.FC != nil:
		return "fc"
	case s.RBD != nil:
		return "rbd"
	case s.CephFS != nil:
		return "cephfs"
	case s.Glusterfs != nil:
		return "glusterfs"
	}
	return "unknown"
}

func runAsNonRoot(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	if spec.HostUsers != nil && !*spec.HostUsers {
		return nil
	}
	var badSetters []string
	podSet := false
	if sc := spec.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
		if !*sc.RunAsNonRoot {
			badSetters = append(badSetters, "pod")
		} else {
			podSet = true
		}
	}
	var explicit, implicit []string
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		switch {
		case sc != nil && sc.RunAsNonRoot != nil:
			if !*sc.RunAsNonRoot {
				explicit = append(explicit, name)
			}
		case !podSet:
			implicit = append(implicit, name)
		}
	})
	if len(explicit) > 0 {
		badSetters = append(badSetters, named(explicit))
	}
	if len(badSetters) > 0 {
		return &Violation{"runAsNonRoot != true", strings.Join(badSetters, " and ") + " must not set securityContext.runAsNonRoot=false"}
	}
	if len(implicit) > 0 {
		return &Violation{"runAsNonRoot != true", "pod or " + named(implicit) + " must set securityContext.runAsNonRoot=true"}
	}
	return nil
}

func runAsUser(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	if spec.HostUsers != nil && !*spec.HostUsers {
		return nil
	}
	var badSetters, bad []string
	if sc := spec.SecurityContext; sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		badSetters = append(badSetters, "pod")
	}
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		if sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			bad = append(bad, name)
		}
	})
	if len(bad) > 0 {
		badSetters = append(badSetters, named(bad))
	}
	if len(badSetters) == 0 {
		return nil
	}
	return &Violation{"runAsUser=0", strings.Join(badSetters, " and ") + " must not set runAsUser=0"}
}

// seLinuxTypes are the SELinux types baseline allows.
var seLinuxTypes = []string{"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

func seLinuxOptions(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var setters []string
	types, users, roles := map[string]bool{}, false, false
	judge := func(o *corev1.SELinuxOptions) bool {
		if o == nil {
			return false
		}
		bad := false
		if !slices.Contains(seLinuxTypes, o.Type) {
			types[o.Type], bad = true, true
		}
		if o.User != "" {
			users, bad = true, true
		}
		if o.Role != "" {
			roles, bad = true, true
		}
		return bad
	}
	if sc := spec.SecurityContext; sc != nil && judge(sc.SELinuxOptions) {
		setters = append(setters, "pod")
	}
	var bad []string
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		if sc != nil && judge(sc.SELinuxOptions) {
			bad = append(bad, name)
		}
	})
	if len(bad) > 0 {
		setters = append(setters, named(bad))
	}
	if len(setters) == 0 {
		return nil
	}
	var what []string
	if len(types) > 0 {
		what = append(what, pluralize("type ", "types ", len(types))+joinQuote(sortedSet(types)))
	}
	if users {
		what = append(what, "user may not be set")
	}
	if roles {
		what = append(what, "role may not be set")
	}
	return &Violation{"seLinuxOptions", fmt.Sprintf("%s set forbidden securityContext.seLinuxOptions: %s", strings.Join(setters, " and "), strings.Join(what, "; "))}
}

func seccompBaseline(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var setters []string
	if sc := spec.SecurityContext; sc != nil && sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeUnconfined {
		setters = append(setters, "pod")
	}
	var bad []string
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		if sc != nil && sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeUnconfined {
			bad = append(bad, name)
		}
	})
	if len(bad) > 0 {
		setters = append(setters, named(bad))
	}
	if len(setters) == 0 {
		return nil
	}
	return &Violation{"seccompProfile", strings.Join(setters, " and ") + ` must not set securityContext.seccompProfile.type to "Unconfined"`}
}

func seccompRestricted(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	if spec.OS != nil && spec.OS.Name == corev1.Windows {
		return nil
	}
	valid := func(t corev1.SeccompProfileType) bool {
		return t == corev1.SeccompProfileTypeRuntimeDefault || t == corev1.SeccompProfileTypeLocalhost
	}
	var setters, explicit, implicit []string
	values := map[string]bool{}
	podSet := false
	if sc := spec.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		if !valid(sc.SeccompProfile.Type) {
			setters = append(setters, "pod")
			values[string(sc.SeccompProfile.Type)] = true
		} else {
			podSet = true
		}
	}
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		switch {
		case sc != nil && sc.SeccompProfile != nil:
			if !valid(sc.SeccompProfile.Type) {
				explicit = append(explicit, name)
				values[string(sc.SeccompProfile.Type)] = true
			}
		case !podSet:
			implicit = append(implicit, name)
		}
	})
	if len(explicit) > 0 {
		setters = append(setters, named(explicit))
	}
	if len(setters) > 0 {
		return &Violation{"seccompProfile", fmt.Sprintf("%s must not set securityContext.seccompProfile.type to %s", strings.Join(setters, " and "), joinQuote(sortedSet(values)))}
	}
	if len(implicit) > 0 {
		return &Violation{"seccompProfile", "pod or " + named(implicit) + ` must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`}
	}
	return nil
}

// safeSysctls are those baseline allows, by the release that allowed
// them.
var safeSysctls = []struct {
	since int
	names []string
}{
	{0, []string{"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range"}},
	{27, []string{"net.ipv4.ip_local_reserved_ports"}},
	{29, []string{"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}},
	{32, []string{"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}},
}

// sysctlsAt is the sysctls check of release 1.minor.
func sysctlsAt(minor int) func(*metav1.ObjectMeta, *corev1.PodSpec) *Violation {
	var safe []string
	for _, s := range safeSysctls {
		if s.since <= minor {
			safe = append(safe, s.names...)
		}
	}
	return func(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
		if spec.SecurityContext == nil {
			return nil
		}
		var bad []string
		for _, s := range spec.SecurityContext.Sysctls {
			if !slices.Contains(safe, s.Name) {
				bad = append(bad, s.Name)
			}
		}
		if len(bad) == 0 {
			return nil
		}
		return &Violation{"forbidden sysctls", strings.Join(bad, ", ")}
	}
}

func windowsHostProcess(_ *metav1.ObjectMeta, spec *corev1.PodSpec) *Violation {
	var setters []string
	if sc := spec.SecurityContext; sc != nil && sc.WindowsOptions != nil && sc.WindowsOptions.HostProcess != nil && *sc.WindowsOptions.HostProcess {
		setters = append(setters, "pod")
	}
	var bad []string
	containers(spec, func(name string, sc *corev1.SecurityContext, _ *corev1.Container) {
		if sc != nil && sc.WindowsOptions != nil && sc.WindowsOptions.HostProcess != nil && *sc.WindowsOptions.HostProcess {
			bad = append(bad, name)
		}
	})
	if len(bad) > 0 {
		setters = append(setters, named(bad))
	}
	if len(setters) == 0 {
		return nil
	}
	return &Violation{"hostProcess", strings.Join(setters, " and ") + " must not set securityContext.windowsOptions.hostProcess=true"}
}
