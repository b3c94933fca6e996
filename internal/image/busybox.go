package image

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Busybox returns a builder holding a static busybox at /bin/busybox with a
// symlink per applet in /bin, plus /tmp and /etc/passwd: a small image with
// a shell and the usual tools, made from the host's busybox-static binary.
func Busybox(ref, busyboxPath string) (*Builder, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox image: %w", err)
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox image: list applets of %s: %w", busyboxPath, err)
	}
	b := New(ref)
	b.AddFile("/bin/busybox", 0o755, bin)
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			b.AddSymlink("/bin/"+applet, "busybox")
		}
	}
	b.AddDir("/tmp", 0o1777)
	b.AddDir("/root", 0o700)
	b.AddFile("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"))
	b.AddFile("/etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	b.Config = Config{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
	return b, nil
}
