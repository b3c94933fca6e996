package crd

import (
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Structural checks that s is a structural schema as upstream requires of
// apiextensions.k8s.io/v1 definitions: every field says its type (unless it
// is int-or-string or keeps unknown fields), arrays say their items, an
// object has properties or additionalProperties but not both, the list and
// map markers are well formed, and the root is an object whose metadata
// constrains at most name and generateName.
func Structural(s *apiextensionsv1.JSONSchemaProps, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case s.Type == "":
		errs = append(errs, field.Required(path.Child("type"), "must not be empty at the root"))
	case s.Type != "object":
		errs = append(errs, field.Invalid(path.Child("type"), s.Type, "must be object at the root"))
	}
	if s.Nullable {
		errs = append(errs, field.Invalid(path.Child("nullable"), true, "must be false at the root"))
	}
	if m, ok := s.Properties["metadata"]; ok {
		errs = append(errs, rootMetadata(&m, path.Child("properties").Key("metadata"))...)
	}
	return append(errs, node(s, path, true)...)
}

// rootMetadata allows a root metadata schema to say only name and
// generateName are strings (with value validations).
func rootMetadata(m *apiextensionsv1.JSONSchemaProps, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.Type != "" && m.Type != "object" {
		errs = append(errs, field.Invalid(path.Child("type"), m.Type, "must be object"))
	}
	for k, p := range m.Properties {
		if (k != "name" && k != "generateName") || (p.Type != "" && p.Type != "string") {
			errs = append(errs, field.Forbidden(path, "must not specify anything other than name and generateName, but metadata is implicitly specified"))
			break
		}
	}
	if m.AdditionalProperties != nil || m.XPreserveUnknownFields != nil || m.XEmbeddedResource || len(m.Required) > 0 {
		errs = append(errs, field.Forbidden(path, "must not specify anything other than name and generateName, but metadata is implicitly specified"))
	}
	return errs
}

func node(s *apiextensionsv1.JSONSchemaProps, path *field.Path, root bool) field.ErrorList {
	var errs field.ErrorList
	if s.Ref != nil {
		errs = append(errs, field.Forbidden(path.Child("$ref"), "$ref is not supported"))
	}
	if s.XIntOrString && s.Type != "" {
		errs = append(errs, field.Invalid(path.Child("type"), s.Type, "must be empty to be structural"))
	}
	if s.XEmbeddedResource && s.Type != "object" {
		errs = append(errs, field.Invalid(path.Child("type"), s.Type, "must be object if x-kubernetes-embedded-resource is true"))
	}
	if s.Type == "array" && s.Items == nil {
		errs = append(errs, field.Required(path.Child("items"), "must be specified"))
	}
	if s.AdditionalProperties != nil {
		if len(s.Properties) > 0 {
			errs = append(errs, field.Forbidden(path.Child("additionalProperties"), "additionalProperties and properties are mutual exclusive"))
		}
		if s.AdditionalProperties.Schema == nil && !s.AdditionalProperties.Allows {
			errs = append(errs, field.Forbidden(path.Child("additionalProperties"), "must not be false"))
		}
	}
	errs = append(errs, markers(s, path)...)
	typed := func(c *apiextensionsv1.JSONSchemaProps, p *field.Path, what string) {
		if c.Type == "" && !c.XIntOrString && (c.XPreserveUnknownFields == nil || !*c.XPreserveUnknownFields) {
			errs = append(errs, field.Required(p.Child("type"), "must not be empty for specified "+what))
		}
		errs = append(errs, node(c, p, false)...)
	}
	for _, k := range sortedKeys(s.Properties) {
		if root && k == "metadata" {
			continue
		}
		p := s.Properties[k]
		typed(&p, path.Child("properties").Key(k), "object fields")
	}
	if s.Items != nil {
		if s.Items.Schema != nil {
			typed(s.Items.Schema, path.Child("items"), "array items")
		}
		if len(s.Items.JSONSchemas) > 0 {
			errs = append(errs, field.Forbidden(path.Child("items"), "items must be a schema object and not an array"))
		}
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		typed(s.AdditionalProperties.Schema, path.Child("additionalProperties"), "additionalProperties")
	}
	return errs
}

// markers checks x-kubernetes-list-type, -list-map-keys and -map-type.
func markers(s *apiextensionsv1.JSONSchemaProps, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.XListType != nil {
		lt := *s.XListType
		switch {
		case s.Type != "array":
			errs = append(errs, field.Invalid(path.Child("x-kubernetes-list-type"), lt, "must only be used if type == array"))
		case lt != "atomic" && lt != "set" && lt != "map":
			errs = append(errs, field.NotSupported(path.Child("x-kubernetes-list-type"), lt, []string{"atomic", "set", "map"}))
		case lt == "map":
			if len(s.XListMapKeys) == 0 {
				errs = append(errs, field.Required(path.Child("x-kubernetes-list-map-keys"), "must not be empty if x-kubernetes-list-type is map"))
			}
			if s.Items == nil || s.Items.Schema == nil || s.Items.Schema.Type != "object" {
				errs = append(errs, field.Invalid(path.Child("items").Child("type"), "", "must be object if parent array's x-kubernetes-list-type is map"))
			} else {
				for i, k := range s.XListMapKeys {
					if _, ok := s.Items.Schema.Properties[k]; !ok {
						errs = append(errs, field.Invalid(path.Child("x-kubernetes-list-map-keys").Index(i), k, "entries must all be names of item properties"))
					}
				}
			}
		}
	}
	if len(s.XListMapKeys) > 0 && (s.XListType == nil || *s.XListType != "map") {
		errs = append(errs, field.Forbidden(path.Child("x-kubernetes-list-map-keys"), "must only be used if x-kubernetes-list-type is map"))
	}
	if s.XMapType != nil {
		mt := *s.XMapType
		switch {
		case s.Type != "object":
			errs = append(errs, field.Invalid(path.Child("x-kubernetes-map-type"), mt, "must only be used if type == object"))
		case mt != "granular" && mt != "atomic":
			errs = append(errs, field.NotSupported(path.Child("x-kubernetes-map-type"), mt, []string{"granular", "atomic"}))
		}
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
