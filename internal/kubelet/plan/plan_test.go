package plan

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/golden"

	v1 "k8s.io/api/core/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// run is one container run the runtime reports: its name, "running" or
// "exited <code>", and, for a container created from an older spec,
// stale.
type run struct {
	name  string
	state string
	stale bool
}

// scenario is a pod, what the runtime reports of its current sandbox, and
// the restart back-off left per container.
type scenario struct {
	name    string
	pod     *v1.Pod
	runs    []run
	backoff map[string]time.Duration
}

func container(name string) v1.Container { return v1.Container{Name: name, Image: "busybox"} }

func sidecar(name string) v1.Container {
	c := container(name)
	c.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
	return c
}

func podOf(policy v1.RestartPolicy, init []v1.Container, apps ...v1.Container) *v1.Pod {
	return &v1.Pod{Spec: v1.PodSpec{RestartPolicy: policy, InitContainers: init, Containers: apps}}
}

// stateOf builds the runtime's view: one ready sandbox holding the runs.
func stateOf(pod *v1.Pod, runs []run) *PodState {
	st := &PodState{Sandboxes: []*cri.PodSandbox{{Id: "sb1"}}, SandboxOK: true, Containers: map[string][]*ContainerState{}}
	for _, r := range runs {
		cs := &ContainerState{ID: "c-" + r.name, Name: r.name, SandboxID: "sb1", Finished: time.Unix(1000, 0)}
		if c := SpecContainer(pod, r.name); c != nil {
			cs.Hash = ContainerHash(c)
		}
		if r.stale {
			cs.Hash = "0ld"
		}
		if r.state == "running" {
			cs.State = cri.ContainerState_CONTAINER_RUNNING
		} else {
			cs.State = cri.ContainerState_CONTAINER_EXITED
			fmt.Sscanf(r.state, "exited %d", &cs.ExitCode)
		}
		st.Containers[r.name] = append(st.Containers[r.name], cs)
	}
	return st
}

// render is the plan as the scenario files show it.
func render(s scenario, p ContainerPlan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n", s.name)
	fmt.Fprintf(&b, "restartPolicy: %s\n", s.pod.Spec.RestartPolicy)
	for _, r := range s.runs {
		stale := ""
		if r.stale {
			stale = " (older spec)"
		}
		fmt.Fprintf(&b, "runtime: %s %s%s\n", r.name, r.state, stale)
	}
	b.WriteString("----\n")
	for _, a := range p.Actions {
		fmt.Fprintf(&b, "%s %s", a.Kind, a.Container.Name)
		if a.InitIndex >= 0 {
			fmt.Fprintf(&b, " (init %d)", a.InitIndex)
		}
		if a.Kind == ActBackOff {
			fmt.Fprintf(&b, " for %s", a.Wait)
		}
		if a.Kind == ActStart && a.Last != nil {
			fmt.Fprintf(&b, " (restart after exit %d)", a.Last.ExitCode)
		}
		b.WriteString("\n")
	}
	if p.Next > 0 {
		fmt.Fprintf(&b, "look again in %s\n", p.Next)
	}
	if p.Terminal {
		b.WriteString("pod done\n")
	}
	return b.String()
}

// TestContainerPlans runs the container sync's rules over scenarios; each
// plan is compared with testdata/containers/<name>.txt (go test
// ./internal/kubelet -run ContainerPlans -update rewrites them, to review
// as a diff).
func TestContainerPlans(t *testing.T) {
	always, onFailure, never := v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever
	twoInit := []v1.Container{container("setup"), container("migrate")}
	debug := func(p *v1.Pod) *v1.Pod {
		p.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debugger", Image: "busybox"}}}
		return p
	}
	scenarios := []scenario{
		{name: "new-pod-first-init-container", pod: podOf(always, twoInit, container("app"))},
		{name: "init-container-running-waits", pod: podOf(always, twoInit, container("app")), runs: []run{{"setup", "running", false}}},
		{name: "init-containers-in-order", pod: podOf(always, twoInit, container("app")), runs: []run{{"setup", "exited 0", false}}},
		{name: "init-done-apps-start", pod: podOf(always, twoInit, container("app"), container("log")), runs: []run{{"setup", "exited 0", false}, {"migrate", "exited 0", false}}},
		{name: "init-failed-never-fails-pod", pod: podOf(never, twoInit, container("app")), runs: []run{{"setup", "exited 1", false}}},
		{name: "init-failed-onfailure-backs-off", pod: podOf(onFailure, twoInit, container("app")), runs: []run{{"setup", "exited 1", false}},
			backoff: map[string]time.Duration{"setup": 10 * time.Second}},
		{name: "init-failed-onfailure-restarts", pod: podOf(onFailure, twoInit, container("app")), runs: []run{{"setup", "exited 1", false}}},
		{name: "sidecar-starts-before-next-init", pod: podOf(always, []v1.Container{sidecar("proxy"), container("setup")}, container("app"))},
		{name: "sidecar-up-next-init", pod: podOf(always, []v1.Container{sidecar("proxy"), container("setup")}, container("app")), runs: []run{{"proxy", "running", false}}},
		{name: "sidecar-crashed-restarts", pod: podOf(never, []v1.Container{sidecar("proxy")}, container("app")),
			runs: []run{{"proxy", "exited 2", false}, {"app", "running", false}}},
		{name: "always-crash-backs-off", pod: podOf(always, nil, container("app")), runs: []run{{"app", "exited 1", false}},
			backoff: map[string]time.Duration{"app": 20 * time.Second}},
		{name: "always-restarts-after-back-off", pod: podOf(always, nil, container("app")), runs: []run{{"app", "exited 0", false}}},
		{name: "onfailure-success-is-done", pod: podOf(onFailure, nil, container("app")), runs: []run{{"app", "exited 0", false}}},
		{name: "never-one-done-one-running", pod: podOf(never, nil, container("a"), container("b")), runs: []run{{"a", "exited 1", false}, {"b", "running", false}}},
		{name: "never-all-exited-is-done", pod: podOf(never, nil, container("a"), container("b")), runs: []run{{"a", "exited 1", false}, {"b", "exited 0", false}}},
		{name: "changed-spec-replaced", pod: podOf(always, nil, container("app"), container("log")), runs: []run{{"app", "running", true}, {"log", "running", false}}},
		{name: "ephemeral-runs-once", pod: debug(podOf(always, nil, container("app"))), runs: []run{{"app", "running", false}}},
		{name: "ephemeral-not-restarted", pod: debug(podOf(always, nil, container("app"))), runs: []run{{"app", "running", false}, {"debugger", "exited 0", false}}},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			p := Containers(s.pod, stateOf(s.pod, s.runs), func(c *v1.Container, _ *ContainerState) time.Duration { return s.backoff[c.Name] })
			got := render(s, p)
			golden.Check(t, filepath.Join("testdata", "containers", s.name+".txt"), got)
		})
	}
}
