package runtime

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func dialUnix(sock string) (net.Conn, error) { return net.Dial("unix", sock) }

// K8sNamespace is containerd's namespace for CRI-managed images and
// containers.
const K8sNamespace = "k8s.io"

// ImportArchive imports an OCI layout or docker-save archive into the
// containerd behind sock, unpacked for the overlayfs snapshotter, using the
// ctr client shipped with containerd.
func ImportArchive(ctx context.Context, sock, file string) error {
	out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "--namespace", K8sNamespace,
		"images", "import", "--snapshotter", "overlayfs", file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import %s: %v: %s", file, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ImportPause builds the pause image and imports it.
func ImportPause(ctx context.Context, sock, dir string) error {
	b, err := Pause()
	if err != nil {
		return err
	}
	f := filepath.Join(dir, "pause.tar")
	if err := b.WriteLayoutFile(f); err != nil {
		return fmt.Errorf("pause image: %w", err)
	}
	defer os.Remove(f)
	return ImportArchive(ctx, sock, f)
}
