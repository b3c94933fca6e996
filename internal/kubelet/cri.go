package kubelet

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Runtime is a connection to a CRI runtime: one persistent gRPC connection
// carrying both services.
type Runtime struct {
	cri.RuntimeServiceClient
	cri.ImageServiceClient
	conn *grpc.ClientConn
}

// DialRuntime connects to the CRI socket at endpoint (a path or unix:// URL)
// and checks that it answers the v1 API.
func DialRuntime(ctx context.Context, endpoint string) (*Runtime, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "unix://" + endpoint
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("CRI %s: %w", endpoint, err)
	}
	r := &Runtime{RuntimeServiceClient: cri.NewRuntimeServiceClient(conn), ImageServiceClient: cri.NewImageServiceClient(conn), conn: conn}
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
func (r *Runtime) Close() error { return r.conn.Close() }

// Labels and annotations skiff puts on sandboxes and containers; the names
// are upstream's, so crictl and existing tooling read them.
const (
	labelPodName        = "io.kubernetes.pod.name"
	labelPodNamespace   = "io.kubernetes.pod.namespace"
	labelPodUID         = "io.kubernetes.pod.uid"
	labelContainerName  = "io.kubernetes.container.name"
	annotationHash      = "io.kubernetes.container.hash"
	annotationRestarts  = "io.kubernetes.container.restartCount"
	annotationTermPath  = "io.kubernetes.container.terminationMessagePath"
	annotationTermPol   = "io.kubernetes.container.terminationMessagePolicy"
	annotationInitIndex = "io.skiff.container.initIndex"
)

// HasImage reports whether the runtime holds the image.
func (r *Runtime) HasImage(ctx context.Context, ref string) (bool, error) {
	resp, err := r.ImageStatus(ctx, &cri.ImageStatusRequest{Image: &cri.ImageSpec{Image: ref}})
	if err != nil {
		return false, err
	}
	return resp.Image != nil, nil
}
