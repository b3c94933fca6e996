package registry

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
)

// applyMerger is how a MutatingAdmissionPolicy's apply configuration is
// merged into an object of one kind, as upstream merges it: by the kind's
// structured-merge-diff schema, the way server-side apply merges a
// configuration: maps field by field, map lists item by item by their
// keys, sets as unions, atomic values replaced.
func applyMerger(types managedfields.TypeConverter, gvk schema.GroupVersionKind) func(obj, cfg map[string]any) (map[string]any, error) {
	return func(obj, cfg map[string]any) (map[string]any, error) {
		live, patch := withKindOf(obj, gvk), withKindOf(cfg, gvk)
		liveTyped, err := types.ObjectToTyped(&unstructured.Unstructured{Object: live}, typed.AllowDuplicates)
		if err != nil {
			return nil, fmt.Errorf("the object: %w", err)
		}
		patchTyped, err := types.ObjectToTyped(&unstructured.Unstructured{Object: patch})
		if err != nil {
			return nil, fmt.Errorf("apply configuration: %w", err)
		}
		merged, err := liveTyped.Merge(patchTyped)
		if err != nil {
			return nil, fmt.Errorf("apply configuration: %w", err)
		}
		out, ok := merged.AsValue().Unstructured().(map[string]any)
		if !ok {
			return nil, fmt.Errorf("apply configuration: the merge is not an object")
		}
		return out, nil
	}
}

// withKindOf is m (shallowly copied) with gvk's apiVersion and kind, which
// the type converter finds the schema by; an apply configuration written
// as Object{spec: ...} carries neither.
func withKindOf(m map[string]any, gvk schema.GroupVersionKind) map[string]any {
	out := make(map[string]any, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	out["apiVersion"], out["kind"] = gvk.GroupVersion().String(), gvk.Kind
	return out
}
