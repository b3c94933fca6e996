package kubelet

import (
	"time"

	v1 "k8s.io/api/core/v1"
)

// The container sync of a live pod is decided here as data, then carried
// out in order by the executor (syncContainers in sync.go): the decision
// reads the pod, what the runtime reports and the restart back-off, and
// does no I/O, so the rules below are tested without a runtime
// (plan_test.go, scenarios under testdata/containers/).

// actionKind says what an action does to a container.
type actionKind string

const (
	// actStart creates and starts the container (pulling its image if
	// need be, then running its postStart hook). A restart records the
	// back-off first.
	actStart actionKind = "start"
	// actReplace stops a running container whose spec changed; a later
	// sync starts its replacement.
	actReplace actionKind = "replace"
	// actResize brings a running container's resources to the spec's
	// (in-place resize), if they differ.
	actResize actionKind = "resize"
	// actBackOff reports that a restart waits out its back-off
	// (CrashLoopBackOff) and does nothing else.
	actBackOff actionKind = "back-off"
)

// containerAction is one step of a container sync.
type containerAction struct {
	kind      actionKind
	container *v1.Container
	// initIndex is the container's index among the init containers, -1
	// for app and ephemeral containers.
	initIndex int
	// last is the container's latest run in the current sandbox, if any.
	last *containerState
	// wait is how long a back-off still lasts (actBackOff).
	wait time.Duration
}

// containerPlan is a container sync's decision.
type containerPlan struct {
	actions []containerAction
	// next is when to look again for what the plan itself waits on (a
	// back-off, a sidecar coming up); the executor adds what its starts
	// report (an image pull back-off, an error).
	next time.Duration
	// terminal: every app container finished for good, or an init
	// container failed under restartPolicy Never; the pod is done.
	terminal bool
}

func (p *containerPlan) soonest(d time.Duration) {
	if d > 0 && (p.next == 0 || d < p.next) {
		p.next = d
	}
}

// start plans a start of c, or its back-off if its last run ended too
// recently (restartWait says how long is left).
func (p *containerPlan) start(c *v1.Container, initIndex int, last *containerState, restartWait func(*v1.Container, *containerState) time.Duration) {
	if last != nil && last.exited() {
		if wait := restartWait(c, last); wait > 0 {
			p.actions = append(p.actions, containerAction{kind: actBackOff, container: c, initIndex: initIndex, last: last, wait: wait})
			p.soonest(wait)
			return
		}
	}
	p.actions = append(p.actions, containerAction{kind: actStart, container: c, initIndex: initIndex, last: last})
}

// running plans what a running container needs: a replacement when its
// spec changed, else a resize check.
func (p *containerPlan) running(c *v1.Container, cs *containerState) {
	if cs.hash != "" && cs.hash != containerHash(c) && cs.hash != legacyContainerHash(c) {
		p.actions = append(p.actions, containerAction{kind: actReplace, container: c, initIndex: -1, last: cs})
		return
	}
	p.actions = append(p.actions, containerAction{kind: actResize, container: c, initIndex: -1, last: cs})
}

// planContainers decides a live pod's container sync from its spec and the
// runtime's view: init containers one at a time in order (a sidecar —
// restartPolicy Always — stays up and must be running before the next
// one), then every app container, restarted as the pod's restart policy
// says with back-off; ephemeral containers run once. restartWait is how
// long a container's restart must still wait after its last run.
func planContainers(pod *v1.Pod, st *podState, restartWait func(c *v1.Container, last *containerState) time.Duration) containerPlan {
	var p containerPlan
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := st.latest(c.Name)
		switch {
		case cs != nil && cs.running():
			if !isSidecar(c) {
				return p // wait for it to finish
			}
			p.running(c, cs)
			continue
		case cs != nil && cs.exited() && !isSidecar(c) && cs.exitCode == 0:
			continue
		case cs != nil && cs.exited() && !isSidecar(c) && pod.Spec.RestartPolicy == v1.RestartPolicyNever:
			// A failed init container fails the pod.
			p.terminal, p.next = true, 0
			return p
		}
		p.start(c, i, cs, restartWait)
		if !isSidecar(c) {
			return p
		}
		// A sidecar must be up before the next init container: look
		// again once it has had a moment to start.
		p.soonest(time.Second)
		return p
	}
	done := 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := st.latest(c.Name)
		switch {
		case cs != nil && cs.running():
			p.running(c, cs)
		case cs != nil && cs.exited() && !shouldRestart(pod.Spec.RestartPolicy, cs.exitCode):
			done++
		default:
			p.start(c, -1, cs, restartWait)
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		// A debugging container runs once, never restarted, and does not
		// keep the pod alive.
		c := (*v1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		if st.latest(c.Name) == nil {
			p.actions = append(p.actions, containerAction{kind: actStart, container: c, initIndex: -1})
		}
	}
	p.terminal = done == len(pod.Spec.Containers)
	return p
}

func shouldRestart(policy v1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}
