package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/kubelet/plan"
	"github.com/skiff-sh/skiff/internal/kubelet/volume"
)

// Sync cadence.
const (
	retryAfterError = 2 * time.Second
	// resyncRunning re-checks running pods (volume refreshes, probes'
	// effects) even without runtime events.
	resyncRunning = volumeRefreshSeconds * time.Second
)

// waitingReason is why a container is not running yet, kept between syncs
// so status can show it (ErrImagePull, CreateContainerError, ...).
type waitingReason struct{ reason, message string }

// syncPod drives one pod toward its spec and reports its status. It returns
// when to sync again; zero means only a new event should wake it. What kind
// of sync it is is decided as data (plan.Pod) from the facts read here; the
// steps are then carried out in order.
func (k *Kubelet) syncPod(ctx context.Context, uid types.UID) time.Duration {
	pod := k.pod(uid)
	st, err := k.runtimeState(ctx, uid)
	if err != nil {
		k.log.Warn("read pod state from runtime", "uid", uid, "err", err)
		return retryAfterError
	}
	facts := plan.PodFacts{Known: pod != nil, Static: k.isStatic(uid)}
	k.mu.Lock()
	facts.Listed = k.synced
	k.mu.Unlock()
	var evictMsg string
	if pod != nil {
		facts.Deleting = pod.DeletionTimestamp != nil
		facts.Finished = pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
		evictMsg, facts.Evicted = k.evictedMessage(uid)
		left, ok := deadlineLeft(pod, k.clock.Now())
		facts.DeadlinePassed = ok && left <= 0
		facts.New = len(st.Sandboxes) == 0 && pod.Status.Phase == v1.PodPending
	}
	for _, step := range plan.Pod(facts) {
		switch step {
		case plan.StepWait:
			return retryAfterError
		case plan.StepRemove:
			if err := k.removePod(ctx, uid, st); err != nil {
				k.log.Warn("remove pod", "uid", uid, "err", err)
				return retryAfterError
			}
			k.deleteOrphanMirrors(ctx, uid)
			return 0
		case plan.StepMirror:
			k.syncMirror(ctx, pod)
		case plan.StepTerminate:
			k.probes.forget(uid)
			return k.terminate(ctx, pod, st)
		case plan.StepEvict:
			return k.evictPod(ctx, pod, st, evictMsg)
		case plan.StepDeadline:
			return k.failPod(ctx, pod, st, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline", false)
		case plan.StepAdmit:
			if ok, msg := admitUnderPressure(pod, k.currentPressure()); !ok {
				k.markEvicted(uid, msg)
				return k.evictPod(ctx, pod, st, msg)
			}
			if v := k.admit(ctx, pod); !v.ok {
				return k.failPod(ctx, pod, st, v.reason, v.message, false)
			}
		case plan.StepAdmitted:
			k.markAdmitted(uid)
		case plan.StepStop:
			// Finished: nothing restarts; the sandbox's resources go back.
			k.stopAll(ctx, pod, st, 0)
			return 0
		case plan.StepRun:
			return k.run(ctx, pod, st)
		}
	}
	return 0
}

// run brings up the sandbox and containers of a live pod.
func (k *Kubelet) run(ctx context.Context, pod *v1.Pod, st *plan.PodState) time.Duration {
	vols, err := k.setupVolumes(ctx, pod, st.PodIP)
	if err != nil {
		k.eventOnce(pod, v1.EventTypeWarning, "FailedMount", err.Error())
		k.writeStatus(ctx, pod, st)
		return retryAfterError
	}
	if !st.SandboxOK {
		if err := k.createSandbox(ctx, pod, st); err != nil {
			k.eventOnce(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: "+err.Error())
			k.writeStatus(ctx, pod, st)
			return 5 * time.Second
		}
		if st, err = k.runtimeState(ctx, pod.UID); err != nil {
			return retryAfterError
		}
	}
	next, terminal := k.syncContainers(ctx, pod, st, vols)
	if fresh, err := k.runtimeState(ctx, pod.UID); err == nil {
		st = fresh
	}
	if k.pruneDead(ctx, pod.UID, st) {
		if fresh, err := k.runtimeState(ctx, pod.UID); err == nil {
			st = fresh
		}
	}
	k.probes.sync(pod, st)
	k.writeStatus(ctx, pod, st)
	if terminal {
		k.stopAll(ctx, pod, st, 0)
		return 0
	}
	if next == 0 || next > resyncRunning {
		next = resyncRunning
	}
	if left, ok := deadlineLeft(pod, k.clock.Now()); ok && left < next {
		next = max(left, time.Millisecond)
	}
	return next
}

// deadlineLeft is how long the pod may still run under
// spec.activeDeadlineSeconds, counted from its start on this node.
func deadlineLeft(pod *v1.Pod, now time.Time) (time.Duration, bool) {
	if pod.Spec.ActiveDeadlineSeconds == nil || pod.Status.StartTime == nil {
		return 0, false
	}
	end := pod.Status.StartTime.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second)
	return end.Sub(now), true
}

// createSandbox stops what is left of older sandboxes and runs a new one.
func (k *Kubelet) createSandbox(ctx context.Context, pod *v1.Pod, st *plan.PodState) error {
	k.stopAll(ctx, pod, st, 0)
	for _, d := range []string{k.logDir(pod), filepath.Join(k.podDir(string(pod.UID)), "containers")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	handler, err := k.runtimeHandler(ctx, pod)
	if err != nil {
		return err
	}
	attempt := uint32(len(st.Sandboxes))
	started := k.clock.Now()
	_, err = k.rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: k.sandboxConfig(pod, attempt), RuntimeHandler: handler})
	if err != nil {
		return err
	}
	k.log.Debug("sandbox started", "pod", pod.Namespace+"/"+pod.Name, "took", k.clock.Since(started), "since_seen", k.sinceSeen(pod.UID))
	if attempt > 0 {
		k.events.Event(pod, v1.EventTypeNormal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
	}
	return nil
}

// syncContainers carries out the container plan of a live pod (package plan) in
// order. It returns when to look again, and whether the pod is done.
func (k *Kubelet) syncContainers(ctx context.Context, pod *v1.Pod, st *plan.PodState, vols map[string]volume.Mounted) (time.Duration, bool) {
	p := plan.Containers(pod, st, func(c *v1.Container, last *plan.ContainerState) time.Duration {
		return k.backoff.Wait(backoffKey(pod, c.Name), last.Finished)
	})
	for _, a := range p.Actions {
		c := a.Container
		switch a.Kind {
		case plan.ActBackOff:
			key := backoffKey(pod, c.Name)
			msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", k.backoff.Current(key), c.Name, pod.Name, pod.Namespace, pod.UID)
			k.setWaiting(pod, c.Name, "CrashLoopBackOff", msg)
			k.eventOnce(pod, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container "+c.Name+" in pod "+pod.Name+"_"+pod.Namespace+"("+string(pod.UID)+")")
		case plan.ActStart:
			if a.Last != nil && a.Last.Exited() {
				k.backoff.Next(backoffKey(pod, c.Name))
			}
			if wait, err := k.startContainer(ctx, pod, c, st, vols, a.InitIndex); err != nil {
				if wait == 0 {
					wait = retryAfterError
				}
				p.Soonest(wait)
			}
		case plan.ActReplace:
			k.events.Eventf(pod, v1.EventTypeNormal, "Killing", "Container %s definition changed, will be restarted", c.Name)
			k.killContainer(ctx, pod, a.Last, gracePeriod(pod))
		case plan.ActResize:
			k.resizeIfChanged(ctx, pod, c, a.Last)
		}
	}
	if p.Terminal {
		return 0, true
	}
	return p.Next, false
}

func backoffKey(pod *v1.Pod, name string) string { return string(pod.UID) + "/" + name }

// startContainer pulls the image if needed, creates and starts the
// container and runs its postStart hook. Failures are recorded as the
// container's waiting reason and as Events; the returned duration is the
// image pull back-off, if any.
func (k *Kubelet) startContainer(ctx context.Context, pod *v1.Pod, c *v1.Container, st *plan.PodState, vols map[string]volume.Mounted, initIndex int) (time.Duration, error) {
	imageUID, imageUser, wait, err := k.ensureImage(ctx, pod, c)
	if err != nil {
		return wait, err
	}
	env, err := k.resolveEnv(ctx, pod, c, st)
	if err == nil {
		err = runAsNonRootError(pod, c, imageUID, imageUser)
	}
	if err != nil {
		k.setWaiting(pod, c.Name, "CreateContainerConfigError", err.Error())
		k.eventOnce(pod, v1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return 0, err
	}
	restarts := st.NextRestartCount(c.Name)
	spec := containerSpec{pod: pod, c: c, restartCount: restarts, env: env, volumes: vols, initIndex: initIndex, memoryCapacity: k.machine.Memory.Value()}
	if spec.termFile, err = k.terminationFile(pod, c.Name, restarts); err != nil {
		return 0, err
	}
	if !pod.Spec.HostNetwork {
		if spec.hostsFile, err = k.hostsFile(pod, st.PodIP); err != nil {
			return 0, err
		}
	}
	cfg, err := containerConfig(spec)
	if err != nil {
		k.setWaiting(pod, c.Name, "CreateContainerConfigError", err.Error())
		k.eventOnce(pod, v1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return 0, err
	}
	if target := debugTarget(pod, c.Name); target != "" {
		if tc := st.Latest(target); tc != nil && tc.Running() {
			targetPIDNamespace(cfg, tc.ID)
		}
	}
	sb := st.Current()
	created, err := k.rt.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: sb.Id, Config: cfg, SandboxConfig: k.sandboxConfig(pod, sb.Metadata.GetAttempt())})
	if err != nil {
		msg := criMessage(err)
		k.setWaiting(pod, c.Name, "CreateContainerError", msg)
		k.eventOnce(pod, v1.EventTypeWarning, "Failed", "Error: "+msg)
		return 0, err
	}
	k.events.Eventf(pod, v1.EventTypeNormal, "Created", "Created container: %s", c.Name)
	if _, err := k.rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		msg := criMessage(err)
		k.setWaiting(pod, c.Name, "RunContainerError", msg)
		k.eventOnce(pod, v1.EventTypeWarning, "Failed", "Error: "+msg)
		return 0, err
	}
	k.startErr.Delete(backoffKey(pod, c.Name))
	k.events.Eventf(pod, v1.EventTypeNormal, "Started", "Started container %s", c.Name)
	k.log.Debug("container started", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "since_seen", k.sinceSeen(pod.UID))
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if msg, err := k.runHandler(ctx, pod, c, created.ContainerId, st.PodIP, c.Lifecycle.PostStart, 30*time.Second); err != nil {
			k.events.Eventf(pod, v1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: %s", strings.TrimSpace(msg+" "+err.Error()))
			_, _ = k.rt.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: created.ContainerId, Timeout: 0})
			return 0, err
		}
	}
	return 0, nil
}

