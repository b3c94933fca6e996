package kubelet

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/plan"
)

// annotationResources records the resources a container was created with,
// so a restarted node agent knows what its cgroups hold.
const annotationResources = "io.skiff.container.resources"

// resizeStep is what an in-place resize of one running container needs:
// nothing, new cgroup settings, or a restart (a changed resource whose
// resizePolicy is RestartContainer).
type resizeStep int

const (
	resizeNone resizeStep = iota
	resizeUpdate
	resizeRestart
)

// planResize compares what a container runs with against its spec. Pure.
func planResize(c *v1.Container, applied v1.ResourceRequirements) resizeStep {
	if apiequality.Semantic.DeepEqual(cpuMemory(c.Resources), cpuMemory(applied)) {
		return resizeNone
	}
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		if changed(c.Resources, applied, name) && restartPolicy(c, name) == v1.RestartContainer {
			return resizeRestart
		}
	}
	return resizeUpdate
}

func changed(a, b v1.ResourceRequirements, name v1.ResourceName) bool {
	qa, oka := a.Requests[name]
	qb, okb := b.Requests[name]
	la, lka := a.Limits[name]
	lb, lkb := b.Limits[name]
	return oka != okb || lka != lkb || (oka && qa.Cmp(qb) != 0) || (lka && la.Cmp(lb) != 0)
}

func restartPolicy(c *v1.Container, name v1.ResourceName) v1.ResourceResizeRestartPolicy {
	for _, p := range c.ResizePolicy {
		if p.ResourceName == name {
			return p.RestartPolicy
		}
	}
	return v1.NotRequired
}

// cpuMemory keeps the two resources a resize may change, with empty lists
// as nil so "no limits" compares equal however it is written.
func cpuMemory(r v1.ResourceRequirements) v1.ResourceRequirements {
	keep := func(l v1.ResourceList) v1.ResourceList {
		var out v1.ResourceList
		for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
			if q, ok := l[name]; ok {
				if out == nil {
					out = v1.ResourceList{}
				}
				out[name] = q.DeepCopy()
			}
		}
		return out
	}
	return v1.ResourceRequirements{Requests: keep(r.Requests), Limits: keep(r.Limits)}
}

func resourcesAnnotation(c *v1.Container) string {
	b, _ := json.Marshal(cpuMemory(c.Resources))
	return string(b)
}

// appliedResources is what a running container's cgroups hold: the last
// in-place update, else what it was created with.
func (k *Kubelet) appliedResources(cs *plan.ContainerState, c *v1.Container) v1.ResourceRequirements {
	if r, ok := k.resized.Load(cs.ID); ok {
		return r.(v1.ResourceRequirements)
	}
	var r v1.ResourceRequirements
	if cs.Resources == "" || json.Unmarshal([]byte(cs.Resources), &r) != nil {
		// Created by an agent that did not record it: the spec it
		// was created from is the best knowledge there is.
		return cpuMemory(c.Resources)
	}
	return r
}

// resizeIfChanged applies a running container's new requests and limits:
// in place through the runtime, or by a restart when its resizePolicy asks.
func (k *Kubelet) resizeIfChanged(ctx context.Context, pod *v1.Pod, c *v1.Container, cs *plan.ContainerState) {
	switch planResize(c, k.appliedResources(cs, c)) {
	case resizeNone:
		return
	case resizeRestart:
		k.events.Eventf(pod, v1.EventTypeNormal, "Killing", "Container %s resources changed, will be restarted", c.Name)
		k.killContainer(ctx, pod, cs, gracePeriod(pod))
		return
	}
	res := linuxResources(c)
	res.OomScoreAdj = int64(oomScoreAdj(pod, c, k.machine.Memory.Value()))
	if _, err := k.rt.UpdateContainerResources(ctx, &cri.UpdateContainerResourcesRequest{ContainerId: cs.ID, Linux: res}); err != nil {
		k.eventOnce(pod, v1.EventTypeWarning, "ResizeError", fmt.Sprintf("resize container %s: %s", c.Name, criMessage(err)))
		return
	}
	k.resized.Store(cs.ID, cpuMemory(c.Resources))
	k.eventOnce(pod, v1.EventTypeNormal, "ResizeCompleted", fmt.Sprintf("Pod resize completed for container %s", c.Name))
}

// oomScoreAdj is upstream's OOM score for a container: node-critical and
// Guaranteed pods are killed last, BestEffort first, Burstable by the share
// of the node's memory they request.
func oomScoreAdj(pod *v1.Pod, c *v1.Container, memoryCapacity int64) int {
	const guaranteed, bestEffort = -997, 1000
	if pod.Spec.PriorityClassName == "system-node-critical" || (pod.Spec.Priority != nil && *pod.Spec.Priority >= 2000001000) {
		return guaranteed
	}
	switch qosClass(pod) {
	case v1.PodQOSGuaranteed:
		return guaranteed
	case v1.PodQOSBestEffort:
		return bestEffort
	}
	if memoryCapacity <= 0 {
		return bestEffort - 1
	}
	score := 1000 - (1000*c.Resources.Requests.Memory().Value())/memoryCapacity
	if plan.IsSidecar(c) {
		// A sidecar dies no sooner than the app containers it serves.
		smallest := int64(-1)
		for _, app := range pod.Spec.Containers {
			if m := app.Resources.Requests.Memory().Value(); smallest < 0 || m < smallest {
				smallest = m
			}
		}
		if s := 1000 - (1000*max(smallest, 0))/memoryCapacity; s < score {
			score = s
		}
	}
	switch {
	case score < 1000+guaranteed:
		return 1000 + guaranteed
	case score == bestEffort:
		return bestEffort - 1
	}
	return int(score)
}
