package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/jsonpath"

	crdschema "github.com/skiff-sh/skiff/internal/crd/schema"
	"github.com/skiff-sh/skiff/internal/objectjson"
)

// Custom is what a custom resource's entry carries beyond the generic
// Resource: the definition it comes from and its schema's operations.
type Custom struct {
	// CRD is the definition's name (plural.group).
	CRD string
	// Schema is this version's structural schema.
	Schema *apiextensionsv1.JSONSchemaProps
	// StorageVersion is the version objects are stored in.
	StorageVersion string
	// Deprecation is the warning every request to a deprecated version
	// gets ("" when the version is not deprecated).
	Deprecation string
	// PatchStruct, for a kind skiff defines itself (APIService), is a Go
	// struct whose tags carry the kind's strategic-merge-patch
	// directives: such kinds take strategic merge patches, as upstream's
	// built-in kinds do (custom resources never do).
	PatchStruct any
	// Proto, for a kind skiff defines itself, is its protobuf form (custom
	// resources have none).
	Proto ProtoCodec

	validator *crdschema.Validator
	shape     *crdschema.Shape
	rules     *crdschema.Rules
	entry     *customEntry
	fields    map[string]Fields
}

// ProtoCodec turns an object of a kind skiff defines itself into its bare
// protobuf message and back.
type ProtoCodec struct {
	Marshal   func(obj runtime.Object) ([]byte, error)
	Unmarshal func(raw []byte) (runtime.Object, error)
}

// UnknownFields prunes obj (a custom object) by the schema and returns the
// paths it removed, for the API server's field validation.
func (c *Custom) UnknownFields(obj runtime.Object) []string {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || c.Schema == nil {
		return nil
	}
	return c.shape.Prune(u.Object)
}

