package kubelet

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerState is what the runtime knows about one container.
type containerState struct {
	id, name, sandboxID      string
	state                    cri.ContainerState
	created, started, finish time.Time
	exitCode                 int32
	reason, message          string
	restartCount             int
	hash                     string
	resources                string // annotationResources: what it was created with
	image, imageRef          string
	termPath                 string
}

func (c *containerState) running() bool { return c.state == cri.ContainerState_CONTAINER_RUNNING }
func (c *containerState) exited() bool  { return c.state == cri.ContainerState_CONTAINER_EXITED }

// podState is the runtime's view of one pod: its sandboxes newest first and
// its containers by name, newest first.
type podState struct {
	sandboxes  []*cri.PodSandbox
	podIP      string
	podIPs     []string
	sandboxOK  bool
	containers map[string][]*containerState
}

// current is the newest sandbox, or nil.
func (s *podState) current() *cri.PodSandbox {
	if len(s.sandboxes) == 0 {
		return nil
	}
	return s.sandboxes[0]
}

// latest is the newest container called name in the current sandbox.
func (s *podState) latest(name string) *containerState {
	sb := s.current()
	for _, c := range s.containers[name] {
		if sb != nil && c.sandboxID == sb.Id {
			return c
		}
	}
	return nil
}

// previous is the container before latest(name), across sandboxes.
func (s *podState) previous(name string) *containerState {
	l := s.latest(name)
	for _, c := range s.containers[name] {
		if c != l && (l == nil || c.created.Before(l.created)) {
			return c
		}
	}
	return nil
}

// restarts is the restart count the next container called name gets.
func (s *podState) nextRestartCount(name string) int {
	if cs := s.containers[name]; len(cs) > 0 {
		return cs[0].restartCount + 1
	}
	return 0
}

func (s *podState) anyRunning() bool {
	for _, cs := range s.containers {
		for _, c := range cs {
			if c.running() {
				return true
			}
		}
	}
	return false
}

// runtimeState reads the pod's sandboxes and containers from the runtime.
func (k *Kubelet) runtimeState(ctx context.Context, uid types.UID) (*podState, error) {
	filter := map[string]string{labelPodUID: string(uid)}
	sb, err := k.rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{Filter: &cri.PodSandboxFilter{LabelSelector: filter}})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	st := &podState{sandboxes: sb.Items, containers: map[string][]*containerState{}}
	sort.Slice(st.sandboxes, func(i, j int) bool { return st.sandboxes[i].CreatedAt > st.sandboxes[j].CreatedAt })
	if cur := st.current(); cur != nil && cur.State == cri.PodSandboxState_SANDBOX_READY {
		status, err := k.rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: cur.Id})
		if err == nil && status.Status != nil {
			st.sandboxOK = status.Status.State == cri.PodSandboxState_SANDBOX_READY
			if n := status.Status.Network; n != nil && n.Ip != "" {
				st.podIP = n.Ip
				st.podIPs = []string{n.Ip}
				for _, ip := range n.AdditionalIps {
					st.podIPs = append(st.podIPs, ip.Ip)
				}
			}
		}
	}
	cs, err := k.rt.ListContainers(ctx, &cri.ListContainersRequest{Filter: &cri.ContainerFilter{LabelSelector: filter}})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs.Containers {
		cst := &containerState{
			id: c.Id, name: c.Labels[labelContainerName], sandboxID: c.PodSandboxId, state: c.State,
			created: time.Unix(0, c.CreatedAt), hash: c.Annotations[annotationHash],
			termPath: c.Annotations[annotationTermPath], resources: c.Annotations[annotationResources],
		}
		cst.restartCount, _ = strconv.Atoi(c.Annotations[annotationRestarts])
		if c.Image != nil {
			cst.image = c.Image.UserSpecifiedImage
			if cst.image == "" {
				cst.image = c.Image.Image
			}
		}
		cst.imageRef = c.ImageRef
		resp, err := k.rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: c.Id})
		if err == nil && resp.Status != nil {
			s := resp.Status
			cst.state = s.State
			cst.exitCode, cst.reason, cst.message = s.ExitCode, s.Reason, s.Message
			if s.StartedAt > 0 {
				cst.started = time.Unix(0, s.StartedAt)
			}
			if s.FinishedAt > 0 {
				cst.finish = time.Unix(0, s.FinishedAt)
			}
			if s.ImageRef != "" {
				cst.imageRef = s.ImageRef
			}
		}
		st.containers[cst.name] = append(st.containers[cst.name], cst)
	}
	for _, list := range st.containers {
		sort.Slice(list, func(i, j int) bool { return list[i].created.After(list[j].created) })
	}
	return st, nil
}

// specContainer finds a container of the pod spec by name (init or app).
func specContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}
