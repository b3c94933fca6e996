package registry

import (
	"reflect"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
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

func resetStatus(obj runtime.Object) {
	if f := structOf(obj).FieldByName("Status"); f.IsValid() && f.CanSet() {
		f.Set(reflect.Zero(f.Type()))
	}
}

func keepStatus(obj, old runtime.Object) {
	n, o := structOf(obj).FieldByName("Status"), structOf(old).FieldByName("Status")
	if n.IsValid() && n.CanSet() && o.IsValid() {
		n.Set(o)
	}
}

// keepSpec copies every non-metadata, non-status field of old into obj.
func keepSpec(obj, old runtime.Object) {
	n, o := structOf(obj), structOf(old)
	for i := range n.NumField() {
		switch n.Type().Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		n.Field(i).Set(o.Field(i))
	}
}

func hasSpec(obj runtime.Object) bool {
	return structOf(obj).FieldByName("Spec").IsValid()
}

// specChanged reports a change to the desired state (what bumps generation).
func specChanged(obj, old runtime.Object) bool {
	n, o := structOf(obj), structOf(old)
	f := n.FieldByName("Spec")
	if !f.IsValid() {
		return false
	}
	if !apiequality.Semantic.DeepEqual(f.Interface(), o.FieldByName("Spec").Interface()) {
		return true
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
