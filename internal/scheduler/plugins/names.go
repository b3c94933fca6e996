// Package plugins holds the scheduler's in-tree plugins, each a small pure
// function of the pod and the snapshot, and the registry that builds them.
package plugins

import (
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Plugin names, as upstream's, so configuration files carry over.
const (
	PrioritySortName       = "PrioritySort"
	SchedulingGatesName    = "SchedulingGates"
	NodeUnschedulableName  = "NodeUnschedulable"
	NodeNameName           = "NodeName"
	NodePortsName          = "NodePorts"
	NodeResourcesFitName   = "NodeResourcesFit"
	BalancedAllocationName = "NodeResourcesBalancedAllocation"
	TaintTolerationName    = "TaintToleration"
	NodeAffinityName       = "NodeAffinity"
	ImageLocalityName      = "ImageLocality"
	InterPodAffinityName   = "InterPodAffinity"
	PodTopologySpreadName  = "PodTopologySpread"
	VolumeBindingName      = "VolumeBinding"
	VolumeRestrictionsName = "VolumeRestrictions"
	DynamicResourcesName   = "DynamicResources"
	DefaultPreemptionName  = "DefaultPreemption"
	DefaultBinderName      = "DefaultBinder"
)

// DefaultNormalizeScore scales scores so the highest becomes maxPriority;
// reverse flips them (a low raw score is good).
func DefaultNormalizeScore(maxPriority int64, reverse bool, scores []framework.NodeScore) {
	var highest int64
	for _, s := range scores {
		if s.Score > highest {
			highest = s.Score
		}
	}
	if highest == 0 {
		if reverse {
			for i := range scores {
				scores[i].Score = maxPriority
			}
		}
		return
	}
	for i := range scores {
		s := scores[i].Score * maxPriority / highest
		if reverse {
			s = maxPriority - s
		}
		scores[i].Score = s
	}
}

// events is shorthand for building registrations.
func events(r framework.EventResource, a framework.ActionType) framework.ClusterEvent {
	return framework.ClusterEvent{Resource: r, Action: a}
}

type errNoState string

func (e errNoState) Error() string {
	return "plugin " + string(e) + ": no PreFilter state in this cycle"
}