// customResources describes the served versions of a definition as
// resources, with the names it has been granted (status.acceptedNames).
// Objects are named as nameFn says (custom resources: DNS subdomains).
func customResources(c *apiextensionsv1.CustomResourceDefinition, nameFn func(string, bool) []string) ([]*Resource, error) {
	names := c.Status.AcceptedNames
	storage := ""
	for _, v := range c.Spec.Versions {
		if v.Storage {
			storage = v.Name
		}
	}
	var out []*Resource
	for i := range c.Spec.Versions {
		v := &c.Spec.Versions[i]
		if !v.Served {
			continue
		}
		gv := schema.GroupVersion{Group: c.Spec.Group, Version: v.Name}
		gvk, listGVK := gv.WithKind(names.Kind), gv.WithKind(names.ListKind)
		r := &Resource{
			GVR: gv.WithResource(names.Plural), Kind: names.Kind, SingularName: names.Singular,
			Namespaced: c.Spec.Scope == apiextensionsv1.NamespaceScoped,
			ShortNames: names.ShortNames, Categories: names.Categories,
			StoragePrefix: c.Spec.Group + "/" + names.Plural,
			Status:        v.Subresources != nil && v.Subresources.Status != nil,
			New: func() runtime.Object {
				u := &unstructured.Unstructured{Object: map[string]any{}}
				u.SetGroupVersionKind(gvk)
				return u
			},
			NewList: func() runtime.Object {
				l := &unstructured.UnstructuredList{Object: map[string]any{}}
				l.SetGroupVersionKind(listGVK)
				return l
			},
			NameFn: nameFn,
		}
		cu := &Custom{CRD: c.Name, StorageVersion: storage}
		if v.Deprecated {
			cu.Deprecation = gv.String() + " " + names.Kind + " is deprecated"
			if v.DeprecationWarning != nil {
				cu.Deprecation = *v.DeprecationWarning
			}
		}
		if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
			// Shared, not copied: the definition comes from the watch cache,
			// whose objects are never changed in place.
			cu.Schema = v.Schema.OpenAPIV3Schema
			val, err := crdschema.NewValidator(cu.Schema)
			if err != nil {
				return nil, fmt.Errorf("schema of %s: %w", gvk, err)
			}
			cu.validator = val
			cu.shape = crdschema.NewShape(cu.Schema)
			rules, errs := crdschema.CompileRules(cu.Schema, field.NewPath("spec", "versions").Index(i).Child("schema", "openAPIV3Schema"))
			if len(errs) > 0 {
				return nil, fmt.Errorf("validation rules of %s: %w", gvk, errs.ToAggregate())
			}
			cu.rules = rules
		}
		r.Custom = cu
		r.Default = func(obj runtime.Object) {
			if u, ok := obj.(*unstructured.Unstructured); ok && cu.Schema != nil {
				cu.shape.Prune(u.Object)
				cu.shape.Default(u.Object)
			}
		}
		r.Validate = func(obj runtime.Object) field.ErrorList { return validateCustom(gvk, cu, obj, nil, nil) }
		r.ValidateUpdateWarning = func(obj, old runtime.Object, warn func(string)) field.ErrorList {
			return validateCustom(gvk, cu, obj, old, warn)
		}
		if v.Name != storage {
			r.StorageGVK = schema.GroupVersionKind{Group: c.Spec.Group, Version: storage, Kind: names.Kind}
			r.ToStorage = func(obj runtime.Object) (runtime.Object, error) { return withVersion(obj, r.StorageGVK), nil }
		}
		// Objects read from storage get the version's defaults, as
		// upstream defaults on decoding (a default added after an object
		// was written shows on read).
		// Without defaults, the storage version's objects are served as
		// stored (and their encodings cached once).
		switch {
		case cu.shape.HasDefaults():
			r.FromStorage = func(obj runtime.Object) (runtime.Object, error) {
				out := withVersion(obj, gvk)
				cu.shape.Default(out.(*unstructured.Unstructured).Object)
				return out, nil
			}
		case v.Name != storage:
			r.FromStorage = func(obj runtime.Object) (runtime.Object, error) { return withVersion(obj, gvk), nil }
		}
		r.Columns, r.Row = customTable(v.AdditionalPrinterColumns)
		if paths := selectableFields(v.SelectableFields); len(paths) > 0 {
			r.Fields = func(obj runtime.Object) fields.Set { return selectedFields(paths, obj) }
		}
		if v.Subresources != nil && v.Subresources.Scale != nil {
			withCustomScale(r, v.Subresources.Scale)
		}
		r.OnCreate = func(context.Context, runtime.Object, bool) error {
			if cu.entry != nil && cu.entry.terminating.Load() {
				return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 405, Reason: metav1.StatusReasonMethodNotAllowed,
					Message: "create not allowed while custom resource definition is terminating"}}
			}
			return nil
		}
		out = append(out, r)
	}
	return out, nil
}

// validateCustom checks a custom object: its kind and apiVersion are the
// resource's, and it follows the version's schema and CEL rules. On update
// the rules see the old object (transition rules), and values unchanged
// from it are ratcheted: their schema errors are dropped, their failed
// rules only warn.
func validateCustom(gvk schema.GroupVersionKind, cu *Custom, obj, old runtime.Object, warn func(string)) field.ErrorList {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("%T is not a custom object", obj))}
	}
	var errs field.ErrorList
	if u.GetKind() != gvk.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), u.GetKind(), "must be "+gvk.Kind))
	}
	if u.GetAPIVersion() != gvk.GroupVersion().String() {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), u.GetAPIVersion(), "must be "+gvk.GroupVersion().String()))
	}
	var oldObj map[string]any
	if o, ok := old.(*unstructured.Unstructured); ok {
		oldObj = o.Object
	}
	if oldObj != nil {
		errs = append(errs, cu.validator.ValidateUpdate(u.Object, oldObj)...)
	} else {
		errs = append(errs, cu.validator.Validate(u.Object)...)
	}
	if cu.rules.Empty() {
		return errs
	}
	if blockingErr(errs) {
		// The rules were written for values of the schema's shape.
		return append(errs, field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"))
	}
	return append(errs, cu.rules.Validate(u.Object, oldObj, warn)...)
}

// blockingErr reports whether errs holds an error after which upstream
// does not run a definition's CEL rules: a wrong type, a missing required
// field, a value outside its enum, or one too long or with too many items.
func blockingErr(errs field.ErrorList) bool {
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true
		}
	}
	return false
}