// criMessage is the runtime's error text without gRPC's framing.
func criMessage(err error) string {
	s := err.Error()
	if i := strings.Index(s, "desc = "); i >= 0 {
		return s[i+len("desc = "):]
	}
	return s
}

func (k *Kubelet) setWaiting(pod *v1.Pod, name, reason, msg string) {
	k.startErr.Store(backoffKey(pod, name), waitingReason{reason: reason, message: msg})
}

func (k *Kubelet) waiting(pod *v1.Pod, name string) (waitingReason, bool) {
	v, ok := k.startErr.Load(backoffKey(pod, name))
	if !ok {
		return waitingReason{}, false
	}
	return v.(waitingReason), true
}

// terminationFile creates the host file behind terminationMessagePath.
func (k *Kubelet) terminationFile(pod *v1.Pod, name string, restarts int) (string, error) {
	dir := filepath.Join(k.podDir(string(pod.UID)), "containers", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, strconv.Itoa(restarts))
	if err := os.WriteFile(p, nil, 0o666); err != nil {
		return "", err
	}
	return p, os.Chmod(p, 0o666)
}

// hostsFile writes the pod's /etc/hosts: localhost, the pod's own name and
// IP, and spec.hostAliases.
func (k *Kubelet) hostsFile(pod *v1.Pod, podIP string) (string, error) {
	var b strings.Builder
	b.WriteString(defaultHostsTpl)
	if podIP != "" {
		name := podHostname(pod)
		if pod.Spec.Subdomain != "" {
			domain := k.cfg.ClusterDomain
			if domain == "" {
				domain = "cluster.local"
			}
			fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.%s\t%s\n", podIP, name, pod.Spec.Subdomain, pod.Namespace, domain, name)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", podIP, name)
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, h := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", h.IP, strings.Join(h.Hostnames, "\t"))
		}
	}
	p := filepath.Join(k.podDir(string(pod.UID)), "etc-hosts")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

