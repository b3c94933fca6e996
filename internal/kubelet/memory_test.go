package kubelet

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/runtime/memory"
)

var _ RuntimeService = (*memory.Runtime)(nil)

// memoryNode is a kubelet on the in-memory runtime and a fake API, with a
// fake clock: its pod syncs run in milliseconds, without containerd.
type memoryNode struct {
	k   *Kubelet
	rt  *memory.Runtime
	clk *clocktesting.FakeClock
	api *fake.Clientset
}

func newMemoryNode(t *testing.T) *memoryNode {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	rt := memory.New(clk)
	rt.Image("busybox")
	api := fake.NewClientset()
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := New(Config{NodeName: "n1", RootDir: dir, CNIConfDir: filepath.Join(dir, "cni"), ResolvConf: resolv, Clock: clk,
		Informers: informers.NewSharedInformerFactory(api, 0), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, api, rt)
	if err != nil {
		t.Fatal(err)
	}
	k.events = record.NewFakeRecorder(1000)
	k.synced = true
	return &memoryNode{k: k, rt: rt, clk: clk, api: api}
}

// add puts pod on the node as the API would: stored, bound, seen.
func (n *memoryNode) add(t *testing.T, pod *v1.Pod) *v1.Pod {
	t.Helper()
	pod.Namespace, pod.UID, pod.Spec.NodeName = "default", types.UID("uid-"+pod.Name), "n1"
	pod.Status.Phase = v1.PodPending
	created, err := n.api.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.k.mu.Lock()
	n.k.pods[created.UID] = created
	n.k.mu.Unlock()
	return created
}

// sync runs one pod sync and returns the pod as the API now has it.
func (n *memoryNode) sync(t *testing.T, pod *v1.Pod) (*v1.Pod, time.Duration) {
	t.Helper()
	next := n.k.syncPod(context.Background(), pod.UID)
	got, err := n.api.CoreV1().Pods("default").Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.k.mu.Lock()
	n.k.pods[got.UID] = got
	n.k.mu.Unlock()
	return got, next
}

func containerStatus(p *v1.Pod, name string) v1.ContainerStatus {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			return s
		}
	}
	return v1.ContainerStatus{}
}

// TestMemoryRuntimeRestartBackOff runs a crashing container on the
// in-memory runtime: it starts, crashes, restarts at once, crashes again
// and then waits out a 10 s back-off (CrashLoopBackOff) before its next
// restart, with the restart count and last state reported.
func TestMemoryRuntimeRestartBackOff(t *testing.T) {
	n := newMemoryNode(t)
	n.rt.Run("app", memory.Program{RunFor: 2 * time.Second, ExitCode: 3})
	pod := n.add(t, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "crasher"}, Spec: v1.PodSpec{RestartPolicy: v1.RestartPolicyAlways,
		Containers: []v1.Container{{Name: "app", Image: "busybox"}}}})

	pod, _ = n.sync(t, pod)
	if s := containerStatus(pod, "app"); s.State.Running == nil || pod.Status.Phase != v1.PodRunning {
		t.Fatalf("after the first sync: phase %s, app %+v", pod.Status.Phase, s.State)
	}
	n.clk.Step(3 * time.Second) // it crashed at 2 s
	pod, _ = n.sync(t, pod)
	if s := containerStatus(pod, "app"); s.RestartCount != 1 || s.State.Running == nil || s.LastTerminationState.Terminated == nil || s.LastTerminationState.Terminated.ExitCode != 3 {
		t.Fatalf("after the first crash: %+v", s)
	}
	n.clk.Step(3 * time.Second) // crashed again
	pod, next := n.sync(t, pod)
	s := containerStatus(pod, "app")
	if s.State.Waiting == nil || s.State.Waiting.Reason != "CrashLoopBackOff" || s.RestartCount != 1 {
		t.Fatalf("after the second crash: want CrashLoopBackOff, got %+v", s)
	}
	if next <= 0 || next > 10*time.Second {
		t.Errorf("next sync in %s, want within the 10 s back-off", next)
	}
	n.clk.Step(10 * time.Second)
	pod, _ = n.sync(t, pod)
	if s := containerStatus(pod, "app"); s.State.Running == nil || s.RestartCount != 2 {
		t.Fatalf("after the back-off: %+v", s)
	}
}

