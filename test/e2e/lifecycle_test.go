package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// A failing liveness probe restarts the container; a readiness probe
// gates Ready until it passes.
func TestProbes(t *testing.T) {
	ns := namespace(t)
	p := busyboxPod(ns, "probed", `touch /tmp/alive; while true; do sleep 1; done`)
	c := &p.Spec.Containers[0]
	c.LivenessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"test", "-f", "/tmp/alive"}}}, PeriodSeconds: 1, FailureThreshold: 2}
	c.ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"test", "-f", "/tmp/ready"}}}, PeriodSeconds: 1}
	createPod(t, p)
	poll.Eventually(t, 60*time.Second, func() error {
		got := getPod(t, ns, "probed")
		if got.Status.Phase != v1.PodRunning || len(got.Status.ContainerStatuses) == 0 || got.Status.ContainerStatuses[0].State.Running == nil {
			return fmt.Errorf("not running: %+v", got.Status)
		}
		return nil
	})
	// Running for a few probe periods without /tmp/ready: never Ready.
	time.Sleep(3 * time.Second)
	if got := getPod(t, ns, "probed"); podReady(got) || got.Status.ContainerStatuses[0].Ready {
		t.Fatalf("pod Ready although its readiness probe fails: %+v", got.Status.Conditions)
	}
	cl.kubectl(t, "-n", ns, "exec", "probed", "--", "touch", "/tmp/ready")
	waitRunningReady(t, ns, "probed")

	cl.kubectl(t, "-n", ns, "exec", "probed", "--", "rm", "/tmp/alive")
	poll.Eventually(t, 60*time.Second, func() error {
		got := getPod(t, ns, "probed")
		if got.Status.ContainerStatuses[0].RestartCount < 1 {
			return fmt.Errorf("restartCount %d", got.Status.ContainerStatuses[0].RestartCount)
		}
		return nil
	})
	ev := podEvents(t, ns, "probed")
	if !hasEvent(ev, "Unhealthy", "Liveness probe failed") || !hasEvent(ev, "Killing", "failed liveness probe, will be restarted") {
		t.Errorf("events lack Unhealthy/Killing for the liveness probe: %v", reasons(ev))
	}
	// The restarted container has no /tmp/ready: not Ready again.
	poll.Eventually(t, 30*time.Second, func() error {
		if got := getPod(t, ns, "probed"); podReady(got) {
			return fmt.Errorf("still Ready after restart")
		}
		return nil
	})
}

func reasons(ev []v1.Event) []string {
	var out []string
	for _, e := range ev {
		out = append(out, e.Reason+": "+e.Message)
	}
	return out
}

// A container that keeps failing is restarted with back-off and shows
// CrashLoopBackOff.
func TestCrashLoopBackOff(t *testing.T) {
	ns := namespace(t)
	createPod(t, busyboxPod(ns, "crasher", `echo crashing; exit 2`))
	poll.Eventually(t, 60*time.Second, func() error {
		got := getPod(t, ns, "crasher")
		if len(got.Status.ContainerStatuses) == 0 {
			return fmt.Errorf("no status yet")
		}
		cs := got.Status.ContainerStatuses[0]
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.RestartCount < 1 {
			return fmt.Errorf("state %+v restarts %d", cs.State, cs.RestartCount)
		}
		if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 2 {
			return fmt.Errorf("lastState %+v", cs.LastTerminationState)
		}
		if !strings.Contains(cs.State.Waiting.Message, "back-off 10s restarting failed container=main") && !strings.Contains(cs.State.Waiting.Message, "back-off 20s") {
			return fmt.Errorf("waiting message %q", cs.State.Waiting.Message)
		}
		return nil
	})
	if out := cl.kubectl(t, "-n", ns, "get", "pod", "crasher"); !strings.Contains(out, "CrashLoopBackOff") {
		t.Errorf("kubectl get pod: %s", out)
	}
	if out := cl.kubectl(t, "-n", ns, "logs", "crasher", "--previous"); !strings.Contains(out, "crashing") {
		t.Errorf("logs --previous: %q", out)
	}
	if !hasEvent(podEvents(t, ns, "crasher"), "BackOff", "Back-off restarting failed container main") {
		t.Errorf("no BackOff event: %v", reasons(podEvents(t, ns, "crasher")))
	}

	// Dead containers do not pile up: from the second restart on the runtime
	// holds the newest instance and one before it (for --previous).
	uid := string(getPod(t, ns, "crasher").UID)
	poll.Eventually(t, 60*time.Second, func() error {
		cs := getPod(t, ns, "crasher").Status.ContainerStatuses[0]
		if cs.RestartCount < 2 {
			return fmt.Errorf("restarts %d", cs.RestartCount)
		}
		return nil
	})
	out, err := exec.Command("ctr", "--address", filepath.Join(cl.dataDir, "agent", "containerd", "containerd.sock"), "-n", "k8s.io",
		"containers", "ls", "-q", `labels."io.kubernetes.pod.uid"==`+uid+`,labels."io.kubernetes.container.name"==main`).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr containers ls: %v %s", err, out)
	}
	if ids := strings.Fields(string(out)); len(ids) != 2 {
		t.Errorf("after 2 restarts the runtime holds %d containers of the pod, want 2: %v", len(ids), ids)
	}
	if out := cl.kubectl(t, "-n", ns, "logs", "crasher", "--previous"); !strings.Contains(out, "crashing") {
		t.Errorf("logs --previous after garbage collection: %q", out)
	}
	logs, _ := filepath.Glob(filepath.Join(cl.dataDir, "agent", "logs", ns+"_crasher_"+uid, "main", "*.log"))
	if len(logs) != 2 {
		t.Errorf("log files of the pod: %v, want the two kept instances'", logs)
	}
}

