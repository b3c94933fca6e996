package registry

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/skiff-sh/skiff/internal/warm"
)

// TestManagedObjectMatchesUnstructured: managedObject's accessors give
// what Unstructured's give, for random entries and for the odd shapes
// they hand back to Unstructured.
func TestManagedObjectMatchesUnstructured(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	fieldsRaw := func() []byte {
		return []byte(pick(`{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:replicas":{},"f:x<>&\u2028":{}}}`,
			`{}`, `{"f:a":{"k:{\"name\":\"c\",\"port\":80}":{".":{},"f:n":{}}},"f:b":{"v:\"x\"":{},"i:3":{}}}`,
			`null`, `{"f:a":{},"f:a":{}}`, `"str"`, `{"f:a":{"n":1e3}}`, ``))
	}
	entry := func() metav1.ManagedFieldsEntry {
		e := metav1.ManagedFieldsEntry{Manager: pick("", "kubectl", "m\u00e9"), Operation: metav1.ManagedFieldsOperationType(pick("", "Update", "Apply")),
			APIVersion: pick("", "v1", "stable.example.com/v1"), FieldsType: pick("", "FieldsV1"), Subresource: pick("", "status", "scale")}
		switch rng.IntN(4) {
		case 0:
		case 1:
			e.Time = &metav1.Time{}
		default:
			e.Time = &metav1.Time{Time: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(time.FixedZone("x", 3600))}
		}
		if rng.IntN(5) > 0 {
			e.FieldsV1 = &metav1.FieldsV1{Raw: fieldsRaw()}
			if rng.IntN(10) == 0 {
				e.FieldsV1.Raw = nil
			}
		}
		return e
	}
	base := func(i int) map[string]any {
		switch i % 5 {
		case 0:
			return nil
		case 1:
			return map[string]any{"kind": "K"}
		case 2:
			return map[string]any{"metadata": "not a map"}
		case 3:
			return map[string]any{"metadata": nil}
		}
		return map[string]any{"metadata": map[string]any{"name": "n", "managedFields": []any{"old"}}}
	}
	for i := range 3000 {
		var entries []metav1.ManagedFieldsEntry
		if i%17 != 0 {
			entries = []metav1.ManagedFieldsEntry{}
			for range rng.IntN(4) {
				entries = append(entries, entry())
			}
		}
		want := &unstructured.Unstructured{Object: base(i)}
		want.SetManagedFields(entries)
		got := &managedObject{&unstructured.Unstructured{Object: base(i)}}
		got.SetManagedFields(entries)
		if !reflect.DeepEqual(got.Object, want.Object) {
			t.Fatalf("case %d: set %+v\n got %#v\nwant %#v", i, entries, got.Object, want.Object)
		}
		if g, w := got.GetManagedFields(), want.GetManagedFields(); !reflect.DeepEqual(g, w) {
			t.Fatalf("case %d: get\n got %#v\nwant %#v", i, g, w)
		}
	}
	odd := []any{
		"not a map",
		map[string]any{"manager": "m", "other": "x"},
		map[string]any{"manager": int64(3)},
		map[string]any{"time": "yesterday"},
		map[string]any{"time": nil},
		map[string]any{"fieldsV1": "f:a"},
		map[string]any{"fieldsV1": map[string]any{"f:a": map[string]any{}}, "time": "2026-12-06T04:00:00.5+02:00"},
	}
	for _, item := range odd {
		obj := map[string]any{"metadata": map[string]any{"managedFields": []any{item}}}
		want := (&unstructured.Unstructured{Object: obj}).GetManagedFields()
		got := (&managedObject{&unstructured.Unstructured{Object: obj}}).GetManagedFields()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("get %v:\n got %#v\nwant %#v", item, got, want)
		}
	}
}

// TestFieldsUpdateWithManagedObject: the field manager records the same
// managed fields for an unstructured object through Fields as it does
// on its own, for a create and for an update of another manager.
func TestFieldsUpdateWithManagedObject(t *testing.T) {
	gvk := schema.GroupVersionKind{Group: "stable.example.com", Version: "v1", Kind: "Widget"}
	fm, err := managedfields.NewDefaultCRDFieldManager(managedfields.NewDeducedTypeConverter(), customConverter{}, customDefaulter{&Resource{}}, customCreater{}, gvk, gvk.GroupVersion(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := managedfields.NewDefaultCRDFieldManager(plainTypes{managedfields.NewDeducedTypeConverter()}, plainConverter{customConverter{}}, customDefaulter{&Resource{}}, customCreater{}, gvk, gvk.GroupVersion(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	obj := func(spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "stable.example.com/v1", "kind": "Widget",
			"metadata": map[string]any{"name": "w", "namespace": "ns", "labels": map[string]any{"a": "b"}}, "spec": spec}}
	}
	empty, _ := customCreater{}.New(gvk)
	fields := Fields{fm: wrapped, pool: warm.New(1)}
	run := func(live runtime.Object, f func(live, obj runtime.Object) (runtime.Object, error), spec map[string]any, manager string) *unstructured.Unstructured {
		t.Helper()
		out, err := f(live, obj(spec))
		if err != nil {
			t.Fatal(err)
		}
		u, ok := out.(*unstructured.Unstructured)
		if !ok {
			t.Fatalf("%s: result is %T", manager, out)
		}
		return u
	}
	direct := func(manager string) func(live, obj runtime.Object) (runtime.Object, error) {
		return func(live, obj runtime.Object) (runtime.Object, error) { return fm.Update(live, obj, manager) }
	}
	viaFields := func(manager string) func(live, obj runtime.Object) (runtime.Object, error) {
		return func(live, obj runtime.Object) (runtime.Object, error) { return fields.Update(live, obj, manager) }
	}
	spec1 := map[string]any{"size": int64(3), "items": []any{map[string]any{"name": "a"}}, "text": "x"}
	spec2 := map[string]any{"size": int64(4), "items": []any{map[string]any{"name": "a"}}, "text": "x", "extra": true}
	w1 := run(empty, direct("alpha"), spec1, "alpha")
	g1 := run(empty, viaFields("alpha"), spec1, "alpha")
	w2 := run(w1, direct("beta"), spec2, "beta")
	g2 := run(g1, viaFields("beta"), spec2, "beta")
	for i, pair := range [][2]*unstructured.Unstructured{{g1, w1}, {g2, w2}} {
		g, w := withoutTimes(pair[0].GetManagedFields()), withoutTimes(pair[1].GetManagedFields())
		if len(w) != i+1 || !reflect.DeepEqual(g, w) {
			t.Errorf("write %d: managed fields\n got %s\nwant %s", i+1, fmt.Sprint(g), fmt.Sprint(w))
		}
	}
}

func withoutTimes(entries []metav1.ManagedFieldsEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, fmt.Sprintf("%s %s %s %s %s", e.Manager, e.Operation, e.APIVersion, e.Subresource, e.FieldsV1.Raw))
	}
	return out
}
