package schema

import (
	"regexp"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// The CEL types of a schema's values, so that a rule naming a field the
// schema lacks, or comparing a string with a number, is refused when the
// definition is written, as upstream refuses it, not when an object is.
//
// Where the value an object holds at run time could be of another type
// than the schema's (numbers that decode as integers, strings of a time
// format upstream turns into timestamps, int-or-string, preserved unknown
// fields, embedded resources) the type is dyn, which the checker lets
// through: such rules are checked when they run, as before.

// declTypes is a cel.EnvOption's provider of one rule node's object types.
type declTypes struct {
	base    types.Provider
	objects map[string]map[string]*types.Type
}

// selfType is the CEL type of a value of s, its object types registered in
// objects under names starting with name; root adds the metadata fields
// every custom object has.
func selfType(s *Props, name string, root bool, objects map[string]map[string]*types.Type) *types.Type {
	if s == nil || s.XIntOrString || s.XEmbeddedResource || (s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields) {
		return types.DynType
	}
	switch s.Type {
	case "string":
		switch s.Format {
		case "byte", "date", "date-time", "datetime", "duration":
			return types.DynType
		}
		return types.StringType
	case "integer":
		return types.IntType
	case "boolean":
		return types.BoolType
	case "array":
		if s.Items == nil || s.Items.Schema == nil {
			return types.NewListType(types.DynType)
		}
		return types.NewListType(selfType(s.Items.Schema, name+"_items", false, objects))
	case "object":
		if s.AdditionalProperties != nil {
			if s.AdditionalProperties.Schema == nil {
				return types.NewMapType(types.StringType, types.DynType)
			}
			return types.NewMapType(types.StringType, selfType(s.AdditionalProperties.Schema, name+"_values", false, objects))
		}
		fields := map[string]*types.Type{}
		for k := range s.Properties {
			name, ok := celFieldName(k)
			if !ok {
				continue // no CEL name reaches it, as upstream
			}
			p := s.Properties[k]
			fields[name] = selfType(&p, name+"_"+nameUnsafe.ReplaceAllString(k, "_"), false, objects)
		}
		if root {
			meta := map[string]*types.Type{"name": types.StringType, "generateName": types.StringType}
			objects[name+"_metadata"] = meta
			fields["metadata"] = types.NewObjectType(name + "_metadata")
			fields["apiVersion"], fields["kind"] = types.StringType, types.StringType
		}
		objects[name] = fields
		return types.NewObjectType(name)
	}
	return types.DynType
}

// celFieldName is the name a rule reaches property k by, upstream's
// escaping: reserved words as __word__, and "__", ".", "-" and "/" spelled
// out; false for names no CEL identifier can stand for.
func celFieldName(k string) (string, bool) {
	if celReserved[k] {
		return "__" + k + "__", true
	}
	if !celEscapable.MatchString(k) {
		return "", false
	}
	return celEscaper.Replace(k), true
}

var (
	celEscapable = regexp.MustCompile(`^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$`)
	celEscaper   = strings.NewReplacer("__", "__underscores__", ".", "__dot__", "-", "__dash__", "/", "__slash__")
)

// needsEscaping reports whether a value of s holds, anywhere, a property
// whose CEL name is not its own: such values are handed to rules with
// their keys renamed (escapedValue).
func needsEscaping(s *Props) bool {
	if s == nil {
		return false
	}
	for k, p := range s.Properties {
		if name, ok := celFieldName(k); !ok || name != k || needsEscaping(&p) {
			return true
		}
	}
	if s.Items != nil && needsEscaping(s.Items.Schema) {
		return true
	}
	return s.AdditionalProperties != nil && needsEscaping(s.AdditionalProperties.Schema)
}

// escapedValue is v with the properties of its objects under their CEL
// names (map keys stay as they are); v itself is not changed.
func escapedValue(v any, s *Props) any {
	if s == nil {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			for k, e := range x {
				out[k] = escapedValue(e, s.AdditionalProperties.Schema)
			}
			return out
		}
		for k, e := range x {
			name, ok := celFieldName(k)
			if !ok {
				continue
			}
			if p, known := s.Properties[k]; known {
				e = escapedValue(e, &p)
			}
			out[name] = e
		}
		return out
	case []any:
		if s.Items == nil || s.Items.Schema == nil {
			return v
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = escapedValue(e, s.Items.Schema)
		}
		return out
	}
	return v
}

// celReserved are words a CEL field cannot be named without escaping.
var celReserved = map[string]bool{
	"true": true, "false": true, "null": true, "in": true, "as": true, "break": true, "const": true, "continue": true,
	"else": true, "for": true, "function": true, "if": true, "import": true, "let": true, "loop": true, "package": true,
	"namespace": true, "return": true, "var": true, "void": true, "while": true,
}

func (d declTypes) EnumValue(name string) ref.Val { return d.base.EnumValue(name) }

func (d declTypes) FindIdent(name string) (ref.Val, bool) { return d.base.FindIdent(name) }

func (d declTypes) FindStructType(name string) (*types.Type, bool) {
	if _, ok := d.objects[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return d.base.FindStructType(name)
}

func (d declTypes) FindStructFieldNames(name string) ([]string, bool) {
	if fields, ok := d.objects[name]; ok {
		out := make([]string, 0, len(fields))
		for k := range fields {
			out = append(out, k)
		}
		return out, true
	}
	return d.base.FindStructFieldNames(name)
}

// FindStructFieldType gives a field's type only: at run time the object
// is a map, and a field is read by its key.
func (d declTypes) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if fields, ok := d.objects[name]; ok {
		t, ok := fields[field]
		if !ok {
			return nil, false
		}
		return &types.FieldType{Type: t}, true
	}
	return d.base.FindStructFieldType(name, field)
}

func (d declTypes) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := d.objects[name]; ok {
		return types.NewErr("objects of %s cannot be built in a validation rule", name)
	}
	return d.base.NewValue(name, fields)
}

// withSelfTypes registers a node's object types with the environment.
func withSelfTypes(objects map[string]map[string]*types.Type) cel.EnvOption {
	return func(e *cel.Env) (*cel.Env, error) {
		return cel.CustomTypeProvider(declTypes{base: e.CELTypeProvider(), objects: objects})(e)
	}
}

// typeNameOf names a rule node's root type after its path, in the letters
// a CEL type name may hold (the checker does not find others).
func typeNameOf(path string) string { return "__self__" + nameUnsafe.ReplaceAllString(path, "_") }

var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_]`)