// A container over its memory limit is OOM-killed and says so.
func TestOOMKilled(t *testing.T) {
	ns := namespace(t)
	// tail keeps its whole input when there is no newline: 200 MiB of
	// zeroes against a 32 MiB limit.
	p := busyboxPod(ns, "hog", `head -c 200m /dev/zero | tail > /dev/null`)
	p.Spec.RestartPolicy = v1.RestartPolicyNever
	p.Spec.Containers[0].Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse("32Mi")}
	createPod(t, p)
	poll.Eventually(t, 60*time.Second, func() error {
		got := getPod(t, ns, "hog")
		if got.Status.Phase != v1.PodFailed || len(got.Status.ContainerStatuses) == 0 {
			return fmt.Errorf("phase %s", got.Status.Phase)
		}
		term := got.Status.ContainerStatuses[0].State.Terminated
		if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
			return fmt.Errorf("terminated %+v", term)
		}
		return nil
	})
}

// Init containers run one after another before the app; a native sidecar
// starts before later init containers and keeps running.
func TestInitAndSidecarOrder(t *testing.T) {
	ns := namespace(t)
	p := busyboxPod(ns, "ordered", `cat /work/order; while true; do sleep 1; done`)
	p.Spec.Volumes = []v1.Volume{{Name: "work", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	mount := []v1.VolumeMount{{Name: "work", MountPath: "/work"}}
	p.Spec.Containers[0].VolumeMounts = mount
	p.Spec.InitContainers = []v1.Container{
		{Name: "first", Image: busyboxImage, Command: []string{"sh", "-c", "echo first >> /work/order"}, VolumeMounts: mount},
		{Name: "sidecar", Image: busyboxImage, RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways), Command: []string{"sh", "-c", "echo sidecar >> /work/order; while true; do sleep 1; done"}, VolumeMounts: mount},
		{Name: "second", Image: busyboxImage, Command: []string{"sh", "-c", "sleep 1; echo second >> /work/order"}, VolumeMounts: mount},
	}
	createPod(t, p)
	got := waitRunningReady(t, ns, "ordered")
	poll.Eventually(t, 20*time.Second, func() error {
		out, err := cl.skiff("kubectl", "-n", ns, "logs", "ordered", "-c", "main")
		if err != nil || out != "first\nsidecar\nsecond\n" {
			return fmt.Errorf("order: %v %q", err, out)
		}
		return nil
	})
	got = getPod(t, ns, "ordered")
	st := got.Status.InitContainerStatuses
	if len(st) != 3 || st[0].State.Terminated == nil || st[0].State.Terminated.Reason != "Completed" || st[1].State.Running == nil || st[2].State.Terminated == nil {
		t.Errorf("init container statuses: %+v", st)
	}
	// Init containers that completed are reported ready, as upstream.
	if len(st) == 3 && (!st[0].Ready || !st[1].Ready || !st[2].Ready) {
		t.Errorf("init containers ready: %v %v %v", st[0].Ready, st[1].Ready, st[2].Ready)
	}
}

// Deleting a pod runs its preStop hook, then SIGTERM, and removes the pod
// once its containers are gone.
func TestGracefulTerminationWithPreStop(t *testing.T) {
	ns := namespace(t)
	dir := t.TempDir()
	p := busyboxPod(ns, "stopper", `trap 'echo sigterm >> /record/log; exit 0' TERM; while true; do sleep 0.2; done`)
	p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](20)
	p.Spec.Volumes = []v1.Volume{{Name: "record", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: dir}}}}
	c := &p.Spec.Containers[0]
	c.VolumeMounts = []v1.VolumeMount{{Name: "record", MountPath: "/record"}}
	c.Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "echo prestop >> /record/log"}}}}
	createPod(t, p)
	waitRunningReady(t, ns, "stopper")
	if err := cl.client.CoreV1().Pods(ns).Delete(context.Background(), "stopper", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got := getPod(t, ns, "stopper")
	if got.DeletionTimestamp == nil || got.DeletionGracePeriodSeconds == nil || *got.DeletionGracePeriodSeconds != 20 {
		t.Errorf("graceful deletion not recorded: %v %v", got.DeletionTimestamp, got.DeletionGracePeriodSeconds)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		_, err := cl.client.CoreV1().Pods(ns).Get(context.Background(), "stopper", getOpts)
		if err == nil {
			return fmt.Errorf("pod still exists")
		}
		return nil
	})
	b, _ := os.ReadFile(filepath.Join(dir, "log"))
	if string(b) != "prestop\nsigterm\n" {
		t.Errorf("record = %q, want preStop before SIGTERM", b)
	}
}

