package kubelet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

	"github.com/skiff-sh/skiff/internal/golden"
	"github.com/skiff-sh/skiff/internal/runtime/memory"
)

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

// scenario is a story told on a memory node: each step (a sync, the clock
// moving, a probe changing its verdict, a deletion) is written to a
// transcript — the runtime calls it made, the pod's status as the API has
// it, the events — that is compared with testdata/scenarios/<name>.txt
// (go test -update rewrites it; review the diff).
type scenario struct {
	*memoryNode
	t      *testing.T
	name   string
	out    strings.Builder
	start  time.Time
	probed chan types.UID
}

func newScenario(t *testing.T, name, story string) *scenario {
	n := newMemoryNode(t)
	s := &scenario{memoryNode: n, t: t, name: name, start: n.clk.Now(), probed: make(chan types.UID, 16)}
	// Probe verdicts come back here instead of waking a pod worker, so
	// every sync is the scenario's own.
	n.k.probes.notify = func(uid types.UID) { s.probed <- uid }
	fmt.Fprintf(&s.out, "# %s\n", story)
	return s
}

// at starts a transcript entry stamped with the fake clock.
func (s *scenario) at(what string) {
	fmt.Fprintf(&s.out, "\n[+%s] %s\n", s.clk.Since(s.start), what)
}

// step moves the clock.
func (s *scenario) step(d time.Duration) { s.clk.Step(d) }

// sync runs one pod sync and writes what it did.
func (s *scenario) sync(pod *v1.Pod) *v1.Pod {
	s.t.Helper()
	s.at("sync")
	got, next := s.memoryNode.sync(s.t, pod)
	s.record(got)
	if next > 0 {
		fmt.Fprintf(&s.out, "  next sync in %s\n", next)
	}
	return got
}

// probe waits for a probe's changed verdict (or its kill of a container).
func (s *scenario) probe() {
	s.t.Helper()
	select {
	case <-s.probed:
		s.at("probe verdict changed")
		s.record(nil)
	case <-time.After(10 * time.Second):
		s.t.Fatalf("%s: no probe verdict within 10 s (real time)", s.name)
	}
}

// delete marks the pod deleted with a grace period, as the API does, and
// syncs it.
func (s *scenario) delete(pod *v1.Pod, grace int64) *v1.Pod {
	s.t.Helper()
	now := metav1.NewTime(s.clk.Now())
	pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds = &now, ptr.To(grace)
	s.k.mu.Lock()
	s.k.pods[pod.UID] = pod
	s.k.mu.Unlock()
	s.at(fmt.Sprintf("deleted with a %d s grace period; sync", grace))
	s.k.syncPod(context.Background(), pod.UID)
	got, err := s.api.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil {
		s.record(nil)
		fmt.Fprintf(&s.out, "  api: %v\n", err)
		return nil
	}
	s.record(got)
	return got
}

// quiet are runtime calls that only read.
var quiet = map[string]bool{"ListPodSandbox": true, "ListContainers": true, "ContainerStatus": true, "PodSandboxStatus": true,
	"ImageStatus": true, "Version": true, "ListImages": true, "ImageFsInfo": true}

// record writes the runtime calls and events since the last entry and,
// for a pod, its status.
func (s *scenario) record(pod *v1.Pod) {
	var calls []string
	for _, c := range s.rt.Calls() {
		if !quiet[strings.SplitN(c, " ", 2)[0]] {
			calls = append(calls, c)
		}
	}
	if len(calls) > 0 {
		fmt.Fprintf(&s.out, "  runtime: %s\n", strings.Join(calls, ", "))
	}
	if pod != nil {
		ready := "?"
		for _, c := range pod.Status.Conditions {
			if c.Type == v1.PodReady {
				ready = string(c.Status)
			}
		}
		fmt.Fprintf(&s.out, "  pod: %s, Ready=%s\n", pod.Status.Phase, ready)
		for _, cs := range append(append([]v1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
			fmt.Fprintf(&s.out, "  %s: %s\n", cs.Name, describe(cs))
		}
	}
	for {
		select {
		case e := <-s.k.events.(*record.FakeRecorder).Events:
			fmt.Fprintf(&s.out, "  event: %s\n", e)
			continue
		default:
		}
		break
	}
}

// describe is one container's status in a line.
func describe(cs v1.ContainerStatus) string {
	var b strings.Builder
	switch st := cs.State; {
	case st.Running != nil:
		b.WriteString("running")
	case st.Waiting != nil:
		b.WriteString("waiting " + st.Waiting.Reason)
	case st.Terminated != nil:
		fmt.Fprintf(&b, "terminated %s exit %d", st.Terminated.Reason, st.Terminated.ExitCode)
	default:
		b.WriteString("no state")
	}
	fmt.Fprintf(&b, ", restarts %d, ready %t", cs.RestartCount, cs.Ready)
	if cs.Started != nil {
		fmt.Fprintf(&b, ", started %t", *cs.Started)
	}
	if t := cs.LastTerminationState.Terminated; t != nil {
		fmt.Fprintf(&b, ", last exit %d", t.ExitCode)
	}
	return b.String()
}

// done compares the transcript with its golden file.
func (s *scenario) done() {
	s.t.Helper()
	golden.Check(s.t, filepath.Join("testdata", "scenarios", s.name+".txt"), s.out.String())
}

func pod(name string, policy v1.RestartPolicy, init []v1.Container, apps ...v1.Container) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.PodSpec{RestartPolicy: policy, InitContainers: init, Containers: apps}}
}

