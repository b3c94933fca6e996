// Package memory is a container runtime that lives in memory: it answers
// the CRI calls the node agent makes, runs no process, and lets a test say
// how long each container runs and how it exits, how slow each call is and
// which calls fail. The node agent's logic runs on it in milliseconds,
// without containerd.
package memory

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/skiff-sh/skiff/internal/runtime"
)

// Program is how a container behaves once started: it runs for RunFor
// (zero: until stopped) and then exits with ExitCode.
type Program struct {
	RunFor   time.Duration
	ExitCode int32
}

var _ runtime.Service = (*Runtime)(nil)

// Runtime is the in-memory runtime. Its zero value is not usable; use New.
type Runtime struct {
	clock clock.Clock
	// Latency is added to every call (a slow runtime).
	Latency time.Duration

	mu         sync.Mutex
	next       int
	sandboxes  map[string]*sandbox
	containers map[string]*container
	images     map[string]bool
	programs   map[string]Program // by container name
	failures   map[string][]error // by method, the next errors to return
	execs      map[string]int32   // exit code of ExecSync by command's first word
	calls      []string
}

type sandbox struct {
	id      string
	config  *cri.PodSandboxConfig
	state   cri.PodSandboxState
	created time.Time
	ip      string
}

type container struct {
	id, sandboxID   string
	config          *cri.ContainerConfig
	state           cri.ContainerState
	created         time.Time
	started, finish time.Time
	exitCode        int32
	reason          string
	program         Program
}

// New returns an empty runtime on clk.
func New(clk clock.Clock) *Runtime {
	return &Runtime{clock: clk, sandboxes: map[string]*sandbox{}, containers: map[string]*container{}, images: map[string]bool{},
		programs: map[string]Program{}, failures: map[string][]error{}, execs: map[string]int32{}}
}

// Run sets the program of the containers called name.
func (r *Runtime) Run(name string, p Program) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.programs[name] = p
}

// Fail makes the next call of method return err (calls queue up).
func (r *Runtime) Fail(method string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures[method] = append(r.failures[method], err)
}

// Image makes an image present, as if pulled.
func (r *Runtime) Image(ref string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.images[ref] = true
}

// ExecExit sets the exit code of ExecSync calls whose command starts with
// cmd (probes and hooks); the default is 0.
func (r *Runtime) ExecExit(cmd string, code int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.execs[cmd] = code
}

// Calls returns the calls made so far, in order, and forgets them.
func (r *Runtime) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

// enter records a call, waits out the latency and returns an injected
// failure, if one is queued. It returns with the lock held.
func (r *Runtime) enter(method, detail string) error {
	if r.Latency > 0 {
		r.clock.Sleep(r.Latency)
	}
	r.mu.Lock()
	if detail != "" {
		method += " " + detail
	}
	r.calls = append(r.calls, method)
	name := method
	for i := range method {
		if method[i] == ' ' {
			name = method[:i]
			break
		}
	}
	if q := r.failures[name]; len(q) > 0 {
		r.failures[name] = q[1:]
		return q[0]
	}
	return nil
}

func (r *Runtime) id(prefix string) string {
	r.next++
	return prefix + strconv.Itoa(r.next)
}

// advance moves containers whose program ended to EXITED.
func (r *Runtime) advance(c *container) {
	if c.state == cri.ContainerState_CONTAINER_RUNNING && c.program.RunFor > 0 && !r.clock.Now().Before(c.started.Add(c.program.RunFor)) {
		c.state, c.finish, c.exitCode = cri.ContainerState_CONTAINER_EXITED, c.started.Add(c.program.RunFor), c.program.ExitCode
		c.reason = "Completed"
		if c.exitCode != 0 {
			c.reason = "Error"
		}
	}
}

