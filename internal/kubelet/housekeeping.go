package kubelet

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/nodestatus"
	"github.com/skiff-sh/skiff/internal/kubelet/plan"
)

// Housekeeping cadence, upstream's: eviction signals every 10 s, garbage
// collection every minute.
const (
	evictionInterval = 10 * time.Second
	gcInterval       = time.Minute
)

// housekeeping runs the node's upkeep until ctx ends: it watches the
// eviction signals (the node's pressure conditions come from here), evicts
// a pod when a hard threshold is crossed, and collects dead containers,
// sandboxes and unused images.
func (k *Kubelet) housekeeping(ctx context.Context) {
	evict := time.NewTicker(evictionInterval)
	defer evict.Stop()
	gc := time.NewTicker(gcInterval)
	defer gc.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-evict.C:
			k.checkEviction(ctx)
		case <-gc.C:
			k.collectGarbage(ctx)
		}
	}
}

// observe reads every eviction signal the node can measure.
func (k *Kubelet) observe(ctx context.Context) map[string]observation {
	obs := map[string]observation{}
	mem := nodestatus.Meminfo()
	if total, ok := mem["MemTotal"]; ok {
		obs[signalMemoryAvailable] = observation{available: mem["MemAvailable"], capacity: total}
	}
	if o, ok := statfsObservation(k.cfg.RootDir); ok {
		obs[signalNodefsAvailable] = o
	}
	if o, ok := k.imageFs(ctx); ok {
		obs[signalImagefsAvailable] = o
	}
	if max, err := strconv.ParseInt(nodestatus.ReadTrim("/proc/sys/kernel/pid_max"), 10, 64); err == nil && max > 0 {
		if entries, err := os.ReadDir("/proc"); err == nil {
			var procs int64
			for _, e := range entries {
				if c := e.Name()[0]; c >= '0' && c <= '9' {
					procs++
				}
			}
			obs[signalPIDAvailable] = observation{available: max - procs, capacity: max}
		}
	}
	return obs
}

// imageFs reads the runtime's image filesystem.
func (k *Kubelet) imageFs(ctx context.Context) (observation, bool) {
	fs, err := k.rt.ImageFsInfo(ctx, &cri.ImageFsInfoRequest{})
	if err != nil {
		return observation{}, false
	}
	for _, f := range fs.ImageFilesystems {
		if f.FsId == nil {
			continue
		}
		if o, ok := statfsObservation(f.FsId.Mountpoint); ok {
			return o, true
		}
	}
	return observation{}, false
}

func statfsObservation(path string) (observation, bool) {
	var fs syscall.Statfs_t
	if path == "" || syscall.Statfs(path, &fs) != nil || fs.Blocks == 0 {
		return observation{}, false
	}
	return observation{available: int64(fs.Bavail) * fs.Bsize, capacity: int64(fs.Blocks) * fs.Bsize}, true
}

// measure observes the signals and records the node's pressure; it returns
// the thresholds crossed.
func (k *Kubelet) measure(ctx context.Context) []breach {
	bs := breached(k.cfg.EvictionHard, k.observe(ctx))
	p := pressureOf(bs)
	k.nodeMu.Lock()
	changed := p != k.pressure
	k.pressure = p
	k.nodeMu.Unlock()
	if changed {
		k.log.Info("node pressure changed", "memory", p.Memory, "disk", p.Disk, "pid", p.PID)
		if err := k.updateNodeStatus(ctx, false); err != nil && ctx.Err() == nil {
			k.log.Warn("node status", "err", err)
		}
	}
	return bs
}

func (k *Kubelet) currentPressure() nodestatus.Pressure {
	k.nodeMu.Lock()
	defer k.nodeMu.Unlock()
	return k.pressure
}

