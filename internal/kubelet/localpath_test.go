package kubelet

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLocalPathDir(t *testing.T) {
	pv := func(name, path, node, by string) *v1.PersistentVolume {
		return &v1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{annProvisionedBy: by}},
			Spec: v1.PersistentVolumeSpec{
				PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: path}},
				NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
					MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{node}}},
				}}}},
			},
		}
	}
	cases := []struct {
		name string
		pv   *v1.PersistentVolume
		want string
	}{
		{"ours", pv("pvc-1", "/data/storage/pvc-1", "n1", localPathProvisioner), "/data/storage/pvc-1"},
		{"another node's", pv("pvc-1", "/data/storage/pvc-1", "n2", localPathProvisioner), ""},
		{"another provisioner's", pv("pvc-1", "/data/storage/pvc-1", "n1", "example.com/nfs"), ""},
		{"a path not named after the volume is never removed", pv("pvc-1", "/home", "n1", localPathProvisioner), ""},
		{"relative paths neither", pv("pvc-1", "pvc-1", "n1", localPathProvisioner), ""},
	}
	for _, c := range cases {
		if got := localPathDir(c.pv, "n1"); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
