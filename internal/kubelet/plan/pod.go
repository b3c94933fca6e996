package plan

// A pod sync first decides what kind of sync it is, from facts the kubelet
// gathers (is the pod known, being deleted, finished, evicted, past its
// deadline, new on the node); Pod turns them into ordered steps the
// kubelet's syncPod carries out. The container sync of a live pod is the
// last step (Run), planned by Containers.

// Step is one stage of a pod sync.
type Step string

const (
	// StepWait: the pod is unknown and the kubelet has not listed its pods
	// yet, so it may be one of them: try again later.
	StepWait Step = "wait"
	// StepRemove: the API no longer has the pod: stop and remove its
	// containers, sandboxes, volumes and directories.
	StepRemove Step = "remove"
	// StepMirror: a static pod keeps its mirror pod in the API.
	StepMirror Step = "mirror"
	// StepTerminate: the pod is being deleted: preStop hooks, stop within
	// the grace period, final status, then the API object's removal.
	StepTerminate Step = "terminate"
	// StepEvict: node pressure chose the pod: it ends Failed/Evicted.
	StepEvict Step = "evict"
	// StepDeadline: spec.activeDeadlineSeconds passed: it ends Failed.
	StepDeadline Step = "deadline"
	// StepAdmit: new on the node (no sandbox yet, Pending): the node's
	// admission (pressure, resources, ports) decides whether it may run;
	// a refusal ends the sync with the pod Failed or Evicted.
	StepAdmit Step = "admit"
	// StepAdmitted: the pod already runs here (or is the node's own
	// static pod): it holds its resources and ports.
	StepAdmitted Step = "admitted"
	// StepStop: the pod finished: stop what still runs; nothing restarts.
	StepStop Step = "stop"
	// StepRun: volumes, the sandbox if it is not ready, the containers as
	// Containers plans them, probes and status.
	StepRun Step = "run"
)

// PodFacts are what a pod sync's first decision reads.
type PodFacts struct {
	// Known: the kubelet has the pod (from the API or a static manifest).
	Known bool
	// Listed: the kubelet has listed its pods at least once.
	Listed bool
	// Static: from the node's static pod directory.
	Static bool
	// Deleting: the API set the pod's deletionTimestamp.
	Deleting bool
	// Finished: phase Succeeded or Failed.
	Finished bool
	// Evicted: node pressure chose it for eviction.
	Evicted bool
	// DeadlinePassed: spec.activeDeadlineSeconds is over.
	DeadlinePassed bool
	// New: no sandbox yet and phase Pending.
	New bool
}

// Pod plans a pod sync's steps, in order.
func Pod(f PodFacts) []Step {
	var steps []Step
	switch {
	case !f.Known && !f.Listed:
		return []Step{StepWait}
	case !f.Known:
		return []Step{StepRemove}
	case f.Static:
		steps = append(steps, StepMirror)
	case f.Deleting:
		return []Step{StepTerminate}
	}
	switch {
	case f.Static:
		// The node's own pods are never evicted, failed or refused.
		steps = append(steps, StepAdmitted)
	case f.Finished:
	case f.Evicted:
		return append(steps, StepEvict)
	case f.DeadlinePassed:
		return append(steps, StepDeadline)
	case f.New:
		steps = append(steps, StepAdmit)
	default:
		steps = append(steps, StepAdmitted)
	}
	if f.Finished {
		return append(steps, StepStop)
	}
	return append(steps, StepRun)
}
