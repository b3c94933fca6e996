package plan

import (
	"encoding/json"
	"hash/fnv"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerState is what the runtime knows about one container.
type ContainerState struct {
	ID, Name, SandboxID        string
	State                      cri.ContainerState
	Created, Started, Finished time.Time
	ExitCode                   int32
	Reason, Message            string
	RestartCount               int
	Hash                       string
	Resources                  string // the resources it was created with (its io.skiff.container.resources annotation)
	Image, ImageRef            string
	TermPath                   string
}

func (c *ContainerState) Running() bool { return c.State == cri.ContainerState_CONTAINER_RUNNING }
func (c *ContainerState) Exited() bool  { return c.State == cri.ContainerState_CONTAINER_EXITED }

// PodState is the runtime's view of one pod: its sandboxes newest first and
// its containers by name, newest first.
type PodState struct {
	Sandboxes  []*cri.PodSandbox
	PodIP      string
	PodIPs     []string
	SandboxOK  bool
	Containers map[string][]*ContainerState
}

// Current is the newest sandbox, or nil.
func (s *PodState) Current() *cri.PodSandbox {
	if len(s.Sandboxes) == 0 {
		return nil
	}
	return s.Sandboxes[0]
}

// Latest is the newest container called name in the current sandbox.
func (s *PodState) Latest(name string) *ContainerState {
	sb := s.Current()
	for _, c := range s.Containers[name] {
		if sb != nil && c.SandboxID == sb.Id {
			return c
		}
	}
	return nil
}

// Previous is the container before Latest(name), across sandboxes.
func (s *PodState) Previous(name string) *ContainerState {
	l := s.Latest(name)
	for _, c := range s.Containers[name] {
		if c != l && (l == nil || c.Created.Before(l.Created)) {
			return c
		}
	}
	return nil
}

// NextRestartCount is the restart count the next container called name gets.
func (s *PodState) NextRestartCount(name string) int {
	if cs := s.Containers[name]; len(cs) > 0 {
		return cs[0].RestartCount + 1
	}
	return 0
}

func (s *PodState) AnyRunning() bool {
	for _, cs := range s.Containers {
		for _, c := range cs {
			if c.Running() {
				return true
			}
		}
	}
	return false
}

// SpecContainer finds a container of the pod spec by name (init or app).
func SpecContainer(pod *v1.Pod, name string) *v1.Container {
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

func IsSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// ContainerHash identifies a container's spec; a running container whose
// hash differs from its spec's is replaced.
// The hash leaves out resources and resizePolicy: those change in place
// (pods/resize) without replacing the container.
func ContainerHash(c *v1.Container) string {
	bare := *c
	bare.Resources, bare.ResizePolicy = v1.ResourceRequirements{}, nil
	return LegacyContainerHash(&bare)
}

// LegacyContainerHash is the hash of the whole container, as agents before
// in-place resize wrote it: their containers are not restarted for it.
func LegacyContainerHash(c *v1.Container) string {
	b, _ := json.Marshal(c)
	h := fnv.New32a()
	h.Write(b)
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}
