package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/kubelet/plan"
)

// Conditions the kubelet owns; others (PodScheduled, DisruptionTarget,
// readiness gates) are kept as they are.
var kubeletConditions = map[v1.PodConditionType]bool{
	v1.PodReadyToStartContainers: true, v1.PodInitialized: true, v1.ContainersReady: true, v1.PodReady: true,
}

// maxTerminationMessage bounds a termination message (upstream: 4096 bytes).
const maxTerminationMessage = 4096

// podStatus computes the pod's status from the runtime's view.
func (k *Kubelet) podStatus(pod *v1.Pod, st *plan.PodState) v1.PodStatus {
	out := *pod.Status.DeepCopy()
	now := metav1.NewTime(k.clock.Now())
	if out.StartTime == nil {
		out.StartTime = &now
	}
	out.HostIP = k.cfg.NodeIP.String()
	out.HostIPs = []v1.HostIP{{IP: out.HostIP}}
	if pod.Spec.HostNetwork {
		out.PodIP, out.PodIPs = out.HostIP, []v1.PodIP{{IP: out.HostIP}}
	} else if st.PodIP != "" {
		out.PodIP = st.PodIP
		out.PodIPs = nil
		for _, ip := range st.PodIPs {
			out.PodIPs = append(out.PodIPs, v1.PodIP{IP: ip})
		}
	}
	initDone := true
	var initPending []string
	out.InitContainerStatuses = nil
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		// An init container waits, PodInitializing, for those before it.
		cs := k.containerStatus(pod, c, st, initDone)
		out.InitContainerStatuses = append(out.InitContainerStatuses, cs)
		complete := cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		if plan.IsSidecar(c) {
			complete = cs.Started != nil && *cs.Started
		}
		if !complete {
			initDone = false
			initPending = append(initPending, c.Name)
		}
	}
	out.ContainerStatuses = nil
	var unready []string
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := k.containerStatus(pod, c, st, initDone)
		out.ContainerStatuses = append(out.ContainerStatuses, cs)
		if !cs.Ready {
			unready = append(unready, c.Name)
		}
	}
	out.EphemeralContainerStatuses = nil
	for i := range pod.Spec.EphemeralContainers {
		// Ephemeral containers never count toward readiness or phase.
		c := (*v1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		cs := k.containerStatus(pod, c, st, initDone)
		cs.Ready = false
		out.EphemeralContainerStatuses = append(out.EphemeralContainerStatuses, cs)
	}
	for i, c := range pod.Spec.InitContainers {
		if plan.IsSidecar(&c) && !out.InitContainerStatuses[i].Ready {
			unready = append(unready, c.Name)
		}
	}
	out.Phase = podPhase(pod, out.InitContainerStatuses, out.ContainerStatuses, initDone)
	if pod.DeletionTimestamp != nil && !st.AnyRunning() && out.Phase != v1.PodSucceeded {
		// A deleted pod whose containers are gone ends Failed unless every
		// container had succeeded.
		out.Phase = v1.PodFailed
		if allSucceeded(out.ContainerStatuses) {
			out.Phase = v1.PodSucceeded
		}
	}
	terminal := out.Phase == v1.PodSucceeded || out.Phase == v1.PodFailed

	sandboxReady := st.SandboxOK && !terminal
	conds := []v1.PodCondition{
		condition(v1.PodReadyToStartContainers, sandboxReady, "", ""),
		condition(v1.PodInitialized, initDone, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(initPending, " "))),
	}
	ready := len(unready) == 0 && !terminal
	reason, msg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	if terminal {
		reason, msg = "PodCompleted", ""
	}
	conds = append(conds, condition(v1.ContainersReady, ready, reason, msg))
	gatesOK, gateMsg := readinessGates(pod)
	if ready && !gatesOK {
		conds = append(conds, condition(v1.PodReady, false, "ReadinessGatesNotReady", gateMsg))
	} else {
		conds = append(conds, condition(v1.PodReady, ready, reason, msg))
	}
	// What this status reflects: the spec of this generation.
	out.ObservedGeneration = pod.Generation
	for i := range conds {
		conds[i].ObservedGeneration = pod.Generation
	}
	out.Conditions = mergePodConditions(pod.Status.Conditions, conds, now)
	return out
}

func allSucceeded(statuses []v1.ContainerStatus) bool {
	for _, s := range statuses {
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
			return false
		}
	}
	return true
}

func condition(t v1.PodConditionType, ok bool, reason, msg string) v1.PodCondition {
	if ok {
		return v1.PodCondition{Type: t, Status: v1.ConditionTrue}
	}
	return v1.PodCondition{Type: t, Status: v1.ConditionFalse, Reason: reason, Message: msg}
}

