package kubelet

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/plan"
	"github.com/skiff-sh/skiff/internal/kubelet/volume"
)

// Labels and annotations skiff puts on sandboxes and containers; the names
// are upstream's, so crictl and existing tooling read them.
const (
	labelPodName        = "io.kubernetes.pod.name"
	labelPodNamespace   = "io.kubernetes.pod.namespace"
	labelPodUID         = "io.kubernetes.pod.uid"
	labelContainerName  = "io.kubernetes.container.name"
	annotationHash      = "io.kubernetes.container.hash"
	annotationRestarts  = "io.kubernetes.container.restartCount"
	annotationTermPath  = "io.kubernetes.container.terminationMessagePath"
	annotationTermPol   = "io.kubernetes.container.terminationMessagePolicy"
	annotationInitIndex = "io.skiff.container.initIndex"
)

// Linux CFS settings for cpu limits and requests.
const (
	cpuPeriod       = 100000
	minShares       = 2
	sharesPerCPU    = 1024
	milliCPUToCPU   = 1000
	defaultHostsTpl = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
)

// cgroupParent is the pod's cgroup under the QoS class's, as upstream's
// cgroupfs driver lays them out.
func cgroupParent(pod *v1.Pod) string {
	switch pod.Status.QOSClass {
	case v1.PodQOSGuaranteed:
		return "/kubepods/pod" + string(pod.UID)
	case v1.PodQOSBurstable:
		return "/kubepods/burstable/pod" + string(pod.UID)
	}
	return "/kubepods/besteffort/pod" + string(pod.UID)
}

func (k *Kubelet) logDir(pod *v1.Pod) string {
	return filepath.Join(k.cfg.RootDir, "logs", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
}

// sandboxConfig describes the pod's sandbox to the runtime.
func (k *Kubelet) sandboxConfig(pod *v1.Pod, attempt uint32) *cri.PodSandboxConfig {
	labels := map[string]string{labelPodName: pod.Name, labelPodNamespace: pod.Namespace, labelPodUID: string(pod.UID)}
	for key, v := range pod.Labels {
		if _, reserved := labels[key]; !reserved {
			labels[key] = v
		}
	}
	hostNet := pod.Spec.HostNetwork
	cfg := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		LogDirectory: k.logDir(pod),
		Labels:       labels,
		Annotations:  pod.Annotations,
		DnsConfig:    k.dnsConfig(pod),
		Linux: &cri.LinuxPodSandboxConfig{
			CgroupParent: cgroupParent(pod),
			SecurityContext: &cri.LinuxSandboxSecurityContext{
				NamespaceOptions: namespaceOptions(pod),
				Privileged:       podPrivileged(pod),
			},
			Sysctls: map[string]string{},
		},
	}
	// A host-network pod shares the node's UTS namespace: setting a
	// hostname there is refused (RUNTIME-NOTES).
	if !hostNet {
		cfg.Hostname = podHostname(pod)
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		for _, s := range sc.Sysctls {
			cfg.Linux.Sysctls[s.Name] = s.Value
		}
		ssc := cfg.Linux.SecurityContext
		if sc.RunAsUser != nil {
			ssc.RunAsUser = &cri.Int64Value{Value: *sc.RunAsUser}
		}
		if sc.RunAsGroup != nil {
			ssc.RunAsGroup = &cri.Int64Value{Value: *sc.RunAsGroup}
		}
		ssc.SupplementalGroups = append(ssc.SupplementalGroups, sc.SupplementalGroups...)
		if sc.FSGroup != nil {
			ssc.SupplementalGroups = append(ssc.SupplementalGroups, *sc.FSGroup)
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			cfg.PortMappings = append(cfg.PortMappings, &cri.PortMapping{
				Protocol: protocol(p.Protocol), ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP,
			})
		}
	}
	return cfg
}

func protocol(p v1.Protocol) cri.Protocol {
	switch p {
	case v1.ProtocolUDP:
		return cri.Protocol_UDP
	case v1.ProtocolSCTP:
		return cri.Protocol_SCTP
	}
	return cri.Protocol_TCP
}

// podHostname is spec.hostname or the pod name, cut to 63 characters.
func podHostname(pod *v1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

func podPrivileged(pod *v1.Pod) bool {
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
				return true
			}
		}
	}
	return false
}

func namespaceOptions(pod *v1.Pod) *cri.NamespaceOption {
	ns := &cri.NamespaceOption{Network: cri.NamespaceMode_POD, Pid: cri.NamespaceMode_CONTAINER, Ipc: cri.NamespaceMode_POD}
	if pod.Spec.HostNetwork {
		ns.Network = cri.NamespaceMode_NODE
	}
	if pod.Spec.HostPID {
		ns.Pid = cri.NamespaceMode_NODE
	} else if pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace {
		ns.Pid = cri.NamespaceMode_POD
	}
	if pod.Spec.HostIPC {
		ns.Ipc = cri.NamespaceMode_NODE
	}
	return ns
}

