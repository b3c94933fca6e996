package kubelet

import (
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// localPathProvisioner is the control plane's built-in provisioner
// (internal/controller/localpath); its volumes are directories on one node,
// made by the hostPath mount and removed here once the volume is deleted.
const (
	localPathProvisioner = "skiff.io/local-path"
	annProvisionedBy     = "pv.kubernetes.io/provisioned-by"
)

// localPathDir is the directory of a deleted local-path volume of this
// node, "" when the volume is not one (another node's, another
// provisioner's, or a path not named after the volume: never removed).
func localPathDir(pv *v1.PersistentVolume, node string) string {
	if pv.Annotations[annProvisionedBy] != localPathProvisioner || pv.Spec.HostPath == nil {
		return ""
	}
	p := filepath.Clean(pv.Spec.HostPath.Path)
	if filepath.Base(p) != pv.Name || !filepath.IsAbs(p) || pv.Name == "" {
		return ""
	}
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return ""
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, req := range term.MatchExpressions {
			if req.Key == v1.LabelHostname && req.Operator == v1.NodeSelectorOpIn && len(req.Values) == 1 && req.Values[0] == node {
				return p
			}
		}
	}
	return ""
}

// volumeDeleted removes the directory of a deleted local-path volume of
// this node, with everything the pods wrote into it.
func (k *Kubelet) volumeDeleted(pv *v1.PersistentVolume) {
	dir := localPathDir(pv, k.cfg.NodeName)
	if dir == "" {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		k.log.Warn("remove deleted local-path volume", "volume", pv.Name, "dir", dir, "err", err)
		return
	}
	k.log.Info("removed deleted local-path volume", "volume", pv.Name, "dir", dir)
}
