package localpath

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func claim(node string) *corev1.PersistentVolumeClaim {
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "ns", UID: "u-1", Annotations: map[string]string{}},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To("local-path"),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if node != "" {
		c.Annotations[annSelectedNode] = node
	}
	return c
}

func TestNeedsVolume(t *testing.T) {
	class := DefaultClass("/var/lib/skiff/storage")
	immediate := class.DeepCopy()
	immediate.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
	other := class.DeepCopy()
	other.Provisioner = "example.com/nfs"
	bound := claim("n1")
	bound.Spec.VolumeName = "pv-x"
	selector := claim("n1")
	selector.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
	cases := []struct {
		name    string
		claim   *corev1.PersistentVolumeClaim
		class   *storagev1.StorageClass
		node    string
		ok      bool
		problem bool
	}{
		{"node chosen: provision there", claim("n1"), class, "n1", true, false},
		{"no node yet: wait for the scheduler", claim(""), class, "", false, false},
		{"bound already", bound, class, "", false, false},
		{"another provisioner's class", claim("n1"), other, "", false, false},
		{"Immediate binding cannot work", claim(""), immediate, "", false, true},
		{"selectors are refused", selector, class, "", false, true},
	}
	for _, c := range cases {
		node, ok, problem := needsVolume(c.claim, c.class)
		if node != c.node || ok != c.ok || (problem != "") != c.problem {
			t.Errorf("%s: %q %v %q", c.name, node, ok, problem)
		}
	}
}

func TestVolumeFor(t *testing.T) {
	class := DefaultClass("/data/storage")
	pv := volumeFor(claim("n1"), class, "n1")
	if pv.Name != "pvc-u-1" || pv.Annotations[AnnProvisionedBy] != Provisioner {
		t.Errorf("name %s annotations %v", pv.Name, pv.Annotations)
	}
	if hp := pv.Spec.HostPath; hp == nil || hp.Path != "/data/storage/pvc-u-1" || *hp.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("hostPath %+v", pv.Spec.HostPath)
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Namespace != "ns" || ref.Name != "data" || ref.UID != "u-1" {
		t.Errorf("claimRef %+v", pv.Spec.ClaimRef)
	}
	if q := pv.Spec.Capacity[corev1.ResourceStorage]; q.String() != "1Gi" || pv.Spec.StorageClassName != "local-path" || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("capacity %s class %s reclaim %s", q.String(), pv.Spec.StorageClassName, pv.Spec.PersistentVolumeReclaimPolicy)
	}
	req := pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0]
	if req.Key != corev1.LabelHostname || req.Operator != corev1.NodeSelectorOpIn || len(req.Values) != 1 || req.Values[0] != "n1" {
		t.Errorf("node affinity %+v", req)
	}
	retain := class.DeepCopy()
	retain.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimRetain)
	if got := volumeFor(claim("n1"), retain, "n1").Spec.PersistentVolumeReclaimPolicy; got != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("reclaim %s from a Retain class", got)
	}
}
