package schema

import (
	"slices"
	"strings"
)

// Prune removes from obj, a custom object's JSON form, every field its
// schema does not describe, as upstream does on every write, and returns
// the removed fields' paths (for fieldValidation's warnings and errors) in
// a stable order. At the root, and in embedded resources, apiVersion, kind
// and metadata are the object's own and always kept.
func Prune(obj map[string]any, s *Props) []string {
	var pruned []string
	pruneObject(obj, s, true, "", &pruned)
	slices.Sort(pruned)
	return pruned
}

func pruneValue(v any, s *Props, path string, pruned *[]string) {
	if s == nil {
		return
	}
	switch v := v.(type) {
	case map[string]any:
		pruneObject(v, s, s.XEmbeddedResource, path, pruned)
	case []any:
		if s.Items == nil || s.Items.Schema == nil {
			return
		}
		for i, item := range v {
			pruneValue(item, s.Items.Schema, path+"["+itoa(i)+"]", pruned)
		}
	}
}

func pruneObject(obj map[string]any, s *Props, resource bool, path string, pruned *[]string) {
	if s == nil {
		return
	}
	preserve := s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields
	for k, v := range obj {
		child := join(path, k)
		if resource && (k == "apiVersion" || k == "kind" || k == "metadata") {
			if k == "metadata" {
				if m, ok := v.(map[string]any); ok {
					pruneMetadata(m, child, pruned)
				}
			}
			continue
		}
		if p, ok := s.Properties[k]; ok {
			pruneValue(v, &p, child, pruned)
			continue
		}
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			pruneValue(v, s.AdditionalProperties.Schema, child, pruned)
			continue
		}
		if preserve || (s.AdditionalProperties != nil && s.AdditionalProperties.Allows) {
			continue
		}
		delete(obj, k)
		*pruned = append(*pruned, child)
	}
}

// metadataFields are ObjectMeta's JSON fields: any other is unknown and
// dropped, as decoding into ObjectMeta drops it upstream.
var metadataFields = map[string]bool{
	"name": true, "generateName": true, "namespace": true, "selfLink": true, "uid": true,
	"resourceVersion": true, "generation": true, "creationTimestamp": true, "deletionTimestamp": true,
	"deletionGracePeriodSeconds": true, "labels": true, "annotations": true, "ownerReferences": true,
	"finalizers": true, "managedFields": true,
}

func pruneMetadata(m map[string]any, path string, pruned *[]string) {
	for k := range m {
		if !metadataFields[k] {
			delete(m, k)
			*pruned = append(*pruned, join(path, k))
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	if strings.ContainsAny(k, ".[]") {
		return path + "[" + k + "]"
	}
	return path + "." + k
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
