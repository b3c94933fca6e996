package kubelet

import (
	"reflect"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func ctr(id, uid, name string, created int64, state cri.ContainerState) *cri.Container {
	return &cri.Container{Id: id, PodSandboxId: "sb-" + uid, CreatedAt: created, State: state,
		Labels: map[string]string{labelPodUID: uid, labelContainerName: name}}
}

func TestDeadContainers(t *testing.T) {
	exited, running := cri.ContainerState_CONTAINER_EXITED, cri.ContainerState_CONTAINER_RUNNING
	cases := []struct {
		name       string
		containers []*cri.Container
		keep       int
		want       []string
	}{
		{"a lone exited container is the newest: kept", []*cri.Container{ctr("a1", "p", "app", 1, exited)}, 1, nil},
		{"running newest keeps one exited for --previous", []*cri.Container{
			ctr("a3", "p", "app", 3, running), ctr("a2", "p", "app", 2, exited), ctr("a1", "p", "app", 1, exited),
		}, 1, []string{"a1"}},
		{"crash loop: newest exited plus one more", []*cri.Container{
			ctr("a4", "p", "app", 4, exited), ctr("a3", "p", "app", 3, exited), ctr("a2", "p", "app", 2, exited), ctr("a1", "p", "app", 1, exited),
		}, 1, []string{"a1", "a2"}},
		{"keep zero removes every older exited one", []*cri.Container{
			ctr("a3", "p", "app", 3, running), ctr("a2", "p", "app", 2, exited),
		}, 0, []string{"a2"}},
		{"names and pods are counted apart", []*cri.Container{
			ctr("a2", "p", "app", 2, exited), ctr("a1", "p", "app", 1, exited),
			ctr("s2", "p", "side", 2, exited), ctr("s1", "p", "side", 1, exited),
			ctr("b2", "q", "app", 2, exited), ctr("b1", "q", "app", 1, exited),
		}, 0, []string{"a1", "b1", "s1"}},
		{"an older running container is never removed", []*cri.Container{
			ctr("a3", "p", "app", 3, exited), ctr("a2", "p", "app", 2, running), ctr("a1", "p", "app", 1, exited),
		}, 0, []string{"a1"}},
		{"containers without pod labels are not ours", []*cri.Container{
			{Id: "x1", CreatedAt: 1, State: exited}, {Id: "x2", CreatedAt: 2, State: exited},
		}, 0, nil},
	}
	for _, c := range cases {
		if got := deadContainers(c.containers, c.keep); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: removes %v, want %v", c.name, got, c.want)
		}
	}
}

func TestDeadSandboxes(t *testing.T) {
	sb := func(id, uid string, created int64, ready bool) *cri.PodSandbox {
		s := &cri.PodSandbox{Id: id, CreatedAt: created, State: cri.PodSandboxState_SANDBOX_NOTREADY, Labels: map[string]string{labelPodUID: uid}}
		if ready {
			s.State = cri.PodSandboxState_SANDBOX_READY
		}
		return s
	}
	sandboxes := []*cri.PodSandbox{
		sb("p-new", "p", 3, true), sb("p-old", "p", 2, false), sb("p-older", "p", 1, false),
		sb("q-only", "q", 1, false), // newest of its pod: holds the final status
		sb("r-old-ready", "r", 1, true), sb("r-new", "r", 2, false),
	}
	remaining := []*cri.Container{{Id: "c", PodSandboxId: "p-older"}}
	if got, want := deadSandboxes(sandboxes, remaining), []string{"p-old"}; !reflect.DeepEqual(got, want) {
		t.Errorf("removes %v, want %v", got, want)
	}
}

func TestImagesToFree(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	old := now.Add(-time.Hour)
	img := func(id string, size uint64, lastUsed time.Time) imageRecord {
		return imageRecord{id: id, size: size, lastUsed: lastUsed, firstSeen: old}
	}
	images := []imageRecord{
		img("used", 300, old),
		img("lru", 100, old.Add(1*time.Minute)),
		img("mru", 100, old.Add(3*time.Minute)),
		img("mid", 100, old.Add(2*time.Minute)),
		{id: "pinned", size: 500, lastUsed: old, firstSeen: old, pinned: true},
		{id: "fresh", size: 500, lastUsed: now, firstSeen: now.Add(-time.Minute)},
	}
	inUse := map[string]bool{"used": true}
	p := DefaultGCPolicy
	cases := []struct {
		name                string
		capacity, available uint64
		want                []string
	}{
		{"below the high threshold: nothing", 1000, 200, nil},
		{"at 85%: free to 80%, least recently used first", 1000, 150, []string{"lru"}},
		{"full: frees 20% of capacity and stops", 1000, 0, []string{"lru", "mid"}},
		{"not enough to free: every candidate, never used or pinned or fresh ones", 2000, 0, []string{"lru", "mid", "mru"}},
		{"no filesystem reading: nothing", 0, 0, nil},
	}
	for _, c := range cases {
		if got := imagesToFree(images, inUse, c.capacity, c.available, p, now); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: removes %v, want %v", c.name, got, c.want)
		}
	}
}
