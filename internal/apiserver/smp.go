package apiserver

import (
	"reflect"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	kjson "sigs.k8s.io/json"

	"github.com/skiff-sh/skiff/internal/registry"
)

// strategicPatch applies a strategic merge patch to cur as upstream does:
// on an unstructured map, converted back into a typed object directly,
// without a round trip through JSON. With validation Strict an unknown or
// duplicate field is a 400; with Warn it is returned as a warning.
//
// Only the top-level fields the patch names are converted: a strategic
// merge patch leaves every other top-level field as it is, and converting
// a pod's spec to a map and back only to keep it was most of the cost of
// a status patch. A patch with a directive, apiVersion or kind at its top
// level, or an object that is not a plain struct, takes the whole object.
func strategicPatch(res *registry.Resource, cur runtime.Object, patch []byte, validation string) (runtime.Object, []string, error) {
	return strategicPatchFields(res, cur, patch, validation, true)
}

// strategicPatchFields is strategicPatch, converting only the patched
// top-level fields when partial allows it.
func strategicPatchFields(res *registry.Resource, cur runtime.Object, patch []byte, validation string, partial bool) (runtime.Object, []string, error) {
	var patchMap map[string]any
	var strict []error
	var err error
	if validation == "Strict" || validation == "Warn" {
		strict, err = kjson.UnmarshalStrict(patch, &patchMap)
	} else {
		err = kjson.UnmarshalCaseSensitivePreserveInts(patch, &patchMap)
	}
	if err != nil {
		return nil, nil, badRequest("the strategic merge patch is malformed: %v", err)
	}
	fields, ok := patchedFields(cur, patchMap)
	partial = partial && ok
	src := cur
	if partial {
		src = fields.only(cur)
	}
	curMap, err := runtime.DefaultUnstructuredConverter.ToUnstructured(src)
	if err != nil {
		return nil, nil, err
	}
	if partial {
		// The zero values of the fields left out are not part of the patch.
		for k := range curMap {
			if _, ok := patchMap[k]; !ok && k != "apiVersion" && k != "kind" {
				delete(curMap, k)
			}
		}
	}
	patched, err := strategicpatch.StrategicMergeMapPatch(curMap, patchMap, res.New())
	if err != nil {
		return nil, nil, badRequest("the strategic merge patch could not be applied: %v", err)
	}
	u := unstructured.Unstructured{Object: patched}
	if gvk := u.GroupVersionKind(); gvk != res.GVK() {
		return nil, nil, badRequest("the patch changed apiVersion or kind to %s", gvk)
	}
	obj := res.New()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(patched, obj, validation == "Strict" || validation == "Warn"); err != nil {
		if !runtime.IsStrictDecodingError(err) {
			return nil, nil, badPatch(err)
		}
		strict = append(strict, err)
	}
	var warnings []string
	for _, e := range strict {
		warnings = append(warnings, strictErrors(e)...)
	}
	if len(warnings) > 0 && validation == "Strict" {
		return nil, nil, badRequest("strict decoding error: %s", strings.Join(warnings, ", "))
	}
	if partial {
		obj = fields.merge(cur, obj)
	}
	return obj, warnings, nil
}

// topLevel is the set of a struct type's top-level fields a patch names,
// by struct field index.
type topLevel struct {
	inline []int // embedded inline fields (TypeMeta): always carried
	named  []int
}

// jsonFields caches, per object struct type, its top-level JSON field
// names and its inline fields.
var jsonFields sync.Map // reflect.Type -> *structFields

type structFields struct {
	byName map[string]int
	inline []int
}

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := jsonFields.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{byName: map[string]int{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		switch {
		case name == "" && sf.Anonymous:
			// An embedded struct without a name is inlined (TypeMeta).
			f.inline = append(f.inline, i)
		case name != "" && name != "-" && sf.IsExported():
			f.byName[name] = i
		}
	}
	jsonFields.Store(t, f)
	return f
}

// patchedFields reports the top-level fields of cur that patch names, and
// false when the patch must be applied to the whole object: a top-level
// key that is a directive ($patch, $retainKeys, $setElementOrder/...),
// apiVersion or kind (inline fields), or no field at all (an unknown
// field, which the whole conversion reports).
func patchedFields(cur runtime.Object, patch map[string]any) (topLevel, bool) {
	v := reflect.ValueOf(cur)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return topLevel{}, false
	}
	f := fieldsOf(v.Elem().Type())
	tl := topLevel{inline: f.inline, named: make([]int, 0, len(patch))}
	for k := range patch {
		i, ok := f.byName[k]
		if !ok {
			return topLevel{}, false
		}
		tl.named = append(tl.named, i)
	}
	return tl, true
}

// only is a new object holding cur's inline and named fields, shared with
// cur (it is only read), every other field zero.
func (tl topLevel) only(cur runtime.Object) runtime.Object {
	cv := reflect.ValueOf(cur).Elem()
	out := reflect.New(cv.Type())
	ov := out.Elem()
	for _, i := range tl.inline {
		ov.Field(i).Set(cv.Field(i))
	}
	for _, i := range tl.named {
		ov.Field(i).Set(cv.Field(i))
	}
	return out.Interface().(runtime.Object)
}

// merge is a deep copy of cur with the named fields taken from patched.
func (tl topLevel) merge(cur, patched runtime.Object) runtime.Object {
	out := cur.DeepCopyObject()
	ov, pv := reflect.ValueOf(out).Elem(), reflect.ValueOf(patched).Elem()
	for _, i := range tl.named {
		ov.Field(i).Set(pv.Field(i))
	}
	return out
}
