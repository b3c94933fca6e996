package registry

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

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
