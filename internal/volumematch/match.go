// Package volumematch decides which PersistentVolumes can serve a claim,
// shared by the volume binder and the scheduler.
package volumematch

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// ClassName is a claim's storage class name, "" when unset.
func ClassName(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Fits reports whether pv can serve claim: same class and volume mode,
// enough capacity, every requested access mode, the claim's selector, and
// free (or reserved for this claim).
func Fits(pv *corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim) bool {
	if pv.DeletionTimestamp != nil || pv.Status.Phase == corev1.VolumeReleased || pv.Status.Phase == corev1.VolumeFailed {
		return false
	}
	if ref := pv.Spec.ClaimRef; ref != nil && (ref.Namespace != claim.Namespace || ref.Name != claim.Name || (ref.UID != "" && ref.UID != claim.UID)) {
		return false
	}
	if pv.Spec.StorageClassName != ClassName(claim.Spec.StorageClassName) {
		return false
	}
	if volumeMode(pv.Spec.VolumeMode) != volumeMode(claim.Spec.VolumeMode) {
		return false
	}
	want := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	have := pv.Spec.Capacity[corev1.ResourceStorage]
	if have.Cmp(want) < 0 {
		return false
	}
	for _, m := range claim.Spec.AccessModes {
		if !slices.Contains(pv.Spec.AccessModes, m) {
			return false
		}
	}
	if claim.Spec.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(claim.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pv.Labels)) {
			return false
		}
	}
	return true
}

func volumeMode(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	if m == nil {
		return corev1.PersistentVolumeFilesystem
	}
	return *m
}

// Best picks the volume for claim: the one named by spec.volumeName if set,
// else one already reserved for it, else the smallest that fits.
func Best(pvs []*corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim) *corev1.PersistentVolume {
	var pick *corev1.PersistentVolume
	for _, pv := range pvs {
		if claim.Spec.VolumeName != "" && pv.Name != claim.Spec.VolumeName {
			continue
		}
		if !Fits(pv, claim) {
			continue
		}
		if ref := pv.Spec.ClaimRef; ref != nil {
			return pv // pre-bound to this claim
		}
		if pick == nil {
			pick = pv
			continue
		}
		a, b := pv.Spec.Capacity[corev1.ResourceStorage], pick.Spec.Capacity[corev1.ResourceStorage]
		if a.Cmp(b) < 0 || (a.Cmp(b) == 0 && pv.Name < pick.Name) {
			pick = pv
		}
	}
	return pick
}
