package admission

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
)

// The finalizers of StorageObjectInUseProtection, as upstream names them
// (internal/controller/volumeprotection removes them).
const (
	ClaimProtectionFinalizer  = "kubernetes.io/pvc-protection"
	VolumeProtectionFinalizer = "kubernetes.io/pv-protection"
)

var volumesGVR = corev1.SchemeGroupVersion.WithResource("persistentvolumes")

// storageObjectInUseProtection is upstream's StorageObjectInUseProtection:
// every new claim and volume carries a finalizer, so deleting a claim a
// pod still uses, or a volume still bound, waits until it is not.
type storageObjectInUseProtection struct{}

func (storageObjectInUseProtection) Handles(op Operation) bool { return op == Create }

func (storageObjectInUseProtection) Admit(_ context.Context, a *Attributes) error {
	var finalizer string
	switch {
	case a.Is(claimsGVR):
		finalizer = ClaimProtectionFinalizer
	case a.Is(volumesGVR):
		finalizer = VolumeProtectionFinalizer
	default:
		return nil
	}
	acc, err := meta.Accessor(a.Object)
	if err != nil || slices.Contains(acc.GetFinalizers(), finalizer) {
		return nil
	}
	acc.SetFinalizers(append(acc.GetFinalizers(), finalizer))
	return nil
}
