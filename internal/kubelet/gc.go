package kubelet

import (
	"sort"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// GCPolicy bounds what dead containers and unused images may hold on the
// node. The defaults are upstream's kubelet defaults.
type GCPolicy struct {
	// DeadPerContainer is how many exited instances of one container of
	// one pod are kept besides its newest (upstream's
	// --maximum-dead-containers-per-container, 1): enough for
	// `kubectl logs --previous`.
	DeadPerContainer int
	// ImageHighPercent starts image garbage collection when the image
	// filesystem is this full; it frees down to ImageLowPercent.
	ImageHighPercent, ImageLowPercent int
	// ImageMinAge keeps images this young, so a pull is not undone
	// before its container starts.
	ImageMinAge time.Duration
}

// DefaultGCPolicy is upstream's.
var DefaultGCPolicy = GCPolicy{DeadPerContainer: 1, ImageHighPercent: 85, ImageLowPercent: 80, ImageMinAge: 2 * time.Minute}

// deadContainers picks the exited containers to remove: for every
// container name of every pod, the newest instance stays (its exit code
// and finish time drive restarts and status) and so do keep exited ones
// before it; older exited instances go. Running or created instances are
// never picked.
func deadContainers(containers []*cri.Container, keep int) []string {
	type key struct{ uid, name string }
	groups := map[key][]*cri.Container{}
	for _, c := range containers {
		k := key{c.Labels[labelPodUID], c.Labels[labelContainerName]}
		if k.uid == "" || k.name == "" {
			continue // not a pod's container: not ours to judge
		}
		groups[k] = append(groups[k], c)
	}
	var out []string
	for _, list := range groups {
		sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt > list[j].CreatedAt })
		kept := 0
		for _, c := range list[1:] {
			if c.State != cri.ContainerState_CONTAINER_EXITED {
				continue
			}
			if kept < keep {
				kept++
				continue
			}
			out = append(out, c.Id)
		}
	}
	sort.Strings(out)
	return out
}

// deadSandboxes picks the sandboxes to remove: not ready, not their pod's
// newest (which holds the pod's IP and status), and holding no container
// that remains.
func deadSandboxes(sandboxes []*cri.PodSandbox, remaining []*cri.Container) []string {
	newest := map[string]*cri.PodSandbox{}
	for _, s := range sandboxes {
		uid := s.Labels[labelPodUID]
		if cur := newest[uid]; cur == nil || s.CreatedAt > cur.CreatedAt {
			newest[uid] = s
		}
	}
	used := map[string]bool{}
	for _, c := range remaining {
		used[c.PodSandboxId] = true
	}
	var out []string
	for _, s := range sandboxes {
		if s.State == cri.PodSandboxState_SANDBOX_READY || used[s.Id] || newest[s.Labels[labelPodUID]] == s || s.Labels[labelPodUID] == "" {
			continue
		}
		out = append(out, s.Id)
	}
	sort.Strings(out)
	return out
}

// imageRecord is what image GC knows about one image.
type imageRecord struct {
	id     string
	size   uint64
	pinned bool
	// lastUsed is when a container last used it, or when it was first
	// seen if none has.
	lastUsed, firstSeen time.Time
}

// imagesToFree picks the images to remove when the image filesystem
// (capacity and available bytes) is fuller than the high threshold: unused,
// unpinned images older than the minimum age, least recently used first,
// until the usage would fall to the low threshold.
func imagesToFree(images []imageRecord, inUse map[string]bool, capacity, available uint64, p GCPolicy, now time.Time) []string {
	if capacity == 0 || available > capacity {
		return nil
	}
	usedPct := int((capacity - available) * 100 / capacity)
	if usedPct < p.ImageHighPercent {
		return nil
	}
	target := capacity * uint64(100-p.ImageLowPercent) / 100
	if available >= target {
		return nil
	}
	need := target - available
	var candidates []imageRecord
	for _, img := range images {
		if inUse[img.id] || img.pinned || now.Sub(img.firstSeen) < p.ImageMinAge {
			continue
		}
		candidates = append(candidates, img)
	}
	sort.SliceStable(candidates, func(i, j int) bool { return candidates[i].lastUsed.Before(candidates[j].lastUsed) })
	var out []string
	var freed uint64
	for _, img := range candidates {
		if freed >= need {
			break
		}
		out = append(out, img.id)
		freed += img.size
	}
	return out
}
