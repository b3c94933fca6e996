package registry

import (
	"context"
	"fmt"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// withCustomScale gives a custom resource the autoscaling/v1 scale
// subresource its definition describes by paths (specReplicasPath,
// statusReplicasPath, labelSelectorPath).
func withCustomScale(r *Resource, sc *apiextensionsv1.CustomResourceSubresourceScale) {
	specPath, statusPath := scalePath(sc.SpecReplicasPath), scalePath(sc.StatusReplicasPath)
	var selectorPath []string
	if sc.LabelSelectorPath != nil {
		selectorPath = scalePath(*sc.LabelSelectorPath)
	}
	view := func(obj runtime.Object) (*autoscalingv1.Scale, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return nil, fmt.Errorf("%T is not a custom object", obj)
		}
		out := &autoscalingv1.Scale{
			TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
			ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(),
				ResourceVersion: u.GetResourceVersion(), CreationTimestamp: u.GetCreationTimestamp()},
		}
		if n, ok, _ := unstructured.NestedInt64(u.Object, specPath...); ok {
			out.Spec.Replicas = int32(n)
		}
		if n, ok, _ := unstructured.NestedInt64(u.Object, statusPath...); ok {
			out.Status.Replicas = int32(n)
		}
		if selectorPath != nil {
			if s, ok, _ := unstructured.NestedString(u.Object, selectorPath...); ok {
				out.Status.Selector = s
			}
		}
		return out, nil
	}
	set := func(obj runtime.Object, n int32) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			_ = unstructured.SetNestedField(u.Object, int64(n), specPath...)
		}
	}
	addAction(r, "scale", &Action{
		Kind:  autoscalingv1.SchemeGroupVersion.WithKind("Scale"),
		Verbs: []string{"get", "patch", "update"},
		New:   func() runtime.Object { return &autoscalingv1.Scale{} },
		View:  func(obj runtime.Object) (runtime.Object, error) { return view(obj) },
		Act: func(ctx context.Context, g *Registry, ns, name string, body func(runtime.Object) (runtime.Object, error), o WriteOptions) (runtime.Object, error) {
			return updateScale(ctx, g, r, ns, name, body, o, view, set)
		},
	})
}

// scalePath splits a simple JSON path (".spec.replicas") into its fields.
func scalePath(path string) []string {
	return strings.Split(strings.TrimPrefix(path, "."), ".")
}
