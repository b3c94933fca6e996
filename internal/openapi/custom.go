package openapi

import (
	"encoding/json"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/registry"
)

// metaPrefix names the apimachinery meta types custom documents refer to.
const metaPrefix = "io.k8s.apimachinery."

// kindName is the definition name of r's kind: the Go type's for a
// built-in resource, the reversed group, version and kind for a custom one
// (com.example.stable.v1.CronTab), as upstream names them.
func kindName(r *registry.Resource) string {
	if r.Custom != nil {
		return customName(r.GVK())
	}
	return defName(r.New())
}

func customName(gvk schema.GroupVersionKind) string {
	parts := strings.Split(gvk.Group, ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".") + "." + gvk.Version + "." + gvk.Kind
}

// metaSchemas are the meta types' schemas (ObjectMeta, ListMeta, Status,
// ...), the part of the built-in schemas a custom document needs.
func metaSchemas(all map[string]any) map[string]any {
	out := map[string]any{}
	for name, s := range all {
		if strings.HasPrefix(name, metaPrefix) {
			out[name] = s
		}
	}
	return out
}

// customDefinitions are the schemas of a custom resource's kind and list
// kind, from its definition's schema: apiVersion, kind and metadata are
// the object's own, as upstream publishes them. The v2 form drops what
// OpenAPI v2 cannot say (nullable, anyOf, oneOf, not).
func customDefinitions(r *registry.Resource, d dialect) map[string]any {
	gvk := r.GVK()
	root := map[string]any{"type": "object"}
	if r.Custom.Schema != nil {
		if raw, err := json.Marshal(r.Custom.Schema); err == nil {
			_ = json.Unmarshal(raw, &root)
		}
	}
	if d.v2 {
		stripForV2(root)
	}
	props, _ := root["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		root["properties"] = props
	}
	props["apiVersion"] = map[string]any{"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}
	props["kind"] = map[string]any{"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}
	props["metadata"] = d.metaRef("ObjectMeta", "Standard object's metadata.")
	root["x-kubernetes-group-version-kind"] = []map[string]string{{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}}
	name := customName(gvk)
	list := map[string]any{
		"type": "object", "required": []string{"items"},
		"properties": map[string]any{
			"apiVersion": props["apiVersion"], "kind": props["kind"],
			"items":    map[string]any{"type": "array", "description": "List of " + r.Resource() + ".", "items": map[string]any{"$ref": d.refBase + name}},
			"metadata": d.metaRef("ListMeta", "Standard list metadata."),
		},
		"x-kubernetes-group-version-kind": []map[string]string{{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind + "List"}},
	}
	return map[string]any{name: root, name + "List": list}
}

// metaRef refers to a meta type with a description (v3 wraps the
// reference in allOf, as the built-in documents do).
func (d dialect) metaRef(kind, desc string) map[string]any {
	ref := map[string]any{"$ref": d.refBase + metaPrefix + "pkg.apis.meta.v1." + kind}
	if d.v2 {
		ref["description"] = desc
		return ref
	}
	return map[string]any{"allOf": []any{ref}, "description": desc}
}

// stripForV2 removes, throughout a schema, the keywords OpenAPI v2 lacks
// (and, as upstream's v2 publishing, x-kubernetes-preserve-unknown-fields).
func stripForV2(s map[string]any) {
	for _, k := range []string{"nullable", "anyOf", "oneOf", "not", "x-kubernetes-validations", "x-kubernetes-preserve-unknown-fields"} {
		delete(s, k)
	}
	for k, v := range s {
		switch v := v.(type) {
		case map[string]any:
			if k == "properties" {
				for _, p := range v {
					if pm, ok := p.(map[string]any); ok {
						stripForV2(pm)
					}
				}
				continue
			}
			if k == "default" || k == "example" {
				continue
			}
			stripForV2(v)
		case []any:
			if k == "allOf" {
				for _, item := range v {
					if im, ok := item.(map[string]any); ok {
						stripForV2(im)
					}
				}
			}
		}
	}
}
