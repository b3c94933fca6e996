package plugins

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// PrioritySort orders pods by priority, then by queue time.
type PrioritySort struct{}

var _ framework.QueueSortPlugin = PrioritySort{}

// Name implements Plugin.
func (PrioritySort) Name() string { return PrioritySortName }

// Less puts higher priority first, then the longer-waiting pod.
func (PrioritySort) Less(a, b *framework.QueuedPodInfo) bool {
	pa, pb := corev1helpers.PodPriority(a.Pod), corev1helpers.PodPriority(b.Pod)
	return pa > pb || (pa == pb && a.Timestamp.Before(b.Timestamp))
}

// SchedulingGates keeps pods with scheduling gates out of the queue.
type SchedulingGates struct{}

var _ framework.PreEnqueuePlugin = SchedulingGates{}

// Name implements Plugin.
func (SchedulingGates) Name() string { return SchedulingGatesName }

// PreEnqueue rejects gated pods.
func (SchedulingGates) PreEnqueue(_ context.Context, pod *corev1.Pod) *framework.Status {
	if len(pod.Spec.SchedulingGates) == 0 {
		return nil
	}
	names := make([]string, 0, len(pod.Spec.SchedulingGates))
	for _, g := range pod.Spec.SchedulingGates {
		names = append(names, g.Name)
	}
	return framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("waiting for scheduling gates: %v", names))
}

// NodeName filters out nodes other than spec.nodeName.
type NodeName struct{}

var _ framework.FilterPlugin = NodeName{}

// ErrReasonNodeName is NodeName's rejection.
const ErrReasonNodeName = "node(s) didn't match the requested node name"

// Name implements Plugin.
func (NodeName) Name() string { return NodeNameName }

// Filter implements FilterPlugin.
func (NodeName) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if pod.Pod.Spec.NodeName != "" && pod.Pod.Spec.NodeName != node.Name() {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonNodeName)
	}
	return nil
}

// EventsToRegister implements EnqueueExtensions.
func (NodeName) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{events(framework.NodeResource, framework.Add)}
}

// NodeUnschedulable filters out cordoned nodes unless the pod tolerates
// the unschedulable taint.
type NodeUnschedulable struct{}

var _ framework.FilterPlugin = NodeUnschedulable{}

// ErrReasonUnschedulable is NodeUnschedulable's rejection.
const ErrReasonUnschedulable = "node(s) were unschedulable"

// Name implements Plugin.
func (NodeUnschedulable) Name() string { return NodeUnschedulableName }

var unschedulableTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

// Filter implements FilterPlugin.
func (NodeUnschedulable) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if !node.Unschedulable() {
		return nil
	}
	for i := range pod.Pod.Spec.Tolerations {
		if pod.Pod.Spec.Tolerations[i].ToleratesTaint(klog.Background(), &unschedulableTaint, false) {
			return nil
		}
	}
	return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonUnschedulable)
}

// EventsToRegister implements EnqueueExtensions.
func (NodeUnschedulable) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{events(framework.NodeResource, framework.Add|framework.UpdateNodeTaint)}
}

// NodePorts rejects nodes where a requested host port is taken.
type NodePorts struct{}

var (
	_ framework.PreFilterPlugin = NodePorts{}
	_ framework.FilterPlugin    = NodePorts{}
)

// ErrReasonNodePorts is NodePorts' rejection.
const ErrReasonNodePorts = "node(s) didn't have free ports for the requested pod ports"

// Name implements Plugin.
func (NodePorts) Name() string { return NodePortsName }

// hostPorts lists the host ports of app containers and sidecars.
func hostPorts(pod *corev1.Pod) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	add := func(cs []corev1.Container, sidecarsOnly bool) {
		for _, c := range cs {
			if sidecarsOnly && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, p := range c.Ports {
				if p.HostPort > 0 {
					out = append(out, p)
				}
			}
		}
	}
	add(pod.Spec.InitContainers, true)
	add(pod.Spec.Containers, false)
	return out
}

// PreFilter skips pods without host ports.
func (NodePorts) PreFilter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	if len(hostPorts(pod.Pod)) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	return nil, nil
}

// PreFilterExtensions implements PreFilterPlugin.
func (NodePorts) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter implements FilterPlugin.
func (NodePorts) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	for _, p := range hostPorts(pod.Pod) {
		if node.UsedPorts.Conflicts(p.HostIP, string(p.Protocol), p.HostPort) {
			return framework.NewStatus(framework.Unschedulable, ErrReasonNodePorts)
		}
	}
	return nil
}

// EventsToRegister implements EnqueueExtensions.
func (NodePorts) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{events(framework.PodResource, framework.Delete), events(framework.NodeResource, framework.Add)}
}

// ImageLocality favours nodes that already have the pod's images, scaled
// by how widely each image is spread (so one node is not always chosen).
type ImageLocality struct{ h framework.Handle }

var _ framework.ScorePlugin = (*ImageLocality)(nil)

// Image size thresholds, as upstream.
const (
	mb                    int64 = 1024 * 1024
	minImageThreshold           = 23 * mb
	maxContainerThreshold       = 1000 * mb
)

// Name implements Plugin.
func (*ImageLocality) Name() string { return ImageLocalityName }

// Score implements ScorePlugin.
func (p *ImageLocality) Score(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	snap := p.h.Snapshot()
	total := int64(snap.NumNodes())
	if total == 0 || len(node.Images) == 0 {
		return 0, nil
	}
	var sum int64
	containers := 0
	for _, list := range [][]corev1.Container{pod.Pod.Spec.InitContainers, pod.Pod.Spec.Containers} {
		for _, c := range list {
			containers++
			name := framework.NormalizeImage(c.Image)
			if size, ok := node.Images[name]; ok {
				sum += size * int64(snap.ImageNodes[name]) / total
			}
		}
	}
	maxThreshold := maxContainerThreshold * int64(containers)
	switch {
	case sum < minImageThreshold:
		sum = minImageThreshold
	case sum > maxThreshold:
		sum = maxThreshold
	}
	return framework.MaxNodeScore * (sum - minImageThreshold) / (maxThreshold - minImageThreshold), nil
}

// ScoreExtensions implements ScorePlugin.
func (*ImageLocality) ScoreExtensions() framework.ScoreExtensions { return nil }

// tolerated reports whether some toleration tolerates the taint.
func tolerated(tolerations []corev1.Toleration, taint *corev1.Taint) bool {
	return slices.ContainsFunc(tolerations, func(t corev1.Toleration) bool { return t.ToleratesTaint(klog.Background(), taint, false) })
}
