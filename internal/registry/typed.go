package registry

import (
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The adapters below let a strategy write its hooks over its own type; the
// one type assertion each hook needs happens here. A Resource only ever
// hands a hook objects of its own kind (New makes them), so the assertion
// holds by construction.

func asDefault[T runtime.Object](f func(T)) func(runtime.Object) {
	return func(o runtime.Object) { f(o.(T)) }
}

func asValidate[T runtime.Object](f func(T) field.ErrorList) func(runtime.Object) field.ErrorList {
	return func(o runtime.Object) field.ErrorList { return f(o.(T)) }
}

func asValidateUpdate[T runtime.Object](f func(obj, old T) field.ErrorList) func(runtime.Object, runtime.Object) field.ErrorList {
	return func(o, old runtime.Object) field.ErrorList { return f(o.(T), old.(T)) }
}

func asFields[T runtime.Object](f func(T) fields.Set) func(runtime.Object) fields.Set {
	return func(o runtime.Object) fields.Set { return f(o.(T)) }
}

func asRow[T runtime.Object](f func(T, bool) []any) func(runtime.Object, bool) []any {
	return func(o runtime.Object, wide bool) []any { return f(o.(T), wide) }
}