func app(name string) v1.Container { return v1.Container{Name: name, Image: "busybox"} }

func execProbe(cmd string, delay, failures int32) *v1.Probe {
	return &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{cmd}}},
		InitialDelaySeconds: delay, PeriodSeconds: 1, FailureThreshold: failures}
}

// must stops a scenario whose status breaks a rule, whatever the golden
// file says: a file regenerated without reading cannot hide these.
func (s *scenario) must(ok bool, format string, args ...any) {
	s.t.Helper()
	if !ok {
		s.t.Fatalf("%s\ntranscript so far:\n%s", fmt.Sprintf(format, args...), s.out.String())
	}
}

// TestScenarioCrashLoopBackOff: a crashing container restarts at once,
// then waits out a 10 s back-off (CrashLoopBackOff) before its next
// restart, with the restart count and last state reported.
func TestScenarioCrashLoopBackOff(t *testing.T) {
	s := newScenario(t, "crash-loop-back-off", "restartPolicy Always; app exits 3 after 2 s, every time")
	s.rt.Run("app", memory.Program{RunFor: 2 * time.Second, ExitCode: 3})
	p := s.add(t, pod("crasher", v1.RestartPolicyAlways, nil, app("app")))
	p = s.sync(p)
	s.step(3 * time.Second)
	p = s.sync(p)
	s.must(containerStatus(p, "app").RestartCount == 1, "the first crash restarts at once")
	s.step(3 * time.Second)
	p = s.sync(p)
	s.must(containerStatus(p, "app").State.Waiting != nil && containerStatus(p, "app").State.Waiting.Reason == "CrashLoopBackOff", "the second crash backs off")
	s.step(10 * time.Second)
	p = s.sync(p)
	s.must(containerStatus(p, "app").RestartCount == 2, "restarted after the back-off")
	s.done()
}

// TestScenarioRestartPolicies: OnFailure restarts a failed container but
// not a succeeded one; Never restarts nothing and the pod ends Failed.
func TestScenarioRestartPolicies(t *testing.T) {
	s := newScenario(t, "restart-policies", "OnFailure: fails (exit 1) then succeeds; Never: fails (exit 2)")
	s.rt.Run("flaky", memory.Program{RunFor: time.Second, ExitCode: 1})
	s.rt.Run("once", memory.Program{RunFor: time.Second, ExitCode: 2})
	onFailure := s.add(t, pod("on-failure", v1.RestartPolicyOnFailure, nil, app("flaky")))
	never := s.add(t, pod("never", v1.RestartPolicyNever, nil, app("once")))
	onFailure, never = s.sync(onFailure), s.sync(never)
	s.step(2 * time.Second)
	s.rt.Run("flaky", memory.Program{RunFor: time.Second})
	onFailure, never = s.sync(onFailure), s.sync(never)
	s.must(never.Status.Phase == v1.PodFailed, "restartPolicy Never with a failed container: %s", never.Status.Phase)
	s.step(2 * time.Second)
	onFailure = s.sync(onFailure)
	s.must(onFailure.Status.Phase == v1.PodSucceeded, "OnFailure after a success: %s", onFailure.Status.Phase)
	s.done()
}

