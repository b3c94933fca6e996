package plugins

import (
	"context"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// DynamicResources stands in for upstream's plugin of that name: skiff
// stores the resource.k8s.io objects but allocates no devices, so a pod
// that claims some can run nowhere. It stays Pending with that said in its
// PodScheduled condition, instead of landing on a node whose kubelet could
// never prepare its claims.
type DynamicResources struct{}

var _ framework.PreFilterPlugin = DynamicResources{}

// ErrReasonDynamicResources is the rejection of a pod with resource claims.
const ErrReasonDynamicResources = "pod has resource claims, and this cluster does not allocate dynamic resources (resource.k8s.io): no node can satisfy them"

// Name implements Plugin.
func (DynamicResources) Name() string { return DynamicResourcesName }

// PreFilter implements PreFilterPlugin.
func (DynamicResources) PreFilter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	if len(pod.Pod.Spec.ResourceClaims) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonDynamicResources)
}

// PreFilterExtensions implements PreFilterPlugin.
func (DynamicResources) PreFilterExtensions() framework.PreFilterExtensions { return nil }
