package registry

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/storage"
)

// Annotations marking the class objects without one get.
const (
	annDefaultClass        = "storageclass.kubernetes.io/is-default-class"
	annDefaultIngressClass = "ingressclass.kubernetes.io/is-default-class"
	annLegacyIngressClass  = "kubernetes.io/ingress.class"
)

// admitDefaultStorageClass is upstream's DefaultStorageClass admission: a
// claim created without spec.storageClassName gets the default class (the
// newest, if several are marked). An explicit "" asks for no class and is
// kept.
func (g *Registry) admitDefaultStorageClass(r *Resource, obj runtime.Object) {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok || pvc.Spec.StorageClassName != nil || r.GVR != corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims") {
		return
	}
	if name := g.defaultClass(storagev1.SchemeGroupVersion.WithResource("storageclasses"), annDefaultClass); name != "" {
		pvc.Spec.StorageClassName = &name
	}
}

// admitDefaultIngressClass is upstream's DefaultIngressClass admission: an
// Ingress created naming no class (neither spec.ingressClassName nor the
// legacy annotation) gets the default IngressClass.
func (g *Registry) admitDefaultIngressClass(r *Resource, obj runtime.Object) {
	ing, ok := obj.(*networkingv1.Ingress)
	if !ok || ing.Spec.IngressClassName != nil || r.GVR != networkingv1.SchemeGroupVersion.WithResource("ingresses") {
		return
	}
	if _, legacy := ing.Annotations[annLegacyIngressClass]; legacy {
		return
	}
	if name := g.defaultClass(networkingv1.SchemeGroupVersion.WithResource("ingressclasses"), annDefaultIngressClass); name != "" {
		ing.Spec.IngressClassName = &name
	}
}

// defaultClass is the newest object of a class resource marked default by
// annotation (by name on a tie), or "".
func (g *Registry) defaultClass(gvr schema.GroupVersionResource, annotation string) string {
	res := g.Lookup(gvr)
	if res == nil {
		return ""
	}
	objs, _ := g.Cache(res).Snapshot(storage.Filter{})
	var def metav1.Object
	for _, o := range objs {
		m, ok := o.Obj.(metav1.Object)
		if !ok || m.GetAnnotations()[annotation] != "true" {
			continue
		}
		if def == nil {
			def = m
			continue
		}
		mt, dt := m.GetCreationTimestamp(), def.GetCreationTimestamp()
		if mt.After(dt.Time) || mt.Equal(&dt) && m.GetName() < def.GetName() {
			def = m
		}
	}
	if def == nil {
		return ""
	}
	return def.GetName()
}

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
