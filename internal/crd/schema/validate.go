package schema

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	openapierrors "k8s.io/kube-openapi/pkg/validation/errors"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
)

// Validator checks custom objects against one version's schema.
type Validator struct {
	schema *spec.Schema
	// sv is made once and shared by every request, as upstream keeps one
	// per served version.
	sv *validate.SchemaValidator
	// quick passes valid objects without sv (see quick).
	quick *quick
}

// NewValidator prepares s for validating objects.
func NewValidator(s *Props) (*Validator, error) {
	converted, err := ToOpenAPI(s)
	if err != nil {
		return nil, err
	}
	forValidation(converted)
	return &Validator{schema: converted, sv: validate.NewSchemaValidator(converted, nil, "", strfmt.Default), quick: compileQuick(converted)}, nil
}

// Validate checks obj, a custom object's JSON form, and names each broken
// rule at its field, with the messages upstream gives (kube-openapi's
// validator, as upstream's).
func (v *Validator) Validate(obj map[string]any) field.ErrorList {
	if v == nil || v.schema == nil {
		return nil
	}
	if v.quick.valid(obj) {
		return nil
	}
	res := v.sv.Validate(obj)
	var errs field.ErrorList
	for _, e := range res.Errors {
		errs = append(errs, toFieldError(e))
	}
	return errs
}

// toFieldError maps one validator error to a field error of the kind
// upstream reports for it.
func toFieldError(err error) *field.Error {
	verr, ok := err.(*openapierrors.Validation)
	if !ok {
		return field.Invalid(field.NewPath(""), "", err.Error())
	}
	path := errorPath(verr.Name)
	value := verr.Value
	if value == nil {
		value = ""
	}
	switch verr.Code() {
	case openapierrors.RequiredFailCode:
		return field.Required(path, "")
	case openapierrors.EnumFailCode:
		var allowed []string
		for _, v := range verr.Values {
			allowed = append(allowed, fmt.Sprint(v))
		}
		return field.NotSupported(path, value, allowed)
	case openapierrors.TooLongFailCode:
		max := int64(-1)
		if i, ok := verr.Valid.(int64); ok {
			max = i
		}
		return field.TooLongMaxLength(path, value, int(max))
	case openapierrors.MaxItemsFailCode, openapierrors.TooManyPropertiesCode:
		actual, max := int64(-1), int64(-1)
		if i, ok := verr.Value.(int64); ok {
			actual = i
		}
		if i, ok := verr.Valid.(int64); ok {
			max = i
		}
		return field.TooMany(path, int(actual), int(max))
	case openapierrors.InvalidTypeCode:
		return field.TypeInvalid(path, value, verr.Error())
	}
	return field.Invalid(path, value, verr.Error())
}

// errorPath turns the validator's dotted name ("spec.ports[0].port") into
// a field path.
func errorPath(name string) *field.Path {
	name = strings.TrimPrefix(name, ".")
	if name == "" {
		return field.NewPath("<root>")
	}
	return field.NewPath(name)
}
