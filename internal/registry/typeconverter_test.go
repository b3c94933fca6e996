package registry

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/managedfields"
)

// The registry's converter skips a validation walk; the managed fields it
// leads to must be the ones client-go's converter gives, step by step.
func TestTypeConverterKeepsManagedFields(t *testing.T) {
	pods := podsResource(t)
	managers := map[string]*managedfields.FieldManager{"client-go": podFieldManager(t, "client-go"), "registry": podFieldManager(t, "registry")}
	created := benchPod(pods)
	// Duplicate env names are legal in a pod and must not break either.
	created.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "A", Value: "2"}}
	updated := created.DeepCopy()
	updated.Labels["tier"] = "web"
	updated.Spec.Containers[0].Image = "registry.local/bench:2"
	updated.Spec.Containers = append(updated.Spec.Containers, corev1.Container{Name: "side", Image: "registry.local/side:1"})
	applied := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "p", "namespace": "ns", "annotations": map[string]any{"owner": "applier"}},
	}}

	results := map[string][]metav1.ManagedFieldsEntry{}
	for name, fm := range managers {
		obj, err := fm.Update(&corev1.Pod{}, created.DeepCopy(), "creator")
		if err != nil {
			t.Fatalf("%s create: %v", name, err)
		}
		next := updated.DeepCopy()
		next.ManagedFields = obj.(*corev1.Pod).ManagedFields
		if obj, err = fm.Update(obj, next, "updater"); err != nil {
			t.Fatalf("%s update: %v", name, err)
		}
		if obj, err = fm.Apply(obj, applied.DeepCopy(), "applier", false); err != nil {
			t.Fatalf("%s apply: %v", name, err)
		}
		acc, err := meta.Accessor(obj)
		if err != nil {
			t.Fatal(err)
		}
		entries := acc.GetManagedFields()
		for i := range entries {
			entries[i].Time = nil
		}
		results[name] = entries
	}
	if len(results["registry"]) != 3 {
		t.Fatalf("want entries for creator, updater and applier, got %+v", results["registry"])
	}
	if d := cmp.Diff(results["client-go"], results["registry"]); d != "" {
		t.Errorf("managed fields differ (-client-go +registry):\n%s", d)
	}
}

// An applied configuration is still validated: a duplicate key in it is an
// error, as upstream reports it.
func TestTypeConverterValidatesApply(t *testing.T) {
	fm := podFieldManager(t, "registry")
	dup := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "p", "namespace": "ns"},
		"spec": map[string]any{"containers": []any{
			map[string]any{"name": "c", "image": "a"}, map[string]any{"name": "c", "image": "b"},
		}},
	}}
	if _, err := fm.Apply(&corev1.Pod{}, dup, "applier", false); err == nil {
		t.Fatal("apply with two containers named c succeeded")
	}
}
