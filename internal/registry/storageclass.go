package registry

import (
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/storage"
)

// annDefaultClass marks the StorageClass claims without one get.
const annDefaultClass = "storageclass.kubernetes.io/is-default-class"

// admitDefaultStorageClass is upstream's DefaultStorageClass admission: a
// claim created without spec.storageClassName gets the default class (the
// newest, if several are marked). An explicit "" asks for no class and is
// kept.
func (g *Registry) admitDefaultStorageClass(r *Resource, obj runtime.Object) {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok || pvc.Spec.StorageClassName != nil || r.GVR != corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims") {
		return
	}
	res := g.Lookup(storagev1.SchemeGroupVersion.WithResource("storageclasses"))
	if res == nil {
		return
	}
	objs, _ := g.Cache(res).Snapshot(storage.Filter{})
	var def *storagev1.StorageClass
	for _, o := range objs {
		sc := o.Obj.(*storagev1.StorageClass)
		if sc.Annotations[annDefaultClass] != "true" {
			continue
		}
		if def == nil || sc.CreationTimestamp.After(def.CreationTimestamp.Time) ||
			(sc.CreationTimestamp.Equal(&def.CreationTimestamp) && sc.Name < def.Name) {
			def = sc
		}
	}
	if def != nil {
		name := def.Name
		pvc.Spec.StorageClassName = &name
	}
}