// TestMemoryRuntimeInitThenGracefulDelete: init containers run to
// completion in order before the app starts; a deleted pod's containers
// are stopped and the pod is removed from the API.
func TestMemoryRuntimeInitThenGracefulDelete(t *testing.T) {
	n := newMemoryNode(t)
	n.rt.Run("setup", memory.Program{RunFor: time.Second})
	n.rt.Run("migrate", memory.Program{RunFor: time.Second})
	pod := n.add(t, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: v1.PodSpec{RestartPolicy: v1.RestartPolicyAlways,
		InitContainers: []v1.Container{{Name: "setup", Image: "busybox"}, {Name: "migrate", Image: "busybox"}},
		Containers:     []v1.Container{{Name: "app", Image: "busybox"}}}})

	var order []string
	for range 6 {
		pod, _ = n.sync(t, pod)
		for _, c := range n.rt.Calls() {
			if len(c) > len("StartContainer ") && c[:len("StartContainer ")] == "StartContainer " {
				order = append(order, c[len("StartContainer "):])
			}
		}
		n.clk.Step(1500 * time.Millisecond)
	}
	if want := []string{"setup", "migrate", "app"}; !slices.Equal(order, want) {
		t.Fatalf("containers started in order %v, want %v", order, want)
	}
	if s := containerStatus(pod, "app"); s.State.Running == nil {
		t.Fatalf("app: %+v", s.State)
	}

	// Deleted with a grace period: the API marks it; the node stops it.
	now := metav1.NewTime(n.clk.Now())
	pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds = &now, ptr.To[int64](30)
	n.k.mu.Lock()
	n.k.pods[pod.UID] = pod
	n.k.mu.Unlock()
	n.k.syncPod(context.Background(), pod.UID)
	calls := n.rt.Calls()
	if !slices.Contains(calls, "StopContainer app") {
		t.Errorf("the deleted pod's app was not stopped: calls %v", calls)
	}
	if _, err := n.api.CoreV1().Pods("default").Get(context.Background(), "web", metav1.GetOptions{}); err == nil {
		t.Error("the pod is still in the API after its containers stopped")
	}
}

// TestMemoryRuntimeHooks: a postStart hook runs right after the start and
// a failing one kills the container; a preStop hook runs before the stop
// of a deleted pod.
func TestMemoryRuntimeHooks(t *testing.T) {
	n := newMemoryNode(t)
	n.rt.ExecExit("bad-post-start", 1)
	hooked := func(post, pre string) v1.Container {
		return v1.Container{Name: "app", Image: "busybox", Lifecycle: &v1.Lifecycle{
			PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{post}}},
			PreStop:   &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{pre}}},
		}}
	}
	good := n.add(t, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "good"}, Spec: v1.PodSpec{Containers: []v1.Container{hooked("post-start", "pre-stop")}}})
	good, _ = n.sync(t, good)
	calls := n.rt.Calls()
	if i, j := slices.Index(calls, "StartContainer app"), slices.Index(calls, "ExecSync post-start"); i < 0 || j < i {
		t.Errorf("postStart did not run after the start: %v", calls)
	}
	if s := containerStatus(good, "app"); s.State.Running == nil {
		t.Errorf("app with a good postStart hook: %+v", s.State)
	}

	bad := n.add(t, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: v1.PodSpec{Containers: []v1.Container{hooked("bad-post-start", "pre-stop")}}})
	n.sync(t, bad)
	calls = n.rt.Calls()
	if i, j := slices.Index(calls, "ExecSync bad-post-start"), slices.Index(calls, "StopContainer app"); i < 0 || j < i {
		t.Errorf("a failed postStart hook did not stop the container: %v", calls)
	}

	now := metav1.NewTime(n.clk.Now())
	good.DeletionTimestamp, good.DeletionGracePeriodSeconds = &now, ptr.To[int64](30)
	n.k.mu.Lock()
	n.k.pods[good.UID] = good
	n.k.mu.Unlock()
	n.k.syncPod(context.Background(), good.UID)
	calls = n.rt.Calls()
	if i, j := slices.Index(calls, "ExecSync pre-stop"), slices.Index(calls, "StopContainer app"); i < 0 || j < i {
		t.Errorf("preStop did not run before the stop: %v", calls)
	}
}