// withVersion is a copy of a custom object at another version of its kind
// (the None conversion: only apiVersion changes).
func withVersion(obj runtime.Object, gvk schema.GroupVersionKind) runtime.Object {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj
	}
	out := u.DeepCopy()
	out.SetAPIVersion(gvk.GroupVersion().String())
	return out
}

// customTable builds the Table form from a version's printer columns:
// Name first, then each column by its JSONPath; with none, Age, as upstream.
func customTable(cols []apiextensionsv1.CustomResourceColumnDefinition) ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	if len(cols) == 0 {
		cols = []apiextensionsv1.CustomResourceColumnDefinition{{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp",
			Description: "CreationTimestamp is a timestamp representing the server time when this object was created."}}
	}
	defs := []metav1.TableColumnDefinition{{Name: "Name", Type: "string", Format: "name", Description: nameCol.Description}}
	paths := make([]*jsonpath.JSONPath, len(cols))
	for i, c := range cols {
		defs = append(defs, metav1.TableColumnDefinition{Name: c.Name, Type: c.Type, Format: c.Format, Description: c.Description, Priority: c.Priority})
		jp := jsonpath.New(c.Name).AllowMissingKeys(true)
		if err := jp.Parse("{" + c.JSONPath + "}"); err == nil {
			paths[i] = jp
		}
	}
	row := func(obj runtime.Object, _ bool) []any {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return nil
		}
		cells := []any{u.GetName()}
		for i, c := range cols {
			cells = append(cells, cell(paths[i], c.Type, u.Object))
		}
		return cells
	}
	return defs, row
}

// cell is one printer column's value: nil when the path finds nothing or a
// value of another type; a date as its age, as kubectl shows it.
func cell(jp *jsonpath.JSONPath, typ string, obj map[string]any) any {
	if jp == nil {
		return nil
	}
	results, err := jp.FindResults(obj)
	if err != nil || len(results) == 0 || len(results[0]) == 0 {
		return nil
	}
	v := results[0][0].Interface()
	switch typ {
	case "date":
		s, ok := v.(string)
		if !ok {
			return nil
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil
		}
		return duration.HumanDuration(time.Since(t))
	case "integer":
		if i, ok := v.(int64); ok {
			return i
		}
		return nil
	case "number":
		switch n := v.(type) {
		case int64:
			return float64(n)
		case float64:
			return n
		}
		return nil
	case "boolean":
		if b, ok := v.(bool); ok {
			return b
		}
		return nil
	}
	if s, ok := v.(string); ok {
		return s
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

type selectable struct {
	name string
	jp   *jsonpath.JSONPath
}

func selectableFields(list []apiextensionsv1.SelectableField) []selectable {
	var out []selectable
	for _, f := range list {
		jp := jsonpath.New(f.JSONPath).AllowMissingKeys(true)
		if err := jp.Parse("{" + f.JSONPath + "}"); err != nil {
			continue
		}
		out = append(out, selectable{name: strings.TrimPrefix(f.JSONPath, "."), jp: jp})
	}
	return out
}

// selectedFields are an object's selectable field values (empty when
// absent, so the field is known even on an empty object).
func selectedFields(paths []selectable, obj runtime.Object) fields.Set {
	set := fields.Set{}
	u, _ := obj.(*unstructured.Unstructured)
	for _, p := range paths {
		set[p.name] = ""
		if u == nil {
			continue
		}
		if res, err := p.jp.FindResults(u.Object); err == nil && len(res) > 0 && len(res[0]) > 0 {
			set[p.name] = fmt.Sprint(res[0][0].Interface())
		}
	}
	return set
}

// customCodec stores custom objects as JSON, as upstream does.
type customCodec struct{}

func (customCodec) Encode(obj runtime.Object) ([]byte, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok && u.Object != nil {
		return objectjson.Marshal(u.Object)
	}
	return json.Marshal(obj)
}

func (customCodec) Decode(data []byte) (runtime.Object, error) {
	if m, ok := objectjson.Decode(data); ok {
		if kind, _ := m["kind"].(string); kind != "" {
			return &unstructured.Unstructured{Object: m}, nil
		}
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("decode custom object: %w", err)
	}
	return u, nil
}
