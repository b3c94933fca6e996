package registry

import (
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func storageClassStrategy(r *Resource) {
	r.ShortNames = []string{"sc"}
	r.Default = asDefault(func(sc *storagev1.StorageClass) {
		if sc.ReclaimPolicy == nil {
			sc.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimDelete)
		}
		if sc.VolumeBindingMode == nil {
			sc.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
		}
	})
	r.Validate = asValidate(func(o *storagev1.StorageClass) field.ErrorList {
		if o.Provisioner == "" {
			return field.ErrorList{field.Required(field.NewPath("provisioner"), "")}
		}
		return nil
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Provisioner", "string", 0, ""), col("ReclaimPolicy", "string", 0, ""), col("VolumeBindingMode", "string", 0, ""), col("AllowVolumeExpansion", "string", 0, ""), ageCol}
	r.Row = asRow(func(sc *storagev1.StorageClass, _ bool) []any {
		name := sc.Name
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
			name += " (default)"
		}
		return []any{name, sc.Provisioner, string(ptr.Deref(sc.ReclaimPolicy, "")), string(ptr.Deref(sc.VolumeBindingMode, "")), ptr.Deref(sc.AllowVolumeExpansion, false), age(sc.CreationTimestamp)}
	})
}