func notFound(kind, id string) error {
	return status.Errorf(codes.NotFound, "%s %q not found", kind, id)
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Version reports the runtime's name.
func (r *Runtime) Version(context.Context, *cri.VersionRequest, ...grpc.CallOption) (*cri.VersionResponse, error) {
	if err := r.enter("Version", ""); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	return &cri.VersionResponse{Version: "0.1.0", RuntimeName: "memory", RuntimeVersion: "1.0", RuntimeApiVersion: "v1"}, nil
}

// RunPodSandbox starts a ready sandbox with an address.
func (r *Runtime) RunPodSandbox(_ context.Context, in *cri.RunPodSandboxRequest, _ ...grpc.CallOption) (*cri.RunPodSandboxResponse, error) {
	if err := r.enter("RunPodSandbox", in.Config.GetMetadata().GetName()); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	sb := &sandbox{id: r.id("sb"), config: in.Config, state: cri.PodSandboxState_SANDBOX_READY, created: r.clock.Now(), ip: fmt.Sprintf("10.88.0.%d", r.next%250+2)}
	r.sandboxes[sb.id] = sb
	return &cri.RunPodSandboxResponse{PodSandboxId: sb.id}, nil
}

// StopPodSandbox stops the sandbox and its containers.
func (r *Runtime) StopPodSandbox(_ context.Context, in *cri.StopPodSandboxRequest, _ ...grpc.CallOption) (*cri.StopPodSandboxResponse, error) {
	if err := r.enter("StopPodSandbox", in.PodSandboxId); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	if sb := r.sandboxes[in.PodSandboxId]; sb != nil {
		sb.state = cri.PodSandboxState_SANDBOX_NOTREADY
		for _, c := range r.containers {
			if c.sandboxID == sb.id {
				r.stop(c)
			}
		}
	}
	return &cri.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes the sandbox and its containers.
func (r *Runtime) RemovePodSandbox(_ context.Context, in *cri.RemovePodSandboxRequest, _ ...grpc.CallOption) (*cri.RemovePodSandboxResponse, error) {
	if err := r.enter("RemovePodSandbox", in.PodSandboxId); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	delete(r.sandboxes, in.PodSandboxId)
	for id, c := range r.containers {
		if c.sandboxID == in.PodSandboxId {
			delete(r.containers, id)
		}
	}
	return &cri.RemovePodSandboxResponse{}, nil
}

// PodSandboxStatus reports a sandbox's state and address.
func (r *Runtime) PodSandboxStatus(_ context.Context, in *cri.PodSandboxStatusRequest, _ ...grpc.CallOption) (*cri.PodSandboxStatusResponse, error) {
	if err := r.enter("PodSandboxStatus", ""); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	sb := r.sandboxes[in.PodSandboxId]
	if sb == nil {
		return nil, notFound("sandbox", in.PodSandboxId)
	}
	return &cri.PodSandboxStatusResponse{Status: &cri.PodSandboxStatus{Id: sb.id, Metadata: sb.config.Metadata, State: sb.state, CreatedAt: sb.created.UnixNano(),
		Network: &cri.PodSandboxNetworkStatus{Ip: sb.ip}, Labels: sb.config.Labels, Annotations: sb.config.Annotations}}, nil
}

// ListPodSandbox lists sandboxes matching the filter's labels.
func (r *Runtime) ListPodSandbox(_ context.Context, in *cri.ListPodSandboxRequest, _ ...grpc.CallOption) (*cri.ListPodSandboxResponse, error) {
	if err := r.enter("ListPodSandbox", ""); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	var out []*cri.PodSandbox
	for _, sb := range r.sandboxes {
		if in.Filter != nil && !matches(sb.config.Labels, in.Filter.LabelSelector) {
			continue
		}
		out = append(out, &cri.PodSandbox{Id: sb.id, Metadata: sb.config.Metadata, State: sb.state, CreatedAt: sb.created.UnixNano(), Labels: sb.config.Labels, Annotations: sb.config.Annotations})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return &cri.ListPodSandboxResponse{Items: out}, nil
}

// CreateContainer creates a container in a ready sandbox; its image must
// be present.
func (r *Runtime) CreateContainer(_ context.Context, in *cri.CreateContainerRequest, _ ...grpc.CallOption) (*cri.CreateContainerResponse, error) {
	name := in.Config.GetMetadata().GetName()
	if err := r.enter("CreateContainer", name); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	if sb := r.sandboxes[in.PodSandboxId]; sb == nil || sb.state != cri.PodSandboxState_SANDBOX_READY {
		return nil, status.Errorf(codes.FailedPrecondition, "sandbox %q is not ready", in.PodSandboxId)
	}
	if !r.images[in.Config.GetImage().GetImage()] {
		return nil, status.Errorf(codes.NotFound, "image %q not found", in.Config.GetImage().GetImage())
	}
	c := &container{id: r.id("c"), sandboxID: in.PodSandboxId, config: in.Config, state: cri.ContainerState_CONTAINER_CREATED, created: r.clock.Now(), program: r.programs[name]}
	r.containers[c.id] = c
	return &cri.CreateContainerResponse{ContainerId: c.id}, nil
}

// StartContainer runs a created container's program.
func (r *Runtime) StartContainer(_ context.Context, in *cri.StartContainerRequest, _ ...grpc.CallOption) (*cri.StartContainerResponse, error) {
	if err := r.enter("StartContainer", r.nameOf(in.ContainerId)); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	c := r.containers[in.ContainerId]
	if c == nil {
		return nil, notFound("container", in.ContainerId)
	}
	c.state, c.started = cri.ContainerState_CONTAINER_RUNNING, r.clock.Now()
	return &cri.StartContainerResponse{}, nil
}

// nameOf is a container's name, for the call log (lock not held).
func (r *Runtime) nameOf(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.containers[id]; c != nil {
		return c.config.GetMetadata().GetName()
	}
	return id
}

// stop ends a running container as a signal would (exit 137).
func (r *Runtime) stop(c *container) {
	r.advance(c)
	if c.state == cri.ContainerState_CONTAINER_RUNNING || c.state == cri.ContainerState_CONTAINER_CREATED {
		c.state, c.finish, c.exitCode, c.reason = cri.ContainerState_CONTAINER_EXITED, r.clock.Now(), 137, "Error"
	}
}

// StopContainer stops a container.
func (r *Runtime) StopContainer(_ context.Context, in *cri.StopContainerRequest, _ ...grpc.CallOption) (*cri.StopContainerResponse, error) {
	if err := r.enter("StopContainer", r.nameOf(in.ContainerId)); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	if c := r.containers[in.ContainerId]; c != nil {
		r.stop(c)
	}
	return &cri.StopContainerResponse{}, nil
}

// RemoveContainer forgets a container.
func (r *Runtime) RemoveContainer(_ context.Context, in *cri.RemoveContainerRequest, _ ...grpc.CallOption) (*cri.RemoveContainerResponse, error) {
	if err := r.enter("RemoveContainer", r.nameOf(in.ContainerId)); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	delete(r.containers, in.ContainerId)
	return &cri.RemoveContainerResponse{}, nil
}

func (r *Runtime) view(c *container) *cri.Container {
	r.advance(c)
	return &cri.Container{Id: c.id, PodSandboxId: c.sandboxID, Metadata: c.config.Metadata, Image: c.config.Image, ImageRef: c.config.GetImage().GetImage(),
		State: c.state, CreatedAt: c.created.UnixNano(), Labels: c.config.Labels, Annotations: c.config.Annotations}
}

// ListContainers lists containers matching the filter.
func (r *Runtime) ListContainers(_ context.Context, in *cri.ListContainersRequest, _ ...grpc.CallOption) (*cri.ListContainersResponse, error) {
	if err := r.enter("ListContainers", ""); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	var out []*cri.Container
	for _, c := range r.containers {
		f := in.Filter
		if f != nil && (!matches(c.config.Labels, f.LabelSelector) || (f.Id != "" && f.Id != c.id) || (f.PodSandboxId != "" && f.PodSandboxId != c.sandboxID)) {
			continue
		}
		out = append(out, r.view(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return &cri.ListContainersResponse{Containers: out}, nil
}

// ContainerStatus reports a container's state, times and exit code.
func (r *Runtime) ContainerStatus(_ context.Context, in *cri.ContainerStatusRequest, _ ...grpc.CallOption) (*cri.ContainerStatusResponse, error) {
	if err := r.enter("ContainerStatus", ""); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	c := r.containers[in.ContainerId]
	if c == nil {
		return nil, notFound("container", in.ContainerId)
	}
	v := r.view(c)
	st := &cri.ContainerStatus{Id: c.id, Metadata: v.Metadata, State: c.state, CreatedAt: c.created.UnixNano(), ExitCode: c.exitCode, Reason: c.reason,
		Image: v.Image, ImageRef: v.ImageRef, Labels: v.Labels, Annotations: v.Annotations}
	if !c.started.IsZero() {
		st.StartedAt = c.started.UnixNano()
	}
	if !c.finish.IsZero() {
		st.FinishedAt = c.finish.UnixNano()
	}
	return &cri.ContainerStatusResponse{Status: st}, nil
}

// UpdateContainerResources accepts any resources.
func (r *Runtime) UpdateContainerResources(_ context.Context, in *cri.UpdateContainerResourcesRequest, _ ...grpc.CallOption) (*cri.UpdateContainerResourcesResponse, error) {
	if err := r.enter("UpdateContainerResources", r.nameOf(in.ContainerId)); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	return &cri.UpdateContainerResourcesResponse{}, nil
}

// ExecSync answers with the exit code set by ExecExit for the command.
func (r *Runtime) ExecSync(_ context.Context, in *cri.ExecSyncRequest, _ ...grpc.CallOption) (*cri.ExecSyncResponse, error) {
	cmd := ""
	if len(in.Cmd) > 0 {
		cmd = in.Cmd[0]
	}
	if err := r.enter("ExecSync", cmd); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	return &cri.ExecSyncResponse{ExitCode: r.execs[cmd]}, nil
}

func unsupported(method string) error {
	return status.Errorf(codes.Unimplemented, "%s: the in-memory runtime has no streams", method)
}

// Exec has no streaming server.
func (r *Runtime) Exec(context.Context, *cri.ExecRequest, ...grpc.CallOption) (*cri.ExecResponse, error) {
	return nil, unsupported("Exec")
}

// Attach has no streaming server.
func (r *Runtime) Attach(context.Context, *cri.AttachRequest, ...grpc.CallOption) (*cri.AttachResponse, error) {
	return nil, unsupported("Attach")
}

// PortForward has no streaming server.
func (r *Runtime) PortForward(context.Context, *cri.PortForwardRequest, ...grpc.CallOption) (*cri.PortForwardResponse, error) {
	return nil, unsupported("PortForward")
}

// ListContainerStats reports no usage.
func (r *Runtime) ListContainerStats(context.Context, *cri.ListContainerStatsRequest, ...grpc.CallOption) (*cri.ListContainerStatsResponse, error) {
	return &cri.ListContainerStatsResponse{}, nil
}

// ListImages lists the present images.
func (r *Runtime) ListImages(context.Context, *cri.ListImagesRequest, ...grpc.CallOption) (*cri.ListImagesResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*cri.Image
	for ref := range r.images {
		out = append(out, &cri.Image{Id: ref, RepoTags: []string{ref}, Size: 1 << 20})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return &cri.ListImagesResponse{Images: out}, nil
}

// ImageStatus reports an image if present.
func (r *Runtime) ImageStatus(_ context.Context, in *cri.ImageStatusRequest, _ ...grpc.CallOption) (*cri.ImageStatusResponse, error) {
	ref := in.GetImage().GetImage()
	if err := r.enter("ImageStatus", ref); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	if !r.images[ref] {
		return &cri.ImageStatusResponse{}, nil
	}
	return &cri.ImageStatusResponse{Image: &cri.Image{Id: ref, RepoTags: []string{ref}, Size: 1 << 20}}, nil
}

// PullImage makes an image present (a failure can be injected with Fail).
func (r *Runtime) PullImage(_ context.Context, in *cri.PullImageRequest, _ ...grpc.CallOption) (*cri.PullImageResponse, error) {
	ref := in.GetImage().GetImage()
	if err := r.enter("PullImage", ref); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	defer r.mu.Unlock()
	r.images[ref] = true
	return &cri.PullImageResponse{ImageRef: ref}, nil
}

// RemoveImage forgets an image.
func (r *Runtime) RemoveImage(_ context.Context, in *cri.RemoveImageRequest, _ ...grpc.CallOption) (*cri.RemoveImageResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.images, in.GetImage().GetImage())
	return &cri.RemoveImageResponse{}, nil
}

// ImageFsInfo reports an empty image filesystem.
func (r *Runtime) ImageFsInfo(context.Context, *cri.ImageFsInfoRequest, ...grpc.CallOption) (*cri.ImageFsInfoResponse, error) {
	return &cri.ImageFsInfoResponse{}, nil
}