// Containers that cannot start say why, with upstream's reasons, and the
// node goes on running the pods that can.
func TestContainersThatCannotStart(t *testing.T) {
	ns := namespace(t)
	createPod(t, &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nocommand", Namespace: ns},
		Spec: v1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []v1.Container{{Name: "main", Image: busyboxImage, Command: []string{"/no/such/binary"}}}},
	})
	noSecret := busyboxPod(ns, "nosecret", "sleep 3600")
	noSecret.Spec.Containers[0].Env = []v1.EnvVar{{Name: "PW", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{
		LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Key: "pw"}}}}
	createPod(t, noSecret)
	createPod(t, busyboxPod(ns, "fine", "while true; do sleep 1; done"))

	waitRunningReady(t, ns, "fine")
	poll.Eventually(t, 60*time.Second, func() error {
		cs := getPod(t, ns, "nocommand").Status.ContainerStatuses
		if len(cs) == 0 || cs[0].State.Waiting == nil {
			return fmt.Errorf("statuses %+v", cs)
		}
		if r := cs[0].State.Waiting.Reason; r != "RunContainerError" && r != "CrashLoopBackOff" {
			return fmt.Errorf("waiting reason %q", r)
		}
		if !hasEvent(podEvents(t, ns, "nocommand"), "Failed", "no such file or directory") {
			return fmt.Errorf("events %v", reasons(podEvents(t, ns, "nocommand")))
		}
		return nil
	})
	poll.Eventually(t, 60*time.Second, func() error {
		cs := getPod(t, ns, "nosecret").Status.ContainerStatuses
		if len(cs) == 0 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "CreateContainerConfigError" ||
			!strings.Contains(cs[0].State.Waiting.Message, `secret "absent" not found`) {
			return fmt.Errorf("statuses %+v", cs)
		}
		return nil
	})
	// Once the secret exists the pod starts.
	if _, err := cl.client.CoreV1().Secrets(ns).Create(context.Background(), &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "absent"},
		StringData: map[string]string{"pw": "late"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunningReady(t, ns, "nosecret")
}

// TestLogWithoutFinalNewline checks that output whose last line has no
// newline reaches kubectl logs and, for a failed container with
// FallbackToLogsOnError, the termination message.
func TestLogWithoutFinalNewline(t *testing.T) {
	ns := namespace(t)
	p := busyboxPod(ns, "nonl", `printf 'first\nlast'; exit 3`)
	p.Spec.RestartPolicy = v1.RestartPolicyNever
	p.Spec.Containers[0].TerminationMessagePolicy = v1.TerminationMessageFallbackToLogsOnError
	createPod(t, p)
	poll.Eventually(t, 60*time.Second, func() error {
		got := getPod(t, ns, "nonl")
		if got.Status.Phase != v1.PodFailed || len(got.Status.ContainerStatuses) == 0 || got.Status.ContainerStatuses[0].State.Terminated == nil {
			return fmt.Errorf("phase %s", got.Status.Phase)
		}
		if msg := got.Status.ContainerStatuses[0].State.Terminated.Message; msg != "first\nlast" {
			return fmt.Errorf("termination message %q", msg)
		}
		return nil
	})
	out, err := cl.skiff("kubectl", "-n", ns, "logs", "nonl")
	if err != nil || out != "first\nlast" {
		t.Errorf("kubectl logs: %q %v", out, err)
	}
}

// TestActiveDeadline: a pod running past spec.activeDeadlineSeconds is
// stopped and ends Failed with reason DeadlineExceeded.
func TestActiveDeadline(t *testing.T) {
	ns := namespace(t)
	p := busyboxPod(ns, "deadline", `while true; do sleep 1; done`)
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](3)
	createPod(t, p)
	poll.Eventually(t, 60*time.Second, func() error {
		got := getPod(t, ns, "deadline")
		if got.Status.Phase != v1.PodFailed || got.Status.Reason != "DeadlineExceeded" {
			return fmt.Errorf("phase %s reason %q", got.Status.Phase, got.Status.Reason)
		}
		for _, cs := range got.Status.ContainerStatuses {
			if cs.State.Running != nil {
				return fmt.Errorf("container %s still running", cs.Name)
			}
		}
		return nil
	})
}
