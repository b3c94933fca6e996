package admission

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Annotations marking the class objects without one get.
const (
	annDefaultStorageClass = "storageclass.kubernetes.io/is-default-class"
	annDefaultIngressClass = "ingressclass.kubernetes.io/is-default-class"
	annLegacyIngressClass  = "kubernetes.io/ingress.class"
)

// classDefault says what gets a default class: objects of resource
// without one (unset reports so and sets it), from the class objects of
// classes marked by annotation.
type classDefault struct {
	resource   schema.GroupVersionResource
	classes    schema.GroupVersionResource
	annotation string
	unset      func(obj any) (set func(string), ok bool)
}

// storageClassDefault is upstream's DefaultStorageClass: a claim created
// without spec.storageClassName gets the default class. An explicit ""
// asks for no class and is kept.
var storageClassDefault = classDefault{
	resource:   corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims"),
	classes:    storagev1.SchemeGroupVersion.WithResource("storageclasses"),
	annotation: annDefaultStorageClass,
	unset: func(obj any) (func(string), bool) {
		pvc, ok := obj.(*corev1.PersistentVolumeClaim)
		if !ok || pvc.Spec.StorageClassName != nil {
			return nil, false
		}
		return func(n string) { pvc.Spec.StorageClassName = &n }, true
	},
}

// ingressClassDefault is upstream's DefaultIngressClass: an Ingress
// created naming no class (neither spec.ingressClassName nor the legacy
// annotation) gets the default IngressClass.
var ingressClassDefault = classDefault{
	resource:   networkingv1.SchemeGroupVersion.WithResource("ingresses"),
	classes:    networkingv1.SchemeGroupVersion.WithResource("ingressclasses"),
	annotation: annDefaultIngressClass,
	unset: func(obj any) (func(string), bool) {
		ing, ok := obj.(*networkingv1.Ingress)
		if !ok || ing.Spec.IngressClassName != nil {
			return nil, false
		}
		if _, legacy := ing.Annotations[annLegacyIngressClass]; legacy {
			return nil, false
		}
		return func(n string) { ing.Spec.IngressClassName = &n }, true
	},
}

// defaultClass fills in the default class of kind.
type defaultClass struct {
	objects Objects
	kind    classDefault
}

func (*defaultClass) Handles(op Operation) bool { return op == Create }

func (p *defaultClass) Admit(_ context.Context, a *Attributes) error {
	if !a.Is(p.kind.resource) {
		return nil
	}
	set, ok := p.kind.unset(a.Object)
	if !ok {
		return nil
	}
	if name := p.newestDefault(); name != "" {
		set(name)
	}
	return nil
}

// newestDefault is the newest class marked default (by name on a tie), or "".
func (p *defaultClass) newestDefault() string {
	var def metav1.Object
	for _, o := range p.objects.List(p.kind.classes, "") {
		m, ok := o.(metav1.Object)
		if !ok || m.GetAnnotations()[p.kind.annotation] != "true" {
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
