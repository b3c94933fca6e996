package plugins

import (
	"context"
	"fmt"
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
	configv1 "k8s.io/kube-scheduler/config/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// NodeResourcesFit rejects nodes without room for the pod's requests and
// scores the rest with the configured strategy.
type NodeResourcesFit struct {
	ignored       map[string]bool
	ignoredGroups []string
	strategy      configv1.ScoringStrategyType
	resources     []configv1.ResourceSpec
	shape         []configv1.UtilizationShapePoint
}

var (
	_ framework.FilterPlugin = (*NodeResourcesFit)(nil)
	_ framework.ScorePlugin  = (*NodeResourcesFit)(nil)
)

// DefaultFitResources are the resources scored by default, as upstream.
var DefaultFitResources = []configv1.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}}

// NewNodeResourcesFit builds the plugin from its arguments.
func NewNodeResourcesFit(args *configv1.NodeResourcesFitArgs) *NodeResourcesFit {
	p := &NodeResourcesFit{ignored: map[string]bool{}, strategy: configv1.LeastAllocated, resources: DefaultFitResources}
	if args == nil {
		return p
	}
	for _, r := range args.IgnoredResources {
		p.ignored[r] = true
	}
	p.ignoredGroups = args.IgnoredResourceGroups
	if s := args.ScoringStrategy; s != nil {
		if s.Type != "" {
			p.strategy = s.Type
		}
		if len(s.Resources) > 0 {
			p.resources = s.Resources
		}
		if s.RequestedToCapacityRatio != nil {
			p.shape = s.RequestedToCapacityRatio.Shape
		}
	}
	return p
}

// Name implements Plugin.
func (*NodeResourcesFit) Name() string { return NodeResourcesFitName }

// Filter checks pod count, cpu, memory, ephemeral storage and extended
// resources. A request larger than the node's whole allocatable cannot be
// helped by preemption and is reported as unresolvable.
func (p *NodeResourcesFit) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	var reasons []string
	unresolvable := false
	if int64(len(node.Pods))+1 > node.Allocatable.AllowedPodNumber {
		reasons = append(reasons, "Too many pods")
	}
	req := &pod.Requests
	check := func(name string, want, used, alloc int64) {
		if want == 0 {
			return
		}
		if want > alloc-used {
			reasons = append(reasons, "Insufficient "+name)
			if want > alloc {
				unresolvable = true
			}
		}
	}
	check("cpu", req.MilliCPU, node.Requested.MilliCPU, node.Allocatable.MilliCPU)
	check("memory", req.Memory, node.Requested.Memory, node.Allocatable.Memory)
	check("ephemeral-storage", req.EphemeralStorage, node.Requested.EphemeralStorage, node.Allocatable.EphemeralStorage)
	for name, want := range req.Scalar {
		if p.isIgnored(name) {
			continue
		}
		check(string(name), want, node.Requested.Scalar[name], node.Allocatable.Scalar[name])
	}
	if len(reasons) == 0 {
		return nil
	}
	code := framework.Unschedulable
	if unresolvable {
		code = framework.UnschedulableAndUnresolvable
	}
	return framework.NewStatus(code, reasons...)
}

func (p *NodeResourcesFit) isIgnored(name corev1.ResourceName) bool {
	if p.ignored[string(name)] {
		return true
	}
	if i := strings.Index(string(name), "/"); i > 0 {
		for _, g := range p.ignoredGroups {
			if string(name)[:i] == g {
				return true
			}
		}
	}
	return false
}

// Score implements ScorePlugin with LeastAllocated, MostAllocated or
// RequestedToCapacityRatio.
func (p *NodeResourcesFit) Score(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	var sum, weights int64
	for _, r := range p.resources {
		requested, allocatable := requestedAndAllocatable(pod, node, corev1.ResourceName(r.Name))
		if allocatable == 0 {
			continue
		}
		var s int64
		switch p.strategy {
		case configv1.MostAllocated:
			s = min(requested, allocatable) * framework.MaxNodeScore / allocatable
		case configv1.RequestedToCapacityRatio:
			s = shapeScore(p.shape, min(requested, allocatable)*100/allocatable)
		default:
			if requested <= allocatable {
				s = (allocatable - requested) * framework.MaxNodeScore / allocatable
			}
		}
		sum += s * r.Weight
		weights += r.Weight
	}
	if weights == 0 {
		return 0, nil
	}
	return sum / weights, nil
}

// requestedAndAllocatable returns what the node would have requested with
// the pod on it (cpu and memory counted with scoring defaults).
func requestedAndAllocatable(pod *framework.PodInfo, node *framework.NodeInfo, name corev1.ResourceName) (int64, int64) {
	switch name {
	case corev1.ResourceCPU:
		return node.NonZeroRequested.MilliCPU + pod.NonZero.MilliCPU, node.Allocatable.MilliCPU
	case corev1.ResourceMemory:
		return node.NonZeroRequested.Memory + pod.NonZero.Memory, node.Allocatable.Memory
	}
	return node.Requested.Get(name) + pod.Requests.Get(name), node.Allocatable.Get(name)
}