func readinessGates(pod *v1.Pod) (bool, string) {
	var missing []string
	for _, g := range pod.Spec.ReadinessGates {
		found := false
		for _, c := range pod.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == v1.ConditionTrue {
				found = true
			}
		}
		if !found {
			missing = append(missing, string(g.ConditionType))
		}
	}
	if len(missing) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but False", missing[0])
}

// mergePodConditions replaces the kubelet's conditions, keeping transition
// times of unchanged ones and every condition others own, in upstream's
// order.
func mergePodConditions(old, ours []v1.PodCondition, now metav1.Time) []v1.PodCondition {
	prev := map[v1.PodConditionType]v1.PodCondition{}
	for _, c := range old {
		prev[c.Type] = c
	}
	var out []v1.PodCondition
	for _, c := range old {
		if !kubeletConditions[c.Type] {
			out = append(out, c)
		}
	}
	for _, c := range ours {
		c.LastTransitionTime = now
		if p, ok := prev[c.Type]; ok && p.Status == c.Status {
			c.LastTransitionTime = p.LastTransitionTime
			c.LastProbeTime = p.LastProbeTime
		}
		out = append(out, c)
	}
	order := map[v1.PodConditionType]int{v1.PodReadyToStartContainers: 1, v1.PodInitialized: 2, v1.PodReady: 3, v1.ContainersReady: 4, v1.PodScheduled: 5}
	sort.SliceStable(out, func(i, j int) bool {
		oi, oj := order[out[i].Type], order[out[j].Type]
		if oi == 0 {
			oi = 99
		}
		if oj == 0 {
			oj = 99
		}
		return oi < oj
	})
	return out
}

// containerStatus reports one container; reachable says whether the pod
// has got as far as starting it (app containers wait for init).
func (k *Kubelet) containerStatus(pod *v1.Pod, c *v1.Container, st *plan.PodState, reachable bool) v1.ContainerStatus {
	out := v1.ContainerStatus{Name: c.Name, Image: c.Image, Started: ptr.To(false)}
	cur := st.Latest(c.Name)
	prev := st.Previous(c.Name)
	if cur != nil {
		out.RestartCount = int32(cur.RestartCount)
	} else if prev != nil {
		out.RestartCount = int32(prev.RestartCount)
	}
	if prev != nil && prev.Exited() {
		out.LastTerminationState = v1.ContainerState{Terminated: k.terminated(pod, c, prev)}
	}
	switch {
	case cur == nil:
		reason := "ContainerCreating"
		if !reachable {
			reason = "PodInitializing"
		}
		out.State.Waiting = &v1.ContainerStateWaiting{Reason: reason}
		if w, ok := k.waiting(pod, c.Name); ok && reachable {
			out.State.Waiting = &v1.ContainerStateWaiting{Reason: w.reason, Message: w.message}
		}
	case cur.Running():
		out.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(cur.Started)}
		out.Started = ptr.To(k.probes.started(pod.UID, c, cur))
		// A regular init container is ready only once it has succeeded
		// (upstream's rule); a sidecar as an app container.
		out.Ready = k.containerReady(pod, c, cur) && (plan.IsSidecar(c) || !isInit(pod, c))
		// What the container runs with (after any in-place resize).
		applied := k.appliedResources(cur, c)
		out.Resources = &applied
		out.AllocatedResources = applied.Requests
	case cur.Exited():
		term := k.terminated(pod, c, cur)
		w, waitingNow := k.waiting(pod, c.Name)
		var restarting bool
		switch {
		case plan.IsSidecar(c):
			restarting = true
		case isInit(pod, c):
			restarting = cur.ExitCode != 0 && pod.Spec.RestartPolicy != v1.RestartPolicyNever
		default:
			restarting = plan.ShouldRestart(pod.Spec.RestartPolicy, cur.ExitCode)
		}
		if restarting && waitingNow && pod.DeletionTimestamp == nil {
			out.State.Waiting = &v1.ContainerStateWaiting{Reason: w.reason, Message: w.message}
			out.LastTerminationState = v1.ContainerState{Terminated: term}
		} else {
			out.State.Terminated = term
			// A finished init container that succeeded counts as ready
			// (upstream reports it so).
			out.Ready = isInit(pod, c) && !plan.IsSidecar(c) && cur.ExitCode == 0
		}
	default:
		out.State.Waiting = &v1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	if cur != nil {
		out.ContainerID = k.runtimeName + "://" + cur.ID
		out.ImageID = cur.ImageRef
		if cur.Image != "" {
			out.Image = cur.Image
		}
	}
	return out
}

