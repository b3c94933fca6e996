package kubelet

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/kubelet/plan"
)

// runtimeState reads the pod's sandboxes and containers from the runtime.
func (k *Kubelet) runtimeState(ctx context.Context, uid types.UID) (*plan.PodState, error) {
	filter := map[string]string{labelPodUID: string(uid)}
	sb, err := k.rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{Filter: &cri.PodSandboxFilter{LabelSelector: filter}})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	st := &plan.PodState{Sandboxes: sb.Items, Containers: map[string][]*plan.ContainerState{}}
	sort.Slice(st.Sandboxes, func(i, j int) bool { return st.Sandboxes[i].CreatedAt > st.Sandboxes[j].CreatedAt })
	if cur := st.Current(); cur != nil && cur.State == cri.PodSandboxState_SANDBOX_READY {
		status, err := k.rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: cur.Id})
		if err == nil && status.Status != nil {
			st.SandboxOK = status.Status.State == cri.PodSandboxState_SANDBOX_READY
			if n := status.Status.Network; n != nil && n.Ip != "" {
				st.PodIP = n.Ip
				st.PodIPs = []string{n.Ip}
				for _, ip := range n.AdditionalIps {
					st.PodIPs = append(st.PodIPs, ip.Ip)
				}
			}
		}
	}
	cs, err := k.rt.ListContainers(ctx, &cri.ListContainersRequest{Filter: &cri.ContainerFilter{LabelSelector: filter}})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs.Containers {
		cst := &plan.ContainerState{
			ID: c.Id, Name: c.Labels[labelContainerName], SandboxID: c.PodSandboxId, State: c.State,
			Created: time.Unix(0, c.CreatedAt), Hash: c.Annotations[annotationHash],
			TermPath: c.Annotations[annotationTermPath], Resources: c.Annotations[annotationResources],
		}
		cst.RestartCount, _ = strconv.Atoi(c.Annotations[annotationRestarts])
		if c.Image != nil {
			cst.Image = c.Image.UserSpecifiedImage
			if cst.Image == "" {
				cst.Image = c.Image.Image
			}
		}
		cst.ImageRef = c.ImageRef
		resp, err := k.rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: c.Id})
		if err == nil && resp.Status != nil {
			s := resp.Status
			cst.State = s.State
			cst.ExitCode, cst.Reason, cst.Message = s.ExitCode, s.Reason, s.Message
			if s.StartedAt > 0 {
				cst.Started = time.Unix(0, s.StartedAt)
			}
			if s.FinishedAt > 0 {
				cst.Finished = time.Unix(0, s.FinishedAt)
			}
			if s.ImageRef != "" {
				cst.ImageRef = s.ImageRef
			}
		}
		st.Containers[cst.Name] = append(st.Containers[cst.Name], cst)
	}
	for _, list := range st.Containers {
		sort.Slice(list, func(i, j int) bool { return list[i].Created.After(list[j].Created) })
	}
	return st, nil
}
