package kubelet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// cniConfigName is the one network configuration containerd loads.
const cniConfigName = "10-skiff.conflist"

// cniConfig is the pod network of this node: a bridge with host-local
// addresses from the node's pod CIDR, the bridge as the pods' gateway and
// hairpin mode so a pod can reach itself through a Service.
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
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// writeCNIConfig writes the network configuration for the node's pod CIDR
// (the Node's spec.podCIDR when set, else the configured fallback).
func (k *Kubelet) writeCNIConfig() error {
	cidr := k.cfg.PodCIDR
	if n := k.getNode(); n != nil && n.Spec.PodCIDR != "" {
		cidr = n.Spec.PodCIDR
	}
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