func isInit(pod *v1.Pod, c *v1.Container) bool {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			return true
		}
	}
	return false
}

// terminated is a finished container's state with its termination message.
func (k *Kubelet) terminated(pod *v1.Pod, c *v1.Container, cs *plan.ContainerState) *v1.ContainerStateTerminated {
	reason := cs.Reason
	if reason == "" {
		reason = "Completed"
		if cs.ExitCode != 0 {
			reason = "Error"
		}
	}
	msg := cs.Message
	if b, err := os.ReadFile(filepath.Join(k.podDir(string(pod.UID)), "containers", c.Name, fmt.Sprint(cs.RestartCount))); err == nil && len(b) > 0 {
		msg = string(b)
	} else if c.TerminationMessagePolicy == v1.TerminationMessageFallbackToLogsOnError && cs.ExitCode != 0 {
		msg = k.logTail(pod, c.Name, cs.RestartCount, 80, 2048)
	}
	if len(msg) > maxTerminationMessage {
		msg = msg[:maxTerminationMessage]
	}
	return &v1.ContainerStateTerminated{
		ExitCode: cs.ExitCode, Reason: reason, Message: msg,
		StartedAt: metav1.NewTime(cs.Started), FinishedAt: metav1.NewTime(cs.Finished),
		ContainerID: k.runtimeName + "://" + cs.ID,
	}
}

// podPhase is upstream's phase rule over container states.
func podPhase(pod *v1.Pod, inits, apps []v1.ContainerStatus, initDone bool) v1.PodPhase {
	if !initDone {
		for i, s := range inits {
			c := pod.Spec.InitContainers[i]
			if !plan.IsSidecar(&c) && s.State.Terminated != nil && s.State.Terminated.ExitCode != 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				return v1.PodFailed
			}
		}
		return v1.PodPending
	}
	var waiting, running, stopped, succeeded int
	for _, s := range apps {
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.State.Waiting != nil:
			if s.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped > 0:
		switch {
		case pod.Spec.RestartPolicy == v1.RestartPolicyAlways:
			return v1.PodRunning
		case stopped == succeeded:
			return v1.PodSucceeded
		case pod.Spec.RestartPolicy == v1.RestartPolicyOnFailure:
			return v1.PodRunning
		}
		return v1.PodFailed
	}
	return v1.PodPending
}

// writeStatus writes the pod's status through the status subresource when
// it differs from what the API has.
func (k *Kubelet) writeStatus(ctx context.Context, pod *v1.Pod, st *plan.PodState) {
	status := k.podStatus(pod, st)
	if equalJSON(status, pod.Status) {
		return
	}
	if k.isStatic(pod.UID) {
		k.writeMirrorStatus(ctx, pod, status)
		return
	}
	next := pod.DeepCopy()
	next.Status = status
	updated, err := k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		fresh, gerr := k.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if gerr != nil || fresh.UID != pod.UID {
			return
		}
		fresh.Status = k.podStatus(fresh, st)
		updated, err = k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, fresh, metav1.UpdateOptions{})
	}
	if err != nil {
		if !apierrors.IsNotFound(err) {
			k.log.Warn("update pod status", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
		return
	}
	// Later syncs compare against what was written, not a stale cache.
	k.mu.Lock()
	if seen, ok := k.firstSeen[pod.UID]; ok && status.Phase == v1.PodRunning {
		k.metrics.podStart.Observe(k.clock.Since(seen).Seconds())
		k.log.Debug("pod running", "pod", pod.Namespace+"/"+pod.Name, "since_seen", k.clock.Since(seen))
		delete(k.firstSeen, pod.UID)
	}
	if cur, ok := k.pods[pod.UID]; ok && cur.ResourceVersion == pod.ResourceVersion {
		k.pods[pod.UID] = updated
	}
	k.mu.Unlock()
}

// writeMirrorStatus reports a static pod's status on its mirror.
func (k *Kubelet) writeMirrorStatus(ctx context.Context, static *v1.Pod, status v1.PodStatus) {
	m := k.mirror(static)
	if m == nil || m.Annotations[annotationConfigMirror] != string(static.UID) {
		return
	}
	next := m.DeepCopy()
	next.Status = status
	updated, err := k.client.CoreV1().Pods(m.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			k.log.Warn("update mirror pod status", "pod", m.Namespace+"/"+m.Name, "err", err)
		}
		return
	}
	k.mu.Lock()
	if cur := k.mirrors[m.Namespace+"/"+m.Name]; cur != nil && cur.ResourceVersion == m.ResourceVersion {
		k.mirrors[m.Namespace+"/"+m.Name] = updated
	}
	k.mu.Unlock()
}
