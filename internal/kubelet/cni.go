package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cniConfigName is the one network configuration containerd loads.
const cniConfigName = "10-skiff.conflist"

// cniConfig is the pod network of this node: a bridge with host-local
// addresses from the node's pod CIDR, the bridge as the pods' gateway and
// hairpin mode so a pod can reach itself through a Service; then portmap
// for hostPorts.
func cniConfig(podCIDR, ipamDir string) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "skiff",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": podCIDR}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": ipamDir,
				},
			},
			// hostPort: the runtime passes the pod's port mappings here.
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// waitPodCIDR returns the Node's spec.podCIDR, waiting for the control
// plane's node IPAM controller to assign one. Until then the runtime has no
// network configuration and sandboxes cannot start, as upstream's kubelet
// waits for its network plugin.
func (k *Kubelet) waitPodCIDR(ctx context.Context) (string, error) {
	warned := k.clock.Now()
	for {
		if n := k.getNode(); n != nil && n.Spec.PodCIDR != "" {
			if k.cfg.PodCIDR != "" && k.cfg.PodCIDR != n.Spec.PodCIDR {
				k.log.Warn("the node already has another pod CIDR; --pod-cidr is ignored", "podCIDR", n.Spec.PodCIDR, "flag", k.cfg.PodCIDR)
			}
			return n.Spec.PodCIDR, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		n, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if err == nil {
			k.setNode(n)
		}
		if k.clock.Since(warned) > 30*time.Second {
			warned = k.clock.Now()
			k.log.Warn("waiting for the control plane to assign this node a pod CIDR (is the nodeipam controller running?)", "node", k.cfg.NodeName)
		}
	}
}

// writeCNIConfig writes the network configuration for the node's pod CIDR.
func (k *Kubelet) writeCNIConfig(cidr string) error {
	data, err := cniConfig(cidr, filepath.Join(k.cfg.RootDir, "ipam"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(k.cfg.CNIConfDir, 0o755); err != nil {
		return fmt.Errorf("CNI config: %w", err)
	}
	tmp := filepath.Join(k.cfg.CNIConfDir, "."+cniConfigName)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("CNI config: %w", err)
	}
	return os.Rename(tmp, filepath.Join(k.cfg.CNIConfDir, cniConfigName))
}