// shapeScore interpolates the utilization shape (utilization 0–100 to
// score 0–10) and scales it to 0–100.
func shapeScore(shape []configv1.UtilizationShapePoint, utilization int64) int64 {
	if len(shape) == 0 {
		return 0
	}
	scale := framework.MaxNodeScore / 10
	if utilization <= int64(shape[0].Utilization) {
		return int64(shape[0].Score) * scale
	}
	for i := 1; i < len(shape); i++ {
		a, b := shape[i-1], shape[i]
		if utilization <= int64(b.Utilization) {
			span := int64(b.Utilization - a.Utilization)
			return (int64(a.Score)*scale*span + (int64(b.Score)-int64(a.Score))*scale*(utilization-int64(a.Utilization))) / span
		}
	}
	return int64(shape[len(shape)-1].Score) * scale
}

// ScoreExtensions implements ScorePlugin.
func (*NodeResourcesFit) ScoreExtensions() framework.ScoreExtensions { return nil }

// EventsToRegister implements EnqueueExtensions.
func (*NodeResourcesFit) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		events(framework.PodResource, framework.Delete|framework.UpdatePodScaleDown),
		events(framework.NodeResource, framework.Add|framework.UpdateNodeAllocatable),
	}
}

// ValidateFitArgs checks NodeResourcesFit arguments.
func ValidateFitArgs(args *configv1.NodeResourcesFitArgs) error {
	s := args.ScoringStrategy
	if s == nil {
		return nil
	}
	switch s.Type {
	case "", configv1.LeastAllocated, configv1.MostAllocated:
	case configv1.RequestedToCapacityRatio:
		if s.RequestedToCapacityRatio == nil || len(s.RequestedToCapacityRatio.Shape) == 0 {
			return fmt.Errorf("scoringStrategy.requestedToCapacityRatio.shape: Required value: at least one point")
		}
		for i, pt := range s.RequestedToCapacityRatio.Shape {
			if pt.Utilization < 0 || pt.Utilization > 100 {
				return fmt.Errorf("scoringStrategy.requestedToCapacityRatio.shape[%d].utilization: Invalid value: %d: must be in [0, 100]", i, pt.Utilization)
			}
			if pt.Score < 0 || pt.Score > 10 {
				return fmt.Errorf("scoringStrategy.requestedToCapacityRatio.shape[%d].score: Invalid value: %d: must be in [0, 10]", i, pt.Score)
			}
			if i > 0 && pt.Utilization <= s.RequestedToCapacityRatio.Shape[i-1].Utilization {
				return fmt.Errorf("scoringStrategy.requestedToCapacityRatio.shape[%d].utilization: Invalid value: %d: must be greater than the previous point's", i, pt.Utilization)
			}
		}
	default:
		return fmt.Errorf("scoringStrategy.type: Unsupported value: %q: supported values: \"LeastAllocated\", \"MostAllocated\", \"RequestedToCapacityRatio\"", s.Type)
	}
	for i, r := range s.Resources {
		if r.Weight <= 0 || r.Weight > 100 {
			return fmt.Errorf("scoringStrategy.resources[%d].weight: Invalid value: %d: must be in [1, 100]", i, r.Weight)
		}
	}
	return nil
}

// BalancedAllocation favours nodes whose resource use stays balanced
// across resources once the pod is placed.
type BalancedAllocation struct {
	resources []configv1.ResourceSpec
}

var _ framework.ScorePlugin = (*BalancedAllocation)(nil)

// NewBalancedAllocation builds the plugin.
func NewBalancedAllocation(args *configv1.NodeResourcesBalancedAllocationArgs) *BalancedAllocation {
	p := &BalancedAllocation{resources: DefaultFitResources}
	if args != nil && len(args.Resources) > 0 {
		p.resources = args.Resources
	}
	return p
}

// Name implements Plugin.
func (*BalancedAllocation) Name() string { return BalancedAllocationName }

// Score is (1 - standard deviation of the requested fractions) × 100.
func (p *BalancedAllocation) Score(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	var fractions [8]float64
	n := 0
	var sum float64
	for _, r := range p.resources {
		requested, allocatable := requestedAndAllocatable(pod, node, corev1.ResourceName(r.Name))
		if allocatable == 0 || n == len(fractions) {
			continue
		}
		f := float64(requested) / float64(allocatable)
		if f > 1 {
			f = 1
		}
		fractions[n] = f
		sum += f
		n++
	}
	var std float64
	switch {
	case n == 2:
		std = math.Abs(fractions[0]-fractions[1]) / 2
	case n > 2:
		mean := sum / float64(n)
		var v float64
		for _, f := range fractions[:n] {
			v += (f - mean) * (f - mean)
		}
		std = math.Sqrt(v / float64(n))
	}
	return int64((1 - std) * float64(framework.MaxNodeScore)), nil
}

// ScoreExtensions implements ScorePlugin.
func (*BalancedAllocation) ScoreExtensions() framework.ScoreExtensions { return nil }
