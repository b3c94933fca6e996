package runtime

import (
	"strings"
	"testing"
)

// The generated configuration carries the settings this machine kind needs.
func TestContainerdConfig(t *testing.T) {
	cfg := Containerd{Dir: "/data/containerd", CNIConfDir: "/data/agent/cni"}.Config()
	for _, want := range []string{
		"version = 2",
		`root = "/data/containerd/root"`,
		`address = "/data/containerd/containerd.sock"`,
		`sandbox_image = "` + PauseImage + `"`,
		"restrict_oom_score_adj = true",
		`snapshotter = "overlayfs"`,
		`bin_dir = "/usr/lib/cni"`,
		`conf_dir = "/data/agent/cni"`,
		`config_path = "/data/containerd/certs.d"`,
		`stream_server_address = "127.0.0.1"`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}