// checkEviction evicts one pod when a hard threshold is crossed, after
// trying to reclaim disk from dead containers and images first. One pod per
// round lets the signals settle before the next choice, as upstream.
func (k *Kubelet) checkEviction(ctx context.Context) {
	bs := k.measure(ctx)
	if len(bs) == 0 {
		return
	}
	if pressureOf(bs).Disk {
		k.collectGarbage(ctx)
		if bs = k.measure(ctx); len(bs) == 0 {
			return
		}
	}
	b := bs[0]
	for _, x := range bs {
		if x.threshold.Signal == signalMemoryAvailable {
			b = x // memory first: it is the one that kills
		}
	}
	res := starvedResource(b.threshold.Signal)
	k.mu.Lock()
	pods := make([]*v1.Pod, 0, len(k.pods))
	for uid, p := range k.pods {
		if _, done := k.evicted[uid]; !done {
			pods = append(pods, p)
		}
	}
	k.mu.Unlock()
	ranked := evictionCandidates(pods, k.podUsage(ctx, res), res, k.isStatic)
	if len(ranked) == 0 {
		k.log.Warn("eviction threshold crossed but no pod can be evicted", "threshold", b.threshold.String())
		return
	}
	victim := ranked[0]
	msg := evictionMessage(b)
	k.log.Info("evicting pod", "pod", victim.Namespace+"/"+victim.Name, "threshold", b.threshold.String(), "available", b.obs.available)
	k.markEvicted(victim.UID, msg)
	k.metrics.evictions.WithLabelValues(b.threshold.Signal).Inc()
	k.wake(victim.UID)
}

// markEvicted records that the pod must end Failed with reason Evicted; its
// worker stops it and writes the status.
func (k *Kubelet) markEvicted(uid types.UID, msg string) {
	k.mu.Lock()
	k.evicted[uid] = msg
	k.mu.Unlock()
}

func (k *Kubelet) evictedMessage(uid types.UID) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	msg, ok := k.evicted[uid]
	return msg, ok
}

// podUsage is each pod's current use of res: memory working set, or the
// containers' writable layers for ephemeral storage.
func (k *Kubelet) podUsage(ctx context.Context, res v1.ResourceName) map[types.UID]int64 {
	out := map[types.UID]int64{}
	if res == "" {
		return out
	}
	resp, err := k.rt.ListContainerStats(ctx, &cri.ListContainerStatsRequest{})
	if err != nil {
		k.log.Warn("container stats for eviction", "err", err)
		return out
	}
	for _, s := range resp.Stats {
		if s.Attributes == nil {
			continue
		}
		uid := types.UID(s.Attributes.Labels[labelPodUID])
		switch {
		case res == v1.ResourceMemory && s.Memory != nil && s.Memory.WorkingSetBytes != nil:
			out[uid] += int64(s.Memory.WorkingSetBytes.Value)
		case res == v1.ResourceEphemeralStorage && s.WritableLayer != nil && s.WritableLayer.UsedBytes != nil:
			out[uid] += int64(s.WritableLayer.UsedBytes.Value)
		}
	}
	return out
}

// evictPod stops an evicted (or refused) pod at once and records it Failed
// with reason Evicted and the DisruptionTarget condition, as upstream.
func (k *Kubelet) evictPod(ctx context.Context, pod *v1.Pod, st *plan.PodState, msg string) time.Duration {
	return k.failPod(ctx, pod, st, "Evicted", msg, true)
}

// failPod stops a pod at once and records it Failed with reason and msg,
// with the DisruptionTarget condition when the kubelet's own pressure ended
// it.
func (k *Kubelet) failPod(ctx context.Context, pod *v1.Pod, st *plan.PodState, reason, msg string, disruption bool) time.Duration {
	k.probes.forget(pod.UID)
	k.stopAll(ctx, pod, st, 0)
	if fresh, err := k.runtimeState(ctx, pod.UID); err == nil {
		st = fresh
	}
	if st.AnyRunning() {
		return retryAfterError
	}
	k.eventOnce(pod, v1.EventTypeWarning, reason, msg)
	status := k.podStatus(pod, st)
	status.Phase, status.Reason, status.Message = v1.PodFailed, reason, msg
	if disruption {
		now := metav1.NewTime(k.clock.Now())
		status.Conditions = mergePodConditions(status.Conditions, []v1.PodCondition{{
			Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: "TerminationByKubelet", Message: msg,
		}}, now)
	}
	next := pod.DeepCopy()
	next.Status = status
	if _, err := k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return 0
		}
		k.log.Warn("write evicted pod status", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return retryAfterError
	}
	return 0
}

