package runtime

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// ImageMounts mounts images' root filesystems read-only, for image
// volumes: containerd 1.6's CRI has no image mounts, so the node asks
// containerd directly (through its ctr client, as image import does) for a
// read-only view of the image's snapshot at a path of the node's.
type ImageMounts struct {
	Socket string // containerd's socket
}

// Mount makes the image ref (already pulled) visible, read-only, at target.
func (m ImageMounts) Mount(ctx context.Context, ref, target string) error {
	out, err := exec.CommandContext(ctx, "ctr", "--address", m.Socket, "--namespace", K8sNamespace,
		"images", "mount", "--snapshotter", "overlayfs", ref, target).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount image %s: %v: %s", ref, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Unmount unmounts target and drops the view's snapshot.
func (m ImageMounts) Unmount(ctx context.Context, target string) error {
	out, err := exec.CommandContext(ctx, "ctr", "--address", m.Socket, "--namespace", K8sNamespace,
		"images", "unmount", "--rm", target).CombinedOutput()
	if err != nil {
		return fmt.Errorf("unmount image volume %s: %v: %s", target, err, strings.TrimSpace(string(out)))
	}
	return nil
}
