// Package plan is the node agent's decision, apart from its I/O: what the
// runtime reports of a pod (PodState), the restart back-off, and the
// container sync of a live pod as an ordered list of actions (Containers),
// which the kubelet's executor (syncContainers) then carries out. Nothing
// here calls the runtime or the API, so the rules are tested without
// either (plan_test.go, scenarios under testdata/containers/).
package plan

import (
	"time"

	v1 "k8s.io/api/core/v1"
)

// ActionKind says what an action does to a container.
type ActionKind string

const (
	// ActStart creates and starts the container (pulling its image if
	// need be, then running its postStart hook). A restart records the
	// back-off first.
	ActStart ActionKind = "start"
	// ActReplace stops a running container whose spec changed; a later
	// sync starts its replacement.
	ActReplace ActionKind = "replace"
	// ActResize brings a running container's resources to the spec's
	// (in-place resize), if they differ.
	ActResize ActionKind = "resize"
	// ActBackOff reports that a restart waits out its back-off
	// (CrashLoopBackOff) and does nothing else.
	ActBackOff ActionKind = "back-off"
)

// Action is one step of a container sync.
type Action struct {
	Kind      ActionKind
	Container *v1.Container
	// InitIndex is the container's index among the init containers, -1
	// for app and ephemeral containers.
	InitIndex int
	// Last is the container's latest run in the current sandbox, if any.
	Last *ContainerState
	// Wait is how long a back-off still lasts (ActBackOff).
	Wait time.Duration
}

// ContainerPlan is a container sync's decision.
type ContainerPlan struct {
	Actions []Action
	// Next is when to look again for what the plan itself waits on (a
	// back-off, a sidecar coming up); the executor adds what its starts
	// report (an image pull back-off, an error).
	Next time.Duration
	// Terminal: every app container finished for good, or an init
	// container failed under restartPolicy Never; the pod is done.
	Terminal bool
}

// Soonest makes the plan look again after d at the latest (d > 0).
func (p *ContainerPlan) Soonest(d time.Duration) {
	if d > 0 && (p.Next == 0 || d < p.Next) {
		p.Next = d
	}
}

// start plans a start of c, or its back-off if its last run ended too
// recently (restartWait says how long is left).
func (p *ContainerPlan) start(c *v1.Container, initIndex int, last *ContainerState, restartWait func(*v1.Container, *ContainerState) time.Duration) {
	if last != nil && last.Exited() {
		if wait := restartWait(c, last); wait > 0 {
			p.Actions = append(p.Actions, Action{Kind: ActBackOff, Container: c, InitIndex: initIndex, Last: last, Wait: wait})
			p.Soonest(wait)
			return
		}
	}
	p.Actions = append(p.Actions, Action{Kind: ActStart, Container: c, InitIndex: initIndex, Last: last})
}

// running plans what a running container needs: a replacement when its
// spec changed, else a resize check.
func (p *ContainerPlan) running(c *v1.Container, cs *ContainerState) {
	if cs.Hash != "" && cs.Hash != ContainerHash(c) && cs.Hash != LegacyContainerHash(c) {
		p.Actions = append(p.Actions, Action{Kind: ActReplace, Container: c, InitIndex: -1, Last: cs})
		return
	}
	p.Actions = append(p.Actions, Action{Kind: ActResize, Container: c, InitIndex: -1, Last: cs})
}

// Containers decides a live pod's container sync from its spec and the
// runtime's view: init containers one at a time in order (a sidecar —
// restartPolicy Always — stays up and must be running before the next
// one), then every app container, restarted as the pod's restart policy
// says with back-off; ephemeral containers run once. restartWait is how
// long a container's restart must still wait after its last run.
func Containers(pod *v1.Pod, st *PodState, restartWait func(c *v1.Container, last *ContainerState) time.Duration) ContainerPlan {
	var p ContainerPlan
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := st.Latest(c.Name)
		switch {
		case cs != nil && cs.Running():
			if !IsSidecar(c) {
				return p // wait for it to finish
			}
			p.running(c, cs)
			continue
		case cs != nil && cs.Exited() && !IsSidecar(c) && cs.ExitCode == 0:
			continue
		case cs != nil && cs.Exited() && !IsSidecar(c) && pod.Spec.RestartPolicy == v1.RestartPolicyNever:
			// A failed init container fails the pod.
			p.Terminal, p.Next = true, 0
			return p
		}
		p.start(c, i, cs, restartWait)
		if !IsSidecar(c) {
			return p
		}
		// A sidecar must be up before the next init container: look
		// again once it has had a moment to start.
		p.Soonest(time.Second)
		return p
	}
	done := 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := st.Latest(c.Name)
		switch {
		case cs != nil && cs.Running():
			p.running(c, cs)
		case cs != nil && cs.Exited() && !ShouldRestart(pod.Spec.RestartPolicy, cs.ExitCode):
			done++
		default:
			p.start(c, -1, cs, restartWait)
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		// A debugging container runs once, never restarted, and does not
		// keep the pod alive.
		c := (*v1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		if st.Latest(c.Name) == nil {
			p.Actions = append(p.Actions, Action{Kind: ActStart, Container: c, InitIndex: -1})
		}
	}
	p.Terminal = done == len(pod.Spec.Containers)
	return p
}

func ShouldRestart(policy v1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}
