// Package schema is what a CustomResourceDefinition's structural schema
// does to a custom object: prune the fields it does not know, fill in its
// defaults and validate it, with upstream's rules and messages. Everything
// here is a pure function of the schema and the object's JSON form.
package schema

import (
	"encoding/json"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Props is one node of a structural schema.
type Props = apiextensionsv1.JSONSchemaProps

// ToOpenAPI is s as a kube-openapi schema, the form the validator, the
// published OpenAPI documents and the managed-fields type converter read.
// The two schemas share their JSON form; an int-or-string node, which
// carries no type of its own, validates as either.
func ToOpenAPI(s *Props) (*spec.Schema, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	out := &spec.Schema{}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decode schema: %w", err)
	}
	return out, nil
}

// forValidation adapts a converted schema for the validator: an
// int-or-string node accepts an integer or a string.
func forValidation(s *spec.Schema) {
	if s == nil {
		return
	}
	if v, ok := s.Extensions["x-kubernetes-int-or-string"].(bool); ok && v && len(s.Type) == 0 {
		s.Type = spec.StringOrArray{"integer", "string"}
	}
	for k, p := range s.Properties {
		forValidation(&p)
		s.Properties[k] = p
	}
	if s.Items != nil {
		forValidation(s.Items.Schema)
		for i := range s.Items.Schemas {
			forValidation(&s.Items.Schemas[i])
		}
	}
	if s.AdditionalProperties != nil {
		forValidation(s.AdditionalProperties.Schema)
	}
	for _, list := range [][]spec.Schema{s.AllOf, s.AnyOf, s.OneOf} {
		for i := range list {
			forValidation(&list[i])
		}
	}
	forValidation(s.Not)
}
