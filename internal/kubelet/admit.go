package kubelet

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// admission is the node's verdict on a new pod: the scheduler's checks
// again, against what this node already runs, because a pod may be bound
// by anyone (spec.nodeName set by its author, another scheduler, a stale
// cache). A rejected pod ends Failed with the reason, as upstream's kubelet
// does, so its controller replaces it.
type admission struct {
	ok      bool
	reason  string
	message string
}

// admitPod checks pod against the node and the pods already admitted
// here: node name, selector and required affinity, host ports, and the
// allocatable resources. Pure: it decides, the caller acts.
func admitPod(pod *v1.Pod, node *v1.Node, allocatable v1.ResourceList, admitted []*v1.Pod) admission {
	if node != nil {
		if ok, err := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); err != nil || !ok {
			return admission{reason: "NodeAffinity", message: "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"}
		}
	}
	var used []hostPort
	for _, p := range admitted {
		used = append(used, hostPorts(p)...)
	}
	for _, want := range hostPorts(pod) {
		for _, have := range used {
			if want.conflicts(have) {
				return admission{reason: "NodePorts", message: "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"}
			}
		}
	}
	if pods, ok := allocatable[v1.ResourcePods]; ok && int64(len(admitted)+1) > pods.Value() {
		return admission{reason: "OutOfpods", message: fmt.Sprintf("Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: %d, capacity: %d", len(admitted), pods.Value())}
	}
	want := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	inUse := v1.ResourceList{}
	for _, p := range admitted {
		for name, q := range resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{}) {
			sum := inUse[name]
			sum.Add(q)
			inUse[name] = sum
		}
	}
	for name, q := range want {
		if q.IsZero() || name == v1.ResourcePods {
			continue
		}
		capacity, known := allocatable[name]
		if !known {
			if isExtended(name) {
				return admission{reason: "UnexpectedAdmissionError", message: fmt.Sprintf("Allocate failed due to requested number of devices unavailable for %s. Requested: %s, Available: 0, which is unexpected", name, q.String())}
			}
			continue
		}
		used := inUse[name]
		total := used.DeepCopy()
		total.Add(q)
		if total.Cmp(capacity) > 0 {
			return admission{reason: "OutOf" + string(name), message: fmt.Sprintf("Pod was rejected: Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
				name, q.MilliValue()/milliFor(name), used.MilliValue()/milliFor(name), capacity.MilliValue()/milliFor(name))}
		}
	}
	return admission{ok: true}
}

// milliFor scales a quantity's milli-value for a message: CPU in
// millicores, everything else in whole units.
func milliFor(name v1.ResourceName) int64 {
	if name == v1.ResourceCPU {
		return 1
	}
	return 1000
}

// admit runs admission once per pod, serialised, so two pods bound at
// once cannot both take the last of a resource.
func (k *Kubelet) admit(ctx context.Context, pod *v1.Pod) admission {
	k.admitMu.Lock()
	defer k.admitMu.Unlock()
	_, alloc := k.capacity()
	k.mu.Lock()
	if k.admitted[pod.UID] {
		k.mu.Unlock()
		return admission{ok: true}
	}
	var others []*v1.Pod
	for uid := range k.admitted {
		p := k.pods[uid]
		if p == nil {
			p = k.static[uid]
		}
		if p != nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			others = append(others, p)
		}
	}
	k.mu.Unlock()
	v := admitPod(pod, k.getNode(), nodeAllocatable(k.getNode(), alloc), others)
	if !v.ok {
		// The node object the agent keeps is refreshed with its status;
		// labels or extended resources just set on it may not be there
		// yet: a refusal is decided on the API's node.
		if fresh, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{}); err == nil {
			k.setNode(fresh)
			v = admitPod(pod, fresh, nodeAllocatable(fresh, alloc), others)
		}
	}
	if v.ok {
		k.mu.Lock()
		k.admitted[pod.UID] = true
		k.mu.Unlock()
	}
	return v
}

// nodeAllocatable is what the scheduler saw: the node's allocatable as the
// API has it (with extended resources others advertise on the node), the
// agent's own figures for what it has not written yet.
func nodeAllocatable(node *v1.Node, own v1.ResourceList) v1.ResourceList {
	out := own.DeepCopy()
	if node != nil {
		for name, q := range node.Status.Allocatable {
			if _, mine := out[name]; !mine {
				out[name] = q
			}
		}
	}
	return out
}

// markAdmitted records a pod that runs already (found at start).
func (k *Kubelet) markAdmitted(uid types.UID) {
	k.mu.Lock()
	k.admitted[uid] = true
	k.mu.Unlock()
}

func isExtended(name v1.ResourceName) bool {
	return strings.Contains(string(name), "/") && !strings.HasPrefix(string(name), "kubernetes.io/") && !strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix)
}

// hostPort is one port a pod takes on the node.
type hostPort struct {
	protocol v1.Protocol
	ip       string // "" or 0.0.0.0: every address
	port     int32
}

// conflicts is the scheduler's rule: one protocol and port, and either
// address covering the other.
func (a hostPort) conflicts(b hostPort) bool {
	any := func(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }
	return a.protocol == b.protocol && a.port == b.port && (any(a.ip) || any(b.ip) || a.ip == b.ip)
}

// hostPorts are the host ports a pod's containers ask for.
func hostPorts(p *v1.Pod) []hostPort {
	var out []hostPort
	for _, list := range [][]v1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range list {
			for _, port := range c.Ports {
				if port.HostPort == 0 {
					continue
				}
				proto := port.Protocol
				if proto == "" {
					proto = v1.ProtocolTCP
				}
				out = append(out, hostPort{protocol: proto, ip: port.HostIP, port: port.HostPort})
			}
		}
	}
	return out
}