// collectGarbage removes dead containers beyond the policy, the sandboxes
// left empty, and unused images when the image filesystem is too full.
func (k *Kubelet) collectGarbage(ctx context.Context) {
	cs, err := k.rt.ListContainers(ctx, &cri.ListContainersRequest{})
	if err != nil {
		k.log.Warn("container gc: list containers", "err", err)
		return
	}
	dead := map[string]bool{}
	for _, id := range deadContainers(cs.Containers, k.cfg.GC.DeadPerContainer) {
		if err := k.removeContainer(ctx, id); err != nil {
			k.log.Warn("container gc: remove", "id", id, "err", err)
			continue
		}
		dead[id] = true
		k.metrics.gcRemoved.WithLabelValues("container").Inc()
	}
	var remaining []*cri.Container
	for _, c := range cs.Containers {
		if !dead[c.Id] {
			remaining = append(remaining, c)
		}
	}
	if sb, err := k.rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{}); err == nil {
		for _, id := range deadSandboxes(sb.Items, remaining) {
			if _, err := k.rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				k.log.Warn("container gc: remove sandbox", "id", id, "err", err)
				continue
			}
			k.metrics.gcRemoved.WithLabelValues("sandbox").Inc()
		}
	}
	if len(dead) > 0 {
		k.log.Debug("container gc", "removed", len(dead))
	}
	k.collectImages(ctx, remaining)
}

// pruneDead removes the pod's exited containers beyond the policy as soon
// as a restart makes one too many, so a crash-looping pod does not pile
// them up between collections. It reports whether it removed any.
func (k *Kubelet) pruneDead(ctx context.Context, uid types.UID, st *plan.PodState) bool {
	over := false
	for _, list := range st.Containers {
		if len(list) > 1+k.cfg.GC.DeadPerContainer {
			over = true
		}
	}
	if !over {
		return false
	}
	cs, err := k.rt.ListContainers(ctx, &cri.ListContainersRequest{Filter: &cri.ContainerFilter{LabelSelector: map[string]string{labelPodUID: string(uid)}}})
	if err != nil {
		return false
	}
	removed := false
	for _, id := range deadContainers(cs.Containers, k.cfg.GC.DeadPerContainer) {
		if err := k.removeContainer(ctx, id); err != nil {
			k.log.Warn("remove dead container", "id", id, "err", err)
			continue
		}
		k.metrics.gcRemoved.WithLabelValues("container").Inc()
		removed = true
	}
	return removed
}

// removeContainer removes a container and its log file, which the runtime
// leaves behind.
func (k *Kubelet) removeContainer(ctx context.Context, id string) error {
	var logPath string
	if st, err := k.rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id}); err == nil && st.Status != nil {
		logPath = st.Status.LogPath
	}
	if _, err := k.rt.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: id}); err != nil {
		return err
	}
	if logPath != "" {
		_ = os.Remove(logPath)
	}
	return nil
}

// collectImages removes unused images, least recently used first, when the
// image filesystem is above the policy's high threshold.
func (k *Kubelet) collectImages(ctx context.Context, containers []*cri.Container) {
	imgs, err := k.rt.ListImages(ctx, &cri.ListImagesRequest{})
	if err != nil {
		k.log.Warn("image gc: list images", "err", err)
		return
	}
	now := k.clock.Now()
	inUse := map[string]bool{}
	for _, c := range containers {
		inUse[c.ImageRef] = true
		if c.Image != nil {
			inUse[c.Image.Image] = true
		}
	}
	pinned := map[string]bool{}
	for _, ref := range k.cfg.PinnedImages {
		pinned[ref] = true
	}
	records := make([]imageRecord, 0, len(imgs.Images))
	k.imageMu.Lock()
	seen := map[string]bool{}
	for _, img := range imgs.Images {
		seen[img.Id] = true
		rec, ok := k.images[img.Id]
		if !ok {
			rec = imageRecord{id: img.Id, firstSeen: now, lastUsed: now}
		}
		rec.size = img.Size
		rec.pinned = img.Pinned
		for _, tag := range img.RepoTags {
			if pinned[tag] {
				rec.pinned = true
			}
		}
		if inUse[img.Id] {
			rec.lastUsed = now
		}
		k.images[img.Id] = rec
		records = append(records, rec)
	}
	for id := range k.images {
		if !seen[id] {
			delete(k.images, id)
		}
	}
	k.imageMu.Unlock()

	fs, _ := k.imageFs(ctx) // no reading: capacity 0, nothing is freed
	for _, id := range imagesToFree(records, inUse, uint64(fs.capacity), uint64(fs.available), k.cfg.GC, now) {
		if _, err := k.rt.RemoveImage(ctx, &cri.RemoveImageRequest{Image: &cri.ImageSpec{Image: id}}); err != nil {
			k.log.Warn("image gc: remove", "image", id, "err", err)
			continue
		}
		k.metrics.gcRemoved.WithLabelValues("image").Inc()
		k.log.Info("image gc: removed unused image", "image", id)
	}
}
