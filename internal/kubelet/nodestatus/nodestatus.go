// Package nodestatus is what the node agent reports of its machine: the
// host's facts read once, capacity and allocatable, the conditions it owns,
// and when a status differs enough to write. Registration and the Lease
// (the kubelet's node.go) write what these compute.
package nodestatus

import (
	"bufio"
	"encoding/json"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Machine is what the node reports about the host, read once.
type Machine struct {
	CPU, Memory, Storage resource.Quantity
	Info                 v1.NodeSystemInfo
}

// ReadMachine reads the host's CPU, memory, disk and system facts.
func ReadMachine(rootDir, runtimeVersion, kubeletVersion string) Machine {
	m := Machine{CPU: *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI)}
	if total, _ := Meminfo()["MemTotal"]; total > 0 {
		m.Memory = *resource.NewQuantity(total, resource.BinarySI)
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(rootDir, &fs) == nil {
		m.Storage = *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI)
	}
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	m.Info = v1.NodeSystemInfo{
		MachineID:               ReadTrim("/etc/machine-id"),
		SystemUUID:              ReadTrim("/sys/class/dmi/id/product_uuid"),
		BootID:                  ReadTrim("/proc/sys/kernel/random/boot_id"),
		KernelVersion:           utsString(uts.Release[:]),
		OSImage:                 osImage(),
		ContainerRuntimeVersion: runtimeVersion,
		KubeletVersion:          kubeletVersion,
		KubeProxyVersion:        "",
		OperatingSystem:         goruntime.GOOS,
		Architecture:            goruntime.GOARCH,
	}
	return m
}

// ReadTrim reads a one-line file such as /etc/machine-id ("" if absent).
func ReadTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

func utsString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

func osImage() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

// Meminfo returns /proc/meminfo in bytes.
func Meminfo() map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	return out
}

// Pressure is the node's resource pressure, measured against eviction
// thresholds.
type Pressure struct{ Memory, Disk, PID bool }

// Conditions are the four conditions the kubelet owns, with upstream's
// reasons and messages; transition times carry over from prev when the
// status did not change.
func Conditions(prev []v1.NodeCondition, p Pressure, runtimeErr error, now metav1.Time) []v1.NodeCondition {
	cond := func(t v1.NodeConditionType, bad bool, okReason, okMsg, badReason, badMsg string) v1.NodeCondition {
		c := v1.NodeCondition{Type: t, Status: v1.ConditionFalse, Reason: okReason, Message: okMsg, LastHeartbeatTime: now, LastTransitionTime: now}
		if bad {
			c.Status, c.Reason, c.Message = v1.ConditionTrue, badReason, badMsg
		}
		for _, o := range prev {
			if o.Type == t && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		return c
	}
	ready := cond(v1.NodeReady, true, "", "", "KubeletReady", "kubelet is posting ready status")
	if runtimeErr != nil {
		ready.Status, ready.Reason, ready.Message = v1.ConditionFalse, "KubeletNotReady", "container runtime is down: "+runtimeErr.Error()
		for _, o := range prev {
			if o.Type == v1.NodeReady && o.Status == ready.Status {
				ready.LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return []v1.NodeCondition{
		cond(v1.NodeMemoryPressure, p.Memory, "KubeletHasSufficientMemory", "kubelet has sufficient memory available", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
		cond(v1.NodeDiskPressure, p.Disk, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", "KubeletHasDiskPressure", "kubelet has disk pressure"),
		cond(v1.NodePIDPressure, p.PID, "KubeletHasSufficientPID", "kubelet has sufficient PID available", "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
		ready,
	}
}

// KeepExtended adds to the kubelet's own capacity and allocatable the
// extended resources (example.com/widget) that others advertise by
// patching the Node's status, as upstream's kubelet keeps them: it measures
// only native resources, and overwriting the rest took a device or test
// resource away from the scheduler. Allocatable defaults to the capacity.
func KeepExtended(cur v1.NodeStatus, capacity, alloc v1.ResourceList) (v1.ResourceList, v1.ResourceList) {
	for name, q := range cur.Capacity {
		if _, ours := capacity[name]; ours || !IsExtendedResource(name) {
			continue
		}
		capacity[name] = q.DeepCopy()
		if a, ok := cur.Allocatable[name]; ok {
			alloc[name] = a.DeepCopy()
		} else {
			alloc[name] = q.DeepCopy()
		}
	}
	return capacity, alloc
}

// IsExtendedResource: a domain-qualified name outside kubernetes.io, and
// not a quota's "requests." name (upstream's rule).
func IsExtendedResource(name v1.ResourceName) bool {
	n := string(name)
	return strings.Contains(n, "/") && !strings.Contains(n, "kubernetes.io/") && !strings.HasPrefix(n, "requests.")
}

// MergeConditions keeps conditions other components own (for example
// NetworkUnavailable) and replaces the kubelet's.
func MergeConditions(old, ours []v1.NodeCondition) []v1.NodeCondition {
	out := append([]v1.NodeCondition(nil), ours...)
	for _, c := range old {
		switch c.Type {
		case v1.NodeReady, v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure:
		default:
			out = append(out, c)
		}
	}
	return out
}

// Changed compares everything but heartbeat times.
func Changed(a, b *v1.Node) bool {
	strip := func(n *v1.Node) v1.NodeStatus {
		s := *n.Status.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return s
	}
	sa, sb := strip(a), strip(b)
	return !equalJSON(sa, sb)
}

// Capacity is the node's capacity and allocatable (capacity minus
// reserved).
func Capacity(m Machine, maxPods int, reserved v1.ResourceList) (v1.ResourceList, v1.ResourceList) {
	capacity := v1.ResourceList{
		v1.ResourceCPU:              m.CPU,
		v1.ResourceMemory:           m.Memory,
		v1.ResourceEphemeralStorage: m.Storage,
		v1.ResourcePods:             *resource.NewQuantity(int64(maxPods), resource.DecimalSI),
	}
	alloc := v1.ResourceList{}
	for name, q := range capacity {
		q = q.DeepCopy()
		if r, ok := reserved[name]; ok {
			q.Sub(r)
			if q.Sign() < 0 {
				q.Set(0)
			}
		}
		alloc[name] = q
	}
	return capacity, alloc
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
