package openapi

import (
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// generator turns Go API types into OpenAPI schemas by reflection.
type generator struct {
	scheme *runtime.Scheme
	types  map[string]reflect.Type
	gvks   map[string][]schema.GroupVersionKind
}

func newGenerator(s *runtime.Scheme) *generator {
	return &generator{scheme: s, types: map[string]reflect.Type{}, gvks: map[string][]schema.GroupVersionKind{}}
}

func (g *generator) addKind(gvk schema.GroupVersionKind, obj runtime.Object) {
	t := reflect.TypeOf(obj).Elem()
	name := typeName(t)
	g.gvks[name] = append(g.gvks[name], gvk)
	g.walk(t)
}

// addMeta adds the meta types clients look up by kind.
func (g *generator) addMeta() {
	for _, gvk := range []schema.GroupVersionKind{{Version: "v1", Kind: "Status"}, {Group: "meta.k8s.io", Version: "v1", Kind: "Table"}, {Version: "v1", Kind: "DeleteOptions"}, {Group: "autoscaling", Version: "v1", Kind: "Scale"}} {
		if obj, err := g.scheme.New(gvk); err == nil {
			g.addKind(gvk, obj)
		}
	}
}

// defName is the OpenAPI definition name of an object's type.
func defName(obj any) string { return typeName(reflect.TypeOf(obj).Elem()) }

// typeName maps a Go type to upstream's definition name:
// k8s.io/api/core/v1.Pod -> io.k8s.api.core.v1.Pod.
func typeName(t reflect.Type) string {
	pkg := t.PkgPath()
	host, rest, _ := strings.Cut(pkg, "/")
	parts := strings.Split(host, ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".") + "." + strings.ReplaceAll(rest, "/", ".") + "." + t.Name()
}

// special are types whose JSON form is not their Go structure.
var special = map[string]map[string]any{
	"io.k8s.apimachinery.pkg.api.resource.Quantity":   {"type": "string", "description": "Quantity is a fixed-point representation of a number, e.g. 100m, 1Gi."},
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": true, "description": "IntOrString is a type that can hold an int32 or a string."},
	"io.k8s.apimachinery.pkg.apis.meta.v1.Time":       {"type": "string", "format": "date-time", "description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON."},
	"io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime":  {"type": "string", "format": "date-time", "description": "MicroTime is version of Time with microsecond level precision."},
	"io.k8s.apimachinery.pkg.apis.meta.v1.Duration":   {"type": "string", "description": "Duration is a wrapper around time.Duration which supports correct marshaling to YAML and JSON."},
	"io.k8s.apimachinery.pkg.runtime.RawExtension":    {"type": "object", "description": "RawExtension is used to hold extensions in external versions."},
	"io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1":   {"type": "object", "description": "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format."},
	"io.k8s.apimachinery.pkg.apis.meta.v1.Fields":     {"type": "object"},
}

func (g *generator) walk(t reflect.Type) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.Name() == "" {
		return
	}
	name := typeName(t)
	if _, ok := g.types[name]; ok {
		return
	}
	g.types[name] = t
	if special[name] != nil {
		return
	}
	for i := range t.NumField() {
		g.walk(t.Field(i).Type)
	}
}

// defs renders every collected definition with references under refPrefix.
func (g *generator) defs(refPrefix string) map[string]any {
	out := map[string]any{}
	for name, t := range g.types {
		if s := special[name]; s != nil {
			out[name] = s
			continue
		}
		out[name] = g.structSchema(t, refPrefix, name)
	}
	return out
}

func docs(t reflect.Type) map[string]string {
	if d, ok := reflect.New(t).Elem().Interface().(interface{ SwaggerDoc() map[string]string }); ok {
		return d.SwaggerDoc()
	}
	return nil
}

func (g *generator) structSchema(t reflect.Type, refPrefix, name string) map[string]any {
	props := map[string]any{}
	var required []string
	doc := docs(t)
	g.fields(t, refPrefix, props, &required, doc)
	s := map[string]any{"type": "object", "properties": props}
	if d := doc[""]; d != "" {
		s["description"] = d
	}
	if len(required) > 0 {
		s["required"] = required
	}
	if gvks := g.gvks[name]; len(gvks) > 0 {
		list := make([]map[string]string, len(gvks))
		for i, k := range gvks {
			list[i] = map[string]string{"group": k.Group, "version": k.Version, "kind": k.Kind}
		}
		s["x-kubernetes-group-version-kind"] = list
	}
	return s
}

func (g *generator) fields(t reflect.Type, refPrefix string, props map[string]any, required *[]string, doc map[string]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		jname, opts, _ := strings.Cut(tag, ",")
		if jname == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") || (f.Anonymous && jname == "") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			g.fields(ft, refPrefix, props, required, docs(ft))
			continue
		}
		if jname == "" {
			jname = f.Name
		}
		fs := g.typeSchema(f.Type, refPrefix)
		if d := doc[jname]; d != "" {
			// OpenAPI v3 ignores siblings of $ref, so upstream wraps the
			// reference in allOf there; its v2 document keeps the
			// description beside $ref, and kubectl before 1.27 (whose
			// strategic-merge schema reader knows no allOf) needs that.
			if _, isRef := fs["$ref"]; isRef && refPrefix != "#/definitions/" {
				fs = map[string]any{"allOf": []any{fs}}
			}
			fs["description"] = d
		}
		if key := f.Tag.Get("patchMergeKey"); key != "" {
			fs["x-kubernetes-patch-merge-key"] = key
		}
		if st := f.Tag.Get("patchStrategy"); st != "" {
			fs["x-kubernetes-patch-strategy"] = st
		}
		props[jname] = fs
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() == reflect.String {
			*required = append(*required, jname)
		}
	}
}

func (g *generator) typeSchema(t reflect.Type, refPrefix string) map[string]any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t.Name() != "" {
		return map[string]any{"$ref": refPrefix + typeName(t)}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int32, reflect.Int16, reflect.Int8, reflect.Uint16, reflect.Uint8:
		return map[string]any{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64, reflect.Uint:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number", "format": "double"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": g.typeSchema(t.Elem(), refPrefix)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.typeSchema(t.Elem(), refPrefix)}
	case reflect.Interface:
		return map[string]any{"type": "object"}
	}
	return map[string]any{"type": "object"}
}
