package framework

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// NodeInfo is one node with the pods the scheduler counts on it (bound and
// assumed) and their sums, kept current incrementally by the cache.
type NodeInfo struct {
	node *corev1.Node
	// name is the node's, kept here because every filter asks for it and
	// the Node object is rarely in the CPU cache.
	name string
	// unschedulable and taints are copied from the Node for the same
	// reason: most nodes have neither, and the answer is then here.
	unschedulable    bool
	taints           []corev1.Taint
	Pods             []*PodInfo
	UsedPorts        HostPortInfo
	Requested        Resource
	NonZeroRequested Resource
	Allocatable      Resource
	// Images maps normalized image names on the node to their size.
	Images map[string]int64
	// PVCRefCounts counts pods using each PVC ("namespace/name").
	PVCRefCounts map[string]int
	// Generation changes whenever the NodeInfo does.
	Generation int64
}

// NewNodeInfo returns an empty NodeInfo holding pods.
func NewNodeInfo(pods ...*PodInfo) *NodeInfo {
	n := &NodeInfo{UsedPorts: HostPortInfo{}, PVCRefCounts: map[string]int{}}
	for _, p := range pods {
		n.AddPod(p)
	}
	return n
}

// Node returns the node object (nil while only pods are known).
func (n *NodeInfo) Node() *corev1.Node { return n.node }

// Name is the node's name, or "" before the node is known.
func (n *NodeInfo) Name() string { return n.name }

// Unschedulable is the node's spec.unschedulable.
func (n *NodeInfo) Unschedulable() bool { return n.unschedulable }

// Taints are the node's spec.taints (shared with the Node: read only).
func (n *NodeInfo) Taints() []corev1.Taint { return n.taints }

// SetNode sets the node object and derived allocatable and images.
func (n *NodeInfo) SetNode(node *corev1.Node) {
	n.node, n.name = node, node.Name
	n.unschedulable, n.taints = node.Spec.Unschedulable, node.Spec.Taints
	n.Allocatable = NewResource(node.Status.Allocatable)
	n.Images = nil // a nil map is looked up without touching memory
	if len(node.Status.Images) > 0 {
		n.Images = make(map[string]int64, len(node.Status.Images))
	}
	for _, img := range node.Status.Images {
		for _, name := range img.Names {
			n.Images[NormalizeImage(name)] = img.SizeBytes
		}
	}
}

// AddPod counts a pod on the node.
func (n *NodeInfo) AddPod(pi *PodInfo) {
	n.Pods = append(n.Pods, pi)
	n.update(pi, 1)
}

// RemovePod uncounts the pod with pod's UID.
func (n *NodeInfo) RemovePod(pod *corev1.Pod) error {
	for i, p := range n.Pods {
		if p.Pod.UID == pod.UID {
			last := len(n.Pods) - 1
			n.Pods[i] = n.Pods[last]
			n.Pods[last] = nil
			n.Pods = n.Pods[:last]
			n.update(p, -1)
			return nil
		}
	}
	return fmt.Errorf("pod %s/%s is not on node %s", pod.Namespace, pod.Name, n.Name())
}

func (n *NodeInfo) update(pi *PodInfo, sign int64) {
	n.Requested.AddResource(&pi.Requests, sign)
	n.NonZeroRequested.MilliCPU += sign * pi.NonZero.MilliCPU
	n.NonZeroRequested.Memory += sign * pi.NonZero.Memory
	for _, c := range pi.Pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				if sign > 0 {
					n.UsedPorts.Add(p.HostIP, string(p.Protocol), p.HostPort)
				} else {
					n.UsedPorts.Remove(p.HostIP, string(p.Protocol), p.HostPort)
				}
			}
		}
	}
	for _, v := range pi.Pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			key := pi.Pod.Namespace + "/" + v.PersistentVolumeClaim.ClaimName
			n.PVCRefCounts[key] += int(sign)
			if n.PVCRefCounts[key] <= 0 {
				delete(n.PVCRefCounts, key)
			}
		}
	}
}

// Clone copies the NodeInfo so that the copy can change independently
// (the pod objects themselves are shared and never mutated).
func (n *NodeInfo) Clone() *NodeInfo {
	c := &NodeInfo{
		node:             n.node,
		name:             n.name,
		unschedulable:    n.unschedulable,
		taints:           n.taints,
		Pods:             append([]*PodInfo(nil), n.Pods...),
		UsedPorts:        n.UsedPorts.Clone(),
		Requested:        n.Requested.Clone(),
		NonZeroRequested: n.NonZeroRequested.Clone(),
		Allocatable:      n.Allocatable.Clone(),
		Images:           n.Images,
		PVCRefCounts:     make(map[string]int, len(n.PVCRefCounts)),
		Generation:       n.Generation,
	}
	for k, v := range n.PVCRefCounts {
		c.PVCRefCounts[k] = v
	}
	return c
}

// NormalizeImage adds ":latest" to an image reference without tag or digest.
func NormalizeImage(name string) string {
	if strings.Contains(name, "@") {
		return name
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name
	}
	return name + ":latest"
}

// HostPortInfo maps host IPs to the protocol/port pairs in use.
type HostPortInfo map[string]map[ProtocolPort]int

// ProtocolPort is a host port and its protocol.
type ProtocolPort struct {
	Protocol string
	Port     int32
}

func normalizePort(ip, protocol string) (string, string) {
	if ip == "" {
		ip = "0.0.0.0"
	}
	if protocol == "" {
		protocol = string(corev1.ProtocolTCP)
	}
	return ip, protocol
}

// Add marks a port used.
func (h HostPortInfo) Add(ip, protocol string, port int32) {
	ip, protocol = normalizePort(ip, protocol)
	if h[ip] == nil {
		h[ip] = map[ProtocolPort]int{}
	}
	h[ip][ProtocolPort{protocol, port}]++
}

// Remove releases a port.
func (h HostPortInfo) Remove(ip, protocol string, port int32) {
	ip, protocol = normalizePort(ip, protocol)
	pp := ProtocolPort{protocol, port}
	if m := h[ip]; m != nil {
		m[pp]--
		if m[pp] <= 0 {
			delete(m, pp)
		}
		if len(m) == 0 {
			delete(h, ip)
		}
	}
}

// Conflicts reports whether ip:port/protocol collides with a used port; the
// wildcard address 0.0.0.0 collides with every address.
func (h HostPortInfo) Conflicts(ip, protocol string, port int32) bool {
	if port <= 0 {
		return false
	}
	ip, protocol = normalizePort(ip, protocol)
	pp := ProtocolPort{protocol, port}
	if ip == "0.0.0.0" {
		for _, m := range h {
			if m[pp] > 0 {
				return true
			}
		}
		return false
	}
	return h[ip][pp] > 0 || h["0.0.0.0"][pp] > 0
}

// Clone copies h.
func (h HostPortInfo) Clone() HostPortInfo {
	c := make(HostPortInfo, len(h))
	for ip, m := range h {
		cm := make(map[ProtocolPort]int, len(m))
		for k, v := range m {
			cm[k] = v
		}
		c[ip] = cm
	}
	return c
}

// ClearNode forgets the node object while its pods are still counted.
func (n *NodeInfo) ClearNode() {
	n.node, n.name = nil, ""
	n.Allocatable = Resource{}
	n.Images = nil
}
