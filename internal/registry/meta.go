package registry

import (
	"reflect"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func secondsDuration(s int64) time.Duration { return time.Duration(s) * time.Second }

// The spec/status split is done by field name: every built-in type with a
// status subresource keeps its desired state in fields other than
// TypeMeta, ObjectMeta and Status.

func structOf(obj runtime.Object) reflect.Value {
	v := reflect.ValueOf(obj)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	return v
}

// A custom object (unstructured) is split the same way by its top-level
// keys: status is "status", the desired state every key but apiVersion,
// kind, metadata and status.

func resetStatus(obj runtime.Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		delete(u.Object, "status")
		return
	}
	if f := structOf(obj).FieldByName("Status"); f.IsValid() && f.CanSet() {
		f.Set(reflect.Zero(f.Type()))
	}
}

func keepStatus(obj, old runtime.Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		delete(u.Object, "status")
		if st, ok := old.(*unstructured.Unstructured).Object["status"]; ok {
			u.Object["status"] = runtime.DeepCopyJSONValue(st)
		}
		return
	}
	n, o := structOf(obj).FieldByName("Status"), structOf(old).FieldByName("Status")
	if n.IsValid() && n.CanSet() && o.IsValid() {
		n.Set(o)
	}
}

// keepSpec copies every non-metadata, non-status field of old into obj.
func keepSpec(obj, old runtime.Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		for k := range u.Object {
			if !customMetaKeys[k] {
				delete(u.Object, k)
			}
		}
		for k, v := range old.(*unstructured.Unstructured).Object {
			if !customMetaKeys[k] {
				u.Object[k] = runtime.DeepCopyJSONValue(v)
			}
		}
		return
	}
	n, o := structOf(obj), structOf(old)
	for i := range n.NumField() {
		switch n.Type().Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		n.Field(i).Set(o.Field(i))
	}
}

// customMetaKeys are a custom object's top-level keys outside its desired
// state.
var customMetaKeys = map[string]bool{"apiVersion": true, "kind": true, "metadata": true, "status": true}

// customSpecChanged compares the desired state of two custom objects.
func customSpecChanged(n, o map[string]any) bool {
	for k, v := range n {
		if customMetaKeys[k] {
			continue
		}
		if ov, ok := o[k]; !ok || !apiequality.Semantic.DeepEqual(v, ov) {
			return true
		}
	}
	for k := range o {
		if _, ok := n[k]; !ok && !customMetaKeys[k] {
			return true
		}
	}
	return false
}

func hasSpec(obj runtime.Object) bool {
	if _, ok := obj.(*unstructured.Unstructured); ok {
		return true
	}
	return structOf(obj).FieldByName("Spec").IsValid()
}

// specChanged reports a change to the desired state (what bumps generation).
func specChanged(obj, old runtime.Object) bool {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if customSpecChanged(u.Object, old.(*unstructured.Unstructured).Object) {
			return true
		}
	} else {
		n, o := structOf(obj), structOf(old)
		f := n.FieldByName("Spec")
		if !f.IsValid() {
			return false
		}
		if !apiequality.Semantic.DeepEqual(f.Interface(), o.FieldByName("Spec").Interface()) {
			return true
		}
	}
	// Deletion is a change of desired state too, as upstream counts it.
	na, _ := meta.Accessor(obj)
	oa, _ := meta.Accessor(old)
	return na.GetDeletionTimestamp() != nil && oa.GetDeletionTimestamp() == nil
}

// validateMeta checks metadata as upstream does for every object: name
// format, namespace, labels, annotations, finalizers, owner references, and
// on update the immutable fields.
func validateMeta(r *Resource, obj, old runtime.Object) field.ErrorList {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("metadata"), err)}
	}
	nameFn := apivalidation.NameIsDNSSubdomain
	if r.NameFn != nil {
		nameFn = r.NameFn
	}
	errs := apivalidation.ValidateObjectMetaAccessor(acc, r.Namespaced, nameFn, field.NewPath("metadata"))
	if old != nil {
		oa, _ := meta.Accessor(old)
		errs = append(errs, apivalidation.ValidateObjectMetaAccessorUpdate(acc, oa, field.NewPath("metadata"))...)
	}
	return errs
}
