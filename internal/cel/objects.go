package cel

import (
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// objectTypes lets mutating policies build values: Object{...} and its
// nested Object.spec{...} (an apply configuration of any shape) and
// JSONPatch{op, path, from, value}. Each is a map at run time; fields are
// of any type, as the policy's object has no declared schema here.
type objectTypes struct{ base types.Provider }

func isObjectType(name string) bool {
	return name == "Object" || strings.HasPrefix(name, "Object.") || name == "JSONPatch"
}

func (o objectTypes) EnumValue(name string) ref.Val { return o.base.EnumValue(name) }

func (o objectTypes) FindIdent(name string) (ref.Val, bool) { return o.base.FindIdent(name) }

func (o objectTypes) FindStructType(name string) (*types.Type, bool) {
	if isObjectType(name) {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return o.base.FindStructType(name)
}

func (o objectTypes) FindStructFieldNames(name string) ([]string, bool) {
	if name == "JSONPatch" {
		return []string{"op", "path", "from", "value"}, true
	}
	if isObjectType(name) {
		return nil, true
	}
	return o.base.FindStructFieldNames(name)
}

func (o objectTypes) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if isObjectType(name) {
		t := types.DynType
		if name == "JSONPatch" && field != "value" {
			t = types.StringType
		}
		return &types.FieldType{Type: t}, true
	}
	return o.base.FindStructFieldType(name, field)
}

func (o objectTypes) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if !isObjectType(name) {
		return o.base.NewValue(name, fields)
	}
	m := make(map[string]any, len(fields))
	for k, v := range fields {
		m[k] = Native(v)
	}
	return types.DefaultTypeAdapter.NativeToValue(m)
}

// WithObjectTypes declares Object and JSONPatch (for mutating policies).
func WithObjectTypes() cel.EnvOption {
	return func(e *cel.Env) (*cel.Env, error) {
		return cel.CustomTypeProvider(objectTypes{base: e.CELTypeProvider()})(e)
	}
}

// Native is a CEL value as plain Go values (maps, lists, strings, int64,
// float64, bool, nil).
func Native(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case types.Null:
		return nil
	case traits.Mapper:
		out := map[string]any{}
		it := x.Iterator()
		for it.HasNext() == types.True {
			k := it.Next()
			out[toString(k)] = Native(x.Get(k))
		}
		return out
	case traits.Lister:
		n := int(x.Size().(types.Int))
		out := make([]any, 0, n)
		for i := range n {
			out = append(out, Native(x.Get(types.Int(i))))
		}
		return out
	case types.Int:
		return int64(x)
	case types.Uint:
		return int64(x)
	case types.Double:
		return float64(x)
	case types.String:
		return string(x)
	case types.Bool:
		return bool(x)
	case ref.Val:
		return Native(x.Value())
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Native(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Native(e)
		}
		return out
	}
	return v
}

func toString(v ref.Val) string {
	if s, ok := v.(types.String); ok {
		return string(s)
	}
	return ""
}