// TestScenarioInitAndSidecar: init containers run to completion in order;
// a sidecar (an init container with restartPolicy Always) must be running
// before the next one and stays up beside the app.
func TestScenarioInitAndSidecar(t *testing.T) {
	s := newScenario(t, "init-and-sidecar", "init: setup (1 s), proxy (sidecar), migrate (1 s); then app")
	s.rt.Run("setup", memory.Program{RunFor: time.Second})
	s.rt.Run("migrate", memory.Program{RunFor: time.Second})
	proxy := app("proxy")
	proxy.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
	p := s.add(t, pod("web", v1.RestartPolicyAlways, []v1.Container{app("setup"), proxy, app("migrate")}, app("app")))
	for range 5 {
		p = s.sync(p)
		s.step(1500 * time.Millisecond)
	}
	s.must(containerStatus(p, "app").State.Running != nil, "app runs after the init containers")
	s.must(p.Status.Phase == v1.PodRunning, "pod running: %s", p.Status.Phase)
	s.done()
}

// TestScenarioHooksAndGracefulDeletion: a postStart hook runs right after
// the start and a failing one kills the container; a deleted pod's
// preStop hook runs before its stop, and the pod leaves the API once
// nothing runs.
func TestScenarioHooksAndGracefulDeletion(t *testing.T) {
	s := newScenario(t, "hooks-and-graceful-deletion", "postStart and preStop exec hooks; bad-post-start exits 1")
	s.rt.ExecExit("bad-post-start", 1)
	hooked := func(post string) v1.Container {
		c := app("app")
		c.Lifecycle = &v1.Lifecycle{
			PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{post}}},
			PreStop:   &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"pre-stop"}}},
		}
		return c
	}
	good := s.add(t, pod("good", v1.RestartPolicyAlways, nil, hooked("post-start")))
	bad := s.add(t, pod("bad", v1.RestartPolicyAlways, nil, hooked("bad-post-start")))
	good = s.sync(good)
	s.sync(bad)
	s.step(time.Second)
	gone := s.delete(good, 30)
	s.must(gone == nil, "the deleted pod is still in the API after its containers stopped")
	s.done()
}

// TestScenarioProbes: a readiness probe takes a container in and out of
// the Service's endpoints (Ready); a failed liveness probe restarts it; a
// failed startup probe restarts it before liveness ever runs.
func TestScenarioProbes(t *testing.T) {
	s := newScenario(t, "probes", "exec probes every 1 s after a 1 s initial delay, failureThreshold 1")
	ready := app("ready")
	ready.ReadinessProbe = execProbe("ready?", 1, 1)
	p := s.add(t, pod("readiness", v1.RestartPolicyAlways, nil, ready))
	p = s.sync(p)
	s.must(!containerStatus(p, "ready").Ready, "ready before the readiness probe ran")
	s.step(time.Second) // the initial delay ends: the probe passes
	s.probe()
	p = s.sync(p)
	s.must(containerStatus(p, "ready").Ready, "not ready after the readiness probe passed")
	s.rt.ExecExit("ready?", 1)
	s.step(time.Second)
	s.probe()
	p = s.sync(p)
	s.must(!containerStatus(p, "ready").Ready && containerStatus(p, "ready").State.Running != nil, "a failed readiness probe leaves it running, not ready")
	s.k.probes.forget(p.UID)

	alive := app("alive")
	alive.LivenessProbe = execProbe("alive?", 1, 1)
	s.rt.ExecExit("alive?", 1)
	q := s.add(t, pod("liveness", v1.RestartPolicyAlways, nil, alive))
	q = s.sync(q)
	s.step(time.Second)
	s.probe() // failed: the probe stops the container
	q = s.sync(q)
	s.must(containerStatus(q, "alive").RestartCount == 1, "a failed liveness probe restarts the container")
	s.k.probes.forget(q.UID)

	slow := app("slow")
	slow.StartupProbe = execProbe("started?", 1, 1)
	slow.LivenessProbe = execProbe("never-run", 0, 1)
	s.rt.ExecExit("started?", 1)
	r := s.add(t, pod("startup", v1.RestartPolicyAlways, nil, slow))
	r = s.sync(r)
	s.must(containerStatus(r, "slow").Started != nil && !*containerStatus(r, "slow").Started, "started before the startup probe passed")
	s.step(time.Second)
	s.probe()
	r = s.sync(r)
	s.must(containerStatus(r, "slow").RestartCount == 1, "a failed startup probe restarts the container")
	s.k.probes.forget(r.UID)
	s.done()
}