// dnsConfig is the pod's resolv.conf (see podDNS).
func (k *Kubelet) dnsConfig(pod *v1.Pod) *cri.DNSConfig {
	host := readResolvConf(k.cfg.ResolvConf)
	return podDNS(pod, k.cfg.ClusterDNS, k.cfg.ClusterDomain, host)
}

// containerSpec is everything needed to create one container.
type containerSpec struct {
	pod          *v1.Pod
	c            *v1.Container
	restartCount int
	env          []v1.EnvVar
	volumes      map[string]volume.Mounted
	// termFile is the host file mounted at terminationMessagePath.
	termFile  string
	hostsFile string
	initIndex int // -1 for app containers
	// memoryCapacity of the node, for the container's OOM score
	memoryCapacity int64
}

// containerConfig translates a container of the pod spec into the CRI's
// terms.
func containerConfig(s containerSpec) (*cri.ContainerConfig, error) {
	c := s.c
	cfg := &cri.ContainerConfig{
		Metadata:   &cri.ContainerMetadata{Name: c.Name, Attempt: uint32(s.restartCount)},
		Image:      &cri.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image},
		WorkingDir: c.WorkingDir,
		Labels: map[string]string{
			labelPodName: s.pod.Name, labelPodNamespace: s.pod.Namespace, labelPodUID: string(s.pod.UID), labelContainerName: c.Name,
		},
		Annotations: map[string]string{
			annotationHash: plan.ContainerHash(c), annotationRestarts: strconv.Itoa(s.restartCount), annotationResources: resourcesAnnotation(c),
			annotationTermPath: c.TerminationMessagePath, annotationTermPol: string(c.TerminationMessagePolicy),
			annotationInitIndex: strconv.Itoa(s.initIndex),
		},
		LogPath:   filepath.Join(c.Name, strconv.Itoa(s.restartCount)+".log"),
		Stdin:     c.Stdin,
		StdinOnce: c.StdinOnce,
		Tty:       c.TTY,
	}
	vars := map[string]string{}
	for _, e := range s.env {
		cfg.Envs = append(cfg.Envs, &cri.KeyValue{Key: e.Name, Value: []byte(e.Value)})
		vars[e.Name] = e.Value
	}
	for _, a := range c.Command {
		cfg.Command = append(cfg.Command, expand(a, vars))
	}
	for _, a := range c.Args {
		cfg.Args = append(cfg.Args, expand(a, vars))
	}
	for _, m := range c.VolumeMounts {
		mv, ok := s.volumes[m.Name]
		if !ok {
			return nil, errEnvConfig{fmt.Sprintf("volume %q of mount %s not found", m.Name, m.MountPath)}
		}
		sub := m.SubPath
		if m.SubPathExpr != "" {
			sub = expand(m.SubPathExpr, vars)
		}
		host, err := volume.SubPath(m.Name, mv, sub)
		if err != nil {
			return nil, errEnvConfig{err.Error()}
		}
		mount := &cri.Mount{ContainerPath: m.MountPath, HostPath: host, Readonly: m.ReadOnly || mv.ReadOnly}
		if m.MountPropagation != nil {
			switch *m.MountPropagation {
			case v1.MountPropagationHostToContainer:
				mount.Propagation = cri.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case v1.MountPropagationBidirectional:
				mount.Propagation = cri.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		cfg.Mounts = append(cfg.Mounts, mount)
	}
	if s.termFile != "" && c.TerminationMessagePath != "" && !mountsAt(c, c.TerminationMessagePath) {
		cfg.Mounts = append(cfg.Mounts, &cri.Mount{ContainerPath: c.TerminationMessagePath, HostPath: s.termFile})
	}
	if s.hostsFile != "" && !mountsAt(c, "/etc/hosts") {
		cfg.Mounts = append(cfg.Mounts, &cri.Mount{ContainerPath: "/etc/hosts", HostPath: s.hostsFile})
	}
	res := linuxResources(c)
	res.OomScoreAdj = int64(oomScoreAdj(s.pod, c, s.memoryCapacity))
	cfg.Linux = &cri.LinuxContainerConfig{Resources: res, SecurityContext: securityContext(s.pod, c)}
	return cfg, nil
}

func mountsAt(c *v1.Container, p string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == p {
			return true
		}
	}
	return false
}

// linuxResources maps requests and limits to cgroup settings: cpu shares
// from the request (or limit), CFS quota from the limit, memory limit.
func linuxResources(c *v1.Container) *cri.LinuxContainerResources {
	r := &cri.LinuxContainerResources{CpuPeriod: cpuPeriod}
	req, hasReq := c.Resources.Requests[v1.ResourceCPU]
	lim, hasLim := c.Resources.Limits[v1.ResourceCPU]
	switch {
	case hasReq:
		r.CpuShares = max(req.MilliValue()*sharesPerCPU/milliCPUToCPU, minShares)
	case hasLim:
		r.CpuShares = max(lim.MilliValue()*sharesPerCPU/milliCPUToCPU, minShares)
	default:
		r.CpuShares = minShares
	}
	if hasLim {
		r.CpuQuota = max(lim.MilliValue()*cpuPeriod/milliCPUToCPU, 1000)
	}
	if mem, ok := c.Resources.Limits[v1.ResourceMemory]; ok {
		r.MemoryLimitInBytes = mem.Value()
	}
	return r
}

