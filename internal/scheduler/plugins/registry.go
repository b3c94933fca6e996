package plugins

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	configv1 "k8s.io/kube-scheduler/config/v1"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Factory builds a plugin from its raw arguments (may be empty).
type Factory func(args runtime.RawExtension, h framework.Handle) (framework.Plugin, error)

// decode strictly decodes plugin arguments into out; unknown fields are
// errors that name the field.
func decode(args runtime.RawExtension, out any) (bool, error) {
	if len(args.Raw) == 0 {
		return false, nil
	}
	if err := yaml.UnmarshalStrict(args.Raw, out); err != nil {
		return false, err
	}
	return true, nil
}

// Registry maps every in-tree plugin name to its factory.
func Registry() map[string]Factory {
	return map[string]Factory{
		PrioritySortName:    func(runtime.RawExtension, framework.Handle) (framework.Plugin, error) { return PrioritySort{}, nil },
		SchedulingGatesName: func(runtime.RawExtension, framework.Handle) (framework.Plugin, error) { return SchedulingGates{}, nil },
		NodeUnschedulableName: func(runtime.RawExtension, framework.Handle) (framework.Plugin, error) {
			return NodeUnschedulable{}, nil
		},
		NodeNameName: func(runtime.RawExtension, framework.Handle) (framework.Plugin, error) { return NodeName{}, nil },
		DynamicResourcesName: func(runtime.RawExtension, framework.Handle) (framework.Plugin, error) {
			return DynamicResources{}, nil
		},
		NodePortsName:       func(runtime.RawExtension, framework.Handle) (framework.Plugin, error) { return NodePorts{}, nil },
		TaintTolerationName: func(runtime.RawExtension, framework.Handle) (framework.Plugin, error) { return TaintToleration{}, nil },
		ImageLocalityName: func(_ runtime.RawExtension, h framework.Handle) (framework.Plugin, error) {
			return &ImageLocality{h: h}, nil
		},
		DefaultBinderName: func(_ runtime.RawExtension, h framework.Handle) (framework.Plugin, error) {
			return &DefaultBinder{h: h}, nil
		},
		VolumeRestrictionsName: func(_ runtime.RawExtension, h framework.Handle) (framework.Plugin, error) {
			return NewVolumeRestrictions(h), nil
		},
		NodeResourcesFitName: func(raw runtime.RawExtension, _ framework.Handle) (framework.Plugin, error) {
			var a configv1.NodeResourcesFitArgs
			if ok, err := decode(raw, &a); err != nil {
				return nil, err
			} else if !ok {
				return NewNodeResourcesFit(nil), nil
			}
			if err := ValidateFitArgs(&a); err != nil {
				return nil, err
			}
			return NewNodeResourcesFit(&a), nil
		},
		BalancedAllocationName: func(raw runtime.RawExtension, _ framework.Handle) (framework.Plugin, error) {
			var a configv1.NodeResourcesBalancedAllocationArgs
			if _, err := decode(raw, &a); err != nil {
				return nil, err
			}
			for i, r := range a.Resources {
				if r.Weight <= 0 || r.Weight > 100 {
					return nil, fmt.Errorf("resources[%d].weight: Invalid value: %d: must be in [1, 100]", i, r.Weight)
				}
			}
			return NewBalancedAllocation(&a), nil
		},
		NodeAffinityName: func(raw runtime.RawExtension, _ framework.Handle) (framework.Plugin, error) {
			var a configv1.NodeAffinityArgs
			if _, err := decode(raw, &a); err != nil {
				return nil, err
			}
			return NewNodeAffinity(&a)
		},
		InterPodAffinityName: func(raw runtime.RawExtension, h framework.Handle) (framework.Plugin, error) {
			var a configv1.InterPodAffinityArgs
			if _, err := decode(raw, &a); err != nil {
				return nil, err
			}
			if w := a.HardPodAffinityWeight; w != nil && (*w < 0 || *w > 100) {
				return nil, fmt.Errorf("hardPodAffinityWeight: Invalid value: %d: not in valid range [0-100]", *w)
			}
			return NewInterPodAffinity(h, &a), nil
		},
		PodTopologySpreadName: func(raw runtime.RawExtension, h framework.Handle) (framework.Plugin, error) {
			var a configv1.PodTopologySpreadArgs
			if ok, err := decode(raw, &a); err != nil {
				return nil, err
			} else if !ok {
				return NewPodTopologySpread(h, nil)
			}
			return NewPodTopologySpread(h, &a)
		},
		VolumeBindingName: func(raw runtime.RawExtension, h framework.Handle) (framework.Plugin, error) {
			var a configv1.VolumeBindingArgs
			if _, err := decode(raw, &a); err != nil {
				return nil, err
			}
			if t := a.BindTimeoutSeconds; t != nil && *t < 0 {
				return nil, fmt.Errorf("bindTimeoutSeconds: Invalid value: %d: must not be negative", *t)
			}
			return NewVolumeBinding(h, &a), nil
		},
		DefaultPreemptionName: func(raw runtime.RawExtension, h framework.Handle) (framework.Plugin, error) {
			var a configv1.DefaultPreemptionArgs
			if _, err := decode(raw, &a); err != nil {
				return nil, err
			}
			if p := a.MinCandidateNodesPercentage; p != nil && (*p < 0 || *p > 100) {
				return nil, fmt.Errorf("minCandidateNodesPercentage: Invalid value: %d: not in valid range [0, 100]", *p)
			}
			if n := a.MinCandidateNodesAbsolute; n != nil && *n < 0 {
				return nil, fmt.Errorf("minCandidateNodesAbsolute: Invalid value: %d: not in valid range [0, inf)", *n)
			}
			return NewDefaultPreemption(h, &a), nil
		},
	}
}

// DefaultPlugin is one default plugin with its score weight.
type DefaultPlugin struct {
	Name   string
	Weight int32
}

// Defaults is upstream's default plugin set in upstream's order; each
// plugin serves every extension point it implements.
var Defaults = []DefaultPlugin{
	{SchedulingGatesName, 0},
	{PrioritySortName, 0},
	{NodeUnschedulableName, 0},
	{NodeNameName, 0},
	{TaintTolerationName, 3},
	{NodeAffinityName, 2},
	{NodePortsName, 0},
	{NodeResourcesFitName, 1},
	{VolumeRestrictionsName, 0},
	{VolumeBindingName, 0},
	{PodTopologySpreadName, 2},
	{InterPodAffinityName, 2},
	{DynamicResourcesName, 0},
	{DefaultPreemptionName, 0},
	{BalancedAllocationName, 1},
	{ImageLocalityName, 1},
	{DefaultBinderName, 0},
}

// Unavailable are upstream plugins skiff does not carry; naming them in a
// disabled list is fine, enabling them is an error.
var Unavailable = map[string]bool{
	"NodeVolumeLimits": true, "VolumeZone": true, "EBSLimits": true,
	"GCEPDLimits": true, "AzureDiskLimits": true, "CinderLimits": true, "NodeDeclaredFeatures": true,
	"GangScheduling": true,
}
