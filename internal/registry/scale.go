package registry

import (
	"context"
	"fmt"
	"reflect"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// withScale gives a workload the autoscaling/v1 scale subresource (the one
// `kubectl scale` and the HPA use).
func withScale(r *Resource) {
	addAction(r, "scale", &Action{
		Kind:  autoscalingv1.SchemeGroupVersion.WithKind("Scale"),
		Verbs: []string{"get", "patch", "update"},
		New:   func() runtime.Object { return &autoscalingv1.Scale{} },
		View:  func(obj runtime.Object) (runtime.Object, error) { return ScaleOf(obj) },
		Act: func(ctx context.Context, g *Registry, ns, name string, body func(runtime.Object) (runtime.Object, error), o WriteOptions) (runtime.Object, error) {
			return updateScale(ctx, g, r, ns, name, body, o, ScaleOf, setReplicas)
		},
		Columns: scaleColumns,
		Row:     scaleRow,
	})
}

// scaleColumns are upstream's Table columns of a built-in workload's Scale
// (`kubectl get deployment NAME --subresource=scale`).
var scaleColumns = []metav1.TableColumnDefinition{
	nameCol,
	col("Desired", "integer", 0, autoscalingv1.ScaleSpec{}.SwaggerDoc()["replicas"]),
	col("Available", "integer", 0, autoscalingv1.ScaleStatus{}.SwaggerDoc()["replicas"]),
	ageCol,
}

func scaleRow(view runtime.Object) []any {
	sc, ok := view.(*autoscalingv1.Scale)
	if !ok {
		return []any{"", int64(0), int64(0), ""}
	}
	return []any{sc.Name, int64(sc.Spec.Replicas), int64(sc.Status.Replicas), age(sc.CreationTimestamp)}
}

// ScaleOf builds the autoscaling/v1 Scale of a workload. Every scalable
// built-in type has Spec.Replicas (*int32), Status.Replicas (int32) and a
// selector, so this reads them by field name.
func ScaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	v := reflect.ValueOf(obj).Elem()
	spec, status := v.FieldByName("Spec"), v.FieldByName("Status")
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{Name: acc.GetName(), Namespace: acc.GetNamespace(), UID: acc.GetUID(),
			ResourceVersion: acc.GetResourceVersion(), CreationTimestamp: acc.GetCreationTimestamp()},
	}
	if p, ok := spec.FieldByName("Replicas").Interface().(*int32); ok && p != nil {
		sc.Spec.Replicas = *p
	}
	sc.Status.Replicas = int32(status.FieldByName("Replicas").Int())
	switch sel := spec.FieldByName("Selector").Interface().(type) {
	case *metav1.LabelSelector:
		if s, err := metav1.LabelSelectorAsSelector(sel); err == nil {
			sc.Status.Selector = s.String()
		}
	case map[string]string:
		sc.Status.Selector = labels.SelectorFromSet(sel).String()
	}
	return sc, nil
}

func setReplicas(obj runtime.Object, n int32) {
	f := reflect.ValueOf(obj).Elem().FieldByName("Spec").FieldByName("Replicas")
	f.Set(reflect.ValueOf(&n))
}

// updateScale changes a workload's replicas to what body makes of its
// current Scale.
// scaleOf reads an object's Scale; setScale writes its desired replicas.
func updateScale(ctx context.Context, g *Registry, r *Resource, ns, name string, body func(runtime.Object) (runtime.Object, error), o WriteOptions,
	scaleOf func(runtime.Object) (*autoscalingv1.Scale, error), setScale func(runtime.Object, int32)) (runtime.Object, error) {
	mutate := func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(r.GroupResource(), name)
		}
		sc, err := scaleOf(cur)
		if err != nil {
			return nil, err
		}
		in, err := body(sc)
		if err != nil {
			return nil, err
		}
		want := in.(*autoscalingv1.Scale)
		if want.Name != "" && want.Name != name {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", want.Name, name))
		}
		if want.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), name, field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")})
		}
		obj := cur.DeepCopyObject()
		acc, _ := meta.Accessor(obj)
		if want.ResourceVersion != "" {
			acc.SetResourceVersion(want.ResourceVersion)
		}
		setScale(obj, want.Spec.Replicas)
		return obj, nil
	}
	out, _, err := g.Update(ctx, r, ns, name, mutate, o, false)
	if err != nil {
		return nil, err
	}
	return scaleOf(out)
}