// debugTarget is the targetContainerName of the ephemeral container name,
// "" when it has none (or name is not an ephemeral container).
func debugTarget(pod *v1.Pod, name string) string {
	for _, e := range pod.Spec.EphemeralContainers {
		if e.Name == name {
			return e.TargetContainerName
		}
	}
	return ""
}

// targetPIDNamespace puts a debugging container into the process namespace
// of the container it targets (kubectl debug --target), so it sees and can
// signal that container's processes. A pod sharing one process namespace
// (or the host's) needs nothing more.
func targetPIDNamespace(cfg *cri.ContainerConfig, targetID string) {
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if ns == nil || ns.Pid != cri.NamespaceMode_CONTAINER {
		return
	}
	ns.Pid, ns.TargetId = cri.NamespaceMode_TARGET, targetID
}

// securityContext merges the pod's and the container's security settings
// into the CRI's.
func securityContext(pod *v1.Pod, c *v1.Container) *cri.LinuxContainerSecurityContext {
	out := &cri.LinuxContainerSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &v1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &v1.SecurityContext{}
	}
	if u := firstInt64(csc.RunAsUser, psc.RunAsUser); u != nil {
		out.RunAsUser = &cri.Int64Value{Value: *u}
	}
	if g := firstInt64(csc.RunAsGroup, psc.RunAsGroup); g != nil {
		out.RunAsGroup = &cri.Int64Value{Value: *g}
	}
	out.SupplementalGroups = append(out.SupplementalGroups, psc.SupplementalGroups...)
	if psc.FSGroup != nil {
		out.SupplementalGroups = append(out.SupplementalGroups, *psc.FSGroup)
	}
	out.Privileged = csc.Privileged != nil && *csc.Privileged
	out.ReadonlyRootfs = csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem
	if caps := csc.Capabilities; caps != nil {
		out.Capabilities = &cri.Capability{}
		for _, a := range caps.Add {
			out.Capabilities.AddCapabilities = append(out.Capabilities.AddCapabilities, capName(a))
		}
		for _, d := range caps.Drop {
			out.Capabilities.DropCapabilities = append(out.Capabilities.DropCapabilities, capName(d))
		}
	}
	// no_new_privs unless escalation is allowed, explicitly or implied by
	// privileged or CAP_SYS_ADMIN (upstream's rule).
	escalate := true
	if csc.AllowPrivilegeEscalation != nil {
		escalate = *csc.AllowPrivilegeEscalation
	}
	out.NoNewPrivs = !escalate && !out.Privileged
	if out.Privileged {
		out.NamespaceOptions = namespaceOptions(pod)
	}
	return out
}

func capName(c v1.Capability) string {
	s := strings.ToUpper(string(c))
	if s == "ALL" || strings.HasPrefix(s, "CAP_") {
		return s
	}
	return "CAP_" + s
}

func firstInt64(a, b *int64) *int64 {
	if a != nil {
		return a
	}
	return b
}

// runAsNonRootError checks runAsNonRoot against the user the container
// will run as (its own setting, else the image's).
func runAsNonRootError(pod *v1.Pod, c *v1.Container, imageUID *int64, imageUser string) error {
	var nonRoot *bool
	if pod.Spec.SecurityContext != nil {
		nonRoot = pod.Spec.SecurityContext.RunAsNonRoot
	}
	if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
		nonRoot = c.SecurityContext.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		return nil
	}
	var psc *int64
	if pod.Spec.SecurityContext != nil {
		psc = pod.Spec.SecurityContext.RunAsUser
	}
	var csc *int64
	if c.SecurityContext != nil {
		csc = c.SecurityContext.RunAsUser
	}
	if u := firstInt64(csc, psc); u != nil {
		if *u == 0 {
			return errEnvConfig{"container's runAsUser breaks non-root policy (pod: \"" + pod.Name + "\", container: " + c.Name + ")"}
		}
		return nil
	}
	if imageUID != nil && *imageUID == 0 {
		return errEnvConfig{"container has runAsNonRoot and image will run as root (pod: \"" + pod.Name + "\", container: " + c.Name + ")"}
	}
	if imageUID == nil && imageUser != "" {
		return errEnvConfig{"container has runAsNonRoot and image has non-numeric user (" + imageUser + "), cannot verify user is non-root (pod: \"" + pod.Name + "\", container: " + c.Name + ")"}
	}
	if imageUID == nil && imageUser == "" {
		return errEnvConfig{"container has runAsNonRoot and image will run as root (pod: \"" + pod.Name + "\", container: " + c.Name + ")"}
	}
	return nil
}
