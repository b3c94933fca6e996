package runtime

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Service is what the node agent asks of a container runtime: the CRI
// calls it makes, nothing more. A connection to containerd (Client)
// implements it, and so does the in-memory runtime the agent's tests run
// on (internal/runtime/memory).
type Service interface {
	Version(ctx context.Context, in *cri.VersionRequest, opts ...grpc.CallOption) (*cri.VersionResponse, error)
	RunPodSandbox(ctx context.Context, in *cri.RunPodSandboxRequest, opts ...grpc.CallOption) (*cri.RunPodSandboxResponse, error)
	StopPodSandbox(ctx context.Context, in *cri.StopPodSandboxRequest, opts ...grpc.CallOption) (*cri.StopPodSandboxResponse, error)
	RemovePodSandbox(ctx context.Context, in *cri.RemovePodSandboxRequest, opts ...grpc.CallOption) (*cri.RemovePodSandboxResponse, error)
	PodSandboxStatus(ctx context.Context, in *cri.PodSandboxStatusRequest, opts ...grpc.CallOption) (*cri.PodSandboxStatusResponse, error)
	ListPodSandbox(ctx context.Context, in *cri.ListPodSandboxRequest, opts ...grpc.CallOption) (*cri.ListPodSandboxResponse, error)
	CreateContainer(ctx context.Context, in *cri.CreateContainerRequest, opts ...grpc.CallOption) (*cri.CreateContainerResponse, error)
	StartContainer(ctx context.Context, in *cri.StartContainerRequest, opts ...grpc.CallOption) (*cri.StartContainerResponse, error)
	StopContainer(ctx context.Context, in *cri.StopContainerRequest, opts ...grpc.CallOption) (*cri.StopContainerResponse, error)
	RemoveContainer(ctx context.Context, in *cri.RemoveContainerRequest, opts ...grpc.CallOption) (*cri.RemoveContainerResponse, error)
	ListContainers(ctx context.Context, in *cri.ListContainersRequest, opts ...grpc.CallOption) (*cri.ListContainersResponse, error)
	ContainerStatus(ctx context.Context, in *cri.ContainerStatusRequest, opts ...grpc.CallOption) (*cri.ContainerStatusResponse, error)
	UpdateContainerResources(ctx context.Context, in *cri.UpdateContainerResourcesRequest, opts ...grpc.CallOption) (*cri.UpdateContainerResourcesResponse, error)
	ExecSync(ctx context.Context, in *cri.ExecSyncRequest, opts ...grpc.CallOption) (*cri.ExecSyncResponse, error)
	Exec(ctx context.Context, in *cri.ExecRequest, opts ...grpc.CallOption) (*cri.ExecResponse, error)
	Attach(ctx context.Context, in *cri.AttachRequest, opts ...grpc.CallOption) (*cri.AttachResponse, error)
	PortForward(ctx context.Context, in *cri.PortForwardRequest, opts ...grpc.CallOption) (*cri.PortForwardResponse, error)
	ListContainerStats(ctx context.Context, in *cri.ListContainerStatsRequest, opts ...grpc.CallOption) (*cri.ListContainerStatsResponse, error)

	ListImages(ctx context.Context, in *cri.ListImagesRequest, opts ...grpc.CallOption) (*cri.ListImagesResponse, error)
	ImageStatus(ctx context.Context, in *cri.ImageStatusRequest, opts ...grpc.CallOption) (*cri.ImageStatusResponse, error)
	PullImage(ctx context.Context, in *cri.PullImageRequest, opts ...grpc.CallOption) (*cri.PullImageResponse, error)
	RemoveImage(ctx context.Context, in *cri.RemoveImageRequest, opts ...grpc.CallOption) (*cri.RemoveImageResponse, error)
	ImageFsInfo(ctx context.Context, in *cri.ImageFsInfoRequest, opts ...grpc.CallOption) (*cri.ImageFsInfoResponse, error)
}

var _ Service = (*Client)(nil)

// Client is a connection to a CRI runtime: one persistent gRPC connection
// carrying both services.
type Client struct {
	cri.RuntimeServiceClient
	cri.ImageServiceClient
	conn *grpc.ClientConn
}

// Dial connects to the CRI socket at endpoint (a path or unix:// URL)
// and checks that it answers the v1 API.
func Dial(ctx context.Context, endpoint string) (*Client, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "unix://" + endpoint
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("CRI %s: %w", endpoint, err)
	}
	r := &Client{RuntimeServiceClient: cri.NewRuntimeServiceClient(conn), ImageServiceClient: cri.NewImageServiceClient(conn), conn: conn}
	// A containerd that just started (or restarted with many containers
	// to recover) answers "server is not initialized yet" for a while.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := r.Version(vctx, &cri.VersionRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			return r, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			conn.Close()
			return nil, fmt.Errorf("CRI %s: version: %w", endpoint, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Close closes the connection.
func (r *Client) Close() error { return r.conn.Close() }

// HasImage reports whether the runtime holds the image.
func (r *Client) HasImage(ctx context.Context, ref string) (bool, error) {
	resp, err := r.ImageStatus(ctx, &cri.ImageStatusRequest{Image: &cri.ImageSpec{Image: ref}})
	if err != nil {
		return false, err
	}
	return resp.Image != nil, nil
}
