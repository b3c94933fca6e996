package registry

import (
	"fmt"
	"slices"
	"sync"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsapply "k8s.io/apiextensions-apiserver/pkg/client/applyconfiguration"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	smdschema "sigs.k8s.io/structured-merge-diff/v6/schema"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// typeConverter is the field manager's bridge from objects to
// structured-merge-diff values. It differs from client-go's in one way: a
// typed Go object converted for an Update (the field manager passes
// AllowDuplicates then) is not walked a second time to validate it against
// its schema. A Go struct of a built-in type conforms to the schema
// generated from that very struct, and with duplicates allowed a
// validation has nothing else to find, so the walk only cost time: about a
// third of the field manager's work per pod create. Unstructured objects
// and every conversion without AllowDuplicates (the object of an apply)
// are validated as before.
type typeConverter struct {
	inner managedfields.TypeConverter
	// types caches each kind's schema and root type, read once from a
	// validated conversion of an empty object of the kind.
	types sync.Map // schema.GroupVersionKind -> rootType
	new   func(schema.GroupVersionKind) (runtime.Object, error)
}

type rootType struct {
	schema *smdschema.Schema
	ref    smdschema.TypeRef
}

var _ managedfields.TypeConverter = (*typeConverter)(nil)

func newTypeConverter(scheme *runtime.Scheme) *typeConverter {
	return &typeConverter{inner: byGroup{
		core:          applyconfigurations.NewTypeConverter(scheme),
		apiextensions: apiextensionsapply.NewTypeConverter(scheme),
	}, new: scheme.New}
}

// byGroup picks the schemas of an object's group: client-go's for the core
// groups, apiextensions' for CustomResourceDefinitions.
type byGroup struct{ core, apiextensions managedfields.TypeConverter }

func (b byGroup) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	if obj.GetObjectKind().GroupVersionKind().Group == apiextensionsv1.GroupName {
		return b.apiextensions.ObjectToTyped(obj, opts...)
	}
	return b.core.ObjectToTyped(obj, opts...)
}

func (b byGroup) TypedToObject(v *typed.TypedValue) (runtime.Object, error) {
	return b.core.TypedToObject(v)
}

// ObjectToTyped converts obj, validating it unless it is a typed object
// converted with duplicates allowed.
func (c *typeConverter) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	if _, ok := obj.(*unstructured.Unstructured); ok || !slices.Contains(opts, typed.AllowDuplicates) {
		return c.inner.ObjectToTyped(obj, opts...)
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	root, err := c.root(gvk)
	if err != nil {
		return nil, err
	}
	v, err := value.NewValueReflect(obj)
	if err != nil {
		return nil, fmt.Errorf("reflect %s: %w", gvk.Kind, err)
	}
	return typed.AsTypedUnvalidated(v, root.schema, root.ref), nil
}

// TypedToObject is client-go's conversion back to an object.
func (c *typeConverter) TypedToObject(v *typed.TypedValue) (runtime.Object, error) {
	return c.inner.TypedToObject(v)
}

func (c *typeConverter) root(gvk schema.GroupVersionKind) (rootType, error) {
	if r, ok := c.types.Load(gvk); ok {
		return r.(rootType), nil
	}
	empty, err := c.new(gvk)
	if err != nil {
		return rootType{}, fmt.Errorf("new %s: %w", gvk, err)
	}
	empty.GetObjectKind().SetGroupVersionKind(gvk)
	tv, err := c.inner.ObjectToTyped(empty, typed.AllowDuplicates)
	if err != nil {
		return rootType{}, err
	}
	r := rootType{schema: tv.Schema(), ref: tv.TypeRef()}
	c.types.Store(gvk, r)
	return r, nil
}