// resolveEnv fetches the ConfigMaps and Secrets the container's environment
// names and resolves it.
func (k *Kubelet) resolveEnv(ctx context.Context, pod *v1.Pod, c *v1.Container, st *plan.PodState) ([]v1.EnvVar, error) {
	_, alloc := k.capacity()
	src := envSources{configMaps: map[string]*v1.ConfigMap{}, secrets: map[string]*v1.Secret{}, podIP: st.PodIP, podIPs: st.PodIPs, hostIP: k.cfg.NodeIP.String(), allocatable: alloc}
	cm := func(name string) error {
		if _, ok := src.configMaps[name]; ok || name == "" {
			return nil
		}
		obj, err := k.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if err == nil {
			src.configMaps[name] = obj
		}
		return nil
	}
	secret := func(name string) error {
		if _, ok := src.secrets[name]; ok || name == "" {
			return nil
		}
		obj, err := k.client.CoreV1().Secrets(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if err == nil {
			src.secrets[name] = obj
		}
		return nil
	}
	var errs []error
	for _, f := range c.EnvFrom {
		if f.ConfigMapRef != nil {
			errs = append(errs, cm(f.ConfigMapRef.Name))
		}
		if f.SecretRef != nil {
			errs = append(errs, secret(f.SecretRef.Name))
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			errs = append(errs, cm(e.ValueFrom.ConfigMapKeyRef.Name))
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			errs = append(errs, secret(e.ValueFrom.SecretKeyRef.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	src.services = k.serviceEnv(pod)
	return containerEnv(pod, c, src)
}

// gracePeriod is the pod's deletion grace period, else its spec's.
func gracePeriod(pod *v1.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

// terminate runs a deleted pod's shutdown: preStop hooks and SIGTERM with
// the grace period, then SIGKILL; the final status; and the deletion of the
// API object with grace 0 once nothing runs.
func (k *Kubelet) terminate(ctx context.Context, pod *v1.Pod, st *plan.PodState) time.Duration {
	k.stopAll(ctx, pod, st, gracePeriod(pod))
	if fresh, err := k.runtimeState(ctx, pod.UID); err == nil {
		st = fresh
	}
	if st.AnyRunning() {
		return retryAfterError
	}
	k.writeStatus(ctx, pod, st)
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		k.log.Warn("delete terminated pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return retryAfterError
	}
	return 0
}

// stopAll stops every running container of the pod in parallel (preStop
// hook, then SIGTERM and SIGKILL after grace seconds) and stops its
// sandboxes, keeping them for logs until the pod is removed.
func (k *Kubelet) stopAll(ctx context.Context, pod *v1.Pod, st *plan.PodState, grace int64) {
	var wg sync.WaitGroup
	for _, list := range st.Containers {
		for _, cs := range list {
			if !cs.Running() && cs.State != cri.ContainerState_CONTAINER_CREATED {
				continue
			}
			wg.Add(1)
			go func(cs *plan.ContainerState) {
				defer wg.Done()
				k.killContainer(ctx, pod, cs, grace)
			}(cs)
		}
	}
	wg.Wait()
	for _, sb := range st.Sandboxes {
		if sb.State == cri.PodSandboxState_SANDBOX_READY {
			if _, err := k.rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				k.log.Warn("stop sandbox", "id", sb.Id, "err", err)
			}
		}
	}
}

// killContainer runs the preStop hook within the grace period, then stops
// the container with what remains of it.
func (k *Kubelet) killContainer(ctx context.Context, pod *v1.Pod, cs *plan.ContainerState, grace int64) {
	start := k.clock.Now()
	if pod != nil {
		if c := plan.SpecContainer(pod, cs.Name); c != nil {
			k.events.Eventf(pod, v1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && cs.Running() && grace > 0 {
				if msg, err := k.runHandler(ctx, pod, c, cs.ID, "", c.Lifecycle.PreStop, time.Duration(grace)*time.Second); err != nil {
					k.events.Eventf(pod, v1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %s", strings.TrimSpace(msg+" "+err.Error()))
				}
			}
		}
	}
	left := grace - int64(k.clock.Since(start).Seconds())
	if left < 0 {
		left = 0
	}
	// The runtime sends the stop signal, waits left seconds, then kills.
	if _, err := k.rt.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: cs.ID, Timeout: left}); err != nil {
		k.log.Warn("stop container", "id", cs.ID, "err", err)
	}
}

// removePod removes a pod the API no longer has: its containers and
// sandboxes, volumes, directories and cgroups.
func (k *Kubelet) removePod(ctx context.Context, uid types.UID, st *plan.PodState) error {
	k.stopAll(ctx, nil, st, 0)
	for _, sb := range st.Sandboxes {
		if _, err := k.rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return fmt.Errorf("remove sandbox %s: %w", sb.Id, err)
		}
	}
	if err := k.teardownVolumes(string(uid)); err != nil {
		return err
	}
	for _, sb := range st.Sandboxes {
		if md := sb.Metadata; md != nil {
			_ = os.RemoveAll(filepath.Join(k.cfg.RootDir, "logs", md.Namespace+"_"+md.Name+"_"+md.Uid))
		}
	}
	removeCgroups(string(uid))
	k.probes.forget(uid)
	k.podCerts.forget(uid)
	k.tokens.forget(uid)
	for _, list := range st.Containers {
		for _, cs := range list {
			k.resized.Delete(cs.ID)
		}
	}
	k.mu.Lock()
	delete(k.evicted, uid)
	delete(k.admitted, uid)
	k.mu.Unlock()
	k.backoff.Forget(string(uid) + "/")
	k.startErr.Range(func(key, _ any) bool {
		if strings.HasPrefix(key.(string), string(uid)+"/") {
			k.startErr.Delete(key)
		}
		return true
	})
	k.eventsSeen.Range(func(key, _ any) bool {
		if strings.HasPrefix(key.(string), string(uid)+"/") {
			k.eventsSeen.Delete(key)
		}
		return true
	})
	return nil
}

// removeCgroups deletes the pod's cgroup directories, which containerd
// leaves behind (RUNTIME-NOTES), in every hierarchy.
func removeCgroups(uid string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		for _, qos := range []string{"", "burstable", "besteffort"} {
			dir := filepath.Join(root, "kubepods", qos, "pod"+uid)
			// Children first: containers' cgroups live below the pod's.
			if entries, err := os.ReadDir(dir); err == nil {
				for _, e := range entries {
					if e.IsDir() {
						_ = os.Remove(filepath.Join(dir, e.Name()))
					}
				}
				_ = os.Remove(dir)
			}
		}
	}
}

// eventOnce records an Event unless the same reason and message were
// recorded for the pod within the last minute (the API server aggregates
// repeats anyway; this keeps retry loops quiet).
func (k *Kubelet) eventOnce(pod *v1.Pod, typ, reason, msg string) {
	key := string(pod.UID) + "/" + reason + "/" + msg
	now := k.clock.Now()
	if last, ok := k.eventsSeen.Load(key); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	k.eventsSeen.Store(key, now)
	k.events.Event(pod, typ, reason, msg)
}

// runtimeHandler is the CRI handler of the pod's RuntimeClass ("" for the
// runtime's default).
func (k *Kubelet) runtimeHandler(ctx context.Context, pod *v1.Pod) (string, error) {
	name := pod.Spec.RuntimeClassName
	if name == nil || *name == "" {
		return "", nil
	}
	rc, err := k.client.NodeV1().RuntimeClasses().Get(ctx, *name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("runtimeClass %q: %w", *name, err)
	}
	return rc.Handler, nil
}
