package volumematch

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestBest(t *testing.T) {
	vol := func(name, size, class string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolume {
		return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tier": name}}, Spec: corev1.PersistentVolumeSpec{
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}, StorageClassName: class, AccessModes: modes}}
	}
	rwo, rwx := corev1.ReadWriteOnce, corev1.ReadWriteMany
	pvs := []*corev1.PersistentVolume{vol("a", "10Gi", "", rwo), vol("b", "2Gi", "", rwo), vol("c", "2Gi", "fast", rwo), vol("d", "20Gi", "", rwo, rwx)}
	claim := func(size, class string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}, Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &class, AccessModes: modes, Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}}}
	}
	cases := []struct {
		name  string
		claim *corev1.PersistentVolumeClaim
		want  string
	}{
		{"smallest that fits", claim("1Gi", "", rwo), "b"},
		{"class must match", claim("1Gi", "fast", rwo), "c"},
		{"access modes must be offered", claim("1Gi", "", rwx), "d"},
		{"too big for all", claim("50Gi", "", rwo), ""},
	}
	for _, c := range cases {
		got := ""
		if pv := Best(pvs, c.claim); pv != nil {
			got = pv.Name
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	sel := claim("1Gi", "", rwo)
	sel.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "a"}}
	if pv := Best(pvs, sel); pv == nil || pv.Name != "a" {
		t.Errorf("selector: %v", pv)
	}
	taken := vol("e", "1Gi", "", rwo)
	taken.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "other"}
	if Fits(taken, claim("1Gi", "", rwo)) {
		t.Error("a volume reserved for another claim fits")
	}
}
